//! Subscriber scale: the same `--scale` messages drained by one subscriber application in
//! several shapes, one after the other: P = 1, 2 and 4 partitions on classic queues, then P = 1
//! and 4 on quorum queues. Each shape has P worker services (each its own RabbitMQ connection
//! and `--workers` ÷ P runners, at least one), so every shape runs the same number of runners
//! on the same subscriber database (one SQLite file, `--pool` connections, shared by the
//! services as one process's would be) and the same Redis version store.
//!
//! Every shape's queues are declared and bound before the messages are published, once, to the
//! run's exchange (the backlog's messages: 1 create : 3 updates of `benchpub/user`, each
//! carrying its instance key as the partition header, as the relay sends it), so they all drain
//! the same messages from a full queue. The ratios compare each shape with classic P = 1 of the
//! same run. On this 2-core machine they measure what partitioning *costs* (more consumers,
//! single-active-consumer queues, the merged consumer, more connections), not what it gains
//! across machines: docs/PERFORMANCE.md has the model for that.

use std::sync::Arc;
use std::sync::atomic::Ordering as AtomicOrdering;
use std::time::{Duration, Instant};

use promiscuous::transport::{Outgoing, QueueType, RabbitMq, RabbitMqConfig, Transport};
use promiscuous::{BoxError, Redis, RedisConfig, RedisVersions, Subscriber};

use crate::cpu::Cpu;
use crate::models::{APPLIED, member};
use crate::pipeline::{TempDir, create, sqlite};
use crate::{Args, backlog, grouped};

/// One shape of the subscriber application.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape {
    pub(crate) partitions: u16,
    pub(crate) queue_type: QueueType,
}

impl Shape {
    /// The shapes of the run, the baseline (classic, P = 1) first.
    pub(crate) const ALL: [Shape; 5] = [
        Shape::new(1, QueueType::Classic),
        Shape::new(2, QueueType::Classic),
        Shape::new(4, QueueType::Classic),
        Shape::new(1, QueueType::Quorum),
        Shape::new(4, QueueType::Quorum),
    ];

    const fn new(partitions: u16, queue_type: QueueType) -> Self {
        Shape {
            partitions,
            queue_type,
        }
    }

    /// Runners of each of the shape's P worker services: `workers` ÷ P, at least one.
    fn runners(&self, workers: usize) -> usize {
        (workers / usize::from(self.partitions)).max(1)
    }

    pub(crate) fn label(&self) -> String {
        format!("{} P={}", self.queue_type, self.partitions)
    }
}

/// What one shape measured.
pub(crate) struct Drained {
    pub(crate) shape: Shape,
    /// Applied, msg/s (first start → last operation applied).
    pub(crate) rate: f64,
}

/// A shape's subscriber application, built (its queues declared and bound), not started.
struct Application {
    shape: Shape,
    app: String,
    rabbit: RabbitMq,
    services: Vec<promiscuous::SubscriberService>,
    _dir: TempDir,
}

async fn application(
    amqp: &str,
    redis: &Redis,
    args: &Args,
    exchange: &str,
    shape: Shape,
) -> Result<Application, BoxError> {
    let pid = std::process::id();
    let tag = format!("{}{}", shape.queue_type, shape.partitions);
    let app = format!("promiscuous_bench_scale_{tag}_{pid}");
    let dir = TempDir(std::env::temp_dir().join(format!("promiscuous-bench-scale-{tag}-{pid}")));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0)?;
    let sdb = sqlite(&dir.0.join("subscriber.db"), args.pool).await?;
    create(&sdb, member::Entity).await?;
    let config = |worker: usize| RabbitMqConfig {
        exchange: exchange.to_string(),
        connection_name: format!("promiscuous bench scale {} worker {worker}", shape.label()),
        queue_type: shape.queue_type,
        ..RabbitMqConfig::default()
    };
    let workers = usize::from(shape.partitions);
    let runners = shape.runners(args.workers);
    let versions = Arc::new(RedisVersions::new(redis.clone(), &app));
    let mut services = Vec::new();
    for worker in 0..workers {
        let service = Subscriber::new(
            app.clone(),
            sdb.clone(),
            RabbitMq::new(amqp, config(worker)),
        )
        .subscribe::<member::Model>()
        .partitions(shape.partitions)
        .workers(runners)
        .batch(args.batch)
        .prefetch(args.prefetch)
        .versions(versions.clone())
        .build()
        .await?;
        services.push(service);
    }
    Ok(Application {
        shape,
        app,
        rabbit: RabbitMq::new(amqp, config(workers)),
        services,
        _dir: dir,
    })
}

