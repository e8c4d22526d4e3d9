//! End-to-end replication against the raw broker, in one run, on the real RabbitMQ and Redis
//! (`scripts/services.sh up` starts them):
//!
//! ```text
//! eval "$(scripts/services.sh env)"
//! cargo bench --bench replication                       # defaults below
//! cargo bench --bench replication -- --ops 40000 --rate 2000 --latency-secs 10
//! ```
//!
//! 1. raw: lapin publishes `--raw` persistent 400-byte messages with publisher confirms (in
//!    windows of `--window`) to a durable queue, while a consumer (prefetch `--prefetch`)
//!    acknowledges each one; msg/s from the first publish to the last ack.
//! 2. promiscuous: `--ops` SeaORM writes (creates and updates of users, `--writers` concurrent
//!    writers, `--ops-per-tx` writes per transaction, 1 by default) on a SQLite publisher →
//!    outbox → relay → RabbitMQ → causal subscriber (`--workers` runners, Redis shared versions
//!    and wake-ups) → SQLite; ops/s from the first commit to the last applied operation.
//! 3. latency: writes offered at `--rate` ops/s for `--latency-secs`; commit-to-applied
//!    (commit returned → the subscriber's callback ran) p50/p99/max.
//! 4. promiscuous again, with 10 writes per transaction whatever `--ops-per-tx` says.
//!
//! The last two lines are the ratios of (2) to (1) (`ratio`) and of (4) to (1) (`ratio-tx10`).
//! Both SQLite databases are files in WAL mode with `synchronous=NORMAL`, in a temporary
//! directory.
//!
//! `--probe` measures the publisher's write path alone (no relay, no broker): a bare SeaORM
//! insert of an unpublished model against a published one, at 1 and at 10 writes per
//! transaction, in alternating rounds on one SQLite file; its last lines are `write-overhead-1`
//! and `write-overhead` (published ÷ bare time per transaction, at 1 and at 10 writes).
//!
//! `--board` measures what a dashboard's shared state costs the end-to-end run (2): in each of
//! `--board-rounds` rounds it runs (2) without it, then with it (a `RedisBoard` given to the
//! publisher's relay and to the subscriber, which then write their reports to Redis every
//! second, and a `Feed` of 1,000 on the subscriber that nobody listens to, as a dashboard's live
//! stream has it), each on fresh SQLite files, queue and exchange. It prints each round's ops/s
//! and on ÷ off, then the medians; its last line is `board-ratio` (the median of the rounds'
//! on ÷ off). `--board-on-first` runs the side with it first in each round, to see what the
//! order alone does. Off, the relay and the subscriber still beat into this process's board every
//! second (and the relay still counts its outbox backlog): that is not optional.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use promiscuous::board::{Board, Worker};
use promiscuous::redis::RedisBoard;
use promiscuous::transport::{RabbitMq, RabbitMqConfig};
use promiscuous::{
    BoxError, Callbacks, Ctx, Feed, Publisher, PublisherHandle, Redis, RedisConfig, RedisLease,
    RedisVersions, Subscriber, SubscriberHandle,
};
use sea_orm::{
    ActiveModelTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, EntityTrait,
    IntoActiveModel, Schema, Set, TransactionTrait,
};

