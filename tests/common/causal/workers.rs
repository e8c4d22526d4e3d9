//! The subscriber side of the causal tests: the databases, the subscriber application under
//! test ([`Setup`] starts [`Workers`]: several worker processes on one queue, sharing one
//! database and one version store), waiting until everything published was processed, the
//! recorded [`History`], and the convergence check.

use std::sync::Arc;
use std::time::Duration;

use promiscuous::pipeline::{
    SeaOrmApplier, SubscriberConfig, SubscriberRuntime, VersionStore, schema,
};
use promiscuous::{Error, OrderingMode, Stats, Transport};
use promiscuous_test::chaos::Delayed;
use promiscuous_test::history::{History, Report, Strictness, describe};
use promiscuous_test::{create_table, sqlite};
use sea_orm::{DatabaseConnection, EntityTrait, QueryOrder};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::models::publisher::{friendship, photo};
use super::models::subscriber as sub;
use crate::common::user;

pub const ENDPOINTS: [&str; 3] = ["crowdtap/user", "crowdtap/friendship", "crowdtap/photo"];

pub async fn publisher_db() -> DatabaseConnection {
    publisher_tables(sqlite().await.unwrap()).await
}

/// `db` with the publisher's tables.
pub async fn publisher_tables(db: DatabaseConnection) -> DatabaseConnection {
    create_table(&db, user::Entity).await.unwrap();
    create_table(&db, friendship::Entity).await.unwrap();
    create_table(&db, photo::Entity).await.unwrap();
    db
}

pub async fn subscriber_db() -> DatabaseConnection {
    subscriber_tables(sqlite().await.unwrap()).await
}

/// `db` with the subscriber's tables.
pub async fn subscriber_tables(db: DatabaseConnection) -> DatabaseConnection {
    create_table(&db, sub::user::Entity).await.unwrap();
    create_table(&db, sub::friendship::Entity).await.unwrap();
    create_table(&db, sub::photo::Entity).await.unwrap();
    create_table(&db, sub::audience::Entity).await.unwrap();
    create_table(&db, sub::event::Entity).await.unwrap();
    schema::setup_subscriber(&db).await.unwrap();
    db
}

pub fn applier(db: &DatabaseConnection) -> SeaOrmApplier {
    SeaOrmApplier::new(db.clone())
        .subscribe::<sub::user::Model>()
        .subscribe::<sub::friendship::Model>()
        .subscribe::<sub::photo::Model>()
}

pub type Running = JoinHandle<Result<Stats, Error>>;

/// The subscriber application under test: several worker "processes" (runtimes, each with its
/// own runners) consuming one queue and sharing one database and one version store.
pub struct Workers {
    pub runtimes: Vec<Arc<SubscriberRuntime>>,
    pub tasks: Vec<(oneshot::Sender<()>, Running)>,
}

pub struct Setup<'a> {
    pub queue: &'a str,
    pub workers: usize,
    pub runners: usize,
    pub ordering: OrderingMode,
    pub seed: u64,
    /// A store per worker (Redis: one connection each) or shared (memory).
    pub store: &'a dyn Fn(usize) -> Arc<dyn VersionStore>,
    pub delay: fn(&promiscuous::Message, &promiscuous_test::chaos::Dice) -> Duration,
    pub max_attempts: u32,
    pub notifier: promiscuous::ErrorNotifier,
    pub dependency_timeout: Duration,
    pub recheck: Duration,
    pub prefetch: u16,
    /// Partitions of the queue (see `SubscriberConfig::partitions`).
    pub partitions: u16,
}

impl<'a> Setup<'a> {
    pub fn new(queue: &'a str, store: &'a dyn Fn(usize) -> Arc<dyn VersionStore>) -> Self {
        Self {
            queue,
            workers: 2,
            runners: 3,
            ordering: OrderingMode::Causal,
            seed: 0,
            store,
            delay: |_, dice| dice.up_to(Duration::from_millis(2)),
            max_attempts: 1,
            notifier: promiscuous::log_errors(),
            dependency_timeout: Duration::from_secs(30),
            recheck: Duration::from_secs(1),
            prefetch: 1000,
            partitions: 1,
        }
    }

    /// The workers, sharing `transport` (one connection).
    pub async fn start(
        &self,
        db: &DatabaseConnection,
        transport: impl Transport + Clone,
    ) -> Workers {
        self.start_each(db, &|_| Arc::new(transport.clone())).await
    }

