//! The RabbitMQ transport (AMQP 0-9-1 through `lapin`).
//!
//! - One durable topic exchange ([`RabbitMqConfig::exchange`]); messages are published with
//!   their routing key, persistent (delivery mode 2), `content_type: application/json`.
//! - [`Transport::publish`] runs on a channel in confirm mode and returns only once the broker
//!   confirmed every message of the call. A nack (the broker could not take responsibility for a
//!   message: a quorum queue between two leaders, for one) is [`TransportError::Unavailable`]
//!   and drops the channel: a channel whose quorum-queue leader died may go on nacking
//!   everything, so the next call starts on a new one.
//! - [`Transport::consume`] declares a durable queue, binds it with the spec's patterns, sets the
//!   prefetch and consumes with manual acks.
//! - Lazy: [`RabbitMq::new`] does no I/O. The publishing connection is opened on the first
//!   `publish` and the consuming connection on the first `consume`; a lost connection is
//!   dropped and reopened by the next call, so a publisher starts (and keeps committing to its
//!   outbox) while the broker is down. lapin's automatic recovery is not used: a consumer whose
//!   connection dropped fails ([`Consumer::next`] returns [`TransportError::Unavailable`]) and the
//!   caller consumes again, so an ack for a delivery of the old channel never reaches a new one.
//! - Every broker round trip is bounded ([`RabbitMqConfig::connect_timeout`],
//!   [`RabbitMqConfig::operation_timeout`]): a hung or blocked broker is an error, not a hang.
//! - Every message carries the AMQP `user_id` property: the user name of the URL. RabbitMQ
//!   refuses a message whose `user_id` is not the connection's authenticated user, so a
//!   subscriber can trust [`Delivery::user_id`] to name the publishing app's broker user. A
//!   message the broker refuses (`ACCESS_REFUSED` from a topic permission on the routing key,
//!   `PRECONDITION_FAILED` for the `user_id`) closes the publishing channel; `publish` then fails
//!   with [`TransportError::Rejected`] naming the routing key and the broker's reply.
//! - TLS: `amqps://` URLs connect with rustls, verifying the broker's certificate with the
//!   system's root certificates and [`RabbitMqConfig::tls_ca`]. A failed handshake says why
//!   (e.g. "the server's certificate is not signed by a trusted CA"). URLs in errors and logs
//!   never show their password.
//! - A cluster: [`RabbitMq::new`] takes several node URLs separated by commas (or
//!   [`RabbitMq::cluster`] a list). A connection goes to the node that answered last, else to the
//!   next ones in turn; a lost connection moves on to the next node, so the relay and the
//!   subscribers carry on through the nodes left. Every node URL must name the same user.
//! - Queue types ([`RabbitMqConfig::queue_type`]): classic queues (the default) live on the
//!   node that declared them and stop with it; quorum queues are replicated on the cluster's
//!   nodes and go on while a majority runs (see [`QueueType`] for the trade-off).

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeBindOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::tcp::OwnedTLSConfig;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::uri::AMQPUri;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ConnectionStatus,
    ExchangeKind,
};

use super::merged::Merged;
use super::{
    Acker, Consumer, Delivery, Outgoing, PARTITION_HEADER, QueueSpec, Transport, TransportError,
};
use crate::tls;

/// Settings of a [`RabbitMq`] transport.
#[derive(Debug, Clone, PartialEq)]
pub struct RabbitMqConfig {
    /// The durable topic exchange messages are published to and queues are bound to.
    pub exchange: String,
    /// Shown in the RabbitMQ management UI; ` (publish)` or ` (consume)` is appended.
    pub connection_name: String,
    /// Bound on opening a connection (TCP, TLS and the AMQP handshake).
    pub connect_timeout: Duration,
    /// Bound on everything else that waits for the broker: declarations, the confirms of one
    /// `publish` call, an ack.
    pub operation_timeout: Duration,
    /// For `amqps://` URLs: a CA certificate file (PEM) whose certificates are trusted, *in
    /// addition to* the system's root certificates (lapin adds them to those), to verify the
    /// broker's certificate with (a private CA). `None`: the system's roots only. Read at each
    /// connection (a missing or unreadable file is an error naming its path); ignored for
    /// `amqp://` URLs. lapin loads the system's roots either way, and fails if there are none
    /// (on Debian: install `ca-certificates`).
    pub tls_ca: Option<PathBuf>,
    /// The type of the queues [`Transport::consume`] and [`Transport::declare`] declare: classic
    /// (the default) or quorum. A queue keeps the type it was declared with: declaring it again
    /// with another type is refused by the broker (`PRECONDITION_FAILED`, inequivalent
    /// `x-queue-type`); delete it first (`RabbitMq::delete_queue`) to change its type.
    pub queue_type: QueueType,
}

/// How a subscriber application's queue is kept by RabbitMQ.
///
/// | | classic | quorum |
/// |---|---|---|
/// | where | on the node that declared it | replicated (Raft) on every node of the cluster |
/// | a node stops | its queues stop with it: nothing is delivered until it is back (persistent messages are kept on its disk) | goes on while a majority of the nodes runs: a new leader is elected within seconds |
/// | cost | one write per message | each message is written on a majority of the nodes before it is confirmed: more latency and disk, less throughput per queue |
/// | deliveries | | the same at-least-once delivery; a redelivered message counts towards the queue's delivery limit only if a limit is set (none here) |
///
/// Subscribers see no difference: a message delivered twice (after a failover) is applied once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueType {
    /// A classic queue (RabbitMQ's default).
    #[default]
    Classic,
    /// A quorum queue (`x-queue-type: quorum`): needs a cluster to be worth it (three nodes
    /// tolerate the loss of one).
    Quorum,
}

impl QueueType {
    /// The name RabbitMQ gives it (`x-queue-type`).
    pub fn as_str(self) -> &'static str {
        match self {
            QueueType::Classic => "classic",
            QueueType::Quorum => "quorum",
        }
    }
}

impl fmt::Display for QueueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for QueueType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "classic" => Ok(QueueType::Classic),
            "quorum" => Ok(QueueType::Quorum),
            other => Err(format!(
                "unknown queue type {other:?} (expected \"classic\" or \"quorum\")"
            )),
        }
    }
}

