//! Running services: a [`Publisher`] (outbox tables + relay task) and a [`Subscriber`]
//! (subscriber tables + queue + runtime task), over any transport.

use std::sync::Arc;
use std::time::Duration;

use promiscuous_core::board::Board;
use promiscuous_core::publisher::{Lease, Relay, RelayConfig, wake};
use promiscuous_core::subscriber::{
    Feed, OrderingMode, Stats, SubscriberConfig, SubscriberRuntime, VersionStore,
};
use promiscuous_core::transport::Transport;
use promiscuous_core::{Error, ErrorNotifier};
use sea_orm::DatabaseConnection;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::publisher::SeaOrmOutbox;
use crate::subscriber::{Observed, SeaOrmApplier, Subscribed};

fn tables_error(side: &'static str) -> impl FnOnce(sea_orm::DbErr) -> Error {
    move |e| Error::Tables {
        side,
        source: Arc::new(e),
    }
}

/// Configures the publishing side of a service. The settings do not depend on the order of the
/// calls: [`error_notifier`](Self::error_notifier) and [`lease`](Self::lease) win over what a
/// [`relay_config`](Self::relay_config) carries, before or after it.
pub struct Publisher {
    db: DatabaseConnection,
    transport: Arc<dyn Transport>,
    config: RelayConfig,
    error_notifier: Option<ErrorNotifier>,
    lease: Option<Arc<dyn Lease>>,
    board: Option<Arc<dyn Board>>,
}

impl Publisher {
    pub fn new(db: DatabaseConnection, transport: impl Transport) -> Self {
        Self::with_transport(db, Arc::new(transport))
    }

    pub fn with_transport(db: DatabaseConnection, transport: Arc<dyn Transport>) -> Self {
        Self {
            db,
            transport,
            config: RelayConfig::default(),
            error_notifier: None,
            lease: None,
            board: None,
        }
    }

    /// Receives the relay's errors (logged through `tracing` by default).
    pub fn error_notifier(mut self, notifier: ErrorNotifier) -> Self {
        self.error_notifier = Some(notifier);
        self
    }

    /// Shares the outbox with other relay processes: only the lease holder publishes (see
    /// `promiscuous_core::redis::RedisLease`).
    pub fn lease(mut self, lease: Arc<dyn Lease>) -> Self {
        self.lease = Some(lease);
        self
    }

    /// Shares the relay's report (rows relayed, backlog, lease, last error) every second with
    /// dashboards in other processes: `RedisBoard` (see `promiscuous_core::board`). Without
    /// one, only a dashboard in this process sees it.
    pub fn board(mut self, board: Arc<dyn Board>) -> Self {
        self.board = Some(board);
        self
    }

    /// Tunes the relay (batch size, poll interval, retry delay). Its notifier and lease are
    /// used unless [`error_notifier`](Self::error_notifier) or [`lease`](Self::lease) is called,
    /// in any order. A zero batch size, poll interval or retry delay is refused by
    /// [`start`](Self::start).
    pub fn relay_config(mut self, config: RelayConfig) -> Self {
        self.config = config;
        self
    }

    /// The relay's configuration, with the explicit notifier and lease applied.
    fn relay_settings(&self) -> RelayConfig {
        let mut config = self.config.clone();
        if let Some(notifier) = &self.error_notifier {
            config.error_notifier = notifier.clone();
        }
        if let Some(lease) = &self.lease {
            config.lease = Some(lease.clone());
        }
        if let Some(board) = &self.board {
            config.board = Some(board.clone());
        }
        if config.app == RelayConfig::default().app {
            config.app = crate::publisher::definitions::published_apps();
        }
        config
    }

    /// Creates promiscuous' tables, guards the published tables that exist (a write bypassing
    /// the hooks is refused: see [`guard`](crate::publisher::guard)) and starts the relay in the
    /// background; writes to this database in this process wake it (see
    /// [`wake`](crate::publisher::wake)).
    pub async fn start(self) -> Result<PublisherHandle, Error> {
        let config = self.relay_settings();
        config.check()?;
        crate::schema::setup_publisher(&self.db)
            .await
            .map_err(tables_error("publisher"))?;
        crate::publisher::guard::install(&self.db).await?;
        let database = crate::publisher::wake::database_id(&self.db)
            .await
            .map_err(|e| Error::Database {
                doing: "reading the outbox database's identity",
                source: Arc::new(e),
            })?;
        let outbox = SeaOrmOutbox::new(self.db);
        let relay = Arc::new(Relay::with_config(
            Arc::new(outbox.clone()),
            self.transport,
            config,
        ));
        let registration = database.map(|d| wake::register(d, relay.wake().clone()));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn({
            let relay = relay.clone();
            async move {
                relay
                    .run(async {
                        let _ = stopped.await;
                    })
                    .await
            }
        });
        Ok(PublisherHandle {
            relay,
            outbox,
            stop: Some(stop),
            task: Some(task),
            _registration: registration,
        })
    }
}

