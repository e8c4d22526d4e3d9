//! The embedded transport: a topic-exchange broker living inside the process.
//!
//! Same contract as RabbitMQ: routing by topic binding, per-queue FIFO, prefetch, manual acks,
//! redelivery (flagged) of everything a consumer left unacknowledged when it is dropped or nacked.
//! Messages live in memory, so they survive a consumer restart but not the process.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use tokio::sync::Notify;

use super::{
    Acker, Consumer, Delivery, Outgoing, QueueSpec, Transport, TransportError, topic_matches,
};

/// A handle to an in-process broker; clones share the broker.
#[derive(Clone, Default)]
pub struct InProcess {
    inner: Arc<Broker>,
}

#[derive(Default)]
struct Broker {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// (pattern, queue)
    bindings: Vec<(String, String)>,
    queues: HashMap<String, Queue>,
    next_consumer: u64,
}

#[derive(Default)]
struct Queue {
    ready: VecDeque<Stored>,
    unacked: HashMap<u64, (u64, Stored)>,
    next_tag: u64,
    notify: Arc<Notify>,
}

#[derive(Clone)]
struct Stored {
    routing_key: String,
    payload: Arc<[u8]>,
    redelivered: bool,
    /// Position in publish order, to requeue in order.
    seq: u64,
}

impl Broker {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-written (every critical
        // section is a few collection operations), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Queue {
    fn requeue(&mut self, mut items: Vec<Stored>) {
        items.sort_by_key(|s| std::cmp::Reverse(s.seq));
        for mut s in items {
            s.redelivered = true;
            self.ready.push_front(s);
        }
        self.notify.notify_waiters();
    }
}

impl InProcess {
    pub fn new() -> Self {
        Self::default()
    }

    /// Messages waiting in `queue` plus those delivered but not yet acknowledged.
    pub fn queue_depth(&self, queue: &str) -> (usize, usize) {
        let st = self.inner.lock();
        st.queues
            .get(queue)
            .map(|q| (q.ready.len(), q.unacked.len()))
            .unwrap_or((0, 0))
    }
}

#[async_trait]
impl Transport for InProcess {
    async fn declare(&self, spec: &QueueSpec) -> Result<(), TransportError> {
        let mut st = self.inner.lock();
        st.queues.entry(spec.queue.clone()).or_default();
        for b in &spec.bindings {
            let binding = (b.clone(), spec.queue.clone());
            if !st.bindings.contains(&binding) {
                st.bindings.push(binding);
            }
        }
        Ok(())
    }

    async fn publish(&self, messages: &[Outgoing]) -> Result<(), TransportError> {
        let mut st = self.inner.lock();
        let st = &mut *st;
        for m in messages {
            let payload: Arc<[u8]> = Arc::from(m.payload.as_slice());
            let mut targets: Vec<&String> = st
                .bindings
                .iter()
                .filter(|(p, _)| topic_matches(p, &m.routing_key))
                .map(|(_, q)| q)
                .collect();
            targets.sort();
            targets.dedup();
            for q in targets {
                let queue = st.queues.get_mut(q).expect("bound queues exist");
                queue.next_tag += 1;
                let seq = queue.next_tag;
                queue.ready.push_back(Stored {
                    routing_key: m.routing_key.clone(),
                    payload: payload.clone(),
                    redelivered: false,
                    seq,
                });
                queue.notify.notify_waiters();
            }
        }
        Ok(())
    }

    async fn queue_depth(&self, queue: &str) -> Result<Option<u64>, TransportError> {
        let st = self.inner.lock();
        match st.queues.get(queue) {
            Some(q) => Ok(Some(q.ready.len() as u64)),
            None => Err(TransportError::rejected(format!(
                "queue {queue:?} does not exist (no subscriber declared it on this broker)"
            ))),
        }
    }

    async fn consume(&self, spec: &QueueSpec) -> Result<Box<dyn Consumer>, TransportError> {
        if spec.prefetch == 0 {
            return Err(TransportError::rejected(format!(
                "queue {}: prefetch must be at least 1",
                spec.queue
            )));
        }
        self.declare(spec).await?;
        let mut st = self.inner.lock();
        st.next_consumer += 1;
        Ok(Box::new(InProcessConsumer {
            broker: self.inner.clone(),
            queue: spec.queue.clone(),
            id: st.next_consumer,
            prefetch: spec.prefetch as usize,
        }))
    }
}

struct InProcessConsumer {
    broker: Arc<Broker>,
    queue: String,
    id: u64,
    prefetch: usize,
}

#[async_trait]
impl Consumer for InProcessConsumer {
    async fn next(&mut self) -> Result<Delivery, TransportError> {
        loop {
            let notify = {
                let mut st = self.broker.lock();
                let q = st
                    .queues
                    .get_mut(&self.queue)
                    .ok_or(TransportError::Closed)?;
                let mine = q.unacked.values().filter(|(c, _)| *c == self.id).count();
                if mine < self.prefetch
                    && let Some(stored) = q.ready.pop_front()
                {
                    q.next_tag += 1;
                    let tag = q.next_tag;
                    q.unacked.insert(tag, (self.id, stored.clone()));
                    return Ok(Delivery {
                        // No broker users in process: the publishing app is the routing key.
                        user_id: Some(stored.routing_key.clone()),
                        routing_key: stored.routing_key,
                        payload: stored.payload.to_vec(),
                        redelivered: stored.redelivered,
                        acker: Box::new(InProcessAcker {
                            broker: self.broker.clone(),
                            queue: self.queue.clone(),
                            tag,
                        }),
                    });
                }
                q.notify.clone()
            };
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Re-check after registering interest so a wake-up between the check and the wait
            // is not lost.
            {
                let st = self.broker.lock();
                let q = st.queues.get(&self.queue).ok_or(TransportError::Closed)?;
                let mine = q.unacked.values().filter(|(c, _)| *c == self.id).count();
                if mine < self.prefetch && !q.ready.is_empty() {
                    continue;
                }
            }
            notified.await;
        }
    }
}

impl Drop for InProcessConsumer {
    fn drop(&mut self) {
        let mut st = self.broker.lock();
        if let Some(q) = st.queues.get_mut(&self.queue) {
            let tags: Vec<u64> = q
                .unacked
                .iter()
                .filter(|(_, (c, _))| *c == self.id)
                .map(|(t, _)| *t)
                .collect();
            let items = tags
                .into_iter()
                .filter_map(|t| q.unacked.remove(&t).map(|(_, s)| s))
                .collect();
            q.requeue(items);
        }
    }
}

struct InProcessAcker {
    broker: Arc<Broker>,
    queue: String,
    tag: u64,
}

#[async_trait]
impl Acker for InProcessAcker {
    async fn ack(&self) -> Result<(), TransportError> {
        let mut st = self.broker.lock();
        let q = st
            .queues
            .get_mut(&self.queue)
            .ok_or(TransportError::Closed)?;
        q.unacked.remove(&self.tag);
        q.notify.notify_waiters();
        Ok(())
    }

