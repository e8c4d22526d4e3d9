//! A RabbitMQ restart loses nothing and the transport reconnects by itself. In its own test
//! binary (test binaries run one after the other): the restart would break the other tests
//! against the same broker.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{amqp_url, cleanup, next, out, rabbit, spec, unique, within};
use promiscuous_core::transport::{Transport, TransportError};

#[tokio::test]
async fn nothing_is_lost_across_a_broker_restart() {
    let Some(url) = amqp_url("restart") else {
        return;
    };
    let (exchange, queue) = (unique("restart"), unique("restart-q"));
    let rabbit = rabbit(&url, &exchange);
    let mut old = within(10, "consume", rabbit.consume(&spec(&queue, &["r.#"], 50)))
        .await
        .unwrap();
    // Confirmed before the restart: persistent messages in a durable queue.
    let mut expected: BTreeSet<String> = BTreeSet::new();
    let batch: Vec<_> = (0..200)
        .map(|i| out("r.before", format!("before-{i}")))
        .collect();
    within(10, "publish", rabbit.publish(&batch)).await.unwrap();
    expected.extend((0..200).map(|i| format!("before-{i}")));
    // A few delivered but never acked when the broker goes away.
    for _ in 0..3 {
        next(&mut old).await;
    }

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/services.sh");
    let started = Instant::now();
    let restart = tokio::task::spawn_blocking(move || {
        Command::new(script)
            .arg("restart-rabbitmq")
            .status()
            .map(|s| s.success())
    });

    // Publish all through the restart, one message per call, each call bounded: during the
    // outage a call fails with Unavailable, it never hangs, and the same value reconnects.
    let (mut unavailable, mut unhealthy, mut after_outage) = (0, false, 0);
    let mut maybe: BTreeSet<String> = BTreeSet::new(); // failed calls: may or may not arrive
    let mut i = 0;
    while !(restart.is_finished() && (unavailable == 0 || after_outage >= 5)) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no successful publish after the restart within 120s"
        );
        let body = format!("during-{i}");
        i += 1;
        match within(
            15,
            "publish during the restart",
            rabbit.publish(&[out("r.during", body.clone())]),
        )
        .await
        {
            Ok(()) => {
                if unavailable > 0 {
                    after_outage += 1;
                }
                expected.insert(body);
            }
            Err(e @ TransportError::Unavailable { .. }) => {
                if unavailable == 0 {
                    eprintln!("first failure after {:?}: {e}", started.elapsed());
                }
                unavailable += 1;
                maybe.insert(body);
            }
            Err(e) => panic!("expected Unavailable during the restart, got {e:?}"),
        }
        unhealthy |= !rabbit.healthy();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let restarted = within(10, "restart script", restart).await.unwrap();
    assert!(
        matches!(restarted, Ok(true)),
        "scripts/services.sh restart-rabbitmq: {restarted:?}"
    );
    eprintln!(
        "restart took {:?}; {unavailable} publish calls failed, {} succeeded",
        started.elapsed(),
        expected.len() - 200
    );
    assert!(unavailable > 0, "publishing during the outage must fail");
    assert!(unhealthy, "healthy() reported the outage");

    // The old consumer fails (after skipping what it had buffered), and keeps failing.
    let err = within(15, "old consumer", async {
        loop {
            match old.next().await {
                Ok(_) => continue,
                Err(e) => break e,
            }
        }
    })
    .await;
    assert!(matches!(err, TransportError::Unavailable { .. }), "{err:?}");
    for _ in 0..3 {
        let again = within(1, "failed consumer", old.next()).await;
        assert!(
            matches!(again, Err(TransportError::Unavailable { .. })),
            "{again:?}"
        );
    }

    assert!(
        !rabbit.healthy(),
        "publishing reconnected, but the consuming connection is down until consume() again"
    );

    // A new consumer gets everything that was confirmed.
    let mut consumer = within(10, "consume", rabbit.consume(&spec(&queue, &["r.#"], 50)))
        .await
        .unwrap();
    assert!(rabbit.healthy(), "both connections are back");
    let mut missing = expected.clone();
    let mut redelivered = 0;
    while !missing.is_empty() {
        let d = within(30, "new consumer", consumer.next())
            .await
            .unwrap_or_else(|e| panic!("{e}; still missing {} messages", missing.len()));
        let body = String::from_utf8(d.payload.clone()).unwrap();
        assert!(
            expected.contains(&body) || maybe.contains(&body),
            "unknown message {body}"
        );
        missing.remove(&body);
        redelivered += usize::from(d.redelivered);
        d.ack().await.unwrap();
    }
    eprintln!(
        "all {} confirmed messages received after the restart ({redelivered} flagged redelivered)",
        expected.len()
    );
    assert!(rabbit.healthy());
    drop(consumer);
    drop(old);
    cleanup(&url, &[&queue], &exchange).await;
}
