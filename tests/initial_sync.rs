//! The initial sync (`promiscuous publish <model>`) converges while the application writes the
//! same rows.
//!
//! A seeded workload per run: rows written before promiscuous existed (never published), then
//! three writers (tasks, each transaction on its own pooled connection) updating, destroying
//! and creating rows, one to three rows per transaction, while the command line syncs the whole
//! table again and again (`Cli::run_with`, small batches, no relay: the application's relay
//! publishes the outbox). Two subscribers: `live`, whose queue exists from the start (it
//! receives every live write), and `late`, whose queue is declared only after a third of the
//! writes (it relies on the syncs for the rows written before). A queue bound to every app
//! (the tap) keeps what the relay published. After the writers stop, a last sync and draining:
//!
//! - every subscriber row equals the publisher's (rows destroyed there are absent);
//! - what the publisher published last for each row is its state (a sync never versions a
//!   stale state) or, for a row gone, a destroy;
//! - the callbacks of `live` ran for every operation published, live or sync: no live update
//!   was overtaken by a sync and skipped as stale;
//! - each sync run resent every row that existed from its start to its end (paging by key
//!   skips no row when rows before it are deleted between batches).
//!
//! On PostgreSQL (PROMISCUOUS_POSTGRES_URL, started by scripts/services.sh: in CI a missing
//! server fails the test, elsewhere it says it was skipped; databases
//! `promiscuous_test_sync_*`) and on SQLite (a file shared by the application's connections
//! and the command's), over the in-process broker.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use promiscuous::pipeline::tables;
use promiscuous::transport::QueueSpec;
use promiscuous::{
    BoxError, Callbacks, Ctx, InProcess, Message, OperationKind, Publisher, Subscriber,
    SubscriberService, Transport,
};
use promiscuous_cli::Cli;
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction,
    EntityTrait, IntoActiveModel, ModelTrait, QuerySelect, Set, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};
use serde_json::json;

/// The publisher's model.
mod photo {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "photos")]
    #[promiscuous::publish(caption, revision, to = "synctest/photo")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i32,
        pub caption: String,
        pub revision: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
}

/// The subscribers' copy (each subscriber in a database of its own).
mod copy {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "photo_copies")]
    #[promiscuous::subscribe(caption, revision, from = "synctest/photo")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i32,
        pub caption: String,
        pub revision: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

// ---------------------------------------------------------------------------------------------
// What the subscribers applied

/// One operation a subscriber applied (its callbacks ran): which subscriber, message, instance,
/// version, and whether it was a sync.
#[derive(Clone, Debug)]
struct Applied {
    subscriber: &'static str,
    message: String,
    key: String,
    version: u64,
    sync: bool,
}

/// Every operation applied, by every run of this binary (each run has its own messages).
static APPLIED: Mutex<Vec<Applied>> = Mutex::new(Vec::new());

fn record(subscriber: &'static str, ctx: &Ctx<'_>) {
    APPLIED.lock().unwrap().push(Applied {
        subscriber,
        message: ctx.message.id.clone(),
        key: ctx.operation.key(),
        version: ctx.operation.version,
        sync: ctx.operation.sync,
    });
}

/// Observers next to the copy, one per subscriber: their callbacks run for every operation
/// applied (a destroy too, even of a row the subscriber does not have), never for one skipped.
macro_rules! observer {
    ($name:ident, $subscriber:literal) => {
        #[derive(Default)]
        #[promiscuous::observer(caption, from = "synctest/photo")]
        pub struct $name {
            pub id: i32,
            pub caption: String,
        }

        impl Callbacks for $name {
            async fn after_create(&self, ctx: &Ctx<'_>) -> Result<(), BoxError> {
                record($subscriber, ctx);
                Ok(())
            }
            async fn after_update(&self, ctx: &Ctx<'_>) -> Result<(), BoxError> {
                record($subscriber, ctx);
                Ok(())
            }
            async fn after_destroy(&self, ctx: &Ctx<'_>) -> Result<(), BoxError> {
                record($subscriber, ctx);
                Ok(())
            }
        }
    };
}

observer!(LiveSeen, "live");
observer!(LateSeen, "late");

// ---------------------------------------------------------------------------------------------
// Databases

