//! Throughput over the last minutes: a sample of the board every second, turned into rates
//! (messages applied per second per subscriber app, rows relayed per second per publisher).
//!
//! A rate is summed per worker, from the difference between its counters in two consecutive
//! samples: a worker that restarts (its counters start again from 0) or appears counts from its
//! second sample, never negatively. A leaf: works on reports only.

use std::collections::{BTreeMap, HashMap, VecDeque};

use promiscuous_core::board::{Report, Worker};

/// Samples kept: five minutes at one a second.
pub const KEEP: usize = 300;

/// Which counter a rate is of.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Series {
    /// Messages processed by a subscriber app's workers.
    Applied(String),
    /// Rows relayed by a publisher's relays.
    Relayed(String),
}

/// One second's rates.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Point {
    pub at_ms: i64,
    pub rates: BTreeMap<Series, f64>,
}

#[derive(Default)]
pub struct History {
    /// Each worker's counter at the last sample, when it was written, and its last rate.
    last: HashMap<String, (u64, i64, f64)>,
    pub points: VecDeque<Point>,
}

fn counter(report: &Report) -> (Series, u64) {
    match &report.worker {
        Worker::Subscriber(s) => (Series::Applied(report.app.clone()), s.messages),
        Worker::Relay(r) => (Series::Relayed(report.app.clone()), r.relayed),
    }
}

impl History {
    /// Adds the sample `reports`, taken at `now_ms`.
    pub fn sample(&mut self, reports: &[Report], now_ms: i64) {
        let mut point = Point {
            at_ms: now_ms,
            rates: BTreeMap::new(),
        };
        let mut last = HashMap::with_capacity(reports.len());
        for report in reports {
            let (series, value) = counter(report);
            let worker_rate = match self.last.get(&report.id) {
                // Rewritten since the last sample: the difference over the time between.
                Some((before, at, _)) if value >= *before && report.heartbeat_ms > *at => {
                    let seconds = (report.heartbeat_ms - at) as f64 / 1000.0;
                    (value - before) as f64 / seconds
                }
                // Not rewritten yet (the sampler ran between two beats): its rate goes on.
                Some((before, at, rate)) if value == *before && report.heartbeat_ms == *at => *rate,
                // New, or restarted (its counter went down): from its next report on.
                _ => 0.0,
            };
            *point.rates.entry(series).or_insert(0.0) += worker_rate;
            last.insert(report.id.clone(), (value, report.heartbeat_ms, worker_rate));
        }
        self.last = last;
        if self.points.len() == KEEP {
            self.points.pop_front();
        }
        self.points.push_back(point);
    }

    /// The latest rate of `series` (0 when unknown).
    pub fn rate(&self, series: &Series) -> f64 {
        self.points
            .back()
            .and_then(|p| p.rates.get(series))
            .copied()
            .unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use promiscuous_core::board::{RelayReport, SubscriberReport};

    fn subscriber(id: &str, messages: u64, at: i64) -> Report {
        let mut r = Report::new(
            id.into(),
            "members",
            0,
            Worker::Subscriber(SubscriberReport {
                runners: 1,
                prefetch: 1,
                connected: true,
                messages,
                operations_applied: messages,
                dead_lettered: 0,
                recovered: 0,
                waiting_count: 0,
                in_flight: 0,
                queue_depth: None,
                lag_ms: None,
                waiting: Vec::new(),
            }),
        );
        r.heartbeat_ms = at;
        r
    }

    fn relay(id: &str, relayed: u64, at: i64) -> Report {
        let mut r = Report::new(
            id.into(),
            "crowdtap",
            0,
            Worker::Relay(RelayReport {
                batch_size: 1,
                healthy: true,
                relayed,
                holds_lease: None,
                backlog: None,
            }),
        );
        r.heartbeat_ms = at;
        r
    }

    #[test]
    fn rates_add_up_per_app_and_never_go_negative() {
        let mut h = History::default();
        let applied = Series::Applied("members".into());
        h.sample(&[subscriber("a", 10, 1000), subscriber("b", 5, 1000)], 1000);
        assert_eq!(h.rate(&applied), 0.0, "a first sample has no rate");
        h.sample(
            &[subscriber("a", 30, 2000), subscriber("b", 15, 2000)],
            2000,
        );
        assert_eq!(h.rate(&applied), 30.0);
        // b restarted (counters from 0), c is new.
        h.sample(
            &[
                subscriber("a", 40, 3000),
                subscriber("b", 2, 3000),
                subscriber("c", 7, 3000),
            ],
            3000,
        );
        assert_eq!(h.rate(&applied), 10.0);
        h.sample(&[relay("r", 100, 3000)], 3000);
        h.sample(&[relay("r", 150, 3500)], 3500);
        assert_eq!(h.rate(&Series::Relayed("crowdtap".into())), 100.0);
        // Sampled again before the relay's next beat: the same rate, not a drop to 0.
        h.sample(&[relay("r", 150, 3500)], 3900);
        assert_eq!(h.rate(&Series::Relayed("crowdtap".into())), 100.0);
    }

    #[test]
    fn it_keeps_five_minutes() {
        let mut h = History::default();
        for s in 0..(KEEP as i64 + 10) {
            h.sample(&[], s * 1000);
        }
        assert_eq!(h.points.len(), KEEP);
    }
}
