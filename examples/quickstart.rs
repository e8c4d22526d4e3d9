//! Two services in one process, each with its own SQLite database, over the embedded
//! in-process broker: the publisher owns `users`, the subscriber keeps `members` in sync.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//! The same pipeline runs in production with the RabbitMQ transport instead of `InProcess`.

use std::time::Duration;

use promiscuous::{BoxError, Callbacks, Ctx, InProcess, Publisher, Subscriber};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, Database, DatabaseConnection, EntityTrait, IntoActiveModel,
    ModelTrait, Schema, Set, TransactionTrait,
};

/// The publisher service's model.
mod user {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "users")]
    #[promiscuous::publish(name, email, full_name, to = "crowdtap/user")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub name: String,
        pub email: String,
        /// Not published: never leaves this service.
        pub password: String,
    }

    impl Model {
        /// A virtual attribute: published like a field.
        pub fn full_name(&self) -> String {
            format!("{} <{}>", self.name, self.email)
        }
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    // `#[publish]` implements `ActiveModelBehavior` (its hooks write the outbox).
}

/// The subscriber service's model: its own table, its own primary key, the publisher's id in
/// `crowdtap_id`.
mod member {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "members")]
    #[promiscuous::subscribe(
        name,
        email,
        from = "crowdtap/user",
        foreign_key = "crowdtap_id",
        callbacks
    )]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        #[sea_orm(unique)]
        pub crowdtap_id: i32,
        pub name: String,
        pub email: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

impl Callbacks for member::Model {
    async fn after_create(&self, _ctx: &Ctx<'_>) -> Result<(), BoxError> {
        println!("Hi {}!", self.name);
        Ok(())
    }

    async fn after_update(&self, ctx: &Ctx<'_>) -> Result<(), BoxError> {
        if let Some(change) = ctx.changed("name") {
            println!("{} is now called {}", change.before, change.after);
        }
        Ok(())
    }

    async fn after_destroy(&self, _ctx: &Ctx<'_>) -> Result<(), BoxError> {
        println!("Bye {}!", self.name);
        Ok(())
    }
}

async fn sqlite_with<E: EntityTrait>(entity: E) -> Result<DatabaseConnection, BoxError> {
    // One connection per in-memory database: each service has its own database.
    let mut options = sea_orm::ConnectOptions::new("sqlite::memory:");
    options.max_connections(1);
    let db = Database::connect(options).await?;
    let schema = Schema::new(db.get_database_backend());
    db.execute(&schema.create_table_from_entity(entity)).await?;
    Ok(db)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let broker = InProcess::new();
    let wait = Duration::from_secs(10);

    // The subscriber service: declares its queue, then consumes in the background.
    let subscriber_db = sqlite_with(member::Entity).await?;
    let subscriber = Subscriber::new("crowdtap_members", subscriber_db.clone(), broker.clone())
        .subscribe::<member::Model>()
        .start()
        .await?;

    // The publisher service: its relay moves committed writes to the broker.
    let publisher_db = sqlite_with(user::Entity).await?;
    let publisher = Publisher::new(publisher_db.clone(), broker.clone())
        .start()
        .await?;

    // Create: the outbox row commits with the user, in one transaction.
    let txn = publisher_db.begin().await?;
    let yoda = user::ActiveModel {
        name: Set("Yoda".into()),
        email: Set("yoda@dagobah.org".into()),
        password: Set("do-or-do-not".into()),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    subscriber
        .wait_until(wait, |s| s.operations_applied >= 1)
        .await?;

    // Update.
    let txn = publisher_db.begin().await?;
    let mut renamed = yoda.into_active_model();
    renamed.name = Set("Master Yoda".into());
    let yoda = renamed.update(&txn).await?;
    txn.commit().await?;
    subscriber
        .wait_until(wait, |s| s.operations_applied >= 2)
        .await?;
    let member = member::Entity::find()
        .one(&subscriber_db)
        .await?
        .ok_or("member missing")?;
    println!("subscriber has {member:?}");
    assert_eq!(
        (member.crowdtap_id, member.name.as_str()),
        (yoda.id, "Master Yoda")
    );

    // Destroy.
    let txn = publisher_db.begin().await?;
    yoda.delete(&txn).await?;
    txn.commit().await?;
    subscriber
        .wait_until(wait, |s| s.operations_applied >= 3)
        .await?;
    assert!(member::Entity::find().one(&subscriber_db).await?.is_none());

    publisher.shutdown().await?;
    let stats = subscriber.shutdown().await?;
    println!(
        "replicated {} operations in {} messages, nothing dead-lettered: {}",
        stats.operations_applied,
        stats.messages,
        stats.dead_lettered == 0
    );
    Ok(())
}
