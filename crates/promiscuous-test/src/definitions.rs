//! A publisher's exported definitions (`promiscuous mocks -o FILE`, or
//! `promiscuous::definitions::export`), read back: what mock publishers may send
//! ([`crate::DefinedPublisher`]), what factories fill ([`crate::Factory`]), and what a
//! subscriber may follow ([`validate_subscriber`], [`validate_observer`]).
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use promiscuous_test::Definitions;
//! let definitions = Definitions::load("tests/crowdtap.json")?;
//! assert!(definitions.endpoint("crowdtap/user").is_some());
//! # Ok(()) }
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use promiscuous_sea_orm::publisher::definitions::{DEFINITIONS_VERSION, export};
use promiscuous_sea_orm::{Observed, Subscribed, Subscription};
use serde_json::Value;

/// Why a definitions file could not be read.
#[derive(Debug)]
pub enum DefinitionsError {
    /// The file could not be read.
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The file is not JSON.
    Json {
        path: Option<PathBuf>,
        error: serde_json::Error,
    },
    /// The file is JSON but not definitions of the format version this kit reads.
    Format {
        path: Option<PathBuf>,
        problem: String,
    },
}

impl fmt::Display for DefinitionsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |p: &Option<PathBuf>| match p {
            Some(p) => format!(" {}", p.display()),
            None => String::new(),
        };
        match self {
            DefinitionsError::Read { path, error } => write!(
                f,
                "cannot read publisher definitions {}: {error}",
                path.display()
            ),
            DefinitionsError::Json { path, error } => write!(
                f,
                "publisher definitions{} are not valid JSON: {error}",
                shown(path)
            ),
            DefinitionsError::Format { path, problem } => write!(
                f,
                "publisher definitions{} cannot be used: {problem} (export them again with \
                 `promiscuous mocks -o FILE`)",
                shown(path)
            ),
        }
    }
}

impl std::error::Error for DefinitionsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DefinitionsError::Read { error, .. } => Some(error),
            DefinitionsError::Json { error, .. } => Some(error),
            DefinitionsError::Format { .. } => None,
        }
    }
}

/// One attribute an endpoint publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeDefinition {
    pub name: String,
    /// Its Rust type on the publisher's model, as written (`String`, `Option<i32>`); empty for
    /// a virtual attribute (a method).
    pub rust_type: String,
}

/// One published type of an endpoint: its type chain and attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointDefinition {
    /// `"app/model"`.
    pub endpoint: String,
    /// The type chain, most specific first.
    pub types: Vec<String>,
    /// Published, never stored by the publisher: only creates are sent.
    pub ephemeral: bool,
    pub attributes: Vec<AttributeDefinition>,
}

impl EndpointDefinition {
    /// The publisher app: the endpoint's first segment (the routing key).
    pub fn app(&self) -> &str {
        promiscuous_protocol::endpoint::app(&self.endpoint)
    }

    /// The type sent first in the chain (`as`).
    pub fn type_name(&self) -> &str {
        self.types.first().map(String::as_str).unwrap_or_default()
    }

    pub fn attribute(&self, name: &str) -> Option<&AttributeDefinition> {
        self.attributes.iter().find(|a| a.name == name)
    }

    pub fn attribute_names(&self) -> Vec<&str> {
        self.attributes.iter().map(|a| a.name.as_str()).collect()
    }
}

/// The endpoints a publisher publishes, as it exported them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Definitions {
    /// One entry per (endpoint, type chain): a polymorphic endpoint has several.
    pub endpoints: Vec<EndpointDefinition>,
}

