//! A batch of SQL statements sent to the database in one round trip: what a published write
//! ends with (versions, outbox, the write permit withdrawn). Each round trip costs about as much
//! as the statement itself on SQLite, so the hooks ([`hooks`](super::hooks)) collect their
//! statements here and send them together.
//!
//! On SQLite the values are bound to the batch's placeholders (so its text depends only on its
//! shape, and SQLite's statement cache keeps it); PostgreSQL cannot prepare several statements
//! at once, so there they are written into the text as literals that mean the same under any
//! quoting settings (see [`Sql`]).

use sea_orm::sea_query::QueryStatementWriter;
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

use super::transaction::Sql;

/// Statements to run in order, in one round trip, with the values of their placeholders.
pub(crate) struct SqlBatch {
    backend: DbBackend,
    statements: Vec<String>,
    /// The values of the statements' placeholders, in order (SQLite).
    values: Vec<sea_orm::Value>,
}

impl SqlBatch {
    /// An empty batch for `backend`.
    pub(crate) fn new(backend: DbBackend) -> Self {
        Self {
            backend,
            statements: Vec::new(),
            values: Vec::new(),
        }
    }

    /// Adds `statement`, built for the batch's backend.
    pub(crate) fn push(&mut self, statement: &impl QueryStatementWriter) {
        let sql = Sql::build(self.backend, statement);
        self.push_sql(sql);
    }

    /// Adds SQL text with its values.
    pub(crate) fn push_sql(&mut self, sql: Sql) {
        self.statements.push(sql.text);
        self.values.extend(sql.values);
    }

    /// Adds SQL text without values.
    pub(crate) fn push_text(&mut self, text: String) {
        self.statements.push(text);
    }

    /// Whether nothing was added.
    pub(crate) fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }

    /// Runs the statements, in order, in one round trip (nothing when empty).
    pub(crate) async fn run<C: ConnectionTrait>(self, db: &C) -> Result<(), DbErr> {
        if self.statements.is_empty() {
            return Ok(());
        }
        let sql = self.statements.join(";\n");
        match self.backend {
            // sqlx binds the values of a batch to the placeholders of its statements in turn.
            DbBackend::Sqlite => {
                db.execute_raw(Statement::from_sql_and_values(
                    self.backend,
                    sql,
                    self.values,
                ))
                .await?;
            }
            _ => {
                db.execute_unprepared(&sql).await?;
            }
        }
        Ok(())
    }
}
