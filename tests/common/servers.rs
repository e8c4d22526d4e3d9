//! Helpers for the tests against the real servers started by scripts/services.sh.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{member, user};
use promiscuous::Error;
use promiscuous::transport::{RabbitMq, RabbitMqConfig};
use sea_orm::{
    ActiveModelTrait, DatabaseConnection, EntityTrait, IntoActiveModel, Set, TransactionTrait,
};

pub struct Servers {
    pub amqp: String,
    pub redis: String,
}

pub fn servers(test: &str) -> Option<Servers> {
    match (
        std::env::var("PROMISCUOUS_AMQP_URL"),
        std::env::var("PROMISCUOUS_REDIS_URL"),
    ) {
        (Ok(amqp), Ok(redis)) => Some(Servers { amqp, redis }),
        _ if std::env::var_os("CI").is_some() => {
            panic!(
                "PROMISCUOUS_AMQP_URL / PROMISCUOUS_REDIS_URL are not set: CI must run {test} (scripts/test starts the servers)"
            )
        }
        _ => {
            eprintln!(
                "skipped {test}: PROMISCUOUS_AMQP_URL / PROMISCUOUS_REDIS_URL not set (run scripts/services.sh up)"
            );
            None
        }
    }
}

/// Names unique to one test run, so tests and re-runs never share queues or exchanges.
pub fn unique(test: &str) -> String {
    format!("{test}-{}-{}", std::process::id(), now_ms())
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

pub fn rabbit(s: &Servers, exchange: &str) -> RabbitMq {
    RabbitMq::new(
        s.amqp.clone(),
        RabbitMqConfig {
            exchange: exchange.to_string(),
            ..RabbitMqConfig::default()
        },
    )
}

pub async fn write(db: &DatabaseConnection, i: usize) {
    let txn = db.begin().await.unwrap();
    let users = user::Entity::find().all(&txn).await.unwrap();
    if i % 3 == 2 {
        let mut am = users[i % users.len()].clone().into_active_model();
        am.name = Set(format!("renamed-{i}"));
        am.update(&txn).await.unwrap();
    } else {
        user::ActiveModel {
            name: Set(format!("user-{i}")),
            email: Set(format!("u{i}@example.org")),
            password: Set("pw".into()),
            ..Default::default()
        }
        .insert(&txn)
        .await
        .unwrap();
    }
    txn.commit().await.unwrap();
}

pub async fn rows(
    publisher: &DatabaseConnection,
    subscriber: &DatabaseConnection,
) -> (Vec<(i32, String)>, Vec<(i32, String)>) {
    let mut p: Vec<(i32, String)> = user::Entity::find()
        .all(publisher)
        .await
        .unwrap()
        .into_iter()
        .map(|u| (u.id, u.name))
        .collect();
    let mut s: Vec<(i32, String)> = member::Entity::find()
        .all(subscriber)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.crowdtap_id, m.name))
        .collect();
    p.sort();
    s.sort();
    (p, s)
}

/// Waits (bounded) until the subscriber's rows equal the publisher's.
pub async fn converge(
    publisher: &DatabaseConnection,
    subscriber: &DatabaseConnection,
    within: Duration,
) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let (p, s) = rows(publisher, subscriber).await;
        if p == s {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            assert_eq!(s, p, "the subscriber did not converge within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn collector() -> (Arc<Mutex<Vec<Error>>>, promiscuous::ErrorNotifier) {
    let errors: Arc<Mutex<Vec<Error>>> = Arc::default();
    let e = errors.clone();
    (
        errors,
        Arc::new(move |err: &Error| e.lock().unwrap().push(err.clone())),
    )
}

/// Deletes the queue and exchange a test declared (both named `name`).
pub async fn cleanup(s: &Servers, name: &str) {
    let transport = rabbit(s, name);
    transport
        .delete_queue(name)
        .await
        .expect("delete the test queue");
    transport
        .delete_exchange()
        .await
        .expect("delete the test exchange");
}
