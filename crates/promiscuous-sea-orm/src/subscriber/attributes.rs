//! Reading typed attribute values out of an operation, with errors that name the attribute.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// An operation's attributes do not fit the subscriber's model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AttributeError {
    #[error("{endpoint}: missing attribute `{attribute}`")]
    Missing {
        endpoint: &'static str,
        attribute: &'static str,
    },
    #[error("{endpoint}: attribute `{attribute}` = {value} does not fit `{expected}`: {reason}")]
    WrongType {
        endpoint: &'static str,
        attribute: &'static str,
        value: String,
        expected: &'static str,
        reason: String,
    },
}

fn shorten(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 80 {
        format!("{}…", &s[..s.floor_char_boundary(80)])
    } else {
        s
    }
}

fn convert<T: DeserializeOwned>(
    endpoint: &'static str,
    attribute: &'static str,
    v: &Value,
) -> Result<T, AttributeError> {
    serde_json::from_value(v.clone()).map_err(|e| AttributeError::WrongType {
        endpoint,
        attribute,
        value: shorten(v),
        expected: std::any::type_name::<T>(),
        reason: e.to_string(),
    })
}

/// The attribute `name` of an operation, as `T`. A missing attribute is an error unless `T`
/// accepts null (an `Option`).
pub fn attribute<T: DeserializeOwned>(
    endpoint: &'static str,
    attributes: &Map<String, Value>,
    name: &'static str,
) -> Result<T, AttributeError> {
    match attributes.get(name) {
        Some(v) => convert(endpoint, name, v),
        None => serde_json::from_value(Value::Null).map_err(|_| AttributeError::Missing {
            endpoint,
            attribute: name,
        }),
    }
}

/// The publisher's id, as the type of the local key column.
pub fn publisher_id<T: DeserializeOwned>(
    endpoint: &'static str,
    id: &Value,
) -> Result<T, AttributeError> {
    convert(endpoint, "id", id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typed_reads_name_the_attribute() {
        let attrs = json!({"name": "Yoda", "age": "old"})
            .as_object()
            .unwrap()
            .clone();
        assert_eq!(attribute::<String>("a/b", &attrs, "name").unwrap(), "Yoda");
        assert_eq!(
            attribute::<Option<String>>("a/b", &attrs, "nick").unwrap(),
            None
        );
        let missing = attribute::<String>("a/b", &attrs, "email").unwrap_err();
        assert_eq!(missing.to_string(), "a/b: missing attribute `email`");
        let wrong = attribute::<i32>("a/b", &attrs, "age")
            .unwrap_err()
            .to_string();
        assert!(wrong.contains("`age`") && wrong.contains("i32"), "{wrong}");
    }
}
