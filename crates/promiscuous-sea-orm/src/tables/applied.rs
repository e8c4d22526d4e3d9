//! Subscriber side: the last applied version of every replicated instance, written in the same
//! transaction as the subscriber's data (exactly-once effect). An operation whose version is not
//! greater is skipped. Only operations that took effect (or ran callbacks) are recorded here:
//! versions processed without effect (ignored, dead-lettered) are in
//! [`processed`](super::processed).
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "promiscuous_applied")]
pub struct Model {
    /// `"{endpoint}/{id}"`
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    pub version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
