//! The strict decoder: a payload from the wire becomes a [`Message`] only if it is valid against
//! `docs/protocol.schema.json` and follows the rules the schema cannot express. Every rejection
//! names the offending field by its path (`operations[2].version`).
//!
//! What it accepts, exactly:
//! - what the schema accepts: a JSON object with the required fields, each of its type and
//!   within its bounds; unknown fields anywhere are ignored (forward compatibility). As in JSON
//!   Schema, a number with a zero fraction is an integer (`1.0` is `1`); integers are read as
//!   such (`"id": 7.0` is the instance `7`);
//! - and the rules beyond the schema: every operation's endpoint and every write dependency
//!   belong to the message's `app` (their first segment is the app), and the body is nested at
//!   most 128 levels deep (the JSON parser's limit; deeper bodies are malformed).
//!
//! Why by hand and not serde's derive: a derived `Deserialize` accepts a JSON array for a
//! struct (fields in order), silently fills defaults and reads `1.0` as no `u32`; this walks the
//! JSON value once, field by field, so that what it accepts is what the schema says.

use std::collections::BTreeMap;

use serde_json::{Map, Number, Value};

use super::endpoint::{self, is_endpoint, is_name};
use super::{
    Change, DecodeError, Dependencies, Dependency, InstanceKey, MAX_SAFE_INTEGER, Message,
    Operation, OperationKind, PROTOCOL_VERSION,
};

impl Message {
    /// Parses and validates a payload from the wire: accepts exactly what
    /// `docs/protocol.schema.json` accepts and the protocol's rules allow (module `decode`).
    /// Never panics on bad input.
    pub fn decode(payload: &[u8]) -> Result<Message, DecodeError> {
        decode(payload)
    }
}

/// Parses and validates a payload (see the module documentation).
fn decode(payload: &[u8]) -> Result<Message, DecodeError> {
    let value: Value =
        serde_json::from_slice(payload).map_err(|e| DecodeError::Json(e.to_string()))?;
    let Value::Object(root) = value else {
        return Err(DecodeError::Json(format!(
            "a message is a JSON object, not {}",
            kind(&value)
        )));
    };
    // The id first, so that every later error names the message.
    let id = root
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let top = Object {
        map: &root,
        path: String::new(),
        message: id,
    };
    let protocol = match top.required("protocol")? {
        Value::Number(n) if integer(n) == Some(Int::Unsigned(PROTOCOL_VERSION as u64)) => {
            PROTOCOL_VERSION
        }
        Value::Number(n) => match integer(n) {
            Some(Int::Unsigned(found)) if found > PROTOCOL_VERSION as u64 => {
                return Err(DecodeError::Protocol {
                    found: found.min(u32::MAX as u64) as u32,
                });
            }
            Some(Int::Huge) if n.as_f64().is_some_and(|f| f > 0.0) => {
                return Err(DecodeError::Protocol { found: u32::MAX });
            }
            _ => return Err(top.invalid("protocol", format!("must be 1, found {n}"))),
        },
        other => return Err(top.invalid("protocol", format!("must be 1, found {}", kind(other)))),
    };
    let app = top.name("app")?;
    let id = top.string("id", NonEmpty::Yes)?;
    let timestamp = top.bounded("timestamp", 0)? as i64;
    let host = top.string("host", NonEmpty::No)?;
    let current_user_id = match top.optional("current_user_id") {
        None | Some(Value::Null) => None,
        Some(v @ (Value::String(_) | Value::Number(_))) => Some(v.clone()),
        Some(other) => {
            return Err(top.invalid(
                "current_user_id",
                format!("must be a string, a number or null, found {}", kind(other)),
            ));
        }
    };
    let dependencies = match top.optional("dependencies") {
        None => Dependencies::default(),
        Some(v) => {
            let deps = top.object_at("dependencies", v)?;
            let read = deps.dependencies("read", None)?;
            let write = deps.dependencies("write", Some(&app))?;
            Dependencies { read, write }
        }
    };
    let operations = top.array("operations")?;
    if operations.is_empty() {
        return Err(top.invalid("operations", "must hold at least one operation".into()));
    }
    let operations = operations
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let path = top.child(&format!("operations[{i}]"));
            operation(&top.at(&path, v)?, &app)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Message {
        protocol,
        app,
        id,
        timestamp,
        host,
        current_user_id,
        dependencies,
        operations,
    })
}

