//! The publisher side: outbox rows commit with the change, versions, changes, refusals.

mod common;

use common::user;
use promiscuous::pipeline::{schema, tables};
use promiscuous::{Message, OperationKind};
use sea_orm::{
    ActiveModelTrait, DatabaseConnection, EntityTrait, IntoActiveModel, ModelTrait, Set,
    TransactionTrait,
};
use serde_json::json;

async fn publisher_db() -> DatabaseConnection {
    let db = promiscuous_test::sqlite().await.unwrap();
    promiscuous_test::create_table(&db, user::Entity)
        .await
        .unwrap();
    schema::setup_publisher(&db).await.unwrap();
    db
}

async fn outbox(db: &DatabaseConnection) -> Vec<Message> {
    promiscuous::pipeline::outbox_messages(db, None)
        .await
        .unwrap()
        .into_iter()
        .map(|p| Message::decode(&p.message.encode()).unwrap())
        .collect()
}

fn yoda() -> user::ActiveModel {
    user::ActiveModel {
        name: Set("Yoda".into()),
        email: Set("yoda@dagobah.org".into()),
        password: Set("secret".into()),
        ..Default::default()
    }
}

async fn create_yoda(db: &DatabaseConnection) -> user::Model {
    let txn = db.begin().await.unwrap();
    let m = yoda().insert(&txn).await.unwrap();
    txn.commit().await.unwrap();
    m
}

#[tokio::test]
async fn create_writes_one_versioned_message_with_published_attributes_only() {
    let db = publisher_db().await;
    let m = create_yoda(&db).await;
    let out = outbox(&db).await;
    assert_eq!(out.len(), 1);
    let msg = &out[0];
    assert_eq!((msg.protocol, msg.app.as_str()), (1, "crowdtap"));
    let op = &msg.operations[0];
    assert_eq!(op.operation, OperationKind::Create);
    assert_eq!(
        (op.endpoint.as_str(), op.id.clone(), op.version),
        ("crowdtap/user", json!(m.id), 1)
    );
    assert_eq!(op.types, vec!["User".to_string()]);
    assert_eq!(
        serde_json::Value::Object(op.attributes.clone().unwrap()),
        json!({"name": "Yoda", "email": "yoda@dagobah.org", "full_name": "Yoda <yoda@dagobah.org>"}),
        "password is not published; the virtual attribute is"
    );
    assert_eq!(
        msg.dependencies.write[0].key,
        format!("crowdtap/user/{}", m.id)
    );
    assert_eq!(msg.dependencies.write[0].version, 1);
}

