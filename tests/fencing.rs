//! The relay lease's fencing token: a relay that lost its lease to another cannot publish,
//! even while it still believes it holds the lease (paused past its expiry, or a Redis
//! failover that lost the lease's key); on PostgreSQL a batch in flight holds the fence, so the
//! relay taking the lease over waits for it and two relays never publish at once.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::servers::write;
use common::sql_servers::fresh_database;
use common::user;
use promiscuous::pipeline::{Lease, Relay, RelayConfig, SeaOrmOutbox, schema};
use promiscuous::transport::{Consumer, Outgoing, QueueSpec, Transport, TransportError};
use promiscuous::{Error, InProcess};
use sea_orm::DatabaseConnection;

/// A lease its relay believes it holds while `held` says so, fenced as `outbox`.
struct Believed {
    held: AtomicBool,
}

#[async_trait]
impl Lease for Believed {
    async fn hold(&self) -> Result<bool, Error> {
        Ok(self.held.load(Ordering::SeqCst))
    }
    async fn release(&self) -> Result<(), Error> {
        Ok(())
    }
    fn fence(&self) -> Option<&str> {
        Some("outbox")
    }
}

/// Counts what a relay publishes; with a gate, each publish waits until the gate opens.
#[derive(Clone, Default)]
struct Counted {
    inner: InProcess,
    published: Arc<AtomicUsize>,
    /// Publishes entered (before the gate).
    entered: Arc<AtomicUsize>,
    gate: Option<Arc<tokio::sync::Semaphore>>,
    /// Whether a publish of this transport is under way.
    busy: Arc<AtomicBool>,
    /// Set when two relays' publishes overlapped.
    overlap: Arc<Mutex<Option<&'static str>>>,
    others: Vec<Arc<AtomicBool>>,
}

#[async_trait]
impl Transport for Counted {
    async fn publish(&self, messages: &[Outgoing]) -> Result<(), TransportError> {
        self.busy.store(true, Ordering::SeqCst);
        if self.others.iter().any(|o| o.load(Ordering::SeqCst)) {
            *self.overlap.lock().unwrap() = Some("two relays published at once");
        }
        self.entered.fetch_add(1, Ordering::SeqCst);
        if let Some(gate) = &self.gate {
            gate.acquire().await.unwrap().forget();
        }
        let r = self.inner.publish(messages).await;
        self.published.fetch_add(messages.len(), Ordering::SeqCst);
        self.busy.store(false, Ordering::SeqCst);
        r
    }
    async fn consume(&self, spec: &QueueSpec) -> Result<Box<dyn Consumer>, TransportError> {
        self.inner.consume(spec).await
    }
    async fn declare(&self, spec: &QueueSpec) -> Result<(), TransportError> {
        self.inner.declare(spec).await
    }
    fn healthy(&self) -> bool {
        true
    }
    async fn queue_depth(&self, queue: &str) -> Result<Option<u64>, TransportError> {
        Transport::queue_depth(&self.inner, queue).await
    }
}

fn relay(db: &DatabaseConnection, transport: Counted, lease: Arc<Believed>) -> Relay {
    let config = RelayConfig {
        lease: Some(lease),
        ..RelayConfig::default()
    };
    Relay::with_config(
        Arc::new(SeaOrmOutbox::new(db.clone())),
        Arc::new(transport),
        config,
    )
}

fn believed() -> Arc<Believed> {
    Arc::new(Believed {
        held: AtomicBool::new(true),
    })
}

async fn publisher_db_on(db: DatabaseConnection) -> DatabaseConnection {
    promiscuous_test::create_table(&db, user::Entity)
        .await
        .unwrap();
    schema::setup_publisher(&db).await.unwrap();
    db
}

/// Relay A publishes; relay B takes the lease (a new token); A, still believing it holds the
/// lease, publishes nothing, and B publishes what is written next.
async fn a_relay_that_lost_the_lease_publishes_nothing(db: DatabaseConnection) {
    let (ta, tb) = (Counted::default(), Counted::default());
    let (a, b) = (
        relay(&db, ta.clone(), believed()),
        relay(&db, tb.clone(), believed()),
    );
    for i in 0..3 {
        write(&db, i).await;
    }
    assert_eq!(a.publish_batch().await.unwrap(), 3);
    write(&db, 3).await;
    assert_eq!(b.publish_batch().await.unwrap(), 1, "B took the lease over");
    write(&db, 4).await;
    write(&db, 6).await;
    assert_eq!(
        a.publish_batch().await.unwrap(),
        0,
        "A was fenced off: a later token was taken"
    );
    assert_eq!(ta.published.load(Ordering::SeqCst), 3);
    assert_eq!(b.publish_batch().await.unwrap(), 2);
    assert_eq!(tb.published.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_relay_that_lost_the_lease_publishes_nothing_on_sqlite() {
    let db = publisher_db_on(promiscuous_test::sqlite().await.unwrap()).await;
    a_relay_that_lost_the_lease_publishes_nothing(db).await;
}

on_both_servers! {
    a_relay_that_lost_the_lease_publishes_nothing_on_a_server;
    the_next_holder_waits_for_the_batch_in_flight;
}

async fn a_relay_that_lost_the_lease_publishes_nothing_on_a_server(url: &str) {
    let db = publisher_db_on(fresh_database(url, "fencing_lost").await).await;
    a_relay_that_lost_the_lease_publishes_nothing(db).await;
}

/// On the servers (PostgreSQL, MariaDB), A's batch in flight holds the fence: B, taking the
/// lease over meanwhile, waits until A's batch ends before it publishes anything; A is fenced
/// off afterwards.
async fn the_next_holder_waits_for_the_batch_in_flight(url: &str) {
    let db = publisher_db_on(fresh_database(url, "fencing_wait").await).await;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let mut ta = Counted {
        gate: Some(gate.clone()),
        ..Counted::default()
    };
    let mut tb = Counted::default();
    ta.others.push(tb.busy.clone());
    tb.others.push(ta.busy.clone());
    tb.overlap = ta.overlap.clone();
    let a = Arc::new(relay(&db, ta.clone(), believed()));
    let b = Arc::new(relay(&db, tb.clone(), believed()));
    write(&db, 0).await;
    write(&db, 1).await;
    let a_batch = tokio::spawn({
        let a = a.clone();
        async move { a.publish_batch().await.unwrap() }
    });
    while ta.entered.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // A is inside its publish, holding the fence. B takes the lease over.
    write(&db, 3).await;
    let b_batch = tokio::spawn({
        let b = b.clone();
        async move { b.publish_batch().await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!b_batch.is_finished(), "B waits for A's batch");
    assert_eq!(
        tb.entered.load(Ordering::SeqCst),
        0,
        "B published nothing yet"
    );
    gate.add_permits(1);
    assert_eq!(a_batch.await.unwrap(), 2, "A's batch in flight went out");
    let moved = b_batch.await.unwrap();
    assert_eq!(moved, 1, "B published what A's batch had not fetched");
    write(&db, 4).await;
    gate.add_permits(10);
    assert_eq!(a.publish_batch().await.unwrap(), 0, "A is fenced off");
    assert_eq!(b.publish_batch().await.unwrap(), 1);
    assert_eq!(*ta.overlap.lock().unwrap(), None);
    assert_eq!(
        ta.published.load(Ordering::SeqCst) + tb.published.load(Ordering::SeqCst),
        4,
        "every message once"
    );
}
