//! The publisher service of the two-process example, over RabbitMQ and Redis.
//!
//! ```text
//! scripts/services.sh up && eval "$(scripts/services.sh env)"
//! cargo run --example subscriber &        # in another terminal
//! cargo run --example publisher -- --writes 100
//! ```
//! Writes users (creates, then renames) in a SQLite file, each in a transaction; the relay
//! publishes them. `--no-relay` only commits (the outbox keeps the rows until a relay runs).

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use promiscuous::{BoxError, Publisher, RedisLease};
use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, Set, TransactionTrait};

mod shared;
use shared::user;

#[derive(Parser)]
struct Args {
    /// The publisher's database.
    #[arg(long, default_value = "sqlite://publisher.db?mode=rwc")]
    db: String,
    #[command(flatten)]
    servers: shared::Servers,
    /// How many writes to make.
    #[arg(long, default_value_t = 10)]
    writes: u32,
    /// Pause between writes, in milliseconds.
    #[arg(long, default_value_t = 0)]
    interval_ms: u64,
    /// Commit only; do not start the relay.
    #[arg(long)]
    no_relay: bool,
    /// Stay alive after the writes (until killed).
    #[arg(long)]
    linger: bool,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let db = shared::open(&args.db, user::Entity).await?;
    promiscuous::pipeline::schema::setup_publisher(&db).await?;
    let transport = args.servers.rabbit();
    let publisher = if args.no_relay {
        None
    } else {
        let redis = args.servers.redis()?;
        let lease = RedisLease::new(
            redis.clone(),
            &format!("{}:{}", args.servers.exchange, args.db),
            Duration::from_secs(10),
        );
        Some(
            Publisher::new(db.clone(), transport)
                .lease(Arc::new(lease))
                .board(Arc::new(promiscuous::redis::RedisBoard::new(redis.clone())))
                .start()
                .await?,
        )
    };

    for i in 0..args.writes {
        let txn = db.begin().await?;
        let users = user::Entity::find().all(&txn).await?;
        if i % 3 == 2 && !users.is_empty() {
            let u = users[i as usize % users.len()].clone();
            let mut am = u.into_active_model();
            am.name = Set(format!("user {i} (renamed)"));
            am.update(&txn).await?;
        } else {
            user::ActiveModel {
                name: Set(format!("user {i}")),
                email: Set(format!("user{i}@example.org")),
                ..Default::default()
            }
            .insert(&txn)
            .await?;
        }
        txn.commit().await?;
        println!("committed {}", i + 1);
        if args.interval_ms > 0 {
            tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
        }
    }
    if args.linger {
        std::future::pending::<()>().await;
    }
    if let Some(publisher) = publisher {
        publisher.shutdown().await?;
        println!("published everything");
    }
    Ok(())
}
