//! The test kit, as a subscriber's test suite uses it: the publisher's definitions exported to a
//! file (`promiscuous::definitions::export`, what `promiscuous mocks -o FILE` writes), read back
//! with `Definitions::load`; validators checking the subscriber against them; a mock publisher
//! built from them pushing factory-made creates, updates and destroys through the real
//! subscriber pipeline; and what it refuses.
//!
//! The publisher's models are linked into this test only to export their definitions: the
//! subscriber is then tested without them.

mod common;

use std::path::PathBuf;
use std::sync::Mutex;

use common::{events_of, member, user};
use promiscuous::{BoxError, Callbacks, Ctx, InProcess, Subscriber, SubscriberService};
use promiscuous_test::{
    Definitions, DefinitionsError, IDLE, MockError, MockPublisher, validate_observer,
    validate_subscriber,
};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use serde_json::json;

const USER: &str = "crowdtap/user";
const PAGE_VIEW: &str = "crowdtap/page_view";

/// The publisher's side, besides `common::user`: admins (a subtype of user on the same
/// endpoint) and page views (an ephemeral). Only their definitions are used here.
#[allow(dead_code)]
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
        pub struct Model {
            #[sea_orm(primary_key, auto_increment = false)]
            pub id: i32,
            pub name: String,
            pub email: String,
            pub level: i32,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}
    }

    #[promiscuous::ephemeral(page, to = "crowdtap/page_view", id = "uuid")]
    pub struct PageView {
        pub uuid: String,
        pub page: String,
    }
}

/// The subscriber's side, besides `common::member` (users' name and email).
mod subscriber {
    /// Admins only.
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
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i32,
            #[sea_orm(unique)]
            pub crowdtap_id: i32,
            pub name: String,
            pub level: i32,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }

    /// A subscriber that drifted from the publisher: `password` is not published, nor is
    /// `crowdtap/member`.
    pub mod drifted {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
        #[sea_orm(table_name = "drifted")]
        #[promiscuous::subscribe(name, password, from = "crowdtap/user", foreign_key = "user_id")]
        #[promiscuous::subscribe(name, from = "crowdtap/member", foreign_key = "member_id")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i32,
            pub user_id: Option<i32>,
            pub member_id: Option<i32>,
            pub name: String,
            pub password: String,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }

    /// Page views, observed.
    #[derive(Default)]
    #[promiscuous::observer(page, from = "crowdtap/page_view")]
    pub struct PageViews {
        pub id: String,
        pub page: String,
    }

    /// Observes a type that is not published (only validated here, never built).
    #[allow(dead_code)]
    #[derive(Default)]
    #[promiscuous::observer(name, from = "crowdtap/user", as = "Moderator")]
    pub struct Moderators {
        pub id: i64,
        pub name: String,
    }
}

use subscriber::{PageViews, staff};

static VIEWS: Mutex<Vec<String>> = Mutex::new(Vec::new());

impl Callbacks for PageViews {
    async fn after_create(&self, _ctx: &Ctx<'_>) -> Result<(), BoxError> {
        VIEWS
            .lock()
            .unwrap()
            .push(format!("{} {}", self.id, self.page));
        Ok(())
    }
}

impl Callbacks for subscriber::Moderators {}

/// The publisher's definitions, exported to a file as `promiscuous mocks -o FILE` does, read
/// back. Each test writes its own file.
fn definitions_file(name: &str) -> (PathBuf, Definitions) {
    let path = std::env::temp_dir().join(format!(
        "promiscuous-testkit-{}-{name}.json",
        std::process::id()
    ));
    let exported = promiscuous::definitions::export(Some("crowdtap"));
    std::fs::write(&path, serde_json::to_string_pretty(&exported).unwrap()).unwrap();
    let loaded = Definitions::load(&path).unwrap();
    (path, loaded)
}

fn definitions(name: &str) -> Definitions {
    let (path, loaded) = definitions_file(name);
    std::fs::remove_file(path).unwrap();
    loaded
}

async fn subscriber(broker: &InProcess) -> (SubscriberService, DatabaseConnection) {
    let db = promiscuous_test::sqlite().await.unwrap();
    promiscuous_test::create_table(&db, member::Entity)
        .await
        .unwrap();
    promiscuous_test::create_table(&db, staff::Entity)
        .await
        .unwrap();
    let service = Subscriber::new("testkit", db.clone(), broker.clone())
        .subscribe::<member::Model>()
        .subscribe::<staff::Model>()
        .observe::<PageViews>()
        .build()
        .await
        .unwrap();
    (service, db)
}

