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
//! definitions), `status`, `dead-letters list | show | replay | drop` and `dashboard --listen
//! ADDR` (the operations dashboard). Connections come from
//! `--database-url` (`DATABASE_URL`), `--amqp-url` (`PROMISCUOUS_AMQP_URL`) and `--redis-url`
//! (`PROMISCUOUS_REDIS_URL`); `--tls-ca` (`PROMISCUOUS_TLS_CA`) names a private CA for an
//! `amqps://` broker. Every failure is one message with its context and a non-zero exit code.
//!
//! The application's own subcommands sit next to these ([`Cli::commands`]): a clap
//! [`Subcommand`] enum, flattened into the same command line (one `--help`
//! lists both), whose parsed value goes to the application's handler with the [`Globals`]:
//!
//! ```ignore
//! #[derive(clap::Subcommand, Debug)]
//! enum AppCommand {
//!     /// Create or update the schema (the app's migrations and promiscuous' tables).
//!     Setup,
//! }
//!
//! promiscuous_cli::Cli::new("crowdtap_members")
//!     .subscribe::<member::Model>()
//!     .commands(|command: AppCommand, globals| async move {
//!         match command {
//!             AppCommand::Setup => setup(globals.require_database_url()?).await,
//!         }
//!     })
//!     .run()
//!     .await
//! ```
//!
//! An application command named like one of promiscuous' (`subscribe`, `publish`, `mocks`,
//! `status`, `dead-letters`, `dashboard`) is refused when the command line runs, naming it.

mod app;
mod dashboard;
mod dead_letters;
mod env;
mod error;
mod mocks;
mod status;
mod subscribe;
mod sync;

pub use app::{Globals, NoCommands};
pub use error::CliError;

use std::ffi::OsString;
use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use promiscuous_core::transport::Transport;
use promiscuous_sea_orm::Subscriber;
use promiscuous_sea_orm::publisher::Published;
use promiscuous_sea_orm::subscriber::{Observed, SeaOrmApplier, Subscribed};
use sea_orm::{EntityName, EntityTrait, FromQueryResult, ModelTrait};

use env::{Connections, Env, Follower, Out, PublishedModel, Registry};

/// The promiscuous command line of one application: its subscriber app name (the queue), the
/// models it subscribes to and those it publishes, and its own commands `A` (none by default,
/// see [`Cli::commands`]).
pub struct Cli<A = NoCommands> {
    registry: Registry,
    handler: Option<app::Handler<A>>,
}

impl<A> Clone for Cli<A> {
    fn clone(&self) -> Self {
        Self {
            registry: self.registry.clone(),
            handler: self.handler.clone(),
        }
    }
}

impl Cli {
    /// `app` names the subscriber application, and so its queue.
    pub fn new(app: impl Into<String>) -> Self {
        Self {
            registry: Registry {
                app: app.into(),
                followers: Vec::new(),
                published: Vec::new(),
                transport: None,
            },
            handler: None,
        }
    }
}

impl<A> Cli<A> {
    /// Adds the application's own subcommands `B` (a clap [`Subcommand`] enum) to the command
    /// line, run by `handler` with the parsed command and the [`Globals`]: what it returns is
    /// printed; an error is printed with its sources and exits with code 1.
    pub fn commands<B, F, Fut>(self, handler: F) -> Cli<B>
    where
        F: Fn(B, Globals) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, promiscuous_core::BoxError>> + Send + 'static,
    {
        Cli {
            registry: self.registry,
            handler: Some(Arc::new(move |command, globals| {
                Box::pin(handler(command, globals))
            })),
        }
    }

    /// `subscribe` keeps model `M` in sync (and `dead-letters replay` applies to it).
    pub fn subscribe<M: Subscribed>(mut self) -> Self {
        self.registry.followers.push(Follower {
            service: Subscriber::subscribe::<M>,
            applier: SeaOrmApplier::subscribe::<M>,
        });
        self
    }

