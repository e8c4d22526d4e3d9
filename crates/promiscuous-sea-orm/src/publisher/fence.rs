//! The relay lease's fencing tokens, kept in the publisher's database beside the outbox
//! (`promiscuous_relay_fences`: one row per lease name, its last token), so that they outlive
//! whatever keeps the lease (a Redis failover may lose the lease's key, never these rows).
//!
//! - [`take`]: the next token, `INSERT … ON CONFLICT DO UPDATE SET token = token + 1 RETURNING`
//!   (MySQL: `ON DUPLICATE KEY UPDATE`, then the row read back), when a relay took the lease.
//! - [`hold`]: before a batch, `SELECT token … WHERE name = … AND token = … FOR UPDATE`: no row
//!   means a later token was taken, and the relay publishes nothing. On PostgreSQL and
//!   MySQL/MariaDB the read runs in a transaction kept open until the batch ends: the row stays locked, so a relay taking
//!   the next token waits for the batch in flight, and two relays never publish at once. The
//!   relay then uses a second connection of the pool for the batch itself. On SQLite (one
//!   process, or one file on one machine) the check is made without keeping the lock: a batch
//!   already past the check when another relay takes the lease may still go out, once.

use async_trait::async_trait;
use promiscuous_core::BoxError;
use promiscuous_core::publisher::{FenceGuard, FenceHold, Unfenced};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query, SelectStatement};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, TransactionTrait,
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

fn name_col() -> Alias {
    Alias::new("name")
}

fn token_col() -> Alias {
    Alias::new("token")
}

/// The next token of fence `name` (1 for a new one); `None` on a mock connection.
/// PostgreSQL, SQLite: one upsert returning the token. MySQL/MariaDB (no `RETURNING`): the
/// upsert, then the row read back, in one transaction.
pub async fn take(db: &DatabaseConnection, name: &str) -> Result<Option<u64>, DbErr> {
    if db.is_mock_connection() {
        return Ok(None);
    }
    let backend = db.get_database_backend();
    let next = Expr::col((Alias::new(FENCES), token_col())).add(1);
    let mut upsert = Query::insert();
    upsert
        .into_table(Alias::new(FENCES))
        .columns([name_col(), token_col()])
        .values_panic([name.into(), 1i64.into()])
        .on_conflict(
            OnConflict::column(name_col())
                .value(token_col(), next)
                .to_owned(),
        );
    let no_token = || DbErr::Custom(format!("promiscuous: fence {name:?}: no token returned"));
    let row = if backend == DbBackend::MySql {
        let txn = db.begin().await?;
        txn.execute(&upsert).await?;
        let row = txn
            .query_one(&select_token(name).lock_exclusive().to_owned())
            .await?
            .ok_or_else(no_token)?;
        txn.commit().await?;
        row
    } else {
        upsert.returning_col(token_col());
        db.query_one(&upsert).await?.ok_or_else(no_token)?
    };
    let token: i64 = row.try_get("", "token")?;
    Ok(Some(token as u64))
}

/// `SELECT token FROM promiscuous_relay_fences WHERE name = …`.
fn select_token(name: &str) -> SelectStatement {
    Query::select()
        .column(token_col())
        .from(Alias::new(FENCES))
        .and_where(Expr::col(name_col()).eq(name))
        .to_owned()
}

/// Holds fence `name` at `token` for one batch: `None` if a later token was taken. On
/// PostgreSQL and MySQL/MariaDB the row is read `FOR UPDATE` in a transaction kept open until
/// the batch ends.
pub async fn hold(
    db: &DatabaseConnection,
    name: &str,
    token: u64,
) -> Result<Option<FenceGuard>, DbErr> {
    let backend = db.get_database_backend();
    let mut current = select_token(name)
        .and_where(Expr::col(token_col()).eq(token as i64))
        .to_owned();
    if backend == DbBackend::Sqlite {
        return Ok(db
            .query_one(&current)
            .await?
            .map(|_| Box::new(Unfenced) as FenceGuard));
    }
    let txn = db.begin().await?;
    if txn.query_one(current.lock_exclusive()).await?.is_some() {
        return Ok(Some(Box::new(Locked(txn))));
    }
    txn.rollback().await?;
    Ok(None)
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