/// A running publisher: the relay moves committed writes to the transport.
pub struct PublisherHandle {
    relay: Arc<Relay>,
    outbox: SeaOrmOutbox,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    /// Writes to the outbox database wake the relay while the handle lives.
    _registration: Option<wake::Registration>,
}

impl PublisherHandle {
    /// Publishes everything committed so far, now; returns how many rows it moved.
    pub async fn flush(&self) -> Result<usize, Error> {
        self.relay.drain().await
    }

    /// Whether the relay's last batch reached the broker.
    pub fn healthy(&self) -> bool {
        self.relay.healthy()
    }

    /// Outbox rows not yet confirmed by the broker.
    pub async fn pending(&self) -> Result<u64, Error> {
        self.outbox.pending().await.map_err(|e| Error::Database {
            doing: "counting outbox rows",
            source: Arc::new(e),
        })
    }

    /// Stops the relay after a last flush.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        let flushed = self.flush().await;
        self.stop_task().await?;
        flushed.map(drop)
    }

    async fn stop_task(&mut self) -> Result<(), Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(|e| Error::RelayTask {
                source: Arc::new(e),
            }),
            None => Ok(()),
        }
    }
}

impl Drop for PublisherHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Configures the subscribing side of a service.
///
/// One step, like [`Publisher`]: `Subscriber::new(..).subscribe::<M>().start().await?` gives a
/// [`SubscriberHandle`] consuming in the background. Two steps, to declare the queue now and
/// consume later (messages published in between wait in the queue): [`Subscriber::build`] gives
/// a [`SubscriberService`], then [`SubscriberService::start`] (or
/// [`SubscriberService::run_until_idle`] in tests).
///
/// Counts (`prefetch`, `workers`, `batch`, the attempts of `retries`) must be at least 1: a zero
/// is refused by `build`/`start` with an error naming the setting
/// ([`SubscriberConfig::check`]).
pub struct Subscriber {
    transport: Arc<dyn Transport>,
    applier: SeaOrmApplier,
    config: SubscriberConfig,
}

impl Subscriber {
    /// `app` names the subscriber application, and so its queue.
    pub fn new(app: impl Into<String>, db: DatabaseConnection, transport: impl Transport) -> Self {
        Self::with_transport(app, db, Arc::new(transport))
    }

    pub fn with_transport(
        app: impl Into<String>,
        db: DatabaseConnection,
        transport: Arc<dyn Transport>,
    ) -> Self {
        Self {
            transport,
            applier: SeaOrmApplier::new(db),
            config: SubscriberConfig::new(app),
        }
    }

    /// Keeps model `M` in sync from each of `M::SUBSCRIPTIONS`.
    pub fn subscribe<M: Subscribed>(mut self) -> Self {
        self.applier = self.applier.subscribe::<M>();
        self
    }

    /// Runs the callbacks of observer `O` (`#[observer]`) for each operation it follows.
    pub fn observe<O: Observed>(mut self) -> Self {
        self.applier = self.applier.observe::<O>();
        self
    }

    /// Most messages a runner applies in one transaction (64 by default): the independent
    /// messages ready at once. `1` applies each message in its own transaction; `0` is refused.
    pub fn batch(mut self, batch: usize) -> Self {
        self.config.batch = batch;
        self
    }

    /// Unacknowledged deliveries in flight (1,000 by default). Messages waiting for a
    /// dependency count, so keep it well above how far out of order messages may arrive. `0` is
    /// refused.
    pub fn prefetch(mut self, prefetch: u16) -> Self {
        self.config.prefetch = prefetch;
        self
    }

    /// Partition queues (RabbitMQ; 1 by default): P > 1 spreads the app's queue over P queues
    /// `app.0` … `app.{P-1}` chosen by instance key, each with a single active consumer, so
    /// that worker processes share the load (see
    /// [`SubscriberConfig::partitions`]).
    /// Every worker of the app must use the same P; `0` and more than 256 are refused.
    pub fn partitions(mut self, partitions: u16) -> Self {
        self.config.partitions = partitions;
        self
    }

