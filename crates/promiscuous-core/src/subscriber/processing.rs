//! What a session's runners do with one message, below the session: apply it with retries or
//! store it as a dead letter ([`Shared::process`]), record the outcome (stats, metrics, span),
//! publish the processed versions to the shared store and ack ([`Shared::settle`]). Also what
//! the runtime and its sessions share ([`Shared`]: transport, applier, config, counters).
//!
//! Uses the leaf modules (`applier`, `config`, `metrics`, `versions` through the config) and
//! the transport; nothing here knows sessions or the runtime.

use std::sync::Arc;

use tokio::sync::watch;

use super::applier::{Applied, Applier, ApplyError, DeadLetter};
use super::config::{MAX_RETRY_DELAY, OrderingMode, SubscriberConfig};
use super::metrics::{Metrics, Outcome, lag_since};
use super::stats::Stats;
use crate::board::ErrorSlot;
use crate::error::{Error, Report, Unapplied};
use crate::message::{DecodeError, Message};
use crate::transport::{Delivery, Transport, queue_names, topic_matches};

/// A delivery and what it decoded to.
pub(super) struct Job {
    pub delivery: Delivery,
    pub message: Result<Message, DecodeError>,
}

/// What the sessions of a runtime share.
pub(super) struct Shared {
    pub transport: Arc<dyn Transport>,
    pub applier: Arc<dyn Applier>,
    pub config: SubscriberConfig,
    pub stats: watch::Sender<Stats>,
    /// Reported through the `metrics` facade, labelled with the app.
    pub metrics: Metrics,
    /// Whether the runtime's last attempt to consume succeeded and has not failed since.
    pub connected: watch::Sender<bool>,
    /// The queue's binding patterns (publisher apps).
    pub bindings: Vec<String>,
    /// The last error reported, for the board.
    pub last_error: ErrorSlot,
}

/// What processing a message came to.
pub(super) struct Processed {
    /// The versions it processed (applied, skipped, ignored or dead-lettered); none if it goes
    /// back to the broker.
    pub versions: Vec<(String, u64)>,
    requeue: bool,
}

impl Shared {
    pub fn new(
        transport: Arc<dyn Transport>,
        applier: Arc<dyn Applier>,
        config: SubscriberConfig,
    ) -> Self {
        let bindings = applier.bindings();
        Self {
            transport,
            applier,
            metrics: Metrics::new(&config.app),
            config,
            stats: watch::Sender::new(Stats::default()),
            connected: watch::Sender::new(false),
            bindings,
            last_error: ErrorSlot::default(),
        }
    }
}

impl Shared {
    /// Whether the queue receives the messages of publisher app `app`.
    pub fn follows_app(&self, app: &str) -> bool {
        self.bindings.iter().any(|b| topic_matches(b, app))
    }

    /// Reports an error to the notifier and keeps it as the last error (the board shows it).
    pub fn notify(&self, e: &Error) {
        self.last_error.record(e);
        (self.config.error_notifier)(e);
    }

    /// Applies a message (with retries), or stores it as a dead letter. Records its outcome
    /// and attempts on `span` (its `promiscuous.apply` span) and in the metrics.
    pub async fn process(&self, job: &Job, span: &tracing::Span) -> Processed {
        let versions = |m: &Message| -> Vec<(String, u64)> {
            m.operations
                .iter()
                .map(|op| (op.key(), op.version))
                .collect()
        };
        let (cause, attempts) = match &job.message {
            Err(e) => (Unapplied::Undecodable(e.clone()), 1),
            Ok(message) => {
                let started = std::time::Instant::now();
                let result = self.apply_with_retries(message, span).await;
                match result {
                    Ok(applied) => {
                        return self.applied(message, &applied, started.elapsed(), span);
                    }
                    Err((e, attempts)) => {
                        self.metrics.apply_time(started.elapsed());
                        let cause = Unapplied::Apply {
                            message_id: message.id.clone(),
                            source: e,
                        };
                        (cause, attempts)
                    }
                }
            }
        };
        let delivery = &job.delivery;
        let error = Report(&cause).to_string();
        self.notify(&Error::DeadLettered {
            queue: self.config.app.clone(),
            routing_key: delivery.routing_key.clone(),
            attempts,
            source: Box::new(cause),
        });
        // Dead-lettered counts as processed: what depends on it must not wait, here (the
        // synchronizer), in the other workers (the shared store) and after a restart (the
        // applier records them with the letter). Nothing is known of a message that did not
        // decode, or not trusted of one that was not admitted.
        let processed = job.message.as_ref().map(versions).unwrap_or_default();
        let letter = DeadLetter {
            queue: self.config.app.clone(),
            routing_key: delivery.routing_key.clone(),
            user_id: delivery.user_id.clone(),
            payload: delivery.payload.clone(),
            error,
            attempts,
            at_ms: crate::now_ms(),
            versions: processed.clone(),
        };
        match self.applier.dead_letter(letter).await {
            Ok(()) => {
                self.metrics.outcome(Outcome::DeadLettered);
                span.record("outcome", Outcome::DeadLettered.as_str());
                self.stats.send_modify(|s| s.dead_lettered += 1);
                Processed {
                    versions: processed,
                    requeue: false,
                }
            }
            Err(e) => {
                self.metrics.outcome(Outcome::Requeued);
                span.record("outcome", Outcome::Requeued.as_str());
                self.notify(&Error::StoreDeadLetter {
                    queue: self.config.app.clone(),
                    source: e.into(),
                });
                Processed {
                    versions: Vec::new(),
                    requeue: true,
                }
            }
        }
    }

