use std::sync::Arc;
use std::time::Duration;

use super::applier::Applied;
use super::versions::VersionStore;
use crate::error::{ErrorNotifier, log_errors};

/// How a subscriber orders the messages it applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Ordering {
    /// Causal order (the default): a message waits until the instances it read and the previous
    /// version of those it writes have been processed; independent messages run in parallel.
    #[default]
    Causal,
    /// No waiting at all: every message runs as soon as a runner is free. Faster, and **unsafe**:
    /// a message may be applied before what it depends on (a photo before the unfriending that
    /// preceded it), and an intermediate version of an instance may be skipped when a newer one
    /// overtakes it. Versions still keep an older state from overwriting a newer one, and each
    /// operation from taking effect twice.
    Bareback,
}

/// Settings of a [`SubscriberRuntime`](super::SubscriberRuntime).
#[derive(Clone)]
pub struct SubscriberConfig {
    /// The subscriber application's name: its queue.
    pub app: String,
    /// Unacknowledged deliveries in flight. Messages waiting for a dependency stay
    /// unacknowledged, so this must exceed how far out of order messages can arrive (see the
    /// README); 1,000 by default.
    pub prefetch: u16,
    /// Runners applying messages concurrently (messages writing one instance never run
    /// together); 4 by default.
    pub workers: usize,
    /// Most messages a runner applies in one transaction (those ready at once, independent of
    /// each other); 64 by default, 1 for one transaction per message.
    pub batch: usize,
    pub ordering: Ordering,
    /// Recovery: how long a message waits for its dependencies before it is applied without
    /// them (reported as [`Error::Recovered`](crate::Error::Recovered)); 10 s by default. A missing
    /// dependency never blocks forever.
    pub dependency_timeout: Duration,
    /// How often versions that waiting messages need are looked up again (database, shared
    /// store), in case a wake-up was lost or another worker has no shared store; 1 s by default.
    pub recheck_interval: Duration,
    /// Attempts for a transiently failing message before it is dead-lettered.
    pub max_attempts: u32,
    /// Delay before the second attempt; doubles each time.
    pub retry_delay: Duration,
    pub error_notifier: ErrorNotifier,
    /// Processed versions shared with the application's other worker processes (Redis), with
    /// wake-ups; advanced after every processed message.
    pub versions: Option<Arc<dyn VersionStore>>,
    /// Admit a message only if the broker-validated publisher user (AMQP `user_id`) is its
    /// `app`, as with one broker user per app (see README, "Security"); off by default, since
    /// a broker with a shared user (RabbitMQ's `guest`) would have every message refused. The
    /// routing key must be the message's `app` either way.
    pub require_user_id: bool,
}

impl SubscriberConfig {
    pub fn new(app: impl Into<String>) -> Self {
        Self {
            app: app.into(),
            prefetch: 1000,
            workers: 4,
            batch: 64,
            ordering: Ordering::Causal,
            dependency_timeout: Duration::from_secs(10),
            recheck_interval: Duration::from_secs(1),
            max_attempts: 5,
            retry_delay: Duration::from_millis(20),
            error_notifier: log_errors(),
            versions: None,
            require_user_id: false,
        }
    }
}

/// Counters of what a subscriber did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages processed to the end (applied, skipped or ignored).
    pub messages: usize,
    pub operations_applied: usize,
    pub operations_skipped: usize,
    pub operations_ignored: usize,
    pub dead_lettered: usize,
    /// Messages that had to wait for a dependency.
    pub waited: usize,
    /// Messages applied without some dependency, after the dependency timeout (recovery).
    pub recovered: usize,
    /// Messages applied together with others, in one transaction (see `batch`).
    pub batched: usize,
    /// Messages waiting for a dependency now (held by the synchronizer).
    pub waiting: usize,
    /// Deliveries received and not yet acknowledged now (waiting, ready or being applied).
    pub in_flight: usize,
    /// Messages ready in the queue on the broker, as last asked (every `recheck_interval`);
    /// `None` until known, or when the transport cannot tell.
    pub queue_depth: Option<u64>,
    /// Commit-to-applied lag of the last message applied or skipped: when it was processed
    /// minus its timestamp (clamped at 0).
    pub last_lag: Option<Duration>,
}

impl Stats {
    pub(super) fn add(&mut self, a: &Applied) {
        self.messages += 1;
        self.operations_applied += a.applied;
        self.operations_skipped += a.skipped;
        self.operations_ignored += a.ignored;
    }
}
