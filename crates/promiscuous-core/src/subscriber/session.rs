//! One consumer session: the pump hands each delivery to the synchronizer, which releases it to
//! the runners once its dependencies are processed. Versions it does not know are looked up in
//! the database and the shared store; versions processed elsewhere arrive as wake-ups from the
//! shared store; a timer releases timed-out messages (recovery) at their deadline and, every
//! `recheck_interval`, looks up again what waiting messages need (a safety net for lost
//! wake-ups) and polls the queue depth. It sleeps until the next of these, never more often.
//!
//! A session ends when its consumer does (shutdown, idle, lost connection): messages being
//! applied are finished, the others are dropped unacknowledged and the broker redelivers them.
//!
//! Uses `processing` (what a runner does with one message), the `synchronizer` and `trust`;
//! the runtime above uses this module, never the other way round.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering as Atomic};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;
use tracing::field::Empty;

use super::config::{MAX_RECONNECT_DELAY, MIN_RECHECK_INTERVAL, OrderingMode};
use super::metrics::Outcome;
use super::processing::{Job, Shared};
use super::synchronizer::{Released, Requirements, Submitted, Synchronizer};
use super::trust;
use super::versions::VersionStore;
use crate::board::{Need, Waiting};
use crate::error::Error;
use crate::message::Message;
use crate::transport::Delivery;

pub(super) struct Session {
    pub inner: Arc<Shared>,
    sync: Mutex<Synchronizer<Job>>,
    ready: async_channel::Sender<Released<Job>>,
    /// Deliveries submitted and not yet finished (waiting, ready or being applied).
    outstanding: AtomicUsize,
    idle: Notify,
    /// Tells the timer that a message waits with a deadline while none did before.
    deadline_set: Notify,
    stopping: AtomicBool,
    /// How often the timer woke up (to check that an idle session sleeps).
    #[cfg(test)]
    wakeups: AtomicUsize,
}

/// The running parts of a session.
pub(super) struct Running {
    session: Arc<Session>,
    runners: Vec<JoinHandle<()>>,
    helpers: Vec<JoinHandle<()>>,
}

