//! A delete that removes nothing publishes nothing: the row was deleted by another transaction
//! meanwhile (PostgreSQL: two transactions deleting one row at once, the second waits for the
//! first and removes 0 rows), or before a stale model is deleted. Before, each published a
//! destroy of its own, at a version of its own, of an instance already destroyed.

mod common;

use std::time::Duration;

use common::sql_servers::fresh_database;
use common::user;
use promiscuous::OperationKind;
use promiscuous::pipeline::{SeaOrmOutbox, schema};
use sea_orm::{DatabaseConnection, EntityTrait, ModelTrait, TransactionTrait};

async fn publisher(db: DatabaseConnection) -> DatabaseConnection {
    promiscuous_test::create_table(&db, user::Entity)
        .await
        .unwrap();
    schema::setup_publisher(&db).await.unwrap();
    db
}

/// A user, created and committed (published at version 1).
async fn create(db: &DatabaseConnection) -> user::Model {
    common::servers::write(db, 0).await;
    user::Entity::find().one(db).await.unwrap().unwrap()
}

/// The operations waiting in the outbox, in order.
async fn published(db: &DatabaseConnection) -> Vec<(OperationKind, u64)> {
    SeaOrmOutbox::new(db.clone())
        .messages(None)
        .await
        .unwrap()
        .into_iter()
        .flat_map(|p| p.message.operations)
        .map(|o| (o.operation, o.version))
        .collect()
}

#[tokio::test]
async fn deleting_a_stale_model_publishes_nothing_on_sqlite() {
    let db = publisher(promiscuous_test::sqlite().await.unwrap()).await;
    let m = create(&db).await;
    for _ in 0..2 {
        let txn = db.begin().await.unwrap();
        m.clone().delete(&txn).await.unwrap();
        txn.commit().await.unwrap();
    }
    assert_eq!(
        published(&db).await,
        [(OperationKind::Create, 1), (OperationKind::Destroy, 2)]
    );
}

on_both_servers! {
    two_transactions_deleting_one_row_publish_one_destroy;
}

async fn two_transactions_deleting_one_row_publish_one_destroy(url: &str) {
    let db = publisher(fresh_database(url, "deletes").await).await;
    let m = create(&db).await;
    let first = db.begin().await.unwrap();
    assert_eq!(m.clone().delete(&first).await.unwrap().rows_affected, 1);
    let second = tokio::spawn({
        let (db, m) = (db.clone(), m.clone());
        async move {
            let txn = db.begin().await.unwrap();
            let deleted = m.delete(&txn).await.unwrap().rows_affected;
            txn.commit().await.unwrap();
            deleted
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !second.is_finished(),
        "the second delete waits for the first"
    );
    first.commit().await.unwrap();
    assert_eq!(
        second.await.unwrap(),
        0,
        "the second delete removed nothing"
    );
    assert_eq!(
        published(&db).await,
        [(OperationKind::Create, 1), (OperationKind::Destroy, 2)]
    );
}
