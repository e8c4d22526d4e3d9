use async_trait::async_trait;
use promiscuous_core::publisher::{BoxError, Outbox, OutboxEntry};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::tables::outbox;

/// The outbox table of a publisher database, read by the relay.
#[derive(Clone)]
pub struct SeaOrmOutbox {
    db: DatabaseConnection,
}

impl SeaOrmOutbox {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Rows waiting to be published.
    pub async fn pending(&self) -> Result<u64, sea_orm::DbErr> {
        use sea_orm::PaginatorTrait;
        outbox::Entity::find().count(&self.db).await
    }
}

#[async_trait]
impl Outbox for SeaOrmOutbox {
    async fn fetch(&self, limit: usize) -> Result<Vec<OutboxEntry>, BoxError> {
        let rows = outbox::Entity::find()
            .order_by_asc(outbox::Column::Id)
            .limit(limit as u64)
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| OutboxEntry {
                id: r.id,
                routing_key: r.routing_key,
                payload: r.payload.into_bytes(),
            })
            .collect())
    }

    async fn remove(&self, ids: &[i64]) -> Result<(), BoxError> {
        outbox::Entity::delete_many()
            .filter(outbox::Column::Id.is_in(ids.iter().copied()))
            .exec(&self.db)
            .await?;
        Ok(())
    }
}
