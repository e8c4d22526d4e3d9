//! Publisher side: the current version of every published instance and its last published
//! attributes (for the before/after `changes` of updates).
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "promiscuous_versions")]
pub struct Model {
    /// `"{endpoint}/{id}"`
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    pub version: i64,
    #[sea_orm(column_type = "Text", nullable)]
    pub attributes: Option<String>,
    /// The id of the message that published this version (absent for versions written before
    /// promiscuous recorded it): lets a causal context check that its last message committed.
    #[sea_orm(column_type = "Text", nullable)]
    pub message: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
