//! The errors promiscuous reports to an application's `error_notifier`, the error type of the
//! application's callbacks ([`BoxError`]) and a printer for an error with its sources
//! ([`Report`]).
//!
//! Convention: every error's `Display` says what failed, with its context (the queue, the
//! instance key, the server), and never repeats the text of the error that caused it: that one
//! is its [`std::error::Error::source`]. To show the whole story in one line (logs, dead
//! letters), print [`Report`]: the error, then each source, `: `-separated, which reads as the
//! messages always did (`publisher error: publishing 3 outbox rows (they stay in the outbox):
//! broker unavailable: ...`). [`log_errors`] logs that.

use std::sync::Arc;
use std::time::Duration;

use crate::message::DecodeError;
use crate::subscriber::{ApplyError, Stats};
use crate::transport::TransportError;

pub use crate::cause::{BoxError, Report, Source, redact_url, source};

/// The broad kind of an [`Error`], for callers that only tell categories apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A connection to a broker, Redis or a database was lost or could not be made.
    Connection,
    /// promiscuous' tables could not be created.
    Setup,
    /// The publisher pipeline (outbox relay) could not publish; rows stay in the outbox.
    Publisher,
    /// A subscriber could not apply a message, was configured wrongly, or stopped.
    Subscriber,
    /// Recovery mode skipped a dependency that never arrived.
    Recover,
}

/// An error reported to the application: what failed, with its context as fields and the
/// underlying error as its [`source`](std::error::Error::source).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A Redis command failed (connection refused, lost, timed out, or an error reply).
    #[error("connection error: redis {command}")]
    Redis { command: String, source: Source },
    /// A Redis command failed because the TLS handshake with `server` (redacted URL) failed.
    #[error("connection error: redis {command}: TLS handshake with {server} failed: {reason}")]
    RedisTls {
        command: String,
        server: String,
        /// Why, in plain words ("the server's certificate is not signed by a trusted CA").
        reason: String,
        source: Source,
    },
    /// The Redis URL `server` (redacted) does not parse.
    #[error("connection error: redis URL {server:?}")]
    RedisUrl { server: String, source: Source },
    /// The Redis client for `server` (redacted URL) could not be made (e.g. its TLS CA file).
    #[error("connection error: redis {server}")]
    RedisClient { server: String, source: Source },
    /// The subscriber's queue could not be declared with its bindings.
    #[error("connection error: declaring queue {queue}")]
    DeclareQueue {
        queue: String,
        source: TransportError,
    },
    /// The subscriber could not start consuming its queue.
    #[error("connection error: consuming queue {queue}")]
    ConsumeQueue {
        queue: String,
        source: TransportError,
    },
    /// The consumer of `queue` failed; `reconnecting` when the subscriber consumes again.
    #[error("connection error: queue {queue}{}", if *.reconnecting { " (reconnecting)" } else { "" })]
    ConsumerLost {
        queue: String,
        reconnecting: bool,
        source: TransportError,
    },
    /// A delivery could not be acked (or nacked, when `requeue`); it is redelivered and skipped.
    #[error("connection error: {} on queue {queue}", if *.requeue { "nack" } else { "ack" })]
    Settle {
        queue: String,
        requeue: bool,
        source: TransportError,
    },
    /// The subscription to the shared version store's wake-ups ended; it is made again.
    #[error(
        "connection error: queue {queue}: wake-ups from the shared version store were \
         interrupted; subscribing again"
    )]
    WakeUpsInterrupted { queue: String },
    /// A database request failed (`doing` says which).
    #[error("connection error: {doing}")]
    Database { doing: &'static str, source: Source },
    /// promiscuous' tables (`side`: "publisher" or "subscriber") could not be created.
    #[error("setup error: creating the {side} tables")]
    Tables { side: &'static str, source: Source },
    /// The relay could not read the outbox.
    #[error("publisher error: reading the outbox")]
    ReadOutbox { source: Source },
    /// The relay could not take or hold the fencing token `fence` of its lease in the outbox.
    #[error("publisher error: fencing token {fence:?} in the outbox")]
    Fence { fence: String, source: Source },
    /// The relay could not publish the outbox rows `ids`; they stay in the outbox.
    #[error("publisher error: publishing {} outbox rows (they stay in the outbox)", .ids.len())]
    Publish {
        ids: Vec<i64>,
        source: TransportError,
    },
    /// The relay could not remove the published rows `ids`; they will be published again.
    #[error(
        "publisher error: removing {} confirmed rows from the outbox (they will be published \
         again)",
        .ids.len()
    )]
    RemoveOutbox { ids: Vec<i64>, source: Source },
    /// The write guard could not be installed on published table `table`.
    #[error("publisher error: installing the write guard on published table {table}")]
    Guard { table: String, source: Source },
    /// A relay setting was refused: `setting` is 0, and the relay cannot run with it.
    #[error("publisher error: relay setting {setting} must be more than 0")]
    RelaySetting { setting: &'static str },
    /// The relay task panicked or was cancelled.
    #[error("publisher error: the relay task failed")]
    RelayTask { source: Arc<tokio::task::JoinError> },
    /// A message could not be applied: it was stored as a dead letter.
    #[error(
        "subscriber error: queue {queue} (routing key {routing_key}): dead-lettered after \
         {attempts} attempt(s)"
    )]
    DeadLettered {
        queue: String,
        routing_key: String,
        attempts: u32,
        source: Box<Unapplied>,
    },
    /// A dead letter could not be stored; the message is requeued.
    #[error(
        "subscriber error: queue {queue}: could not store a dead letter; the message is requeued"
    )]
    StoreDeadLetter { queue: String, source: Source },
    /// The applied versions of waiting messages' dependencies could not be read.
    #[error("subscriber error: queue {queue}: looking up applied versions in the database")]
    VersionLookup { queue: String, source: Source },
    /// The subscriber `app` was built without any model or observer.
    #[error(
        "subscriber error: subscriber {app} follows nothing: call .subscribe::<Model>() or \
         .observe::<Observer>() first"
    )]
    FollowsNothing { app: String },
    /// A setting of subscriber `app` was refused: `setting` is `value`, which breaks `rule`.
    #[error("subscriber error: subscriber {app}: {setting} ({value}) {rule}")]
    Setting {
        app: String,
        setting: &'static str,
        value: u64,
        rule: &'static str,
    },
    /// The subscriber stopped while something waited for it.
    #[error("subscriber error: the subscriber stopped")]
    Stopped,
    /// The subscriber did not reach the awaited state within `waited`.
    #[error(
        "subscriber error: timed out after {waited:?} waiting for the subscriber (stats: {stats:?})"
    )]
    Timeout { waited: Duration, stats: Box<Stats> },
    /// The subscriber's task panicked or was cancelled.
    #[error("subscriber error: subscriber task failed")]
    SubscriberTask { source: Arc<tokio::task::JoinError> },
    /// A runner applying messages of `queue` panicked.
    #[error("subscriber error: queue {queue}: a runner panicked")]
    RunnerPanicked {
        queue: String,
        source: Arc<tokio::task::JoinError>,
    },
    /// Recovery mode applied message `message_id` without the dependencies `missing`
    /// (instance key, version), which were not processed within `waited`.
    #[error(
        "recover error: queue {queue}: message {message_id} is applied without {} (not processed \
         within {waited:?}; recovery)",
        missing_list(.missing)
    )]
    Recovered {
        queue: String,
        message_id: String,
        missing: Vec<(String, u64)>,
        waited: Duration,
    },
}

