//! Only the owner of an endpoint changes its instances: against the real RabbitMQ, a subscriber
//! dead-letters a message whose routing key is not its `app`, whose operations write another
//! app's endpoints, or — when it requires it — whose broker-validated `user_id` is missing or
//! not its `app`; the app's own messages are applied. scripts/services.sh creates the per-app
//! broker users (`trust_a`, password `promiscuous_trust_a`, …).

mod common;

use std::time::Duration;

use common::servers::{Servers, cleanup, rabbit, servers, unique};
use common::{member, subscriber_db};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use promiscuous::{Subscriber, SubscriberHandle};
use sea_orm::{DatabaseConnection, EntityTrait};
use serde_json::{Value, json};

mod account {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "accounts")]
    #[promiscuous::subscribe(name, from = "trust_a/account", foreign_key = "trust_a_id")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        #[sea_orm(unique)]
        pub trust_a_id: i32,
        pub name: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The AMQP URL of the servers with the per-app user `app` (see scripts/services.sh).
fn url_as(s: &Servers, app: &str) -> String {
    let (scheme, rest) = s.amqp.split_once("://").expect("an amqp URL");
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}://{app}:promiscuous_{app}@{host}")
}

/// A create of `endpoint`/`id` in a message claiming to be from `app`.
fn create(app: &str, endpoint: &str, id: i64, name: &str) -> Vec<u8> {
    json!({
        "protocol": 1, "app": app, "id": format!("m-{endpoint}-{id}"), "timestamp": 1, "host": "h",
        "operations": [{"endpoint": endpoint, "types": ["Account"], "id": id,
                        "operation": "create", "version": 1, "attributes": {"name": name}}]
    })
    .to_string()
    .into_bytes()
}

