//! Helpers for the broker-security tests: the per-app RabbitMQ users and the TLS ports that
//! scripts/services.sh sets up.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use promiscuous::transport::{RabbitMq, RabbitMqConfig};

use super::servers::Servers;

/// The TLS side of the servers: `PROMISCUOUS_AMQPS_URL`, `PROMISCUOUS_REDISS_URL`, and the CA
/// that signed their certificates (`PROMISCUOUS_TLS_CA`) and an unrelated one
/// (`PROMISCUOUS_TLS_WRONG_CA`).
pub struct Tls {
    pub amqps: String,
    pub rediss: String,
    pub ca: PathBuf,
    pub wrong_ca: PathBuf,
}

const TLS_VARS: [&str; 4] = [
    "PROMISCUOUS_AMQPS_URL",
    "PROMISCUOUS_REDISS_URL",
    "PROMISCUOUS_TLS_CA",
    "PROMISCUOUS_TLS_WRONG_CA",
];

/// Like [`super::servers::servers`]: `None` (the test says it is skipped) when the variables are
/// not set, except in CI, where that fails the test.
pub fn tls(test: &str) -> Option<Tls> {
    let vars: Vec<Option<String>> = TLS_VARS.iter().map(|v| std::env::var(v).ok()).collect();
    if let [Some(amqps), Some(rediss), Some(ca), Some(wrong_ca)] = vars.as_slice() {
        return Some(Tls {
            amqps: amqps.clone(),
            rediss: rediss.clone(),
            ca: ca.into(),
            wrong_ca: wrong_ca.into(),
        });
    }
    let names = TLS_VARS.join(" / ");
    if std::env::var_os("CI").is_some() {
        panic!("{names} are not set: CI must run {test} (scripts/test starts the servers)");
    }
    eprintln!("skipped {test}: {names} not set (run scripts/services.sh up)");
    None
}

/// The password scripts/services.sh gives app `app`'s RabbitMQ user.
pub fn password(app: &str) -> String {
    format!("promiscuous_{app}")
}

/// `url` without its credentials: `(scheme, host and the rest)`.
fn split_credentials(url: &str) -> (&str, &str) {
    let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
    let end = rest.find('/').unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => (scheme, &rest[at + 1..]),
        None => (scheme, rest),
    }
}

/// `url` with `user:password` as its credentials (any it had are replaced).
pub fn with_credentials(url: &str, user: &str, password: &str) -> String {
    let (scheme, host) = split_credentials(url);
    format!("{scheme}://{user}:{password}@{host}")
}

/// `url` without credentials.
pub fn without_credentials(url: &str) -> String {
    let (scheme, host) = split_credentials(url);
    format!("{scheme}://{host}")
}

/// The AMQP URL of app `app`'s own RabbitMQ user.
pub fn app_url(s: &Servers, app: &str) -> String {
    with_credentials(&s.amqp, app, &password(app))
}

/// Short timeouts: a refusal or a failed handshake must show quickly.
pub fn config(exchange: &str, tls_ca: Option<PathBuf>) -> RabbitMqConfig {
    RabbitMqConfig {
        exchange: exchange.to_string(),
        connection_name: format!("broker_security {exchange}"),
        connect_timeout: Duration::from_secs(5),
        operation_timeout: Duration::from_secs(10),
        tls_ca,
        ..RabbitMqConfig::default()
    }
}

/// A transport logged in as app `app`'s user.
pub fn app_rabbit(s: &Servers, app: &str, exchange: &str) -> RabbitMq {
    RabbitMq::new(app_url(s, app), config(exchange, None))
}

/// A transport over TLS (`PROMISCUOUS_AMQPS_URL`, guest) trusting `ca`.
pub fn tls_rabbit(t: &Tls, exchange: &str, ca: Option<PathBuf>) -> RabbitMq {
    RabbitMq::new(t.amqps.clone(), config(exchange, ca))
}
