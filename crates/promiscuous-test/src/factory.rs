//! Factories: complete attribute maps for an endpoint, every published attribute with a
//! plausible value derived from its Rust type in the publisher's definitions, overridden where
//! a test cares.
//!
//! | Rust type | value (the `n`th instance of the endpoint) |
//! | --- | --- |
//! | `String`, `&str`, `Cow<str>` | `"name-n"` (the attribute's name) |
//! | integers (`i32`, `u64`, ...) | `n` |
//! | `f32`, `f64`, `Decimal` | `n.5` |
//! | `bool` | `false` |
//! | `Option<_>` | `null` |
//! | `Vec<_>` | `[]` |
//! | `Json`, `serde_json::Value`, `JsonValue` | `{}` |
//! | `Uuid` | a UUID ending in `n` |
//! | dates and times (`NaiveDate`, `DateTime<Utc>`, `DateTimeUtc`, ...) | 2024-01-01 |
//! | anything else, and virtual attributes (methods) | `null` |

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::definitions::{Definitions, EndpointDefinition};
use crate::error::MockError;

/// Builds attribute maps for the endpoints of a publisher's definitions, numbering instances
/// per endpoint (1, 2, ...).
#[derive(Debug, Clone)]
pub struct Factory {
    definitions: Definitions,
    sequences: HashMap<String, u64>,
}

impl Factory {
    pub fn new(definitions: Definitions) -> Self {
        Self {
            definitions,
            sequences: HashMap::new(),
        }
    }

    pub fn definitions(&self) -> &Definitions {
        &self.definitions
    }

    /// The next sequence number of `endpoint` (1 for the first instance).
    pub fn next(&mut self, endpoint: &str) -> u64 {
        let n = self.sequences.entry(endpoint.to_string()).or_insert(0);
        *n += 1;
        *n
    }

    /// Every attribute published to `endpoint` (its base type), with default values, then
    /// `overrides` (a JSON object) on top. An endpoint or an override that is not published
    /// is refused.
    pub fn attributes(
        &mut self,
        endpoint: &str,
        overrides: Value,
    ) -> Result<Map<String, Value>, MockError> {
        let entry = entry(&self.definitions, endpoint, None)?.clone();
        let n = self.next(endpoint);
        build(&entry, n, overrides)
    }

    /// [`Factory::attributes`] of the type `type_name` of a polymorphic endpoint.
    pub fn attributes_as(
        &mut self,
        endpoint: &str,
        type_name: &str,
        overrides: Value,
    ) -> Result<Map<String, Value>, MockError> {
        let entry = entry(&self.definitions, endpoint, Some(type_name))?.clone();
        let n = self.next(endpoint);
        build(&entry, n, overrides)
    }
}

/// The entry of `endpoint` (as `type_name`), or why there is none.
pub(crate) fn entry<'d>(
    definitions: &'d Definitions,
    endpoint: &str,
    type_name: Option<&str>,
) -> Result<&'d EndpointDefinition, MockError> {
    let entries = definitions.entries(endpoint);
    if entries.is_empty() {
        return Err(MockError::UnknownEndpoint {
            endpoint: endpoint.to_string(),
            published: definitions
                .endpoint_names()
                .into_iter()
                .map(String::from)
                .collect(),
        });
    }
    let found = match type_name {
        None => definitions.endpoint(endpoint),
        Some(t) => definitions.endpoint_as(endpoint, t),
    };
    found.ok_or_else(|| MockError::UnknownType {
        endpoint: endpoint.to_string(),
        type_name: type_name.unwrap_or_default().to_string(),
        types: entries.iter().map(|e| e.type_name().to_string()).collect(),
    })
}

/// Checks that every key of `attributes` is published by `entry`.
pub(crate) fn check_attributes(
    entry: &EndpointDefinition,
    attributes: &Map<String, Value>,
) -> Result<(), MockError> {
    match attributes.keys().find(|k| entry.attribute(k).is_none()) {
        None => Ok(()),
        Some(unknown) => Err(MockError::UnknownAttribute {
            endpoint: entry.endpoint.clone(),
            type_name: entry.type_name().to_string(),
            attribute: unknown.clone(),
            published: entry
                .attribute_names()
                .into_iter()
                .map(String::from)
                .collect(),
        }),
    }
}

/// `overrides` as an object (`null` for none).
pub(crate) fn object(overrides: Value) -> Result<Map<String, Value>, MockError> {
    match overrides {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(Map::new()),
        other => Err(MockError::NotAnObject(other)),
    }
}

/// Defaults for every attribute of `entry` (instance `n`), then `overrides`.
pub(crate) fn build(
    entry: &EndpointDefinition,
    n: u64,
    overrides: Value,
) -> Result<Map<String, Value>, MockError> {
    let overrides = object(overrides)?;
    check_attributes(entry, &overrides)?;
    let mut attributes: Map<String, Value> = entry
        .attributes
        .iter()
        .map(|a| (a.name.clone(), default_value(&a.rust_type, &a.name, n)))
        .collect();
    attributes.extend(overrides);
    Ok(attributes)
}