impl Default for RabbitMqConfig {
    fn default() -> Self {
        Self {
            exchange: "promiscuous".into(),
            connection_name: "promiscuous".into(),
            connect_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(30),
            tls_ca: None,
            queue_type: QueueType::Classic,
        }
    }
}

/// A RabbitMQ broker; clones share the connections.
///
/// ```no_run
/// use promiscuous_core::transport::{RabbitMq, RabbitMqConfig};
/// let transport = RabbitMq::new("amqp://guest:guest@127.0.0.1:5672/%2f", RabbitMqConfig::default());
/// ```
#[derive(Clone)]
pub struct RabbitMq {
    inner: Arc<Inner>,
}

struct Inner {
    /// The broker's nodes (one for a single broker), in the order given.
    nodes: Vec<Node>,
    /// Why the node URLs cannot be used together (they name different users), if so.
    misconfigured: Option<String>,
    /// The node tried first by the next connection: the one that answered last, moved on to
    /// the next when its connection is lost.
    preferred: AtomicUsize,
    config: RabbitMqConfig,
    /// The publishing connection and its confirm-mode channel; the lock also serialises
    /// `publish` calls, so the confirms awaited by one call are its own.
    publisher: tokio::sync::Mutex<Option<PublishLink>>,
    /// The consuming connection and its node; every consumer gets its own channel on it.
    consumer: tokio::sync::Mutex<Option<(Arc<Connection>, usize)>>,
    publish_health: Mutex<Health>,
    consume_health: Mutex<Health>,
}

/// One node of the broker.
struct Node {
    url: String,
    /// The URL parsed, or why it does not parse (without the password).
    uri: Result<AMQPUri, String>,
    /// `amqps://`.
    tls: bool,
    /// The URL's user, set as the `user_id` of every message; `None` without one in the URL.
    user_id: Option<ShortString>,
}

impl Node {
    fn new(url: String) -> Self {
        let uri = parse_url(&url);
        Self {
            tls: tls::wants_tls(&url, "amqps"),
            user_id: user_of(&url, uri.as_ref().ok()),
            uri,
            url,
        }
    }
}

struct PublishLink {
    channel: Channel,
    connection: Connection,
    /// The index of its node.
    node: usize,
    /// The `user_id` of its messages: its node URL's user.
    user_id: Option<ShortString>,
}

impl PublishLink {
    fn is_open(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }
}

/// What is known about one of the two connections, without I/O.
#[derive(Default)]
enum Health {
    /// Never needed yet (the transport is lazy).
    #[default]
    Idle,
    /// Open; the status follows the live connection.
    Up(ConnectionStatus),
    /// The last attempt failed or the connection was dropped after an error.
    Down,
}

impl Health {
    fn ok(&self) -> bool {
        match self {
            Health::Idle => true,
            Health::Up(status) => status.connected() && !status.blocked(),
            Health::Down => false,
        }
    }
}

fn lock(health: &Mutex<Health>) -> MutexGuard<'_, Health> {
    // Only plain assignments happen under this lock: a poisoned one is still consistent.
    health.lock().unwrap_or_else(|p| p.into_inner())
}

/// Why a publish failed: the link is broken, or in an unknown state, or nacking (drop it).
enum Failure {
    Broken(TransportError),
}

impl RabbitMq {
    /// A transport for the broker at `url` (`amqp://user:password@host:port/vhost`, user and
    /// password percent-encoded, the vhost too: `%2f` is `/`; `amqps://` for TLS, see
    /// [`RabbitMqConfig::tls_ca`]; query parameters such as `?heartbeat=5` set the AMQP
    /// heartbeat, which bounds how long a silently dead connection goes unnoticed: 10 s without
    /// one, [`DEFAULT_HEARTBEAT_SECS`]). Without a
    /// user, lapin logs in as `guest` and messages carry no `user_id`. Does no I/O: connections
    /// are opened when first needed, in the Tokio runtime of the first call (a URL that does not
    /// parse fails then).
    ///
    /// Several nodes of a cluster: their URLs separated by commas
    /// (`amqp://u:p@10.0.0.1:5672/%2f,amqp://u:p@10.0.0.2:5672/%2f`; a comma in a password is
    /// written `%2C`), as [`RabbitMq::cluster`].
    pub fn new(url: impl Into<String>, config: RabbitMqConfig) -> Self {
        let url = url.into();
        let urls: Vec<String> = url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(String::from)
            .collect();
        if urls.is_empty() {
            // Fails at the first connection, saying it does not parse.
            return Self::cluster([url], config);
        }
        Self::cluster(urls, config)
    }

    /// A transport for a cluster of RabbitMQ nodes: a connection goes to the node that answered
    /// last, else to the next in turn, and moves on to the next node when it is lost. Every
    /// URL must name the same user (the `user_id` of the messages); no URL at all is an error
    /// at the first connection.
    pub fn cluster(
        urls: impl IntoIterator<Item = impl Into<String>>,
        config: RabbitMqConfig,
    ) -> Self {
        let mut nodes: Vec<Node> = urls.into_iter().map(|u| Node::new(u.into())).collect();
        if nodes.is_empty() {
            nodes.push(Node::new(String::new()));
        }
        let users: Vec<Option<&str>> = nodes
            .iter()
            .map(|n| n.user_id.as_ref().map(ShortString::as_str))
            .collect();
        let misconfigured = users.iter().any(|u| *u != users[0]).then(|| {
            format!(
                "the {} node URLs name different users ({users:?}): the nodes of one broker \
                 are reached as one user",
                nodes.len()
            )
        });
        Self {
            inner: Arc::new(Inner {
                nodes,
                misconfigured,
                preferred: AtomicUsize::new(0),
                config,
                publisher: tokio::sync::Mutex::new(None),
                consumer: tokio::sync::Mutex::new(None),
                publish_health: Mutex::new(Health::Idle),
                consume_health: Mutex::new(Health::Idle),
            }),
        }
    }

    /// The settings this transport was made with.
    pub fn config(&self) -> &RabbitMqConfig {
        &self.inner.config
    }

