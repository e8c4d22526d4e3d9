//! The features of the original gem: polymorphism (type chains, nearest subscribed type),
//! namespace mapping (`to`, `from`, `as`), one model published to several endpoints, one model
//! subscribed from several publishers, ephemerals and observers, embedded JSON attributes, and
//! publisher attributes a subscriber does not know yet.

mod common;

use std::sync::Mutex;

use common::{member, user};
use promiscuous::{BoxError, Callbacks, Ctx, Ephemeral, InProcess, Publisher, Subscriber};
use promiscuous_test::{MockPublisher, create_table, sqlite, sync};
use sea_orm::{ActiveModelTrait, DatabaseConnection, EntityTrait, Set, TransactionTrait};
use serde_json::json;

/// The publisher: users (`common::user`), admins (a subtype of user, on the same endpoint, also
/// published to an older API), profiles with JSON attributes.
mod publisher {
    pub mod admin {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
        #[sea_orm(table_name = "admins")]
        #[promiscuous::publish(
            name,
            email,
            level,
            to = "crowdtap/user",
            as = "Admin",
            extends = "User"
        )]
        #[promiscuous::publish(name, to = "crowdtap_v1/person")]
        pub struct Model {
            // Admins and users share crowdtap/user, so they share its ids: admins use 1000+.
            #[sea_orm(primary_key, auto_increment = false)]
            pub id: i32,
            pub name: String,
            pub email: String,
            pub level: i32,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}
    }

    pub mod profile {
        use sea_orm::entity::prelude::*;
        use serde::{Deserialize, Serialize};

        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, FromJsonQueryResult)]
        pub struct Address {
            pub city: String,
            pub planet: String,
        }

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
        #[sea_orm(table_name = "profiles")]
        #[promiscuous::publish(settings, address, to = "crowdtap/profile")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i32,
            pub settings: Json,
            pub address: Address,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}
    }

    /// An event: published, never stored.
    #[promiscuous::ephemeral(page, user_id, to = "crowdtap/page_view", id = "uuid")]
    pub struct PageView {
        pub uuid: String,
        pub page: String,
        pub user_id: i32,
    }
}

/// The subscriber side.
mod subscriber {
    /// Users and admins alike (no `as`: any type published to crowdtap/user).
    pub mod anyone {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
        #[sea_orm(table_name = "anyone")]
        #[promiscuous::subscribe(name, from = "crowdtap/user", foreign_key = "crowdtap_id")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i32,
            #[sea_orm(unique)]
            pub crowdtap_id: i32,
            pub name: String,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }

