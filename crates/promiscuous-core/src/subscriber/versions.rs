use async_trait::async_trait;

use crate::error::Error;

/// A shared record of applied versions, visible to every worker process of a subscriber
/// application, with wake-ups when versions advance. The subscriber's database stays the
/// source of truth (the applied version is stored with the data); this record lets workers
/// learn about each other's progress without polling the database.
#[async_trait]
pub trait VersionStore: Send + Sync + 'static {
    /// Raises each key to at least its version (never lowers it) and wakes up waiters.
    async fn advance(&self, versions: &[(String, u64)]) -> Result<(), Error>;
    /// The recorded version of each key (0 when unknown).
    async fn get(&self, keys: &[String]) -> Result<Vec<u64>, Error>;
}
