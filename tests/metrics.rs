//! The admin listener after real traffic of every kind: /metrics counters and gauges,
//! /healthz and /readyz.

mod common;

use std::time::Duration;

use common::{client, dead_addr, Backend, Proxy};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// A backend that reads the request and closes the connection without answering.
async fn hang_up_backend() -> std::net::SocketAddr {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
        }
    });
    addr
}

fn config(backend: &Backend) -> String {
    format!(
        r#"
listen: LISTEN
admin: {{listen: "ADMIN"}}
upstreams:
  b:
    servers: ["{b}"]
    read_timeout: 500ms
    health_check: {{path: /health, interval: 50ms}}
  dead: {{servers: ["{dead}"]}}
  hangup: {{servers: ["HANGUP"]}}
cors_policies:
  app: {{allow_origins: [https://app.example.com], allow_methods: [GET, PUT]}}
routes:
  - {{name: jsonp, path: /jsonp/, upstream: b, cors: app, jsonp: {{without_referer: allow}}}}
  - {{name: ws, path: /ws/, upstream: b, cors: app, websocket: {{}}}}
  - {{name: events, path: /events/, upstream: b, cors: app, read_timeout: 10s}}
  - {{name: dead, path: /dead/, upstream: dead, cors: app}}
  - {{name: hangup, path: /hangup/, upstream: hangup, cors: app}}
  - {{name: api, path: /, upstream: b, cors: app}}
beacons:
  - {{name: pv, path: /b/pv}}
"#,
        b = backend.addr,
        dead = dead_addr()
    )
}

async fn scrape(proxy: &Proxy) -> String {
    let r = client()
        .get(format!("http://{}/metrics", proxy.admin.unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    r.text().await.unwrap()
}

/// The value of the sample `name{labels}` (labels in the order Prometheus prints them).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Scrapes until `series` has `want` (5 s at most): gauges change when a connection ends.
async fn wait_for_sample(proxy: &Proxy, series: &str, want: f64) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let text = scrape(proxy).await;
        if sample(&text, series) == Some(want) {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{series} never became {want}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn metrics_count_every_kind_of_traffic() {
    let backend = Backend::start("b").await;
    let hangup = hang_up_backend().await;
    let proxy = Proxy::start(&config(&backend).replace("HANGUP", &hangup.to_string())).await;
    let origin = |o: &'static str| move |r: reqwest::RequestBuilder| r.header("origin", o);
    let app = origin("https://app.example.com");
    let evil = origin("https://evil.example");
    let get = |path: &str| client().get(proxy.url(path));

    app(get("/api/x")).send().await.unwrap();
    app(get("/api/status/503")).send().await.unwrap();
    evil(get("/api/x")).send().await.unwrap();
    get("/api/x").send().await.unwrap();
    for o in ["https://app.example.com", "https://evil.example"] {
        client()
            .request(reqwest::Method::OPTIONS, proxy.url("/api/x"))
            .header("origin", o)
            .header("access-control-request-method", "PUT")
            .send()
            .await
            .unwrap();
    }
    get("/jsonp/x?callback=cb").send().await.unwrap();
    get("/jsonp/x?callback=alert(1)").send().await.unwrap();
    get("/jsonp/html?callback=cb").send().await.unwrap();
    get("/b/pv?x=1").send().await.unwrap();
    get("/b/pv?x=2").send().await.unwrap();
    app(get("/dead/x")).send().await.unwrap();
    // POST: not retried, so the hang-up reaches the client as a 502 and is counted once.
    app(client().post(proxy.url("/hangup/x")))
        .body("{}")
        .send()
        .await
        .unwrap();
    app(get("/api/slow?ms=3000")).send().await.unwrap();
    get("/nowhere-but-api-catches-all").send().await.unwrap();

    // An open WebSocket and an open event stream show in the gauges.
    let mut req = format!("ws://{}/ws/echo", proxy.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("origin", "https://app.example.com".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.send(Message::text("x")).await.unwrap();
    ws.next().await.unwrap().unwrap();
    let sse = app(get("/events/sse-gated"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    let mut events = sse.bytes_stream();
    events.next().await.unwrap().unwrap();

    let text = wait_for_sample(
        &proxy,
        r#"crossgate_sse_streams_active{route="events"}"#,
        1.0,
    )
    .await;
    let expect = |series: &str, want: f64| {
        assert_eq!(sample(&text, series), Some(want), "{series} in\n{text}");
    };
    // 2xx: /api/x three times and the catch-all; 5xx: the backend's 503 and the proxy's 504.
    expect(
        r#"crossgate_requests_total{method="GET",route="api",status_class="2xx"}"#,
        4.0,
    );
    expect(
        r#"crossgate_requests_total{method="GET",route="api",status_class="5xx"}"#,
        2.0,
    );
    expect(
        r#"crossgate_requests_total{method="GET",route="dead",status_class="5xx"}"#,
        1.0,
    );
    expect(
        r#"crossgate_requests_total{method="OPTIONS",route="api",status_class="2xx"}"#,
        1.0,
    );
    expect(
        r#"crossgate_requests_total{method="OPTIONS",route="api",status_class="4xx"}"#,
        1.0,
    );
    expect(
        r#"crossgate_requests_total{method="GET",route="beacon",status_class="2xx"}"#,
        2.0,
    );
    expect(
        r#"crossgate_cors_decisions_total{decision="allowed",kind="actual",route="api"}"#,
        3.0,
    );
    expect(
        r#"crossgate_cors_decisions_total{decision="denied",kind="actual",route="api"}"#,
        1.0,
    );
    expect(
        r#"crossgate_cors_decisions_total{decision="no_origin",kind="actual",route="api"}"#,
        2.0,
    );
    expect(
        r#"crossgate_cors_decisions_total{decision="allowed",kind="preflight",route="api"}"#,
        1.0,
    );
    expect(
        r#"crossgate_cors_decisions_total{decision="denied",kind="preflight",route="api"}"#,
        1.0,
    );
    expect(
        r#"crossgate_jsonp_responses_total{result="wrapped",route="jsonp"}"#,
        1.0,
    );
    expect(
        r#"crossgate_jsonp_responses_total{result="rejected",route="jsonp"}"#,
        1.0,
    );
    expect(
        r#"crossgate_jsonp_responses_total{result="passthrough",route="jsonp"}"#,
        1.0,
    );
    expect(r#"crossgate_beacon_hits_total{beacon="pv"}"#, 2.0);
    expect(
        r#"crossgate_upstream_errors_total{kind="connect",upstream="dead"}"#,
        1.0,
    );
    expect(
        r#"crossgate_upstream_errors_total{kind="timeout",upstream="b"}"#,
        1.0,
    );
    expect(
        r#"crossgate_upstream_errors_total{kind="reset",upstream="hangup"}"#,
        1.0,
    );
    expect(r#"crossgate_websocket_connections_active{route="ws"}"#, 1.0);
    expect(r#"crossgate_websocket_connections_total{route="ws"}"#, 1.0);
    expect(
        &format!(
            r#"crossgate_upstream_server_healthy{{server="{}",upstream="b"}}"#,
            backend.addr
        ),
        1.0,
    );
    expect(r#"crossgate_config_reloads_total{result="success"}"#, 1.0);
    assert!(
        sample(
            &text,
            "crossgate_config_last_reload_success_timestamp_seconds"
        )
        .unwrap()
            > 1.7e9
    );
    assert!(
        sample(
            &text,
            r#"crossgate_request_duration_seconds_count{route="api"}"#
        )
        .unwrap()
            >= 5.0
    );
    assert!(
        sample(
            &text,
            r#"crossgate_upstream_duration_seconds_count{upstream="b"}"#
        )
        .unwrap()
            >= 4.0
    );
    // No label carries request data: no origin, path or callback anywhere.
    for leak in ["evil.example", "/api/x", "alert", "nowhere"] {
        assert!(!text.contains(leak), "{leak} leaked into a label:\n{text}");
    }

    // The gauges go down when the streams end.
    ws.close(None).await.unwrap();
    drop(events);
    backend.release_event();
    wait_for_sample(
        &proxy,
        r#"crossgate_websocket_connections_active{route="ws"}"#,
        0.0,
    )
    .await;
    wait_for_sample(
        &proxy,
        r#"crossgate_sse_streams_active{route="events"}"#,
        0.0,
    )
    .await;
}

#[tokio::test]
async fn readiness_is_the_replicas_own_and_upstream_health_has_its_own_endpoint() {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config(&backend).replace("HANGUP", &dead_addr().to_string())).await;
    let admin = proxy.admin.unwrap();
    let get = |path: &str| client().get(format!("http://{admin}{path}")).send();
    backend.wait_for(2, |s| s.path == "/health").await;
    let r = get("/healthz").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok\n");
    let r = get("/readyz").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ready\n");
    let r = get("/upstreams").await.unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(body.contains("b: up, 1 of 1 servers healthy\n"), "{body}");

    // The backend's only server fails its checks: the replica stays ready (pages get
    // crossgate's 502 with CORS, not a load balancer's error), /upstreams and the metrics say
    // which upstream is down.
    backend.set_health(503);
    let probes = backend
        .seen()
        .iter()
        .filter(|s| s.path == "/health")
        .count();
    backend.wait_for(probes + 2, |s| s.path == "/health").await;
    let r = get("/readyz").await.unwrap();
    assert_eq!(r.status(), 200);
    let r = get("/upstreams").await.unwrap();
    assert_eq!(r.status(), 503);
    let body = r.text().await.unwrap();
    assert!(body.contains("b: down, 0 of 1 servers healthy\n"), "{body}");
    let text = scrape(&proxy).await;
    assert_eq!(
        sample(
            &text,
            &format!(
                r#"crossgate_upstream_server_healthy{{server="{}",upstream="b"}}"#,
                backend.addr
            )
        ),
        Some(0.0)
    );

    backend.set_health(200);
    let probes = backend
        .seen()
        .iter()
        .filter(|s| s.path == "/health")
        .count();
    backend.wait_for(probes + 2, |s| s.path == "/health").await;
    let r = get("/upstreams").await.unwrap();
    assert_eq!(r.status(), 200);
    // The admin listener is not the proxy: its paths are its own.
    let r = client()
        .get(format!("http://{admin}/api/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn process_build_connection_and_in_flight_series_and_sessions_kept_out_of_latency() {
    use tokio::io::AsyncWriteExt;
    let backend = Backend::start("b").await;
    let hangup = hang_up_backend().await;
    let proxy = Proxy::start(&config(&backend).replace("HANGUP", &hangup.to_string())).await;
    let text = scrape(&proxy).await;
    let build = format!(
        r#"crossgate_build_info{{pingora="0.9.1",version="{}"}}"#,
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(sample(&text, &build), Some(1.0), "{text}");
    assert!(
        sample(&text, "process_cpu_seconds_total").is_some(),
        "{text}"
    );
    for series in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        assert!(
            sample(&text, series).is_some_and(|v| v > 0.0),
            "{series}:\n{text}"
        );
    }
    assert_eq!(sample(&text, "crossgate_requests_in_flight"), Some(0.0));
    let open = r#"crossgate_client_connections_open{protocol="http1"}"#;
    assert_eq!(sample(&text, open), Some(0.0), "{text}");
    assert_eq!(
        sample(&text, r#"crossgate_client_connections_open{protocol="h2"}"#),
        Some(0.0)
    );

    // A kept-alive client connection is counted while it is open.
    let mut conn = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    conn.write_all(b"GET /api/x HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    common::read_raw_until(&mut conn, &mut got, b"\r\n\r\n").await;
    wait_for_sample(&proxy, open, 1.0).await;
    drop(conn);
    wait_for_sample(&proxy, open, 0.0).await;

    // A request waiting on its upstream is in flight until it is answered.
    // (Within the upstream's 500 ms read_timeout.)
    let slow = tokio::spawn(client().get(proxy.url("/api/slow?ms=400")).send());
    wait_for_sample(&proxy, "crossgate_requests_in_flight", 1.0).await;
    assert_eq!(slow.await.unwrap().unwrap().status(), 200);
    wait_for_sample(&proxy, "crossgate_requests_in_flight", 0.0).await;

    // An event stream's length goes to the session histogram, not the route's latency.
    let sse = client()
        .get(proxy.url("/events/sse-gated"))
        .header("origin", "https://app.example.com")
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    let mut events = sse.bytes_stream();
    events.next().await.unwrap().unwrap();
    drop(events);
    backend.release_event();
    let text = wait_for_sample(
        &proxy,
        r#"crossgate_session_duration_seconds_count{route="events"}"#,
        1.0,
    )
    .await;
    assert_eq!(
        sample(
            &text,
            r#"crossgate_request_duration_seconds_count{route="events"}"#
        ),
        Some(0.0),
        "{text}"
    );

    // A WebSocket upgrade on a route without `websocket:`, from an allowed origin, is refused
    // but is no CORS denial.
    let mut req = format!("ws://{}/api/echo", proxy.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("origin", "https://app.example.com".parse().unwrap());
    let refused = tokio_tungstenite::connect_async(req).await;
    assert!(refused.is_err());
    let denied = r#"crossgate_cors_decisions_total{decision="denied",kind="actual",route="api"}"#;
    let text = wait_for_sample(
        &proxy,
        r#"crossgate_requests_total{method="GET",route="api",status_class="4xx"}"#,
        1.0,
    )
    .await;
    assert!(
        sample(&text, denied).map_or(true, |v| v == 0.0),
        "{denied} in\n{text}"
    );
}

#[tokio::test]
async fn body_bytes_are_counted_by_route_both_ways() {
    let backend = Backend::start("b").await;
    let hangup = hang_up_backend().await;
    let proxy = Proxy::start(&config(&backend).replace("HANGUP", &hangup.to_string())).await;
    let read = r#"crossgate_request_body_bytes_total{route="api"}"#;
    let sent = r#"crossgate_response_body_bytes_total{route="api"}"#;
    // From the start, at 0: the first bytes are an increase.
    let text = scrape(&proxy).await;
    assert_eq!(sample(&text, read), Some(0.0), "{text}");
    assert_eq!(sample(&text, sent), Some(0.0), "{text}");
    let r = client()
        .put(proxy.url("/api/items"))
        .body("0123456789")
        .send()
        .await
        .unwrap();
    let body = r.bytes().await.unwrap();
    assert!(!body.is_empty());
    let text = wait_for_sample(&proxy, read, 10.0).await;
    assert_eq!(sample(&text, sent), Some(body.len() as f64), "{text}");

    // A WebSocket's frames, both ways, when it ends.
    let mut req = format!("ws://{}/ws/echo", proxy.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("origin", "https://app.example.com".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.send(Message::text("hello")).await.unwrap();
    let echo = ws.next().await.unwrap().unwrap();
    assert_eq!(echo, Message::text("hello"));
    ws.close(None).await.unwrap();
    while ws.next().await.is_some() {}
    // Client frames are masked: 2 + 4 + 5 bytes for "hello", 2 + 4 for the close; the echo
    // comes back unmasked: 2 + 5.
    let text = wait_for_sample(
        &proxy,
        r#"crossgate_request_body_bytes_total{route="ws"}"#,
        11.0 + 6.0,
    )
    .await;
    let back = sample(&text, r#"crossgate_response_body_bytes_total{route="ws"}"#).unwrap();
    assert!(back >= 7.0, "{text}");
}
