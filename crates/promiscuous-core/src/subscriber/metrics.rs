//! What a subscriber reports through the `metrics` facade (any exporter: Prometheus, StatsD…),
//! every metric labelled with the subscriber application (`app`):
//!
//! - `promiscuous_apply_seconds` (histogram): applying one message (database transaction
//!   included), from its first attempt to its last, retries and their backoff included;
//! - `promiscuous_lag_seconds` (histogram): commit to applied, now minus the message's timestamp
//!   (clamped at 0), for every message applied or skipped;
//! - `promiscuous_messages_total{outcome}` (counter): `applied` (some operation took effect),
//!   `skipped` (nothing to do: duplicates, stale versions, endpoints not followed),
//!   `dead_lettered`, `requeued` (the dead letter could not be stored); and `recovered`
//!   (released without a dependency after the timeout: also counted under its final outcome);
//! - `promiscuous_retries_total` (counter): attempts retried after a transient failure;
//! - `promiscuous_waiting_messages` (gauge): messages held by the synchronizer for a dependency;
//! - `promiscuous_in_flight_messages` (gauge): deliveries received and not yet settled (waiting,
//!   ready, or being applied), all unacknowledged;
//! - `promiscuous_queue_depth` (gauge): messages ready in the subscriber's queue on the broker,
//!   not delivered yet (asked every `recheck_interval`, where the transport can tell).
//!
//! The keys (name and labels) are built once per runtime; each report looks the metric up in
//! the recorder installed at that moment (as the `metrics` macros do), so the recorder may be
//! installed before or after the subscriber is built.

use std::time::Duration;

use metrics::{Key, Label, Level, Metadata, SharedString, Unit};

const APPLY: &str = "promiscuous_apply_seconds";
const LAG: &str = "promiscuous_lag_seconds";
const MESSAGES: &str = "promiscuous_messages_total";
const RETRIES: &str = "promiscuous_retries_total";
const WAITING: &str = "promiscuous_waiting_messages";
const IN_FLIGHT: &str = "promiscuous_in_flight_messages";
const QUEUE_DEPTH: &str = "promiscuous_queue_depth";

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// What happened to a message, as counted by `promiscuous_messages_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Applied,
    Skipped,
    DeadLettered,
    Requeued,
    Recovered,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Skipped => "skipped",
            Outcome::DeadLettered => "dead_lettered",
            Outcome::Requeued => "requeued",
            Outcome::Recovered => "recovered",
        }
    }
}

/// The metric keys of one subscriber runtime.
pub(super) struct Metrics {
    apply: Key,
    lag: Key,
    applied: Key,
    skipped: Key,
    dead_lettered: Key,
    requeued: Key,
    recovered: Key,
    retries: Key,
    waiting: Key,
    in_flight: Key,
    queue_depth: Key,
}

impl Metrics {
    pub fn new(app: &str) -> Self {
        describe();
        let app: SharedString = SharedString::from_shared(std::sync::Arc::from(app));
        let key = |name: &'static str| Key::from_parts(name, vec![Label::new("app", app.clone())]);
        let outcome = |o: Outcome| {
            Key::from_parts(
                MESSAGES,
                vec![
                    Label::new("app", app.clone()),
                    Label::from_static_parts("outcome", o.as_str()),
                ],
            )
        };
        Self {
            apply: key(APPLY),
            lag: key(LAG),
            applied: outcome(Outcome::Applied),
            skipped: outcome(Outcome::Skipped),
            dead_lettered: outcome(Outcome::DeadLettered),
            requeued: outcome(Outcome::Requeued),
            recovered: outcome(Outcome::Recovered),
            retries: key(RETRIES),
            waiting: key(WAITING),
            in_flight: key(IN_FLIGHT),
            queue_depth: key(QUEUE_DEPTH),
        }
    }

    pub fn apply_time(&self, took: Duration) {
        metrics::with_recorder(|r| {
            r.register_histogram(&self.apply, &METADATA)
                .record(took.as_secs_f64())
        });
    }

    pub fn lag(&self, lag: Duration) {
        metrics::with_recorder(|r| {
            r.register_histogram(&self.lag, &METADATA)
                .record(lag.as_secs_f64())
        });
    }

    pub fn outcome(&self, outcome: Outcome) {
        let key = match outcome {
            Outcome::Applied => &self.applied,
            Outcome::Skipped => &self.skipped,
            Outcome::DeadLettered => &self.dead_lettered,
            Outcome::Requeued => &self.requeued,
            Outcome::Recovered => &self.recovered,
        };
        metrics::with_recorder(|r| r.register_counter(key, &METADATA).increment(1));
    }

    pub fn retry(&self) {
        metrics::with_recorder(|r| r.register_counter(&self.retries, &METADATA).increment(1));
    }

    /// Adds `delta` messages to the waiting gauge (negative: released).
    pub fn waiting(&self, delta: f64) {
        metrics::with_recorder(|r| r.register_gauge(&self.waiting, &METADATA).increment(delta));
    }

    /// Adds `delta` deliveries to the in-flight gauge (negative: settled).
    pub fn in_flight(&self, delta: f64) {
        metrics::with_recorder(|r| {
            r.register_gauge(&self.in_flight, &METADATA)
                .increment(delta)
        });
    }
}

impl Metrics {
    /// Moves the queue-depth gauge by `delta` (the depth is reported as changes, like the
    /// other gauges, so that several runtimes of one app add up).
    pub fn queue_depth(&self, delta: f64) {
        metrics::with_recorder(|r| {
            r.register_gauge(&self.queue_depth, &METADATA)
                .increment(delta)
        });
    }
}

/// Commit-to-applied lag of a message stamped `timestamp_ms` (Unix milliseconds), clamped at 0
/// (clocks of the publisher and the subscriber may disagree).
pub(super) fn lag_since(timestamp_ms: i64) -> Duration {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let stamped = Duration::from_millis(timestamp_ms.max(0) as u64);
    now.saturating_sub(stamped)
}

/// Describes the subscriber's metrics (units, help texts) to the recorder installed now.
fn describe() {
    metrics::describe_histogram!(
        APPLY,
        Unit::Seconds,
        "Time to apply one message (database transaction included, retries included)"
    );
    metrics::describe_histogram!(
        LAG,
        Unit::Seconds,
        "Commit-to-applied lag: now minus the message's timestamp"
    );
    metrics::describe_counter!(
        MESSAGES,
        "Messages processed, by outcome (applied, skipped, dead_lettered, requeued; recovered \
         also counts under its final outcome)"
    );
    metrics::describe_counter!(RETRIES, "Apply attempts retried after a transient failure");
    metrics::describe_gauge!(
        WAITING,
        "Messages held by the synchronizer until their dependencies are processed"
    );
    metrics::describe_gauge!(
        QUEUE_DEPTH,
        "Messages ready in the subscriber's queue on the broker, not delivered yet"
    );
    metrics::describe_gauge!(
        IN_FLIGHT,
        "Deliveries received and not yet acknowledged (waiting, ready or being applied)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_clamped_at_zero() {
        assert_eq!(lag_since(crate::now_ms() + 60_000), Duration::ZERO);
        let lag = lag_since(crate::now_ms() - 1_500);
        assert!(lag >= Duration::from_millis(1_500) && lag < Duration::from_secs(60));
    }
}
