//! Redis Sentinel (`scripts/services.sh sentinel up`: a primary, a replica, three sentinels):
//! the subscriber's shared versions and wake-ups and the relays' lease go through
//! `redis+sentinel://`; the primary is killed (`kill -9`) while two relays and two workers run
//! and publishers stream causal writes. Nothing is lost, nothing is applied twice, causal order
//! holds (the history checker), relays and workers carry on through the promoted replica, and
//! the two relays never publish at once (the fencing token in the publisher's PostgreSQL
//! database; the lease itself may be lost with the primary).
//!
//! Ignored by a plain `cargo test`: `scripts/test --cluster` starts Sentinel and runs it with
//! `--ignored` (CI runs both). It fails, never skips, when Sentinel or PostgreSQL is missing.

mod common;
#[path = "common/causal/mod.rs"]
#[allow(dead_code)]
mod fixtures;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::servers::unique;
use common::services::{services, until, var};
use common::sql_servers::fresh_database;
use fixtures::models::publisher::{friendship, photo};
use fixtures::workers::*;
use fixtures::workload::*;
use promiscuous::pipeline::{RelayConfig, schema};
use promiscuous::transport::{
    Consumer, Outgoing, QueueSpec, RabbitMq, RabbitMqConfig, Transport, TransportError,
};
use promiscuous::{Publisher, Redis, RedisConfig, RedisLease};
use promiscuous_test::chaos::Recording;

/// A relay's transport that notices when two relays' publishes overlap.
#[derive(Clone)]
struct Exclusive {
    inner: RabbitMq,
    publishing: Arc<AtomicUsize>,
    overlapped: Arc<AtomicBool>,
}

#[async_trait]
impl Transport for Exclusive {
    async fn publish(&self, messages: &[Outgoing]) -> Result<(), TransportError> {
        if self.publishing.fetch_add(1, Ordering::SeqCst) > 0 {
            self.overlapped.store(true, Ordering::SeqCst);
        }
        let r = self.inner.publish(messages).await;
        self.publishing.fetch_sub(1, Ordering::SeqCst);
        r
    }
    async fn consume(&self, spec: &QueueSpec) -> Result<Box<dyn Consumer>, TransportError> {
        self.inner.consume(spec).await
    }
    async fn declare(&self, spec: &QueueSpec) -> Result<(), TransportError> {
        self.inner.declare(spec).await
    }
    fn healthy(&self) -> bool {
        self.inner.healthy()
    }
    async fn queue_depth(&self, queue: &str) -> Result<Option<u64>, TransportError> {
        self.inner.queue_depth(queue).await
    }
}

/// The causal workload's publisher tables on a fresh PostgreSQL database.
async fn publisher_db_on_postgres(name: &str) -> sea_orm::DatabaseConnection {
    let url = var("PROMISCUOUS_POSTGRES_URL");
    let db = fresh_database(&url, name).await;
    promiscuous_test::create_table(&db, common::user::Entity)
        .await
        .unwrap();
    promiscuous_test::create_table(&db, friendship::Entity)
        .await
        .unwrap();
    promiscuous_test::create_table(&db, photo::Entity)
        .await
        .unwrap();
    schema::setup_publisher(&db).await.unwrap();
    db
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Redis Sentinel: scripts/test --cluster"]
async fn killing_the_redis_primary_loses_nothing_and_the_lease_is_never_used_twice() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let seed = 31;
    let sentinel = var("PROMISCUOUS_SENTINEL_REDIS_URL");
    let name = unique("sentinel-failover");
    let rabbit = RabbitMq::new(
        var("PROMISCUOUS_AMQP_URL"),
        RabbitMqConfig {
            exchange: name.clone(),
            connection_name: format!("sentinel test {name}"),
            ..RabbitMqConfig::default()
        },
    );
    let pdb = publisher_db_on_postgres("sentinel_failover").await;
    let sdb = subscriber_db().await;
    let store = redis_store(&sentinel, &name);
    let setup = Setup {
        seed,
        workers: 2,
        runners: 2,
        ..Setup::new(&name, &store)
    };
    let workers = setup.start(&sdb, rabbit.clone()).await;

    // Two relays for one outbox, each with its own Redis handle, sharing one lease.
    let (publishing, overlapped) = (Arc::default(), Arc::new(AtomicBool::new(false)));
    let recording = Recording::new(Exclusive {
        inner: rabbit.clone(),
        publishing,
        overlapped: overlapped.clone(),
    });
    let relay = RelayConfig {
        poll_interval: Duration::from_millis(20),
        retry_delay: Duration::from_millis(50),
        ..RelayConfig::default()
    };
    let mut relays = Vec::new();
    for _ in 0..2 {
        let redis = Redis::new(&sentinel, RedisConfig::default()).unwrap();
        let lease = RedisLease::new(redis, &name, Duration::from_secs(2));
        relays.push(
            Publisher::new(pdb.clone(), recording.clone())
                .relay_config(relay.clone())
                .lease(Arc::new(lease))
                .start()
                .await
                .unwrap(),
        );
    }

    // One writing task: the workload's tasks update rows they read earlier, which on PostgreSQL
    // another task may have deleted meanwhile (SeaORM's RecordNotUpdated, which the workload
    // does not expect). Concurrency is in the two relays and the two workers; concurrent deletes
    // of one row are tests/deletes.rs'.
    let writing = Writing::start(&pdb, seed, 1, 6, Duration::from_millis(20));
    until(60, "30 messages published", || {
        recording.published().len() >= 30
    })
    .await;
    let primary = services(&["sentinel", "primary"]).trim().to_string();
    services(&["sentinel", "kill", &primary]);
    let killed = Instant::now();
    let before = recording.published().len();
    until(60, "a relay publishing again after the kill", || {
        recording.published().len() > before + 10
    })
    .await;
    let relay_back = killed.elapsed();
    let promoted = services(&["sentinel", "primary"]).trim().to_string();
    let after_kill = recording.published()[before..].to_vec();
    assert!(
        processed(&sdb, &after_kill, Duration::from_secs(60)).await,
        "the workers did not carry on after Redis node {primary} was killed: {:?}",
        workers.stats()
    );
    let subscriber_back = killed.elapsed();

    // The old primary comes back, as a replica of the promoted one.
    services(&["sentinel", "start", &primary]);
    let rejoined = recording.published().len();
    until(60, "publishing with the old primary back", || {
        recording.published().len() > rejoined + 20
    })
    .await;
    let rounds = writing.stop().await;
    for relay in relays {
        relay.shutdown().await.unwrap();
    }

    let published = recording.published();
    let complete = processed(&sdb, &published, Duration::from_secs(60)).await;
    let stats = workers.stop().await;
    let report = assert_replicated(&sdb, &published, complete, &stats, "redis failover").await;
    assert!(
        !overlapped.load(Ordering::SeqCst),
        "two relays published at once"
    );
    assert_converged(&pdb, &sdb, "after the Redis failover").await;
    eprintln!(
        "redis node {primary} (the primary) killed, node {promoted} promoted: relays publishing \
         again after {relay_back:?}, workers applying again after {subscriber_back:?}; {rounds} \
         rounds, {} messages, {} operations; {stats:?}",
        published.len(),
        report.published_ops
    );
    rabbit.delete_queue(&name).await.unwrap();
    rabbit.delete_exchange().await.unwrap();
}
