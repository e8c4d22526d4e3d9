//! Redis (redis-rs 1.x, `ConnectionManager`): the relay [`RedisLease`], the subscriber's
//! shared [`RedisVersions`] with pub/sub wake-ups, and the workers' shared [`RedisBoard`].
//!
//! The connection manager reconnects by itself after a lost connection. Its default response
//! timeout (500 ms) is too short for a busy server, so requests get
//! [`RedisConfig::response_timeout`] (5 s by default) instead.
//!
//! Sentinel: a `redis+sentinel://host:port,…/master-name` URL reaches the primary that the
//! sentinels name, asked again after any failed command, so a handle follows a failover (see
//! [`sentinel`]).
//!
//! TLS: a `rediss://` URL connects with rustls, verifying the server's certificate with the
//! system's root certificates, or with [`RedisConfig::tls_ca`] only when set. A failed handshake
//! is an [`Error::RedisTls`] saying why (e.g. "the server's certificate is not signed by a
//! trusted CA"), with the URL but never its password.

mod board;
mod lease;
pub mod sentinel;
mod versions;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub use board::RedisBoard;
pub use lease::RedisLease;
pub use versions::RedisVersions;

use crate::error::{Error, redact_url};
use crate::tls;

/// Connection settings.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub response_timeout: Duration,
    pub connection_timeout: Duration,
    /// Prefix of every key and channel promiscuous uses.
    pub namespace: String,
    /// For `rediss://` URLs: the CA certificate file (PEM) to verify the server's certificate
    /// with, *instead of* the system's root certificates (a private CA). `None`: the system's
    /// roots. Read by [`Redis::new`]; ignored for `redis://` URLs.
    pub tls_ca: Option<PathBuf>,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            response_timeout: Duration::from_secs(5),
            connection_timeout: Duration::from_secs(2),
            namespace: "promiscuous".into(),
            tls_ca: None,
        }
    }
}

/// Where a handle's commands go (one per handle and its clones, behind an `Arc`).
#[allow(clippy::large_enum_variant)]
enum Endpoint {
    /// The one server of a `redis://` or `rediss://` URL.
    Fixed(Arc<sentinel::Primary>),
    /// The primary the sentinels of a `redis+sentinel://` URL name.
    Sentinel(sentinel::Sentinels),
}

/// A lazily connected, self-reconnecting Redis handle; clones share the connection.
#[derive(Clone)]
pub struct Redis {
    endpoint: Arc<Endpoint>,
    config: RedisConfig,
    healthy: Arc<AtomicBool>,
    /// The URL without its password, for TLS failures; `None` for `redis://`.
    tls_url: Option<Arc<str>>,
}

impl Redis {
    /// No network I/O happens here: the first command connects. With a `rediss://` URL and
    /// [`RedisConfig::tls_ca`], the CA file is read now: a missing or unreadable file, or one
    /// without a PEM certificate, is an error naming its path. A `redis+sentinel://` URL is
    /// parsed now (an error says what is wrong with it); its sentinels are asked for the
    /// primary by the first command.
    pub fn new(url: &str, config: RedisConfig) -> Result<Self, Error> {
        let manager_config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(config.response_timeout))
            .set_connection_timeout(Some(config.connection_timeout))
            .set_number_of_retries(2);
        if sentinel::is_sentinel(url) {
            return Ok(Self {
                endpoint: Arc::new(Endpoint::Sentinel(sentinel::Sentinels::new(
                    url,
                    manager_config,
                )?)),
                config,
                healthy: Arc::new(AtomicBool::new(false)),
                tls_url: None,
            });
        }
        let tls = tls::wants_tls(url, "rediss");
        let client = match &config.tls_ca {
            Some(path) if tls => {
                let pem = tls::read_ca(path).map_err(|e| Error::RedisClient {
                    server: redact_url(url),
                    source: crate::error::source(e),
                })?;
                let certificates = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.into_bytes()),
                };
                redis::Client::build_with_tls(url, certificates)
            }
            _ => redis::Client::open(url),
        }
        .map_err(|e| Error::RedisUrl {
            server: redact_url(url),
            source: Arc::new(e),
        })?;
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)
            .map_err(|e| Error::RedisClient {
                server: redact_url(url),
                source: Arc::new(e),
            })?;
        Ok(Self {
            endpoint: Arc::new(Endpoint::Fixed(Arc::new(sentinel::Primary {
                client,
                manager,
            }))),
            config,
            healthy: Arc::new(AtomicBool::new(false)),
            tls_url: tls.then(|| redact_url(url).into()),
        })
    }

    /// Whether the last command succeeded.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub async fn ping(&self) -> Result<(), Error> {
        let mut c = self.connection().await?;
        let r: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut c).await;
        self.track(r, "PING").map(drop)
    }

    /// The server's id of this handle's connection (`CLIENT ID`), for diagnostics.
    pub async fn connection_id(&self) -> Result<i64, Error> {
        let mut c = self.connection().await?;
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

    /// The primary in use: the URL's server, or the one the sentinels name (shared: every
    /// command takes it, so cloning it costs one reference count).
    async fn primary(&self) -> Result<Arc<sentinel::Primary>, Error> {
        match &*self.endpoint {
            Endpoint::Fixed(primary) => Ok(primary.clone()),
            Endpoint::Sentinel(sentinels) => sentinels.primary().await.inspect_err(|_| {
                self.healthy.store(false, Ordering::Relaxed);
            }),
        }
    }

    async fn connection(&self) -> Result<ConnectionManager, Error> {
        Ok(self.primary().await?.manager.clone())
    }

    fn track<T>(&self, r: redis::RedisResult<T>, what: &str) -> Result<T, Error> {
        self.healthy.store(r.is_ok(), Ordering::Relaxed);
        if let (Err(e), Endpoint::Sentinel(sentinels)) = (&r, &*self.endpoint)
            && sentinel::may_have_moved(e)
        {
            sentinels.forget();
        }
        r.map_err(|e| self.error(what, e))
    }

    /// A failed request as an [`Error::Redis`]; a failed TLS handshake says why
    /// ([`Error::RedisTls`]).
    fn error(&self, what: &str, e: redis::RedisError) -> Error {
        let text = e.to_string();
        match (&self.tls_url, tls::failure(&text)) {
            (Some(url), Some(reason)) => Error::RedisTls {
                command: what.to_string(),
                server: url.to_string(),
                reason: reason.to_string(),
                source: Arc::new(e),
            },
            _ => Error::Redis {
                command: what.to_string(),
                source: Arc::new(e),
            },
        }
    }
}
