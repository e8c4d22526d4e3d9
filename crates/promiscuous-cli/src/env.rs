//! What a command runs with, below the command line's dispatch ([`crate::Cli`]) and above the
//! commands (`subscribe`, `sync`, `mocks`, `status`, `dead_letters`): the models the application
//! registered ([`Registry`]), the connection settings ([`Connections`]), the connections made
//! from them ([`Env`]) and where output goes ([`Out`]).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use indicatif::ProgressBar;
use promiscuous_core::redis::{Redis, RedisConfig};
use promiscuous_core::transport::{QueueType, RabbitMq, RabbitMqConfig, Transport};
use promiscuous_sea_orm::subscriber::SeaOrmApplier;
use promiscuous_sea_orm::{Endpoint, Subscriber};
use sea_orm::DatabaseConnection;

use crate::error::CliError;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Initial sync of one registered model: `(db, filter, batch size, progress)` → rows synced.
type SyncFn = for<'a> fn(
    &'a DatabaseConnection,
    Option<&'a str>,
    u64,
    &'a ProgressBar,
) -> BoxFuture<'a, Result<u64, CliError>>;

/// Counts the rows of one registered model matching a filter.
type CountFn =
    for<'a> fn(&'a DatabaseConnection, Option<&'a str>) -> BoxFuture<'a, Result<u64, CliError>>;

/// A published model registered with [`Cli::publish`](crate::Cli::publish).
#[derive(Clone)]
pub(crate) struct PublishedModel {
    pub endpoints: &'static [Endpoint],
    pub table: String,
    pub count: CountFn,
    pub sync: SyncFn,
}

impl PublishedModel {
    /// `"crowdtap/user (table users)"`.
    pub fn describe(&self) -> String {
        let endpoints: Vec<&str> = self.endpoints.iter().map(|e| e.endpoint).collect();
        format!("{} (table {})", endpoints.join(", "), self.table)
    }
}

/// What a subscribed model or observer adds to a subscriber and to a bare applier.
#[derive(Clone, Copy)]
pub(crate) struct Follower {
    pub service: fn(Subscriber) -> Subscriber,
    pub applier: fn(SeaOrmApplier) -> SeaOrmApplier,
}

/// What the application registered with [`Cli`](crate::Cli): its subscriber app, the models it
/// follows and publishes, and a transport instead of `--amqp-url`.
#[derive(Clone)]
pub(crate) struct Registry {
    pub app: String,
    pub followers: Vec<Follower>,
    pub published: Vec<PublishedModel>,
    pub transport: Option<Arc<dyn Transport>>,
}

/// What a command runs with: the registered models and the connection settings.
pub(crate) struct Env<'a> {
    pub registry: &'a Registry,
    pub connections: &'a Connections,
}

impl Env<'_> {
    /// The subscriber app: `--app`, else the name given to [`Cli::new`](crate::Cli::new).
    pub fn app(&self) -> &str {
        self.connections
            .app
            .as_deref()
            .unwrap_or(&self.registry.app)
    }

    pub fn published(&self) -> &[PublishedModel] {
        &self.registry.published
    }

    pub fn followers(&self) -> &[Follower] {
        &self.registry.followers
    }

    /// Connects to `--database-url`.
    pub async fn database(&self) -> Result<DatabaseConnection, CliError> {
        let Some(url) = &self.connections.database_url else {
            return Err(CliError::failed(
                "no database: pass --database-url or set DATABASE_URL",
            ));
        };
        sea_orm::Database::connect(url.as_str())
            .await
            .map_err(|e| CliError::failed(format!("connecting to {}: {e}", redact(url))))
    }

    /// Redis at `url` (`--redis-url`), trusting `--tls-ca` for `rediss://`.
    pub fn redis(&self, url: &str) -> Result<Redis, CliError> {
        let config = RedisConfig {
            tls_ca: self.connections.tls_ca.clone(),
            ..RedisConfig::default()
        };
        Redis::new(url, config)
            .map_err(|e| CliError::failed(format!("Redis at {}: {}", redact(url), e.report())))
    }

    /// The broker: the transport given to [`Cli::transport`](crate::Cli::transport), else RabbitMQ at `--amqp-url`,
    /// else none (with a description of what is used, for messages).
    pub fn broker(&self) -> Option<(Arc<dyn Transport>, String)> {
        if let Some(t) = &self.registry.transport {
            return Some((t.clone(), "the embedded broker".to_string()));
        }
        let url = self.connections.amqp_url.as_ref()?;
        let config = RabbitMqConfig {
            exchange: self.connections.exchange.clone(),
            tls_ca: self.connections.tls_ca.clone(),
            queue_type: self.connections.queue_type,
            ..RabbitMqConfig::default()
        };
        let transport: Arc<dyn Transport> = Arc::new(RabbitMq::new(url.clone(), config));
        Some((transport, format!("RabbitMQ at {}", redact(url))))
    }

    /// A bare applier following the registered models (dead-letter replay).
    pub fn applier(&self, db: DatabaseConnection) -> SeaOrmApplier {
        self.followers()
            .iter()
            .fold(SeaOrmApplier::new(db), |a, f| (f.applier)(a))
    }
}

