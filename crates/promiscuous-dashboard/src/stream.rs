//! `GET /stream?endpoint=app/model`: the feed's applied operations as Server-Sent Events.
//!
//! Each event is `event: operation`, `id: {epoch}-{seq}`, `data:` the operation as JSON
//! ([`FeedEvent`]). A client reconnecting with `Last-Event-ID` (browsers' `EventSource` does it
//! by itself) first gets what it missed; if the feed no longer holds it (or the process
//! restarted), an `event: reset` tells it to reload its state. A client too slow to keep up is
//! disconnected and resumes the same way. `endpoint` (repeatable) keeps only those endpoints;
//! `after=ID` resumes from `ID` on a first connection (a page rendered after reading
//! [`Feed::last_id`]), where a browser cannot set `Last-Event-ID` yet.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream, StreamExt};
use promiscuous_core::subscriber::feed::Resumed;
use promiscuous_core::subscriber::{Feed, FeedEvent};
use tokio::sync::broadcast::error::RecvError;

fn event(e: &FeedEvent) -> Event {
    Event::default()
        .event("operation")
        .id(e.id.clone())
        .data(serde_json::to_string(e).unwrap_or_default())
}

/// The stream of `feed` after `last_event_id`, keeping the endpoints in `endpoints` (all if
/// empty).
pub fn stream(
    feed: &Feed,
    last_event_id: Option<&str>,
    endpoints: Vec<String>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>> + use<>> {
    let (resumed, live) = feed.resume(last_event_id);
    let wanted = Arc::new(endpoints);
    let keep = {
        let wanted = wanted.clone();
        move |e: &FeedEvent| wanted.is_empty() || wanted.iter().any(|w| w == &e.endpoint)
    };
    let first: Vec<Event> = match resumed {
        Resumed::Gap => vec![Event::default().event("reset").data("reload")],
        Resumed::Missed(missed) => missed
            .iter()
            .filter(|e| keep(e))
            .map(|e| event(e))
            .collect(),
    };
    let live = stream::unfold(live, move |mut live| {
        let keep = keep.clone();
        async move {
            loop {
                match live.recv().await {
                    Ok(e) if keep(&e) => return Some((event(&e), live)),
                    Ok(_) => continue,
                    // Too slow, or the feed is gone: end; the client resumes from its last id.
                    Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return None,
                }
            }
        }
    });
    let events = stream::iter(first).chain(live).map(Ok);
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
