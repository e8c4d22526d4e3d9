//! The write guard: a write to a published table that bypasses the `ActiveModelBehavior` hooks
//! (`update_many`, `delete_many`, `delete_by_id`, `Entity::insert(..).exec`, raw SQL) would
//! change the data without publishing it, so the database refuses it.
//!
//! How: [`install`] puts a `BEFORE INSERT/UPDATE/DELETE ... FOR EACH ROW` trigger on every
//! published table of the database. It lets a row change only while the changing transaction
//! holds a *permit* for the table: a row of `promiscuous_write_permits` that the hooks insert in
//! `before_save`/`before_delete` (with the transaction check, see
//! [`transaction`](super::transaction)) and remove in `after_save`/`after_delete`
//! ([`release_sql`], in the hooks' last round trip), in the caller's transaction. Between the
//! two, SeaORM runs only the model's own statement. A permit is visible to its own transaction only (uncommitted), so another
//! transaction writing the same table at the same time gets no permit from it, and no lock is
//! taken (the table has no key).
//!
//! SQLite and PostgreSQL are supported; other backends get no guard.
//!
//! Which tables: every table of a model `#[publish]`ed in this program (the link-time
//! `inventory` registry) that exists in the database when [`install`] runs. This is a registry
//! the application does not list by hand on purpose: the guard is there for the write that
//! forgot something, and an explicit list would be one more thing to forget (a model left out
//! would be published by its hooks, yet writable around them, silently). Its failure modes are
//! the loud or the bounded ones, and are tested:
//! - a model linked into the program but not published from this database: its table does not
//!   exist here, so it is skipped (if a table of that name exists for another purpose, writes
//!   to it that bypass the hooks are refused, with a message naming the table);
//! - a published table created after [`install`] ran (a migration while the publisher runs) is
//!   not guarded until the next call (the next `Publisher::start`): writes through the hooks
//!   are published as always, only bypassing writes go unrefused meanwhile.

use promiscuous_core::Error;
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

use super::sql::literal;

use super::tracked::PublishedEntity;

/// The permits table.
pub const PERMITS: &str = "promiscuous_write_permits";

/// What a refused write reports (the database adds its own prefix).
fn refusal(table: &str) -> String {
    format!(
        "promiscuous: a write to published table {table} bypassed its ActiveModel hooks \
         (update_many, delete_many, delete_by_id, Entity::insert(..).exec or raw SQL) and would \
         not be published: write through ActiveModel or Model (insert, update, save, delete), \
         row by row, inside a transaction"
    )
}

/// `"name"` with embedded quotes doubled (SQLite and PostgreSQL identifiers).
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The backends the guard is written for.
pub(crate) fn guarded(backend: DbBackend) -> bool {
    matches!(backend, DbBackend::Sqlite | DbBackend::Postgres)
}

fn supported(db: &impl ConnectionTrait) -> bool {
    !db.is_mock_connection() && guarded(db.get_database_backend())
}

/// The statement that withdraws the permits of `table` the transaction holds, sent by the hooks
/// with their other last writes (`None` where there is no guard).
pub fn release_sql(backend: DbBackend, table: &str) -> Option<String> {
    guarded(backend).then(|| format!("DELETE FROM {PERMITS} WHERE tbl = {}", literal(table)))
}

/// Creates the permits table (idempotent).
pub async fn create_permits<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    if !supported(db) {
        return Ok(());
    }
    db.execute_unprepared(&format!(
        "CREATE TABLE IF NOT EXISTS {PERMITS} (tbl TEXT NOT NULL)"
    ))
    .await
    .map(drop)
}

async fn table_exists<C: ConnectionTrait>(db: &C, table: &str) -> Result<bool, DbErr> {
    let backend = db.get_database_backend();
    let stmt = match backend {
        DbBackend::Postgres => Statement::from_sql_and_values(
            backend,
            "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() \
             AND table_name = $1",
            [table.into()],
        ),
        _ => Statement::from_sql_and_values(
            backend,
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
            [table.into()],
        ),
    };
    Ok(db.query_one_raw(stmt).await?.is_some())
}

/// Guards every published table (registered by `#[publish]` in this program) that exists in
/// `db`; idempotent. Returns the tables guarded. Tables created later are guarded by the next
/// call (`Publisher::start` calls it); see the [module documentation](self) for why the tables
/// come from the link-time registry.
pub async fn install<C: ConnectionTrait>(db: &C) -> Result<Vec<String>, Error> {
    if !supported(db) {
        return Ok(Vec::new());
    }
    let failed = |table: &str, e: DbErr| Error::Guard {
        table: table.to_string(),
        source: std::sync::Arc::new(e),
    };
    create_permits(db).await.map_err(|e| failed(PERMITS, e))?;
    let mut tables: Vec<&'static str> = inventory::iter::<PublishedEntity>
        .into_iter()
        .map(|e| (e.table)())
        .collect();
    tables.sort_unstable();
    tables.dedup();
    let backend = db.get_database_backend();
    if backend == DbBackend::Postgres {
        let function = format!(
            "CREATE OR REPLACE FUNCTION promiscuous_guard() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN \
               IF NOT EXISTS (SELECT 1 FROM {PERMITS} WHERE tbl = TG_TABLE_NAME) THEN \
                 RAISE EXCEPTION '%', replace({template}, '{{table}}', TG_TABLE_NAME); \
               END IF; \
               IF TG_OP = 'DELETE' THEN RETURN OLD; END IF; \
               RETURN NEW; \
             END $$",
            template = literal(&refusal("{table}")),
        );
        db.execute_unprepared(&function)
            .await
            .map_err(|e| failed("(function promiscuous_guard)", e))?;
    }
    let mut guarded = Vec::new();
    for table in tables {
        if !table_exists(db, table)
            .await
            .map_err(|e| failed(table, e))?
        {
            tracing::debug!(
                table,
                "promiscuous: published table not in this database, not guarded"
            );
            continue;
        }
        let statements: Vec<String> = match backend {
            DbBackend::Postgres => vec![format!(
                "CREATE OR REPLACE TRIGGER promiscuous_guard BEFORE INSERT OR UPDATE OR DELETE \
                 ON {} FOR EACH ROW EXECUTE FUNCTION promiscuous_guard()",
                ident(table)
            )],
            _ => ["INSERT", "UPDATE", "DELETE"]
                .iter()
                .map(|event| {
                    format!(
                        "CREATE TRIGGER IF NOT EXISTS {} BEFORE {event} ON {} FOR EACH ROW \
                         BEGIN SELECT RAISE(ABORT, {}) WHERE NOT EXISTS \
                         (SELECT 1 FROM {PERMITS} WHERE tbl = {}); END",
                        ident(&format!(
                            "promiscuous_guard_{}_{}",
                            table,
                            event.to_lowercase()
                        )),
                        ident(table),
                        literal(&refusal(table)),
                        literal(table),
                    )
                })
                .collect(),
        };
        for sql in statements {
            db.execute_unprepared(&sql)
                .await
                .map_err(|e| failed(table, e))?;
        }
        guarded.push(table.to_string());
    }
    Ok(guarded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(ident("us\"ers"), "\"us\"\"ers\"");
        assert_eq!(literal("it's"), "'it''s'");
        assert!(refusal("users").contains("published table users"));
    }
}