fn missing_list(missing: &[(String, u64)]) -> String {
    let each: Vec<String> = missing.iter().map(|(k, v)| format!("{k} v{v}")).collect();
    each.join(", ")
}

impl Error {
    /// The broad kind of this error.
    pub fn kind(&self) -> ErrorKind {
        use Error::*;
        match self {
            Redis { .. }
            | RedisTls { .. }
            | RedisUrl { .. }
            | RedisClient { .. }
            | DeclareQueue { .. }
            | ConsumeQueue { .. }
            | ConsumerLost { .. }
            | Settle { .. }
            | WakeUpsInterrupted { .. }
            | Database { .. } => ErrorKind::Connection,
            Tables { .. } => ErrorKind::Setup,
            ReadOutbox { .. }
            | Fence { .. }
            | Publish { .. }
            | RemoveOutbox { .. }
            | Guard { .. }
            | RelaySetting { .. }
            | RelayTask { .. } => ErrorKind::Publisher,
            DeadLettered { .. }
            | StoreDeadLetter { .. }
            | VersionLookup { .. }
            | FollowsNothing { .. }
            | Setting { .. }
            | Stopped
            | Timeout { .. }
            | SubscriberTask { .. }
            | RunnerPanicked { .. } => ErrorKind::Subscriber,
            Recovered { .. } => ErrorKind::Recover,
        }
    }

    /// This error with its sources, for one line of text (see [`Report`]).
    pub fn report(&self) -> Report<'_> {
        Report(self)
    }
}

/// Why a message was dead-lettered: it did not decode, or applying it failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Unapplied {
    /// The payload is not a valid message.
    #[error(transparent)]
    Undecodable(DecodeError),
    /// The message decoded but could not be applied.
    #[error("message {message_id}")]
    Apply {
        message_id: String,
        source: ApplyError,
    },
}

/// Receives every [`Error`] the pipeline reports; set one per publisher or subscriber.
pub type ErrorNotifier = Arc<dyn Fn(&Error) + Send + Sync>;

