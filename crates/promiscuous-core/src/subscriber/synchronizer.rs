//! The synchronizer: holds each message until what it depends on has been processed, then
//! releases it to the runners (G1, G2, G5, G6).
//!
//! It is a plain state machine, without I/O or clocks of its own: the runtime feeds it arrivals
//! ([`Synchronizer::submit`]), versions learned from the database, from the shared version store
//! and from its own runners ([`Synchronizer::learn`], [`Synchronizer::finish`]), and the time
//! ([`Synchronizer::expire`]); it answers with the messages that may run now.
//!
//! A message may run when
//! - every instance it read (a read dependency `key@n`) has been processed at version `n` or
//!   newer, and the previous version (`v - 1`) of every instance it writes has been processed
//!   (a resend of an instance's whole state, `sync`, waits for it too, unless this subscriber
//!   never had the instance: see [`Requirements::resent`]);
//! - no other running message writes one of the instances it writes (duplicates and consecutive
//!   versions of one instance never run concurrently);
//! - or its dependencies have not all arrived within the timeout (recovery): it then runs
//!   without them, and the ones it skipped are listed with it.
//!
//! "Processed" means applied, skipped as already applied, ignored (an endpoint the subscriber
//! does not follow: its version is still recorded), or dead-lettered: a message that can never
//! be applied must not hold back the ones after it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use crate::message::Message;

/// What a message needs before it may run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requirements {
    /// `(key, version)`: the instance must have been processed at this version or a newer one.
    pub needs: Vec<(String, u64)>,
    /// Instances the message writes: no two messages writing one instance run at once.
    pub writes: Vec<String>,
    /// Keys of `needs` that the message resends whole (`sync`, an initial sync): their previous
    /// version is waived where this subscriber never had the instance, i.e. its processed
    /// version is known to be 0 (looked up in the database and the shared store) and no message
    /// writing the instance's first version waits here. A subscriber deployed after earlier
    /// versions were published then applies the resent state at once instead of waiting for
    /// versions it will never receive. One that has the instance waits for the previous version
    /// like for any update: otherwise the resend could overtake a live update published before
    /// it, which would then be skipped as stale and its callbacks never run.
    pub resent: Vec<String>,
    /// Instances the message writes at version 1 (their first published write): while it waits,
    /// a resend of the instance is not applied ahead of it (see `resent`).
    pub starts: Vec<String>,
}

impl Requirements {
    /// The requirements of `message` under causal ordering. `follows_app(app)` says whether the
    /// subscriber receives the messages of publisher app `app`: a dependency on an instance of
    /// another app could never be met, so it is left out.
    ///
    /// The operations are authoritative for what the message writes (`dependencies.write` is
    /// derived from them in protocol 1): each written instance needs its previous version (the
    /// lowest version the message writes, minus one). Read dependencies on instances the
    /// message also writes are covered by that and left out. Where the lowest version of an
    /// instance is a resend of its whole state (`sync`), that need is listed in `resent` too:
    /// the synchronizer waives it for a subscriber that never had the instance.
    pub fn causal(message: &Message, follows_app: impl Fn(&str) -> bool) -> Self {
        // key → (lowest version written, whether that operation is a resend).
        let mut lowest: BTreeMap<String, (u64, bool)> = BTreeMap::new();
        for op in &message.operations {
            let entry = lowest.entry(op.key()).or_insert((op.version, op.sync));
            if op.version < entry.0 {
                *entry = (op.version, op.sync);
            } else if op.version == entry.0 {
                // The same version twice (never sent by the reference publisher): a resend
                // only if both are.
                entry.1 &= op.sync;
            }
        }
        let mut needs: BTreeMap<String, u64> = BTreeMap::new();
        let mut resent = Vec::new();
        let mut starts = Vec::new();
        for (key, (version, sync)) in &lowest {
            if *version == 1 {
                starts.push(key.clone());
            } else if follows_app(app_of(key)) {
                needs.insert(key.clone(), version - 1);
                if *sync {
                    resent.push(key.clone());
                }
            }
        }
        for dep in &message.dependencies.read {
            if lowest.contains_key(&dep.key) || !follows_app(app_of(&dep.key)) {
                continue;
            }
            let v = needs.entry(dep.key.clone()).or_insert(0);
            *v = (*v).max(dep.version);
        }
        Requirements {
            needs: needs.into_iter().collect(),
            writes: lowest.into_keys().collect(),
            resent,
            starts,
        }
    }
}

/// The publisher app of an instance key (its first segment).
pub fn app_of(key: &str) -> &str {
    crate::message::endpoint::app(key)
}

/// A message the runners may take now.
#[derive(Debug)]
pub struct Released<T> {
    pub job: T,
    /// Dependencies recovery mode gave up on (empty unless the message timed out).
    pub skipped: Vec<(String, u64)>,
    /// How long the message waited, if it had to.
    pub waited: Option<Duration>,
    /// The instances it writes: hand them back to [`Synchronizer::finish`] once it is done.
    pub writes: Vec<String>,
}

