//! What the pages show, gathered from the sources: the board's reports (grouped per app), the
//! dead-letter stores and the throughput history. Below the pages, above the leaves.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};

use metrics_exporter_prometheus::PrometheusHandle;
use promiscuous_core::board::{BEAT_INTERVAL, Board, Report, Worker};
use promiscuous_core::now_ms;
use promiscuous_core::subscriber::Feed;
use promiscuous_sea_orm::subscriber::SeaOrmApplier;
use promiscuous_sea_orm::subscriber::dead_letters::{self, DeadLetterRow};

use crate::access::Access;
use crate::history::{History, Point, Series};

/// What a dashboard is given (see [`Dashboard`](crate::Dashboard), which builds it).
#[derive(Clone)]
pub struct Settings {
    pub board: Arc<dyn Board>,
    pub dead_letters: BTreeMap<String, SeaOrmApplier>,
    pub token: Option<String>,
    pub prometheus: Option<PrometheusHandle>,
    pub feed: Option<Arc<Feed>>,
    pub title: String,
}

/// What the routes work with: the dashboard's settings, its sessions and its history.
pub struct Sources {
    pub board: Arc<dyn Board>,
    pub dead_letters: BTreeMap<String, SeaOrmApplier>,
    pub access: Access,
    pub prometheus: Option<PrometheusHandle>,
    pub feed: Option<Arc<Feed>>,
    pub title: String,
    history: Mutex<History>,
}

impl Sources {
    /// The sources of a dashboard's settings, with its sampler started (it ends with the last
    /// `Arc`).
    pub fn new(settings: Settings) -> Arc<Self> {
        let sources = Arc::new(Self {
            board: settings.board,
            dead_letters: settings.dead_letters,
            access: Access::new(settings.token),
            prometheus: settings.prometheus,
            feed: settings.feed,
            title: settings.title,
            history: Mutex::new(History::default()),
        });
        tokio::spawn(sample(Arc::downgrade(&sources)));
        sources
    }

    fn history(&self) -> std::sync::MutexGuard<'_, History> {
        self.history.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The board's reports, sorted (app, then id); or why they could not be read.
    pub async fn reports(&self) -> Result<Vec<Report>, String> {
        let mut reports = self
            .board
            .reports()
            .await
            .map_err(|e| e.report().to_string())?;
        reports.sort_by(|a, b| (&a.app, &a.id).cmp(&(&b.app, &b.id)));
        Ok(reports)
    }

    pub fn board_info(&self, error: Option<String>) -> BoardInfo {
        BoardInfo {
            describe: self.board.describe(),
            shared: self.board.shared(),
            error,
        }
    }
}

/// Every second, the board's counters into the history.
async fn sample(sources: Weak<Sources>) {
    let mut tick = tokio::time::interval(BEAT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(sources) = sources.upgrade() else {
            return;
        };
        if let Ok(reports) = sources.reports().await {
            sources.history().sample(&reports, now_ms());
        }
    }
}

/// Where the reports come from.
pub struct BoardInfo {
    pub describe: String,
    /// Whether other processes' workers write there.
    pub shared: bool,
    /// Why it could not be read now.
    pub error: Option<String>,
}

/// One subscriber app, over its workers.
pub struct AppView {
    pub app: String,
    pub workers: usize,
    pub connected: usize,
    /// The greatest commit-to-applied lag its workers last saw.
    pub lag_seconds: Option<f64>,
    /// Messages ready in its queue on the broker.
    pub queued: Option<u64>,
    pub in_flight: u64,
    pub waiting: u64,
    /// Messages not applied yet: queued and in flight.
    pub lag_messages: Option<u64>,
    pub applied_per_second: f64,
    pub processed: u64,
    /// `None`: no store given to the dashboard.
    pub dead_letters: Option<Result<u64, String>>,
}

/// One publisher, over its relays.
pub struct PublisherView {
    pub app: String,
    pub relays: usize,
    pub backlog: Option<u64>,
    pub oldest_age_seconds: Option<f64>,
    pub relayed_per_second: f64,
    pub relayed: u64,
    /// The worker id of the relay holding the lease, if they use one.
    pub lease_holder: Option<String>,
    pub healthy: bool,
}

pub struct Overview {
    pub board: BoardInfo,
    pub subscribers: Vec<AppView>,
    pub publishers: Vec<PublisherView>,
    pub points: Vec<Point>,
}

