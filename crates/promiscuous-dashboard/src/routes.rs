//! The HTTP routes: pages, their live updates, actions, `/metrics`, `/stream`, assets. The top
//! layer: requests in, views and pages out.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use futures_util::stream::{self, Stream};
use maud::Markup;
use promiscuous_core::board::BEAT_INTERVAL;
use promiscuous_sea_orm::subscriber::SeaOrmApplier;
use promiscuous_sea_orm::subscriber::dead_letters::{self, DeadLetterError, Replayed};

use crate::access::{COOKIE, Grant, Refusal};
use crate::pages::{self, Context, Page};
use crate::view::Sources;

type Shared = Arc<Sources>;

const STYLE: &str = include_str!("../assets/style.css");
const SCRIPT: &str = include_str!("../assets/app.js");
/// Dead letters shown per store.
const LETTERS_SHOWN: usize = 200;

pub fn router(sources: Shared) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/dead-letters", get(page))
        .route("/waiting", get(page))
        .route("/workers", get(page))
        .route("/events", get(events))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/dead-letters/{app}/{id}/{action}", post(act_one))
        .route("/dead-letters/{app}/{action}", post(act_all))
        .route("/metrics", get(metrics))
        .route("/stream", get(live_stream))
        .route(
            "/assets/style.css",
            get(|| async { asset(STYLE, "text/css; charset=utf-8") }),
        )
        .route(
            "/assets/app.js",
            get(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .with_state(sources)
}

fn asset(body: &'static str, kind: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// The mount point: what the outer router stripped from the path (`""` at the root).
fn base(original: &Uri, uri: &Uri) -> String {
    let full = original.path();
    let inner = uri.path();
    // Nested at `/promiscuous`, the overview's `/promiscuous` arrives as `/`.
    let base = full
        .strip_suffix(inner)
        .or_else(|| (inner == "/").then_some(full))
        .unwrap_or("");
    base.trim_end_matches('/').to_string()
}

/// What the request is, as the pages and actions need it.
struct Request {
    base: String,
    grant: Grant,
    /// The headers the grant was made from (kept for a live update to look again).
    cookie: Option<String>,
    authorization: Option<String>,
}

impl Request {
    fn new(sources: &Sources, original: &Uri, uri: &Uri, headers: &HeaderMap) -> Self {
        let text = |h: header::HeaderName| headers.get(h).and_then(|v| v.to_str().ok());
        let (cookie, authorization) = (text(header::COOKIE), text(header::AUTHORIZATION));
        Self {
            base: base(original, uri),
            grant: sources.access.grant(cookie, authorization),
            cookie: cookie.map(String::from),
            authorization: authorization.map(String::from),
        }
    }

    fn context<'a>(&'a self, sources: &'a Sources) -> Context<'a> {
        Context {
            base: &self.base,
            grant: &self.grant,
            title: &sources.title,
        }
    }
}

async fn fragment(sources: &Sources, ctx: &Context<'_>, page: Page) -> Markup {
    match page {
        Page::Overview => pages::overview(ctx, &sources.overview().await),
        Page::DeadLetters => pages::dead_letters(ctx, &sources.dead_letters(LETTERS_SHOWN).await),
        Page::Waiting | Page::Workers => {
            let (reports, error) = match sources.reports().await {
                Ok(r) => (r, None),
                Err(e) => (Vec::new(), Some(e)),
            };
            let board = sources.board_info(error);
            if page == Page::Waiting {
                pages::waiting(ctx, &board, &reports)
            } else {
                pages::workers(ctx, &board, &reports)
            }
        }
    }
}

async fn render(
    sources: Shared,
    original: Uri,
    uri: Uri,
    headers: HeaderMap,
    page: Page,
    flash: Option<String>,
) -> Response {
    let request = Request::new(&sources, &original, &uri, &headers);
    let ctx = request.context(&sources);
    let body = fragment(&sources, &ctx, page).await;
    (
        [(header::CACHE_CONTROL, "no-store")],
        pages::layout(&ctx, page, flash.as_deref(), body),
    )
        .into_response()
}

/// `GET /`, `/dead-letters`, `/waiting`, `/workers`: the page of that path; on the dead
/// letters page, `done` says what the last action came to.
async fn page(
    State(s): State<Shared>,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let path = uri.path().trim_matches('/');
    let Some(page) = Page::ALL.into_iter().find(|p| p.slug() == path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let flash = query
        .get("done")
        .filter(|_| page == Page::DeadLetters)
        .cloned();
    render(s, original, uri, headers, page, flash).await
}

/// `GET /events?page=NAME`: the page's fragment each time it changes (looked at every beat).
async fn events(
    State(sources): State<Shared>,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, (StatusCode, String)> {
    let name = query.get("page").map(String::as_str).unwrap_or("overview");
    let page = Page::from_name(name)
        .ok_or_else(|| (StatusCode::NOT_FOUND, format!("no page {name:?}")))?;
    // The pages' links are made from the page's own path, not from `/events`'.
    let request = Request::new(&sources, &original, &uri, &headers);
    let state = (sources, request, page, String::new(), true);
    let updates = stream::unfold(state, |(sources, request, page, last, first)| async move {
        loop {
            if !first {
                tokio::time::sleep(BEAT_INTERVAL).await;
            }
            let html = {
                // Who may act is looked at again each time: a session ended meanwhile loses
                // its buttons at the next update.
                let request = Request {
                    base: request.base.clone(),
                    grant: sources
                        .access
                        .grant(request.cookie.as_deref(), request.authorization.as_deref()),
                    cookie: None,
                    authorization: None,
                };
                let ctx = request.context(&sources);
                fragment(&sources, &ctx, page).await.into_string()
            };
            if html != last {
                let event = Event::default().event("update").data(html.clone());
                return Some((Ok(event), (sources, request, page, html, false)));
            }
            if first {
                return Some((
                    Ok(Event::default().comment("unchanged")),
                    (sources, request, page, html, false),
                ));
            }
        }
    });
    Ok(Sse::new(updates).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
}

#[derive(serde::Deserialize, Default)]
struct ActionForm {
    csrf: Option<String>,
}

fn refused(why: Refusal) -> Response {
    let status = match why {
        Refusal::ReadOnly | Refusal::BadCsrf => StatusCode::FORBIDDEN,
        Refusal::NotLoggedIn => StatusCode::UNAUTHORIZED,
    };
    (status, why.text()).into_response()
}

fn cookie(base: &str, value: &str, max_age: Option<u64>) -> HeaderValue {
    let path = if base.is_empty() { "/" } else { base };
    let age = max_age.map_or(String::new(), |a| format!("; Max-Age={a}"));
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path={path}; HttpOnly; SameSite=Strict{age}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

async fn login(
    State(sources): State<Shared>,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    let base = base(&original, &uri).trim_end_matches("/login").to_string();
    match sources.access.login(&form.token) {
        Err(why) => refused(why),
        Ok(session) => (
            [(header::SET_COOKIE, cookie(&base, &session, None))],
            Redirect::to(&pages::link(&base, "")),
        )
            .into_response(),
    }
}

async fn logout(
    State(sources): State<Shared>,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: ActionForm = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let request = Request::new(&sources, &original, &uri, &headers);
    if let Err(why) = sources.access.may_act(&request.grant, form.csrf.as_deref()) {
        return refused(why);
    }
    let text = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
    sources.access.logout(text);
    let base = request.base.trim_end_matches("/logout").to_string();
    (
        [(header::SET_COOKIE, cookie(&base, "", Some(0)))],
        Redirect::to(&pages::link(&base, "")),
    )
        .into_response()
}

/// The store of `app`, if the request may act on it; else the refusal.
fn allowed<'a>(
    sources: &'a Sources,
    original: &Uri,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    app: &str,
) -> Result<&'a SeaOrmApplier, Box<Response>> {
    let form: ActionForm = serde_urlencoded::from_bytes(body).unwrap_or_default();
    let request = Request::new(sources, original, uri, headers);
    sources
        .access
        .may_act(&request.grant, form.csrf.as_deref())
        .map_err(|why| Box::new(refused(why)))?;
    sources.dead_letters.get(app).ok_or_else(|| {
        Box::new(
            (
                StatusCode::NOT_FOUND,
                format!("no dead-letter store for app {app:?}"),
            )
                .into_response(),
        )
    })
}

/// Back to the dead letters page, saying what was `done`; or the failure (with its status).
fn done(original: &Uri, uri: &Uri, outcome: Result<String, (StatusCode, String)>) -> Response {
    match outcome {
        Err(failure) => failure.into_response(),
        Ok(done) => {
            // The action's path below the mount point is `uri`: what is left is the mount.
            let base = base(original, uri);
            let query = serde_urlencoded::to_string([("done", done)]).unwrap_or_default();
            Redirect::to(&format!("{base}/dead-letters?{query}")).into_response()
        }
    }
}

fn replayed(id: i64, r: Replayed) -> String {
    match r {
        Replayed::Applied(_) => format!("dead letter #{id} replayed: applied, removed"),
        Replayed::Failed(e) => format!("dead letter #{id} replayed, still failing: {e}"),
    }
}

async fn act_one(
    State(sources): State<Shared>,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    headers: HeaderMap,
    Path((app, id, action)): Path<(String, i64, String)>,
    body: Bytes,
) -> Response {
    let applier = match allowed(&sources, &original, &uri, &headers, &body, &app) {
        Ok(a) => a,
        Err(refusal) => return *refusal,
    };
    let outcome = async {
        let outcome = match action.as_str() {
            "replay" => applier
                .replay_dead_letter(id)
                .await
                .map(|r| replayed(id, r)),
            "drop" => dead_letters::delete(applier.db(), id)
                .await
                .map(|()| format!("dead letter #{id} dropped")),
            other => {
                return Err((
                    StatusCode::NOT_FOUND,
                    format!("no action {other:?} (replay, drop)"),
                ));
            }
        };
        match outcome {
            Ok(done) => Ok(done),
            Err(DeadLetterError::NotFound(id)) => {
                Ok(format!("no dead letter #{id} (gone already)"))
            }
            Err(e) => Err((StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
        }
    }
    .await;
    done(&original, &uri, outcome)
}

async fn act_all(
    State(sources): State<Shared>,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    headers: HeaderMap,
    Path((app, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let applier = match allowed(&sources, &original, &uri, &headers, &body, &app) {
        Ok(a) => a,
        Err(refusal) => return *refusal,
    };
    let outcome = async {
        match action.as_str() {
            "replay-all" => {
                let all = applier
                    .replay_dead_letters()
                    .await
                    .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
                let applied = all
                    .iter()
                    .filter(|(_, r)| matches!(r, Replayed::Applied(_)))
                    .count();
                Ok(format!(
                    "{} dead letter(s) replayed: {applied} applied, {} still failing",
                    all.len(),
                    all.len() - applied
                ))
            }
            "drop-all" => dead_letters::delete_all(applier.db())
                .await
                .map(|n| format!("{n} dead letter(s) dropped"))
                .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
            other => Err((
                StatusCode::NOT_FOUND,
                format!("no action {other:?} (replay-all, drop-all)"),
            )),
        }
    }
    .await;
    done(&original, &uri, outcome)
}

/// `GET /metrics`: the recorder's metrics, then gauges read off the board.
async fn metrics(State(sources): State<Shared>) -> Response {
    let mut text = sources
        .prometheus
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default();
    text.push_str(&crate::view::board_metrics(&sources.overview().await));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// `GET /stream?endpoint=…`: see [`crate::stream`].
async fn live_stream(
    State(sources): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let Some(feed) = &sources.feed else {
        return (
            StatusCode::NOT_FOUND,
            "no live stream: this dashboard was given no feed (Dashboard::feed)",
        )
            .into_response();
    };
    let endpoints: Vec<String> = query
        .iter()
        .filter(|(k, _)| k == "endpoint")
        .map(|(_, v)| v.clone())
        .collect();
    // The header when the browser reconnects, else `after` (a page's first connection).
    let after = query
        .iter()
        .find(|(k, _)| k == "after")
        .map(|(_, v)| v.clone());
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or(after.as_deref());
    crate::stream::stream(feed, last, endpoints).into_response()
}
