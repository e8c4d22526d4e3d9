//! Processed versions shared between the worker processes of one subscriber app, with
//! wake-ups: the [`VersionStore`] trait (Redis implements it in `redis/`) and
//! [`MemoryVersions`], between subscribers of one process. A leaf: uses only the error type.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures_util::Stream;
use tokio::sync::broadcast;

use crate::error::Error;

/// A stream of `(key, version)` raises made by any worker sharing a [`VersionStore`].
pub type Wakeups = Pin<Box<dyn Stream<Item = (String, u64)> + Send>>;

/// A shared record of processed versions, visible to every worker process of a subscriber
/// application, with wake-ups when versions advance. The subscriber's database stays the
/// source of truth (the applied version is stored with the data); this record lets workers
/// learn about each other's progress without polling the database.
#[async_trait]
pub trait VersionStore: Send + Sync + 'static {
    /// Raises each key to at least its version (never lowers it) and wakes up waiters.
    async fn advance(&self, versions: &[(String, u64)]) -> Result<(), Error>;
    /// The recorded version of each key (0 when unknown).
    async fn get(&self, keys: &[String]) -> Result<Vec<u64>, Error>;
    /// Raises made from now on by any worker, while the stream lasts (it ends when the
    /// connection behind it is lost; subscribe again then). `None`: this store has no
    /// wake-ups, and workers look versions up again from time to time instead.
    async fn wakeups(&self) -> Result<Option<Wakeups>, Error> {
        Ok(None)
    }
}

/// A [`VersionStore`] in memory, shared by the subscribers of one process that consume the same
/// queue (clones share it): the embedded counterpart of `RedisVersions`.
#[derive(Clone)]
pub struct MemoryVersions {
    inner: Arc<MemoryInner>,
}

struct MemoryInner {
    versions: Mutex<HashMap<String, u64>>,
    raised: broadcast::Sender<(String, u64)>,
}

impl Default for MemoryVersions {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryVersions {
    pub fn new() -> Self {
        Self {
            inner: Arc::new(MemoryInner {
                versions: Mutex::new(HashMap::new()),
                raised: broadcast::channel(65_536).0,
            }),
        }
    }

    fn versions(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        // Every critical section is one map operation: a poisoned lock holds consistent data.
        self.inner
            .versions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl VersionStore for MemoryVersions {
    async fn advance(&self, versions: &[(String, u64)]) -> Result<(), Error> {
        let mut raised = Vec::new();
        {
            let mut map = self.versions();
            for (key, version) in versions {
                let v = map.entry(key.clone()).or_insert(0);
                if *version > *v {
                    *v = *version;
                    raised.push((key.clone(), *version));
                }
            }
        }
        for r in raised {
            // No receiver is not an error: nobody waits.
            let _ = self.inner.raised.send(r);
        }
        Ok(())
    }

    async fn get(&self, keys: &[String]) -> Result<Vec<u64>, Error> {
        let map = self.versions();
        Ok(keys
            .iter()
            .map(|k| map.get(k).copied().unwrap_or(0))
            .collect())
    }

    async fn wakeups(&self) -> Result<Option<Wakeups>, Error> {
        let rx = self.inner.raised.subscribe();
        // A receiver that fell behind ends the stream: the subscriber then subscribes again and
        // looks up what it waits for, so no raise is lost.
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.ok().map(|raise| (raise, rx))
        });
        Ok(Some(Box::pin(stream)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn memory_versions_only_go_up_and_wake_up_subscribers() {
        let store = MemoryVersions::new();
        let mut wakeups = store.wakeups().await.unwrap().unwrap();
        store
            .advance(&[("a/u/1".into(), 2), ("a/u/2".into(), 1)])
            .await
            .unwrap();
        store.advance(&[("a/u/1".into(), 1)]).await.unwrap();
        store.advance(&[("a/u/1".into(), 3)]).await.unwrap();
        assert_eq!(
            store
                .get(&["a/u/1".into(), "a/u/2".into(), "a/u/3".into()])
                .await
                .unwrap(),
            vec![3, 1, 0]
        );
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.push(wakeups.next().await.unwrap());
        }
        assert_eq!(
            seen,
            vec![
                ("a/u/1".to_string(), 2),
                ("a/u/2".to_string(), 1),
                ("a/u/1".to_string(), 3)
            ],
            "a lowering is no raise"
        );
    }
}
