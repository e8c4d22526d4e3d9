//! The errors promiscuous reports to an application's `error_notifier`.

use std::sync::Arc;

/// An error reported to the application, by kind, always with its context.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// A connection to a broker, Redis or a database was lost or could not be made.
    #[error("connection error: {0}")]
    Connection(String),
    /// The publisher pipeline (outbox relay) could not publish; rows stay in the outbox.
    #[error("publisher error: {0}")]
    Publisher(String),
    /// A message could not be applied by a subscriber; it was retried or dead-lettered.
    #[error("subscriber error: {0}")]
    Subscriber(String),
    /// Recovery mode skipped a dependency that never arrived.
    #[error("recover error: {0}")]
    Recover(String),
}

/// Receives every [`Error`] the pipeline reports; set one per publisher or subscriber.
pub type ErrorNotifier = Arc<dyn Fn(&Error) + Send + Sync>;

/// The default notifier: logs through `tracing`.
pub fn log_errors() -> ErrorNotifier {
    Arc::new(|e: &Error| tracing::error!(error = %e, "promiscuous"))
}