#[derive(Clone)]
enum Backend {
    /// The SQL server's URL (PostgreSQL, MariaDB).
    Server(String),
    /// A directory for the publisher's database file.
    Sqlite(PathBuf),
}
use common::sql_servers::fresh_database_url as fresh_database;

/// The publisher's database (and its URL, for the command line) and the two subscribers'.
async fn databases(
    backend: &Backend,
    seed: u64,
) -> (
    DatabaseConnection,
    String,
    DatabaseConnection,
    DatabaseConnection,
) {
    let (publisher, url, live, late) = match backend {
        Backend::Server(server) => {
            let (publisher, url) = fresh_database(server, &format!("sync_{seed}_pub")).await;
            let (live, _) = fresh_database(server, &format!("sync_{seed}_live")).await;
            let (late, _) = fresh_database(server, &format!("sync_{seed}_late")).await;
            (publisher, url, live, late)
        }
        Backend::Sqlite(dir) => {
            let file = dir.join(format!("publisher-{seed}.db"));
            let _ = std::fs::remove_file(&file);
            let url = format!("sqlite://{}?mode=rwc", file.display());
            let publisher = Database::connect(url.as_str()).await.unwrap();
            (
                publisher,
                url,
                promiscuous_test::sqlite().await.unwrap(),
                promiscuous_test::sqlite().await.unwrap(),
            )
        }
    };
    promiscuous_test::create_table(&publisher, photo::Entity)
        .await
        .unwrap();
    promiscuous_test::create_table(&live, copy::Entity)
        .await
        .unwrap();
    promiscuous_test::create_table(&late, copy::Entity)
        .await
        .unwrap();
    (publisher, url, live, late)
}

fn is_sqlite(db: &DatabaseConnection) -> bool {
    db.get_database_backend() == sea_orm::DbBackend::Sqlite
}

/// A writer's transaction: on SQLite it takes the write lock at once (several connections
/// write one file: a deferred transaction that read first could not write afterwards).
async fn begin(db: &DatabaseConnection) -> Result<DatabaseTransaction, sea_orm::DbErr> {
    if is_sqlite(db) {
        db.begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        })
        .await
    } else {
        db.begin().await
    }
}

/// The publisher's rows: id → (caption, revision).
async fn rows(db: &DatabaseConnection) -> BTreeMap<i32, (String, i32)> {
    photo::Entity::find()
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.id, (r.caption, r.revision)))
        .collect()
}

async fn copies(db: &DatabaseConnection) -> BTreeMap<i32, (String, i32)> {
    copy::Entity::find()
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.id, (r.caption, r.revision)))
        .collect()
}

/// The publisher's versions: instance key → version.
async fn versions(db: &DatabaseConnection) -> HashMap<String, u64> {
    tables::versions::Entity::find()
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|v| (v.key, v.version as u64))
        .collect()
}

fn key(id: i32) -> String {
    format!("synctest/photo/{id}")
}

// ---------------------------------------------------------------------------------------------
// The workload

/// xorshift64: the same seed, the same workload.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Rows written before promiscuous was set up.
const SEEDED_ROWS: i32 = 40;
const WRITERS: usize = 3;
/// Transactions per writer, at least (each of one to three writes).
const TRANSACTIONS: usize = 60;
/// Rows per sync batch: small, so that one sync run spans many transactions.
const SYNC_BATCH: &str = "7";

/// What the writers and the sync loop share.
struct Shared {
    next_id: AtomicI32,
    /// Writer transactions committed.
    committed: AtomicUsize,
    /// Writer transactions the database refused (rolled back: they publish nothing).
    refused: AtomicUsize,
    /// Why, one line per kind of error (the database's message).
    refusals: Mutex<BTreeSet<String>>,
    /// The rows created by committed writer transactions (a refused one's id never exists).
    created: Mutex<BTreeSet<i32>>,
    /// Sync runs completed.
    sync_runs: AtomicUsize,
    /// The writers go on until this many sync runs completed (set when the late subscriber's
    /// queue is declared), so that several syncs overlap the writes.
    runs_wanted: AtomicUsize,
    writers_done: AtomicBool,
}

#[derive(Clone, Copy, Debug)]
enum Write {
    Update,
    Destroy,
    Create,
}

