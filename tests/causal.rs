//! Causal consistency (G1, G2, G4, G5, G6): the cases of the original talk, recovery, and
//! seeded randomized histories (several publisher tasks, several models, reads and writes,
//! several subscriber workers, random delays, duplicates, reordered arrivals and redeliveries)
//! checked by `promiscuous_test::history`, which must also catch a deliberately unordered
//! subscriber.
//!
//! The subscriber's callbacks record every applied operation in a table, inside the transaction
//! that applies it: the recorded order is exactly the order in which effects became visible.
//! The models, the subscriber application under test and the publisher's seeded workload are in
//! `tests/common/causal/`.

mod common;
#[path = "common/causal/mod.rs"]
mod fixtures;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::servers::{cleanup, collector, rabbit, servers, unique};
use common::user;
use promiscuous::pipeline::{SubscriberConfig, SubscriberRuntime, VersionStore, schema};
use promiscuous::{Error, InProcess, MemoryVersions, OrderingMode, Publisher, Stats, Transport};
use promiscuous_test::MockPublisher;
use promiscuous_test::chaos::{Chaos, Faults, Recording};
use promiscuous_test::history::{Violation, describe};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel, ModelTrait,
    QueryFilter, QueryOrder, Set, TransactionTrait,
};
use serde_json::json;

use fixtures::models::publisher::{friendship, photo};
use fixtures::models::subscriber as sub;
use fixtures::workers::*;
use fixtures::workload::*;