fn operation(op: &Object<'_>, app: &str) -> Result<Operation, DecodeError> {
    let endpoint = op.string("endpoint", NonEmpty::Yes)?;
    if !is_endpoint(&endpoint) {
        return Err(op.invalid(
            "endpoint",
            format!(
                "{endpoint:?} is not an endpoint \"app/model\" (segments of letters, digits, '_' \
                 or '-')"
            ),
        ));
    }
    if endpoint::app(&endpoint) != app {
        return Err(op.invalid(
            "endpoint",
            format!(
                "{endpoint:?} is not an endpoint of the message's app {app:?}: only the owner of \
                 an endpoint publishes its instances"
            ),
        ));
    }
    let types = op.array("types")?;
    if types.is_empty() {
        return Err(op.invalid("types", "must name at least one type".into()));
    }
    let types = types
        .iter()
        .enumerate()
        .map(|(i, t)| match t {
            Value::String(s) if !s.is_empty() => Ok(s.clone()),
            Value::String(_) => Err(op.invalid(&format!("types[{i}]"), "is empty".into())),
            other => Err(op.invalid(
                &format!("types[{i}]"),
                format!("must be a string, found {}", kind(other)),
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let id = match op.required("id")? {
        Value::String(s) if !s.is_empty() => Value::String(s.clone()),
        Value::Number(n) => match integer(n) {
            Some(Int::Unsigned(u)) if u <= i64::MAX as u64 => Value::from(u),
            Some(Int::Signed(i)) => Value::from(i),
            Some(_) => {
                return Err(op.invalid(
                    "id",
                    format!("{n} is beyond a 64-bit signed integer; send it as a string"),
                ));
            }
            None => {
                return Err(op.invalid(
                    "id",
                    format!("must be a non-empty string or an integer, found {n}"),
                ));
            }
        },
        Value::String(_) => return Err(op.invalid("id", "is an empty string".into())),
        other => {
            return Err(op.invalid(
                "id",
                format!(
                    "must be a non-empty string or an integer, found {}",
                    kind(other)
                ),
            ));
        }
    };
    let operation = match op.required("operation")? {
        Value::String(s) if s == "create" => OperationKind::Create,
        Value::String(s) if s == "update" => OperationKind::Update,
        Value::String(s) if s == "destroy" => OperationKind::Destroy,
        other => {
            return Err(op.invalid(
                "operation",
                format!("must be \"create\", \"update\" or \"destroy\", found {other}"),
            ));
        }
    };
    let version = op.bounded("version", 1)?;
    let attributes = match op.optional("attributes") {
        Some(Value::Object(map)) => Some(map.clone()),
        Some(other) => {
            return Err(op.invalid(
                "attributes",
                format!("must be an object, found {}", kind(other)),
            ));
        }
        None if operation == OperationKind::Destroy => None,
        None => return Err(op.invalid("attributes", format!("is required on {operation}"))),
    };
    let changes = match op.optional("changes") {
        None => None,
        Some(v) => {
            let changes = op.object_at("changes", v)?;
            let mut out = BTreeMap::new();
            for (name, change) in changes.map {
                let change = changes.at(&changes.child(name), change)?;
                out.insert(
                    name.clone(),
                    Change {
                        before: change.required("before")?.clone(),
                        after: change.required("after")?.clone(),
                    },
                );
            }
            Some(out)
        }
    };
    let sync = match op.optional("sync") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(op.invalid(
                "sync",
                format!("must be true or false, found {}", kind(other)),
            ));
        }
    };
    Ok(Operation {
        endpoint,
        types,
        id,
        operation,
        version,
        attributes,
        changes,
        sync,
    })
}

/// A JSON object being read, with its path for errors.
struct Object<'a> {
    map: &'a Map<String, Value>,
    /// `""` for the message, else e.g. `operations[0]`.
    path: String,
    /// The message's id, for errors (borrowed: objects are made per operation and dependency).
    message: Option<&'a str>,
}

#[derive(Clone, Copy)]
enum NonEmpty {
    Yes,
    No,
}

impl<'a> Object<'a> {
    fn child(&self, name: &str) -> String {
        if self.path.is_empty() || name.starts_with('[') {
            format!("{}{name}", self.path)
        } else {
            format!("{}.{name}", self.path)
        }
    }

    fn invalid(&self, field: &str, problem: String) -> DecodeError {
        DecodeError::Invalid {
            message: self.message.map(str::to_owned),
            field: self.child(field),
            problem,
        }
    }

    /// The object at `path` (absolute), or an error naming it.
    fn at(&self, path: &str, value: &'a Value) -> Result<Object<'a>, DecodeError> {
        match value {
            Value::Object(map) => Ok(Object {
                map,
                path: path.to_owned(),
                message: self.message,
            }),
            other => Err(DecodeError::Invalid {
                message: self.message.map(str::to_owned),
                field: path.to_owned(),
                problem: format!("must be an object, found {}", kind(other)),
            }),
        }
    }

    fn object_at(&self, name: &str, value: &'a Value) -> Result<Object<'a>, DecodeError> {
        self.at(&self.child(name), value)
    }

    fn optional(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name)
    }

    fn required(&self, name: &str) -> Result<&'a Value, DecodeError> {
        self.map
            .get(name)
            .ok_or_else(|| self.invalid(name, "is missing".into()))
    }

    fn string(&self, name: &str, non_empty: NonEmpty) -> Result<String, DecodeError> {
        match self.required(name)? {
            Value::String(s) if s.is_empty() && matches!(non_empty, NonEmpty::Yes) => {
                Err(self.invalid(name, "is an empty string".into()))
            }
            Value::String(s) => Ok(s.clone()),
            other => Err(self.invalid(name, format!("must be a string, found {}", kind(other)))),
        }
    }

    /// An app name: letters, digits, `_` and `-`.
    fn name(&self, name: &str) -> Result<String, DecodeError> {
        let s = self.string(name, NonEmpty::Yes)?;
        if is_name(&s) {
            Ok(s)
        } else {
            Err(self.invalid(
                name,
                format!("{s:?} may hold only letters, digits, '_' and '-'"),
            ))
        }
    }

    fn array(&self, name: &str) -> Result<&'a Vec<Value>, DecodeError> {
        match self.required(name)? {
            Value::Array(items) => Ok(items),
            other => Err(self.invalid(name, format!("must be an array, found {}", kind(other)))),
        }
    }

    /// An integer from `min` to [`MAX_SAFE_INTEGER`].
    fn bounded(&self, name: &str, min: u64) -> Result<u64, DecodeError> {
        bounded(self.required(name)?, min).map_err(|problem| self.invalid(name, problem))
    }

    /// `dependencies.read` or `.write` (absent: empty); `owner`: every key must be its.
    fn dependencies(
        &self,
        name: &str,
        owner: Option<&str>,
    ) -> Result<Vec<Dependency>, DecodeError> {
        let Some(value) = self.optional(name) else {
            return Ok(Vec::new());
        };
        let Value::Array(items) = value else {
            return Err(self.invalid(name, format!("must be an array, found {}", kind(value))));
        };
        let list = self.child(name);
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let dep = self.at(&format!("{list}[{i}]"), item)?;
                let key = dep.string("key", NonEmpty::Yes)?;
                if InstanceKey::parse(&key).is_err() {
                    return Err(dep.invalid(
                        "key",
                        format!("{key:?} is not an instance key \"app/model/id\""),
                    ));
                }
                if let Some(app) = owner
                    && endpoint::app(&key) != app
                {
                    return Err(dep.invalid(
                        "key",
                        format!("{key:?} is not an instance of the message's app {app:?}"),
                    ));
                }
                let version = dep.bounded("version", 1)?;
                Ok(Dependency { key, version })
            })
            .collect()
    }
}

