//! One consumer session: the pump hands each delivery to the synchronizer, which releases it to
//! the runners once its dependencies are processed. Versions it does not know are looked up in
//! the database and the shared store; versions processed elsewhere arrive as wake-ups from the
//! shared store; a ticker releases timed-out messages (recovery) and looks up again what waiting
//! messages need (a safety net for lost wake-ups).
//!
//! A session ends when its consumer does (shutdown, idle, lost connection): messages being
//! applied are finished, the others are dropped unacknowledged and the broker redelivers them.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering as Atomic};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;
use tracing::field::Empty;

use super::config::Ordering;
use super::metrics::Outcome;
use super::runtime::Inner;
use super::synchronizer::{Released, Requirements, Submitted, Synchronizer};
use super::trust;
use crate::error::Error;
use crate::message::{DecodeError, Message};
use crate::transport::Delivery;

/// A delivery and what it decoded to.
pub(super) struct Job {
    pub delivery: Delivery,
    pub message: Result<Message, DecodeError>,
}

pub(super) struct Session {
    pub inner: Arc<Inner>,
    sync: Mutex<Synchronizer<Job>>,
    ready: async_channel::Sender<Released<Job>>,
    /// Deliveries submitted and not yet finished (waiting, ready or being applied).
    outstanding: AtomicUsize,
    idle: Notify,
    stopping: AtomicBool,
}

/// The running parts of a session.
pub(super) struct Running {
    session: Arc<Session>,
    runners: Vec<JoinHandle<()>>,
    helpers: Vec<JoinHandle<()>>,
}

impl Session {
    /// Starts the runners and helpers of a new session.
    pub fn start(inner: Arc<Inner>) -> Running {
        let (ready, queue) = async_channel::unbounded();
        let session = Arc::new(Session {
            sync: Mutex::new(Synchronizer::new(inner.config.dependency_timeout)),
            inner,
            ready,
            outstanding: AtomicUsize::new(0),
            idle: Notify::new(),
            stopping: AtomicBool::new(false),
        });
        let runners = (0..session.inner.config.workers.max(1))
            .map(|worker| {
                let (session, queue) = (session.clone(), queue.clone());
                tokio::spawn(async move {
                    while let Ok(first) = queue.recv().await {
                        // What else is ready goes with it, in one transaction.
                        let mut batch = vec![first];
                        let most = if session.inner.applier.batches() {
                            session.inner.config.batch.max(1)
                        } else {
                            1
                        };
                        while batch.len() < most {
                            match queue.try_recv() {
                                Ok(more) => batch.push(more),
                                Err(_) => break,
                            }
                        }
                        if session.stopping.load(Atomic::SeqCst) {
                            // Not started: dropped unacknowledged, the broker redelivers them.
                            for _ in batch {
                                session.done();
                            }
                            continue;
                        }
                        session.run_batch(batch, worker).await;
                    }
                })
            })
            .collect();
        let mut helpers = vec![tokio::spawn(session.clone().tick())];
        if session.inner.config.ordering == Ordering::Causal
            && let Some(store) = session.inner.config.versions.clone()
        {
            helpers.push(tokio::spawn(session.clone().listen(store)));
        }
        Running {
            session,
            runners,
            helpers,
        }
    }

    fn sync(&self) -> MutexGuard<'_, Synchronizer<Job>> {
        // No critical section awaits or can leave the state half-updated by a panic of ours.
        self.sync.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn notify(&self, e: &Error) {
        (self.inner.config.error_notifier)(e);
    }

    /// Hands released messages to the runners.
    fn dispatch(&self, released: Vec<Released<Job>>) {
        // Those that waited leave the synchronizer's waiting room.
        let waited = released.iter().filter(|r| r.waited.is_some()).count();
        if waited > 0 {
            self.inner.metrics.waiting(-(waited as f64));
            self.inner
                .stats
                .send_modify(|s| s.waiting = s.waiting.saturating_sub(waited));
        }
        for r in released {
            if self.ready.try_send(r).is_err() {
                // The session is over: dropped unacknowledged, the broker redelivers it.
                self.done();
            }
        }
    }

