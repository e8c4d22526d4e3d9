//! The write guard, checked the same way on SQLite and PostgreSQL: a write to a published table
//! that bypasses the hooks is refused by the database; writes through the hooks still work.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel, ModelTrait,
    QueryFilter, Set, TransactionTrait,
};

use super::user;

fn refused<T: std::fmt::Debug>(what: &str, result: Result<T, sea_orm::DbErr>) {
    let err = result.expect_err(what).to_string();
    assert!(
        err.contains("bypassed its ActiveModel hooks") && err.contains("users"),
        "{what}: {err}"
    );
}

fn yoda(n: u32) -> user::ActiveModel {
    user::ActiveModel {
        name: Set(format!("Yoda {n}")),
        email: Set(format!("yoda{n}@dagobah.org")),
        password: Set("pw".into()),
        ..Default::default()
    }
}

/// `db` has the `users` table and a started publisher (which installed the guard).
pub async fn bypassing_writes_are_refused(db: &DatabaseConnection) {
    let txn = db.begin().await.unwrap();
    let a = yoda(1).insert(&txn).await.unwrap();
    let b = yoda(2).insert(&txn).await.unwrap();
    txn.commit().await.unwrap();

    // Each bypass, in its own transaction (PostgreSQL aborts a transaction after an error).
    let txn = db.begin().await.unwrap();
    refused(
        "update_many",
        user::Entity::update_many()
            .col_expr(user::Column::Name, Expr::value("Nobody"))
            .exec(&txn)
            .await,
    );
    txn.rollback().await.unwrap();
    let txn = db.begin().await.unwrap();
    refused(
        "delete_many",
        user::Entity::delete_many()
            .filter(user::Column::Id.eq(a.id))
            .exec(&txn)
            .await,
    );
    txn.rollback().await.unwrap();
    let txn = db.begin().await.unwrap();
    refused(
        "delete_by_id",
        user::Entity::delete_by_id(b.id).exec(&txn).await,
    );
    txn.rollback().await.unwrap();
    let txn = db.begin().await.unwrap();
    refused(
        "Entity::insert(..).exec",
        user::Entity::insert(yoda(3)).exec(&txn).await,
    );
    txn.rollback().await.unwrap();
    // On a bare connection too (autocommit).
    refused(
        "update_many without a transaction",
        user::Entity::update_many()
            .col_expr(user::Column::Name, Expr::value("Nobody"))
            .exec(db)
            .await,
    );

    // A hook write leaves no permit behind: a bypass after it, in the same transaction, is
    // refused (and so is one after an update that changed nothing).
    let txn = db.begin().await.unwrap();
    let mut am = a.clone().into_active_model();
    am.name = Set("Master Yoda".into());
    let a = am.update(&txn).await.unwrap();
    a.clone().into_active_model().update(&txn).await.unwrap();
    refused(
        "update_many after a published update",
        user::Entity::update_many()
            .col_expr(user::Column::Name, Expr::value("Nobody"))
            .filter(user::Column::Id.eq(b.id))
            .exec(&txn)
            .await,
    );
    txn.rollback().await.unwrap();

    // Nothing changed by the refused writes; the published ones went through.
    let rows = user::Entity::find().all(db).await.unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, vec!["Yoda 1", "Yoda 2"]);
    let txn = db.begin().await.unwrap();
    let mut am = b.clone().into_active_model();
    am.name = Set("Yoda the Second".into());
    am.update(&txn).await.unwrap();
    a.delete(&txn).await.unwrap();
    txn.commit().await.unwrap();
    let rows = user::Entity::find().all(db).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].name, "Yoda the Second");
}

/// Two transactions writing one published table at once do not wait for each other's permit,
/// and one's permit does not let the other bypass the hooks (PostgreSQL: real concurrency).
pub async fn permits_are_private_to_their_transaction(db: &DatabaseConnection) {
    let t1 = db.begin().await.unwrap();
    let t2 = db.begin().await.unwrap();
    yoda(10).insert(&t1).await.unwrap();
    yoda(11).insert(&t2).await.unwrap();
    refused(
        "update_many beside another transaction's write",
        user::Entity::update_many()
            .col_expr(user::Column::Name, Expr::value("Nobody"))
            .exec(&t2)
            .await,
    );
    t2.rollback().await.unwrap();
    t1.commit().await.unwrap();
    let names: Vec<String> = user::Entity::find()
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert!(names.contains(&"Yoda 10".to_string()), "{names:?}");
    assert!(!names.contains(&"Yoda 11".to_string()), "{names:?}");
}
