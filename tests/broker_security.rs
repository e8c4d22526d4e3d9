//! Trust on the broker, against the servers scripts/services.sh starts: per-app RabbitMQ users
//! whose topic permissions pin the routing key, the AMQP `user_id` the broker checks, and TLS
//! (`amqps://`, `rediss://`) with a private CA. In CI a missing server fails these tests;
//! elsewhere they say they were skipped.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::security::{
    Tls, app_rabbit, app_url, config, password, tls, tls_rabbit, with_credentials,
    without_credentials,
};
use common::servers::{cleanup, collector, converge, rabbit, servers, unique, write};
use common::{member, publisher_db, subscriber_db};
use promiscuous::pipeline::tables;
use promiscuous::transport::{Outgoing, QueueSpec, RabbitMq, TransportError};
use promiscuous::{Publisher, Redis, RedisConfig, RedisVersions, Report, Subscriber, Transport};
use sea_orm::{
    ActiveModelTrait, DatabaseConnection, EntityTrait, PaginatorTrait, Set, TransactionTrait,
};

/// The exchange the topic permissions of scripts/services.sh name (RabbitMQ takes an exact
/// exchange name there, not a pattern).
const EXCHANGE: &str = "promiscuous";

/// What app trust_a publishes.
mod trust_user {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "trust_users")]
    #[promiscuous::publish(name, to = "trust_a/user")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub name: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
}

/// App trust_members' copy of trust_a's users.
mod trust_copy {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "trust_copies")]
    #[promiscuous::subscribe(name, from = "trust_a/user", foreign_key = "trust_id")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        #[sea_orm(unique)]
        pub trust_id: i32,
        pub name: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

fn outgoing(routing_key: &str) -> Outgoing {
    Outgoing {
        routing_key: routing_key.into(),
        payload: b"{}".to_vec(),
        partition_key: None,
    }
}

async fn outbox_rows(db: &DatabaseConnection) -> u64 {
    tables::outbox::Entity::find().count(db).await.unwrap()
}