    /// Deletes a subscriber application's queue, with whatever it still holds (operators,
    /// tests). Deleting a queue that does not exist succeeds.
    pub async fn delete_queue(&self, queue: &str) -> Result<(), TransportError> {
        let name = short("queue name", queue)?;
        self.administer(format!("deleting queue {queue:?}"), async move |channel| {
            let options = lapin::options::QueueDeleteOptions::default();
            channel.queue_delete(name, options).await.map(drop)
        })
        .await
    }

    /// Deletes the `partitions` queues of a partitioned subscriber application and their
    /// consistent-hash exchange (see [`QueueSpec::partitions`]; 1: its one queue), with whatever
    /// they still hold. Deleting what does not exist succeeds.
    pub async fn delete_partitions(
        &self,
        app: &str,
        partitions: u16,
    ) -> Result<(), TransportError> {
        for queue in super::queue_names(app, partitions) {
            self.delete_queue(&queue).await?;
        }
        if partitions > 1 {
            let spec = QueueSpec {
                partitions,
                ..QueueSpec::new(app, Vec::new(), 1)
            };
            let name = spec.partition_exchange();
            let exchange = short("exchange name", &name)?;
            self.administer(
                format!("deleting exchange {name:?}"),
                async move |channel| {
                    let options = lapin::options::ExchangeDeleteOptions::default();
                    channel.exchange_delete(exchange, options).await
                },
            )
            .await?;
        }
        Ok(())
    }

    /// Deletes this transport's exchange (operators, tests).
    pub async fn delete_exchange(&self) -> Result<(), TransportError> {
        let exchange = short("exchange name", &self.inner.config.exchange)?;
        let what = format!("deleting exchange {:?}", self.inner.config.exchange);
        self.administer(what, async move |channel| {
            let options = lapin::options::ExchangeDeleteOptions::default();
            channel.exchange_delete(exchange, options).await
        })
        .await
    }

    /// One administrative call on a short-lived connection of its own.
    async fn administer(
        &self,
        what: String,
        call: impl AsyncFnOnce(Channel) -> lapin::Result<()>,
    ) -> Result<(), TransportError> {
        let (connection, _) = self.inner.connect("administer").await?;
        let channel = self
            .inner
            .op(|| "opening a channel".into(), connection.create_channel())
            .await?;
        let done = self.inner.op(|| what, call(channel)).await;
        let _ = connection.close(200, "done".into()).await;
        done
    }
}

impl fmt::Debug for RabbitMq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nodes: Vec<String> = self.inner.nodes.iter().map(|n| redact(&n.url)).collect();
        f.debug_struct("RabbitMq")
            .field("nodes", &nodes)
            .field("config", &self.inner.config)
            .field("healthy", &self.healthy())
            .finish()
    }
}

impl Inner {
    /// The TLS settings of a connection: the CA file's certificates for `amqps://` with
    /// [`RabbitMqConfig::tls_ca`], else the defaults (the system's roots).
    fn tls_config(&self, node: &Node) -> Result<OwnedTLSConfig, String> {
        match &self.config.tls_ca {
            Some(path) if node.tls => Ok(OwnedTLSConfig {
                identity: None,
                cert_chain: Some(tls::read_ca(path)?),
            }),
            _ => Ok(OwnedTLSConfig::default()),
        }
    }

