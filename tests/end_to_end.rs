//! The whole pipeline: publisher writes → outbox → relay → transport → subscriber → SQLite.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};

use std::time::Duration;

use async_trait::async_trait;
use common::servers::collector;
use common::{member, publisher_db, subscriber_db, user};
use promiscuous::pipeline::RelayConfig;
use promiscuous::transport::{Consumer, Outgoing, QueueSpec, TransportError};
use promiscuous::{
    Error, ErrorKind, InProcess, Publisher, Subscriber, SubscriberService, Transport,
};
use promiscuous_test::history::SplitMix64;
use sea_orm::{
    ActiveModelTrait, DatabaseConnection, EntityTrait, IntoActiveModel, ModelTrait, Set,
    TransactionTrait,
};

/// The subscriber service under test, over `transport`.
async fn members(db: &DatabaseConnection, transport: impl Transport) -> SubscriberService {
    Subscriber::new("members", db.clone(), transport)
        .subscribe::<member::Model>()
        .build()
        .await
        .unwrap()
}

/// Random creates, updates and destroys; returns the publisher's final users.
async fn random_writes(db: &DatabaseConnection, seed: u64, writes: usize) -> Vec<user::Model> {
    let mut rng = SplitMix64::new(seed);
    for i in 0..writes {
        let txn = db.begin().await.unwrap();
        let users = user::Entity::find().all(&txn).await.unwrap();
        match rng.below(4) {
            0 | 1 if !users.is_empty() => {
                let u = users[rng.below(users.len())].clone();
                let mut am = u.into_active_model();
                am.name = Set(format!("name-{i}"));
                if rng.below(2) == 0 {
                    am.email = Set(format!("{i}@example.org"));
                }
                am.update(&txn).await.unwrap();
            }
            2 if users.len() > 3 => {
                users[rng.below(users.len())]
                    .clone()
                    .delete(&txn)
                    .await
                    .unwrap();
            }
            _ => {
                user::ActiveModel {
                    name: Set(format!("user-{i}")),
                    email: Set(format!("u{i}@example.org")),
                    password: Set("pw".into()),
                    ..Default::default()
                }
                .insert(&txn)
                .await
                .unwrap();
            }
        }
        if rng.below(10) == 0 {
            txn.rollback().await.unwrap();
        } else {
            txn.commit().await.unwrap();
        }
    }
    user::Entity::find().all(db).await.unwrap()
}