#[derive(Parser, Debug)]
#[command(about = "promiscuous end-to-end replication vs. the raw broker")]
struct Args {
    /// Messages in the raw broker run.
    #[arg(long, default_value_t = 30_000)]
    raw: usize,
    /// Raw run: messages published per confirm window.
    #[arg(long, default_value_t = 256)]
    window: usize,
    /// Operations in the promiscuous throughput run.
    #[arg(long, default_value_t = 30_000)]
    ops: usize,
    /// Concurrent writers on the publisher.
    #[arg(long, default_value_t = 4)]
    writers: usize,
    /// Writes per writer transaction in the throughput run (creates and updates; no user is
    /// written twice in one transaction). The full run also measures 10 whatever this says.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    ops_per_tx: u32,
    /// Connections of each SQLite pool. SQLite has one writer at a time: with more
    /// connections, writers wait for its lock in SQLite's busy handler, which sleeps (1, 2, 5 …
    /// ms) and makes the latency tail; with one, they queue in the pool (docs/PERFORMANCE.md).
    #[arg(long, default_value_t = 1)]
    pool: u32,
    /// Most messages a subscriber runner applies in one transaction.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Subscriber runners.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Unacknowledged deliveries (raw consumer and subscriber).
    #[arg(long, default_value_t = 1000)]
    prefetch: u16,
    /// Offered rate of the latency run, in ops/s.
    #[arg(long, default_value_t = 2000)]
    rate: u32,
    /// Duration of the latency run.
    #[arg(long, default_value_t = 5)]
    latency_secs: u64,
    /// Skip the raw run (promiscuous only; no ratio).
    #[arg(long)]
    no_raw: bool,
    /// Measure each stage alone (commits, relay, subscriber), one after the other, and exit.
    #[arg(long)]
    stages: bool,
    /// Measure the publisher's write path alone (no relay, no subscriber) and exit: bare vs.
    /// published inserts at 1 and 10 writes per transaction (`--ops` writes per case, at most
    /// 5,000, split over `--probe-rounds` alternating rounds).
    #[arg(long)]
    probe: bool,
    /// Alternating bare/published rounds of the probe (the median round is reported).
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..))]
    probe_rounds: u32,
    /// Measure the end-to-end run (2) without and with a dashboard's shared state (a
    /// `RedisBoard` for the relay's and the subscriber's reports, a `Feed` on the subscriber
    /// that nobody listens to), in `--board-rounds` rounds, and exit.
    #[arg(long)]
    board: bool,
    /// Rounds of the board comparison (each: without, then with, unless `--board-on-first`;
    /// the medians are reported).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    board_rounds: u32,
    /// Board comparison: run the side with the shared state first in each round (a check of
    /// what the order alone does).
    #[arg(long)]
    board_on_first: bool,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

mod user {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "users")]
    #[promiscuous::publish(name, email, to = "benchpub/user")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub name: String,
        pub email: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
}

mod member {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "members")]
    #[promiscuous::subscribe(
        name,
        email,
        from = "benchpub/user",
        foreign_key = "user_id",
        callbacks
    )]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        #[sea_orm(unique)]
        pub user_id: i32,
        pub name: String,
        pub email: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Commit and apply instants of the latency run, by operation number (the `name` written).
struct Clock {
    committed: Vec<Mutex<Option<Instant>>>,
    applied: Vec<Mutex<Option<Instant>>>,
}

static CLOCK: OnceLock<Clock> = OnceLock::new();
static APPLIED: AtomicUsize = AtomicUsize::new(0);

fn op_number(name: &str) -> Option<usize> {
    name.strip_prefix("op ")?.parse().ok()
}

impl Callbacks for member::Model {
    async fn after_create(&self, _ctx: &Ctx<'_>) -> Result<(), BoxError> {
        applied(&self.name);
        Ok(())
    }
    async fn after_update(&self, _ctx: &Ctx<'_>) -> Result<(), BoxError> {
        applied(&self.name);
        Ok(())
    }
}

