//! The history checker: what a test recorded (published messages, applied operations, skipped
//! dependencies) and [`History::check`], which verifies the ordering guarantees on it (see the
//! [`history`](super) module documentation for the list).

use std::collections::{HashMap, HashSet};
use std::fmt;

use promiscuous_core::{Dependency, Message};

/// How strictly [`History::check`] requires intermediate versions to be applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Strictness {
    /// Every published version of a followed instance must be applied, in order.
    #[default]
    EveryVersion,
    /// State-based replication: an intermediate version may be missing if a later version of
    /// the same instance was applied (the subscriber skipped it as stale). Order (G1) and read
    /// dependencies (G2) are still checked.
    LatestWins,
}

/// One applied operation, as recorded by [`History::applied`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Position in the apply order (0-based).
    pub index: usize,
    /// The subscriber worker that applied it.
    pub worker: usize,
    /// The message it came from.
    pub message: String,
    /// The instance key (`"{endpoint}/{id}"`).
    pub key: String,
    /// The version applied.
    pub version: u64,
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "apply #{} (worker {}) of {} v{} from message {}",
            self.index, self.worker, self.key, self.version, self.message
        )
    }
}

/// A dependency recovery mode skipped on purpose, as recorded by
/// [`History::skipped_dependency`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SkippedDependency {
    /// The dependent message.
    pub message: String,
    /// The dependency's instance key.
    pub key: String,
    /// The dependency's version.
    pub version: u64,
}

/// Which kind of causal dependency a [`Violation::Causal`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DependencyKind {
    /// A read dependency of the message (`dependencies.read`).
    Read,
    /// The previous version of the instance the operation writes (`key`, `version - 1`).
    Predecessor,
}

/// One broken guarantee, with everything needed to understand it from a failing test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// G3: a published operation on a followed instance was never applied (nor, with
    /// [`Strictness::LatestWins`], any later version of the instance).
    Lost {
        message: String,
        key: String,
        version: u64,
        /// The newest version of the instance that was applied, if any.
        latest_applied: Option<u64>,
    },
    /// G4: the same `(key, version)` was applied twice.
    Duplicate { first: Event, again: Event },
    /// G1: an instance's version was applied after the same or a newer version of it.
    OutOfOrder {
        /// The earlier apply, of a version `>=` the later one.
        earlier: Event,
        later: Event,
    },
    /// G2: an operation was applied before one of its dependencies.
    Causal {
        /// The operation applied too early.
        event: Event,
        kind: DependencyKind,
        /// The dependency that was not yet applied.
        dependency: Dependency,
        /// The newest version of the dependency applied before `event`, if any.
        seen: Option<u64>,
        /// Where the dependency was applied after `event`, if it was.
        applied_later: Option<Event>,
    },
    /// Something was applied that the history does not show as published by that message.
    Phantom { event: Event },
    /// The recorded publisher output is itself inconsistent: two different messages published
    /// the same `(key, version)`.
    PublishedTwice {
        key: String,
        version: u64,
        first: String,
        second: String,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Lost {
                message,
                key,
                version,
                latest_applied,
            } => {
                write!(
                    f,
                    "lost (G3): {key} v{version} from message {message} was never applied"
                )?;
                match latest_applied {
                    Some(v) => write!(f, " (newest applied version: v{v})"),
                    None => write!(f, " (no version of it was applied)"),
                }
            }
            Violation::Duplicate { first, again } => write!(
                f,
                "duplicate effect (G4): {} was applied again by {again}; first {first}",
                format_args!("{} v{}", again.key, again.version)
            ),
            Violation::OutOfOrder { earlier, later } => write!(
                f,
                "per-instance order (G1): {} v{} was applied after v{}: {later} came after {earlier}",
                later.key, later.version, earlier.version
            ),
            Violation::Causal {
                event,
                kind,
                dependency,
                seen,
                applied_later,
            } => {
                let what = match kind {
                    DependencyKind::Read => "read dependency",
                    DependencyKind::Predecessor => "previous version",
                };
                write!(
                    f,
                    "causal order (G2): {event} ran before its {what} {} v{} was applied",
                    dependency.key, dependency.version
                )?;
                match seen {
                    Some(v) => write!(f, " (only v{v} had been applied)")?,
                    None => write!(f, " (no version of it had been applied)")?,
                }
                match applied_later {
                    Some(later) => write!(f, "; it came later: {later}"),
                    None => write!(f, "; it was never applied"),
                }
            }
            Violation::Phantom { event } => write!(
                f,
                "phantom: {event}, but message {} never published {} v{}",
                event.message, event.key, event.version
            ),
            Violation::PublishedTwice {
                key,
                version,
                first,
                second,
            } => write!(
                f,
                "inconsistent publisher history: {key} v{version} published by both \
                 message {first} and message {second}"
            ),
        }
    }
}

