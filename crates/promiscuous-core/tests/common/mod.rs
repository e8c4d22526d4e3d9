//! Helpers for the tests against the RabbitMQ that scripts/services.sh starts
//! (PROMISCUOUS_AMQP_URL). In CI a missing URL fails the tests; elsewhere they say they were
//! skipped.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use lapin::options::{ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use promiscuous_core::transport::{
    Consumer, Delivery, Outgoing, QueueSpec, RabbitMq, RabbitMqConfig,
};

/// The broker URL, or `None` (test skipped) outside CI.
pub fn amqp_url(test: &str) -> Option<String> {
    match std::env::var("PROMISCUOUS_AMQP_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var_os("CI").is_some() => panic!(
            "PROMISCUOUS_AMQP_URL is not set: CI must run the RabbitMQ tests \
             (scripts/services.sh up && eval \"$(scripts/services.sh env)\")"
        ),
        Err(_) => {
            eprintln!(
                "skipped {test}: PROMISCUOUS_AMQP_URL is not set (run scripts/services.sh up)"
            );
            None
        }
    }
}

/// A name no other test or run uses.
pub fn unique(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("promiscuous-test.{test}.{}.{nanos}", std::process::id())
}

/// A transport on its own exchange.
pub fn rabbit(url: &str, exchange: &str) -> RabbitMq {
    RabbitMq::new(
        url,
        RabbitMqConfig {
            exchange: exchange.into(),
            connection_name: format!("test {exchange}"),
            connect_timeout: Duration::from_secs(3),
            operation_timeout: Duration::from_secs(10),
            ..RabbitMqConfig::default()
        },
    )
}

pub fn out(key: &str, body: impl Into<Vec<u8>>) -> Outgoing {
    Outgoing {
        routing_key: key.into(),
        payload: body.into(),
        partition_key: None,
    }
}

pub fn spec(queue: &str, bindings: &[&str], prefetch: u16) -> QueueSpec {
    QueueSpec {
        queue: queue.into(),
        bindings: bindings.iter().map(|b| b.to_string()).collect(),
        prefetch,
        partitions: 1,
    }
}

/// Awaits `fut`, failing the test (instead of hanging) after `secs` seconds.
pub async fn within<T>(secs: u64, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: no result within {secs}s"),
    }
}

/// The next delivery, bounded.
pub async fn next(consumer: &mut Box<dyn Consumer>) -> Delivery {
    within(10, "consumer.next", consumer.next())
        .await
        .expect("a delivery")
}

/// Whether a delivery arrives within `millis`.
pub async fn nothing_within(consumer: &mut Box<dyn Consumer>, millis: u64) -> bool {
    tokio::time::timeout(Duration::from_millis(millis), consumer.next())
        .await
        .is_err()
}

/// A plain lapin connection, to look at and clean up what the transport declared.
pub async fn admin(url: &str) -> lapin::Channel {
    let connection = within(
        10,
        "admin connection",
        Connection::connect(url, ConnectionProperties::default()),
    )
    .await
    .expect("admin connection");
    within(10, "admin channel", connection.create_channel())
        .await
        .expect("admin channel")
}

/// Messages ready in `queue` (not counting unacknowledged ones).
pub async fn ready(url: &str, queue: &str) -> u32 {
    let channel = admin(url).await;
    let q = within(
        10,
        "passive queue.declare",
        channel.queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .expect("the queue exists");
    q.message_count()
}

/// Deletes the test's queues and exchange.
pub async fn cleanup(url: &str, queues: &[&str], exchange: &str) {
    let channel = admin(url).await;
    for q in queues {
        within(
            10,
            "queue.delete",
            channel.queue_delete((*q).into(), QueueDeleteOptions::default()),
        )
        .await
        .expect("queue.delete");
    }
    within(
        10,
        "exchange.delete",
        channel.exchange_delete(exchange.into(), ExchangeDeleteOptions::default()),
    )
    .await
    .expect("exchange.delete");
}