fn applied(name: &str) {
    APPLIED.fetch_add(1, AtomicOrdering::Relaxed);
    if let (Some(clock), Some(n)) = (CLOCK.get(), op_number(name))
        && let Some(slot) = clock.applied.get(n)
    {
        slot.lock().unwrap().get_or_insert_with(Instant::now);
    }
}

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn grouped(n: f64) -> String {
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

/// (1) The raw broker: persistent 400-byte messages, confirms, manual acks.
async fn raw_broker(url: &str, args: &Args) -> Result<f64, BoxError> {
    let queue = "promiscuous_bench_raw";
    let publisher = Connection::connect(url, ConnectionProperties::default()).await?;
    let channel = publisher.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
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

    let consumer_connection = Connection::connect(url, ConnectionProperties::default()).await?;
    let consumer_channel = consumer_connection.create_channel().await?;
    consumer_channel
        .basic_qos(args.prefetch, BasicQosOptions::default())
        .await?;
    let mut consumer = consumer_channel
        .basic_consume(
            queue.into(),
            "bench".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let total = args.raw;
    let payload = vec![b'x'; 400];
    let properties = BasicProperties::default().with_delivery_mode(2);
    let started = Instant::now();
    let consuming = tokio::spawn(async move {
        let mut received = 0;
        while received < total {
            match consumer.next().await {
                Some(Ok(delivery)) => {
                    delivery.ack(BasicAckOptions::default()).await?;
                    received += 1;
                }
                Some(Err(e)) => return Err::<(), BoxError>(e.into()),
                None => return Err("the consumer stopped".into()),
            }
        }
        Ok(())
    });
    let mut sent = 0;
    while sent < total {
        let n = args.window.min(total - sent);
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
    consuming.await??;
    let elapsed = started.elapsed();
    channel
        .queue_delete(queue.into(), QueueDeleteOptions::default())
        .await?;
    Ok(total as f64 / elapsed.as_secs_f64())
}

async fn sqlite(path: &std::path::Path, pool: u32) -> Result<DatabaseConnection, BoxError> {
    use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
    let mut options = ConnectOptions::new(format!("sqlite://{}?mode=rwc", path.display()));
    options
        .max_connections(pool)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
        });
    Ok(Database::connect(options).await?)
}

async fn create<E: EntityTrait>(db: &DatabaseConnection, entity: E) -> Result<(), BoxError> {
    let schema = Schema::new(db.get_database_backend());
    let mut table = schema.create_table_from_entity(entity);
    table.if_not_exists();
    db.execute(&table).await?;
    Ok(())
}

/// Each stage alone on a full input: commits with no relay running, the relay draining the
/// outbox, the subscriber draining its queue.
async fn stages(amqp: &str, redis: &str, args: &Args) -> Result<(), BoxError> {
    let parts = parts(amqp, redis, args, "stages", false).await?;
    APPLIED.store(0, AtomicOrdering::Relaxed);
    let per_writer = args.ops / args.writers;
    let total = per_writer * args.writers;
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
    let started = Instant::now();
    let publisher = parts.publisher.start().await?;
    while publisher.pending().await? > 0 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let relay = total as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let subscriber = parts.subscriber.start();
    let deadline = Instant::now() + Duration::from_secs(300);
    while APPLIED.load(AtomicOrdering::Relaxed) < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let apply = total as f64 / started.elapsed().as_secs_f64();
    println!(
        "stages ({total} ops, each stage alone): commits {} ops/s ({} writers, no relay); \
         relay {} msg/s (outbox → RabbitMQ, confirmed, rows removed); subscriber {} msg/s \
         (queue → SQLite, {} runners, batches of up to {})",
        grouped(commits),
        args.writers,
        grouped(relay),
        grouped(apply),
        args.workers,
        args.batch
    );
    publisher.shutdown().await?;
    subscriber.shutdown().await?;
    parts.broker.delete().await?;
    Ok(())
}

/// The run's queue and exchange, deleted at the end of the run.
struct Broker {
    rabbit: RabbitMq,
    queue: String,
}

impl Broker {
    async fn delete(&self) -> Result<(), BoxError> {
        self.rabbit.delete_queue(&self.queue).await?;
        self.rabbit.delete_exchange().await?;
        Ok(())
    }
}

/// A dashboard's shared state given to a pipeline (`--board`): the board in Redis that the
/// relay and the subscriber write their reports to, and the subscriber's feed.
struct Shared {
    board: RedisBoard,
    feed: Arc<Feed>,
}

/// The parts of a pipeline, not started.
struct Parts {
    pdb: DatabaseConnection,
    broker: Broker,
    publisher: Publisher,
    subscriber: promiscuous::SubscriberService,
    shared: Option<Shared>,
    _dir: TempDir,
}

/// The parts of run `run`; with `shared`, a `RedisBoard` on the publisher and the subscriber
/// and a `Feed` (of 1,000, nobody listening) on the subscriber.
async fn parts(
    amqp: &str,
    redis: &str,
    args: &Args,
    run: &str,
    shared: bool,
) -> Result<Parts, BoxError> {
    let dir = std::env::temp_dir().join(format!("promiscuous-bench-{}-{run}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let pdb = sqlite(&dir.join("publisher.db"), args.pool).await?;
    let sdb = sqlite(&dir.join("subscriber.db"), args.pool).await?;
    create(&pdb, user::Entity).await?;
    create(&sdb, member::Entity).await?;
    promiscuous::pipeline::schema::setup_publisher(&pdb).await?;
    promiscuous::guard::install(&pdb).await?;
    // Named for this run: a queue left by an earlier run must not receive this run's messages.
    let exchange = format!("promiscuous_bench_{run}_{}", std::process::id());
    let config = RabbitMqConfig {
        exchange: exchange.clone(),
        connection_name: format!("promiscuous bench {run}"),
        ..RabbitMqConfig::default()
    };
    let rabbit = RabbitMq::new(amqp, config);
    let redis = Redis::new(redis, RedisConfig::default())?;
    let app = format!("promiscuous_bench_{run}_{}", std::process::id());
    let rabbit_for_cleanup = rabbit.clone();
    let shared = shared.then(|| Shared {
        board: RedisBoard::new(redis.clone()),
        feed: Feed::new(1000),
    });
    let mut subscriber = Subscriber::new(app.clone(), sdb, rabbit.clone())
        .subscribe::<member::Model>()
        .workers(args.workers)
        .batch(args.batch)
        .prefetch(args.prefetch)
        .versions(Arc::new(RedisVersions::new(redis.clone(), &app)));
    let mut publisher = Publisher::new(pdb.clone(), rabbit).lease(Arc::new(RedisLease::new(
        redis,
        &format!("{app}:outbox"),
        Duration::from_secs(10),
    )));
    if let Some(shared) = &shared {
        subscriber = subscriber
            .board(Arc::new(shared.board.clone()))
            .feed(shared.feed.clone());
        publisher = publisher.board(Arc::new(shared.board.clone()));
    }
    let subscriber = subscriber.build().await?;
    Ok(Parts {
        pdb,
        broker: Broker {
            rabbit: rabbit_for_cleanup,
            queue: app,
        },
        publisher,
        subscriber,
        shared,
        _dir: TempDir(dir),
    })
}

/// A publisher and a subscriber on fresh SQLite files, RabbitMQ and Redis.
struct Pipeline {
    pdb: DatabaseConnection,
    broker: Broker,
    publisher: PublisherHandle,
    subscriber: SubscriberHandle,
    shared: Option<Shared>,
    _dir: TempDir,
}

impl Pipeline {
    /// Stops the relay (after a last flush) and the subscriber, and deletes the queue and the
    /// exchange; a step that takes more than a minute is an error naming it (a bench that hangs
    /// says where).
    async fn stop(self) -> Result<(), BoxError> {
        let limit = Duration::from_secs(60);
        let hung = |what: &str| format!("{what} took more than {limit:?}");
        tokio::time::timeout(limit, self.publisher.shutdown())
            .await
            .map_err(|_| hung("the publisher's shutdown"))??;
        tokio::time::timeout(limit, self.subscriber.shutdown())
            .await
            .map_err(|_| hung("the subscriber's shutdown"))??;
        tokio::time::timeout(limit, self.broker.delete())
            .await
            .map_err(|_| hung("deleting the queue and the exchange"))??;
        Ok(())
    }
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn pipeline(
    amqp: &str,
    redis: &str,
    args: &Args,
    run: &str,
    shared: bool,
) -> Result<Pipeline, BoxError> {
    let parts = parts(amqp, redis, args, run, shared).await?;
    let subscriber = parts.subscriber.start();
    let publisher = parts.publisher.start().await?;
    Ok(Pipeline {
        pdb: parts.pdb,
        broker: parts.broker,
        publisher,
        subscriber,
        shared: parts.shared,
        _dir: parts._dir,
    })
}

/// Operation `n` of a writer owning users, in its own transaction: a create every 4th
/// operation, else an update of one of its users.
async fn write(
    db: &DatabaseConnection,
    n: usize,
    mine: &mut Vec<user::Model>,
) -> Result<(), BoxError> {
    write_tx(db, n, 1, mine).await
}

/// Operations `first..first + count` of a writer owning users, in one transaction: a create
/// every 4th operation, else an update of one of the users it had before the transaction,
/// each of them at most once (a create instead when none is left), so that every operation is
/// a change of its own instance.
async fn write_tx(
    db: &DatabaseConnection,
    first: usize,
    count: usize,
    mine: &mut Vec<user::Model>,
) -> Result<(), BoxError> {
    let txn = db.begin().await?;
    let existing = mine.len();
    let mut updates = 0;
    let mut created = Vec::new();
    for n in first..first + count {
        let name = format!("op {n}");
        if updates >= existing || n.is_multiple_of(4) {
            created.push(
                user::ActiveModel {
                    name: Set(name),
                    email: Set(format!("user{n}@bench.example")),
                    ..Default::default()
                }
                .insert(&txn)
                .await?,
            );
        } else {
            let i = (first + updates) % existing;
            updates += 1;
            let mut am = mine[i].clone().into_active_model();
            am.name = Set(name);
            mine[i] = am.update(&txn).await?;
        }
    }
    txn.commit().await?;
    mine.extend(created);
    Ok(())
}

/// Waits until `target` operations were applied (callbacks ran).
async fn applied_all(p: &Pipeline, target: usize, limit: Duration) -> Result<(), BoxError> {
    let deadline = Instant::now() + limit;
    while APPLIED.load(AtomicOrdering::Relaxed) < target {
        if Instant::now() > deadline {
            return Err(format!(
                "only {} of {target} operations applied after {limit:?}; stats: {:?}",
                APPLIED.load(AtomicOrdering::Relaxed),
                p.subscriber.service().stats().borrow().clone()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

/// (2) Throughput: `--ops` writes as fast as `--writers` writers go, `ops_per_tx` writes per
/// transaction; operations are numbered from `base` (beyond the latency run's clock, none of
/// them is timed). With `shared`, a dashboard's shared state is on (see [`parts`]); after the
/// measure, what it holds is printed.
async fn throughput(
    amqp: &str,
    redis: &str,
    args: &Args,
    ops_per_tx: usize,
    run: &str,
    base: usize,
    shared: bool,
) -> Result<f64, BoxError> {
    let p = pipeline(amqp, redis, args, run, shared).await?;
    APPLIED.store(0, AtomicOrdering::Relaxed);
    let started = Instant::now();
    let per_writer = (args.ops / args.writers / ops_per_tx).max(1) * ops_per_tx;
    let total = per_writer * args.writers;
    let mut tasks = Vec::new();
    for w in 0..args.writers {
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
    let stats = p.subscriber.service().stats().borrow().clone();
    println!(
        "promiscuous: {total} ops ({} transactions of {ops_per_tx}) committed in {:.2}s \
         ({} ops/s), applied in {:.2}s; {} messages, {} waited, {} recovered, {} dead-lettered",
        total / ops_per_tx,
        committed.as_secs_f64(),
        grouped(total as f64 / committed.as_secs_f64()),
        elapsed.as_secs_f64(),
        stats.messages,
        stats.waited,
        stats.recovered,
        stats.dead_lettered
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

/// The median and the range of `values`.
fn median(values: &[f64]) -> (f64, f64, f64) {
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

/// A dashboard's shared state off vs. on: `--board-rounds` rounds of the end-to-end run (2),
/// each without it, then with it (the other way round with `--board-on-first`), on fresh
/// files, queue and exchange; each round's ops/s and on ÷ off, then the medians.
async fn board(amqp: &str, redis: &str, args: &Args) -> Result<(), BoxError> {
    let ops_per_tx = args.ops_per_tx as usize;
    let rounds = args.board_rounds as usize;
    let (mut off, mut on, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let order = if args.board_on_first {
            [true, false]
        } else {
            [false, true]
        };
        // ops/s [off, on]
        let mut ab = [0.0; 2];
        for shared in order {
            let run = format!("board-{}-{round}", if shared { "on" } else { "off" });
            ab[usize::from(shared)] =
                throughput(amqp, redis, args, ops_per_tx, &run, 0, shared).await?;
        }
        let [a, b] = ab;
        println!(
            "board round {round}/{rounds} ({} first): off {} ops/s, on {} ops/s, on/off {:.3}",
            if args.board_on_first { "on" } else { "off" },
            grouped(a),
            grouped(b),
            b / a
        );
        off.push(a);
        on.push(b);
        ratios.push(b / a);
    }
    let (off_median, off_min, off_max) = median(&off);
    let (on_median, on_min, on_max) = median(&on);
    let (ratio, ratio_min, ratio_max) = median(&ratios);
    println!(
        "board off (no shared board, no feed): median {} ops/s ({} – {}) over {rounds} round(s)",
        grouped(off_median),
        grouped(off_min),
        grouped(off_max)
    );
    println!(
        "board on (RedisBoard on relay and subscriber, feed on subscriber): median {} ops/s \
         ({} – {})",
        grouped(on_median),
        grouped(on_min),
        grouped(on_max)
    );
    println!(
        "board-ratio {ratio:.3} (median of the rounds' on/off, {ratio_min:.3} – {ratio_max:.3}; \
         ratio of the medians {:.3})",
        on_median / off_median
    );
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// (3) Latency at a fixed offered rate.
async fn latency(amqp: &str, redis: &str, args: &Args) -> Result<(), BoxError> {
    let total = args.rate as usize * args.latency_secs as usize;
    // Numbered after the throughput run's operations: their callbacks find no slot.
    let base = args.ops + 1;
    let clock = CLOCK.get_or_init(|| Clock {
        committed: (0..base + total).map(|_| Mutex::new(None)).collect(),
        applied: (0..base + total).map(|_| Mutex::new(None)).collect(),
    });
    let p = pipeline(amqp, redis, args, "latency", false).await?;
    APPLIED.store(0, AtomicOrdering::Relaxed);
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.rate));
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
    println!(
        "latency at {} ops/s offered ({total} ops in {:.2}s): commit-to-applied p50 {:.1} ms, \
         p99 {:.1} ms, max {:.1} ms ({} measured)",
        grouped(f64::from(args.rate)),
        offered.as_secs_f64(),
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies[latencies.len() - 1].as_secs_f64() * 1e3,
        latencies.len()
    );
    p.stop().await?;
    Ok(())
}

/// The two sides of the probe.
#[derive(Clone, Copy)]
enum Side {
    /// A plain SeaORM insert of an unpublished model (`member`).
    Bare,
    /// An insert of a published model (`user`): hooks, write guard, outbox.
    Published,
}

/// `transactions` transactions of `per_tx` inserts on one side; returns the time per
/// transaction. `next` numbers the rows (members' `user_id` is unique).
async fn probe_round(
    db: &DatabaseConnection,
    side: Side,
    transactions: usize,
    per_tx: usize,
    next: &mut usize,
) -> Result<Duration, BoxError> {
    let started = Instant::now();
    for _ in 0..transactions {
        let txn = db.begin().await?;
        for _ in 0..per_tx {
            let i = *next;
            *next += 1;
            match side {
                Side::Bare => {
                    member::ActiveModel {
                        user_id: Set(i as i32),
                        name: Set(format!("m{i}")),
                        email: Set(format!("member{i}@bench.example")),
                        ..Default::default()
                    }
                    .insert(&txn)
                    .await?;
                }
                Side::Published => {
                    user::ActiveModel {
                        name: Set(format!("u{i}")),
                        email: Set(format!("user{i}@bench.example")),
                        ..Default::default()
                    }
                    .insert(&txn)
                    .await?;
                }
            }
        }
        txn.commit().await?;
    }
    Ok(started.elapsed() / transactions as u32)
}

/// The median (and the range) of one case's rounds, in µs per transaction.
fn spread(times: &mut [Duration]) -> (f64, f64, f64) {
    times.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let m = times.len() / 2;
    let median = if times.len().is_multiple_of(2) {
        (us(times[m - 1]) + us(times[m])) / 2.0
    } else {
        us(times[m])
    };
    (median, us(times[0]), us(times[times.len() - 1]))
}

/// The publisher's write path alone, no relay running: bare SeaORM inserts of an unpublished
/// table (`member`) against published inserts (`user`, through the hooks), at 1 and at 10
/// writes per transaction, on one SQLite file. The four cases run in alternating rounds (the
/// side that goes first changes every round), so that machine noise hits them alike; each
/// case's median round is reported.
async fn probe(args: &Args) -> Result<(), BoxError> {
    let dir =
        TempDir(std::env::temp_dir().join(format!("promiscuous-probe-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0)?;
    let db = sqlite(&dir.0.join("probe.db"), args.pool).await?;
    create(&db, user::Entity).await?;
    create(&db, member::Entity).await?;
    promiscuous::pipeline::schema::setup_publisher(&db).await?;
    promiscuous::guard::install(&db).await?;
    let rounds = args.probe_rounds as usize;
    // Writes per case and round, a multiple of 10.
    let writes = (args.ops.min(5000) / rounds / 10).max(1) * 10;
    const PER_TX: [usize; 2] = [1, 10];
    let mut next = [0usize; 2];
    // Warm-up (not measured): statements prepared, pages cached, on both sides.
    for per_tx in PER_TX {
        for (k, side) in [Side::Bare, Side::Published].into_iter().enumerate() {
            probe_round(&db, side, 10, per_tx, &mut next[k]).await?;
        }
    }
    // times[case][side]
    let mut times: [[Vec<Duration>; 2]; 2] = Default::default();
    for round in 0..rounds {
        let order = if round.is_multiple_of(2) {
            [(0, Side::Bare), (1, Side::Published)]
        } else {
            [(1, Side::Published), (0, Side::Bare)]
        };
        for (case, per_tx) in PER_TX.into_iter().enumerate() {
            for (k, side) in order {
                let t = probe_round(&db, side, writes / per_tx, per_tx, &mut next[k]).await?;
                times[case][k].push(t);
            }
        }
    }
    let started = Instant::now();
    for _ in 0..writes {
        db.execute_unprepared("SELECT 1").await?;
    }
    let statement = started.elapsed() / writes as u32;
    println!(
        "probe: SQLite file (WAL, synchronous=NORMAL, pool {}), no relay; {rounds} alternating \
         rounds of {writes} writes per case, median round (min – max); one statement {:.0} µs",
        args.pool,
        statement.as_secs_f64() * 1e6
    );
    let mut overhead = [0.0; 2];
    for (case, per_tx) in PER_TX.into_iter().enumerate() {
        let [bare, published] = &mut times[case];
        let (bare, bare_min, bare_max) = spread(bare);
        let (published, published_min, published_max) = spread(published);
        overhead[case] = published / bare;
        println!(
            "probe {per_tx:>2} write(s)/tx: bare {bare:.0} µs/tx ({bare_min:.0} – {bare_max:.0}, \
             {} writes/s); published {published:.0} µs/tx ({published_min:.0} – \
             {published_max:.0}, {} writes/s)",
            grouped(per_tx as f64 * 1e6 / bare),
            grouped(per_tx as f64 * 1e6 / published)
        );
    }
    println!("write-overhead-1 {:.2}", overhead[0]);
    println!("write-overhead {:.2}", overhead[1]);
    Ok(())
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
        "replication bench: {} raw messages, {} ops ({} writers, {} write(s)/tx, {} workers, \
         prefetch {}), latency at {} ops/s for {}s",
        args.raw,
        args.ops,
        args.writers,
        args.ops_per_tx,
        args.workers,
        args.prefetch,
        args.rate,
        args.latency_secs
    );
    if args.probe {
        return probe(&args).await;
    }
    if args.stages {
        return stages(&amqp, &redis, &args).await;
    }
    if args.board {
        return board(&amqp, &redis, &args).await;
    }
    let raw = if args.no_raw {
        None
    } else {
        let raw = raw_broker(&amqp, &args).await?;
        println!(
            "raw broker: {} persistent confirmed 400-byte msg/s end to end",
            grouped(raw)
        );
        Some(raw)
    };
    let ops_per_tx = args.ops_per_tx as usize;
    let ops = throughput(&amqp, &redis, &args, ops_per_tx, "throughput", 0, false).await?;
    println!(
        "promiscuous: {} ops/s end to end ({ops_per_tx} write(s)/tx)",
        grouped(ops)
    );
    latency(&amqp, &redis, &args).await?;
    // Numbered after the latency run's operations: no slot of its clock.
    let base = args.ops + 1 + args.rate as usize * args.latency_secs as usize;
    let ops10 = throughput(&amqp, &redis, &args, 10, "throughput-tx10", base, false).await?;
    println!(
        "promiscuous: {} ops/s end to end (10 writes/tx)",
        grouped(ops10)
    );
    if let Some(raw) = raw {
        println!(
            "ratio {:.2} (promiscuous {} ops/s at {ops_per_tx} write(s)/tx / raw {} msg/s)",
            ops / raw,
            grouped(ops),
            grouped(raw)
        );
        println!(
            "ratio-tx10 {:.2} (promiscuous {} ops/s at 10 writes/tx / raw {} msg/s)",
            ops10 / raw,
            grouped(ops10),
            grouped(raw)
        );
    }
    Ok(())
}
