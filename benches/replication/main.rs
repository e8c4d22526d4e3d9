//! The replication bench: every stage of promiscuous against its own limit, measured side by
//! side in one run on the real RabbitMQ, Redis and PostgreSQL that `scripts/services.sh up`
//! starts (docs/PERFORMANCE.md has the results and where the time goes):
//!
//! ```text
//! eval "$(scripts/services.sh env)"
//! cargo bench --bench replication                       # everything, the summary at the end
//! cargo bench --bench replication -- --help             # sizes, and the runs that go alone
//! ```
//!
//! In order (each run has its own databases, exchange and queue, deleted at its end):
//!
//! 1. **raw**: lapin alone, persistent messages with publisher confirms (windows of
//!    `--window`), manual acks at prefetch `--prefetch` ([`raw`]): publish and consume at once
//!    (400 bytes), then, at the relay's mean message size, publish only and consume only.
//! 2. **stages** ([`stages`]): `--ops` writes by `--writers` writers on a SQLite publisher with
//!    no relay running (*commits alone*), then the relay alone (outbox → RabbitMQ, confirmed,
//!    rows removed), then the subscriber alone (queue → SQLite, `--workers` runners, causal,
//!    Redis shared versions).
//! 3. **end to end** ([`throughput`]): the same writes through the whole pipeline running,
//!    ops/s from the first commit to the last applied operation; then the latency run at 70 %
//!    of that rate (or `--rate`): commit-to-applied p50/p99/max; then 10 writes per transaction.
//! 4. **probe** ([`probe`]): the publisher's write path alone, bare SeaORM inserts against
//!    published ones, 1 and 10 writes per transaction, alternating rounds.
//! 5. **PostgreSQL** end to end: publisher and subscriber databases on PostgreSQL,
//!    `--pg-writers` writers (skipped without `PROMISCUOUS_POSTGRES_URL`, or with `--no-pg`).
//!    `--servers-only` runs PostgreSQL and MariaDB end to end instead, in alternating rounds,
//!    and prints `ratio-mariadb` (MariaDB ÷ PostgreSQL; needs `PROMISCUOUS_MARIADB_URL` too).
//! 6. **backlog** ([`backlog`]): `--backlog` messages put in the subscriber's queue before it
//!    starts, drained; drain rate and peak memory per quarter of the drain.
//! 7. **scale** ([`scale`]): `--scale` messages drained by the subscriber application in five
//!    shapes: classic queues with P = 1, 2, 4 partitions (P worker services), quorum queues
//!    with P = 1, 4.
//!
//! The summary lines at the end (each a ratio of two rates of this run):
//! `write-overhead` (published ÷ bare time per transaction, 10 writes per transaction),
//! `relay-ratio` (relay alone ÷ raw publish), `subscriber-ratio` (subscriber alone ÷ raw
//! consume), `pipeline-ratio` (end to end ÷ commits alone), `ratio-pg` (PostgreSQL end to end ÷
//! raw), `latency` (p50/p99 at 70 % of the end-to-end rate), `backlog` (drain ÷ subscriber
//! alone), `ratio` and `ratio-tx10` (end to end ÷ raw, 1 and 10 writes per transaction),
//! `scale` (each shape's drain ÷ classic P = 1's).
//! Peak resident memory (`VmHWM`) is printed per stage.
//!
//! Runs that go alone and exit: `--stages`, `--probe`, `--board` (the end-to-end run without
//! and with a dashboard's shared state, [`board`]), `--backlog-only` and `--scale-only`.
//! Both SQLite databases are files in WAL mode with `synchronous=NORMAL`.

mod backlog;
mod board;
mod cpu;
mod memory;
mod models;
mod pipeline;
mod probe;
mod raw;
mod scale;
mod stages;
mod throughput;

use std::time::Duration;

use clap::Parser;
use promiscuous::BoxError;

use crate::pipeline::Store;
use crate::throughput::{Load, throughput};