/// A message held by the synchronizer, and what holds it back ([`Synchronizer::held`]).
#[derive(Debug)]
pub struct Held<'a, T> {
    pub job: &'a T,
    pub waited: Duration,
    /// Dependencies not met: `(key, version needed, processed version known here)`.
    pub needs: Vec<(String, u64, Option<u64>)>,
    /// Instances it writes that a released message is writing now.
    pub behind: Vec<String>,
    /// Past its deadline: it waits only for concurrent writers (recovery).
    pub expired: bool,
}

/// What [`Synchronizer::submit`] decided.
#[derive(Debug)]
pub enum Submitted<T> {
    /// Run it now.
    Ready(Released<T>),
    /// It waits. `lookup` lists instances whose processed version this synchronizer does not
    /// know yet: look them up and [`Synchronizer::learn`] the answer (`fetched = true`).
    Parked { lookup: Vec<String> },
}

struct Parked<T> {
    job: T,
    requirements: Requirements,
    since: Instant,
    deadline: Instant,
    /// Past its deadline: it no longer waits for versions, only for concurrent writers.
    expired: bool,
}

/// Known processed versions (lower bounds: they only go up), bounded: the oldest entries are
/// forgotten first, and looked up again if needed.
struct Known {
    versions: HashMap<String, u64>,
    order: VecDeque<String>,
    capacity: usize,
}

impl Known {
    fn get(&self, key: &str) -> Option<u64> {
        self.versions.get(key).copied()
    }

    fn raise(&mut self, key: &str, version: u64) -> bool {
        match self.versions.get_mut(key) {
            Some(v) if *v >= version => false,
            Some(v) => {
                *v = version;
                true
            }
            None => {
                self.versions.insert(key.to_string(), version);
                self.order.push_back(key.to_string());
                true
            }
        }
    }

    fn evict(&mut self, keep: impl Fn(&str) -> bool) {
        let mut budget = self.order.len();
        while self.versions.len() > self.capacity && budget > 0 {
            budget -= 1;
            let Some(key) = self.order.pop_front() else {
                break;
            };
            if keep(&key) {
                self.order.push_back(key);
            } else {
                self.versions.remove(&key);
            }
        }
    }
}

/// See the [module documentation](self). `T` is whatever the runtime attaches to a message (its
/// delivery).
pub struct Synchronizer<T> {
    known: Known,
    parked: HashMap<u64, Parked<T>>,
    /// `(deadline, id)` of every parked message not expired yet, earliest first: what
    /// [`Synchronizer::expire`] and [`Synchronizer::next_deadline`] read, without a scan.
    deadlines: BTreeSet<(Instant, u64)>,
    /// key → parked messages waiting on that key (for a version, or for its writer to finish).
    waiters: HashMap<String, HashSet<u64>>,
    /// key → released messages writing it that have not finished.
    writing: HashMap<String, usize>,
    /// key → parked messages writing its version 1 (see [`Requirements::starts`]).
    starting: HashMap<String, usize>,
    /// Keys whose lookup is under way.
    looking_up: HashSet<String>,
    next_id: u64,
    timeout: Duration,
}

/// How many known versions are kept when no message waits on them.
const DEFAULT_CAPACITY: usize = 100_000;

impl<T> Synchronizer<T> {
    /// `timeout`: how long a message waits for its dependencies before recovery releases it.
    pub fn new(timeout: Duration) -> Self {
        Self::with_capacity(timeout, DEFAULT_CAPACITY)
    }

    /// Keeps at most `capacity` known versions nobody waits on (tests use a small one).
    fn with_capacity(timeout: Duration, capacity: usize) -> Self {
        Self {
            known: Known {
                versions: HashMap::new(),
                order: VecDeque::new(),
                capacity,
            },
            parked: HashMap::new(),
            deadlines: BTreeSet::new(),
            waiters: HashMap::new(),
            writing: HashMap::new(),
            starting: HashMap::new(),
            looking_up: HashSet::new(),
            next_id: 0,
            timeout,
        }
    }

    /// Messages waiting.
    #[cfg(test)]
    fn parked(&self) -> usize {
        self.parked.len()
    }

    /// Released messages not finished yet (counted per written instance).
    #[cfg(test)]
    fn running_writes(&self) -> usize {
        self.writing.values().sum()
    }

    /// The processed version this synchronizer knows for `key`, if it knows one.
    #[cfg(test)]
    fn known(&self, key: &str) -> Option<u64> {
        self.known.get(key)
    }

    /// A message arrived.
    pub fn submit(&mut self, job: T, requirements: Requirements, now: Instant) -> Submitted<T> {
        let blocked = self.blockers(&requirements, false);
        if blocked.is_empty() {
            return Submitted::Ready(self.release(job, requirements, Vec::new(), None));
        }
        // Unknown versions are looked up, but not those of instances a released message is
        // writing here: its end tells (and the periodic recheck covers the rest).
        let lookup: Vec<String> = requirements
            .needs
            .iter()
            .map(|(k, _)| k)
            .filter(|k| {
                self.known.get(k).is_none()
                    && !self.writing.contains_key(*k)
                    && self.looking_up.insert((*k).clone())
            })
            .cloned()
            .collect();
        let id = self.next_id;
        self.next_id += 1;
        for key in blocked {
            self.waiters.entry(key).or_default().insert(id);
        }
        for key in &requirements.starts {
            *self.starting.entry(key.clone()).or_insert(0) += 1;
        }
        let deadline = now + self.timeout;
        self.deadlines.insert((deadline, id));
        self.parked.insert(
            id,
            Parked {
                job,
                requirements,
                since: now,
                deadline,
                expired: false,
            },
        );
        Submitted::Parked { lookup }
    }

