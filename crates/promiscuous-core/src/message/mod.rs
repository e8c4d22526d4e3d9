//! The wire protocol: JSON [`Message`]s carrying one or more operations applied atomically
//! (all the published writes of one publisher transaction to one app), documented in
//! `docs/PROTOCOL.md` and `docs/protocol.schema.json`.
//!
//! - [`Message::encode`] writes the wire format;
//! - [`Message::decode`] is the one way in from the wire: the strict decoder (module `decode`)
//!   accepts exactly the protocol. (`Deserialize` is derived for promiscuous's own storage,
//!   such as the publisher's outbox rows; it does not validate, never use it on payloads.)
//!
//! The rules shared with the macros and the test kit (instance keys, endpoints, type names,
//! versions) live in the crate `promiscuous-protocol`, re-exported here.

mod decode;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use promiscuous_protocol::{InstanceKey, KeyError, PROTOCOL_VERSION, endpoint};

/// The largest version and timestamp the protocol allows: 2^53 − 1, the largest integer every
/// JSON parser represents exactly (JavaScript's `Number.MAX_SAFE_INTEGER`).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// A replicated unit of work: operations applied atomically, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Protocol version ([`PROTOCOL_VERSION`]).
    pub protocol: u32,
    /// The publishing application (first segment of the endpoints it publishes to).
    pub app: String,
    /// Unique message id (UUID).
    pub id: String,
    /// Time of the write on the publisher, in milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// Host name of the publishing process.
    pub host: String,
    /// The user on whose behalf the write was made, if the publisher set one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_user_id: Option<Value>,
    /// What this message depends on (causal order).
    #[serde(default)]
    pub dependencies: Dependencies,
    /// The operations, applied in order and atomically.
    pub operations: Vec<Operation>,
}

/// The partition key of an encoded message: the key of the first instance it writes (see
/// [`Outgoing::partition_key`](crate::transport::Outgoing::partition_key)); `None` if the
/// payload has no write dependency (or is not a message).
pub fn partition_key(payload: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Writes {
        #[serde(default)]
        dependencies: Written,
    }
    #[derive(Deserialize, Default)]
    struct Written {
        #[serde(default)]
        write: Vec<Key>,
    }
    #[derive(Deserialize)]
    struct Key {
        key: String,
    }
    let writes: Writes = serde_json::from_slice(payload).ok()?;
    writes.dependencies.write.into_iter().next().map(|k| k.key)
}

/// Read and write dependencies: `key` at `version`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dependencies {
    /// Instances read before the write, at the version seen.
    #[serde(default)]
    pub read: Vec<Dependency>,
    /// Instances written, at their new version.
    #[serde(default)]
    pub write: Vec<Dependency>,
}

/// One instance at one version. The key is `"{endpoint}/{id}"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Dependency {
    pub key: String,
    pub version: u64,
}

/// What happened to an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OperationKind {
    Create,
    Update,
    Destroy,
}

impl fmt::Display for OperationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OperationKind::Create => "create",
            OperationKind::Update => "update",
            OperationKind::Destroy => "destroy",
        })
    }
}

/// One create, update or destroy of one published instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    /// Where it was published, `"app/model"`.
    pub endpoint: String,
    /// The type chain, most specific first (polymorphism).
    pub types: Vec<String>,
    /// The publisher's primary key.
    pub id: Value,
    pub operation: OperationKind,
    /// Per-instance version: 1 on create, +1 on every published write.
    pub version: u64,
    /// All published attributes after the write (absent on destroy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Map<String, Value>>,
    /// On update: the published attributes that changed, before and after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<BTreeMap<String, Change>>,
    /// A resend of the instance's whole current state (initial sync, `promiscuous publish`):
    /// applied as soon as it arrives if newer than what the subscriber has, without waiting for
    /// the previous version, which a subscriber deployed later never received.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sync: bool,
}

/// The value of one attribute before and after an update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub before: Value,
    pub after: Value,
}

/// Why a payload is not a valid message. Always names the offending part.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// Not UTF-8 JSON, not an object, or nested deeper than 128 levels.
    #[error("malformed message: {0}")]
    Json(String),
    #[error(
        "unsupported protocol version {found} (this subscriber reads up to {PROTOCOL_VERSION})"
    )]
    Protocol { found: u32 },
    /// Against the schema or the protocol's rules: `field` is the path of the offending part
    /// (`operations[2].version`), `message` the message's id when it has one.
    #[error("{}{field}: {problem}", .message.as_ref().map(|m| format!("message {m}: ")).unwrap_or_default())]
    Invalid {
        message: Option<String>,
        field: String,
        problem: String,
    },
    /// Valid, but not from whom it claims: the routing key or the broker-validated user is not
    /// the message's `app` (see `docs/PROTOCOL.md`, "Owners").
    #[error("message {message} refused: {reason}")]
    Untrusted { message: String, reason: String },
}

/// The key of an instance in dependencies and version stores, `"{endpoint}/{id}"`, as a
/// string: the wire form of [`InstanceKey::of`].
pub fn instance_key(endpoint: &str, id: &Value) -> String {
    InstanceKey::of(endpoint, id).into_string()
}

