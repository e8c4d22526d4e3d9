//! The operations dashboard of promiscuous: an axum [`Router`] a service mounts (for example
//! under `/promiscuous`), or that `promiscuous dashboard --listen 127.0.0.1:PORT` serves alone.
//!
//! Pages (server-rendered with maud, updated live over Server-Sent Events, assets embedded):
//! - `/`: each subscriber app's lag (seconds and messages), applied per second, waiting, in
//!   flight, dead letters; each publisher's outbox backlog, age of its oldest row and relayed
//!   per second; a throughput graph of the last five minutes;
//! - `/dead-letters`: error, attempts, payload; replay or drop one or all (POST, with a CSRF
//!   token; refused in read-only mode);
//! - `/waiting`: the messages the synchronizers hold, with the dependencies each waits for;
//! - `/workers`: every relay and subscriber worker (host, pid, runners, prefetch, heartbeat,
//!   last error), and which relay holds the lease.
//!
//! Also `GET /metrics` (Prometheus text format: the recorder given to
//! [`Dashboard::prometheus`], plus gauges read off the board) and, with a
//! [`Feed`], `GET /stream?endpoint=app/model`: the
//! operations a subscriber applied, as Server-Sent Events, each after its transaction
//! committed, resumable with `Last-Event-ID`.
//!
//! Where the data comes from: the workers' reports on a [`Board`] (a shared `RedisBoard`, so
//! the dashboard may run in any process; else this process's board, and the pages say that
//! they show only this process), and the subscribers' dead-letter stores given to
//! [`Dashboard::dead_letters`].
//!
//! Access: actions (replay, drop) need the token given to [`Dashboard::token`], entered once on
//! the page (a session cookie, `HttpOnly`, `SameSite=Strict`) or sent as `Authorization:
//! Bearer`; without a token the dashboard is read-only. No page shows a secret: errors are shown
//! as workers report them, with URLs' passwords redacted.
//!
//! Layers: `routes` (HTTP) → `pages` (HTML) → `view` (what a page shows, gathered from the
//! sources) → the leaves `history` (throughput samples), `access` (sessions, CSRF).

mod access;
mod history;
mod pages;
mod routes;
mod stream;
mod view;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use promiscuous_core::board::{self, Board};
use promiscuous_core::subscriber::Feed;
use promiscuous_sea_orm::subscriber::SeaOrmApplier;
use view::Settings;

pub use metrics_exporter_prometheus;

/// What the dashboard shows and how it may act; [`router`](Self::router) makes the routes.
#[derive(Clone)]
pub struct Dashboard {
    settings: Settings,
}

impl Default for Dashboard {
    fn default() -> Self {
        Self::new()
    }
}

impl Dashboard {
    /// A read-only dashboard over this process's board.
    pub fn new() -> Self {
        Self {
            settings: Settings {
                board: board::local(),
                dead_letters: BTreeMap::new(),
                token: None,
                prometheus: None,
                feed: None,
                title: "promiscuous".to_string(),
            },
        }
    }

    /// Reads the workers' reports from `board` (a `RedisBoard` the workers write to) instead
    /// of this process's.
    pub fn board(mut self, board: Arc<dyn Board>) -> Self {
        self.settings.board = board;
        self
    }

    /// The dead letters of subscriber app `app`, stored in its database: listed, replayed
    /// with `applier` (which follows the app's models) and dropped.
    pub fn dead_letters(mut self, app: impl Into<String>, applier: SeaOrmApplier) -> Self {
        self.settings.dead_letters.insert(app.into(), applier);
        self
    }

    /// Allows actions to whoever has `token`. An empty token is the same as none: read-only.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        let token = token.into();
        self.settings.token = (!token.is_empty()).then_some(token);
        self
    }

    /// Serves this recorder's metrics at `/metrics` (see [`install_prometheus`]).
    pub fn prometheus(mut self, handle: PrometheusHandle) -> Self {
        self.settings.prometheus = Some(handle);
        self
    }

    /// Serves `feed` at `/stream` (the operations a subscriber given the same feed applies).
    pub fn feed(mut self, feed: Arc<Feed>) -> Self {
        self.settings.feed = Some(feed);
        self
    }

    /// The name in the page titles (`"promiscuous"` by default), e.g. the service's.
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.settings.title = title.into();
        self
    }

    /// The routes, to mount where the service wants them (`Router::nest("/promiscuous", …)`);
    /// links follow the mount point. Call it inside a Tokio runtime: it starts the task that
    /// samples throughput every second (stopped when the last clone of the router is dropped).
    pub fn router(self) -> Router {
        routes::router(view::Sources::new(self.settings))
    }

    /// The routes mounted at `path` (`"/promiscuous"`), to merge into the service's router:
    /// `app.merge(dashboard.mount("/promiscuous"))`. Unlike a bare `Router::nest`, `path/`
    /// (with a trailing slash) is redirected to `path`, where the overview is.
    pub fn mount(self, path: &str) -> Router {
        let path = format!("/{}", path.trim_matches('/'));
        if path == "/" {
            return self.router();
        }
        let to = path.clone();
        Router::new()
            .route(
                &format!("{path}/"),
                axum::routing::get(move || async move { axum::response::Redirect::permanent(&to) }),
            )
            .nest(&path, self.router())
    }

    /// Serves the dashboard alone on `listener` until `shutdown` resolves.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }
}

/// Installs a Prometheus recorder as the global `metrics` recorder and returns its handle, for
/// [`Dashboard::prometheus`]. Fails if another recorder is installed already (then give that
/// one's handle, if it is Prometheus').
pub fn install_prometheus() -> Result<PrometheusHandle, metrics_exporter_prometheus::BuildError> {
    metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()
}
