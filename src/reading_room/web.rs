//! The reading room's web side: the page (HTML, CSS and JS compiled into the binary), the JSON
//! API behind it (`/api/predictions`, `/api/appliances`, `/api/events`, `/api/key-images/<id>`)
//! and the live stream (`/api/stream`, Server-Sent Events).
//!
//! Security: every response carries a Content-Security-Policy that allows only this origin's
//! script, style and images (the page has no inline script or style, and sets untrusted text
//! only as text). Without a token the server answers only requests addressed to a loopback
//! name (no DNS rebinding of `127.0.0.1` by a web page elsewhere); with one, every request must
//! carry it (`Authorization: Bearer`, or the cookie `/?token=` sets).

use super::store::{ApplianceRow, Filter, Logged, PredictionRow, Store};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// No inline script or style, nothing from elsewhere, no framing, no form posts.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const COOKIE: &str = "ismf_reading_room";

/// What changed (the SSE event name is the variant).
#[derive(Clone, Debug)]
pub enum Update {
    Prediction(PredictionRow),
    Appliance(ApplianceView),
    Event(Logged),
    Invalid { total: u64, latest: Logged },
    Broker(BrokerView),
}

/// An update as the live stream sends it: serialized once when it happens, however many pages
/// are open.
#[derive(Clone, Debug)]
pub struct Live {
    name: &'static str,
    data: Arc<str>,
}

impl From<Update> for Live {
    fn from(update: Update) -> Live {
        let (name, data) = match update {
            Update::Prediction(row) => ("prediction", serde_json::to_string(&row)),
            Update::Appliance(view) => ("appliance", serde_json::to_string(&view)),
            Update::Event(logged) => ("event", serde_json::to_string(&logged)),
            Update::Invalid { total, latest } => (
                "invalid",
                serde_json::to_string(&json!({"total": total, "latest": latest})),
            ),
            Update::Broker(view) => ("broker", serde_json::to_string(&view)),
        };
        Live {
            name,
            data: data.unwrap_or_default().into(),
        }
    }
}

/// The reading room's own link to the broker, shown on the page.
#[derive(Clone, Debug, Default, Serialize)]
pub struct BrokerView {
    pub url: String,
    pub connected: bool,
    pub last_error: Option<String>,
}

/// An appliance for the panel and for dashboards: the figures read out of its last status.
#[derive(Clone, Debug, Serialize)]
pub struct ApplianceView {
    pub appliance_id: String,
    /// The appliance says it is online (its last status), whatever its heartbeat's age.
    pub online: bool,
    /// Online, but no status for longer than `stale_after_s` (the page recomputes it as time
    /// passes).
    pub stale: bool,
    pub stale_after_s: f64,
    pub reason: String,
    /// When its last status was made (seconds since the Unix epoch).
    pub heartbeat_at: f64,
    pub software_version: Option<String>,
    pub model: Option<String>,
    pub uptime_s: Option<u64>,
    pub outbox: Option<u64>,
    pub studies_waiting: Option<u64>,
    /// From a study's last file to the broker's acknowledgement of its prediction.
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    pub last_error: Option<String>,
}

impl ApplianceView {
    pub fn of(row: &ApplianceRow, now: f64, stale_after: Duration) -> ApplianceView {
        let s = &row.status;
        let made = s["created_at"]
            .as_str()
            .and_then(crate::publish::message::unix_seconds_of);
        // A live status is dated by its arrival (clocks differ); a retained one by its making.
        let heartbeat_at = match (row.retained, made) {
            (true, Some(made)) => made.min(row.received_at),
            _ => row.received_at,
        };
        let online = s["state"] == "online";
        let text = |v: &Value| v.as_str().map(str::to_string);
        let latency = &s["recent_studies"]["last_file_to_puback_ms"];
        ApplianceView {
            appliance_id: row.appliance_id.clone(),
            online,
            stale: online && now - heartbeat_at > stale_after.as_secs_f64(),
            stale_after_s: stale_after.as_secs_f64(),
            reason: s["reason"].as_str().unwrap_or("").to_string(),
            heartbeat_at,
            software_version: text(&s["software_version"]),
            model: s["model"]["name"]
                .as_str()
                .map(|name| format!("{name} {}", s["model"]["version"].as_str().unwrap_or(""))),
            uptime_s: s["uptime_s"].as_u64(),
            outbox: s["queues"]["outbox"].as_u64(),
            studies_waiting: s["queues"]["studies_waiting"].as_u64(),
            latency_p50_ms: latency["p50"].as_f64(),
            latency_p95_ms: latency["p95"].as_f64(),
            last_error: text(&s["last_error"]),
        }
    }
}

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub updates: broadcast::Sender<Live>,
    pub broker: Arc<Mutex<BrokerView>>,
    pub token: Option<Arc<str>>,
    pub stale_after: Duration,
    /// Cookies are marked Secure when the page is served over TLS.
    pub tls: bool,
}

