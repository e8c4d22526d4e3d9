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

/// `url` without its password (`amqp://user:***@host/`), for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        // Not a URL this can parse (`amqp:user:pw@host`): hide all before the host.
        return match url.rfind('@') {
            Some(at) => format!("***{}", &url[at..]),
            None => url.to_string(),
        };
    };
    let rest = &url[scheme_end..];
    // The last '@': a password may hold an unescaped '/' or '@'.
    let Some(at) = rest.rfind('@') else {
        return url.to_string();
    };
    match rest[..at].find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end],
            &rest[..colon],
            &rest[at..]
        ),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

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
