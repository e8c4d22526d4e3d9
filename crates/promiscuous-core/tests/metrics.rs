//! What the subscriber runtime and the relay report to operators: metrics through the `metrics`
//! facade (read back with `metrics-util`'s `DebuggingRecorder`) and tracing spans.
//!
//! The runtime spawns tasks, so the recorder is global (installed once for this test binary);
//! tests run in parallel, so each one uses its own `app` label and reads only its own metrics.

mod memory_outbox;
use memory_outbox::MemoryOutbox;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use metrics_util::MetricKind;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use promiscuous_core::BoxError;
use promiscuous_core::message::{Dependencies, Message, Operation, OperationKind};
use promiscuous_core::publisher::{OutboxEntry, Relay, RelayConfig};
use promiscuous_core::subscriber::{
    Applied, Applier, ApplyError, DeadLetter, Stats, SubscriberConfig, SubscriberRuntime,
};
use promiscuous_core::transport::{InProcess, Outgoing, Transport};

// ---------------------------------------------------------------------------------------------
// Metrics, read back from a global DebuggingRecorder.

/// Everything recorded so far. A snapshot of the `DebuggingRecorder` resets what it returns
/// (counters and gauges to 0, histograms emptied), so every read goes through here and adds
/// the snapshot to what earlier reads saw (gauges are only moved by increments here, so their
/// deltas add up too).
struct Recorded {
    snapshotter: Snapshotter,
    seen: Mutex<HashMap<Metric, Value>>,
}

/// Kind, name and labels (sorted).
type Metric = (MetricKind, String, Vec<(String, String)>);

#[derive(Debug)]
enum Value {
    Counter(u64),
    Gauge(f64),
    Histogram(Vec<f64>),
}

fn recorded() -> &'static Recorded {
    static RECORDED: OnceLock<Recorded> = OnceLock::new();
    RECORDED.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::set_global_recorder(recorder).expect("the only recorder of this test binary");
        Recorded {
            snapshotter,
            seen: Mutex::new(HashMap::new()),
        }
    })
}

impl Recorded {
    /// The value of metric `name` with exactly `labels`, if it was ever recorded.
    fn read(&self, kind: MetricKind, name: &str, labels: &[(&str, &str)]) -> Option<Value> {
        let mut seen = self.seen.lock().unwrap();
        for (key, _, _, value) in self.snapshotter.snapshot().into_vec() {
            let (kind, key) = key.into_parts();
            let mut labels: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_string(), l.value().to_string()))
                .collect();
            labels.sort();
            let entry = (kind, key.name().to_string(), labels);
            match (value, seen.get_mut(&entry)) {
                (DebugValue::Counter(n), Some(Value::Counter(total))) => *total += n,
                (DebugValue::Gauge(g), Some(Value::Gauge(total))) => *total += g.into_inner(),
                (DebugValue::Histogram(xs), Some(Value::Histogram(all))) => {
                    all.extend(xs.into_iter().map(|x| x.into_inner()))
                }
                (value, _) => {
                    let value = match value {
                        DebugValue::Counter(n) => Value::Counter(n),
                        DebugValue::Gauge(g) => Value::Gauge(g.into_inner()),
                        DebugValue::Histogram(xs) => {
                            Value::Histogram(xs.into_iter().map(|x| x.into_inner()).collect())
                        }
                    };
                    seen.insert(entry, value);
                }
            }
        }
        let mut labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        labels.sort();
        let value = seen.get(&(kind, name.to_string(), labels))?;
        Some(match value {
            Value::Counter(n) => Value::Counter(*n),
            Value::Gauge(g) => Value::Gauge(*g),
            Value::Histogram(xs) => Value::Histogram(xs.clone()),
        })
    }
}

fn counter(name: &str, labels: &[(&str, &str)]) -> u64 {
    match recorded().read(MetricKind::Counter, name, labels) {
        Some(Value::Counter(n)) => n,
        None => 0,
        Some(other) => panic!("{name} is not a counter: {other:?}"),
    }
}

fn gauge(name: &str, labels: &[(&str, &str)]) -> f64 {
    match recorded().read(MetricKind::Gauge, name, labels) {
        Some(Value::Gauge(g)) => g,
        None => 0.0,
        Some(other) => panic!("{name} is not a gauge: {other:?}"),
    }
}

