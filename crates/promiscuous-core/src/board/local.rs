//! This process's board ([`LocalBoard`], one per process: [`local`]): every worker of the
//! process writes here, whether or not it also writes to a shared board.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;

use super::{Board, Report};
use crate::error::Error;

/// The reports of this process's workers, in memory.
#[derive(Default)]
pub struct LocalBoard {
    reports: Mutex<HashMap<String, Report>>,
}

/// This process's board.
pub fn local() -> Arc<LocalBoard> {
    static LOCAL: OnceLock<Arc<LocalBoard>> = OnceLock::new();
    LOCAL.get_or_init(Arc::default).clone()
}

impl LocalBoard {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Report>> {
        self.reports.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn insert(&self, report: Report) {
        self.lock().insert(report.id.clone(), report);
    }

    pub fn delete(&self, id: &str) {
        self.lock().remove(id);
    }

    /// The reports not expired, expired ones forgotten.
    pub fn current(&self) -> Vec<Report> {
        let now = crate::now_ms();
        let mut reports = self.lock();
        reports.retain(|_, r| !r.expired(now));
        reports.values().cloned().collect()
    }
}

#[async_trait]
impl Board for LocalBoard {
    async fn put(&self, report: &Report) -> Result<(), Error> {
        self.insert(report.clone());
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<(), Error> {
        self.delete(id);
        Ok(())
    }

    async fn reports(&self) -> Result<Vec<Report>, Error> {
        Ok(self.current())
    }

    fn describe(&self) -> String {
        "this process".to_string()
    }

    fn shared(&self) -> bool {
        false
    }
}
