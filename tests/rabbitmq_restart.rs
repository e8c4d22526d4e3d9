//! A RabbitMQ restart in the middle of a stream loses nothing. In its own test binary: the
//! restart would disturb the other tests against the same broker.

mod common;

use std::process::Command;
use std::time::Duration;

use common::servers::{cleanup, collector, converge, rabbit, servers, unique, write};
use common::{member, publisher_db, subscriber_db};
use promiscuous::pipeline::RelayConfig;
use promiscuous::{ErrorKind, Publisher, Subscriber};

#[tokio::test]
async fn a_broker_restart_during_a_stream_loses_nothing() {
    let Some(s) = servers("restart") else { return };
    let name = unique("restart");
    let (pdb, sdb) = (publisher_db().await, subscriber_db().await);
    let (sub_errors, sub_notifier) = collector();
    let (pub_errors, pub_notifier) = collector();
    let sub = Subscriber::new(name.clone(), sdb.clone(), rabbit(&s, &name))
        .subscribe::<member::Model>()
        .error_notifier(sub_notifier)
        .build()
        .await
        .unwrap()
        .start();
    let config = RelayConfig {
        poll_interval: Duration::from_millis(20),
        retry_delay: Duration::from_millis(20),
        error_notifier: pub_notifier,
        ..RelayConfig::default()
    };
    let publisher = Publisher::new(pdb.clone(), rabbit(&s, &name))
        .relay_config(config)
        .start()
        .await
        .unwrap();
    let writer = {
        let pdb = pdb.clone();
        tokio::spawn(async move {
            for i in 0..150 {
                write(&pdb, i).await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/services.sh");
    let restarted =
        tokio::task::spawn_blocking(move || Command::new(script).arg("restart-rabbitmq").status())
            .await
            .unwrap()
            .unwrap();
    assert!(restarted.success(), "scripts/services.sh restart-rabbitmq");
    writer.await.unwrap(); // writes kept committing during the outage
    converge(&pdb, &sdb, Duration::from_secs(60)).await;
    assert_eq!(publisher.pending().await.unwrap(), 0);
    publisher.shutdown().await.unwrap();
    sub.shutdown().await.unwrap();
    let sub_errors = sub_errors.lock().unwrap().clone();
    assert!(
        sub_errors.iter().any(|e| e.kind() == ErrorKind::Connection),
        "the subscriber saw the connection drop and reconnected: {sub_errors:?}"
    );
    let pub_errors = pub_errors.lock().unwrap().clone();
    eprintln!("publisher errors during the restart: {}", pub_errors.len());
    cleanup(&s, &name).await;
}
