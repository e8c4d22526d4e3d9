//! The relay ([`Relay`], tuned by [`RelayConfig`]): moves committed outbox rows to the
//! transport, in order, removing a row only once the broker confirmed it; and its metrics.

use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use tracing::Instrument;

use super::lease::Lease;
use super::outbox::{FenceGuard, Outbox};
use super::wake::Wake;
use crate::board::{self, Board, ErrorSlot, Heartbeat, RelayReport, Report, Worker};
use crate::error::{Error, ErrorNotifier, log_errors};
use crate::transport::{Outgoing, Transport};

/// Counter: outbox rows published (confirmed by the broker) and removed.
const PUBLISHED: &str = "promiscuous_outbox_published_total";
/// Histogram: one batch that moved rows, from reading the outbox to removing the rows.
const BATCH_SECONDS: &str = "promiscuous_relay_batch_seconds";

fn describe_metrics() {
    metrics::describe_counter!(
        PUBLISHED,
        "Outbox rows the relay published (confirmed by the broker)"
    );
    metrics::describe_histogram!(
        BATCH_SECONDS,
        metrics::Unit::Seconds,
        "Time of one relay batch: read the outbox, publish with confirms, remove the rows"
    );
}

/// Tuning of a [`Relay`].
#[derive(Clone)]
pub struct RelayConfig {
    /// Rows published per broker round trip.
    pub batch_size: usize,
    /// Longest sleep between two looks at the outbox when nobody woke the relay.
    pub poll_interval: Duration,
    /// First retry delay after a failure; doubles up to `poll_interval * 20`.
    pub retry_delay: Duration,
    pub error_notifier: ErrorNotifier,
    /// When several relays serve one outbox: only the lease holder publishes.
    pub lease: Option<Arc<dyn Lease>>,
    /// The publisher app(s) this relay publishes for, as the board shows it (`"publisher"` by
    /// default; the SeaORM publisher names its published apps).
    pub app: String,
    /// Where this relay's report (settings, counters, backlog, lease, last error) is shared
    /// with other processes, every second while it runs (see [`board`](crate::board)); it is
    /// always on this process's board. `None` by default.
    pub board: Option<Arc<dyn Board>>,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            batch_size: 256,
            poll_interval: Duration::from_millis(100),
            retry_delay: Duration::from_millis(50),
            error_notifier: log_errors(),
            lease: None,
            app: "publisher".to_string(),
            board: None,
        }
    }
}

impl RelayConfig {
    /// Refuses settings the relay cannot run with, naming the setting: a batch of 0 rows would
    /// publish nothing, a zero poll interval or retry delay would spin.
    pub fn check(&self) -> Result<(), Error> {
        let zero = if self.batch_size == 0 {
            "batch_size"
        } else if self.poll_interval.is_zero() {
            "poll_interval"
        } else if self.retry_delay.is_zero() {
            "retry_delay"
        } else {
            return Ok(());
        };
        Err(Error::RelaySetting { setting: zero })
    }
}

/// Moves committed outbox rows to the transport, in order; a row is removed only after the
/// broker confirmed it, so a crash or an outage at any point loses nothing (a row may be
/// published twice, which subscribers absorb by version).
pub struct Relay {
    outbox: Arc<dyn Outbox>,
    transport: Arc<dyn Transport>,
    config: RelayConfig,
    /// One batch at a time per relay, so `drain` and `run` never publish the same rows twice;
    /// it guards the fencing token taken when the lease was last taken (see [`Lease::fence`]):
    /// `None` while the lease is not held, or before the first batch after taking it.
    batch: tokio::sync::Mutex<Option<u64>>,
    healthy_flag: Arc<AtomicBool>,
    /// Woken by writes to this relay's outbox in this process (see [`wake`](super::wake)).
    wake: Arc<Wake>,
    /// What the board shows: rows published, whether the lease is held, the last error.
    board: Arc<RelayState>,
}

/// What a relay's heartbeat reads.
#[derive(Default)]
struct RelayState {
    relayed: AtomicU64,
    /// 0: no lease asked yet, 1: held, 2: not held.
    lease: AtomicU8,
    last_error: ErrorSlot,
}

impl Relay {
    pub fn new(outbox: Arc<dyn Outbox>, transport: Arc<dyn Transport>) -> Self {
        Self::with_config(outbox, transport, RelayConfig::default())
    }