#[derive(Parser, Debug)]
#[command(about = "promiscuous end-to-end replication vs. the raw broker")]
pub(crate) struct Args {
    /// Messages in the raw broker run.
    #[arg(long, default_value_t = 30_000)]
    pub(crate) raw: usize,
    /// Raw run: messages published per confirm window.
    #[arg(long, default_value_t = 256)]
    pub(crate) window: usize,
    /// Operations in the promiscuous throughput run.
    #[arg(long, default_value_t = 30_000)]
    pub(crate) ops: usize,
    /// Concurrent writers on the publisher.
    #[arg(long, default_value_t = 4)]
    pub(crate) writers: usize,
    /// Writes per writer transaction in the throughput run (creates and updates; no user is
    /// written twice in one transaction). The full run also measures 10 whatever this says.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) ops_per_tx: u32,
    /// Connections of each SQLite pool. SQLite has one writer at a time: with more
    /// connections, writers wait for its lock in SQLite's busy handler, which sleeps (1, 2, 5 …
    /// ms) and makes the latency tail; with one, they queue in the pool (docs/PERFORMANCE.md).
    #[arg(long, default_value_t = 1)]
    pub(crate) pool: u32,
    /// Most messages a subscriber runner applies in one transaction.
    #[arg(long, default_value_t = 64)]
    pub(crate) batch: usize,
    /// Subscriber runners.
    #[arg(long, default_value_t = 4)]
    pub(crate) workers: usize,
    /// Unacknowledged deliveries (raw consumer and subscriber).
    #[arg(long, default_value_t = 1000)]
    pub(crate) prefetch: u16,
    /// Offered rate of the latency run, in ops/s; by default 70 % of the end-to-end throughput
    /// measured just before in the same run.
    #[arg(long)]
    pub(crate) rate: Option<u32>,
    /// Duration of the latency run.
    #[arg(long, default_value_t = 5)]
    pub(crate) latency_secs: u64,
    /// Skip the raw run (promiscuous only; no ratio).
    #[arg(long)]
    pub(crate) no_raw: bool,
    /// Measure each stage alone (commits, relay, subscriber), one after the other, and exit.
    #[arg(long)]
    pub(crate) stages: bool,
    /// Measure the publisher's write path alone (no relay, no subscriber) and exit: bare vs.
    /// published inserts at 1 and 10 writes per transaction (`--ops` writes per case, at most
    /// 5,000, split over `--probe-rounds` alternating rounds).
    #[arg(long)]
    pub(crate) probe: bool,
    /// Alternating bare/published rounds of the probe (the median round is reported).
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) probe_rounds: u32,
    /// Measure the end-to-end run (2) without and with a dashboard's shared state (a
    /// `RedisBoard` for the relay's and the subscriber's reports, a `Feed` on the subscriber
    /// that nobody listens to), in `--board-rounds` rounds, and exit.
    #[arg(long)]
    pub(crate) board: bool,
    /// Rounds of the board comparison (each: without, then with, unless `--board-on-first`;
    /// the medians are reported).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) board_rounds: u32,
    /// Board comparison: run the side with the shared state first in each round (a check of
    /// what the order alone does).
    #[arg(long)]
    pub(crate) board_on_first: bool,
    /// Messages waiting in the subscriber's queue before it starts, in the backlog run (0 skips
    /// it): published straight to the queue, then drained; drain rate and peak memory.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) backlog: usize,
    /// Measure only the backlog run and exit.
    #[arg(long)]
    pub(crate) backlog_only: bool,
    /// Messages of the scale run (0 skips it): published once to the queues of five shapes of
    /// the subscriber application (classic P = 1, 2, 4 partitions; quorum P = 1, 4), each then
    /// drained in turn.
    #[arg(long, default_value_t = 20_000)]
    pub(crate) scale: usize,
    /// Measure only the scale run and exit.
    #[arg(long)]
    pub(crate) scale_only: bool,
    /// Concurrent writers of the PostgreSQL end-to-end run (`ratio-pg`; skipped when
    /// `PROMISCUOUS_POSTGRES_URL` is not set).
    #[arg(long, default_value_t = 8)]
    pub(crate) pg_writers: usize,
    /// Skip the PostgreSQL run.
    #[arg(long)]
    pub(crate) no_pg: bool,
    /// Measure only the latency run (at `--rate`, 500 ops/s by default) and exit.
    #[arg(long)]
    pub(crate) latency_only: bool,
    /// Measure only the PostgreSQL end-to-end run and exit.
    #[arg(long)]
    pub(crate) pg_only: bool,
    /// Measure only the SQL servers end to end, PostgreSQL and MariaDB in alternating rounds
    /// (`--server-rounds` each, `--pg-writers` writers), print MariaDB ÷ PostgreSQL, and exit.
    #[arg(long)]
    pub(crate) servers_only: bool,
    /// Rounds of each server in `--servers-only`.
    #[arg(long, default_value_t = 3)]
    pub(crate) server_rounds: usize,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    pub(crate) bench: bool,
}

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

