//! The dashboard in a real browser (Debian's Chromium, driven by `tests/browser/dashboard.mjs`)
//! while the two-process example runs as a newcomer runs it: `examples/subscriber` with
//! `--listen` (the live page and the dashboard) and `examples/publisher` writing, over RabbitMQ
//! and Redis. The browser sees the counters move live, replays a dead letter with a click and
//! sees it gone, and sees the live page follow a change. The screenshot is left in a temp
//! directory (`DASHBOARD_SHOT` overrides where: `docs/dashboard.png` is made that way).

#[path = "common/browser.rs"]
mod browser;

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use promiscuous::pipeline::tables::dead_letters;
use sea_orm::{ActiveModelTrait, Database, Set};

/// A process killed when the test ends, however it ends.
struct Running(Child, &'static str);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The example binary `name`, built by `cargo test` next to the test binaries.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let debug = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/debug");
    let path = debug.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: cargo test builds the examples",
        path.display()
    );
    path
}

fn servers() -> (String, String) {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: run scripts/services.sh up and eval \"$(scripts/services.sh env)\" (scripts/test does)")
        })
    };
    (var("PROMISCUOUS_AMQP_URL"), var("PROMISCUOUS_REDIS_URL"))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn wait_for_port(port: u16, process: &mut Running) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = process.0.try_wait() {
            panic!("{} exited before listening: {status}", process.1);
        }
        assert!(
            Instant::now() < deadline,
            "{} does not listen on {port}",
            process.1
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A create of user `id`, as the publisher `crowdtap` sends it.
fn create_user(id: i64, name: &str) -> Vec<u8> {
    serde_json::json!({
        "protocol": 1, "app": "crowdtap", "id": format!("replay-{id}"),
        "timestamp": 0, "host": "test",
        "operations": [{
            "endpoint": "crowdtap/user", "types": ["User"], "id": id,
            "operation": "create", "version": 1,
            "attributes": {"name": name, "email": format!("{id}@example.org")}
        }],
        "dependencies": {"read": [], "write": [{"key": format!("crowdtap/user/{id}"), "version": 1}]}
    })
    .to_string()
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_and_the_live_page_in_a_browser() {
    let (amqp, redis) = servers();
    let dir = browser::temp_dir("dashboard");
    let tag = format!("{}_{}", std::process::id(), now_ms());
    let app = format!("browser_members_{tag}");
    let exchange = format!("promiscuous_browser_{tag}");
    let subscriber_db = format!("sqlite://{}?mode=rwc", dir.join("subscriber.db").display());
    let publisher_db = format!("sqlite://{}?mode=rwc", dir.join("publisher.db").display());
    let port = free_port();
    let token = "browser-test-token";
    let common = |c: &mut Command| {
        c.env("PROMISCUOUS_AMQP_URL", &amqp)
            .env("PROMISCUOUS_REDIS_URL", &redis)
            .args(["--exchange", &exchange])
            .stdin(Stdio::null())
            .stdout(Stdio::null());
    };

    let mut command = Command::new(example("subscriber"));
    common(&mut command);
    command.args(["--app", &app, "--db", &subscriber_db, "--token", token]);
    command.args(["--listen", &format!("127.0.0.1:{port}")]);
    let mut subscriber = Running(
        command.spawn().expect("the subscriber example"),
        "subscriber",
    );
    wait_for_port(port, &mut subscriber);

    // A dead letter that applies once replayed: the create of a user nobody published.
    let db = Database::connect(&subscriber_db)
        .await
        .expect("the subscriber's database");
    let letter = dead_letters::ActiveModel {
        queue: Set(app.clone()),
        routing_key: Set("crowdtap".into()),
        user_id: Set(None),
        payload: Set(create_user(990001, "Replayed user")),
        error: Set("a callback failed (made up by the test)".into()),
        attempts: Set(5),
        at_ms: Set(now_ms()),
        ..Default::default()
    }
    .insert(&db)
    .await
    .expect("a dead letter");

    let mut command = Command::new(example("publisher"));
    common(&mut command);
    command.args([
        "--db",
        &publisher_db,
        "--writes",
        "100000",
        "--interval-ms",
        "150",
    ]);
    let _publisher = Running(command.spawn().expect("the publisher example"), "publisher");

    let shot = std::env::var("DASHBOARD_SHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| dir.join("dashboard.png"));
    let out = tokio::task::spawn_blocking({
        let env = vec![
            ("BASE", format!("http://127.0.0.1:{port}")),
            ("APP", app.clone()),
            ("TOKEN", token.to_string()),
            ("LETTER", letter.id.to_string()),
            ("SHOT", shot.display().to_string()),
        ];
        move || browser::run_node("dashboard.mjs", &env)
    })
    .await
    .expect("the browser script");
    println!("{out}");
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "a PNG at {}",
        shot.display()
    );
    drop(subscriber);
}
