//! [`InstanceKey`]: the key of one instance in dependencies and version stores,
//! `"{endpoint}/{id}"` (`docs/PROTOCOL.md`, "Terms"), built and parsed here only.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use crate::endpoint::{self, is_name};

/// An instance key: `"{endpoint}/{id}"`, e.g. `crowdtap/user/7`. A string id is written as is
/// (it may hold `/`), an integer id in decimal, so `"7"` and `7` are one instance.
///
/// [`Display`](fmt::Display) writes the wire form; two keys are equal when their wire forms
/// are.
///
/// Built with [`InstanceKey::new`] the endpoint and the id are known. Read back from the wire
/// ([`InstanceKey::parse`]), the key alone cannot tell an endpoint of three segments
/// (`a/v2/user` + `7`) from an id holding `/` (`a/v2` + `user/7`), both of which the protocol
/// allows: [`InstanceKey::parse`] takes the endpoint as the first two segments, and
/// [`InstanceKey::with_endpoint`] reads a key whose endpoint is known. Only [`app`](Self::app)
/// is unambiguous, and it is all the runtime reads from a parsed key.
#[derive(Debug, Clone)]
pub struct InstanceKey {
    key: String,
    /// `key[..endpoint_len]` is the endpoint; `key[endpoint_len + 1..]` the id.
    endpoint_len: usize,
}

/// Why a string is not an instance key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// It does not open with an endpoint, two names separated by `/`.
    Endpoint { key: String },
    /// Nothing follows the endpoint: the id is missing or empty.
    Id { key: String },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Endpoint { key } => write!(
                f,
                "{key:?} is not an instance key \"app/model/id\": it does not open with an \
                 endpoint"
            ),
            KeyError::Id { key } => write!(
                f,
                "{key:?} is not an instance key \"app/model/id\": the id is missing"
            ),
        }
    }
}

impl std::error::Error for KeyError {}

impl InstanceKey {
    /// The key of instance `id` (the id's wire form: a string as is, an integer in decimal) of
    /// `endpoint`.
    pub fn new(endpoint: &str, id: &str) -> Self {
        Self {
            key: format!("{endpoint}/{id}"),
            endpoint_len: endpoint.len(),
        }
    }

    /// The key of instance `id` of `endpoint`, with the id as JSON (a string or an integer;
    /// any other value is written as its JSON text).
    #[cfg(feature = "json")]
    pub fn of(endpoint: &str, id: &serde_json::Value) -> Self {
        match id {
            serde_json::Value::String(s) => Self::new(endpoint, s),
            other => Self::new(endpoint, &other.to_string()),
        }
    }

    /// Parses a key from the wire (the schema's `^name(/name)+/[\s\S]+$`), taking the first two
    /// segments as the endpoint (see the type's documentation).
    pub fn parse(key: &str) -> Result<Self, KeyError> {
        let endpoint_error = || KeyError::Endpoint {
            key: key.to_string(),
        };
        let (app, rest) = key.split_once('/').ok_or_else(endpoint_error)?;
        let (model, id) = rest.split_once('/').ok_or_else(|| {
            if is_name(app) && is_name(rest) {
                KeyError::Id {
                    key: key.to_string(),
                }
            } else {
                endpoint_error()
            }
        })?;
        if !is_name(app) || !is_name(model) {
            return Err(endpoint_error());
        }
        if id.is_empty() {
            return Err(KeyError::Id {
                key: key.to_string(),
            });
        }
        Ok(Self {
            key: key.to_string(),
            endpoint_len: app.len() + 1 + model.len(),
        })
    }

    /// Reads `key` as a key of `endpoint`: `None` unless it is `"{endpoint}/{id}"` with a
    /// non-empty id.
    pub fn with_endpoint(key: &str, endpoint: &str) -> Option<Self> {
        let id = key.strip_prefix(endpoint)?.strip_prefix('/')?;
        (endpoint::is_endpoint(endpoint) && !id.is_empty()).then(|| Self::new(endpoint, id))
    }

    /// The endpoint, `"app/model"`.
    pub fn endpoint(&self) -> &str {
        &self.key[..self.endpoint_len]
    }

