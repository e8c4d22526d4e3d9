//! Core of promiscuous: the wire [`message`] model, the [`publisher`] pipeline (outbox → relay →
//! transport), the [`subscriber`] runtime (transport → decode → apply → ack) and the
//! [`transport`]s they share. Database glue lives in `promiscuous-sea-orm`; users normally depend
//! on the `promiscuous` facade crate.

pub mod board;
mod cause;
pub mod error;
pub mod message;
pub mod publisher;
pub mod redis;
pub mod subscriber;
mod tls;
pub mod transport;

pub use error::{BoxError, Error, ErrorKind, ErrorNotifier, Report};
pub use message::{
    Change, DecodeError, Dependencies, Dependency, Message, Operation, OperationKind,
};

/// Milliseconds since the Unix epoch, as carried in [`Message::timestamp`].
pub fn now_ms() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