fn histogram(name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    match recorded().read(MetricKind::Histogram, name, labels) {
        Some(Value::Histogram(xs)) => xs,
        None => Vec::new(),
        Some(other) => panic!("{name} is not a histogram: {other:?}"),
    }
}

fn outcome(app: &str, outcome: &str) -> u64 {
    counter(
        "promiscuous_messages_total",
        &[("app", app), ("outcome", outcome)],
    )
}

/// Waits until `cond` holds (at most 10 s).
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// A subscriber over the in-process broker, with an applier keeping versions in memory.

/// The publisher app of every message here (the queue's binding).
const PUBLISHER: &str = "shop";

/// Applies operations by version in memory; fails the messages it is told to.
#[derive(Default)]
struct FakeApplier {
    versions: Mutex<HashMap<String, u64>>,
    dead: Mutex<Vec<DeadLetter>>,
    /// Message ids that are bad input (dead-lettered at once).
    poison: HashSet<String>,
    /// Message id → transient failures before it goes through.
    flaky: Mutex<HashMap<String, u32>>,
    /// When set, every apply takes a permit first (none: applies wait).
    gate: Option<Arc<tokio::sync::Semaphore>>,
}

#[async_trait]
impl Applier for FakeApplier {
    fn bindings(&self) -> Vec<String> {
        vec![PUBLISHER.into()]
    }

    async fn apply(&self, message: &Message) -> Result<Applied, ApplyError> {
        if let Some(gate) = &self.gate {
            gate.acquire()
                .await
                .map_err(ApplyError::transient)?
                .forget();
        }
        if self.poison.contains(&message.id) {
            return Err(ApplyError::permanent(format!("{} is poison", message.id)));
        }
        if let Some(left) = self.flaky.lock().unwrap().get_mut(&message.id)
            && *left > 0
        {
            *left -= 1;
            return Err(ApplyError::transient("database busy"));
        }
        let mut versions = self.versions.lock().unwrap();
        let mut applied = Applied::default();
        for op in &message.operations {
            let current = versions.entry(op.key()).or_insert(0);
            if op.version > *current {
                *current = op.version;
                applied.applied += 1;
            } else {
                applied.skipped += 1;
            }
        }
        Ok(applied)
    }

    async fn versions(&self, keys: &[String]) -> Result<Vec<u64>, BoxError> {
        let versions = self.versions.lock().unwrap();
        Ok(keys
            .iter()
            .map(|k| versions.get(k).copied().unwrap_or(0))
            .collect())
    }

    async fn dead_letter(&self, letter: DeadLetter) -> Result<(), BoxError> {
        self.dead.lock().unwrap().push(letter);
        Ok(())
    }
}

/// A message writing `shop/user` `id` at `version`, stamped `age` ago.
fn message(message_id: &str, id: i64, version: u64, age: Duration) -> Outgoing {
    let message = Message {
        protocol: promiscuous_core::message::PROTOCOL_VERSION,
        app: PUBLISHER.into(),
        id: message_id.into(),
        timestamp: promiscuous_core::now_ms() - age.as_millis() as i64,
        host: "test".into(),
        current_user_id: None,
        dependencies: Dependencies::default(),
        operations: vec![Operation {
            endpoint: format!("{PUBLISHER}/user"),
            types: vec!["User".into()],
            id: id.into(),
            operation: if version == 1 {
                OperationKind::Create
            } else {
                OperationKind::Update
            },
            version,
            attributes: Some(serde_json::Map::from_iter([(
                "name".to_string(),
                serde_json::Value::from(format!("user {id} v{version}")),
            )])),
            changes: None,
            sync: false,
        }],
    };
    Outgoing {
        routing_key: PUBLISHER.into(),
        payload: message.encode(),
        partition_key: None,
    }
}

/// A runtime for subscriber app `app` over a fresh broker, its queue declared.
async fn subscriber(
    app: &str,
    applier: FakeApplier,
    configure: impl FnOnce(&mut SubscriberConfig),
) -> (Arc<InProcess>, Arc<SubscriberRuntime>) {
    recorded(); // installed before anything is reported
    let transport = Arc::new(InProcess::new());
    let mut config = SubscriberConfig::new(app);
    config.error_notifier = Arc::new(|_| {});
    configure(&mut config);
    let runtime = SubscriberRuntime::new(transport.clone(), Arc::new(applier), config);
    runtime.declare().await.expect("declare");
    (transport, Arc::new(runtime))
}