async fn member_of(db: &DatabaseConnection, crowdtap_id: i32) -> Option<member::Model> {
    member::Entity::find()
        .filter(member::Column::CrowdtapId.eq(crowdtap_id))
        .one(db)
        .await
        .unwrap()
}

#[test]
fn exported_definitions_are_read_back_from_a_file() {
    let (path, loaded) = definitions_file("read-back");
    assert_eq!(loaded, Definitions::exported(Some("crowdtap")));
    assert_eq!(loaded.endpoint_names(), [PAGE_VIEW, USER]);
    let user = loaded.endpoint(USER).unwrap();
    assert_eq!(user.types, ["User"]);
    assert_eq!(user.attribute_names(), ["name", "email", "full_name"]);
    assert_eq!(user.attribute("email").unwrap().rust_type, "String");
    assert_eq!(
        user.attribute("full_name").unwrap().rust_type,
        "",
        "virtual"
    );
    let admin = loaded.endpoint_as(USER, "Admin").unwrap();
    assert_eq!(admin.types, ["Admin", "User"]);
    assert_eq!(admin.attribute("level").unwrap().rust_type, "i32");
    assert!(loaded.endpoint(PAGE_VIEW).unwrap().ephemeral);

    // A file from a newer format is refused with a clear error, as is a missing one.
    std::fs::write(&path, r#"{"promiscuous_definitions": 99, "endpoints": []}"#).unwrap();
    let newer = Definitions::load(&path).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(newer, DefinitionsError::Format { .. }));
    assert!(newer.to_string().contains("is 99, expected 1"), "{newer}");
    let missing = Definitions::load(&path).unwrap_err();
    assert!(
        matches!(missing, DefinitionsError::Read { .. }),
        "{missing}"
    );
}

#[test]
fn validators_check_subscribers_and_observers_against_the_definitions() {
    let d = definitions("validators");
    assert_eq!(validate_subscriber::<member::Model>(&d), Ok(()));
    assert_eq!(validate_subscriber::<staff::Model>(&d), Ok(()));
    assert_eq!(validate_observer::<PageViews>(&d), Ok(()));
    assert_eq!(
        validate_subscriber::<subscriber::drifted::Model>(&d),
        Err(vec![
            "attribute `password` is not published to \"crowdtap/user\" (published: email, \
             full_name, level, name)"
                .to_string(),
            "\"crowdtap/member\" is not published (published: crowdtap/page_view, \
             crowdtap/user)"
                .to_string(),
        ])
    );
    assert_eq!(
        validate_observer::<subscriber::Moderators>(&d),
        Err(vec![
            "no type \"Moderator\" is published to \"crowdtap/user\" (types: Admin, User)"
                .to_string()
        ])
    );
}

#[tokio::test]
async fn factory_made_operations_go_through_the_subscriber_pipeline() {
    let broker = InProcess::new();
    let (sub, db) = subscriber(&broker).await;
    let mut crowdtap =
        MockPublisher::from_definitions("crowdtap", &definitions("pipeline"), broker.clone())
            .unwrap();

    // Creates: one made by the factory with a name of our own, one admin, one page view.
    let yoda = crowdtap
        .create_from_factory(USER, json!({"name": "Yoda-tk"}))
        .await
        .unwrap();
    let id = yoda.operations[0].id.clone();
    assert_eq!(yoda.operations[0].types, ["User"]);
    crowdtap
        .create_as(USER, "Admin", json!(1000), json!({"name": "Mace-tk"}))
        .await
        .unwrap();
    crowdtap
        .create(PAGE_VIEW, json!("tk-view"), json!({"page": "/testkit"}))
        .await
        .unwrap();
    let stats = sub.run_until_idle(IDLE).await.unwrap();
    assert_eq!((stats.operations_applied, stats.dead_lettered), (3, 0));
    let crowdtap_id = id.as_i64().unwrap() as i32;
    let m = member_of(&db, crowdtap_id).await.unwrap();
    assert_eq!(m.name, "Yoda-tk");
    assert_eq!(m.email, format!("email-{crowdtap_id}"), "from the factory");
    // The admin went to the Admin subscription (the nearest type), not to members.
    assert!(member_of(&db, 1000).await.is_none());
    let mace = staff::Entity::find()
        .filter(staff::Column::CrowdtapId.eq(1000))
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mace.name, "Mace-tk");
    assert!(
        VIEWS
            .lock()
            .unwrap()
            .contains(&"tk-view /testkit".to_string())
    );

    // Updates carry every attribute, the rest from the last state; `changes` what changed.
    crowdtap
        .update(USER, id.clone(), json!({"name": "Master Yoda-tk"}))
        .await
        .unwrap();
    crowdtap
        .update(USER, json!(1000), json!({"level": 9}))
        .await
        .unwrap();
    // (The counters are since the subscriber was made.)
    let stats = sub.run_until_idle(IDLE).await.unwrap();
    assert_eq!((stats.operations_applied, stats.dead_lettered), (5, 0));
    let m = member_of(&db, crowdtap_id).await.unwrap();
    assert_eq!(
        (m.name.as_str(), m.email.clone()),
        ("Master Yoda-tk", format!("email-{crowdtap_id}"))
    );
    let mace = staff::Entity::find()
        .filter(staff::Column::CrowdtapId.eq(1000))
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((mace.name.as_str(), mace.level), ("Mace-tk", 9));

    // Destroys.
    crowdtap.destroy(USER, id).await.unwrap();
    crowdtap.destroy(USER, json!(1000)).await.unwrap();
    let stats = sub.run_until_idle(IDLE).await.unwrap();
    assert_eq!((stats.operations_applied, stats.dead_lettered), (7, 0));
    assert!(member_of(&db, crowdtap_id).await.is_none());
    assert!(staff::Entity::find().all(&db).await.unwrap().is_empty());
    assert_eq!(
        events_of("Yoda-tk"),
        [
            "create Yoda-tk",
            "update Master Yoda-tk name: \"Yoda-tk\" -> \"Master Yoda-tk\"",
            "destroy Master Yoda-tk",
        ]
    );
}

