//! How the hooks know the caller's database transaction: the one message per app that its
//! published writes build up, and the refusal of a write made outside any transaction.
//!
//! SeaORM's hooks receive a connection (`&C: ConnectionTrait`) and nothing says whether it is a
//! transaction, which one, or when it commits. So the hooks ask the database, with state that
//! the database itself scopes to the transaction:
//!
//! | | "this transaction is known" | "its message for app A" |
//! |---|---|---|
//! | PostgreSQL | the setting `promiscuous.transaction` = `open`, set with `set_config(.., is_local => true)`: it lasts until the transaction ends | the setting `promiscuous.outbox`, a JSON object app → outbox row id, also transaction-local |
//! | SQLite | `PRAGMA defer_foreign_keys` is on: SQLite switches it off at every `COMMIT` and `ROLLBACK` | rows of the connection's temporary table `promiscuous_transaction` (app → outbox row id) stamped with the transaction's nonce |
//! | MySQL, MariaDB | `@@in_transaction` is 1 and the session variable `@promiscuous_transaction` holds the transaction's number: the count of the session's `BEGIN`, `COMMIT` and `ROLLBACK` statements (its status counters), which every transaction end changes | rows of the session's temporary InnoDB table `promiscuous_transaction` (app → outbox row id) stamped with the transaction's number |
//!
//! The messages are rolled back with a savepoint (a transaction-local setting is restored by
//! `ROLLBACK TO SAVEPOINT`; a temporary table's rows are rolled back like any other), together
//! with the outbox rows written inside it, so a rolled-back nested transaction removes exactly
//! its own operations.
//!
//! On SQLite the pragma survives a rolled-back savepoint while the temporary rows do not: if
//! the first published write of a transaction ran in a savepoint that was rolled back, the rows
//! of an earlier, committed transaction on the same connection come back. So each transaction
//! that starts publishing draws a nonce, kept in this process for the connection (a temporary
//! table holds a random id per connection), and only the rows stamped with the current nonce
//! are this transaction's messages.
//!
//! The first published write of a transaction finds the mark missing and checks that it runs
//! inside a transaction at all:
//! - PostgreSQL: it sets the transaction-local mark in one statement and looks for it in the
//!   next. Outside a transaction block each statement is a transaction of its own, so the mark
//!   is gone by then and the write is refused, before anything was written.
//! - SQLite: in the same round trip as every write's check, it turns the pragma on and runs an
//!   empty `SELECT` before looking at it again: outside a transaction each statement commits on
//!   its own, and that commit switches the pragma off, so the write is refused; inside, it stays
//!   on (and marks the transaction).
//!
//! Side effect on SQLite: foreign keys are checked at `COMMIT`, not at each statement, from the
//! first published write of a transaction on (a violation still fails the transaction, at its
//! commit). An application that sets `defer_foreign_keys` itself defeats the mark: outside a
//! transaction, just before a published write, the check (don't); inside one, before its first
//! published write, the hooks may take the previous transaction's message on the connection for
//! this one's. Nothing is lost then (the relay publishes operations appended to a message it
//! already read as a message of their own, see `SeaOrmOutbox::remove`), but the transaction's
//! operations may be split over two messages: don't either.
//!
//! - MySQL, MariaDB: it creates the session's temporary tables if missing (a temporary table's
//!   `CREATE` does not end the transaction), sets `@promiscuous_transaction` to the
//!   transaction's number if `@@in_transaction` says there is one (else to NULL), and looks
//!   again: outside a transaction the write is refused. The temporary tables are InnoDB's, so
//!   their rows are rolled back with the transaction and with a savepoint. A transaction begun
//!   without `BEGIN` (`autocommit = 0`) after an implicit commit (a DDL statement) keeps the
//!   number of the one before: its operations may then be appended to that committed message,
//!   and the relay publishes them as a message of their own, as on SQLite above.
//!
//! Each published write on MySQL/MariaDB reads the session's status counters (about 0.8 ms of
//! the server's time on this machine's MariaDB 10.11): there is no cheaper transaction id a
//! session may read without the PROCESS privilege.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, OnceLock};

use sea_orm::sea_query::Expr;
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};

use super::guard::PERMITS;
use super::sql::{literal, mysql_literal, postgres_literal};

