//! The relay lease's fencing tokens, kept in the publisher's database beside the outbox
//! (`promiscuous_relay_fences`: one row per lease name, its last token), so that they outlive
//! whatever keeps the lease (a Redis failover may lose the lease's key, never these rows).
//!
//! - [`take`]: the next token, `INSERT … ON CONFLICT DO UPDATE SET token = token + 1 RETURNING`,
//!   when a relay took the lease.
//! - [`hold`]: before a batch, `UPDATE … SET token = token WHERE name = … AND token = …`: no row
//!   means a later token was taken, and the relay publishes nothing. On PostgreSQL the update runs
//!   in a transaction kept open until the batch ends: the row stays locked, so a relay taking
//!   the next token waits for the batch in flight, and two relays never publish at once. The
//!   relay then uses a second connection of the pool for the batch itself. On SQLite (one
//!   process, or one file on one machine) the check is made without keeping the lock: a batch
//!   already past the check when another relay takes the lease may still go out, once.

use async_trait::async_trait;
use promiscuous_core::BoxError;
use promiscuous_core::publisher::{FenceGuard, FenceHold, Unfenced};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, Statement,
    TransactionTrait,
};

/// The table of fencing tokens.
pub const FENCES: &str = "promiscuous_relay_fences";

/// Creates the table if missing.
pub async fn create_fences<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    if db.is_mock_connection() {
        return Ok(());
    }
    db.execute_unprepared(&format!(
        "CREATE TABLE IF NOT EXISTS {FENCES} (name VARCHAR(255) NOT NULL PRIMARY KEY, \
         token BIGINT NOT NULL)"
    ))
    .await
    .map(drop)
}

fn statement(backend: DbBackend, postgres: &str, values: Vec<sea_orm::Value>) -> Statement {
    let sql = match backend {
        DbBackend::Postgres => postgres.to_string(),
        _ => {
            // `$1`, `$2` … as `?` (in order: each is used once, in order, in these statements).
            let mut sql = postgres.to_string();
            for i in (1..=values.len()).rev() {
                sql = sql.replace(&format!("${i}"), "?");
            }
            sql
        }
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// The next token of fence `name` (1 for a new one); `None` on a mock connection.
pub async fn take(db: &DatabaseConnection, name: &str) -> Result<Option<u64>, DbErr> {
    if db.is_mock_connection() {
        return Ok(None);
    }
    let backend = db.get_database_backend();
    let sql = format!(
        "INSERT INTO {FENCES} (name, token) VALUES ($1, 1) ON CONFLICT (name) DO UPDATE SET \
         token = {FENCES}.token + 1 RETURNING token"
    );
    let row = db
        .query_one_raw(statement(backend, &sql, vec![name.into()]))
        .await?
        .ok_or_else(|| DbErr::Custom(format!("promiscuous: fence {name:?}: no token returned")))?;
    let token: i64 = row.try_get("", "token")?;
    Ok(Some(token as u64))
}

/// Holds fence `name` at `token` for one batch: `None` if a later token was taken.
pub async fn hold(
    db: &DatabaseConnection,
    name: &str,
    token: u64,
) -> Result<Option<FenceGuard>, DbErr> {
    let backend = db.get_database_backend();
    let sql = format!("UPDATE {FENCES} SET token = token WHERE name = $1 AND token = $2");
    let check = || statement(backend, &sql, vec![name.into(), (token as i64).into()]);
    if backend == DbBackend::Postgres {
        let txn = db.begin().await?;
        if txn.execute_raw(check()).await?.rows_affected() == 1 {
            return Ok(Some(Box::new(Locked(txn))));
        }
        txn.rollback().await?;
        return Ok(None);
    }
    if db.execute_raw(check()).await?.rows_affected() == 1 {
        Ok(Some(Box::new(Unfenced)))
    } else {
        Ok(None)
    }
}

/// A fence row locked by an open transaction, until the batch ends.
struct Locked(DatabaseTransaction);

#[async_trait]
impl FenceHold for Locked {
    async fn release(self: Box<Self>) -> Result<(), BoxError> {
        self.0.commit().await?;
        Ok(())
    }
}
