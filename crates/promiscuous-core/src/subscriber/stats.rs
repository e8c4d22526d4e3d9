//! A subscriber's counters ([`Stats`]): what it processed, and how they add up across workers.
//! A leaf: uses only what applying a message did ([`Applied`]).

use std::time::Duration;

use super::applier::Applied;

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

/// Several subscribers' stats together (the worker processes of one application): the counters
/// and the current gauges (`waiting`, `in_flight`) add up; the queue's depth and the last lag
/// are not sums, the greatest known one is kept.
impl std::ops::AddAssign<&Stats> for Stats {
    fn add_assign(&mut self, other: &Stats) {
        // Every field named, no `..`: a new field does not compile until it is combined here.
        let Stats {
            messages,
            operations_applied,
            operations_skipped,
            operations_ignored,
            dead_lettered,
            waited,
            recovered,
            batched,
            waiting,
            in_flight,
            queue_depth,
            last_lag,
        } = other;
        self.messages += messages;
        self.operations_applied += operations_applied;
        self.operations_skipped += operations_skipped;
        self.operations_ignored += operations_ignored;
        self.dead_lettered += dead_lettered;
        self.waited += waited;
        self.recovered += recovered;
        self.batched += batched;
        self.waiting += waiting;
        self.in_flight += in_flight;
        self.queue_depth = self.queue_depth.max(*queue_depth);
        self.last_lag = self.last_lag.max(*last_lag);
    }
}

impl Stats {
    pub(super) fn add(&mut self, a: &Applied) {
        self.messages += 1;
        self.operations_applied += a.applied;
        self.operations_skipped += a.skipped;
        self.operations_ignored += a.ignored;
    }
}

#[cfg(test)]
mod stats_tests {
    use super::*;

    #[test]
    fn stats_add_up_counters_and_keep_the_greatest_depth_and_lag() {
        let one = Stats {
            messages: 2,
            waiting: 1,
            queue_depth: Some(5),
            last_lag: None,
            ..Stats::default()
        };
        let two = Stats {
            messages: 3,
            batched: 1,
            waiting: 2,
            queue_depth: Some(4),
            last_lag: Some(Duration::from_millis(7)),
            ..Stats::default()
        };
        let mut total = Stats::default();
        total += &one;
        total += &two;
        assert_eq!(
            total,
            Stats {
                messages: 5,
                batched: 1,
                waiting: 3,
                queue_depth: Some(5),
                last_lag: Some(Duration::from_millis(7)),
                ..Stats::default()
            }
        );
    }
}