    /// Versions processed somewhere (by this process's runners, another process, or read from
    /// the database). With `fetched`, they answer a lookup: a key absent from `versions` stays
    /// unknown, a key present is known (even at 0). Returns the messages this unblocks.
    pub fn learn(&mut self, versions: &[(String, u64)], fetched: bool) -> Vec<Released<T>> {
        let mut touched = Vec::new();
        for (key, version) in versions {
            if fetched {
                self.looking_up.remove(key);
            }
            if self.known.raise(key, *version) || fetched {
                touched.push(key.clone());
            }
        }
        let released = self.wake(&touched);
        self.known
            .evict(|k| self.waiters.contains_key(k) || self.writing.contains_key(k));
        released
    }

    /// A lookup failed: the keys may be looked up again (by [`Synchronizer::recheck`]).
    pub fn lookup_failed(&mut self, keys: &[String]) {
        for key in keys {
            self.looking_up.remove(key);
        }
    }

    /// A released message is done: `writes` as handed out with it, `processed` the versions it
    /// processed (none if it goes back to the broker). Returns the messages this unblocks.
    pub fn finish(&mut self, writes: &[String], processed: &[(String, u64)]) -> Vec<Released<T>> {
        for key in writes {
            if let Some(n) = self.writing.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    self.writing.remove(key);
                }
            }
        }
        let mut released = self.learn(processed, false);
        released.extend(self.wake(writes));
        released
    }

    /// Releases the messages whose deadline passed, with the dependencies they skip.
    /// Earliest deadline first.
    pub fn expire(&mut self, now: Instant) -> Vec<Released<T>> {
        let mut released = Vec::new();
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some(p) = self.parked.get_mut(&id) {
                p.expired = true;
            }
            released.extend(self.evaluate(id, now));
        }
        released
    }

    /// The earliest deadline of a waiting message, if any: when [`Synchronizer::expire`] has
    /// something to do next. Deadlines only come later than those before them (arrival plus
    /// the one timeout), so a new message never moves it earlier once there is one.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(deadline, _)| *deadline)
    }

    /// Keys that waiting messages need a newer version of, not being looked up already (now
    /// marked as being looked up): a safety net for wake-ups that were lost.
    pub fn recheck(&mut self) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        for p in self.parked.values().filter(|p| !p.expired) {
            for (key, version) in &p.requirements.needs {
                if !self.met(&p.requirements, key, *version) && !self.looking_up.contains(key) {
                    keys.push(key.clone());
                }
            }
        }
        keys.sort();
        keys.dedup();
        for k in &keys {
            self.looking_up.insert(k.clone());
        }
        keys
    }

    /// Forgets every waiting message (their deliveries go back to the broker) and returns them.
    pub fn drain(&mut self) -> Vec<T> {
        self.waiters.clear();
        self.deadlines.clear();
        self.looking_up.clear();
        self.starting.clear();
        self.parked.drain().map(|(_, p)| p.job).collect()
    }

    /// The messages held now, longest waiting first (at most `limit`), each with what holds it
    /// back: for the operators' "why is this not applied yet".
    pub fn held(&self, now: Instant, limit: usize) -> Vec<Held<'_, T>> {
        let mut parked: Vec<(&u64, &Parked<T>)> = self.parked.iter().collect();
        parked.sort_unstable_by_key(|(id, p)| (p.since, **id));
        parked
            .into_iter()
            .take(limit)
            .map(|(_, p)| Held {
                job: &p.job,
                waited: now.saturating_duration_since(p.since),
                needs: if p.expired {
                    Vec::new()
                } else {
                    self.unmet(&p.requirements)
                        .into_iter()
                        .map(|(key, version)| {
                            let have = self.known.get(&key);
                            (key, version, have)
                        })
                        .collect()
                },
                behind: p
                    .requirements
                    .writes
                    .iter()
                    .filter(|k| self.writing.contains_key(*k))
                    .cloned()
                    .collect(),
                expired: p.expired,
            })
            .collect()
    }

    /// What still holds a message back: keys whose version is too low (unless `expired`), and
    /// keys another released message is writing.
    fn blockers(&self, requirements: &Requirements, expired: bool) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        if !expired {
            for (key, version) in &requirements.needs {
                if !self.met(requirements, key, *version) {
                    keys.push(key.clone());
                }
            }
        }
        for key in &requirements.writes {
            if self.writing.contains_key(key) && !keys.contains(key) {
                keys.push(key.clone());
            }
        }
        keys
    }

    /// Whether the need `key@version` of a message with `requirements` is met: the instance
    /// was processed at `version` or newer, or the message resends it whole and this subscriber
    /// never had it (processed version known to be 0, no first version waiting here).
    fn met(&self, requirements: &Requirements, key: &str, version: u64) -> bool {
        match self.known.get(key) {
            None => false,
            Some(have) if have >= version => true,
            Some(0) => {
                requirements.resent.iter().any(|k| k == key) && !self.starting.contains_key(key)
            }
            Some(_) => false,
        }
    }

    fn unmet(&self, requirements: &Requirements) -> Vec<(String, u64)> {
        requirements
            .needs
            .iter()
            .filter(|(k, v)| !self.met(requirements, k, *v))
            .cloned()
            .collect()
    }

    fn release(
        &mut self,
        job: T,
        requirements: Requirements,
        skipped: Vec<(String, u64)>,
        waited: Option<Duration>,
    ) -> Released<T> {
        for key in &requirements.writes {
            *self.writing.entry(key.clone()).or_insert(0) += 1;
        }
        Released {
            job,
            skipped,
            waited,
            writes: requirements.writes,
        }
    }

    /// Re-evaluates the messages waiting on `keys`.
    fn wake(&mut self, keys: &[String]) -> Vec<Released<T>> {
        let mut released = Vec::new();
        let now = Instant::now();
        for key in keys {
            let Some(ids) = self.waiters.remove(key) else {
                continue;
            };
            let mut ids: Vec<u64> = ids.into_iter().collect();
            // Oldest first, so that a released writer is followed by the next in line.
            ids.sort_unstable();
            for id in ids {
                released.extend(self.evaluate(id, now));
            }
        }
        released
    }

    /// Releases message `id` if nothing holds it back any more; otherwise makes sure it waits on
    /// what does.
    fn evaluate(&mut self, id: u64, now: Instant) -> Option<Released<T>> {
        let p = self.parked.get(&id)?;
        let blocked = self.blockers(&p.requirements, p.expired);
        if !blocked.is_empty() {
            for key in blocked {
                self.waiters.entry(key).or_default().insert(id);
            }
            return None;
        }
        let p = self.parked.remove(&id)?;
        self.deadlines.remove(&(p.deadline, id));
        for key in p.requirements.needs.iter().map(|(k, _)| k) {
            self.forget_waiter(key, id);
        }
        for key in &p.requirements.writes {
            self.forget_waiter(key, id);
        }
        for key in &p.requirements.starts {
            if let Some(n) = self.starting.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    self.starting.remove(key);
                }
            }
        }
        let skipped = if p.expired {
            self.unmet(&p.requirements)
        } else {
            Vec::new()
        };
        let waited = Some(now.saturating_duration_since(p.since));
        Some(self.release(p.job, p.requirements, skipped, waited))
    }

    fn forget_waiter(&mut self, key: &str, id: u64) {
        if let Some(set) = self.waiters.get_mut(key) {
            set.remove(&id);
            if set.is_empty() {
                self.waiters.remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Dependencies, Dependency, Operation, OperationKind};
    use serde_json::{Map, json};

    fn message(writes: &[(&str, u64)], reads: &[(&str, u64)]) -> Message {
        Message {
            protocol: 1,
            app: "a".into(),
            id: "m".into(),
            timestamp: 0,
            host: "h".into(),
            current_user_id: None,
            dependencies: Dependencies {
                read: reads
                    .iter()
                    .map(|(k, v)| Dependency {
                        key: k.to_string(),
                        version: *v,
                    })
                    .collect(),
                write: Vec::new(),
            },
            operations: writes
                .iter()
                .map(|(key, version)| {
                    let key = crate::message::InstanceKey::parse(key).unwrap();
                    let (endpoint, id) = (key.endpoint(), key.id());
                    Operation {
                        endpoint: endpoint.into(),
                        types: vec!["T".into()],
                        id: json!(id),
                        operation: OperationKind::Update,
                        version: *version,
                        attributes: Some(Map::new()),
                        changes: None,
                        sync: false,
                    }
                })
                .collect(),
        }
    }

    fn req(needs: &[(&str, u64)], writes: &[&str]) -> Requirements {
        Requirements {
            needs: needs.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            writes: writes.iter().map(|k| k.to_string()).collect(),
            ..Requirements::default()
        }
    }

    /// A message writing `key` at `version` (and nothing else), flagged `sync` or not, with its
    /// causal requirements.
    fn write(key: &str, version: u64, sync: bool) -> Requirements {
        let mut m = message(&[(key, version)], &[]);
        m.operations[0].sync = sync;
        Requirements::causal(&m, |_| true)
    }

    fn ready<T: std::fmt::Debug>(s: Submitted<T>) -> Released<T> {
        match s {
            Submitted::Ready(r) => r,
            other => panic!("expected ready, got {other:?}"),
        }
    }

    fn parked<T: std::fmt::Debug>(s: Submitted<T>) -> Vec<String> {
        match s {
            Submitted::Parked { lookup } => lookup,
            other => panic!("expected parked, got {other:?}"),
        }
    }

    fn jobs<T: Copy>(r: &[Released<T>]) -> Vec<T> {
        r.iter().map(|r| r.job).collect()
    }

    #[test]
    fn requirements_of_a_message() {
        let m = message(
            &[("a/user/1", 3), ("a/user/1", 4), ("a/post/9", 1)],
            &[("a/user/1", 2), ("a/friend/5", 7), ("other/x/1", 2)],
        );
        let r = Requirements::causal(&m, |app| app == "a");
        let mut expected = req(
            &[("a/friend/5", 7), ("a/user/1", 2)],
            &["a/post/9", "a/user/1"],
        );
        expected.starts = vec!["a/post/9".into()];
        assert_eq!(
            r, expected,
            "previous version of each written instance (v1 needs nothing), reads of followed \
             apps only, a read of a written instance covered by its write"
        );
    }

    #[test]
    fn a_resent_state_needs_its_previous_version_unless_the_instance_is_new_here() {
        let mut m = message(&[("a/user/1", 7)], &[("a/friend/5", 2)]);
        m.operations[0].sync = true;
        let r = Requirements::causal(&m, |_| true);
        let mut expected = req(&[("a/friend/5", 2), ("a/user/1", 6)], &["a/user/1"]);
        expected.resent = vec!["a/user/1".into()];
        assert_eq!(
            r, expected,
            "the previous version, waivable; the reads as usual"
        );
        // A live write of a lower version in the same message: nothing to waive.
        let mut m = message(&[("a/user/1", 7), ("a/user/1", 8)], &[]);
        m.operations[1].sync = true;
        assert!(Requirements::causal(&m, |_| true).resent.is_empty());
        // Version 1 needs nothing and is a first write.
        let r = write("a/user/2", 1, false);
        assert_eq!((r.needs.len(), r.starts), (0, vec!["a/user/2".to_string()]));
    }

    /// A subscriber deployed late (processed version 0, looked up) applies the resent state at
    /// once; the live update older than it, which waits for a version it never received, is
    /// then released and skipped as stale by the applier.
    #[test]
    fn a_resent_state_runs_at_once_where_the_instance_was_never_processed() {
        let t0 = Instant::now();
        let mut s = Synchronizer::new(Duration::from_secs(60));
        let lookup = parked(s.submit("v5", write("a/u/1", 5, false), t0));
        assert_eq!(lookup, ["a/u/1"]);
        assert!(s.learn(&[("a/u/1".into(), 0)], true).is_empty());
        let sync = ready(s.submit("sync v7", write("a/u/1", 7, true), t0));
        let r = s.finish(&sync.writes, &[("a/u/1".into(), 7)]);
        assert_eq!(jobs(&r), ["v5"]);
        assert!(r[0].skipped.is_empty(), "released without recovery");
        // Unknown yet: looked up first, then run.
        let lookup = parked(s.submit("sync v3", write("a/u/2", 3, true), t0));
        assert_eq!(lookup, ["a/u/2"]);
        let r = s.learn(&[("a/u/2".into(), 0)], true);
        assert_eq!(jobs(&r), ["sync v3"]);
    }

    /// A subscriber that follows the instance (processed version > 0) applies a resend after the
    /// live updates before it, even when one of them waits for another instance: the resend
    /// must not overtake it (it would be skipped as stale, its callbacks never run).
    #[test]
    fn a_resent_state_waits_for_the_previous_version_where_the_instance_is_followed() {
        let t0 = Instant::now();
        let mut s = Synchronizer::new(Duration::from_secs(60));
        s.learn(&[("a/u/1".into(), 3), ("a/u/2".into(), 8)], false);
        // A transaction writing u/1 v4 and u/2 v10 waits for u/2 v9.
        let m = message(&[("a/u/1", 4), ("a/u/2", 10)], &[]);
        parked(s.submit("tx", Requirements::causal(&m, |_| true), t0));
        // The resend of u/1 (v5) waits for v4, which the transaction writes.
        assert!(parked(s.submit("sync u/1 v5", write("a/u/1", 5, true), t0)).is_empty());
        let v9 = ready(s.submit("u/2 v9", write("a/u/2", 9, false), t0));
        let r = s.finish(&v9.writes, &[("a/u/2".into(), 9)]);
        assert_eq!(jobs(&r), ["tx"]);
        let r = s.finish(&r[0].writes, &[("a/u/1".into(), 4), ("a/u/2".into(), 10)]);
        assert_eq!(jobs(&r), ["sync u/1 v5"]);
        assert_eq!(s.parked(), 0);
    }

    /// Processed version 0, but the instance's first version waits here (a live create held
    /// for another instance): the subscriber follows the instance from its start, so the resend
    /// waits for the create instead of overtaking it.
    #[test]
    fn a_resent_state_waits_for_a_first_version_held_here() {
        let t0 = Instant::now();
        let mut s = Synchronizer::new(Duration::from_secs(60));
        s.learn(&[("a/u/1".into(), 0), ("a/u/9".into(), 1)], true);
        // A transaction creating u/1 (v1) and updating u/9 (v3): waits for u/9 v2.
        let m = message(&[("a/u/1", 1), ("a/u/9", 3)], &[]);
        parked(s.submit("tx", Requirements::causal(&m, |_| true), t0));
        parked(s.submit("sync u/1 v2", write("a/u/1", 2, true), t0));
        let v2 = ready(s.submit("u/9 v2", write("a/u/9", 2, false), t0));
        let r = s.finish(&v2.writes, &[("a/u/9".into(), 2)]);
        assert_eq!(jobs(&r), ["tx"]);
        let r = s.finish(&r[0].writes, &[("a/u/1".into(), 1), ("a/u/9".into(), 3)]);
        assert_eq!(jobs(&r), ["sync u/1 v2"]);
        // Once nothing starts the instance here any more, a resend of a new one runs at once.
        s.learn(&[("a/u/5".into(), 0)], true);
        ready(s.submit("sync u/5 v4", write("a/u/5", 4, true), t0));
    }

    /// A waived resend still never runs beside another writer of the instance: here one whose
    /// delivery goes back to the broker (it processed nothing). Recovery lists no waived need as
    /// skipped.
    #[test]
    fn a_waived_resend_still_waits_for_a_concurrent_writer() {
        let t0 = Instant::now();
        let mut s = Synchronizer::new(Duration::from_millis(10));
        s.learn(&[("a/u/1".into(), 0)], true);
        let running = ready(s.submit("v1", write("a/u/1", 1, false), t0));
        parked(s.submit("sync v2", write("a/u/1", 2, true), t0));
        assert!(s.expire(t0 + Duration::from_secs(1)).is_empty());
        let r = s.finish(&running.writes, &[]);
        assert_eq!(jobs(&r), ["sync v2"]);
        assert!(r[0].skipped.is_empty(), "{:?}", r[0].skipped);
        assert!(s.recheck().is_empty());
    }

    #[test]
    fn a_message_waits_for_the_previous_version_and_its_reads() {
        let t0 = Instant::now();
        let mut s = Synchronizer::new(Duration::from_secs(10));
        // user/1 v2 arrives first: user/1 is unknown, so it is looked up.
        let lookup = parked(s.submit(2, req(&[("a/user/1", 1)], &["a/user/1"]), t0));
        assert_eq!(lookup, ["a/user/1"]);
        // A photo that read user/1 at v2 waits too, without a second lookup of user/1.
        let lookup = parked(s.submit(3, req(&[("a/user/1", 2)], &["a/photo/1"]), t0));
        assert!(lookup.is_empty());
        // The database knows nothing of user/1: still waiting.
        assert!(s.learn(&[("a/user/1".into(), 0)], true).is_empty());
        // v1 arrives and runs at once; its completion releases v2, whose completion the photo.
        let v1 = ready(s.submit(1, req(&[], &["a/user/1"]), t0));
        let r = s.finish(&v1.writes, &[("a/user/1".into(), 1)]);
        assert_eq!(jobs(&r), [2]);
        assert!(r[0].skipped.is_empty() && r[0].waited.is_some());
        let r = s.finish(&r[0].writes, &[("a/user/1".into(), 2)]);
        assert_eq!(jobs(&r), [3]);
        assert_eq!(s.parked(), 0);
    }

    #[test]
    fn writers_of_one_instance_never_run_together() {
        let t0 = Instant::now();
        let mut s = Synchronizer::new(Duration::from_secs(10));
        let first = ready(s.submit("first", req(&[], &["a/u/1"]), t0));
        // The same message again (a duplicate delivery) waits for the first to finish.
        parked(s.submit("dup", req(&[], &["a/u/1"]), t0));
        // An unrelated message runs.
        ready(s.submit("other", req(&[], &["a/u/2"]), t0));
        let r = s.finish(&first.writes, &[("a/u/1".into(), 1)]);
        assert_eq!(jobs(&r), ["dup"]);
        assert_eq!(s.running_writes(), 2);
    }

    #[test]
    fn a_timed_out_message_runs_without_what_is_missing() {
        let t0 = Instant::now();
        let mut s = Synchronizer::new(Duration::from_millis(100));
        parked(s.submit(7, req(&[("a/u/1", 4), ("a/u/2", 1)], &["a/p/1"]), t0));
        s.learn(&[("a/u/1".into(), 4), ("a/u/2".into(), 0)], true);
        assert_eq!(s.next_deadline(), Some(t0 + Duration::from_millis(100)));
        assert!(s.expire(t0 + Duration::from_millis(99)).is_empty());
        let r = s.expire(t0 + Duration::from_millis(100));
        assert_eq!(jobs(&r), [7]);
        assert_eq!(r[0].skipped, vec![("a/u/2".to_string(), 1)]);
        assert_eq!(s.parked(), 0);
        assert_eq!(s.next_deadline(), None);
    }

    /// Deadlines are kept in order: the next one is the earliest still waiting, a message
    /// released early gives its deadline up, and expiry releases the earliest first.
    #[test]
    fn deadlines_follow_the_messages_still_waiting() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut s = Synchronizer::new(ms(100));
        parked(s.submit(1, req(&[("a/u/1", 1)], &["a/p/1"]), t0));
        parked(s.submit(2, req(&[("a/u/2", 1)], &["a/p/2"]), t0 + ms(5)));
        parked(s.submit(3, req(&[("a/u/3", 1)], &["a/p/3"]), t0 + ms(9)));
        assert_eq!(s.next_deadline(), Some(t0 + ms(100)));
        assert_eq!(jobs(&s.learn(&[("a/u/1".into(), 1)], true)), [1]);
        assert_eq!(s.next_deadline(), Some(t0 + ms(105)));
        assert_eq!(jobs(&s.expire(t0 + ms(200))), [2, 3]);
        assert_eq!(s.next_deadline(), None);
    }

    #[test]
    fn a_timed_out_message_still_waits_for_a_concurrent_writer() {
        let t0 = Instant::now();
        let mut s = Synchronizer::new(Duration::from_millis(10));
        let running = ready(s.submit(1, req(&[], &["a/u/1"]), t0));
        parked(s.submit(2, req(&[("a/x/1", 1)], &["a/u/1"]), t0));
        assert!(s.expire(t0 + Duration::from_secs(1)).is_empty());
        let r = s.finish(&running.writes, &[]);
        assert_eq!(jobs(&r), [2]);
        assert_eq!(r[0].skipped, vec![("a/x/1".to_string(), 1)]);
    }

    #[test]
    fn recheck_and_failed_lookups() {
        let t0 = Instant::now();
        let mut s = Synchronizer::new(Duration::from_secs(10));
        let lookup = parked(s.submit(1, req(&[("a/u/1", 2)], &["a/p/1"]), t0));
        assert_eq!(lookup, ["a/u/1"]);
        assert!(s.recheck().is_empty(), "already being looked up");
        s.lookup_failed(&lookup);
        assert_eq!(s.recheck(), ["a/u/1"]);
        // Another process raised it meanwhile (seen by the recheck's lookup).
        let r = s.learn(&[("a/u/1".into(), 5)], true);
        assert_eq!(jobs(&r), [1]);
        assert!(s.recheck().is_empty());
    }

    #[test]
    fn versions_only_go_up_and_old_ones_are_forgotten() {
        let mut s: Synchronizer<u8> = Synchronizer::with_capacity(Duration::from_secs(1), 2);
        s.learn(&[("a/u/1".into(), 5)], false);
        s.learn(&[("a/u/1".into(), 3)], true);
        assert_eq!(s.known("a/u/1"), Some(5));
        s.learn(&[("a/u/2".into(), 1), ("a/u/3".into(), 1)], false);
        assert_eq!(s.known("a/u/1"), None, "the oldest is forgotten");
        assert_eq!(s.known("a/u/3"), Some(1));
    }

    #[test]
    fn a_waited_on_key_is_not_forgotten() {
        let t0 = Instant::now();
        let mut s: Synchronizer<u8> = Synchronizer::with_capacity(Duration::from_secs(1), 1);
        s.learn(&[("a/u/1".into(), 1)], false);
        parked(s.submit(1, req(&[("a/u/1", 2)], &["a/p/1"]), t0));
        s.learn(&[("a/u/2".into(), 1), ("a/u/3".into(), 1)], false);
        assert_eq!(s.known("a/u/1"), Some(1));
    }

    #[test]
    fn drain_forgets_waiting_messages() {
        let t0 = Instant::now();
        let mut s = Synchronizer::new(Duration::from_secs(1));
        parked(s.submit(1, req(&[("a/u/1", 2)], &["a/p/1"]), t0));
        assert_eq!(s.drain(), vec![1]);
        assert_eq!(s.parked(), 0);
        assert!(s.learn(&[("a/u/1".into(), 2)], false).is_empty());
    }

    /// Randomized: whatever the arrival order, messages are released only once their
    /// requirements hold, and all of them are released.
    #[test]
    fn random_arrival_orders_release_everything_in_a_valid_order() {
        for seed in 0..50u64 {
            let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let mut next = || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng
            };
            // A chain per instance (versions 1..=5 of 4 instances), plus reads of other instances.
            let mut versions = [0u64; 4];
            let mut msgs = Vec::new();
            for n in 0..20 {
                let i = (next() % 4) as usize;
                versions[i] += 1;
                let j = (next() % 4) as usize;
                let mut needs = Vec::new();
                if versions[i] > 1 {
                    needs.push((format!("a/u/{i}"), versions[i] - 1));
                }
                if j != i && versions[j] > 0 {
                    needs.push((format!("a/u/{j}"), versions[j]));
                }
                msgs.push((
                    n,
                    Requirements {
                        needs,
                        writes: vec![format!("a/u/{i}")],
                        ..Requirements::default()
                    },
                    (format!("a/u/{i}"), versions[i]),
                ));
            }
            let mut order: Vec<usize> = (0..msgs.len()).collect();
            for k in (1..order.len()).rev() {
                order.swap(k, (next() % (k as u64 + 1)) as usize);
            }
            let t0 = Instant::now();
            let mut s = Synchronizer::new(Duration::from_secs(60));
            let mut done: HashMap<String, u64> = HashMap::new();
            let mut running: Vec<Released<usize>> = Vec::new();
            let mut finished = 0;
            // Runs a released message: checks it was due, records its version, and returns
            // what its completion releases.
            let mut complete = |s: &mut Synchronizer<usize>, r: Released<usize>| {
                for (k, v) in &msgs[r.job].1.needs {
                    assert!(
                        done.get(k).copied().unwrap_or(0) >= *v,
                        "seed {seed}: message {} released before {k} v{v}",
                        r.job
                    );
                }
                let (k, v) = msgs[r.job].2.clone();
                let e = done.entry(k.clone()).or_insert(0);
                *e = (*e).max(v);
                finished += 1;
                s.finish(&r.writes, &[(k, v)])
            };
            for &n in &order {
                if let Submitted::Ready(r) = s.submit(n, msgs[n].1.clone(), t0) {
                    running.push(r);
                }
                // Finish a random running message now and then.
                while !running.is_empty() && next() % 2 == 0 {
                    let r = running.remove((next() % running.len() as u64) as usize);
                    running.extend(complete(&mut s, r));
                }
            }
            while let Some(r) = running.pop() {
                running.extend(complete(&mut s, r));
            }
            assert_eq!(finished, msgs.len(), "seed {seed}: something never ran");
            assert_eq!(s.parked(), 0);
        }
    }

    /// Randomized, with resends (`sync`): a subscriber following every instance from its first
    /// version (each looked up at 0 beforehand) receives transactions out of order across
    /// instances, and each resend after every lower version of its instance (the queue's order:
    /// a sync is written after the writes it follows). No message is released before what it
    /// needs, no live write is overtaken by a newer version (it would be skipped as stale), and
    /// everything is released.
    #[test]
    fn random_arrivals_with_resends_never_overtake_a_live_write() {
        for seed in 0..100u64 {
            let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let mut next = || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng
            };
            let keys: Vec<String> = (0..4).map(|i| format!("a/u/{i}")).collect();
            let mut versions = [0u64; 4];
            // What each message requires, what it writes, whether it is a resend.
            type Written = Vec<(String, u64)>;
            let mut msgs: Vec<(Requirements, Written, bool)> = Vec::new();
            for _ in 0..24 {
                let i = (next() % 4) as usize;
                let resend = versions[i] > 0 && next() % 3 == 0;
                let mut writes = Vec::new();
                versions[i] += 1;
                writes.push((keys[i].clone(), versions[i]));
                let j = (next() % 4) as usize;
                if !resend && j != i && next() % 2 == 0 {
                    versions[j] += 1;
                    writes.push((keys[j].clone(), versions[j]));
                }
                let pairs: Vec<(&str, u64)> =
                    writes.iter().map(|(k, v)| (k.as_str(), *v)).collect();
                let mut m = message(&pairs, &[]);
                m.operations[0].sync = resend;
                msgs.push((Requirements::causal(&m, |_| true), writes, resend));
            }
            let mut order: Vec<usize> = (0..msgs.len()).collect();
            for k in (1..order.len()).rev() {
                order.swap(k, (next() % (k as u64 + 1)) as usize);
            }
            for r in (0..msgs.len()).filter(|&r| msgs[r].2) {
                let (key, version) = &msgs[r].1[0];
                let pos = order.iter().position(|&n| n == r).unwrap();
                let last = order
                    .iter()
                    .rposition(|&n| msgs[n].1.iter().any(|(k, v)| k == key && v < version));
                if let Some(last) = last.filter(|&last| last > pos) {
                    order.remove(pos);
                    order.insert(last, r);
                }
            }
            let t0 = Instant::now();
            let mut s = Synchronizer::new(Duration::from_secs(60));
            let zeros: Vec<(String, u64)> = keys.iter().map(|k| (k.clone(), 0)).collect();
            assert!(s.learn(&zeros, true).is_empty());
            let mut done: HashMap<String, u64> = HashMap::new();
            let mut running: Vec<Released<usize>> = Vec::new();
            let mut finished = 0;
            let mut complete = |s: &mut Synchronizer<usize>, r: Released<usize>| {
                let (requirements, writes, _) = &msgs[r.job];
                for (k, v) in &requirements.needs {
                    assert!(
                        done.get(k).copied().unwrap_or(0) >= *v,
                        "seed {seed}: message {} released before {k} v{v}",
                        r.job
                    );
                }
                for (k, v) in writes {
                    let have = done.entry(k.clone()).or_insert(0);
                    assert!(*have < *v, "seed {seed}: {k} v{v} overtaken by v{have}");
                    *have = *v;
                }
                finished += 1;
                s.finish(&r.writes, writes)
            };
            for &n in &order {
                if let Submitted::Ready(r) = s.submit(n, msgs[n].0.clone(), t0) {
                    running.push(r);
                }
                while !running.is_empty() && next() % 2 == 0 {
                    let r = running.remove((next() % running.len() as u64) as usize);
                    running.extend(complete(&mut s, r));
                }
            }
            while let Some(r) = running.pop() {
                running.extend(complete(&mut s, r));
            }
            assert_eq!(finished, msgs.len(), "seed {seed}: something never ran");
            assert_eq!(s.parked(), 0);
        }
    }
}