/// What a passing [`History::check`] saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Published messages (distinct ids).
    pub published_messages: usize,
    /// Published operations on followed instances.
    pub published_ops: usize,
    /// Published operations on instances the subscriber does not follow (not checked).
    pub ignored_ops: usize,
    /// Applied operations.
    pub applied_ops: usize,
    /// Dependencies recovery mode skipped on purpose (not violations, but worth a look).
    pub skipped_dependencies: Vec<SkippedDependency>,
}

/// A recorded publisher/subscriber history; see the [module documentation](super).
#[derive(Debug, Clone, Default)]
pub struct History {
    strictness: Strictness,
    published: Vec<Message>,
    published_ids: HashSet<String>,
    applied: Vec<Event>,
    skipped: Vec<SkippedDependency>,
}

impl History {
    /// An empty history checked with [`Strictness::EveryVersion`].
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty history checked with `strictness`.
    pub fn with_strictness(strictness: Strictness) -> Self {
        Self {
            strictness,
            ..Self::default()
        }
    }

    /// Records a message the publisher emitted. Call in commit order per publisher; messages of
    /// several publishers may interleave. Recording the same message id again is a no-op
    /// (redeliveries are the subscriber's business, not the publisher's).
    pub fn published(&mut self, message: &Message) {
        if self.published_ids.insert(message.id.clone()) {
            self.published.push(message.clone());
        }
    }

    /// Records that `worker` applied operation `key` at `version` of message `message_id`, in the
    /// global order the effects became visible. Do not record skipped duplicates or stale ones.
    pub fn applied(&mut self, worker: usize, message_id: &str, key: &str, version: u64) {
        self.applied.push(Event {
            index: self.applied.len(),
            worker,
            message: message_id.to_string(),
            key: key.to_string(),
            version,
        });
    }

    /// Records every operation of `message` as applied by `worker`, in order.
    pub fn applied_message(&mut self, worker: usize, message: &Message) {
        for op in &message.operations {
            self.applied(worker, &message.id, &op.key(), op.version);
        }
    }

    /// Records that recovery mode deliberately skipped dependency `key` at `version` of message
    /// `message_id`. For the previous version of a written instance, record `(key, version - 1)`
    /// (the write dependency `(key, version)` itself is accepted too).
    pub fn skipped_dependency(&mut self, message_id: &str, key: &str, version: u64) {
        self.skipped.push(SkippedDependency {
            message: message_id.to_string(),
            key: key.to_string(),
            version,
        });
    }

    /// The recorded applies, in order.
    pub fn events(&self) -> &[Event] {
        &self.applied
    }

