use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::applier::{Applied, Applier, ApplyError, DeadLetter};
use super::versions::VersionStore;
use crate::error::{Error, ErrorNotifier, log_errors};
use crate::message::Message;
use crate::transport::{Consumer, Delivery, QueueSpec, Transport, TransportError};

/// Settings of a [`SubscriberRuntime`].
#[derive(Clone)]
pub struct SubscriberConfig {
    /// The subscriber application's name: its queue.
    pub app: String,
    /// Unacknowledged deliveries in flight.
    pub prefetch: u16,
    /// Attempts for a transiently failing message before it is dead-lettered.
    pub max_attempts: u32,
    /// Delay before the second attempt; doubles each time.
    pub retry_delay: Duration,
    pub error_notifier: ErrorNotifier,
    /// Shared applied versions (Redis) advanced after every applied message.
    pub versions: Option<Arc<dyn VersionStore>>,
}

impl SubscriberConfig {
    pub fn new(app: impl Into<String>) -> Self {
        Self {
            app: app.into(),
            prefetch: 100,
            max_attempts: 5,
            retry_delay: Duration::from_millis(20),
            error_notifier: log_errors(),
            versions: None,
        }
    }
}

/// Counters of what a subscriber did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub messages: usize,
    pub operations_applied: usize,
    pub operations_skipped: usize,
    pub operations_ignored: usize,
    pub dead_lettered: usize,
}

impl Stats {
    fn add(&mut self, a: &Applied) {
        self.messages += 1;
        self.operations_applied += a.applied;
        self.operations_skipped += a.skipped;
        self.operations_ignored += a.ignored;
    }
}

/// Consumes the subscriber application's queue and applies what arrives.
pub struct SubscriberRuntime {
    transport: Arc<dyn Transport>,
    applier: Arc<dyn Applier>,
    config: SubscriberConfig,
    stats: watch::Sender<Stats>,
    connected: watch::Sender<bool>,
}

impl SubscriberRuntime {
    pub fn new(
        transport: Arc<dyn Transport>,
        applier: Arc<dyn Applier>,
        config: SubscriberConfig,
    ) -> Self {
        Self {
            transport,
            applier,
            config,
            stats: watch::Sender::new(Stats::default()),
            connected: watch::Sender::new(false),
        }
    }

    /// Live counters, updated after every message.
    pub fn stats(&self) -> watch::Receiver<Stats> {
        self.stats.subscribe()
    }

    fn spec(&self) -> QueueSpec {
        QueueSpec {
            queue: self.config.app.clone(),
            bindings: self.applier.bindings(),
            prefetch: self.config.prefetch,
        }
    }

    /// Declares the queue and its bindings without consuming: messages published from now on
    /// are kept for this subscriber.
    pub async fn declare(&self) -> Result<(), Error> {
        self.transport
            .declare(&self.spec())
            .await
            .map_err(|e| Error::Connection(format!("declaring queue {}: {e}", self.config.app)))
    }

    async fn consumer(&self) -> Result<Box<dyn Consumer>, Error> {
        self.transport
            .consume(&self.spec())
            .await
            .map_err(|e| Error::Connection(format!("consuming queue {}: {e}", self.config.app)))
    }

