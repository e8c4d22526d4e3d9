//! The HTML (maud templates, checked at compile time): a layout around one fragment per page.
//! The fragment alone is what the live updates send (`events?page=…`), so a page and its
//! updates never differ. Uses the views; knows nothing of HTTP.

mod dead_letters;
mod graph;
mod overview;
mod waiting;
mod workers;

use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::access::Grant;
use crate::view::BoardInfo;

pub use dead_letters::dead_letters;
pub use overview::overview;
pub use waiting::waiting;
pub use workers::workers;

/// The dashboard's pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    Overview,
    DeadLetters,
    Waiting,
    Workers,
}

impl Page {
    pub const ALL: [Page; 4] = [
        Page::Overview,
        Page::DeadLetters,
        Page::Waiting,
        Page::Workers,
    ];

    /// Its path below the mount point, and its name in `events?page=`.
    pub fn slug(self) -> &'static str {
        match self {
            Page::Overview => "",
            Page::DeadLetters => "dead-letters",
            Page::Waiting => "waiting",
            Page::Workers => "workers",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Page::Overview => "overview",
            Page::DeadLetters => "dead-letters",
            Page::Waiting => "waiting",
            Page::Workers => "workers",
        }
    }

    pub fn from_name(name: &str) -> Option<Page> {
        Page::ALL.into_iter().find(|p| p.name() == name)
    }

    fn title(self) -> &'static str {
        match self {
            Page::Overview => "Overview",
            Page::DeadLetters => "Dead letters",
            Page::Waiting => "Waiting",
            Page::Workers => "Workers",
        }
    }
}

/// The URL of `path` below the mount point `base` (no trailing slash, `""` at the root); the
/// overview (`""`) is the mount point itself (`/promiscuous`, or `/` at the root).
pub fn link(base: &str, path: &str) -> String {
    match (base, path) {
        ("", "") => "/".to_string(),
        (base, "") => base.to_string(),
        (base, path) => format!("{base}/{path}"),
    }
}

/// What every page knows of the request.
pub struct Context<'a> {
    /// The mount point, without a trailing slash (`""` at the root).
    pub base: &'a str,
    pub grant: &'a Grant,
    pub title: &'a str,
}

impl Context<'_> {
    /// The URL of `path` below the mount point; the overview (`""`) is the mount point itself
    /// (`/promiscuous`, or `/` at the root).
    pub fn href(&self, path: &str) -> String {
        link(self.base, path)
    }

    /// The CSRF token forms carry, when the request may act.
    pub fn csrf(&self) -> Option<&str> {
        match self.grant {
            Grant::Session { csrf } => Some(csrf),
            _ => None,
        }
    }

    pub fn may_act(&self) -> bool {
        matches!(self.grant, Grant::Session { .. } | Grant::Bearer)
    }
}

/// A whole page: the layout around `fragment`, with `flash` (what the last action came to)
/// above it, outside what the live updates replace.
pub fn layout(ctx: &Context<'_>, page: Page, flash: Option<&str>, fragment: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (page.title()) " · " (ctx.title) }
                link rel="stylesheet" href=(ctx.href("assets/style.css"));
                link rel="icon" href="data:,";
                script defer src=(ctx.href("assets/app.js")) {}
            }
            body {
                header {
                    strong { (ctx.title) }
                    nav {
                        @for p in Page::ALL {
                            a href=(ctx.href(p.slug())) class=[(p == page).then_some("current")] { (p.title()) }
                        }
                    }
                    (access(ctx))
                }
                @if let Some(flash) = flash {
                    p.flash role="status" { (flash) }
                }
                main id="live" data-page=(page.name()) data-events=(ctx.href(&format!("events?page={}", page.name()))) {
                    (fragment)
                }
                footer { "Updated live (Server-Sent Events). " span id="live-status" { "connecting…" } }
            }
        }
    }
}

/// The token form, or the session's logout, or the read-only notice.
fn access(ctx: &Context<'_>) -> Markup {
    html! {
        div.access {
            @match ctx.grant {
                Grant::ReadOnly => { span.badge title="No token configured: replay and drop are disabled" { "read-only" } }
                Grant::Anonymous => {
                    form method="post" action=(ctx.href("login")) {
                        input type="password" name="token" placeholder="token" aria-label="token" autocomplete="current-password";
                        button type="submit" { "Unlock actions" }
                    }
                }
                Grant::Session { csrf } => {
                    form method="post" action=(ctx.href("logout")) {
                        input type="hidden" name="csrf" value=(csrf);
                        button type="submit" { "Lock" }
                    }
                }
                Grant::Bearer => { span.badge { "token" } }
            }
        }
    }
}

/// Where the data comes from, and a warning when it is only this process.
pub fn board_notice(board: &BoardInfo) -> Markup {
    html! {
        @if let Some(e) = &board.error {
            p.error role="alert" { "The board (" (board.describe) ") could not be read: " (e) }
        }
        @if !board.shared {
            p.notice {
                "Showing only what this process knows: its workers report to this process's board. \
                 Give the workers and the dashboard a shared board (RedisBoard; "
                code { "--redis-url" } ") to see every process."
            }
        } @else {
            p.muted { "Workers of every process, from " (board.describe) "." }
        }
    }
}

/// A number of seconds for people.
pub fn seconds(s: Option<f64>) -> String {
    match s {
        None => "–".to_string(),
        Some(s) if s < 10.0 => format!("{s:.2} s"),
        Some(s) if s < 600.0 => format!("{s:.1} s"),
        Some(s) => format!("{:.0} min", s / 60.0),
    }
}

pub fn count(n: Option<u64>) -> String {
    n.map_or("–".to_string(), |n| n.to_string())
}

/// Milliseconds ago, from a Unix timestamp in milliseconds.
pub fn ago(at_ms: i64) -> String {
    let ms = (promiscuous_core::now_ms() - at_ms).max(0);
    format!("{} ago", seconds(Some(ms as f64 / 1000.0)))
}

/// Text that is shown as it is (escaped), kept on its lines.
pub fn pre(text: &str) -> Markup {
    html! { pre { (text) } }
}

/// Marks up nothing but a space (between inline forms).
pub fn space() -> Markup {
    PreEscaped(" ".to_string())
}
