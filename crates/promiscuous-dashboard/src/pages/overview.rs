//! The overview: each subscriber app and each publisher, and the throughput graph.

use maud::{Markup, html};

use super::{Context, board_notice, count, graph, seconds};
use crate::view::Overview;

pub fn overview(ctx: &Context<'_>, o: &Overview) -> Markup {
    html! {
        (board_notice(&o.board))
        h2 { "Subscribers" }
        @if o.subscribers.is_empty() {
            p.muted { "No subscriber worker reports here yet." }
        } @else {
            table #subscribers {
                thead { tr {
                    th { "App" } th { "Workers" } th { "Lag" } th { "Lag (messages)" }
                    th { "Applied / s" } th { "Processed" } th { "Waiting" } th { "In flight" }
                    th { "Dead letters" }
                } }
                tbody {
                    @for s in &o.subscribers {
                        tr data-app=(s.app) {
                            td { (s.app) }
                            td { (s.connected) " / " (s.workers) }
                            td data-field="lag" { (seconds(s.lag_seconds)) }
                            td data-field="lag-messages" title="ready in the queue + in flight" { (count(s.lag_messages)) }
                            td data-field="rate" { (format!("{:.1}", s.applied_per_second)) }
                            td data-field="processed" { (s.processed) }
                            td data-field="waiting" { a href=(ctx.href("waiting")) { (s.waiting) } }
                            td data-field="in-flight" { (s.in_flight) }
                            td data-field="dead-letters" {
                                @match &s.dead_letters {
                                    None => span.muted title="no dead-letter store given to the dashboard" { "–" },
                                    Some(Ok(n)) => a href=(ctx.href("dead-letters")) class=[(*n > 0).then_some("bad")] { (n) },
                                    Some(Err(e)) => span.error title=(e) { "unreadable" },
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Publishers" }
        @if o.publishers.is_empty() {
            p.muted { "No relay reports here yet." }
        } @else {
            table #publishers {
                thead { tr {
                    th { "App" } th { "Relays" } th { "Outbox backlog" } th { "Oldest row" }
                    th { "Relayed / s" } th { "Relayed" } th { "Lease holder" }
                } }
                tbody {
                    @for p in &o.publishers {
                        tr data-app=(p.app) class=[(!p.healthy).then_some("bad")] {
                            td { (p.app) }
                            td { (p.relays) }
                            td data-field="backlog" { (count(p.backlog)) }
                            td data-field="oldest" { (seconds(p.oldest_age_seconds)) }
                            td data-field="rate" { (format!("{:.1}", p.relayed_per_second)) }
                            td data-field="relayed" { (p.relayed) }
                            td { (p.lease_holder.as_deref().unwrap_or("–")) }
                        }
                    }
                }
            }
        }
        h2 { "Throughput, last 5 minutes" }
        (graph::throughput(&o.points))
    }
}