    /// Checks the history. `follows(key)` says whether the subscriber follows the endpoint of
    /// instance `key`; operations and dependencies on other instances are ignored.
    pub fn check(&self, follows: impl Fn(&str) -> bool) -> Result<Report, Vec<Violation>> {
        let mut violations = Vec::new();
        let mut report = Report {
            published_messages: self.published.len(),
            applied_ops: self.applied.len(),
            skipped_dependencies: self.skipped.clone(),
            ..Report::default()
        };

        // Published operations on followed instances: (key, version) -> message id.
        let mut published: HashMap<(&str, u64), &str> = HashMap::new();
        let mut owned_keys = Vec::new();
        for m in &self.published {
            for op in &m.operations {
                owned_keys.push((op.key(), op.version, m.id.as_str()));
            }
        }
        for (key, version, id) in &owned_keys {
            if !follows(key) {
                report.ignored_ops += 1;
                continue;
            }
            report.published_ops += 1;
            if let Some(first) = published.insert((key.as_str(), *version), id) {
                violations.push(Violation::PublishedTwice {
                    key: key.clone(),
                    version: *version,
                    first: first.to_string(),
                    second: id.to_string(),
                });
            }
        }
        let messages: HashMap<&str, &Message> =
            self.published.iter().map(|m| (m.id.as_str(), m)).collect();
        let skipped: HashSet<(&str, &str, u64)> = self
            .skipped
            .iter()
            .map(|s| (s.message.as_str(), s.key.as_str(), s.version))
            .collect();

        // Applies per key, in apply order, to find where a dependency came later.
        let mut per_key: HashMap<&str, Vec<&Event>> = HashMap::new();
        for e in &self.applied {
            per_key.entry(e.key.as_str()).or_default().push(e);
        }
        let later = |key: &str, after: usize, at_least: u64, exact: bool| -> Option<Event> {
            per_key.get(key).and_then(|events| {
                events
                    .iter()
                    .find(|e| {
                        e.index > after
                            && if exact {
                                e.version == at_least
                            } else {
                                e.version >= at_least
                            }
                    })
                    .map(|e| (*e).clone())
            })
        };

        // Walk the apply order.
        let mut newest: HashMap<&str, &Event> = HashMap::new();
        let mut seen: HashMap<(&str, u64), &Event> = HashMap::new();
        for e in &self.applied {
            let key = e.key.as_str();
            if published.get(&(key, e.version)) != Some(&e.message.as_str()) {
                // Also covers applies on instances the subscriber does not follow.
                violations.push(Violation::Phantom { event: e.clone() });
            }
            if let Some(first) = seen.get(&(key, e.version)) {
                violations.push(Violation::Duplicate {
                    first: (*first).clone(),
                    again: e.clone(),
                });
            } else if let Some(prev) = newest.get(key)
                && prev.version > e.version
            {
                violations.push(Violation::OutOfOrder {
                    earlier: (*prev).clone(),
                    later: e.clone(),
                });
            }

            if let Some(message) = messages.get(e.message.as_str()) {
                let is_skipped = |k: &str, v: u64| skipped.contains(&(e.message.as_str(), k, v));
                for dep in &message.dependencies.read {
                    if !follows(&dep.key) || is_skipped(&dep.key, dep.version) {
                        continue;
                    }
                    let have = newest.get(dep.key.as_str()).map(|p| p.version);
                    if have.is_none_or(|v| v < dep.version) {
                        violations.push(Violation::Causal {
                            event: e.clone(),
                            kind: DependencyKind::Read,
                            dependency: dep.clone(),
                            seen: have,
                            applied_later: later(&dep.key, e.index, dep.version, false),
                        });
                    }
                }
                let predecessor = e.version.saturating_sub(1);
                if self.strictness == Strictness::EveryVersion
                    && predecessor > 0
                    && published.contains_key(&(key, predecessor))
                    && !seen.contains_key(&(key, predecessor))
                    && !is_skipped(key, predecessor)
                    && !is_skipped(key, e.version)
                {
                    violations.push(Violation::Causal {
                        event: e.clone(),
                        kind: DependencyKind::Predecessor,
                        dependency: Dependency {
                            key: key.to_string(),
                            version: predecessor,
                        },
                        seen: newest.get(key).map(|p| p.version),
                        applied_later: later(key, e.index, predecessor, true),
                    });
                }
            }

            seen.entry((key, e.version)).or_insert(e);
            if newest.get(key).is_none_or(|p| p.version < e.version) {
                newest.insert(key, e);
            }
        }

        // No loss, in publish order so the report reads naturally.
        for (key, version, id) in &owned_keys {
            if !follows(key) || seen.contains_key(&(key.as_str(), *version)) {
                continue;
            }
            let latest = newest.get(key.as_str()).map(|p| p.version);
            let excused =
                self.strictness == Strictness::LatestWins && latest.is_some_and(|v| v > *version);
            if !excused {
                violations.push(Violation::Lost {
                    message: id.to_string(),
                    key: key.clone(),
                    version: *version,
                    latest_applied: latest,
                });
            }
        }

        if violations.is_empty() {
            Ok(report)
        } else {
            Err(violations)
        }
    }
}

