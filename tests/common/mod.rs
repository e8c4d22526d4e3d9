//! Entities shared by the integration tests: a published `user` and a subscribed `member`.
#![allow(dead_code)]

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use promiscuous::{BoxError, Callbacks, Ctx};

pub mod guard;
pub mod netfault;
pub mod security;
pub mod servers;
pub mod services;
pub mod sql_servers;
pub mod wake;

/// A private database with the publisher's `users` table.
pub async fn publisher_db() -> sea_orm::DatabaseConnection {
    let db = promiscuous_test::sqlite().await.unwrap();
    promiscuous_test::create_table(&db, user::Entity)
        .await
        .unwrap();
    db
}

/// A private database with the subscriber's `members` table.
pub async fn subscriber_db() -> sea_orm::DatabaseConnection {
    let db = promiscuous_test::sqlite().await.unwrap();
    promiscuous_test::create_table(&db, member::Entity)
        .await
        .unwrap();
    db
}

pub mod user {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "users")]
    #[promiscuous::publish(name, email, full_name, to = "crowdtap/user")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub name: String,
        pub email: String,
        pub password: String,
    }

    impl Model {
        pub fn full_name(&self) -> String {
            format!("{} <{}>", self.name, self.email)
        }
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
}

pub mod member {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "members")]
    #[promiscuous::subscribe(
        name,
        email,
        from = "crowdtap/user",
        foreign_key = "crowdtap_id",
        callbacks
    )]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        #[sea_orm(unique)]
        pub crowdtap_id: i32,
        pub name: String,
        pub email: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// What callbacks saw, as "create Yoda", "update Yoda name: \"a\" -> \"b\"", "destroy Yoda".
pub static EVENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static FAILURES: AtomicU32 = AtomicU32::new(0);

/// Events mentioning `name` (tests run in parallel: each uses its own names).
pub fn events_of(name: &str) -> Vec<String> {
    EVENTS
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.contains(name))
        .cloned()
        .collect()
}

fn log(event: String) {
    EVENTS.lock().unwrap().push(event);
}

impl Callbacks for member::Model {
    /// Names starting with `fail-always` make the callback fail every time; `fail-twice` the
    /// first two times (process-wide).
    async fn after_create(&self, _ctx: &Ctx<'_>) -> Result<(), BoxError> {
        if self.name.starts_with("fail-always") {
            return Err(format!("refusing {}", self.name).into());
        }
        if self.name.starts_with("fail-twice") && FAILURES.fetch_add(1, Ordering::SeqCst) < 2 {
            return Err("transient failure".into());
        }
        log(format!("create {}", self.name));
        Ok(())
    }

    async fn after_update(&self, ctx: &Ctx<'_>) -> Result<(), BoxError> {
        let changes: Vec<String> = ctx
            .changes()
            .iter()
            .map(|(k, c)| format!("{k}: {} -> {}", c.before, c.after))
            .collect();
        log(format!("update {} {}", self.name, changes.join(", ")));
        Ok(())
    }

    async fn after_destroy(&self, _ctx: &Ctx<'_>) -> Result<(), BoxError> {
        log(format!("destroy {}", self.name));
        Ok(())
    }
}
