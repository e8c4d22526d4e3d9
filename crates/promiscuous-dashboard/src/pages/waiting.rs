//! The messages the synchronizers hold, and what each waits for: "why is this not applied?"

use maud::{Markup, html};
use promiscuous_core::board::{Report, Worker};

use super::{Context, board_notice, seconds};
use crate::view::BoardInfo;

pub fn waiting(_ctx: &Context<'_>, board: &BoardInfo, reports: &[Report]) -> Markup {
    let subscribers: Vec<_> = reports
        .iter()
        .filter_map(|r| match &r.worker {
            Worker::Subscriber(s) => Some((r, s)),
            Worker::Relay(_) => None,
        })
        .collect();
    let total: u64 = subscribers.iter().map(|(_, s)| s.waiting_count).sum();
    html! {
        (board_notice(board))
        p #waiting-total { (total) " message(s) waiting for a dependency." }
        @for (r, s) in &subscribers {
            @if !s.waiting.is_empty() {
                h2 { (r.app) " · " (r.host) " pid " (r.pid) }
                @if (s.waiting.len() as u64) < s.waiting_count {
                    p.muted { "The " (s.waiting.len()) " longest waiting of " (s.waiting_count) "." }
                }
                table.waiting {
                    thead { tr { th { "Message" } th { "From" } th { "Waiting" } th { "Waits for" } } }
                    tbody {
                        @for w in &s.waiting {
                            tr {
                                td { code { (w.message_id) } }
                                td { (w.routing_key) }
                                td { (seconds(Some(w.waited_ms as f64 / 1000.0))) }
                                td {
                                    ul {
                                        @for n in &w.needs {
                                            li {
                                                code { (n.key) } " at version " (n.version)
                                                @match n.have {
                                                    Some(have) => { " (processed here: " (have) ")" }
                                                    None => { " (looking up what was processed)" }
                                                }
                                            }
                                        }
                                        @for key in &w.behind_writers {
                                            li { "another message being applied to " code { (key) } }
                                        }
                                        @if w.recovering {
                                            li.bad { "its dependency timeout passed: it runs without them (recovery)" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