/// One writer: transactions of one to three writes on distinct rows, in key order (as the
/// sync locks them: no deadlock), with the rows read `FOR UPDATE` on PostgreSQL.
async fn writer(db: DatabaseConnection, shared: Arc<Shared>, seed: u64, w: usize) {
    let mut rng = Rng::new(seed * 1000 + w as u64 + 1);
    let mut n = 0usize;
    loop {
        let enough_runs =
            shared.sync_runs.load(Ordering::SeqCst) >= shared.runs_wanted.load(Ordering::SeqCst);
        if (n >= TRANSACTIONS && enough_runs) || n >= TRANSACTIONS * 50 {
            return;
        }
        n += 1;
        let max = shared.next_id.load(Ordering::SeqCst) - 1;
        let mut plan: Vec<(i32, Write)> = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let id = 1 + rng.below(max as u64) as i32;
            let write = match rng.below(10) {
                0..=6 => Write::Update,
                7 | 8 => Write::Destroy,
                _ => Write::Create,
            };
            if !plan.iter().any(|(i, _)| *i == id) {
                plan.push((id, write));
            }
        }
        plan.sort_by_key(|(id, _)| *id);
        let mut creating = Vec::new();
        let outcome = async {
            let txn = begin(&db).await?;
            for (id, write) in &plan {
                let mut find = photo::Entity::find_by_id(*id);
                if !is_sqlite(&db) {
                    find = find.lock_exclusive();
                }
                match write {
                    Write::Update => {
                        if let Some(row) = find.one(&txn).await? {
                            let revision = row.revision + 1;
                            let mut am = row.into_active_model();
                            am.caption = Set(format!("w{w} t{n} #{id}"));
                            am.revision = Set(revision);
                            am.update(&txn).await?;
                        }
                    }
                    Write::Destroy => {
                        if let Some(row) = find.one(&txn).await? {
                            row.delete(&txn).await?;
                        }
                    }
                    Write::Create => {
                        let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
                        creating.push(id);
                        photo::ActiveModel {
                            id: Set(id),
                            caption: Set(format!("w{w} t{n} new #{id}")),
                            revision: Set(1),
                        }
                        .insert(&txn)
                        .await?;
                    }
                }
            }
            txn.commit().await
        };
        match outcome.await {
            Ok(()) => {
                shared.created.lock().unwrap().extend(creating);
                shared.committed.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) => {
                let text = e.to_string();
                shared
                    .refusals
                    .lock()
                    .unwrap()
                    .insert(text.chars().take(160).collect());
                shared.refused.fetch_add(1, Ordering::SeqCst);
            }
        };
        tokio::time::sleep(Duration::from_millis(1 + rng.below(2))).await;
    }
}

/// One sync run and what it must have resent: the rows that existed from its start to its end
/// (ids are never reused), each at a version after `before` and up to `after`.
struct SyncRun {
    throughout: BTreeSet<i32>,
    before: HashMap<String, u64>,
    after: HashMap<String, u64>,
}

async fn sync_once(cli: &Cli, url: &str, pdb: &DatabaseConnection) -> SyncRun {
    let ids_before: BTreeSet<i32> = rows(pdb).await.into_keys().collect();
    let before = versions(pdb).await;
    let printed = cli
        .run_with([
            "promiscuous",
            "--database-url",
            url,
            "publish",
            "synctest/photo",
            "--batch",
            SYNC_BATCH,
        ])
        .await
        .unwrap_or_else(|e| panic!("the sync failed: {e}"));
    assert!(
        printed.contains("not relayed here: the application's relay publishes the outbox"),
        "{printed}"
    );
    let after = versions(pdb).await;
    let ids_after: BTreeSet<i32> = rows(pdb).await.into_keys().collect();
    SyncRun {
        throughout: ids_before.intersection(&ids_after).copied().collect(),
        before,
        after,
    }
}