#[tokio::test]
async fn what_the_publisher_does_not_publish_is_refused_and_nothing_is_sent() {
    let broker = InProcess::new();
    let (sub, _db) = subscriber(&broker).await;
    let mut crowdtap =
        MockPublisher::from_definitions("crowdtap", &definitions("refusals"), broker.clone())
            .unwrap();

    let unknown_attribute = crowdtap
        .create(USER, json!(1), json!({"name": "Jar Jar", "password": "x"}))
        .await
        .unwrap_err();
    assert_eq!(
        unknown_attribute.to_string(),
        "attribute `password` is not published to \"crowdtap/user\" as \"User\" (published: \
         name, email, full_name)"
    );
    let unknown_endpoint = crowdtap
        .create_from_factory("crowdtap/member", json!({}))
        .await
        .unwrap_err();
    assert!(
        matches!(&unknown_endpoint, MockError::UnknownEndpoint { endpoint, .. } if endpoint == "crowdtap/member"),
        "{unknown_endpoint}"
    );
    assert_eq!(
        unknown_endpoint.to_string(),
        "\"crowdtap/member\" is not in the publisher's definitions (published: \
         crowdtap/page_view, crowdtap/user)"
    );
    let unknown_type = crowdtap
        .create_as(USER, "Moderator", json!(2), json!({}))
        .await
        .unwrap_err();
    assert!(matches!(unknown_type, MockError::UnknownType { .. }));
    let ephemeral_update = crowdtap
        .update(PAGE_VIEW, json!("v"), json!({"page": "/"}))
        .await
        .unwrap_err();
    assert!(matches!(ephemeral_update, MockError::Ephemeral { .. }));
    // Levels are published to admins only.
    let level_of_a_user = crowdtap
        .create(USER, json!(3), json!({"level": 1}))
        .await
        .unwrap_err();
    assert!(
        matches!(&level_of_a_user, MockError::UnknownAttribute { attribute, .. } if attribute == "level")
    );
    assert!(matches!(
        MockPublisher::from_definitions("legacy", &definitions("legacy"), broker.clone()),
        Err(MockError::UnknownApp { .. })
    ));

    let stats = sub.run_until_idle(IDLE).await.unwrap();
    assert_eq!(stats.messages, 0, "nothing was sent: {stats:?}");

    // A refused create took no version: the first accepted one is version 1.
    let accepted = crowdtap
        .create(USER, json!(1), json!({"name": "Jar Jar"}))
        .await
        .unwrap();
    assert_eq!(accepted.operations[0].version, 1);
}

#[test]
fn the_publishers_model_still_publishes_what_the_definitions_say() {
    // The definitions come from the models' own `Published::ENDPOINTS`.
    use promiscuous::Published;
    let d = definitions("published");
    let endpoint = &<user::Model as Published>::ENDPOINTS[0];
    let entry = d.endpoint(endpoint.endpoint).unwrap();
    assert_eq!(
        entry.attribute_names(),
        endpoint
            .attributes
            .iter()
            .map(|a| a.name)
            .collect::<Vec<_>>()
    );
}