pub use super::sql::Sql;

/// The temporary table that maps, on SQLite and MySQL, each app to its message in this
/// transaction.
const MESSAGES_TABLE: &str = "promiscuous_transaction";

fn outside_a_transaction(endpoint: &str) -> DbErr {
    DbErr::Custom(format!(
        "promiscuous: a write to published model `{endpoint}` must run inside a transaction \
         (`let txn = db.begin().await?; ...; txn.commit().await?` or `db.transaction(...)`), so \
         that its outbox row commits atomically with the change; nothing was written"
    ))
}

fn unsupported(endpoint: &str, backend: DbBackend) -> DbErr {
    DbErr::Custom(format!(
        "promiscuous: `{endpoint}`: publishing from {backend:?} is not supported (SQLite, \
         PostgreSQL and MariaDB are)"
    ))
}

/// Called before each published write (and before an ephemeral or a sync is recorded): refuses
/// it outside a transaction, else marks the transaction as publishing and, when `permit` names
/// a table, lets this transaction change one row of it (see [`guard`](super::guard)).
/// On a mock connection nothing is checked.
pub async fn enter<C: ConnectionTrait>(
    db: &C,
    endpoint: &str,
    permit: Option<&str>,
) -> Result<(), DbErr> {
    if db.is_mock_connection() {
        return Ok(());
    }
    match db.get_database_backend() {
        DbBackend::Postgres => {
            let marked = marked(DbBackend::Postgres);
            enter_marking(db, endpoint, permit, POSTGRES_MARK, marked).await
        }
        DbBackend::Sqlite => enter_sqlite(db, endpoint, permit).await,
        DbBackend::MySql => {
            enter_marking(db, endpoint, permit, &mysql_setup(), MYSQL_JUST_MARKED).await
        }
        other => Err(unsupported(endpoint, other)),
    }
}

/// The condition "this transaction is marked" in SQL.
fn marked(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => "current_setting('promiscuous.transaction', true) = 'open'",
        DbBackend::MySql => MYSQL_MARKED,
        _ => "(SELECT defer_foreign_keys FROM pragma_defer_foreign_keys) = 1",
    }
}

/// MySQL: the number of the session's transaction, from its status counters (see the module's
/// documentation).
macro_rules! mysql_transaction {
    () => {
        "(SELECT CAST(SUM(VARIABLE_VALUE) AS SIGNED) FROM information_schema.SESSION_STATUS \
         WHERE VARIABLE_NAME IN ('COM_BEGIN', 'COM_COMMIT', 'COM_ROLLBACK'))"
    };
}

/// MySQL: "this transaction is marked".
const MYSQL_MARKED: &str = concat!(
    "@@in_transaction = 1 AND @promiscuous_transaction = ",
    mysql_transaction!()
);

/// MySQL: the session's temporary tables, made by the transaction's first published write:
/// the write permits (they shadow the table of that name, which refuses every row: see
/// [`guard`](super::guard)) and this transaction's messages. Then the mark; the messages of
/// other transactions and any permit left over are removed (a permit outlives its write when
/// the model's own statement failed and the application committed anyway: MariaDB does not
/// abort a transaction for a failed statement).
fn mysql_setup() -> String {
    format!(
        "CREATE TEMPORARY TABLE IF NOT EXISTS {PERMITS} (tbl VARCHAR(255) NOT NULL) \
         ENGINE = InnoDB; \
         CREATE TEMPORARY TABLE IF NOT EXISTS {MESSAGES} (app VARCHAR(255) NOT NULL, \
         outbox_id BIGINT NOT NULL, txn BIGINT NOT NULL, message VARCHAR(64) NOT NULL) \
         ENGINE = InnoDB; \
         SET @promiscuous_transaction = IF(@@in_transaction = 1, {transaction}, NULL); \
         DELETE FROM {MESSAGES} WHERE NOT txn <=> @promiscuous_transaction; \
         DELETE FROM {PERMITS}",
        MESSAGES = MESSAGES_TABLE,
        transaction = mysql_transaction!()
    )
}

/// MySQL, right after [`mysql_setup`] marked the transaction (or found none): whether it did,
/// without reading the status counters again.
const MYSQL_JUST_MARKED: &str = "@@in_transaction = 1 AND @promiscuous_transaction IS NOT NULL";

