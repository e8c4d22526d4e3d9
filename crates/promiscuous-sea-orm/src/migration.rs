//! promiscuous' own tables as `sea-orm-migration` migrations (feature `migration`), for an
//! application that manages its schema with a `Migrator`: the recommended way. They run the
//! same statements as the run-time setup ([`schema`]), which stays for the
//! quickstart and finds nothing left to do after them.
//!
//! ```ignore
//! use sea_orm_migration::prelude::*;
//!
//! pub struct Migrator;
//!
//! impl MigratorTrait for Migrator {
//!     fn migrations() -> Vec<Box<dyn MigrationTrait>> {
//!         let mut migrations = promiscuous_sea_orm::migration::all(); // or publisher() / subscriber()
//!         migrations.push(Box::new(m20260101_000001_members::Migration));
//!         migrations
//!     }
//! }
//! ```
//!
//! The names are stable (recorded in the application's `seaql_migrations`): a later promiscuous
//! adds migrations, it never renames these.

use async_trait::async_trait;
use sea_orm::{ConnectionTrait, DbErr};
use sea_orm_migration::{MigrationName, MigrationTrait, SchemaManager};

use crate::publisher::{fence, guard, wake};
use crate::schema;

/// A publisher's tables: the outbox and its operations, the per-instance versions, the write
/// guard's permits and, on SQLite, the database's identity (relay wake-ups).
pub struct Publisher;

/// A subscriber's tables: applied versions, versions processed without effect, dead letters.
pub struct Subscriber;

/// [`Publisher`] and [`Subscriber`], as boxed migrations.
pub fn all() -> Vec<Box<dyn MigrationTrait>> {
    vec![Box::new(Publisher), Box::new(Subscriber)]
}

/// [`Publisher`] alone (a service that only publishes).
pub fn publisher() -> Vec<Box<dyn MigrationTrait>> {
    vec![Box::new(Publisher)]
}

/// [`Subscriber`] alone (a service that only subscribes).
pub fn subscriber() -> Vec<Box<dyn MigrationTrait>> {
    vec![Box::new(Subscriber)]
}

impl MigrationName for Publisher {
    fn name(&self) -> &str {
        "m20261202_000001_promiscuous_publisher"
    }
}

impl MigrationName for Subscriber {
    fn name(&self) -> &str {
        "m20261202_000002_promiscuous_subscriber"
    }
}

#[async_trait]
impl MigrationTrait for Publisher {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        schema::setup_publisher(manager.get_connection()).await
    }

    /// Drops the publisher's tables; what the outbox still held is lost. The write guard's
    /// triggers on the published tables (installed by `Publisher::start`) name the permits
    /// table: writes to those tables fail until it is back, or until the tables are dropped.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let tables = [
            "promiscuous_outbox_operations",
            "promiscuous_outbox",
            "promiscuous_versions",
            guard::PERMITS,
            wake::IDENTITY,
            fence::FENCES,
        ];
        drop_tables(manager.get_connection(), &tables).await
    }
}

#[async_trait]
impl MigrationTrait for Subscriber {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        schema::setup_subscriber(manager.get_connection()).await
    }

    /// Drops the subscriber's tables, dead letters included.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let tables = [
            "promiscuous_applied",
            "promiscuous_processed",
            "promiscuous_dead_letters",
        ];
        drop_tables(manager.get_connection(), &tables).await
    }
}

async fn drop_tables<C: ConnectionTrait>(db: &C, tables: &[&str]) -> Result<(), DbErr> {
    for table in tables {
        // MySQL/MariaDB: a session that published holds a temporary table named like the
        // permits table, which a plain `DROP TABLE` would drop instead of the table.
        let sql = if db.get_database_backend() == sea_orm::DbBackend::MySql {
            format!("DROP TEMPORARY TABLE IF EXISTS {table}; DROP TABLE IF EXISTS {table}")
        } else {
            format!("DROP TABLE IF EXISTS {table}")
        };
        db.execute_unprepared(&sql).await?;
    }
    Ok(())
}
