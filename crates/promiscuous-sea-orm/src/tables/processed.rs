//! Subscriber side: versions processed without being applied, so that messages depending on
//! them need not wait, even after a restart: operations on endpoints nobody here follows
//! (ignored) and operations of dead-lettered messages. Kept apart from
//! [`applied`](super::applied), which alone decides what is skipped as already applied: a
//! dead letter replayed later, or an instance whose endpoint is followed later, is still
//! applied. A causal wait takes the greater of the two versions.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "promiscuous_processed")]
pub struct Model {
    /// `"{endpoint}/{id}"`
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    /// The highest version processed without effect (only ever raised).
    pub version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