impl Session {
    /// Starts the runners and helpers of a new session.
    pub fn start(inner: Arc<Shared>) -> Running {
        let (ready, queue) = async_channel::unbounded();
        let session = Arc::new(Session {
            sync: Mutex::new(Synchronizer::new(inner.config.dependency_timeout)),
            inner,
            ready,
            outstanding: AtomicUsize::new(0),
            idle: Notify::new(),
            deadline_set: Notify::new(),
            stopping: AtomicBool::new(false),
            #[cfg(test)]
            wakeups: AtomicUsize::new(0),
        });
        // Counts are at least 1: the runtime checked its config.
        let runners = (0..session.inner.config.workers)
            .map(|worker| {
                let (session, queue) = (session.clone(), queue.clone());
                tokio::spawn(async move {
                    while let Ok(first) = queue.recv().await {
                        // What else is ready goes with it, in one transaction.
                        let mut batch = vec![first];
                        let most = if session.inner.applier.batches() {
                            session.inner.config.batch
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
        if session.inner.config.ordering == OrderingMode::Causal
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
        self.inner.notify(e);
    }

    /// The messages the synchronizer holds (at most `limit`, longest waiting first), with what
    /// each waits for.
    pub fn waiting(&self, limit: usize) -> Vec<Waiting> {
        let now = tokio::time::Instant::now();
        self.sync()
            .held(now, limit)
            .into_iter()
            .map(|held| Waiting {
                message_id: match &held.job.message {
                    Ok(m) => m.id.clone(),
                    Err(_) => String::new(),
                },
                routing_key: held.job.delivery.routing_key.clone(),
                waited_ms: held.waited.as_millis() as u64,
                needs: held
                    .needs
                    .into_iter()
                    .map(|(key, version, have)| Need { key, version, have })
                    .collect(),
                behind_writers: held.behind,
                recovering: held.expired,
            })
            .collect()
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
            (Ok(m), OrderingMode::Causal) => {
                Requirements::causal(m, |app| self.inner.follows_app(app))
            }
            _ => Requirements::default(),
        };
        let job = Job { delivery, message };
        let submitted = {
            let mut sync = self.sync();
            let had_deadline = sync.next_deadline().is_some();
            let submitted = sync.submit(job, requirements, Instant::now());
            if let Submitted::Parked { .. } = submitted {
                // A later arrival's deadline is never earlier than those already set: the
                // timer needs telling only when it had none.
                if !had_deadline {
                    self.deadline_set.notify_one();
                }
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
        // Sent together: one wait for the whole batch, not one per delivery.
        futures_util::future::join_all(
            together
                .iter()
                .map(|r| self.inner.acknowledge(&r.job, false)),
        )
        .await;
        for _ in &together {
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

    /// Releases timed-out messages at their deadline; every `recheck_interval`, looks up again
    /// what waiting messages need and polls the queue depth. Sleeps until the earlier of the
    /// two, or until a first deadline is set.
    async fn tick(self: Arc<Self>) {
        let config = &self.inner.config;
        // A zero interval would have the timer spin.
        let interval = config.recheck_interval.max(MIN_RECHECK_INTERVAL);
        let mut next_recheck = Instant::now() + interval;
        loop {
            let wake = match self.sync().next_deadline() {
                Some(deadline) => deadline.min(next_recheck),
                None => next_recheck,
            };
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                // A deadline now exists: sleep until it instead.
                _ = self.deadline_set.notified() => continue,
            }
            #[cfg(test)]
            self.wakeups.fetch_add(1, Atomic::SeqCst);
            let now = Instant::now();
            let released = self.sync().expire(now);
            self.dispatch(released);
            if now >= next_recheck {
                next_recheck = now + interval;
                let keys = self.sync().recheck();
                self.spawn_lookup(keys);
                let inner = self.inner.clone();
                tokio::spawn(async move { inner.poll_queue_depth().await });
            }
        }
    }

    /// Learns the versions other workers process, from the shared store's wake-ups.
    async fn listen(self: Arc<Self>, store: Arc<dyn VersionStore>) {
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
            backoff = (backoff * 2).min(MAX_RECONNECT_DELAY);
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::SeqCst;

    use async_trait::async_trait;
    use serde_json::{Map, json};

    use super::*;
    use crate::BoxError;
    use crate::message::{Dependencies, Operation, OperationKind};
    use crate::subscriber::applier::{Applied, Applier, ApplyError, DeadLetter};
    use crate::subscriber::config::SubscriberConfig;
    use crate::subscriber::stats::Stats;
    use crate::transport::{Acker, InProcess, TransportError};

    /// Counts what it applies, after failing transiently `failures` times; knows no version
    /// (every lookup answers 0).
    #[derive(Default)]
    struct Counting {
        applied: AtomicUsize,
        failures: AtomicUsize,
    }

    #[async_trait]
    impl Applier for Counting {
        fn bindings(&self) -> Vec<String> {
            vec!["a".into()]
        }

        async fn apply(&self, _: &Message) -> Result<Applied, ApplyError> {
            let fail = self
                .failures
                .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1));
            if fail.is_ok() {
                return Err(ApplyError::transient("down"));
            }
            self.applied.fetch_add(1, SeqCst);
            Ok(Applied {
                applied: 1,
                ..Applied::default()
            })
        }

        async fn versions(&self, keys: &[String]) -> Result<Vec<u64>, BoxError> {
            Ok(vec![0; keys.len()])
        }

        async fn dead_letter(&self, _: DeadLetter) -> Result<(), BoxError> {
            Ok(())
        }
    }

    struct NoBroker;

    #[async_trait]
    impl Acker for NoBroker {
        async fn ack(&self) -> Result<(), TransportError> {
            Ok(())
        }

        async fn nack(&self, _: bool) -> Result<(), TransportError> {
            Ok(())
        }
    }

    /// A delivery of `a/u/1` at `version`, from its owner.
    fn delivery(version: u64) -> Delivery {
        let message = Message {
            protocol: crate::message::PROTOCOL_VERSION,
            app: "a".into(),
            id: format!("m{version}"),
            timestamp: 0,
            host: "h".into(),
            current_user_id: None,
            dependencies: Dependencies::default(),
            operations: vec![Operation {
                endpoint: "a/u".into(),
                types: vec!["U".into()],
                id: json!(1),
                operation: OperationKind::Update,
                version,
                attributes: Some(Map::new()),
                changes: None,
                sync: false,
            }],
        };
        Delivery {
            routing_key: "a".into(),
            payload: message.encode(),
            user_id: Some("a".into()),
            redelivered: false,
            acker: Box::new(NoBroker),
        }
    }

    /// A session with a 10 s dependency timeout and an hourly recheck.
    fn session() -> (Running, Arc<Counting>) {
        session_with(Counting::default(), |_| {})
    }

    fn session_with(
        applier: Counting,
        configure: impl FnOnce(&mut SubscriberConfig),
    ) -> (Running, Arc<Counting>) {
        let applier = Arc::new(applier);
        let mut config = SubscriberConfig::new("s");
        config.dependency_timeout = Duration::from_secs(10);
        config.recheck_interval = Duration::from_secs(3600);
        config.error_notifier = Arc::new(|_| {});
        configure(&mut config);
        let shared = Shared::new(Arc::new(InProcess::new()), applier.clone(), config);
        (Session::start(Arc::new(shared)), applier)
    }

    /// Waits (an hour at most) until `done(stats)`; returns the time since `since`.
    async fn until(
        stats: &mut tokio::sync::watch::Receiver<Stats>,
        since: Instant,
        done: impl Fn(&Stats) -> bool,
    ) -> Duration {
        tokio::time::timeout(Duration::from_secs(3600), stats.wait_for(|s| done(s)))
            .await
            .expect("done within an hour")
            .expect("the session is running");
        since.elapsed()
    }

    /// With paused time, a timer waking periodically would be seen: the clock jumps from one
    /// wake-up to the next.
    #[tokio::test(start_paused = true)]
    async fn an_idle_session_does_not_wake_up() {
        let (running, _) = session();
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert_eq!(running.session().wakeups.load(SeqCst), 0);
        running.stop().await;
    }

    /// A message waiting for a version that never comes is released at its deadline, by one
    /// wake-up of the timer, not on the next tick of a grid.
    #[tokio::test(start_paused = true)]
    async fn a_deadline_fires_on_time() {
        let (running, applier) = session();
        // Off any 5-100 ms grid a periodic timer would follow.
        tokio::time::sleep(Duration::from_millis(37)).await;
        let mut stats = running.session().inner.stats.subscribe();
        let submitted = Instant::now();
        // Version 2 waits for version 1, which never arrives.
        running.session().submit(delivery(2));
        tokio::time::sleep(Duration::from_millis(9_990)).await;
        assert_eq!(applier.applied.load(SeqCst), 0);
        assert_eq!(stats.borrow().waiting, 1);
        let took = until(&mut stats, submitted, |s| s.recovered == 1).await;
        assert!(
            took >= Duration::from_secs(10) && took <= Duration::from_millis(10_002),
            "released after {took:?}"
        );
        assert_eq!(applier.applied.load(SeqCst), 1);
        assert_eq!(running.session().wakeups.load(SeqCst), 1);
        running.stop().await;
    }

    /// The retry delay doubles up to [`MAX_RETRY_DELAY`](crate::subscriber::MAX_RETRY_DELAY)
    /// (30 s): 20 s, 30 s, 30 s here, where doubling alone would wait 20, 40 and 80 s.
    #[tokio::test(start_paused = true)]
    async fn the_retry_delay_is_capped() {
        let failing = Counting {
            failures: AtomicUsize::new(3),
            ..Counting::default()
        };
        let (running, applier) = session_with(failing, |c| {
            c.max_attempts = 4;
            c.retry_delay = Duration::from_secs(20);
        });
        let mut stats = running.session().inner.stats.subscribe();
        let submitted = Instant::now();
        running.session().submit(delivery(1));
        let took = until(&mut stats, submitted, |s| s.messages == 1).await;
        assert!(
            took >= Duration::from_secs(80) && took < Duration::from_secs(81),
            "applied after {took:?}"
        );
        assert_eq!(applier.applied.load(SeqCst), 1);
        running.stop().await;
    }
}
