//! Workers' reports in Redis ([`RedisBoard`]), shared by every process of the deployment, for
//! a dashboard running anywhere.
//!
//! Layout, under the namespace (`promiscuous` by default):
//! - `{ns}:board:report:{id}`: the report as JSON, with an expiry of [`REPORT_TTL`]
//!   (`SET … PX`), so a worker that stops beating disappears by itself;
//! - `{ns}:board:workers`: a sorted set of the worker ids, scored by their last beat (Unix
//!   milliseconds): what a reader lists; ids whose report expired are removed by readers.

use async_trait::async_trait;

use super::Redis;
use crate::board::{Board, REPORT_TTL, Report};
use crate::error::Error;

/// The board of every process using this Redis (and namespace).
#[derive(Clone)]
pub struct RedisBoard {
    redis: Redis,
}

impl RedisBoard {
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }

    fn report_key(&self, id: &str) -> String {
        self.redis.key(&["board", "report", id])
    }

    fn index(&self) -> String {
        self.redis.key(&["board", "workers"])
    }
}

#[async_trait]
impl Board for RedisBoard {
    async fn put(&self, report: &Report) -> Result<(), Error> {
        let json = serde_json::to_string(report).map_err(|e| Error::Redis {
            command: "encoding a board report".into(),
            source: std::sync::Arc::new(redis::RedisError::from((
                redis::ErrorKind::Client,
                "serde_json",
                e.to_string(),
            ))),
        })?;
        let mut c = self.redis.connection().await?;
        let r: redis::RedisResult<()> = redis::pipe()
            .cmd("SET")
            .arg(self.report_key(&report.id))
            .arg(json)
            .arg("PX")
            .arg(REPORT_TTL.as_millis() as u64)
            .ignore()
            .cmd("ZADD")
            .arg(self.index())
            .arg(report.heartbeat_ms)
            .arg(&report.id)
            .ignore()
            .query_async(&mut c)
            .await;
        self.redis.track(r, "SET board report")
    }

    async fn remove(&self, id: &str) -> Result<(), Error> {
        let mut c = self.redis.connection().await?;
        let r: redis::RedisResult<()> = redis::pipe()
            .cmd("DEL")
            .arg(self.report_key(id))
            .ignore()
            .cmd("ZREM")
            .arg(self.index())
            .arg(id)
            .ignore()
            .query_async(&mut c)
            .await;
        self.redis.track(r, "DEL board report")
    }

    async fn reports(&self) -> Result<Vec<Report>, Error> {
        let mut c = self.redis.connection().await?;
        let ids: Vec<String> = self.redis.track(
            redis::cmd("ZRANGE")
                .arg(self.index())
                .arg(0)
                .arg(-1)
                .query_async(&mut c)
                .await,
            "ZRANGE board workers",
        )?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| self.report_key(id)).collect();
        let found: Vec<Option<String>> = self.redis.track(
            redis::cmd("MGET").arg(&keys).query_async(&mut c).await,
            "MGET board reports",
        )?;
        let mut reports = Vec::with_capacity(ids.len());
        let mut gone = Vec::new();
        for (id, json) in ids.iter().zip(found) {
            match json.map(|j| serde_json::from_str::<Report>(&j)) {
                Some(Ok(report)) => reports.push(report),
                // Written by another release of promiscuous: not shown, left to expire.
                Some(Err(e)) => tracing::debug!(%id, error = %e, "promiscuous: unreadable report"),
                None => gone.push(id.clone()),
            }
        }
        if !gone.is_empty() {
            let r: redis::RedisResult<()> = redis::cmd("ZREM")
                .arg(self.index())
                .arg(&gone)
                .query_async(&mut c)
                .await;
            self.redis.track(r, "ZREM board workers")?;
        }
        Ok(reports)
    }

    fn describe(&self) -> String {
        format!("Redis (namespace {})", self.redis.config.namespace)
    }

    fn shared(&self) -> bool {
        true
    }
}
