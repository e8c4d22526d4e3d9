//! Compile-time check of subscribed attributes against a publisher's exported definitions
//! (`promiscuous mocks -o FILE`, or `promiscuous::definitions::export`): `#[subscribe(...,
//! definitions = "path/to/file.json")]`, the path relative to the subscriber crate's
//! `Cargo.toml`.

use std::path::PathBuf;

use proc_macro2::TokenStream;
use quote::quote;
use serde_json::Value;
use syn::{Ident, LitStr};

/// The format version of definitions files this macro reads (`promiscuous_definitions`),
/// the one `promiscuous::definitions::DEFINITIONS_VERSION` writes.
use promiscuous_protocol::DEFINITIONS_VERSION;

/// The endpoints of a definitions file: (endpoint, types, attribute names) per entry.
struct Entry {
    endpoint: String,
    types: Vec<String>,
    attributes: Vec<String>,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| match x {
                    Value::String(s) => Some(s.clone()),
                    Value::Object(o) => o.get("name").and_then(Value::as_str).map(String::from),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The file `path` names: relative to `CARGO_MANIFEST_DIR` if it exists there, else to the
/// directory of the source file the literal is in. Absolute when found (it is also given to
/// `include_bytes!`, which would read a relative path from the source file's directory).
fn resolve(path: &LitStr) -> PathBuf {
    let base = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_default();
    let full = base.join(path.value());
    if full.exists() || !proc_macro::is_available() {
        return full;
    }
    path.span()
        .unwrap()
        .local_file()
        .and_then(|file| Some(file.parent()?.join(path.value())))
        .and_then(|beside| std::fs::canonicalize(beside).ok())
        .unwrap_or(full)
}

fn load(path: &LitStr) -> syn::Result<(PathBuf, Vec<Entry>)> {
    let full = resolve(path);
    let error = |what: String| syn::Error::new(path.span(), what);
    let shown = path.value();
    let text = std::fs::read_to_string(&full).map_err(|e| {
        let kind = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_string(),
            kind => kind.to_string(),
        };
        error(format!(
            "cannot read publisher definitions {shown:?} (relative to this crate's Cargo.toml, \
             or to this source file): {kind}"
        ))
    })?;
    let json: Value = serde_json::from_str(&text).map_err(|e| {
        error(format!(
            "publisher definitions {shown:?} are not valid JSON: {e}"
        ))
    })?;
    let version = json.get("promiscuous_definitions").and_then(Value::as_u64);
    if version != Some(DEFINITIONS_VERSION) {
        let found = version.map_or_else(|| "none".to_string(), |v| v.to_string());
        return Err(error(format!(
            "publisher definitions {shown:?} are not in a format this version understands \
             (`promiscuous_definitions` is {found}, expected {DEFINITIONS_VERSION}): export them \
             again with `promiscuous mocks -o FILE`"
        )));
    }
    let Some(endpoints) = json.get("endpoints").and_then(Value::as_array) else {
        return Err(error(format!(
            "publisher definitions {shown:?} have no `endpoints` list (export them with \
             `promiscuous mocks -o FILE`)"
        )));
    };
    let entries = endpoints
        .iter()
        .filter_map(|e| {
            Some(Entry {
                endpoint: e.get("endpoint")?.as_str()?.to_string(),
                types: strings(e.get("types")),
                attributes: strings(e.get("attributes")),
            })
        })
        .collect();
    Ok((full, entries))
}

/// Checks `from`, `as` and the attributes against the definitions; returns code that makes the
/// crate rebuild when the file changes.
pub fn check(
    path: &LitStr,
    from: &LitStr,
    as_type: Option<&LitStr>,
    attributes: &[Ident],
) -> syn::Result<TokenStream> {
    let (full, entries) = load(path)?;
    let file = full.display().to_string();
    let on_endpoint: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.endpoint == from.value())
        .collect();
    if on_endpoint.is_empty() {
        let mut known: Vec<&str> = entries.iter().map(|e| e.endpoint.as_str()).collect();
        known.sort();
        known.dedup();
        return Err(syn::Error::new(
            from.span(),
            format!(
                "{:?} is not published according to {} (it publishes: {})",
                from.value(),
                path.value(),
                known.join(", ")
            ),
        ));
    }
    let matching: Vec<&Entry> = match as_type {
        None => on_endpoint,
        Some(t) => {
            let m: Vec<&Entry> = on_endpoint
                .iter()
                .copied()
                .filter(|e| e.types.iter().any(|x| *x == t.value()))
                .collect();
            if m.is_empty() {
                let mut types: Vec<&str> = on_endpoint
                    .iter()
                    .flat_map(|e| e.types.iter().map(String::as_str))
                    .collect();
                types.sort();
                types.dedup();
                return Err(syn::Error::new(
                    t.span(),
                    format!(
                        "no type {:?} is published to {:?} according to {} (types: {})",
                        t.value(),
                        from.value(),
                        path.value(),
                        types.join(", ")
                    ),
                ));
            }
            m
        }
    };
    for a in attributes {
        let name = syn::ext::IdentExt::unraw(a).to_string();
        if !matching.iter().any(|e| e.attributes.contains(&name)) {
            let mut published: Vec<&str> = matching
                .iter()
                .flat_map(|e| e.attributes.iter().map(String::as_str))
                .collect();
            published.sort();
            published.dedup();
            return Err(syn::Error::new(
                a.span(),
                format!(
                    "attribute `{name}` is not published to {:?} according to {} (published: {})",
                    from.value(),
                    path.value(),
                    published.join(", ")
                ),
            ));
        }
    }
    Ok(quote! { const _: &[u8] = ::core::include_bytes!(#file); })
}
