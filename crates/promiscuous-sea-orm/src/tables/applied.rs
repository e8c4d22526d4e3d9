//! Subscriber side: the last applied version of every replicated instance, written in the same
//! transaction as the subscriber's data (exactly-once effect).
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
