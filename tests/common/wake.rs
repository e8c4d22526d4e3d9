//! Relay wake-ups, checked the same way on SQLite and PostgreSQL: a write wakes the relays
//! registered for its own outbox database only.

use std::sync::Arc;

use promiscuous::pipeline::wake;
use sea_orm::{ActiveModelTrait, DatabaseConnection, Set, TransactionTrait};

use super::user;

async fn write(db: &DatabaseConnection, commit: bool) {
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
    if commit {
        txn.commit().await.unwrap();
    } else {
        txn.rollback().await.unwrap();
    }
}

/// `a` and `b` are two publisher databases (tables set up) with no publisher running on them.
pub async fn writes_wake_their_own_database_only(a: &DatabaseConnection, b: &DatabaseConnection) {
    let id_a = wake::database_id(a).await.unwrap().expect("an identity");
    let id_b = wake::database_id(b).await.unwrap().expect("an identity");
    assert_ne!(id_a, id_b, "two databases are told apart");
    assert_eq!(wake::database_id(a).await.unwrap().unwrap(), id_a, "stable");
    let (wake_a, wake_b) = (Arc::new(wake::Wake::new()), Arc::new(wake::Wake::new()));
    let _registered_a = wake::register(id_a, wake_a.clone());
    let _registered_b = wake::register(id_b, wake_b.clone());
    write(a, true).await;
    assert_eq!((wake_a.writes(), wake_b.writes()), (1, 0));
    write(b, true).await;
    write(b, true).await;
    assert_eq!((wake_a.writes(), wake_b.writes()), (1, 2));
    // A rolled-back write added no row, yet wakes its relay (a hint only: it finds nothing).
    write(a, false).await;
    assert_eq!((wake_a.writes(), wake_b.writes()), (2, 2));
}
