//! The subscriber side: upsert/delete by foreign key, versions (duplicates and stale operations
//! skipped), callbacks, retries, and bad input dead-lettered without stopping anything.

mod common;

use std::time::Duration;

use common::{events_of, member};
use promiscuous::{InProcess, SubscriberService};
use promiscuous_test::{IDLE, MockPublisher};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use serde_json::json;

const USER: &str = "crowdtap/user";

/// A fresh database with the members table.
async fn members_db() -> DatabaseConnection {
    let db = promiscuous_test::sqlite().await.unwrap();
    promiscuous_test::create_table(&db, member::Entity)
        .await
        .unwrap();
    db
}

async fn subscriber(broker: &InProcess) -> (SubscriberService, DatabaseConnection) {
    let db = members_db().await;
    let service = promiscuous::Subscriber::new("members", db.clone(), broker.clone())
        .subscribe::<member::Model>()
        .retries(3, Duration::from_millis(1))
        .build()
        .await
        .unwrap();
    (service, db)
}

async fn member_of(db: &DatabaseConnection, crowdtap_id: i32) -> Option<member::Model> {
    member::Entity::find()
        .filter(member::Column::CrowdtapId.eq(crowdtap_id))
        .one(db)
        .await
        .unwrap()
}

#[tokio::test]
async fn create_update_destroy_are_applied_with_callbacks() {
    let broker = InProcess::new();
    let (sub, db) = subscriber(&broker).await;
    let mut publisher = MockPublisher::new("crowdtap", broker.clone());
    publisher
        .create(USER, json!(7), json!({"name": "Anakin", "email": "a@t"}))
        .await
        .unwrap();
    publisher
        .update(USER, json!(7), json!({"name": "Vader", "email": "a@t"}))
        .await
        .unwrap();
    let stats = sub.run_until_idle(IDLE).await.unwrap();
    assert_eq!((stats.operations_applied, stats.dead_lettered), (2, 0));
    let m = member_of(&db, 7).await.unwrap();
    assert_eq!((m.name.as_str(), m.email.as_str()), ("Vader", "a@t"));

    publisher.destroy(USER, json!(7)).await.unwrap();
    sub.run_until_idle(IDLE).await.unwrap();
    assert!(member_of(&db, 7).await.is_none());
    assert_eq!(
        events_of("create Anakin"),
        vec!["create Anakin".to_string()]
    );
    assert_eq!(
        events_of("Vader"),
        vec![
            "update Vader name: \"Anakin\" -> \"Vader\"".to_string(),
            "destroy Vader".to_string(),
        ]
    );
    assert_eq!(
        sub.applier()
            .applied_version("crowdtap/user/7")
            .await
            .unwrap(),
        Some(3)
    );
}

#[tokio::test]
async fn a_redelivered_message_has_no_second_effect() {
    let broker = InProcess::new();
    let (sub, db) = subscriber(&broker).await;
    let mut publisher = MockPublisher::new("crowdtap", broker.clone());
    let m = publisher
        .create(USER, json!(8), json!({"name": "Dupond", "email": "d@t"}))
        .await
        .unwrap();
    publisher.send(&m).await.unwrap();
    publisher.send(&m).await.unwrap();
    let stats = sub.run_until_idle(IDLE).await.unwrap();
    assert_eq!((stats.operations_applied, stats.operations_skipped), (1, 2));
    assert_eq!(events_of("Dupond"), vec!["create Dupond".to_string()]);
    assert_eq!(member::Entity::find().all(&db).await.unwrap().len(), 1);
}

/// Versions 1 and 2 of user 9, sent newest first.
async fn send_reversed(broker: &InProcess, name: &str) {
    let mut publisher = MockPublisher::new("crowdtap", broker.clone());
    let v1 = publisher.message(
        USER,
        json!(9),
        promiscuous::OperationKind::Create,
        Some(json!({"name": "Old", "email": "o@t"})),
    );
    let v2 = publisher.message(
        USER,
        json!(9),
        promiscuous::OperationKind::Update,
        Some(json!({"name": name, "email": "o@t"})),
    );
    publisher.send(&v2).await.unwrap();
    publisher.send(&v1).await.unwrap();
}

