//! HTTP/1.1 pipelining (RFC 9112 §9.3.2) on raw sockets: requests written at once, before any
//! answer, are each answered, in the order they were sent, on the same connection. Proxied
//! requests, a request with a body and requests the proxy answers itself (a preflight) mix in
//! one pipeline, and neither the head deadline nor the held flushes of `src/guard/mod.rs` get in
//! the way of requests that are already buffered.

mod common;

use common::{read_raw_until, Backend, Proxy};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const ORIGIN: &str = "https://app.example.com";

fn config(backend: &Backend, server: &str) -> String {
    format!(
        r#"
listen: LISTEN
server: {{{server}}}
upstreams:
  b: {{servers: ["{}"]}}
cors_policies:
  app: {{allow_origins: ["{ORIGIN}"], allow_methods: [GET, PUT]}}
routes:
  - {{name: api, path: /, upstream: b, cors: app, jsonp: {{without_referer: allow}}}}
"#,
        backend.addr
    )
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: api.example.com\r\nOrigin: {ORIGIN}\r\n\r\n")
}

/// The backend's answer to a plain GET names the path it got.
fn answer_for(path: &str) -> String {
    format!("\"path\":\"{path}\"")
}

/// Writes `requests` in one write and reads until the last of `markers` (one for each answer,
/// the last one unique) has arrived; returns the bytes and asserts that each marker comes after
/// the one before, and that there are as many status lines as markers.
async fn pipeline(proxy: &Proxy, requests: &[String], markers: &[String]) -> String {
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(requests.concat().as_bytes()).await.unwrap();
    let mut got = Vec::new();
    read_raw_until(&mut s, &mut got, markers.last().unwrap().as_bytes()).await;
    let text = String::from_utf8_lossy(&got).into_owned();
    let mut from = 0;
    for m in markers {
        let at = text[from..]
            .find(m.as_str())
            .unwrap_or_else(|| panic!("{m} missing or out of order in {text}"));
        from += at + m.len();
    }
    assert_eq!(
        text.matches("HTTP/1.1 ").count(),
        markers.len(),
        "one status line per request: {text}"
    );
    text
}

#[tokio::test]
async fn two_requests_written_at_once_get_two_answers_in_order() {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config(&backend, "")).await;
    pipeline(
        &proxy,
        &[get("/first"), get("/second")],
        &[answer_for("/first"), answer_for("/second")],
    )
    .await;
    let paths: Vec<_> = backend.requests().into_iter().map(|s| s.path).collect();
    assert_eq!(paths, ["/first", "/second"]);
}

#[tokio::test]
async fn ten_requests_written_at_once_get_ten_answers_in_order() {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config(&backend, "")).await;
    let paths: Vec<String> = (0..10).map(|i| format!("/r{i}")).collect();
    let requests: Vec<String> = paths.iter().map(|p| get(p)).collect();
    let markers: Vec<String> = paths.iter().map(|p| answer_for(p)).collect();
    let text = pipeline(&proxy, &requests, &markers).await;
    assert_eq!(text.matches("HTTP/1.1 200").count(), 10, "{text}");
    let seen: Vec<_> = backend.requests().into_iter().map(|s| s.path).collect();
    assert_eq!(seen, paths);
}

#[tokio::test]
async fn a_post_with_a_body_in_a_pipeline_is_read_exactly_and_the_requests_after_it_answered() {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config(&backend, "")).await;
    let post = format!(
        "POST /read-body HTTP/1.1\r\nHost: api.example.com\r\nOrigin: {ORIGIN}\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world"
    );
    pipeline(
        &proxy,
        &[get("/before"), post, get("/after"), get("/last")],
        &[
            answer_for("/before"),
            "{\"read\":11}".into(),
            answer_for("/after"),
            answer_for("/last"),
        ],
    )
    .await;
    let seen: Vec<_> = backend
        .requests()
        .into_iter()
        .map(|s| format!("{} {}", s.method, s.path))
        .collect();
    assert_eq!(
        seen,
        ["GET /before", "POST /read-body", "GET /after", "GET /last"]
    );
}

#[tokio::test]
async fn a_preflight_in_a_pipeline_is_answered_by_the_proxy_in_its_turn() {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config(&backend, "")).await;
    let preflight = format!(
        "OPTIONS /put-here HTTP/1.1\r\nHost: api.example.com\r\nOrigin: {ORIGIN}\r\nAccess-Control-Request-Method: PUT\r\n\r\n"
    );
    let text = pipeline(
        &proxy,
        &[
            get("/a"),
            preflight.clone(),
            get("/b"),
            preflight,
            get("/c"),
        ],
        &[
            answer_for("/a"),
            "HTTP/1.1 204".into(),
            answer_for("/b"),
            "HTTP/1.1 204".into(),
            answer_for("/c"),
        ],
    )
    .await;
    assert_eq!(
        text.to_ascii_lowercase()
            .matches("\r\naccess-control-allow-methods: ")
            .count(),
        2,
        "{text}"
    );
    // The preflights never reached the backend.
    let seen: Vec<_> = backend.requests().into_iter().map(|s| s.path).collect();
    assert_eq!(seen, ["/a", "/b", "/c"]);
}

/// The second head is in the proxy's buffer while the first request waits on the backend for
/// longer than the header timeout: it is not a head that is late, and it is answered.
#[tokio::test]
async fn a_buffered_head_is_not_timed_while_the_request_before_it_is_served() {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config(&backend, "client_header_timeout: 300ms")).await;
    pipeline(
        &proxy,
        &[get("/slow?ms=900"), get("/next")],
        &["{\"waited_ms\":900}".into(), answer_for("/next")],
    )
    .await;
}

/// A chunked JSONP answer (whose sends `src/guard/mod.rs` coalesces) followed in the pipeline by
/// an event stream that waits on the backend: the first answer arrives whole, last chunk
/// included, while the second is still waiting; nothing of it is held back.
#[tokio::test]
async fn a_coalesced_chunked_answer_leaves_whole_before_the_next_pipelined_one_waits() {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config(&backend, "")).await;
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    let both = [get("/items?callback=cb"), get("/events/sse-gated?n=2")].concat();
    s.write_all(both.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    read_raw_until(&mut s, &mut got, b"data: event 1\n\n").await;
    let text = String::from_utf8_lossy(&got).into_owned();
    let jsonp_end = text.find("\r\n0\r\n\r\n").expect("the JSONP answer ended");
    let second = text
        .find("text/event-stream")
        .expect("the event stream began");
    assert!(text.contains("/**/cb("), "{text}");
    assert!(jsonp_end < second, "{text}");
    backend.release_event();
    read_raw_until(&mut s, &mut got, b"data: event 2\n\n").await;
}
