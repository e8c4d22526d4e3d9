//! A subscriber's settings ([`SubscriberConfig`], with [`OrderingMode`] and the backoff caps).
//! Uses the version store's type and the error type (to refuse a setting).

use std::sync::Arc;
use std::time::Duration;

use super::versions::VersionStore;
use crate::board::Board;
use crate::error::{Error, ErrorNotifier, log_errors};

/// Longest wait between two attempts to apply a message (the retry delay doubles up to it).
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// Longest wait before consuming again after a lost connection, or subscribing again to the
/// shared store's wake-ups (the delay starts at `retry_delay` and doubles up to it).
pub const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);

/// Shortest `recheck_interval` the timer honours (a shorter one is taken as this).
pub const MIN_RECHECK_INTERVAL: Duration = Duration::from_millis(5);

/// How a subscriber orders the messages it applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OrderingMode {
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
    /// Partitions of the queue (RabbitMQ): 1 (the default) for one queue named `app`; P > 1
    /// for P queues `app.0` … `app.{P-1}`, fed by a consistent-hash exchange on the instance
    /// key, each with a single active consumer, so that the application's worker processes
    /// share the load over queues that may live on different nodes (see README, "Partitioned
    /// queues"). Every worker of an app must use the same P. At most
    /// [`MAX_PARTITIONS`](crate::transport::MAX_PARTITIONS).
    pub partitions: u16,
    /// Runners applying messages concurrently (messages writing one instance never run
    /// together); 4 by default.
    pub workers: usize,
    /// Most messages a runner applies in one transaction (those ready at once, independent of
    /// each other); 64 by default, 1 for one transaction per message.
    pub batch: usize,
    /// Causal (the default) or none at all (see [`OrderingMode`]).
    pub ordering: OrderingMode,
    /// Recovery: how long a message waits for its dependencies before it is applied without
    /// them (reported as [`Error::Recovered`](crate::Error::Recovered)); 10 s by default. A missing
    /// dependency never blocks forever.
    pub dependency_timeout: Duration,
    /// How often versions that waiting messages need are looked up again (database, shared
    /// store), in case a wake-up was lost or another worker has no shared store, and the queue
    /// depth polled; 1 s by default, at least [`MIN_RECHECK_INTERVAL`].
    pub recheck_interval: Duration,
    /// Attempts for a transiently failing message before it is dead-lettered.
    pub max_attempts: u32,
    /// Delay before the second attempt; doubles each time, up to [`MAX_RETRY_DELAY`].
    pub retry_delay: Duration,
    pub error_notifier: ErrorNotifier,
    /// Processed versions shared with the application's other worker processes (Redis), with
    /// wake-ups; advanced after every processed message.
    pub versions: Option<Arc<dyn VersionStore>>,
    /// Where this worker's report (settings, counters, waiting messages, last error) is shared
    /// with other processes, every second (see [`board`](crate::board)); it is always on this
    /// process's board. `None` by default.
    pub board: Option<Arc<dyn Board>>,
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
            partitions: 1,
            workers: 4,
            batch: 64,
            ordering: OrderingMode::Causal,
            dependency_timeout: Duration::from_secs(10),
            recheck_interval: Duration::from_secs(1),
            max_attempts: 5,
            retry_delay: Duration::from_millis(20),
            error_notifier: log_errors(),
            versions: None,
            board: None,
            require_user_id: false,
        }
    }

    /// The one rule for counts: `prefetch`, `workers`, `batch` and `max_attempts` must be at
    /// least 1. A zero is refused (naming the setting), never silently raised: the subscriber
    /// builder checks it before anything starts.
    pub fn check(&self) -> Result<(), Error> {
        let counts = [
            ("prefetch", usize::from(self.prefetch)),
            ("partitions", usize::from(self.partitions)),
            ("workers", self.workers),
            ("batch", self.batch),
            ("max_attempts", self.max_attempts as usize),
        ];
        if let Some(&(setting, value)) = counts.iter().find(|(_, n)| *n == 0) {
            return Err(Error::Setting {
                app: self.app.clone(),
                setting,
                value: value as u64,
                rule: "must be at least 1",
            });
        }
        if self.partitions > crate::transport::MAX_PARTITIONS {
            return Err(Error::Setting {
                app: self.app.clone(),
                setting: "partitions",
                value: u64::from(self.partitions),
                rule: "must be at most 256",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::SubscriberConfig;

    #[test]
    fn every_count_must_be_at_least_one() {
        assert!(SubscriberConfig::new("s").check().is_ok());
        type Zero = fn(&mut SubscriberConfig);
        let zeros: [(&str, Zero); 5] = [
            ("prefetch", |c| c.prefetch = 0),
            ("partitions", |c| c.partitions = 0),
            ("workers", |c| c.workers = 0),
            ("batch", |c| c.batch = 0),
            ("max_attempts", |c| c.max_attempts = 0),
        ];
        for (name, zero) in zeros {
            let mut config = SubscriberConfig::new("s");
            zero(&mut config);
            let e = config.check().expect_err(name);
            assert!(e.to_string().contains(name), "{name}: {e}");
        }
    }

    #[test]
    fn partitions_are_bounded() {
        let mut config = SubscriberConfig::new("s");
        config.partitions = 256;
        assert!(config.check().is_ok());
        config.partitions = 257;
        let e = config.check().unwrap_err().to_string();
        assert!(e.contains("partitions") && e.contains("257"), "{e}");
    }
}