/// Runs `runtime` in the background until the returned sender fires; the task returns its
/// final stats.
fn in_background(
    runtime: &Arc<SubscriberRuntime>,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<Stats, promiscuous_core::Error>>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runtime = runtime.clone();
    let task = tokio::spawn(async move {
        runtime
            .run(async {
                let _ = stopped.await;
            })
            .await
    });
    (stop, task)
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_records_its_apply_time_lag_and_outcome() {
    let app = "metrics-outcomes";
    let labels = [("app", app)];
    let applier = FakeApplier {
        poison: ["bad-1".to_string(), "bad-2".to_string()].into(),
        ..FakeApplier::default()
    };
    let (transport, runtime) = subscriber(app, applier, |_| {}).await;
    let age = Duration::from_millis(250);
    let mut batch: Vec<Outgoing> = (1..=5)
        .map(|i| message(&format!("good-{i}"), i, 1, age))
        .collect();
    batch.push(message("bad-1", 10, 1, age));
    batch.push(message("bad-2", 11, 1, age));
    batch.push(Outgoing {
        routing_key: PUBLISHER.into(),
        payload: b"{ not json".to_vec(),
        partition_key: None,
    });
    batch.push(message("duplicate", 1, 1, age)); // user 1 v1 again
    transport.publish(&batch).await.unwrap();

    let stats = runtime
        .run_until_idle(Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(stats.messages, 6, "5 applied, 1 skipped: {stats:?}");
    assert_eq!(stats.dead_lettered, 3, "{stats:?}");

    assert_eq!(outcome(app, "applied"), 5);
    assert_eq!(outcome(app, "skipped"), 1);
    assert_eq!(outcome(app, "dead_lettered"), 3);
    assert_eq!(outcome(app, "recovered"), 0);
    assert_eq!(outcome(app, "requeued"), 0);
    assert_eq!(counter("promiscuous_retries_total", &labels), 0);

    // One apply sample per message the applier saw (the undecodable one never reached it).
    let apply = histogram("promiscuous_apply_seconds", &labels);
    assert_eq!(apply.len(), 8, "{apply:?}");
    assert!(apply.iter().all(|s| (0.0..10.0).contains(s)), "{apply:?}");

    // Lag: for every message applied or skipped, at least how old it was when published.
    let lag = histogram("promiscuous_lag_seconds", &labels);
    assert_eq!(lag.len(), 6, "{lag:?}");
    assert!(lag.iter().all(|s| (0.25..60.0).contains(s)), "{lag:?}");
    let last_lag = stats.last_lag.expect("a last lag");
    assert!(last_lag >= age, "{last_lag:?}");

    // Nothing held any more.
    assert_eq!(gauge("promiscuous_waiting_messages", &labels), 0.0);
    assert_eq!(gauge("promiscuous_in_flight_messages", &labels), 0.0);
    assert_eq!((stats.waiting, stats.in_flight), (0, 0), "{stats:?}");
}

#[tokio::test]
async fn retries_are_counted() {
    let app = "metrics-retries";
    let labels = [("app", app)];
    let applier = FakeApplier {
        flaky: Mutex::new([("flaky".to_string(), 2)].into()),
        ..FakeApplier::default()
    };
    let (transport, runtime) = subscriber(app, applier, |c| {
        c.retry_delay = Duration::from_millis(1);
    })
    .await;
    transport
        .publish(&[message("flaky", 1, 1, Duration::ZERO)])
        .await
        .unwrap();
    let stats = runtime
        .run_until_idle(Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!((stats.messages, stats.dead_lettered), (1, 0), "{stats:?}");
    assert_eq!(counter("promiscuous_retries_total", &labels), 2);
    assert_eq!(outcome(app, "applied"), 1);
    assert_eq!(
        histogram("promiscuous_apply_seconds", &labels).len(),
        1,
        "one sample per message, retries included"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_depth_gauge_follows_the_broker_queue() {
    let app = "metrics-depth";
    let labels = [("app", app)];
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let applier = FakeApplier {
        gate: Some(gate.clone()),
        ..FakeApplier::default()
    };
    let (transport, runtime) = subscriber(app, applier, |c| {
        c.prefetch = 1;
        c.workers = 1;
        c.recheck_interval = Duration::from_millis(20);
    })
    .await;
    let (stop, task) = in_background(&runtime);
    // Five messages, one delivered (its apply waits at the gate), four ready on the broker.
    let messages: Vec<Outgoing> = (1..=5)
        .map(|id| message(&format!("d{id}"), id, 1, Duration::ZERO))
        .collect();
    transport.publish(&messages).await.unwrap();
    eventually("the gauge shows the four waiting on the broker", || {
        gauge("promiscuous_queue_depth", &labels) == 4.0
    })
    .await;
    assert_eq!(runtime.stats().borrow().queue_depth, Some(4));

    gate.add_permits(5);
    eventually("the queue drains and the gauge follows", || {
        gauge("promiscuous_queue_depth", &labels) == 0.0 && runtime.stats().borrow().messages == 5
    })
    .await;
    assert_eq!(runtime.stats().borrow().queue_depth, Some(0));
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_waiting_gauge_follows_a_message_held_for_its_dependency() {
    let app = "metrics-waiting";
    let labels = [("app", app)];
    let (transport, runtime) = subscriber(app, FakeApplier::default(), |c| {
        c.dependency_timeout = Duration::from_secs(60);
    })
    .await;
    let (stop, task) = in_background(&runtime);
    let stats = runtime.stats();

    // Version 2 arrives first: it waits for version 1.
    transport
        .publish(&[message("v2", 1, 2, Duration::ZERO)])
        .await
        .unwrap();
    eventually("the waiting gauge rises", || {
        gauge("promiscuous_waiting_messages", &labels) == 1.0
    })
    .await;
    assert_eq!(gauge("promiscuous_in_flight_messages", &labels), 1.0);
    let now = stats.borrow().clone();
    assert_eq!(
        (now.waiting, now.in_flight, now.waited, now.messages),
        (1, 1, 1, 0),
        "{now:?}"
    );
    assert_eq!(histogram("promiscuous_apply_seconds", &labels).len(), 0);

    // Version 1 releases it.
    transport
        .publish(&[message("v1", 1, 1, Duration::ZERO)])
        .await
        .unwrap();
    eventually("both are applied and acknowledged", || {
        let s = stats.borrow();
        s.messages == 2 && s.in_flight == 0
    })
    .await;
    eventually("the gauges are back to 0", || {
        gauge("promiscuous_waiting_messages", &labels) == 0.0
            && gauge("promiscuous_in_flight_messages", &labels) == 0.0
    })
    .await;
    assert_eq!(stats.borrow().waiting, 0);
    assert_eq!(outcome(app, "applied"), 2);
    assert_eq!(outcome(app, "recovered"), 0);
    assert_eq!(histogram("promiscuous_apply_seconds", &labels).len(), 2);

    stop.send(()).unwrap();
    let last: Stats = task.await.unwrap().unwrap();
    assert_eq!((last.waiting, last.in_flight), (0, 0), "{last:?}");
}

#[tokio::test]
async fn recovery_is_counted_and_releases_the_waiting_gauge() {
    let app = "metrics-recovery";
    let labels = [("app", app)];
    let (transport, runtime) = subscriber(app, FakeApplier::default(), |c| {
        c.dependency_timeout = Duration::from_millis(50);
    })
    .await;
    transport
        .publish(&[message("orphan", 1, 3, Duration::ZERO)]) // versions 1 and 2 never come
        .await
        .unwrap();
    let stats = runtime
        .run_until_idle(Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!((stats.messages, stats.recovered), (1, 1), "{stats:?}");
    assert_eq!(outcome(app, "recovered"), 1);
    assert_eq!(
        outcome(app, "applied"),
        1,
        "recovered also counts as applied"
    );
    assert_eq!(gauge("promiscuous_waiting_messages", &labels), 0.0);
    assert_eq!(gauge("promiscuous_in_flight_messages", &labels), 0.0);
}

#[tokio::test]
async fn a_message_left_waiting_at_shutdown_leaves_the_gauges() {
    let app = "metrics-shutdown";
    let labels = [("app", app)];
    let (transport, runtime) = subscriber(app, FakeApplier::default(), |c| {
        c.dependency_timeout = Duration::from_secs(60);
    })
    .await;
    transport
        .publish(&[message("v2", 1, 2, Duration::ZERO)])
        .await
        .unwrap();
    let stats = runtime.stats();
    let run = runtime.run(async {
        eventually("the message waits", || stats.borrow().waiting == 1).await;
    });
    let last = run.await.unwrap();
    assert_eq!(
        (last.waiting, last.in_flight, last.messages),
        (0, 0, 0),
        "{last:?}"
    );
    assert_eq!(gauge("promiscuous_waiting_messages", &labels), 0.0);
    assert_eq!(gauge("promiscuous_in_flight_messages", &labels), 0.0);
}

// ---------------------------------------------------------------------------------------------
// The relay.

#[tokio::test]
async fn the_relay_counts_published_rows_and_times_batches() {
    // The only relay of this test binary: its unlabelled metrics are all its own.
    recorded();
    let outbox = Arc::new(MemoryOutbox::default());
    *outbox.rows.lock().unwrap() = (1..=5)
        .map(|i| {
            let Outgoing {
                routing_key,
                payload,
                ..
            } = message(&format!("row-{i}"), i, 1, Duration::ZERO);
            OutboxEntry {
                id: i,
                routing_key,
                payload,
            }
        })
        .collect();
    let (spans, _capturing) = capture_spans();
    let relay = Relay::with_config(
        outbox.clone(),
        Arc::new(InProcess::new()),
        RelayConfig {
            batch_size: 2,
            ..RelayConfig::default()
        },
    );
    assert_eq!(relay.drain().await.unwrap(), 5);
    assert_eq!(counter("promiscuous_outbox_published_total", &[]), 5);
    let batches = histogram("promiscuous_relay_batch_seconds", &[]);
    assert_eq!(
        batches.len(),
        3,
        "batches of 2, 2 and 1 (empty looks are not timed)"
    );
    let rows: Vec<String> = spans
        .named("promiscuous.relay")
        .iter()
        .map(|s| s["rows"].clone())
        .collect();
    assert_eq!(rows, ["2", "2", "1"]);
}

// ---------------------------------------------------------------------------------------------
// Spans.

#[tokio::test]
async fn every_message_is_applied_in_a_span() {
    let app = "metrics-spans";
    let (spans, _capturing) = capture_spans();
    let applier = FakeApplier {
        poison: ["bad".to_string()].into(),
        flaky: Mutex::new([("flaky".to_string(), 1)].into()),
        ..FakeApplier::default()
    };
    let (transport, runtime) = subscriber(app, applier, |c| {
        c.retry_delay = Duration::from_millis(1);
    })
    .await;
    transport
        .publish(&[
            message("good", 1, 1, Duration::ZERO),
            message("bad", 2, 1, Duration::ZERO),
            message("flaky", 3, 1, Duration::ZERO),
        ])
        .await
        .unwrap();
    runtime
        .run_until_idle(Duration::from_millis(100))
        .await
        .unwrap();
    let mut applies = spans.named("promiscuous.apply");
    applies.sort_by(|a, b| a["message"].cmp(&b["message"]));
    let summary: Vec<[&str; 5]> = applies
        .iter()
        .map(|s| {
            [
                s["app"].as_str(),
                s["message"].as_str(),
                s["operations"].as_str(),
                s["attempt"].as_str(),
                s["outcome"].as_str(),
            ]
        })
        .collect();
    assert_eq!(
        summary,
        [
            [app, "bad", "1", "1", "dead_lettered"],
            [app, "flaky", "1", "2", "applied"],
            [app, "good", "1", "1", "applied"],
        ]
    );
}

/// Spans created on this thread from now on (the tests that use it run on a current-thread
/// runtime, so the runtime's tasks run here too), with their fields as text.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<(&'static str, SpanFields)>>>);

type SpanFields = HashMap<String, String>;

impl Spans {
    fn named(&self, name: &str) -> Vec<SpanFields> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, fields)| fields.clone())
            .collect()
    }
}

fn capture_spans() -> (Spans, tracing::subscriber::DefaultGuard) {
    let spans = Spans::default();
    let guard = tracing::subscriber::set_default(spans.clone());
    (spans, guard)
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}"));
    }
}

impl tracing::Subscriber for Spans {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut spans = self.0.lock().unwrap();
        let mut fields = HashMap::new();
        span.record(&mut Fields(&mut fields));
        spans.push((span.metadata().name(), fields));
        tracing::span::Id::from_u64(spans.len() as u64)
    }
    fn record(&self, span: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut spans = self.0.lock().unwrap();
        if let Some((_, fields)) = spans.get_mut(span.into_u64() as usize - 1) {
            values.record(&mut Fields(fields));
        }
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
