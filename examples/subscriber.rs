//! The subscriber service of the two-process example, over RabbitMQ and Redis: keeps
//! `members` in sync with the publisher's `users` until Ctrl-C.
//!
//! ```text
//! scripts/services.sh up && eval "$(scripts/services.sh env)"
//! cargo run --example subscriber
//! ```

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use promiscuous::{BoxError, OrderingMode, RedisVersions, Subscriber};

mod shared;
use shared::member;

#[derive(Parser)]
struct Args {
    /// The subscriber's database.
    #[arg(long, default_value = "sqlite://subscriber.db?mode=rwc")]
    db: String,
    #[command(flatten)]
    servers: shared::Servers,
    /// The subscriber application's name (its queue).
    #[arg(long, default_value = "crowdtap_members")]
    app: String,
    /// Deliveries in flight (messages waiting for a dependency count).
    #[arg(long, default_value_t = 1000)]
    prefetch: u16,
    /// Runners applying independent messages concurrently.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Recovery: seconds a message waits for a dependency before it is applied without it.
    #[arg(long, default_value_t = 10.0)]
    dependency_timeout: f64,
    /// No ordering at all (unsafe: a message may be applied before what it depends on).
    #[arg(long)]
    bareback: bool,
    /// Admit only messages published by the broker user of their app (per-app users, see
    /// README "Security"; scripts/services.sh creates `crowdtap` and `crowdtap_members`).
    #[arg(long)]
    require_user_id: bool,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let db = shared::open(&args.db, member::Entity).await?;
    let transport = args.servers.rabbit();
    let redis = args.servers.redis()?;
    let subscriber = Subscriber::new(args.app.clone(), db, transport)
        .subscribe::<member::Model>()
        .prefetch(args.prefetch)
        .workers(args.workers)
        .dependency_timeout(Duration::try_from_secs_f64(args.dependency_timeout)?)
        .ordering(if args.bareback {
            OrderingMode::Bareback
        } else {
            OrderingMode::Causal
        })
        .versions(Arc::new(RedisVersions::new(redis, &args.app)))
        .require_user_id(args.require_user_id)
        .start()
        .await?;
    println!("subscriber {} consuming; Ctrl-C to stop", args.app);
    tokio::signal::ctrl_c().await?;
    let stats = subscriber.shutdown().await?;
    println!("stopped: {stats:?}");
    Ok(())
}