fn now() -> f64 {
    crate::publish::message::unix_seconds()
}

/// The router with its security layers.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route(
            "/app.js",
            get(|| asset(APP_JS, "text/javascript; charset=utf-8")),
        )
        .route(
            "/app.css",
            get(|| asset(APP_CSS, "text/css; charset=utf-8")),
        )
        .route("/api/predictions", get(predictions))
        .route("/api/predictions/:id", get(prediction))
        .route("/api/key-images/:id", get(key_image))
        .route("/api/appliances", get(appliances))
        .route("/api/events", get(events))
        .route("/api/stream", get(stream))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

async fn asset(body: &'static str, content_type: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// Comparison whose time does not depend on where the strings differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn presented_token(headers: &HeaderMap) -> Option<String> {
    if let Some(bearer) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(bearer.trim().to_string());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
}

/// Whether the Host header names this machine's loopback.
fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    };
    matches!(name, "localhost" | "127.0.0.1" | "[::1]")
}

fn security_headers(response: &mut Response) {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // No other site may embed what this one serves (an image or a stream as an oracle).
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
}

/// A request another site's page made (the browser says so): never answered.
fn cross_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "cross-site")
}

async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let top_level_visit = request.uri().path() == "/";
    let mut response = match &state.token {
        _ if cross_site(request.headers()) && !top_level_visit => (
            StatusCode::FORBIDDEN,
            "requests from other sites' pages are not answered\n",
        )
            .into_response(),
        None if !loopback_host(request.headers()) => (
            StatusCode::FORBIDDEN,
            "this reading room answers only on its loopback address (start it with --token-file \
             to serve other machines)\n",
        )
            .into_response(),
        None => next.run(request).await,
        Some(token) => {
            let query_token = request.uri().query().and_then(|q| {
                q.split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .find(|(k, _)| *k == "token")
                    .map(|(_, v)| v.to_string())
            });
            if let Some(offered) = query_token.filter(|_| request.uri().path() == "/") {
                if same(offered.as_bytes(), token.as_bytes()) {
                    // The token becomes a cookie (the live stream cannot send a header) and
                    // leaves the address bar. Lax, not Strict: a link to /?token= from
                    // elsewhere (mail, wiki) must work, and every route only reads.
                    let secure = if state.tls { "; Secure" } else { "" };
                    let cookie =
                        format!("{COOKIE}={offered}; Path=/; HttpOnly; SameSite=Lax{secure}");
                    let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
                    if let Ok(v) = HeaderValue::from_str(&cookie) {
                        r.headers_mut().insert(header::SET_COOKIE, v);
                    }
                    r
                } else {
                    (StatusCode::UNAUTHORIZED, "wrong access token\n").into_response()
                }
            } else if presented_token(request.headers())
                .is_some_and(|t| same(t.as_bytes(), token.as_bytes()))
            {
                next.run(request).await
            } else {
                (
                    StatusCode::UNAUTHORIZED,
                    "this reading room needs its access token: open /?token=<token> once, or \
                     send Authorization: Bearer <token>\n",
                )
                    .into_response()
            }
        }
    };
    security_headers(&mut response);
    response
}

async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX_HTML,
    )
        .into_response()
}

fn store_failure(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "reading-room store");
    (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response()
}

