//! `promiscuous::context`: the causal context of a unit of work on the publisher.
//!
//! Inside [`context`] (task-local), every published instance read ([`record_read`]) or written
//! is remembered with the version seen; each write made later in the same context depends on
//! them, so a subscriber applies them first (G2: "unfriend the parents, then post the photo").
//! Outside a context, writes carry only their own write dependency.
//!
//! Dependencies stay bounded: once a message of app `A` has been published with what the
//! context had seen, the context's later messages to `A` depend on that message (its last
//! operation's instance at its version, an [`Anchor`]) instead of everything it covered; only
//! what was seen since is listed again. The publisher applies this reduction only after checking
//! that the anchor's message committed (see `promiscuous_sea_orm`'s hooks), and lists every
//! dependency otherwise. Anchors are per app because subscribers follow apps: a message of
//! another app does not reach every subscriber of `A`.
//!
//! A write whose transaction rolls back is still remembered by the context (nothing tells it of
//! the rollback); the publisher lowers every read dependency to the version committed in its
//! database when it writes the message, so no message depends on a version that never existed.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use serde_json::Value;

use crate::message::Dependency;

/// The last message a context published to one app: the instance and version of its last
/// operation, and the message's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub key: String,
    pub version: u64,
    pub message: String,
}

#[derive(Clone)]
struct Anchored {
    anchor: Anchor,
    /// Everything the anchor's message implies: its dependencies (transitively) and writes.
    covered: BTreeMap<String, u64>,
}

/// What a test sees of each write (see [`context_for_tests`]).
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct WriteRecord {
    pub message: String,
    pub key: String,
    pub version: u64,
    /// Every dependency of the write, before any reduction.
    pub dependencies: Vec<Dependency>,
}

/// Options of [`context_for_tests`].
#[doc(hidden)]
#[derive(Clone, Default)]
pub struct TestOptions {
    pub current_user_id: Option<Value>,
    /// Called for every write with all its dependencies (the ground truth of causal order).
    pub observer: Option<Arc<dyn Fn(WriteRecord) + Send + Sync>>,
    /// A deliberately wrong reduction, for tests that check the checker: every dependency an
    /// earlier message of the context carried is dropped, without depending on that message.
    pub unsound_reduction: bool,
}

/// What a context has recorded so far ([`recorded`]): introspection for applications and
/// tests (which version of what a write depended on, what it published).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recorded {
    /// Every instance read or written in the context, at the highest version seen: what a write
    /// made now depends on (before the publisher's reduction). Keys are instance keys
    /// (`app/model/id`, see `promiscuous_protocol::key`).
    pub dependencies: Vec<Dependency>,
    /// Every write published in the context, in order: its instance key, its version and the
    /// id of its message (known at the write: the outbox row carries it).
    pub writes: Vec<Anchor>,
}

#[derive(Default)]
struct State {
    /// Every write of the context, in order.
    writes: Vec<Anchor>,
    current_user_id: Option<Value>,
    /// key → highest version read or written in this context.
    seen: BTreeMap<String, u64>,
    /// app → the context's last message to it.
    anchors: BTreeMap<String, Anchored>,
    observer: Option<Arc<dyn Fn(WriteRecord) + Send + Sync>>,
    unsound_reduction: bool,
}

tokio::task_local! {
    static CONTEXT: RefCell<State>;
}

/// Runs `work` in a fresh causal context.
pub async fn context<F: Future>(work: F) -> F::Output {
    CONTEXT.scope(RefCell::new(State::default()), work).await
}

/// Runs `work` in a fresh causal context on behalf of a user (sent as `current_user_id`).
pub async fn context_as<F: Future>(current_user_id: impl Into<Value>, work: F) -> F::Output {
    let state = State {
        current_user_id: Some(current_user_id.into()),
        ..State::default()
    };
    CONTEXT.scope(RefCell::new(state), work).await
}

