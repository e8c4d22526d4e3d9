//! `subscribe`: consume the subscriber's queue until SIGINT or SIGTERM, then finish the
//! messages in flight and stop.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use promiscuous_core::redis::{RedisBoard, RedisVersions};
use promiscuous_core::subscriber::OrderingMode;
use promiscuous_sea_orm::Subscriber;

use crate::env::{Env, Out};
use crate::error::CliError;

/// Without `--recovery`, a message waits this long for a dependency (the library's default).
const DEFAULT_RECOVERY_SECS: f64 = 10.0;

#[derive(clap::Args, Debug)]
pub(crate) struct SubscribeArgs {
    /// Deliveries in flight, unacknowledged (messages waiting for a dependency count).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u16).range(1..))]
    prefetch: u16,
    /// Partition queues (RabbitMQ): 1 for one queue named after the app; P > 1 for queues
    /// app.0 … app.{P-1} behind a consistent-hash exchange, each with a single active consumer
    /// (README, "Partitioned queues"). Every worker of the app must pass the same value.
    #[arg(
        long,
        env = "PROMISCUOUS_PARTITIONS",
        default_value_t = 1,
        value_parser = clap::value_parser!(u16).range(1..=256)
    )]
    partitions: u16,
    /// Runners applying independent messages concurrently.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1024))]
    workers: u64,
    /// Recovery: seconds a message waits for a missing dependency before it is applied
    /// without it (reported as a recover error). `--recovery` alone: 1 s; without the flag:
    /// 10 s.
    #[arg(
        long,
        value_name = "SECS",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "1"
    )]
    recovery: Option<f64>,
    /// No ordering at all: apply every message as soon as a runner is free. Unsafe: a
    /// message may be applied before what it depends on.
    #[arg(long)]
    bareback: bool,
    /// Admit a message only if its broker-validated publisher user (AMQP user_id) is its app:
    /// for brokers with one user per app (README, "Security"). Refused messages are
    /// dead-lettered.
    #[arg(long)]
    require_user_id: bool,
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM. The handlers are installed now, so a
/// signal that arrives before the future is polled is not lost.
pub(crate) fn signals() -> Result<impl Future<Output = ()> + Send + 'static, CliError> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let install = |kind: SignalKind, name: &str| {
            signal(kind).map_err(|e| {
                CliError::failed(format!("installing the {name} handler (shutdown): {e}"))
            })
        };
        let mut interrupt = install(SignalKind::interrupt(), "SIGINT")?;
        let mut terminate = install(SignalKind::terminate(), "SIGTERM")?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

fn recovery(secs: Option<f64>) -> Result<Duration, CliError> {
    let secs = secs.unwrap_or(DEFAULT_RECOVERY_SECS);
    Duration::try_from_secs_f64(secs).map_err(|e| {
        CliError::failed(format!(
            "--recovery={secs}: a number of seconds, 0 or more, is needed ({e})"
        ))
    })
}

pub(crate) async fn run(
    env: &Env<'_>,
    args: &SubscribeArgs,
    out: &mut Out,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), CliError> {
    let app = env.app().to_string();
    if env.followers().is_empty() {
        return Err(CliError::failed(format!(
            "subscriber {app} follows nothing: register models with \
             Cli::subscribe::<Model>() (or observers with Cli::observe::<Observer>())"
        )));
    }
    let dependency_timeout = recovery(args.recovery)?;
    let Some((transport, broker)) = env.broker() else {
        return Err(CliError::failed(
            "subscribe needs a broker: pass --amqp-url or set PROMISCUOUS_AMQP_URL (an \
             in-process broker only reaches subscribers inside the publishing process)",
        ));
    };
    let db = env.database().await?;
    let ordering = if args.bareback {
        OrderingMode::Bareback
    } else {
        OrderingMode::Causal
    };
    let mut subscriber = Subscriber::with_transport(app.clone(), db, transport)
        .prefetch(args.prefetch)
        .partitions(args.partitions)
        .workers(args.workers as usize)
        .ordering(ordering)
        .dependency_timeout(dependency_timeout)
        .require_user_id(args.require_user_id)
        .error_notifier(Arc::new(|e| eprintln!("promiscuous: {}", e.report())));
    for follower in env.followers() {
        subscriber = (follower.service)(subscriber);
    }
    let mut shared = "none";
    if let Some(url) = &env.connections.redis_url {
        let redis = env.redis(url)?;
        subscriber = subscriber
            .versions(Arc::new(RedisVersions::new(redis.clone(), &app)))
            .board(Arc::new(RedisBoard::new(redis)));
        shared = "Redis (and the dashboard's board)";
    }
    let service = subscriber.build().await.map_err(|e| {
        CliError::failed(format!(
            "starting subscriber {app} on {broker}: {}",
            e.report()
        ))
    })?;
    let running = service.start();
    let queues = match args.partitions {
        1 => format!("queue {app}"),
        p => format!("{p} partition queues {app}.0..{app}.{}", p - 1),
    };
    out.line(format!(
        "subscriber {app} consuming {queues} on {broker} (prefetch {}, workers {}, {}, \
         recovery after {:?}, shared versions: {shared}); SIGINT or SIGTERM stops it",
        args.prefetch,
        args.workers,
        if args.bareback {
            "bareback: no ordering"
        } else {
            "causal order"
        },
        dependency_timeout,
    ));
    shutdown.await;
    out.line("stopping: finishing the messages in flight");
    let stats = running
        .shutdown()
        .await
        .map_err(|e| CliError::failed(format!("stopping subscriber {app}: {}", e.report())))?;
    out.line(format!(
        "stopped: {} messages ({} operations applied, {} skipped, {} ignored), {} dead-lettered, \
         {} waited for a dependency, {} recovered",
        stats.messages,
        stats.operations_applied,
        stats.operations_skipped,
        stats.operations_ignored,
        stats.dead_lettered,
        stats.waited,
        stats.recovered
    ));
    Ok(())
}
