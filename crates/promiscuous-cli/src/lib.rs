//! The promiscuous command line, as a library entry point: Rust cannot load models at run time,
//! so an application builds its own `promiscuous` binary with its models registered.
//!
//! The application depends on this crate (`promiscuous-cli = "0.1"`), or on the facade with its
//! `cli` feature (`promiscuous = { version = "0.1", features = ["cli"] }`, then
//! `promiscuous::cli::Cli`); a library user who takes neither compiles no clap or indicatif.
//!
//! ```ignore
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     promiscuous_cli::Cli::new("crowdtap_members") // the subscriber app (its queue)
//!         .subscribe::<member::Model>()               // what `subscribe` follows
//!         .publish::<user::Model>()                   // what `publish <model>` knows
//!         .run()                                      // parses the process arguments
//!         .await
//! }
//! ```
//!
//! Commands: `subscribe`, `publish <model> [filter]` (initial sync), `mocks` (exported
//! definitions), `status` and `dead-letters list | show | replay | drop`. Connections come from
//! `--database-url` (`DATABASE_URL`), `--amqp-url` (`PROMISCUOUS_AMQP_URL`) and `--redis-url`
//! (`PROMISCUOUS_REDIS_URL`); `--tls-ca` (`PROMISCUOUS_TLS_CA`) names a private CA for an
//! `amqps://` broker. Every failure is one message with its context and a non-zero exit code.

mod dead_letters;
mod mocks;
mod status;
mod subscribe;
mod sync;

use std::ffi::OsString;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use indicatif::ProgressBar;
use promiscuous_core::redis::{Redis, RedisConfig};
use promiscuous_core::transport::{RabbitMq, RabbitMqConfig, Transport};
use promiscuous_sea_orm::publisher::Published;
use promiscuous_sea_orm::subscriber::{Observed, SeaOrmApplier, Subscribed};
use promiscuous_sea_orm::{Endpoint, Subscriber};
use sea_orm::{DatabaseConnection, EntityName, EntityTrait, FromQueryResult, ModelTrait};

/// A failed command: what went wrong, with its context (displayed without trailing whitespace).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    /// The command line is wrong (exit code 2); the message is clap's, with the usage.
    #[error("{}", .0.trim_end())]
    Usage(String),
    /// The command failed (exit code 1).
    #[error("{}", .0.trim_end())]
    Failed(String),
}

impl CliError {
    pub(crate) fn failed(message: impl Into<String>) -> Self {
        CliError::Failed(message.into())
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Usage(_) => ExitCode::from(2),
            CliError::Failed(_) => ExitCode::from(1),
        }
    }
}

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

/// A published model registered with [`Cli::publish`].
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

/// The promiscuous command line of one application: its subscriber app name (the queue), the
/// models it subscribes to and those it publishes.
#[derive(Clone)]
pub struct Cli {
    app: String,
    followers: Vec<Follower>,
    published: Vec<PublishedModel>,
    transport: Option<Arc<dyn Transport>>,
}

impl Cli {
    /// `app` names the subscriber application, and so its queue.
    pub fn new(app: impl Into<String>) -> Self {
        Self {
            app: app.into(),
            followers: Vec::new(),
            published: Vec::new(),
            transport: None,
        }
    }

    /// `subscribe` keeps model `M` in sync (and `dead-letters replay` applies to it).
    pub fn subscribe<M: Subscribed>(mut self) -> Self {
        self.followers.push(Follower {
            service: Subscriber::subscribe::<M>,
            applier: SeaOrmApplier::subscribe::<M>,
        });
        self
    }

    /// `subscribe` runs the callbacks of observer `O`.
    pub fn observe<O: Observed>(mut self) -> Self {
        self.followers.push(Follower {
            service: Subscriber::observe::<O>,
            applier: SeaOrmApplier::observe::<O>,
        });
        self
    }

    /// `publish <model>` can sync model `M`, named by one of its endpoints or its table.
    pub fn publish<M>(mut self) -> Self
    where
        M: Published + ModelTrait + FromQueryResult,
        M::Entity: EntityTrait<Model = M>,
    {
        self.published.push(PublishedModel {
            endpoints: M::ENDPOINTS,
            table: M::Entity::default().table_name().to_string(),
            count: |db, filter| Box::pin(sync::count::<M>(db, filter)),
            sync: |db, filter, batch, progress| {
                Box::pin(sync::sync::<M>(db, filter, batch, progress))
            },
        });
        self
    }

    /// Uses `transport` instead of `--amqp-url` (an embedded broker, tests).
    pub fn transport(mut self, transport: impl Transport) -> Self {
        self.transport = Some(Arc::new(transport));
        self
    }

