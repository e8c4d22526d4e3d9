//! Publisher side: encoded messages committed with the model change, waiting for the relay.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "promiscuous_outbox")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub routing_key: String,
    #[sea_orm(column_type = "Text")]
    pub payload: String,
    pub created_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
