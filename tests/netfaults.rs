//! Network faults on the three-node RabbitMQ cluster (`scripts/services.sh cluster up`), made
//! by the tests themselves with nftables on loopback (tests/common/netfault.rs), while
//! publishers stream causal writes: the link between the subscriber and its node thinned, then
//! cut; and a node cut off from the other two. Each time: nothing lost, nothing applied twice,
//! causal order kept (the history checker), the copies converge, and replication carries on
//! through the other nodes.
//!
//! Ignored by a plain `cargo test`: `scripts/test --cluster` runs them with `--ignored` (CI
//! runs both). They fail, never skip, when the cluster or nft is missing.

mod common;
#[path = "common/causal/mod.rs"]
#[allow(dead_code)]
mod fixtures;

use std::time::{Duration, Instant};

use common::netfault::{Fault, Link};
use common::servers::unique;
use common::services::{cluster_transport, cluster_urls, cluster_whole, services, until, var};
use fixtures::workers::*;
use fixtures::workload::*;
use promiscuous::transport::{QueueType, RabbitMq};
use promiscuous_test::chaos::Recording;
use sea_orm::DatabaseConnection;

/// The cluster's URLs, node `first` (1..3) first, then the others in turn. No `?heartbeat=`:
/// the default heartbeat (10 s) is what notices a connection whose packets vanish.
fn urls_from(first: usize) -> Vec<String> {
    let urls = cluster_urls();
    (0..urls.len())
        .map(|i| urls[(first - 1 + i) % urls.len()].clone())
        .collect()
}

/// The AMQP port of node `n` (from its URL).
fn amqp_port(n: usize) -> u16 {
    let url = &cluster_urls()[n - 1];
    let port = url.rsplit(':').next().unwrap().split('/').next().unwrap();
    port.parse().unwrap_or_else(|_| panic!("no port in {url}"))
}

/// The distribution address of node `n`.
fn dist_address(n: usize) -> String {
    var("PROMISCUOUS_CLUSTER_DIST_ADDRESSES")
        .split(',')
        .nth(n - 1)
        .unwrap_or_else(|| panic!("no distribution address for node {n}"))
        .to_string()
}

/// A run: workers on one transport, a recorded publisher on another, writes going on.
struct Run {
    name: String,
    pdb: DatabaseConnection,
    sdb: DatabaseConnection,
    workers: Workers,
    recording: Recording<RabbitMq>,
    publisher: promiscuous::PublisherHandle,
    writing: Writing,
    subscriber_rabbit: RabbitMq,
}

impl Run {
    async fn start(name: &str, seed: u64, subscriber: Vec<String>, publisher: Vec<String>) -> Run {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let subscriber_rabbit = cluster_transport(name, QueueType::Quorum, &subscriber);
        let publisher_rabbit = cluster_transport(name, QueueType::Quorum, &publisher);
        let (pdb, sdb) = (publisher_db().await, subscriber_db().await);
        let store = redis_store(&var("PROMISCUOUS_REDIS_URL"), name);
        let setup = Setup {
            seed,
            workers: 2,
            runners: 2,
            ..Setup::new(name, &store)
        };
        let workers = setup.start(&sdb, subscriber_rabbit.clone()).await;
        let (recording, publisher) = recorded_publisher(&pdb, publisher_rabbit).await;
        let writing = Writing::start(&pdb, seed, 2, 4, Duration::from_millis(20));
        let run = Run {
            name: name.to_string(),
            pdb,
            sdb,
            workers,
            recording,
            publisher,
            writing,
            subscriber_rabbit,
        };
        run.published_more(30, "before the fault").await;
        run
    }

    fn published(&self) -> usize {
        self.recording.published().len()
    }

    /// Waits until `n` more messages are published.
    async fn published_more(&self, n: usize, when: &str) {
        let before = self.published();
        until(90, &format!("{n} more messages published {when}"), || {
            self.published() >= before + n
        })
        .await;
    }

