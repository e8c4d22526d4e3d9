//! The RabbitMQ transport (AMQP 0-9-1 through `lapin`).
//!
//! - One durable topic exchange ([`RabbitMqConfig::exchange`]); messages are published with
//!   their routing key, persistent (delivery mode 2), `content_type: application/json`.
//! - [`Transport::publish`] runs on a channel in confirm mode and returns only once the broker
//!   confirmed every message of the call; a nack is [`TransportError::Rejected`].
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

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ConnectionStatus,
    ExchangeKind,
};

use super::{Acker, Consumer, Delivery, Outgoing, QueueSpec, Transport, TransportError};

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
}

impl Default for RabbitMqConfig {
    fn default() -> Self {
        Self {
            exchange: "promiscuous".into(),
            connection_name: "promiscuous".into(),
            connect_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(30),
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
    url: String,
    config: RabbitMqConfig,
    /// The publishing connection and its confirm-mode channel; the lock also serialises
    /// `publish` calls, so the confirms awaited by one call are its own.
    publisher: tokio::sync::Mutex<Option<PublishLink>>,
    /// The consuming connection; every consumer gets its own channel on it.
    consumer: tokio::sync::Mutex<Option<Arc<Connection>>>,
    publish_health: Mutex<Health>,
    consume_health: Mutex<Health>,
}

struct PublishLink {
    channel: Channel,
    connection: Connection,
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

/// Why a publish failed, and whether the link is still usable.
enum Failure {
    /// The broker nacked: the link is fine.
    Nacked(TransportError),
    /// The link is broken (or in an unknown state): drop it.
    Broken(TransportError),
}

impl RabbitMq {
    /// A transport for the broker at `url` (`amqp://user:password@host:port/vhost`, the vhost
    /// URL-encoded: `%2f` is `/`; `amqps://` for TLS; query parameters such as `?heartbeat=10`
    /// set the AMQP heartbeat, which bounds how long a silently dead connection goes
    /// unnoticed). Does no I/O: connections are opened when first needed, in the Tokio runtime
    /// of the first call.
    pub fn new(url: impl Into<String>, config: RabbitMqConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                url: url.into(),
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
        let connection = self.inner.connect("administer").await?;
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
        f.debug_struct("RabbitMq")
            .field("url", &redact(&self.inner.url))
            .field("config", &self.inner.config)
            .field("healthy", &self.healthy())
            .finish()
    }
}

impl Inner {
    async fn connect(&self, role: &str) -> Result<Connection, TransportError> {
        let name = format!("{} ({role})", self.config.connection_name);
        let properties = ConnectionProperties::default().with_connection_name(name.into());
        let url = redact(&self.url);
        match tokio::time::timeout(
            self.config.connect_timeout,
            Connection::connect(&self.url, properties),
        )
        .await
        {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(e)) => Err(TransportError::Unavailable(format!(
                "connecting to {url} to {role}: {e}"
            ))),
            Err(_) => Err(TransportError::Unavailable(format!(
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
            Err(_) => Err(TransportError::Unavailable(format!(
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
            || format!("declaring topic exchange {exchange:?}"),
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
        let connection = self.connect("publish").await?;
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
        })
    }

    async fn publish_on(
        &self,
        link: &PublishLink,
        exchange: &ShortString,
        messages: &[(ShortString, &[u8])],
    ) -> Result<(), Failure> {
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into());
        let mut confirms = Vec::with_capacity(messages.len());
        for (routing_key, payload) in messages {
            let confirm = link
                .channel
                .basic_publish(
                    exchange.clone(),
                    routing_key.clone(),
                    BasicPublishOptions::default(),
                    payload,
                    properties.clone(),
                )
                .await
                .map_err(|e| {
                    Failure::Broken(amqp_error(
                        &format!("publishing to exchange {exchange:?} with key {routing_key:?}"),
                        &e,
                    ))
                })?;
            confirms.push((routing_key, confirm));
        }
        let mut nacked = Vec::new();
        for (routing_key, confirm) in confirms {
            match confirm.await {
                Ok(Confirmation::Ack(_)) => {}
                Ok(Confirmation::Nack(_)) => nacked.push(routing_key.as_str()),
                Ok(Confirmation::NotRequested) => {
                    return Err(Failure::Broken(TransportError::Unavailable(
                        "the publishing channel is not in confirm mode".into(),
                    )));
                }
                Err(e) => {
                    return Err(Failure::Broken(amqp_error(
                        &format!("waiting for the confirm of a message to exchange {exchange:?}"),
                        &e,
                    )));
                }
            }
        }
        if nacked.is_empty() {
            Ok(())
        } else {
            Err(Failure::Nacked(TransportError::Rejected(format!(
                "exchange {exchange:?}: the broker nacked {} of {} messages (keys {nacked:?})",
                nacked.len(),
                messages.len()
            ))))
        }
    }

    async fn consumer_connection(&self) -> Result<Arc<Connection>, TransportError> {
        let mut cached = self.consumer.lock().await;
        if let Some(connection) = cached.as_ref()
            && connection.status().connected()
        {
            return Ok(connection.clone());
        }
        *cached = None;
        match self.connect("consume").await {
            Ok(connection) => {
                *lock(&self.consume_health) = Health::Up(connection.status().clone());
                let connection = Arc::new(connection);
                *cached = Some(connection.clone());
                Ok(connection)
            }
            Err(e) => {
                *lock(&self.consume_health) = Health::Down;
                Err(e)
            }
        }
    }

    /// Declares the exchange, the durable queue and its bindings on `channel`.
    async fn declare_queue(
        &self,
        channel: &Channel,
        spec: &QueueSpec,
    ) -> Result<(), TransportError> {
        let exchange = short("exchange name", &self.config.exchange)?;
        let queue = short("queue name", &spec.queue)?;
        self.declare_exchange(channel, &exchange).await?;
        self.op(
            || format!("declaring durable queue {queue:?}"),
            channel.queue_declare(
                queue.clone(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            ),
        )
        .await?;
        for binding in &spec.bindings {
            let pattern = short("binding pattern", binding)?;
            self.op(
                || format!("binding queue {queue:?} to exchange {exchange:?} with {binding:?}"),
                channel.queue_bind(
                    queue.clone(),
                    exchange.clone(),
                    pattern,
                    QueueBindOptions::default(),
                    FieldTable::default(),
                ),
            )
            .await?;
        }
        Ok(())
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

    async fn open_consumer(
        &self,
        connection: &Connection,
        spec: &QueueSpec,
    ) -> Result<(Channel, lapin::Consumer), TransportError> {
        let queue = short("queue name", &spec.queue)?;
        let channel = self.open_channel(connection, &spec.queue).await?;
        self.declare_queue(&channel, spec).await?;
        self.op(
            || format!("setting prefetch {} for queue {queue:?}", spec.prefetch),
            channel.basic_qos(spec.prefetch, BasicQosOptions::default()),
        )
        .await?;
        let consumer = self
            .op(
                || format!("consuming queue {queue:?}"),
                channel.basic_consume(
                    queue.clone(),
                    ShortString::from(""),
                    BasicConsumeOptions {
                        no_ack: false,
                        ..BasicConsumeOptions::default()
                    },
                    FieldTable::default(),
                ),
            )
            .await?;
        Ok((channel, consumer))
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
            .map(|m| Ok((short("routing key", &m.routing_key)?, m.payload.as_slice())))
            .collect::<Result<Vec<_>, TransportError>>()?;

        let mut cached = inner.publisher.lock().await;
        let link = match cached.take() {
            Some(link) if link.is_open() => link,
            _ => match inner.open_publish_link().await {
                Ok(link) => link,
                Err(e) => {
                    *lock(&inner.publish_health) = Health::Down;
                    return Err(e);
                }
            },
        };
        let result = tokio::time::timeout(
            inner.config.operation_timeout,
            inner.publish_on(&link, &exchange, &batch),
        )
        .await
        .unwrap_or_else(|_| {
            Err(Failure::Broken(TransportError::Unavailable(format!(
                "exchange {exchange:?}: {} messages not confirmed within {:?}",
                batch.len(),
                inner.config.operation_timeout
            ))))
        });
        match result {
            Ok(()) => {
                *cached = Some(link);
                Ok(())
            }
            Err(Failure::Nacked(e)) => {
                *cached = Some(link);
                Err(e)
            }
            Err(Failure::Broken(e)) => {
                // Unknown state (lost connection, closed channel, missing confirms): the link
                // is dropped (closing it if still open) and the next call starts over.
                *lock(&inner.publish_health) = Health::Down;
                Err(e)
            }
        }
    }

    async fn consume(&self, spec: &QueueSpec) -> Result<Box<dyn Consumer>, TransportError> {
        if spec.prefetch == 0 {
            return Err(TransportError::Rejected(format!(
                "queue {:?}: prefetch must be at least 1",
                spec.queue
            )));
        }
        let inner = &*self.inner;
        let connection = inner.consumer_connection().await?;
        match inner.open_consumer(&connection, spec).await {
            Ok((channel, consumer)) => Ok(Box::new(RabbitMqConsumer {
                queue: spec.queue.clone(),
                live: Some((channel, consumer)),
                failed: None,
                ack_timeout: inner.config.operation_timeout,
            })),
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
        TransportError::Unavailable(reason)
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
                return Err(TransportError::Unavailable(reason));
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
            Ok(Ok(false)) => Err(TransportError::Unavailable(format!(
                "queue {:?}: {what} not sent, the channel closed first (the broker redelivers \
                 the message)",
                self.queue
            ))),
            Ok(Err(e)) => Err(TransportError::Unavailable(format!(
                "queue {:?}: {what}: {e}",
                self.queue
            ))),
            Err(_) => Err(TransportError::Unavailable(format!(
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
        TransportError::Rejected(format!(
            "{what} {:?}…: {e}",
            value.chars().take(40).collect::<String>()
        ))
    })
}

/// A broker-side refusal (an AMQP soft error such as PRECONDITION_FAILED or ACCESS_REFUSED:
/// retrying will not help) is `Rejected`; anything else (I/O, closed connection or channel) is
/// `Unavailable`.
fn amqp_error(context: &str, error: &lapin::Error) -> TransportError {
    if error.is_amqp_soft_error() {
        TransportError::Rejected(format!("{context}: {error}"))
    } else {
        TransportError::Unavailable(format!("{context}: {error}"))
    }
}

use crate::error::redact_url as redact;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlong_names_are_errors_not_panics() {
        assert!(matches!(
            short("routing key", &"k".repeat(256)),
            Err(TransportError::Rejected(_))
        ));
        assert!(short("routing key", &"k".repeat(255)).is_ok());
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
        };
        let err = rabbit.publish(&[out]).await.unwrap_err();
        let TransportError::Unavailable(msg) = err else {
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
        };
        assert!(matches!(
            rabbit.consume(&spec).await.err(),
            Some(TransportError::Unavailable(_))
        ));
        assert!(rabbit.publish(&[]).await.is_ok(), "nothing to publish");
    }
}
