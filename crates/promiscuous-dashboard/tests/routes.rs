//! HTTP-level tests of the dashboard's routes, with `tower::ServiceExt::oneshot` on
//! `Dashboard::router()` (at the root or nested under `/promiscuous`), over an in-memory SQLite
//! subscriber database and this process's board: no server, no broker.
//!
//! Covers every GET route's status and content type, the live streams (`/events`, `/stream`
//! with `endpoint=` filtering and `Last-Event-ID` resuming), the access rules (read-only,
//! token, session cookie, CSRF, Bearer, logout), the actions on dead letters (replay, drop,
//! one or all), the links following the mount point, the reports on the workers and waiting
//! pages, secrets never shown and HTML escaping.
//!
//! The local board is process-global and the tests run in parallel: each test uses its own app
//! names and never counts all the rows.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, Response, StatusCode, header};
use futures_util::StreamExt;
use promiscuous_core::board::{self, LastError, Need, Report, SubscriberReport, Waiting, Worker};
use promiscuous_core::subscriber::Feed;
use promiscuous_core::{Message, now_ms};
use promiscuous_dashboard::Dashboard;
use promiscuous_sea_orm::subscriber::SeaOrmApplier;
use promiscuous_sea_orm::tables::dead_letters;
use sea_orm::{ActiveModelTrait, Database, DatabaseConnection, EntityTrait, PaginatorTrait, Set};
use tower::ServiceExt;

const TOKEN: &str = "s3cret";
const APP: &str = "members";
const FORM: &str = "application/x-www-form-urlencoded";

// ---------------------------------------------------------------------------------------------
// Setup

/// A subscriber database with promiscuous' tables.
async fn store() -> DatabaseConnection {
    let db = Database::connect("sqlite::memory:")
        .await
        .expect("in-memory SQLite");
    promiscuous_sea_orm::setup_subscriber(&db)
        .await
        .expect("the subscriber tables");
    db
}

/// Stores a dead letter (one attempt so far); its id.
async fn letter(db: &DatabaseConnection, routing_key: &str, payload: &[u8], error: &str) -> i64 {
    dead_letters::ActiveModel {
        queue: Set(APP.to_string()),
        routing_key: Set(routing_key.to_string()),
        user_id: Set(None),
        payload: Set(payload.to_vec()),
        error: Set(error.to_string()),
        attempts: Set(1),
        at_ms: Set(now_ms()),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("a dead letter")
    .id
}

/// A dead letter that can never be applied: its payload is not a message.
async fn undecodable(db: &DatabaseConnection) -> i64 {
    letter(
        db,
        "crowdtap",
        b"not json",
        "invalid message: expected value",
    )
    .await
}

async fn row(db: &DatabaseConnection, id: i64) -> Option<dead_letters::Model> {
    dead_letters::Entity::find_by_id(id)
        .one(db)
        .await
        .expect("the dead letters are readable")
}

async fn rows(db: &DatabaseConnection) -> u64 {
    dead_letters::Entity::find()
        .count(db)
        .await
        .expect("the dead letters are countable")
}

/// A valid message of app `crowdtap`: operation `n` (its version) on `crowdtap/{model}`.
fn message_json(n: u64, model: &str) -> String {
    format!(
        r#"{{"protocol":1,"id":"m{n}","app":"crowdtap","timestamp":0,"host":"h",
        "operations":[{{"endpoint":"crowdtap/{model}","types":["{model}"],"id":{n},
        "operation":"update","version":{n},"attributes":{{"name":"u{n}"}}}}],
        "dependencies":{{"read":[],"write":[{{"key":"crowdtap/{model}/{n}","version":{n}}}]}}}}"#
    )
}

fn message(n: u64, model: &str) -> Message {
    Message::decode(message_json(n, model).as_bytes()).expect("a valid message")
}

fn publish(feed: &Feed, n: u64, model: &str) {
    let m = message(n, model);
    feed.publish(&m, &m.operations);
}

fn dashboard(db: &DatabaseConnection) -> Dashboard {
    Dashboard::new().dead_letters(APP, SeaOrmApplier::new(db.clone()))
}

fn read_only(db: &DatabaseConnection) -> Router {
    dashboard(db).router()
}

fn with_token(db: &DatabaseConnection) -> Router {
    dashboard(db).token(TOKEN).router()
}

fn nested(router: Router) -> Router {
    Router::new().nest("/promiscuous", router)
}

/// A subscriber worker's report on this process's board, for `app`, from `host`, holding one
/// message (`msg-{app}`) that waits for `crowdtap/user/{app}` at version 41.
fn report(app: &str, host: &str, last_error: Option<&str>) -> Report {
    let worker = Worker::Subscriber(SubscriberReport {
        runners: 4,
        prefetch: 32,
        connected: true,
        messages: 7,
        operations_applied: 7,
        dead_lettered: 0,
        recovered: 0,
        waiting_count: 1,
        in_flight: 2,
        queue_depth: Some(3),
        lag_ms: Some(1500),
        waiting: vec![Waiting {
            message_id: format!("msg-{app}"),
            routing_key: "crowdtap".to_string(),
            waited_ms: 2500,
            needs: vec![Need {
                key: format!("crowdtap/user/{app}"),
                version: 41,
                have: Some(40),
            }],
            behind_writers: Vec::new(),
            recovering: false,
        }],
    });
    let mut report = Report::new(board::worker_id("subscriber", app), app, now_ms(), worker);
    report.host = host.to_string();
    report.last_error = last_error.map(|e| LastError {
        at_ms: now_ms(),
        error: e.to_string(),
    });
    report
}

// ---------------------------------------------------------------------------------------------
// Requests

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(&name)
            .map(|v| v.to_str().expect("an ASCII header"))
            .unwrap_or("")
    }

    fn content_type(&self) -> &str {
        self.header(header::CONTENT_TYPE)
    }

    fn location(&self) -> &str {
        self.header(header::LOCATION)
    }

    /// The session cookie set, as a `Cookie` header sends it back.
    fn session(&self) -> String {
        let set = self.header(header::SET_COOKIE);
        let pair = set.split(';').next().unwrap_or("");
        assert!(
            pair.starts_with("promiscuous_dashboard=") && pair.len() > 22,
            "a session cookie: {set:?}"
        );
        pair.to_string()
    }
}