    /// A connection to the preferred node, else to the next ones in turn; with its node's
    /// index.
    async fn connect(&self, role: &str) -> Result<(Connection, usize), TransportError> {
        if let Some(why) = &self.misconfigured {
            return Err(TransportError::rejected(why.clone()));
        }
        let count = self.nodes.len();
        let start = self.preferred.load(Ordering::Relaxed) % count;
        let mut failures = Vec::new();
        for step in 0..count {
            let index = (start + step) % count;
            match self.connect_node(&self.nodes[index], role).await {
                Ok(connection) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return Ok((connection, index));
                }
                Err(e) => failures.push(e),
            }
        }
        if count == 1
            && let Some(only) = failures.pop()
        {
            return Err(only);
        }
        let reasons: Vec<String> = failures
            .iter()
            .map(|e| crate::cause::Report(e).to_string())
            .collect();
        Err(TransportError::unavailable(format!(
            "no node of the {count} answered (to {role}): {}",
            reasons.join("; ")
        )))
    }

    /// The connection to node `index` was lost: the next connection tries the next node first
    /// (unless another one was chosen since).
    fn avoid(&self, index: usize) {
        let next = (index + 1) % self.nodes.len();
        let _ = self
            .preferred
            .compare_exchange(index, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    async fn connect_node(&self, node: &Node, role: &str) -> Result<Connection, TransportError> {
        let name = format!("{} ({role})", self.config.connection_name);
        let properties = ConnectionProperties::default().with_connection_name(name.into());
        let url = redact(&node.url);
        let failed = |why: String| {
            TransportError::unavailable(format!("connecting to {url} to {role}: {why}"))
        };
        // Not `failed`: a URL that does not parse may not be redacted either.
        let uri = node.uri.clone().map_err(|e| {
            TransportError::unavailable(format!("the AMQP URL (to {role}) does not parse: {e}"))
        })?;
        let tls_config = self.tls_config(node).map_err(failed)?;
        let runtime = lapin::runtime::default_runtime().map_err(|e| {
            TransportError::unavailable(format!("connecting to {url} to {role}")).because(e)
        })?;
        match tokio::time::timeout(
            self.config.connect_timeout,
            Connection::connect_uri_with_config(uri, properties, tls_config, runtime),
        )
        .await
        {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(e)) => {
                let context = match tls::failure(&e.to_string()) {
                    Some(reason) if node.tls => {
                        format!("TLS handshake with {url} (to {role}) failed: {reason}")
                    }
                    _ => format!("connecting to {url} to {role}"),
                };
                Err(TransportError::unavailable(context).because(e))
            }
            Err(_) => Err(TransportError::unavailable(format!(
                "connecting to {url} to {role}: no answer within {:?}",
                self.config.connect_timeout
            ))),
        }
    }

    /// Runs one broker round trip within the operation timeout, mapping its error with `what`.
    async fn op<T>(
        &self,
        what: impl FnOnce() -> String,
        fut: impl Future<Output = lapin::Result<T>>,
    ) -> Result<T, TransportError> {
        match tokio::time::timeout(self.config.operation_timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(amqp_error(&what(), &e)),
            Err(_) => Err(TransportError::unavailable(format!(
                "{}: no answer from the broker within {:?}",
                what(),
                self.config.operation_timeout
            ))),
        }
    }

    async fn declare_exchange(
        &self,
        channel: &Channel,
        exchange: &ShortString,
    ) -> Result<(), TransportError> {
        self.op(
            || format!("declaring topic exchange {:?}", exchange.as_str()),
            channel.exchange_declare(
                exchange.clone(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            ),
        )
        .await
    }

    async fn open_publish_link(&self) -> Result<PublishLink, TransportError> {
        let exchange = short("exchange name", &self.config.exchange)?;
        let (connection, node) = self.connect("publish").await?;
        let channel = self
            .op(
                || "opening the publishing channel".into(),
                connection.create_channel(),
            )
            .await?;
        self.op(
            || "enabling publisher confirms".into(),
            channel.confirm_select(ConfirmSelectOptions::default()),
        )
        .await?;
        self.declare_exchange(&channel, &exchange).await?;
        *lock(&self.publish_health) = Health::Up(connection.status().clone());
        Ok(PublishLink {
            channel,
            connection,
            user_id: self.nodes[node].user_id.clone(),
            node,
        })
    }

    async fn publish_on(
        &self,
        link: &PublishLink,
        exchange: &ShortString,
        messages: &[Publish<'_>],
    ) -> Result<(), Failure> {
        let mut properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into());
        if let Some(user) = &link.user_id {
            properties = properties.with_user_id(user.clone());
        }
        let mut confirms = Vec::with_capacity(messages.len());
        let mut unsent = None;
        for message in messages {
            let routing_key = &message.routing_key;
            let mut properties = properties.clone();
            if let Some(key) = message.partition_key {
                let mut headers = FieldTable::default();
                headers.insert(
                    PARTITION_HEADER.into(),
                    AMQPValue::LongString(LongString::from(key)),
                );
                properties = properties.with_headers(headers);
            }
            let sent = link
                .channel
                .basic_publish(
                    exchange.clone(),
                    routing_key.clone(),
                    BasicPublishOptions::default(),
                    message.payload,
                    properties,
                )
                .await;
            match sent {
                Ok(confirm) => confirms.push((routing_key, confirm)),
                // Most likely the broker closed the channel for an earlier message: its confirm
                // below says why.
                Err(e) => {
                    unsent = Some(refusal(exchange, routing_key, "publishing", &e));
                    break;
                }
            }
        }
        let mut nacked = Vec::new();
        for (routing_key, confirm) in confirms {
            match confirm.await {
                Ok(Confirmation::Ack(_)) => {}
                Ok(Confirmation::Nack(_)) => nacked.push(routing_key.as_str()),
                Ok(Confirmation::NotRequested) => {
                    return Err(Failure::Broken(TransportError::unavailable(
                        "the publishing channel is not in confirm mode",
                    )));
                }
                // The first message without a confirm is the one the broker refused, if it
                // refused one: it closed the channel then, failing the later confirms too.
                Err(e) => {
                    let what = "waiting for the confirm of the message";
                    return Err(Failure::Broken(refusal(exchange, routing_key, what, &e)));
                }
            }
        }
        if let Some(e) = unsent {
            return Err(Failure::Broken(e));
        }
        if nacked.is_empty() {
            Ok(())
        } else {
            Err(Failure::Broken(TransportError::unavailable(format!(
                "exchange {:?}: the broker nacked {} of {} messages (routing keys {:?}): it could \
                 not take them (a quorum queue without a leader, say); the channel is dropped",
                exchange.as_str(),
                nacked.len(),
                messages.len(),
                nacked.iter().collect::<std::collections::BTreeSet<_>>()
            ))))
        }
    }

    async fn consumer_connection(&self) -> Result<Arc<Connection>, TransportError> {
        let mut cached = self.consumer.lock().await;
        match cached.take() {
            Some((connection, node)) if connection.status().connected() => {
                *cached = Some((connection.clone(), node));
                return Ok(connection);
            }
            Some((_, node)) => self.avoid(node),
            None => {}
        }
        match self.connect("consume").await {
            Ok((connection, node)) => {
                *lock(&self.consume_health) = Health::Up(connection.status().clone());
                let connection = Arc::new(connection);
                *cached = Some((connection.clone(), node));
                Ok(connection)
            }
            Err(e) => {
                *lock(&self.consume_health) = Health::Down;
                Err(e)
            }
        }
    }

    /// Declares the exchange, the durable queue (or the partitions, their consistent-hash
    /// exchange and its binding) and the bindings on `channel`.
    async fn declare_queue(
        &self,
        channel: &Channel,
        spec: &QueueSpec,
    ) -> Result<(), TransportError> {
        let exchange = short("exchange name", &self.config.exchange)?;
        self.declare_exchange(channel, &exchange).await?;
        if spec.partitions <= 1 {
            let queue = short("queue name", &spec.queue)?;
            self.declare_durable_queue(channel, &queue, false).await?;
            for binding in &spec.bindings {
                self.bind(channel, &queue, &exchange, binding, Bound::Queue)
                    .await?;
            }
            return Ok(());
        }
        // Partitions: topic exchange --bindings--> hash exchange --weight 1--> each partition.
        let hash = short("partition exchange name", &spec.partition_exchange())?;
        let mut arguments = FieldTable::default();
        arguments.insert(
            "hash-header".into(),
            AMQPValue::LongString(LongString::from(PARTITION_HEADER)),
        );
        self.op(
            || format!("declaring consistent-hash exchange {:?} (is the plugin rabbitmq_consistent_hash_exchange enabled?)", hash.as_str()),
            channel.exchange_declare(
                hash.clone(),
                ExchangeKind::Custom("x-consistent-hash".into()),
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                arguments,
            ),
        )
        .await?;
        for name in spec.queue_names() {
            let queue = short("queue name", &name)?;
            self.declare_durable_queue(channel, &queue, true).await?;
            self.bind(channel, &queue, &hash, "1", Bound::Queue).await?;
        }
        for binding in &spec.bindings {
            self.bind(channel, &hash, &exchange, binding, Bound::Exchange)
                .await?;
        }
        Ok(())
    }

    /// Declares `queue`, durable, of the configured type, with a single active consumer if
    /// `single_active`.
    async fn declare_durable_queue(
        &self,
        channel: &Channel,
        queue: &ShortString,
        single_active: bool,
    ) -> Result<(), TransportError> {
        let queue_type = self.config.queue_type;
        let mut arguments = FieldTable::default();
        if queue_type == QueueType::Quorum {
            arguments.insert(
                "x-queue-type".into(),
                AMQPValue::LongString(LongString::from(queue_type.as_str())),
            );
        }
        if single_active {
            arguments.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
        }
        self.op(
            || format!("declaring durable {queue_type} queue {:?}", queue.as_str()),
            channel.queue_declare(
                queue.clone(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                arguments,
            ),
        )
        .await
        .map(drop)
    }

    /// Binds `destination` (a queue or an exchange) to the exchange `source` with `pattern`.
    async fn bind(
        &self,
        channel: &Channel,
        destination: &ShortString,
        source: &ShortString,
        pattern: &str,
        kind: Bound,
    ) -> Result<(), TransportError> {
        let key = short("binding pattern", pattern)?;
        let context = || {
            format!(
                "binding {kind} {:?} to exchange {:?} with {pattern:?}",
                destination.as_str(),
                source.as_str()
            )
        };
        match kind {
            Bound::Queue => {
                self.op(
                    context,
                    channel.queue_bind(
                        destination.clone(),
                        source.clone(),
                        key,
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    ),
                )
                .await
            }
            Bound::Exchange => {
                self.op(
                    context,
                    channel.exchange_bind(
                        destination.clone(),
                        source.clone(),
                        key,
                        ExchangeBindOptions::default(),
                        FieldTable::default(),
                    ),
                )
                .await
            }
        }
    }

    async fn open_channel(
        &self,
        connection: &Connection,
        queue: &str,
    ) -> Result<Channel, TransportError> {
        self.op(
            || format!("opening a channel for queue {queue:?}"),
            connection.create_channel(),
        )
        .await
    }

    /// A consumer of the queue `name` (one of `spec`'s, declared already) on a channel of its
    /// own.
    async fn open_consumer(
        &self,
        connection: &Connection,
        spec: &QueueSpec,
        name: &str,
    ) -> Result<RabbitMqConsumer, TransportError> {
        let queue = short("queue name", name)?;
        let channel = self.open_channel(connection, name).await?;
        self.op(
            || format!("setting prefetch {} for queue {name:?}", spec.prefetch),
            channel.basic_qos(spec.prefetch, BasicQosOptions::default()),
        )
        .await?;
        let consumer = self
            .op(
                || format!("consuming queue {name:?}"),
                channel.basic_consume(
                    queue,
                    ShortString::from(""),
                    BasicConsumeOptions {
                        no_ack: false,
                        ..BasicConsumeOptions::default()
                    },
                    FieldTable::default(),
                ),
            )
            .await?;
        Ok(RabbitMqConsumer {
            queue: name.to_string(),
            live: Some((channel, consumer)),
            failed: None,
            ack_timeout: self.config.operation_timeout,
        })
    }

    /// Declares `spec` and consumes each of its queues. RabbitMQ makes the first consumer of
    /// a single-active-consumer queue its active one, so partitions are joined one at a time,
    /// [`PARTITION_STAGGER`] over all of them, after a random pause of up to one step, each
    /// time the partition with the fewest consumers (ties broken from a random start): workers
    /// starting together each become active on partitions nobody else consumes yet, and wait
    /// as standbys on the others (taking over when the active one goes).
    async fn open_consumers(
        &self,
        connection: &Connection,
        spec: &QueueSpec,
    ) -> Result<Box<dyn Consumer>, TransportError> {
        let channel = self.open_channel(connection, &spec.queue).await?;
        self.declare_queue(&channel, spec).await?;
        let mut names = spec.queue_names();
        if names.len() == 1 {
            let _ = channel.close(200, "declared".into()).await;
            let consumer = self.open_consumer(connection, spec, &names[0]).await?;
            return Ok(Merged::boxed(vec![Box::new(consumer)]));
        }
        let start = random_index(names.len());
        names.rotate_left(start);
        let step = PARTITION_STAGGER / u32::try_from(names.len()).unwrap_or(u32::MAX);
        tokio::time::sleep(step.mul_f64(random_fraction())).await;
        let mut consumers: Vec<Box<dyn Consumer>> = Vec::with_capacity(names.len());
        // Once every partition left has a consumer, this worker is a standby on all of them
        // whichever it joins first: no more counting (P passive declares a step otherwise).
        let mut all_consumed = false;
        while !names.is_empty() {
            if !consumers.is_empty() {
                tokio::time::sleep(step).await;
            }
            let next = if all_consumed {
                0
            } else {
                let (next, consumers) = self.least_consumed(&channel, &names).await?;
                all_consumed = consumers > 0;
                next
            };
            let name = names.remove(next);
            consumers.push(Box::new(self.open_consumer(connection, spec, &name).await?));
        }
        let _ = channel.close(200, "joined".into()).await;
        Ok(Merged::boxed(consumers))
    }

    /// The index in `names` of the queue with the fewest consumers (the first of those) and
    /// their number, by passive declares on `channel`.
    async fn least_consumed(
        &self,
        channel: &Channel,
        names: &[String],
    ) -> Result<(usize, u32), TransportError> {
        let mut best = (0, u32::MAX);
        for (i, name) in names.iter().enumerate() {
            let queue = short("queue name", name)?;
            let declared = self
                .op(
                    || format!("counting the consumers of queue {name:?} (passive declare)"),
                    channel.queue_declare(
                        queue,
                        QueueDeclareOptions {
                            passive: true,
                            durable: true,
                            ..QueueDeclareOptions::default()
                        },
                        FieldTable::default(),
                    ),
                )
                .await?;
            if declared.consumer_count() < best.1 {
                best = (i, declared.consumer_count());
            }
        }
        Ok(best)
    }
}

/// One message to publish, checked.
struct Publish<'a> {
    routing_key: ShortString,
    payload: &'a [u8],
    partition_key: Option<&'a str>,
}

/// How long a worker takes to join all the partitions of a queue (see `open_consumers`).
pub const PARTITION_STAGGER: Duration = Duration::from_millis(400);

/// A start in `0..n`, different from process to process and from call to call.
fn random_index(n: usize) -> usize {
    (random_u64() % n.max(1) as u64) as usize
}

/// A fraction in `[0, 1)`, different from process to process and from call to call.
fn random_fraction() -> f64 {
    (random_u64() >> 11) as f64 / (1u64 << 53) as f64
}

fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish()
}

