//! Partitioned subscriber queues on RabbitMQ (`SubscriberConfig::partitions`): P queues behind a
//! consistent-hash exchange on the instance key, each with a single active consumer; worker
//! processes (each with its own connection) share them, are killed and replaced while the
//! publisher writes, and the randomized causal histories still pass the history checker.

mod common;
#[path = "common/causal/mod.rs"]
#[allow(dead_code)]
mod fixtures;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::servers::{rabbit, servers, unique};
use fixtures::workers::*;
use fixtures::workload::*;
use promiscuous::pipeline::RelayConfig;
use promiscuous::{Publisher, Transport};
use promiscuous_test::chaos::Recording;

const PARTITIONS: u16 = 4;

async fn until(secs: u64, what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {secs}s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_partitions_three_workers_killed_and_replaced_keep_causal_order() {
    let Some(s) = servers("partitioned queues") else {
        return;
    };
    for seed in [41, 42] {
        let name = unique(&format!("partitions-{seed}"));
        let (pdb, sdb) = (publisher_db().await, subscriber_db().await);
        let store = redis_store(&s.redis, &name);
        let setup = Setup {
            seed,
            workers: 3,
            runners: 2,
            partitions: PARTITIONS,
            ..Setup::new(&name, &store)
        };
        let connect = |_| -> Arc<dyn Transport> { Arc::new(rabbit(&s, &name)) };
        let mut workers = setup.start_each(&sdb, &connect).await;
        let recording = Recording::new(rabbit(&s, &name));
        let publisher = Publisher::new(pdb.clone(), recording.clone())
            .relay_config(RelayConfig {
                poll_interval: Duration::from_millis(20),
                ..RelayConfig::default()
            })
            .start()
            .await
            .unwrap();
        let writing = Writing::start(&pdb, seed, 2, 4, Duration::ZERO);
        // Kill a worker, add a new one, kill another, while the writes go on.
        for (at, kill) in [(30, 0), (80, 1)] {
            until(60, &format!("{at} messages published"), || {
                recording.published().len() >= at
            })
            .await;
            workers.kill(kill).await;
            let index = workers.runtimes.len();
            let fresh = setup.worker(&sdb, connect(index), index).await;
            workers.add(fresh);
        }
        until(60, "130 messages published", || {
            recording.published().len() >= 130
        })
        .await;
        let rounds = writing.stop().await;
        publisher.shutdown().await.unwrap();
        let published = recording.published();
        let complete = processed(&sdb, &published, Duration::from_secs(60)).await;
        let per_worker: Vec<usize> = workers
            .runtimes
            .iter()
            .map(|rt| rt.stats().borrow().messages)
            .collect();
        let stats = workers.stop().await;
        assert_replicated(&sdb, &published, complete, &stats, &format!("seed {seed}")).await;
        assert_converged(&pdb, &sdb, &format!("seed {seed}")).await;
        eprintln!(
            "seed {seed}: {rounds} rounds, {} messages over {PARTITIONS} partitions; messages \
             processed per worker (0 and 1 killed, 3 and 4 added): {per_worker:?}",
            published.len()
        );
        rabbit(&s, &name)
            .delete_partitions(&name, PARTITIONS)
            .await
            .unwrap();
        rabbit(&s, &name).delete_exchange().await.unwrap();
    }
}

#[tokio::test]
async fn messages_spread_over_the_partitions_by_instance_key() {
    let Some(s) = servers("partitioned queues") else {
        return;
    };
    let name = unique("partitions-spread");
    let (pdb, sdb) = (publisher_db().await, subscriber_db().await);
    let store = redis_store(&s.redis, &name);
    let setup = Setup {
        partitions: PARTITIONS,
        ..Setup::new(&name, &store)
    };
    // Declared, not consumed: what is published waits in the partitions.
    setup.worker(&sdb, Arc::new(rabbit(&s, &name)), 0).await;
    let publisher = Publisher::new(pdb.clone(), rabbit(&s, &name))
        .start()
        .await
        .unwrap();
    for i in 0..40 {
        common::servers::write(&pdb, i * 3).await; // creates only: 40 instances
    }
    publisher.shutdown().await.unwrap();
    let transport = rabbit(&s, &name);
    let mut depths = Vec::new();
    for i in 0..PARTITIONS {
        depths.push(
            transport
                .queue_depth(&format!("{name}.{i}"))
                .await
                .unwrap()
                .unwrap(),
        );
    }
    assert_eq!(depths.iter().sum::<u64>(), 40, "{depths:?}");
    assert!(
        depths.iter().filter(|d| **d > 0).count() >= 3,
        "40 instances spread over at least 3 of 4 partitions: {depths:?}"
    );
    transport
        .delete_partitions(&name, PARTITIONS)
        .await
        .unwrap();
    transport.delete_exchange().await.unwrap();
}
