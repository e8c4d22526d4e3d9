//! Seeded fault injection for randomized tests of the pipeline.
//!
//! - [`Recording`]: a transport that remembers every message published through it, decoded, in
//!   publish order (what a [`History`](crate::history::History) needs as the publisher's side).
//! - [`Chaos`]: a transport that publishes some messages a second time, later (as a relay that
//!   crashed between the broker's confirm and the outbox delete would), holds some back and
//!   publishes them after later ones (out-of-order arrival), and makes consumers lose their
//!   connection now and then (the broker then redelivers what was not acked).
//! - [`Delayed`]: an applier that waits a random while before each apply, so that concurrent
//!   runners finish in every possible order, and tells callbacks which worker runs them
//!   ([`current_worker`]).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use promiscuous_core::BoxError;
use promiscuous_core::Message;
use promiscuous_core::subscriber::{Applied, Applier, ApplyError, DeadLetter};
use promiscuous_core::transport::{
    Consumer, Delivery, Outgoing, QueueSpec, Transport, TransportError,
};

use crate::rng::SplitMix64;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A seeded random source shared by clones.
#[derive(Clone)]
pub struct Dice(Arc<Mutex<SplitMix64>>);

impl Dice {
    pub fn new(seed: u64) -> Self {
        Self(Arc::new(Mutex::new(SplitMix64::new(seed))))
    }

    /// `true` with probability `p`.
    pub fn chance(&self, p: f64) -> bool {
        (lock(&self.0).next_u64() % 1_000_000) < (p * 1_000_000.0) as u64
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&self, n: usize) -> usize {
        lock(&self.0).below(n)
    }

    /// A duration in `0..=max`, in microseconds steps.
    pub fn up_to(&self, max: Duration) -> Duration {
        let micros = max.as_micros() as usize;
        Duration::from_micros(self.below(micros + 1) as u64)
    }
}

/// Remembers what is published through it; see the [module documentation](self).
#[derive(Clone)]
pub struct Recording<T> {
    inner: T,
    published: Arc<Mutex<Vec<Message>>>,
}

impl<T: Transport + Clone> Recording<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            published: Arc::default(),
        }
    }

    /// Every message published so far, in publish order (undecodable payloads left out).
    pub fn published(&self) -> Vec<Message> {
        lock(&self.published).clone()
    }
}

#[async_trait]
impl<T: Transport + Clone> Transport for Recording<T> {
    async fn publish(&self, messages: &[Outgoing]) -> Result<(), TransportError> {
        self.inner.publish(messages).await?;
        let decoded = messages
            .iter()
            .filter_map(|m| Message::decode(&m.payload).ok());
        lock(&self.published).extend(decoded);
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
}

/// How often [`Chaos`] strikes.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    /// Probability that a published message is published a second time, a little later.
    pub duplicate: f64,
    /// Probability that a published message is held back and published a little later only,
    /// after messages published after it.
    pub reorder: f64,
    /// Probability, per delivery, that the consumer loses its connection instead.
    pub disconnect: f64,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            duplicate: 0.05,
            reorder: 0.05,
            disconnect: 0.01,
        }
    }
}

/// Duplicates publishes and drops consumer connections; see the [module documentation](self).
#[derive(Clone)]
pub struct Chaos<T> {
    inner: T,
    dice: Dice,
    faults: Faults,
    /// Copies and held-back messages waiting to be published.
    later: Arc<Mutex<Vec<Outgoing>>>,
}

impl<T: Transport + Clone> Chaos<T> {
    pub fn new(inner: T, seed: u64, faults: Faults) -> Self {
        Self {
            inner,
            dice: Dice::new(seed),
            faults,
            later: Arc::default(),
        }
    }

    /// Publishes the copies and held-back messages still waiting.
    pub async fn flush(&self) -> Result<(), TransportError> {
        let copies = std::mem::take(&mut *lock(&self.later));
        self.inner.publish(&copies).await
    }
}

#[async_trait]
impl<T: Transport + Clone> Transport for Chaos<T> {
    async fn publish(&self, messages: &[Outgoing]) -> Result<(), TransportError> {
        let mut batch = Vec::with_capacity(messages.len());
        let copies = {
            let mut later = lock(&self.later);
            for m in messages {
                if self.dice.chance(self.faults.reorder) {
                    later.push(m.clone());
                    continue;
                }
                batch.push(m.clone());
                if self.dice.chance(self.faults.duplicate) {
                    later.push(m.clone());
                }
            }
            if !later.is_empty() && self.dice.chance(0.3) {
                std::mem::take(&mut *later)
            } else {
                Vec::new()
            }
        };
        batch.extend(copies);
        self.inner.publish(&batch).await
    }

    async fn consume(&self, spec: &QueueSpec) -> Result<Box<dyn Consumer>, TransportError> {
        Ok(Box::new(ChaosConsumer {
            inner: self.inner.consume(spec).await?,
            dice: self.dice.clone(),
            disconnect: self.faults.disconnect,
        }))
    }

    async fn declare(&self, spec: &QueueSpec) -> Result<(), TransportError> {
        self.inner.declare(spec).await
    }

    fn healthy(&self) -> bool {
        self.inner.healthy()
    }
}

struct ChaosConsumer {
    inner: Box<dyn Consumer>,
    dice: Dice,
    disconnect: f64,
}