/// A context for tests of causal order: see [`TestOptions`].
#[doc(hidden)]
pub async fn context_for_tests<F: Future>(options: TestOptions, work: F) -> F::Output {
    let state = State {
        current_user_id: options.current_user_id,
        observer: options.observer,
        unsound_reduction: options.unsound_reduction,
        ..State::default()
    };
    CONTEXT.scope(RefCell::new(state), work).await
}

/// Whether the caller runs inside a [`context`].
pub fn in_context() -> bool {
    CONTEXT.try_with(|_| ()).is_ok()
}

/// Everything the context saw, at the highest version seen.
fn seen(state: &State) -> Vec<Dependency> {
    state
        .seen
        .iter()
        .map(|(key, version)| Dependency {
            key: key.clone(),
            version: *version,
        })
        .collect()
}

fn remember(state: &mut State, key: &str, version: u64) {
    let v = state.seen.entry(key.to_string()).or_insert(0);
    *v = (*v).max(version);
}

/// What the current context has recorded so far: its dependencies and its writes; `None`
/// outside a [`context`].
pub fn recorded() -> Option<Recorded> {
    CONTEXT
        .try_with(|c| {
            let state = c.borrow();
            Recorded {
                dependencies: seen(&state),
                writes: state.writes.clone(),
            }
        })
        .ok()
}

/// Remembers that the instance `key` was read at `version` (no-op outside a context).
pub fn record_read(key: &str, version: u64) {
    let _ = CONTEXT.try_with(|c| remember(&mut c.borrow_mut(), key, version));
}

/// What a write to app `app` made now depends on, before the reduction: every instance seen in
/// the context (read, or written before) at the highest version seen; with the context's last
/// message to `app`, if any; and the current user. Outside a context: nothing.
pub fn dependencies(app: &str) -> Needs {
    CONTEXT
        .try_with(|c| {
            let state = c.borrow();
            Needs {
                all: seen(&state),
                anchor: state
                    .anchors
                    .get(app)
                    .cloned()
                    .map(|a| (a.anchor, a.covered)),
                current_user_id: state.current_user_id.clone(),
                unsound_reduction: state.unsound_reduction,
            }
        })
        .unwrap_or_default()
}

/// See [`dependencies`].
#[derive(Debug, Clone, Default)]
pub struct Needs {
    pub all: Vec<Dependency>,
    /// The context's last message to the app, and everything it implies.
    pub anchor: Option<(Anchor, BTreeMap<String, u64>)>,
    pub current_user_id: Option<Value>,
    #[doc(hidden)]
    pub unsound_reduction: bool,
}

/// The dependencies a write carries, given all of them (`all`, already lowered to committed
/// versions) and the context's last message to the app. With a `verified` anchor (its message
/// committed, or is the one being written), the dependencies it implies are left out and the
/// anchor itself is listed instead.
pub fn reduce(
    all: &[Dependency],
    anchor: Option<&(Anchor, BTreeMap<String, u64>)>,
    verified: bool,
    unsound: bool,
) -> Vec<Dependency> {
    let implied = |d: &Dependency, covered: &BTreeMap<String, u64>| {
        covered.get(&d.key).is_some_and(|v| *v >= d.version)
    };
    match anchor {
        Some((_, covered)) if unsound => all
            .iter()
            .filter(|d| !implied(d, covered))
            .cloned()
            .collect(),
        Some((anchor, covered)) if verified => {
            let mut carried: Vec<Dependency> = all
                .iter()
                .filter(|d| !implied(d, covered) && d.key != anchor.key)
                .cloned()
                .collect();
            carried.push(Dependency {
                key: anchor.key.clone(),
                version: anchor.version,
            });
            carried
        }
        _ => all.to_vec(),
    }
}

