//! Upstream groups through the real proxy: round-robin, connect failures retried on the next
//! server, and the active health check taking a failing server out and back in.

mod common;

use std::collections::HashMap;

use common::{client, dead_addr, header, Backend, Proxy};

async fn backends_hit(proxy: &Proxy, n: usize) -> HashMap<String, usize> {
    let mut hits = HashMap::new();
    for _ in 0..n {
        let r = client().get(proxy.url("/api/x")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        *hits
            .entry(header(&r, "x-backend").unwrap().to_owned())
            .or_default() += 1;
    }
    hits
}

#[tokio::test]
async fn requests_are_spread_round_robin() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let yaml = format!(
        "listen: LISTEN\nupstreams:\n  g: {{servers: [\"{}\", \"{}\"]}}\nroutes:\n  - {{name: r, upstream: g}}\n",
        a.addr, b.addr
    );
    let proxy = Proxy::start(&yaml).await;
    let hits = backends_hit(&proxy, 10).await;
    assert_eq!(hits.get("a"), Some(&5), "{hits:?}");
    assert_eq!(hits.get("b"), Some(&5), "{hits:?}");
}

#[tokio::test]
async fn a_refused_connection_is_retried_on_the_next_server() {
    let a = Backend::start("a").await;
    let dead = dead_addr();
    let yaml = format!(
        "listen: LISTEN\nupstreams:\n  g: {{servers: [\"{dead}\", \"{}\"]}}\nroutes:\n  - {{name: r, upstream: g}}\n",
        a.addr
    );
    let proxy = Proxy::start(&yaml).await;
    // POST too: nothing was sent to the dead server, so retrying is safe for any method.
    for _ in 0..4 {
        let r = client()
            .post(proxy.url("/api/x"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "x-backend"), Some("a"));
    }
}

#[tokio::test]
async fn health_check_takes_a_failing_server_out_and_back_in() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let yaml = format!(
        "listen: LISTEN\nupstreams:\n  g:\n    servers: [\"{}\", \"{}\"]\n    health_check: {{path: /health, interval: 50ms, timeout: 1s, unhealthy_threshold: 1, healthy_threshold: 1}}\nroutes:\n  - {{name: r, upstream: g}}\n",
        a.addr, b.addr
    );
    b.set_health(503);
    let proxy = Proxy::start(&yaml).await;
    // Once b has answered a second probe, the first failed one has been counted.
    let probes = b.seen().iter().filter(|s| s.path == "/health").count();
    b.wait_for(probes + 2, |s| s.path == "/health").await;
    let hits = backends_hit(&proxy, 6).await;
    assert_eq!(
        hits.get("a"),
        Some(&6),
        "b should be out of rotation: {hits:?}"
    );

    b.set_health(200);
    let probes = b.seen().iter().filter(|s| s.path == "/health").count();
    b.wait_for(probes + 2, |s| s.path == "/health").await;
    let hits = backends_hit(&proxy, 6).await;
    assert_eq!(hits.get("b"), Some(&3), "b should be back: {hits:?}");
    // The probe is a plain GET of the configured path.
    let probe = b.seen().into_iter().find(|s| s.path == "/health").unwrap();
    assert_eq!(probe.method, reqwest::Method::GET);
}

#[tokio::test]
async fn every_listen_address_serves() {
    let a = Backend::start("a").await;
    let second = common::free_addr();
    let yaml = format!(
        "listen: [LISTEN, \"{second}\"]\nupstreams:\n  g: {{servers: [\"{}\"]}}\nroutes:\n  - {{name: r, upstream: g}}\n",
        a.addr
    );
    let proxy = Proxy::start(&yaml).await;
    common::wait_until_listening(second).await;
    for url in [proxy.url("/x"), format!("http://{second}/x")] {
        let r = client().get(url).send().await.unwrap();
        assert_eq!(header(&r, "x-backend"), Some("a"));
    }
}

#[tokio::test]
async fn server_names_are_resolved_at_load() {
    let a = Backend::start("a").await;
    let yaml = format!(
        "listen: LISTEN\nupstreams:\n  g: {{servers: [\"localhost:{}\"]}}\nroutes:\n  - {{name: r, upstream: g}}\n",
        a.addr.port()
    );
    let proxy = Proxy::start(&yaml).await;
    let r = client().get(proxy.url("/x")).send().await.unwrap();
    assert_eq!(header(&r, "x-backend"), Some("a"));
}

#[tokio::test]
async fn a_connect_timeout_is_a_504_with_cors() {
    use socket2::{Domain, Socket, Type};
    // A listener with a full accept queue: the kernel drops further SYNs, so connecting
    // times out instead of being refused.
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let mut held = Vec::new();
    loop {
        match std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200)) {
            Ok(s) => held.push(s),
            Err(_) => break,
        }
        assert!(held.len() < 64, "the accept queue never filled up");
    }
    let yaml = format!(
        "listen: LISTEN\nupstreams:\n  g: {{servers: [\"{addr}\"], connect_timeout: 300ms}}\nroutes:\n  - {{name: r, upstream: g, cors: {{allow_origins: [https://app.example.com]}}}}\n"
    );
    let proxy = Proxy::start(&yaml).await;
    let started = std::time::Instant::now();
    let r = client()
        .get(proxy.url("/x"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(r.status(), 504);
    // The setting is what ended the wait: not before it, and long before pingora's default
    // or the kernel's (~2 minutes of SYN retries).
    assert!(
        took >= std::time::Duration::from_millis(300),
        "gave up after {took:?}"
    );
    assert!(
        took < std::time::Duration::from_millis(2500),
        "waited {took:?}"
    );
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://app.example.com")
    );
    drop(held);
}

#[tokio::test]
async fn when_every_server_fails_its_check_traffic_still_flows() {
    let a = Backend::start("a").await;
    a.set_health(503);
    let yaml = format!(
        "listen: LISTEN\nupstreams:\n  g:\n    servers: [\"{}\"]\n    health_check: {{path: /health, interval: 50ms}}\nroutes:\n  - {{name: r, upstream: g}}\n",
        a.addr
    );
    let proxy = Proxy::start(&yaml).await;
    a.wait_for(2, |s| s.path == "/health").await;
    let hits = backends_hit(&proxy, 3).await;
    assert_eq!(hits.get("a"), Some(&3));
}