#[tokio::test]
async fn a_newer_version_waits_for_the_previous_one() {
    let broker = InProcess::new();
    let (sub, db) = subscriber(&broker).await;
    send_reversed(&broker, "Waited").await;
    let stats = sub.run_until_idle(IDLE).await.unwrap();
    assert_eq!((stats.operations_applied, stats.operations_skipped), (2, 0));
    assert_eq!((stats.waited, stats.recovered), (1, 0));
    assert_eq!(
        events_of("Waited"),
        vec!["update Waited name: \"Old\" -> \"Waited\"".to_string()],
        "v2 ran after v1, as an update of the row v1 created"
    );
    assert_eq!(member_of(&db, 9).await.unwrap().name, "Waited");
}

#[tokio::test]
async fn an_older_state_never_overwrites_a_newer_one() {
    // Without ordering (bareback), v2 runs first: v1 is then stale and skipped.
    let broker = InProcess::new();
    let db = promiscuous_test::sqlite().await.unwrap();
    promiscuous_test::create_table(&db, member::Entity)
        .await
        .unwrap();
    let sub = promiscuous::Subscriber::new("members", db.clone(), broker.clone())
        .subscribe::<member::Model>()
        .ordering(promiscuous::OrderingMode::Bareback)
        .workers(1)
        .build()
        .await
        .unwrap();
    send_reversed(&broker, "New").await;
    let stats = sub.run_until_idle(IDLE).await.unwrap();
    assert_eq!((stats.operations_applied, stats.operations_skipped), (1, 1));
    assert_eq!(
        member_of(&db, 9).await.unwrap().name,
        "New",
        "an update of a missing row creates it"
    );
}

#[tokio::test]
async fn bad_input_is_dead_lettered_with_a_clear_error_and_stops_nothing() {
    let broker = InProcess::new();
    let (sub, db) = subscriber(&broker).await;
    let mut publisher = MockPublisher::new("crowdtap", broker.clone());
    publisher.raw("{not json").await.unwrap();
    publisher
        .raw(json!({"protocol": 7, "operations": []}).to_string())
        .await
        .unwrap();
    publisher
        .create(USER, json!(10), json!({"name": "NoEmail"}))
        .await
        .unwrap();
    publisher
        .create(USER, json!(11), json!({"name": 42, "email": "x@t"}))
        .await
        .unwrap();
    publisher
        .create(
            USER,
            json!("not-a-number"),
            json!({"name": "Str", "email": "x@t"}),
        )
        .await
        .unwrap();
    publisher
        .create(
            USER,
            json!(12),
            json!({"name": "Fine", "email": "f@t", "added_later": true}),
        )
        .await
        .unwrap();
    publisher
        .create("crowdtap/unfollowed", json!(1), json!({"x": 1}))
        .await
        .unwrap();

    let stats = sub.run_until_idle(IDLE).await.unwrap();
    assert_eq!(stats.dead_lettered, 5, "{stats:?}");
    assert_eq!(
        (stats.operations_applied, stats.operations_ignored),
        (1, 1),
        "{stats:?}"
    );
    assert_eq!(
        member_of(&db, 12).await.unwrap().name,
        "Fine",
        "unknown attributes are ignored"
    );

    let letters = sub.applier().dead_letters().await.unwrap();
    let errors: Vec<&str> = letters.iter().map(|l| l.error.as_str()).collect();
    assert!(errors[0].starts_with("malformed message"), "{errors:?}");
    assert!(
        errors[1].contains("unsupported protocol version 7"),
        "{errors:?}"
    );
    assert!(
        errors[2].contains("missing attribute `email`") && errors[2].contains("crowdtap/user/10"),
        "{errors:?}"
    );
    assert!(
        errors[3].contains("attribute `name` = 42") && errors[3].contains("String"),
        "{errors:?}"
    );
    assert!(errors[4].contains("`id` = \"not-a-number\""), "{errors:?}");
    assert_eq!(
        letters[0].payload,
        b"{not json".to_vec(),
        "the payload is kept for replay"
    );
    assert!(
        letters
            .iter()
            .all(|l| l.queue == "members" && l.attempts == 1)
    );
    assert_eq!(
        broker.queue_depth("members"),
        (0, 0),
        "everything was acked"
    );
}

