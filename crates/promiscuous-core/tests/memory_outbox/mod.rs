//! An outbox in memory, shared by relays as a database would be (relay tests).

use std::sync::Mutex;

use async_trait::async_trait;
use promiscuous_core::BoxError;
use promiscuous_core::publisher::{Outbox, OutboxEntry};

#[derive(Default)]
pub struct MemoryOutbox {
    pub rows: Mutex<Vec<OutboxEntry>>,
}

#[async_trait]
impl Outbox for MemoryOutbox {
    async fn fetch(&self, limit: usize) -> Result<Vec<OutboxEntry>, BoxError> {
        Ok(self
            .rows
            .lock()
            .unwrap()
            .iter()
            .take(limit)
            .cloned()
            .collect())
    }

    async fn remove(&self, ids: &[i64]) -> Result<(), BoxError> {
        self.rows.lock().unwrap().retain(|r| !ids.contains(&r.id));
        Ok(())
    }
}