    /// The workers, each with the transport `transport(worker)` (its own connection, as
    /// separate processes have).
    pub async fn start_each(
        &self,
        db: &DatabaseConnection,
        transport: &dyn Fn(usize) -> Arc<dyn Transport>,
    ) -> Workers {
        let mut workers = Workers {
            runtimes: Vec::new(),
            tasks: Vec::new(),
        };
        for worker in 0..self.workers {
            workers.add(self.worker(db, transport(worker), worker).await);
        }
        workers
    }

    /// Worker number `worker` (its seed and store follow from it), its queue declared.
    pub async fn worker(
        &self,
        db: &DatabaseConnection,
        transport: Arc<dyn Transport>,
        worker: usize,
    ) -> Arc<SubscriberRuntime> {
        let config = SubscriberConfig {
            workers: self.runners,
            ordering: self.ordering,
            versions: Some((self.store)(worker)),
            max_attempts: self.max_attempts,
            retry_delay: Duration::from_millis(1),
            error_notifier: self.notifier.clone(),
            dependency_timeout: self.dependency_timeout,
            recheck_interval: self.recheck,
            prefetch: self.prefetch,
            partitions: self.partitions,
            ..SubscriberConfig::new(self.queue)
        };
        let delayed = Delayed::with(
            applier(db),
            worker,
            self.seed ^ (worker as u64 + 1),
            self.delay,
        );
        // Odd seeds apply what is ready together, in one transaction per batch.
        let delayed = if self.seed % 2 == 1 {
            delayed.batching()
        } else {
            delayed
        };
        let runtime = Arc::new(SubscriberRuntime::new(transport, Arc::new(delayed), config));
        runtime.declare().await.unwrap();
        runtime
    }
}

impl Workers {
    /// The workers' stats together (see `Stats`'s `AddAssign`: counters summed, every field
    /// combined).
    pub fn stats(&self) -> Stats {
        let mut total = Stats::default();
        for rt in &self.runtimes {
            total += &*rt.stats().borrow();
        }
        total
    }

    /// Runs `runtime` as one more worker.
    pub fn add(&mut self, runtime: Arc<SubscriberRuntime>) {
        let (stop, stopped) = oneshot::channel::<()>();
        let rt = runtime.clone();
        let task = tokio::spawn(async move {
            rt.run(async {
                let _ = stopped.await;
            })
            .await
        });
        self.runtimes.push(runtime);
        self.tasks.push((stop, task));
    }

    /// Kills worker `i` as `kill -9` would its process: its task is dropped wherever it is
    /// (a transaction in progress rolls back, nothing is acked, its channels close and the
    /// broker redelivers what it held). Its counters stay in [`Workers::stats`].
    #[allow(dead_code)] // not every test binary kills workers
    pub async fn kill(&mut self, i: usize) {
        let task = &mut self.tasks[i].1;
        task.abort();
        let ended = task.await;
        assert!(
            ended
                .as_ref()
                .map_or_else(|e| e.is_cancelled(), |r| r.is_ok()),
            "worker {i} failed before it was killed: {ended:?}"
        );
    }

    pub async fn stop(self) -> Stats {
        let stats = self.stats();
        for (stop, task) in self.tasks {
            if task.is_finished() {
                continue; // killed
            }
            let _ = stop.send(());
            task.await.unwrap().unwrap();
        }
        stats
    }
}

