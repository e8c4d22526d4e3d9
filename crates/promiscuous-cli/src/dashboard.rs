//! `dashboard --listen ADDR`: the operations dashboard on its own (crate
//! `promiscuous-dashboard`), over the workers' shared board in Redis (`--redis-url`) and the
//! app's dead letters (`--database-url`), with the Prometheus metrics at `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;

use promiscuous_core::redis::RedisBoard;
use promiscuous_dashboard::Dashboard;

use crate::env::{Env, Out, redact};
use crate::error::CliError;

#[derive(clap::Args, Debug)]
pub(crate) struct DashboardArgs {
    /// Where to listen. Loopback by default: put a proxy with TLS in front to open it wider.
    #[arg(long, default_value = "127.0.0.1:9464")]
    listen: SocketAddr,
    /// The token that allows actions (replay, drop); without one the dashboard is read-only.
    #[arg(long, env = "PROMISCUOUS_DASHBOARD_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

pub(crate) async fn run(
    env: &Env<'_>,
    args: &DashboardArgs,
    out: &mut Out,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), CliError> {
    let app = env.app().to_string();
    let mut dashboard = Dashboard::new().title(format!("promiscuous · {app}"));
    let mut sources = Vec::new();
    match &env.connections.redis_url {
        Some(url) => {
            dashboard = dashboard.board(Arc::new(RedisBoard::new(env.redis(url)?)));
            sources.push(format!("workers from Redis at {}", redact(url)));
        }
        None => {
            sources.push("no --redis-url: only this process's workers (none) are shown".to_string())
        }
    }
    if env.connections.database_url.is_some() {
        let db = env.database().await?;
        dashboard = dashboard.dead_letters(app.clone(), env.applier(db));
        sources.push(format!("dead letters of {app}"));
    }
    match promiscuous_dashboard::install_prometheus() {
        Ok(handle) => dashboard = dashboard.prometheus(handle),
        Err(e) => sources.push(format!("no Prometheus recorder ({e})")),
    }
    if let Some(token) = &args.token {
        dashboard = dashboard.token(token.clone());
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| CliError::failed(format!("listening on {}: {e}", args.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| CliError::failed(format!("listening on {}: {e}", args.listen)))?;
    out.line(format!(
        "dashboard on http://{addr}/ ({}; {}); SIGINT or SIGTERM stops it",
        sources.join(", "),
        if args.token.is_some() {
            "actions need the token"
        } else {
            "read-only: no --token"
        }
    ));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(dashboard.serve(listener, async {
        let _ = stopped.await;
    }));
    shutdown.await;
    let _ = stop.send(());
    server
        .await
        .map_err(|e| CliError::failed(format!("the dashboard's server: {e}")))?
        .map_err(|e| CliError::failed(format!("the dashboard's server: {e}")))?;
    out.line("dashboard stopped");
    Ok(())
}
