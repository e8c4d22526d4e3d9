//! Publisher side: the operations of the outbox's messages, one row per published write, in
//! write order. A publisher transaction writes one `promiscuous_outbox` row per app (the
//! message's header) at its first published write to that app, and one row here per write;
//! both commit or roll back with the transaction (a rolled-back savepoint removes its own rows
//! only). The relay assembles each message from its header and its operations.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "promiscuous_outbox_operations")]
pub struct Model {
    /// Write order within the message (and across messages).
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The message: `promiscuous_outbox.id`.
    #[sea_orm(indexed)]
    pub outbox_id: i64,
    /// The operation, as JSON (`Operation`).
    #[sea_orm(column_type = "Text")]
    pub operation: String,
    /// The read dependencies the causal context had at this write, as a JSON array of
    /// `{"key", "version"}` (absent outside a context).
    #[sea_orm(column_type = "Text", nullable)]
    pub reads: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