/// The `changes` of an update: the attributes of `after` whose value differs from `before`'s,
/// before (`null` if `before` lacks it) and after.
pub fn changes(
    before: &Map<String, Value>,
    after: &Map<String, Value>,
) -> BTreeMap<String, Change> {
    after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|(k, v)| {
            let change = Change {
                before: before.get(k).cloned().unwrap_or(Value::Null),
                after: v.clone(),
            };
            (k.clone(), change)
        })
        .collect()
}

impl Operation {
    /// This operation's instance key, see [`instance_key`].
    pub fn key(&self) -> String {
        instance_key(&self.endpoint, &self.id)
    }
}

impl Message {
    /// Serialize to the wire format.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a Message always serializes")
    }
}

/// The host name written into messages.
pub fn host_name() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Value {
        json!({
            "protocol": 1, "app": "crowdtap", "id": "m1", "timestamp": 1, "host": "h",
            "operations": [{"endpoint": "crowdtap/user", "types": ["User"], "id": 1,
                            "operation": "create", "version": 1, "attributes": {"name": "Yoda"}}]
        })
    }

    #[test]
    fn round_trips() {
        let m = Message::decode(sample().to_string().as_bytes()).unwrap();
        assert_eq!(m.operations[0].key(), "crowdtap/user/1");
        assert_eq!(Message::decode(&m.encode()).unwrap(), m);
    }

    #[test]
    fn rejects_bad_input_with_context() {
        let err = Message::decode(b"{not json").unwrap_err();
        assert!(matches!(err, DecodeError::Json(_)), "{err}");

        let mut v = sample();
        v["protocol"] = json!(99);
        let err = Message::decode(v.to_string().as_bytes()).unwrap_err();
        assert_eq!(err, DecodeError::Protocol { found: 99 });

        let mut v = sample();
        v["operations"][0]
            .as_object_mut()
            .unwrap()
            .remove("attributes");
        let err = Message::decode(v.to_string().as_bytes()).unwrap_err();
        assert!(
            err.to_string()
                .contains("operations[0].attributes: is required on create"),
            "{err}"
        );

        let mut v = sample();
        v["operations"][0]["operation"] = json!("explode");
        let err = Message::decode(v.to_string().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("explode"), "{err}");

        let mut v = sample();
        v["operations"][0]["version"] = json!(0);
        assert!(Message::decode(v.to_string().as_bytes()).is_err());

        for (field, bad) in [
            ("id", json!(7.5)),
            ("id", json!({})),
            ("endpoint", json!("user")),
            ("types", json!([])),
        ] {
            let mut v = sample();
            v["operations"][0][field] = bad.clone();
            let err = Message::decode(v.to_string().as_bytes()).unwrap_err();
            assert!(
                matches!(err, DecodeError::Invalid { .. }),
                "{field} = {bad}: {err}"
            );
        }

        let mut v = sample();
        v["operations"] = json!([]);
        assert!(Message::decode(v.to_string().as_bytes()).is_err());
    }

    /// Found by the fuzz target `decode`: without serde_json's `float_roundtrip`, this float
    /// came back one ULP off after a trip over the wire.
    #[test]
    fn floats_survive_the_wire_exactly() {
        let body = br#"{"protocol":1,"app":"a","id":"m","timestamp":0,"host":"","operations":[{"endpoint":"a/b","types":["T"],"id":1,"operation":"create","version":1,"attributes":{"p":-92337207874563580829,"q":0.1,"r":1.7976931348623157e308}}]}"#;
        let m = Message::decode(body).unwrap();
        assert_eq!(Message::decode(&m.encode()).unwrap(), m);
        let p = m.operations[0].attributes.as_ref().unwrap()["p"].as_f64();
        assert_eq!(p.map(f64::to_bits), Some(0xc41405bea55a8b0f));
    }

    #[test]
    fn string_ids_make_plain_keys() {
        assert_eq!(instance_key("a/b", &json!("x-1")), "a/b/x-1");
        assert_eq!(instance_key("a/b", &json!(7)), "a/b/7");
    }

    /// Moved with `changes` from the publisher's hooks (`promiscuous-sea-orm`).
    #[test]
    fn diff_lists_only_changed_attributes() {
        let before = json!({"name": "Yoda", "email": "y@d"})
            .as_object()
            .unwrap()
            .clone();
        let after = json!({"name": "Luke", "email": "y@d"})
            .as_object()
            .unwrap()
            .clone();
        let d = changes(&before, &after);
        assert_eq!(d.len(), 1);
        assert_eq!(d["name"].before, json!("Yoda"));
        assert_eq!(d["name"].after, json!("Luke"));
        assert!(changes(&after, &after).is_empty());
    }

    #[test]
    fn changes_list_what_differs_before_and_after() {
        let before = json!({"a": 1, "b": 2}).as_object().cloned().unwrap();
        let after = json!({"a": 1, "b": 3, "c": 4})
            .as_object()
            .cloned()
            .unwrap();
        let c = changes(&before, &after);
        assert_eq!(c.keys().collect::<Vec<_>>(), ["b", "c"]);
        assert_eq!(
            c["b"],
            Change {
                before: json!(2),
                after: json!(3)
            }
        );
        assert_eq!(
            c["c"],
            Change {
                before: Value::Null,
                after: json!(4)
            }
        );
        assert!(changes(&after, &after).is_empty());
    }
}
