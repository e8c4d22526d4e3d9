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
///
/// `7` and `"7"` are one instance (one instance key, `{endpoint}/7`), so either fits an
/// integer column or a string column: a string id is read as an integer when it is the
/// integer's canonical decimal form, and an integer id as its decimal string. Other spellings
/// of a number (`"07"`, `"+7"`, `" 7"`, `"7.0"`) are refused: their instance key is not `7`'s,
/// and two keys (two version counters) must never write one row.
pub fn publisher_id<T: DeserializeOwned>(
    endpoint: &'static str,
    id: &Value,
) -> Result<T, AttributeError> {
    let error = match convert(endpoint, "id", id) {
        Ok(value) => return Ok(value),
        Err(e) => e,
    };
    let same_key = match id {
        Value::String(s) => match canonical_integer(s) {
            Some(n) => Some(n),
            None => {
                if let Some(n) = s.trim().parse::<f64>().ok().filter(|f| f.is_finite()) {
                    return Err(AttributeError::WrongType {
                        endpoint,
                        attribute: "id",
                        value: shorten(id),
                        expected: std::any::type_name::<T>(),
                        reason: format!(
                            "a string id read as a number must be an integer in its canonical decimal \
                             form (its instance key is {endpoint}/{s}, not the key of the \
                             number {n})"
                        ),
                    });
                }
                None
            }
        },
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(Value::String(n.to_string())),
        _ => None,
    };
    match same_key {
        Some(v) => convert(endpoint, "id", &v).map_err(|_| error),
        None => Err(error),
    }
}

/// `"7"` → `7`, `"-3"` → `-3`; `None` for anything whose decimal form differs (`"07"`).
fn canonical_integer(s: &str) -> Option<Value> {
    if let Ok(i) = s.parse::<i64>() {
        return (i.to_string() == s).then(|| Value::from(i));
    }
    let u = s.parse::<u64>().ok()?;
    (u.to_string() == s).then(|| Value::from(u))
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

    #[test]
    fn an_id_fits_its_column_in_either_json_type_when_its_instance_key_is_the_same() {
        assert_eq!(publisher_id::<i32>("a/b", &json!("7")).unwrap(), 7);
        assert_eq!(publisher_id::<i64>("a/b", &json!("-3")).unwrap(), -3);
        assert_eq!(
            publisher_id::<i64>("a/b", &json!(i64::MIN.to_string())).unwrap(),
            i64::MIN
        );
        assert_eq!(publisher_id::<String>("a/b", &json!(7)).unwrap(), "7");
        for other_key in ["07", "+7", " 7", "7.0", "-0", "1e3"] {
            let e = publisher_id::<i32>("a/b", &json!(other_key))
                .unwrap_err()
                .to_string();
            assert!(e.contains("canonical decimal form"), "{other_key}: {e}");
        }
        assert!(publisher_id::<i32>("a/b", &json!("seven")).is_err());
        let e = publisher_id::<i32>("a/b", &json!("9999999999")).unwrap_err();
        assert!(e.to_string().contains("i32"), "{e}");
    }
}