/// The default notifier: logs through `tracing`, with the error's sources.
pub fn log_errors() -> ErrorNotifier {
    Arc::new(|e: &Error| tracing::error!(error = %e.report(), "promiscuous"))
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;
    use std::sync::Arc;

    use super::{Error, ErrorKind, Unapplied, redact_url, source};
    use crate::message::OperationKind;
    use crate::subscriber::{ApplyError, At, Failed};
    use crate::transport::TransportError;

    fn callback_failure() -> ApplyError {
        ApplyError::Transient(Failed::Callback {
            at: At {
                operation: OperationKind::Create,
                key: "crowdtap/user/10".into(),
                version: 3,
            },
            callback: "after_create",
            follower: "the model following",
            endpoint: "crowdtap/user",
            source: source("refusing Boba"),
        })
    }

    #[test]
    fn display_has_the_context_and_the_source_is_reachable() {
        let e = Error::Tables {
            side: "subscriber",
            source: source("disk full"),
        };
        assert_eq!(e.to_string(), "setup error: creating the subscriber tables");
        assert_eq!(e.source().unwrap().to_string(), "disk full");
        assert_eq!(e.kind(), ErrorKind::Setup);
        assert_eq!(
            e.report().to_string(),
            "setup error: creating the subscriber tables: disk full"
        );
    }

    #[test]
    fn a_dead_letter_names_its_queue_message_and_cause() {
        let e = Error::DeadLettered {
            queue: "members".into(),
            routing_key: "crowdtap".into(),
            attempts: 2,
            source: Box::new(Unapplied::Apply {
                message_id: "m-1".into(),
                source: callback_failure(),
            }),
        };
        assert_eq!(e.kind(), ErrorKind::Subscriber);
        let text = e.to_string();
        assert!(
            text.contains("queue members") && text.contains("after 2 attempt(s)"),
            "{text}"
        );
        assert!(
            !text.contains("refusing Boba"),
            "the source is not repeated: {text}"
        );
        let cause = e.source().unwrap();
        assert_eq!(cause.to_string(), "message m-1");
        let apply = cause.source().unwrap();
        assert_eq!(
            apply.to_string(),
            "create crowdtap/user/10 v3: callback after_create of the model following \
             crowdtap/user failed"
        );
        assert_eq!(apply.source().unwrap().to_string(), "refusing Boba");
        assert!(
            e.report().to_string().ends_with(
                "message m-1: create crowdtap/user/10 v3: callback after_create of the model \
                 following crowdtap/user failed: refusing Boba"
            ),
            "{}",
            e.report()
        );
    }

    #[test]
    fn transport_errors_are_kept_typed() {
        let e = Error::Publish {
            ids: vec![1, 2, 3],
            source: TransportError::Closed,
        };
        assert_eq!(e.kind(), ErrorKind::Publisher);
        assert!(
            e.to_string()
                .contains("publishing 3 outbox rows (they stay in the outbox)")
        );
        let transport = e.source().unwrap().downcast_ref::<TransportError>();
        assert!(matches!(transport, Some(TransportError::Closed)));
    }

    #[test]
    fn errors_are_clone_send_and_sync() {
        fn check<T: Clone + Send + Sync + 'static>() {}
        check::<Error>();
        check::<ApplyError>();
        let e = Error::Redis {
            command: "PING".into(),
            source: Arc::new(std::io::Error::other("refused")),
        };
        let copy = e.clone();
        assert_eq!(
            copy.report().to_string(),
            "connection error: redis PING: refused"
        );
    }

    #[test]
    fn recovery_lists_what_it_skipped() {
        let e = Error::Recovered {
            queue: "members".into(),
            message_id: "m-2".into(),
            missing: vec![("crowdtap/user/5".into(), 1), ("crowdtap/user/6".into(), 4)],
            waited: std::time::Duration::from_millis(200),
        };
        assert_eq!(e.kind(), ErrorKind::Recover);
        assert!(
            e.to_string().contains(
                "without crowdtap/user/5 v1, crowdtap/user/6 v4 (not processed within 200ms"
            ),
            "{e}"
        );
    }

    #[test]
    fn urls_lose_their_password() {
        assert_eq!(
            redact_url("amqp://guest:secret@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(
            redact_url("redis://:secret@127.0.0.1:6379/"),
            "redis://:***@127.0.0.1:6379/"
        );
        assert_eq!(redact_url("amqp://127.0.0.1/%2f"), "amqp://127.0.0.1/%2f");
        assert_eq!(redact_url("amqp://user@host/"), "amqp://user@host/");
        assert_eq!(redact_url("not a url"), "not a url");
        assert_eq!(
            redact_url("amqp://u:pa/ss@word@host/%2f"),
            "amqp://u:***@host/%2f"
        );
        assert_eq!(redact_url("amqp:user:secret@host"), "***@host");
    }
}
