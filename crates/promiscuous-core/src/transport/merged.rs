//! One [`Consumer`] over several: the partitions of a partitioned subscriber queue.

use async_trait::async_trait;
use futures_util::future::select_all;

use super::{Consumer, Delivery, TransportError};

/// Deliveries of several consumers, as they arrive. The first error of any of them is the
/// merged consumer's error (the caller drops it, which cancels every consumer, and starts over:
/// partitions fail and recover together).
pub struct Merged {
    consumers: Vec<Box<dyn Consumer>>,
    /// Where the next poll starts, so that a busy first partition does not starve the others.
    next: usize,
}

impl Merged {
    /// Merges `consumers`; one consumer is returned as it is.
    pub fn boxed(mut consumers: Vec<Box<dyn Consumer>>) -> Box<dyn Consumer> {
        if consumers.len() == 1 {
            return consumers.pop().expect("one consumer");
        }
        Box::new(Self { consumers, next: 0 })
    }
}

#[async_trait]
impl Consumer for Merged {
    async fn next(&mut self) -> Result<Delivery, TransportError> {
        if self.consumers.is_empty() {
            return Err(TransportError::Closed);
        }
        let n = self.consumers.len();
        let start = self.next % n;
        self.next = self.next.wrapping_add(1);
        // Polled from `start` on: `select_all` prefers the first ready future. A consumer's
        // `next` is cancel-safe (a stream's next item), so the others lose nothing.
        let (head, tail) = self.consumers.split_at_mut(start);
        let polls = tail
            .iter_mut()
            .chain(head.iter_mut())
            .map(|c| c.next())
            .collect::<Vec<_>>();
        let (result, _, _) = select_all(polls).await;
        result
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::Merged;
    use crate::transport::{InProcess, Outgoing, QueueSpec, Transport};

    #[tokio::test]
    async fn delivers_from_every_consumer() {
        let broker = InProcess::new();
        let mut consumers = Vec::new();
        for q in ["a", "b", "c"] {
            let spec = QueueSpec::new(q, vec![q.to_string()], 10);
            consumers.push(broker.consume(&spec).await.unwrap());
        }
        let mut merged = Merged::boxed(consumers);
        let out: Vec<_> = ["a", "b", "c", "c", "a"]
            .iter()
            .map(|k| Outgoing::new(*k, k.as_bytes().to_vec()))
            .collect();
        broker.publish(&out).await.unwrap();
        let mut got = Vec::new();
        for _ in 0..5 {
            let d = merged.next().await.unwrap();
            d.ack().await.unwrap();
            got.push(d.routing_key);
        }
        got.sort();
        assert_eq!(got, ["a", "a", "b", "c", "c"]);
        let seen: BTreeSet<_> = got.into_iter().collect();
        assert_eq!(seen.len(), 3);
    }
}
