//! The promiscuous command line, driven in-process: SQLite files in a temporary directory and
//! the embedded broker.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use promiscuous::{InProcess, Subscriber, SubscriberService, Transport};
use promiscuous_cli::{Cli, CliError};
use promiscuous_test::MockPublisher;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, EntityTrait, Schema};
use serde_json::json;
use tokio::sync::Notify;

pub mod user {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "users")]
    #[promiscuous::publish(name, email, to = "clitest/user")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub name: String,
        pub email: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
}

pub mod member {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "members")]
    #[promiscuous::subscribe(
        name,
        email,
        from = "clitest/user",
        foreign_key = "user_id",
        callbacks
    )]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        #[sea_orm(unique)]
        pub user_id: i32,
        pub name: String,
        pub email: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Signalled when the callback of a member named `slow…` starts; it then takes 300 ms.
static SLOW_STARTED: Notify = Notify::const_new();
static SLOW_FINISHED: AtomicBool = AtomicBool::new(false);

impl promiscuous::Callbacks for member::Model {
    async fn after_create(&self, _ctx: &promiscuous::Ctx<'_>) -> Result<(), promiscuous::BoxError> {
        if self.name.starts_with("slow") {
            SLOW_STARTED.notify_one();
            tokio::time::sleep(Duration::from_millis(300)).await;
            SLOW_FINISHED.store(true, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// A directory of its own per test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("promiscuous-cli-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }

    /// A SQLite database file in the directory, created if missing.
    fn db_url(&self, file: &str) -> String {
        format!("sqlite://{}?mode=rwc", self.path(file).display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn open<E: EntityTrait>(url: &str, entity: Option<E>) -> DatabaseConnection {
    let db = Database::connect(url).await.unwrap();
    if let Some(entity) = entity {
        let schema = Schema::new(db.get_database_backend());
        let mut table = schema.create_table_from_entity(entity);
        table.if_not_exists();
        db.execute(&table).await.unwrap();
    }
    db
}

fn cli(app: &str, broker: &InProcess) -> Cli {
    Cli::new(app)
        .subscribe::<member::Model>()
        .publish::<user::Model>()
        .transport(broker.clone())
}

fn args(list: &[&str]) -> Vec<String> {
    std::iter::once("promiscuous")
        .chain(list.iter().copied())
        .map(String::from)
        .collect()
}

/// The subscriber's queue, declared (and bound) so that messages published from now on wait.
async fn members(app: &str, db: &DatabaseConnection, broker: &InProcess) -> SubscriberService {
    Subscriber::new(app, db.clone(), broker.clone())
        .subscribe::<member::Model>()
        .retries(2, Duration::from_millis(1))
        .error_notifier(std::sync::Arc::new(|_| {}))
        .build()
        .await
        .unwrap()
}

async fn names(db: &DatabaseConnection) -> Vec<(i32, String, String)> {
    let mut rows: Vec<_> = member::Entity::find()
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.user_id, m.name, m.email))
        .collect();
    rows.sort();
    rows
}

fn failed(result: Result<String, CliError>) -> String {
    match result {
        Err(CliError::Failed(message)) => message,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn mocks_exports_the_publishers_definitions() {
    let dir = TempDir::new("mocks");
    let cli = Cli::new("clitest_mocks");
    let file = dir.path("definitions.json");
    let printed = cli
        .run_with(args(&["mocks", "-o", file.to_str().unwrap()]))
        .await
        .unwrap();
    assert!(printed.contains("1 endpoint(s)"), "{printed}");
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let expected = json!({
        "promiscuous_definitions": 1,
        "endpoints": [{
            "endpoint": "clitest/user",
            "types": ["User"],
            "ephemeral": false,
            "attributes": [{"name": "name", "type": "String"}, {"name": "email", "type": "String"}],
        }],
    });
    assert_eq!(written, expected);
    // Without -o, the JSON itself on stdout.
    let stdout = cli.run_with(args(&["mocks"])).await.unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(parsed, expected);
    // An unwritable path is an error with its context.
    let bad = dir.path("missing-dir/definitions.json");
    let message = failed(
        cli.run_with(args(&["mocks", "-o", bad.to_str().unwrap()]))
            .await,
    );
    assert!(message.contains("writing the definitions to"), "{message}");
}

#[tokio::test]
async fn initial_sync_replicates_existing_rows_to_a_subscriber() {
    let dir = TempDir::new("sync");
    let (pub_url, sub_url) = (dir.db_url("publisher.db"), dir.db_url("subscriber.db"));
    let pdb = open(&pub_url, Some(user::Entity)).await;
    // Rows written before promiscuous was set up (no hooks, no guard yet): never published.
    for i in 1..=25 {
        pdb.execute_unprepared(&format!(
            "INSERT INTO users (id, name, email) VALUES ({i}, 'user {i}', 'u{i}@example.org')"
        ))
        .await
        .unwrap();
    }

    let broker = InProcess::new();
    let sdb = open(&sub_url, Some(member::Entity)).await;
    let service = members("clitest_sync", &sdb, &broker).await;
    let cli = cli("clitest_sync", &broker);

    // By endpoint, with a filter, in batches of 7 (three full batches, one partial); no
    // application runs here, so the command relays (--relay).
    let printed = cli
        .run_with(args(&[
            "--database-url",
            &pub_url,
            "publish",
            "clitest/user",
            "id <= 20",
            "--batch",
            "7",
            "--relay",
        ]))
        .await
        .unwrap();
    assert!(
        printed.contains("synced 20 rows of users matching `id <= 20`"),
        "{printed}"
    );
    assert!(printed.contains("relayed 3 message(s)"), "{printed}");
    assert!(printed.contains("0 still pending"), "{printed}");
    let stats = service
        .run_until_idle(Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(stats.dead_lettered, 0);
    let expected: Vec<_> = (1..=20)
        .map(|i| (i, format!("user {i}"), format!("u{i}@example.org")))
        .collect();
    assert_eq!(names(&sdb).await, expected);

    // By table, everything: the first 20 again (version 2), the last 5 for the first time.
    let printed = cli
        .run_with(args(&[
            "--database-url",
            &pub_url,
            "publish",
            "users",
            "--relay",
        ]))
        .await
        .unwrap();
    assert!(printed.contains("synced 25 rows of users"), "{printed}");
    let stats = service
        .run_until_idle(Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!((stats.dead_lettered, stats.recovered), (0, 0));
    let expected: Vec<_> = (1..=25)
        .map(|i| (i, format!("user {i}"), format!("u{i}@example.org")))
        .collect();
    assert_eq!(names(&sdb).await, expected);
    let service_applier = service.applier();
    assert_eq!(
        service_applier
            .applied_version("clitest/user/1")
            .await
            .unwrap(),
        Some(2)
    );
}

/// A subscriber deployed after an instance's versions 1 and 2 were published never receives
/// them: the synced version 3 (flagged `sync`) is applied at once, with no dependency wait and
/// no recovery, and the next regular update follows it in order.
#[tokio::test]
async fn a_subscriber_deployed_late_applies_the_synced_state_without_waiting() {
    use sea_orm::{ActiveModelTrait, IntoActiveModel, Set, TransactionTrait};
    let dir = TempDir::new("late");
    let (pub_url, sub_url) = (dir.db_url("publisher.db"), dir.db_url("subscriber.db"));
    let pdb = open(&pub_url, Some(user::Entity)).await;
    let broker = InProcess::new();
    let publisher = promiscuous::Publisher::new(pdb.clone(), broker.clone())
        .start()
        .await
        .unwrap();
    let txn = pdb.begin().await.unwrap();
    let yoda = user::ActiveModel {
        id: Set(1),
        name: Set("Yoda".into()),
        email: Set("y@dagobah".into()),
    }
    .insert(&txn)
    .await
    .unwrap();
    let mut am = yoda.into_active_model();
    am.name = Set("Master Yoda".into());
    let yoda = am.update(&txn).await.unwrap();
    txn.commit().await.unwrap();
    publisher.flush().await.unwrap(); // v1, v2: routed nowhere, no queue exists yet

    let sdb = open(&sub_url, Some(member::Entity)).await;
    let late = Subscriber::new("clitest_late", sdb.clone(), broker.clone())
        .subscribe::<member::Model>()
        .dependency_timeout(Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    let printed = cli("clitest_late", &broker)
        .run_with(args(&["--database-url", &pub_url, "publish", "users"]))
        .await
        .unwrap();
    assert!(printed.contains("synced 1 rows of users"), "{printed}");
    let txn = pdb.begin().await.unwrap();
    let mut am = yoda.into_active_model();
    am.email = Set("yoda@dagobah.org".into());
    am.update(&txn).await.unwrap();
    txn.commit().await.unwrap();
    publisher.flush().await.unwrap(); // v4, a regular update: needs v3

    // Had v3 waited for v2, it would be released only by recovery, after the 60 s timeout.
    let stats = late
        .run_until_idle(Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!((stats.recovered, stats.dead_lettered), (0, 0), "{stats:?}");
    assert_eq!(
        names(&sdb).await,
        vec![(1, "Master Yoda".to_string(), "yoda@dagobah.org".to_string())]
    );
    assert_eq!(
        late.applier()
            .applied_version("clitest/user/1")
            .await
            .unwrap(),
        Some(4)
    );
    publisher.shutdown().await.unwrap();
}

#[tokio::test]
async fn unknown_models_and_bad_filters_are_clear_errors() {
    let dir = TempDir::new("unknown");
    let pub_url = dir.db_url("publisher.db");
    let _pdb = open(&pub_url, Some(user::Entity)).await;
    let broker = InProcess::new();
    let cli = cli("clitest_unknown", &broker);
    let message = failed(
        cli.run_with(args(&[
            "--database-url",
            &pub_url,
            "publish",
            "clitest/nope",
        ]))
        .await,
    );
    assert!(
        message.contains("unknown model `clitest/nope`"),
        "{message}"
    );
    assert!(message.contains("clitest/user (table users)"), "{message}");

    let message = failed(
        cli.run_with(args(&[
            "--database-url",
            &pub_url,
            "publish",
            "users",
            "no_such_column = 1",
        ]))
        .await,
    );
    assert!(
        message.contains("rows of users matching `no_such_column = 1`"),
        "{message}"
    );
    assert!(message.contains("no_such_column"), "{message}");

    // Nothing registered to publish.
    let message = failed(
        Cli::new("x")
            .run_with(args(&["--database-url", &pub_url, "publish", "users"]))
            .await,
    );
    assert!(message.contains("publishes no model"), "{message}");

    // Usage errors come from clap, with the usage.
    match cli
        .run_with(args(&["subscribe", "--workers", "zero"]))
        .await
    {
        Err(CliError::Usage(m)) => assert!(m.contains("--workers"), "{m}"),
        other => panic!("expected a usage error, got {other:?}"),
    }
    match cli.run_with(args(&["dead-letters", "replay"])).await {
        Err(CliError::Usage(m)) => assert!(m.contains("--all"), "{m}"),
        other => panic!("expected a usage error, got {other:?}"),
    }
    let help = cli.run_with(args(&["--help"])).await.unwrap();
    assert!(help.contains("dead-letters"), "{help}");
}

#[tokio::test]
async fn dead_letters_are_listed_shown_replayed_and_dropped() {
    let dir = TempDir::new("dead-letters");
    let sub_url = dir.db_url("subscriber.db");
    // No members table yet: applying fails (transiently) until the schema is fixed.
    let sdb = open::<member::Entity>(&sub_url, None).await;
    let broker = InProcess::new();
    let service = members("clitest_dl", &sdb, &broker).await;
    let mut publisher = MockPublisher::new("clitest", broker.clone());
    publisher
        .create(
            "clitest/user",
            json!(1),
            json!({"name": "Yoda", "email": "yoda@dagobah.org"}),
        )
        .await
        .unwrap();
    publisher.raw(&b"not json at all"[..]).await.unwrap();
    let stats = service
        .run_until_idle(Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(stats.dead_lettered, 2);
    let letters = service.applier().dead_letters().await.unwrap();
    let yoda = letters
        .iter()
        .find(|l| l.payload.starts_with(b"{"))
        .unwrap()
        .id;
    let garbage = letters
        .iter()
        .find(|l| l.payload.starts_with(b"not"))
        .unwrap()
        .id;

    let cli = cli("clitest_dl", &broker);
    let run = |list: &[&str]| {
        let mut all = vec!["--database-url", sub_url.as_str(), "dead-letters"];
        all.extend_from_slice(list);
        cli.run_with(args(&all))
    };

    let listed = run(&["list"]).await.unwrap();
    assert!(listed.contains("2 dead letter(s)"), "{listed}");
    assert!(listed.contains(&format!("\n{yoda}\t")), "{listed}");
    assert!(listed.contains("finding the local row"), "{listed}");

    let shown = run(&["show", &yoda.to_string()]).await.unwrap();
    assert!(shown.contains("queue: clitest_dl"), "{shown}");
    assert!(shown.contains("\"name\": \"Yoda\""), "{shown}");
    assert!(shown.contains("error: message "), "{shown}");
    let shown = run(&["show", &garbage.to_string()]).await.unwrap();
    assert!(shown.contains("not json at all"), "{shown}");

    // Still failing: kept, with the new error and one more attempt.
    let message = failed(run(&["replay", &yoda.to_string()]).await);
    assert!(message.contains("still fail"), "{message}");
    assert!(message.contains("members"), "{message}");
    let before = letters.iter().find(|l| l.id == yoda).unwrap().attempts;
    let after = service.applier().dead_letters().await.unwrap();
    let kept = after.iter().find(|l| l.id == yoda).unwrap();
    assert_eq!(kept.attempts, before + 1);

    // Fix the schema: the replay applies it and deletes the dead letter.
    open(&sub_url, Some(member::Entity)).await;
    let printed = run(&["replay", &yoda.to_string()]).await.unwrap();
    assert!(printed.contains("1 operation(s) applied"), "{printed}");
    assert_eq!(
        names(&sdb).await,
        vec![(1, "Yoda".to_string(), "yoda@dagobah.org".to_string())]
    );

    // The garbage never applies: replay --all reports it and keeps it.
    let message = failed(run(&["replay", "--all"]).await);
    assert!(
        message.contains("1 of 1 dead letter(s) still fail"),
        "{message}"
    );
    assert!(
        message.contains(&format!("dead letter {garbage}:")),
        "{message}"
    );
    let listed = run(&["list"]).await.unwrap();
    assert!(listed.contains("1 dead letter(s)"), "{listed}");

    // Unknown ids are clear errors.
    for command in ["show", "replay", "drop"] {
        let message = failed(run(&[command, "4242"]).await);
        assert!(
            message.contains("no dead letter with id 4242"),
            "{command}: {message}"
        );
    }

    let printed = run(&["drop", &garbage.to_string()]).await.unwrap();
    assert!(printed.contains("dropped"), "{printed}");
    assert_eq!(run(&["list"]).await.unwrap(), "no dead letters\n");
    let printed = run(&["drop", "--all"]).await.unwrap();
    assert!(printed.contains("dropped 0 dead letter(s)"), "{printed}");
    assert_eq!(
        run(&["replay", "--all"]).await.unwrap(),
        "no dead letters\n"
    );
}

#[tokio::test]
async fn status_prints_the_queue_depth_and_the_dead_letters() {
    let dir = TempDir::new("status");
    let sub_url = dir.db_url("subscriber.db");
    let sdb = open(&sub_url, Some(member::Entity)).await;
    let broker = InProcess::new();
    let _service = members("clitest_status", &sdb, &broker).await;
    let mut publisher = MockPublisher::new("clitest", broker.clone());
    for i in 1..=3 {
        publisher
            .create(
                "clitest/user",
                json!(i),
                json!({"name": format!("n{i}"), "email": "e"}),
            )
            .await
            .unwrap();
    }
    let cli = cli("clitest_status", &broker);
    let printed = cli
        .run_with(args(&["--database-url", &sub_url, "status"]))
        .await
        .unwrap();
    assert!(
        printed.contains("queue clitest_status: 3 message(s) ready"),
        "{printed}"
    );
    assert!(printed.contains("dead letters: 0"), "{printed}");
    assert!(printed.contains("outbox: none readable"), "{printed}");
    assert_eq!(
        Transport::queue_depth(&broker, "clitest_status")
            .await
            .unwrap(),
        Some(3)
    );

    // --app names another subscriber app (queue) than the program's.
    let printed = Cli::new("clitest_other")
        .transport(broker.clone())
        .run_with(args(&["status", "--app", "clitest_status"]))
        .await
        .unwrap();
    assert!(printed.contains("queue clitest_status: 3"), "{printed}");

    // A queue nobody declared is an error naming it.
    let message = failed(
        Cli::new("clitest_nobody")
            .transport(broker.clone())
            .run_with(args(&["status"]))
            .await,
    );
    assert!(
        message.contains("queue \"clitest_nobody\" does not exist"),
        "{message}"
    );
}

#[tokio::test]
async fn subscribe_finishes_the_message_in_flight_on_shutdown() {
    let dir = TempDir::new("subscribe");
    let sub_url = dir.db_url("subscriber.db");
    let sdb = open(&sub_url, Some(member::Entity)).await;
    let broker = InProcess::new();
    // Declares the queue, so the message below waits for the subscriber.
    members("clitest_subscribe", &sdb, &broker).await;
    let mut publisher = MockPublisher::new("clitest", broker.clone());
    publisher
        .create(
            "clitest/user",
            json!(7),
            json!({"name": "slow Yoda", "email": "yoda@dagobah.org"}),
        )
        .await
        .unwrap();
    let cli = cli("clitest_subscribe", &broker);
    // Stop as soon as the message is being applied (its callback takes 300 ms more).
    let printed = tokio::time::timeout(
        Duration::from_secs(20),
        cli.run_until(
            args(&[
                "--database-url",
                &sub_url,
                "subscribe",
                "--workers",
                "2",
                "--prefetch",
                "10",
                "--recovery=0.5",
            ]),
            SLOW_STARTED.notified(),
        ),
    )
    .await
    .expect("subscribe stops after the shutdown signal")
    .unwrap();
    assert!(SLOW_FINISHED.load(Ordering::SeqCst));
    assert!(
        printed.contains("consuming queue clitest_subscribe"),
        "{printed}"
    );
    assert!(printed.contains("recovery after 500ms"), "{printed}");
    assert!(
        printed.contains("stopped: 1 messages (1 operations applied"),
        "{printed}"
    );
    assert_eq!(
        names(&sdb).await,
        vec![(7, "slow Yoda".to_string(), "yoda@dagobah.org".to_string())]
    );
    // Applied and acknowledged: nothing left in the queue, nothing in flight.
    assert_eq!(broker.queue_depth("clitest_subscribe"), (0, 0));
}

/// `GET path` on `127.0.0.1:port`: the status line and the body.
async fn http_get(port: u16, path: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

#[tokio::test]
async fn dashboard_serves_the_apps_dead_letters_and_metrics_until_stopped() {
    let dir = TempDir::new("dashboard");
    let sub_url = dir.db_url("subscriber.db");
    let sdb = open::<member::Entity>(&sub_url, None).await;
    let broker = InProcess::new();
    let service = members("clitest_dash", &sdb, &broker).await;
    let publisher = MockPublisher::new("clitest", broker.clone());
    publisher.raw(&b"<b>not json</b>"[..]).await.unwrap();
    let stats = service
        .run_until_idle(Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(stats.dead_lettered, 1);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let pages = Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let looked = {
        let pages = pages.clone();
        async move {
            // Until it listens.
            for _ in 0..100 {
                if tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            for path in ["/dead-letters", "/metrics", "/workers"] {
                pages.lock().await.push(http_get(port, path).await);
            }
        }
    };
    let printed = tokio::time::timeout(
        Duration::from_secs(30),
        cli("clitest_dash", &broker).run_until(
            args(&["--database-url", &sub_url, "dashboard", "--listen", &listen]),
            looked,
        ),
    )
    .await
    .expect("the dashboard stops when told")
    .unwrap();
    assert!(
        printed.contains(&format!("dashboard on http://{listen}/")),
        "{printed}"
    );
    assert!(printed.contains("read-only: no --token"), "{printed}");
    assert!(printed.contains("dashboard stopped"), "{printed}");
    let pages = pages.lock().await;
    let (status, letters) = &pages[0];
    assert!(status.contains("200"), "{status}");
    assert!(letters.contains("Subscriber clitest_dash"), "{letters}");
    assert!(
        letters.contains("&lt;b&gt;not json&lt;/b&gt;"),
        "escaped: {letters}"
    );
    assert!(letters.contains("read-only"), "{letters}");
    let (status, metrics) = &pages[1];
    assert!(status.contains("200"), "{status}");
    assert!(
        metrics.contains("promiscuous_board_dead_letters{app=\"clitest_dash\"} 1"),
        "{metrics}"
    );
    assert!(pages[2].0.contains("200"), "{:?}", pages[2]);
    // Stopped: nothing listens any more.
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn status_shows_the_apps_workers_from_the_board_in_redis() {
    use promiscuous::board::{Board, Report, SubscriberReport, Worker};
    let url = std::env::var("PROMISCUOUS_REDIS_URL")
        .expect("PROMISCUOUS_REDIS_URL: run scripts/services.sh up and eval its env");
    let app = format!("clitest_status_{}", std::process::id());
    let board = promiscuous::redis::RedisBoard::new(
        promiscuous::Redis::new(&url, promiscuous::RedisConfig::default()).unwrap(),
    );
    let broker = InProcess::new();
    let dir = TempDir::new("status-board");
    let sdb = open(&dir.db_url("subscriber.db"), Some(member::Entity)).await;
    members(&app, &sdb, &broker).await;
    let cli = cli(&app, &broker);
    let status = || cli.run_with(args(&["--redis-url", &url, "status"]));
    let printed = status().await.unwrap();
    assert!(
        printed.contains(&format!("workers: none of {app} reports")),
        "{printed}"
    );
    let report = Report::new(
        format!("subscriber:{app}:h:1:1"),
        &app,
        0,
        Worker::Subscriber(SubscriberReport {
            runners: 4,
            prefetch: 100,
            connected: true,
            messages: 12,
            operations_applied: 12,
            dead_lettered: 0,
            recovered: 0,
            waiting_count: 3,
            in_flight: 5,
            queue_depth: Some(7),
            lag_ms: Some(1500),
            waiting: Vec::new(),
        }),
    );
    board.put(&report).await.unwrap();
    let printed = status().await.unwrap();
    board.remove(&report.id).await.unwrap();
    assert!(
        printed.contains(&format!(
            "worker {} pid {}: lag 1.5 s, 12 processed, 3 waiting, 5 in flight",
            report.host, report.pid
        )),
        "{printed}"
    );
}

/// An application's own commands, next to promiscuous'.
#[derive(clap::Subcommand, Debug, PartialEq)]
enum AppCommand {
    /// Create the application's tables and promiscuous' own.
    Setup {
        /// Also load the sample rows.
        #[arg(long)]
        seed: bool,
    },
}

/// One that takes the name of a promiscuous command.
#[derive(clap::Subcommand, Debug)]
enum Clashing {
    /// The application's own status.
    Status,
}

#[tokio::test]
async fn the_applications_commands_run_next_to_promiscuous_ones() {
    let broker = InProcess::new();
    let cli = cli("clitest_app", &broker).commands(|command: AppCommand, globals| async move {
        let url = globals.require_database_url()?.to_string();
        Ok(format!("{command:?} on {url} for {}", globals.app))
    });
    let printed = cli
        .run_with(args(&[
            "--database-url",
            "sqlite::memory:",
            "setup",
            "--seed",
        ]))
        .await
        .unwrap();
    assert_eq!(
        printed,
        "Setup { seed: true } on sqlite::memory: for clitest_app\n"
    );

    // The handler's error, with its context, and exit code 1.
    let message = failed(cli.run_with(args(&["setup"])).await);
    assert!(message.contains("--database-url"), "{message}");

    // One --help lists both.
    let help = cli.run_with(args(&["--help"])).await.unwrap();
    for command in ["setup", "subscribe", "publish", "status", "dead-letters"] {
        assert!(help.contains(command), "{command} missing from:\n{help}");
    }
    assert!(help.contains("Create the application's tables"), "{help}");

    // promiscuous' commands still run.
    let printed = cli.run_with(args(&["mocks"])).await.unwrap();
    assert!(printed.contains("endpoint"), "{printed}");
}

#[tokio::test]
async fn an_application_command_named_like_a_promiscuous_one_is_refused() {
    let cli = Cli::new("clitest_clash").commands(|_: Clashing, _| async { Ok(String::new()) });
    match cli.run_with(args(&["status"])).await {
        Err(CliError::Usage(m)) => {
            assert!(m.contains("`status`") && m.contains("rename it"), "{m}")
        }
        other => panic!("expected a usage error, got {other:?}"),
    }
}