async fn subscriber(
    app: &str,
    db: &DatabaseConnection,
    broker: &InProcess,
    live: bool,
) -> SubscriberService {
    let subscriber = Subscriber::new(app, db.clone(), broker.clone())
        .subscribe::<copy::Model>()
        .error_notifier(Arc::new(|_| {}));
    let subscriber = if live {
        // Every version reaches it: a wait is never given up within the test.
        subscriber
            .observe::<LiveSeen>()
            .dependency_timeout(Duration::from_secs(120))
    } else {
        // Live updates of rows it never had wait for versions that never come: a sync
        // releases them, or recovery.
        subscriber
            .observe::<LateSeen>()
            .dependency_timeout(Duration::from_millis(500))
    };
    subscriber.build().await.unwrap()
}

/// A queue bound to every app, consumed in the background: what the relay published.
async fn tap(broker: &InProcess) -> Arc<Mutex<Vec<Message>>> {
    let spec = QueueSpec {
        queue: "tap".into(),
        bindings: vec!["#".into()],
        prefetch: u16::MAX,
        partitions: 1,
    };
    broker.declare(&spec).await.unwrap();
    let mut consumer = broker.consume(&spec).await.unwrap();
    let published = Arc::new(Mutex::new(Vec::new()));
    let keep = published.clone();
    tokio::spawn(async move {
        while let Ok(delivery) = consumer.next().await {
            let message = Message::decode(&delivery.payload).unwrap();
            keep.lock().unwrap().push(message);
            delivery.ack().await.unwrap();
        }
    });
    published
}

