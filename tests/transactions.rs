//! Publisher transactions: all the published writes of one database transaction become one
//! message (per publisher app), their operations in write order, written to the outbox in that
//! transaction; a subscriber applies all the operations of a message in one transaction. So a
//! subscriber never shows part of a transaction, a failing callback applies nothing of it, a
//! rolled-back transaction or savepoint publishes nothing of what it rolled back, and a write
//! outside a transaction is refused.
//!
//! Every scenario runs three times: on SQLite (`sqlite::…`), on PostgreSQL (`postgres::…`) and on
//! MariaDB (`mariadb::…`), publisher and subscriber each in a database of their own on the
//! servers (PROMISCUOUS_POSTGRES_URL, PROMISCUOUS_MARIADB_URL, started by scripts/services.sh: in
//! CI a missing server fails those tests, elsewhere they say they were skipped), all over the
//! in-process broker. What the relay published is read from a queue
//! bound to every app (the tap), so the tests see the messages exactly as they went out.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::time::Duration;

use promiscuous::pipeline::{schema, tables};
use promiscuous::transport::QueueSpec;
use promiscuous::{
    BoxError, Callbacks, Change, Ctx, InProcess, Message, OperationKind, Publisher, Subscriber,
    SubscriberService, Transport,
};
use sea_orm::{
    AccessMode, ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend,
    EntityTrait, IntoActiveModel, IsolationLevel, ModelTrait, PaginatorTrait, QueryFilter,
    QueryOrder, Set, Statement, TransactionTrait,
};
use serde_json::{Value, json};

/// Items per order in the scenarios with orders.
const ITEMS: usize = 20;

// ---------------------------------------------------------------------------------------------
// Models

/// The publisher: orders and their items (app `shop`), invoices (app `billing`), users (`shop`).
mod publisher {
    pub mod order {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
        #[sea_orm(table_name = "orders")]
        #[promiscuous::publish(number, title, to = "shop/order")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i32,
            pub number: i32,
            pub title: String,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}
    }

    pub mod item {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
        #[sea_orm(table_name = "items")]
        #[promiscuous::publish(order_id, name, to = "shop/item")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i32,
            pub order_id: i32,
            pub name: String,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}
    }

    pub mod invoice {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
        #[sea_orm(table_name = "invoices")]
        #[promiscuous::publish(order_id, amount, to = "billing/invoice")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i32,
            pub order_id: i32,
            pub amount: i64,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}
    }

    pub mod user {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
        #[sea_orm(table_name = "users")]
        #[promiscuous::publish(name, email, city, to = "shop/user")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i32,
            pub name: String,
            pub email: String,
            pub city: String,
            pub password: String,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}
    }
}

/// The subscriber: a copy of each, keyed by the publisher's id, every callback recorded.
mod subscriber {
    pub mod order {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
        #[sea_orm(table_name = "shop_orders")]
        #[promiscuous::subscribe(number, title, from = "shop/order", callbacks)]
        pub struct Model {
            #[sea_orm(primary_key, auto_increment = false)]
            pub id: i32,
            pub number: i32,
            pub title: String,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }

    pub mod item {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
        #[sea_orm(table_name = "shop_items")]
        #[promiscuous::subscribe(order_id, name, from = "shop/item", callbacks)]
        pub struct Model {
            #[sea_orm(primary_key, auto_increment = false)]
            pub id: i32,
            pub order_id: i32,
            pub name: String,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }

    pub mod invoice {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
        #[sea_orm(table_name = "billing_invoices")]
        #[promiscuous::subscribe(order_id, amount, from = "billing/invoice", callbacks)]
        pub struct Model {
            #[sea_orm(primary_key, auto_increment = false)]
            pub id: i32,
            pub order_id: i32,
            pub amount: i64,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }

