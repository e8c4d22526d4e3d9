//! Test kit for promiscuous applications.
//!
//! - [`sqlite`] / [`create_table`]: a private in-memory database per service under test.
//! - [`MockPublisher`]: pushes real protocol payloads (the same JSON a publisher emits) into a
//!   transport, so a subscriber is tested without the publisher's code or database.
//! - [`sync`]: runs the whole pipeline synchronously — flush the publisher's outbox, then let the
//!   subscriber apply until its queue is idle.
//! - [`history`]: a checker of the ordering guarantees on a recorded publisher/subscriber
//!   history, with a seeded workload generator; [`chaos`]: seeded fault injection (duplicate
//!   publishes, lost consumer connections, delayed applies) to drive it.

//! - [`Definitions`]: a publisher's exported definitions, read back; from them,
//!   [`MockPublisher::from_definitions`] (a [`DefinedPublisher`]: only what the publisher
//!   publishes, full attribute maps, type chains), [`Factory`] (attribute maps with plausible
//!   defaults) and [`validate_subscriber`] / [`validate_observer`] (is everything followed
//!   published?).

pub mod chaos;
pub mod definitions;
pub mod error;
pub mod factory;
pub mod history;
pub mod mock;
pub mod rng;

pub use definitions::{
    AttributeDefinition, Definitions, DefinitionsError, EndpointDefinition, validate_observer,
    validate_subscriber,
};
pub use factory::Factory;
pub use mock::{DefinedPublisher, MockError};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use promiscuous_core::message::{PROTOCOL_VERSION, changes, instance_key};
use promiscuous_core::subscriber::Stats;
use promiscuous_core::transport::{Outgoing, Transport, TransportError};
use promiscuous_core::{
    Dependencies, Dependency, Error, Message, Operation, OperationKind, now_ms,
};
use promiscuous_sea_orm::{PublisherHandle, SubscriberService};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, EntityTrait,
    Schema,
};
use serde_json::{Map, Value};

/// A fresh in-memory SQLite database (one connection, so every query sees the same database).
pub async fn sqlite() -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new("sqlite::memory:");
    options.max_connections(1).sqlx_logging(false);
    Database::connect(options).await
}

/// Creates the table of `entity` (on MySQL/MariaDB in UTF-8 compared byte for byte, `Text`
/// as `LONGTEXT`).
pub async fn create_table<E: EntityTrait, C: ConnectionTrait>(
    db: &C,
    entity: E,
) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let schema = Schema::new(backend);
    let mut table = schema.create_table_from_entity(entity);
    if backend == DbBackend::MySql {
        // Strings compared byte for byte, as on SQLite and PostgreSQL (MariaDB's default
        // collations ignore case and trailing spaces: two distinct keys could collide), and a
        // `Text` column as long as there (SeaORM's `TEXT` holds 64 KiB on MySQL).
        table.character_set("utf8mb4").collate("utf8mb4_bin");
        let sql = table
            .to_string(sea_orm::sea_query::MysqlQueryBuilder)
            .replace("` text", "` longtext");
        return db.execute_unprepared(&sql).await.map(drop);
    }
    db.execute(&table).await.map(drop)
}

/// How long [`sync`] waits for the next delivery before calling the subscriber idle.
pub const IDLE: Duration = Duration::from_millis(50);

/// Flushes the publisher's outbox, then applies on the subscriber until its queue is idle.
pub async fn sync(
    publisher: &PublisherHandle,
    subscriber: &SubscriberService,
) -> Result<Stats, Error> {
    publisher.flush().await?;
    subscriber.run_until_idle(IDLE).await
}

/// Publishes hand-made operations of one publisher app, with real payloads and per-instance
/// versions kept like the real publisher keeps them.
pub struct MockPublisher {
    app: String,
    transport: Arc<dyn Transport>,
    versions: HashMap<String, u64>,
    last: HashMap<String, Map<String, Value>>,
}

