//! The pipeline end to end: throughput (writers as fast as they go) and latency (writes
//! offered at a fixed rate, commit → applied per operation).

use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use promiscuous::BoxError;
use promiscuous::board::{Board, Worker};

use crate::cpu::Cpu;
use crate::models::{APPLIED, CLOCK, Clock};
use crate::pipeline::{Shared, Store, applied_all, pipeline, write, write_tx};
use crate::{Args, grouped, memory, percentile};

/// The writers of an end-to-end run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Load {
    /// Concurrent writers.
    pub(crate) writers: usize,
    /// Writes per transaction.
    pub(crate) ops_per_tx: usize,
    /// The publisher's and the subscriber's databases.
    pub(crate) store: Store,
}

/// Latency percentiles of a run, ms.
pub(crate) struct Latency {
    pub(crate) rate: u32,
    pub(crate) p50: f64,
    pub(crate) p99: f64,
    pub(crate) max: f64,
}

/// (2) Throughput: `--ops` writes as fast as `load.writers` writers go, `load.ops_per_tx`
/// writes per transaction; operations are numbered from `base` (beyond the latency run's clock,
/// none of them is timed). With `shared`, a dashboard's shared state is on (see
/// [`parts`](crate::pipeline::parts)); after the measure, what it holds is printed. Returns
/// ops/s from the first commit to the last applied operation.
pub(crate) async fn throughput(
    amqp: &str,
    redis: &str,
    args: &Args,
    load: Load,
    run: &str,
    base: usize,
    shared: bool,
) -> Result<f64, BoxError> {
    let Load {
        writers,
        ops_per_tx,
        store,
    } = load;
    let p = pipeline(amqp, redis, args, run, store, shared).await?;
    APPLIED.store(0, AtomicOrdering::Relaxed);
    memory::reset_peak();
    let cpu = Cpu::now();
    let started = Instant::now();
    let per_writer = (args.ops / writers / ops_per_tx).max(1) * ops_per_tx;
    let total = per_writer * writers;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let db = p.pdb.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in (0..per_writer).step_by(ops_per_tx) {
                write_tx(&db, base + w * per_writer + i, ops_per_tx, &mut mine).await?;
            }
            Ok::<(), BoxError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let committed = started.elapsed();
    applied_all(&p, total, Duration::from_secs(300)).await?;
    let elapsed = started.elapsed();
    let cpu = cpu.per_message(&Cpu::now(), total);
    let stats = p.subscriber.service().stats().borrow().clone();
    println!(
        "promiscuous ({store:?}, {writers} writers): {total} ops ({} transactions of \
         {ops_per_tx}) committed in {:.2}s ({} ops/s), applied in {:.2}s; {} messages, {} \
         waited, {} recovered, {} dead-lettered; peak RSS {:.0} MiB; per op {cpu}",
        total / ops_per_tx,
        committed.as_secs_f64(),
        grouped(total as f64 / committed.as_secs_f64()),
        elapsed.as_secs_f64(),
        stats.messages,
        stats.waited,
        stats.recovered,
        stats.dead_lettered,
        memory::peak_mib()
    );
    if let Some(shared) = &p.shared {
        shared_state(shared).await?;
    }
    p.stop().await?;
    Ok(total as f64 / elapsed.as_secs_f64())
}

/// Prints what a run's dashboard state holds once its operations were applied (not
/// measured): this process's reports on the Redis board, and the feed's last event.
async fn shared_state(shared: &Shared) -> Result<(), BoxError> {
    let mine: Vec<_> = shared
        .board
        .reports()
        .await?
        .into_iter()
        .filter(|r| r.pid == std::process::id())
        .collect();
    let relays = mine
        .iter()
        .filter(|r| matches!(r.worker, Worker::Relay(_)))
        .count();
    println!(
        "  shared state: {} report(s) of this process on the Redis board ({relays} relay(s), \
         {} subscriber(s)); feed at event {}",
        mine.len(),
        mine.len() - relays,
        shared.feed.last_id()
    );
    Ok(())
}

/// (3) Latency: writes offered at `rate` ops/s for `--latency-secs` by `--writers` writers
/// (one write per transaction, SQLite), each timed from its commit to its callback on the
/// subscriber. Operations are numbered from `base`.
pub(crate) async fn latency(
    amqp: &str,
    redis: &str,
    args: &Args,
    rate: u32,
    base: usize,
) -> Result<Latency, BoxError> {
    let total = rate as usize * args.latency_secs as usize;
    let clock = CLOCK.get_or_init(|| Clock {
        committed: (0..base + total).map(|_| Mutex::new(None)).collect(),
        applied: (0..base + total).map(|_| Mutex::new(None)).collect(),
    });
    if clock.committed.len() < base + total {
        return Err("the latency run runs once per process".into());
    }
    let p = pipeline(amqp, redis, args, "latency", Store::Sqlite, false).await?;
    APPLIED.store(0, AtomicOrdering::Relaxed);
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let started = tokio::time::Instant::now();
    // Writers take operations in turn; each write is timed from its scheduled start.
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..args.writers {
        let (db, next) = (p.pdb.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let i = next.fetch_add(1, AtomicOrdering::Relaxed);
                if i >= total {
                    return Ok::<(), BoxError>(());
                }
                tokio::time::sleep_until(started + interval * i as u32).await;
                write(&db, base + i, &mut mine).await?;
                *clock.committed[base + i].lock().unwrap() = Some(Instant::now());
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let offered = started.elapsed();
    applied_all(&p, total, Duration::from_secs(120)).await?;
    let mut latencies: Vec<Duration> = (base..base + total)
        .filter_map(|n| {
            let committed = (*clock.committed[n].lock().unwrap())?;
            let applied = (*clock.applied[n].lock().unwrap())?;
            Some(applied.saturating_duration_since(committed))
        })
        .collect();
    latencies.sort();
    if latencies.is_empty() {
        return Err("no latency measured".into());
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let measured = Latency {
        rate,
        p50: ms(percentile(&latencies, 0.50)),
        p99: ms(percentile(&latencies, 0.99)),
        max: ms(latencies[latencies.len() - 1]),
    };
    println!(
        "latency at {} ops/s offered ({total} ops in {:.2}s): commit-to-applied p50 {:.1} ms, \
         p99 {:.1} ms, max {:.1} ms ({} measured)",
        grouped(f64::from(rate)),
        offered.as_secs_f64(),
        measured.p50,
        measured.p99,
        measured.max,
        latencies.len()
    );
    p.stop().await?;
    Ok(measured)
}