    pub mod customer {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
        #[sea_orm(table_name = "customers")]
        #[promiscuous::subscribe(name, email, city, from = "shop/user", callbacks)]
        pub struct Model {
            #[sea_orm(primary_key, auto_increment = false)]
            pub id: i32,
            pub name: String,
            pub email: String,
            pub city: String,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }
}

use publisher::{invoice, item, order, user};
use subscriber as copy;

// ---------------------------------------------------------------------------------------------
// What the callbacks saw

/// One callback run: which, for which message and operation, what the local row was then.
#[derive(Clone, Debug)]
struct Seen {
    callback: &'static str,
    message: String,
    key: String,
    version: u64,
    changes: BTreeMap<String, Change>,
    row: String,
}

/// Every callback run, by every test of this binary (each test picks its own messages).
static SEEN: Mutex<Vec<Seen>> = Mutex::new(Vec::new());

fn record(callback: &'static str, ctx: &Ctx<'_>, row: String) {
    SEEN.lock().unwrap().push(Seen {
        callback,
        message: ctx.message.id.clone(),
        key: ctx.operation.key(),
        version: ctx.operation.version,
        changes: ctx.changes().clone(),
        row,
    });
}

/// The callbacks run for the operations of `messages`, once each, in the order they ran
/// (callbacks are at least once: a batch applied again runs them again).
fn seen_in(messages: &[Message]) -> Vec<Seen> {
    let ids: HashSet<&str> = messages.iter().map(|m| m.id.as_str()).collect();
    let mut once = HashSet::new();
    SEEN.lock()
        .unwrap()
        .iter()
        .filter(|s| ids.contains(s.message.as_str()))
        .filter(|s| once.insert((s.message.clone(), s.key.clone(), s.version, s.callback)))
        .cloned()
        .collect()
}

/// Message id by instance key and version, as the callbacks saw them.
fn message_of(seen: &[Seen]) -> BTreeMap<(String, u64), String> {
    seen.iter()
        .map(|s| ((s.key.clone(), s.version), s.message.clone()))
        .collect()
}

impl Callbacks for copy::order::Model {
    async fn after_create(&self, ctx: &Ctx<'_>) -> Result<(), BoxError> {
        record("after_create", ctx, self.title.clone());
        Ok(())
    }
    async fn after_update(&self, ctx: &Ctx<'_>) -> Result<(), BoxError> {
        record("after_update", ctx, self.title.clone());
        Ok(())
    }
}

impl Callbacks for copy::item::Model {
    /// Refuses the item named exactly "item 13" (see `a_failing_callback_…`).
    async fn after_create(&self, ctx: &Ctx<'_>) -> Result<(), BoxError> {
        if self.name == "item 13" {
            return Err(format!("refusing {}", self.name).into());
        }
        record("after_create", ctx, self.name.clone());
        Ok(())
    }
    async fn after_update(&self, ctx: &Ctx<'_>) -> Result<(), BoxError> {
        record("after_update", ctx, self.name.clone());
        Ok(())
    }
}

impl Callbacks for copy::invoice::Model {
    async fn after_create(&self, ctx: &Ctx<'_>) -> Result<(), BoxError> {
        record("after_create", ctx, format!("invoice {}", self.amount));
        Ok(())
    }
}

impl Callbacks for copy::customer::Model {
    async fn after_create(&self, ctx: &Ctx<'_>) -> Result<(), BoxError> {
        record("after_create", ctx, customer_row(self));
        Ok(())
    }
    async fn after_update(&self, ctx: &Ctx<'_>) -> Result<(), BoxError> {
        record("after_update", ctx, customer_row(self));
        Ok(())
    }
}

fn customer_row(c: &copy::customer::Model) -> String {
    format!("{} <{}> in {}", c.name, c.email, c.city)
}

// ---------------------------------------------------------------------------------------------
// Databases: SQLite, PostgreSQL or MariaDB

/// A publisher database and a subscriber database, with the tables of every model here.
struct Dbs {
    publisher: DatabaseConnection,
    subscriber: DatabaseConnection,
}

#[derive(Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
    MariaDb,
}

/// The databases of scenario `short` (server database names: `promiscuous_test_tx_{short}_…`),
/// `None` if PostgreSQL is wanted and not configured (outside CI: skipped).
async fn databases(backend: Backend, test: &str, short: &str) -> Option<Dbs> {
    let (publisher, subscriber) = match backend {
        Backend::Sqlite => (
            promiscuous_test::sqlite().await.unwrap(),
            promiscuous_test::sqlite().await.unwrap(),
        ),
        Backend::Postgres | Backend::MariaDb => {
            let url = match backend {
                Backend::Postgres => postgres_url(test)?,
                _ => mariadb_url(test)?,
            };
            (
                fresh_database(&url, &format!("tx_{short}_pub")).await,
                fresh_database(&url, &format!("tx_{short}_sub")).await,
            )
        }
    };
    promiscuous_test::create_table(&publisher, order::Entity)
        .await
        .unwrap();
    promiscuous_test::create_table(&publisher, item::Entity)
        .await
        .unwrap();
    promiscuous_test::create_table(&publisher, invoice::Entity)
        .await
        .unwrap();
    promiscuous_test::create_table(&publisher, user::Entity)
        .await
        .unwrap();
    promiscuous_test::create_table(&subscriber, copy::order::Entity)
        .await
        .unwrap();
    promiscuous_test::create_table(&subscriber, copy::item::Entity)
        .await
        .unwrap();
    promiscuous_test::create_table(&subscriber, copy::invoice::Entity)
        .await
        .unwrap();
    promiscuous_test::create_table(&subscriber, copy::customer::Entity)
        .await
        .unwrap();
    Some(Dbs {
        publisher,
        subscriber,
    })
}
use common::sql_servers::{fresh_database, mariadb_url, postgres_url};

/// Each scenario as a test on SQLite (`sqlite::name`), one on PostgreSQL (`postgres::name`) and
/// one on MariaDB (`mariadb::name`).
macro_rules! on_every_backend {
    ($($name:ident: $short:literal;)*) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let test = concat!("sqlite::", stringify!($name));
                    if let Some(dbs) = super::databases(super::Backend::Sqlite, test, $short).await {
                        super::$name(dbs).await;
                    }
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let test = concat!("postgres::", stringify!($name));
                    if let Some(dbs) = super::databases(super::Backend::Postgres, test, $short).await {
                        super::$name(dbs).await;
                    }
                }
            )*
        }
        mod mariadb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let test = concat!("mariadb::", stringify!($name));
                    if let Some(dbs) = super::databases(super::Backend::MariaDb, test, $short).await {
                        super::$name(dbs).await;
                    }
                }
            )*
        }
    };
}

on_every_backend! {
    order_with_20_items_is_never_seen_partially: "partial";
    a_failing_callback_applies_nothing_of_the_transaction: "failing";
    an_instance_written_several_times_in_one_transaction: "repeated";
    a_rolled_back_transaction_publishes_nothing: "rollback";
    a_rolled_back_savepoint_removes_only_its_operations: "savepoint";
    a_write_outside_a_transaction_is_refused: "outside";
    writes_to_two_apps_in_one_transaction: "two_apps";
}