pub(crate) fn grouped(n: f64) -> String {
    let s = format!("{:.0}", n);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The median and the range of `values`.
pub(crate) fn median(values: &[f64]) -> (f64, f64, f64) {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    let median = if v.len().is_multiple_of(2) {
        (v[m - 1] + v[m]) / 2.0
    } else {
        v[m]
    };
    (median, v[0], v[v.len() - 1])
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The SQL servers end to end ([`Args::servers_only`]): the summary line `ratio-mariadb`.
async fn servers(amqp: &str, redis: &str, args: &Args) -> Result<String, BoxError> {
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for round in 0..args.server_rounds {
        // Alternating, so that the machine's drift weighs on both alike.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let (store, name) = [(Store::Postgres, "pg"), (Store::MariaDb, "mariadb")][i];
            let load = Load {
                writers: args.pg_writers,
                ops_per_tx: 1,
                store,
            };
            let rate = throughput(amqp, redis, args, load, name, 0, false).await?;
            println!(
                "round {round}: {name}: {} ops/s end to end ({} writers, 1 write/tx)",
                grouped(rate),
                args.pg_writers
            );
            rates[i].push(rate);
        }
    }
    let ratios: Vec<f64> = rates[1].iter().zip(&rates[0]).map(|(m, p)| m / p).collect();
    let (ratio, low, high) = median(&ratios);
    let (pg, _, _) = median(&rates[0]);
    let (maria, _, _) = median(&rates[1]);
    Ok(format!(
        "ratio-mariadb {ratio:.2} (range {low:.2}-{high:.2}; MariaDB end to end {} ops/s ÷ \
         PostgreSQL {} ops/s, medians of {} rounds, {} writers, 1 write/tx)",
        grouped(maria),
        grouped(pg),
        args.server_rounds,
        args.pg_writers
    ))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let amqp = env(
        "PROMISCUOUS_AMQP_URL",
        "amqp://guest:guest@127.0.0.1:5672/%2f",
    );
    let redis = env("PROMISCUOUS_REDIS_URL", "redis://127.0.0.1:6379/");
    println!(
        "replication bench: {} raw messages, {} ops ({} writers, {} write(s)/tx, {} runners, \
         batches of {}, prefetch {}), latency for {}s, {} PostgreSQL writers, backlog {}, scale {}",
        args.raw,
        args.ops,
        args.writers,
        args.ops_per_tx,
        args.workers,
        args.batch,
        args.prefetch,
        args.latency_secs,
        args.pg_writers,
        args.backlog,
        args.scale
    );
    if args.probe {
        let [one, ten] = probe::probe(&args).await?;
        println!("write-overhead-1 {one:.2}");
        println!("write-overhead {ten:.2}");
        return Ok(());
    }
    if args.stages {
        let stages = stages::stages(&amqp, &redis, &args).await?;
        let (publish, consume) = raw::publish_then_consume(&amqp, &args, stages.size).await?;
        println!(
            "relay-ratio {:.2} (÷ raw publish {} msg/s); subscriber-ratio {:.2} (÷ raw consume {} \
             msg/s)",
            stages.relay / publish,
            grouped(publish),
            stages.subscriber / consume,
            grouped(consume)
        );
        return Ok(());
    }
    if args.board {
        return board::board(&amqp, &redis, &args).await;
    }
    if args.backlog_only {
        backlog::backlog(&amqp, &redis, &args).await?;
        return Ok(());
    }
    if args.scale_only {
        let results = scale::scale(&amqp, &redis, &args).await?;
        println!("{}", scale::summary(&results));
        return Ok(());
    }
    if args.latency_only {
        throughput::latency(&amqp, &redis, &args, args.rate.unwrap_or(500), 0).await?;
        return Ok(());
    }
    if args.pg_only {
        let load = Load {
            writers: args.pg_writers,
            ops_per_tx: 1,
            store: Store::Postgres,
        };
        throughput(&amqp, &redis, &args, load, "pg", 0, false).await?;
        return Ok(());
    }
    if args.servers_only {
        println!("{}", servers(&amqp, &redis, &args).await?);
        return Ok(());
    }
    let mut summary = Vec::new();

    // 1. The raw broker end to end (400 bytes).
    let raw = if args.no_raw {
        None
    } else {
        let raw = raw::end_to_end(&amqp, &args).await?;
        println!(
            "raw broker: {} persistent confirmed 400-byte msg/s end to end",
            grouped(raw)
        );
        Some(raw)
    };

    // 2. Each stage alone, then the raw yardsticks at the relay's message size.
    let stages = stages::stages(&amqp, &redis, &args).await?;
    let (raw_publish, raw_consume) = raw::publish_then_consume(&amqp, &args, stages.size).await?;
    println!(
        "raw broker at {} bytes: publish with confirms {} msg/s (nobody consuming); consume and \
         ack one by one {} msg/s (prefetch {})",
        stages.size,
        grouped(raw_publish),
        grouped(raw_consume),
        args.prefetch
    );

    // 3. End to end, latency at 70 % of it, then 10 writes per transaction.
    let sqlite = |ops_per_tx: usize| Load {
        writers: args.writers,
        ops_per_tx,
        store: Store::Sqlite,
    };
    let ops_per_tx = args.ops_per_tx as usize;
    let ops = throughput(
        &amqp,
        &redis,
        &args,
        sqlite(ops_per_tx),
        "throughput",
        0,
        false,
    )
    .await?;
    println!(
        "promiscuous: {} ops/s end to end ({ops_per_tx} write(s)/tx)",
        grouped(ops)
    );
    let rate = args.rate.unwrap_or((ops * 0.7).max(1.0) as u32);
    // Operations numbered after the throughput run's: their callbacks find no clock slot.
    let base = args.ops + 1;
    let latency = throughput::latency(&amqp, &redis, &args, rate, base).await?;
    let base = base + rate as usize * args.latency_secs as usize;
    let ops10 = throughput(
        &amqp,
        &redis,
        &args,
        sqlite(10),
        "throughput-tx10",
        base,
        false,
    )
    .await?;
    println!(
        "promiscuous: {} ops/s end to end (10 writes/tx)",
        grouped(ops10)
    );

    // 4. The publisher's write path alone.
    let [overhead1, overhead10] = probe::probe(&args).await?;

    // 5. PostgreSQL end to end.
    let pg = if args.no_pg || std::env::var_os("PROMISCUOUS_POSTGRES_URL").is_none() {
        println!("PostgreSQL: skipped (--no-pg, or PROMISCUOUS_POSTGRES_URL not set)");
        None
    } else {
        let load = Load {
            writers: args.pg_writers,
            ops_per_tx: 1,
            store: Store::Postgres,
        };
        let pg = throughput(&amqp, &redis, &args, load, "pg", base, false).await?;
        println!(
            "promiscuous on PostgreSQL: {} ops/s end to end ({} writers, 1 write/tx)",
            grouped(pg),
            args.pg_writers
        );
        Some(pg)
    };

    // 6. A subscriber behind a backlog.
    let backlog = if args.backlog > 0 {
        Some(backlog::backlog(&amqp, &redis, &args).await?)
    } else {
        None
    };

    // 7. The subscriber application in several shapes.
    let scaled = if args.scale > 0 {
        Some(scale::scale(&amqp, &redis, &args).await?)
    } else {
        None
    };

    summary.push(format!(
        "write-overhead {overhead10:.2} (published ÷ bare time per transaction, 10 writes per \
         transaction; 1 write: write-overhead-1 {overhead1:.2})"
    ));
    summary.push(format!(
        "relay-ratio {:.2} (relay alone {} msg/s ÷ raw publish with confirms {} msg/s, {} bytes)",
        stages.relay / raw_publish,
        grouped(stages.relay),
        grouped(raw_publish),
        stages.size
    ));
    summary.push(format!(
        "subscriber-ratio {:.2} (subscriber alone {} msg/s ÷ raw consume and ack {} msg/s, \
         prefetch {})",
        stages.subscriber / raw_consume,
        grouped(stages.subscriber),
        grouped(raw_consume),
        args.prefetch
    ));
    summary.push(format!(
        "pipeline-ratio {:.2} (end to end {} ops/s ÷ commits alone {} ops/s, {} writers)",
        ops / stages.commits,
        grouped(ops),
        grouped(stages.commits),
        args.writers
    ));
    if let (Some(pg), Some(raw)) = (pg, raw) {
        summary.push(format!(
            "ratio-pg {:.2} (PostgreSQL end to end {} ops/s, {} writers ÷ raw {} msg/s)",
            pg / raw,
            grouped(pg),
            args.pg_writers,
            grouped(raw)
        ));
    }
    summary.push(format!(
        "latency p50 {:.1} ms p99 {:.1} ms max {:.1} ms (commit → applied at {} ops/s, {:.0} % \
         of the end-to-end {} ops/s)",
        latency.p50,
        latency.p99,
        latency.max,
        grouped(f64::from(latency.rate)),
        f64::from(latency.rate) * 100.0 / ops,
        grouped(ops)
    ));
    if let Some(b) = &backlog {
        summary.push(format!(
            "backlog drain {} msg/s ({} messages; {:.2} of the subscriber alone, {} msg/s); \
             peak RSS {:.0} MiB at 25 %, {:.0} MiB at 100 % of the drain (stages: commits \
             {:.0}, relay {:.0}, subscriber {:.0} MiB)",
            grouped(b.drain),
            b.messages,
            b.drain / stages.subscriber,
            grouped(stages.subscriber),
            b.rss[0],
            b.rss[3],
            stages.rss[0],
            stages.rss[1],
            stages.rss[2]
        ));
    }
    if let Some(raw) = raw {
        summary.push(format!(
            "ratio {:.2} (end to end {} ops/s at {ops_per_tx} write(s)/tx ÷ raw {} msg/s)",
            ops / raw,
            grouped(ops),
            grouped(raw)
        ));
        summary.push(format!(
            "ratio-tx10 {:.2} (end to end {} ops/s at 10 writes/tx ÷ raw {} msg/s)",
            ops10 / raw,
            grouped(ops10),
            grouped(raw)
        ));
    }
    if let Some(results) = &scaled {
        summary.push(scale::summary(results));
    }
    println!("--- summary (ratios of rates measured in this run) ---");
    for line in summary {
        println!("{line}");
    }
    Ok(())
}
