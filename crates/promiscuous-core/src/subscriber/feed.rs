//! The live feed ([`Feed`]): the operations a subscriber applied, in the order their
//! transactions committed, for streaming to browsers (the dashboard serves it as Server-Sent
//! Events: `GET …/stream?endpoint=app/model`).
//!
//! The applier publishes an operation only after the transaction that applied it committed, so
//! a client never sees a change that could still roll back. Operations skipped (already
//! applied, stale) or ignored (not followed) are not in it.
//!
//! Each event has an id `"{epoch}-{seq}"`: `seq` counts up from 1 in this feed, `epoch` is
//! unique to the feed (a restarted process has a new one). A client that reconnects with the
//! id it saw last ([`Feed::resume`]) gets what it missed if the feed still holds it (the last
//! `capacity` events), else a gap: it must reload its state, then follow live.
//!
//! A leaf: uses only the message model.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::broadcast;

use crate::message::{Message, Operation, OperationKind};

/// One applied operation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeedEvent {
    /// The event id: `"{epoch}-{seq}"`.
    pub id: String,
    #[serde(skip)]
    pub seq: u64,
    /// The message it came in.
    pub message_id: String,
    /// Where it was published, `"app/model"`.
    pub endpoint: String,
    /// The type chain, most specific first.
    pub types: Vec<String>,
    /// The instance's id on the publisher.
    pub instance: Value,
    pub operation: OperationKind,
    pub version: u64,
    /// The published attributes after the write (absent on destroy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Map<String, Value>>,
    /// When it was applied (committed), Unix milliseconds.
    pub applied_ms: i64,
}

/// Where a resuming client stands.
#[derive(Debug)]
pub enum Resumed {
    /// What it missed (possibly nothing), in order; live events follow.
    Missed(Vec<Arc<FeedEvent>>),
    /// The feed no longer holds what it missed, or the id is from another feed (a restarted
    /// process): the client must reload its state. Live events follow.
    Gap,
}

struct Ring {
    next: u64,
    events: VecDeque<Arc<FeedEvent>>,
}

/// See the [module documentation](self).
pub struct Feed {
    epoch: String,
    capacity: usize,
    ring: Mutex<Ring>,
    live: broadcast::Sender<Arc<FeedEvent>>,
}

impl Feed {
    /// A feed keeping the last `capacity` events for resuming clients (at least 1).
    pub fn new(capacity: usize) -> Arc<Self> {
        let capacity = capacity.max(1);
        let (live, _) = broadcast::channel(capacity);
        Arc::new(Self {
            epoch: uuid::Uuid::new_v4().simple().to_string()[..12].to_string(),
            capacity,
            ring: Mutex::new(Ring {
                next: 1,
                events: VecDeque::with_capacity(capacity.min(4096)),
            }),
            live,
        })
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes the operations of `message` that were applied, once their transaction
    /// committed.
    pub fn publish<'a>(&self, message: &Message, applied: impl IntoIterator<Item = &'a Operation>) {
        let now = crate::now_ms();
        let mut ring = self.ring();
        for op in applied {
            let seq = ring.next;
            ring.next += 1;
            let event = Arc::new(FeedEvent {
                id: format!("{}-{seq}", self.epoch),
                seq,
                message_id: message.id.clone(),
                endpoint: op.endpoint.clone(),
                types: op.types.clone(),
                instance: op.id.clone(),
                operation: op.operation,
                version: op.version,
                attributes: op.attributes.clone(),
                applied_ms: now,
            });
            if ring.events.len() == self.capacity {
                ring.events.pop_front();
            }
            ring.events.push_back(event.clone());
            // Nobody listening is fine.
            let _ = self.live.send(event);
        }
    }

