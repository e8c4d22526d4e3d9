//! The promiscuous command line of the two-process example's services: an application builds
//! its own `promiscuous` binary, with its models registered and its own commands beside
//! promiscuous' (here `setup`, which creates the service's tables and promiscuous' own).
//!
//! ```text
//! scripts/services.sh up && eval "$(scripts/services.sh env)"
//! export DATABASE_URL=sqlite://subscriber.db?mode=rwc
//! cargo run --example cli -- setup                                  # the app's own command
//! cargo run --example cli -- subscribe --workers 8 --recovery=2     # Ctrl-C stops
//! cargo run --example cli -- status
//! cargo run --example cli -- dead-letters list
//! cargo run --example cli -- mocks -o definitions.json
//! cargo run --example cli -- --database-url sqlite://publisher.db publish crowdtap/user "id > 10"
//! ```

use std::process::ExitCode;

use promiscuous::BoxError;
use promiscuous::pipeline::schema;

mod shared;
use shared::{member, user};

/// The service's own commands, next to promiscuous' in one `--help`.
#[derive(clap::Subcommand, Debug)]
enum AppCommand {
    /// Create the service's tables (members, users) and promiscuous' own tables (outbox,
    /// versions, applied messages, dead letters), if missing.
    Setup,
}

async fn setup(url: &str) -> Result<String, BoxError> {
    let db = shared::open(url, member::Entity).await?;
    shared::open(url, user::Entity).await?;
    schema::setup_subscriber(&db).await?;
    schema::setup_publisher(&db).await?;
    Ok("schema ready: the service's tables and promiscuous' own".to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    promiscuous_cli::Cli::new("crowdtap_members")
        .subscribe::<member::Model>()
        .publish::<user::Model>()
        .commands(|command: AppCommand, globals| async move {
            match command {
                AppCommand::Setup => setup(globals.require_database_url()?).await,
            }
        })
        .run()
        .await
}
