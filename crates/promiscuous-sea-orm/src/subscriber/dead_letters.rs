//! The dead-letter store ("message hospital"): messages a subscriber could not apply, with
//! their error. Inspect them, replay them once the cause is fixed (a schema, a callback, the
//! publisher), or drop them (`promiscuous dead-letters list | show | replay | drop`).

use promiscuous_core::subscriber::{Applied, Applier};
use promiscuous_core::{Message, Report, now_ms};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryOrder, Set,
};

use super::SeaOrmApplier;
use crate::tables::dead_letters;

/// A stored dead letter.
pub type DeadLetterRow = dead_letters::Model;

/// What went wrong with a dead-letter operation.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error("no dead letter with id {0}")]
    NotFound(i64),
    #[error("dead-letter store: {0}")]
    Db(#[from] DbErr),
}

/// What replaying a dead letter came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replayed {
    /// Applied (or skipped, if its versions were already applied): the dead letter is deleted.
    Applied(Applied),
    /// Still failing: the dead letter stays, with this new error and one more attempt.
    Failed(String),
}

/// A dead letter's payload for reading: pretty JSON if it is JSON, else the text, else its
/// bytes escaped.
pub fn readable_payload(bytes: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes)
        && let Ok(pretty) = serde_json::to_string_pretty(&value)
    {
        return pretty;
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(_) => bytes.escape_ascii().to_string(),
    }
}

/// Every dead letter, oldest first.
pub async fn list<C: ConnectionTrait>(db: &C) -> Result<Vec<DeadLetterRow>, DbErr> {
    dead_letters::Entity::find()
        .order_by_asc(dead_letters::Column::Id)
        .all(db)
        .await
}

/// How many dead letters there are.
pub async fn count<C: ConnectionTrait>(db: &C) -> Result<u64, DbErr> {
    dead_letters::Entity::find().count(db).await
}

/// The dead letter `id`.
pub async fn get<C: ConnectionTrait>(db: &C, id: i64) -> Result<DeadLetterRow, DeadLetterError> {
    dead_letters::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(DeadLetterError::NotFound(id))
}

/// Deletes the dead letter `id`.
pub async fn delete<C: ConnectionTrait>(db: &C, id: i64) -> Result<(), DeadLetterError> {
    let deleted = dead_letters::Entity::delete_by_id(id).exec(db).await?;
    if deleted.rows_affected == 0 {
        return Err(DeadLetterError::NotFound(id));
    }
    Ok(())
}

/// Deletes every dead letter; returns how many there were.
pub async fn delete_all<C: ConnectionTrait>(db: &C) -> Result<u64, DbErr> {
    Ok(dead_letters::Entity::delete_many()
        .exec(db)
        .await?
        .rows_affected)
}

impl SeaOrmApplier {
    /// Replays the dead letter `id`: decodes its payload, admits it from its owner with the
    /// routing key and `user_id` recorded with it, and applies it like a delivery (one
    /// transaction, versions claimed, callbacks run), without waiting for its dependencies.
    /// On success the dead letter is deleted; on failure it stays, with the new error.
    ///
    /// Dead-lettering recorded the message's versions as processed (`promiscuous_processed`,
    /// so that what depended on them went on), not as applied: each operation is applied
    /// unless a newer version of its instance was applied meanwhile.
    pub async fn replay_dead_letter(&self, id: i64) -> Result<Replayed, DeadLetterError> {
        let letter = get(self.db(), id).await?;
        // Admitted again as on delivery: a message refused for not coming from its owner
        // stays refused.
        let admitted = Message::decode(&letter.payload).and_then(|m| {
            promiscuous_core::subscriber::trust::admit(
                m,
                &letter.routing_key,
                letter.user_id.as_deref(),
                self.require_user_id,
            )
        });
        let outcome = match admitted {
            Err(e) => Err(e.to_string()),
            Ok(message) => self
                .apply(&message)
                .await
                .map_err(|e| format!("message {}: {}", message.id, Report(&e))),
        };
        match outcome {
            Ok(applied) => {
                delete(self.db(), id).await?;
                Ok(Replayed::Applied(applied))
            }
            Err(error) => {
                let attempts = letter.attempts.saturating_add(1);
                dead_letters::ActiveModel {
                    id: Set(letter.id),
                    error: Set(error.clone()),
                    attempts: Set(attempts),
                    at_ms: Set(now_ms()),
                    ..Default::default()
                }
                .update(self.db())
                .await?;
                Ok(Replayed::Failed(error))
            }
        }
    }

    /// Replays every dead letter, oldest first; returns each id with its outcome.
    pub async fn replay_dead_letters(&self) -> Result<Vec<(i64, Replayed)>, DeadLetterError> {
        let mut done = Vec::new();
        for letter in list(self.db()).await? {
            match self.replay_dead_letter(letter.id).await {
                Ok(outcome) => done.push((letter.id, outcome)),
                // Dropped by someone else meanwhile: nothing to replay.
                Err(DeadLetterError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }
}