    /// Runs until `shutdown` resolves; the message in flight is finished first. A lost
    /// connection is reported to the error notifier and consumption resumes, with backoff,
    /// once the transport is back (unacknowledged deliveries come back as redeliveries).
    pub async fn run(
        &self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<Stats, Error> {
        tokio::pin!(shutdown);
        let mut backoff = self.config.retry_delay;
        let max_backoff = Duration::from_secs(5);
        loop {
            let consumer = tokio::select! {
                _ = &mut shutdown => return Ok(self.stats.borrow().clone()),
                c = self.consumer() => c,
            };
            let mut consumer = match consumer {
                Ok(c) => {
                    self.connected.send_replace(true);
                    c
                }
                Err(e) => {
                    self.connected.send_replace(false);
                    (self.config.error_notifier)(&e);
                    tokio::select! {
                        _ = &mut shutdown => return Ok(self.stats.borrow().clone()),
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(max_backoff);
                    continue;
                }
            };
            loop {
                let delivery = tokio::select! {
                    _ = &mut shutdown => return Ok(self.stats.borrow().clone()),
                    d = consumer.next() => d,
                };
                match delivery {
                    Ok(d) => {
                        backoff = self.config.retry_delay;
                        self.process(d).await
                    }
                    Err(TransportError::Closed) => return Ok(self.stats.borrow().clone()),
                    Err(e) => {
                        self.connected.send_replace(false);
                        (self.config.error_notifier)(&Error::Connection(format!(
                            "queue {}: {e}; reconnecting",
                            self.config.app
                        )));
                        break;
                    }
                }
            }
        }
    }

    /// Whether the last attempt to consume succeeded and the consumer has not failed since.
    pub fn healthy(&self) -> bool {
        *self.connected.borrow() && self.transport.healthy()
    }

    /// Processes deliveries until none arrives for `idle`; for tests and synchronous harnesses.
    /// Returns the counters since this subscriber was made.
    pub async fn run_until_idle(&self, idle: Duration) -> Result<Stats, Error> {
        let mut consumer = self.consumer().await?;
        while let Ok(delivery) = tokio::time::timeout(idle, consumer.next()).await {
            match delivery {
                Ok(d) => self.process(d).await,
                Err(TransportError::Closed) => break,
                Err(e) => return Err(Error::Connection(format!("queue {}: {e}", self.config.app))),
            }
        }
        Ok(self.stats.borrow().clone())
    }

    /// Decodes, applies (with retries) and acks one delivery. Never loses it: it is acked only
    /// once applied or stored as a dead letter, and nacked for redelivery otherwise.
    pub async fn process(&self, delivery: Delivery) {
        let (error, attempts) = match Message::decode(&delivery.payload) {
            Err(e) => (e.to_string(), 1),
            Ok(message) => match self.apply_with_retries(&message).await {
                Ok(applied) => {
                    self.stats.send_modify(|s| s.add(&applied));
                    self.advance_versions(&message).await;
                    self.ack(&delivery).await;
                    return;
                }
                Err((e, attempts)) => (format!("message {}: {e}", message.id), attempts),
            },
        };
        let notified = Error::Subscriber(format!(
            "queue {} (routing key {}): {error}; dead-lettered after {attempts} attempt(s)",
            self.config.app, delivery.routing_key
        ));
        (self.config.error_notifier)(&notified);
        let letter = DeadLetter {
            queue: self.config.app.clone(),
            routing_key: delivery.routing_key.clone(),
            payload: delivery.payload.clone(),
            error,
            attempts,
            at_ms: crate::now_ms(),
        };
        match self.applier.dead_letter(letter).await {
            Ok(()) => {
                self.stats.send_modify(|s| s.dead_lettered += 1);
                self.ack(&delivery).await;
            }
            Err(e) => {
                (self.config.error_notifier)(&Error::Subscriber(format!(
                    "could not store a dead letter ({e}); the message is requeued"
                )));
                if let Err(e) = delivery.nack(true).await {
                    (self.config.error_notifier)(&Error::Connection(format!("nack: {e}")));
                }
            }
        }
    }

    /// Publishes progress to the shared version store; the database stays the truth, so a
    /// failure here is reported, not fatal.
    async fn advance_versions(&self, message: &Message) {
        let Some(store) = &self.config.versions else {
            return;
        };
        let versions: Vec<(String, u64)> = message
            .operations
            .iter()
            .map(|op| (op.key(), op.version))
            .collect();
        if let Err(e) = store.advance(&versions).await {
            (self.config.error_notifier)(&e);
        }
    }

    async fn apply_with_retries(&self, message: &Message) -> Result<Applied, (ApplyError, u32)> {
        let mut delay = self.config.retry_delay;
        let mut attempt = 1;
        loop {
            match self.applier.apply(message).await {
                Ok(a) => return Ok(a),
                Err(e @ ApplyError::Permanent(_)) => return Err((e, attempt)),
                Err(e) if attempt >= self.config.max_attempts.max(1) => return Err((e, attempt)),
                Err(e) => {
                    tracing::warn!(message = %message.id, attempt, error = %e, "apply failed, retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
            }
        }
    }

    async fn ack(&self, delivery: &Delivery) {
        if let Err(e) = delivery.ack().await {
            // The effect is stored with its version, so the redelivery this causes is skipped.
            (self.config.error_notifier)(&Error::Connection(format!(
                "ack on queue {}: {e}",
                self.config.app
            )));
        }
    }
}