    /// Follows the feed from now on (`last_event_id`: `None`), or from just after the event a
    /// reconnecting client saw last. The events missed come first, then the receiver gives
    /// every event published after this call, none twice. A receiver that falls more than
    /// `capacity` events behind gets `Lagged`: the client should reconnect with its last id.
    pub fn resume(
        &self,
        last_event_id: Option<&str>,
    ) -> (Resumed, broadcast::Receiver<Arc<FeedEvent>>) {
        // Under the ring's lock: no event is published between the snapshot and the
        // subscription.
        let ring = self.ring();
        let receiver = self.live.subscribe();
        let resumed = match last_event_id {
            None => Resumed::Missed(Vec::new()),
            Some(id) => match self.seq_of(id) {
                None => Resumed::Gap,
                Some(seen) => {
                    let oldest = ring.events.front().map(|e| e.seq).unwrap_or(ring.next);
                    if seen + 1 < oldest || seen >= ring.next {
                        Resumed::Gap
                    } else {
                        Resumed::Missed(
                            ring.events
                                .iter()
                                .filter(|e| e.seq > seen)
                                .cloned()
                                .collect(),
                        )
                    }
                }
            },
        };
        (resumed, receiver)
    }

    /// The id of the last event published (`"{epoch}-0"` before the first): a page rendered
    /// from the database after reading it resumes from it, so it misses nothing committed
    /// meanwhile (it may see again what it rendered: applying an operation twice to a page is
    /// harmless).
    pub fn last_id(&self) -> String {
        format!("{}-{}", self.epoch, self.ring().next - 1)
    }

    /// The sequence number of an id of this feed.
    fn seq_of(&self, id: &str) -> Option<u64> {
        let (epoch, seq) = id.trim().rsplit_once('-')?;
        (epoch == self.epoch).then(|| seq.parse().ok())?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(n: u64) -> Message {
        let json = format!(
            r#"{{"protocol":1,"id":"m{n}","app":"crowdtap","timestamp":0,"host":"h",
            "operations":[{{"endpoint":"crowdtap/user","types":["User"],"id":{n},
            "operation":"update","version":{n},"attributes":{{"name":"u{n}"}}}}],
            "dependencies":{{"read":[],"write":[{{"key":"crowdtap/user/{n}","version":{n}}}]}}}}"#
        );
        Message::decode(json.as_bytes()).expect("a valid message")
    }

    fn publish(feed: &Feed, n: u64) {
        let m = message(n);
        feed.publish(&m, &m.operations);
    }

    fn seqs(resumed: Resumed) -> Option<Vec<u64>> {
        match resumed {
            Resumed::Missed(events) => Some(events.iter().map(|e| e.seq).collect()),
            Resumed::Gap => None,
        }
    }

    #[tokio::test]
    async fn a_client_resumes_after_the_last_event_it_saw() {
        let feed = Feed::new(3);
        for n in 1..=4 {
            publish(&feed, n);
        }
        let id = |seq: u64| format!("{}-{seq}", feed.epoch);
        assert_eq!(feed.last_id(), id(4));
        // Holds 2, 3, 4.
        assert_eq!(seqs(feed.resume(Some(&id(2))).0), Some(vec![3, 4]));
        assert_eq!(seqs(feed.resume(Some(&id(1))).0), Some(vec![2, 3, 4]));
        assert_eq!(seqs(feed.resume(Some(&id(4))).0), Some(vec![]));
        // Too old, from the future, from another feed, garbage: a gap.
        assert_eq!(seqs(feed.resume(Some(&id(0))).0), None);
        assert_eq!(seqs(feed.resume(Some(&id(9))).0), None);
        assert_eq!(seqs(feed.resume(Some("aaaaaaaaaaaa-3")).0), None);
        assert_eq!(seqs(feed.resume(Some("3")).0), None);
        assert_eq!(seqs(feed.resume(None).0), Some(vec![]));
    }

    #[tokio::test]
    async fn live_events_follow_the_missed_ones_without_a_repeat() {
        let feed = Feed::new(10);
        publish(&feed, 1);
        let (resumed, mut live) = feed.resume(Some(&format!("{}-0", feed.epoch)));
        assert_eq!(seqs(resumed), Some(vec![1]));
        publish(&feed, 2);
        let next = live.recv().await.expect("a live event");
        assert_eq!(next.seq, 2);
        assert_eq!(next.endpoint, "crowdtap/user");
        assert_eq!(next.attributes.as_ref().unwrap()["name"], "u2");
        assert!(live.try_recv().is_err(), "nothing else");
    }
}
