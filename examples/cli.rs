//! The promiscuous command line of the two-process example's services: an application builds
//! its own `promiscuous` binary, with its models registered and its own commands beside
//! promiscuous' (here `setup`, which runs the service's migrations: its own tables and, through
//! `promiscuous::migration` (feature `migration`; `promiscuous_sea_orm::migration` here, as the
//! examples build without features), promiscuous' own).
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
use sea_orm::{ConnectionTrait, Database, DbErr, Schema};
use sea_orm_migration::{MigrationName, MigrationTrait, MigratorTrait, SchemaManager};

mod shared;
use shared::{member, user};

/// The service's own commands, next to promiscuous' in one `--help`.
#[derive(clap::Subcommand, Debug)]
enum AppCommand {
    /// Run the migrations: promiscuous' tables (outbox, versions, applied messages, dead
    /// letters), then the service's (members, users).
    Setup,
}

/// The service's Migrator: promiscuous' migrations, then its own.
struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut migrations = promiscuous_sea_orm::migration::all();
        migrations.push(Box::new(ServiceTables));
        migrations
    }
}

/// The service's tables.
struct ServiceTables;

impl MigrationName for ServiceTables {
    fn name(&self) -> &str {
        "m20261202_100000_members_and_users"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for ServiceTables {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let schema = Schema::new(db.get_database_backend());
        for mut table in [
            schema.create_table_from_entity(member::Entity),
            schema.create_table_from_entity(user::Entity),
        ] {
            db.execute(table.if_not_exists()).await?;
        }
        Ok(())
    }
}

async fn setup(url: &str) -> Result<String, BoxError> {
    let db = Database::connect(url).await?;
    let pending = Migrator::get_pending_migrations(&db).await?.len();
    Migrator::up(&db, None).await?;
    Ok(format!("{pending} migration(s) applied"))
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