async fn respond(app: &Router, request: Request<Body>) -> Response<Body> {
    app.clone()
        .oneshot(request)
        .await
        .expect("the router is infallible")
}

async fn send(app: &Router, request: Request<Body>) -> Reply {
    let response = respond(app, request).await;
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("a body");
    Reply {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).expect("a UTF-8 body"),
    }
}

fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut request = Request::get(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    request.body(Body::empty()).expect("a request")
}

fn post(path: &str, cookie: Option<&str>, form: &str) -> Request<Body> {
    let mut request = Request::post(path).header(header::CONTENT_TYPE, FORM);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    request
        .body(Body::from(form.to_string()))
        .expect("a request")
}

fn post_bearer(path: &str, token: &str) -> Request<Body> {
    Request::post(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .expect("a request")
}

/// Logs in at `prefix` (`""` or `"/promiscuous"`): the `Cookie` header of the session.
async fn login(app: &Router, prefix: &str) -> String {
    let reply = send(app, post(&format!("{prefix}/login"), None, "token=s3cret")).await;
    assert!(reply.status.is_redirection(), "{}", reply.status);
    reply.session()
}

/// The CSRF token of the first form of a page.
fn csrf(page: &str) -> String {
    let marker = r#"name="csrf" value=""#;
    let start = page.find(marker).expect("a CSRF input") + marker.len();
    let len = page[start..].find('"').expect("the end of the value");
    page[start..start + len].to_string()
}

/// Every value of the attribute `name` (`href`, `src`, `action`…) in `html`.
fn attributes<'a>(html: &'a str, name: &str) -> Vec<&'a str> {
    let marker = format!(" {name}=\"");
    html.match_indices(&marker)
        .map(|(i, _)| {
            let start = i + marker.len();
            let len = html[start..].find('"').expect("a closed attribute");
            &html[start..start + len]
        })
        .collect()
}

/// Every URL in a page's links, forms, assets and live-update address (`data:` URLs, which
/// lead nowhere, left out).
fn urls(html: &str) -> Vec<&str> {
    ["href", "src", "action", "data-events"]
        .into_iter()
        .flat_map(|name| attributes(html, name))
        .filter(|url| !url.starts_with("data:"))
        .collect()
}

/// The text of a streamed body until it holds `n` whole events (or comments), waiting at most
/// five seconds for each chunk.
async fn frames(body: &mut axum::body::BodyDataStream, n: usize) -> String {
    let mut text = String::new();
    while text.matches("\n\n").count() < n {
        let chunk = tokio::time::timeout(Duration::from_secs(5), body.next())
            .await
            .expect("an event in time")
            .expect("the stream goes on")
            .expect("a chunk");
        text.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
    }
    text
}

/// Whether the stream sends nothing more within a short while.
async fn quiet(body: &mut axum::body::BodyDataStream) -> bool {
    tokio::time::timeout(Duration::from_millis(300), body.next())
        .await
        .is_err()
}

// ---------------------------------------------------------------------------------------------
// Every GET route