/// A plausible value of Rust type `rust_type` (as written on the publisher's model) for
/// attribute `name` of the `n`th instance; `null` when the type is unknown or empty (a
/// virtual attribute).
pub fn default_value(rust_type: &str, name: &str, n: u64) -> Value {
    let ty: String = rust_type.chars().filter(|c| !c.is_whitespace()).collect();
    // The outer type's last path segment: `std::option::Option<i32>` → `Option`.
    let outer = ty.split('<').next().unwrap_or_default();
    let outer = outer.rsplit("::").next().unwrap_or_default();
    let outer = outer.trim_start_matches('&');
    match outer {
        "String" | "str" | "Cow" => json!(format!("{name}-{n}")),
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" | "u8" | "u16" | "u32" | "u64" | "u128"
        | "usize" => json!(n),
        "f32" | "f64" => json!(n as f64 + 0.5),
        "Decimal" => json!(format!("{n}.5")),
        "bool" => json!(false),
        "char" => json!("x"),
        "Option" => Value::Null,
        "Vec" | "HashSet" | "BTreeSet" => json!([]),
        "Json" | "JsonValue" | "Value" | "HashMap" | "BTreeMap" | "Map" => json!({}),
        "Uuid" => json!(format!("00000000-0000-4000-8000-{n:012}")),
        "NaiveDate" | "Date" => json!("2024-01-01"),
        "NaiveTime" | "Time" => json!("12:00:00"),
        "NaiveDateTime" | "PrimitiveDateTime" => json!("2024-01-01T12:00:00"),
        "DateTime"
        | "DateTimeUtc"
        | "DateTimeWithTimeZone"
        | "DateTimeLocal"
        | "OffsetDateTime" => {
            json!("2024-01-01T12:00:00Z")
        }
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn factory() -> Factory {
        Factory::new(Definitions::from_json(crate::definitions::tests::CROWDTAP).unwrap())
    }

    #[test]
    fn default_values_follow_the_rust_type() {
        assert_eq!(default_value("String", "name", 3), json!("name-3"));
        assert_eq!(
            default_value("std::string::String", "name", 1),
            json!("name-1")
        );
        assert_eq!(default_value("i32", "level", 3), json!(3));
        assert_eq!(default_value("u64", "level", 4), json!(4));
        assert_eq!(default_value("f64", "score", 2), json!(2.5));
        assert_eq!(default_value("bool", "admin", 2), json!(false));
        assert_eq!(default_value("Option<String>", "nick", 2), Value::Null);
        assert_eq!(default_value("Option < i32 >", "nick", 2), Value::Null);
        assert_eq!(default_value("Vec<String>", "tags", 2), json!([]));
        assert_eq!(default_value("Json", "settings", 2), json!({}));
        assert_eq!(default_value("serde_json::Value", "settings", 2), json!({}));
        assert_eq!(
            default_value("Uuid", "uuid", 12),
            json!("00000000-0000-4000-8000-000000000012")
        );
        assert_eq!(
            default_value("DateTime<Utc>", "at", 1),
            json!("2024-01-01T12:00:00Z")
        );
        assert_eq!(
            default_value("chrono::NaiveDateTime", "at", 1),
            json!("2024-01-01T12:00:00")
        );
        assert_eq!(default_value("Address", "address", 2), Value::Null);
        assert_eq!(default_value("", "full_name", 2), Value::Null);
    }

    #[test]
    fn attributes_are_complete_numbered_per_endpoint_and_overridable() {
        let mut f = factory();
        assert_eq!(
            Value::Object(f.attributes("crowdtap/user", Value::Null).unwrap()),
            json!({"name": "name-1", "email": "email-1", "full_name": null})
        );
        assert_eq!(
            Value::Object(
                f.attributes("crowdtap/user", json!({"name": "Yoda"}))
                    .unwrap()
            ),
            json!({"name": "Yoda", "email": "email-2", "full_name": null})
        );
        assert_eq!(
            Value::Object(
                f.attributes_as("crowdtap/user", "Admin", json!({}))
                    .unwrap()
            ),
            json!({"name": "name-3", "level": 3})
        );
        assert_eq!(
            Value::Object(f.attributes("crowdtap/page_view", json!({})).unwrap()),
            json!({"page": "page-1"})
        );
    }

    #[test]
    fn attributes_refuse_what_is_not_published() {
        let mut f = factory();
        assert_eq!(
            f.attributes("crowdtap/user", json!({"password": "x"}))
                .unwrap_err()
                .to_string(),
            "attribute `password` is not published to \"crowdtap/user\" as \"User\" \
             (published: name, email, full_name)"
        );
        assert_eq!(
            f.attributes("crowdtap/member", json!({}))
                .unwrap_err()
                .to_string(),
            "\"crowdtap/member\" is not in the publisher's definitions (published: \
             crowdtap/page_view, crowdtap/user)"
        );
        assert_eq!(
            f.attributes_as("crowdtap/user", "Moderator", json!({}))
                .unwrap_err()
                .to_string(),
            "no type \"Moderator\" is published to \"crowdtap/user\" (types: Admin, User)"
        );
        assert_eq!(
            f.attributes("crowdtap/user", json!(["name"]))
                .unwrap_err()
                .to_string(),
            "attributes must be a JSON object (or null), found [\"name\"]"
        );
    }
}