async fn assert_converged(publisher: &DatabaseConnection, subscriber: &DatabaseConnection) {
    let mut expected: Vec<(i32, String, String)> = user::Entity::find()
        .all(publisher)
        .await
        .unwrap()
        .into_iter()
        .map(|u| (u.id, u.name, u.email))
        .collect();
    let mut got: Vec<(i32, String, String)> = member::Entity::find()
        .all(subscriber)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.crowdtap_id, m.name, m.email))
        .collect();
    expected.sort();
    got.sort();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn random_writes_converge_through_background_relay_and_subscriber() {
    for seed in [1, 2, 3] {
        let broker = InProcess::new();
        let (pdb, sdb) = (publisher_db().await, subscriber_db().await);
        let sub = Subscriber::new("members", sdb.clone(), broker.clone())
            .subscribe::<member::Model>()
            .build()
            .await
            .unwrap();
        let running = sub.start();
        let publisher = Publisher::new(pdb.clone(), broker.clone())
            .start()
            .await
            .unwrap();
        random_writes(&pdb, seed, 150).await;
        publisher.shutdown().await.unwrap();
        // Wait until the queue is empty, then compare.
        tokio::time::timeout(Duration::from_secs(20), async {
            while broker.queue_depth("members") != (0, 0) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("subscriber drains its queue");
        let stats = running.shutdown().await.unwrap();
        assert_eq!(stats.dead_lettered, 0, "seed {seed}");
        assert_converged(&pdb, &sdb).await;
    }
}

#[tokio::test]
async fn publishing_everything_twice_changes_nothing() {
    let broker = InProcess::new();
    let (pdb, sdb) = (publisher_db().await, subscriber_db().await);
    let sub = members(&sdb, broker.clone()).await;
    promiscuous::pipeline::schema::setup_publisher(&pdb)
        .await
        .unwrap();
    random_writes(&pdb, 42, 80).await;
    // Replay the outbox by hand before the relay publishes it: every message arrives twice.
    let rows = promiscuous::pipeline::outbox_messages(&pdb, None)
        .await
        .unwrap();
    let copies: Vec<Outgoing> = rows
        .iter()
        .map(|r| Outgoing {
            routing_key: r.routing_key.clone(),
            payload: r.message.encode(),
            partition_key: None,
        })
        .collect();
    broker.publish(&copies).await.unwrap();
    let publisher = Publisher::new(pdb.clone(), broker.clone())
        .start()
        .await
        .unwrap();
    let stats = promiscuous_test::sync(&publisher, &sub).await.unwrap();
    assert_eq!(stats.operations_applied, rows.len(), "{stats:?}");
    assert_eq!(stats.operations_skipped, rows.len(), "{stats:?}");
    assert_converged(&pdb, &sdb).await;
}

/// A transport that is down for its first `failures` publishes.
struct Flaky {
    inner: InProcess,
    failures: AtomicU32,
}

#[async_trait]
impl Transport for Flaky {
    async fn publish(&self, messages: &[Outgoing]) -> Result<(), TransportError> {
        if self.failures.load(Ordering::SeqCst) > 0 {
            self.failures.fetch_sub(1, Ordering::SeqCst);
            return Err(TransportError::unavailable("connection refused (test)"));
        }
        self.inner.publish(messages).await
    }
    async fn consume(&self, spec: &QueueSpec) -> Result<Box<dyn Consumer>, TransportError> {
        self.inner.consume(spec).await
    }
}

#[tokio::test]
async fn writes_wait_in_the_outbox_while_the_broker_is_down() {
    let broker = InProcess::new();
    let (pdb, sdb) = (publisher_db().await, subscriber_db().await);
    let sub = members(&sdb, broker.clone()).await;
    let (errors, notifier) = collector();
    let flaky = Flaky {
        inner: broker.clone(),
        failures: AtomicU32::new(3),
    };
    let config = RelayConfig {
        retry_delay: Duration::from_millis(2),
        poll_interval: Duration::from_millis(10),
        error_notifier: notifier,
        ..RelayConfig::default()
    };
    let publisher = Publisher::new(pdb.clone(), flaky)
        .relay_config(config)
        .start()
        .await
        .unwrap();
    random_writes(&pdb, 7, 40).await;
    tokio::time::timeout(Duration::from_secs(10), async {
        while publisher.pending().await.unwrap() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the relay catches up once the broker is back");
    let errors = errors.lock().unwrap().clone();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors
            .iter()
            .all(|e| matches!(e, Error::Publish { ids, .. } if !ids.is_empty()))
    );
    sub.run_until_idle(promiscuous_test::IDLE).await.unwrap();
    assert_converged(&pdb, &sdb).await;
}

#[tokio::test]
async fn writes_committed_while_no_relay_ran_are_published_by_the_next_start() {
    let broker = InProcess::new();
    let (pdb, sdb) = (publisher_db().await, subscriber_db().await);
    let sub = members(&sdb, broker.clone()).await;
    // The "crashed" publisher: it committed, nothing relayed.
    promiscuous::pipeline::schema::setup_publisher(&pdb)
        .await
        .unwrap();
    random_writes(&pdb, 9, 30).await;
    assert_eq!(broker.queue_depth("members"), (0, 0));
    // The next process start publishes them.
    let publisher = Publisher::new(pdb.clone(), broker.clone())
        .start()
        .await
        .unwrap();
    promiscuous_test::sync(&publisher, &sub).await.unwrap();
    assert_eq!(publisher.pending().await.unwrap(), 0);
    assert_converged(&pdb, &sdb).await;
}

/// A transport whose first `consume` fails and whose next consumer loses its connection after
/// a few deliveries (their unacknowledged deliveries are redelivered, as by a broker).
struct Interrupting {
    inner: InProcess,
    consumes: AtomicU32,
}

struct CutConsumer {
    inner: Box<dyn Consumer>,
    left: u32,
}

#[async_trait]
impl Consumer for CutConsumer {
    async fn next(&mut self) -> Result<promiscuous::transport::Delivery, TransportError> {
        if self.left == 0 {
            return Err(TransportError::unavailable("connection reset (test)"));
        }
        self.left -= 1;
        self.inner.next().await
    }
}

#[async_trait]
impl Transport for Interrupting {
    async fn publish(&self, messages: &[Outgoing]) -> Result<(), TransportError> {
        self.inner.publish(messages).await
    }
    async fn consume(&self, spec: &QueueSpec) -> Result<Box<dyn Consumer>, TransportError> {
        match self.consumes.fetch_add(1, Ordering::SeqCst) {
            1 => Err(TransportError::unavailable("connection refused (test)")),
            2 => Ok(Box::new(CutConsumer {
                inner: self.inner.consume(spec).await?,
                left: 5,
            })),
            _ => self.inner.consume(spec).await,
        }
    }
}

#[tokio::test]
async fn a_subscriber_reconnects_after_losing_its_connection() {
    let broker = InProcess::new();
    let (pdb, sdb) = (publisher_db().await, subscriber_db().await);
    let (errors, notifier) = collector();
    let transport = Interrupting {
        inner: broker.clone(),
        consumes: AtomicU32::new(0),
    };
    let sub = Subscriber::new("members", sdb.clone(), transport)
        .subscribe::<member::Model>()
        .retries(3, Duration::from_millis(1))
        .error_notifier(notifier)
        .build()
        .await
        .unwrap();
    let running = sub.start();
    let publisher = Publisher::new(pdb.clone(), broker.clone())
        .start()
        .await
        .unwrap();
    random_writes(&pdb, 11, 40).await;
    publisher.shutdown().await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), async {
        while broker.queue_depth("members") != (0, 0) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the subscriber resumes and drains its queue");
    assert!(running.healthy());
    running.shutdown().await.unwrap();
    let errors = errors.lock().unwrap().clone();
    assert_eq!(
        errors.len(),
        2,
        "one refused connection, one reset: {errors:?}"
    );
    assert!(errors.iter().all(|e| e.kind() == ErrorKind::Connection));
    assert_converged(&pdb, &sdb).await;
}