/// Grants the permit if the transaction is marked (one statement); returns whether it is.
async fn permit_if_marked<C: ConnectionTrait>(db: &C, permit: Option<&str>) -> Result<bool, DbErr> {
    permit_if(db, permit, marked(db.get_database_backend())).await
}

/// Grants the permit if `condition` holds (one statement); returns whether it does.
async fn permit_if<C: ConnectionTrait>(
    db: &C,
    permit: Option<&str>,
    condition: &str,
) -> Result<bool, DbErr> {
    let backend = db.get_database_backend();
    match permit {
        Some(table) => {
            let sql = format!(
                "INSERT INTO {PERMITS} (tbl) SELECT {}{} WHERE {condition}",
                super::guard::quoted(backend, table),
                from_dual(backend)
            );
            Ok(db.execute_unprepared(&sql).await?.rows_affected() == 1)
        }
        None => {
            let sql = format!("SELECT 1 AS marked{} WHERE {condition}", from_dual(backend));
            Ok(db
                .query_one_raw(Statement::from_string(backend, sql))
                .await?
                .is_some())
        }
    }
}

/// MySQL wants a table for a `WHERE`.
fn from_dual(backend: DbBackend) -> &'static str {
    if backend == DbBackend::MySql {
        " FROM DUAL"
    } else {
        ""
    }
}

/// PostgreSQL, MySQL/MariaDB: one round trip for every write of a marked transaction; the
/// first one (or one outside a transaction) marks the transaction if there is one (`mark`: on
/// MySQL it also makes the session's temporary tables) and looks again (`then`: whether it
/// did).
async fn enter_marking<C: ConnectionTrait>(
    db: &C,
    endpoint: &str,
    permit: Option<&str>,
    mark: &str,
    then: &str,
) -> Result<(), DbErr> {
    if permit_if_marked(db, permit).await? {
        return Ok(());
    }
    db.execute_unprepared(mark).await?;
    if permit_if(db, permit, then).await? {
        Ok(())
    } else {
        Err(outside_a_transaction(endpoint))
    }
}

/// PostgreSQL's mark: a transaction-local setting.
const POSTGRES_MARK: &str = "SELECT set_config('promiscuous.transaction', 'open', true)";

/// SQLite. Every write: one round trip reads whether the transaction is marked and takes the
/// permit if it is. The transaction's first write (or one outside a transaction) needs a second
/// one: it marks the transaction (the pragma), makes sure of the temporary tables and of the
/// connection's id, forgets the messages of earlier transactions (their rows would only be
/// skipped, by their nonce), and looks at the mark again. Outside a transaction each statement commits on
/// its own, which switches the pragma off again: the empty `SELECT` after the `PRAGMA` is there
/// for that, and the write is refused. Both statements are constant for a table, so SQLite's
/// prepared-statement cache keeps them.
async fn enter_sqlite<C: ConnectionTrait>(
    db: &C,
    endpoint: &str,
    permit: Option<&str>,
) -> Result<(), DbErr> {
    let condition = marked(DbBackend::Sqlite);
    let permit_sql = permit
        .map(|table| {
            format!(
                " INSERT INTO {PERMITS} (tbl) SELECT {} WHERE {condition};",
                literal(table)
            )
        })
        .unwrap_or_default();
    // The row comes last: the driver stops at the first row a single-row query returns.
    let fast =
        format!("{permit_sql} SELECT defer_foreign_keys AS was FROM pragma_defer_foreign_keys");
    let was = db
        .query_one_raw(Statement::from_string(DbBackend::Sqlite, fast))
        .await?
        .map(|r| r.try_get::<i64>("", "was"))
        .transpose()?
        .unwrap_or(0);
    if was == 1 {
        return Ok(());
    }
    let setup = format!(
        "PRAGMA defer_foreign_keys = ON; \
         SELECT 1 WHERE 0; \
         {SQLITE_TABLES} \
         DELETE FROM temp.{MESSAGES_TABLE}; \
         INSERT INTO temp.{SQLITE_CONNECTION} (id) SELECT lower(hex(randomblob(16))) \
         WHERE {condition} AND NOT EXISTS (SELECT 1 FROM temp.{SQLITE_CONNECTION});\
         {permit_sql} \
         SELECT {condition} AS marked, \
         (SELECT id FROM temp.{SQLITE_CONNECTION}) AS connection"
    );
    let row = db
        .query_one_raw(Statement::from_string(DbBackend::Sqlite, setup))
        .await?
        .ok_or_else(|| {
            DbErr::Custom("promiscuous: the transaction check returned nothing".into())
        })?;
    if row.try_get::<i64>("", "marked")? != 1 {
        return Err(outside_a_transaction(endpoint));
    }
    // The transaction's first published write: a new nonce for its messages.
    let connection: String = row.try_get("", "connection")?;
    nonces().insert(connection, next_nonce());
    Ok(())
}