// ---------------------------------------------------------------------------------------------
// Pipeline helpers

/// The subscriber app `copies`, following every model here.
async fn copies(db: &DatabaseConnection, broker: &InProcess) -> SubscriberService {
    copies_with(Subscriber::new("copies", db.clone(), broker.clone())).await
}

async fn copies_with(subscriber: Subscriber) -> SubscriberService {
    subscriber
        .subscribe::<copy::order::Model>()
        .subscribe::<copy::item::Model>()
        .subscribe::<copy::invoice::Model>()
        .subscribe::<copy::customer::Model>()
        .build()
        .await
        .unwrap()
}

const TAP: &str = "tap";

/// A queue bound to every publisher app: what the relay published, message by message.
struct Tap {
    broker: InProcess,
    spec: QueueSpec,
}

impl Tap {
    /// Declares the queue: it keeps every message published from now on.
    async fn declare(broker: &InProcess) -> Self {
        let spec = QueueSpec {
            queue: TAP.into(),
            bindings: vec!["#".into()],
            prefetch: u16::MAX,
            partitions: 1,
        };
        broker.declare(&spec).await.unwrap();
        Self {
            broker: broker.clone(),
            spec,
        }
    }

    /// The messages published since the last call (all confirmed by the time the relay's
    /// `flush` returned), in publish order, with their routing keys.
    async fn take(&self) -> Vec<(String, Message)> {
        let (ready, _) = self.broker.queue_depth(TAP);
        let mut consumer = self.broker.consume(&self.spec).await.unwrap();
        let mut taken = Vec::with_capacity(ready);
        for _ in 0..ready {
            let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
                .await
                .expect("a message the tap queue holds is delivered")
                .unwrap();
            delivery.ack().await.unwrap();
            let message = Message::decode(&delivery.payload).unwrap();
            taken.push((delivery.routing_key, message));
        }
        taken
    }
}

/// An operation as the tests compare them: instance key, kind, version.
type Op = (String, OperationKind, u64);

fn op(endpoint: &str, id: i32, kind: OperationKind, version: u64) -> Op {
    (format!("{endpoint}/{id}"), kind, version)
}

fn ops(message: &Message) -> Vec<Op> {
    message
        .operations
        .iter()
        .map(|o| (o.key(), o.operation, o.version))
        .collect()
}

fn messages(published: &[(String, Message)]) -> Vec<Message> {
    published.iter().map(|(_, m)| m.clone()).collect()
}

/// Outbox rows (messages not yet relayed) in `db`.
async fn outbox_rows(db: &DatabaseConnection) -> u64 {
    tables::outbox::Entity::find().count(db).await.unwrap()
}

// ---------------------------------------------------------------------------------------------
// Orders

fn title(number: i32, revision: u32) -> String {
    format!("order {number} rev {revision}")
}

fn item_name(number: i32, revision: u32, i: usize) -> String {
    format!("{} item {i}", title(number, revision))
}