#[tokio::test]
async fn a_rolled_back_write_publishes_nothing() {
    let db = publisher_db().await;
    let txn = db.begin().await.unwrap();
    yoda().insert(&txn).await.unwrap();
    txn.rollback().await.unwrap();
    assert!(outbox(&db).await.is_empty());
    assert!(
        tables::versions::Entity::find()
            .all(&db)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(user::Entity::find().all(&db).await.unwrap().is_empty());
}

#[tokio::test]
async fn updates_carry_changes_and_increment_the_version() {
    let db = publisher_db().await;
    let m = create_yoda(&db).await;
    let txn = db.begin().await.unwrap();
    let mut am = m.into_active_model();
    am.name = Set("Master Yoda".into());
    am.update(&txn).await.unwrap();
    txn.commit().await.unwrap();

    let out = outbox(&db).await;
    let op = &out[1].operations[0];
    assert_eq!((op.operation, op.version), (OperationKind::Update, 2));
    let changes = op.changes.as_ref().unwrap();
    assert_eq!(changes["name"].before, json!("Yoda"));
    assert_eq!(changes["name"].after, json!("Master Yoda"));
    assert!(
        changes.contains_key("full_name"),
        "virtual attributes report changes too"
    );
    assert!(!changes.contains_key("email"));
}

#[tokio::test]
async fn an_update_of_unpublished_fields_only_publishes_nothing() {
    let db = publisher_db().await;
    let m = create_yoda(&db).await;
    let txn = db.begin().await.unwrap();
    let mut am = m.into_active_model();
    am.password = Set("changed".into());
    am.update(&txn).await.unwrap();
    txn.commit().await.unwrap();
    assert_eq!(outbox(&db).await.len(), 1);
}

#[tokio::test]
async fn destroy_then_recreate_continues_the_instance_version() {
    let db = publisher_db().await;
    let m = create_yoda(&db).await;
    let id = m.id;
    let txn = db.begin().await.unwrap();
    m.delete(&txn).await.unwrap();
    txn.commit().await.unwrap();

    let txn = db.begin().await.unwrap();
    let mut again = yoda();
    again.id = Set(id);
    again.insert(&txn).await.unwrap();
    // A delete through an ActiveModel that only knows the key is published too.
    user::ActiveModel {
        id: Set(id),
        ..Default::default()
    }
    .delete(&txn)
    .await
    .unwrap();
    txn.commit().await.unwrap();

    let messages = outbox(&db).await;
    assert_eq!(messages.len(), 3, "one message per transaction");
    let ops: Vec<(OperationKind, u64)> = messages
        .iter()
        .flat_map(|m| m.operations.iter().map(|op| (op.operation, op.version)))
        .collect();
    assert_eq!(
        ops,
        vec![
            (OperationKind::Create, 1),
            (OperationKind::Destroy, 2),
            (OperationKind::Create, 3),
            (OperationKind::Destroy, 4)
        ]
    );
    assert!(outbox(&db).await[1].operations[0].attributes.is_none());
}

#[tokio::test]
async fn a_write_outside_a_transaction_is_refused_before_anything_is_written() {
    let db = publisher_db().await;
    let err = yoda().insert(&db).await.unwrap_err().to_string();
    assert!(err.contains("must run inside a transaction"), "{err}");
    assert!(err.contains("crowdtap/user"), "{err}");
    assert!(user::Entity::find().all(&db).await.unwrap().is_empty());
    assert!(outbox(&db).await.is_empty());

    let m = create_yoda(&db).await;
    let err = m.clone().delete(&db).await.unwrap_err().to_string();
    assert!(err.contains("must run inside a transaction"), "{err}");
    assert!(
        user::Entity::find_by_id(m.id)
            .one(&db)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn writes_in_a_context_depend_on_what_it_read_and_wrote() {
    use promiscuous::Dependency;
    let db = publisher_db().await;
    let parent = create_yoda(&db).await; // outside any context: no read dependencies
    let parent_key = format!("crowdtap/user/{}", parent.id);

    let child = promiscuous::context_as(42, async {
        let txn = db.begin().await.unwrap();
        let seen = user::Entity::find_by_id(parent.id)
            .one(&txn)
            .await
            .unwrap()
            .unwrap();
        promiscuous::track_read(&seen, &txn).await.unwrap();
        let mut luke = yoda();
        luke.name = Set("Luke".into());
        let luke = luke.insert(&txn).await.unwrap();
        txn.commit().await.unwrap();
        luke
    })
    .await;

    let out = outbox(&db).await;
    assert!(out[0].dependencies.read.is_empty() && out[0].current_user_id.is_none());
    let msg = &out[1];
    assert_eq!(msg.current_user_id, Some(json!(42)));
    assert_eq!(
        msg.dependencies.read,
        vec![Dependency {
            key: parent_key,
            version: 1
        }]
    );
    assert_eq!(
        msg.dependencies.write,
        vec![Dependency {
            key: format!("crowdtap/user/{}", child.id),
            version: 1
        }]
    );
}

/// Multi-row and raw writes bypass the hooks: the write guard makes the database refuse them
/// instead of letting them go unpublished.
#[tokio::test]
async fn writes_that_bypass_the_hooks_are_refused() {
    let db = publisher_db().await;
    let publisher = promiscuous::Publisher::new(db.clone(), promiscuous::InProcess::new())
        .start()
        .await
        .unwrap();
    common::guard::bypassing_writes_are_refused(&db).await;
    publisher.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_guard_is_installed_idempotently_on_existing_published_tables() {
    let db = publisher_db().await;
    let first = promiscuous::guard::install(&db).await.unwrap();
    let again = promiscuous::guard::install(&db).await.unwrap();
    assert!(first.contains(&"users".to_string()), "{first:?}");
    assert_eq!(first, again);
    common::guard::bypassing_writes_are_refused(&db).await;
}

/// SQLite keeps a transaction's messages in temporary rows of its connection; when the
/// transaction's first write ran in a savepoint that was rolled back, the rows of the previous
/// (committed) transaction on that connection come back with it. The next write must not take
/// them for its own: it starts a message of its own.
#[tokio::test]
async fn a_rolled_back_first_write_does_not_revive_the_previous_transactions_message() {
    let db = publisher_db().await;
    create_yoda(&db).await;
    let txn = db.begin().await.unwrap();
    let savepoint = txn.begin().await.unwrap();
    let mut luke = yoda();
    luke.name = Set("Luke".into());
    luke.insert(&savepoint).await.unwrap();
    savepoint.rollback().await.unwrap();
    let mut leia = yoda();
    leia.name = Set("Leia".into());
    leia.insert(&txn).await.unwrap();
    txn.commit().await.unwrap();

    let names: Vec<Vec<String>> = outbox(&db)
        .await
        .iter()
        .map(|m| {
            m.operations
                .iter()
                .map(|op| op.attributes.as_ref().unwrap()["name"].to_string())
                .collect()
        })
        .collect();
    assert_eq!(
        names,
        vec![vec!["\"Yoda\"".to_string()], vec!["\"Leia\"".to_string()]]
    );
}

/// The relay removes only the operation rows it published: one appended to a message after the
/// relay read it (see `SeaOrmOutbox::remove`) is published again, never lost.
#[tokio::test]
async fn an_operation_appended_after_the_relay_read_its_message_is_not_lost() {
    use promiscuous::pipeline::{Outbox, SeaOrmOutbox};
    use sea_orm::ConnectionTrait;
    let db = publisher_db().await;
    create_yoda(&db).await;
    let outbox = SeaOrmOutbox::new(db.clone());
    let fetched = outbox.fetch(10).await.unwrap();
    assert_eq!(fetched.len(), 1);
    let late = r#"{"endpoint":"crowdtap/user","types":["User"],"id":99,"operation":"create","version":1,"attributes":{"name":"Late"}}"#;
    db.execute_unprepared(&format!(
        "INSERT INTO promiscuous_outbox_operations (outbox_id, operation) VALUES ({}, '{late}')",
        fetched[0].id
    ))
    .await
    .unwrap();
    outbox.remove(&[fetched[0].id]).await.unwrap();
    let again = promiscuous::pipeline::outbox_messages(&db, None)
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "the late operation stays in the outbox");
    assert_eq!(again[0].message.operations.len(), 1);
    assert_eq!(again[0].message.operations[0].id, json!(99));
    outbox.fetch(10).await.unwrap();
    outbox.remove(&[again[0].id]).await.unwrap();
    assert!(
        promiscuous::pipeline::outbox_messages(&db, None)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_write_wakes_the_relays_of_its_own_database_only() {
    let (a, b) = (publisher_db().await, publisher_db().await);
    common::wake::writes_wake_their_own_database_only(&a, &b).await;
}

#[tokio::test]
async fn a_running_publisher_is_woken_by_a_write_to_its_database() {
    use promiscuous::pipeline::RelayConfig;
    use std::time::Duration;
    // Polling alone would take a minute: only the wake-up publishes within the test's wait.
    let slow = || RelayConfig {
        poll_interval: Duration::from_secs(60),
        ..RelayConfig::default()
    };
    let (a, b) = (publisher_db().await, publisher_db().await);
    let start = |db: &DatabaseConnection| {
        promiscuous::Publisher::new(db.clone(), promiscuous::InProcess::new())
            .relay_config(slow())
            .start()
    };
    let (pa, pb) = (start(&a).await.unwrap(), start(&b).await.unwrap());
    tokio::time::sleep(Duration::from_millis(50)).await; // both relays wait now
    for (db, handle) in [(&a, &pa), (&b, &pb), (&a, &pa)] {
        create_yoda(db).await;
        let waited = tokio::time::timeout(Duration::from_secs(5), async {
            while handle.pending().await.unwrap() > 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(waited.is_ok(), "the write woke its publisher's relay");
    }
    pa.shutdown().await.unwrap();
    pb.shutdown().await.unwrap();
}

/// A model published by this program, whose table no test database has at first.
mod late {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "late_rows")]
    #[promiscuous::publish(name, to = "crowdtap/late")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub name: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
}

/// The guard's tables come from the link-time registry (see `guard`'s documentation): a model
/// linked but without a table here is skipped, and a table created after the guard was
/// installed is guarded by the next install (the next `Publisher::start`), not before.
#[tokio::test]
async fn the_guard_skips_linked_models_without_a_table_and_guards_them_once_created() {
    use sea_orm::ConnectionTrait;
    let db = publisher_db().await;
    let guarded = promiscuous::guard::install(&db).await.unwrap();
    assert!(guarded.contains(&"users".to_string()), "{guarded:?}");
    assert!(
        !guarded.contains(&"late_rows".to_string()),
        "no table, no guard"
    );

    promiscuous_test::create_table(&db, late::Entity)
        .await
        .unwrap();
    let raw = "INSERT INTO late_rows (name) VALUES ('raw')";
    db.execute_unprepared(raw)
        .await
        .expect("not guarded until the next install");

    let guarded = promiscuous::guard::install(&db).await.unwrap();
    assert!(guarded.contains(&"late_rows".to_string()), "{guarded:?}");
    let refused = db.execute_unprepared(raw).await.unwrap_err().to_string();
    assert!(
        refused.contains("bypassed its ActiveModel hooks") && refused.contains("late_rows"),
        "{refused}"
    );
    let txn = db.begin().await.unwrap();
    late::ActiveModel {
        name: Set("hooked".into()),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .expect("writes through the hooks go on");
    txn.commit().await.unwrap();
    assert!(
        outbox(&db)
            .await
            .iter()
            .any(|m| m.operations[0].endpoint == "crowdtap/late")
    );
}
