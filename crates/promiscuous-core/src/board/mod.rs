//! The board: what the running relays and subscriber workers say about themselves, for an
//! operator's dashboard in this process or in another one.
//!
//! Every running worker (a [`Relay`](crate::publisher::Relay) in `run`, a
//! [`SubscriberRuntime`](crate::subscriber::SubscriberRuntime) in `run`) writes a [`Report`]
//! every [`BEAT_INTERVAL`]: who it is (app, host, pid, settings), its counters, its last error
//! and, for a subscriber, the messages its synchronizer holds with what each waits for. Reports
//! go to this process's board ([`local`]) and, when the worker is given one, to a shared
//! [`Board`] that other processes read (Redis: [`RedisBoard`](crate::redis::RedisBoard)).
//!
//! A report lives [`REPORT_TTL`] after its last beat: a worker that stops beating (killed, cut
//! off) disappears from the board by itself; one that stops cleanly removes its report. Nothing
//! is written per message: a beat reads counters the worker keeps anyway, so the cost is one
//! write per worker per second whatever the traffic.
//!
//! A leaf below the publisher and the subscriber: it knows neither.

mod local;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Error;

pub use local::{LocalBoard, local};

/// How often a worker writes its report.
pub const BEAT_INTERVAL: Duration = Duration::from_secs(1);
/// How long a report stays on a board after its last beat.
pub const REPORT_TTL: Duration = Duration::from_secs(5);
/// At most this many waiting messages are listed in a subscriber's report (the count is exact).
pub const MAX_WAITING_LISTED: usize = 100;

/// Where workers' reports are kept: this process's memory ([`LocalBoard`]) or a store that
/// several processes share (Redis).
#[async_trait]
pub trait Board: Send + Sync + 'static {
    /// Writes (or replaces) a worker's report; it expires [`REPORT_TTL`] later.
    async fn put(&self, report: &Report) -> Result<(), Error>;
    /// Removes a worker's report (it stopped).
    async fn remove(&self, id: &str) -> Result<(), Error>;
    /// The reports that have not expired, in no particular order.
    async fn reports(&self) -> Result<Vec<Report>, Error>;
    /// Where the board is, for people: `"this process"`, `"Redis at redis://host:6379/"`.
    fn describe(&self) -> String;
    /// Whether other processes' workers can write here (a dashboard over a board that is not
    /// shared says it sees only its own process).
    fn shared(&self) -> bool;
}

/// What one worker says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Unique among running workers: `"{role}:{app}:{host}:{pid}:{n}"`.
    pub id: String,
    /// The subscriber app (its queue), or the publisher app(s) of a relay.
    pub app: String,
    pub host: String,
    pub pid: u32,
    /// When the worker started (Unix milliseconds).
    pub started_ms: i64,
    /// When this report was written (Unix milliseconds).
    pub heartbeat_ms: i64,
    /// The worker's last error, if it had one: when, and the whole chain of causes (secrets
    /// redacted, as in every error's text).
    pub last_error: Option<LastError>,
    pub worker: Worker,
}

/// The last error of a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastError {
    pub at_ms: i64,
    pub error: String,
}

/// What kind of worker it is, with what only that kind has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Worker {
    Subscriber(SubscriberReport),
    Relay(RelayReport),
}

/// A subscriber worker's settings, counters and waiting room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriberReport {
    /// Runners applying messages concurrently.
    pub runners: usize,
    pub prefetch: u16,
    /// Whether it consumes now (the last attempt succeeded and has not failed since).
    pub connected: bool,
    /// Messages processed to the end (applied, skipped or ignored) since it started.
    pub messages: u64,
    pub operations_applied: u64,
    pub dead_lettered: u64,
    pub recovered: u64,
    /// Messages the synchronizer holds now for a dependency.
    pub waiting_count: u64,
    /// Deliveries received and not acknowledged now.
    pub in_flight: u64,
    /// Messages ready in the queue on the broker, as last asked.
    pub queue_depth: Option<u64>,
    /// Commit-to-applied lag of the last message processed, in milliseconds.
    pub lag_ms: Option<u64>,
    /// The messages held (at most [`MAX_WAITING_LISTED`], longest waiting first).
    pub waiting: Vec<Waiting>,
}