    /// A delivery arrived: decode it and submit it to the synchronizer.
    pub fn submit(self: &Arc<Self>, delivery: Delivery) {
        self.outstanding.fetch_add(1, Atomic::SeqCst);
        self.inner.metrics.in_flight(1.0);
        self.inner.stats.send_modify(|s| s.in_flight += 1);
        let message = Message::decode(&delivery.payload).and_then(|m| {
            trust::admit(
                m,
                &delivery.routing_key,
                delivery.user_id.as_deref(),
                self.inner.config.require_user_id,
            )
        });
        let requirements = match (&message, self.inner.config.ordering) {
            (Ok(m), Ordering::Causal) => Requirements::causal(m, |app| self.inner.follows_app(app)),
            _ => Requirements::default(),
        };
        let job = Job { delivery, message };
        let submitted = {
            let mut sync = self.sync();
            let submitted = sync.submit(job, requirements, Instant::now());
            if let Submitted::Parked { .. } = submitted {
                // Counted before the lock is released: whoever releases it counts it out.
                self.inner.metrics.waiting(1.0);
                self.inner.stats.send_modify(|s| {
                    s.waiting += 1;
                    s.waited += 1;
                });
            }
            submitted
        };
        match submitted {
            Submitted::Ready(r) => self.dispatch(vec![r]),
            Submitted::Parked { lookup } => self.spawn_lookup(lookup),
        }
    }

    /// Looks up, in the database and the shared store, the processed versions of `keys`.
    fn spawn_lookup(self: &Arc<Self>, keys: Vec<String>) {
        if keys.is_empty() {
            return;
        }
        let session = self.clone();
        tokio::spawn(async move {
            let inner = &session.inner;
            let shared = async {
                match &inner.config.versions {
                    Some(store) => store.get(&keys).await.map(Some),
                    None => Ok(None),
                }
            };
            let (stored, shared) = tokio::join!(inner.applier.versions(&keys), shared);
            let versions = match (stored, shared) {
                (Ok(stored), Ok(shared)) => {
                    let shared = shared.unwrap_or_default();
                    keys.iter()
                        .enumerate()
                        .map(|(i, k)| {
                            let v = stored.get(i).copied().unwrap_or(0);
                            (k.clone(), v.max(shared.get(i).copied().unwrap_or(0)))
                        })
                        .collect::<Vec<_>>()
                }
                (Err(e), _) => {
                    session.lookup_failed(
                        &keys,
                        Error::VersionLookup {
                            queue: inner.config.app.clone(),
                            source: e.into(),
                        },
                    );
                    return;
                }
                (_, Err(e)) => {
                    session.lookup_failed(&keys, e);
                    return;
                }
            };
            let released = session.sync().learn(&versions, true);
            session.dispatch(released);
        });
    }

    fn lookup_failed(&self, keys: &[String], e: Error) {
        self.notify(&e);
        self.sync().lookup_failed(keys);
    }

    /// Applies one released message on runner `worker`, then lets the synchronizer release
    /// what waited on it; in a `promiscuous.apply` span (debug level: free when disabled).
    async fn run(&self, released: Released<Job>, worker: usize) {
        let message = released.job.message.as_ref().ok();
        let span = tracing::debug_span!(
            "promiscuous.apply",
            app = %self.inner.config.app,
            message = message.map(|m| m.id.as_str()),
            operations = message.map(|m| m.operations.len()),
            worker,
            waited_ms = released.waited.map(|w| w.as_millis() as u64),
            attempt = Empty,
            outcome = Empty,
            recovered = Empty,
        );
        self.run_in(released, worker, &span)
            .instrument(span.clone())
            .await;
    }

    /// Applies released messages (independent of each other: the synchronizer releases no two
    /// writing one instance) in one transaction when the applier can, else one by one. Messages
    /// that did not decode or that recovery released go alone; so do all of them if the batch
    /// fails (each then gets its retries and, if need be, its dead letter).
    async fn run_batch(&self, batch: Vec<Released<Job>>, worker: usize) {
        let (together, alone): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .partition(|r| r.job.message.is_ok() && r.skipped.is_empty());
        for r in alone {
            self.run(r, worker).await;
        }
        if together.len() < 2 {
            for r in together {
                self.run(r, worker).await;
            }
            return;
        }
        let messages: Vec<&Message> = together
            .iter()
            .filter_map(|r| r.job.message.as_ref().ok())
            .collect();
        let started = std::time::Instant::now();
        let outcomes = match self.inner.applier.apply_batch(&messages).await {
            Some(Ok(outcomes)) if outcomes.len() == messages.len() => outcomes,
            other => {
                if let Some(Err(e)) = other {
                    tracing::debug!(error = %crate::error::Report(&e), size = messages.len(), "batch failed, applying one by one");
                }
                for r in together {
                    self.run(r, worker).await;
                }
                return;
            }
        };
        let took = started.elapsed();
        self.inner
            .stats
            .send_modify(|s| s.batched += messages.len());
        let span = tracing::debug_span!(
            "promiscuous.apply_batch",
            app = %self.inner.config.app,
            messages = messages.len(),
            worker,
        );
        let processed: Vec<_> = messages
            .iter()
            .zip(&outcomes)
            .map(|(m, applied)| self.inner.applied(m, applied, took, &span))
            .collect();
        let released = {
            let mut sync = self.sync();
            let mut released = Vec::new();
            for (r, p) in together.iter().zip(&processed) {
                released.extend(sync.finish(&r.writes, &p.versions));
            }
            released
        };
        self.dispatch(released);
        let versions: Vec<(String, u64)> = processed.into_iter().flat_map(|p| p.versions).collect();
        self.inner.advance(&versions).await;
        for r in &together {
            self.inner.acknowledge(&r.job, false).await;
            self.done();
        }
    }

