//! Transparent read tracking: a connection wrapper that records, in the current
//! `promiscuous::context`, every published instance a query reads, at its current version.
//!
//! ```ignore
//! promiscuous::context(async {
//!     let txn = promiscuous::tracked(db.begin().await?);
//!     let parent = friendship::Entity::find_by_id(7).one(&txn).await?; // a read dependency
//!     photo::ActiveModel { .. }.insert(&txn).await?;                  // depends on it
//!     txn.commit().await
//! })
//! ```
//!
//! Which rows are instances of published models is known from a process-wide registry that
//! `#[publish]` fills ([`PublishedEntity`], collected with `inventory`): for a `SELECT` that reads
//! a published table, each returned row that decodes as that model (plain `find`, `find_by_id`,
//! and the `A_`/`B_`/`C_` prefixes of `find_also_related` and friends) is an instance read. Its
//! version is looked up in `promiscuous_versions`, with one query per result (under READ
//! COMMITTED, PostgreSQL's default, a write committed between the two statements makes the
//! recorded version newer than the row read: a stronger dependency, never a weaker one; under
//! REPEATABLE READ, SERIALIZABLE, or in an SQLite transaction, both see one snapshot). Rows
//! that do not decode (a `select_only` of a few columns, an aggregate) are not tracked: use
//! [`track_read`](super::track_read) for those. Outside a context nothing is looked up.
//!
//! Which tables a statement reads is found from its SQL text, because that is all a wrapper of
//! SeaORM's `ConnectionTrait` receives (built `Statement`s, not SeaORM's query structure). The
//! text is tokenised, not searched (`publisher::read_tables`): the tables are the names after `FROM`
//! and `JOIN` (quoted or not, schema-qualified or not, in subqueries and `WITH` clauses too),
//! and a name inside a string literal, a comment or a column alias does not count. Reading too
//! many tables costs a failed decode per row; missing one would lose a read dependency, so the
//! tokeniser errs on the side of listing a name.

use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;

use async_trait::async_trait;
use promiscuous_core::publisher::context;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    EntityTrait, ExecResult, QueryFilter, QueryResult, Statement, TransactionTrait,
};

use super::read_tables::read_tables;

use crate::tables::versions;

/// A published entity, as registered by `#[publish]` (see the [module documentation](self)).
pub struct PublishedEntity {
    /// Its table's name.
    pub table: fn() -> &'static str,
    /// The instance keys (one per endpoint) of a row read with column prefix `prefix`, if the
    /// row is a whole row of this entity.
    pub keys_of: fn(&QueryResult, &str) -> Vec<String>,
}

inventory::collect!(PublishedEntity);

/// Column prefixes SeaORM gives the models of a joined select (`SelectA`, `SelectB`, `SelectC`).
const PREFIXES: [&str; 4] = ["", "A_", "B_", "C_"];

/// Published entities by table name, lower-cased: built once, so a query costs one hash lookup
/// per table it reads, whatever the number of published tables.
fn registry() -> &'static HashMap<String, Vec<&'static PublishedEntity>> {
    static REGISTRY: OnceLock<HashMap<String, Vec<&'static PublishedEntity>>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut map: HashMap<String, Vec<&'static PublishedEntity>> = HashMap::new();
        for e in inventory::iter::<PublishedEntity> {
            map.entry((e.table)().to_ascii_lowercase())
                .or_default()
                .push(e);
        }
        map
    })
}

/// The published entities whose table a read statement reads (see [`read_tables`]).
fn read_entities(stmt: &Statement) -> Vec<&'static PublishedEntity> {
    let tables = read_tables(&stmt.sql);
    let registry = registry();
    let mut found: Vec<&'static PublishedEntity> = tables
        .iter()
        .filter_map(|t| registry.get(t))
        .flat_map(|entities| entities.iter().copied())
        .collect();
    found.sort_by_key(|e| *e as *const PublishedEntity);
    found.dedup_by_key(|e| *e as *const PublishedEntity);
    found
}

