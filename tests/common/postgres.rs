//! PostgreSQL for the tests: the server's URL (a missing one fails in CI, else the test is
//! skipped) and fresh databases named after the test.

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

/// `PROMISCUOUS_POSTGRES_URL`; `None` (the test is skipped, and says so) where it is not set,
/// except in CI (`CI` set), where `scripts/test` starts PostgreSQL and a missing URL fails.
pub fn postgres_url(test: &str) -> Option<String> {
    match std::env::var("PROMISCUOUS_POSTGRES_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!(
                "PROMISCUOUS_POSTGRES_URL is not set: CI must run {test} (scripts/test starts PostgreSQL)"
            )
        }
        Err(_) => {
            eprintln!(
                "skipped {test}: PROMISCUOUS_POSTGRES_URL is not set (run scripts/services.sh up)"
            );
            None
        }
    }
}

/// A fresh database `promiscuous_test_{name}` on the server at `url` (dropped first, with its
/// connections, if a failed run left it behind), and its URL.
pub async fn fresh_database_url(url: &str, name: &str) -> (DatabaseConnection, String) {
    let admin = Database::connect(url).await.expect("connect to PostgreSQL");
    let name = format!("promiscuous_test_{name}");
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .unwrap();
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let (base, _) = url.rsplit_once('/').expect("a URL with a database");
    let url = format!("{base}/{name}");
    (Database::connect(url.as_str()).await.unwrap(), url)
}

/// [`fresh_database_url`] without the URL.
pub async fn fresh_database(url: &str, name: &str) -> DatabaseConnection {
    fresh_database_url(url, name).await.0
}
