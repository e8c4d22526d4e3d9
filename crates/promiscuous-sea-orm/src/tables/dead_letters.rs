//! Subscriber side: messages that could not be applied, with their error ("message hospital").
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "promiscuous_dead_letters")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub queue: String,
    pub routing_key: String,
    /// The publisher's broker-validated user (AMQP `user_id`), if the delivery had one.
    pub user_id: Option<String>,
    pub payload: Vec<u8>,
    #[sea_orm(column_type = "Text")]
    pub error: String,
    pub attempts: i32,
    pub at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
