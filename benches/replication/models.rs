//! The bench's models: `user`, published to `benchpub/user`, and `member`, its subscriber
//! copy, whose callbacks count applied operations and time those of the latency run.

use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use promiscuous::{BoxError, Callbacks, Ctx};

pub(crate) mod user {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "users")]
    #[promiscuous::publish(name, email, to = "benchpub/user")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub name: String,
        pub email: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
}

pub(crate) mod member {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "members")]
    #[promiscuous::subscribe(
        name,
        email,
        from = "benchpub/user",
        foreign_key = "user_id",
        callbacks
    )]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        #[sea_orm(unique)]
        pub user_id: i32,
        pub name: String,
        pub email: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Commit and apply instants of the latency run, by operation number (the `name` written).
pub(crate) struct Clock {
    pub(crate) committed: Vec<Mutex<Option<Instant>>>,
    pub(crate) applied: Vec<Mutex<Option<Instant>>>,
}

pub(crate) static CLOCK: OnceLock<Clock> = OnceLock::new();
pub(crate) static APPLIED: AtomicUsize = AtomicUsize::new(0);

pub(crate) fn op_number(name: &str) -> Option<usize> {
    name.strip_prefix("op ")?.parse().ok()
}

impl Callbacks for member::Model {
    async fn after_create(&self, _ctx: &Ctx<'_>) -> Result<(), BoxError> {
        applied(&self.name);
        Ok(())
    }
    async fn after_update(&self, _ctx: &Ctx<'_>) -> Result<(), BoxError> {
        applied(&self.name);
        Ok(())
    }
}

pub(crate) fn applied(name: &str) {
    APPLIED.fetch_add(1, AtomicOrdering::Relaxed);
    if let (Some(clock), Some(n)) = (CLOCK.get(), op_number(name))
        && let Some(slot) = clock.applied.get(n)
    {
        slot.lock().unwrap().get_or_insert_with(Instant::now);
    }
}