/// A connection (a transaction, usually) whose reads of published models are read
/// dependencies of the current context's next writes. See the [module documentation](self).
#[derive(Debug)]
pub struct Tracked<C> {
    inner: C,
}

/// Wraps a connection or a transaction so that its reads are tracked.
pub fn tracked<C: ConnectionTrait>(inner: C) -> Tracked<C> {
    Tracked { inner }
}

impl<C> Tracked<C> {
    /// The wrapped connection (its reads are not tracked).
    pub fn inner(&self) -> &C {
        &self.inner
    }

    /// Unwraps the connection.
    pub fn into_inner(self) -> C {
        self.inner
    }
}

impl Tracked<DatabaseConnection> {
    /// Begins a transaction whose reads are tracked too.
    pub async fn begin(&self) -> Result<Tracked<DatabaseTransaction>, DbErr> {
        Ok(tracked(self.inner.begin().await?))
    }
}

impl Tracked<DatabaseTransaction> {
    /// Commits the transaction.
    pub async fn commit(self) -> Result<(), DbErr> {
        self.inner.commit().await
    }

    /// Rolls the transaction back.
    pub async fn rollback(self) -> Result<(), DbErr> {
        self.inner.rollback().await
    }
}

impl<C: ConnectionTrait + Send> Tracked<C> {
    /// Records the published instances among `rows` as read, at their current version.
    async fn track(
        &self,
        entities: &[&PublishedEntity],
        rows: &[QueryResult],
    ) -> Result<(), DbErr> {
        let keys: BTreeSet<String> = rows
            .iter()
            .flat_map(|row| {
                entities.iter().flat_map(move |e| {
                    PREFIXES
                        .iter()
                        .flat_map(move |prefix| (e.keys_of)(row, prefix))
                })
            })
            .collect();
        let keys: Vec<String> = keys.into_iter().collect();
        // Well under SQLite's limit of bound parameters per statement.
        for chunk in keys.chunks(500) {
            let found = versions::Entity::find()
                .filter(versions::Column::Key.is_in(chunk.iter().cloned()))
                .all(&self.inner)
                .await
                .map_err(|e| {
                    DbErr::Custom(format!(
                        "promiscuous: looking up the versions of {} instance(s) read in a \
                         causal context: {e}",
                        chunk.len()
                    ))
                })?;
            for row in found {
                context::record_read(&row.key, row.version as u64);
            }
        }
        Ok(())
    }

    fn tracking(&self, stmt: &Statement) -> Vec<&'static PublishedEntity> {
        if context::in_context() {
            read_entities(stmt)
        } else {
            Vec::new()
        }
    }
}

#[async_trait]
impl<C: ConnectionTrait + Send> ConnectionTrait for Tracked<C> {
    fn get_database_backend(&self) -> DbBackend {
        self.inner.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.inner.execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.inner.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        let entities = self.tracking(&stmt);
        let row = self.inner.query_one_raw(stmt).await?;
        if let Some(row) = &row
            && !entities.is_empty()
        {
            self.track(&entities, std::slice::from_ref(row)).await?;
        }
        Ok(row)
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let entities = self.tracking(&stmt);
        let rows = self.inner.query_all_raw(stmt).await?;
        if !entities.is_empty() && !rows.is_empty() {
            self.track(&entities, &rows).await?;
        }
        Ok(rows)
    }

    fn support_returning(&self) -> bool {
        self.inner.support_returning()
    }

    fn is_mock_connection(&self) -> bool {
        self.inner.is_mock_connection()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stmt(sql: &str) -> Statement {
        Statement::from_string(DbBackend::Sqlite, sql)
    }

    #[test]
    fn only_selects_are_reads() {
        // No entity is registered in this crate's own tests: nothing matches, nothing panics.
        assert!(read_entities(&stmt("SELECT \"users\".\"id\" FROM \"users\"")).is_empty());
        assert!(read_entities(&stmt("INSERT INTO \"users\" VALUES (1)")).is_empty());
        assert!(read_entities(&stmt("")).is_empty());
        assert!(read_entities(&stmt("é")).is_empty());
    }
}
