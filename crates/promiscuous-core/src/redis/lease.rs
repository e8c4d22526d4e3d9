//! The relay's lease in Redis ([`RedisLease`]): `SET NX PX`, renewed and released only by its
//! holder's token, so one relay process at a time publishes an outbox; fenced in the outbox
//! under the lease's name (see [`Lease::fence`]), so that a relay that lost the lease (a pause
//! past its expiry, a Redis failover that lost its key) cannot publish.

use std::time::Duration;

use async_trait::async_trait;
use redis::Script;

use super::Redis;
use crate::error::Error;
use crate::publisher::Lease;

const HOLD: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
elseif redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
return 0
"#;

const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

/// A lease in Redis (`SET NX PX`, renewed and released only by its holder's token).
pub struct RedisLease {
    redis: Redis,
    name: String,
    key: String,
    token: String,
    ttl: Duration,
}

impl RedisLease {
    /// The lease named `name` (one per outbox), held for `ttl` after each renewal. A relay
    /// renews it at every batch and poll, so `ttl` must exceed the poll interval by far.
    pub fn new(redis: Redis, name: &str, ttl: Duration) -> Self {
        let key = redis.key(&["lease", name]);
        Self {
            redis,
            name: name.to_string(),
            key,
            token: uuid::Uuid::new_v4().to_string(),
            ttl,
        }
    }
}

#[async_trait]
impl Lease for RedisLease {
    async fn hold(&self) -> Result<bool, Error> {
        let mut c = self.redis.connection().await?;
        let r: redis::RedisResult<i64> = Script::new(HOLD)
            .key(&self.key)
            .arg(&self.token)
            .arg(self.ttl.as_millis() as u64)
            .invoke_async(&mut c)
            .await;
        self.redis.track(r, "lease").map(|held| held == 1)
    }

    async fn release(&self) -> Result<(), Error> {
        let mut c = self.redis.connection().await?;
        let r: redis::RedisResult<i64> = Script::new(RELEASE)
            .key(&self.key)
            .arg(&self.token)
            .invoke_async(&mut c)
            .await;
        self.redis.track(r, "lease release").map(drop)
    }

    fn fence(&self) -> Option<&str> {
        Some(&self.name)
    }
}
