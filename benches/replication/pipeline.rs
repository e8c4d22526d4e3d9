//! A pipeline of the bench: a SQLite or PostgreSQL publisher → outbox → relay → RabbitMQ →
//! causal subscriber (Redis versions) → its own database, each run on fresh databases, queue
//! and exchange; and the writers' workload.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use promiscuous::redis::RedisBoard;
use promiscuous::transport::{
    Consumer, Outgoing, QueueSpec, RabbitMq, RabbitMqConfig, Transport, TransportError,
};
use promiscuous::{
    BoxError, Feed, Publisher, PublisherHandle, Redis, RedisConfig, RedisLease, RedisVersions,
    Subscriber, SubscriberHandle,
};
use sea_orm::{
    ActiveModelTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, EntityTrait,
    IntoActiveModel, Schema, Set, TransactionTrait,
};

use crate::Args;
use crate::models::{APPLIED, member, user};

/// A SQLite file in WAL mode with `synchronous=NORMAL`, `pool` connections.
pub(crate) async fn sqlite(
    path: &std::path::Path,
    pool: u32,
) -> Result<DatabaseConnection, BoxError> {
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

pub(crate) async fn create<E: EntityTrait>(
    db: &DatabaseConnection,
    entity: E,
) -> Result<(), BoxError> {
    let schema = Schema::new(db.get_database_backend());
    let mut table = schema.create_table_from_entity(entity);
    table.if_not_exists();
    db.execute(&table).await?;
    Ok(())
}

/// The databases of a run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Store {
    /// Two SQLite files (`--pool` connections each).
    Sqlite,
    /// Two fresh databases on the server at `PROMISCUOUS_POSTGRES_URL`, dropped at the end.
    Postgres,
    /// Two fresh databases on the server at `PROMISCUOUS_MARIADB_URL`, dropped at the end.
    MariaDb,
}

impl Store {
    /// The variable holding the server's URL (`None` for SQLite).
    pub(crate) fn url_variable(self) -> Option<&'static str> {
        match self {
            Store::Sqlite => None,
            Store::Postgres => Some("PROMISCUOUS_POSTGRES_URL"),
            Store::MariaDb => Some("PROMISCUOUS_MARIADB_URL"),
        }
    }

    /// `DROP DATABASE` of `name`, its connections included where the server can.
    fn drop_database(self, name: &str) -> String {
        match self {
            Store::Postgres => format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            _ => format!("DROP DATABASE IF EXISTS {name}"),
        }
    }
}

/// Where a run's databases are, removed when it ends: SQLite files in a temporary directory
/// (removed on drop), or a server's databases (dropped by [`Place::remove`]).
pub(crate) enum Place {
    Files(#[allow(dead_code)] TempDir),
    Server {
        store: Store,
        admin: String,
        names: [String; 2],
    },
}

impl Place {
    async fn remove(self) -> Result<(), BoxError> {
        if let Place::Server {
            store,
            admin,
            names,
        } = self
        {
            let admin = Database::connect(admin.as_str()).await?;
            for name in names {
                admin
                    .execute_unprepared(&store.drop_database(&name))
                    .await?;
            }
            admin.close().await?;
        }
        Ok(())
    }
}

/// The publisher's and the subscriber's databases of run `run` (empty), and where they are.
async fn databases(
    args: &Args,
    run: &str,
    store: Store,
) -> Result<(DatabaseConnection, DatabaseConnection, Place), BoxError> {
    let tag = format!("{}_{}", run.replace('-', "_"), std::process::id());
    match store {
        Store::Sqlite => {
            let dir = std::env::temp_dir().join(format!("promiscuous-bench-{tag}"));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)?;
            let pdb = sqlite(&dir.join("publisher.db"), args.pool).await?;
            let sdb = sqlite(&dir.join("subscriber.db"), args.pool).await?;
            Ok((pdb, sdb, Place::Files(TempDir(dir))))
        }
        Store::Postgres | Store::MariaDb => {
            let variable = store.url_variable().expect("a server");
            let url = std::env::var(variable).map_err(|_| format!("{variable} is not set"))?;
            let (base, _) = url
                .rsplit_once('/')
                .ok_or_else(|| format!("{variable}: a URL with a database"))?;
            let admin = Database::connect(url.as_str()).await?;
            let names = [format!("bench_pub_{tag}"), format!("bench_sub_{tag}")];
            for name in &names {
                admin.execute_unprepared(&store.drop_database(name)).await?;
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await?;
            }
            admin.close().await?;
            // The writers, the relay and the write guard's own connection on the publisher;
            // the runners (one transaction each) on the subscriber.
            // On loopback, without TLS unless the URL asks for it (sqlx's default, `prefer`,
            // negotiates TLS: it took a third of the bench's CPU time).
            let connect = |name: &str, pool: u32| {
                let tls = if url.contains("sslmode=") || store == Store::MariaDb {
                    ""
                } else {
                    "?sslmode=disable"
                };
                let mut options = ConnectOptions::new(format!("{base}/{name}{tls}"));
                options.max_connections(pool).sqlx_logging(false);
                Database::connect(options)
            };
            let pdb = connect(&names[0], args.pg_writers as u32 + 4).await?;
            let sdb = connect(&names[1], args.workers as u32 + 4).await?;
            Ok((
                pdb,
                sdb,
                Place::Server {
                    store,
                    admin: url,
                    names,
                },
            ))
        }
    }
}

