//! Creates promiscuous' own tables (idempotent), next to the application's.

use sea_orm::sea_query::{MysqlQueryBuilder, TableCreateStatement};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, EntityTrait, Schema};

use crate::tables::{applied, dead_letters, outbox, outbox_operations, processed, versions};

async fn create<E: EntityTrait, C: ConnectionTrait>(db: &C, entity: E) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let schema = Schema::new(backend);
    let mut stmt = schema.create_table_from_entity(entity);
    stmt.if_not_exists();
    if backend == DbBackend::MySql {
        db.execute_unprepared(&mysql_table(&mut stmt)).await?;
    } else {
        db.execute(&stmt).await?;
    }
    for mut index in schema.create_index_from_entity(entity) {
        index.if_not_exists();
        match db.execute(&index).await {
            // MySQL's `CREATE INDEX` has no `IF NOT EXISTS` (sea-query leaves it out): error
            // 1061, "Duplicate key name", says the index is there.
            Err(e)
                if db.get_database_backend() == DbBackend::MySql
                    && e.to_string().contains("1061") =>
            {
                continue;
            }
            other => other?,
        };
    }
    Ok(())
}

/// Tables a publisher needs: the outbox (message headers and their operations), the per-instance
/// versions and the write permits of the
/// [write guard](crate::publisher::guard) (installed on the published tables by
/// `Publisher::start`, or [`guard::install`](crate::publisher::guard::install)), the relay
/// lease's [fencing tokens](crate::publisher::fence); on SQLite, the database's identity for
/// [relay wake-ups](crate::publisher::wake).
/// The `CREATE TABLE` of one of promiscuous' tables on MySQL/MariaDB, whose defaults do not fit
/// them: SeaORM's `Text` is `TEXT` (64 KiB; a message may be larger: `LONGTEXT`) and its bytes
/// `VARBINARY(255)` (a dead letter's payload: `LONGBLOB`); the server's character set may be
/// latin1 and its collations ignore case, where instance keys are UTF-8 and compared byte for
/// byte (`utf8mb4_bin`). sea-query writes each column as `` `name` type ``, so the types are
/// replaced in its text.
fn mysql_table(stmt: &mut TableCreateStatement) -> String {
    stmt.character_set("utf8mb4").collate("utf8mb4_bin");
    stmt.to_string(MysqlQueryBuilder)
        .replace("` text", "` longtext")
        .replace("` varbinary(255)", "` longblob")
}

pub async fn setup_publisher<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    create(db, outbox::Entity).await?;
    create(db, outbox_operations::Entity).await?;
    create(db, versions::Entity).await?;
    add_missing_column(db, "promiscuous_versions", "message", text(db)).await?;
    crate::publisher::wake::create_identity(db).await?;
    crate::publisher::fence::create_fences(db).await?;
    crate::publisher::guard::create_permits(db).await
}

/// Adds `column` to a table created by an older promiscuous (idempotent).
/// A text column's type for [`add_missing_column`].
fn text<C: ConnectionTrait>(db: &C) -> &'static str {
    if db.get_database_backend() == DbBackend::MySql {
        "LONGTEXT"
    } else {
        "TEXT"
    }
}

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
    add_missing_column(db, "promiscuous_dead_letters", "user_id", text(db)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::{dead_letters, outbox, versions};

    #[test]
    fn mysql_tables_hold_long_texts_and_payloads_and_compare_keys_byte_for_byte() {
        let schema = Schema::new(DbBackend::MySql);
        let outbox = mysql_table(&mut schema.create_table_from_entity(outbox::Entity));
        assert!(outbox.contains("`payload` longtext NOT NULL"), "{outbox}");
        assert!(outbox.contains("DEFAULT CHARSET=utf8mb4"), "{outbox}");
        assert!(outbox.contains("COLLATE=utf8mb4_bin"), "{outbox}");
        let letters = mysql_table(&mut schema.create_table_from_entity(dead_letters::Entity));
        assert!(letters.contains("`payload` longblob NOT NULL"), "{letters}");
        let versions = mysql_table(&mut schema.create_table_from_entity(versions::Entity));
        assert!(
            versions.contains("`key` varchar(255) NOT NULL"),
            "{versions}"
        );
    }
}