#[async_trait]
impl Consumer for ChaosConsumer {
    async fn next(&mut self) -> Result<Delivery, TransportError> {
        let delivery = self.inner.next().await?;
        if self.dice.chance(self.disconnect) {
            // The delivery is dropped unacknowledged with the consumer: redelivered later.
            return Err(TransportError::unavailable("connection reset (chaos)"));
        }
        Ok(delivery)
    }
}

tokio::task_local! {
    static WORKER: usize;
}

/// The worker (as given to [`Delayed::new`]) applying the current message, when called from a
/// callback run by a [`Delayed`] applier.
pub fn current_worker() -> Option<usize> {
    WORKER.try_with(|w| *w).ok()
}

type DelayFn = dyn Fn(&Message, &Dice) -> Duration + Send + Sync;

/// Delays every apply; see the [module documentation](self).
pub struct Delayed<A> {
    inner: A,
    worker: usize,
    dice: Dice,
    delay: Box<DelayFn>,
    batches: bool,
}

impl<A: Applier> Delayed<A> {
    /// Waits up to `max` (uniformly at random) before each apply of worker `worker`.
    pub fn new(inner: A, worker: usize, seed: u64, max: Duration) -> Self {
        Self::with(inner, worker, seed, move |_, dice| dice.up_to(max))
    }

    /// Waits `delay(message, dice)` before each apply.
    pub fn with(
        inner: A,
        worker: usize,
        seed: u64,
        delay: impl Fn(&Message, &Dice) -> Duration + Send + Sync + 'static,
    ) -> Self {
        Self {
            inner,
            worker,
            dice: Dice::new(seed),
            delay: Box::new(delay),
            batches: false,
        }
    }

    /// Lets runners hand it several messages at once when the inner applier takes batches
    /// (one wait, the longest of the batch's delays, before the whole batch).
    pub fn batching(mut self) -> Self {
        self.batches = true;
        self
    }
}

#[async_trait]
impl<A: Applier> Applier for Delayed<A> {
    fn bindings(&self) -> Vec<String> {
        self.inner.bindings()
    }

    async fn apply(&self, message: &Message) -> Result<Applied, ApplyError> {
        let pause = (self.delay)(message, &self.dice);
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        WORKER.scope(self.worker, self.inner.apply(message)).await
    }

    fn batches(&self) -> bool {
        self.batches && self.inner.batches()
    }

    async fn apply_batch(&self, messages: &[&Message]) -> Option<Result<Vec<Applied>, ApplyError>> {
        if !self.batches() {
            return None;
        }
        let pause = messages
            .iter()
            .map(|m| (self.delay)(m, &self.dice))
            .max()
            .unwrap_or_default();
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        WORKER
            .scope(self.worker, self.inner.apply_batch(messages))
            .await
    }

    async fn versions(&self, keys: &[String]) -> Result<Vec<u64>, BoxError> {
        self.inner.versions(keys).await
    }

    async fn dead_letter(&self, letter: DeadLetter) -> Result<(), BoxError> {
        self.inner.dead_letter(letter).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use promiscuous_core::transport::InProcess;

    fn out(n: usize) -> Outgoing {
        Outgoing {
            routing_key: "a".into(),
            payload: n.to_string().into_bytes(),
            partition_key: None,
        }
    }

    #[tokio::test]
    async fn chaos_duplicates_reorders_and_disconnects() {
        let broker = InProcess::new();
        let spec = QueueSpec {
            queue: "q".into(),
            bindings: vec!["a".into()],
            prefetch: 1000,
            partitions: 1,
        };
        broker.declare(&spec).await.unwrap();
        let chaos = Chaos::new(
            broker.clone(),
            7,
            Faults {
                duplicate: 0.5,
                reorder: 0.2,
                disconnect: 0.2,
            },
        );
        for n in 0..100 {
            chaos.publish(&[out(n)]).await.unwrap();
        }
        chaos.flush().await.unwrap();
        let (ready, _) = broker.queue_depth("q");
        assert!(ready > 120, "about half duplicated: {ready}");
        // Read through the broker itself: every message is there, some out of order.
        let mut plain = broker.consume(&spec).await.unwrap();
        let mut order = Vec::new();
        for _ in 0..ready {
            let d = plain.next().await.unwrap();
            let n: usize = String::from_utf8(d.payload.clone())
                .unwrap()
                .parse()
                .unwrap();
            order.push(n);
            d.ack().await.unwrap();
        }
        drop(plain);
        let mut distinct = order.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 100, "nothing lost");
        assert!(order.windows(2).any(|w| w[0] > w[1]), "some arrive late");
        // Through the chaos consumer, connections get lost.
        for n in 0..100 {
            broker.publish(&[out(n)]).await.unwrap();
        }
        let mut consumer = chaos.consume(&spec).await.unwrap();
        let mut lost = 0;
        for _ in 0..50 {
            match consumer.next().await {
                Ok(d) => d.ack().await.unwrap(),
                Err(TransportError::Unavailable { .. }) => lost += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(lost > 0, "some connections were lost");
    }

    #[test]
    fn dice_are_deterministic() {
        let (a, b) = (Dice::new(1), Dice::new(1));
        let xs: Vec<usize> = (0..20).map(|_| a.below(100)).collect();
        let ys: Vec<usize> = (0..20).map(|_| b.below(100)).collect();
        assert_eq!(xs, ys);
        assert!(Dice::new(2).up_to(Duration::from_millis(1)) <= Duration::from_millis(1));
    }
}
