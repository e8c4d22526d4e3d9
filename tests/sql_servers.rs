//! The SeaORM glue on the SQL servers, PostgreSQL (PROMISCUOUS_POSTGRES_URL) and MariaDB
//! (PROMISCUOUS_MARIADB_URL), both started by scripts/services.sh: outbox and versions on the
//! publisher, applied versions and dead letters on the subscriber, each service in its own
//! database. Each test runs on both (`postgres::…`, `mariadb::…`). In CI a missing server fails
//! these tests; elsewhere they say they were skipped.

mod common;

use common::{member, user};
use promiscuous::pipeline::schema;
use promiscuous::{InProcess, Message, OperationKind, Publisher, Subscriber};
use promiscuous_test::MockPublisher;
use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, ModelTrait, Set, TransactionTrait};
use serde_json::json;

use common::sql_servers::{fresh_database, mariadb_url};

on_both_servers! {
    publisher_and_subscriber_run;
    concurrent_applies_of_one_message_take_effect_once;
    writes_that_bypass_the_hooks_are_refused;
    a_write_wakes_the_relays_of_its_own_database_only;
}

async fn publisher_and_subscriber_run(url: &str) {
    let pdb = fresh_database(url, "publisher").await;
    let sdb = fresh_database(url, "subscriber").await;
    promiscuous_test::create_table(&pdb, user::Entity)
        .await
        .unwrap();
    promiscuous_test::create_table(&sdb, member::Entity)
        .await
        .unwrap();

    let broker = InProcess::new();
    let sub = Subscriber::new("members", sdb.clone(), broker.clone())
        .subscribe::<member::Model>()
        .build()
        .await
        .unwrap();
    // The relay starts only once the outbox was read below: a running relay drains it.
    schema::setup_publisher(&pdb).await.unwrap();

    // A write outside a transaction is refused; a rolled-back one publishes nothing.
    let yoda = user::ActiveModel {
        name: Set("Yoda".into()),
        email: Set("y@d".into()),
        password: Set("pw".into()),
        ..Default::default()
    };
    let err = yoda.clone().insert(&pdb).await.unwrap_err().to_string();
    assert!(err.contains("must run inside a transaction"), "{err}");
    let txn = pdb.begin().await.unwrap();
    yoda.clone().insert(&txn).await.unwrap();
    txn.rollback().await.unwrap();

    // Create, update, destroy.
    let txn = pdb.begin().await.unwrap();
    let m = yoda.insert(&txn).await.unwrap();
    txn.commit().await.unwrap();
    let txn = pdb.begin().await.unwrap();
    let mut am = m.into_active_model();
    am.name = Set("Master Yoda".into());
    let m = am.update(&txn).await.unwrap();
    txn.commit().await.unwrap();
    let payloads: Vec<Message> = promiscuous::pipeline::outbox_messages(&pdb, None)
        .await
        .unwrap()
        .iter()
        .map(|p| Message::decode(&p.message.encode()).unwrap())
        .collect();
    let ops: Vec<(OperationKind, u64)> = payloads
        .iter()
        .map(|p| (p.operations[0].operation, p.operations[0].version))
        .collect();
    assert_eq!(
        ops,
        vec![(OperationKind::Create, 1), (OperationKind::Update, 2)]
    );

    let publisher = Publisher::new(pdb.clone(), broker.clone())
        .start()
        .await
        .unwrap();
    promiscuous_test::sync(&publisher, &sub).await.unwrap();
    let copy = member::Entity::find().one(&sdb).await.unwrap().unwrap();
    assert_eq!(
        (copy.crowdtap_id, copy.name.as_str()),
        (m.id, "Master Yoda")
    );

    let txn = pdb.begin().await.unwrap();
    m.delete(&txn).await.unwrap();
    txn.commit().await.unwrap();
    promiscuous_test::sync(&publisher, &sub).await.unwrap();
    assert!(member::Entity::find().one(&sdb).await.unwrap().is_none());
    assert_eq!(publisher.pending().await.unwrap(), 0);

    // Bad input lands in the dead-letter table (binary payload column) and stops nothing.
    let mut mock = MockPublisher::new("crowdtap", broker.clone());
    mock.raw(vec![0xff, 0xfe, b'{']).await.unwrap();
    mock.create(
        "crowdtap/user",
        json!(99),
        json!({"name": "After", "email": "a@t"}),
    )
    .await
    .unwrap();
    let stats = sub.run_until_idle(promiscuous_test::IDLE).await.unwrap();
    assert_eq!(stats.dead_lettered, 1, "{stats:?}");
    let letters = sub.applier().dead_letters().await.unwrap();
    assert_eq!(letters[0].payload, vec![0xff, 0xfe, b'{']);
    assert!(
        letters[0].error.starts_with("malformed message"),
        "{}",
        letters[0].error
    );
    assert_eq!(
        sub.applier()
            .applied_version("crowdtap/user/99")
            .await
            .unwrap(),
        Some(1)
    );

    // The tables are created idempotently.
    schema::setup_publisher(&pdb).await.unwrap();
    schema::setup_subscriber(&sdb).await.unwrap();
    publisher.shutdown().await.unwrap();
}

