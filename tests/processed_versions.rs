//! Versions processed without being applied (dead-lettered, ignored) are kept in the
//! subscriber's database (`promiscuous_processed`), apart from the applied ones
//! (`promiscuous_applied`): after a restart without a shared version store, messages depending
//! on them are applied at once (no recovery), and they still count as never applied, so a
//! replayed dead letter, or an instance of an endpoint followed after the restart, is applied.
//! Each scenario runs on SQLite (a database file) and on PostgreSQL (skipped without
//! `PROMISCUOUS_POSTGRES_URL`), with a real restart: a new subscriber on a new connection.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::sql_servers::fresh_database_url;
use promiscuous::pipeline::{Applied, Applier, DeadLetter, schema, tables};
use promiscuous::{
    BoxError, Callbacks, Ctx, Dependency, InProcess, Message, OperationKind, SubscriberService,
};
use promiscuous_sea_orm::subscriber::dead_letters::{self, Replayed};
use promiscuous_test::{IDLE, MockPublisher};
use sea_orm::{
    ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, EntityTrait,
    QueryFilter, Schema,
};
use serde_json::json;

const ITEM: &str = "shop/item";
const INVOICE: &str = "shop/invoice";
/// Long, so that a message released by recovery instead of its dependency would show.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Follows `shop/item`; its `after_create` refuses the names in [`REFUSED`].
mod item_copy {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "item_copies")]
    #[promiscuous::subscribe(name, from = "shop/item", foreign_key = "shop_id", callbacks)]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        #[sea_orm(unique)]
        pub shop_id: i32,
        pub name: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Follows `shop/invoice` (only after the restart, in some scenarios).
mod invoice_copy {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "invoice_copies")]
    #[promiscuous::subscribe(total, from = "shop/invoice", foreign_key = "shop_id")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        #[sea_orm(unique)]
        pub shop_id: i32,
        pub total: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Item names whose creation the callback refuses (until a test removes them).
static REFUSED: Mutex<Option<HashSet<String>>> = Mutex::new(None);

fn refuse(name: &str, refused: bool) {
    let mut set = REFUSED.lock().unwrap();
    let set = set.get_or_insert_with(HashSet::new);
    if refused {
        set.insert(name.to_string());
    } else {
        set.remove(name);
    }
}

impl Callbacks for item_copy::Model {
    async fn after_create(&self, _ctx: &Ctx<'_>) -> Result<(), BoxError> {
        let refused = REFUSED
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|s| s.contains(&self.name));
        if refused {
            return Err(format!("refusing {}", self.name).into());
        }
        Ok(())
    }
}

/// Where a scenario keeps its subscriber database.
struct Backend {
    url: String,
    /// SQLite: the directory of the database file, removed at the end.
    dir: Option<std::path::PathBuf>,
}

