//! Every worker on the board: relays (and which holds the lease) and subscriber workers.

use maud::{Markup, html};
use promiscuous_core::board::{Report, Worker};

use super::{Context, ago, board_notice, pre};
use crate::view::BoardInfo;

pub fn workers(_ctx: &Context<'_>, board: &BoardInfo, reports: &[Report]) -> Markup {
    html! {
        (board_notice(board))
        @if reports.is_empty() {
            p.muted { "No worker reports here." }
        } @else {
            table #workers {
                thead { tr {
                    th { "Role" } th { "App" } th { "Host" } th { "Pid" } th { "Settings" }
                    th { "State" } th { "Heartbeat" } th { "Started" } th { "Last error" }
                } }
                tbody {
                    @for r in reports {
                        tr data-worker=(r.id) {
                            @match &r.worker {
                                Worker::Subscriber(s) => {
                                    td { "subscriber" }
                                    td { (r.app) }
                                    td { (r.host) }
                                    td { (r.pid) }
                                    td { (s.runners) " runners, prefetch " (s.prefetch) }
                                    td class=[(!s.connected).then_some("bad")] { @if s.connected { "consuming" } @else { "disconnected" } }
                                }
                                Worker::Relay(x) => {
                                    td { "relay" }
                                    td { (r.app) }
                                    td { (r.host) }
                                    td { (r.pid) }
                                    td { "batch " (x.batch_size) }
                                    td class=[(!x.healthy).then_some("bad")] {
                                        @match x.holds_lease {
                                            None => "publishing (no lease)",
                                            Some(true) => strong { "holds the lease" },
                                            Some(false) => "standby (another relay holds the lease)",
                                        }
                                        @if !x.healthy { " · failing" }
                                    }
                                }
                            }
                            td { (ago(r.heartbeat_ms)) }
                            td { (ago(r.started_ms)) }
                            td {
                                @match &r.last_error {
                                    None => span.muted { "none" },
                                    Some(e) => details { summary { (ago(e.at_ms)) } (pre(&e.error)) },
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
