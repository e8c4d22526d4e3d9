//! `mocks [-o FILE]`: the publisher's definitions (every endpoint this program publishes to,
//! with its types and attributes), as JSON, for subscribers' compile-time checks
//! (`#[subscribe(..., definitions = "FILE")]`) and mock publishers.

use std::path::PathBuf;

use promiscuous_sea_orm::publisher::definitions;

use crate::env::Out;
use crate::error::CliError;

#[derive(clap::Args, Debug)]
pub(crate) struct MocksArgs {
    /// Write to this file instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Only the endpoints of this publisher app (the first segment of `app/model`).
    #[arg(long)]
    app: Option<String>,
}

pub(crate) fn run(args: &MocksArgs, out: &mut Out) -> Result<(), CliError> {
    let exported = definitions::export(args.app.as_deref());
    let endpoints = exported["endpoints"].as_array().map_or(0, Vec::len);
    let json = serde_json::to_string_pretty(&exported)
        .map_err(|e| CliError::failed(format!("encoding the definitions: {e}")))?;
    match &args.output {
        None => out.line(json),
        Some(path) => {
            std::fs::write(path, format!("{json}\n")).map_err(|e| {
                CliError::failed(format!(
                    "writing the definitions to {}: {e}",
                    path.display()
                ))
            })?;
            out.line(format!(
                "wrote the definitions of {endpoints} endpoint(s) to {}",
                path.display()
            ));
        }
    }
    if endpoints == 0 {
        eprintln!(
            "warning: no published endpoint{}: this program registers no #[publish] or \
             #[ephemeral] model",
            args.app
                .as_ref()
                .map(|a| format!(" of app {a}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}
