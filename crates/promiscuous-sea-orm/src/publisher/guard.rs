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
//! On MySQL/MariaDB InnoDB would lock a shared permits table's rows (a `DELETE` locks every row
//! it scans, uncommitted ones of other transactions included), so the permits are rows of a
//! temporary table of the session, `promiscuous_write_permits` as well, which the hooks create
//! (see [`transaction`](super::transaction)): a temporary table shadows the table of its name
//! for its session, in the trigger too. The table itself stays empty: a `CHECK` refuses every
//! row, so a session without the temporary table has no permit. MariaDB's `SIGNAL` message
//! holds 128 characters: there the refusal is the first sentence of the others'.
//!
//! SQLite, PostgreSQL and MySQL/MariaDB are guarded (the last with `CREATE OR REPLACE
//! TRIGGER`, which is MariaDB's: MySQL itself is not supported).
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

/// The refusal on MySQL/MariaDB, at most 128 characters (`SIGNAL`'s limit).
fn short_refusal(table: &str) -> String {
    let text = format!(
        "promiscuous: a write to published table {table} bypassed its ActiveModel hooks and \
         would not be published"
    );
    text.chars().take(128).collect()
}

/// `"name"` with embedded quotes doubled (SQLite and PostgreSQL identifiers).
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `` `name` `` with embedded backquotes doubled (MySQL identifiers).
fn mysql_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// The name of `table`'s trigger for `event` on MySQL, whose names hold 64 characters: a long
/// table name is cut and followed by a hash of the whole name (FNV-1a, stable across builds).
fn mysql_trigger_name(table: &str, event: &str) -> String {
    let name = format!("promiscuous_guard_{}_{}", table, event.to_lowercase());
    if name.chars().count() <= 64 {
        return name;
    }
    let hash = table.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let start: String = table.chars().take(20).collect();
    format!(
        "promiscuous_guard_{}_{start}_{hash:016x}",
        event.to_lowercase()
    )
}

/// The backends the guard is written for: all of SeaORM's.
pub(crate) fn guarded(backend: DbBackend) -> bool {
    matches!(
        backend,
        DbBackend::Sqlite | DbBackend::Postgres | DbBackend::MySql
    )
}

fn supported(db: &impl ConnectionTrait) -> bool {
    !db.is_mock_connection() && guarded(db.get_database_backend())
}

/// The statement that withdraws the permits of `table` the transaction holds, sent by the hooks
/// with their other last writes (`None` where there is no guard).
pub fn release_sql(backend: DbBackend, table: &str) -> Option<String> {
    guarded(backend).then(|| {
        format!(
            "DELETE FROM {PERMITS} WHERE tbl = {}",
            quoted(backend, table)
        )
    })
}

/// `table` as a string literal of `backend`.
pub(crate) fn quoted(backend: DbBackend, table: &str) -> String {
    if backend == DbBackend::MySql {
        super::sql::mysql_literal(table)
    } else {
        literal(table)
    }
}

/// Creates the permits table (idempotent).
pub async fn create_permits<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    if !supported(db) {
        return Ok(());
    }
    let sql = match db.get_database_backend() {
        // Never a row: the permits are the session's temporary table of this name.
        DbBackend::MySql => format!(
            "CREATE TABLE IF NOT EXISTS {PERMITS} (tbl VARCHAR(255) NOT NULL, \
             CONSTRAINT promiscuous_temporary_only CHECK (tbl = ''))"
        ),
        _ => format!("CREATE TABLE IF NOT EXISTS {PERMITS} (tbl TEXT NOT NULL)"),
    };
    db.execute_unprepared(&sql).await.map(drop)
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
        DbBackend::MySql => Statement::from_sql_and_values(
            backend,
            "SELECT 1 FROM information_schema.tables WHERE table_schema = DATABASE() \
             AND table_name = ?",
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
            DbBackend::MySql => ["INSERT", "UPDATE", "DELETE"]
                .iter()
                .map(|event| {
                    format!(
                        "CREATE OR REPLACE TRIGGER {} BEFORE {event} ON {} FOR EACH ROW \
                         BEGIN IF NOT EXISTS (SELECT 1 FROM {PERMITS} WHERE tbl = {}) THEN \
                         SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = {}; END IF; END",
                        mysql_ident(&mysql_trigger_name(table, event)),
                        mysql_ident(table),
                        super::sql::mysql_literal(table),
                        super::sql::mysql_literal(&short_refusal(table)),
                    )
                })
                .collect(),
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
        assert!(short_refusal(&"t".repeat(64)).chars().count() <= 128);
        assert_eq!(mysql_ident("a`b"), "`a``b`");
        assert_eq!(
            mysql_trigger_name("users", "INSERT"),
            "promiscuous_guard_users_insert"
        );
        let long = mysql_trigger_name(&"x".repeat(60), "DELETE");
        assert!(long.len() <= 64, "{long}");
        assert_ne!(long, mysql_trigger_name(&"x".repeat(61), "DELETE"));
    }
}