/// What a binding binds to an exchange.
#[derive(Clone, Copy)]
enum Bound {
    Queue,
    Exchange,
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Bound::Queue => "queue",
            Bound::Exchange => "exchange",
        })
    }
}

#[async_trait]
impl Transport for RabbitMq {
    async fn publish(&self, messages: &[Outgoing]) -> Result<(), TransportError> {
        if messages.is_empty() {
            return Ok(());
        }
        let inner = &*self.inner;
        let exchange = short("exchange name", &inner.config.exchange)?;
        // Checked before anything is sent, so a bad key rejects the whole call.
        let batch = messages
            .iter()
            .map(|m| {
                Ok(Publish {
                    routing_key: short("routing key", &m.routing_key)?,
                    payload: m.payload.as_slice(),
                    partition_key: m.partition_key.as_deref(),
                })
            })
            .collect::<Result<Vec<_>, TransportError>>()?;

        let mut cached = inner.publisher.lock().await;
        let link = match cached.take() {
            Some(link) if link.is_open() => link,
            stale => {
                if let Some(lost) = stale {
                    inner.avoid(lost.node);
                }
                match inner.open_publish_link().await {
                    Ok(link) => link,
                    Err(e) => {
                        *lock(&inner.publish_health) = Health::Down;
                        return Err(e);
                    }
                }
            }
        };
        let result = tokio::time::timeout(
            inner.config.operation_timeout,
            inner.publish_on(&link, &exchange, &batch),
        )
        .await
        .unwrap_or_else(|_| {
            Err(Failure::Broken(TransportError::unavailable(format!(
                "exchange {:?}: {} messages not confirmed within {:?}",
                inner.config.exchange,
                batch.len(),
                inner.config.operation_timeout
            ))))
        });
        match result {
            Ok(()) => {
                *cached = Some(link);
                Ok(())
            }
            Err(Failure::Broken(e)) => {
                // Unknown state (lost connection, closed channel, missing confirms): the link
                // is dropped (closing it if still open) and the next call starts over, on the
                // next node first.
                inner.avoid(link.node);
                *lock(&inner.publish_health) = Health::Down;
                Err(e)
            }
        }
    }

