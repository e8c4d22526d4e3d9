//! The test kit's error type: what a mock publisher built from definitions (and the factories
//! it fills from) refuses to send, or could not send. Its own module so that [`crate::mock`]
//! and [`crate::factory`] both use it without importing each other.

use std::fmt;

use promiscuous_core::OperationKind;
use promiscuous_core::transport::TransportError;
use serde_json::Value;

/// What a mock publisher built from definitions refuses to send, or could not send.
#[derive(Debug, Clone, PartialEq)]
pub enum MockError {
    /// The definitions publish nothing of this app.
    UnknownApp { app: String, apps: Vec<String> },
    /// The endpoint is not in the definitions.
    UnknownEndpoint {
        endpoint: String,
        published: Vec<String>,
    },
    /// The endpoint belongs to another publisher app than the mock's.
    OtherApp { endpoint: String, app: String },
    /// No type chain of the endpoint starts with this type.
    UnknownType {
        endpoint: String,
        type_name: String,
        types: Vec<String>,
    },
    /// The attribute is not published with this endpoint and type.
    UnknownAttribute {
        endpoint: String,
        type_name: String,
        attribute: String,
        published: Vec<String>,
    },
    /// Ephemerals are only ever created.
    Ephemeral {
        endpoint: String,
        operation: OperationKind,
    },
    /// Attributes (overrides) must be a JSON object.
    NotAnObject(Value),
    /// The transport refused the message.
    Transport(TransportError),
}

impl fmt::Display for MockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MockError::UnknownApp { app, apps } => write!(
                f,
                "the publisher's definitions publish no endpoint of app {app:?} (apps: {})",
                apps.join(", ")
            ),
            MockError::UnknownEndpoint {
                endpoint,
                published,
            } => write!(
                f,
                "{endpoint:?} is not in the publisher's definitions (published: {})",
                published.join(", ")
            ),
            MockError::OtherApp { endpoint, app } => write!(
                f,
                "{endpoint:?} is not an endpoint of this mock publisher's app {app:?}: make a \
                 mock of its own app for it"
            ),
            MockError::UnknownType {
                endpoint,
                type_name,
                types,
            } => write!(
                f,
                "no type {type_name:?} is published to {endpoint:?} (types: {})",
                types.join(", ")
            ),
            MockError::UnknownAttribute {
                endpoint,
                type_name,
                attribute,
                published,
            } => write!(
                f,
                "attribute `{attribute}` is not published to {endpoint:?} as {type_name:?} \
                 (published: {})",
                published.join(", ")
            ),
            MockError::Ephemeral {
                endpoint,
                operation,
            } => write!(
                f,
                "{endpoint:?} is an ephemeral, only ever created: it cannot be sent {}",
                match operation {
                    OperationKind::Create => "a create",
                    OperationKind::Update => "an update",
                    OperationKind::Destroy => "a destroy",
                }
            ),
            MockError::NotAnObject(value) => write!(
                f,
                "attributes must be a JSON object (or null), found {value}"
            ),
            MockError::Transport(e) => write!(f, "the mock publisher could not send: {e}"),
        }
    }
}

impl std::error::Error for MockError {}

impl From<TransportError> for MockError {
    fn from(e: TransportError) -> Self {
        MockError::Transport(e)
    }
}
