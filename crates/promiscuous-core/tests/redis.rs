//! Against a real Redis (PROMISCUOUS_REDIS_URL, started by scripts/services.sh). In CI a
//! missing server fails these tests; elsewhere they say they were skipped.

mod memory_outbox;
use memory_outbox::MemoryOutbox;

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use promiscuous_core::publisher::{Lease, OutboxEntry, Relay, RelayConfig};
use promiscuous_core::redis::{Redis, RedisConfig, RedisLease, RedisVersions};
use promiscuous_core::subscriber::VersionStore;
use promiscuous_core::transport::{InProcess, QueueSpec, Transport};

fn redis(test: &str) -> Option<Redis> {
    let Ok(url) = std::env::var("PROMISCUOUS_REDIS_URL") else {
        if std::env::var_os("CI").is_some() {
            panic!(
                "PROMISCUOUS_REDIS_URL is not set: CI must run the Redis tests (scripts/test starts Redis)"
            );
        }
        eprintln!("skipped {test}: PROMISCUOUS_REDIS_URL is not set (run scripts/services.sh up)");
        return None;
    };
    let config = RedisConfig {
        namespace: format!(
            "promiscuous-test:{}:{test}:{}",
            std::process::id(),
            promiscuous_core::now_ms()
        ),
        ..RedisConfig::default()
    };
    Some(Redis::new(&url, config).expect("valid URL"))
}

#[tokio::test]
async fn a_lease_has_one_holder_until_released_or_expired() {
    let Some(redis) = redis("lease") else { return };
    let a = RedisLease::new(redis.clone(), "outbox", Duration::from_millis(300));
    let b = RedisLease::new(redis.clone(), "outbox", Duration::from_millis(300));
    assert!(a.hold().await.unwrap());
    assert!(a.hold().await.unwrap(), "the holder renews");
    assert!(!b.hold().await.unwrap());
    a.release().await.unwrap();
    assert!(b.hold().await.unwrap(), "released: free for the next");
    assert!(!a.hold().await.unwrap());
    b.release().await.unwrap();
    a.hold().await.unwrap();
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(
        b.hold().await.unwrap(),
        "an expired lease (crashed holder) is taken over"
    );
    assert!(redis.healthy());
}

#[tokio::test]
async fn versions_only_go_up_and_wake_up_other_processes() {
    let Some(redis) = redis("versions") else {
        return;
    };
    // The wake-ups come over their own pub/sub connection, as in another worker process.
    let waiter = RedisVersions::new(redis.clone(), "members");
    let writer = RedisVersions::new(redis.clone(), "members");
    let mut wakeups = waiter.wakeups().await.unwrap();

    writer
        .advance(&[("a/b/1".into(), 2), ("a/b/2".into(), 1)])
        .await
        .unwrap();
    writer.advance(&[("a/b/1".into(), 1)]).await.unwrap(); // lower: ignored, no wake-up
    writer.advance(&[("a/b/1".into(), 3)]).await.unwrap();
    let keys = [
        "a/b/1".to_string(),
        "a/b/2".to_string(),
        "a/b/3".to_string(),
    ];
    assert_eq!(waiter.get(&keys).await.unwrap(), vec![3, 1, 0]);

    let mut seen = Vec::new();
    for _ in 0..3 {
        let w = tokio::time::timeout(Duration::from_secs(5), wakeups.next())
            .await
            .expect("a wake-up");
        seen.push(w.unwrap());
    }
    assert_eq!(
        seen,
        vec![
            ("a/b/1".to_string(), 2),
            ("a/b/2".to_string(), 1),
            ("a/b/1".to_string(), 3)
        ]
    );
    let none = tokio::time::timeout(Duration::from_millis(100), wakeups.next()).await;
    assert!(none.is_err(), "no wake-up for a version that did not go up");
}

#[tokio::test]
async fn several_relays_publish_each_row_once_and_in_order() {
    let Some(redis) = redis("relays") else { return };
    let outbox = Arc::new(MemoryOutbox::default());
    let broker = InProcess::new();
    let spec = QueueSpec {
        queue: "sub".into(),
        bindings: vec!["app".into()],
        prefetch: 1000,
        partitions: 1,
    };
    let mut consumer = broker.consume(&spec).await.unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut relays = Vec::new();
    for _ in 0..3 {
        let config = RelayConfig {
            batch_size: 7,
            poll_interval: Duration::from_millis(5),
            lease: Some(Arc::new(RedisLease::new(
                redis.clone(),
                "outbox",
                Duration::from_secs(5),
            ))),
            ..RelayConfig::default()
        };
        let relay = Relay::with_config(outbox.clone(), Arc::new(broker.clone()), config);
        let mut stopped = stopped.clone();
        relays.push(tokio::spawn(async move {
            relay
                .run(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await
        }));
    }
    const ROWS: i64 = 500;
    for id in 1..=ROWS {
        outbox.rows.lock().unwrap().push(OutboxEntry {
            id,
            routing_key: "app".into(),
            payload: id.to_string().into_bytes(),
        });
        if id % 50 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let mut got = Vec::new();
    while got.len() < ROWS as usize {
        let d = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .expect("every row arrives")
            .unwrap();
        got.push(
            String::from_utf8(d.payload.clone())
                .unwrap()
                .parse::<i64>()
                .unwrap(),
        );
        d.ack().await.unwrap();
    }
    assert_eq!(
        got,
        (1..=ROWS).collect::<Vec<_>>(),
        "each row once, in order"
    );
    let extra = tokio::time::timeout(Duration::from_millis(100), consumer.next()).await;
    assert!(extra.is_err(), "no row published twice");
    stop.send(true).unwrap();
    for r in relays {
        r.await.unwrap();
    }
}

#[tokio::test]
async fn commands_resume_after_the_connection_is_killed() {
    let Some(redis) = redis("reconnect") else {
        return;
    };
    let versions = RedisVersions::new(redis.clone(), "members");
    versions.advance(&[("k/1".into(), 1)]).await.unwrap();
    let id = redis.connection_id().await.unwrap();
    // Kill exactly this handle's connection, from another client.
    let url = std::env::var("PROMISCUOUS_REDIS_URL").unwrap();
    let mut admin = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(id)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(killed, 1);
    let mut resumed = false;
    for _ in 0..40 {
        if versions.advance(&[("k/1".into(), 2)]).await.is_ok() {
            resumed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(resumed, "the connection manager reconnects");
    assert_eq!(versions.get(&["k/1".into()]).await.unwrap(), vec![2]);
    assert!(redis.healthy());
    assert_ne!(redis.connection_id().await.unwrap(), id, "a new connection");
}
