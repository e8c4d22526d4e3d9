//! Wake-ups of a relay when a write in this process added a row to its outbox.
//!
//! Each [`Relay`](super::Relay) owns a [`Wake`]. A running publisher registers it here under
//! the identity of its outbox database ([`register`]; the registration is removed when the
//! returned [`Registration`] is dropped), and the outbox writer, once its rows are written,
//! wakes the relays of *that* database only ([`outbox_written`]). A write to a database with no
//! local publisher wakes nobody, and publishers on other databases (or in other tests of one
//! test binary) are not disturbed.
//!
//! The row is written inside the caller's transaction, so a woken relay may not see it yet: the
//! relay re-checks with a short backoff, and polls on its own in any case (rows written by other
//! processes wake nobody here). A wake-up is only ever a hint: a missed one costs latency (one
//! poll interval), never a row; a spurious one costs one look at the outbox.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::Notify;

/// The wake-up signal of one relay: a change counter and the waiters to notify.
#[derive(Debug, Default)]
pub struct Wake {
    notify: Notify,
    writes: AtomicU64,
}

impl Wake {
    pub fn new() -> Self {
        Self::default()
    }

    /// Signals that a row was added to the relay's outbox.
    pub fn written(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.notify.notify_waiters();
    }

    /// How many wake-ups this relay received (a cheap change counter).
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// Waits for the next wake-up, at most `timeout`. Returns whether one happened since
    /// `seen` (a value of [`Wake::writes`]).
    pub async fn wait_for_write(&self, seen: u64, timeout: Duration) -> bool {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.writes() != seen {
            return true;
        }
        tokio::time::timeout(timeout, notified).await.is_ok()
    }
}

/// The registered wakes by outbox database identity, each with its registration number.
type Registry = HashMap<String, Vec<(u64, Arc<Wake>)>>;

fn registry() -> &'static Mutex<Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

fn lock() -> std::sync::MutexGuard<'static, Registry> {
    // The map stays consistent even if a holder panicked (each change is one call).
    registry()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Keeps a [`Wake`] registered under its database until dropped.
#[derive(Debug)]
pub struct Registration {
    database: String,
    number: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut map = lock();
        if let Some(wakes) = map.get_mut(&self.database) {
            wakes.retain(|(n, _)| *n != self.number);
            if wakes.is_empty() {
                map.remove(&self.database);
            }
        }
    }
}

/// Registers `wake` to be woken by writes to the outbox of `database` (an identity the outbox
/// writer can tell from its connection), until the [`Registration`] is dropped. Several relays
/// may register for one database (a relay per lease candidate): all are woken.
pub fn register(database: impl Into<String>, wake: Arc<Wake>) -> Registration {
    static NUMBERS: AtomicU64 = AtomicU64::new(0);
    let database = database.into();
    let number = NUMBERS.fetch_add(1, Ordering::Relaxed);
    lock()
        .entry(database.clone())
        .or_default()
        .push((number, wake));
    Registration { database, number }
}

/// Whether any relay is registered in this process (if not, the writer need not find out which
/// database it wrote to).
pub fn any_registered() -> bool {
    !lock().is_empty()
}

/// The database of every registered relay, if they all share one (the common case: one
/// publisher per process). A writer can then wake them without finding out which database it
/// wrote to: a write to another database wakes them for nothing, which costs an empty fetch.
pub fn only_database() -> Option<String> {
    let map = lock();
    let mut databases = map.keys();
    match (databases.next(), databases.next()) {
        (Some(only), None) => Some(only.clone()),
        _ => None,
    }
}

/// Called by the outbox writer after adding a row to the outbox of `database`: wakes the relays
/// registered for it. Returns how many were woken.
pub fn outbox_written(database: &str) -> usize {
    let wakes: Vec<Arc<Wake>> = match lock().get(database) {
        Some(wakes) => wakes.iter().map(|(_, w)| w.clone()).collect(),
        None => return 0,
    };
    for wake in &wakes {
        wake.written();
    }
    wakes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_wakes_the_relays_of_its_database_only() {
        let (a, b) = (Arc::new(Wake::new()), Arc::new(Wake::new()));
        let ra = register("wake-test-a", a.clone());
        let rb = register("wake-test-b", b.clone());
        assert_eq!(outbox_written("wake-test-a"), 1);
        assert_eq!((a.writes(), b.writes()), (1, 0));
        assert_eq!(outbox_written("wake-test-nobody"), 0);
        assert_eq!(only_database(), None, "two databases");
        drop(ra);
        assert_eq!(outbox_written("wake-test-a"), 0, "unregistered on drop");
        assert_eq!(a.writes(), 1);
        drop(rb);
        assert_eq!(outbox_written("wake-test-b"), 0);
    }

    #[test]
    fn several_relays_of_one_database_are_all_woken() {
        let (a, b) = (Arc::new(Wake::new()), Arc::new(Wake::new()));
        let _ra = register("wake-test-shared", a.clone());
        let rb = register("wake-test-shared", b.clone());
        assert_eq!(outbox_written("wake-test-shared"), 2);
        drop(rb);
        assert_eq!(outbox_written("wake-test-shared"), 1);
        assert_eq!((a.writes(), b.writes()), (2, 1));
    }

    #[tokio::test]
    async fn waiting_returns_at_a_write_or_the_timeout() {
        let wake = Arc::new(Wake::new());
        let seen = wake.writes();
        assert!(!wake.wait_for_write(seen, Duration::from_millis(5)).await);
        wake.written();
        assert!(
            wake.wait_for_write(seen, Duration::from_secs(5)).await,
            "missed"
        );
        let seen = wake.writes();
        let waiter = tokio::spawn({
            let wake = wake.clone();
            async move { wake.wait_for_write(seen, Duration::from_secs(5)).await }
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        wake.written();
        assert!(waiter.await.unwrap());
    }
}
