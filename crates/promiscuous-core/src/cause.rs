//! The underlying errors, below every module that reports one: the boxed error type of the
//! application's callbacks and storage traits ([`BoxError`]), a shared source that keeps errors
//! `Clone` ([`Source`]), a printer for an error with its sources ([`Report`]) and URLs without
//! their password ([`redact_url`]). A leaf: it uses nothing of this crate, so the transports and
//! the [`error`](crate::error) module (which names their errors) can both use it.

use std::fmt;
use std::sync::Arc;

/// The error type of the application's callbacks and of the storage traits they implement
/// (outbox, applier lookups): any error, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An underlying error kept as a source: shared, so that errors stay `Clone` (notifiers
/// receive them by reference, collectors keep copies).
pub type Source = Arc<dyn std::error::Error + Send + Sync>;

/// `error` as a [`Source`].
pub fn source(error: impl Into<BoxError>) -> Source {
    Arc::from(error.into())
}

/// Prints an error then each of its sources, `: `-separated: the whole story in one line.
pub struct Report<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(e) = next {
            write!(f, ": {e}")?;
            next = e.source();
        }
        Ok(())
    }
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
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
