//! The production pipeline against the real servers (RabbitMQ, Redis) that scripts/services.sh
//! starts: replication, a broker restart mid-stream, a publisher killed between commit and
//! publish, duplicate deliveries. In CI a missing server fails these tests; elsewhere they say
//! they were skipped.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::servers::{cleanup, converge, rabbit, rows, servers, unique, write};
use common::{member, publisher_db, subscriber_db, user};
use promiscuous::pipeline::{schema, tables};
use promiscuous::transport::Outgoing;
use promiscuous::{
    Publisher, Redis, RedisConfig, RedisLease, RedisVersions, Subscriber, Transport,
};
use sea_orm::{EntityTrait, TransactionTrait};

#[tokio::test]
async fn replicates_create_update_destroy_over_rabbitmq_and_redis() {
    let Some(s) = servers("replication") else {
        return;
    };
    let name = unique("replication");
    let (pdb, sdb) = (publisher_db().await, subscriber_db().await);
    let redis = Redis::new(
        &s.redis,
        RedisConfig {
            namespace: name.clone(),
            ..RedisConfig::default()
        },
    )
    .unwrap();
    let versions = RedisVersions::new(redis.clone(), &name);
    let sub = Subscriber::new(name.clone(), sdb.clone(), rabbit(&s, &name))
        .subscribe::<member::Model>()
        .versions(Arc::new(versions.clone()))
        .build()
        .await
        .unwrap()
        .start();
    let publisher = Publisher::new(pdb.clone(), rabbit(&s, &name))
        .lease(Arc::new(RedisLease::new(
            redis,
            "outbox",
            Duration::from_secs(10),
        )))
        .start()
        .await
        .unwrap();
    for i in 0..30 {
        write(&pdb, i).await;
    }
    let txn = pdb.begin().await.unwrap();
    let first = user::Entity::find().one(&txn).await.unwrap().unwrap();
    sea_orm::ModelTrait::delete(first.clone(), &txn)
        .await
        .unwrap();
    txn.commit().await.unwrap();
    converge(&pdb, &sdb, Duration::from_secs(20)).await;
    assert!(publisher.healthy() && sub.healthy());
    use promiscuous::pipeline::VersionStore;
    let key = format!("crowdtap/user/{}", first.id);
    let applied = sub.service().applier().applied_version(&key).await.unwrap();
    assert_eq!(
        versions.get(&[key]).await.unwrap(),
        vec![applied.unwrap()],
        "Redis mirrors applied versions"
    );
    publisher.shutdown().await.unwrap();
    let stats = sub.shutdown().await.unwrap();
    assert_eq!(stats.dead_lettered, 0);
    cleanup(&s, &name).await;
}

#[tokio::test]
async fn a_duplicate_delivery_is_applied_once() {
    let Some(s) = servers("duplicates") else {
        return;
    };
    let name = unique("duplicates");
    let (pdb, sdb) = (publisher_db().await, subscriber_db().await);
    let sub = Subscriber::new(name.clone(), sdb.clone(), rabbit(&s, &name))
        .subscribe::<member::Model>()
        .build()
        .await
        .unwrap();
    schema::setup_publisher(&pdb).await.unwrap();
    for i in 0..10 {
        write(&pdb, i).await;
    }
    // Every outbox row is sent twice (as after a relay crash between confirm and delete).
    let copies: Vec<Outgoing> = promiscuous::pipeline::outbox_messages(&pdb, None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| Outgoing {
            routing_key: r.routing_key,
            payload: r.message.encode(),
            partition_key: None,
        })
        .collect();
    let transport = rabbit(&s, &name);
    transport.publish(&copies).await.unwrap();
    let publisher = Publisher::new(pdb.clone(), rabbit(&s, &name))
        .start()
        .await
        .unwrap();
    publisher.flush().await.unwrap();
    // Consume until both copies of everything arrived (bounded).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut total = promiscuous::Stats::default();
    while total.messages < 2 * copies.len() && tokio::time::Instant::now() < deadline {
        total = sub
            .run_until_idle(Duration::from_millis(200))
            .await
            .unwrap();
    }
    assert_eq!(
        (total.operations_applied, total.operations_skipped),
        (copies.len(), copies.len()),
        "{total:?}"
    );
    let (published, replicated) = rows(&pdb, &sdb).await;
    assert_eq!(replicated, published);
    cleanup(&s, &name).await;
}

/// Run by `a_publisher_killed_after_commit_loses_nothing` in a child process.
#[tokio::test]
async fn child_publisher_process() {
    let Ok(path) = std::env::var("PROMISCUOUS_CHILD_DB") else {
        return;
    };
    let db = sea_orm::Database::connect(format!("sqlite://{path}?mode=rwc"))
        .await
        .unwrap();
    promiscuous_test::create_table(&db, user::Entity)
        .await
        .unwrap();
    schema::setup_publisher(&db).await.unwrap();
    // No relay yet (it would start after these commits): killed between commit and publish.
    for i in 0..25 {
        write(&db, i).await;
    }
    println!("CHILD-COMMITTED");
    std::future::pending::<()>().await;
}

#[tokio::test]
async fn a_publisher_killed_after_commit_loses_nothing() {
    let Some(s) = servers("kill9") else { return };
    let name = unique("kill9");
    let path = std::env::temp_dir().join(format!("{name}.db"));
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_publisher_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PROMISCUOUS_CHILD_DB", &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let committed = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout)
            .lines()
            .any(|l| l.map(|l| l.contains("CHILD-COMMITTED")).unwrap_or(false))
    });
    let committed = tokio::time::timeout(Duration::from_secs(60), committed)
        .await
        .expect("child commits")
        .unwrap();
    assert!(committed, "the child publisher committed its writes");
    child.kill().unwrap(); // SIGKILL: no cleanup, no relay ran
    child.wait().unwrap();

    let pdb = sea_orm::Database::connect(format!("sqlite://{}?mode=rwc", path.display()))
        .await
        .unwrap();
    let waiting = tables::outbox::Entity::find()
        .all(&pdb)
        .await
        .unwrap()
        .len();
    assert_eq!(waiting, 25, "the committed writes wait in the outbox");
    let sdb = subscriber_db().await;
    let sub = Subscriber::new(name.clone(), sdb.clone(), rabbit(&s, &name))
        .subscribe::<member::Model>()
        .build()
        .await
        .unwrap()
        .start();
    // The next start of the publisher process publishes them.
    let publisher = Publisher::new(pdb.clone(), rabbit(&s, &name))
        .start()
        .await
        .unwrap();
    converge(&pdb, &sdb, Duration::from_secs(20)).await;
    // The subscriber may apply a message before the relay deletes its row: wait for that.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while publisher.pending().await.unwrap() != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay did not empty its outbox"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    publisher.shutdown().await.unwrap();
    sub.shutdown().await.unwrap();
    let _ = std::fs::remove_file(&path);
    cleanup(&s, &name).await;
}
