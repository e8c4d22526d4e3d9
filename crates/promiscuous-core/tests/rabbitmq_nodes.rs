//! Several node URLs and quorum queues against the single broker of scripts/services.sh (the
//! failover of a real three-node cluster is in the root crate's tests/cluster.rs, run by
//! `scripts/test --cluster`).

mod common;

use std::time::Duration;

use common::{amqp_url, cleanup, next, out, spec, unique, within};
use promiscuous_core::Report;
use promiscuous_core::transport::{QueueType, RabbitMq, RabbitMqConfig, Transport, TransportError};

fn config(exchange: &str, queue_type: QueueType) -> RabbitMqConfig {
    RabbitMqConfig {
        exchange: exchange.into(),
        connection_name: format!("test {exchange}"),
        connect_timeout: Duration::from_secs(3),
        operation_timeout: Duration::from_secs(10),
        queue_type,
        ..RabbitMqConfig::default()
    }
}

#[tokio::test]
async fn a_node_that_does_not_answer_is_passed_over() {
    let Some(url) = amqp_url("nodes") else {
        return;
    };
    let (exchange, queue) = (unique("nodes"), unique("nodes-q"));
    // Nothing listens on port 1: the first node refuses, the second is the broker.
    let nodes = format!("amqp://guest:guest@127.0.0.1:1/%2f,{url}");
    let rabbit = RabbitMq::new(nodes, config(&exchange, QueueType::Classic));
    let mut consumer = within(10, "consume", rabbit.consume(&spec(&queue, &["app"], 10)))
        .await
        .unwrap();
    for i in 0..3 {
        let message = out("app", format!("{i}"));
        within(10, "publish", rabbit.publish(&[message]))
            .await
            .unwrap();
    }
    for i in 0..3 {
        let d = next(&mut consumer).await;
        assert_eq!(d.payload, format!("{i}").into_bytes());
        d.ack().await.unwrap();
    }
    assert!(rabbit.healthy());
    drop(consumer);
    cleanup(&url, &[&queue], &exchange).await;
}

#[tokio::test]
async fn quorum_queues_deliver_and_keep_their_type() {
    let Some(url) = amqp_url("quorum") else {
        return;
    };
    let (exchange, queue) = (unique("quorum"), unique("quorum-q"));
    let quorum = RabbitMq::new(url.clone(), config(&exchange, QueueType::Quorum));
    within(10, "declare", quorum.declare(&spec(&queue, &["app"], 10)))
        .await
        .unwrap();
    within(10, "publish", quorum.publish(&[out("app", "kept")]))
        .await
        .unwrap();
    let mut consumer = within(10, "consume", quorum.consume(&spec(&queue, &["app"], 10)))
        .await
        .unwrap();
    let d = next(&mut consumer).await;
    assert_eq!(d.payload, b"kept");
    // Not acked: a quorum queue redelivers it to the next consumer, marked redelivered.
    drop(d);
    drop(consumer);
    let mut consumer = within(10, "consume", quorum.consume(&spec(&queue, &["app"], 10)))
        .await
        .unwrap();
    let d = next(&mut consumer).await;
    assert!(d.redelivered && d.payload == b"kept", "{d:?}");
    d.ack().await.unwrap();
    drop(consumer);

    // The same queue declared as classic: the broker refuses, and the error says why.
    let classic = RabbitMq::new(url.clone(), config(&exchange, QueueType::Classic));
    let err = within(10, "declare", classic.declare(&spec(&queue, &["app"], 10)))
        .await
        .unwrap_err();
    let report = Report(&err).to_string();
    assert!(matches!(err, TransportError::Rejected { .. }), "{report}");
    assert!(
        report.contains("classic") && report.contains("x-queue-type"),
        "{report}"
    );
    cleanup(&url, &[&queue], &exchange).await;
}
