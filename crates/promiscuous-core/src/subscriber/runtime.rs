//! The subscriber runtime: the public [`SubscriberRuntime`], which declares and consumes the
//! queue, reconnects with backoff, and runs one [`Session`] per consumer.
//!
//! The top layer: uses `session` (the pump and runners) and `processing` (what they share);
//! neither of them uses this module.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::applier::Applier;
use super::config::{MAX_RECONNECT_DELAY, SubscriberConfig};
use super::processing::Shared;
use super::session::Session;
use super::stats::Stats;
use crate::board::{self, Heartbeat, Report, SubscriberReport, Waiting, Worker};
use crate::error::Error;
use crate::transport::{Consumer, QueueSpec, Transport, TransportError};

/// Consumes the subscriber application's queue and applies what arrives: in causal order, on
/// several runners, with retries, dead letters and recovery (see [`SubscriberConfig`]). A
/// config with a zero count is refused by [`declare`](Self::declare), [`run`](Self::run) and
/// [`run_until_idle`](Self::run_until_idle) ([`SubscriberConfig::check`]).
pub struct SubscriberRuntime {
    inner: Arc<Shared>,
    /// The session consuming now, if any (its waiting room goes into the board's report).
    current: Arc<Mutex<Option<Arc<Session>>>>,
}

