//! `promiscuous::define!`, the define-style alternative to the attributes: plain SeaORM entities,
//! every definition in one place, the same pipeline.

use promiscuous::{BoxError, Callbacks, Ctx, InProcess, Publisher, Subscriber};
use promiscuous_test::{create_table, sqlite, sync};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, ModelTrait, Set, TransactionTrait};
use std::sync::Mutex;

/// The publisher's entity, with no promiscuous attribute.
mod account {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "accounts")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub account_id: i32,
        pub login: String,
        pub email: String,
        pub secret: String,
    }

    impl Model {
        pub fn domain(&self) -> String {
            self.email
                .rsplit('@')
                .next()
                .unwrap_or_default()
                .to_string()
        }
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
}

/// The subscriber's entity, with no promiscuous attribute.
mod contact {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "contacts")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        #[sea_orm(unique)]
        pub shop_account: i32,
        pub login: String,
        pub domain: String,
    }

    impl ActiveModelBehavior for ActiveModel {}

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
}

/// One place for every definition of both services.
mod definitions {
    use super::{account, contact};

    promiscuous::define! {
        publish(login, email, domain(), to = "shop/account", key = "account_id") for account::Model;
        publish(login, to = "shop_v1/user", as = "User") for account::Model;
        subscribe(login, domain, from = "shop/account", foreign_key = "shop_account", callbacks) for contact::Model;
    }
}

static EVENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

impl Callbacks for contact::Model {
    async fn after_create(&self, _ctx: &Ctx<'_>) -> Result<(), BoxError> {
        EVENTS.lock().unwrap().push(format!("hello {}", self.login));
        Ok(())
    }
    async fn after_update(&self, ctx: &Ctx<'_>) -> Result<(), BoxError> {
        EVENTS.lock().unwrap().push(format!(
            "{} changed {}",
            self.login,
            ctx.changed("login").is_some()
        ));
        Ok(())
    }
}

#[tokio::test]
async fn define_publishes_and_subscribes_plain_entities() {
    let (pdb, sdb) = (sqlite().await.unwrap(), sqlite().await.unwrap());
    create_table(&pdb, account::Entity).await.unwrap();
    create_table(&sdb, contact::Entity).await.unwrap();
    let broker = InProcess::new();
    let sub = Subscriber::new("contacts", sdb.clone(), broker.clone())
        .subscribe::<contact::Model>()
        .build()
        .await
        .unwrap();
    let publisher = Publisher::new(pdb.clone(), broker.clone())
        .start()
        .await
        .unwrap();

    let txn = pdb.begin().await.unwrap();
    let acc = account::ActiveModel {
        login: Set("han".into()),
        email: Set("han@falcon.space".into()),
        secret: Set("kessel".into()),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .unwrap();
    txn.commit().await.unwrap();
    sync(&publisher, &sub).await.unwrap();
    let copy = contact::Entity::find().one(&sdb).await.unwrap().unwrap();
    assert_eq!(
        (copy.shop_account, copy.login.as_str(), copy.domain.as_str()),
        (acc.account_id, "han", "falcon.space")
    );

    let txn = pdb.begin().await.unwrap();
    let mut am = acc.into_active_model();
    am.login = Set("solo".into());
    let acc = am.update(&txn).await.unwrap();
    txn.commit().await.unwrap();
    sync(&publisher, &sub).await.unwrap();
    let copy = contact::Entity::find().one(&sdb).await.unwrap().unwrap();
    assert_eq!(copy.login, "solo");
    assert_eq!(
        *EVENTS.lock().unwrap(),
        vec!["hello han".to_string(), "solo changed true".to_string()]
    );

    // The hooks and the guard are the attribute's: a bypass is refused, a delete is published.
    let txn = pdb.begin().await.unwrap();
    let refused = account::Entity::update_many()
        .col_expr(account::Column::Login, Expr::value("x"))
        .exec(&txn)
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("bypassed"), "{refused}");
    txn.rollback().await.unwrap();
    let txn = pdb.begin().await.unwrap();
    acc.delete(&txn).await.unwrap();
    txn.commit().await.unwrap();
    sync(&publisher, &sub).await.unwrap();
    assert!(contact::Entity::find().one(&sdb).await.unwrap().is_none());
    publisher.shutdown().await.unwrap();
}

#[test]
fn define_exports_every_endpoint() {
    let defs = promiscuous::definitions::export(Some("shop"));
    let endpoints = defs["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 1, "{defs}");
    assert_eq!(endpoints[0]["endpoint"], "shop/account");
    assert_eq!(endpoints[0]["types"], serde_json::json!(["Account"]));
    let names: Vec<&str> = endpoints[0]["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["login", "email", "domain"]);
    let v1 = promiscuous::definitions::export(Some("shop_v1"));
    assert_eq!(v1["endpoints"][0]["types"], serde_json::json!(["User"]));
}