#[tokio::test]
async fn every_page_answers_html() {
    let db = store().await;
    let app = read_only(&db);
    for path in ["/", "/dead-letters", "/waiting", "/workers"] {
        let reply = send(&app, get(path, None)).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert!(
            reply.content_type().starts_with("text/html"),
            "{path}: {}",
            reply.content_type()
        );
        assert_eq!(reply.header(header::CACHE_CONTROL), "no-store", "{path}");
        assert!(reply.body.starts_with("<!DOCTYPE html>"), "{path}");
        assert!(reply.body.contains(r#"id="live""#), "{path}");
    }
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_the_board_gauges() {
    let db = store().await;
    undecodable(&db).await;
    let app = read_only(&db);
    board::local().insert(report("metrics-app", "metrics-host", None));
    let reply = send(&app, get("/metrics", None)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply.content_type().starts_with("text/plain"),
        "{}",
        reply.content_type()
    );
    assert!(reply.body.contains("promiscuous_board_"), "{}", reply.body);
    assert!(
        reply
            .body
            .contains("promiscuous_board_dead_letters{app=\"members\"} 1\n"),
        "{}",
        reply.body
    );
    assert!(
        reply
            .body
            .contains("promiscuous_board_subscriber_workers{app=\"metrics-app\"} 1\n"),
        "{}",
        reply.body
    );
    assert!(
        reply
            .body
            .contains("promiscuous_board_lag_seconds{app=\"metrics-app\"} 1.5\n"),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn the_assets_are_served_with_their_types() {
    let db = store().await;
    let app = read_only(&db);
    let css = send(&app, get("/assets/style.css", None)).await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.content_type().starts_with("text/css"));
    assert!(!css.body.is_empty());
    let js = send(&app, get("/assets/app.js", None)).await;
    assert_eq!(js.status, StatusCode::OK);
    assert!(js.content_type().starts_with("text/javascript"));
    assert!(!js.body.is_empty());
    let icon = send(&app, get("/favicon.ico", None)).await;
    assert_eq!(icon.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn unknown_routes_are_not_found() {
    let db = store().await;
    let app = read_only(&db);
    assert_eq!(
        send(&app, get("/nope", None)).await.status,
        StatusCode::NOT_FOUND
    );
}

// ---------------------------------------------------------------------------------------------
// Live updates of the pages

#[tokio::test]
async fn page_events_start_with_the_fragment() {
    let db = store().await;
    let id = undecodable(&db).await;
    let app = read_only(&db);
    for page in ["overview", "dead-letters", "waiting", "workers"] {
        let response = respond(&app, get(&format!("/events?page={page}"), None)).await;
        assert_eq!(response.status(), StatusCode::OK, "{page}");
        let kind = response.headers()[header::CONTENT_TYPE].to_str().unwrap();
        assert!(kind.starts_with("text/event-stream"), "{page}: {kind}");
        let mut body = response.into_body().into_data_stream();
        let first = frames(&mut body, 1).await;
        assert!(first.starts_with("event: update\n"), "{page}: {first}");
        assert!(first.contains("data: "), "{page}: {first}");
        // The fragment only, not the whole page.
        assert!(!first.contains("<!DOCTYPE"), "{page}: {first}");
        if page == "dead-letters" {
            assert!(
                first.contains(&format!(r#"data-dead-letter="{id}""#)),
                "{first}"
            );
        }
    }
}

#[tokio::test]
async fn page_events_of_an_unknown_page_are_not_found() {
    let db = store().await;
    let app = read_only(&db);
    let reply = send(&app, get("/events?page=nope", None)).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn page_events_follow_a_change() {
    let db = store().await;
    let app = read_only(&db);
    let response = respond(&app, get("/events?page=dead-letters", None)).await;
    let mut body = response.into_body().into_data_stream();
    let first = frames(&mut body, 1).await;
    assert!(first.contains("No dead letters."), "{first}");
    let id = undecodable(&db).await;
    // Looked at every beat (a second).
    let next = frames(&mut body, 1).await;
    assert!(next.starts_with("event: update\n"), "{next}");
    assert!(
        next.contains(&format!(r#"data-dead-letter="{id}""#)),
        "{next}"
    );
}

// ---------------------------------------------------------------------------------------------
// The live stream of applied operations

#[tokio::test]
async fn without_a_feed_there_is_no_stream() {
    let db = store().await;
    let app = read_only(&db);
    let reply = send(&app, get("/stream", None)).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(reply.body.contains("no live stream"), "{}", reply.body);
}

#[tokio::test]
async fn the_stream_sends_each_operation_applied() {
    let db = store().await;
    let feed = Feed::new(16);
    let app = dashboard(&db).feed(feed.clone()).router();
    let response = respond(&app, get("/stream", None)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let kind = response.headers()[header::CONTENT_TYPE].to_str().unwrap();
    assert!(kind.starts_with("text/event-stream"), "{kind}");
    let mut body = response.into_body().into_data_stream();
    assert!(quiet(&mut body).await, "nothing before the first operation");
    publish(&feed, 1, "user");
    let frame = frames(&mut body, 1).await;
    assert!(frame.contains("event: operation\n"), "{frame}");
    assert!(
        frame.contains(&format!("id: {}\n", feed.last_id())),
        "{frame}"
    );
    let data = frame
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("a data line");
    let event: serde_json::Value = serde_json::from_str(data).expect("JSON data");
    assert_eq!(event["endpoint"], "crowdtap/user");
    assert_eq!(event["message_id"], "m1");
    assert_eq!(event["version"], 1);
    assert_eq!(event["attributes"]["name"], "u1");
    assert_eq!(event["id"], feed.last_id());
}

#[tokio::test]
async fn the_stream_keeps_only_the_endpoints_asked_for() {
    let db = store().await;
    let feed = Feed::new(16);
    let app = dashboard(&db).feed(feed.clone()).router();
    let response = respond(&app, get("/stream?endpoint=crowdtap%2Fpost", None)).await;
    let mut body = response.into_body().into_data_stream();
    publish(&feed, 1, "user");
    publish(&feed, 2, "post");
    publish(&feed, 3, "user");
    let frame = frames(&mut body, 1).await;
    assert!(frame.contains(r#""endpoint":"crowdtap/post""#), "{frame}");
    assert!(!frame.contains("crowdtap/user"), "{frame}");
    assert!(quiet(&mut body).await, "the other endpoints are left out");

    // Repeated: both.
    let response = respond(
        &app,
        get(
            "/stream?endpoint=crowdtap/post&endpoint=crowdtap/user",
            None,
        ),
    )
    .await;
    let mut body = response.into_body().into_data_stream();
    publish(&feed, 4, "user");
    publish(&feed, 5, "post");
    let frames = frames(&mut body, 2).await;
    assert!(frames.contains(r#""message_id":"m4""#), "{frames}");
    assert!(frames.contains(r#""message_id":"m5""#), "{frames}");
}

#[tokio::test]
async fn the_stream_resumes_after_the_last_event_id() {
    let db = store().await;
    let feed = Feed::new(16);
    let app = dashboard(&db).feed(feed.clone()).router();
    publish(&feed, 1, "user");
    let first = feed.last_id();
    publish(&feed, 2, "user");
    publish(&feed, 3, "post");
    let request = Request::get("/stream")
        .header("Last-Event-ID", first.as_str())
        .body(Body::empty())
        .unwrap();
    let response = respond(&app, request).await;
    let mut body = response.into_body().into_data_stream();
    let missed = frames(&mut body, 2).await;
    assert!(!missed.contains(&format!("id: {first}\n")), "{missed}");
    assert!(!missed.contains(r#""message_id":"m1""#), "{missed}");
    let m2 = missed.find(r#""message_id":"m2""#).expect("m2 missed");
    let m3 = missed.find(r#""message_id":"m3""#).expect("m3 missed");
    assert!(m2 < m3, "in order: {missed}");
    assert!(quiet(&mut body).await, "nothing twice");
    // Then live.
    publish(&feed, 4, "user");
    let live = frames(&mut body, 1).await;
    assert!(live.contains(r#""message_id":"m4""#), "{live}");

    // `after=` on a first connection does the same.
    let after = format!("/stream?after={first}&endpoint=crowdtap/post");
    let response = respond(&app, get(&after, None)).await;
    let mut body = response.into_body().into_data_stream();
    let missed = frames(&mut body, 1).await;
    assert!(missed.contains(r#""message_id":"m3""#), "{missed}");
    assert!(quiet(&mut body).await, "only crowdtap/post: {missed}");
}

#[tokio::test]
async fn a_stale_last_event_id_gives_a_reset() {
    let db = store().await;
    let feed = Feed::new(2);
    let app = dashboard(&db).feed(feed.clone()).router();
    publish(&feed, 1, "user");
    let gone = feed.last_id();
    for n in 2..=4 {
        publish(&feed, n, "user");
    }
    for stale in [gone.as_str(), "aaaaaaaaaaaa-3", "garbage"] {
        let request = Request::get("/stream")
            .header("Last-Event-ID", stale)
            .body(Body::empty())
            .unwrap();
        let response = respond(&app, request).await;
        let mut body = response.into_body().into_data_stream();
        let frame = frames(&mut body, 1).await;
        assert!(frame.contains("event: reset\n"), "{stale}: {frame}");
        assert!(!frame.contains("event: operation"), "{stale}: {frame}");
        // Live events follow.
        publish(&feed, 9, "user");
        let live = frames(&mut body, 1).await;
        assert!(live.contains(r#""message_id":"m9""#), "{stale}: {live}");
    }
}

// ---------------------------------------------------------------------------------------------
// Read-only

#[tokio::test]
async fn read_only_pages_offer_no_action() {
    let db = store().await;
    undecodable(&db).await;
    let app = read_only(&db);
    let page = send(&app, get("/dead-letters", None)).await.body;
    assert!(page.contains("read-only"), "{page}");
    assert!(!page.contains(r#"data-action="replay""#), "{page}");
    assert!(!page.contains(r#"data-action="drop""#), "{page}");
    assert!(!page.contains(">Replay"), "{page}");
    assert!(!page.contains(">Drop"), "{page}");
    assert!(!page.contains(r#"name="csrf""#), "{page}");
    assert!(!page.contains(r#"name="token""#), "no login form: {page}");
}

#[tokio::test]
async fn read_only_refuses_every_action() {
    let db = store().await;
    let id = undecodable(&db).await;
    let app = read_only(&db);
    for path in [
        format!("/dead-letters/{APP}/{id}/replay"),
        format!("/dead-letters/{APP}/{id}/drop"),
        format!("/dead-letters/{APP}/replay-all"),
        format!("/dead-letters/{APP}/drop-all"),
    ] {
        let reply = send(&app, post(&path, None, "")).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{path}");
        assert!(reply.body.contains("read-only"), "{path}: {}", reply.body);
        // Even with a made-up Bearer token.
        let reply = send(&app, post_bearer(&path, TOKEN)).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{path}");
    }
    let kept = row(&db, id).await.expect("the dead letter is still there");
    assert_eq!(kept.attempts, 1, "not replayed");
    let login = send(&app, post("/login", None, "token=s3cret")).await;
    assert_eq!(login.status, StatusCode::FORBIDDEN);
    assert!(login.headers.get(header::SET_COOKIE).is_none());
}

// ---------------------------------------------------------------------------------------------
// With a token

#[tokio::test]
async fn anonymous_actions_are_unauthorized() {
    let db = store().await;
    let id = undecodable(&db).await;
    let app = with_token(&db);
    let page = send(&app, get("/dead-letters", None)).await.body;
    assert!(page.contains(r#"name="token""#), "a login form: {page}");
    assert!(!page.contains(r#"data-action="drop""#), "{page}");
    for path in [
        format!("/dead-letters/{APP}/{id}/drop"),
        format!("/dead-letters/{APP}/{id}/replay"),
        format!("/dead-letters/{APP}/drop-all"),
        format!("/dead-letters/{APP}/replay-all"),
    ] {
        let reply = send(&app, post(&path, None, "")).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{path}");
        // A forged session cookie is no session.
        let forged = send(&app, post(&path, Some("promiscuous_dashboard=forged"), "")).await;
        assert_eq!(forged.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    assert_eq!(row(&db, id).await.expect("kept").attempts, 1);
}

#[tokio::test]
async fn a_wrong_token_opens_no_session() {
    let db = store().await;
    let app = with_token(&db);
    for form in ["token=wrong", "token=s3cre", "token=s3cret2", "token="] {
        let reply = send(&app, post("/login", None, form)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{form}");
        assert!(reply.headers.get(header::SET_COOKIE).is_none(), "{form}");
    }
}

#[tokio::test]
async fn the_token_opens_a_session_with_a_strict_cookie() {
    let db = store().await;
    let id = undecodable(&db).await;
    let app = with_token(&db);
    let reply = send(&app, post("/login", None, "token=s3cret")).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.location(), "/");
    let set = reply.header(header::SET_COOKIE);
    assert!(set.starts_with("promiscuous_dashboard="), "{set}");
    assert!(set.contains("; HttpOnly"), "{set}");
    assert!(set.contains("; SameSite=Strict"), "{set}");
    assert!(set.contains("; Path=/"), "{set}");
    let cookie = reply.session();

    let page = send(&app, get("/dead-letters", Some(&cookie))).await.body;
    assert!(page.contains(r#"data-action="replay""#), "{page}");
    assert!(page.contains(r#"data-action="drop""#), "{page}");
    assert!(page.contains(r#"data-action="replay-all""#), "{page}");
    assert!(page.contains(r#"data-action="drop-all""#), "{page}");
    assert!(
        page.contains(&format!(r#"action="/dead-letters/{APP}/{id}/replay""#)),
        "{page}"
    );
    assert!(page.contains(r#"<input type="hidden" name="csrf" value=""#));
    assert!(
        page.contains(r#"action="/logout""#),
        "a Lock button: {page}"
    );
    assert!(!page.contains(r#"name="token""#), "no login form: {page}");
    let token = csrf(&page);
    assert!(token.len() >= 16, "{token}");
    // Every form carries the same token.
    for (i, _) in page.match_indices(r#"name="csrf" value=""#) {
        assert!(page[i..].starts_with(&format!(r#"name="csrf" value="{token}""#)));
    }
    // Two sessions, two tokens.
    let other = login(&app, "").await;
    assert_ne!(other, cookie);
    let other_page = send(&app, get("/dead-letters", Some(&other))).await.body;
    assert_ne!(csrf(&other_page), token);
}

#[tokio::test]
async fn a_session_acts_only_with_its_csrf_token() {
    let db = store().await;
    let id = undecodable(&db).await;
    let app = with_token(&db);
    let cookie = login(&app, "").await;
    let page = send(&app, get("/dead-letters", Some(&cookie))).await.body;
    let token = csrf(&page);
    let other = login(&app, "").await;
    let other_token = csrf(&send(&app, get("/dead-letters", Some(&other))).await.body);
    let drop = format!("/dead-letters/{APP}/{id}/drop");

    for form in [
        String::new(),
        "csrf=".to_string(),
        "csrf=guess".to_string(),
        format!("csrf={other_token}"),
    ] {
        let reply = send(&app, post(&drop, Some(&cookie), &form)).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{form:?}");
        assert!(row(&db, id).await.is_some(), "{form:?}: still there");
    }

    let reply = send(&app, post(&drop, Some(&cookie), &format!("csrf={token}"))).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    let location = reply.location().to_string();
    assert!(location.starts_with("/dead-letters?done="), "{location}");
    assert!(row(&db, id).await.is_none(), "dropped");

    // The page it leads to says so.
    let page = send(&app, get(&location, Some(&cookie))).await.body;
    assert!(
        page.contains(&format!("dead letter #{id} dropped")),
        "{page}"
    );
    assert!(page.contains("No dead letters."), "{page}");

    // Dropped again: gone already, not an error.
    let reply = send(&app, post(&drop, Some(&cookie), &format!("csrf={token}"))).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    let page = send(&app, get(reply.location(), Some(&cookie))).await.body;
    assert!(page.contains("gone already"), "{page}");
}

#[tokio::test]
async fn the_bearer_token_acts_without_a_session() {
    let db = store().await;
    let kept = undecodable(&db).await;
    let dropped = undecodable(&db).await;
    let app = with_token(&db);

    let reply = send(
        &app,
        post_bearer(&format!("/dead-letters/{APP}/{dropped}/drop"), "wrong"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(row(&db, dropped).await.is_some());

    let reply = send(
        &app,
        post_bearer(&format!("/dead-letters/{APP}/{dropped}/drop"), TOKEN),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert!(
        reply.location().starts_with("/dead-letters?done="),
        "{}",
        reply.location()
    );
    assert!(row(&db, dropped).await.is_none());
    assert!(row(&db, kept).await.is_some());

    // A page asked with the Bearer token shows the actions, with no CSRF token to carry.
    let request = Request::get("/dead-letters")
        .header(header::AUTHORIZATION, "Bearer s3cret")
        .body(Body::empty())
        .unwrap();
    let page = send(&app, request).await.body;
    assert!(page.contains(r#"data-action="drop""#), "{page}");
    assert!(!page.contains(r#"name="csrf""#), "{page}");
}

#[tokio::test]
async fn replaying_an_undecodable_letter_keeps_it_with_one_more_attempt() {
    let db = store().await;
    let id = undecodable(&db).await;
    let app = with_token(&db);
    let reply = send(
        &app,
        post_bearer(&format!("/dead-letters/{APP}/{id}/replay"), TOKEN),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    let location = reply.location().to_string();
    assert!(location.starts_with("/dead-letters?done="), "{location}");
    let kept = row(&db, id).await.expect("still a dead letter");
    assert_eq!(kept.attempts, 2);
    assert_ne!(kept.error, "invalid message: expected value", "a new error");
    let page = send(&app, get(&location, None)).await.body;
    assert!(
        page.contains(&format!("dead letter #{id} replayed, still failing")),
        "{page}"
    );
}

#[tokio::test]
async fn replaying_a_message_nobody_follows_applies_it() {
    // The applier follows no endpoint: the message is ignored, which is applied (its versions
    // recorded as processed), and the dead letter goes.
    let db = store().await;
    let id = letter(&db, "crowdtap", message_json(7, "user").as_bytes(), "boom").await;
    let app = with_token(&db);
    let reply = send(
        &app,
        post_bearer(&format!("/dead-letters/{APP}/{id}/replay"), TOKEN),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert!(row(&db, id).await.is_none(), "applied, removed");
    let page = send(&app, get(reply.location(), None)).await.body;
    assert!(
        page.contains(&format!("dead letter #{id} replayed: applied, removed")),
        "{page}"
    );
}

#[tokio::test]
async fn replay_all_replays_every_letter() {
    let db = store().await;
    let applies = letter(&db, "crowdtap", message_json(8, "user").as_bytes(), "boom").await;
    let fails = undecodable(&db).await;
    // From another app than its routing key: refused again.
    let untrusted = letter(&db, "intruder", message_json(9, "user").as_bytes(), "x").await;
    let app = with_token(&db);
    let reply = send(
        &app,
        post_bearer(&format!("/dead-letters/{APP}/replay-all"), TOKEN),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert!(row(&db, applies).await.is_none());
    assert_eq!(row(&db, fails).await.expect("kept").attempts, 2);
    let refused = row(&db, untrusted).await.expect("kept");
    assert_eq!(refused.attempts, 2);
    assert!(refused.error.contains("routing key"), "{}", refused.error);
    let page = send(&app, get(reply.location(), None)).await.body;
    assert!(
        page.contains("3 dead letter(s) replayed: 1 applied, 2 still failing"),
        "{page}"
    );
}

#[tokio::test]
async fn drop_all_drops_every_letter() {
    let db = store().await;
    for _ in 0..3 {
        undecodable(&db).await;
    }
    let app = with_token(&db);
    let cookie = login(&app, "").await;
    let token = csrf(&send(&app, get("/dead-letters", Some(&cookie))).await.body);
    let path = format!("/dead-letters/{APP}/drop-all");
    let reply = send(&app, post(&path, Some(&cookie), "csrf=nope")).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(rows(&db).await, 3);
    let reply = send(&app, post(&path, Some(&cookie), &format!("csrf={token}"))).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert_eq!(rows(&db).await, 0);
    let page = send(&app, get(reply.location(), Some(&cookie))).await.body;
    assert!(page.contains("3 dead letter(s) dropped"), "{page}");
}

#[tokio::test]
async fn an_unknown_app_is_not_found() {
    let db = store().await;
    let id = undecodable(&db).await;
    let app = with_token(&db);
    for path in [
        format!("/dead-letters/nope/{id}/drop"),
        format!("/dead-letters/nope/{id}/replay"),
        "/dead-letters/nope/drop-all".to_string(),
        "/dead-letters/nope/replay-all".to_string(),
    ] {
        let reply = send(&app, post_bearer(&path, TOKEN)).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
    }
    assert!(row(&db, id).await.is_some());
}

#[tokio::test]
async fn an_unknown_action_changes_nothing() {
    let db = store().await;
    let id = undecodable(&db).await;
    let app = with_token(&db);
    for path in [
        format!("/dead-letters/{APP}/{id}/nuke"),
        format!("/dead-letters/{APP}/nuke-all"),
    ] {
        let reply = send(&app, post_bearer(&path, TOKEN)).await;
        assert!(!reply.status.is_success(), "{path}");
        assert!(!reply.status.is_redirection(), "{path}");
    }
    assert_eq!(row(&db, id).await.expect("kept").attempts, 1);
}

#[tokio::test]
async fn an_unknown_action_is_a_client_error() {
    let db = store().await;
    let id = undecodable(&db).await;
    let app = with_token(&db);
    for path in [
        format!("/dead-letters/{APP}/{id}/nuke"),
        format!("/dead-letters/{APP}/nuke-all"),
    ] {
        let reply = send(&app, post_bearer(&path, TOKEN)).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn logout_ends_the_session() {
    let db = store().await;
    let id = undecodable(&db).await;
    let app = with_token(&db);
    let cookie = login(&app, "").await;
    let token = csrf(&send(&app, get("/dead-letters", Some(&cookie))).await.body);

    // Not without its CSRF token (another site cannot log a user out).
    let reply = send(&app, post("/logout", Some(&cookie), "")).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let page = send(&app, get("/dead-letters", Some(&cookie))).await.body;
    assert!(page.contains(r#"data-action="drop""#), "still logged in");

    let reply = send(
        &app,
        post("/logout", Some(&cookie), &format!("csrf={token}")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.location(), "/");
    let set = reply.header(header::SET_COOKIE);
    assert!(set.starts_with("promiscuous_dashboard=;"), "{set}");
    assert!(set.contains("Max-Age=0"), "{set}");

    // The old cookie no longer acts, even with the old CSRF token.
    let page = send(&app, get("/dead-letters", Some(&cookie))).await.body;
    assert!(
        page.contains(r#"name="token""#),
        "the login form again: {page}"
    );
    assert!(!page.contains(r#"data-action="drop""#), "{page}");
    let reply = send(
        &app,
        post(
            &format!("/dead-letters/{APP}/{id}/drop"),
            Some(&cookie),
            &format!("csrf={token}"),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(row(&db, id).await.is_some());
}

// ---------------------------------------------------------------------------------------------
// The mount point

#[tokio::test]
async fn links_start_at_the_root_when_mounted_there() {
    let db = store().await;
    let id = undecodable(&db).await;
    let app = with_token(&db);
    let cookie = login(&app, "").await;
    for path in ["/", "/dead-letters", "/waiting", "/workers"] {
        let page = send(&app, get(path, Some(&cookie))).await.body;
        let urls = urls(&page);
        assert!(urls.len() >= 7, "{path}: {urls:?}");
        for url in &urls {
            assert!(url.starts_with('/'), "{path}: {url}");
            assert!(!url.starts_with("//"), "{path}: {url}");
            assert!(!url.starts_with("/promiscuous"), "{path}: {url}");
        }
        assert!(urls.contains(&"/assets/style.css"), "{path}: {urls:?}");
        assert!(urls.contains(&"/assets/app.js"), "{path}: {urls:?}");
        assert!(urls.contains(&"/"), "{path}: {urls:?}");
    }
    let page = send(&app, get("/dead-letters", Some(&cookie))).await.body;
    assert!(urls(&page).contains(&format!("/dead-letters/{APP}/{id}/drop").as_str()));
    assert!(urls(&page).contains(&"/events?page=dead-letters"));
}

#[tokio::test]
async fn links_follow_the_mount_point() {
    let db = store().await;
    let id = undecodable(&db).await;
    let app = nested(with_token(&db));

    // Logging in there: the cookie is for that path, back to that overview.
    let reply = send(&app, post("/promiscuous/login", None, "token=s3cret")).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert!(under_mount(reply.location()), "{}", reply.location());
    let set = reply.header(header::SET_COOKIE);
    assert!(set.contains("; Path=/promiscuous;"), "{set}");
    let cookie = reply.session();

    // (The overview is at `/promiscuous` only: see
    // `the_overview_answers_where_links_and_redirects_point_when_nested`.)
    for path in [
        "/promiscuous/dead-letters",
        "/promiscuous/waiting",
        "/promiscuous/workers",
    ] {
        let page = send(&app, get(path, Some(&cookie))).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        let urls = urls(&page.body);
        assert!(urls.len() >= 7, "{path}: {urls:?}");
        for url in &urls {
            assert!(under_mount(url), "{path}: {url}");
        }
        assert!(urls.contains(&"/promiscuous/assets/style.css"), "{path}");
        assert!(urls.contains(&"/promiscuous/assets/app.js"), "{path}");
        assert!(urls.contains(&"/promiscuous/logout"), "{path}");
    }
    let page = send(&app, get("/promiscuous/dead-letters", Some(&cookie)))
        .await
        .body;
    let urls = urls(&page);
    assert!(urls.contains(&format!("/promiscuous/dead-letters/{APP}/{id}/replay").as_str()));
    assert!(urls.contains(&format!("/promiscuous/dead-letters/{APP}/drop-all").as_str()));
    assert!(urls.contains(&"/promiscuous/events?page=dead-letters"));

    // Every URL the page gives answers.
    for url in [
        "/promiscuous/assets/style.css",
        "/promiscuous/assets/app.js",
    ] {
        assert_eq!(send(&app, get(url, None)).await.status, StatusCode::OK);
    }

    // An action there goes back there.
    let token = csrf(&page);
    let reply = send(
        &app,
        post(
            &format!("/promiscuous/dead-letters/{APP}/{id}/replay"),
            Some(&cookie),
            &format!("csrf={token}"),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    let location = reply.location().to_string();
    assert!(
        location.starts_with("/promiscuous/dead-letters?done="),
        "{location}"
    );
    let page = send(&app, get(&location, Some(&cookie))).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("still failing"), "{}", page.body);

    // The live updates' fragments too.
    let response = respond(&app, get("/promiscuous/events?page=overview", None)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body().into_data_stream();
    let first = frames(&mut body, 1).await;
    let links = attributes(&first, "href");
    assert!(!links.is_empty(), "{first}");
    for url in links {
        assert!(under_mount(url), "{url}");
    }

    // Logging out there goes back there.
    let reply = send(
        &app,
        post(
            "/promiscuous/logout",
            Some(&cookie),
            &format!("csrf={token}"),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert!(under_mount(reply.location()), "{}", reply.location());
}

/// Whether `url` is the mount point `/promiscuous` or below it.
fn under_mount(url: &str) -> bool {
    url == "/promiscuous" || url.starts_with("/promiscuous/")
}

#[tokio::test]
async fn the_overview_answers_where_links_and_redirects_point_when_nested() {
    let db = store().await;
    let app = nested(with_token(&db));
    let reply = send(&app, post("/promiscuous/login", None, "token=s3cret")).await;
    let cookie = reply.session();
    let after_login = send(&app, get(reply.location(), Some(&cookie))).await;
    assert_eq!(after_login.status, StatusCode::OK, "{}", reply.location());
    let page = send(&app, get("/promiscuous/workers", Some(&cookie))).await;
    let overview = urls(&page.body)
        .into_iter()
        .find(|url| {
            !["assets", "dead-letters", "waiting", "workers"]
                .iter()
                .any(|p| url.contains(p))
        })
        .expect("the overview's link")
        .to_string();
    let reply = send(&app, get(&overview, Some(&cookie))).await;
    assert_eq!(reply.status, StatusCode::OK, "{overview}");
    assert!(reply.body.contains(r#"data-page="overview""#), "{overview}");
}

#[tokio::test]
async fn the_nested_overview_keeps_the_mount_point_in_its_links() {
    let db = store().await;
    let app = nested(read_only(&db));
    let page = send(&app, get("/promiscuous", None)).await;
    assert_eq!(page.status, StatusCode::OK);
    let urls = urls(&page.body);
    assert!(urls.len() >= 7, "{urls:?}");
    for url in urls {
        assert!(under_mount(url), "{url}");
    }
}

#[tokio::test]
async fn mount_redirects_the_trailing_slash_to_the_overview() {
    let db = store().await;
    let app = Router::new().merge(dashboard(&db).mount("/promiscuous/"));
    let reply = send(&app, get("/promiscuous/", None)).await;
    assert!(reply.status.is_redirection(), "{}", reply.status);
    assert_eq!(reply.location(), "/promiscuous");
    let page = send(&app, get("/promiscuous", None)).await;
    assert_eq!(page.status, StatusCode::OK);
    for path in ["/promiscuous", "/promiscuous/dead-letters"] {
        let page = send(&app, get(path, None)).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        for url in urls(&page.body) {
            assert!(under_mount(url), "{path}: {url}");
        }
    }
    // At the root: the plain router.
    let app = dashboard(&db).mount("/");
    assert_eq!(send(&app, get("/", None)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_nested_overview_is_at_the_mount_point() {
    let db = store().await;
    let app = nested(read_only(&db));
    let page = send(&app, get("/promiscuous", None)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains(r#"data-page="overview""#),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn an_action_on_an_app_named_dead_letters_goes_back_to_the_page() {
    let db = store().await;
    let id = undecodable(&db).await;
    let app = nested(
        Dashboard::new()
            .dead_letters("dead-letters", SeaOrmApplier::new(db.clone()))
            .token(TOKEN)
            .router(),
    );
    for path in [
        format!("/promiscuous/dead-letters/dead-letters/{id}/replay"),
        "/promiscuous/dead-letters/dead-letters/replay-all".to_string(),
    ] {
        let reply = send(&app, post_bearer(&path, TOKEN)).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{path}");
        assert!(
            reply
                .location()
                .starts_with("/promiscuous/dead-letters?done="),
            "{path}: {}",
            reply.location()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The reports on the pages

#[tokio::test]
async fn the_waiting_page_shows_what_each_message_waits_for() {
    let db = store().await;
    let app = read_only(&db);
    let name = "waiting-app";
    board::local().insert(report(name, "waiting-host", None));
    let page = send(&app, get("/waiting", None)).await.body;
    assert!(page.contains("<code>msg-waiting-app</code>"), "{page}");
    assert!(
        page.contains("<code>crowdtap/user/waiting-app</code> at version 41"),
        "{page}"
    );
    assert!(page.contains("(processed here: 40)"), "{page}");
    assert!(page.contains("waiting-app · waiting-host pid"), "{page}");
    assert!(page.contains("this process"), "the local board: {page}");
}

#[tokio::test]
async fn the_workers_page_shows_each_worker() {
    let db = store().await;
    let app = read_only(&db);
    let report = report("workers-app", "workers-host", None);
    let id = report.id.clone();
    board::local().insert(report);
    let page = send(&app, get("/workers", None)).await.body;
    let start = page
        .find(&format!(r#"data-worker="{id}""#))
        .expect("the worker's row");
    let row = &page[start..start + page[start..].find("</tr>").expect("the row's end")];
    assert!(row.contains("<td>workers-host</td>"), "{row}");
    assert!(
        row.contains(&format!("<td>{}</td>", std::process::id())),
        "{row}"
    );
    assert!(row.contains("4 runners, prefetch 32"), "{row}");
    assert!(row.contains("consuming"), "{row}");
}

#[tokio::test]
async fn the_overview_shows_each_app() {
    let db = store().await;
    undecodable(&db).await;
    let app = read_only(&db);
    board::local().insert(report("overview-app", "overview-host", None));
    let page = send(&app, get("/", None)).await.body;
    let start = page
        .find(r#"data-app="overview-app""#)
        .expect("the app's row");
    let row = &page[start..start + page[start..].find("</tr>").expect("the row's end")];
    assert!(row.contains("1 / 1"), "connected / workers: {row}");
    assert!(row.contains("1.50 s"), "its lag: {row}");
    assert!(row.contains(">5<"), "3 queued + 2 in flight: {row}");
    // The app with a store, and its dead letter.
    let start = page.find(r#"data-app="members""#).expect("the store's row");
    let row = &page[start..start + page[start..].find("</tr>").expect("the row's end")];
    assert!(
        row.contains(r#"<a href="/dead-letters" class="bad">1</a>"#),
        "{row}"
    );
}

// ---------------------------------------------------------------------------------------------
// What a page never shows, and escaping

#[tokio::test]
async fn no_page_shows_the_token() {
    let db = store().await;
    undecodable(&db).await;
    board::local().insert(report(
        "secret-app",
        "secret-host",
        Some("connecting to amqp://user:***@host:5672/: connection refused"),
    ));
    let app = with_token(&db);
    let cookie = login(&app, "").await;
    let workers = send(&app, get("/workers", Some(&cookie))).await.body;
    assert!(
        workers.contains("amqp://user:***@host:5672/: connection refused"),
        "the redacted error: {workers}"
    );
    let bearer = |path: &str| {
        Request::get(path)
            .header(header::AUTHORIZATION, "Bearer s3cret")
            .body(Body::empty())
            .unwrap()
    };
    for path in ["/", "/dead-letters", "/waiting", "/workers", "/metrics"] {
        for request in [get(path, None), get(path, Some(&cookie)), bearer(path)] {
            let reply = send(&app, request).await;
            assert_eq!(reply.status, StatusCode::OK, "{path}");
            assert!(!reply.body.contains(TOKEN), "{path}: {}", reply.body);
            for value in reply.headers.values() {
                assert!(!value.to_str().unwrap_or("").contains(TOKEN), "{path}");
            }
        }
    }
    let response = respond(&app, get("/events?page=dead-letters", Some(&cookie))).await;
    let mut body = response.into_body().into_data_stream();
    assert!(!frames(&mut body, 1).await.contains(TOKEN));
    // Nor the answers to a login, right or wrong.
    for form in ["token=s3cret", "token=wrong"] {
        let reply = send(&app, post("/login", None, form)).await;
        assert!(!reply.body.contains(TOKEN), "{form}");
        for value in reply.headers.values() {
            assert!(!value.to_str().unwrap_or("").contains(TOKEN), "{form}");
        }
    }
}

#[tokio::test]
async fn errors_and_payloads_are_escaped() {
    let db = store().await;
    let id = letter(
        &db,
        "crowdtap",
        b"<img src=x onerror=alert(2)>",
        "<script>alert(1)</script>",
    )
    .await;
    board::local().insert(report(
        "escape-app",
        "<b>escape-host</b>",
        Some("<script>alert(3)</script>"),
    ));
    let app = read_only(&db);
    let page = send(&app, get("/dead-letters", None)).await.body;
    assert!(page.contains(&format!(r#"data-dead-letter="{id}""#)));
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );
    assert!(!page.contains("<script>alert(1)"), "{page}");
    assert!(
        page.contains("&lt;img src=x onerror=alert(2)&gt;"),
        "{page}"
    );
    assert!(!page.contains("<img"), "{page}");
    let workers = send(&app, get("/workers", None)).await.body;
    assert!(
        workers.contains("&lt;script&gt;alert(3)&lt;/script&gt;"),
        "{workers}"
    );
    assert!(
        workers.contains("&lt;b&gt;escape-host&lt;/b&gt;"),
        "{workers}"
    );
    assert!(!workers.contains("<script>alert(3)"), "{workers}");
    assert!(!workers.contains("<b>escape-host"), "{workers}");
    // In the live updates too.
    let response = respond(&app, get("/events?page=dead-letters", None)).await;
    let mut body = response.into_body().into_data_stream();
    let first = frames(&mut body, 1).await;
    assert!(first.contains("&lt;script&gt;alert(1)"), "{first}");
    assert!(!first.contains("<script>alert(1)"), "{first}");
}

#[tokio::test]
async fn the_title_is_escaped_and_shown() {
    let db = store().await;
    let app = dashboard(&db).title("<i>shop</i>").router();
    let page = send(&app, get("/", None)).await.body;
    assert!(
        page.contains("Overview · &lt;i&gt;shop&lt;/i&gt;"),
        "{page}"
    );
    assert!(!page.contains("<i>shop"), "{page}");
}

#[tokio::test]
async fn an_empty_token_is_read_only() {
    let db = store().await;
    let id = undecodable(&db).await;
    let app = dashboard(&db).token("").router();
    let reply = send(
        &app,
        post_bearer(&format!("/dead-letters/{APP}/{id}/drop"), ""),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let login = send(&app, post("/login", None, "token=")).await;
    assert_eq!(login.status, StatusCode::FORBIDDEN);
    assert!(row(&db, id).await.is_some());
}
