//! The application's own subcommands, next to promiscuous' ([`Cli::commands`](crate::Cli::commands)).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use promiscuous_core::BoxError;

use crate::env::Connections;

/// No application commands: the command line has promiscuous' only (the default of
/// [`Cli`](crate::Cli)).
#[derive(clap::Subcommand, Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoCommands {}

/// What an application command gets besides its own arguments: the global options, as given
/// on the command line or by their environment variables.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Globals {
    /// `--database-url` (`DATABASE_URL`).
    pub database_url: Option<String>,
    /// `--amqp-url` (`PROMISCUOUS_AMQP_URL`).
    pub amqp_url: Option<String>,
    /// `--redis-url` (`PROMISCUOUS_REDIS_URL`).
    pub redis_url: Option<String>,
    /// `--tls-ca` (`PROMISCUOUS_TLS_CA`).
    pub tls_ca: Option<PathBuf>,
    /// The subscriber app: `--app`, else the name given to [`Cli::new`](crate::Cli::new).
    pub app: String,
}

impl Globals {
    pub(crate) fn new(connections: &Connections, app: &str) -> Self {
        Self {
            database_url: connections.database_url.clone(),
            amqp_url: connections.amqp_url.clone(),
            redis_url: connections.redis_url.clone(),
            tls_ca: connections.tls_ca.clone(),
            app: connections.app.clone().unwrap_or_else(|| app.to_string()),
        }
    }

    /// `--database-url`, or an error saying how to give it.
    pub fn require_database_url(&self) -> Result<&str, BoxError> {
        self.database_url.as_deref().ok_or_else(|| {
            "this command needs a database: pass --database-url or set DATABASE_URL".into()
        })
    }
}

pub(crate) type Outcome = Pin<Box<dyn Future<Output = Result<String, BoxError>> + Send>>;

/// Runs an application command: what it returns is printed (captured by `run_with`).
pub(crate) type Handler<A> = Arc<dyn Fn(A, Globals) -> Outcome + Send + Sync>;
