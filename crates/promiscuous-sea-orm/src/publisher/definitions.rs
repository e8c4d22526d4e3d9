//! The publisher's definitions, exported for its subscribers (`promiscuous mocks -o FILE`):
//! every endpoint this program publishes to, with its type chain and attributes. Subscribers
//! check their `#[subscribe(..., definitions = "FILE")]` against it at compile time, and test
//! their code with mock publishers built from it (`promiscuous_test::MockPublisher`).
//!
//! ```json
//! {"promiscuous_definitions": 1, "endpoints": [
//!   {"endpoint": "crowdtap/user", "types": ["User"], "ephemeral": false,
//!    "attributes": [{"name": "name", "type": "String"}, {"name": "full_name", "type": ""}]}
//! ]}
//! ```
//! An attribute's `type` is its Rust type on the publisher's model, empty for a virtual
//! attribute (a method).

use promiscuous_protocol::endpoint;
use serde_json::{Value, json};

use super::Endpoint;

/// The format version written in `promiscuous_definitions` (defined in `promiscuous-protocol`,
/// which the macros read it from too).
pub use promiscuous_protocol::DEFINITIONS_VERSION;

/// A published model or ephemeral, registered by `#[publish]` and `#[ephemeral]`.
pub struct Definition {
    pub endpoints: &'static [Endpoint],
    pub ephemeral: bool,
}

inventory::collect!(Definition);

/// The apps this program publishes, joined with `+` (`"crowdtap"`), or `"publisher"` if it
/// publishes none: the name its relay has on the board.
pub fn published_apps() -> String {
    let apps: std::collections::BTreeSet<&str> = inventory::iter::<Definition>
        .into_iter()
        .flat_map(|d| d.endpoints.iter().map(|e| endpoint::app(e.endpoint)))
        .collect();
    if apps.is_empty() {
        "publisher".to_string()
    } else {
        apps.into_iter().collect::<Vec<_>>().join("+")
    }
}

/// Every endpoint published by this program (of app `app` only, if given), as JSON.
pub fn export(app: Option<&str>) -> Value {
    let mut entries: Vec<(String, Value)> = inventory::iter::<Definition>
        .into_iter()
        .flat_map(|d| d.endpoints.iter().map(move |e| (e, d.ephemeral)))
        .filter(|(e, _)| app.is_none_or(|a| endpoint::app(e.endpoint) == a))
        .map(|(e, ephemeral)| {
            let attributes: Vec<Value> = e
                .attributes
                .iter()
                .map(|a| json!({"name": a.name, "type": a.rust_type}))
                .collect();
            let sort_key = format!("{}\u{0}{}", e.endpoint, e.types.join(","));
            let entry = json!({
                "endpoint": e.endpoint,
                "types": e.types,
                "ephemeral": ephemeral,
                "attributes": attributes,
            });
            (sort_key, entry)
        })
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.dedup_by(|a, b| a.0 == b.0);
    json!({
        "promiscuous_definitions": DEFINITIONS_VERSION,
        "endpoints": entries.into_iter().map(|(_, e)| e).collect::<Vec<_>>(),
    })
}