impl Definitions {
    /// Reads an exported definitions file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, DefinitionsError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|error| DefinitionsError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Self::parse(&text, Some(path))
    }

    /// Parses exported definitions.
    pub fn from_json(text: &str) -> Result<Self, DefinitionsError> {
        Self::parse(text, None)
    }

    /// What this program publishes (of app `app` only, if given): the definitions
    /// `promiscuous::definitions::export` would write.
    pub fn exported(app: Option<&str>) -> Self {
        Self::from_value(&export(app), None).expect("export writes valid definitions")
    }

    fn parse(text: &str, path: Option<&Path>) -> Result<Self, DefinitionsError> {
        let value: Value = serde_json::from_str(text).map_err(|error| DefinitionsError::Json {
            path: path.map(Path::to_path_buf),
            error,
        })?;
        Self::from_value(&value, path)
    }

    fn from_value(value: &Value, path: Option<&Path>) -> Result<Self, DefinitionsError> {
        let format = |problem: String| DefinitionsError::Format {
            path: path.map(Path::to_path_buf),
            problem,
        };
        let version = value.get("promiscuous_definitions").and_then(Value::as_u64);
        if version != Some(DEFINITIONS_VERSION) {
            let found = version.map_or_else(|| "missing".to_string(), |v| v.to_string());
            return Err(format(format!(
                "`promiscuous_definitions` (the format version) is {found}, expected \
                 {DEFINITIONS_VERSION}"
            )));
        }
        let Some(list) = value.get("endpoints").and_then(Value::as_array) else {
            return Err(format("no `endpoints` list".into()));
        };
        let mut endpoints = Vec::new();
        for (n, e) in list.iter().enumerate() {
            let text = |key: &str| e.get(key).and_then(Value::as_str).map(str::to_string);
            let Some(endpoint) = text("endpoint") else {
                return Err(format(format!("endpoint #{n} has no `endpoint` string")));
            };
            let types: Vec<String> = match e.get("types").and_then(Value::as_array) {
                Some(t) => t
                    .iter()
                    .map(|t| t.as_str().map(str::to_string))
                    .collect::<Option<_>>()
                    .ok_or_else(|| format(format!("{endpoint:?}: `types` must be strings")))?,
                None => return Err(format(format!("{endpoint:?} has no `types` list"))),
            };
            if types.is_empty() {
                return Err(format(format!("{endpoint:?} has an empty `types` list")));
            }
            let Some(attrs) = e.get("attributes").and_then(Value::as_array) else {
                return Err(format(format!("{endpoint:?} has no `attributes` list")));
            };
            let attributes = attrs
                .iter()
                .map(|a| match a {
                    Value::String(name) => Some(AttributeDefinition {
                        name: name.clone(),
                        rust_type: String::new(),
                    }),
                    Value::Object(o) => Some(AttributeDefinition {
                        name: o.get("name")?.as_str()?.to_string(),
                        rust_type: o
                            .get("type")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                    }),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    format(format!(
                        "{endpoint:?}: each attribute must be {{\"name\": .., \"type\": ..}}"
                    ))
                })?;
            endpoints.push(EndpointDefinition {
                ephemeral: e.get("ephemeral").and_then(Value::as_bool).unwrap_or(false),
                endpoint,
                types,
                attributes,
            });
        }
        Ok(Self { endpoints })
    }

    /// The entries of `endpoint` (one per published type chain).
    pub fn entries(&self, endpoint: &str) -> Vec<&EndpointDefinition> {
        self.endpoints
            .iter()
            .filter(|e| e.endpoint == endpoint)
            .collect()
    }

    /// The entry of `endpoint`: its only one, or for a polymorphic endpoint its base type (the
    /// shortest type chain).
    pub fn endpoint(&self, endpoint: &str) -> Option<&EndpointDefinition> {
        self.entries(endpoint)
            .into_iter()
            .min_by_key(|e| e.types.len())
    }

    /// The entry of `endpoint` whose type chain starts with `type_name`.
    pub fn endpoint_as(&self, endpoint: &str, type_name: &str) -> Option<&EndpointDefinition> {
        self.entries(endpoint)
            .into_iter()
            .find(|e| e.type_name() == type_name)
    }

    /// Every endpoint, sorted, once each.
    pub fn endpoint_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.endpoints.iter().map(|e| e.endpoint.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Every publisher app, sorted, once each.
    pub fn apps(&self) -> Vec<&str> {
        let mut apps: Vec<&str> = self.endpoints.iter().map(EndpointDefinition::app).collect();
        apps.sort_unstable();
        apps.dedup();
        apps
    }

    /// The problems of `subscriptions` against these definitions: an endpoint not published, a
    /// type (`as`) not published to it, an attribute not published with it.
    pub fn check(&self, subscriptions: &[Subscription]) -> Vec<String> {
        let mut problems = Vec::new();
        for s in subscriptions {
            let on_endpoint = self.entries(s.from);
            if on_endpoint.is_empty() {
                problems.push(format!(
                    "{:?} is not published (published: {})",
                    s.from,
                    self.endpoint_names().join(", ")
                ));
                continue;
            }
            let matching: Vec<&EndpointDefinition> = match s.as_type {
                None => on_endpoint.clone(),
                Some(t) => on_endpoint
                    .iter()
                    .copied()
                    .filter(|e| e.types.iter().any(|x| x == t))
                    .collect(),
            };
            if matching.is_empty() {
                let mut types: Vec<&str> = on_endpoint
                    .iter()
                    .flat_map(|e| e.types.iter().map(String::as_str))
                    .collect();
                types.sort_unstable();
                types.dedup();
                problems.push(format!(
                    "no type {:?} is published to {:?} (types: {})",
                    s.as_type.unwrap_or_default(),
                    s.from,
                    types.join(", ")
                ));
                continue;
            }
            for a in s.attributes {
                if !matching.iter().any(|e| e.attribute(a).is_some()) {
                    let mut published: Vec<&str> =
                        matching.iter().flat_map(|e| e.attribute_names()).collect();
                    published.sort_unstable();
                    published.dedup();
                    let to = match s.as_type {
                        Some(t) => format!("{:?} as {t:?}", s.from),
                        None => format!("{:?}", s.from),
                    };
                    problems.push(format!(
                        "attribute `{a}` is not published to {to} (published: {})",
                        published.join(", ")
                    ));
                }
            }
        }
        problems
    }
}