impl SubscriberRuntime {
    pub fn new(
        transport: Arc<dyn Transport>,
        applier: Arc<dyn Applier>,
        config: SubscriberConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Shared::new(transport, applier, config)),
            current: Arc::default(),
        }
    }

    /// Live counters, updated after every message.
    pub fn stats(&self) -> watch::Receiver<Stats> {
        self.inner.stats.subscribe()
    }

    pub fn config(&self) -> &SubscriberConfig {
        &self.inner.config
    }

    fn spec(&self) -> QueueSpec {
        QueueSpec {
            queue: self.inner.config.app.clone(),
            bindings: self.inner.bindings.clone(),
            prefetch: self.inner.config.prefetch,
            partitions: self.inner.config.partitions,
        }
    }

    /// Declares the queue and its bindings without consuming: messages published from now on
    /// are kept for this subscriber.
    pub async fn declare(&self) -> Result<(), Error> {
        self.inner.config.check()?;
        self.inner
            .transport
            .declare(&self.spec())
            .await
            .map_err(|source| Error::DeclareQueue {
                queue: self.inner.config.app.clone(),
                source,
            })
    }

    async fn consumer(&self) -> Result<Box<dyn Consumer>, Error> {
        self.inner
            .transport
            .consume(&self.spec())
            .await
            .map_err(|source| Error::ConsumeQueue {
                queue: self.inner.config.app.clone(),
                source,
            })
    }

    fn current(&self) -> Stats {
        self.inner.stats.borrow().clone()
    }

    /// Runs until `shutdown` resolves; messages being applied are finished first, the others
    /// go back to the broker. A lost connection is reported to the error notifier and
    /// consumption resumes, with backoff, once the transport is back (unacknowledged deliveries
    /// come back as redeliveries).
    pub async fn run(
        &self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<Stats, Error> {
        let config = &self.inner.config;
        config.check()?;
        let heartbeat = self.heartbeat();
        let outcome = self.consume(shutdown).await;
        heartbeat.stop().await;
        outcome
    }

    /// Reports this worker on the boards every second while it runs (see [`board`](crate::board)).
    fn heartbeat(&self) -> Heartbeat {
        let app = &self.inner.config.app;
        let id = board::worker_id("subscriber", app);
        let started = crate::now_ms();
        let (inner, current, report_id) = (self.inner.clone(), self.current.clone(), id.clone());
        Heartbeat::start(id, self.inner.config.board.clone(), move || {
            let waiting = current
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .map(|s| s.waiting(board::MAX_WAITING_LISTED))
                .unwrap_or_default();
            let report = report(&inner, report_id.clone(), started, waiting);
            Box::pin(std::future::ready(report))
        })
    }

    fn set_current(&self, session: Option<Arc<Session>>) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = session;
    }

    async fn consume(
        &self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<Stats, Error> {
        tokio::pin!(shutdown);
        let config = &self.inner.config;
        let mut backoff = config.retry_delay;
        loop {
            let consumer = tokio::select! {
                _ = &mut shutdown => return Ok(self.current()),
                c = self.consumer() => c,
            };
            let mut consumer = match consumer {
                Ok(c) => {
                    self.inner.connected.send_replace(true);
                    c
                }
                Err(e) => {
                    self.inner.connected.send_replace(false);
                    self.inner.notify(&e);
                    tokio::select! {
                        _ = &mut shutdown => return Ok(self.current()),
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_RECONNECT_DELAY);
                    continue;
                }
            };
            let running = Session::start(self.inner.clone());
            self.set_current(Some(running.session().clone()));
            let lost = loop {
                let delivery = tokio::select! {
                    _ = &mut shutdown => break false,
                    d = consumer.next() => d,
                };
                match delivery {
                    Ok(d) => {
                        backoff = config.retry_delay;
                        running.session().submit(d);
                    }
                    Err(TransportError::Closed) => break false,
                    Err(e) => {
                        self.inner.connected.send_replace(false);
                        self.inner.notify(&Error::ConsumerLost {
                            queue: config.app.clone(),
                            reconnecting: true,
                            source: e,
                        });
                        break true;
                    }
                }
            };
            self.set_current(None);
            running.stop().await;
            drop(consumer);
            if !lost {
                return Ok(self.current());
            }
        }
    }

    /// Whether the last attempt to consume succeeded and the consumer has not failed since.
    pub fn healthy(&self) -> bool {
        *self.inner.connected.borrow() && self.inner.transport.healthy()
    }

    /// Processes deliveries until none arrives for `idle` and every message received is
    /// finished (applied, dead-lettered, or released by the dependency timeout); for tests and
    /// synchronous harnesses. Returns the counters since this subscriber was made.
    pub async fn run_until_idle(&self, idle: Duration) -> Result<Stats, Error> {
        self.inner.config.check()?;
        let mut consumer = self.consumer().await?;
        let running = Session::start(self.inner.clone());
        let session = running.session().clone();
        let outcome = loop {
            match tokio::time::timeout(idle, consumer.next()).await {
                Ok(Ok(d)) => session.submit(d),
                Ok(Err(TransportError::Closed)) => break Ok(()),
                Ok(Err(e)) => {
                    break Err(Error::ConsumerLost {
                        queue: self.inner.config.app.clone(),
                        reconnecting: false,
                        source: e,
                    });
                }
                Err(_) if session.is_idle() => break Ok(()),
                Err(_) => {
                    session
                        .wait_idle(idle.max(Duration::from_millis(100)))
                        .await
                }
            }
        };
        running.stop().await;
        drop(consumer);
        outcome.map(|()| self.current())
    }
}

/// This worker's report: its settings, counters and waiting room.
fn report(inner: &Shared, id: String, started_ms: i64, waiting: Vec<Waiting>) -> Report {
    let stats = inner.stats.borrow().clone();
    let config = &inner.config;
    let mut report = Report::new(
        id,
        &config.app,
        started_ms,
        Worker::Subscriber(SubscriberReport {
            runners: config.workers,
            prefetch: config.prefetch,
            connected: *inner.connected.borrow(),
            messages: stats.messages as u64,
            operations_applied: stats.operations_applied as u64,
            dead_lettered: stats.dead_lettered as u64,
            recovered: stats.recovered as u64,
            waiting_count: stats.waiting as u64,
            in_flight: stats.in_flight as u64,
            queue_depth: stats.queue_depth,
            lag_ms: stats.last_lag.map(|l| l.as_millis() as u64),
            waiting,
        }),
    );
    report.last_error = inner.last_error.get();
    report
}