/// The temporary table holding, on SQLite, a random id of the connection.
const SQLITE_CONNECTION: &str = "promiscuous_connection";

/// Creates the SQLite connection's temporary tables if missing.
pub const SQLITE_TABLES: &str = "CREATE TEMP TABLE IF NOT EXISTS promiscuous_connection \
     (id TEXT NOT NULL); \
     CREATE TEMP TABLE IF NOT EXISTS promiscuous_transaction \
     (app TEXT NOT NULL, outbox_id INTEGER NOT NULL, nonce INTEGER NOT NULL, \
     message TEXT NOT NULL);";

/// The nonce of the transaction each SQLite connection (by its id) publishes in now. Kept in
/// process memory because it must survive a rolled-back savepoint; one entry per connection
/// this process opened.
fn nonces() -> std::sync::MutexGuard<'static, HashMap<String, i64>> {
    static NONCES: OnceLock<Mutex<HashMap<String, i64>>> = OnceLock::new();
    NONCES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn next_nonce() -> i64 {
    static NEXT: AtomicI64 = AtomicI64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The outbox rows of the messages this transaction has started, by app.
#[derive(Debug, Default)]
pub struct Messages {
    /// app → (outbox row id, message id).
    started: HashMap<String, (i64, String)>,
    /// SQLite: the nonce to stamp new messages with.
    nonce: i64,
    /// SQLite: the connection had no id (its first setup was rolled back with a savepoint): the
    /// id to give it, with `nonce`, when this write starts a message.
    connection: Option<String>,
}

impl Messages {
    /// The outbox row and the id of this transaction's message for `app`, if it started one.
    pub fn get(&self, app: &str) -> Option<(i64, &str)> {
        self.started.get(app).map(|(id, m)| (*id, m.as_str()))
    }
}

/// A query returning, in columns `key`, `version`, `attributes`, `nonce`, `message`: the rows
/// of `promiscuous_versions` whose key is in `keys`, then (key NULL) what [`read_lookup`] needs
/// to know the messages this transaction started.
/// The keys are bound parameters: they hold the application's primary keys.
pub fn lookup_statement(backend: DbBackend, keys: &[String]) -> Statement {
    let list = (1..=keys.len())
        .map(|n| match backend {
            DbBackend::Postgres => format!("${n}"),
            _ => "?".to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let messages = match backend {
        DbBackend::Postgres => "SELECT NULL::text AS key, NULL::bigint AS version, \
             NULLIF(current_setting('promiscuous.outbox', true), '') AS attributes, \
             NULL::bigint AS nonce, NULL::text AS message"
            .to_string(),
        DbBackend::MySql => format!(
            "SELECT NULL AS `key`, outbox_id AS version, app AS attributes, NULL AS nonce, \
             message FROM {MESSAGES_TABLE} WHERE txn = @promiscuous_transaction"
        ),
        _ => format!(
            "SELECT NULL AS key, outbox_id AS version, app AS attributes, nonce, message \
             FROM temp.{MESSAGES_TABLE} UNION ALL \
             SELECT NULL, NULL, id, NULL, NULL FROM temp.{SQLITE_CONNECTION}"
        ),
    };
    if keys.is_empty() {
        return Statement::from_string(backend, messages);
    }
    let (no_nonce, key) = match backend {
        DbBackend::Postgres => ("NULL::bigint", "key"),
        DbBackend::MySql => ("NULL", "`key`"),
        _ => ("NULL", "key"),
    };
    Statement::from_sql_and_values(
        backend,
        format!(
            "SELECT {key}, version, attributes, {no_nonce} AS nonce, message \
             FROM promiscuous_versions WHERE {key} IN ({list}) UNION ALL {messages}"
        ),
        keys.iter().map(|k| Value::from(k.as_str())),
    )
}

/// One row of [`lookup_statement`] with a NULL key.
pub struct LookupRow {
    pub version: Option<i64>,
    pub attributes: Option<String>,
    pub nonce: Option<i64>,
    pub message: Option<String>,
}

/// The messages this transaction started, from the rows of [`lookup_statement`] with a NULL key.
pub fn read_lookup(backend: DbBackend, rows: Vec<LookupRow>) -> Result<Messages, DbErr> {
    let mut messages = Messages::default();
    match backend {
        DbBackend::Postgres => {
            for row in rows {
                let Some(text) = row.attributes else {
                    continue;
                };
                let map: HashMap<String, (i64, String)> =
                    serde_json::from_str(&text).map_err(|e| {
                        DbErr::Custom(format!(
                            "promiscuous: reading this transaction's messages ({text}): {e}"
                        ))
                    })?;
                messages.started.extend(map);
            }
        }
        DbBackend::MySql => {
            // Only this transaction's rows were selected.
            for row in rows {
                if let (Some(id), Some(app), Some(message)) =
                    (row.version, row.attributes, row.message)
                {
                    messages.started.insert(app, (id, message));
                }
            }
        }
        _ => {
            let connection = rows
                .iter()
                .find(|r| r.version.is_none())
                .and_then(|r| r.attributes.clone());
            match connection.and_then(|c| nonces().get(&c).copied()) {
                Some(nonce) => messages.nonce = nonce,
                None => {
                    // The setup was rolled back with a savepoint: no row is ours.
                    messages.nonce = next_nonce();
                    messages.connection = Some(uuid::Uuid::new_v4().to_string());
                }
            }
            for row in rows {
                if let (Some(id), Some(app), Some(n), Some(message)) =
                    (row.version, row.attributes, row.nonce, row.message)
                    && n == messages.nonce
                {
                    messages.started.insert(app, (id, message));
                }
            }
        }
    }
    Ok(messages)
}

/// The statement that inserts a message header row into the outbox and remembers it as this
/// transaction's message for `app`. `insert` is the plain `INSERT` (without a terminator).
pub fn start_message_sql(
    backend: DbBackend,
    insert: Sql,
    app: &str,
    message: &str,
    messages: &Messages,
) -> Sql {
    match backend {
        DbBackend::Postgres => Sql::raw(format!(
            "WITH m AS ({insert} RETURNING id) SELECT set_config('promiscuous.outbox', \
             (COALESCE(NULLIF(current_setting('promiscuous.outbox', true), ''), '{{}}')::jsonb \
             || jsonb_build_object({app}, jsonb_build_array(m.id, {message})))::text, true) \
             FROM m",
            insert = insert.text,
            app = postgres_literal(app),
            message = postgres_literal(message)
        )),
        DbBackend::MySql => insert.then(
            "; ",
            Sql::raw(format!(
                "INSERT INTO {MESSAGES_TABLE} (app, outbox_id, txn, message) \
                 VALUES ({}, LAST_INSERT_ID(), @promiscuous_transaction, {})",
                mysql_literal(app),
                mysql_literal(message)
            )),
        ),
        _ => {
            let remember = Sql {
                text: format!(
                    "INSERT INTO temp.{MESSAGES_TABLE} (app, outbox_id, nonce, message) \
                     VALUES (?, last_insert_rowid(), ?, ?)"
                ),
                values: vec![app.into(), messages.nonce.into(), message.into()],
            };
            let mut sql = insert.then("; ", remember);
            if let Some(connection) = &messages.connection {
                let id = Sql {
                    text: format!(
                        "DELETE FROM temp.{SQLITE_CONNECTION}; \
                         INSERT INTO temp.{SQLITE_CONNECTION} (id) VALUES (?)"
                    ),
                    values: vec![connection.as_str().into()],
                };
                sql = sql.then("; ", id);
                nonces().insert(connection.clone(), messages.nonce);
            }
            sql
        }
    }
}

/// An SQL expression for the outbox row id of this transaction's message for `app`, started
/// earlier in the same batch of statements by [`start_message_sql`].
pub fn message_id_expr(backend: DbBackend, app: &str, messages: &Messages) -> Expr {
    match backend {
        DbBackend::Postgres => Expr::cust(format!(
            "(current_setting('promiscuous.outbox')::jsonb -> {} ->> 0)::bigint",
            postgres_literal(app)
        )),
        DbBackend::MySql => Expr::cust(format!(
            "(SELECT MAX(outbox_id) FROM {MESSAGES_TABLE} WHERE app = {} \
             AND txn = @promiscuous_transaction)",
            mysql_literal(app)
        )),
        _ => Expr::cust_with_values(
            format!(
                "(SELECT max(outbox_id) FROM temp.{MESSAGES_TABLE} WHERE app = ? AND nonce = ?)"
            ),
            [Value::from(app), Value::from(messages.nonce)],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_double_their_quotes() {
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(
            literal("'); DROP TABLE users; --"),
            "'''); DROP TABLE users; --'"
        );
    }

    #[test]
    fn postgres_literals_mean_their_text_under_any_quoting_settings() {
        assert_eq!(postgres_literal("it's"), "'it''s'");
        assert_eq!(postgres_literal("a\\'b"), "E'a\\\\''b'");
        assert_eq!(postgres_literal("\\"), "E'\\\\'");
        assert_eq!(postgres_literal("nul\0"), "E'nul\\000'");
        assert_eq!(postgres_literal("$$ \n"), "'$$ \n'");
    }

    #[test]
    fn statements_bind_their_values_on_sqlite_and_write_robust_literals_on_postgres() {
        use sea_orm::sea_query::{Alias, Query};
        let mut insert = Query::insert();
        insert
            .into_table(Alias::new("t"))
            .columns([Alias::new("a"), Alias::new("b"), Alias::new("c")])
            .values([
                "x\\'); DROP TABLE t; --".into(),
                7i64.into(),
                Option::<String>::None.into(),
            ])
            .unwrap();
        let sqlite = Sql::build(DbBackend::Sqlite, &insert);
        assert_eq!(
            sqlite.text,
            r#"INSERT INTO "t" ("a", "b", "c") VALUES (?, ?, ?)"#
        );
        assert_eq!(sqlite.values.len(), 3);
        let postgres = Sql::build(DbBackend::Postgres, &insert);
        assert_eq!(
            postgres.text,
            r#"INSERT INTO "t" ("a", "b", "c") VALUES (E'x\\''); DROP TABLE t; --', 7, NULL)"#
        );
        assert!(postgres.values.is_empty());
        let both = sqlite.then("; ", Sql::build(DbBackend::Sqlite, &insert));
        assert_eq!(both.values.len(), 6);
    }

    #[test]
    fn postgres_messages_are_a_json_object() {
        let row = |attributes: Option<&str>| LookupRow {
            version: None,
            attributes: attributes.map(str::to_string),
            nonce: None,
            message: None,
        };
        let m = read_lookup(
            DbBackend::Postgres,
            vec![
                row(Some(r#"{"shop": [4, "m4"], "billing": [9, "m9"]}"#)),
                row(None),
            ],
        )
        .unwrap();
        assert_eq!(m.get("shop"), Some((4, "m4")));
        assert_eq!(m.get("billing"), Some((9, "m9")));
        assert_eq!(m.get("other"), None);
    }

    #[test]
    fn sqlite_rows_of_another_nonce_are_not_this_transactions() {
        nonces().insert("conn-test".into(), 42);
        let marker = |app: &str, id: i64, nonce: i64| LookupRow {
            version: Some(id),
            attributes: Some(app.into()),
            nonce: Some(nonce),
            message: Some(format!("m{id}")),
        };
        let connection = LookupRow {
            version: None,
            attributes: Some("conn-test".into()),
            nonce: None,
            message: None,
        };
        let m = read_lookup(
            DbBackend::Sqlite,
            vec![marker("shop", 3, 41), marker("billing", 7, 42), connection],
        )
        .unwrap();
        assert_eq!(m.get("shop"), None, "a committed transaction's message");
        assert_eq!(m.get("billing"), Some((7, "m7")));
    }
}
