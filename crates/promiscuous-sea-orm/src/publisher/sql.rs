//! The SQL text the publisher writes: string literals ([`literal`], [`postgres_literal`],
//! [`mysql_literal`]), a
//! statement with its values ([`Sql`]), and a batch of statements sent to the database in one
//! round trip ([`SqlBatch`]), which is how a published write ends (versions, outbox, the write
//! permit withdrawn): each round trip costs about as much as the statement itself on SQLite,
//! so the hooks ([`hooks`](super::hooks)) collect their statements and send them together.
//!
//! On SQLite the values are bound to the batch's placeholders (so its text depends only on its
//! shape, and SQLite's statement cache keeps it); PostgreSQL cannot prepare several statements
//! at once, so there they are written into the text as literals that mean the same under any
//! quoting settings.

use sea_orm::sea_query::{
    MysqlQueryBuilder, PostgresQueryBuilder, QueryBuilder, QueryStatementWriter, SqlWriter,
    SqliteQueryBuilder,
};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};

/// `'text'` with embedded quotes doubled: a string literal for SQLite and PostgreSQL (with
/// `standard_conforming_strings`, the default since PostgreSQL 9.1). For constants only (table
/// and app names, ids this crate generates); values are bound (SQLite) or written by
/// [`postgres_literal`].
pub(crate) fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A PostgreSQL string literal of `text` that means `text` whatever the session's quoting
/// settings: `'…'` with quotes doubled, or, if `text` holds a backslash or a NUL, an escape
/// string `E'…'` with quotes doubled and backslashes doubled. sea-query's own writer escapes a
/// quote as `\'`, which a server with `backslash_quote = off` refuses; a plain `'…'` holding a
/// backslash changes meaning with `standard_conforming_strings = off`. A NUL is written `\000`,
/// which PostgreSQL refuses (its text cannot hold one): the write fails with PostgreSQL's error.
pub(crate) fn postgres_literal(text: &str) -> String {
    if !text.contains(['\\', '\0']) {
        return literal(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    out.push_str("E'");
    for c in text.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\000"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A MySQL/MariaDB string literal of `text` that means `text` whatever the session's `sql_mode`
/// (`NO_BACKSLASH_ESCAPES`, `ANSI_QUOTES`): `'…'` with quotes doubled when it holds no backslash
/// and no NUL (a doubled quote means a quote in every mode), else a hexadecimal literal read as
/// UTF-8 (`_utf8mb4 X'…'`). sea-query's MySQL writer escapes with backslashes, which
/// `NO_BACKSLASH_ESCAPES` reads as they are.
pub(crate) fn mysql_literal(text: &str) -> String {
    if !text.contains(['\\', '\0']) {
        return literal(text);
    }
    let mut out = String::with_capacity(text.len() * 2 + 12);
    out.push_str("_utf8mb4 X'");
    for byte in text.as_bytes() {
        out.push_str(&format!("{byte:02X}"));
    }
    out.push('\'');
    out
}

/// SQL text with the values of its `?` placeholders, in order (SQLite); on PostgreSQL, whose
/// batches of several statements cannot be prepared, the values are written into the text (by
/// `postgres_literal`, `mysql_literal`) and there are none.
#[derive(Debug, Default)]
pub struct Sql {
    pub text: String,
    pub values: Vec<Value>,
}

impl Sql {
    /// Text without values.
    pub fn raw(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            values: Vec::new(),
        }
    }

    /// `statement` for `backend`.
    pub fn build(backend: DbBackend, statement: &impl QueryStatementWriter) -> Self {
        match backend {
            DbBackend::Sqlite => {
                let (text, values) = statement.build(SqliteQueryBuilder);
                Self {
                    text,
                    values: values.0,
                }
            }
            DbBackend::Postgres => {
                let mut text = LiteralText(String::with_capacity(256), postgres_literal);
                statement.build_collect_any_into(&PostgresQueryBuilder, &mut text);
                Self::raw(text.0)
            }
            _ => {
                let mut text = LiteralText(String::with_capacity(256), mysql_literal);
                statement.build_collect_any_into(&MysqlQueryBuilder, &mut text);
                Self::raw(text.0)
            }
        }
    }

    /// This text, `separator`, then `next` (its values after these).
    pub fn then(mut self, separator: &str, next: Sql) -> Self {
        self.text.push_str(separator);
        self.text.push_str(&next.text);
        self.values.extend(next.values);
        self
    }
}

/// Writes a statement with its string values as literals of the backend (the second field:
/// [`postgres_literal`], [`mysql_literal`]); the others as sea-query writes them: numbers, NULL.
struct LiteralText(String, fn(&str) -> String);

impl std::fmt::Write for LiteralText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.push_str(s);
        Ok(())
    }
}

impl std::fmt::Display for LiteralText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl SqlWriter for LiteralText {
    fn push_param<T: QueryBuilder>(&mut self, value: Value, query_builder: &T) {
        match value {
            Value::String(Some(text)) => self.0.push_str(&(self.1)(&text)),
            other => query_builder
                .write_value(&mut self.0, &other)
                .expect("writing to a String"),
        }
    }

    fn as_writer(&mut self) -> &mut dyn std::fmt::Write {
        self as _
    }
}

/// The savepoint of a batch on MySQL/MariaDB (see [`SqlBatch::run`]).
const SAVEPOINT: &str = "promiscuous_write";

/// Statements to run in order, in one round trip, with the values of their placeholders.
pub(crate) struct SqlBatch {
    backend: DbBackend,
    statements: Vec<String>,
    /// The values of the statements' placeholders, in order (SQLite).
    values: Vec<Value>,
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
            // MySQL/MariaDB does not abort a transaction whose statement failed, and a batch
            // stops at its first error: the batch runs in a savepoint, undone on failure, so
            // that the caller's transaction holds nothing of a batch that returned an error.
            DbBackend::MySql => {
                let batch =
                    format!("SAVEPOINT {SAVEPOINT};\n{sql};\nRELEASE SAVEPOINT {SAVEPOINT}");
                if let Err(e) = db.execute_unprepared(&batch).await {
                    let undo =
                        format!("ROLLBACK TO SAVEPOINT {SAVEPOINT}; RELEASE SAVEPOINT {SAVEPOINT}");
                    if let Err(undo) = db.execute_unprepared(&undo).await {
                        tracing::warn!(error = %undo, "promiscuous: undoing a failed write");
                    }
                    return Err(e);
                }
            }
            _ => {
                db.execute_unprepared(&sql).await?;
            }
        }
        Ok(())
    }
}