    /// `subscribe` runs the callbacks of observer `O`.
    pub fn observe<O: Observed>(mut self) -> Self {
        self.registry.followers.push(Follower {
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
        self.registry.published.push(PublishedModel {
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
        self.registry.transport = Some(Arc::new(transport));
        self
    }
}

impl<A: Subcommand + Send + 'static> Cli<A> {
    /// Parses the process arguments and runs the command: output on stdout, errors on stderr,
    /// and the exit code to return from `main`. `subscribe` runs until SIGINT or SIGTERM.
    pub async fn run(self) -> ExitCode {
        let args = match Self::parse(std::env::args_os()) {
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
        let args = match Self::parse(args) {
            Ok(args) => args,
            Err(e) => return Self::clap_outcome(e),
        };
        let shutdown = match args.command {
            Command::Subscribe(_) | Command::Dashboard(_) => Some(subscribe::signals()?),
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
        let args = match Self::parse(args) {
            Ok(args) => args,
            Err(e) => return Self::clap_outcome(e),
        };
        let mut out = Out::capture();
        self.execute(args, &mut out, shutdown).await?;
        Ok(out.text)
    }

    /// The command line with the application's commands `A` flattened in; a command of `A`
    /// named like one of promiscuous' is an error naming it.
    fn parse<I, T>(args: I) -> Result<Args<A>, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let ours: Vec<String> = Args::<NoCommands>::command()
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .collect();
        let theirs = A::augment_subcommands(clap::Command::new("app"));
        if let Some(clash) = theirs
            .get_subcommands()
            .map(|c| c.get_name())
            .find(|name| ours.iter().any(|o| o == name))
        {
            return Err(Args::<NoCommands>::command().error(
                clap::error::ErrorKind::ArgumentConflict,
                format!(
                    "the application's command `{clash}` has the name of one of promiscuous' \
                     commands ({}): rename it",
                    ours.join(", ")
                ),
            ));
        }
        let matches = Args::<A>::command().try_get_matches_from(args)?;
        Args::<A>::from_arg_matches(&matches)
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
        args: Args<A>,
        out: &mut Out,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), CliError> {
        let env = Env {
            registry: &self.registry,
            connections: &args.connections,
        };
        match args.command {
            Command::Subscribe(a) => subscribe::run(&env, &a, out, shutdown).await,
            Command::Publish(a) => sync::run(&env, &a, out).await,
            Command::Mocks(a) => mocks::run(&a, out),
            Command::Status => status::run(&env, out).await,
            Command::DeadLetters(c) => dead_letters::run(&env, &c, out).await,
            Command::Dashboard(a) => dashboard::run(&env, &a, out, shutdown).await,
            Command::App(command) => {
                let Some(handler) = &self.handler else {
                    return Err(CliError::failed(
                        "the application's command has no handler (Cli::commands)",
                    ));
                };
                let globals = Globals::new(&args.connections, &self.registry.app);
                let printed = handler(command, globals)
                    .await
                    .map_err(|e| CliError::failed(promiscuous_core::Report(&*e).to_string()))?;
                if !printed.is_empty() {
                    out.line(printed.trim_end_matches('\n'));
                }
                Ok(())
            }
        }
    }
}

/// The command line.
#[derive(Parser, Debug)]
#[command(
    name = "promiscuous",
    version,
    about = "Replicate models between services: subscribe, initial sync, definitions, status, \
             dead letters",
    propagate_version = true
)]
struct Args<A: Subcommand> {
    #[command(flatten)]
    connections: Connections,
    #[command(subcommand)]
    command: Command<A>,
}

#[derive(clap::Subcommand, Debug)]
enum Command<A: Subcommand> {
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
    /// Serve the operations dashboard (lag, throughput, outbox, dead letters with replay,
    /// waiting messages, workers; /metrics) until SIGINT or SIGTERM. With --redis-url it shows
    /// every worker reporting to that Redis; with --database-url, the app's dead letters.
    Dashboard(dashboard::DashboardArgs),
    /// The application's own commands (`Cli::commands`).
    #[command(flatten)]
    App(A),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Args::<NoCommands>::command().debug_assert();
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