impl Sources {
    pub async fn overview(&self) -> Overview {
        let (reports, error) = match self.reports().await {
            Ok(r) => (r, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        let mut subscribers: BTreeMap<String, AppView> = BTreeMap::new();
        let mut publishers: BTreeMap<String, PublisherView> = BTreeMap::new();
        for app in self.dead_letters.keys() {
            subscribers.insert(app.clone(), AppView::new(app));
        }
        let now = now_ms();
        for report in &reports {
            match &report.worker {
                Worker::Subscriber(s) => {
                    let view = subscribers
                        .entry(report.app.clone())
                        .or_insert_with(|| AppView::new(&report.app));
                    view.workers += 1;
                    view.connected += usize::from(s.connected);
                    if let Some(lag) = s.lag_ms {
                        let lag = lag as f64 / 1000.0;
                        view.lag_seconds = Some(view.lag_seconds.map_or(lag, |l| l.max(lag)));
                    }
                    if let Some(q) = s.queue_depth {
                        view.queued = Some(view.queued.map_or(q, |v| v.max(q)));
                    }
                    view.in_flight += s.in_flight;
                    view.waiting += s.waiting_count;
                    view.processed += s.messages;
                }
                Worker::Relay(r) => {
                    let view =
                        publishers
                            .entry(report.app.clone())
                            .or_insert_with(|| PublisherView {
                                app: report.app.clone(),
                                relays: 0,
                                backlog: None,
                                oldest_age_seconds: None,
                                relayed_per_second: 0.0,
                                relayed: 0,
                                lease_holder: None,
                                healthy: true,
                            });
                    view.relays += 1;
                    view.relayed += r.relayed;
                    view.healthy &= r.healthy;
                    if r.holds_lease == Some(true) {
                        view.lease_holder = Some(report.id.clone());
                    }
                    if let Some(b) = r.backlog {
                        view.backlog = Some(view.backlog.map_or(b.messages, |v| v.max(b.messages)));
                        if let Some(oldest) = b.oldest_ms {
                            let age = (now - oldest).max(0) as f64 / 1000.0;
                            view.oldest_age_seconds =
                                Some(view.oldest_age_seconds.map_or(age, |a| a.max(age)));
                        }
                    }
                }
            }
        }
        let points = {
            let history = self.history();
            for view in subscribers.values_mut() {
                view.applied_per_second = history.rate(&Series::Applied(view.app.clone()));
                view.lag_messages = view.queued.map(|q| q + view.in_flight);
            }
            for view in publishers.values_mut() {
                view.relayed_per_second = history.rate(&Series::Relayed(view.app.clone()));
            }
            history.points.iter().cloned().collect()
        };
        for (app, applier) in &self.dead_letters {
            let count = dead_letters::count(applier.db())
                .await
                .map_err(|e| e.to_string());
            if let Some(view) = subscribers.get_mut(app) {
                view.dead_letters = Some(count);
            }
        }
        Overview {
            board: self.board_info(error),
            subscribers: subscribers.into_values().collect(),
            publishers: publishers.into_values().collect(),
            points,
        }
    }

    /// Each dead-letter store's letters, oldest first (at most `limit` per app).
    pub async fn dead_letters(
        &self,
        limit: usize,
    ) -> Vec<(String, Result<Vec<DeadLetterRow>, String>)> {
        let mut all = Vec::new();
        for (app, applier) in &self.dead_letters {
            let letters = dead_letters::list(applier.db())
                .await
                .map(|mut l| {
                    l.truncate(limit);
                    l
                })
                .map_err(|e| e.to_string());
            all.push((app.clone(), letters));
        }
        all
    }
}

impl AppView {
    fn new(app: &str) -> Self {
        Self {
            app: app.to_string(),
            workers: 0,
            connected: 0,
            lag_seconds: None,
            queued: None,
            in_flight: 0,
            waiting: 0,
            lag_messages: None,
            applied_per_second: 0.0,
            processed: 0,
            dead_letters: None,
        }
    }
}

/// Gauges read off the board, in the Prometheus text format: what a dashboard in its own
/// process knows of the workers (their own recorders are in their processes).
pub fn board_metrics(o: &Overview) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, rows: Vec<(String, Option<f64>)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (app, value) in rows {
            if let Some(v) = value {
                let _ = writeln!(out, "{name}{{app=\"{}\"}} {v}", escape(&app));
            }
        }
    };
    let subs = &o.subscribers;
    gauge(
        "promiscuous_board_subscriber_workers",
        "Subscriber workers reporting on the board",
        subs.iter()
            .map(|s| (s.app.clone(), Some(s.workers as f64)))
            .collect(),
    );
    gauge(
        "promiscuous_board_lag_seconds",
        "Greatest commit-to-applied lag the app's workers last saw",
        subs.iter()
            .map(|s| (s.app.clone(), s.lag_seconds))
            .collect(),
    );
    gauge(
        "promiscuous_board_lag_messages",
        "Messages not applied yet: ready in the queue and in flight",
        subs.iter()
            .map(|s| (s.app.clone(), s.lag_messages.map(|n| n as f64)))
            .collect(),
    );
    gauge(
        "promiscuous_board_waiting_messages",
        "Messages held for a dependency",
        subs.iter()
            .map(|s| (s.app.clone(), Some(s.waiting as f64)))
            .collect(),
    );
    gauge(
        "promiscuous_board_dead_letters",
        "Dead letters in the app's store",
        subs.iter()
            .map(|s| {
                (
                    s.app.clone(),
                    s.dead_letters
                        .as_ref()
                        .and_then(|d| d.as_ref().ok())
                        .map(|n| *n as f64),
                )
            })
            .collect(),
    );
    let pubs = &o.publishers;
    gauge(
        "promiscuous_board_relays",
        "Relays reporting on the board",
        pubs.iter()
            .map(|p| (p.app.clone(), Some(p.relays as f64)))
            .collect(),
    );
    gauge(
        "promiscuous_board_outbox_backlog",
        "Messages waiting in the publisher's outbox",
        pubs.iter()
            .map(|p| (p.app.clone(), p.backlog.map(|n| n as f64)))
            .collect(),
    );
    gauge(
        "promiscuous_board_outbox_oldest_seconds",
        "Age of the oldest message waiting in the outbox",
        pubs.iter()
            .map(|p| (p.app.clone(), p.oldest_age_seconds))
            .collect(),
    );
    out
}

/// A label value, escaped for the text format.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