    async fn consume(&self, spec: &QueueSpec) -> Result<Box<dyn Consumer>, TransportError> {
        if spec.prefetch == 0 {
            return Err(TransportError::rejected(format!(
                "queue {:?}: prefetch must be at least 1",
                spec.queue
            )));
        }
        if spec.partitions > super::MAX_PARTITIONS {
            return Err(TransportError::rejected(format!(
                "queue {:?}: {} partitions, at most {} allowed",
                spec.queue,
                spec.partitions,
                super::MAX_PARTITIONS
            )));
        }
        let inner = &*self.inner;
        let connection = inner.consumer_connection().await?;
        match inner.open_consumers(&connection, spec).await {
            Ok(consumer) => Ok(consumer),
            Err(e) => {
                if !connection.status().connected() {
                    *lock(&inner.consume_health) = Health::Down;
                }
                Err(e)
            }
        }
    }

    async fn declare(&self, spec: &QueueSpec) -> Result<(), TransportError> {
        let inner = &*self.inner;
        let connection = inner.consumer_connection().await?;
        let channel = inner.open_channel(&connection, &spec.queue).await?;
        let declared = inner.declare_queue(&channel, spec).await;
        let _ = channel.close(200, "declared".into()).await;
        declared
    }

    fn healthy(&self) -> bool {
        lock(&self.inner.publish_health).ok() && lock(&self.inner.consume_health).ok()
    }

