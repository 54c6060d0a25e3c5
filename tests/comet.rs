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
