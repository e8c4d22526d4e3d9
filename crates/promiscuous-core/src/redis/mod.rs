//! Redis (redis-rs 1.x, `ConnectionManager`): the relay [`RedisLease`] and the subscriber's
//! shared [`RedisVersions`] with pub/sub wake-ups.
//!
//! The connection manager reconnects by itself after a lost connection. Its default response
//! timeout (500 ms) is too short for a busy server, so requests get
//! [`RedisConfig::response_timeout`] (5 s by default) instead.

mod lease;
mod versions;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub use lease::RedisLease;
pub use versions::RedisVersions;

use crate::error::{Error, redact_url};

/// Connection settings.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub response_timeout: Duration,
    pub connection_timeout: Duration,
    /// Prefix of every key and channel promiscuous uses.
    pub namespace: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            response_timeout: Duration::from_secs(5),
            connection_timeout: Duration::from_secs(2),
            namespace: "promiscuous".into(),
        }
    }
}

/// A lazily connected, self-reconnecting Redis handle; clones share the connection.
#[derive(Clone)]
pub struct Redis {
    client: redis::Client,
    manager: ConnectionManager,
    config: RedisConfig,
    healthy: Arc<AtomicBool>,
}

impl Redis {
    /// No I/O happens here: the first command connects.
    pub fn new(url: &str, config: RedisConfig) -> Result<Self, Error> {
        let client = redis::Client::open(url)
            .map_err(|e| Error::Connection(format!("redis URL {:?}: {e}", redact_url(url))))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(config.response_timeout))
            .set_connection_timeout(Some(config.connection_timeout))
            .set_number_of_retries(2);
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)
            .map_err(|e| Error::Connection(format!("redis {:?}: {e}", redact_url(url))))?;
        Ok(Self {
            client,
            manager,
            config,
            healthy: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Whether the last command succeeded.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub async fn ping(&self) -> Result<(), Error> {
        let mut c = self.manager.clone();
        let r: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut c).await;
        self.track(r, "PING").map(drop)
    }

    /// The server's id of this handle's connection (`CLIENT ID`), for diagnostics.
    pub async fn connection_id(&self) -> Result<i64, Error> {
        let mut c = self.manager.clone();
        let r: redis::RedisResult<i64> = redis::cmd("CLIENT").arg("ID").query_async(&mut c).await;
        self.track(r, "CLIENT ID")
    }

    fn key(&self, parts: &[&str]) -> String {
        let mut k = self.config.namespace.clone();
        for p in parts {
            k.push(':');
            k.push_str(p);
        }
        k
    }

    fn connection(&self) -> ConnectionManager {
        self.manager.clone()
    }

    fn track<T>(&self, r: redis::RedisResult<T>, what: &str) -> Result<T, Error> {
        self.healthy.store(r.is_ok(), Ordering::Relaxed);
        r.map_err(|e| Error::Connection(format!("redis {what}: {e}")))
    }
}