impl MockPublisher {
    /// A mock of publisher application `app` (the first segment of its endpoints).
    pub fn new(app: impl Into<String>, transport: impl Transport) -> Self {
        Self {
            app: app.into(),
            transport: Arc::new(transport),
            versions: HashMap::new(),
            last: HashMap::new(),
        }
    }

    fn next_version(&mut self, endpoint: &str, id: &Value) -> u64 {
        let v = self.versions.entry(instance_key(endpoint, id)).or_insert(0);
        *v += 1;
        *v
    }

    /// The message a publisher would send for one operation (not sent).
    pub fn message(
        &mut self,
        endpoint: &str,
        id: Value,
        kind: OperationKind,
        attributes: Option<Value>,
    ) -> Message {
        let version = self.next_version(endpoint, &id);
        let key = instance_key(endpoint, &id);
        let attributes = attributes.and_then(|a| a.as_object().cloned());
        let changes = match (&attributes, self.last.get(&key), kind) {
            (Some(after), Some(before), OperationKind::Update) => Some(changes(before, after)),
            _ => None,
        };
        match &attributes {
            Some(a) => self.last.insert(key.clone(), a.clone()),
            None => self.last.remove(&key),
        };
        Message {
            protocol: PROTOCOL_VERSION,
            app: self.app.clone(),
            id: uuid_like(&key, version),
            timestamp: now_ms(),
            host: "mock".into(),
            current_user_id: None,
            dependencies: Dependencies {
                read: Vec::new(),
                write: vec![Dependency { key, version }],
            },
            operations: vec![Operation {
                endpoint: endpoint.to_string(),
                types: vec![type_name(endpoint)],
                id,
                operation: kind,
                version,
                attributes,
                changes,
                sync: false,
            }],
        }
    }

    /// Sends a message as is.
    pub async fn send(&self, message: &Message) -> Result<(), TransportError> {
        self.raw(message.encode()).await
    }

    /// Sends any bytes under this app's routing key (for bad-input tests).
    pub async fn raw(&self, payload: impl Into<Vec<u8>>) -> Result<(), TransportError> {
        self.transport
            .publish(&[Outgoing {
                routing_key: self.app.clone(),
                payload: payload.into(),
                partition_key: None,
            }])
            .await
    }

    pub async fn create(
        &mut self,
        endpoint: &str,
        id: Value,
        attributes: Value,
    ) -> Result<Message, TransportError> {
        let m = self.message(endpoint, id, OperationKind::Create, Some(attributes));
        self.send(&m).await.map(|_| m)
    }

    pub async fn update(
        &mut self,
        endpoint: &str,
        id: Value,
        attributes: Value,
    ) -> Result<Message, TransportError> {
        let m = self.message(endpoint, id, OperationKind::Update, Some(attributes));
        self.send(&m).await.map(|_| m)
    }

    pub async fn destroy(&mut self, endpoint: &str, id: Value) -> Result<Message, TransportError> {
        let m = self.message(endpoint, id, OperationKind::Destroy, None);
        self.send(&m).await.map(|_| m)
    }
}

fn uuid_like(key: &str, version: u64) -> String {
    format!("mock:{key}@{version}")
}

/// The type the real publisher sends by default: the endpoint's model in UpperCamelCase
/// (`crowdtap/page_view` → `PageView`), by the rule `#[publish]` applies
/// (`promiscuous_protocol::default_type`).
pub fn type_name(endpoint: &str) -> String {
    promiscuous_protocol::default_type(endpoint)
}

#[cfg(test)]
mod tests {
    #[test]
    fn type_names_are_the_publishers() {
        assert_eq!(super::type_name("crowdtap/user"), "User");
        assert_eq!(super::type_name("crowdtap/page_view"), "PageView");
        assert_eq!(super::type_name("odd"), "Odd");
        // As `#[publish(to = "crowdtap/HTMLPage")]` names it (see tests/macros.rs).
        assert_eq!(super::type_name("crowdtap/HTMLPage"), "HtmlPage");
    }
}