async fn predictions(State(state): State<AppState>, Query(filter): Query<Filter>) -> Response {
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || store.predictions(&filter)).await {
        Ok(Ok(page)) => Json(json!({
            "notice": crate::publish::message::NOTICE,
            "total": page.total,
            "next": page.next,
            "predictions": page.rows,
        }))
        .into_response(),
        Ok(Err(e)) => store_failure(e),
        Err(e) => store_failure(e),
    }
}

async fn prediction(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match state.store.prediction(&id) {
        Ok(Some(row)) => Json(row).into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "no such prediction\n").into_response(),
        Err(e) => store_failure(e),
    }
}

async fn key_image(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match state.store.key_image(&id) {
        Ok(Some(png)) => (
            [
                (header::CONTENT_TYPE, "image/png"),
                (header::CACHE_CONTROL, "private, max-age=86400"),
            ],
            png,
        )
            .into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "no key images for this prediction\n").into_response(),
        Err(e) => store_failure(e),
    }
}

async fn appliances(State(state): State<AppState>) -> Response {
    let now = now();
    match state.store.appliances() {
        Ok(rows) => {
            let views: Vec<ApplianceView> = rows
                .iter()
                .map(|r| ApplianceView::of(r, now, state.stale_after))
                .collect();
            let broker = state.broker.lock().map(|b| b.clone()).unwrap_or_default();
            Json(json!({
                "notice": crate::publish::message::NOTICE,
                "now": now,
                "broker": broker,
                "appliances": views,
            }))
            .into_response()
        }
        Err(e) => store_failure(e),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    limit: Option<usize>,
}

async fn events(State(state): State<AppState>, Query(q): Query<EventsQuery>) -> Response {
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    match (state.store.events(limit), state.store.invalid(20)) {
        (Ok(events), Ok((total, recent))) => Json(json!({
            "notice": crate::publish::message::NOTICE,
            "events": events,
            "invalid": {"total": total, "recent": recent},
        }))
        .into_response(),
        (Err(e), _) | (_, Err(e)) => store_failure(e),
    }
}

async fn stream(State(state): State<AppState>) -> Response {
    use futures_util::stream;
    let rx = state.updates.subscribe();
    let events = stream::unfold(rx, |mut rx| async move {
        let event = match rx.recv().await {
            Ok(live) => SseEvent::default().event(live.name).data(&*live.data),
            // This client fell behind: it reloads everything.
            Err(broadcast::error::RecvError::Lagged(_)) => {
                SseEvent::default().event("resync").data("{}")
            }
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok::<_, std::convert::Infallible>(event), rx))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_hosts_and_the_page_have_no_inline_script() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; ismf_reading_room=s3cret"),
        );
        assert_eq!(presented_token(&h).as_deref(), Some("s3cret"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer t0ken"),
        );
        assert_eq!(presented_token(&h).as_deref(), Some("t0ken"));
        assert!(same(b"abc", b"abc") && !same(b"abc", b"abd") && !same(b"abc", b"ab"));
        for (host, ok) in [
            ("127.0.0.1:8080", true),
            ("localhost:8080", true),
            ("[::1]:8080", true),
            ("evil.example:8080", false),
            ("127.0.0.1.evil.example", false),
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, HeaderValue::from_str(host).expect("host"));
            assert_eq!(loopback_host(&h), ok, "{host}");
        }
        // The CSP forbids inline script and style: the page must not need them.
        let lower = INDEX_HTML.to_lowercase();
        let handler_attribute = lower.match_indices(" on").any(|(i, _)| {
            let rest = &lower[i + 3..];
            let name_len = rest.chars().take_while(|c| c.is_ascii_alphabetic()).count();
            name_len > 0 && rest[name_len..].starts_with('=')
        });
        assert!(!lower.contains("<script>") && !lower.contains(" style=") && !handler_attribute);
        assert!(!APP_JS.contains("innerHTML") && !APP_JS.contains("insertAdjacentHTML"));
        assert!(INDEX_HTML.matches("NOT FOR DIAGNOSTIC USE").count() >= 3);
    }
}