/// Waits (bounded) until `done` holds.
async fn eventually(what: &str, within: Duration, done: impl AsyncFn() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !done().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn another_apps_credentials_cannot_publish_and_the_rows_wait_in_the_outbox() {
    let Some(s) = servers("broker_security (refusal)") else {
        return;
    };
    // trust_members' queue is named after the app, so it is not unique to this run: start clean.
    rabbit(&s, EXCHANGE)
        .delete_queue("trust_members")
        .await
        .unwrap();
    let pdb = promiscuous_test::sqlite().await.unwrap();
    promiscuous_test::create_table(&pdb, trust_user::Entity)
        .await
        .unwrap();
    let sdb = promiscuous_test::sqlite().await.unwrap();
    promiscuous_test::create_table(&sdb, trust_copy::Entity)
        .await
        .unwrap();
    // The subscriber logs in as itself: it may declare, bind and consume its own queue.
    let sub = Subscriber::new(
        "trust_members",
        sdb.clone(),
        app_rabbit(&s, "trust_members", EXCHANGE),
    )
    .subscribe::<trust_copy::Model>()
    .build()
    .await
    .unwrap()
    .start();

    // trust_a's relay, misconfigured with trust_b's credentials.
    let (errors, notifier) = collector();
    let publisher = Publisher::new(pdb.clone(), app_rabbit(&s, "trust_b", EXCHANGE))
        .error_notifier(notifier)
        .start()
        .await
        .unwrap();
    for i in 0..3 {
        let txn = pdb.begin().await.unwrap();
        trust_user::ActiveModel {
            name: Set(format!("trusted-{i}")),
            ..Default::default()
        }
        .insert(&txn)
        .await
        .unwrap();
        txn.commit().await.unwrap();
    }
    eventually(
        "the refusal is reported",
        Duration::from_secs(10),
        async || !errors.lock().unwrap().is_empty(),
    )
    .await;
    let error = errors.lock().unwrap()[0].report().to_string();
    for part in [
        "stay in the outbox",
        "routing key \"trust_a\"",
        "ACCESS_REFUSED",
        "refused for user 'trust_b'",
    ] {
        assert!(error.contains(part), "{part:?} not in {error}");
    }
    assert!(!error.contains(&password("trust_b")), "{error}");
    assert_eq!(outbox_rows(&pdb).await, 3, "the refused rows are kept");
    assert!(!publisher.healthy());
    let flushed = publisher.shutdown().await;
    assert!(flushed.is_err(), "the last flush is refused too");
    assert_eq!(outbox_rows(&pdb).await, 3);

    // With trust_a's own credentials the same rows go out and leave the outbox.
    let publisher = Publisher::new(pdb.clone(), app_rabbit(&s, "trust_a", EXCHANGE))
        .start()
        .await
        .unwrap();
    eventually("the rows replicate", Duration::from_secs(10), async || {
        trust_copy::Entity::find().count(&sdb).await.unwrap() == 3
    })
    .await;
    // The subscriber may apply a message before the relay has its confirm and deletes the row.
    eventually(
        "published rows are deleted",
        Duration::from_secs(5),
        async || outbox_rows(&pdb).await == 0,
    )
    .await;
    publisher.shutdown().await.unwrap();
    let stats = sub.shutdown().await.unwrap();
    assert_eq!(stats.dead_lettered, 0);
    rabbit(&s, EXCHANGE)
        .delete_queue("trust_members")
        .await
        .unwrap();
}

#[tokio::test]
async fn messages_carry_the_publishing_user_and_the_broker_checks_it() {
    let Some(s) = servers("broker_security (user_id)") else {
        return;
    };
    let name = unique("promiscuous-security-user-id");
    let guest = rabbit(&s, &name);
    let spec = QueueSpec {
        queue: name.clone(),
        bindings: vec!["#".into()],
        prefetch: 10,
        partitions: 1,
    };
    guest.declare(&spec).await.unwrap();
    app_rabbit(&s, "trust_b", &name)
        .publish(&[outgoing("trust_b")])
        .await
        .unwrap();
    guest.publish(&[outgoing("as-guest")]).await.unwrap();
    // No user in the URL: lapin logs in as guest, and no user_id is claimed.
    RabbitMq::new(without_credentials(&s.amqp), config(&name, None))
        .publish(&[outgoing("anonymous")])
        .await
        .unwrap();

    let mut consumer = guest.consume(&spec).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .expect("a delivery")
            .unwrap();
        delivery.acker.ack().await.unwrap();
        seen.push((delivery.routing_key, delivery.user_id));
    }
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("anonymous".to_string(), None),
            ("as-guest".to_string(), Some("guest".to_string())),
            ("trust_b".to_string(), Some("trust_b".to_string())),
        ]
    );
    drop(consumer);

    // A client claiming another user is refused by the broker.
    use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
    let connection = lapin::Connection::connect(
        &app_url(&s, "trust_b"),
        lapin::ConnectionProperties::default(),
    )
    .await
    .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let forged = channel
        .basic_publish(
            name.as_str().into(),
            "trust_b".into(),
            BasicPublishOptions::default(),
            b"{}",
            lapin::BasicProperties::default().with_user_id("trust_a".into()),
        )
        .await
        .unwrap()
        .await
        .expect_err("a forged user_id is refused")
        .to_string();
    assert!(
        forged.contains("PRECONDITION_FAILED") && forged.contains("'trust_a'"),
        "{forged}"
    );
    let _ = connection.close(200, "done".into()).await;

    // In a batch, the refused message is named; the next call publishes on a new channel.
    let trust_b = app_rabbit(&s, "trust_b", EXCHANGE);
    let batch = [
        outgoing("trust_b"),
        outgoing("trust_a"),
        outgoing("trust_b"),
    ];
    let refused = trust_b.publish(&batch).await.unwrap_err();
    assert!(
        matches!(&refused, TransportError::Rejected { .. })
            && Report(&refused)
                .to_string()
                .contains("routing key \"trust_a\"")
            && Report(&refused).to_string().contains("ACCESS_REFUSED"),
        "{refused:?}"
    );
    trust_b.publish(&[outgoing("trust_b")]).await.unwrap();

    // An app may not declare (nor so consume) another app's queue.
    let refused = app_rabbit(&s, "trust_b", &name)
        .consume(&QueueSpec {
            queue: "trust_a".into(),
            bindings: vec!["trust_a".into()],
            prefetch: 1,
            partitions: 1,
        })
        .await
        .err()
        .expect("trust_b may not use trust_a's queue");
    assert!(
        matches!(&refused, TransportError::Rejected { .. })
            && Report(&refused).to_string().contains("ACCESS_REFUSED"),
        "{refused:?}"
    );
    cleanup(&s, &name).await;
}