/// Declares every shape, publishes `--scale` messages once, then drains each shape in turn.
pub(crate) async fn scale(amqp: &str, redis: &str, args: &Args) -> Result<Vec<Drained>, BoxError> {
    let total = args.scale;
    let exchange = format!("promiscuous_bench_scale_{}", std::process::id());
    let redis = Redis::new(redis, RedisConfig::default())?;
    let mut applications = Vec::new();
    for shape in Shape::ALL {
        applications.push(application(amqp, &redis, args, &exchange, shape).await?);
    }
    let publisher = RabbitMq::new(
        amqp,
        RabbitMqConfig {
            exchange: exchange.clone(),
            connection_name: "promiscuous bench scale (fill)".into(),
            ..RabbitMqConfig::default()
        },
    );
    let started = Instant::now();
    let mut n = 0;
    while n < total {
        let window: Vec<Outgoing> = (n..(n + args.window).min(total))
            .map(|i| {
                let mut message = backlog::message(i, total);
                message.partition_key = promiscuous::message::partition_key(&message.payload);
                message
            })
            .collect();
        publisher.publish(&window).await?;
        n += window.len();
    }
    println!(
        "scale: {total} messages published once to {} shapes' queues at {} msg/s",
        applications.len(),
        grouped(total as f64 / started.elapsed().as_secs_f64())
    );
    let mut results = Vec::new();
    for application in applications {
        results.push(drain(application, total, args).await?);
    }
    publisher.delete_exchange().await?;
    Ok(results)
}

/// Starts a shape's workers, waits until they applied `total` operations, stops them and
/// deletes the shape's queues.
async fn drain(application: Application, total: usize, args: &Args) -> Result<Drained, BoxError> {
    let shape = application.shape;
    APPLIED.store(0, AtomicOrdering::Relaxed);
    let cpu = Cpu::now();
    let started = Instant::now();
    let handles: Vec<_> = application.services.iter().map(|s| s.start()).collect();
    let deadline = Instant::now() + Duration::from_secs(600);
    while APPLIED.load(AtomicOrdering::Relaxed) < total {
        if Instant::now() > deadline {
            return Err(format!(
                "scale {}: only {} of {total} applied after 10 min",
                shape.label(),
                APPLIED.load(AtomicOrdering::Relaxed)
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    let cpu = cpu.per_message(&Cpu::now(), total);
    let mut per_worker = Vec::new();
    let mut waited = 0;
    for handle in handles {
        let stats = handle.shutdown().await?;
        per_worker.push(stats.messages);
        waited += stats.waited;
    }
    let runners = shape.runners(args.workers);
    println!(
        "scale {}: {} msg/s ({} worker service(s) × {runners} runner(s); messages per worker \
         {per_worker:?}; {waited} waited; {cpu})",
        shape.label(),
        grouped(rate),
        shape.partitions,
    );
    application
        .rabbit
        .delete_partitions(&application.app, shape.partitions)
        .await?;
    Ok(Drained { shape, rate })
}

/// The summary line: each shape's rate ÷ classic P = 1's.
pub(crate) fn summary(results: &[Drained]) -> String {
    let base = results[0].rate;
    let shapes: Vec<String> = results
        .iter()
        .skip(1)
        .map(|d| format!("{} {:.2}", d.shape.label(), d.rate / base))
        .collect();
    format!(
        "scale {} (subscriber drain ÷ classic P=1 {} msg/s, same runners in all)",
        shapes.join(", "),
        grouped(base)
    )
}
