//! Claiming applied versions (`promiscuous_applied`) before their effect, in the transaction
//! that applies them: a version is claimed when it is newer than the recorded one, by one
//! conditional upsert, so that a redelivered message has no second effect even when two
//! workers apply it at once (the second waits on the first's row lock, then finds the version
//! taken).
//!
//! [`claim_all`] claims every operation of a message or batch up front, in one statement per
//! 400 keys (`INSERT … ON CONFLICT DO UPDATE … WHERE … RETURNING key`: the rows returned are
//! the claimed ones), instead of one round trip per operation. It falls back to one claim per
//! operation ([`Claims::OneByOne`], [`claim`]) where one statement cannot tell: a key written
//! twice in the transaction (which of its versions are new depends on the recorded one), or a
//! database without `RETURNING` (MySQL/MariaDB).
//!
//! MySQL/MariaDB has no conditional upsert that says what it did (`ON DUPLICATE KEY UPDATE`
//! counts a row set to its own value as changed or not depending on the client's
//! `CLIENT_FOUND_ROWS`, so an insert and a stale version look alike), so there the claim
//! records its outcome in a session variable: `INSERT … VALUES (key, IF(@c := 1, v, NULL)) ON
//! DUPLICATE KEY UPDATE version = IF(@c := (version < VALUES(version)), VALUES(version),
//! version)`, then `SELECT @c`. The upsert takes the row's exclusive lock at once, so workers
//! claiming the same key queue behind each other (an `INSERT IGNORE` then `UPDATE` would take a
//! shared lock first, and two such workers deadlock).

use std::collections::HashSet;

use promiscuous_core::subscriber::ApplyError;
use promiscuous_core::{Message, Operation};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, Set};

use super::errors::{db_error, txn_error};
use crate::tables::applied;

/// Keys per claiming statement: two bound parameters each, well under SQLite's limit.
const CHUNK: usize = 400;

/// Which operations of a transaction are claimed.
#[derive(Debug)]
pub(super) enum Claims {
    /// Claimed up front: the keys whose operation's version was newer than the recorded one
    /// (each key is written once in the transaction).
    Taken(HashSet<String>),
    /// To be claimed one operation at a time, in order, just before its effect.
    OneByOne,
}

impl Claims {
    /// Whether `op` is claimed, or may be when its turn comes ([`Claims::OneByOne`]).
    pub fn may_be_claimed(&self, op: &Operation) -> bool {
        match self {
            Claims::Taken(keys) => keys.contains(&op.key()),
            Claims::OneByOne => true,
        }
    }

    /// Whether `op` is claimed: looked up, or claimed now ([`Claims::OneByOne`]).
    pub async fn claim(
        &self,
        txn: &DatabaseTransaction,
        op: &Operation,
    ) -> Result<bool, ApplyError> {
        match self {
            Claims::Taken(keys) => Ok(keys.contains(&op.key())),
            Claims::OneByOne => claim(txn, op).await,
        }
    }
}

/// Claims, in `txn`, the operations of `messages` that `followed` selects (those something
/// here applies), in one statement per [`CHUNK`] keys; see the module's documentation for
/// when it leaves them to be claimed one by one.
pub(super) async fn claim_all(
    txn: &DatabaseTransaction,
    messages: &[&Message],
    followed: impl Fn(&Operation) -> bool,
) -> Result<Claims, ApplyError> {
    let backend = txn.get_database_backend();
    if !matches!(backend, DbBackend::Sqlite | DbBackend::Postgres) {
        return Ok(Claims::OneByOne);
    }
    let mut rows: Vec<(String, i64)> = messages
        .iter()
        .flat_map(|m| m.operations.iter())
        .filter(|op| followed(op))
        .map(|op| (op.key(), op.version as i64))
        .collect();
    // Sorted: concurrent transactions take the rows' locks in one order (no deadlock).
    rows.sort_unstable();
    if rows.windows(2).any(|w| w[0].0 == w[1].0) {
        return Ok(Claims::OneByOne);
    }
    let mut taken = HashSet::with_capacity(rows.len());
    for chunk in rows.chunks(CHUNK) {
        let on_conflict =
            OnConflict::column(applied::Column::Key)
                .update_column(applied::Column::Version)
                .action_and_where(Expr::col((applied::Entity, applied::Column::Version)).lt(
                    Expr::col((Alias::new("excluded"), applied::Column::Version)),
                ))
                .to_owned();
        let mut insert = Query::insert();
        insert
            .into_table(applied::Entity)
            .columns([applied::Column::Key, applied::Column::Version])
            .on_conflict(on_conflict)
            .returning_col(applied::Column::Key);
        for (key, version) in chunk {
            insert.values_panic([key.clone().into(), (*version).into()]);
        }
        let claimed = txn
            .query_all(&insert)
            .await
            .map_err(txn_error("claiming the applied versions"))?;
        for row in claimed {
            let key: String = row
                .try_get("", "key")
                .map_err(txn_error("reading the claimed versions"))?;
            taken.insert(key);
        }
    }
    Ok(Claims::Taken(taken))
}

/// Records `op.version` as the instance's applied version if it is newer than the recorded one,
/// in one conditional upsert; returns whether it was (`false`: a duplicate or a stale version).
/// Done before the operation's effect.
pub(super) async fn claim(txn: &DatabaseTransaction, op: &Operation) -> Result<bool, ApplyError> {
    let version = op.version as i64;
    if txn.get_database_backend() == DbBackend::MySql {
        return claim_mysql(txn, op).await;
    }
    let on_conflict = OnConflict::column(applied::Column::Key)
        .update_column(applied::Column::Version)
        .action_and_where(Expr::col((applied::Entity, applied::Column::Version)).lt(version))
        .to_owned();
    let rows = applied::Entity::insert(applied::ActiveModel {
        key: Set(op.key()),
        version: Set(version),
    })
    .on_conflict(on_conflict)
    .exec_without_returning(txn)
    .await
    .map_err(|e| db_error(op, "recording the applied version", e))?;
    Ok(rows > 0)
}

/// [`claim`] on MySQL/MariaDB (see the module's documentation).
async fn claim_mysql(txn: &DatabaseTransaction, op: &Operation) -> Result<bool, ApplyError> {
    let upsert = sea_orm::Statement::from_sql_and_values(
        DbBackend::MySql,
        "INSERT INTO promiscuous_applied (`key`, version) \
         VALUES (?, IF(@promiscuous_claimed := 1, ?, NULL)) \
         ON DUPLICATE KEY UPDATE version = \
         IF(@promiscuous_claimed := (version < VALUES(version)), VALUES(version), version)",
        [op.key().into(), (op.version as i64).into()],
    );
    let failed = |e| db_error(op, "recording the applied version", e);
    txn.execute_raw(upsert).await.map_err(failed)?;
    let claimed = txn
        .query_one_raw(sea_orm::Statement::from_string(
            DbBackend::MySql,
            "SELECT CAST(@promiscuous_claimed AS SIGNED) AS claimed",
        ))
        .await
        .map_err(failed)?
        .map(|row| row.try_get::<Option<i64>>("", "claimed"))
        .transpose()
        .map_err(failed)?
        .flatten();
    Ok(claimed == Some(1))
}