#[tokio::test]
async fn replicates_over_tls_with_a_private_ca() {
    let (Some(s), Some(t)) = (
        servers("broker_security (TLS)"),
        tls("broker_security (TLS)"),
    ) else {
        return;
    };
    let name = unique("promiscuous-security-tls");
    let (pdb, sdb) = (publisher_db().await, subscriber_db().await);
    let redis = Redis::new(
        &t.rediss,
        RedisConfig {
            namespace: name.clone(),
            tls_ca: Some(t.ca.clone()),
            ..RedisConfig::default()
        },
    )
    .unwrap();
    redis.ping().await.unwrap();
    let versions = RedisVersions::new(redis, &name);
    let sub = Subscriber::new(
        name.clone(),
        sdb.clone(),
        tls_rabbit(&t, &name, Some(t.ca.clone())),
    )
    .subscribe::<member::Model>()
    .versions(Arc::new(versions.clone()))
    .build()
    .await
    .unwrap()
    .start();
    let publisher = Publisher::new(pdb.clone(), tls_rabbit(&t, &name, Some(t.ca.clone())))
        .start()
        .await
        .unwrap();
    for i in 0..10 {
        write(&pdb, i).await;
    }
    converge(&pdb, &sdb, Duration::from_secs(20)).await;
    assert!(publisher.healthy() && sub.healthy());
    use promiscuous::pipeline::VersionStore;
    let first = common::user::Entity::find()
        .one(&pdb)
        .await
        .unwrap()
        .unwrap();
    let key = format!("crowdtap/user/{}", first.id);
    let applied = sub.service().applier().applied_version(&key).await.unwrap();
    assert_eq!(
        versions.get(&[key]).await.unwrap(),
        vec![applied.unwrap()],
        "the versions went to Redis over TLS"
    );
    publisher.shutdown().await.unwrap();
    sub.shutdown().await.unwrap();
    cleanup(&s, &name).await;
}

fn refused_certificate(what: &str, error: &str, secret: &str) {
    assert!(
        error.contains("TLS handshake with")
            && error.contains("the server's certificate is not signed by a trusted CA"),
        "{what}: {error}"
    );
    assert!(
        !error.contains(secret),
        "{what} shows the password: {error}"
    );
}

#[tokio::test]
async fn a_certificate_from_an_untrusted_ca_is_refused_clearly() {
    let Some(t) = tls("broker_security (wrong CA)") else {
        return;
    };
    let Tls {
        amqps,
        rediss,
        wrong_ca,
        ..
    } = &t;
    let secret = password("trust_a");
    let amqps = with_credentials(amqps, "trust_a", &secret);
    let name = unique("promiscuous-security-wrong-ca");

    // RabbitMQ: the wrong CA, and the system's roots alone.
    for (what, ca) in [
        ("amqps, wrong CA", Some(wrong_ca.clone())),
        ("amqps, system roots", None),
    ] {
        let rabbit = RabbitMq::new(amqps.clone(), config(&name, ca));
        let error = rabbit.publish(&[outgoing("trust_a")]).await.unwrap_err();
        assert!(
            matches!(error, TransportError::Unavailable { .. }),
            "{error:?}"
        );
        refused_certificate(what, &error.to_string(), &secret);
        assert!(
            error.to_string().contains("amqps://trust_a:***@"),
            "{error}"
        );
        let spec = QueueSpec {
            queue: name.clone(),
            bindings: vec!["#".into()],
            prefetch: 1,
            partitions: 1,
        };
        let error = rabbit.consume(&spec).await.err().unwrap().to_string();
        refused_certificate(what, &error, &secret);
    }
    let missing = PathBuf::from(format!("/nonexistent/{name}/ca.pem"));
    let rabbit = RabbitMq::new(amqps.clone(), config(&name, Some(missing.clone())));
    let error = rabbit
        .publish(&[outgoing("trust_a")])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(&missing.display().to_string()) && !error.contains(&secret),
        "{error}"
    );

    // Redis: the wrong CA (a password in the URL must not show either).
    let redis_secret = "redis-secret-password";
    let rediss = with_credentials(rediss, "", redis_secret);
    let redis = Redis::new(
        &rediss,
        RedisConfig {
            tls_ca: Some(wrong_ca.clone()),
            connection_timeout: Duration::from_secs(2),
            ..RedisConfig::default()
        },
    )
    .unwrap();
    let error = redis.ping().await.unwrap_err().to_string();
    refused_certificate("rediss, wrong CA", &error, redis_secret);
    assert!(!redis.healthy());
    let error = RedisVersions::new(redis, "wrong-ca")
        .wakeups()
        .await
        .err()
        .expect("no pub/sub over an untrusted certificate")
        .to_string();
    refused_certificate("rediss pub/sub, wrong CA", &error, redis_secret);
    let error = Redis::new(
        &rediss,
        RedisConfig {
            tls_ca: Some(missing.clone()),
            ..RedisConfig::default()
        },
    )
    .err()
    .expect("a missing CA file is an error")
    .report()
    .to_string();
    assert!(
        error.contains(&missing.display().to_string()) && !error.contains(redis_secret),
        "{error}"
    );
}