    pub fn with_config(
        outbox: Arc<dyn Outbox>,
        transport: Arc<dyn Transport>,
        config: RelayConfig,
    ) -> Self {
        describe_metrics();
        Self {
            outbox,
            transport,
            config,
            batch: tokio::sync::Mutex::new(None),
            healthy_flag: Arc::new(AtomicBool::new(true)),
            wake: Arc::new(Wake::new()),
            board: Arc::default(),
        }
    }

    /// This relay's wake-up signal: register it for the outbox database
    /// ([`wake::register`](super::wake::register)) so that writes there wake the relay at once.
    pub fn wake(&self) -> &Arc<Wake> {
        &self.wake
    }

    /// Whether the last batch went through (the transport is reachable).
    pub fn healthy(&self) -> bool {
        self.healthy_flag.load(Ordering::Relaxed) && self.transport.healthy()
    }

    /// Publishes one batch; returns how many rows it moved (0 as well when another relay
    /// holds the lease).
    pub async fn publish_batch(&self) -> Result<usize, Error> {
        let result = self.publish_batch_inner().await;
        self.healthy_flag.store(result.is_ok(), Ordering::Relaxed);
        result
    }

    async fn publish_batch_inner(&self) -> Result<usize, Error> {
        let mut token = self.batch.lock().await;
        let mut fence = None;
        if let Some(lease) = &self.config.lease {
            let held = lease.hold().await?;
            self.board
                .lease
                .store(if held { 1 } else { 2 }, Ordering::Relaxed);
            if !held {
                *token = None;
                return Ok(0);
            }
            if let Some(name) = lease.fence() {
                match self.hold_fence(name, &mut token).await? {
                    Some(hold) => fence = Some((name, hold)),
                    None => {
                        self.board.lease.store(2, Ordering::Relaxed);
                        return Ok(0);
                    }
                }
            }
        }
        let moved = self.fetch_and_publish().await;
        if let Some((name, hold)) = fence {
            hold.release().await.map_err(|e| Error::Fence {
                fence: name.to_string(),
                source: e.into(),
            })?;
        }
        moved
    }

    /// Holds the lease's fence `name` for one batch, with the token taken when the lease was
    /// taken (a new one at the first batch after that): `None` when a later token was taken
    /// meanwhile, by a relay that took the lease after this one lost it; this one then
    /// publishes nothing until it holds the lease again (and takes a new token).
    async fn hold_fence(
        &self,
        name: &str,
        token: &mut Option<u64>,
    ) -> Result<Option<FenceGuard>, Error> {
        let fence_error = |e: crate::error::BoxError| Error::Fence {
            fence: name.to_string(),
            source: e.into(),
        };
        let current = match *token {
            Some(current) => current,
            None => match self.outbox.take_fence(name).await.map_err(fence_error)? {
                Some(taken) => {
                    tracing::info!(
                        fence = name,
                        token = taken,
                        "relay took the lease: fencing token"
                    );
                    taken
                }
                None => return Ok(Some(Box::new(super::outbox::Unfenced))),
            },
        };
        let hold = self
            .outbox
            .hold_fence(name, current)
            .await
            .map_err(fence_error)?;
        if hold.is_none() {
            tracing::warn!(
                fence = name,
                token = current,
                "relay fenced off: another relay took the lease after this one; not publishing"
            );
        }
        *token = hold.is_some().then_some(current);
        Ok(hold)
    }

    /// One batch: the oldest rows, published (confirmed), then removed.
    async fn fetch_and_publish(&self) -> Result<usize, Error> {
        let started = std::time::Instant::now();
        let entries = self
            .outbox
            .fetch(self.config.batch_size)
            .await
            .map_err(|e| Error::ReadOutbox { source: e.into() })?;
        if entries.is_empty() {
            return Ok(0);
        }
        let span = tracing::debug_span!("promiscuous.relay", rows = entries.len());
        let moved = self.publish_entries(&entries).instrument(span).await?;
        metrics::counter!(PUBLISHED).increment(moved as u64);
        self.board
            .relayed
            .fetch_add(moved as u64, Ordering::Relaxed);
        metrics::histogram!(BATCH_SECONDS).record(started.elapsed().as_secs_f64());
        Ok(moved)
    }

