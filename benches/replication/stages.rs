//! Each stage of the pipeline alone, on a full input: the publisher's commits with no relay
//! running, then the relay draining the outbox, then the subscriber draining its queue.

use std::sync::atomic::Ordering as AtomicOrdering;
use std::time::{Duration, Instant};

use promiscuous::BoxError;

use crate::cpu::Cpu;
use crate::models::APPLIED;
use crate::pipeline::{Store, parts, write};
use crate::{Args, grouped, memory};

/// What [`stages`] measured.
pub(crate) struct Stages {
    /// Publisher commits alone, ops/s.
    pub(crate) commits: f64,
    /// Relay alone (outbox → RabbitMQ, confirmed, rows removed), msg/s.
    pub(crate) relay: f64,
    /// Subscriber alone (queue → applied), msg/s.
    pub(crate) subscriber: f64,
    /// The relay's mean message size, bytes.
    pub(crate) size: usize,
    /// Peak resident memory of each stage (commits, relay, subscriber), MiB.
    pub(crate) rss: [f64; 3],
}

/// `--ops` writes by `--writers` writers with no relay running; then the relay alone; then the
/// subscriber alone. One write per transaction, so messages and operations are one to one.
pub(crate) async fn stages(amqp: &str, redis: &str, args: &Args) -> Result<Stages, BoxError> {
    let parts = parts(amqp, redis, args, "stages", Store::Sqlite, false).await?;
    APPLIED.store(0, AtomicOrdering::Relaxed);
    let per_writer = args.ops / args.writers;
    let total = per_writer * args.writers;
    memory::reset_peak();
    let cpu0 = Cpu::now();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..args.writers {
        let db = parts.pdb.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in 0..per_writer {
                write(&db, w * per_writer + i, &mut mine).await?;
            }
            Ok::<(), BoxError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let commits = total as f64 / started.elapsed().as_secs_f64();
    let cpu1 = Cpu::now();
    let mut rss = [memory::peak_mib(), 0.0, 0.0];
    memory::reset_peak();
    let started = Instant::now();
    let publisher = parts.publisher.start().await?;
    while publisher.pending().await? > 0 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let relay = total as f64 / started.elapsed().as_secs_f64();
    let cpu2 = Cpu::now();
    rss[1] = memory::peak_mib();
    memory::reset_peak();
    let started = Instant::now();
    let subscriber = parts.subscriber.start();
    let deadline = Instant::now() + Duration::from_secs(300);
    while APPLIED.load(AtomicOrdering::Relaxed) < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let applied = APPLIED.load(AtomicOrdering::Relaxed);
    if applied < total {
        return Err(format!("stages: only {applied} of {total} operations applied").into());
    }
    let apply = total as f64 / started.elapsed().as_secs_f64();
    let cpu3 = Cpu::now();
    rss[2] = memory::peak_mib();
    let stats = subscriber.service().stats().borrow().clone();
    let size = parts.sent.mean_size();
    println!(
        "stages ({total} ops, each stage alone): commits {} ops/s ({} writers, no relay, peak \
         RSS {:.0} MiB); relay {} msg/s (outbox → RabbitMQ, confirmed, rows removed; {size} \
         bytes a message; {:.0} MiB); subscriber {} msg/s (queue → SQLite, {} runners, batches \
         of up to {}, {} of the messages applied in batches, {} waited; {:.0} MiB)",
        grouped(commits),
        args.writers,
        rss[0],
        grouped(relay),
        rss[1],
        grouped(apply),
        args.workers,
        args.batch,
        stats.batched,
        stats.waited,
        rss[2]
    );
    println!(
        "stages, CPU per message (this process, the servers): commits {}; relay {}; subscriber \
         {}",
        cpu0.per_message(&cpu1, total),
        cpu1.per_message(&cpu2, total),
        cpu2.per_message(&cpu3, total)
    );
    publisher.shutdown().await?;
    subscriber.shutdown().await?;
    parts.broker.delete().await?;
    Ok(Stages {
        commits,
        relay,
        subscriber: apply,
        size,
        rss,
    })
}