/// One transaction: an order and its items (named `names`); returns its operations in write
/// order and the order's id.
async fn create_order(
    db: &DatabaseConnection,
    number: i32,
    title: &str,
    names: impl IntoIterator<Item = String>,
) -> (i32, Vec<Op>) {
    let txn = db.begin().await.unwrap();
    let o = order::ActiveModel {
        number: Set(number),
        title: Set(title.to_string()),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .unwrap();
    let mut written = vec![op("shop/order", o.id, OperationKind::Create, 1)];
    for name in names {
        let i = item::ActiveModel {
            order_id: Set(o.id),
            name: Set(name),
            ..Default::default()
        }
        .insert(&txn)
        .await
        .unwrap();
        written.push(op("shop/item", i.id, OperationKind::Create, 1));
    }
    txn.commit().await.unwrap();
    (o.id, written)
}

/// One transaction: order `number` and each of its items get revision `revision` (their
/// version `revision` too); returns its operations in write order.
async fn revise_order(db: &DatabaseConnection, number: i32, revision: u32) -> Vec<Op> {
    let version = u64::from(revision);
    let txn = db.begin().await.unwrap();
    let o = order::Entity::find()
        .filter(order::Column::Number.eq(number))
        .one(&txn)
        .await
        .unwrap()
        .unwrap();
    let items = item::Entity::find()
        .filter(item::Column::OrderId.eq(o.id))
        .order_by_asc(item::Column::Id)
        .all(&txn)
        .await
        .unwrap();
    let mut am = o.into_active_model();
    am.title = Set(title(number, revision));
    let o = am.update(&txn).await.unwrap();
    let mut written = vec![op("shop/order", o.id, OperationKind::Update, version)];
    for (i, it) in items.into_iter().enumerate() {
        let mut am = it.into_active_model();
        am.name = Set(item_name(number, revision, i));
        let it = am.update(&txn).await.unwrap();
        written.push(op("shop/item", it.id, OperationKind::Update, version));
    }
    txn.commit().await.unwrap();
    written
}

/// What a reader of the subscriber's database saw while it was being written.
#[derive(Debug, Default)]
struct Reading {
    snapshots: usize,
    /// Snapshots showing part of a transaction.
    partial: usize,
    /// The first few problems seen.
    problems: Vec<String>,
}

/// Reads the subscriber's orders and items in one read transaction (PostgreSQL: one snapshot,
/// REPEATABLE READ; SQLite: the database's only connection, so no write runs in between) again
/// and again until `stop`, and checks each snapshot: every order has its 20 items, every item
/// its order, and an item's name is of its order's revision (no mix of two transactions).
async fn watch_orders(db: DatabaseConnection, stop: Arc<AtomicBool>) -> Reading {
    let mut reading = Reading::default();
    while !stop.load(AtomicOrdering::SeqCst) {
        let txn = match db.get_database_backend() {
            DbBackend::Postgres => db
                .begin_with_config(
                    Some(IsolationLevel::RepeatableRead),
                    Some(AccessMode::ReadOnly),
                )
                .await
                .unwrap(),
            _ => db.begin().await.unwrap(),
        };
        let orders = copy::order::Entity::find().all(&txn).await.unwrap();
        let items = copy::item::Entity::find().all(&txn).await.unwrap();
        txn.commit().await.unwrap();
        reading.snapshots += 1;
        let problems = snapshot_problems(&orders, &items);
        if !problems.is_empty() {
            reading.partial += 1;
            if reading.problems.len() < 5 {
                reading.problems.push(problems.join("; "));
            }
        }
        tokio::task::yield_now().await;
    }
    reading
}

fn snapshot_problems(orders: &[copy::order::Model], items: &[copy::item::Model]) -> Vec<String> {
    let by_id: BTreeMap<i32, &copy::order::Model> = orders.iter().map(|o| (o.id, o)).collect();
    let mut problems = Vec::new();
    let mut counts: BTreeMap<i32, usize> = BTreeMap::new();
    for i in items {
        match by_id.get(&i.order_id) {
            None => problems.push(format!(
                "item {} ({:?}) without its order {}",
                i.id, i.name, i.order_id
            )),
            Some(o) if !i.name.starts_with(&format!("{} item ", o.title)) => {
                problems.push(format!(
                    "item {:?} under order {:?}: two transactions mixed",
                    i.name, o.title
                ))
            }
            Some(_) => {}
        }
        *counts.entry(i.order_id).or_default() += 1;
    }
    for o in orders {
        let n = counts.get(&o.id).copied().unwrap_or(0);
        if n != ITEMS {
            problems.push(format!("order {:?} with {n} of its {ITEMS} items", o.title));
        }
    }
    problems
}

// ---------------------------------------------------------------------------------------------
// 1. Atomic visibility

/// Five orders of 20 items, each written in one transaction, then each order and all its items
/// revised in one transaction, while the subscriber runs and a reader polls its database: the
/// reader never sees part of a transaction, everything converges, and the relay published one
/// message per transaction, its operations in write order.
async fn order_with_20_items_is_never_seen_partially(dbs: Dbs) {
    const ORDERS: i32 = 5;
    let Dbs {
        publisher: pdb,
        subscriber: sdb,
    } = dbs;
    let broker = InProcess::new();
    let tap = Tap::declare(&broker).await;
    let sub = copies(&sdb, &broker).await;
    let running = sub.start();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = tokio::spawn(watch_orders(sdb.clone(), stop.clone()));
    let publisher = Publisher::new(pdb.clone(), broker.clone())
        .start()
        .await
        .unwrap();

    let mut transactions: Vec<Vec<Op>> = Vec::new();
    for n in 1..=ORDERS {
        let names = (0..ITEMS).map(|i| item_name(n, 1, i));
        transactions.push(create_order(&pdb, n, &title(n, 1), names).await.1);
    }
    for n in 1..=ORDERS {
        transactions.push(revise_order(&pdb, n, 2).await);
    }
    let operations: usize = transactions.iter().map(Vec::len).sum();
    publisher.flush().await.unwrap();
    let applied = running
        .wait_until(Duration::from_secs(60), |s| {
            s.operations_applied + s.dead_lettered >= operations
        })
        .await
        .unwrap();
    stop.store(true, AtomicOrdering::SeqCst);
    let reading = reader.await.unwrap();
    let stats = running.shutdown().await.unwrap();
    publisher.shutdown().await.unwrap();
    eprintln!(
        "reader: {} snapshots, {} showing part of a transaction; first: {:?}",
        reading.snapshots, reading.partial, reading.problems
    );

    assert_eq!(applied.dead_lettered, 0, "{applied:?}");
    assert_eq!(stats.operations_applied, operations, "{stats:?}");
    // Converged: every order with its 20 items, as on the publisher.
    let mut want_orders: Vec<(i32, i32, String)> = order::Entity::find()
        .all(&pdb)
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.id, o.number, o.title))
        .collect();
    let mut got_orders: Vec<(i32, i32, String)> = copy::order::Entity::find()
        .all(&sdb)
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.id, o.number, o.title))
        .collect();
    want_orders.sort();
    got_orders.sort();
    assert_eq!(got_orders, want_orders);
    assert_eq!(got_orders.len(), ORDERS as usize);
    let mut want_items: Vec<(i32, i32, String)> = item::Entity::find()
        .all(&pdb)
        .await
        .unwrap()
        .into_iter()
        .map(|i| (i.id, i.order_id, i.name))
        .collect();
    let mut got_items: Vec<(i32, i32, String)> = copy::item::Entity::find()
        .all(&sdb)
        .await
        .unwrap()
        .into_iter()
        .map(|i| (i.id, i.order_id, i.name))
        .collect();
    want_items.sort();
    got_items.sort();
    assert_eq!(got_items, want_items);
    assert_eq!(got_items.len(), ORDERS as usize * ITEMS);
    assert!(snapshot_problems(&copy_orders(&sdb).await, &copy_items(&sdb).await).is_empty());

    // One message per transaction, its operations in write order.
    let published = tap.take().await;
    assert_eq!(
        published.len(),
        transactions.len(),
        "one message per transaction: {} transactions ({operations} operations) were published \
         as {} messages",
        transactions.len(),
        published.len()
    );
    assert_eq!(stats.messages, transactions.len(), "{stats:?}");
    let mut got: Vec<Vec<Op>> = published.iter().map(|(_, m)| ops(m)).collect();
    // By first operation (an instance at a version is written by one transaction).
    let first = |ops: &Vec<Op>| ops.first().map(|(key, _, version)| (key.clone(), *version));
    got.sort_by_key(first);
    transactions.sort_by_key(first);
    assert_eq!(got, transactions);
    assert!(
        published
            .iter()
            .all(|(key, m)| key == "shop" && m.app == "shop")
    );
    // The callbacks of each operation ran with its transaction's message.
    let seen = seen_in(&messages(&published));
    assert_eq!(seen.len(), operations);
    let by_op = message_of(&seen);
    for (_, m) in &published {
        for o in &m.operations {
            assert_eq!(by_op[&(o.key(), o.version)], m.id, "{}", o.key());
        }
    }

    assert!(reading.snapshots > 0);
    assert!(
        reading.problems.is_empty(),
        "the reader saw part of a transaction in {} of {} snapshots: {:#?}",
        reading.partial,
        reading.snapshots,
        reading.problems
    );
}