/// An integer read from a JSON number (JSON Schema's `integer`: no fractional part).
#[derive(Debug, PartialEq)]
enum Int {
    Unsigned(u64),
    Signed(i64),
    /// Integral, beyond 64 bits (or a float of 2^63 and more).
    Huge,
}

fn integer(n: &Number) -> Option<Int> {
    if let Some(u) = n.as_u64() {
        return Some(Int::Unsigned(u));
    }
    if let Some(i) = n.as_i64() {
        return Some(Int::Signed(i));
    }
    let f = n.as_f64()?;
    if f.fract() != 0.0 {
        return None;
    }
    // f64 integers below 2^63 in magnitude are exact in 64 bits.
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    Some(if (0.0..TWO_63).contains(&f) {
        Int::Unsigned(f as u64)
    } else if (-TWO_63..0.0).contains(&f) {
        Int::Signed(f as i64)
    } else {
        Int::Huge
    })
}

fn bounded(value: &Value, min: u64) -> Result<u64, String> {
    let range = || format!("an integer from {min} to {MAX_SAFE_INTEGER}");
    match value {
        Value::Number(n) => match integer(n) {
            Some(Int::Unsigned(u)) if (min..=MAX_SAFE_INTEGER).contains(&u) => Ok(u),
            Some(_) => Err(format!("must be {}, found {n}", range())),
            None => Err(format!("must be {}, found {n}", range())),
        },
        other => Err(format!("must be {}, found {}", range(), kind(other))),
    }
}

/// What a JSON value is, for errors.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        for ok in [
            "a/b/1",
            "a/b/c/d",
            "a/b/x y",
            "a/b//",
            "a/b/c/",
            "a-1/b_2/é",
        ] {
            assert!(InstanceKey::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["a/b", "a/b/", "a//b/1", "/a/b/1", "a", "", "é/b/1"] {
            assert!(InstanceKey::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn integers() {
        let n = |s: &str| serde_json::from_str::<Number>(s).unwrap();
        assert_eq!(integer(&n("1.0")), Some(Int::Unsigned(1)));
        assert_eq!(integer(&n("-2.0")), Some(Int::Signed(-2)));
        assert_eq!(integer(&n("1.5")), None);
        assert_eq!(integer(&n("1e300")), Some(Int::Huge));
        assert_eq!(
            integer(&n("-9223372036854775808")),
            Some(Int::Signed(i64::MIN))
        );
        assert_eq!(integer(&n("9223372036854775808.0")), Some(Int::Huge));
    }
}