fn result(problems: Vec<String>) -> Result<(), Vec<String>> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Checks that everything subscribed model `M` follows is published according to
/// `definitions`: each subscription's endpoint, `as` type and attributes. The runtime twin of
/// `#[subscribe(..., definitions = "FILE")]`, for subscribers that do not use it.
pub fn validate_subscriber<M: Subscribed>(definitions: &Definitions) -> Result<(), Vec<String>> {
    result(definitions.check(M::SUBSCRIPTIONS))
}

/// [`validate_subscriber`] for an observer.
pub fn validate_observer<O: Observed>(definitions: &Definitions) -> Result<(), Vec<String>> {
    result(definitions.check(O::SUBSCRIPTIONS))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const CROWDTAP: &str = r#"{
        "promiscuous_definitions": 1,
        "endpoints": [
            {"endpoint": "crowdtap/page_view", "types": ["PageView"], "ephemeral": true,
             "attributes": [{"name": "page", "type": "String"}]},
            {"endpoint": "crowdtap/user", "types": ["Admin", "User"], "ephemeral": false,
             "attributes": [{"name": "name", "type": "String"}, {"name": "level", "type": "i32"}]},
            {"endpoint": "crowdtap/user", "types": ["User"], "ephemeral": false,
             "attributes": [{"name": "name", "type": "String"}, {"name": "email", "type": "String"},
                            {"name": "full_name", "type": ""}]}
        ]
    }"#;

    fn crowdtap() -> Definitions {
        Definitions::from_json(CROWDTAP).unwrap()
    }

    #[test]
    fn reads_endpoints_types_and_attributes() {
        let d = crowdtap();
        assert_eq!(d.endpoint_names(), ["crowdtap/page_view", "crowdtap/user"]);
        assert_eq!(d.apps(), ["crowdtap"]);
        assert_eq!(d.endpoint("crowdtap/user").unwrap().types, ["User"]);
        assert_eq!(
            d.endpoint_as("crowdtap/user", "Admin").unwrap().types,
            ["Admin", "User"]
        );
        assert!(d.endpoint_as("crowdtap/user", "User").is_some());
        assert!(d.endpoint_as("crowdtap/user", "Moderator").is_none());
        assert!(d.endpoint("crowdtap/page_view").unwrap().ephemeral);
        let user = d.endpoint("crowdtap/user").unwrap();
        assert_eq!(user.attribute("full_name").unwrap().rust_type, "");
        assert_eq!(user.attribute_names(), ["name", "email", "full_name"]);
    }

    #[test]
    fn load_reports_a_missing_file_bad_json_and_a_wrong_version() {
        let missing = Definitions::load("/nonexistent/crowdtap.json").unwrap_err();
        assert!(matches!(missing, DefinitionsError::Read { .. }));
        assert!(
            missing
                .to_string()
                .starts_with("cannot read publisher definitions /nonexistent/crowdtap.json"),
            "{missing}"
        );

        let json = Definitions::from_json("{\"endpoints\": [").unwrap_err();
        assert!(matches!(json, DefinitionsError::Json { .. }));
        assert!(json.to_string().contains("not valid JSON"), "{json}");

        let version = Definitions::from_json(r#"{"promiscuous_definitions": 2, "endpoints": []}"#)
            .unwrap_err();
        assert_eq!(
            version.to_string(),
            "publisher definitions cannot be used: `promiscuous_definitions` (the format \
             version) is 2, expected 1 (export them again with `promiscuous mocks -o FILE`)"
        );
        let unversioned = Definitions::from_json(r#"{"endpoints": []}"#).unwrap_err();
        assert!(
            unversioned.to_string().contains("is missing"),
            "{unversioned}"
        );

        let no_types = Definitions::from_json(
            r#"{"promiscuous_definitions": 1, "endpoints": [{"endpoint": "a/b", "attributes": []}]}"#,
        )
        .unwrap_err();
        assert!(
            no_types.to_string().contains("\"a/b\" has no `types` list"),
            "{no_types}"
        );
    }

    #[test]
    fn load_reads_a_file() {
        let path = std::env::temp_dir().join(format!(
            "promiscuous-test-definitions-{}.json",
            std::process::id()
        ));
        std::fs::write(&path, CROWDTAP).unwrap();
        let loaded = Definitions::load(&path);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(loaded.unwrap(), crowdtap());
    }

    #[test]
    fn check_reports_every_unpublished_endpoint_type_and_attribute() {
        let d = crowdtap();
        let ok = [
            Subscription {
                from: "crowdtap/user",
                as_type: None,
                attributes: &["name", "email", "level"],
            },
            Subscription {
                from: "crowdtap/user",
                as_type: Some("Admin"),
                attributes: &["level"],
            },
        ];
        assert!(d.check(&ok).is_empty());
        let bad = [
            Subscription {
                from: "crowdtap/member",
                as_type: None,
                attributes: &["name"],
            },
            Subscription {
                from: "crowdtap/user",
                as_type: Some("Moderator"),
                attributes: &["name"],
            },
            Subscription {
                from: "crowdtap/user",
                as_type: Some("Admin"),
                attributes: &["name", "email", "password"],
            },
        ];
        assert_eq!(
            d.check(&bad),
            [
                "\"crowdtap/member\" is not published (published: crowdtap/page_view, \
                 crowdtap/user)",
                "no type \"Moderator\" is published to \"crowdtap/user\" (types: Admin, User)",
                "attribute `email` is not published to \"crowdtap/user\" as \"Admin\" \
                 (published: level, name)",
                "attribute `password` is not published to \"crowdtap/user\" as \"Admin\" \
                 (published: level, name)",
            ]
        );
    }
}