    /// The publishing app: the first segment.
    pub fn app(&self) -> &str {
        endpoint::app(&self.key)
    }

    /// The model: the endpoint's last segment.
    pub fn model(&self) -> &str {
        endpoint::model(self.endpoint())
    }

    /// The id's wire form (a string id as is, an integer in decimal).
    pub fn id(&self) -> &str {
        &self.key[self.endpoint_len + 1..]
    }

    /// The wire form.
    pub fn as_str(&self) -> &str {
        &self.key
    }

    /// The wire form, owned.
    pub fn into_string(self) -> String {
        self.key
    }
}

impl fmt::Display for InstanceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key)
    }
}

impl FromStr for InstanceKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, KeyError> {
        Self::parse(s)
    }
}

impl AsRef<str> for InstanceKey {
    fn as_ref(&self) -> &str {
        &self.key
    }
}

impl From<InstanceKey> for String {
    fn from(key: InstanceKey) -> String {
        key.key
    }
}

impl PartialEq for InstanceKey {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for InstanceKey {}

impl Hash for InstanceKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}

impl PartialOrd for InstanceKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for InstanceKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_form_is_endpoint_slash_id() {
        let key = InstanceKey::new("crowdtap/user", "7");
        assert_eq!(key.to_string(), "crowdtap/user/7");
        assert_eq!(key.endpoint(), "crowdtap/user");
        assert_eq!(key.app(), "crowdtap");
        assert_eq!(key.model(), "user");
        assert_eq!(key.id(), "7");
    }

    #[cfg(feature = "json")]
    #[test]
    fn string_and_integer_ids_of_the_same_text_are_one_key() {
        use serde_json::json;
        assert_eq!(InstanceKey::of("a/b", &json!("x-1")).to_string(), "a/b/x-1");
        assert_eq!(InstanceKey::of("a/b", &json!(7)).to_string(), "a/b/7");
        assert_eq!(
            InstanceKey::of("a/b", &json!(7)),
            InstanceKey::of("a/b", &json!("7"))
        );
    }

    #[test]
    fn parse_reads_back_what_new_wrote() {
        for (endpoint, id) in [
            ("crowdtap/user", "7"),
            ("a/b", "x/y/"),
            ("a/b", "/"),
            ("a/b", " é"),
        ] {
            let key = InstanceKey::new(endpoint, id);
            let parsed: InstanceKey = key.to_string().parse().unwrap();
            assert_eq!(parsed, key);
            assert_eq!((parsed.endpoint(), parsed.id()), (endpoint, id));
        }
    }

    #[test]
    fn ids_may_hold_slashes_and_a_longer_endpoint_needs_to_be_named() {
        let key = InstanceKey::parse("a/v2/user/7").unwrap();
        assert_eq!(
            (key.app(), key.endpoint(), key.id()),
            ("a", "a/v2", "user/7")
        );
        let key = InstanceKey::with_endpoint("a/v2/user/7", "a/v2/user").unwrap();
        assert_eq!(
            (key.endpoint(), key.model(), key.id()),
            ("a/v2/user", "user", "7")
        );
        assert_eq!(InstanceKey::with_endpoint("a/v2/user/", "a/v2/user"), None);
        assert_eq!(
            InstanceKey::with_endpoint("a/v2/users/7", "a/v2/user"),
            None
        );
        assert_eq!(InstanceKey::with_endpoint("a/b/7", "a"), None);
    }

    #[test]
    fn parse_refuses_what_the_schema_refuses() {
        for bad in ["", "a", "/b/1", "a//1", "a b/c/1", "a/b.c/1", "é/b/1"] {
            assert!(
                matches!(InstanceKey::parse(bad), Err(KeyError::Endpoint { .. })),
                "{bad:?}"
            );
        }
        for bad in ["a/b/", "a/b"] {
            assert_eq!(
                InstanceKey::parse(bad),
                Err(KeyError::Id { key: bad.into() })
            );
        }
        let err = InstanceKey::parse("a/b/").unwrap_err().to_string();
        assert!(err.contains("the id is missing"), "{err}");
    }
}
