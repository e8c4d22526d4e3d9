//! A subscriber deployed behind a backlog: `--backlog` messages (1 create : 3 updates of
//! `benchpub/user`, each instance's versions in order, as its relay would send them) published
//! straight to its queue before it starts, then drained. Prints the fill and drain rates and the
//! process's peak resident memory at each quarter of the drain: bounded by the prefetch, it
//! does not grow with the backlog.

use std::sync::atomic::Ordering as AtomicOrdering;
use std::time::{Duration, Instant};

use promiscuous::BoxError;
use promiscuous::message::{Dependencies, Dependency, Message, Operation, OperationKind};
use promiscuous::transport::{Outgoing, Transport};
use serde_json::{Map, Value, json};

use crate::models::APPLIED;
use crate::pipeline::{Store, parts};
use crate::{Args, grouped, memory};

/// What [`backlog`] measured.
pub(crate) struct Backlog {
    /// Messages drained.
    pub(crate) messages: usize,
    /// Drained (applied), msg/s.
    pub(crate) drain: f64,
    /// Peak resident memory at 25, 50, 75 and 100 % of the drain, MiB.
    pub(crate) rss: [f64; 4],
}

/// Message `n` of `total`: instance `n % users` at version `n / users + 1`, so that every
/// instance is created first and then updated, in order.
pub(crate) fn message(n: usize, total: usize) -> Outgoing {
    let users = total.div_ceil(4);
    let (id, version) = ((n % users) as i64 + 1, (n / users) as u64 + 1);
    let mut attributes = Map::new();
    attributes.insert("name".into(), json!(format!("op {}", total + n)));
    attributes.insert("email".into(), json!(format!("user{id}@bench.example")));
    let key = format!("benchpub/user/{id}");
    let message = Message {
        protocol: promiscuous::PROTOCOL_VERSION,
        app: "benchpub".into(),
        id: format!("backlog-{}-{n}", std::process::id()),
        timestamp: now_ms(),
        host: "bench".into(),
        current_user_id: None,
        dependencies: Dependencies {
            read: Vec::new(),
            write: vec![Dependency { key, version }],
        },
        operations: vec![Operation {
            endpoint: "benchpub/user".into(),
            types: vec!["User".into()],
            id: Value::from(id),
            operation: if version == 1 {
                OperationKind::Create
            } else {
                OperationKind::Update
            },
            version,
            attributes: Some(attributes),
            changes: None,
            sync: false,
        }],
    };
    Outgoing {
        routing_key: "benchpub".into(),
        payload: message.encode(),
        partition_key: None,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Fills the subscriber's queue with `--backlog` messages (confirmed, in windows of
/// `--window`), then starts the subscriber and waits until it applied them all.
pub(crate) async fn backlog(amqp: &str, redis: &str, args: &Args) -> Result<Backlog, BoxError> {
    let total = args.backlog;
    // The subscriber is built (its queue declared and bound), not started.
    let parts = parts(amqp, redis, args, "backlog", Store::Sqlite, false).await?;
    let started = Instant::now();
    let mut n = 0;
    while n < total {
        let window: Vec<Outgoing> = (n..(n + args.window).min(total))
            .map(|i| message(i, total))
            .collect();
        parts.broker.rabbit.publish(&window).await?;
        n += window.len();
    }
    let fill = total as f64 / started.elapsed().as_secs_f64();
    APPLIED.store(0, AtomicOrdering::Relaxed);
    memory::reset_peak();
    let started = Instant::now();
    let subscriber = parts.subscriber.start();
    let mut rss = [0.0; 4];
    let deadline = Instant::now() + Duration::from_secs(1800);
    for (quarter, peak) in rss.iter_mut().enumerate() {
        let target = total * (quarter + 1) / 4;
        while APPLIED.load(AtomicOrdering::Relaxed) < target {
            if Instant::now() > deadline {
                return Err(format!(
                    "backlog: only {} of {total} applied after 30 min; stats: {:?}",
                    APPLIED.load(AtomicOrdering::Relaxed),
                    subscriber.service().stats().borrow().clone()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        *peak = memory::peak_mib();
    }
    let drain = total as f64 / started.elapsed().as_secs_f64();
    let stats = subscriber.service().stats().borrow().clone();
    println!(
        "backlog: {total} messages published to the queue at {} msg/s, drained at {} msg/s \
         ({} runners, prefetch {}; {} waited, {} dead-lettered); peak RSS at 25/50/75/100 % of \
         the drain {:.0} / {:.0} / {:.0} / {:.0} MiB",
        grouped(fill),
        grouped(drain),
        args.workers,
        args.prefetch,
        stats.waited,
        stats.dead_lettered,
        rss[0],
        rss[1],
        rss[2],
        rss[3]
    );
    subscriber.shutdown().await?;
    parts.broker.delete().await?;
    Ok(Backlog {
        messages: total,
        drain,
        rss,
    })
}