/// A message the synchronizer holds, and why: the answer to "why is this not applied yet".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Waiting {
    pub message_id: String,
    /// The publisher app it came from.
    pub routing_key: String,
    /// How long it has waited, in milliseconds.
    pub waited_ms: u64,
    /// Dependencies not processed yet: the instance, the version needed, the version this
    /// worker knows was processed (`None`: not known yet, being looked up).
    pub needs: Vec<Need>,
    /// Instances it writes that another message is being applied to now: it runs after it.
    pub behind_writers: Vec<String>,
    /// Past its dependency timeout: it no longer waits for versions (recovery), only for
    /// concurrent writers.
    pub recovering: bool,
}

/// One dependency a waiting message needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Need {
    pub key: String,
    pub version: u64,
    pub have: Option<u64>,
}

/// A relay's settings and counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelayReport {
    pub batch_size: usize,
    /// Whether the last batch went through.
    pub healthy: bool,
    /// Rows published (confirmed by the broker) since it started.
    pub relayed: u64,
    /// With a lease (several relays on one outbox): whether this one holds it. `None`: no
    /// lease, it always publishes.
    pub holds_lease: Option<bool>,
    /// The outbox's messages waiting to be published, as of this beat (`None`: the outbox
    /// cannot tell, or could not be read).
    pub backlog: Option<Backlog>,
}

/// What waits in an outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backlog {
    /// Messages (one per transaction) not published yet.
    pub messages: u64,
    /// When the oldest of them was written (Unix milliseconds); `None` if there is none.
    pub oldest_ms: Option<i64>,
}

impl Report {
    /// A new report of worker `id` of `app`, on this host and process, stamped now.
    pub fn new(id: String, app: &str, started_ms: i64, worker: Worker) -> Self {
        Self {
            id,
            app: app.to_string(),
            host: host(),
            pid: std::process::id(),
            started_ms,
            heartbeat_ms: crate::now_ms(),
            last_error: None,
            worker,
        }
    }

    /// Whether it is older than [`REPORT_TTL`] at `now_ms`.
    pub fn expired(&self, now_ms: i64) -> bool {
        now_ms.saturating_sub(self.heartbeat_ms) > REPORT_TTL.as_millis() as i64
    }
}

/// This machine's host name.
pub fn host() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// A new worker id, unique in this process and, with the host and pid in it, among processes.
pub fn worker_id(role: &str, app: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{role}:{app}:{}:{}:{n}", host(), std::process::id())
}

/// A worker's last error, kept as it is reported (the worker's error notifier is called as
/// before).
#[derive(Default)]
pub struct ErrorSlot(std::sync::Mutex<Option<LastError>>);

impl ErrorSlot {
    pub fn record(&self, e: &Error) {
        let last = LastError {
            at_ms: crate::now_ms(),
            error: e.report().to_string(),
        };
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(last);
    }

    pub fn get(&self) -> Option<LastError> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

type ReportFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Report> + Send>>;

/// A worker's heartbeat: writes `report()` every [`BEAT_INTERVAL`] to the local board and to
/// `shared`, until [`stop`](Self::stop) (which removes the report) or drop (the local report is
/// removed; a shared one expires).
pub struct Heartbeat {
    id: String,
    shared: Option<Arc<dyn Board>>,
    task: tokio::task::JoinHandle<()>,
}

impl Heartbeat {
    /// Starts beating at once. `report` makes the worker's current report (its id must be
    /// `id`). Failures to write a shared board are logged at debug level and retried at the
    /// next beat: a dashboard must never disturb replication.
    pub fn start(
        id: String,
        shared: Option<Arc<dyn Board>>,
        report: impl Fn() -> ReportFuture + Send + Sync + 'static,
    ) -> Self {
        let task = tokio::spawn({
            let shared = shared.clone();
            async move {
                let mut tick = tokio::time::interval(BEAT_INTERVAL);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let report = report().await;
                    local().insert(report.clone());
                    if let Some(board) = &shared
                        && let Err(e) = board.put(&report).await
                    {
                        tracing::debug!(error = %e.report(), board = %board.describe(),
                            "promiscuous: heartbeat not written");
                    }
                }
            }
        });
        Self { id, shared, task }
    }

    /// Stops beating and removes the report from the boards.
    pub async fn stop(self) {
        self.task.abort();
        local().delete(&self.id);
        if let Some(board) = &self.shared {
            let removed = tokio::time::timeout(Duration::from_secs(1), board.remove(&self.id));
            if let Ok(Err(e)) = removed.await {
                tracing::debug!(error = %e.report(), "promiscuous: report not removed");
            }
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
        local().delete(&self.id);
    }
}