    /// Waits until `n` more messages are published, then until the subscriber has processed
    /// them; fails, naming `when`, if it has not within 60 s.
    async fn replicating(&self, n: usize, when: &str) {
        let before = self.published();
        self.published_more(n, when).await;
        let fresh = self.recording.published()[before..].to_vec();
        assert!(
            processed(&self.sdb, &fresh, Duration::from_secs(60)).await,
            "the subscriber did not carry on {when}: {:?}",
            self.workers.stats()
        );
    }

    /// Stops writing and checks everything: the history checker, each operation once, nothing
    /// dead-lettered, the two databases converged.
    async fn finish(self, what: &str, timings: String) {
        let rounds = self.writing.stop().await;
        self.publisher.shutdown().await.unwrap();
        let published = self.recording.published();
        let complete = processed(&self.sdb, &published, Duration::from_secs(60)).await;
        let stats = self.workers.stop().await;
        let report = assert_replicated(&self.sdb, &published, complete, &stats, what).await;
        assert_converged(&self.pdb, &self.sdb, what).await;
        eprintln!(
            "{what}: {timings}; {rounds} rounds, {} messages, {} operations; {stats:?}",
            published.len(),
            report.published_ops
        );
        self.subscriber_rabbit
            .delete_queue(&self.name)
            .await
            .unwrap();
        self.subscriber_rabbit.delete_exchange().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the RabbitMQ cluster: scripts/test --cluster"]
async fn a_subscriber_cut_off_from_its_node_carries_on_through_another_and_loses_nothing() {
    let name = unique("netfault-subscriber");
    // The workers go to node 3 first, the relay to node 1: the fault is between the
    // subscriber and its node only.
    let run = Run::start(&name, 31, urls_from(3), urls_from(1)).await;
    let link = Link::Port(amqp_port(3));

    let thinned = Fault::thin(link.clone(), 5);
    let started = Instant::now();
    run.replicating(60, &format!("with {}", thinned.what()))
        .await;
    let thin_took = started.elapsed();
    let thin_dropped = thinned.dropped();
    assert!(thin_dropped > 0, "{} dropped nothing", thinned.what());
    drop(thinned);

    let cut = Fault::cut(link);
    let started = Instant::now();
    run.replicating(20, &format!("with {}", cut.what())).await;
    let cut_took = started.elapsed();
    let cut_dropped = cut.dropped();
    assert!(cut_dropped > 0, "{} dropped nothing", cut.what());
    drop(cut);

    run.replicating(20, "with the link back").await;
    run.finish(
        "subscriber cut off from its node",
        format!(
            "60 messages through the thinned link in {thin_took:?} ({thin_dropped} packets \
             dropped), carried on through another node after the cut in {cut_took:?} \
             ({cut_dropped} packets dropped)"
        ),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the RabbitMQ cluster: scripts/test --cluster"]
async fn a_node_cut_off_from_the_others_pauses_and_the_majority_carries_on() {
    if let Err(status) = cluster_whole() {
        panic!("the cluster is whole before the test: {status}");
    }
    let name = unique("netfault-node");
    // Workers and relay on node 3, which declares (and so leads) the queue: the node cut off.
    let run = Run::start(&name, 32, urls_from(3), urls_from(3)).await;
    let leader = services(&["cluster", "leader", &name]).trim().to_string();

    let cut = Fault::cut(Link::Address(dist_address(3)));
    let started = Instant::now();
    run.replicating(20, &format!("with {}", cut.what())).await;
    let cut_took = started.elapsed();
    let cut_dropped = cut.dropped();
    assert!(cut_dropped > 0, "{} dropped nothing", cut.what());
    let leader_after = services(&["cluster", "leader", &name]).trim().to_string();
    assert_ne!(
        leader_after, "3",
        "the majority leads the queue while node 3 is cut off"
    );
    drop(cut);

    let healed = Instant::now();
    until(
        120,
        "node 3 back in the cluster after the partition",
        || cluster_whole().is_ok(),
    )
    .await;
    let whole_after = healed.elapsed();
    run.replicating(20, "with the cluster whole again").await;
    run.finish(
        "node 3 cut off from the others",
        format!(
            "queue led by node {leader}, then node {leader_after}; replicating again through the \
             majority after {cut_took:?} ({cut_dropped} packets dropped); cluster whole {whole_after:?} after the cut ended"
        ),
    )
    .await;
}