/// What the relay handed to the broker (confirmed): messages and payload bytes.
#[derive(Default)]
pub(crate) struct Sent {
    pub(crate) messages: AtomicU64,
    pub(crate) bytes: AtomicU64,
}

impl Sent {
    /// The mean payload size so far, in bytes.
    pub(crate) fn mean_size(&self) -> usize {
        let messages = self.messages.load(AtomicOrdering::Relaxed).max(1);
        (self.bytes.load(AtomicOrdering::Relaxed) / messages) as usize
    }
}

/// RabbitMQ, counting what is published through it.
struct Counting {
    inner: RabbitMq,
    sent: Arc<Sent>,
}

#[async_trait]
impl Transport for Counting {
    async fn publish(&self, messages: &[Outgoing]) -> Result<(), TransportError> {
        self.inner.publish(messages).await?;
        let bytes: usize = messages.iter().map(|m| m.payload.len()).sum();
        self.sent
            .messages
            .fetch_add(messages.len() as u64, AtomicOrdering::Relaxed);
        self.sent
            .bytes
            .fetch_add(bytes as u64, AtomicOrdering::Relaxed);
        Ok(())
    }
    async fn consume(&self, spec: &QueueSpec) -> Result<Box<dyn Consumer>, TransportError> {
        self.inner.consume(spec).await
    }
    async fn declare(&self, spec: &QueueSpec) -> Result<(), TransportError> {
        self.inner.declare(spec).await
    }
    fn healthy(&self) -> bool {
        self.inner.healthy()
    }
    async fn queue_depth(&self, queue: &str) -> Result<Option<u64>, TransportError> {
        self.inner.queue_depth(queue).await
    }
}

/// The run's queue and exchange, deleted at the end of the run.
pub(crate) struct Broker {
    pub(crate) rabbit: RabbitMq,
    pub(crate) queue: String,
}

impl Broker {
    pub(crate) async fn delete(&self) -> Result<(), BoxError> {
        self.rabbit.delete_queue(&self.queue).await?;
        self.rabbit.delete_exchange().await?;
        Ok(())
    }
}

/// A dashboard's shared state given to a pipeline (`--board`): the board in Redis that the
/// relay and the subscriber write their reports to, and the subscriber's feed.
pub(crate) struct Shared {
    pub(crate) board: RedisBoard,
    pub(crate) feed: Arc<Feed>,
}

/// The parts of a pipeline, not started.
pub(crate) struct Parts {
    pub(crate) pdb: DatabaseConnection,
    pub(crate) broker: Broker,
    pub(crate) publisher: Publisher,
    pub(crate) subscriber: promiscuous::SubscriberService,
    pub(crate) shared: Option<Shared>,
    pub(crate) sent: Arc<Sent>,
    pub(crate) place: Place,
}

/// The parts of run `run` on `store`; with `shared`, a `RedisBoard` on the publisher and the
/// subscriber and a `Feed` (of 1,000, nobody listening) on the subscriber.
pub(crate) async fn parts(
    amqp: &str,
    redis: &str,
    args: &Args,
    run: &str,
    store: Store,
    shared: bool,
) -> Result<Parts, BoxError> {
    let (pdb, sdb, place) = databases(args, run, store).await?;
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
    let sent = Arc::new(Sent::default());
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
    let counting = Counting {
        inner: rabbit.clone(),
        sent: sent.clone(),
    };
    let mut publisher = Publisher::new(pdb.clone(), counting).lease(Arc::new(RedisLease::new(
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
        broker: Broker { rabbit, queue: app },
        publisher,
        subscriber,
        shared,
        sent,
        place,
    })
}

/// A publisher and a subscriber on fresh databases, RabbitMQ and Redis.
pub(crate) struct Pipeline {
    pub(crate) pdb: DatabaseConnection,
    pub(crate) broker: Broker,
    pub(crate) publisher: PublisherHandle,
    pub(crate) subscriber: SubscriberHandle,
    pub(crate) shared: Option<Shared>,
    pub(crate) place: Place,
}

impl Pipeline {
    /// Stops the relay (after a last flush) and the subscriber, deletes the queue and the
    /// exchange, and removes the databases; a step that takes more than a minute is an error
    /// naming it (a bench that hangs says where).
    pub(crate) async fn stop(self) -> Result<(), BoxError> {
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
        drop(self.pdb);
        tokio::time::timeout(limit, self.place.remove())
            .await
            .map_err(|_| hung("removing the databases"))??;
        Ok(())
    }
}

pub(crate) struct TempDir(pub(crate) PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Run `run`'s pipeline on `store`, started (see [`parts`]).
pub(crate) async fn pipeline(
    amqp: &str,
    redis: &str,
    args: &Args,
    run: &str,
    store: Store,
    shared: bool,
) -> Result<Pipeline, BoxError> {
    let parts = parts(amqp, redis, args, run, store, shared).await?;
    let subscriber = parts.subscriber.start();
    let publisher = parts.publisher.start().await?;
    Ok(Pipeline {
        pdb: parts.pdb,
        broker: parts.broker,
        publisher,
        subscriber,
        shared: parts.shared,
        place: parts.place,
    })
}

/// Operation `n` of a writer owning users, in its own transaction: a create every 4th
/// operation, else an update of one of its users.
pub(crate) async fn write(
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
pub(crate) async fn write_tx(
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
pub(crate) async fn applied_all(
    p: &Pipeline,
    target: usize,
    limit: Duration,
) -> Result<(), BoxError> {
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