/// Remembers that the context wrote `key` at `version` in `message` to `app`, whose
/// dependencies before reduction were `all`: the message becomes the app's anchor (no-op outside
/// a context).
pub fn remember_write(app: &str, key: &str, version: u64, message: &str, all: &[Dependency]) {
    let _ = CONTEXT.try_with(|c| {
        let mut state = c.borrow_mut();
        if let Some(observer) = &state.observer {
            observer(WriteRecord {
                message: message.to_string(),
                key: key.to_string(),
                version,
                dependencies: all.iter().filter(|d| d.key != key).cloned().collect(),
            });
        }
        remember(&mut state, key, version);
        let mut covered: BTreeMap<String, u64> =
            all.iter().map(|d| (d.key.clone(), d.version)).collect();
        covered.insert(key.to_string(), version);
        state.writes.push(Anchor {
            key: key.to_string(),
            version,
            message: message.to_string(),
        });
        state.anchors.insert(
            app.to_string(),
            Anchored {
                anchor: Anchor {
                    key: key.to_string(),
                    version,
                    message: message.to_string(),
                },
                covered,
            },
        );
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(key: &str, version: u64) -> Dependency {
        Dependency {
            key: key.into(),
            version,
        }
    }

    #[tokio::test]
    async fn writes_depend_on_what_the_context_read_and_wrote_before() {
        context_as(7, async {
            record_read("a/parent/1", 3);
            let needs = dependencies("a");
            assert_eq!(needs.all, vec![dep("a/parent/1", 3)]);
            assert_eq!(needs.current_user_id, Some(Value::from(7)));
            assert!(needs.anchor.is_none());
            remember_write("a", "a/photo/9", 1, "m1", &needs.all);
            let needs = dependencies("a");
            assert_eq!(needs.all, vec![dep("a/parent/1", 3), dep("a/photo/9", 1)]);
            let (anchor, covered) = needs.anchor.clone().unwrap();
            assert_eq!(anchor.key, "a/photo/9");
            assert_eq!(covered.len(), 2);
            assert!(dependencies("b").anchor.is_none(), "anchors are per app");
            let recorded = recorded().unwrap();
            assert_eq!(
                recorded.dependencies,
                vec![dep("a/parent/1", 3), dep("a/photo/9", 1)]
            );
            assert_eq!(
                recorded.writes,
                vec![Anchor {
                    key: "a/photo/9".into(),
                    version: 1,
                    message: "m1".into()
                }]
            );
        })
        .await;
    }

    #[tokio::test]
    async fn a_verified_anchor_replaces_what_it_implies() {
        context(async {
            record_read("a/parent/1", 3);
            record_read("b/other/1", 2);
            let first = dependencies("a");
            remember_write("a", "a/photo/9", 1, "m1", &first.all);
            record_read("a/parent/2", 5);
            let needs = dependencies("a");
            let anchor = needs.anchor.as_ref();
            assert_eq!(
                reduce(&needs.all, anchor, true, false),
                vec![dep("a/parent/2", 5), dep("a/photo/9", 1)],
                "what m1 carried is implied by m1"
            );
            assert_eq!(reduce(&needs.all, anchor, false, false), needs.all);
            assert_eq!(
                reduce(&needs.all, anchor, false, true),
                vec![dep("a/parent/2", 5)],
                "the unsound reduction forgets m1 altogether"
            );
            // A newer version of something m1 carried is listed again.
            record_read("a/parent/1", 4);
            let needs = dependencies("a");
            assert!(
                reduce(&needs.all, needs.anchor.as_ref(), true, false)
                    .contains(&dep("a/parent/1", 4))
            );
        })
        .await;
    }

    #[tokio::test]
    async fn outside_a_context_nothing_is_tracked_and_contexts_do_not_leak() {
        record_read("a/x/1", 1);
        let needs = dependencies("a");
        assert!(needs.all.is_empty() && needs.anchor.is_none());
        assert!(!in_context());
        assert_eq!(recorded(), None);
        context(async { record_read("a/x/1", 4) }).await;
        context(async {
            assert!(in_context());
            assert!(dependencies("a").all.is_empty());
        })
        .await;
    }
}
