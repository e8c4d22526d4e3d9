//! The board and the live feed, as a dashboard sees them:
//! - a running subscriber reports the message it holds and the dependency it waits for;
//! - a relay reports what it relayed, its outbox backlog and whether it holds the lease;
//! - a worker killed with SIGKILL leaves the shared board (Redis) within the report's lifetime,
//!   one stopped cleanly at once;
//! - the feed carries an operation only once its transaction committed, and nothing of a
//!   message that failed.

mod common;

use std::time::{Duration, Instant};

use common::member;
use promiscuous::board::{self, Board, Report, Worker};
use promiscuous::redis::RedisBoard;
use promiscuous::transport::Outgoing;
use promiscuous::{Feed, InProcess, Publisher, Subscriber, Transport};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set, TransactionTrait};

/// A message of publisher `crowdtap` writing user `id` at `version` (so needing `version - 1`).
fn user_at(id: i64, version: u64, name: &str) -> Outgoing {
    let payload = serde_json::json!({
        "protocol": 1, "app": "crowdtap", "id": format!("m-{id}-{version}"),
        "timestamp": 0, "host": "test",
        "operations": [{
            "endpoint": "crowdtap/user", "types": ["User"], "id": id,
            "operation": if version == 1 { "create" } else { "update" }, "version": version,
            "attributes": {"name": name, "email": format!("{id}@example.org")}
        }],
        "dependencies": {"read": [], "write": [{"key": format!("crowdtap/user/{id}"), "version": version}]}
    });
    Outgoing {
        routing_key: "crowdtap".into(),
        payload: payload.to_string().into_bytes(),
        partition_key: None,
    }
}

