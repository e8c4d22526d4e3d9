//! promiscuous' tables through the application's sea-orm-migration `Migrator` (feature
//! `migration`), on SQLite and PostgreSQL: up, a publisher and a subscriber that work on it, the
//! run-time setup finding nothing to do, the status, down and up again.

mod common;

use std::time::Duration;

use common::sql_servers::fresh_database;
use common::{member, user};
use promiscuous::pipeline::schema;
use promiscuous::{InProcess, Publisher, Subscriber};
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, Schema};
use sea_orm_migration::{MigrationName, MigrationTrait, MigratorTrait, SchemaManager};

/// The application's own migration: its `users` and `members` tables.
struct AppTables;

impl MigrationName for AppTables {
    fn name(&self) -> &str {
        "m20261202_100000_app_tables"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AppTables {
    async fn up(&self, manager: &SchemaManager) -> Result<(), sea_orm::DbErr> {
        let db = manager.get_connection();
        let schema = Schema::new(db.get_database_backend());
        db.execute(&schema.create_table_from_entity(user::Entity))
            .await?;
        db.execute(&schema.create_table_from_entity(member::Entity))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), sea_orm::DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP TABLE members").await?;
        db.execute_unprepared("DROP TABLE users").await?;
        Ok(())
    }
}

/// The application's Migrator: promiscuous' migrations, then its own.
struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut migrations = promiscuous_sea_orm::migration::all();
        migrations.push(Box::new(AppTables));
        migrations
    }
}

const TABLES: [&str; 7] = [
    "promiscuous_outbox",
    "promiscuous_outbox_operations",
    "promiscuous_versions",
    "promiscuous_write_permits",
    "promiscuous_applied",
    "promiscuous_processed",
    "promiscuous_dead_letters",
];

async fn exists(db: &DatabaseConnection, table: &str) -> bool {
    use sea_orm::{DbBackend, Statement};
    if db.get_database_backend() == DbBackend::MySql {
        // The catalogue: a session's temporary table of that name (the write permits) is not
        // the table.
        let sql = format!(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = DATABASE() \
             AND table_name = '{table}'"
        );
        return db
            .query_one_raw(Statement::from_string(DbBackend::MySql, sql))
            .await
            .unwrap()
            .is_some();
    }
    db.execute_unprepared(&format!("SELECT 1 FROM {table} WHERE 1 = 0"))
        .await
        .is_ok()
}

async fn migrations_work_on(db: &DatabaseConnection, what: &str) {
    Migrator::up(db, None).await.unwrap();
    for table in TABLES {
        assert!(exists(db, table).await, "{what}: {table} after up");
    }
    let applied: Vec<String> = Migrator::get_applied_migrations(db)
        .await
        .unwrap()
        .iter()
        .map(|m| m.name().to_string())
        .collect();
    assert_eq!(
        applied,
        [
            "m20261202_000001_promiscuous_publisher",
            "m20261202_000002_promiscuous_subscriber",
            "m20261202_100000_app_tables"
        ],
        "{what}"
    );
    // The run-time setup finds nothing left to do.
    schema::setup_publisher(db).await.unwrap();
    schema::setup_subscriber(db).await.unwrap();

    // A publisher and a subscriber on the migrated database (one service that does both).
    let broker = InProcess::new();
    let subscriber = Subscriber::new("migrated_members", db.clone(), broker.clone())
        .subscribe::<member::Model>()
        .start()
        .await
        .unwrap();
    let publisher = Publisher::new(db.clone(), broker.clone())
        .start()
        .await
        .unwrap();
    common::servers::write(db, 0).await;
    subscriber
        .wait_until(Duration::from_secs(10), |s| s.operations_applied >= 1)
        .await
        .unwrap();
    let members = member::Entity::find().all(db).await.unwrap();
    assert_eq!(members.len(), 1, "{what}");
    assert_eq!(members[0].name, "user-0", "{what}");
    publisher.shutdown().await.unwrap();
    subscriber.shutdown().await.unwrap();
    Migrator::down(db, None).await.unwrap();
    for table in TABLES {
        assert!(!exists(db, table).await, "{what}: {table} after down");
    }
    assert!(
        Migrator::get_applied_migrations(db)
            .await
            .unwrap()
            .is_empty()
    );
    Migrator::up(db, None).await.unwrap();
    for table in TABLES {
        assert!(exists(db, table).await, "{what}: {table} after up again");
    }
}

#[tokio::test]
async fn promiscuous_tables_through_the_applications_migrator_on_sqlite() {
    let db = promiscuous_test::sqlite().await.unwrap();
    migrations_work_on(&db, "sqlite").await;
    assert!(exists(&db, "promiscuous_database").await, "SQLite identity");
}

on_both_servers! {
    promiscuous_tables_through_the_applications_migrator;
}

async fn promiscuous_tables_through_the_applications_migrator(url: &str) {
    let db = fresh_database(url, "migration").await;
    migrations_work_on(&db, url.split(':').next().unwrap()).await;
}