/// What a command prints on stdout: echoed at once by [`Cli::run`](crate::Cli::run), captured by
/// [`Cli::run_with`](crate::Cli::run_with).
pub(crate) struct Out {
    echo: bool,
    pub text: String,
}

impl Out {
    pub(crate) fn echo() -> Self {
        Self {
            echo: true,
            text: String::new(),
        }
    }

    pub(crate) fn capture() -> Self {
        Self {
            echo: false,
            text: String::new(),
        }
    }

    pub fn line(&mut self, line: impl AsRef<str>) {
        let line = line.as_ref();
        if self.echo {
            println!("{line}");
        } else {
            self.text.push_str(line);
            self.text.push('\n');
        }
    }
}

pub(crate) use promiscuous_core::error::redact_url as redact;

/// Where the database and the servers are.
#[derive(clap::Args, Debug)]
pub(crate) struct Connections {
    /// The service's database (`sqlite://file.db?mode=rwc`, `postgres://...`, `mysql://...`).
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// RabbitMQ (`amqp://user:password@host:5672/%2f`; `amqps://` for TLS, see --tls-ca); the
    /// nodes of a cluster: their URLs separated by commas.
    #[arg(
        long,
        env = "PROMISCUOUS_AMQP_URL",
        global = true,
        hide_env_values = true
    )]
    pub amqp_url: Option<String>,
    /// Redis: versions and wake-ups shared by the subscriber's worker processes (`subscribe`),
    /// the application's relay lease (`publish --lease`).
    #[arg(
        long,
        env = "PROMISCUOUS_REDIS_URL",
        global = true,
        hide_env_values = true
    )]
    pub redis_url: Option<String>,
    /// A CA certificate file (PEM) to verify the servers' certificates with (a private CA):
    /// trusted besides the system's root certificates for an `amqps://` --amqp-url, and
    /// instead of them for a `rediss://` --redis-url.
    #[arg(
        long,
        env = "PROMISCUOUS_TLS_CA",
        global = true,
        value_name = "PEM_FILE"
    )]
    pub tls_ca: Option<PathBuf>,
    /// The RabbitMQ exchange.
    #[arg(long, default_value = "promiscuous", global = true)]
    pub exchange: String,
    /// The type of the subscriber's queue: `classic` (on one node) or `quorum` (replicated on
    /// the nodes of a cluster, going on while a majority runs). A queue keeps the type it was
    /// created with. Several nodes: --amqp-url takes their URLs separated by commas.
    #[arg(
        long,
        env = "PROMISCUOUS_QUEUE_TYPE",
        default_value = "classic",
        global = true
    )]
    pub queue_type: QueueType,
    /// The subscriber app (its queue), instead of the program's.
    #[arg(long, global = true)]
    pub app: Option<String>,
}
