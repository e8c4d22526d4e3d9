//! Subscriber side: what `#[subscribe]` generates ([`Subscribed`]), the user's [`Callbacks`],
//! and the [`SeaOrmApplier`] that applies messages to the subscriber's database.

mod applier;
mod attributes;
mod callbacks;

pub use applier::SeaOrmApplier;
pub use attributes::{AttributeError, attribute, publisher_id};
pub use callbacks::{Callbacks, Ctx};

use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, EntityTrait, FromQueryResult, IntoActiveModel,
    ModelTrait, Select,
};
use serde_json::{Map, Value};

/// A SeaORM model kept in sync from a publisher's endpoint. Implemented by `#[subscribe(...)]`.
pub trait Subscribed:
    ModelTrait<Entity = Self::Table>
    + IntoActiveModel<Self::Active>
    + FromQueryResult
    + Callbacks
    + Clone
    + Send
    + Sync
    + 'static
{
    type Table: EntityTrait<Model = Self>;
    type Active: ActiveModelTrait<Entity = Self::Table> + ActiveModelBehavior + Send + Sync;
    /// The endpoint it follows: `"app/model"`.
    const FROM: &'static str;
    /// Subscribed attribute names.
    const ATTRIBUTES: &'static [&'static str];
    /// The local row(s) replicating the publisher's instance `id`.
    fn find_by_publisher_id(id: &Value) -> Result<Select<Self::Table>, AttributeError>;
    /// A new local row for the publisher's instance `id`.
    fn new_active_model(
        id: &Value,
        attributes: &Map<String, Value>,
    ) -> Result<Self::Active, AttributeError>;
    /// Copies subscribed attributes into an existing row (unchanged values stay unchanged).
    fn apply_attributes(
        active: &mut Self::Active,
        attributes: &Map<String, Value>,
    ) -> Result<(), AttributeError>;
}
