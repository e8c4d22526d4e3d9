//! The dead letters of each store given to the dashboard, with replay and drop.

use maud::{Markup, html};
use promiscuous_sea_orm::subscriber::dead_letters::{DeadLetterRow, readable_payload};

use super::{Context, ago, pre, space};

pub fn dead_letters(
    ctx: &Context<'_>,
    stores: &[(String, Result<Vec<DeadLetterRow>, String>)],
) -> Markup {
    html! {
        @if stores.is_empty() {
            p.muted { "No dead-letter store was given to this dashboard (Dashboard::dead_letters, or the CLI's --database-url)." }
        }
        @for (app, letters) in stores {
            h2 { "Subscriber " (app) }
            @match letters {
                Err(e) => p.error { "The dead letters could not be read: " (e) },
                Ok(letters) if letters.is_empty() => p.muted #no-dead-letters { "No dead letters." },
                Ok(letters) => {
                    @if ctx.may_act() {
                        div.actions {
                            (action(ctx, &format!("dead-letters/{app}/replay-all"), "Replay all", "replay-all"))
                            (space())
                            (action(ctx, &format!("dead-letters/{app}/drop-all"), "Drop all", "drop-all"))
                        }
                    }
                    table.dead-letters {
                        thead { tr { th { "#" } th { "When" } th { "Routing key" } th { "Attempts" } th { "Error" } th { "Payload" } th {} } }
                        tbody {
                            @for l in letters {
                                tr data-dead-letter=(l.id) {
                                    td { (l.id) }
                                    td title=(l.at_ms) { (ago(l.at_ms)) }
                                    td { (l.routing_key) }
                                    td { (l.attempts) }
                                    td.error-text { (pre(&l.error)) }
                                    td { details { summary { "payload (" (l.payload.len()) " bytes)" } (pre(&readable_payload(&l.payload))) } }
                                    td.row-actions {
                                        @if ctx.may_act() {
                                            (action(ctx, &format!("dead-letters/{app}/{}/replay", l.id), "Replay", "replay"))
                                            (space())
                                            (action(ctx, &format!("dead-letters/{app}/{}/drop", l.id), "Drop", "drop"))
                                        } @else {
                                            span.muted title="read-only: enter the token to act" { "–" }
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

/// A one-button form posting to `path`, with the session's CSRF token.
fn action(ctx: &Context<'_>, path: &str, label: &str, kind: &str) -> Markup {
    html! {
        form.inline method="post" action=(ctx.href(path)) {
            @if let Some(csrf) = ctx.csrf() {
                input type="hidden" name="csrf" value=(csrf);
            }
            button type="submit" data-action=(kind) { (label) }
        }
    }
}
