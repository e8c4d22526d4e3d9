//! The SQL servers for the tests, PostgreSQL and MariaDB (started by scripts/services.sh): their
//! URLs (a missing one fails in CI, else the test is skipped) and fresh databases named after
//! the test, on either server (told apart by the URL's scheme).

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

/// `PROMISCUOUS_POSTGRES_URL`; see [`server_url`].
pub fn postgres_url(test: &str) -> Option<String> {
    server_url("PROMISCUOUS_POSTGRES_URL", "PostgreSQL", test)
}

/// `PROMISCUOUS_MARIADB_URL`; see [`server_url`].
pub fn mariadb_url(test: &str) -> Option<String> {
    server_url("PROMISCUOUS_MARIADB_URL", "MariaDB", test)
}

/// The URL in `variable`; `None` (the test is skipped, and says so) where it is not set, except
/// in CI (`CI` set), where `scripts/test` starts the servers and a missing URL fails.
fn server_url(variable: &str, server: &str, test: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(url) => Some(url),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("{variable} is not set: CI must run {test} (scripts/test starts {server})")
        }
        Err(_) => {
            eprintln!("skipped {test}: {variable} is not set (run scripts/services.sh up)");
            None
        }
    }
}

/// A fresh database `promiscuous_test_{name}` on the server at `url` (dropped first, with its
/// connections, if a failed run left it behind), and its URL.
pub async fn fresh_database_url(url: &str, name: &str) -> (DatabaseConnection, String) {
    let admin = Database::connect(url)
        .await
        .expect("connect to the SQL server");
    let name = format!("promiscuous_test_{name}");
    let drop = if url.starts_with("mysql:") {
        format!("DROP DATABASE IF EXISTS {name}")
    } else {
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    };
    admin.execute_unprepared(&drop).await.unwrap();
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    admin.close().await.unwrap();
    let (base, _) = url.rsplit_once('/').expect("a URL with a database");
    let url = format!("{base}/{name}");
    (Database::connect(url.as_str()).await.unwrap(), url)
}

/// [`fresh_database_url`] without the URL.
pub async fn fresh_database(url: &str, name: &str) -> DatabaseConnection {
    fresh_database_url(url, name).await.0
}

/// `postgres::$name` and `mariadb::$name`: the test `async fn $name(url: &str)` of the calling
/// file, on each SQL server (skipped, and said so, outside CI when its URL is not set).
#[macro_export]
macro_rules! on_both_servers {
    ($($name:ident;)*) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let test = concat!("postgres::", stringify!($name));
                    if let Some(url) = $crate::common::sql_servers::postgres_url(test) {
                        super::$name(&url).await;
                    }
                }
            )*
        }
        mod mariadb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let test = concat!("mariadb::", stringify!($name));
                    if let Some(url) = $crate::common::sql_servers::mariadb_url(test) {
                        super::$name(&url).await;
                    }
                }
            )*
        }
    };
}
