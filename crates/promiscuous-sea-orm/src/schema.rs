//! Creates promiscuous' own tables (idempotent), next to the application's.

use sea_orm::{ConnectionTrait, DbErr, EntityTrait, Schema};

use crate::tables::{applied, dead_letters, outbox, outbox_operations, processed, versions};

async fn create<E: EntityTrait, C: ConnectionTrait>(db: &C, entity: E) -> Result<(), DbErr> {
    let schema = Schema::new(db.get_database_backend());
    let mut stmt = schema.create_table_from_entity(entity);
    stmt.if_not_exists();
    db.execute(&stmt).await?;
    for mut index in schema.create_index_from_entity(entity) {
        index.if_not_exists();
        db.execute(&index).await?;
    }
    Ok(())
}

/// Tables a publisher needs: the outbox (message headers and their operations), the per-instance
/// versions and the write permits of the
/// [write guard](crate::publisher::guard) (installed on the published tables by
/// `Publisher::start`, or [`guard::install`](crate::publisher::guard::install)), the relay
/// lease's [fencing tokens](crate::publisher::fence); on SQLite, the database's identity for
/// [relay wake-ups](crate::publisher::wake).
pub async fn setup_publisher<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    create(db, outbox::Entity).await?;
    create(db, outbox_operations::Entity).await?;
    create(db, versions::Entity).await?;
    add_missing_column(db, "promiscuous_versions", "message", "TEXT").await?;
    crate::publisher::wake::create_identity(db).await?;
    crate::publisher::fence::create_fences(db).await?;
    crate::publisher::guard::create_permits(db).await
}

/// Adds `column` to a table created by an older promiscuous (idempotent).
async fn add_missing_column<C: ConnectionTrait>(
    db: &C,
    table: &str,
    column: &str,
    sql_type: &str,
) -> Result<(), DbErr> {
    let probe = format!("SELECT {column} FROM {table} WHERE 1 = 0");
    if db.execute_unprepared(&probe).await.is_ok() {
        return Ok(());
    }
    db.execute_unprepared(&format!(
        "ALTER TABLE {table} ADD COLUMN {column} {sql_type}"
    ))
    .await
    .map(drop)
}

/// Tables a subscriber needs: applied versions, versions processed without effect (ignored,
/// dead-lettered) and dead letters. Each is created if missing, so this also upgrades a
/// database set up by an older promiscuous (`promiscuous_processed` and the dead letters'
/// `user_id` are newer than the others).
pub async fn setup_subscriber<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    create(db, applied::Entity).await?;
    create(db, processed::Entity).await?;
    create(db, dead_letters::Entity).await?;
    add_missing_column(db, "promiscuous_dead_letters", "user_id", "TEXT").await
}