#[tokio::test]
async fn failing_callbacks_roll_back_and_are_retried_then_dead_lettered() {
    let broker = InProcess::new();
    let (sub, db) = subscriber(&broker).await;
    let mut publisher = MockPublisher::new("crowdtap", broker.clone());
    publisher
        .create(
            USER,
            json!(20),
            json!({"name": "fail-twice-Jar", "email": "j@t"}),
        )
        .await
        .unwrap();
    publisher
        .create(
            USER,
            json!(21),
            json!({"name": "fail-always-Boba", "email": "b@t"}),
        )
        .await
        .unwrap();
    let stats = sub.run_until_idle(IDLE).await.unwrap();
    assert_eq!(
        (stats.operations_applied, stats.dead_lettered),
        (1, 1),
        "{stats:?}"
    );
    assert_eq!(
        events_of("fail-twice-Jar"),
        vec!["create fail-twice-Jar".to_string()]
    );
    assert!(member_of(&db, 20).await.is_some());
    assert!(
        member_of(&db, 21).await.is_none(),
        "a failed callback rolls its operation back"
    );
    let letter = &sub.applier().dead_letters().await.unwrap()[0];
    assert_eq!(letter.attempts, 3);
    assert!(
        letter.error.contains("callback after_create")
            && letter.error.contains("refusing fail-always-Boba"),
        "{}",
        letter.error
    );
    assert_eq!(
        sub.applier()
            .applied_version("crowdtap/user/21")
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn a_subscriber_without_models_is_refused() {
    let db = promiscuous_test::sqlite().await.unwrap();
    let err = promiscuous::Subscriber::new("nobody", db, InProcess::new())
        .build()
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("follows nothing"), "{err}");
}

/// One rule for every count: a zero is refused, naming the setting (never silently raised).
#[tokio::test]
async fn a_zero_count_is_refused() {
    let db = promiscuous_test::sqlite().await.unwrap();
    type Zero = fn(promiscuous::Subscriber) -> promiscuous::Subscriber;
    let zeros: [(&str, Zero); 4] = [
        ("workers", |s| s.workers(0)),
        ("batch", |s| s.batch(0)),
        ("prefetch", |s| s.prefetch(0)),
        ("max_attempts", |s| s.retries(0, Duration::from_millis(1))),
    ];
    for (name, zero) in zeros {
        let subscriber = promiscuous::Subscriber::new("members", db.clone(), InProcess::new())
            .subscribe::<member::Model>();
        let err = zero(subscriber).start().await.err().expect(name);
        assert!(err.to_string().contains(name), "{name}: {err}");
    }
}

/// `start()` in one step, like the publisher's: tables, queue, then consuming in the background.
#[tokio::test]
async fn start_is_one_step_like_the_publishers() {
    let broker = InProcess::new();
    let db = members_db().await;
    let handle = promiscuous::Subscriber::new("members", db.clone(), broker.clone())
        .subscribe::<member::Model>()
        .start()
        .await
        .unwrap();
    let mut publisher = MockPublisher::new("crowdtap", broker.clone());
    publisher
        .create(USER, json!(31), json!({"name": "Leia", "email": "l@t"}))
        .await
        .unwrap();
    handle
        .wait_until(Duration::from_secs(10), |s| s.operations_applied == 1)
        .await
        .unwrap();
    assert_eq!(member_of(&db, 31).await.unwrap().name, "Leia");
    handle.shutdown().await.unwrap();
}

/// Ready messages are applied together, one transaction per batch; a batch holding a bad
/// message is applied again one message at a time, so the bad one alone is dead-lettered and
/// every good one takes effect once (their callbacks may run twice: at least once).
#[tokio::test]
async fn batches_apply_together_and_a_bad_message_only_fails_itself() {
    let broker = InProcess::new();
    let db = promiscuous_test::sqlite().await.unwrap();
    promiscuous_test::create_table(&db, member::Entity)
        .await
        .unwrap();
    let sub = promiscuous::Subscriber::new("members", db.clone(), broker.clone())
        .subscribe::<member::Model>()
        .workers(1)
        .retries(2, Duration::from_millis(1))
        .error_notifier(std::sync::Arc::new(|_| {}))
        .build()
        .await
        .unwrap();
    let mut publisher = MockPublisher::new("crowdtap", broker.clone());
    for id in 100..120 {
        let name = format!("Batched-{id}");
        publisher
            .create(USER, json!(id), json!({"name": name, "email": "b@t"}))
            .await
            .unwrap();
    }
    let stats = sub.run_until_idle(IDLE).await.unwrap();
    assert_eq!((stats.operations_applied, stats.dead_lettered), (20, 0));
    assert!(stats.batched >= 2, "all were ready at once: {stats:?}");

    for id in 120..130 {
        let name = format!("Batched-{id}");
        publisher
            .create(USER, json!(id), json!({"name": name, "email": "b@t"}))
            .await
            .unwrap();
        if id == 125 {
            // No email: a permanent error, in the middle of the batch.
            publisher
                .create(USER, json!(999), json!({"name": "Batched-bad"}))
                .await
                .unwrap();
        }
    }
    let stats = sub.run_until_idle(IDLE).await.unwrap();
    assert_eq!((stats.operations_applied, stats.dead_lettered), (30, 1));
    for id in 100..130 {
        let m = member_of(&db, id)
            .await
            .unwrap_or_else(|| panic!("member {id}"));
        assert_eq!(m.name, format!("Batched-{id}"));
        assert!(!events_of(&format!("create Batched-{id}")).is_empty());
    }
    assert!(member_of(&db, 999).await.is_none());
    let rows = member::Entity::find().all(&db).await.unwrap();
    assert_eq!(rows.len(), 30, "each good message took effect once");
    let letters = sub.applier().dead_letters().await.unwrap();
    assert_eq!(letters.len(), 1);
    assert!(letters[0].error.contains("email"), "{}", letters[0].error);
}

/// `7` and `"7"` have one instance key, so they are one instance: either fits an integer key
/// column. Another spelling of the number (`"021"`) is another key, and is refused.
#[tokio::test]
async fn a_string_id_and_its_integer_are_one_instance() {
    let broker = InProcess::new();
    let (sub, db) = subscriber(&broker).await;
    let mut publisher = MockPublisher::new("crowdtap", broker.clone());
    publisher
        .create(USER, json!(21), json!({"name": "Luke", "email": "l@t"}))
        .await
        .unwrap();
    publisher
        .update(
            USER,
            json!("21"),
            json!({"name": "Skywalker", "email": "l@t"}),
        )
        .await
        .unwrap();
    publisher
        .update(
            USER,
            json!("021"),
            json!({"name": "Other key", "email": "l@t"}),
        )
        .await
        .unwrap();
    let stats = sub.run_until_idle(IDLE).await.unwrap();
    assert_eq!(
        (stats.operations_applied, stats.dead_lettered),
        (2, 1),
        "{stats:?}"
    );
    assert_eq!(member_of(&db, 21).await.unwrap().name, "Skywalker");
    let letter = &sub.applier().dead_letters().await.unwrap()[0];
    assert!(
        letter.error.contains("canonical decimal form"),
        "{}",
        letter.error
    );
}