    /// Publishes fetched rows (confirmed), then removes them from the outbox.
    async fn publish_entries(&self, entries: &[super::OutboxEntry]) -> Result<usize, Error> {
        let outgoing: Vec<Outgoing> = entries
            .iter()
            .map(|e| Outgoing {
                routing_key: e.routing_key.clone(),
                payload: e.payload.clone(),
                partition_key: crate::message::partition_key(&e.payload),
            })
            .collect();
        let ids: Vec<i64> = entries.iter().map(|e| e.id).collect();
        self.transport
            .publish(&outgoing)
            .await
            .map_err(|source| Error::Publish {
                ids: ids.clone(),
                source,
            })?;
        self.outbox
            .remove(&ids)
            .await
            .map_err(|e| Error::RemoveOutbox {
                ids: ids.clone(),
                source: e.into(),
            })?;
        tracing::debug!(rows = ids.len(), "relay published");
        if tracing::enabled!(target: "promiscuous::relay", tracing::Level::DEBUG) {
            // One line per message, by the id its write logged (`promiscuous::publish`) and
            // every subscriber's `promiscuous.apply` span shows: a write followed end to end.
            for e in entries {
                #[derive(serde::Deserialize)]
                struct Id {
                    id: String,
                }
                let message = serde_json::from_slice::<Id>(&e.payload).map(|m| m.id);
                tracing::debug!(
                    target: "promiscuous::relay",
                    message = message.as_deref().unwrap_or("?"),
                    outbox_row = e.id,
                    routing_key = %e.routing_key,
                    "message confirmed by the broker"
                );
            }
        }
        Ok(ids.len())
    }

    /// Publishes until the outbox is empty; returns how many rows it moved.
    pub async fn drain(&self) -> Result<usize, Error> {
        let mut total = 0;
        loop {
            let n = self.publish_batch().await?;
            total += n;
            if n == 0 {
                return Ok(total);
            }
        }
    }