    /// Parses the process arguments and runs the command: output on stdout, errors on stderr,
    /// and the exit code to return from `main`. `subscribe` runs until SIGINT or SIGTERM.
    pub async fn run(self) -> ExitCode {
        let args = match Args::try_parse_from(std::env::args_os()) {
            Ok(args) => args,
            Err(e) => {
                let _ = e.print();
                return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
            }
        };
        let mut out = Out::echo();
        let shutdown = match args.command {
            Command::Subscribe(_) => match subscribe::signals() {
                Ok(signals) => Some(signals),
                Err(e) => {
                    eprintln!("error: {e}");
                    return e.exit_code();
                }
            },
            _ => None,
        };
        let shutdown = async move {
            match shutdown {
                Some(signals) => signals.await,
                None => std::future::pending().await,
            }
        };
        match self.execute(args, &mut out, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                e.exit_code()
            }
        }
    }

    /// Runs the command in `args` (starting with the program name, like `std::env::args`) and
    /// returns what it printed. `subscribe` runs until SIGINT or SIGTERM.
    pub async fn run_with<I, T>(&self, args: I) -> Result<String, CliError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let args = match Args::try_parse_from(args) {
            Ok(args) => args,
            Err(e) => return Self::clap_outcome(e),
        };
        let shutdown = match args.command {
            Command::Subscribe(_) => Some(subscribe::signals()?),
            _ => None,
        };
        let shutdown = async move {
            match shutdown {
                Some(signals) => signals.await,
                None => std::future::pending().await,
            }
        };
        let mut out = Out::capture();
        self.execute(args, &mut out, shutdown).await?;
        Ok(out.text)
    }

    /// Like [`Cli::run_with`], with `shutdown` instead of the signals: `subscribe` stops (after
    /// the messages in flight) when it resolves.
    pub async fn run_until<I, T>(
        &self,
        args: I,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<String, CliError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let args = match Args::try_parse_from(args) {
            Ok(args) => args,
            Err(e) => return Self::clap_outcome(e),
        };
        let mut out = Out::capture();
        self.execute(args, &mut out, shutdown).await?;
        Ok(out.text)
    }

    /// `--help` and `--version` are output; anything else clap refuses is a usage error.
    fn clap_outcome(e: clap::Error) -> Result<String, CliError> {
        use clap::error::ErrorKind;
        match e.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => Ok(e.render().to_string()),
            _ => Err(CliError::Usage(e.render().to_string())),
        }
    }

    async fn execute(
        &self,
        args: Args,
        out: &mut Out,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), CliError> {
        let env = Env {
            cli: self,
            connections: &args.connections,
        };
        match args.command {
            Command::Subscribe(a) => subscribe::run(&env, &a, out, shutdown).await,
            Command::Publish(a) => sync::run(&env, &a, out).await,
            Command::Mocks(a) => mocks::run(&a, out),
            Command::Status => status::run(&env, out).await,
            Command::DeadLetters(c) => dead_letters::run(&env, &c, out).await,
        }
    }
}

/// What a command runs with: the registered models and the connection settings.
pub(crate) struct Env<'a> {
    pub cli: &'a Cli,
    pub connections: &'a Connections,
}

impl Env<'_> {
    /// The subscriber app: `--app`, else the name given to [`Cli::new`].
    pub fn app(&self) -> &str {
        self.connections.app.as_deref().unwrap_or(&self.cli.app)
    }

    pub fn published(&self) -> &[PublishedModel] {
        &self.cli.published
    }

    pub fn followers(&self) -> &[Follower] {
        &self.cli.followers
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

    /// The broker: the transport given to [`Cli::transport`], else RabbitMQ at `--amqp-url`,
    /// else none (with a description of what is used, for messages).
    pub fn broker(&self) -> Option<(Arc<dyn Transport>, String)> {
        if let Some(t) = &self.cli.transport {
            return Some((t.clone(), "the embedded broker".to_string()));
        }
        let url = self.connections.amqp_url.as_ref()?;
        let config = RabbitMqConfig {
            exchange: self.connections.exchange.clone(),
            tls_ca: self.connections.tls_ca.clone(),
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

/// What a command prints on stdout: echoed at once by [`Cli::run`], captured by
/// [`Cli::run_with`].
pub(crate) struct Out {
    echo: bool,
    pub text: String,
}

impl Out {
    fn echo() -> Self {
        Self {
            echo: true,
            text: String::new(),
        }
    }

    fn capture() -> Self {
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

/// The command line.
#[derive(Parser, Debug)]
#[command(
    name = "promiscuous",
    version,
    about = "Replicate models between services: subscribe, initial sync, definitions, status, \
             dead letters",
    propagate_version = true
)]
struct Args {
    #[command(flatten)]
    connections: Connections,
    #[command(subcommand)]
    command: Command,
}

/// Where the database and the servers are.
#[derive(clap::Args, Debug)]
pub(crate) struct Connections {
    /// The service's database (`sqlite://file.db?mode=rwc`, `postgres://...`).
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// RabbitMQ (`amqp://user:password@host:5672/%2f`; `amqps://` for TLS, see --tls-ca).
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
    /// The subscriber app (its queue), instead of the program's.
    #[arg(long, global = true)]
    pub app: Option<String>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Consume the subscriber's queue and keep its models in sync until SIGINT or SIGTERM
    /// (the messages in flight are finished first).
    Subscribe(subscribe::SubscribeArgs),
    /// Initial sync: publish every row of a model (matching an optional SQL filter) as an
    /// update carrying all its published attributes, safely while the application writes them.
    /// The outbox rows are left to the application's relay unless --relay (no other relay runs)
    /// or --lease NAME (relay under the application's Redis lease).
    Publish(sync::PublishArgs),
    /// Export the publisher's definitions (JSON) for subscribers' compile-time checks and
    /// mock publishers.
    Mocks(mocks::MocksArgs),
    /// Queue depth, dead letters, outbox and lag.
    Status,
    /// Inspect, replay or drop messages the subscriber could not apply.
    #[command(subcommand)]
    DeadLetters(dead_letters::DeadLetterCommand),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }

    #[test]
    fn errors_keep_their_message_and_exit_code() {
        let usage = CliError::Usage("error: unexpected argument\n\nUsage: promiscuous\n".into());
        assert_eq!(
            usage.to_string(),
            "error: unexpected argument\n\nUsage: promiscuous"
        );
        assert_eq!(usage.exit_code(), ExitCode::from(2));
        let failed = CliError::failed("no database ");
        assert_eq!(failed.to_string(), "no database");
        assert_eq!(failed.exit_code(), ExitCode::from(1));
    }
}