impl Backend {
    fn sqlite(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "promiscuous-processed-{}-{test}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            url: format!("sqlite://{}?mode=rwc", dir.join("subscriber.db").display()),
            dir: Some(dir),
        }
    }

    /// A fresh database on the SQL server at `server`.
    async fn server(server: &str, test: &str) -> Self {
        let (db, url) = fresh_database_url(server, &format!("processed_{test}")).await;
        db.close().await.unwrap();
        Self { url, dir: None }
    }

    /// A new connection, as a restarted process opens it. SQLite: one connection, so that
    /// concurrent runners never find the file locked.
    async fn connect(&self) -> DatabaseConnection {
        let mut options = ConnectOptions::new(self.url.as_str());
        options.sqlx_logging(false);
        if self.dir.is_some() {
            options.max_connections(1);
        }
        let db = Database::connect(options).await.unwrap();
        let schema = Schema::new(db.get_database_backend());
        for mut table in [
            schema.create_table_from_entity(item_copy::Entity),
            schema.create_table_from_entity(invoice_copy::Entity),
        ] {
            table.if_not_exists();
            db.execute(&table).await.unwrap();
        }
        db
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A subscriber process of `app`: one try per message (a failure is dead-lettered at once),
/// the long [`TIMEOUT`], no shared version store.
async fn start(
    app: &str,
    db: &DatabaseConnection,
    broker: &InProcess,
    follow_invoices: bool,
) -> SubscriberService {
    let mut builder = promiscuous::Subscriber::new(app, db.clone(), broker.clone())
        .subscribe::<item_copy::Model>()
        .retries(1, Duration::from_millis(1))
        .dependency_timeout(TIMEOUT)
        .error_notifier(Arc::new(|_| {}));
    if follow_invoices {
        builder = builder.subscribe::<invoice_copy::Model>();
    }
    builder.build().await.unwrap()
}

/// Stops `sub`: its process ends, and with it its connection.
async fn stop(sub: SubscriberService, db: DatabaseConnection) {
    drop(sub);
    db.close().await.unwrap();
}

/// Runs `sub` until idle; asserts that nothing waited for recovery: no message was released by
/// the dependency timeout, and everything was done well before it.
async fn run_without_recovery(sub: &SubscriberService) -> promiscuous::Stats {
    let started = Instant::now();
    let stats = sub.run_until_idle(IDLE).await.unwrap();
    let took = started.elapsed();
    assert_eq!(stats.recovered, 0, "{stats:?}");
    assert!(took < TIMEOUT / 3, "took {took:?}: {stats:?}");
    stats
}

/// An item creation, reading `dependency` first.
fn item_after(mock: &mut MockPublisher, id: i32, name: &str, dependency: (&str, u64)) -> Message {
    let mut m = mock.message(
        ITEM,
        json!(id),
        OperationKind::Create,
        Some(json!({ "name": name })),
    );
    m.dependencies.read.push(Dependency {
        key: dependency.0.into(),
        version: dependency.1,
    });
    m
}

async fn item_name(db: &DatabaseConnection, shop_id: i32) -> Option<String> {
    item_copy::Entity::find()
        .filter(item_copy::Column::ShopId.eq(shop_id))
        .one(db)
        .await
        .unwrap()
        .map(|r| r.name)
}

async fn invoice_total(db: &DatabaseConnection, shop_id: i32) -> Option<i32> {
    invoice_copy::Entity::find()
        .filter(invoice_copy::Column::ShopId.eq(shop_id))
        .one(db)
        .await
        .unwrap()
        .map(|r| r.total)
}

/// (1) A dead-lettered v1 of item 1 is processed after a restart: a message depending on it is
/// applied at once. (2) Replaying the dead letter afterwards still applies it.
async fn dead_lettered_versions_survive_a_restart(backend: Backend, app: &str) {
    let broker = InProcess::new();
    let mut mock = MockPublisher::new("shop", broker.clone());
    let refused = format!("refused-{app}");
    refuse(&refused, true);

    let db = backend.connect().await;
    let sub = start(app, &db, &broker, false).await;
    mock.create(ITEM, json!(1), json!({ "name": refused }))
        .await
        .unwrap();
    let stats = sub.run_until_idle(IDLE).await.unwrap();
    assert_eq!((stats.dead_lettered, stats.operations_applied), (1, 0));
    let applier = sub.applier();
    assert_eq!(applier.applied_version("shop/item/1").await.unwrap(), None);
    assert_eq!(
        applier.processed_version("shop/item/1").await.unwrap(),
        Some(1)
    );
    stop(sub, db).await;

    // A new process, the same database, no shared store: item 2 read item 1 at v1.
    let db = backend.connect().await;
    let sub = start(app, &db, &broker, false).await;
    let after = item_after(&mut mock, 2, "after the dead letter", ("shop/item/1", 1));
    mock.send(&after).await.unwrap();
    let stats = run_without_recovery(&sub).await;
    assert_eq!((stats.operations_applied, stats.dead_lettered), (1, 0));
    assert_eq!(
        item_name(&db, 2).await.as_deref(),
        Some("after the dead letter")
    );

    // Once the cause is fixed, the replay applies v1: dead-lettered is not applied.
    refuse(&refused, false);
    let replayed = sub.applier().replay_dead_letters().await.unwrap();
    assert_eq!(replayed.len(), 1, "{replayed:?}");
    assert_eq!(
        replayed[0].1,
        Replayed::Applied(Applied {
            applied: 1,
            ..Applied::default()
        })
    );
    assert_eq!(item_name(&db, 1).await, Some(refused));
    let applier = sub.applier();
    assert_eq!(
        applier.applied_version("shop/item/1").await.unwrap(),
        Some(1)
    );
    assert_eq!(dead_letters::count(&db).await.unwrap(), 0);
    stop(sub, db).await;
}

/// (3) Versions of an endpoint nobody follows are processed after a restart too.
async fn ignored_versions_survive_a_restart(backend: Backend, app: &str) {
    let broker = InProcess::new();
    let mut mock = MockPublisher::new("shop", broker.clone());
    let db = backend.connect().await;
    let sub = start(app, &db, &broker, false).await;
    mock.create(INVOICE, json!(5), json!({ "total": 1 }))
        .await
        .unwrap();
    mock.update(INVOICE, json!(5), json!({ "total": 2 }))
        .await
        .unwrap();
    let stats = run_without_recovery(&sub).await;
    assert_eq!((stats.operations_ignored, stats.dead_lettered), (2, 0));
    let applier = sub.applier();
    assert_eq!(
        applier.applied_version("shop/invoice/5").await.unwrap(),
        None
    );
    assert_eq!(
        applier.processed_version("shop/invoice/5").await.unwrap(),
        Some(2)
    );
    stop(sub, db).await;

    let db = backend.connect().await;
    let sub = start(app, &db, &broker, false).await;
    let after = item_after(&mut mock, 3, "after the invoice", ("shop/invoice/5", 2));
    mock.send(&after).await.unwrap();
    let stats = run_without_recovery(&sub).await;
    assert_eq!(stats.operations_applied, 1, "{stats:?}");
    assert_eq!(
        item_name(&db, 3).await.as_deref(),
        Some("after the invoice")
    );
    stop(sub, db).await;
}

/// (4) An ignored version is not an applied one: once the endpoint is followed (a new release,
/// after a restart), a redelivery of a version ignored before the restart (in flight during the
/// deployment) is applied, not skipped as a duplicate; an initial-sync resend after it is
/// applied at once.
async fn an_endpoint_followed_after_a_restart_applies_what_was_ignored(
    backend: Backend,
    app: &str,
) {
    let broker = InProcess::new();
    let mut mock = MockPublisher::new("shop", broker.clone());
    let db = backend.connect().await;
    let sub = start(app, &db, &broker, false).await;
    mock.create(INVOICE, json!(6), json!({ "total": 10 }))
        .await
        .unwrap();
    let v2 = mock
        .update(INVOICE, json!(6), json!({ "total": 20 }))
        .await
        .unwrap();
    let stats = run_without_recovery(&sub).await;
    assert_eq!(stats.operations_ignored, 2, "{stats:?}");
    stop(sub, db).await;

    let db = backend.connect().await;
    let sub = start(app, &db, &broker, true).await;
    mock.send(&v2).await.unwrap();
    let stats = run_without_recovery(&sub).await;
    assert_eq!(
        (stats.operations_applied, stats.operations_skipped),
        (1, 0),
        "{stats:?}"
    );
    assert_eq!(invoice_total(&db, 6).await, Some(20));
    let mut sync = mock.message(
        INVOICE,
        json!(6),
        OperationKind::Update,
        Some(json!({ "total": 30 })),
    );
    sync.operations[0].sync = true;
    mock.send(&sync).await.unwrap();
    let stats = run_without_recovery(&sub).await;
    assert_eq!(stats.operations_applied, 2, "{stats:?}");
    assert_eq!(invoice_total(&db, 6).await, Some(30));
    let applier = sub.applier();
    assert_eq!(
        applier.applied_version("shop/invoice/6").await.unwrap(),
        Some(3)
    );
    stop(sub, db).await;
}

/// A database set up by an older promiscuous (no `promiscuous_processed`) is upgraded by
/// `setup_subscriber`, its applied versions kept; a dead letter is stored together with its
/// processed versions, or not at all.
async fn older_schemas_are_upgraded_and_dead_letters_are_atomic(backend: Backend, app: &str) {
    let db = backend.connect().await;
    schema::setup_subscriber(&db).await.unwrap();
    db.execute_unprepared("DROP TABLE promiscuous_processed")
        .await
        .unwrap();
    tables::applied::Entity::insert(tables::applied::ActiveModel {
        key: sea_orm::Set("shop/item/7".into()),
        version: sea_orm::Set(4),
    })
    .exec_without_returning(&db)
    .await
    .unwrap();
    let broker = InProcess::new();
    let sub = start(app, &db, &broker, false).await;
    let applier = sub.applier();
    assert_eq!(
        applier.processed_version("shop/item/7").await.unwrap(),
        Some(4)
    );
    assert!(
        tables::processed::Entity::find()
            .all(&db)
            .await
            .unwrap()
            .is_empty()
    );

    let letter = DeadLetter {
        queue: app.into(),
        routing_key: "shop".into(),
        user_id: None,
        payload: b"{}".to_vec(),
        error: "test".into(),
        attempts: 1,
        at_ms: 0,
        versions: vec![("shop/item/8".into(), 2), ("shop/item/8".into(), 3)],
    };
    // The processed versions cannot be written: the letter is not stored either.
    db.execute_unprepared("DROP TABLE promiscuous_processed")
        .await
        .unwrap();
    assert!(applier.dead_letter(letter.clone()).await.is_err());
    assert_eq!(dead_letters::count(&db).await.unwrap(), 0);
    schema::setup_subscriber(&db).await.unwrap();
    applier.dead_letter(letter).await.unwrap();
    assert_eq!(dead_letters::count(&db).await.unwrap(), 1);
    assert_eq!(
        applier
            .versions(&["shop/item/8".into(), "shop/item/7".into()])
            .await
            .unwrap(),
        vec![3, 4]
    );
    assert_eq!(applier.applied_version("shop/item/8").await.unwrap(), None);
    stop(sub, db).await;
}

#[tokio::test]
async fn dead_lettered_versions_survive_a_restart_sqlite() {
    let test = "dead_sqlite";
    dead_lettered_versions_survive_a_restart(Backend::sqlite(test), &format!("pv_{test}")).await;
}

#[tokio::test]
async fn ignored_versions_survive_a_restart_sqlite() {
    let test = "ignored_sqlite";
    ignored_versions_survive_a_restart(Backend::sqlite(test), &format!("pv_{test}")).await;
}

#[tokio::test]
async fn an_endpoint_followed_after_a_restart_applies_what_was_ignored_sqlite() {
    let test = "follow_sqlite";
    an_endpoint_followed_after_a_restart_applies_what_was_ignored(
        Backend::sqlite(test),
        &format!("pv_{test}"),
    )
    .await;
}

#[tokio::test]
async fn older_schemas_are_upgraded_and_dead_letters_are_atomic_sqlite() {
    let test = "schema_sqlite";
    older_schemas_are_upgraded_and_dead_letters_are_atomic(
        Backend::sqlite(test),
        &format!("pv_{test}"),
    )
    .await;
}

on_both_servers! {
    dead_lettered_versions_survive_a_restart_on_a_server;
    ignored_versions_survive_a_restart_on_a_server;
    an_endpoint_followed_after_a_restart_applies_what_was_ignored_on_a_server;
    older_schemas_are_upgraded_and_dead_letters_are_atomic_on_a_server;
}

async fn dead_lettered_versions_survive_a_restart_on_a_server(url: &str) {
    let test = "dead_server";
    let backend = Backend::server(url, test).await;
    dead_lettered_versions_survive_a_restart(backend, &server_tag(url, test)).await;
}

async fn ignored_versions_survive_a_restart_on_a_server(url: &str) {
    let test = "ignored_server";
    let backend = Backend::server(url, test).await;
    ignored_versions_survive_a_restart(backend, &server_tag(url, test)).await;
}

async fn an_endpoint_followed_after_a_restart_applies_what_was_ignored_on_a_server(url: &str) {
    let test = "follow_server";
    let backend = Backend::server(url, test).await;
    an_endpoint_followed_after_a_restart_applies_what_was_ignored(backend, &server_tag(url, test))
        .await;
}

async fn older_schemas_are_upgraded_and_dead_letters_are_atomic_on_a_server(url: &str) {
    let test = "schema_server";
    let backend = Backend::server(url, test).await;
    older_schemas_are_upgraded_and_dead_letters_are_atomic(backend, &server_tag(url, test)).await;
}

/// The scenario's tag (its queue, the names its callbacks log) on the server at `url`: the
/// callbacks' log is the process's, and both servers' tests run at once.
fn server_tag(url: &str, test: &str) -> String {
    format!("pv_{test}_{}", url.split(':').next().unwrap())
}