    /// Runners applying independent messages concurrently (4 by default; `0` is refused).
    pub fn workers(mut self, workers: usize) -> Self {
        self.config.workers = workers;
        self
    }

    /// How messages are ordered: [`OrderingMode::Causal`] (the default) or [`OrderingMode::Bareback`]
    /// (no waiting; unsafe, see its documentation).
    pub fn ordering(mut self, ordering: OrderingMode) -> Self {
        self.config.ordering = ordering;
        self
    }

    /// Recovery: how long a message waits for a dependency before it is applied without it and
    /// an [`Error::Recovered`] is reported (10 s by default).
    pub fn dependency_timeout(mut self, timeout: Duration) -> Self {
        self.config.dependency_timeout = timeout;
        self
    }

    /// How often the versions that waiting messages need are looked up again, as a safety net
    /// for lost wake-ups (1 s by default).
    pub fn recheck_interval(mut self, interval: Duration) -> Self {
        self.config.recheck_interval = interval;
        self
    }

    pub fn error_notifier(mut self, notifier: ErrorNotifier) -> Self {
        self.config.error_notifier = notifier;
        self
    }

    /// Shares processed versions, with wake-ups, with the application's other workers:
    /// `RedisVersions` across processes, `MemoryVersions` between subscribers of one process.
    pub fn versions(mut self, store: Arc<dyn VersionStore>) -> Self {
        self.config.versions = Some(store);
        self
    }

    /// Shares this worker's report (settings, counters, the messages it holds and why, its
    /// last error) every second with dashboards in other processes: `RedisBoard` (see
    /// `promiscuous_core::board`). Without one, only a dashboard in this process sees it.
    pub fn board(mut self, board: Arc<dyn Board>) -> Self {
        self.config.board = Some(board);
        self
    }

    /// Publishes every operation applied to `feed` once its transaction committed, for live
    /// streams to browsers (the dashboard's `GET …/stream`; see
    /// [`Feed`]).
    pub fn feed(mut self, feed: Arc<Feed>) -> Self {
        self.applier = self.applier.feed(feed);
        self
    }

    /// Admits a message only if the broker-validated publisher user (AMQP `user_id`, which
    /// the publisher sets to its connection's user) is the message's `app`: deploy one broker
    /// user per app (README, "Security"), then turn this on. Off by default (a shared broker
    /// user, such as RabbitMQ's `guest`, would have every message refused); the routing key
    /// must be the message's `app` either way. Refused messages are dead-lettered.
    pub fn require_user_id(mut self, require: bool) -> Self {
        self.config.require_user_id = require;
        self.applier = self.applier.require_user_id(require);
        self
    }

    /// Attempts for a transiently failing message before it is dead-lettered (5 by default;
    /// `0` is refused), and the delay before the second one (20 ms by default), which doubles
    /// each time up to [`MAX_RETRY_DELAY`](promiscuous_core::subscriber::MAX_RETRY_DELAY).
    pub fn retries(mut self, max_attempts: u32, first_delay: Duration) -> Self {
        self.config.max_attempts = max_attempts;
        self.config.retry_delay = first_delay;
        self
    }

    /// Creates promiscuous' tables, declares the queue with its bindings and consumes in the
    /// background: [`Subscriber::build`] then [`SubscriberService::start`].
    pub async fn start(self) -> Result<SubscriberHandle, Error> {
        Ok(self.build().await?.start())
    }

    /// The first of two steps: creates promiscuous' tables and declares the queue with its
    /// bindings, so messages published from now on wait for this subscriber. Does not consume
    /// yet: [`SubscriberService::start`] does.
    pub async fn build(self) -> Result<SubscriberService, Error> {
        if self.applier.endpoints().is_empty() {
            return Err(Error::FollowsNothing {
                app: self.config.app.clone(),
            });
        }
        self.config.check()?;
        crate::schema::setup_subscriber(self.applier.db())
            .await
            .map_err(tables_error("subscriber"))?;
        let applier = self.applier.clone();
        let runtime = SubscriberRuntime::new(self.transport, Arc::new(self.applier), self.config);
        runtime.declare().await?;
        Ok(SubscriberService {
            runtime: Arc::new(runtime),
            applier,
        })
    }
}

/// A subscriber ready to consume: run it in the background ([`SubscriberService::start`]) or
/// synchronously until idle ([`SubscriberService::run_until_idle`], for tests).
#[derive(Clone)]
pub struct SubscriberService {
    runtime: Arc<SubscriberRuntime>,
    applier: SeaOrmApplier,
}

impl SubscriberService {
    pub fn applier(&self) -> &SeaOrmApplier {
        &self.applier
    }

