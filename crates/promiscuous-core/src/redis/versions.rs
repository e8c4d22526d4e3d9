//! Processed versions in Redis ([`RedisVersions`]), shared by the worker processes of one
//! subscriber application, with wake-ups by Redis pub/sub.

use async_trait::async_trait;
use futures_util::{Stream, StreamExt};
use redis::Script;

use super::Redis;
use crate::error::Error;
use crate::subscriber::{VersionStore, Wakeups};

/// Raise each key to its version (never lower it) and publish `key version` for each raise.
const ADVANCE: &str = r#"
for i, key in ipairs(KEYS) do
  local v = tonumber(ARGV[i])
  local cur = tonumber(redis.call('GET', key) or '0')
  if v > cur then
    redis.call('SET', key, v)
    redis.call('PUBLISH', ARGV[#KEYS + 1], ARGV[#KEYS + 1 + i])
  end
end
return 0
"#;

/// Processed versions of one subscriber application, shared by its worker processes, with
/// wake-ups by Redis pub/sub (not polling).
#[derive(Clone)]
pub struct RedisVersions {
    redis: Redis,
    /// Key prefix for this subscriber application.
    app: String,
}

impl RedisVersions {
    pub fn new(redis: Redis, subscriber_app: &str) -> Self {
        Self {
            redis,
            app: subscriber_app.to_string(),
        }
    }

    fn version_key(&self, key: &str) -> String {
        self.redis.key(&[&self.app, "v", key])
    }

    fn channel(&self) -> String {
        self.redis.key(&[&self.app, "applied"])
    }

    /// A stream of `(key, version)` raised by any process of this subscriber application.
    /// Subscribed when this returns: raises after that are all seen (while connected).
    pub async fn wakeups(
        &self,
    ) -> Result<impl Stream<Item = (String, u64)> + Unpin + Send + use<>, Error> {
        let pubsub = self.redis.primary().await?.client.get_async_pubsub().await;
        let mut pubsub = self.redis.track(pubsub, "pub/sub")?;
        let subscribed = pubsub.subscribe(self.channel()).await;
        self.redis.track(subscribed, "SUBSCRIBE")?;
        Ok(pubsub.into_on_message().filter_map(|msg| {
            let parsed = || {
                let payload: String = msg.get_payload().ok()?;
                let (key, version) = payload.rsplit_once(' ')?;
                Some((key.to_string(), version.parse().ok()?))
            };
            std::future::ready(parsed())
        }))
    }
}

#[async_trait]
impl VersionStore for RedisVersions {
    async fn advance(&self, versions: &[(String, u64)]) -> Result<(), Error> {
        if versions.is_empty() {
            return Ok(());
        }
        let script = Script::new(ADVANCE);
        let mut invocation = script.prepare_invoke();
        for (key, _) in versions {
            invocation.key(self.version_key(key));
        }
        for (_, v) in versions {
            invocation.arg(*v);
        }
        invocation.arg(self.channel());
        for (key, v) in versions {
            invocation.arg(format!("{key} {v}"));
        }
        let mut c = self.redis.connection().await?;
        let r: redis::RedisResult<i64> = invocation.invoke_async(&mut c).await;
        self.redis.track(r, "advance versions").map(drop)
    }

    async fn get(&self, keys: &[String]) -> Result<Vec<u64>, Error> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let redis_keys: Vec<String> = keys.iter().map(|k| self.version_key(k)).collect();
        let mut c = self.redis.connection().await?;
        let r: redis::RedisResult<Vec<Option<u64>>> = redis::cmd("MGET")
            .arg(&redis_keys)
            .query_async(&mut c)
            .await;
        self.redis
            .track(r, "MGET versions")
            .map(|v| v.into_iter().map(|x| x.unwrap_or(0)).collect())
    }

    async fn wakeups(&self) -> Result<Option<Wakeups>, Error> {
        let stream = RedisVersions::wakeups(self).await?;
        Ok(Some(Box::pin(stream)))
    }
}
