//! The database glue a subscriber applies messages through: the [`Applier`] trait, what
//! applying came to ([`Applied`], [`ApplyError`]) and the [`DeadLetter`] it stores. A leaf: uses
//! only the message model and the boxed error type.

use async_trait::async_trait;

use crate::cause::{BoxError, Source};
use crate::message::{Message, Operation, OperationKind};

/// Why a message could not be applied: permanently (retrying cannot help, it goes to the
/// dead-letter store at once) or transiently (it is retried). Its `Display` is the one of the
/// inner error, which names the operation; the underlying error is the source.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// The message itself is wrong (missing or mistyped attribute, ...): dead-lettered at once.
    #[error(transparent)]
    Permanent(Rejected),
    /// The database or a callback failed: the message is retried.
    #[error(transparent)]
    Transient(Failed),
}

impl ApplyError {
    /// A permanent failure of an applier of the application's own, for `error`.
    pub fn permanent(error: impl Into<BoxError>) -> Self {
        Self::Permanent(Rejected::Other(crate::cause::source(error)))
    }

    /// A transient failure of an applier of the application's own, for `error`.
    pub fn transient(error: impl Into<BoxError>) -> Self {
        Self::Transient(Failed::Other(crate::cause::source(error)))
    }

    /// Whether retrying cannot help.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Permanent(_))
    }
}

/// An operation of a message, as errors name it: `create crowdtap/user/10 v3`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct At {
    pub operation: OperationKind,
    /// The instance key (`endpoint/id`).
    pub key: String,
    pub version: u64,
}

impl At {
    pub fn of(op: &Operation) -> Self {
        Self {
            operation: op.operation,
            key: op.key(),
            version: op.version,
        }
    }
}

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} v{}", self.operation, self.key, self.version)
    }
}

/// Why a message is refused for good.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Rejected {
    /// A create or update without attributes.
    #[error("{at}: no attributes")]
    NoAttributes { at: At },
    /// An attribute is missing or has the wrong type (the source names it).
    #[error("{at}")]
    Attribute { at: At, source: Source },
    /// Any other reason, from an applier of the application's own.
    #[error(transparent)]
    Other(Source),
}

/// Why applying a message failed this time.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Failed {
    /// A database request for the operation `at` failed (`doing` says which).
    #[error("{at}: {doing}")]
    Database {
        at: At,
        doing: &'static str,
        source: Source,
    },
    /// A database request for the whole message (transaction, ignored versions) failed.
    #[error("{doing}")]
    Transaction { doing: &'static str, source: Source },
    /// The application's callback `callback` (`after_create`, ...) of `follower` ("the model
    /// following", "the observer of") for the endpoint `endpoint` failed.
    #[error("{at}: callback {callback} of {follower} {endpoint} failed")]
    Callback {
        at: At,
        callback: &'static str,
        follower: &'static str,
        endpoint: &'static str,
        source: Source,
    },
    /// Any other reason, from an applier of the application's own.
    #[error(transparent)]
    Other(Source),
}

/// What applying a message did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Operations whose effect was written.
    pub applied: usize,
    /// Operations skipped because their version was already applied (duplicates, stale).
    pub skipped: usize,
    /// Operations for endpoints this subscriber does not follow: their version is recorded as
    /// processed (not applied), so that messages depending on them need not wait.
    pub ignored: usize,
}

/// A message that could not be applied, kept with its error for inspection and replay.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub queue: String,
    pub routing_key: String,
    /// The publisher's broker user as the broker validated it (AMQP `user_id`), if any: a
    /// replay checks the message's owner again with it.
    pub user_id: Option<String>,
    pub payload: Vec<u8>,
    pub error: String,
    pub attempts: u32,
    pub at_ms: i64,
    /// The instance key and version of each of the message's operations, when it decoded and
    /// was admitted (empty when it did not: its versions are unknown or not to be trusted). A
    /// dead-lettered version counts as processed: [`Applier::dead_letter`] records them with
    /// the letter, so that what depends on them does not wait, even after a restart.
    pub versions: Vec<(String, u64)>,
}

/// Applies decoded messages to the subscriber's storage.
///
/// Several runners call [`Applier::apply`] concurrently, on messages that write different
/// instances. An implementation must still make each `(instance, version)` take effect at most
/// once even if two processes apply the same message at once (the reference applier claims the
/// version with a conditional write before applying anything).
#[async_trait]
pub trait Applier: Send + Sync + 'static {
    /// Routing keys (publisher applications) the subscriber's queue must be bound to.
    fn bindings(&self) -> Vec<String>;
    /// Applies every operation of `message` atomically, skipping versions already applied, and
    /// records the version of every operation: as applied for those it applies, as processed
    /// (without effect) for ignored ones, on endpoints nobody here follows. Only applied
    /// versions make later operations skip: an ignored version must not stop the instance from
    /// being applied once its endpoint is followed.
    async fn apply(&self, message: &Message) -> Result<Applied, ApplyError>;
    /// Whether [`Applier::apply_batch`] is implemented: only then does a runner take several
    /// ready messages at once (otherwise they are left to the other runners, in parallel).
    fn batches(&self) -> bool {
        false
    }
    /// Applies several messages, which write different instances, in one transaction: all of
    /// them or none. `None` when the applier cannot (the default): the runner applies them one
    /// by one. On an error the runner applies them one by one too (with retries, dead letters),
    /// so callbacks that ran in the failed batch run again (they are at least once).
    async fn apply_batch(&self, messages: &[&Message]) -> Option<Result<Vec<Applied>, ApplyError>> {
        let _ = messages;
        None
    }
    /// The processed version of each instance key (0 when none), as committed in storage: the
    /// greater of its applied version and the version it was processed at without effect
    /// (ignored, dead-lettered). What causal waits compare dependencies with, after a restart
    /// too.
    async fn versions(&self, keys: &[String]) -> Result<Vec<u64>, BoxError>;
    /// Stores a message that could not be applied and, in the same transaction, records
    /// [`DeadLetter::versions`] as processed, never as applied: messages depending on them go
    /// on, and replaying the dead letter later still applies whatever nothing newer replaced.
    /// An error means nothing was stored (the message goes back to the broker).
    async fn dead_letter(&self, letter: DeadLetter) -> Result<(), BoxError>;
}
