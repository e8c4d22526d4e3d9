//! With relays of one database in the process (the common case), a write wakes them without
//! asking the database which one it is (no round trip per write): checked by removing the
//! SQLite identity the query would read, so only the shortcut can wake the relay. Its own test
//! binary, so that no other test registers a relay meanwhile.

mod common;

use std::time::Duration;

use common::user;
use promiscuous::pipeline::{RelayConfig, schema};
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set, TransactionTrait};

#[tokio::test]
async fn one_publisher_is_woken_without_an_identity_query() {
    let db = promiscuous_test::sqlite().await.unwrap();
    promiscuous_test::create_table(&db, user::Entity)
        .await
        .unwrap();
    schema::setup_publisher(&db).await.unwrap();
    // Polling alone would take a minute: only a wake-up publishes within the test's wait.
    let publisher = promiscuous::Publisher::new(db.clone(), promiscuous::InProcess::new())
        .relay_config(RelayConfig {
            poll_interval: Duration::from_secs(60),
            ..RelayConfig::default()
        })
        .start()
        .await
        .unwrap();
    // Without its identity the database cannot say which it is: a writer asking would wake
    // nobody.
    db.execute_unprepared("DROP TABLE promiscuous_database")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await; // the relay waits now
    let txn = db.begin().await.unwrap();
    user::ActiveModel {
        name: Set("Yoda".into()),
        email: Set("yoda@dagobah.org".into()),
        password: Set("pw".into()),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .unwrap();
    txn.commit().await.unwrap();
    let waited = tokio::time::timeout(Duration::from_secs(5), async {
        while publisher.pending().await.unwrap() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "the write woke the only relay");
    publisher.shutdown().await.unwrap();
}
