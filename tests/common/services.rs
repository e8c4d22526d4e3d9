//! The servers of the cluster suite (`scripts/test --cluster`): their variables, the
//! `scripts/services.sh` commands the tests run (kill a node, start it again, ask who leads),
//! and waiting for what a test expects of them.

use std::process::Command;
use std::time::{Duration, Instant};

/// The variable `name`, which `scripts/services.sh env` prints; a missing one fails the test.
pub fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run scripts/test --cluster (or scripts/services.sh up, cluster up, sentinel up, and eval \"$(scripts/services.sh env)\")")
    })
}

/// `scripts/services.sh ARGS`, which must succeed; its standard output.
pub fn services(args: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/services.sh");
    let out = Command::new(script)
        .args(args)
        .output()
        .expect("run scripts/services.sh");
    assert!(
        out.status.success(),
        "scripts/services.sh {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits (at most `secs`) until `done`.
pub async fn until(secs: u64, what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {secs}s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The cluster's node URLs (`PROMISCUOUS_CLUSTER_AMQP_URLS`), node 1 first.
pub fn cluster_urls() -> Vec<String> {
    var("PROMISCUOUS_CLUSTER_AMQP_URLS")
        .split(',')
        .map(str::to_string)
        .collect()
}

/// A transport over the cluster's nodes `urls` (tried in that order), the test's exchange.
pub fn cluster_transport(
    exchange: &str,
    queue_type: promiscuous::transport::QueueType,
    urls: &[String],
) -> promiscuous::transport::RabbitMq {
    use promiscuous::transport::{RabbitMq, RabbitMqConfig};
    RabbitMq::cluster(
        urls.to_vec(),
        RabbitMqConfig {
            exchange: exchange.into(),
            connection_name: format!("cluster test {exchange}"),
            connect_timeout: Duration::from_secs(3),
            operation_timeout: Duration::from_secs(15),
            queue_type,
            ..RabbitMqConfig::default()
        },
    )
}

/// Whether every node of the cluster is up and sees the three (`cluster status`); the status
/// when not.
pub fn cluster_whole() -> Result<(), String> {
    let status = services(&["cluster", "status"]);
    let whole = status
        .lines()
        .all(|l| l.contains(": up") && l.matches("rabbit-").count() == 4);
    if whole { Ok(()) } else { Err(status) }
}
