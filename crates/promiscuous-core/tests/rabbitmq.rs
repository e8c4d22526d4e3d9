//! The RabbitMQ transport against a real broker (PROMISCUOUS_AMQP_URL, started by
//! scripts/services.sh). Every test uses its own exchange and queues, deletes them at the end,
//! and bounds every wait. The broker restart is in rabbitmq_restart.rs (its own process).

mod common;

use std::collections::HashMap;
use std::time::Instant;

use common::{
    admin, amqp_url, cleanup, next, nothing_within, out, rabbit, ready, spec, unique, within,
};
use lapin::ExchangeKind;
use lapin::options::{BasicGetOptions, ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use promiscuous_core::Report;
use promiscuous_core::transport::{Transport, TransportError};

#[tokio::test]
async fn publishes_in_order_with_confirms_and_routes_by_topic() {
    let Some(url) = amqp_url("ordered") else {
        return;
    };
    let (exchange, queue) = (unique("ordered"), unique("ordered-q"));
    let rabbit = rabbit(&url, &exchange);
    let mut consumer = within(
        10,
        "consume",
        rabbit.consume(&spec(&queue, &["app.*", "other.#"], 500)),
    )
    .await
    .unwrap();

    // 5,000 messages of 400 bytes, in batches of 250 (as the relay sends them), confirmed.
    let total = 5_000;
    let body = |i: usize| format!("{i:0>400}").into_bytes();
    let started = Instant::now();
    for batch in (0..total).collect::<Vec<_>>().chunks(250) {
        let messages: Vec<_> = batch.iter().map(|&i| out("app.user", body(i))).collect();
        within(30, "publish", rabbit.publish(&messages))
            .await
            .unwrap();
    }
    let published = started.elapsed();
    within(
        10,
        "publish",
        rabbit.publish(&[out("nobody.listens", "x"), out("other.a.b", "last")]),
    )
    .await
    .unwrap();

    let started = Instant::now();
    for i in 0..total {
        let d = next(&mut consumer).await;
        assert_eq!(d.routing_key, "app.user");
        assert_eq!(d.payload, body(i), "delivery {i} out of order");
        assert!(!d.redelivered);
        d.ack().await.unwrap();
    }
    let consumed = started.elapsed();
    let d = next(&mut consumer).await;
    assert_eq!(
        (d.routing_key.as_str(), &d.payload[..]),
        ("other.a.b", &b"last"[..])
    );
    d.ack().await.unwrap();
    assert!(
        nothing_within(&mut consumer, 200).await,
        "unbound keys are not delivered"
    );
    eprintln!(
        "{total} x 400 B: published and confirmed in {published:?} ({:.0}/s), consumed and acked \
         in {consumed:?} ({:.0}/s)",
        total as f64 / published.as_secs_f64(),
        total as f64 / consumed.as_secs_f64()
    );
    assert!(rabbit.healthy());
    drop(consumer);
    cleanup(&url, &[&queue], &exchange).await;
}

#[tokio::test]
async fn messages_are_persistent_json() {
    let Some(url) = amqp_url("properties") else {
        return;
    };
    let (exchange, queue) = (unique("properties"), unique("properties-q"));
    let rabbit = rabbit(&url, &exchange);
    // Declares and binds the queue; nobody consumes it afterwards.
    drop(
        within(10, "consume", rabbit.consume(&spec(&queue, &["props"], 1)))
            .await
            .unwrap(),
    );
    within(10, "publish", rabbit.publish(&[out("props", "{}")]))
        .await
        .unwrap();
    let channel = admin(&url).await;
    let got = within(
        10,
        "basic.get",
        channel.basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true }),
    )
    .await
    .unwrap()
    .expect("the message is in the queue");
    let props = &got.delivery.properties;
    assert_eq!(*props.delivery_mode(), Some(2), "persistent");
    assert_eq!(
        props.content_type().as_ref().map(|c| c.as_str()),
        Some("application/json")
    );
    assert_eq!(got.delivery.data, b"{}");
    // The exchange and the queue are durable: a passive declare with durable=false would not
    // tell, so re-declare them as the transport does (a mismatch would be an error).
    within(
        10,
        "exchange.declare",
        channel.exchange_declare(
            exchange.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .expect("a durable topic exchange");
    within(
        10,
        "queue.declare",
        channel.queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions::durable(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("a durable queue");
    cleanup(&url, &[&queue], &exchange).await;
}

#[tokio::test]
async fn prefetch_limits_unacked_deliveries() {
    let Some(url) = amqp_url("prefetch") else {
        return;
    };
    let (exchange, queue) = (unique("prefetch"), unique("prefetch-q"));
    let rabbit = rabbit(&url, &exchange);
    let mut consumer = within(10, "consume", rabbit.consume(&spec(&queue, &["k"], 2)))
        .await
        .unwrap();
    let messages: Vec<_> = (0..5).map(|i| out("k", i.to_string())).collect();
    within(10, "publish", rabbit.publish(&messages))
        .await
        .unwrap();
    let d0 = next(&mut consumer).await;
    let d1 = next(&mut consumer).await;
    assert!(
        nothing_within(&mut consumer, 300).await,
        "a third delivery must wait for an ack"
    );
    d0.ack().await.unwrap();
    let d2 = next(&mut consumer).await;
    assert_eq!(d2.payload, b"2");
    assert!(nothing_within(&mut consumer, 300).await, "still 2 unacked");
    d1.ack().await.unwrap();
    d2.ack().await.unwrap();
    assert_eq!(next(&mut consumer).await.payload, b"3");
    drop(consumer);
    cleanup(&url, &[&queue], &exchange).await;
}

#[tokio::test]
async fn unacked_deliveries_are_redelivered_after_the_consumer_is_dropped() {
    let Some(url) = amqp_url("redelivery") else {
        return;
    };
    let (exchange, queue) = (unique("redelivery"), unique("redelivery-q"));
    let rabbit = rabbit(&url, &exchange);
    let mut consumer = within(10, "consume", rabbit.consume(&spec(&queue, &["k"], 10)))
        .await
        .unwrap();
    within(
        10,
        "publish",
        rabbit.publish(&[out("k", "1"), out("k", "2"), out("k", "3")]),
    )
    .await
    .unwrap();
    let d1 = next(&mut consumer).await;
    let d2 = next(&mut consumer).await;
    let d3 = next(&mut consumer).await;
    d1.ack().await.unwrap();
    drop(d3);
    drop(consumer); // 2 and 3 were never acked: they come back, flagged
    let mut consumer = within(10, "consume", rabbit.consume(&spec(&queue, &["k"], 10)))
        .await
        .unwrap();
    for body in ["2", "3"] {
        let d = next(&mut consumer).await;
        assert_eq!(d.payload, body.as_bytes());
        assert!(d.redelivered, "{body} is flagged as redelivered");
        d.ack().await.unwrap();
    }
    assert!(
        nothing_within(&mut consumer, 200).await,
        "1 was acked: not redelivered"
    );
    assert!(
        matches!(d2.ack().await, Err(TransportError::Unavailable { .. })),
        "an ack on the old, closed channel is an error, not a silent success"
    );
    drop(consumer);
    assert_eq!(ready(&url, &queue).await, 0);
    cleanup(&url, &[&queue], &exchange).await;
}

#[tokio::test]
async fn nack_requeues_or_drops() {
    let Some(url) = amqp_url("nack") else {
        return;
    };
    let (exchange, queue) = (unique("nack"), unique("nack-q"));
    let rabbit = rabbit(&url, &exchange);
    let mut consumer = within(10, "consume", rabbit.consume(&spec(&queue, &["k"], 1)))
        .await
        .unwrap();
    within(
        10,
        "publish",
        rabbit.publish(&[out("k", "1"), out("k", "2")]),
    )
    .await
    .unwrap();
    let d = next(&mut consumer).await;
    assert_eq!((&d.payload[..], d.redelivered), (&b"1"[..], false));
    d.nack(true).await.unwrap();
    let d = next(&mut consumer).await;
    assert_eq!(
        (&d.payload[..], d.redelivered),
        (&b"1"[..], true),
        "requeued at the head"
    );
    d.nack(false).await.unwrap(); // dropped (no dead-letter exchange configured)
    let d = next(&mut consumer).await;
    assert_eq!((&d.payload[..], d.redelivered), (&b"2"[..], false));
    d.ack().await.unwrap();
    d.ack()
        .await
        .expect("a second ack of the same delivery is a no-op");
    assert!(
        nothing_within(&mut consumer, 200).await,
        "1 was dropped by nack(false)"
    );
    drop(consumer);
    assert_eq!(ready(&url, &queue).await, 0);
    cleanup(&url, &[&queue], &exchange).await;
}

#[tokio::test]
async fn concurrent_publishes_are_all_confirmed_each_in_order() {
    let Some(url) = amqp_url("concurrent") else {
        return;
    };
    let (exchange, queue) = (unique("concurrent"), unique("concurrent-q"));
    let rabbit = rabbit(&url, &exchange);
    let mut consumer = within(10, "consume", rabbit.consume(&spec(&queue, &["t.*"], 100)))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..4)
        .map(|t| {
            let rabbit = rabbit.clone();
            tokio::spawn(async move {
                for call in 0..50 {
                    let batch: Vec<_> = (0..5)
                        .map(|i| out(&format!("t.{t}"), (call * 5 + i).to_string()))
                        .collect();
                    rabbit.publish(&batch).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        within(60, "publisher task", t).await.unwrap();
    }
    let mut last: HashMap<String, i64> = HashMap::new();
    for _ in 0..1000 {
        let d = next(&mut consumer).await;
        let n: i64 = String::from_utf8(d.payload.clone())
            .unwrap()
            .parse()
            .unwrap();
        let prev = last.insert(d.routing_key.clone(), n).unwrap_or(-1);
        assert_eq!(n, prev + 1, "per publisher, in order ({})", d.routing_key);
        d.ack().await.unwrap();
    }
    assert!(last.values().all(|&n| n == 249), "{last:?}");
    drop(consumer);
    cleanup(&url, &[&queue], &exchange).await;
}

#[tokio::test]
async fn declaration_conflicts_and_bad_input_are_clear_errors() {
    let Some(url) = amqp_url("conflicts") else {
        return;
    };
    let (exchange, queue, good) = (
        unique("conflicts"),
        unique("conflicts-q"),
        unique("conflicts-ok"),
    );
    let channel = admin(&url).await;
    // Declared earlier by someone else with other properties (not durable).
    within(
        10,
        "queue.declare",
        channel.queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .unwrap();
    let rabbit = rabbit(&url, &exchange);
    let err = within(10, "consume", rabbit.consume(&spec(&queue, &["k"], 1)))
        .await
        .err();
    match err {
        Some(e @ TransportError::Rejected { .. }) => {
            let msg = Report(&e).to_string();
            assert!(
                msg.contains(&queue) && msg.contains("PRECONDITION_FAILED"),
                "{msg}"
            )
        }
        other => panic!("expected Rejected naming the queue, got {other:?}"),
    }
    // Only that channel failed: the transport goes on.
    let consumer = within(10, "consume", rabbit.consume(&spec(&good, &["k"], 1))).await;
    assert!(consumer.is_ok(), "{:?}", consumer.err());
    assert!(matches!(
        rabbit.consume(&spec(&good, &["k"], 0)).await.err(),
        Some(TransportError::Rejected { .. })
    ));

    // The exchange exists with another type.
    let other = unique("conflicts-x");
    within(
        10,
        "exchange.declare",
        channel.exchange_declare(
            other.as_str().into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .unwrap();
    let wrong = common::rabbit(&url, &other);
    match within(10, "publish", wrong.publish(&[out("k", "x")])).await {
        Err(e @ TransportError::Rejected { .. }) => {
            let msg = Report(&e).to_string();
            assert!(msg.contains(&other), "{msg}")
        }
        r => panic!("expected Rejected naming the exchange, got {r:?}"),
    }
    match within(10, "consume", wrong.consume(&spec(&good, &["k"], 1)))
        .await
        .err()
    {
        Some(e @ TransportError::Rejected { .. }) => {
            let msg = Report(&e).to_string();
            assert!(msg.contains(&other), "{msg}")
        }
        r => panic!("expected Rejected naming the exchange, got {r:?}"),
    }

    // A routing key longer than AMQP allows: an error, and nothing of the call is sent.
    let long = "k".repeat(300);
    assert!(matches!(
        rabbit.publish(&[out("k", "first"), out(&long, "x")]).await,
        Err(TransportError::Rejected { .. })
    ));
    within(10, "publish", rabbit.publish(&[out("k", "ok")]))
        .await
        .unwrap();
    let mut consumer = consumer.unwrap();
    assert_eq!(next(&mut consumer).await.payload, b"ok");
    drop(consumer);
    cleanup(&url, &[&queue, &good], &exchange).await;
    within(
        10,
        "exchange.delete",
        channel.exchange_delete(other.as_str().into(), Default::default()),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn declare_keeps_messages_without_taking_them() {
    let Some(url) = amqp_url("declare") else {
        return;
    };
    let (exchange, queue) = (unique("declare"), unique("declare-q"));
    let rabbit = rabbit(&url, &exchange);
    let spec = spec(&queue, &["k"], 10);
    within(10, "declare", rabbit.declare(&spec)).await.unwrap();
    within(10, "publish", rabbit.publish(&[out("k", "1")]))
        .await
        .unwrap();
    // Declaring again (as every subscriber start does) takes nothing off the queue.
    within(10, "declare again", rabbit.declare(&spec))
        .await
        .unwrap();
    assert_eq!(ready(&url, &queue).await, 1);
    let mut consumer = within(10, "consume", rabbit.consume(&spec)).await.unwrap();
    let d = next(&mut consumer).await;
    assert_eq!((&d.payload[..], d.redelivered), (&b"1"[..], false));
    d.ack().await.unwrap();
    drop(consumer);
    cleanup(&url, &[&queue], &exchange).await;
}