#[tokio::test]
async fn a_context_never_depends_on_a_rolled_back_write() {
    let pdb = publisher_db().await;
    schema::setup_publisher(&pdb).await.unwrap();
    let txn = pdb.begin().await.unwrap();
    let yoda = user::ActiveModel {
        name: Set("Yoda".into()),
        email: Set("y@d".into()),
        password: Set("pw".into()),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .unwrap();
    txn.commit().await.unwrap();
    promiscuous::context(async {
        // Yoda v2 and a new user, both rolled back.
        let txn = pdb.begin().await.unwrap();
        let mut am = yoda.clone().into_active_model();
        am.name = Set("Master Yoda".into());
        am.update(&txn).await.unwrap();
        user::ActiveModel {
            name: Set("Ghost".into()),
            email: Set("g@d".into()),
            password: Set("pw".into()),
            ..Default::default()
        }
        .insert(&txn)
        .await
        .unwrap();
        txn.rollback().await.unwrap();
        let txn = pdb.begin().await.unwrap();
        photo::ActiveModel {
            user_id: Set(yoda.id),
            caption: Set("swamp".into()),
            ..Default::default()
        }
        .insert(&txn)
        .await
        .unwrap();
        txn.commit().await.unwrap();
    })
    .await;
    let rows = promiscuous::pipeline::outbox_messages(&pdb, None)
        .await
        .unwrap();
    let photo = rows.last().unwrap().message.clone();
    assert_eq!(
        photo.dependencies.read,
        vec![promiscuous::Dependency {
            key: format!("crowdtap/user/{}", yoda.id),
            version: 1
        }],
        "Yoda at the committed v1, not the rolled-back v2; the ghost not at all"
    );
}

/// The read dependencies of the newest outbox message.
async fn last_reads(pdb: &DatabaseConnection) -> Vec<(String, u64)> {
    let rows = promiscuous::pipeline::outbox_messages(pdb, None)
        .await
        .unwrap();
    let message = rows.last().unwrap().message.clone();
    let mut reads: Vec<(String, u64)> = message
        .dependencies
        .read
        .into_iter()
        .map(|d| (d.key, d.version))
        .collect();
    reads.sort();
    reads
}

fn person(name: &str) -> user::ActiveModel {
    user::ActiveModel {
        name: Set(name.into()),
        email: Set(format!("{name}@example.org")),
        password: Set("pw".into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn reads_through_a_tracked_transaction_are_read_dependencies() {
    use sea_orm::QuerySelect;
    let pdb = publisher_db().await;
    schema::setup_publisher(&pdb).await.unwrap();
    let txn = pdb.begin().await.unwrap();
    let yoda = person("Yoda").insert(&txn).await.unwrap();
    let luke = person("Luke").insert(&txn).await.unwrap();
    let swamp = photo::ActiveModel {
        user_id: Set(yoda.id),
        caption: Set("swamp".into()),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .unwrap();
    let mut am = yoda.clone().into_active_model();
    am.name = Set("Master Yoda".into());
    am.update(&txn).await.unwrap(); // Yoda v2
    txn.commit().await.unwrap();

    let post = |caption: &'static str| photo::ActiveModel {
        user_id: Set(luke.id),
        caption: Set(caption.into()),
        ..Default::default()
    };
    promiscuous::context(async {
        let txn = promiscuous::tracked(pdb.begin().await.unwrap());
        user::Entity::find_by_id(luke.id).one(&txn).await.unwrap();
        // A join: both sides are read.
        let joined = photo::Entity::find()
            .find_also_related(user::Entity)
            .all(&txn)
            .await
            .unwrap();
        assert_eq!(joined.len(), 1);
        // Partial rows are not instances; other tables are not published: no dependency, no
        // error.
        let names: Vec<String> = user::Entity::find()
            .select_only()
            .column(user::Column::Name)
            .into_tuple()
            .all(&txn)
            .await
            .unwrap();
        assert_eq!(names.len(), 2);
        promiscuous::pipeline::tables::outbox::Entity::find()
            .all(&txn)
            .await
            .unwrap();
        post("x-wing").insert(&txn).await.unwrap();
        txn.commit().await.unwrap();
    })
    .await;
    assert_eq!(
        last_reads(&pdb).await,
        vec![
            (format!("crowdtap/photo/{}", swamp.id), 1),
            (format!("crowdtap/user/{}", yoda.id), 2),
            (format!("crowdtap/user/{}", luke.id), 1),
        ]
    );

    // Outside a context, a tracked transaction reads like any other.
    let txn = promiscuous::tracked(pdb.begin().await.unwrap());
    user::Entity::find().all(&txn).await.unwrap();
    post("outside").insert(&txn).await.unwrap();
    txn.commit().await.unwrap();
    assert_eq!(last_reads(&pdb).await, vec![]);
}

#[tokio::test]
async fn a_tracked_connection_is_not_a_transaction() {
    let pdb = publisher_db().await;
    schema::setup_publisher(&pdb).await.unwrap();
    let conn = promiscuous::tracked(pdb.clone());
    let refused = person("Bare").insert(&conn).await.unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("must run inside a transaction"),
        "{refused}"
    );
    let txn = conn.begin().await.unwrap();
    person("Wrapped").insert(&txn).await.unwrap();
    txn.commit().await.unwrap();
    assert_eq!(user::Entity::find().all(&pdb).await.unwrap().len(), 1);
}

/// One randomized run on the embedded broker; returns the checked history's outcome and the
/// subscriber's stats.
async fn randomized_run(
    seed: u64,
    ordering: OrderingMode,
) -> (
    Result<promiscuous_test::history::Report, Vec<Violation>>,
    Stats,
    bool,
) {
    randomized_run_with(seed, ordering, &Truth::default()).await
}

/// [`randomized_run`], checking causal order against the ground truth recorded in `truth`
/// (what each write depended on before the publisher reduced its dependencies).
async fn randomized_run_with(
    seed: u64,
    ordering: OrderingMode,
    truth: &Truth,
) -> (
    Result<promiscuous_test::history::Report, Vec<Violation>>,
    Stats,
    bool,
) {
    let (pdb, sdb) = (publisher_db().await, subscriber_db().await);
    randomized_run_on(pdb, sdb, seed, ordering, truth, 3).await
}

/// [`randomized_run_with`] on the databases `pdb` and `sdb`, with `writers` publisher tasks.
async fn randomized_run_on(
    pdb: DatabaseConnection,
    sdb: DatabaseConnection,
    seed: u64,
    ordering: OrderingMode,
    truth: &Truth,
    writers: usize,
) -> (
    Result<promiscuous_test::history::Report, Vec<Violation>>,
    Stats,
    bool,
) {
    let broker = InProcess::new();
    let faults = Faults::default();
    let chaos = Chaos::new(broker.clone(), seed, faults);
    let recording = Recording::new(chaos.clone());
    let shared = MemoryVersions::new();
    let store = move |_| -> Arc<dyn VersionStore> { Arc::new(shared.clone()) };
    let setup = Setup {
        ordering,
        seed,
        ..Setup::new("members", &store)
    };
    let workers = setup.start(&sdb, chaos.clone()).await;
    let publisher = Publisher::new(pdb.clone(), recording.clone())
        .start()
        .await
        .unwrap();
    let tally = causal_workload_with(&pdb, seed, writers, 40, truth).await;
    if writers > 1 {
        eprintln!("seed {seed}: transactions {tally:?} (refused: because of a concurrent writer)");
    }
    publisher.shutdown().await.unwrap();
    chaos.flush().await.unwrap();
    let published = recording.published();
    let within = if ordering == OrderingMode::Causal {
        Duration::from_secs(30)
    } else {
        Duration::from_secs(3)
    };
    let complete = processed(&sdb, &published, within).await;
    let stats = workers.stop().await;
    let h = history(&sdb, &truth.of(&published)).await;
    if ordering == OrderingMode::Causal && !truth.unsound_reduction {
        assert!(
            complete,
            "seed {seed}: not everything was processed: {stats:?}"
        );
        assert_converged(&pdb, &sdb, &format!("seed {seed}")).await;
    }
    (h.check(follows), stats, complete)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomized_histories_keep_every_guarantee() {
    for seed in 0..6 {
        let (checked, stats, _) = randomized_run(seed, OrderingMode::Causal).await;
        let report = checked.unwrap_or_else(|v| panic!("seed {seed}:\n{}", describe(&v)));
        eprintln!(
            "seed {seed}: {} messages, {} operations applied in order; {stats:?}",
            report.published_messages, report.applied_ops
        );
        assert_eq!(stats.dead_lettered, 0, "seed {seed}: {stats:?}");
        assert_eq!(stats.recovered, 0, "seed {seed}: {stats:?}");
        assert!(report.published_ops > 80, "seed {seed}: {report:?}");
        assert_eq!(report.applied_ops, report.published_ops, "seed {seed}");
        assert!(
            stats.waited > 0,
            "seed {seed}: nothing ever waited: {stats:?}"
        );
        if seed % 2 == 1 {
            assert!(stats.batched > 0, "seed {seed}: no batch formed: {stats:?}");
        }
    }
}

on_both_servers! {
    randomized_histories_keep_every_guarantee_on_a_server;
}

/// The randomized histories with the publisher and the subscriber on an SQL server: three
/// publisher tasks writing concurrently (a transaction the server refuses because of another,
/// an update of a row another deleted or a deadlock, is rolled back and publishes nothing),
/// the subscriber's workers applying concurrently: the history checker passes and the
/// subscriber converges.
async fn randomized_histories_keep_every_guarantee_on_a_server(url: &str) {
    use common::sql_servers::fresh_database;
    for seed in 0..4 {
        let pdb = publisher_tables(fresh_database(url, &format!("causal_{seed}_pub")).await).await;
        let sdb = subscriber_tables(fresh_database(url, &format!("causal_{seed}_sub")).await).await;
        let (checked, stats, _) =
            randomized_run_on(pdb, sdb, seed, OrderingMode::Causal, &Truth::default(), 3).await;
        let report = checked.unwrap_or_else(|v| panic!("seed {seed}:\n{}", describe(&v)));
        eprintln!(
            "{}: seed {seed}: {} messages, {} operations applied in order; {stats:?}",
            url.split(':').next().unwrap(),
            report.published_messages,
            report.applied_ops
        );
        assert_eq!(stats.dead_lettered, 0, "seed {seed}: {stats:?}");
        assert!(report.published_ops > 60, "seed {seed}: {report:?}");
        assert_eq!(report.applied_ops, report.published_ops, "seed {seed}");
    }
}

/// The publisher lists fewer dependencies than its contexts saw (each message depends on the
/// context's previous one instead); checked against everything they saw, causal order holds.
/// With a reduction that drops what an earlier message carried without depending on that
/// message, the checker finds violations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reduced_dependencies_keep_causal_order_and_a_wrong_reduction_is_caught() {
    let mut caught = Vec::new();
    for seed in 0..6 {
        let truth = Truth::default();
        let (checked, _, _) = randomized_run_with(seed, OrderingMode::Causal, &truth).await;
        checked.unwrap_or_else(|v| panic!("seed {seed} (sound reduction):\n{}", describe(&v)));
        let wrong = Truth {
            unsound_reduction: true,
            ..Truth::default()
        };
        let (checked, _, _) = randomized_run_with(seed, OrderingMode::Causal, &wrong).await;
        if let Err(v) = checked {
            eprintln!(
                "seed {seed}: the wrong reduction made {} violations, e.g. {}",
                v.len(),
                v[0]
            );
            assert!(
                v.iter().any(|v| matches!(v, Violation::Causal { .. })),
                "{}",
                describe(&v)
            );
            caught.push(seed);
        }
    }
    assert!(
        !caught.is_empty(),
        "a reduction that drops dependencies went unnoticed in seeds 0..6"
    );
}

/// A context that reads 10,000 published rows and then writes once: the write's message stays
/// small (its dependencies travel in checkpoint messages of at most 1,000 each, which it waits
/// for), and the subscriber still applies every row read before the write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_ten_thousand_rows_then_writing_makes_small_messages() {
    const ROWS: usize = 10_000;
    let broker = InProcess::new();
    let (pdb, sdb) = (publisher_db().await, subscriber_db().await);
    let recording = Recording::new(broker.clone());
    let shared = MemoryVersions::new();
    let store = move |_| -> Arc<dyn VersionStore> { Arc::new(shared.clone()) };
    let workers = Setup::new("members", &store)
        .start(&sdb, broker.clone())
        .await;
    let publisher = Publisher::new(pdb.clone(), recording.clone())
        .start()
        .await
        .unwrap();
    for batch in 0..ROWS / 500 {
        let txn = pdb.begin().await.unwrap();
        for i in 0..500 {
            let n = batch * 500 + i;
            user::ActiveModel {
                name: Set(format!("user-{n}")),
                email: Set(format!("u{n}@example.org")),
                password: Set("pw".into()),
                ..Default::default()
            }
            .insert(&txn)
            .await
            .unwrap();
        }
        txn.commit().await.unwrap();
    }
    let truth = Truth::default();
    promiscuous::context::context_for_tests(truth.options(1), async {
        let txn = promiscuous::tracked(pdb.begin().await.unwrap());
        let users = user::Entity::find().all(&txn).await.unwrap();
        assert_eq!(users.len(), ROWS);
        photo::ActiveModel {
            user_id: Set(users[ROWS - 1].id),
            caption: Set("everyone".into()),
            ..Default::default()
        }
        .insert(&txn)
        .await
        .unwrap();
        txn.commit().await.unwrap();
    })
    .await;
    publisher.shutdown().await.unwrap();
    let published = recording.published();
    let size = |m: &promiscuous::Message| m.encode().len();
    let photo = published
        .iter()
        .find(|m| m.operations[0].endpoint == "crowdtap/photo")
        .unwrap();
    assert!(size(photo) < 64 * 1024, "{} bytes", size(photo));
    assert_eq!(photo.dependencies.read.len(), 1, "{:?}", photo.dependencies);
    let checkpoints: Vec<_> = published
        .iter()
        .filter(|m| m.operations[0].endpoint == "crowdtap/promiscuous_checkpoint")
        .collect();
    assert_eq!(checkpoints.len(), ROWS / 1000);
    let mut carried = BTreeSet::new();
    for c in &checkpoints {
        assert!(size(c) < 64 * 1024, "{} bytes", size(c));
        carried.extend(c.dependencies.read.iter().map(|d| d.key.clone()));
    }
    assert_eq!(
        carried.len(),
        ROWS,
        "every row read travels in a checkpoint"
    );
    assert!(
        processed(&sdb, &published, Duration::from_secs(60)).await,
        "everything is applied"
    );
    workers.stop().await;
    let h = history(&sdb, &truth.of(&published)).await;
    h.check(follows)
        .unwrap_or_else(|v| panic!("{}", describe(&v)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checker_catches_a_subscriber_that_does_not_order() {
    let mut caught = Vec::new();
    for seed in 0..6 {
        let (checked, _, _) = randomized_run(seed, OrderingMode::Bareback).await;
        if let Err(v) = checked {
            eprintln!("seed {seed}: {} violations, e.g. {}", v.len(), v[0]);
            assert!(
                v.iter().any(|v| matches!(
                    v,
                    Violation::Causal { .. }
                        | Violation::OutOfOrder { .. }
                        | Violation::Lost { .. }
                )),
                "{}",
                describe(&v)
            );
            caught.push(seed);
        }
    }
    assert!(
        caught.len() >= 3,
        "unordered applies went unnoticed: only seeds {caught:?} of 0..6 were caught"
    );
}

// ---------------------------------------------------------------------------------------------
// The cases of the talk.

/// Delays the applies of one endpoint, so that without ordering what comes after overtakes it.
fn slow(
    endpoint: &'static str,
) -> fn(&promiscuous::Message, &promiscuous_test::chaos::Dice) -> Duration {
    match endpoint {
        "crowdtap/user" => |m, _| {
            if m.operations[0].endpoint == "crowdtap/user" {
                Duration::from_millis(40)
            } else {
                Duration::ZERO
            }
        },
        _ => |m, _| {
            if m.operations[0].endpoint == "crowdtap/friendship" {
                Duration::from_millis(40)
            } else {
                Duration::ZERO
            }
        },
    }
}

/// "Create a user, then a photo of theirs", ten times, applied by two workers: the photo never
/// arrives before its owner. Without ordering it does.
async fn user_then_photo(ordering: OrderingMode) -> Stats {
    let broker = InProcess::new();
    let (pdb, sdb) = (publisher_db().await, subscriber_db().await);
    let store = |_| -> Arc<dyn VersionStore> { Arc::new(MemoryVersions::new()) };
    let setup = Setup {
        ordering,
        runners: 2,
        delay: slow("crowdtap/user"),
        ..Setup::new("members", &store)
    };
    let workers = setup.start(&sdb, broker.clone()).await;
    let publisher = Publisher::new(pdb.clone(), broker.clone())
        .start()
        .await
        .unwrap();
    for i in 0..10 {
        promiscuous::context(async {
            let txn = pdb.begin().await.unwrap();
            let owner = user::ActiveModel {
                name: Set(format!("owner-{i}")),
                email: Set(format!("o{i}@example.org")),
                password: Set("pw".into()),
                ..Default::default()
            }
            .insert(&txn)
            .await
            .unwrap();
            txn.commit().await.unwrap();
            let txn = pdb.begin().await.unwrap();
            photo::ActiveModel {
                user_id: Set(owner.id),
                caption: Set(format!("first photo of {i}")),
                ..Default::default()
            }
            .insert(&txn)
            .await
            .unwrap();
            txn.commit().await.unwrap();
        })
        .await;
    }
    publisher.shutdown().await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), async {
        while broker.queue_depth("members") != (0, 0) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the queue drains");
    workers.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_user_then_photo_never_fails_with_two_workers() {
    let stats = user_then_photo(OrderingMode::Causal).await;
    assert_eq!(stats.dead_lettered, 0, "{stats:?}");
    assert_eq!(stats.operations_applied, 20, "{stats:?}");
    assert!(stats.waited > 0, "photos waited for their owner: {stats:?}");
    // The control: the same run without ordering loses photos to the dead-letter store.
    let unordered = user_then_photo(OrderingMode::Bareback).await;
    assert!(unordered.dead_lettered > 0, "{unordered:?}");
}

/// Kid is friends with Mom and Dad; in one context Kid unfriends both, then posts a photo.
/// Returns who could see the photo on the subscriber.
async fn unfriend_parents_then_post_photo(ordering: OrderingMode) -> Vec<i32> {
    let broker = InProcess::new();
    let (pdb, sdb) = (publisher_db().await, subscriber_db().await);
    let store = |_| -> Arc<dyn VersionStore> { Arc::new(MemoryVersions::new()) };
    let setup = Setup {
        ordering,
        runners: 3,
        delay: slow("crowdtap/friendship"),
        ..Setup::new("members", &store)
    };
    let workers = setup.start(&sdb, broker.clone()).await;
    let publisher = Publisher::new(pdb.clone(), broker.clone())
        .start()
        .await
        .unwrap();
    let txn = pdb.begin().await.unwrap();
    let mut people = Vec::new();
    for name in ["Kid", "Mom", "Dad", "Pal"] {
        people.push(
            user::ActiveModel {
                name: Set(name.into()),
                email: Set(format!("{name}@example.org")),
                password: Set("pw".into()),
                ..Default::default()
            }
            .insert(&txn)
            .await
            .unwrap(),
        );
    }
    let mut links = Vec::new();
    for friend in &people[1..] {
        links.push(
            friendship::ActiveModel {
                user_id: Set(people[0].id),
                friend_id: Set(friend.id),
                ..Default::default()
            }
            .insert(&txn)
            .await
            .unwrap(),
        );
    }
    txn.commit().await.unwrap();
    // Let the subscriber catch up before the scene.
    publisher.flush().await.unwrap();
    until("the friendships are replicated", async || {
        broker.queue_depth("members") == (0, 0)
    })
    .await;
    let scene_start = publisher_scene(&pdb, &people, &links).await;
    publisher.shutdown().await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), async {
        while broker.queue_depth("members") != (0, 0) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the queue drains");
    workers.stop().await;
    let audience: BTreeSet<i32> = sub::audience::Entity::find()
        .filter(sub::audience::Column::PhotoId.eq(scene_start))
        .all(&sdb)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.friend_id)
        .collect();
    audience.into_iter().collect()
}

/// The scene: unfriend Mom and Dad (one transaction each), then post the photo; returns the
/// photo's id.
async fn publisher_scene(
    pdb: &DatabaseConnection,
    people: &[user::Model],
    links: &[friendship::Model],
) -> i32 {
    promiscuous::context(async {
        for link in &links[..2] {
            let txn = pdb.begin().await.unwrap();
            link.clone().delete(&txn).await.unwrap();
            txn.commit().await.unwrap();
        }
        let txn = pdb.begin().await.unwrap();
        let p = photo::ActiveModel {
            user_id: Set(people[0].id),
            caption: Set("party!".into()),
            ..Default::default()
        }
        .insert(&txn)
        .await
        .unwrap();
        txn.commit().await.unwrap();
        p.id
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfriending_the_parents_then_posting_a_photo_is_never_reversed() {
    // Ids: Kid 1, Mom 2, Dad 3, Pal 4.
    for _ in 0..3 {
        assert_eq!(
            unfriend_parents_then_post_photo(OrderingMode::Causal).await,
            vec![4]
        );
    }
    // The control: without ordering, the parents see the photo.
    let unordered = unfriend_parents_then_post_photo(OrderingMode::Bareback).await;
    assert!(
        unordered.contains(&2) && unordered.contains(&3),
        "{unordered:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Recovery, dead letters, dependencies through endpoints nobody follows, wake-ups.

async fn single(
    sdb: &DatabaseConnection,
    broker: &InProcess,
    timeout: Duration,
    notifier: promiscuous::ErrorNotifier,
) -> Workers {
    let store = |_| -> Arc<dyn VersionStore> { Arc::new(MemoryVersions::new()) };
    let setup = Setup {
        workers: 1,
        dependency_timeout: timeout,
        notifier,
        delay: |_, _| Duration::ZERO,
        ..Setup::new("members", &store)
    };
    setup.start(sdb, broker.clone()).await
}

async fn until(what: &str, f: impl AsyncFn() -> bool) {
    tokio::time::timeout(Duration::from_secs(20), async {
        while !f().await {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting until {what}"));
}

#[tokio::test]
async fn a_missing_dependency_is_skipped_after_the_timeout_and_reported() {
    let broker = InProcess::new();
    let sdb = subscriber_db().await;
    let (errors, notifier) = collector();
    let workers = single(&sdb, &broker, Duration::from_millis(200), notifier).await;
    let mut mock = MockPublisher::new("crowdtap", broker.clone());
    let v1 = mock.message(
        "crowdtap/user",
        json!(5),
        promiscuous::OperationKind::Create,
        Some(json!({"name": "lost"})),
    );
    let v2 = mock
        .update("crowdtap/user", json!(5), json!({"name": "found"}))
        .await
        .unwrap();
    until("v2 is applied", async || {
        sub::user::Entity::find().one(&sdb).await.unwrap().is_some()
    })
    .await;
    let stats = workers.stop().await;
    assert_eq!(
        (stats.recovered, stats.operations_applied),
        (1, 1),
        "{stats:?}"
    );
    let errors = errors.lock().unwrap().clone();
    let recover: Vec<&Error> = errors
        .iter()
        .filter(|e| matches!(e, Error::Recovered { .. }))
        .collect();
    assert_eq!(recover.len(), 1, "{errors:?}");
    let text = recover[0].to_string();
    assert!(
        text.contains(&v2.id) && text.contains("crowdtap/user/5 v1") && text.contains("200ms"),
        "{text}"
    );
    // The late v1 is stale now: skipped, never applied over v2.
    mock.send(&v1).await.unwrap();
    let workers = single(
        &sdb,
        &broker,
        Duration::from_secs(30),
        promiscuous::log_errors(),
    )
    .await;
    until("the queue drains", async || {
        broker.queue_depth("members") == (0, 0)
    })
    .await;
    let stats = workers.stop().await;
    assert_eq!(stats.operations_skipped, 1, "{stats:?}");
    let row = sub::user::Entity::find().one(&sdb).await.unwrap().unwrap();
    assert_eq!(row.name, "found");
}

#[tokio::test]
async fn a_dead_lettered_dependency_does_not_hold_back_what_follows() {
    let broker = InProcess::new();
    let sdb = subscriber_db().await;
    let workers = single(
        &sdb,
        &broker,
        Duration::from_secs(60),
        promiscuous::log_errors(),
    )
    .await;
    let mut mock = MockPublisher::new("crowdtap", broker.clone());
    // v1 lacks the subscribed attribute `name`: dead-lettered. v2 must not wait 60 s for it.
    mock.create("crowdtap/user", json!(6), json!({"nickname": "?"}))
        .await
        .unwrap();
    mock.update("crowdtap/user", json!(6), json!({"name": "fixed"}))
        .await
        .unwrap();
    until("v2 is applied", async || {
        sub::user::Entity::find().one(&sdb).await.unwrap().is_some()
    })
    .await;
    let stats = workers.stop().await;
    assert_eq!(
        (
            stats.dead_lettered,
            stats.operations_applied,
            stats.recovered
        ),
        (1, 1, 0),
        "{stats:?}"
    );
}

#[tokio::test]
async fn dependencies_through_an_endpoint_nobody_follows_still_order() {
    // The subscriber follows users, photos and friendships, not `crowdtap/comment`. A comment
    // read user 1 at v2; user 2 was created after reading the comment. User 2 must wait for
    // user 1 v2, through the comment, even though the comment itself is not applied.
    let broker = InProcess::new();
    let sdb = subscriber_db().await;
    let workers = single(
        &sdb,
        &broker,
        Duration::from_secs(60),
        promiscuous::log_errors(),
    )
    .await;
    let mut mock = MockPublisher::new("crowdtap", broker.clone());
    let u1v1 = mock.message(
        "crowdtap/user",
        json!(1),
        promiscuous::OperationKind::Create,
        Some(json!({"name": "one"})),
    );
    let u1v2 = mock.message(
        "crowdtap/user",
        json!(1),
        promiscuous::OperationKind::Update,
        Some(json!({"name": "one again"})),
    );
    let mut comment = mock.message(
        "crowdtap/comment",
        json!(9),
        promiscuous::OperationKind::Create,
        Some(json!({"body": "hi"})),
    );
    comment.dependencies.read.push(promiscuous::Dependency {
        key: "crowdtap/user/1".into(),
        version: 2,
    });
    let mut u2 = mock.message(
        "crowdtap/user",
        json!(2),
        promiscuous::OperationKind::Create,
        Some(json!({"name": "two"})),
    );
    u2.dependencies.read.push(promiscuous::Dependency {
        key: "crowdtap/comment/9".into(),
        version: 1,
    });
    for m in [&u1v1, &u2, &comment, &u1v2] {
        mock.send(m).await.unwrap();
    }
    until("everything is processed", async || {
        broker.queue_depth("members") == (0, 0)
    })
    .await;
    let stats = workers.stop().await;
    assert_eq!(
        (
            stats.operations_applied,
            stats.operations_ignored,
            stats.recovered
        ),
        (3, 1, 0),
        "{stats:?}"
    );
    let order: Vec<String> = sub::event::Entity::find()
        .order_by_asc(sub::event::Column::Seq)
        .all(&sdb)
        .await
        .unwrap()
        .into_iter()
        .map(|e| format!("{} v{}", e.key, e.version))
        .collect();
    assert_eq!(
        order,
        [
            "crowdtap/user/1 v1",
            "crowdtap/user/1 v2",
            "crowdtap/user/2 v1"
        ]
    );
    // The comment's version is recorded, so a restarted subscriber does not wait for it again.
    let recorded =
        promiscuous::pipeline::Applier::versions(&applier(&sdb), &["crowdtap/comment/9".into()])
            .await
            .unwrap();
    assert_eq!(recorded, vec![1]);
}

/// Two workers, prefetch 1 each: one holds v1 of an instance (slowly applied), so v2 goes to
/// the other, which must learn of v1 through the version store's wake-ups (the periodic
/// re-check is set to an hour, the dependency timeout to a minute).
async fn a_worker_is_woken_by_another(
    transport: impl Transport + Clone,
    store: &dyn Fn(usize) -> Arc<dyn VersionStore>,
    queue: &str,
    app: &str,
) {
    let sdb = subscriber_db().await;
    let (errors, notifier) = collector();
    let setup = Setup {
        prefetch: 1,
        runners: 1,
        recheck: Duration::from_secs(3600),
        dependency_timeout: Duration::from_secs(60),
        delay: |m, _| {
            if m.operations[0].version == 1 {
                Duration::from_millis(100)
            } else {
                Duration::ZERO
            }
        },
        notifier,
        ..Setup::new(queue, store)
    };
    let workers = setup.start(&sdb, transport.clone()).await;
    let mut mock = MockPublisher::new(app, transport);
    let endpoint = format!("{app}/user");
    mock.create(&endpoint, json!(1), json!({"name": "v1"}))
        .await
        .unwrap();
    mock.update(&endpoint, json!(1), json!({"name": "v2"}))
        .await
        .unwrap();
    until("v2 is applied", async || {
        sub::user::Entity::find()
            .one(&sdb)
            .await
            .unwrap()
            .is_some_and(|u| u.name == "v2")
    })
    .await;
    let stats = workers.stop().await;
    assert_eq!(
        (stats.operations_applied, stats.recovered),
        (2, 0),
        "{stats:?}"
    );
    assert_eq!(stats.waited, 1, "{stats:?}");
    let errors = errors.lock().unwrap().clone();
    assert!(errors.is_empty(), "{errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_worker_is_woken_by_another_through_memory_versions() {
    let shared = MemoryVersions::new();
    let store = move |_| -> Arc<dyn VersionStore> { Arc::new(shared.clone()) };
    a_worker_is_woken_by_another(InProcess::new(), &store, "members", "crowdtap").await;
}

/// Counts applies running at once.
struct Gauge<A> {
    inner: A,
    now: std::sync::atomic::AtomicUsize,
    most: Arc<std::sync::atomic::AtomicUsize>,
}

#[async_trait::async_trait]
impl<A: promiscuous::pipeline::Applier> promiscuous::pipeline::Applier for Gauge<A> {
    fn bindings(&self) -> Vec<String> {
        self.inner.bindings()
    }
    async fn apply(
        &self,
        message: &promiscuous::Message,
    ) -> Result<promiscuous::pipeline::Applied, promiscuous::pipeline::ApplyError> {
        use std::sync::atomic::Ordering::SeqCst;
        let n = self.now.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(n, SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let r = self.inner.apply(message).await;
        self.now.fetch_sub(1, SeqCst);
        r
    }
    async fn versions(&self, keys: &[String]) -> Result<Vec<u64>, promiscuous::BoxError> {
        self.inner.versions(keys).await
    }
    async fn dead_letter(
        &self,
        letter: promiscuous::pipeline::DeadLetter,
    ) -> Result<(), promiscuous::BoxError> {
        self.inner.dead_letter(letter).await
    }
}

/// The most applies that ran at once for `messages`, on 4 runners.
async fn concurrency(messages: &[promiscuous::Message], ordering: OrderingMode) -> usize {
    let broker = InProcess::new();
    let sdb = subscriber_db().await;
    let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let gauge = Gauge {
        inner: applier(&sdb),
        now: Default::default(),
        most: most.clone(),
    };
    let config = SubscriberConfig {
        workers: 4,
        ordering,
        ..SubscriberConfig::new("members")
    };
    let runtime = SubscriberRuntime::new(Arc::new(broker.clone()), Arc::new(gauge), config);
    runtime.declare().await.unwrap();
    let mock = MockPublisher::new("crowdtap", broker.clone());
    for m in messages {
        mock.send(m).await.unwrap();
    }
    let stats = runtime
        .run_until_idle(promiscuous_test::IDLE)
        .await
        .unwrap();
    assert_eq!(stats.operations_applied, messages.len(), "{stats:?}");
    most.load(std::sync::atomic::Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_messages_run_in_parallel_and_dependent_ones_in_turn() {
    let mut mock = MockPublisher::new("crowdtap", InProcess::new());
    let independent: Vec<_> = (1..=8)
        .map(|i| {
            mock.message(
                "crowdtap/user",
                json!(i),
                promiscuous::OperationKind::Create,
                Some(json!({"name": format!("u{i}")})),
            )
        })
        .collect();
    assert_eq!(concurrency(&independent, OrderingMode::Causal).await, 4);
    let chain: Vec<_> = (1..=8)
        .map(|i| {
            mock.message(
                "crowdtap/user",
                json!(100),
                promiscuous::OperationKind::Update,
                Some(json!({"name": format!("v{i}")})),
            )
        })
        .collect();
    assert_eq!(concurrency(&chain, OrderingMode::Causal).await, 1);
}

// ---------------------------------------------------------------------------------------------
// The same against the real servers: RabbitMQ queues, Redis versions and wake-ups.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_worker_is_woken_by_another_through_redis() {
    let Some(s) = servers("redis wake-ups") else {
        return;
    };
    let name = unique("wakeups");
    let store = redis_store(&s.redis, &name);
    // The subscriber's endpoints are crowdtap/*: the mock publishes as app "crowdtap" on a
    // private exchange.
    a_worker_is_woken_by_another(rabbit(&s, &name), &store, &name, "crowdtap").await;
    cleanup(&s, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomized_history_over_rabbitmq_and_redis() {
    let Some(s) = servers("causal history over RabbitMQ") else {
        return;
    };
    for seed in [11, 12] {
        let name = unique(&format!("causal-{seed}"));
        let faults = Faults {
            disconnect: 0.005,
            ..Faults::default()
        };
        let transport = Chaos::new(rabbit(&s, &name), seed, faults);
        let (pdb, sdb) = (publisher_db().await, subscriber_db().await);
        let store = redis_store(&s.redis, &name);
        let setup = Setup {
            seed,
            workers: 3,
            runners: 2,
            ..Setup::new(&name, &store)
        };
        let workers = setup.start(&sdb, transport.clone()).await;
        let recording = Recording::new(transport.clone());
        let publisher = Publisher::new(pdb.clone(), recording.clone())
            .start()
            .await
            .unwrap();
        causal_workload(&pdb, seed, 3, 40).await;
        publisher.shutdown().await.unwrap();
        transport.flush().await.unwrap();
        let published = recording.published();
        let complete = processed(&sdb, &published, Duration::from_secs(30)).await;
        let stats = workers.stop().await;
        assert!(complete, "seed {seed}: {stats:?}");
        let report = history(&sdb, &published)
            .await
            .check(follows)
            .unwrap_or_else(|v| panic!("seed {seed}:\n{}", describe(&v)));
        assert_eq!(report.applied_ops, report.published_ops);
        assert_eq!((stats.dead_lettered, stats.recovered), (0, 0), "{stats:?}");
        assert_converged(&pdb, &sdb, &format!("seed {seed}")).await;
        cleanup(&s, &name).await;
    }
}

#[tokio::test]
async fn a_context_tells_what_its_writes_published_and_what_it_depends_on() {
    let pdb = publisher_db().await;
    schema::setup_publisher(&pdb).await.unwrap();
    assert_eq!(promiscuous::context::recorded(), None, "outside a context");
    promiscuous::context(async {
        let txn = pdb.begin().await.unwrap();
        let yoda = person("Yoda").insert(&txn).await.unwrap();
        txn.commit().await.unwrap();
        let txn = promiscuous::tracked(pdb.begin().await.unwrap());
        user::Entity::find_by_id(yoda.id)
            .one(&txn)
            .await
            .unwrap()
            .unwrap();
        let mut am = yoda.clone().into_active_model();
        am.name = Set("Master Yoda".into());
        am.update(&txn).await.unwrap();
        txn.commit().await.unwrap();
        let recorded = promiscuous::context::recorded().expect("in a context");
        let key = format!("crowdtap/user/{}", yoda.id);
        let versions: Vec<(&str, u64)> = recorded
            .writes
            .iter()
            .map(|w| (w.key.as_str(), w.version))
            .collect();
        assert_eq!(versions, vec![(key.as_str(), 1), (key.as_str(), 2)]);
        assert!(recorded.writes.iter().all(|w| !w.message.is_empty()));
        assert_ne!(recorded.writes[0].message, recorded.writes[1].message);
        assert_eq!(
            recorded.dependencies,
            vec![promiscuous::Dependency { key, version: 2 }]
        );
    })
    .await;
}
