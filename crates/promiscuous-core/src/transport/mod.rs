//! Transports move encoded messages from the publisher's relay to subscriber queues.
//!
//! Every transport has the semantics of a RabbitMQ topic exchange: messages are routed by routing
//! key to durable per-subscriber queues, publishing returns only once the broker has confirmed
//! the messages, and deliveries stay unacknowledged (and are redelivered if the consumer goes
//! away) until the subscriber acks them.
//!
//! - [`in_process`]: the embedded default, a broker inside the process (quickstart, tests).
//! - [`rabbitmq`]: RabbitMQ over AMQP 0-9-1 (durable topic exchange, persistent messages,
//!   publisher confirms, manual acks); lazy, reconnects on demand.

pub mod in_process;
pub mod merged;
pub mod rabbitmq;

use async_trait::async_trait;

use crate::cause::{BoxError, Source};

pub use in_process::InProcess;
pub use rabbitmq::{DEFAULT_HEARTBEAT_SECS, QueueType, RabbitMq, RabbitMqConfig};

/// What a transport failed at: `context` says what it was doing (the server, exchange, queue
/// or routing key), the underlying error (the AMQP client's, when there is one) is the source
/// and is not repeated in `context`.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The broker could not be reached, or the connection or channel failed, or it did not
    /// answer in time: trying again later may succeed.
    #[error("broker unavailable: {context}")]
    Unavailable {
        context: String,
        source: Option<Source>,
    },
    /// The broker (or the transport) refused the request: retrying it will not help.
    #[error("broker refused the message: {context}")]
    Rejected {
        context: String,
        source: Option<Source>,
    },
    /// The consumer was closed.
    #[error("consumer closed")]
    Closed,
}

impl TransportError {
    /// [`TransportError::Unavailable`] for `context`, without a source.
    pub fn unavailable(context: impl Into<String>) -> Self {
        Self::Unavailable {
            context: context.into(),
            source: None,
        }
    }

    /// [`TransportError::Rejected`] for `context`, without a source.
    pub fn rejected(context: impl Into<String>) -> Self {
        Self::Rejected {
            context: context.into(),
            source: None,
        }
    }

    /// This error with `error` as its source.
    pub fn because(mut self, error: impl Into<BoxError>) -> Self {
        if let Self::Unavailable { source, .. } | Self::Rejected { source, .. } = &mut self {
            *source = Some(crate::cause::source(error));
        }
        self
    }

    /// What the transport was doing; `None` for [`TransportError::Closed`].
    pub fn context(&self) -> Option<&str> {
        match self {
            Self::Unavailable { context, .. } | Self::Rejected { context, .. } => Some(context),
            Self::Closed => None,
        }
    }
}

/// Equal when of the same kind with the same context; sources are not compared (they need not
/// be comparable).
impl PartialEq for TransportError {
    fn eq(&self, other: &Self) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
            && self.context() == other.context()
    }
}

/// The message header partitioned queues are chosen by (see [`QueueSpec::partitions`]).
pub const PARTITION_HEADER: &str = "promiscuous-partition-key";

/// The most partitions a subscriber queue may have.
pub const MAX_PARTITIONS: u16 = 256;

/// A message the relay hands to the transport.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub routing_key: String,
    pub payload: Vec<u8>,
    /// What chooses the partition of a partitioned subscriber queue: the instance key of the
    /// message's first write, so that the messages of one instance go to one partition (sent as
    /// the header [`PARTITION_HEADER`]). `None`: the routing key is hashed instead.
    pub partition_key: Option<String>,
}

impl Outgoing {
    /// A message without a partition key.
    pub fn new(routing_key: impl Into<String>, payload: impl Into<Vec<u8>>) -> Self {
        Self {
            routing_key: routing_key.into(),
            payload: payload.into(),
            partition_key: None,
        }
    }
}

/// The durable queue a subscriber application consumes from.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSpec {
    /// Queue name (the subscriber application's name).
    pub queue: String,
    /// Topic binding patterns (`word.word`, `*` for one word, `#` for any number).
    pub bindings: Vec<String>,
    /// How many deliveries may be unacknowledged at once (per partition).
    pub prefetch: u16,
    /// 1: one queue named `queue`. P > 1: P queues `queue.0` … `queue.{P-1}`, each with a single
    /// active consumer, fed by a consistent-hash exchange `queue.partitions` on the message's
    /// partition key ([`Outgoing::partition_key`]), which the bindings bind to the publishers'
    /// exchange (RabbitMQ; the in-process transport keeps one queue whatever P is).
    pub partitions: u16,
}

impl QueueSpec {
    /// A queue of one partition.
    pub fn new(queue: impl Into<String>, bindings: Vec<String>, prefetch: u16) -> Self {
        Self {
            queue: queue.into(),
            bindings,
            prefetch,
            partitions: 1,
        }
    }

    /// The names of the queues messages wait in: `queue`, or one per partition.
    pub fn queue_names(&self) -> Vec<String> {
        queue_names(&self.queue, self.partitions)
    }

