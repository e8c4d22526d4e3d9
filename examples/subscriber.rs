//! The subscriber service of the two-process example, over RabbitMQ and Redis: keeps
//! `members` in sync with the publisher's `users` until Ctrl-C.
//!
//! ```text
//! scripts/services.sh up && eval "$(scripts/services.sh env)"
//! cargo run --example subscriber -- --listen 127.0.0.1:3000
//! ```
//! With `--listen`, it serves a page of its members that updates live as they are applied
//! (`/`, fed by the dashboard's Server-Sent Events stream) and the operations dashboard under
//! `/promiscuous/` (actions with `--token` or `PROMISCUOUS_DASHBOARD_TOKEN`). Its worker
//! reports to the board in Redis, so the publisher's relay shows there too.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
// `promiscuous::dashboard` with the facade's `dashboard` feature; the crate itself here, so
// that the example builds without features.
use promiscuous::redis::RedisBoard;
use promiscuous::{BoxError, Feed, OrderingMode, RedisVersions, Subscriber};
use promiscuous_dashboard::Dashboard;

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
    /// Serve the live page (`/`) and the dashboard (`/promiscuous/`) here.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// The dashboard's token, which allows replaying and dropping dead letters.
    #[arg(long, env = "PROMISCUOUS_DASHBOARD_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let db = shared::open(&args.db, member::Entity).await?;
    let transport = args.servers.rabbit();
    let redis = args.servers.redis()?;
    let feed = Feed::new(1000);
    let metrics = promiscuous_dashboard::install_prometheus()?;
    let subscriber = Subscriber::new(args.app.clone(), db.clone(), transport)
        .subscribe::<member::Model>()
        .prefetch(args.prefetch)
        .workers(args.workers)
        .dependency_timeout(Duration::try_from_secs_f64(args.dependency_timeout)?)
        .ordering(if args.bareback {
            OrderingMode::Bareback
        } else {
            OrderingMode::Causal
        })
        .versions(Arc::new(RedisVersions::new(redis.clone(), &args.app)))
        .board(Arc::new(RedisBoard::new(redis.clone())))
        .feed(feed.clone())
        .require_user_id(args.require_user_id)
        .start()
        .await?;
    println!("subscriber {} consuming; Ctrl-C to stop", args.app);
    if let Some(addr) = args.listen {
        let dashboard = Dashboard::new()
            .title(format!("{} (example)", args.app))
            .board(Arc::new(RedisBoard::new(redis)))
            .dead_letters(args.app.clone(), subscriber.service().applier().clone())
            .feed(feed.clone())
            .prometheus(metrics)
            .token(args.token.clone().unwrap_or_default());
        let app = axum::Router::new()
            .route("/", axum::routing::get(live::page))
            .with_state(live::State { db, feed })
            .merge(dashboard.mount("/promiscuous"));
        let listener = tokio::net::TcpListener::bind(addr).await?;
        println!(
            "live page on http://{}/ , dashboard on http://{0}/promiscuous/",
            listener.local_addr()?
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
    tokio::signal::ctrl_c().await?;
    let stats = subscriber.shutdown().await?;
    println!("stopped: {stats:?}");
    Ok(())
}

/// The live page: the members as the database has them, then every operation applied, from
/// the dashboard's stream (`/promiscuous/stream`), resumed from the feed's last event before
/// the page read the database, so nothing committed meanwhile is missed.
mod live {
    use std::sync::Arc;

    use axum::extract::State as Extract;
    use maud::{DOCTYPE, Markup, PreEscaped, html};
    use promiscuous::Feed;
    use sea_orm::{DatabaseConnection, EntityTrait};

    use super::member;

    #[derive(Clone)]
    pub struct State {
        pub db: DatabaseConnection,
        pub feed: Arc<Feed>,
    }

    const SCRIPT: &str = r#"
const list = document.getElementById("members");
const stream = new EventSource(list.dataset.stream);
stream.addEventListener("reset", () => location.reload());
stream.addEventListener("operation", (e) => {
  const op = JSON.parse(e.data);
  let item = document.querySelector(`[data-crowdtap-id="${op.instance}"]`);
  if (op.operation === "destroy") { if (item) item.remove(); return; }
  if (!item) {
    item = document.createElement("li");
    item.dataset.crowdtapId = op.instance;
    list.appendChild(item);
  }
  item.textContent = `${op.attributes.name} <${op.attributes.email}>`;
  document.getElementById("last").textContent = `${op.operation} of user ${op.instance} (version ${op.version})`;
});
"#;

    pub async fn page(Extract(state): Extract<State>) -> Result<Markup, String> {
        // Read before the database: what commits after is in the stream from here on.
        let after = state.feed.last_id();
        let members = member::Entity::find()
            .all(&state.db)
            .await
            .map_err(|e| e.to_string())?;
        Ok(html! {
            (DOCTYPE)
            html lang="en" {
                head { meta charset="utf-8"; title { "Members (live)" } }
                body style="font: 15px system-ui, sans-serif; margin: 2rem" {
                    h1 { "Members" }
                    p { "Kept in sync from crowdtap's users; this list follows every change live. "
                        a href="/promiscuous/" { "Dashboard" } }
                    p { "Last change: " span #last { "none yet" } }
                    ul #members data-stream=(format!("/promiscuous/stream?endpoint=crowdtap/user&after={after}")) {
                        @for m in &members {
                            li data-crowdtap-id=(m.crowdtap_id) { (m.name) " <" (m.email) ">" }
                        }
                    }
                    script { (PreEscaped(SCRIPT)) }
                }
            }
        })
    }
}
