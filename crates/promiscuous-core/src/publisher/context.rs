//! `promiscuous::context`: the causal context of a unit of work on the publisher.
//!
//! Inside [`context`] (task-local), every published instance read ([`record_read`]) or written
//! is remembered with the version seen; each write made later in the same context carries them
//! as read dependencies, so a subscriber applies them first (G2: "unfriend the parents, then
//! post the photo"). Outside a context, writes carry only their own write dependency.
//!
//! A write whose transaction rolls back is still remembered by the context (nothing tells it of
//! the rollback); the publisher lowers every read dependency to the version committed in its
//! database when it writes the message, so no message depends on a version that never existed.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;

use serde_json::Value;

use crate::message::Dependency;

#[derive(Default)]
struct State {
    current_user_id: Option<Value>,
    /// key → highest version read or written in this context.
    seen: BTreeMap<String, u64>,
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

/// Whether the caller runs inside a [`context`].
pub fn in_context() -> bool {
    CONTEXT.try_with(|_| ()).is_ok()
}

fn remember(state: &mut State, key: &str, version: u64) {
    let v = state.seen.entry(key.to_string()).or_insert(0);
    *v = (*v).max(version);
}

/// Remembers that the instance `key` was read at `version` (no-op outside a context).
pub fn record_read(key: &str, version: u64) {
    let _ = CONTEXT.try_with(|c| remember(&mut c.borrow_mut(), key, version));
}

/// For a write of `key` at `version`: the read dependencies (everything seen in the context
/// but `key` itself) and the current user; then remembers the write. Outside a context:
/// nothing.
pub fn record_write(key: &str, version: u64) -> (Vec<Dependency>, Option<Value>) {
    CONTEXT
        .try_with(|c| {
            let mut state = c.borrow_mut();
            let reads = state
                .seen
                .iter()
                .filter(|(k, _)| k.as_str() != key)
                .map(|(k, v)| Dependency {
                    key: k.clone(),
                    version: *v,
                })
                .collect();
            let user = state.current_user_id.clone();
            remember(&mut state, key, version);
            (reads, user)
        })
        .unwrap_or_default()
}

/// What a write made now depends on: every instance seen in the context (read, or written
/// before), at the highest version seen, and the current user. Outside a context: nothing.
/// The instance being written is left out by the caller; [`remember_write`] records it after.
pub fn dependencies() -> (Vec<Dependency>, Option<Value>) {
    CONTEXT
        .try_with(|c| {
            let state = c.borrow();
            let reads = state
                .seen
                .iter()
                .map(|(k, v)| Dependency {
                    key: k.clone(),
                    version: *v,
                })
                .collect();
            (reads, state.current_user_id.clone())
        })
        .unwrap_or_default()
}

/// Remembers that the context wrote `key` at `version` (no-op outside a context).
pub fn remember_write(key: &str, version: u64) {
    let _ = CONTEXT.try_with(|c| remember(&mut c.borrow_mut(), key, version));
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
            let (reads, user) = record_write("a/photo/9", 1);
            assert_eq!(reads, vec![dep("a/parent/1", 3)]);
            assert_eq!(user, Some(Value::from(7)));
            let (reads, _) = record_write("a/photo/9", 2);
            assert_eq!(
                reads,
                vec![dep("a/parent/1", 3)],
                "its own key is a write dependency"
            );
            let (reads, _) = record_write("a/comment/1", 1);
            assert_eq!(reads, vec![dep("a/parent/1", 3), dep("a/photo/9", 2)]);
        })
        .await;
    }

    #[tokio::test]
    async fn outside_a_context_nothing_is_tracked_and_contexts_do_not_leak() {
        record_read("a/x/1", 1);
        assert_eq!(record_write("a/y/1", 1), (Vec::new(), None));
        assert!(!in_context());
        context(async { record_read("a/x/1", 4) }).await;
        context(async {
            assert!(in_context());
            assert_eq!(record_write("a/y/1", 2).0, Vec::new());
        })
        .await;
    }
}
