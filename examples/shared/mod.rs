//! Models of the two-process example (`publisher` and `subscriber`), as two services would
//! each define their own.
#![allow(dead_code)]

use promiscuous::{BoxError, Callbacks, Ctx};

/// The publisher service's model.
pub mod user {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "users")]
    #[promiscuous::publish(name, email, to = "crowdtap/user")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub name: String,
        pub email: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
}

/// The subscriber service's model.
pub mod member {
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
        for (attribute, change) in ctx.changes() {
            println!(
                "{}: {attribute} {} -> {}",
                self.name, change.before, change.after
            );
        }
        Ok(())
    }

    async fn after_destroy(&self, _ctx: &Ctx<'_>) -> Result<(), BoxError> {
        println!("Bye {}!", self.name);
        Ok(())
    }
}

/// Where the servers are (flags or `scripts/services.sh env`).
#[derive(clap::Args)]
pub struct Servers {
    #[arg(
        long,
        env = "PROMISCUOUS_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp: String,
    #[arg(
        long,
        env = "PROMISCUOUS_REDIS_URL",
        default_value = "redis://127.0.0.1:6379/"
    )]
    pub redis: String,
    /// The RabbitMQ exchange.
    #[arg(long, default_value = "promiscuous")]
    pub exchange: String,
}

impl Servers {
    pub fn rabbit(&self) -> promiscuous::transport::RabbitMq {
        let config = promiscuous::transport::RabbitMqConfig {
            exchange: self.exchange.clone(),
            ..Default::default()
        };
        promiscuous::transport::RabbitMq::new(self.amqp.clone(), config)
    }

    pub fn redis(&self) -> Result<promiscuous::Redis, promiscuous::Error> {
        promiscuous::Redis::new(&self.redis, promiscuous::RedisConfig::default())
    }
}

/// Opens (creating if needed) a SQLite database file and the table of `entity`.
pub async fn open<E: sea_orm::EntityTrait>(
    url: &str,
    entity: E,
) -> Result<sea_orm::DatabaseConnection, BoxError> {
    use sea_orm::{ConnectionTrait, Schema};
    let db = sea_orm::Database::connect(url).await?;
    let schema = Schema::new(db.get_database_backend());
    let mut table = schema.create_table_from_entity(entity);
    table.if_not_exists();
    db.execute(&table).await?;
    Ok(db)
}