    async fn run_in(&self, released: Released<Job>, worker: usize, span: &tracing::Span) {
        let Released {
            job,
            skipped,
            waited,
            writes,
        } = released;
        if !skipped.is_empty()
            && let Ok(message) = &job.message
        {
            self.inner.metrics.outcome(Outcome::Recovered);
            span.record("recovered", true);
            self.inner.stats.send_modify(|s| s.recovered += 1);
            self.notify(&Error::Recovered {
                queue: self.inner.config.app.clone(),
                message_id: message.id.clone(),
                missing: skipped.clone(),
                waited: self.inner.config.dependency_timeout,
            });
        }
        tracing::trace!(worker, waited = ?waited, "runner takes a message");
        let processed = self.inner.process(&job, span).await;
        let released = self.sync().finish(&writes, &processed.versions);
        self.dispatch(released);
        self.inner.settle(&job, processed).await;
        self.done();
    }

    fn done(&self) {
        self.inner.metrics.in_flight(-1.0);
        self.inner
            .stats
            .send_modify(|s| s.in_flight = s.in_flight.saturating_sub(1));
        if self.outstanding.fetch_sub(1, Atomic::SeqCst) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// Whether every delivery submitted so far is finished.
    pub fn is_idle(&self) -> bool {
        self.outstanding.load(Atomic::SeqCst) == 0
    }

    /// Waits until [`Session::is_idle`] (or `limit` passes).
    pub async fn wait_idle(&self, limit: Duration) {
        let idle = self.idle.notified();
        tokio::pin!(idle);
        idle.as_mut().enable();
        if self.is_idle() {
            return;
        }
        let _ = tokio::time::timeout(limit, idle).await;
    }

    /// Releases timed-out messages; looks up again, now and then, what waiting messages need.
    async fn tick(self: Arc<Self>) {
        let config = &self.inner.config;
        let tick = (config.dependency_timeout / 10)
            .clamp(Duration::from_millis(5), Duration::from_millis(100));
        let mut last_recheck = Instant::now();
        loop {
            tokio::time::sleep(tick).await;
            let now = Instant::now();
            let released = self.sync().expire(now);
            self.dispatch(released);
            if now.duration_since(last_recheck) >= config.recheck_interval {
                last_recheck = now;
                let keys = self.sync().recheck();
                self.spawn_lookup(keys);
                let inner = self.inner.clone();
                tokio::spawn(async move { inner.poll_queue_depth().await });
            }
        }
    }

    /// Learns the versions other workers process, from the shared store's wake-ups.
    async fn listen(self: Arc<Self>, store: Arc<dyn super::VersionStore>) {
        let first = self.inner.config.retry_delay;
        let mut backoff = first;
        loop {
            match store.wakeups().await {
                Ok(None) => return,
                Ok(Some(mut raises)) => {
                    backoff = first;
                    // What was raised before the subscription is looked up.
                    let keys = self.sync().recheck();
                    self.spawn_lookup(keys);
                    while let Some(raise) = raises.next().await {
                        let released = self.sync().learn(&[raise], false);
                        self.dispatch(released);
                    }
                    self.notify(&Error::WakeUpsInterrupted {
                        queue: self.inner.config.app.clone(),
                    });
                }
                Err(e) => self.notify(&e),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}

impl Running {
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// Ends the session: messages being applied are finished, the others are dropped
    /// unacknowledged (the broker redelivers them).
    pub async fn stop(self) {
        let session = self.session;
        session.stopping.store(true, Atomic::SeqCst);
        for h in &self.helpers {
            h.abort();
        }
        let waiting = session.sync().drain();
        if !waiting.is_empty() {
            session.inner.metrics.waiting(-(waiting.len() as f64));
            session
                .inner
                .stats
                .send_modify(|s| s.waiting = s.waiting.saturating_sub(waiting.len()));
        }
        for _ in waiting {
            session.done();
        }
        session.ready.close();
        for runner in self.runners {
            if let Err(e) = runner.await
                && e.is_panic()
            {
                session.notify(&Error::RunnerPanicked {
                    queue: session.inner.config.app.clone(),
                    source: std::sync::Arc::new(e),
                });
            }
        }
    }
}