    /// Runs until `shutdown` resolves (a batch in flight is finished first): drains, then
    /// waits for a wake-up of its [`Wake`] (with a short re-check for rows whose transaction had
    /// not committed yet) or the poll interval. Failures are reported to the error notifier
    /// and retried with backoff; the lease, if any, is released at the end.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) {
        let heartbeat = self.heartbeat();
        self.run_until(shutdown).await;
        if let Some(lease) = &self.config.lease
            && let Err(e) = lease.release().await
        {
            self.notify(&e);
        }
        heartbeat.stop().await;
    }

    fn notify(&self, e: &Error) {
        self.board.last_error.record(e);
        (self.config.error_notifier)(e);
    }

    /// Reports this relay on the boards every second while it runs: its counters, whether it
    /// holds the lease, and the outbox's backlog (one query per beat).
    fn heartbeat(&self) -> Heartbeat {
        let id = board::worker_id("relay", &self.config.app);
        let started = crate::now_ms();
        let (state, outbox, report_id) = (self.board.clone(), self.outbox.clone(), id.clone());
        let (app, batch_size) = (self.config.app.clone(), self.config.batch_size);
        let has_lease = self.config.lease.is_some();
        let healthy = self.healthy_flag.clone();
        Heartbeat::start(id, self.config.board.clone(), move || {
            let (state, outbox, id, app) = (
                state.clone(),
                outbox.clone(),
                report_id.clone(),
                app.clone(),
            );
            let healthy = healthy.load(Ordering::Relaxed);
            Box::pin(async move {
                let backlog = outbox.backlog().await.ok().flatten();
                let holds_lease = has_lease.then(|| state.lease.load(Ordering::Relaxed) == 1);
                let mut report = Report::new(
                    id,
                    &app,
                    started,
                    Worker::Relay(RelayReport {
                        batch_size,
                        healthy,
                        relayed: state.relayed.load(Ordering::Relaxed),
                        holds_lease,
                        backlog,
                    }),
                );
                report.last_error = state.last_error.get();
                report
            })
        })
    }

    async fn run_until(&self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut delay = self.config.retry_delay;
        loop {
            let seen = self.wake.writes();
            // A batch in flight is never cancelled (a query dropped half-way costs its database
            // connection): shutdown is looked at between batches.
            let outcome = loop {
                if futures_util::FutureExt::now_or_never(&mut shutdown).is_some() {
                    return;
                }
                match self.publish_batch().await {
                    Ok(0) => break Ok(()),
                    Ok(_) => continue,
                    Err(e) => break Err(e),
                }
            };
            match outcome {
                Ok(_) => {
                    delay = self.config.retry_delay;
                    let woken = tokio::select! {
                        _ = &mut shutdown => return,
                        w = self.wake.wait_for_write(seen, self.config.poll_interval) => w,
                    };
                    if woken && self.await_commit(&mut shutdown).await {
                        return;
                    }
                }
                Err(e) => {
                    self.notify(&e);
                    tokio::select! {
                        _ = &mut shutdown => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(self.config.poll_interval * 20);
                }
            }
        }
    }

    /// After a wake-up the writer's transaction may still be open: look again quickly a few
    /// times (1, 2, 4 … ms) rather than waiting a whole poll interval. Returns whether
    /// `shutdown` completed meanwhile (it must not be polled again then).
    async fn await_commit(
        &self,
        shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> bool {
        let mut pause = Duration::from_millis(1);
        while pause < self.config.poll_interval {
            match self.outbox.fetch(1).await {
                Ok(rows) if !rows.is_empty() => return false,
                Err(_) => return false,
                Ok(_) => {}
            }
            tokio::select! {
                _ = shutdown.as_mut() => return true,
                _ = tokio::time::sleep(pause) => {}
            }
            pause *= 2;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::BoxError;
    use crate::publisher::OutboxEntry;
    use crate::transport::InProcess;
    use async_trait::async_trait;

    struct Empty;

    #[async_trait]
    impl Outbox for Empty {
        async fn fetch(&self, _: usize) -> Result<Vec<OutboxEntry>, BoxError> {
            Ok(Vec::new())
        }
        async fn remove(&self, _: &[i64]) -> Result<(), BoxError> {
            Ok(())
        }
    }

    #[test]
    fn zero_settings_are_refused_by_name() {
        assert!(RelayConfig::default().check().is_ok());
        let refused = |config: RelayConfig| config.check().unwrap_err().to_string();
        let batch = refused(RelayConfig {
            batch_size: 0,
            ..RelayConfig::default()
        });
        assert!(batch.contains("batch_size"), "{batch}");
        let poll = refused(RelayConfig {
            poll_interval: Duration::ZERO,
            ..RelayConfig::default()
        });
        assert!(poll.contains("poll_interval"), "{poll}");
        let retry = refused(RelayConfig {
            retry_delay: Duration::ZERO,
            ..RelayConfig::default()
        });
        assert!(retry.contains("retry_delay"), "{retry}");
    }

    #[tokio::test]
    async fn shutdown_while_waiting_for_a_commit_ends_cleanly() {
        for _ in 0..5 {
            let relay = Arc::new(Relay::new(Arc::new(Empty), Arc::new(InProcess::new())));
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
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
            tokio::time::sleep(Duration::from_millis(5)).await;
            relay.wake().written(); // the relay now re-checks with short pauses
            tokio::time::sleep(Duration::from_millis(10)).await;
            stop.send(()).unwrap();
            tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .expect("the relay stops")
                .expect("the relay task does not panic");
        }
    }

    /// Counts fetches started and finished; each takes a while.
    #[derive(Default)]
    struct Slow {
        started: std::sync::atomic::AtomicU32,
        finished: std::sync::atomic::AtomicU32,
    }

    #[async_trait]
    impl Outbox for Slow {
        async fn fetch(&self, _: usize) -> Result<Vec<OutboxEntry>, BoxError> {
            self.started.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(30)).await;
            self.finished.fetch_add(1, Ordering::SeqCst);
            Ok(Vec::new())
        }
        async fn remove(&self, _: &[i64]) -> Result<(), BoxError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn shutdown_never_cancels_a_batch_in_flight() {
        let outbox = Arc::new(Slow::default());
        let relay = Relay::new(outbox.clone(), Arc::new(InProcess::new()));
        let shutdown = tokio::time::sleep(Duration::from_millis(10));
        tokio::time::timeout(Duration::from_secs(5), relay.run(shutdown))
            .await
            .expect("the relay stops");
        let started = outbox.started.load(Ordering::SeqCst);
        assert!(started >= 1);
        assert_eq!(
            outbox.finished.load(Ordering::SeqCst),
            started,
            "no fetch was cancelled"
        );
    }
}