    /// A passive declare: the broker's count of ready messages, without creating the queue
    /// (a missing queue is a `Rejected` NOT_FOUND error).
    async fn queue_depth(&self, queue: &str) -> Result<Option<u64>, TransportError> {
        let inner = &*self.inner;
        let name = short("queue name", queue)?;
        let connection = inner.consumer_connection().await?;
        let channel = inner.open_channel(&connection, queue).await?;
        let declared = inner
            .op(
                || format!("checking queue {queue:?} (passive declare)"),
                channel.queue_declare(
                    name,
                    QueueDeclareOptions {
                        passive: true,
                        durable: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                ),
            )
            .await;
        // A failed passive declare already closed the channel on the broker's side.
        if declared.is_ok() {
            let _ = channel.close(200, "checked".into()).await;
        }
        declared.map(|q| Some(u64::from(q.message_count())))
    }
}

/// Deliveries of one queue, on a channel of its own.
struct RabbitMqConsumer {
    queue: String,
    /// The channel and the lapin consumer; `None` once failed. Dropping them cancels the
    /// consumer and closes the channel, so the broker requeues what was left unacknowledged.
    live: Option<(Channel, lapin::Consumer)>,
    failed: Option<String>,
    ack_timeout: Duration,
}

impl RabbitMqConsumer {
    fn fail(&mut self, reason: String) -> TransportError {
        self.live = None;
        self.failed = Some(reason.clone());
        TransportError::unavailable(reason)
    }
}

#[async_trait]
impl Consumer for RabbitMqConsumer {
    async fn next(&mut self) -> Result<Delivery, TransportError> {
        loop {
            let Some((_, consumer)) = self.live.as_mut() else {
                let reason = self
                    .failed
                    .clone()
                    .unwrap_or_else(|| format!("queue {:?}: the consumer has stopped", self.queue));
                return Err(TransportError::unavailable(reason));
            };
            match consumer.next().await {
                Some(Ok(delivery)) => {
                    if !delivery.acker.usable() {
                        // Received before its channel closed: it can no longer be acked and
                        // the broker redelivers it to the next consumer. Skipping it lets the
                        // failure surface now rather than after the whole prefetch buffer.
                        continue;
                    }
                    return Ok(Delivery {
                        user_id: delivery
                            .properties
                            .user_id()
                            .as_ref()
                            .map(|u| u.to_string()),
                        routing_key: delivery.routing_key.to_string(),
                        payload: delivery.data,
                        redelivered: delivery.redelivered,
                        acker: Box::new(RabbitMqAcker {
                            acker: delivery.acker,
                            queue: self.queue.clone(),
                            timeout: self.ack_timeout,
                        }),
                    });
                }
                Some(Err(e)) => {
                    let reason = format!("queue {:?}: consumer failed: {e}", self.queue);
                    return Err(self.fail(reason));
                }
                None => {
                    let reason = format!(
                        "queue {:?}: the consumer was cancelled (connection or channel closed, \
                         or queue deleted)",
                        self.queue
                    );
                    return Err(self.fail(reason));
                }
            }
        }
    }
}

struct RabbitMqAcker {
    acker: lapin::Acker,
    queue: String,
    timeout: Duration,
}

impl RabbitMqAcker {
    async fn settle(
        &self,
        what: &str,
        fut: impl Future<Output = lapin::Result<bool>>,
    ) -> Result<(), TransportError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(true)) => Ok(()),
            // Already acked or nacked through this acker: nothing left to do.
            Ok(Ok(false)) if !self.acker.poisoned() => Ok(()),
            Ok(Ok(false)) => Err(TransportError::unavailable(format!(
                "queue {:?}: {what} not sent, the channel closed first (the broker redelivers \
                 the message)",
                self.queue
            ))),
            Ok(Err(e)) => Err(TransportError::unavailable(format!(
                "queue {:?}: {what}",
                self.queue
            ))
            .because(e)),
            Err(_) => Err(TransportError::unavailable(format!(
                "queue {:?}: {what} not sent within {:?}",
                self.queue, self.timeout
            ))),
        }
    }
}

#[async_trait]
impl Acker for RabbitMqAcker {
    async fn ack(&self) -> Result<(), TransportError> {
        self.settle("ack", self.acker.ack(BasicAckOptions::default()))
            .await
    }

    async fn nack(&self, requeue: bool) -> Result<(), TransportError> {
        let options = BasicNackOptions {
            multiple: false,
            requeue,
        };
        self.settle("nack", self.acker.nack(options)).await
    }
}

/// AMQP strings are at most 255 bytes; lapin panics on longer ones, so check first.
fn short(what: &str, value: &str) -> Result<ShortString, TransportError> {
    ShortString::try_new(value).map_err(|e| {
        TransportError::rejected(format!(
            "{what} {:?}…: {e}",
            value.chars().take(40).collect::<String>()
        ))
    })
}

/// A failed publish of the message with `routing_key`. A refusal by the broker (a channel
/// closed with a soft error: `ACCESS_REFUSED` for a routing key the user may not publish with,
/// `PRECONDITION_FAILED` for a `user_id` that is not the connection's user) is `Rejected` with
/// the broker's reply text; anything else is `Unavailable`.
fn refusal(
    exchange: &ShortString,
    routing_key: &ShortString,
    what: &str,
    error: &lapin::Error,
) -> TransportError {
    let (exchange, key) = (exchange.as_str(), routing_key.as_str());
    match error.kind() {
        lapin::ErrorKind::ProtocolError(e) if error.is_amqp_soft_error() => {
            TransportError::rejected(format!(
                "exchange {exchange:?}, routing key {key:?}: {} (the broker closed the \
                 publishing channel)",
                e.get_message()
            ))
            .because(error.clone())
        }
        _ => amqp_error(
            &format!("{what} to exchange {exchange:?} with routing key {key:?}"),
            error,
        ),
    }
}

/// A broker-side refusal (an AMQP soft error such as PRECONDITION_FAILED or ACCESS_REFUSED:
/// retrying will not help) is `Rejected`; anything else (I/O, closed connection or channel) is
/// `Unavailable`.
fn amqp_error(context: &str, error: &lapin::Error) -> TransportError {
    let failed = if error.is_amqp_soft_error() {
        TransportError::rejected(context)
    } else {
        TransportError::unavailable(context)
    };
    failed.because(error.clone())
}

use crate::cause::redact_url as redact;

/// Parses `url` as lapin does, except that an IP address as host is kept: lapin's URL parser
/// (amq-protocol-uri 10) takes only domain names and silently puts `localhost` in place of an
/// IP address. Errors never show the password.
fn parse_url(url: &str) -> Result<AMQPUri, String> {
    // The parser's messages may quote the URL as given: with its password.
    let mut uri: AMQPUri = url
        .parse()
        .map_err(|e: String| e.replace(url, "<the URL>"))?;
    if let Some(ip) = authority(url).and_then(|(_, host)| host_ip(host)) {
        uri.authority.host = ip;
    }
    uri.query.heartbeat.get_or_insert(DEFAULT_HEARTBEAT_SECS);
    Ok(uri)
}

/// The AMQP heartbeat (seconds) of a URL without `?heartbeat=`. The broker would propose 60 s,
/// and a connection whose packets vanish (a partition, a node cut off) goes unnoticed for up to
/// twice that; lapin closes one that has been silent for 2 heartbeats, so this bounds a silent
/// failover at about 20 s (tests/netfaults.rs). `?heartbeat=0` takes the broker's (60 s unless
/// configured), as lapin does.
pub const DEFAULT_HEARTBEAT_SECS: u16 = 10;

/// The userinfo (if any) and the host of `url`'s authority, as written.
fn authority(url: &str) -> Option<(Option<&str>, &str)> {
    let rest = url.split_once("://")?.1;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let (userinfo, host_port) = match authority.rfind('@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        &v6[..v6.find(']')?]
    } else {
        host_port.rsplit_once(':').map_or(host_port, |(h, _)| h)
    };
    Some((userinfo, host))
}

fn host_ip(host: &str) -> Option<String> {
    host.parse::<std::net::IpAddr>()
        .ok()
        .map(|ip| ip.to_string())
}