    /// Admins only, from two publishers: crowdtap's admins, and a legacy app's people.
    pub mod staff {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
        #[sea_orm(table_name = "staff")]
        #[promiscuous::subscribe(
            name,
            level,
            from = "crowdtap/user",
            as = "Admin",
            foreign_key = "crowdtap_id"
        )]
        #[promiscuous::subscribe(name, from = "legacy/person", foreign_key = "legacy_id")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i32,
            #[sea_orm(unique)]
            pub crowdtap_id: Option<i32>,
            #[sea_orm(unique)]
            pub legacy_id: Option<String>,
            pub name: String,
            pub level: Option<i32>,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }

    /// The older API's view of admins.
    pub mod person {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
        #[sea_orm(table_name = "people")]
        #[promiscuous::subscribe(name, from = "crowdtap_v1/person")]
        pub struct Model {
            #[sea_orm(primary_key, auto_increment = false)]
            pub id: i32,
            pub name: String,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }

    pub mod profile {
        use sea_orm::entity::prelude::*;

        pub use crate::publisher::profile::Address;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
        #[sea_orm(table_name = "s_profiles")]
        #[promiscuous::subscribe(settings, address, from = "crowdtap/profile")]
        pub struct Model {
            #[sea_orm(primary_key, auto_increment = false)]
            pub id: i32,
            pub settings: Json,
            pub address: Address,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }

    /// Page views, observed: never stored.
    #[derive(Default)]
    #[promiscuous::observer(page, from = "crowdtap/page_view")]
    pub struct PageViews {
        pub id: String,
        pub page: String,
    }
}

use publisher::{PageView, admin, profile};
use subscriber as sub;

/// What observers saw, per test (tests run in parallel: each uses its own pages).
static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn seen(prefix: &str) -> Vec<String> {
    SEEN.lock()
        .unwrap()
        .iter()
        .filter(|s| s.contains(prefix))
        .cloned()
        .collect()
}

impl Callbacks for sub::PageViews {
    async fn after_create(&self, ctx: &Ctx<'_>) -> Result<(), BoxError> {
        SEEN.lock().unwrap().push(format!(
            "{} v{} {}",
            self.page, ctx.operation.version, self.id
        ));
        Ok(())
    }
    async fn after_destroy(&self, _ctx: &Ctx<'_>) -> Result<(), BoxError> {
        SEEN.lock().unwrap().push(format!("gone {}", self.id));
        Ok(())
    }
}

async fn publisher_db() -> DatabaseConnection {
    let db = sqlite().await.unwrap();
    create_table(&db, user::Entity).await.unwrap();
    create_table(&db, admin::Entity).await.unwrap();
    create_table(&db, profile::Entity).await.unwrap();
    db
}

async fn subscriber_db() -> DatabaseConnection {
    let db = sqlite().await.unwrap();
    create_table(&db, member::Entity).await.unwrap();
    create_table(&db, sub::anyone::Entity).await.unwrap();
    create_table(&db, sub::staff::Entity).await.unwrap();
    create_table(&db, sub::person::Entity).await.unwrap();
    create_table(&db, sub::profile::Entity).await.unwrap();
    db
}

async fn write_user_and_admin(pdb: &DatabaseConnection) {
    let txn = pdb.begin().await.unwrap();
    user::ActiveModel {
        name: Set("Luke".into()),
        email: Set("luke@x".into()),
        password: Set("pw".into()),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .unwrap();
    admin::ActiveModel {
        id: Set(1000),
        name: Set("Yoda".into()),
        email: Set("yoda@x".into()),
        level: Set(9),
    }
    .insert(&txn)
    .await
    .unwrap();
    txn.commit().await.unwrap();
}

#[tokio::test]
async fn each_operation_goes_to_the_nearest_subscribed_type() {
    let broker = InProcess::new();
    let (pdb, sdb) = (publisher_db().await, subscriber_db().await);
    // One subscriber app with a catch-all model and an Admin-only model; another app with only
    // the catch-all.
    let typed = Subscriber::new("typed", sdb.clone(), broker.clone())
        .subscribe::<sub::anyone::Model>()
        .subscribe::<sub::staff::Model>()
        .build()
        .await
        .unwrap();
    let other_db = subscriber_db().await;
    let untyped = Subscriber::new("untyped", other_db.clone(), broker.clone())
        .subscribe::<sub::anyone::Model>()
        .build()
        .await
        .unwrap();
    let publisher = Publisher::new(pdb.clone(), broker.clone())
        .start()
        .await
        .unwrap();
    write_user_and_admin(&pdb).await;
    sync(&publisher, &typed).await.unwrap();
    untyped
        .run_until_idle(promiscuous_test::IDLE)
        .await
        .unwrap();

    let names = |rows: Vec<sub::anyone::Model>| -> Vec<String> {
        rows.into_iter().map(|r| r.name).collect()
    };
    assert_eq!(
        names(sub::anyone::Entity::find().all(&sdb).await.unwrap()),
        ["Luke"],
        "the admin went to the Admin model"
    );
    let staff = sub::staff::Entity::find().all(&sdb).await.unwrap();
    assert_eq!(staff.len(), 1);
    assert_eq!(
        (staff[0].crowdtap_id, staff[0].name.as_str(), staff[0].level),
        (Some(1000), "Yoda", Some(9))
    );
    assert_eq!(
        names(sub::anyone::Entity::find().all(&other_db).await.unwrap()),
        ["Luke", "Yoda"],
        "without an Admin model, an admin is a user"
    );

    // A deeper chain than anything here knows goes to the nearest known type.
    let mut mock = MockPublisher::new("crowdtap", broker.clone());
    let mut m = mock.message(
        "crowdtap/user",
        json!(2000),
        promiscuous::OperationKind::Create,
        Some(json!({"name": "Mace", "level": 10})),
    );
    m.operations[0].types = vec!["Master".into(), "Admin".into(), "User".into()];
    mock.send(&m).await.unwrap();
    typed.run_until_idle(promiscuous_test::IDLE).await.unwrap();
    assert_eq!(sub::staff::Entity::find().all(&sdb).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_model_is_published_to_several_endpoints_and_subscribed_from_several_publishers() {
    let broker = InProcess::new();
    let (pdb, sdb) = (publisher_db().await, subscriber_db().await);
    let sub = Subscriber::new("people", sdb.clone(), broker.clone())
        .subscribe::<sub::person::Model>()
        .subscribe::<sub::staff::Model>()
        .build()
        .await
        .unwrap();
    let publisher = Publisher::new(pdb.clone(), broker.clone())
        .start()
        .await
        .unwrap();
    write_user_and_admin(&pdb).await;
    // The legacy app publishes people too.
    let mut legacy = MockPublisher::new("legacy", broker.clone());
    publisher.flush().await.unwrap();
    legacy
        .create("legacy/person", json!("L-1"), json!({"name": "Obi-Wan"}))
        .await
        .unwrap();
    let stats = sync(&publisher, &sub).await.unwrap();
    assert_eq!(stats.dead_lettered, 0, "{stats:?}");
    // The older API's endpoint: only the admin, with its v1 attributes.
    let people = sub::person::Entity::find().all(&sdb).await.unwrap();
    assert_eq!(
        people,
        vec![sub::person::Model {
            id: 1000,
            name: "Yoda".into()
        }]
    );
    // One table fed by two publishers, each by its own key.
    let mut staff: Vec<(Option<i32>, Option<String>, String)> = sub::staff::Entity::find()
        .all(&sdb)
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.crowdtap_id, s.legacy_id, s.name))
        .collect();
    staff.sort();
    assert_eq!(
        staff,
        vec![
            (None, Some("L-1".into()), "Obi-Wan".into()),
            (Some(1000), None, "Yoda".into()),
        ]
    );
}

#[tokio::test]
async fn ephemerals_are_published_never_stored_and_observers_only_run_callbacks() {
    let broker = InProcess::new();
    let pdb = publisher_db().await;
    let sdb = subscriber_db().await;
    let sub = Subscriber::new("views", sdb.clone(), broker.clone())
        .observe::<sub::PageViews>()
        .build()
        .await
        .unwrap();
    let publisher = Publisher::new(pdb.clone(), broker.clone())
        .start()
        .await
        .unwrap();
    let view = |uuid: &str| PageView {
        uuid: uuid.into(),
        page: "/ephemeral".into(),
        user_id: 1,
    };
    // Outside a transaction: refused; rolled back: nothing.
    let refused = view("e-0").publish(&pdb).await.unwrap_err();
    assert!(
        refused.to_string().contains("inside a transaction"),
        "{refused}"
    );
    let txn = pdb.begin().await.unwrap();
    view("e-0").publish(&txn).await.unwrap();
    txn.rollback().await.unwrap();
    let txn = pdb.begin().await.unwrap();
    view("e-1").publish(&txn).await.unwrap();
    view("e-1").publish(&txn).await.unwrap(); // the same id again: its next version
    view("e-2").publish(&txn).await.unwrap();
    txn.commit().await.unwrap();
    let stats = sync(&publisher, &sub).await.unwrap();
    assert_eq!(stats.operations_applied, 3, "{stats:?}");
    let mut got = seen("/ephemeral");
    got.sort();
    assert_eq!(
        got,
        [
            "/ephemeral v1 e-1",
            "/ephemeral v1 e-2",
            "/ephemeral v2 e-1"
        ]
    );
    // An observed destroy builds the observer from its id; a duplicate runs nothing twice.
    let mut mock = MockPublisher::new("crowdtap", broker.clone());
    mock.create(
        "crowdtap/page_view",
        json!("o-1"),
        json!({"page": "/observed"}),
    )
    .await
    .unwrap();
    let gone = mock
        .destroy("crowdtap/page_view", json!("o-1"))
        .await
        .unwrap();
    mock.send(&gone).await.unwrap();
    sub.run_until_idle(promiscuous_test::IDLE).await.unwrap();
    assert_eq!(seen("o-1"), ["/observed v1 o-1", "gone o-1"]);
    // Nothing is stored but the versions.
    let applied = promiscuous::pipeline::tables::applied::Entity::find()
        .all(&sdb)
        .await
        .unwrap();
    assert_eq!(applied.len(), 3);
}

#[tokio::test]
async fn embedded_json_attributes_round_trip() {
    let broker = InProcess::new();
    let (pdb, sdb) = (publisher_db().await, subscriber_db().await);
    let sub = Subscriber::new("profiles", sdb.clone(), broker.clone())
        .subscribe::<sub::profile::Model>()
        .build()
        .await
        .unwrap();
    let publisher = Publisher::new(pdb.clone(), broker.clone())
        .start()
        .await
        .unwrap();
    let settings =
        json!({"theme": "dark", "tags": ["jedi", 7], "nested": {"ok": true, "none": null}});
    let address = profile::Address {
        city: "Dagobah swamp".into(),
        planet: "Dagobah".into(),
    };
    let txn = pdb.begin().await.unwrap();
    profile::ActiveModel {
        settings: Set(settings.clone()),
        address: Set(address.clone()),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .unwrap();
    txn.commit().await.unwrap();
    sync(&publisher, &sub).await.unwrap();
    let got = sub::profile::Entity::find()
        .one(&sdb)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((got.settings, got.address), (settings, address));
}

#[tokio::test]
async fn attributes_the_subscriber_does_not_know_yet_do_not_block_it() {
    let broker = InProcess::new();
    let sdb = subscriber_db().await;
    let sub = Subscriber::new("members", sdb.clone(), broker.clone())
        .subscribe::<member::Model>()
        .build()
        .await
        .unwrap();
    let mut mock = MockPublisher::new("crowdtap", broker.clone());
    // The publisher deployed `nickname` and `born_at` first.
    mock.create(
        "crowdtap/user",
        json!(1),
        json!({"name": "Known-Attrs", "email": "k@a", "nickname": "K", "born_at": {"y": 1}}),
    )
    .await
    .unwrap();
    let stats = sub.run_until_idle(promiscuous_test::IDLE).await.unwrap();
    assert_eq!((stats.operations_applied, stats.dead_lettered), (1, 0));
    assert_eq!(
        member::Entity::find()
            .one(&sdb)
            .await
            .unwrap()
            .unwrap()
            .name,
        "Known-Attrs"
    );
}
