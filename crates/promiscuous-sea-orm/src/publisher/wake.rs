//! Which outbox database a connection writes to, so that a write wakes the relay of that
//! database only (see `promiscuous_core::publisher::wake`).
//!
//! SeaORM's `ConnectionTrait` does not tell which database it is connected to, so the identity
//! comes from the database itself, by one small query, made by the writer only while relays of
//! two or more databases run in this process (with one, the common case, the writer wakes it
//! without asking: [`wake::only_database`]; none, it wakes nobody):
//! - PostgreSQL: database, schema (the outbox's tables live in the current schema) and server
//!   address and port, from built-in functions (a query that cannot fail, which matters: a
//!   failed statement would abort the caller's transaction);
//! - SQLite: a random id kept in table `promiscuous_database`, created with the publisher's
//!   tables ([`create_identity`]); an in-memory database has no name to go by. A failed query
//!   leaves an SQLite transaction usable, so a database set up by an older promiscuous (no such
//!   table) just wakes nobody;
//! - MySQL: database, host name and port.
//!
//! A wrong identity is never a lost row: a relay not woken finds the row at its next poll.

use promiscuous_core::publisher::wake;
pub use promiscuous_core::publisher::wake::{Registration, Wake, register};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

use super::sql::literal;

/// The SQLite table holding the database's identity (one row).
pub const IDENTITY: &str = "promiscuous_database";

/// Creates the identity of an SQLite database if it has none (idempotent; nothing to create on
/// other backends).
pub async fn create_identity<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    if db.get_database_backend() != DbBackend::Sqlite || db.is_mock_connection() {
        return Ok(());
    }
    db.execute_unprepared(&format!(
        "CREATE TABLE IF NOT EXISTS {IDENTITY} (id TEXT NOT NULL)"
    ))
    .await?;
    db.execute_unprepared(&format!(
        "INSERT INTO {IDENTITY} (id) SELECT {} WHERE NOT EXISTS (SELECT 1 FROM {IDENTITY})",
        literal(&uuid::Uuid::new_v4().to_string())
    ))
    .await
    .map(drop)
}

/// The identity of the database `db` is connected to (`None` if it cannot tell).
pub async fn database_id<C: ConnectionTrait>(db: &C) -> Result<Option<String>, DbErr> {
    if db.is_mock_connection() {
        return Ok(None);
    }
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "SELECT 'postgres:' || current_database() || '/' || coalesce(current_schema(), '') \
             || '@' || coalesce(host(inet_server_addr()), 'socket') || ':' \
             || coalesce(inet_server_port(), 0)::text AS id"
                .to_string()
        }
        DbBackend::MySql => {
            "SELECT CONCAT('mysql:', coalesce(DATABASE(), ''), '@', @@hostname, ':', @@port) AS id"
                .to_string()
        }
        _ => format!("SELECT 'sqlite:' || id AS id FROM {IDENTITY} ORDER BY id LIMIT 1"),
    };
    let row = db
        .query_one_raw(Statement::from_string(backend, sql))
        .await?;
    row.map(|r| r.try_get::<String>("", "id")).transpose()
}

/// Wakes the relays of `db`'s outbox that run in this process, after the writer added rows.
/// Never fails the write: an identity that cannot be read wakes nobody (the relays poll).
pub async fn outbox_written<C: ConnectionTrait>(db: &C) {
    if !wake::any_registered() {
        return;
    }
    if let Some(only) = wake::only_database() {
        // No round trip in the common case: if this write went to another database, the relay
        // woken for nothing finds no new row.
        wake::outbox_written(&only);
        return;
    }
    match database_id(db).await {
        Ok(Some(id)) => {
            wake::outbox_written(&id);
        }
        Ok(None) => {}
        Err(e) => tracing::debug!(error = %e, "promiscuous: no relay woken (database unknown)"),
    }
}
