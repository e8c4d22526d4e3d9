//! Redis through Sentinel: a `redis+sentinel://` URL names the sentinels and the master's
//! name; the primary is asked of the sentinels when first needed and again after any failed
//! command, so that a handle follows a failover by itself.
//!
//! ```text
//! redis+sentinel://[[user]:password@]host:port[,host:port…]/master-name[/db]
//! ```
//!
//! The password (and user) are the Redis nodes' (the sentinels are asked without one); the
//! sentinels are asked in the URL's order until one answers, and the node it names must say
//! `ROLE master` before it is used (redis-rs' `SentinelClient`). TLS to the nodes or the
//! sentinels is not supported yet: a `rediss+sentinel://` URL is refused by `Redis::new`.

use std::sync::{Arc, RwLock};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{ConnectionAddr, RedisConnectionInfo};

use crate::error::{Error, redact_url};

/// The URL scheme of a Redis reached through its sentinels.
pub const SCHEME: &str = "redis+sentinel://";

/// A parsed `redis+sentinel://` URL.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SentinelUrl {
    pub(crate) sentinels: Vec<(String, u16)>,
    pub(crate) master: String,
    pub(crate) db: i64,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
}

/// Whether `url` names sentinels (`redis+sentinel://` or `rediss+sentinel://`).
pub(crate) fn is_sentinel(url: &str) -> bool {
    url.starts_with(SCHEME) || url.starts_with("rediss+sentinel://")
}

fn invalid(url: &str, why: impl Into<String>) -> Error {
    Error::RedisUrl {
        server: redact_url(url),
        source: Arc::new(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            why.into(),
        )),
    }
}

/// Parses a `redis+sentinel://` URL; what is wrong with it is said in the error's source.
pub(crate) fn parse(url: &str) -> Result<SentinelUrl, Error> {
    let Some(rest) = url.strip_prefix(SCHEME) else {
        return Err(invalid(
            url,
            "TLS through Sentinel (rediss+sentinel://) is not supported; use redis+sentinel://",
        ));
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (credentials, hosts) = match authority.rfind('@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };
    let (username, password) = match credentials {
        None => (None, None),
        Some(c) => {
            let (user, password) = c.split_once(':').unwrap_or(("", c));
            let decode = |s: &str| {
                percent_decode(s).ok_or_else(|| invalid(url, "a credential is not valid UTF-8"))
            };
            (
                (!user.is_empty()).then(|| decode(user)).transpose()?,
                (!password.is_empty())
                    .then(|| decode(password))
                    .transpose()?,
            )
        }
    };
    let mut sentinels = Vec::new();
    for host in hosts.split(',') {
        let (name, port) = host
            .rsplit_once(':')
            .ok_or_else(|| invalid(url, format!("sentinel {host:?} has no port")))?;
        let port: u16 = port
            .parse()
            .map_err(|_| invalid(url, format!("sentinel {host:?}: port is not a number")))?;
        if name.is_empty() {
            return Err(invalid(url, format!("sentinel {host:?} has no host")));
        }
        sentinels.push((name.trim_matches(['[', ']']).to_string(), port));
    }
    let mut path = path.split('/');
    let master = path.next().unwrap_or_default().to_string();
    if master.is_empty() {
        return Err(invalid(
            url,
            "no master name: redis+sentinel://host:port,…/master-name",
        ));
    }
    let db = match path.next() {
        None | Some("") => 0,
        Some(db) => db
            .parse()
            .map_err(|_| invalid(url, format!("database {db:?} is not a number")))?,
    };
    if path.next().is_some() {
        return Err(invalid(url, "the path is /master-name or /master-name/db"));
    }
    Ok(SentinelUrl {
        sentinels,
        master,
        db,
        username,
        password,
    })
}

fn percent_decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|d| d.into_owned())
}

/// Whether a failed command may mean the primary changed (the connection failed, or the node
/// became a replica), so that the sentinels must be asked again; an error reply of a running
/// primary (a script's, a wrong type) does not.
pub(crate) fn may_have_moved(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(
            e.kind(),
            redis::ErrorKind::Server(
                redis::ServerErrorKind::ReadOnly | redis::ServerErrorKind::MasterDown
            )
        )
}

/// The primary currently in use: a client (for pub/sub) and its connection manager.
pub(crate) struct Primary {
    pub(crate) client: redis::Client,
    pub(crate) manager: ConnectionManager,
}