async fn copy_orders(db: &DatabaseConnection) -> Vec<copy::order::Model> {
    copy::order::Entity::find().all(db).await.unwrap()
}

async fn copy_items(db: &DatabaseConnection) -> Vec<copy::item::Model> {
    copy::item::Entity::find().all(db).await.unwrap()
}

// ---------------------------------------------------------------------------------------------
// 2. A failing callback

/// The item callback refuses "item 13", the 15th operation of an order's transaction: nothing
/// of that transaction is applied (no order, no item, no applied version), its one message is
/// dead-lettered after the configured retries, and a later transaction still applies.
async fn a_failing_callback_applies_nothing_of_the_transaction(dbs: Dbs) {
    let Dbs {
        publisher: pdb,
        subscriber: sdb,
    } = dbs;
    let broker = InProcess::new();
    let tap = Tap::declare(&broker).await;
    let sub = copies_with(
        Subscriber::new("copies", sdb.clone(), broker.clone()).retries(2, Duration::from_millis(1)),
    )
    .await;
    let publisher = Publisher::new(pdb.clone(), broker.clone())
        .start()
        .await
        .unwrap();

    let names = (0..ITEMS).map(|i| format!("item {i}"));
    let (refused, written) = create_order(&pdb, 1, "refused order", names).await;
    let stats = promiscuous_test::sync(&publisher, &sub).await.unwrap();
    let published = tap.take().await;
    assert_eq!(
        published.len(),
        1,
        "one message for the transaction's {} operations, got {} messages",
        written.len(),
        published.len()
    );
    let (_, message) = &published[0];
    assert_eq!(ops(message), written);

    // One dead letter: the whole message, after the retries.
    assert_eq!(stats.dead_lettered, 1, "{stats:?}");
    let letters = sub.applier().dead_letters().await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(Message::decode(&letter.payload).unwrap(), *message);
    assert!(
        letter.error.contains("refusing item 13") && letter.error.contains("after_create"),
        "{}",
        letter.error
    );
    assert_eq!(letter.attempts, 2, "{letter:?}");

    // Nothing of the transaction was applied.
    assert!(copy_orders(&sdb).await.is_empty());
    assert!(copy_items(&sdb).await.is_empty());
    for (key, _, _) in &written {
        assert_eq!(sub.applier().applied_version(key).await.unwrap(), None);
    }
    assert_eq!(stats.operations_applied, 0, "{stats:?}");

    // A later transaction applies.
    let names = (0..3).map(|i| format!("later item {i}"));
    let (later, written) = create_order(&pdb, 2, "later order", names).await;
    let stats = promiscuous_test::sync(&publisher, &sub).await.unwrap();
    assert_eq!(stats.dead_lettered, 1, "{stats:?}");
    assert_eq!(stats.operations_applied, written.len(), "{stats:?}");
    let orders = copy_orders(&sdb).await;
    assert_eq!(
        orders
            .iter()
            .map(|o| (o.id, o.title.as_str()))
            .collect::<Vec<_>>(),
        [(later, "later order")]
    );
    let mut items: Vec<(i32, String)> = copy_items(&sdb)
        .await
        .into_iter()
        .map(|i| (i.order_id, i.name))
        .collect();
    items.sort();
    assert_eq!(
        items,
        (0..3)
            .map(|i| (later, format!("later item {i}")))
            .collect::<Vec<_>>()
    );
    assert_ne!(refused, later);
    assert_eq!(sub.applier().dead_letters().await.unwrap().len(), 1);
    publisher.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// 3. One instance written several times in one transaction

/// A user created and updated twice (two different fields) in one transaction, then updated
/// again in another: every write is an operation of its own, at consecutive versions (1, 2, 3 in
/// the first message, 4 in the second); each update's `changes` are exactly what it changed.
async fn an_instance_written_several_times_in_one_transaction(dbs: Dbs) {
    let Dbs {
        publisher: pdb,
        subscriber: sdb,
    } = dbs;
    let broker = InProcess::new();
    let tap = Tap::declare(&broker).await;
    let sub = copies(&sdb, &broker).await;
    let publisher = Publisher::new(pdb.clone(), broker.clone())
        .start()
        .await
        .unwrap();

    let txn = pdb.begin().await.unwrap();
    let ann = user::ActiveModel {
        name: Set("Ann".into()),
        email: Set("ann@shop".into()),
        city: Set("Paris".into()),
        password: Set("pw".into()),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .unwrap();
    let mut am = ann.into_active_model();
    am.name = Set("Anna".into());
    let ann = am.update(&txn).await.unwrap();
    let mut am = ann.into_active_model();
    am.email = Set("anna@shop".into());
    let ann = am.update(&txn).await.unwrap();
    txn.commit().await.unwrap();
    promiscuous_test::sync(&publisher, &sub).await.unwrap();
    let first = tap.take().await;

    let txn = pdb.begin().await.unwrap();
    let mut am = ann.into_active_model();
    am.city = Set("Lyon".into());
    let ann = am.update(&txn).await.unwrap();
    txn.commit().await.unwrap();
    let stats = promiscuous_test::sync(&publisher, &sub).await.unwrap();
    let second = tap.take().await;
    publisher.shutdown().await.unwrap();

    // The final state.
    let copies = copy::customer::Entity::find().all(&sdb).await.unwrap();
    assert_eq!(
        copies,
        vec![copy::customer::Model {
            id: ann.id,
            name: "Anna".into(),
            email: "anna@shop".into(),
            city: "Lyon".into(),
        }]
    );
    let key = format!("shop/user/{}", ann.id);
    assert_eq!(sub.applier().applied_version(&key).await.unwrap(), Some(4));
    assert_eq!((stats.operations_applied, stats.dead_lettered), (4, 0));

    // Every write arrived, in order, with exactly its own changes.
    let all: Vec<Message> = messages(&first)
        .into_iter()
        .chain(messages(&second))
        .collect();
    let change = |attribute: &str, before: &str, after: &str| {
        let change = Change {
            before: json!(before),
            after: json!(after),
        };
        BTreeMap::from([(attribute.to_string(), change)])
    };
    let seen: Vec<(&str, u64, BTreeMap<String, Change>, String)> = seen_in(&all)
        .into_iter()
        .map(|s| (s.callback, s.version, s.changes, s.row))
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                "after_create",
                1,
                BTreeMap::new(),
                "Ann <ann@shop> in Paris".into()
            ),
            (
                "after_update",
                2,
                change("name", "Ann", "Anna"),
                "Anna <ann@shop> in Paris".into()
            ),
            (
                "after_update",
                3,
                change("email", "ann@shop", "anna@shop"),
                "Anna <anna@shop> in Paris".into()
            ),
            (
                "after_update",
                4,
                change("city", "Paris", "Lyon"),
                "Anna <anna@shop> in Lyon".into()
            ),
        ]
    );
    let attributes: Vec<Option<Value>> = all
        .iter()
        .flat_map(|m| &m.operations)
        .map(|o| o.attributes.clone().map(Value::Object))
        .collect();
    assert_eq!(
        attributes.last().cloned().flatten(),
        Some(json!({"name": "Anna", "email": "anna@shop", "city": "Lyon"}))
    );

    // One message per transaction.
    let grouped: Vec<Vec<Vec<Op>>> = [&first, &second]
        .iter()
        .map(|published| published.iter().map(|(_, m)| ops(m)).collect())
        .collect();
    assert_eq!(
        grouped,
        vec![
            vec![vec![
                (key.clone(), OperationKind::Create, 1),
                (key.clone(), OperationKind::Update, 2),
                (key.clone(), OperationKind::Update, 3),
            ]],
            vec![vec![(key.clone(), OperationKind::Update, 4)]],
        ],
        "the first transaction's three writes in one message, the second's in another"
    );
    assert_eq!(stats.messages, 2, "{stats:?}");
}