/// The reports of this process's board matching `pick`, once one does (within 10 s).
async fn reported(pick: impl Fn(&Report) -> bool) -> Report {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(r) = board::local().current().into_iter().find(|r| pick(r)) {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "no such report on the board: {:#?}",
            board::local().current()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_subscriber_reports_what_a_waiting_message_waits_for() {
    let broker = InProcess::new();
    let db = common::subscriber_db().await;
    let app = "board_waiting_members";
    let running = Subscriber::new(app, db, broker.clone())
        .subscribe::<member::Model>()
        .dependency_timeout(Duration::from_secs(600))
        .start()
        .await
        .unwrap();
    // Version 2 of user 5 arrives before its version 1.
    broker.publish(&[user_at(5, 2, "Leia O.")]).await.unwrap();
    let report = reported(|r| {
        r.app == app && matches!(&r.worker, Worker::Subscriber(s) if !s.waiting.is_empty())
    })
    .await;
    let Worker::Subscriber(s) = &report.worker else {
        unreachable!()
    };
    assert_eq!(s.waiting_count, 1);
    let waiting = &s.waiting[0];
    assert_eq!(waiting.message_id, "m-5-2");
    assert_eq!(waiting.routing_key, "crowdtap");
    assert!(!waiting.recovering);
    assert_eq!(waiting.needs.len(), 1, "{waiting:?}");
    assert_eq!(waiting.needs[0].key, "crowdtap/user/5");
    assert_eq!(waiting.needs[0].version, 1);
    // Being looked up, or known never processed here.
    assert!(
        matches!(waiting.needs[0].have, None | Some(0)),
        "{waiting:?}"
    );
    assert_eq!(report.pid, std::process::id());
    assert!(report.id.starts_with(&format!("subscriber:{app}:")));

    // Version 1 arrives: both are applied, and the report says nothing waits.
    broker.publish(&[user_at(5, 1, "Leia")]).await.unwrap();
    reported(|r| {
        r.app == app
            && matches!(&r.worker, Worker::Subscriber(s) if s.waiting.is_empty() && s.operations_applied == 2)
    })
    .await;
    // Stopped: its report leaves the board.
    let id = report.id.clone();
    running.shutdown().await.unwrap();
    assert!(board::local().current().iter().all(|r| r.id != id));
}

#[tokio::test]
async fn a_relay_reports_what_it_relayed_and_its_backlog() {
    let broker = InProcess::new();
    let db = common::publisher_db().await;
    let publisher = Publisher::new(db.clone(), broker.clone())
        .start()
        .await
        .unwrap();
    for i in 0..3 {
        let txn = db.begin().await.unwrap();
        common::user::ActiveModel {
            name: Set(format!("relayed {i}")),
            email: Set(format!("r{i}@example.org")),
            password: Set("x".into()),
            ..Default::default()
        }
        .insert(&txn)
        .await
        .unwrap();
        txn.commit().await.unwrap();
    }
    publisher.flush().await.unwrap();
    let report = reported(|r| {
        matches!(&r.worker, Worker::Relay(x) if x.relayed >= 3 && x.backlog.is_some_and(|b| b.messages == 0))
    })
    .await;
    assert_eq!(report.app, "crowdtap", "named after the published apps");
    let Worker::Relay(relay) = &report.worker else {
        unreachable!()
    };
    assert_eq!(relay.holds_lease, None, "no lease");
    assert!(relay.healthy);
    publisher.shutdown().await.unwrap();
}

/// Redis from scripts/services.sh (this suite fails without it, in CI and out).
fn redis() -> promiscuous::Redis {
    let url = std::env::var("PROMISCUOUS_REDIS_URL")
        .expect("PROMISCUOUS_REDIS_URL: run scripts/services.sh up and eval its env");
    promiscuous::Redis::new(&url, promiscuous::RedisConfig::default()).unwrap()
}

#[tokio::test]
async fn a_killed_worker_leaves_the_shared_board_and_a_stopped_one_at_once() {
    let shared = RedisBoard::new(redis());
    let amqp = std::env::var("PROMISCUOUS_AMQP_URL")
        .expect("PROMISCUOUS_AMQP_URL: run scripts/services.sh up and eval its env");
    let exe = std::env::current_exe().unwrap();
    let example = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/subscriber");
    assert!(
        example.exists(),
        "{} (cargo test builds it)",
        example.display()
    );
    let dir = std::env::temp_dir().join(format!("promiscuous-board-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (n, stop) in [("killed", "KILL"), ("stopped", "INT")] {
        let app = format!("board_{n}_{}", std::process::id());
        let db = format!(
            "sqlite://{}?mode=rwc",
            dir.join(format!("{n}.db")).display()
        );
        let mut child = std::process::Command::new(&example)
            .env("PROMISCUOUS_AMQP_URL", &amqp)
            .args([
                "--app",
                &app,
                "--db",
                &db,
                "--exchange",
                &format!("board_{n}"),
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        let on_board = |reports: &[Report]| reports.iter().any(|r| r.app == app && r.pid == pid);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !on_board(&shared.reports().await.unwrap()) {
            assert!(Instant::now() < deadline, "{app} never reported to Redis");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        std::process::Command::new("kill")
            .args([&format!("-{stop}"), &pid.to_string()])
            .status()
            .unwrap();
        child.wait().unwrap();
        let gone = Instant::now();
        while on_board(&shared.reports().await.unwrap()) {
            assert!(
                gone.elapsed() < board::REPORT_TTL + Duration::from_secs(2),
                "{app} ({n}) still on the board after {:?}",
                gone.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if stop == "INT" {
            assert!(
                gone.elapsed() < Duration::from_secs(1),
                "a worker stopped cleanly removes its report at once ({:?})",
                gone.elapsed()
            );
        }
    }
}

#[tokio::test]
async fn the_feed_carries_only_what_committed() {
    // A file, so that the feed's reader looks at the database through another connection
    // than the applier's.
    let path = std::env::temp_dir().join(format!("promiscuous-feed-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let db = sea_orm::Database::connect(format!("sqlite://{}?mode=rwc", path.display()))
        .await
        .unwrap();
    promiscuous_test::create_table(&db, member::Entity)
        .await
        .unwrap();
    // Its own pool: it never waits for the applier's connection.
    let reader = sea_orm::Database::connect(format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let broker = InProcess::new();
    let feed = Feed::new(1000);
    let (_, mut live) = feed.resume(None);
    let running = Subscriber::new("feed_members", db.clone(), broker.clone())
        .subscribe::<member::Model>()
        .retries(1, Duration::from_millis(1))
        .feed(feed.clone())
        .start()
        .await
        .unwrap();
    // 50 creates, one of them failing in its callback (dead-lettered: never in the feed).
    let n = 50;
    let batch: Vec<Outgoing> = (1..=n)
        .map(|i| {
            let name = if i == 25 {
                "fail-always-feed".to_string()
            } else {
                format!("feed {i}")
            };
            user_at(800_000 + i, 1, &name)
        })
        .collect();
    broker.publish(&batch).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < (n - 1) as usize {
        let event = tokio::time::timeout(Duration::from_secs(20), live.recv())
            .await
            .expect("an event within 20 s")
            .unwrap();
        // Committed: visible to another connection at once.
        let id = event.instance.as_i64().unwrap() as i32;
        let row = member::Entity::find()
            .filter(member::Column::CrowdtapId.eq(id))
            .one(&reader)
            .await
            .unwrap();
        assert!(row.is_some(), "event {} before its commit", event.id);
        seen.push(id);
    }
    assert!(
        !seen.contains(&800_025),
        "a failed message is not in the feed"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(500), live.recv())
            .await
            .is_err(),
        "nothing else"
    );
    running.shutdown().await.unwrap();
    let _ = std::fs::remove_file(&path);
}
