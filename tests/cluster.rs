//! A three-node RabbitMQ cluster (`scripts/services.sh cluster up`): the node leading the
//! subscriber's quorum queue is killed (`kill -9`) while publishers stream causal writes;
//! nothing is lost, nothing is applied twice, causal order holds (the history checker), the
//! relay and the subscriber's workers carry on through the other nodes, and the node comes back
//! and rejoins.
//!
//! Ignored by a plain `cargo test`: `scripts/test --cluster` starts the cluster and runs these
//! with `--ignored` (CI runs both). They fail, never skip, when the cluster is missing.

mod common;
#[path = "common/causal/mod.rs"]
#[allow(dead_code)]
mod fixtures;

use std::time::{Duration, Instant};

use common::servers::unique;
use common::services::{cluster_transport, cluster_urls, cluster_whole, services, until, var};
use fixtures::workers::*;
use fixtures::workload::*;
use promiscuous::transport::{QueueType, RabbitMq};

fn cluster(exchange: &str, queue_type: QueueType) -> RabbitMq {
    cluster_transport(exchange, queue_type, &cluster_urls())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the RabbitMQ cluster: scripts/test --cluster"]
async fn killing_the_node_that_leads_the_queue_loses_nothing_and_keeps_causal_order() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let seed = 21;
    let name = unique("cluster-failover");
    let rabbit = cluster(&name, QueueType::Quorum);
    let (pdb, sdb) = (publisher_db().await, subscriber_db().await);
    let store = redis_store(&var("PROMISCUOUS_REDIS_URL"), &name);
    let setup = Setup {
        seed,
        workers: 3,
        runners: 2,
        ..Setup::new(&name, &store)
    };
    let workers = setup.start(&sdb, rabbit.clone()).await;
    let (recording, publisher) = recorded_publisher(&pdb, rabbit.clone()).await;

    // Two publisher tasks write, in small causal rounds, until told to stop: while the leader
    // is killed, and again once it is back in the cluster.
    let writing = Writing::start(&pdb, seed, 2, 4, Duration::from_millis(20));
    until(60, "30 messages published", || {
        recording.published().len() >= 30
    })
    .await;
    let leader = services(&["cluster", "leader", &name]).trim().to_string();
    services(&["cluster", "kill", &leader]);
    let killed = Instant::now();
    let before = recording.published().len();
    until(60, "the relay publishing again after the kill", || {
        recording.published().len() > before
    })
    .await;
    let relay_back = killed.elapsed();
    let after_kill = recording.published()[before..].to_vec();
    assert!(
        processed(&sdb, &after_kill, Duration::from_secs(60)).await,
        "the subscriber did not carry on after node {leader} was killed: {:?}",
        workers.stats()
    );
    let subscriber_back = killed.elapsed();

    services(&["cluster", "start", &leader]);
    if let Err(status) = cluster_whole() {
        panic!("every node up and seeing the three: {status}");
    }
    let rejoined = recording.published().len();
    until(60, "publishing with the node back", || {
        recording.published().len() > rejoined + 20
    })
    .await;
    let rounds = writing.stop().await;
    publisher.shutdown().await.unwrap();

    let published = recording.published();
    let complete = processed(&sdb, &published, Duration::from_secs(60)).await;
    let stats = workers.stop().await;
    let report = assert_replicated(&sdb, &published, complete, &stats, "node failover").await;
    assert_converged(&pdb, &sdb, "after the failover").await;
    eprintln!(
        "node {leader} (the queue's leader) killed: relay publishing again after {relay_back:?}, \
         subscriber applying again after {subscriber_back:?}; {rounds} rounds, {} messages, \
         {} operations; {stats:?}",
        published.len(),
        report.published_ops
    );
    rabbit.delete_queue(&name).await.unwrap();
    rabbit.delete_exchange().await.unwrap();
}