    async fn nack(&self, requeue: bool) -> Result<(), TransportError> {
        let mut st = self.broker.lock();
        let q = st
            .queues
            .get_mut(&self.queue)
            .ok_or(TransportError::Closed)?;
        if let Some((_, stored)) = q.unacked.remove(&self.tag) {
            if requeue {
                q.requeue(vec![stored]);
            } else {
                q.notify.notify_waiters();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn out(key: &str, body: &str) -> Outgoing {
        Outgoing {
            routing_key: key.into(),
            payload: body.as_bytes().to_vec(),
            partition_key: None,
        }
    }

    fn spec(prefetch: u16) -> QueueSpec {
        QueueSpec {
            queue: "sub".into(),
            bindings: vec!["pub".into()],
            prefetch,
            partitions: 1,
        }
    }

    #[tokio::test]
    async fn routes_in_order_and_redelivers_unacked() {
        let broker = InProcess::new();
        let mut c = broker.consume(&spec(10)).await.unwrap();
        broker
            .publish(&[out("pub", "1"), out("other", "x"), out("pub", "2")])
            .await
            .unwrap();
        let d1 = c.next().await.unwrap();
        let d2 = c.next().await.unwrap();
        assert_eq!((&d1.payload[..], &d2.payload[..]), (&b"1"[..], &b"2"[..]));
        d1.ack().await.unwrap();
        drop(d2);
        drop(c); // d2 was never acked: it comes back, flagged
        let mut c = broker.consume(&spec(10)).await.unwrap();
        let again = c.next().await.unwrap();
        assert_eq!(&again.payload[..], b"2");
        assert!(again.redelivered);
        again.ack().await.unwrap();
        assert_eq!(broker.queue_depth("sub"), (0, 0));
    }

    #[tokio::test]
    async fn prefetch_limits_unacked() {
        let broker = InProcess::new();
        let mut c = broker.consume(&spec(1)).await.unwrap();
        broker
            .publish(&[out("pub", "1"), out("pub", "2")])
            .await
            .unwrap();
        let d1 = c.next().await.unwrap();
        let blocked = tokio::time::timeout(Duration::from_millis(50), c.next()).await;
        assert!(blocked.is_err(), "second delivery must wait for the ack");
        d1.ack().await.unwrap();
        assert_eq!(&c.next().await.unwrap().payload[..], b"2");
    }

    #[tokio::test]
    async fn nack_requeues_first() {
        let broker = InProcess::new();
        let mut c = broker.consume(&spec(5)).await.unwrap();
        broker
            .publish(&[out("pub", "1"), out("pub", "2")])
            .await
            .unwrap();
        let d1 = c.next().await.unwrap();
        d1.nack(true).await.unwrap();
        let d = c.next().await.unwrap();
        assert_eq!(&d.payload[..], b"1");
        assert!(d.redelivered);
    }

    #[tokio::test]
    async fn a_queue_gets_a_message_once_however_many_bindings_match() {
        let broker = InProcess::new();
        let other = QueueSpec {
            queue: "other".into(),
            bindings: vec!["pub".into()],
            prefetch: 5,
            partitions: 1,
        };
        broker.declare(&spec(5)).await.unwrap();
        broker.declare(&other).await.unwrap();
        let wide = QueueSpec {
            bindings: vec!["#".into()],
            ..spec(5)
        };
        broker.declare(&wide).await.unwrap(); // "sub" bound by "pub" and "#", "other" between
        broker.publish(&[out("pub", "1")]).await.unwrap();
        assert_eq!(broker.queue_depth("sub"), (1, 0));
        assert_eq!(broker.queue_depth("other"), (1, 0));
    }

    #[tokio::test]
    async fn declare_keeps_messages_without_consuming() {
        let broker = InProcess::new();
        broker.declare(&spec(5)).await.unwrap();
        broker.publish(&[out("pub", "1")]).await.unwrap();
        let d = broker
            .consume(&spec(5))
            .await
            .unwrap()
            .next()
            .await
            .unwrap();
        assert!(!d.redelivered);
    }

    #[tokio::test]
    async fn zero_prefetch_is_refused() {
        let broker = InProcess::new();
        assert!(broker.consume(&spec(0)).await.is_err());
    }
}