/// Waits until every published operation has been processed (its version, or a newer one, is
/// recorded in the subscriber's database) or `within` passes; returns whether it was.
pub async fn processed(
    db: &DatabaseConnection,
    published: &[promiscuous::Message],
    within: Duration,
) -> bool {
    let applier = applier(db);
    let mut wanted: std::collections::HashMap<String, u64> = Default::default();
    for m in published {
        for op in &m.operations {
            let v = wanted.entry(op.key()).or_insert(0);
            *v = (*v).max(op.version);
        }
    }
    let keys: Vec<String> = wanted.keys().cloned().collect();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let have = promiscuous::pipeline::Applier::versions(&applier, &keys)
            .await
            .unwrap();
        if keys.iter().zip(&have).all(|(k, v)| *v >= wanted[k]) {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The errors of the subscriber's dead letters, oldest first (what a failed run shows).
pub async fn dead_letter_errors(db: &DatabaseConnection) -> Vec<String> {
    use promiscuous::pipeline::tables::dead_letters;
    match dead_letters::Entity::find()
        .order_by_asc(dead_letters::Column::Id)
        .all(db)
        .await
    {
        Ok(rows) => rows
            .into_iter()
            .map(|r| format!("{}: {}", r.routing_key, r.error))
            .collect(),
        Err(e) => vec![format!("(not readable: {e})")],
    }
}

/// The checks that end a run (`what` names it in failures): everything published was
/// processed (`complete`, from [`processed`]), the history checker passes, every published
/// operation took effect once, nothing was dead-lettered or recovered. Returns the report.
#[allow(dead_code)]
pub async fn assert_replicated(
    db: &DatabaseConnection,
    published: &[promiscuous::Message],
    complete: bool,
    stats: &Stats,
    what: &str,
) -> Report {
    assert!(
        complete,
        "{what}: not everything processed: {stats:?}\ndead letters: {:?}",
        dead_letter_errors(db).await
    );
    let report = history(db, published)
        .await
        .check(follows)
        .unwrap_or_else(|v| panic!("{what}:\n{}\nstats: {stats:?}", describe(&v)));
    assert_eq!(
        report.applied_ops, report.published_ops,
        "{what}: no duplicate effect"
    );
    assert_eq!(
        (stats.dead_lettered, stats.recovered),
        (0, 0),
        "{what}: {stats:?}"
    );
    report
}

/// The history: what was published, and what the subscriber applied, in commit order.
pub async fn history(db: &DatabaseConnection, published: &[promiscuous::Message]) -> History {
    let mut h = History::with_strictness(Strictness::EveryVersion);
    for m in published {
        h.published(m);
    }
    for e in sub::event::Entity::find()
        .order_by_asc(sub::event::Column::Seq)
        .all(db)
        .await
        .unwrap()
    {
        h.applied(e.worker as usize, &e.message, &e.key, e.version as u64);
    }
    h
}

pub fn follows(key: &str) -> bool {
    ENDPOINTS.iter().any(|e| key.starts_with(&format!("{e}/")))
}

/// Every row of `E`, mapped by `f`, sorted.
pub async fn rows<E: EntityTrait, T: Ord>(
    db: &DatabaseConnection,
    f: impl Fn(E::Model) -> T,
) -> Vec<T> {
    let mut rows: Vec<T> = E::find()
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(f)
        .collect();
    rows.sort();
    rows
}

/// The subscriber holds exactly the publisher's rows.
pub async fn assert_converged(pdb: &DatabaseConnection, sdb: &DatabaseConnection, what: &str) {
    assert_eq!(
        rows::<sub::user::Entity, _>(sdb, |u| (u.crowdtap_id, u.name)).await,
        rows::<user::Entity, _>(pdb, |u| (u.id, u.name)).await,
        "{what}: users"
    );
    assert_eq!(
        rows::<sub::friendship::Entity, _>(sdb, |f| (f.crowdtap_id, f.user_id, f.friend_id)).await,
        rows::<friendship::Entity, _>(pdb, |f| (f.id, f.user_id, f.friend_id)).await,
        "{what}: friendships"
    );
    assert_eq!(
        rows::<sub::photo::Entity, _>(sdb, |p| (p.crowdtap_id, p.user_id, p.caption)).await,
        rows::<photo::Entity, _>(pdb, |p| (p.id, p.user_id, p.caption)).await,
        "{what}: photos"
    );
}

/// A version store per worker on Redis at `url` under `namespace`.
pub fn redis_store(url: &str, namespace: &str) -> impl Fn(usize) -> Arc<dyn VersionStore> + use<> {
    let (url, namespace) = (url.to_string(), namespace.to_string());
    move |_| {
        // One connection per worker, as separate processes would have.
        let redis = promiscuous::Redis::new(
            &url,
            promiscuous::RedisConfig {
                namespace: namespace.clone(),
                ..promiscuous::RedisConfig::default()
            },
        )
        .unwrap();
        Arc::new(promiscuous::RedisVersions::new(redis, &namespace))
    }
}

/// A publisher on `db` publishing through a [`Recording`](promiscuous_test::chaos::Recording)
/// of `transport`, its relay quick to notice a failover (polls every 20 ms, retries after
/// 50 ms): the cluster suites' publisher.
#[allow(dead_code)]
pub async fn recorded_publisher<T: Transport + Clone + 'static>(
    db: &DatabaseConnection,
    transport: T,
) -> (
    promiscuous_test::chaos::Recording<T>,
    promiscuous::PublisherHandle,
) {
    let recording = promiscuous_test::chaos::Recording::new(transport);
    let relay = promiscuous::pipeline::RelayConfig {
        poll_interval: Duration::from_millis(20),
        retry_delay: Duration::from_millis(50),
        ..Default::default()
    };
    let publisher = promiscuous::Publisher::new(db.clone(), recording.clone())
        .relay_config(relay)
        .start()
        .await
        .unwrap();
    (recording, publisher)
}