/// The `user_id` for messages: the URL's user name, percent-decoded (lapin's parse); `None`
/// when the URL names no user (lapin then logs in as its default `guest`).
fn user_of(url: &str, uri: Option<&AMQPUri>) -> Option<ShortString> {
    let (Some(userinfo), Some(uri)) = (authority(url)?.0, uri) else {
        return None;
    };
    let user = userinfo.split(':').next().unwrap_or_default();
    if user.is_empty() {
        return None;
    }
    ShortString::try_new(uri.authority.userinfo.username.as_str()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlong_names_are_errors_not_panics() {
        assert!(matches!(
            short("routing key", &"k".repeat(256)),
            Err(TransportError::Rejected { .. })
        ));
        assert!(short("routing key", &"k".repeat(255)).is_ok());
    }

    #[test]
    fn urls_without_a_heartbeat_get_the_default() {
        let heartbeat = |url: &str| parse_url(url).unwrap().query.heartbeat;
        assert_eq!(heartbeat("amqp://h/%2f"), Some(DEFAULT_HEARTBEAT_SECS));
        assert_eq!(heartbeat("amqp://h/%2f?heartbeat=3"), Some(3));
        assert_eq!(heartbeat("amqp://h/%2f?heartbeat=0"), Some(0));
    }

    #[test]
    fn urls_keep_ip_hosts_and_name_the_user() {
        let uri = parse_url("amqp://u:p@10.1.2.3:5673/%2f").unwrap();
        assert_eq!(
            (uri.authority.host.as_str(), uri.authority.port),
            ("10.1.2.3", 5673)
        );
        let uri = parse_url("amqps://u:p@[::1]:5671/%2f").unwrap();
        assert_eq!(uri.authority.host, "::1");
        let uri = parse_url("amqp://u:p@rabbit.example.org/%2f").unwrap();
        assert_eq!(uri.authority.host, "rabbit.example.org");
        let user = |url: &str| user_of(url, parse_url(url).ok().as_ref()).map(|u| u.to_string());
        assert_eq!(user("amqp://trust_a:pw@h/%2f").as_deref(), Some("trust_a"));
        assert_eq!(user("amqp://us%40er:pw@h/%2f").as_deref(), Some("us@er"));
        assert_eq!(user("amqp://alone@h/").as_deref(), Some("alone"));
        assert_eq!(
            user("amqp://h:5672/%2f"),
            None,
            "lapin's guest is not claimed"
        );
        assert_eq!(user("amqp://:pw@h/"), None);
        let err = parse_url("amqp:secret@host").unwrap_err();
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn several_node_urls_make_a_cluster() {
        let rabbit = RabbitMq::new(
            "amqp://u:secret@127.0.0.1:5701/%2f, amqp://u:secret@127.0.0.1:5702/%2f,",
            RabbitMqConfig::default(),
        );
        assert_eq!(rabbit.inner.nodes.len(), 2);
        assert!(rabbit.inner.misconfigured.is_none());
        let debug = format!("{rabbit:?}");
        assert!(
            debug.contains("5701") && debug.contains("5702") && !debug.contains("secret"),
            "{debug}"
        );
        assert_eq!("quorum".parse(), Ok(QueueType::Quorum));
        assert_eq!("classic".parse(), Ok(QueueType::Classic));
        assert!(
            "mirrored"
                .parse::<QueueType>()
                .unwrap_err()
                .contains("mirrored")
        );
    }

    #[tokio::test]
    async fn nodes_naming_different_users_are_refused() {
        let rabbit = RabbitMq::cluster(
            ["amqp://a:pw@127.0.0.1:1/%2f", "amqp://b:pw@127.0.0.1:1/%2f"],
            RabbitMqConfig::default(),
        );
        let out = Outgoing {
            routing_key: "a".into(),
            payload: b"{}".to_vec(),
            partition_key: None,
        };
        let err = rabbit.publish(&[out]).await.unwrap_err();
        assert!(
            matches!(&err, TransportError::Rejected { context, .. } if context.contains("different users")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn every_unreachable_node_is_named() {
        // Ports 1 and 2 on loopback: nothing listens, connections are refused at once.
        let rabbit = RabbitMq::new(
            "amqp://u:secret@127.0.0.1:1/%2f,amqp://u:secret@127.0.0.1:2/%2f",
            RabbitMqConfig::default(),
        );
        let out = Outgoing {
            routing_key: "u".into(),
            payload: b"{}".to_vec(),
            partition_key: None,
        };
        let err = rabbit.publish(&[out]).await.unwrap_err();
        let msg = crate::cause::Report(&err).to_string();
        assert!(matches!(err, TransportError::Unavailable { .. }), "{msg}");
        assert!(
            msg.contains("no node of the 2")
                && msg.contains("127.0.0.1:1/")
                && msg.contains("127.0.0.1:2/")
                && !msg.contains("secret"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn is_lazy_and_reports_an_unreachable_broker() {
        // Port 1 on loopback: nothing listens, the connection is refused at once.
        let rabbit = RabbitMq::new(
            "amqp://guest:secret@127.0.0.1:1/%2f",
            RabbitMqConfig::default(),
        );
        assert!(rabbit.healthy(), "no I/O yet: nothing known to be down");
        let out = Outgoing {
            routing_key: "app".into(),
            payload: b"{}".to_vec(),
            partition_key: None,
        };
        let err = rabbit.publish(&[out]).await.unwrap_err();
        let msg = crate::cause::Report(&err).to_string();
        let TransportError::Unavailable { .. } = err else {
            panic!("expected Unavailable, got {err:?}")
        };
        assert!(
            msg.contains("127.0.0.1:1") && !msg.contains("secret"),
            "{msg}"
        );
        assert!(!rabbit.healthy());
        let spec = QueueSpec {
            queue: "q".into(),
            bindings: vec!["app".into()],
            prefetch: 1,
            partitions: 1,
        };
        assert!(matches!(
            rabbit.consume(&spec).await.err(),
            Some(TransportError::Unavailable { .. })
        ));
        assert!(rabbit.publish(&[]).await.is_ok(), "nothing to publish");
    }
}