/// Formats violations one per line, for `panic!`/`assert!` messages.
pub fn describe(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| format!("- {v}\n"))
        .collect::<String>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use promiscuous_core::message::instance_key;
    use promiscuous_core::{Dependencies, Operation, OperationKind};
    use serde_json::{Map, json};

    /// A one-operation message of app "crowdtap" writing `endpoint/id` at `version`, with read
    /// dependencies `reads` (`(key, version)`).
    fn msg(
        id: &str,
        endpoint: &str,
        instance: u64,
        version: u64,
        reads: &[(&str, u64)],
    ) -> Message {
        let key = instance_key(endpoint, &json!(instance));
        Message {
            protocol: 1,
            app: "crowdtap".into(),
            id: id.into(),
            timestamp: 0,
            host: "test".into(),
            current_user_id: None,
            dependencies: Dependencies {
                read: reads
                    .iter()
                    .map(|(k, v)| Dependency {
                        key: k.to_string(),
                        version: *v,
                    })
                    .collect(),
                write: vec![Dependency { key, version }],
            },
            operations: vec![Operation {
                endpoint: endpoint.into(),
                types: vec!["T".into()],
                id: json!(instance),
                operation: if version == 1 {
                    OperationKind::Create
                } else {
                    OperationKind::Update
                },
                version,
                attributes: Some(Map::new()),
                changes: None,
                sync: false,
            }],
        }
    }

    fn all(_: &str) -> bool {
        true
    }

    fn history(published: &[&Message]) -> History {
        let mut h = History::new();
        for m in published {
            h.published(m);
        }
        h
    }

    fn violations(h: &History) -> Vec<Violation> {
        match h.check(all) {
            Ok(report) => panic!("expected violations, got {report:?}"),
            Err(v) => {
                // Every violation must render as readable text.
                for one in &v {
                    assert!(!one.to_string().is_empty());
                }
                v
            }
        }
    }

    /// The "unfriend parents, then post photo" publisher history: friendship 1 created (v1),
    /// the user unfriends (v2), then posts a photo whose message read the friendship at v2.
    fn unfriend_then_photo() -> [Message; 3] {
        [
            msg("befriend", "crowdtap/friendship", 1, 1, &[]),
            msg(
                "unfriend",
                "crowdtap/friendship",
                1,
                2,
                &[("crowdtap/friendship/1", 1)],
            ),
            msg(
                "photo",
                "crowdtap/photo",
                7,
                1,
                &[("crowdtap/friendship/1", 2)],
            ),
        ]
    }

    #[test]
    fn correct_interleaved_history_passes() {
        let u1 = msg("u1", "crowdtap/user", 1, 1, &[]);
        let u2 = msg("u2", "crowdtap/user", 1, 2, &[("crowdtap/user/1", 1)]);
        let p1 = msg("p1", "crowdtap/post", 5, 1, &[("crowdtap/user/1", 2)]);
        let f1 = msg("f1", "crowdtap/friendship", 9, 1, &[]);
        let f2 = msg("f2", "crowdtap/friendship", 9, 2, &[]);
        // A dependency and an operation on an endpoint the subscriber does not follow.
        let o1 = msg("o1", "other/thing", 3, 1, &[]);
        let p2 = msg("p2", "crowdtap/post", 5, 2, &[("other/thing/3", 1)]);
        let mut h = history(&[&u1, &f1, &u2, &o1, &f2, &p1, &p2]);
        // Two workers interleave independent instances.
        h.applied_message(0, &f1);
        h.applied_message(1, &u1);
        h.applied_message(0, &f2);
        h.applied_message(1, &u2);
        h.applied_message(0, &p1);
        h.applied_message(1, &p2);
        let report = h
            .check(|k| k.starts_with("crowdtap/"))
            .unwrap_or_else(|v| panic!("{}", describe(&v)));
        assert_eq!(report.published_messages, 7);
        assert_eq!(report.published_ops, 6);
        assert_eq!(report.ignored_ops, 1);
        assert_eq!(report.applied_ops, 6);
        assert!(report.skipped_dependencies.is_empty());
    }

    #[test]
    fn reversed_versions_of_one_instance_break_g1() {
        let u1 = msg("u1", "crowdtap/user", 1, 1, &[]);
        let u2 = msg("u2", "crowdtap/user", 1, 2, &[]);
        let u3 = msg("u3", "crowdtap/user", 1, 3, &[]);
        let mut h = history(&[&u1, &u2, &u3]);
        h.applied_message(0, &u1);
        h.applied_message(0, &u3);
        h.applied_message(1, &u2);
        let v = violations(&h);
        assert!(
            v.iter().any(|v| matches!(v,
                Violation::OutOfOrder { earlier, later }
                    if earlier.version == 3 && later.version == 2 && later.worker == 1)),
            "{}",
            describe(&v)
        );
        // v3 also ran before its previous version.
        assert!(v.iter().any(|v| matches!(v,
            Violation::Causal { kind: DependencyKind::Predecessor, event, applied_later: Some(_), .. }
                if event.version == 3)));
        assert!(describe(&v).contains("per-instance order (G1)"));
    }

    #[test]
    fn photo_before_unfriend_breaks_g2() {
        let [befriend, unfriend, photo] = unfriend_then_photo();
        let mut h = history(&[&befriend, &unfriend, &photo]);
        h.applied_message(0, &befriend);
        h.applied_message(1, &photo);
        h.applied_message(0, &unfriend);
        let v = violations(&h);
        assert_eq!(v.len(), 1, "{}", describe(&v));
        let Violation::Causal {
            event,
            kind,
            dependency,
            seen,
            applied_later,
        } = &v[0]
        else {
            panic!("{}", describe(&v));
        };
        assert_eq!(event.message, "photo");
        assert_eq!(*kind, DependencyKind::Read);
        assert_eq!(dependency.key, "crowdtap/friendship/1");
        assert_eq!(dependency.version, 2);
        assert_eq!(*seen, Some(1));
        assert_eq!(applied_later.as_ref().unwrap().message, "unfriend");
        let text = v[0].to_string();
        assert!(
            text.contains("photo") && text.contains("crowdtap/friendship/1 v2"),
            "{text}"
        );

        // The same history in the right order passes; a subscriber not following friendships
        // does not wait for them.
        let mut h = history(&[&befriend, &unfriend, &photo]);
        h.applied_message(0, &befriend);
        h.applied_message(0, &unfriend);
        h.applied_message(1, &photo);
        h.check(all).unwrap();
        let mut h = history(&[&befriend, &unfriend, &photo]);
        h.applied_message(1, &photo);
        h.check(|k| !k.starts_with("crowdtap/friendship/")).unwrap();
    }

    #[test]
    fn lost_message_is_caught() {
        let u1 = msg("u1", "crowdtap/user", 1, 1, &[]);
        let u2 = msg("u2", "crowdtap/user", 1, 2, &[]);
        let f1 = msg("f1", "crowdtap/friendship", 2, 1, &[]);
        let mut h = history(&[&u1, &u2, &f1]);
        h.applied_message(0, &u1);
        h.applied_message(0, &u2);
        let v = violations(&h);
        assert_eq!(
            v,
            vec![Violation::Lost {
                message: "f1".into(),
                key: "crowdtap/friendship/2".into(),
                version: 1,
                latest_applied: None,
            }]
        );
        assert!(v[0].to_string().contains("lost (G3)"));
    }

    #[test]
    fn latest_wins_allows_skipping_stale_versions_only() {
        let u1 = msg("u1", "crowdtap/user", 1, 1, &[]);
        let u2 = msg("u2", "crowdtap/user", 1, 2, &[]);
        let u3 = msg("u3", "crowdtap/user", 1, 3, &[]);
        for strictness in [Strictness::EveryVersion, Strictness::LatestWins] {
            let mut h = History::with_strictness(strictness);
            for m in [&u1, &u2, &u3] {
                h.published(m);
            }
            h.applied_message(0, &u1);
            h.applied_message(0, &u3);
            let result = h.check(all);
            match strictness {
                Strictness::LatestWins => {
                    assert_eq!(result.unwrap().applied_ops, 2);
                }
                Strictness::EveryVersion => {
                    let v = result.unwrap_err();
                    assert!(v.iter().any(|v| matches!(
                        v,
                        Violation::Lost {
                            version: 2,
                            latest_applied: Some(3),
                            ..
                        }
                    )));
                }
            }
        }
        // Even with LatestWins, the newest version must arrive, and order still holds.
        let mut h = History::with_strictness(Strictness::LatestWins);
        for m in [&u1, &u2, &u3] {
            h.published(m);
        }
        h.applied_message(0, &u2);
        h.applied_message(0, &u1);
        let v = h.check(all).unwrap_err();
        assert!(
            v.iter()
                .any(|v| matches!(v, Violation::Lost { version: 3, .. }))
        );
        assert!(v.iter().any(|v| matches!(v, Violation::OutOfOrder { .. })));
    }

    #[test]
    fn duplicate_apply_is_caught() {
        let u1 = msg("u1", "crowdtap/user", 1, 1, &[]);
        let mut h = history(&[&u1]);
        h.applied_message(0, &u1);
        h.applied_message(1, &u1);
        let v = violations(&h);
        assert_eq!(v.len(), 1, "{}", describe(&v));
        assert!(matches!(&v[0],
            Violation::Duplicate { first, again }
                if first.index == 0 && again.index == 1 && again.worker == 1));
        assert!(v[0].to_string().contains("duplicate effect (G4)"));
    }

    #[test]
    fn phantom_apply_is_caught() {
        let u1 = msg("u1", "crowdtap/user", 1, 1, &[]);
        let mut h = history(&[&u1]);
        h.applied_message(0, &u1);
        h.applied(0, "ghost", "crowdtap/user/2", 1);
        // A known message applying a version it never carried is a phantom too.
        h.applied(1, "u1", "crowdtap/user/1", 2);
        let v = violations(&h);
        let phantoms: Vec<_> = v
            .iter()
            .filter_map(|v| match v {
                Violation::Phantom { event } => Some(event.message.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(phantoms, ["ghost", "u1"], "{}", describe(&v));
        assert!(describe(&v).contains("never published crowdtap/user/2 v1"));
    }

    #[test]
    fn skipped_dependency_is_reported_not_flagged() {
        let [befriend, unfriend, photo] = unfriend_then_photo();
        let mut h = history(&[&befriend, &unfriend, &photo]);
        h.applied_message(0, &befriend);
        // Recovery mode gave up waiting for friendship v2 and applied the photo anyway.
        h.skipped_dependency("photo", "crowdtap/friendship/1", 2);
        h.applied_message(1, &photo);
        h.applied_message(0, &unfriend);
        let report = h.check(all).unwrap_or_else(|v| panic!("{}", describe(&v)));
        assert_eq!(
            report.skipped_dependencies,
            vec![SkippedDependency {
                message: "photo".into(),
                key: "crowdtap/friendship/1".into(),
                version: 2,
            }]
        );
        assert_eq!(report.applied_ops, 3);

        // A skipped previous version is excused the same way.
        let u1 = msg("u1", "crowdtap/user", 1, 1, &[]);
        let u2 = msg("u2", "crowdtap/user", 1, 2, &[]);
        let mut h = history(&[&u1, &u2]);
        h.skipped_dependency("u2", "crowdtap/user/1", 1);
        h.applied_message(0, &u2);
        // ...but the skipped write itself is still lost if it never arrives.
        let v = h.check(all).unwrap_err();
        assert!(
            matches!(&v[..], [Violation::Lost { version: 1, .. }]),
            "{}",
            describe(&v)
        );
    }

    #[test]
    fn inconsistent_publisher_history_is_reported() {
        let a = msg("a", "crowdtap/user", 1, 1, &[]);
        let b = msg("b", "crowdtap/user", 1, 1, &[]);
        let mut h = history(&[&a, &b, &a]);
        h.applied_message(0, &a);
        let v = violations(&h);
        assert!(
            matches!(&v[0], Violation::PublishedTwice { first, second, .. }
            if first == "a" && second == "b")
        );
    }
}