/// One seeded run; panics with what diverged.
async fn run(backend: &Backend, seed: u64) {
    let (pdb, url, live_db, late_db) = databases(backend, seed).await;
    for id in 1..=SEEDED_ROWS {
        pdb.execute_unprepared(&format!(
            "INSERT INTO photos (id, caption, revision) VALUES ({id}, 'seeded #{id}', 0)"
        ))
        .await
        .unwrap();
    }
    let broker = InProcess::new();
    let published = tap(&broker).await;
    let live = subscriber("synctest_live", &live_db, &broker, true).await;
    let live_running = live.start();
    let publisher = Publisher::new(pdb.clone(), broker.clone())
        .error_notifier(Arc::new(|_| {}))
        .start()
        .await
        .unwrap();
    let shared = Arc::new(Shared {
        next_id: AtomicI32::new(SEEDED_ROWS + 1),
        committed: AtomicUsize::new(0),
        refused: AtomicUsize::new(0),
        refusals: Mutex::new(BTreeSet::new()),
        created: Mutex::new(BTreeSet::new()),
        sync_runs: AtomicUsize::new(0),
        runs_wanted: AtomicUsize::new(usize::MAX),
        writers_done: AtomicBool::new(false),
    });
    let cli = Cli::new("synctest_cli").publish::<photo::Model>();

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(writer(pdb.clone(), shared.clone(), seed, w)))
        .collect();
    let syncs = tokio::spawn({
        let (cli, url, pdb, shared) = (cli.clone(), url.clone(), pdb.clone(), shared.clone());
        async move {
            let mut runs = Vec::new();
            while !shared.writers_done.load(Ordering::SeqCst) {
                runs.push(sync_once(&cli, &url, &pdb).await);
                shared.sync_runs.fetch_add(1, Ordering::SeqCst);
            }
            runs
        }
    });

    // The late subscriber's queue, once a third of the writes committed; the writers then go
    // on until two more sync runs completed (at least three in all).
    let third = WRITERS * TRANSACTIONS / 3;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while shared.committed.load(Ordering::SeqCst) < third {
        assert!(
            tokio::time::Instant::now() < deadline,
            "seed {seed}: the writers are stuck"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let late = subscriber("synctest_late", &late_db, &broker, false).await;
    let late_running = late.start();
    let runs_now = shared.sync_runs.load(Ordering::SeqCst);
    shared
        .runs_wanted
        .store((runs_now + 2).max(3), Ordering::SeqCst);

    for w in writers {
        tokio::time::timeout(Duration::from_secs(300), w)
            .await
            .expect("the writers finish")
            .unwrap();
    }
    shared.writers_done.store(true, Ordering::SeqCst);
    let mut runs = tokio::time::timeout(Duration::from_secs(300), syncs)
        .await
        .expect("the sync loop finishes")
        .unwrap();
    // The last sync, then draining.
    runs.push(sync_once(&cli, &url, &pdb).await);

    let expected = rows(&pdb).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        publisher.flush().await.unwrap();
        let idle = |service: &SubscriberService| {
            let stats = service.stats().borrow().clone();
            stats.in_flight == 0 && stats.waiting == 0
        };
        let drained = publisher.pending().await.unwrap() == 0
            && broker.queue_depth("tap") == (0, 0)
            && broker.queue_depth("synctest_live") == (0, 0)
            && broker.queue_depth("synctest_late") == (0, 0)
            && idle(&live)
            && idle(&late);
        if drained {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "seed {seed}: not drained in time: live {:?}, late {:?}, queues {:?} {:?}",
            live.stats().borrow().clone(),
            late.stats().borrow().clone(),
            broker.queue_depth("synctest_live"),
            broker.queue_depth("synctest_late"),
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let live_stats = live_running.shutdown().await.unwrap();
    let late_stats = late_running.shutdown().await.unwrap();
    publisher.shutdown().await.unwrap();
    let published = published.lock().unwrap().clone();

    let mut failures: Vec<String> = Vec::new();
    let ops: Vec<(&Message, &promiscuous::Operation)> = published
        .iter()
        .flat_map(|m| m.operations.iter().map(move |op| (m, op)))
        .collect();
    let live_ops = ops.iter().filter(|(_, op)| !op.sync).count();
    let sync_ops = ops.len() - live_ops;
    let destroys = ops
        .iter()
        .filter(|(_, op)| op.operation == OperationKind::Destroy)
        .count();
    eprintln!(
        "seed {seed}: {} writer transactions committed ({} refused), {} sync runs, {} messages: \
         {live_ops} live operations ({destroys} destroys), {sync_ops} sync operations; {} rows \
         at the end; live {live_stats:?}; late {late_stats:?}; refused by: {:?}",
        shared.committed.load(Ordering::SeqCst),
        shared.refused.load(Ordering::SeqCst),
        runs.len(),
        published.len(),
        expected.len(),
        shared.refusals.lock().unwrap(),
    );
    assert!(
        runs.len() >= 4,
        "seed {seed}: three syncs during the writes, one after"
    );

    // 1. The subscribers equal the publisher.
    for (name, db) in [("live", &live_db), ("late", &late_db)] {
        let got = copies(db).await;
        for id in expected.keys().chain(got.keys()).collect::<BTreeSet<_>>() {
            if expected.get(id) != got.get(id) {
                failures.push(format!(
                    "{name}: row {id} is {:?}, the publisher's {:?}",
                    got.get(id),
                    expected.get(id)
                ));
            }
        }
    }

    // 2. What the publisher published last for each row is its state.
    let mut last: HashMap<String, &promiscuous::Operation> = HashMap::new();
    for (_, op) in &ops {
        let entry = last.entry(op.key()).or_insert(op);
        if op.version > entry.version {
            *entry = op;
        }
    }
    let mut ever: BTreeSet<i32> = (1..=SEEDED_ROWS).collect();
    ever.extend(shared.created.lock().unwrap().iter().copied());
    for id in ever {
        let Some(op) = last.get(&key(id)) else {
            failures.push(format!("row {id}: never published"));
            continue;
        };
        match expected.get(&id) {
            Some((caption, revision)) => {
                let state = json!({"caption": caption, "revision": revision});
                let attributes = op.attributes.clone().map(serde_json::Value::Object);
                if op.operation == OperationKind::Destroy || attributes.as_ref() != Some(&state) {
                    failures.push(format!(
                        "row {id}: last published {} v{} (sync: {}) {attributes:?}, its state \
                         {state}",
                        op.operation, op.version, op.sync
                    ));
                }
            }
            None if op.operation != OperationKind::Destroy => failures.push(format!(
                "row {id} is gone, last published {} v{} (sync: {}) {:?}",
                op.operation, op.version, op.sync, op.attributes
            )),
            None => {}
        }
    }

    // 3. `live` applied every operation published: none overtaken and skipped.
    let ids: HashSet<&str> = published.iter().map(|m| m.id.as_str()).collect();
    let applied: HashSet<(String, String, u64, bool)> = APPLIED
        .lock()
        .unwrap()
        .iter()
        .filter(|a| a.subscriber == "live" && ids.contains(a.message.as_str()))
        .map(|a| (a.message.clone(), a.key.clone(), a.version, a.sync))
        .collect();
    for (message, op) in &ops {
        if !applied.contains(&(message.id.clone(), op.key(), op.version, op.sync)) {
            failures.push(format!(
                "live: {} {} v{} ({}) never applied (skipped as stale)",
                op.operation,
                op.key(),
                op.version,
                if op.sync { "sync" } else { "live" },
            ));
        }
    }
    if live_stats.recovered > 0 || live_stats.dead_lettered > 0 {
        failures.push(format!("live: recovered or dead-lettered: {live_stats:?}"));
    }
    if late_stats.dead_lettered > 0 {
        failures.push(format!("late: dead-lettered: {late_stats:?}"));
    }

    // 4. Each sync run resent every row that existed throughout it.
    let resent: HashMap<String, Vec<u64>> =
        ops.iter()
            .filter(|(_, op)| op.sync)
            .fold(HashMap::new(), |mut by_key, (_, op)| {
                by_key.entry(op.key()).or_default().push(op.version);
                by_key
            });
    for (n, run) in runs.iter().enumerate() {
        for id in &run.throughout {
            let k = key(*id);
            let (low, high) = (
                run.before.get(&k).copied().unwrap_or(0),
                run.after.get(&k).copied().unwrap_or(0),
            );
            let synced = resent
                .get(&k)
                .is_some_and(|vs| vs.iter().any(|v| low < *v && *v <= high));
            if !synced {
                failures.push(format!(
                    "sync run {n}: row {id} existed throughout and was not resent"
                ));
            }
        }
    }

    assert!(
        failures.is_empty(),
        "seed {seed}: {} failure(s):\n{}",
        failures.len(),
        failures
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

on_both_servers! {
    the_initial_sync_converges_while_the_application_writes;
}

async fn the_initial_sync_converges_while_the_application_writes(url: &str) {
    for seed in 1..=4 {
        run(&Backend::Server(url.to_string()), seed).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_initial_sync_converges_while_the_application_writes_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("promiscuous-initial-sync-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for seed in 101..=102 {
        run(&Backend::Sqlite(dir.clone()), seed).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// Who relays the rows the command writes

/// A SQLite publisher database file with `rows` photos written before promiscuous existed.
async fn sqlite_publisher(dir: &std::path::Path, rows: i32) -> (DatabaseConnection, String) {
    std::fs::create_dir_all(dir).unwrap();
    let file = dir.join("publisher.db");
    let _ = std::fs::remove_file(&file);
    let url = format!("sqlite://{}?mode=rwc", file.display());
    let db = Database::connect(url.as_str()).await.unwrap();
    promiscuous_test::create_table(&db, photo::Entity)
        .await
        .unwrap();
    for id in 1..=rows {
        db.execute_unprepared(&format!(
            "INSERT INTO photos (id, caption, revision) VALUES ({id}, 'seeded #{id}', 0)"
        ))
        .await
        .unwrap();
    }
    (db, url)
}

async fn outbox_rows(db: &DatabaseConnection) -> u64 {
    use sea_orm::PaginatorTrait;
    tables::outbox::Entity::find().count(db).await.unwrap()
}

/// Waits until the tap holds `n` messages (or fails after a generous time).
async fn tapped(published: &Arc<Mutex<Vec<Message>>>, n: usize) -> Vec<Message> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got = published.lock().unwrap().clone();
        if got.len() >= n {
            return got;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {n} message(s) published",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_rows_are_left_to_the_applications_relay_unless_relay_is_given() {
    let dir = std::env::temp_dir().join(format!("promiscuous-sync-relay-{}", std::process::id()));
    let (pdb, url) = sqlite_publisher(&dir, 3).await;
    let broker = InProcess::new();
    let published = tap(&broker).await;
    let cli = Cli::new("synctest_cli")
        .publish::<photo::Model>()
        .transport(broker.clone());
    let publish = |more: &[&str]| {
        let all: Vec<String> = ["promiscuous", "--database-url", &url, "publish", "photos"]
            .iter()
            .chain(more)
            .map(|s| s.to_string())
            .collect();
        cli.run_with(all)
    };

    // By default, a broker at hand or not, the rows wait for the application's relay.
    let printed = publish(&[]).await.unwrap();
    assert!(printed.contains("synced 3 rows of photos"), "{printed}");
    assert!(
        printed.contains("not relayed here: the application's relay publishes the outbox"),
        "{printed}"
    );
    assert_eq!(outbox_rows(&pdb).await, 1, "one message per batch");
    assert_eq!(broker.queue_depth("tap"), (0, 0));

    // --relay: nothing else relays this outbox, so the command does (both messages).
    let printed = publish(&["--relay"]).await.unwrap();
    assert!(printed.contains("relayed 2 message(s)"), "{printed}");
    assert!(printed.contains("0 still pending"), "{printed}");
    let messages = tapped(&published, 2).await;
    let versions: Vec<(String, u64, bool)> = messages
        .iter()
        .flat_map(|m| &m.operations)
        .map(|op| (op.key(), op.version, op.sync))
        .collect();
    assert_eq!(
        versions,
        (1..=2)
            .flat_map(|v| (1..=3).map(move |id| (key(id), v, true)))
            .collect::<Vec<_>>()
    );

    // Both at once make no sense.
    match publish(&["--relay", "--lease", "app-outbox"]).await {
        Err(promiscuous_cli::CliError::Usage(m)) => assert!(m.contains("--lease"), "{m}"),
        other => panic!("expected a usage error, got {other:?}"),
    }
    let help = publish(&["--help"]).await.unwrap();
    assert!(
        help.contains("--relay") && help.contains("--lease"),
        "{help}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// With `--lease NAME`, the command relays only while it holds the application's lease: while
/// the application's relay holds it, the rows are left to that relay (Redis at
/// PROMISCUOUS_REDIS_URL: in CI a missing server fails the test, elsewhere it is skipped).
#[tokio::test]
async fn with_a_lease_the_command_relays_only_while_it_holds_it() {
    use promiscuous::{Redis, RedisConfig, RedisLease};
    let redis_url = match std::env::var("PROMISCUOUS_REDIS_URL") {
        Ok(url) => url,
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("PROMISCUOUS_REDIS_URL is not set: CI must run the lease test")
        }
        Err(_) => {
            eprintln!("skipped the lease test: PROMISCUOUS_REDIS_URL is not set");
            return;
        }
    };
    let dir = std::env::temp_dir().join(format!("promiscuous-sync-lease-{}", std::process::id()));
    let (pdb, url) = sqlite_publisher(&dir, 2).await;
    let broker = InProcess::new();
    let published = tap(&broker).await;
    let name = format!(
        "synctest-outbox-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let redis = Redis::new(&redis_url, RedisConfig::default()).unwrap();
    let lease = RedisLease::new(redis, &name, Duration::from_secs(30));
    let application = Publisher::new(pdb.clone(), broker.clone())
        .lease(Arc::new(lease))
        .start()
        .await
        .unwrap();
    application.flush().await.unwrap(); // the application's relay holds the lease from now on
    let cli = Cli::new("synctest_cli")
        .publish::<photo::Model>()
        .transport(broker.clone());
    let publish = || {
        cli.run_with([
            "promiscuous",
            "--database-url",
            url.as_str(),
            "--redis-url",
            redis_url.as_str(),
            "publish",
            "photos",
            "--lease",
            name.as_str(),
        ])
    };
    let printed = publish().await.unwrap();
    assert!(
        printed.contains(&format!(
            "not relayed here: another relay (the application's) holds the lease `{name}`"
        )),
        "{printed}"
    );
    // The application's relay publishes it.
    application.flush().await.unwrap();
    tapped(&published, 1).await;
    assert_eq!(outbox_rows(&pdb).await, 0);

    // The application stops (its relay gives the lease up): the command relays.
    application.shutdown().await.unwrap();
    let printed = publish().await.unwrap();
    assert!(printed.contains("relayed 1 message(s)"), "{printed}");
    assert!(printed.contains("0 still pending"), "{printed}");
    let messages = tapped(&published, 2).await;
    assert_eq!(messages[1].operations.len(), 2);
    assert!(
        messages[1]
            .operations
            .iter()
            .all(|op| op.sync && op.version == 2)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