// ---------------------------------------------------------------------------------------------
// 4. Rollbacks

/// A user created and renamed in a transaction that is rolled back: nothing reaches the outbox,
/// the relay publishes nothing; the next committed write is published alone.
async fn a_rolled_back_transaction_publishes_nothing(dbs: Dbs) {
    let Dbs {
        publisher: pdb,
        subscriber: sdb,
    } = dbs;
    let broker = InProcess::new();
    let tap = Tap::declare(&broker).await;
    let sub = copies(&sdb, &broker).await;
    // No relay yet: the outbox is read as the transaction left it.
    schema::setup_publisher(&pdb).await.unwrap();

    let txn = pdb.begin().await.unwrap();
    let ghost = new_user("Ghost").insert(&txn).await.unwrap();
    let mut am = ghost.into_active_model();
    am.name = Set("Ghost II".into());
    am.update(&txn).await.unwrap();
    txn.rollback().await.unwrap();
    assert_eq!(outbox_rows(&pdb).await, 0);
    assert_eq!(user::Entity::find().count(&pdb).await.unwrap(), 0);
    assert_eq!(
        tables::versions::Entity::find().count(&pdb).await.unwrap(),
        0
    );

    let publisher = Publisher::new(pdb.clone(), broker.clone())
        .start()
        .await
        .unwrap();
    let stats = promiscuous_test::sync(&publisher, &sub).await.unwrap();
    assert_eq!(publisher.pending().await.unwrap(), 0);
    assert!(tap.take().await.is_empty());
    assert_eq!(stats.messages, 0, "{stats:?}");

    // The next committed transaction is published, alone.
    let txn = pdb.begin().await.unwrap();
    let real = new_user("Real").insert(&txn).await.unwrap();
    txn.commit().await.unwrap();
    let stats = promiscuous_test::sync(&publisher, &sub).await.unwrap();
    let published = tap.take().await;
    assert_eq!(
        published.iter().map(|(_, m)| ops(m)).collect::<Vec<_>>(),
        [vec![op("shop/user", real.id, OperationKind::Create, 1)]]
    );
    assert_eq!(
        customers(&sdb).await,
        [(real.id, "Real".to_string())],
        "nothing of the rolled-back transaction"
    );
    assert_eq!((stats.messages, stats.operations_applied), (1, 1));
    assert_eq!(publisher.pending().await.unwrap(), 0);
    publisher.shutdown().await.unwrap();
}