/// The sentinels of a handle and the primary they named last (`None` until first asked, and
/// again after a failed command).
pub(crate) struct Sentinels {
    url: String,
    client: tokio::sync::Mutex<SentinelClient>,
    primary: RwLock<Option<Arc<Primary>>>,
    manager_config: ConnectionManagerConfig,
}

impl Sentinels {
    pub(crate) fn new(url: &str, manager_config: ConnectionManagerConfig) -> Result<Self, Error> {
        let parsed = parse(url)?;
        let mut node = RedisConnectionInfo::default().set_db(parsed.db);
        if let Some(user) = &parsed.username {
            node = node.set_username(user);
        }
        if let Some(password) = &parsed.password {
            node = node.set_password(password);
        }
        let addresses: Vec<ConnectionAddr> = parsed
            .sentinels
            .iter()
            .map(|(host, port)| ConnectionAddr::Tcp(host.clone(), *port))
            .collect();
        let client = SentinelClient::build(
            addresses,
            parsed.master.clone(),
            Some(SentinelNodeConnectionInfo::default().set_redis_connection_info(node)),
            SentinelServerType::Master,
        )
        .map_err(|e| Error::RedisClient {
            server: redact_url(url),
            source: Arc::new(e),
        })?;
        Ok(Self {
            url: redact_url(url),
            client: tokio::sync::Mutex::new(client),
            primary: RwLock::new(None),
            manager_config,
        })
    }

    /// The primary the sentinels named last, or the one they name now.
    pub(crate) async fn primary(&self) -> Result<Arc<Primary>, Error> {
        if let Some(primary) = self.current() {
            return Ok(primary);
        }
        let mut sentinels = self.client.lock().await;
        // Another caller may have asked while this one waited for the lock.
        if let Some(primary) = self.current() {
            return Ok(primary);
        }
        let resolve_error = |e: redis::RedisError| Error::Redis {
            command: format!("asking the sentinels of {} for the primary", self.url),
            source: Arc::new(e),
        };
        let client = sentinels.async_get_client().await.map_err(resolve_error)?;
        let manager =
            ConnectionManager::new_lazy_with_config(client.clone(), self.manager_config.clone())
                .map_err(resolve_error)?;
        let primary = Arc::new(Primary { client, manager });
        *self.primary.write().unwrap_or_else(|p| p.into_inner()) = Some(primary.clone());
        Ok(primary)
    }

    fn current(&self) -> Option<Arc<Primary>> {
        self.primary
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Forgets the primary: the next command asks the sentinels again (after a failed one: the
    /// primary may have changed).
    pub(crate) fn forget(&self) {
        *self.primary.write().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sentinels_master_and_db() {
        let url = parse("redis+sentinel://127.0.0.1:26391,[::1]:26392/promiscuous/3").unwrap();
        assert_eq!(
            url.sentinels,
            vec![("127.0.0.1".into(), 26391), ("::1".into(), 26392)]
        );
        assert_eq!((url.master.as_str(), url.db), ("promiscuous", 3));
        assert_eq!((url.username, url.password), (None, None));
        let url = parse("redis+sentinel://:s%40cret@h:1/m").unwrap();
        assert_eq!((url.db, url.password.as_deref()), (0, Some("s@cret")));
        let url = parse("redis+sentinel://app:pw@h:1/m/").unwrap();
        assert_eq!(url.username.as_deref(), Some("app"));
    }

    #[test]
    fn refuses_what_it_cannot_use_saying_why() {
        for (url, why) in [
            ("redis+sentinel://h:1", "no master name"),
            ("redis+sentinel://h/m", "has no port"),
            ("redis+sentinel://h:x/m", "port is not a number"),
            ("redis+sentinel://:1/m", "has no host"),
            ("redis+sentinel://h:1/m/x", "database \"x\" is not a number"),
            (
                "redis+sentinel://h:1/m/0/extra",
                "/master-name or /master-name/db",
            ),
            ("rediss+sentinel://h:1/m", "not supported"),
        ] {
            let e = parse(url).unwrap_err();
            let source = std::error::Error::source(&e).unwrap().to_string();
            assert!(source.contains(why), "{url}: {source}");
        }
        let e = parse("redis+sentinel://:secret@h:1").unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
    }
}
