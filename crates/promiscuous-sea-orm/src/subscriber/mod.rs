//! Subscriber side: what `#[subscribe]` generates ([`Subscribed`]), the user's [`Callbacks`],
//! and the [`SeaOrmApplier`] that applies messages to the subscriber's database.

mod applier;
mod attributes;
mod callbacks;
mod claims;
pub mod dead_letters;
mod errors;
mod preload;

pub use applier::SeaOrmApplier;
pub use attributes::{AttributeError, attribute, publisher_id};
pub use callbacks::{Callbacks, Ctx};

use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, EntityTrait, FromQueryResult, IntoActiveModel,
    ModelTrait, Select,
};
use serde_json::{Map, Value};

/// One publisher endpoint (and type) a model or observer follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    /// The endpoint followed: `"app/model"`.
    pub from: &'static str,
    /// The type followed (`as`): an operation goes to the subscription of the first type of its
    /// chain that something here follows; a subscription without a type takes any type no
    /// other subscription of the endpoint takes.
    pub as_type: Option<&'static str>,
    /// Subscribed attribute names.
    pub attributes: &'static [&'static str],
}

/// A SeaORM model kept in sync from one or more publisher endpoints. Implemented by
/// `#[subscribe(...)]` (one [`Subscription`] per stacked attribute).
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
    /// What it follows: at least one subscription.
    const SUBSCRIPTIONS: &'static [Subscription];
    /// The local row(s) replicating the publisher's instance `id`, for `SUBSCRIPTIONS[subscription]`.
    fn find_by_publisher_id(
        subscription: usize,
        id: &Value,
    ) -> Result<Select<Self::Table>, AttributeError>;
    /// The local rows replicating any of the publisher's instances `ids`, for
    /// `SUBSCRIPTIONS[subscription]`, in one query (the applier reads the rows of a batch at
    /// once); `None` where the model cannot tell, and each is then found alone.
    fn find_by_publisher_ids(
        subscription: usize,
        ids: &[Value],
    ) -> Result<Option<Select<Self::Table>>, AttributeError> {
        let _ = (subscription, ids);
        Ok(None)
    }
    /// Whether `row` replicates the publisher's instance `id` (for
    /// `SUBSCRIPTIONS[subscription]`): which of the rows of
    /// [`Subscribed::find_by_publisher_ids`] is the instance's.
    fn replicates(subscription: usize, row: &Self, id: &Value) -> Result<bool, AttributeError> {
        let _ = (subscription, row, id);
        Ok(false)
    }
    /// A new local row for the publisher's instance `id`.
    fn new_active_model(
        subscription: usize,
        id: &Value,
        attributes: &Map<String, Value>,
    ) -> Result<Self::Active, AttributeError>;
    /// Copies subscribed attributes into an existing row (unchanged values stay unchanged).
    fn apply_attributes(
        subscription: usize,
        active: &mut Self::Active,
        attributes: &Map<String, Value>,
    ) -> Result<(), AttributeError>;
}

/// A plain struct built from each operation of the endpoints it follows, never stored: only its
/// callbacks run. Implemented by `#[observer(...)]`.
pub trait Observed: Callbacks + Sized + Send + Sync + 'static {
    /// What it follows: at least one subscription.
    const SUBSCRIPTIONS: &'static [Subscription];
    /// The observer of a create or update: the id and the subscribed attributes.
    fn from_operation(
        subscription: usize,
        id: &Value,
        attributes: &Map<String, Value>,
    ) -> Result<Self, AttributeError>;
    /// The observer of a destroy: the id, every other field at its default.
    fn destroyed(subscription: usize, id: &Value) -> Result<Self, AttributeError>;
}