/// A transaction writes A; a nested transaction (a savepoint) writes B and renames A, and is
/// rolled back; the transaction writes C and commits: one message with A (as first written)
/// and C, nothing of B or of the rename.
async fn a_rolled_back_savepoint_removes_only_its_operations(dbs: Dbs) {
    let Dbs {
        publisher: pdb,
        subscriber: sdb,
    } = dbs;
    let broker = InProcess::new();
    let tap = Tap::declare(&broker).await;
    let sub = copies(&sdb, &broker).await;
    let publisher = Publisher::new(pdb.clone(), broker.clone())
        .start()
        .await
        .unwrap();

    let txn = pdb.begin().await.unwrap();
    let a = new_user("A").insert(&txn).await.unwrap();
    let savepoint = txn.begin().await.unwrap();
    new_user("B").insert(&savepoint).await.unwrap();
    let mut am = a.clone().into_active_model();
    am.name = Set("A renamed".into());
    am.update(&savepoint).await.unwrap();
    savepoint.rollback().await.unwrap();
    let c = new_user("C").insert(&txn).await.unwrap();
    txn.commit().await.unwrap();
    let stats = promiscuous_test::sync(&publisher, &sub).await.unwrap();
    let published = tap.take().await;
    publisher.shutdown().await.unwrap();

    // The publisher kept A and C.
    let mut users: Vec<(i32, String)> = user::Entity::find()
        .all(&pdb)
        .await
        .unwrap()
        .into_iter()
        .map(|u| (u.id, u.name))
        .collect();
    users.sort();
    assert_eq!(users, [(a.id, "A".to_string()), (c.id, "C".to_string())]);
    // Published: A and C, never B nor the rename.
    let all: Vec<Op> = published.iter().flat_map(|(_, m)| ops(m)).collect();
    assert_eq!(
        all,
        [
            op("shop/user", a.id, OperationKind::Create, 1),
            op("shop/user", c.id, OperationKind::Create, 1),
        ]
    );
    let names: Vec<Value> = published
        .iter()
        .flat_map(|(_, m)| &m.operations)
        .map(|o| o.attributes.as_ref().unwrap()["name"].clone())
        .collect();
    assert_eq!(names, [json!("A"), json!("C")]);
    assert_eq!(
        customers(&sdb).await,
        [(a.id, "A".to_string()), (c.id, "C".to_string())]
    );
    assert_eq!(stats.operations_applied, 2, "{stats:?}");

    // In one message.
    assert_eq!(
        published.len(),
        1,
        "A and C in one message, got {} messages",
        published.len()
    );
    assert_eq!(stats.messages, 1, "{stats:?}");
    let seen = message_of(&seen_in(&messages(&published)));
    assert_eq!(
        seen.values().collect::<BTreeSet<_>>(),
        BTreeSet::from([&published[0].1.id])
    );
}

fn new_user(name: &str) -> user::ActiveModel {
    user::ActiveModel {
        name: Set(name.into()),
        email: Set(format!("{}@shop", name.to_lowercase())),
        city: Set("Paris".into()),
        password: Set("pw".into()),
        ..Default::default()
    }
}

/// The subscriber's customers, (id, name), by id.
async fn customers(db: &DatabaseConnection) -> Vec<(i32, String)> {
    let mut rows: Vec<(i32, String)> = copy::customer::Entity::find()
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.id, c.name))
        .collect();
    rows.sort();
    rows
}

// ---------------------------------------------------------------------------------------------
// 5. Outside a transaction

