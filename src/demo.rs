//! The embedded demo "legacy" backend that `crossgate demo` puts behind the proxy: a few JSON
//! endpoints, some errors, a slow endpoint and an `OPTIONS` handler of its own, and no CORS
//! headers except on one endpoint that sends a careless `Access-Control-Allow-Origin: *`, to
//! show crossgate replacing it.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{Path, Query};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

fn users() -> Value {
    json!([
        {"id": 1, "name": "Ada Lovelace", "role": "admin"},
        {"id": 2, "name": "Grace Hopper", "role": "editor"},
        {"id": 3, "name": "Alan Turing", "role": "viewer"}
    ])
}

fn with_request_id(mut r: Response) -> Response {
    static ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let id = ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if let Ok(v) = HeaderValue::from_str(&format!("demo-{id}")) {
        r.headers_mut().insert("x-request-id", v);
    }
    r
}

async fn list_users() -> Response {
    with_request_id(Json(users()).into_response())
}

async fn get_user(Path(id): Path<u64>) -> Response {
    let found = users()
        .as_array()
        .and_then(|a| a.iter().find(|u| u["id"] == id).cloned());
    with_request_id(match found {
        Some(u) => Json(u).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such user", "id": id})),
        )
            .into_response(),
    })
}

async fn put_user(Path(id): Path<u64>, headers: HeaderMap, body: String) -> Response {
    let is_json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return with_request_id(
            (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Json(json!({"error": "send application/json"})),
            )
                .into_response(),
        );
    }
    match serde_json::from_str::<Value>(&body) {
        Ok(mut v) => {
            v["id"] = json!(id);
            v["updated"] = json!(true);
            with_request_id(Json(v).into_response())
        }
        Err(e) => with_request_id(
            (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": e.to_string()})),
            )
                .into_response(),
        ),
    }
}

async fn users_options() -> Response {
    // The legacy backend's own answer to a plain OPTIONS: crossgate forwards it untouched.
    ([("allow", "GET, PUT, OPTIONS")], "").into_response()
}

async fn fail() -> Response {
    with_request_id(
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": "the legacy backend failed"})),
        )
            .into_response(),
    )
}

#[derive(Deserialize)]
struct SlowQuery {
    ms: Option<u64>,
}

async fn slow(Query(q): Query<SlowQuery>) -> Response {
    let ms = q.ms.unwrap_or(1000).min(60_000);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    with_request_id(Json(json!({"waited_ms": ms})).into_response())
}

async fn careless_cors() -> Response {
    (
        [("access-control-allow-origin", "*")],
        Json(json!({"note": "this backend sends ACAO: * itself"})),
    )
        .into_response()
}

/// A clock as Server-Sent Events: one event a second.
async fn clock() -> Response {
    let stream = futures_util::stream::unfold(0u64, |n| async move {
        if n > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let event = format!("id: {n}\nevent: tick\ndata: {{\"tick\":{n},\"unix\":{now}}}\n\n");
        (n < 3600).then(|| (Ok::<_, std::io::Error>(event), n + 1))
    });
    (
        [
            ("content-type", "text/event-stream"),
            ("cache-control", "no-cache"),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
}

/// Echoes WebSocket messages.
async fn ws_echo(ws: axum::extract::ws::WebSocketUpgrade) -> Response {
    ws.on_upgrade(|mut socket| async move {
        while let Some(Ok(msg)) = socket.recv().await {
            let echo = matches!(
                msg,
                axum::extract::ws::Message::Text(_) | axum::extract::ws::Message::Binary(_)
            );
            if echo && socket.send(msg).await.is_err() {
                return;
            }
        }
    })
}

/// Where crossgate forwards beacon hits.
async fn collect(uri: axum::http::Uri, body: String) -> StatusCode {
    tracing::info!(target: "crossgate::demo", query = uri.query().unwrap_or(""), body_bytes = body.len(), "demo backend: beacon hit received");
    StatusCode::NO_CONTENT
}

/// The demo backend's routes.
pub fn router() -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/public/users", get(list_users))
        .route("/events/clock", get(clock))
        .route("/ws/echo", get(ws_echo))
        .route("/poll/wait", get(slow))
        .route("/collect", get(collect).post(collect))
        .route("/api/users", get(list_users).options(users_options))
        .route("/api/users/{id}", get(get_user).put(put_user))
        .route("/api/error", get(fail))
        .route("/api/slow", get(slow))
        .route("/api/careless-cors", get(careless_cors))
}

/// Binds `addr` (so that a busy port is reported at once) and serves the demo backend on a
/// thread of its own.
pub fn spawn(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    std::thread::Builder::new()
        .name("demo-backend".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime for the demo backend");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                if let Err(e) = axum::serve(listener, router()).await {
                    tracing::error!(error = %e, "demo backend stopped");
                }
            });
        })?;
    Ok(local)
}
