//! Comet through the real proxy: long polling with per-route read timeouts, and Server-Sent
//! Events streamed as they come, with CORS and heartbeats.

mod common;

use std::time::{Duration, Instant};

use common::{client, header, Backend, Proxy};

fn config(backend: &Backend) -> String {
    format!(
        r#"
listen: LISTEN
upstreams:
  b: {{servers: ["{addr}"], read_timeout: 500ms}}
cors_policies:
  app: {{allow_origins: [https://app.example.com], allow_credentials: true}}
routes:
  - {{name: poll, path: /poll/, upstream: b, cors: app, read_timeout: 10s}}
  - {{name: events, path: /events/, upstream: b, cors: app, read_timeout: 10s}}
  - {{name: beat, path: /beat/, upstream: b, cors: app, read_timeout: 30s, sse: {{heartbeat: 200ms}}}}
  - {{name: api, path: /, upstream: b, cors: app}}
"#,
        addr = backend.addr
    )
}

async fn setup() -> (Backend, Proxy) {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config(&backend)).await;
    (backend, proxy)
}

#[tokio::test]
async fn a_long_poll_is_held_past_the_default_timeout_and_answered_by_the_backend() {
    let (_backend, proxy) = setup().await;
    let r = client()
        .get(proxy.url("/poll/slow?ms=1500"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(r.text().await.unwrap(), r#"{"waited_ms":1500}"#);
    // The same wait on a route with the upstream's 500ms: the proxy's own 504, with CORS.
    let r = client()
        .get(proxy.url("/api/slow?ms=1500"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(header(&r, "access-control-allow-credentials"), Some("true"));
}

/// Reads the body stream until `want` has been seen (10 s at most), returning all bytes so far.
async fn read_until(
    stream: &mut (impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    got: &mut String,
    want: &str,
) {
    use futures_util::StreamExt;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !got.contains(want) {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, stream.next())
            .await
            .unwrap_or_else(|_| panic!("{want:?} did not arrive within 10 s; got {got:?}"))
            .unwrap_or_else(|| panic!("the stream ended before {want:?}; got {got:?}"))
            .unwrap();
        got.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

async fn event_source(proxy: &Proxy, path: &str) -> reqwest::Response {
    client()
        .get(proxy.url(path))
        .header("accept", "text/event-stream")
        .header("accept-encoding", "gzip, br")
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap()
}

async fn assert_streams_unbuffered(path: &str) {
    let (backend, proxy) = setup().await;
    let r = event_source(&proxy, path).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), Some("text/event-stream"));
    assert_eq!(
        header(&r, "content-encoding"),
        None,
        "an event stream must not be compressed"
    );
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(header(&r, "access-control-allow-credentials"), Some("true"));
    let mut stream = r.bytes_stream();
    let mut got = String::new();
    let t0 = Instant::now();
    // Event 1 must arrive while the backend is still holding event 2: nothing is buffered.
    read_until(&mut stream, &mut got, "data: event 1\n\n").await;
    println!("{path}: first event after {:?}", t0.elapsed());
    backend.release_event();
    let t1 = Instant::now();
    read_until(&mut stream, &mut got, "data: event 2\n\n").await;
    println!("{path}: event 2 {:?} after its release", t1.elapsed());
    use futures_util::StreamExt;
    assert!(
        stream.next().await.is_none(),
        "the stream should end after the backend's last event"
    );
}

#[tokio::test]
async fn events_reach_the_client_as_they_are_sent() {
    assert_streams_unbuffered("/events/sse-gated").await;
}

#[tokio::test]
async fn events_reach_the_client_as_they_are_sent_on_a_heartbeat_route() {
    assert_streams_unbuffered("/beat/sse-gated").await;
}

#[tokio::test]
async fn heartbeats_are_sent_while_the_upstream_is_silent() {
    let (backend, proxy) = setup().await;
    let r = event_source(&proxy, "/beat/sse-gated").await;
    let mut stream = r.bytes_stream();
    let mut got = String::new();
    read_until(&mut stream, &mut got, "data: event 1\n\n").await;
    // The backend holds event 2; the proxy must fill the silence with comment lines.
    read_until(&mut stream, &mut got, "data: event 1\n\n:\n\n").await;
    backend.release_event();
    read_until(&mut stream, &mut got, "data: event 2\n\n").await;
    // Heartbeats are whole comment lines between events, never inside one.
    let events: Vec<&str> = got
        .split("\n\n")
        .filter(|e| !e.is_empty() && *e != ":")
        .collect();
    assert_eq!(events, ["id: 1\ndata: event 1", "id: 2\ndata: event 2"]);
}

#[tokio::test]
async fn a_heartbeat_route_asks_for_an_uncompressed_stream() {
    // The client accepts gzip; the backend would compress if asked. crossgate does not ask:
    // heartbeats go between events, which compressed bytes do not show.
    let (backend, proxy) = setup().await;
    let r = event_source(&proxy, "/beat/sse-gzip").await;
    assert_eq!(header(&r, "content-encoding"), None);
    let body = r.text().await.unwrap();
    let events: Vec<&str> = body
        .split("\n\n")
        .filter(|e| !e.is_empty() && *e != ":")
        .collect();
    assert_eq!(events, ["data: zipped 1", "data: zipped 2"], "{body:?}");
    let seen = backend
        .requests()
        .into_iter()
        .find(|s| s.path == "/beat/sse-gzip")
        .unwrap();
    assert_eq!(seen.headers.get("accept-encoding"), None);
}

#[tokio::test]
async fn a_stream_compressed_anyway_is_relayed_whole_without_heartbeats() {
    use std::io::Read;
    let (_backend, proxy) = setup().await;
    // The backend compresses whatever it is asked, and pauses 600 ms mid-stream (three
    // heartbeat intervals): a heartbeat put in there would break the gzip stream.
    let r = event_source(&proxy, "/beat/sse-gzip?always").await;
    assert_eq!(header(&r, "content-encoding"), Some("gzip"));
    let zipped = r.bytes().await.unwrap();
    let mut plain = String::new();
    flate2::read::GzDecoder::new(&zipped[..])
        .read_to_string(&mut plain)
        .expect("the gzip stream arrived whole");
    assert_eq!(plain, "data: zipped 1\n\ndata: zipped 2\n\n");
}

#[tokio::test]
async fn a_stream_outlives_the_upstream_default_read_timeout_on_its_route() {
    let (_backend, proxy) = setup().await;
    // The backend waits 1.5 s between events; the upstream's read_timeout is 500ms, the
    // route's 10 s.
    for path in ["/events/sse-paced?gap=1500", "/beat/sse-paced?gap=1500"] {
        let body = event_source(&proxy, path).await.text().await.unwrap();
        assert!(
            body.contains("data: paced 1\n\n") && body.contains("data: paced 2\n\n"),
            "{path}: {body:?}"
        );
    }
}

#[tokio::test]
async fn a_heartbeat_route_still_answers_errors_with_cors() {
    let backend = Backend::start("b").await;
    let yaml =
        config(&backend).replace(&backend.addr.to_string(), &common::dead_addr().to_string());
    let proxy = Proxy::start(&yaml).await;
    let r = event_source(&proxy, "/beat/sse-gated").await;
    assert_eq!(r.status(), 502);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://app.example.com")
    );
}
