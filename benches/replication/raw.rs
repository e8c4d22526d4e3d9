//! The raw broker, the yardsticks of the ratios: lapin alone, persistent messages, publisher
//! confirms, manual acks, on a durable queue.
//!
//! - [`end_to_end`]: publish and consume at once (the `ratio` lines' yardstick);
//! - [`publish_only`]: publish with confirms to a queue nobody consumes (the relay's);
//! - [`consume_only`]: consume and ack a full queue at a prefetch (the subscriber's).

use std::time::Instant;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer};
use promiscuous::BoxError;

use crate::Args;
use crate::cpu::Cpu;

/// A durable queue on its own connection, purged.
async fn queue(url: &str, queue: &str) -> Result<(Connection, Channel), BoxError> {
    let connection = Connection::connect(url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(queue.into(), durable, FieldTable::default())
        .await?;
    channel
        .queue_purge(queue.into(), QueuePurgeOptions::default())
        .await?;
    Ok((connection, channel))
}

/// Publishes `total` persistent messages of `size` bytes to `queue`, waiting for the
/// confirms of each window of `window`.
async fn publish(
    channel: &Channel,
    queue: &str,
    total: usize,
    size: usize,
    window: usize,
) -> Result<(), BoxError> {
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let payload = vec![b'x'; size];
    let properties = BasicProperties::default().with_delivery_mode(2);
    let mut sent = 0;
    while sent < total {
        let n = window.min(total - sent);
        let mut confirms = Vec::with_capacity(n);
        for _ in 0..n {
            confirms.push(
                channel
                    .basic_publish(
                        "".into(),
                        queue.into(),
                        BasicPublishOptions::default(),
                        &payload,
                        properties.clone(),
                    )
                    .await?,
            );
        }
        for confirm in confirms {
            confirm.await?;
        }
        sent += n;
    }
    Ok(())
}

/// A consumer of `queue` on its own connection at `prefetch`.
async fn consumer(
    url: &str,
    queue: &str,
    prefetch: u16,
) -> Result<(Connection, Consumer), BoxError> {
    let connection = Connection::connect(url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let consumer = channel
        .basic_consume(
            queue.into(),
            "bench".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok((connection, consumer))
}

/// Acks each of the next `total` deliveries, one by one.
async fn consume(consumer: &mut Consumer, total: usize) -> Result<(), BoxError> {
    let mut received = 0;
    while received < total {
        match consumer.next().await {
            Some(Ok(delivery)) => {
                delivery.ack(BasicAckOptions::default()).await?;
                received += 1;
            }
            Some(Err(e)) => return Err(e.into()),
            None => return Err("the consumer stopped".into()),
        }
    }
    Ok(())
}

async fn delete(channel: &Channel, queue: &str) -> Result<(), BoxError> {
    channel
        .queue_delete(queue.into(), QueueDeleteOptions::default())
        .await?;
    Ok(())
}

/// (1) `--raw` persistent 400-byte messages published (confirms in windows of `--window`)
/// while a consumer (prefetch `--prefetch`) acks each one: msg/s from the first publish to the
/// last ack.
pub(crate) async fn end_to_end(url: &str, args: &Args) -> Result<f64, BoxError> {
    let name = format!("promiscuous_bench_raw_{}", std::process::id());
    let (_connection, channel) = queue(url, &name).await?;
    let (_consumer_connection, mut consumer) = consumer(url, &name, args.prefetch).await?;
    let total = args.raw;
    let started = Instant::now();
    let consuming = tokio::spawn(async move { consume(&mut consumer, total).await });
    publish(&channel, &name, total, 400, args.window).await?;
    consuming.await??;
    let elapsed = started.elapsed();
    delete(&channel, &name).await?;
    Ok(total as f64 / elapsed.as_secs_f64())
}

/// The relay's and the subscriber's yardsticks, one after the other on one queue: `--raw`
/// messages of `size` bytes published with confirms (windows of `--window`) to a queue nobody
/// consumes yet, then consumed and acked one by one at prefetch `--prefetch`. Returns (publish
/// msg/s, consume msg/s).
pub(crate) async fn publish_then_consume(
    url: &str,
    args: &Args,
    size: usize,
) -> Result<(f64, f64), BoxError> {
    let name = format!("promiscuous_bench_raw_split_{}", std::process::id());
    let (_connection, channel) = queue(url, &name).await?;
    let total = args.raw;
    let cpu0 = Cpu::now();
    let started = Instant::now();
    publish(&channel, &name, total, size, args.window).await?;
    let published = total as f64 / started.elapsed().as_secs_f64();
    let cpu1 = Cpu::now();
    let (_consumer_connection, mut consumer) = consumer(url, &name, args.prefetch).await?;
    let started = Instant::now();
    consume(&mut consumer, total).await?;
    let consumed = total as f64 / started.elapsed().as_secs_f64();
    let cpu2 = Cpu::now();
    println!(
        "raw broker at {size} bytes, CPU per message: publish with confirms {}; consume and ack \
         {}",
        cpu0.per_message(&cpu1, total),
        cpu1.per_message(&cpu2, total)
    );
    delete(&channel, &name).await?;
    Ok((published, consumed))
}