/// G4 across processes: transactions applying the same message at once (two workers of one
/// subscriber app that both received it) take effect once; the version claim makes the others
/// skip it, callbacks included.
async fn concurrent_applies_of_one_message_take_effect_once(url: &str) {
    use promiscuous::pipeline::{Applier, SeaOrmApplier};
    let sdb = fresh_database(url, "concurrent_applies").await;
    // The callbacks' log is the process's: names of this server's own.
    let server = url.split(':').next().unwrap();
    promiscuous_test::create_table(&sdb, member::Entity)
        .await
        .unwrap();
    schema::setup_subscriber(&sdb).await.unwrap();
    let mut mock = MockPublisher::new("crowdtap", InProcess::new());
    for round in 0..10 {
        let name = format!("Concurrent-{server}-{round}");
        let create = mock.message(
            "crowdtap/user",
            json!(500 + round),
            OperationKind::Create,
            Some(json!({"name": name, "email": "c@t"})),
        );
        let update = mock.message(
            "crowdtap/user",
            json!(500 + round),
            OperationKind::Update,
            Some(json!({"name": name, "email": "new@t"})),
        );
        for message in [create, update] {
            let applies: Vec<_> = (0..4)
                .map(|_| {
                    // One applier per "process", sharing the database only.
                    let applier = SeaOrmApplier::new(sdb.clone()).subscribe::<member::Model>();
                    let message = message.clone();
                    tokio::spawn(async move { applier.apply(&message).await.unwrap() })
                })
                .collect();
            let mut applied = 0;
            for a in applies {
                let outcome = a.await.unwrap();
                applied += outcome.applied;
                assert_eq!(outcome.applied + outcome.skipped, 1, "{outcome:?}");
            }
            assert_eq!(applied, 1, "round {round}");
        }
        assert_eq!(
            common::events_of(&name),
            vec![
                format!("create {name}"),
                format!("update {name} email: \"c@t\" -> \"new@t\"")
            ],
            "one callback each"
        );
    }
}

/// The write guard: bypassing writes refused, permits private to their transaction (two
/// writers at once neither wait for nor lend each other a permit).
async fn writes_that_bypass_the_hooks_are_refused(url: &str) {
    let pdb = fresh_database(url, "guard").await;
    promiscuous_test::create_table(&pdb, user::Entity)
        .await
        .unwrap();
    let publisher = Publisher::new(pdb.clone(), InProcess::new())
        .start()
        .await
        .unwrap();
    common::guard::bypassing_writes_are_refused(&pdb).await;
    common::guard::permits_are_private_to_their_transaction(&pdb).await;
    publisher.shutdown().await.unwrap();
}

/// Two databases on one server have two identities: a write wakes its own relays only.
async fn a_write_wakes_the_relays_of_its_own_database_only(url: &str) {
    let a = fresh_database(url, "wake_a").await;
    let b = fresh_database(url, "wake_b").await;
    for db in [&a, &b] {
        promiscuous_test::create_table(db, user::Entity)
            .await
            .unwrap();
        schema::setup_publisher(db).await.unwrap();
    }
    common::wake::writes_wake_their_own_database_only(&a, &b).await;
}

/// MariaDB does not abort a transaction whose statement failed: a published write whose outbox
/// statements fail half-way (here the operations table is gone: the header and the version are
/// written, then the operation's insert fails) returns the error and leaves nothing of them in
/// the transaction, even when the application commits it anyway.
#[tokio::test]
async fn a_failed_published_write_leaves_nothing_in_the_outbox_on_mariadb() {
    use promiscuous::pipeline::tables;
    use sea_orm::{ConnectionTrait, PaginatorTrait};
    let Some(url) = mariadb_url("mariadb failed write") else {
        return;
    };
    let pdb = fresh_database(&url, "failed_write").await;
    promiscuous_test::create_table(&pdb, user::Entity)
        .await
        .unwrap();
    schema::setup_publisher(&pdb).await.unwrap();
    pdb.execute_unprepared("DROP TABLE promiscuous_outbox_operations")
        .await
        .unwrap();
    let txn = pdb.begin().await.unwrap();
    let err = user::ActiveModel {
        name: Set("Half".into()),
        email: Set("h@w".into()),
        password: Set("pw".into()),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("promiscuous_outbox_operations"), "{err}");
    txn.commit().await.unwrap();
    assert_eq!(tables::outbox::Entity::find().count(&pdb).await.unwrap(), 0);
    assert_eq!(
        tables::versions::Entity::find().count(&pdb).await.unwrap(),
        0
    );
}