/// An insert, an update and a delete on the bare connection are refused, with an error that
/// names the fix; nothing is written: no row, no outbox row, no version, no write permit left.
async fn a_write_outside_a_transaction_is_refused(dbs: Dbs) {
    let pdb = dbs.publisher;
    // The relay is not started: the outbox is read as the writes left it. The guard is on.
    schema::setup_publisher(&pdb).await.unwrap();
    promiscuous::guard::install(&pdb).await.unwrap();

    let refused = new_user("Bare").insert(&pdb).await.unwrap_err().to_string();
    assert!(
        refused.contains("transaction") && refused.contains("db.begin()"),
        "the error says to use a transaction and how: {refused}"
    );
    assert_eq!(user::Entity::find().count(&pdb).await.unwrap(), 0);
    assert_eq!(outbox_rows(&pdb).await, 0);
    assert_eq!(
        tables::versions::Entity::find().count(&pdb).await.unwrap(),
        0
    );
    assert_eq!(permits(&pdb).await, 0);

    // An existing row: updating or deleting it on the bare connection is refused too.
    let txn = pdb.begin().await.unwrap();
    let kept = new_user("Kept").insert(&txn).await.unwrap();
    txn.commit().await.unwrap();
    assert_eq!(outbox_rows(&pdb).await, 1);
    let mut am = kept.clone().into_active_model();
    am.name = Set("Changed".into());
    let refused = am.update(&pdb).await.unwrap_err().to_string();
    assert!(
        refused.contains("transaction") && refused.contains("db.begin()"),
        "{refused}"
    );
    let refused = kept.clone().delete(&pdb).await.unwrap_err().to_string();
    assert!(
        refused.contains("transaction") && refused.contains("db.begin()"),
        "{refused}"
    );
    assert_eq!(user::Entity::find().all(&pdb).await.unwrap(), [kept]);
    assert_eq!(outbox_rows(&pdb).await, 1);
    assert_eq!(permits(&pdb).await, 0);
}

/// Write permits held (committed, they would let bypassing writes through the guard).
async fn permits(db: &DatabaseConnection) -> i64 {
    let sql = format!("SELECT COUNT(*) AS n FROM {}", promiscuous::guard::PERMITS);
    db.query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// 6. Two apps

/// One transaction writes to two publisher apps, interleaved: an order and two items (`shop`),
/// two invoices (`billing`).
///
/// A message is routed by its app (the routing key), and each subscriber's queue is bound to the
/// apps it follows, so a transaction becomes **one message per app**, each atomic on its own:
/// a subscriber applies the shop message in one transaction and the billing message in one
/// transaction, but not both in one: a subscriber following both apps may show the invoices
/// before the order (or the reverse) for a moment. Atomicity across apps is not promised.
async fn writes_to_two_apps_in_one_transaction(dbs: Dbs) {
    let Dbs {
        publisher: pdb,
        subscriber: sdb,
    } = dbs;
    let broker = InProcess::new();
    let tap = Tap::declare(&broker).await;
    let sub = copies(&sdb, &broker).await;
    let publisher = Publisher::new(pdb.clone(), broker.clone())
        .start()
        .await
        .unwrap();

    let txn = pdb.begin().await.unwrap();
    let o = order::ActiveModel {
        number: Set(1),
        title: Set("billed order".into()),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .unwrap();
    let mut want: BTreeMap<&str, Vec<Op>> = BTreeMap::new();
    want.entry("shop")
        .or_default()
        .push(op("shop/order", o.id, OperationKind::Create, 1));
    for n in 1..=2 {
        let inv = invoice::ActiveModel {
            order_id: Set(o.id),
            amount: Set(100 * n),
            ..Default::default()
        }
        .insert(&txn)
        .await
        .unwrap();
        want.entry("billing").or_default().push(op(
            "billing/invoice",
            inv.id,
            OperationKind::Create,
            1,
        ));
        let it = item::ActiveModel {
            order_id: Set(o.id),
            name: Set(format!("billed item {n}")),
            ..Default::default()
        }
        .insert(&txn)
        .await
        .unwrap();
        want.entry("shop")
            .or_default()
            .push(op("shop/item", it.id, OperationKind::Create, 1));
    }
    txn.commit().await.unwrap();
    let stats = promiscuous_test::sync(&publisher, &sub).await.unwrap();
    let published = tap.take().await;
    publisher.shutdown().await.unwrap();

    // Each app's operations, in write order, and nothing else.
    let mut by_app: BTreeMap<&str, Vec<Op>> = BTreeMap::new();
    for (key, m) in &published {
        assert_eq!(key, &m.app, "a message is routed by its app");
        for o in &m.operations {
            assert!(o.endpoint.starts_with(&format!("{}/", m.app)), "{o:?}");
        }
        by_app
            .entry(if m.app == "shop" { "shop" } else { "billing" })
            .or_default()
            .extend(ops(m));
    }
    assert_eq!(by_app, want);
    assert_eq!(stats.operations_applied, 5, "{stats:?}");
    assert_eq!(copy_orders(&sdb).await.len(), 1);
    assert_eq!(copy_items(&sdb).await.len(), 2);
    let mut amounts: Vec<i64> = copy::invoice::Entity::find()
        .all(&sdb)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.amount)
        .collect();
    amounts.sort();
    assert_eq!(amounts, [100, 200]);

    // One message per app.
    let apps: Vec<&str> = published.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(
        apps.iter().collect::<BTreeSet<_>>().len(),
        apps.len(),
        "one message per app, got {apps:?}"
    );
    assert_eq!(published.len(), 2, "{apps:?}");
    assert_eq!(stats.messages, 2, "{stats:?}");
    // Each app's callbacks ran with its app's message.
    let seen = seen_in(&messages(&published));
    assert_eq!(seen.len(), 5);
    for (_, m) in &published {
        for s in seen
            .iter()
            .filter(|s| s.key.starts_with(&format!("{}/", m.app)))
        {
            assert_eq!(s.message, m.id, "{s:?}");
        }
    }
}
