//! Process-wide wake-up of relays when a write added an outbox row.
//!
//! The row is written inside the caller's transaction, so a woken relay may not see it yet: the
//! relay re-checks with a short backoff, and polls on its own in any case (rows written by other
//! processes wake nobody here).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

static OUTBOX_WRITTEN: Notify = Notify::const_new();
static WRITES: AtomicU64 = AtomicU64::new(0);

/// Called by the outbox writer after adding a row.
pub fn outbox_written() {
    WRITES.fetch_add(1, Ordering::Relaxed);
    OUTBOX_WRITTEN.notify_waiters();
}

/// How many outbox writes this process made (a cheap change counter).
pub fn writes() -> u64 {
    WRITES.load(Ordering::Relaxed)
}

/// Waits for the next outbox write in this process, at most `timeout`. Returns whether a write
/// happened since `seen` (a value of [`writes`]).
pub async fn wait_for_write(seen: u64, timeout: Duration) -> bool {
    let notified = OUTBOX_WRITTEN.notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    if writes() != seen {
        return true;
    }
    tokio::time::timeout(timeout, notified).await.is_ok()
}