    pub fn stats(&self) -> watch::Receiver<Stats> {
        self.runtime.stats()
    }

    /// Consumes until no message arrives for `idle`.
    pub async fn run_until_idle(&self, idle: Duration) -> Result<Stats, Error> {
        self.runtime.run_until_idle(idle).await
    }

    /// Consumes in the background until the handle is shut down.
    pub fn start(&self) -> SubscriberHandle {
        let (stop, stopped) = oneshot::channel::<()>();
        let runtime = self.runtime.clone();
        let task = tokio::spawn(async move {
            runtime
                .run(async {
                    let _ = stopped.await;
                })
                .await
        });
        SubscriberHandle {
            service: self.clone(),
            stop: Some(stop),
            task: Some(task),
        }
    }
}

/// A subscriber consuming in the background.
pub struct SubscriberHandle {
    service: SubscriberService,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<Stats, Error>>>,
}

impl SubscriberHandle {
    pub fn service(&self) -> &SubscriberService {
        &self.service
    }

    /// Whether the subscriber is consuming (connected to its transport).
    pub fn healthy(&self) -> bool {
        self.service.runtime.healthy()
    }

    /// Waits until `done(stats)` holds, at most `timeout`; returns the stats then.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        done: impl Fn(&Stats) -> bool,
    ) -> Result<Stats, Error> {
        let mut rx = self.service.stats();
        let waited = tokio::time::timeout(timeout, async {
            rx.wait_for(|s| done(s)).await.map(|s| s.clone())
        })
        .await;
        match waited {
            Ok(Ok(stats)) => Ok(stats),
            Ok(Err(_)) => Err(Error::Stopped),
            Err(_) => Err(Error::Timeout {
                waited: timeout,
                stats: Box::new(self.service.stats().borrow().clone()),
            }),
        }
    }

    /// Stops after the message in flight; returns the final stats.
    pub async fn shutdown(mut self) -> Result<Stats, Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(|e| Error::SubscriberTask {
                source: Arc::new(e),
            })?,
            None => Ok(self.service.stats().borrow().clone()),
        }
    }
}

impl Drop for SubscriberHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering as AtomicOrdering};

    struct NoLease;

    #[async_trait::async_trait]
    impl Lease for NoLease {
        async fn hold(&self) -> Result<bool, Error> {
            Ok(false)
        }
        async fn release(&self) -> Result<(), Error> {
            Ok(())
        }
    }

    /// A notifier counting its calls in `calls`.
    fn counting(calls: &Arc<AtomicU32>) -> ErrorNotifier {
        let calls = calls.clone();
        Arc::new(move |_: &Error| {
            calls.fetch_add(1, AtomicOrdering::SeqCst);
        })
    }

    #[test]
    fn the_publisher_builder_does_not_depend_on_the_order_of_calls() {
        let transport = || Arc::new(promiscuous_core::transport::InProcess::new());
        let config = RelayConfig {
            batch_size: 7,
            ..RelayConfig::default()
        };
        let calls = Arc::new(AtomicU32::new(0));
        let lease: Arc<dyn Lease> = Arc::new(NoLease);
        let before = Publisher::with_transport(DatabaseConnection::default(), transport())
            .error_notifier(counting(&calls))
            .lease(lease.clone())
            .relay_config(config.clone())
            .relay_settings();
        let after = Publisher::with_transport(DatabaseConnection::default(), transport())
            .relay_config(config)
            .error_notifier(counting(&calls))
            .lease(lease.clone())
            .relay_settings();
        for settings in [before, after] {
            assert_eq!(settings.batch_size, 7, "the relay config is kept");
            assert!(
                settings
                    .lease
                    .as_ref()
                    .is_some_and(|l| Arc::ptr_eq(l, &lease)),
                "the lease is kept"
            );
            let seen = calls.load(AtomicOrdering::SeqCst);
            (settings.error_notifier)(&Error::Stopped);
            assert_eq!(
                calls.load(AtomicOrdering::SeqCst),
                seen + 1,
                "the notifier is kept"
            );
        }
    }

    #[tokio::test]
    async fn zero_relay_settings_are_refused_at_start() {
        let publisher = Publisher::with_transport(
            DatabaseConnection::default(),
            Arc::new(promiscuous_core::transport::InProcess::new()),
        )
        .relay_config(RelayConfig {
            batch_size: 0,
            ..RelayConfig::default()
        });
        let refused = publisher.start().await.err().expect("refused");
        assert!(refused.to_string().contains("batch_size"), "{refused}");
    }
}