    /// The consistent-hash exchange in front of the partitions.
    pub fn partition_exchange(&self) -> String {
        format!("{}.partitions", self.queue)
    }
}

/// The queues of `app` with `partitions` partitions (see [`QueueSpec::partitions`]).
pub fn queue_names(app: &str, partitions: u16) -> Vec<String> {
    if partitions <= 1 {
        vec![app.to_string()]
    } else {
        (0..partitions).map(|i| format!("{app}.{i}")).collect()
    }
}

/// A broker connection able to publish and to consume.
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// Publishes `messages` in order and returns once the broker confirmed all of them.
    async fn publish(&self, messages: &[Outgoing]) -> Result<(), TransportError>;
    /// Declares the queue with its bindings (idempotent) and starts consuming it.
    async fn consume(&self, spec: &QueueSpec) -> Result<Box<dyn Consumer>, TransportError>;
    /// Declares the queue with its bindings (idempotent) without consuming: messages routed to
    /// it from now on are kept. The default consumes and stops at once, which may requeue (as
    /// redelivered) up to `prefetch` messages already waiting; transports override it.
    async fn declare(&self, spec: &QueueSpec) -> Result<(), TransportError> {
        self.consume(spec).await.map(drop)
    }
    /// Whether the transport is connected.
    fn healthy(&self) -> bool {
        true
    }
    /// Messages waiting in `queue`, ready to be delivered (not counting those delivered and not
    /// yet acknowledged); `None` when the transport cannot tell (the default). A queue that does
    /// not exist is an error.
    async fn queue_depth(&self, queue: &str) -> Result<Option<u64>, TransportError> {
        let _ = queue;
        Ok(None)
    }
}

/// A stream of deliveries from one queue.
#[async_trait]
pub trait Consumer: Send {
    /// The next delivery; [`TransportError::Closed`] once the consumer is closed.
    async fn next(&mut self) -> Result<Delivery, TransportError>;
}

/// Acknowledges one delivery to the broker.
#[async_trait]
pub trait Acker: Send + Sync {
    async fn ack(&self) -> Result<(), TransportError>;
    async fn nack(&self, requeue: bool) -> Result<(), TransportError>;
}

/// One message received from a queue; must be acked or nacked.
pub struct Delivery {
    pub routing_key: String,
    pub payload: Vec<u8>,
    /// The publisher's broker user, as the broker validated it (AMQP `user_id`: RabbitMQ refuses
    /// a message whose `user_id` is not the publishing connection's user); `None` when the
    /// publisher did not set it. The in-process transport sets the routing key's app.
    pub user_id: Option<String>,
    /// The broker delivered it before without an ack.
    pub redelivered: bool,
    pub acker: Box<dyn Acker>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("routing_key", &self.routing_key)
            .field("user_id", &self.user_id)
            .field("payload_len", &self.payload.len())
            .field("redelivered", &self.redelivered)
            .finish()
    }
}

impl Delivery {
    pub async fn ack(&self) -> Result<(), TransportError> {
        self.acker.ack().await
    }
    pub async fn nack(&self, requeue: bool) -> Result<(), TransportError> {
        self.acker.nack(requeue).await
    }
}

/// AMQP topic matching: `.`-separated words, `*` matches one word, `#` zero or more.
pub fn topic_matches(pattern: &str, key: &str) -> bool {
    fn go(p: &[&str], k: &[&str]) -> bool {
        match (p.first(), k.first()) {
            (None, None) => true,
            (Some(&"#"), _) => go(&p[1..], k) || (!k.is_empty() && go(p, &k[1..])),
            (Some(&"*"), Some(_)) => go(&p[1..], &k[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &k[1..]),
            _ => false,
        }
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let k: Vec<&str> = key.split('.').collect();
    go(&p, &k)
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::{TransportError, topic_matches};

    #[test]
    fn the_cause_is_a_source_not_part_of_the_context() {
        let e = TransportError::unavailable("connecting to amqp://u:***@host/ to publish")
            .because(std::io::Error::other("connection refused"));
        assert_eq!(
            e.to_string(),
            "broker unavailable: connecting to amqp://u:***@host/ to publish"
        );
        assert_eq!(e.source().unwrap().to_string(), "connection refused");
        assert_eq!(
            e.context(),
            Some("connecting to amqp://u:***@host/ to publish")
        );
        assert!(TransportError::Closed.source().is_none());
        assert_eq!(
            TransportError::rejected("x").because(std::io::Error::other("a")),
            TransportError::rejected("x"),
            "sources are not compared"
        );
    }

    #[test]
    fn topic_patterns() {
        assert!(topic_matches("crowdtap", "crowdtap"));
        assert!(!topic_matches("crowdtap", "other"));
        assert!(topic_matches("crowdtap.*", "crowdtap.user"));
        assert!(!topic_matches("crowdtap.*", "crowdtap.user.x"));
        assert!(topic_matches("crowdtap.#", "crowdtap"));
        assert!(topic_matches("#", "a.b.c"));
        assert!(topic_matches("a.#.c", "a.b.b.c"));
    }
}