/// Publishes raw bodies as broker user of `url`, each with its routing key and `user_id`.
async fn publish(url: &str, exchange: &str, messages: &[(&str, Option<&str>, Vec<u8>)]) {
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .unwrap_or_else(|e| panic!("connecting as a per-app user (scripts/services.sh up): {e}"));
    let channel = connection.create_channel().await.unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    for (routing_key, user_id, body) in messages {
        let mut properties = BasicProperties::default();
        if let Some(user) = user_id {
            properties = properties.with_user_id((*user).into());
        }
        channel
            .basic_publish(
                exchange.into(),
                (*routing_key).into(),
                BasicPublishOptions::default(),
                body,
                properties,
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    connection.close(0, "done".into()).await.unwrap();
}

async fn subscriber(
    s: &Servers,
    name: &str,
    require_user_id: bool,
) -> (SubscriberHandle, DatabaseConnection) {
    let db = subscriber_db().await;
    promiscuous_test::create_table(&db, account::Entity)
        .await
        .unwrap();
    let sub = Subscriber::new(name, db.clone(), rabbit(s, name))
        .subscribe::<member::Model>()
        .subscribe::<account::Model>()
        .require_user_id(require_user_id)
        .build()
        .await
        .unwrap()
        .start();
    (sub, db)
}

/// Waits until `letters` dead letters and `accounts` accounts are stored; returns the errors.
async fn settle(
    sub: &SubscriberHandle,
    db: &DatabaseConnection,
    letters: usize,
    accounts: usize,
) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let dead = sub.service().applier().dead_letters().await.unwrap();
        let names: Vec<String> = account::Entity::find()
            .all(db)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.name)
            .collect();
        if dead.len() >= letters && names.len() >= accounts {
            assert_eq!((dead.len(), names.len()), (letters, accounts), "{names:?}");
            return dead.into_iter().map(|l| l.error).collect();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} dead letters (expected {letters}), accounts {names:?} (expected {accounts})",
            dead.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn names(db_rows: Vec<account::Model>) -> Vec<String> {
    let mut names: Vec<String> = db_rows.into_iter().map(|a| a.name).collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_message_is_applied_only_from_the_owner_of_its_endpoints() {
    let Some(s) = servers("owner_enforcement") else {
        return;
    };
    let name = unique("promiscuous-owner");
    let (sub, db) = subscriber(&s, &name, false).await;
    publish(
        &s.amqp,
        &name,
        &[
            // Another app's message sent with trust_a's routing key, and the other way round.
            (
                "trust_a",
                None,
                create("crowdtap", "crowdtap/user", 1, "forged-1"),
            ),
            (
                "crowdtap",
                None,
                create("trust_a", "trust_a/account", 2, "forged-2"),
            ),
            // A consistent message of crowdtap writing trust_a's endpoint.
            (
                "crowdtap",
                None,
                create("crowdtap", "trust_a/account", 3, "forged-3"),
            ),
            // The owner's own message.
            (
                "trust_a",
                None,
                create("trust_a", "trust_a/account", 4, "own"),
            ),
        ],
    )
    .await;
    let errors = settle(&sub, &db, 3, 1).await;
    assert_eq!(
        names(account::Entity::find().all(&db).await.unwrap()),
        ["own"]
    );
    let all = errors.join("\n");
    assert!(
        all.contains("app \"crowdtap\" published with routing key \"trust_a\""),
        "{all}"
    );
    assert!(
        all.contains("app \"trust_a\" published with routing key \"crowdtap\""),
        "{all}"
    );
    assert!(
        all.contains("operations[0].endpoint: \"trust_a/account\" is not an endpoint of the message's app \"crowdtap\""),
        "{all}"
    );
    // Replaying refused letters refuses them again: they stay, nothing is applied.
    let replayed = sub.service().applier().replay_dead_letters().await.unwrap();
    assert_eq!(replayed.len(), 3);
    assert!(
        replayed
            .iter()
            .all(|(_, r)| matches!(r, promiscuous::Replayed::Failed(_))),
        "{replayed:?}"
    );
    assert_eq!(
        sub.service().applier().dead_letters().await.unwrap().len(),
        3
    );
    assert_eq!(
        names(account::Entity::find().all(&db).await.unwrap()),
        ["own"]
    );
    let stats = sub.shutdown().await.unwrap();
    assert_eq!((stats.dead_lettered, stats.operations_applied), (3, 1));
    cleanup(&s, &name).await;
}

#[tokio::test]
async fn a_subscriber_requiring_user_id_admits_only_the_apps_own_broker_user() {
    let Some(s) = servers("owner_enforcement_user_id") else {
        return;
    };
    let name = unique("promiscuous-user-id");
    let (sub, db) = subscriber(&s, &name, true).await;
    // guest may publish anything on this exchange (no topic permissions), but it is not
    // trust_a: without user_id, or with its own, trust_a's messages from it are refused.
    publish(
        &s.amqp,
        &name,
        &[
            (
                "trust_a",
                None,
                create("trust_a", "trust_a/account", 1, "no-user"),
            ),
            (
                "trust_a",
                Some("guest"),
                create("trust_a", "trust_a/account", 2, "guest"),
            ),
        ],
    )
    .await;
    // trust_a itself, with the user_id RabbitMQ validates.
    publish(
        &url_as(&s, "trust_a"),
        &name,
        &[(
            "trust_a",
            Some("trust_a"),
            create("trust_a", "trust_a/account", 3, "own"),
        )],
    )
    .await;
    let errors = settle(&sub, &db, 2, 1).await;
    assert_eq!(
        names(account::Entity::find().all(&db).await.unwrap()),
        ["own"]
    );
    let all = errors.join("\n");
    assert!(all.contains("published without a user_id"), "{all}");
    assert!(all.contains("published by broker user \"guest\""), "{all}");
    // The recorded user_id is checked again on replay.
    let replayed = sub.service().applier().replay_dead_letters().await.unwrap();
    assert!(
        replayed
            .iter()
            .all(|(_, r)| matches!(r, promiscuous::Replayed::Failed(e) if e.contains("refused"))),
        "{replayed:?}"
    );
    assert_eq!(
        names(account::Entity::find().all(&db).await.unwrap()),
        ["own"]
    );
    sub.shutdown().await.unwrap();
    cleanup(&s, &name).await;
}

/// The routing key check needs no broker users: the in-process transport applies it too.
#[tokio::test]
async fn in_process_a_forged_app_is_dead_lettered() {
    let broker = promiscuous::InProcess::new();
    let db = subscriber_db().await;
    let sub = Subscriber::new("members", db.clone(), broker.clone())
        .subscribe::<member::Model>()
        .build()
        .await
        .unwrap();
    let value: Value = serde_json::from_slice(&create("shop", "shop/user", 1, "x")).unwrap();
    use promiscuous::Transport;
    broker
        .publish(&[promiscuous::transport::Outgoing {
            routing_key: "crowdtap".into(),
            payload: value.to_string().into_bytes(),
            partition_key: None,
        }])
        .await
        .unwrap();
    let stats = sub
        .run_until_idle(Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(stats.dead_lettered, 1, "{stats:?}");
    let letter = &sub.applier().dead_letters().await.unwrap()[0];
    assert!(
        letter
            .error
            .contains("app \"shop\" published with routing key \"crowdtap\""),
        "{}",
        letter.error
    );
}

mod published_account {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "accounts")]
    #[promiscuous::publish(name, to = "trust_a/account", as = "Account")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub name: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
}

/// The real publisher, relaying as trust_a, sets the `user_id` a subscriber requiring it admits.
#[tokio::test]
async fn the_publisher_relaying_as_its_app_user_is_admitted() {
    use promiscuous::Publisher;
    use promiscuous::transport::{RabbitMq, RabbitMqConfig};
    use sea_orm::{ActiveModelTrait, Set, TransactionTrait};

    let Some(s) = servers("owner_enforcement_publisher") else {
        return;
    };
    let name = unique("promiscuous-publisher-user");
    let (sub, db) = subscriber(&s, &name, true).await;
    let pdb = promiscuous_test::sqlite().await.unwrap();
    promiscuous_test::create_table(&pdb, published_account::Entity)
        .await
        .unwrap();
    let transport = RabbitMq::new(
        url_as(&s, "trust_a"),
        RabbitMqConfig {
            exchange: name.clone(),
            ..RabbitMqConfig::default()
        },
    );
    let publisher = Publisher::new(pdb.clone(), transport)
        .start()
        .await
        .unwrap();
    for n in ["first", "second"] {
        let txn = pdb.begin().await.unwrap();
        published_account::ActiveModel {
            name: Set(n.into()),
            ..Default::default()
        }
        .insert(&txn)
        .await
        .unwrap();
        txn.commit().await.unwrap();
    }
    let errors = settle(&sub, &db, 0, 2).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        names(account::Entity::find().all(&db).await.unwrap()),
        ["first", "second"]
    );
    publisher.shutdown().await.unwrap();
    sub.shutdown().await.unwrap();
    cleanup(&s, &name).await;
}