    /// Records that `message` was applied (in `took`, retries or its batch included): metrics,
    /// stats, its span; returns what it processed.
    pub fn applied(
        &self,
        message: &Message,
        applied: &Applied,
        took: std::time::Duration,
        span: &tracing::Span,
    ) -> Processed {
        self.metrics.apply_time(took);
        let lag = lag_since(message.timestamp);
        self.metrics.lag(lag);
        let outcome = if applied.applied > 0 {
            Outcome::Applied
        } else {
            Outcome::Skipped
        };
        self.metrics.outcome(outcome);
        span.record("outcome", outcome.as_str());
        self.stats.send_modify(|s| {
            s.add(applied);
            s.last_lag = Some(lag);
        });
        Processed {
            versions: message
                .operations
                .iter()
                .map(|op| (op.key(), op.version))
                .collect(),
            requeue: false,
        }
    }

    /// Asks the transport how many messages wait in the queue (in all its partitions); reports
    /// it (stats, gauge).
    pub async fn poll_queue_depth(&self) {
        let mut depth = 0;
        for queue in queue_names(&self.config.app, self.config.partitions) {
            match self.transport.queue_depth(&queue).await {
                Ok(Some(d)) => depth += d,
                _ => return,
            }
        }
        {
            let mut previous = None;
            self.stats.send_modify(|s| {
                previous = s.queue_depth.replace(depth);
            });
            let delta = depth as f64 - previous.unwrap_or(0) as f64;
            if delta != 0.0 {
                self.metrics.queue_depth(delta);
            }
        }
    }

    /// Publishes progress to the shared version store, then acks (or requeues). The database
    /// stays the truth, so a failure of the store is reported, not fatal.
    pub async fn settle(&self, job: &Job, processed: Processed) {
        self.advance(&processed.versions).await;
        self.acknowledge(job, processed.requeue).await;
    }

    /// Publishes processed versions to the shared version store (one round trip for all).
    pub async fn advance(&self, versions: &[(String, u64)]) {
        if let Some(store) = &self.config.versions
            && self.config.ordering == OrderingMode::Causal
            && !versions.is_empty()
            && let Err(e) = store.advance(versions).await
        {
            self.notify(&e);
        }
    }

    /// Acks the delivery, or gives it back to the broker with `requeue`.
    pub async fn acknowledge(&self, job: &Job, requeue: bool) {
        let settled = if requeue {
            job.delivery.nack(true).await
        } else {
            job.delivery.ack().await
        };
        if let Err(e) = settled {
            // The effect is stored with its version, so the redelivery this causes is skipped.
            self.notify(&Error::Settle {
                queue: self.config.app.clone(),
                requeue,
                source: e,
            });
        }
    }

    async fn apply_with_retries(
        &self,
        message: &Message,
        span: &tracing::Span,
    ) -> Result<Applied, (ApplyError, u32)> {
        let mut delay = self.config.retry_delay;
        let mut attempt = 1;
        loop {
            span.record("attempt", attempt);
            match self.applier.apply(message).await {
                Ok(a) => return Ok(a),
                Err(e) if e.is_permanent() => return Err((e, attempt)),
                Err(e) if attempt >= self.config.max_attempts => return Err((e, attempt)),
                Err(e) => {
                    tracing::warn!(message = %message.id, attempt, error = %Report(&e), "apply failed, retrying");
                    self.metrics.retry();
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_RETRY_DELAY);
                    attempt += 1;
                }
            }
        }
    }
}
