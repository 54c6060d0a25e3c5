//! Image-ping beacons through the real proxy: the GIF, sendBeacon-style POSTs, size and type
//! limits, and forwarding through the bounded queue.

mod common;

use common::{client, dead_addr, header, Backend, Proxy};

fn config(forward_to: std::net::SocketAddr, queue: usize) -> String {
    format!(
        r#"
listen: LISTEN
server: {{beacon_queue: {queue}}}
upstreams:
  analytics: {{servers: ["{forward_to}"]}}
beacons:
  - {{name: pageview, path: /b/pv, forward: {{upstream: analytics, path: /collect}}}}
  - {{name: slowfwd, path: /b/slow, forward: {{upstream: analytics, path: /slow}}}}
  - {{name: local, path: /b/local}}
routes:
  - {{name: api, upstream: analytics}}
"#
    )
}

#[tokio::test]
async fn get_answers_a_transparent_gif_and_forwards_the_hit() {
    let analytics = Backend::start("analytics").await;
    let proxy = Proxy::start(&config(analytics.addr, 16)).await;
    let r = client()
        .get(proxy.url("/b/pv?ev=view&page=%2Fhome"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), Some("image/gif"));
    assert_eq!(header(&r, "cache-control"), Some("no-store"));
    let body = r.bytes().await.unwrap();
    assert_eq!(body.len(), 43);
    assert_eq!(&body[..], crossgate::beacon::GIF);
    analytics.wait_for(1, |s| s.path == "/collect").await;
    let hit = analytics
        .requests()
        .into_iter()
        .find(|s| s.path == "/collect")
        .unwrap();
    assert_eq!(hit.method, reqwest::Method::GET);
    assert_eq!(hit.query.as_deref(), Some("ev=view&page=%2Fhome"));
}

#[tokio::test]
async fn post_as_send_beacon_sends_it_gets_204_and_is_forwarded_with_its_body() {
    let analytics = Backend::start("analytics").await;
    let proxy = Proxy::start(&config(analytics.addr, 16)).await;
    let r = client()
        .post(proxy.url("/b/pv?src=app"))
        .header("content-type", "text/plain;charset=UTF-8")
        .body(r#"{"event":"unload","t":1234}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    analytics.wait_for(1, |s| s.path == "/collect").await;
    let hit = analytics
        .requests()
        .into_iter()
        .find(|s| s.path == "/collect")
        .unwrap();
    assert_eq!(hit.method, reqwest::Method::POST);
    assert_eq!(hit.query.as_deref(), Some("src=app"));
    assert_eq!(
        hit.headers.get("content-type").unwrap(),
        "text/plain;charset=UTF-8"
    );
    assert_eq!(hit.headers.get("content-length").unwrap(), "27");
    assert_eq!(hit.body, br#"{"event":"unload","t":1234}"#);
    // JSON bodies too.
    let r = client()
        .post(proxy.url("/b/local"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
}

#[tokio::test]
async fn bodies_over_64_kib_get_413_whether_declared_or_chunked() {
    let proxy = Proxy::start(&config(dead_addr(), 16)).await;
    let big = vec![b'x'; 64 * 1024 + 1];
    let r = client()
        .post(proxy.url("/b/local"))
        .header("content-type", "text/plain")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let stream = futures_util::stream::iter(
        big.chunks(8192)
            .map(|c| Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    );
    let r = client()
        .post(proxy.url("/b/local"))
        .header("content-type", "text/plain")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // Exactly 64 KiB is fine.
    let r = client()
        .post(proxy.url("/b/local"))
        .header("content-type", "text/plain")
        .body(vec![b'x'; 64 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
}

#[tokio::test]
async fn other_types_and_methods_are_refused() {
    let proxy = Proxy::start(&config(dead_addr(), 16)).await;
    let r = client()
        .post(proxy.url("/b/local"))
        .header("content-type", "image/png")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let r = client()
        .put(proxy.url("/b/local"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(header(&r, "allow"), Some("GET, HEAD, POST"));
}

#[tokio::test]
async fn forwarding_never_holds_the_response_and_a_full_queue_drops_hits() {
    let analytics = Backend::start("analytics").await;
    // Queue of 1; the forward target answers after 30 s, so the forwarder is busy with the
    // first hit while the others arrive.
    let yaml =
        config(analytics.addr, 1).replace("upstreams:", "admin: {listen: ADMIN}\nupstreams:");
    let proxy = Proxy::start(&yaml).await;
    for i in 0..5 {
        let r = client()
            .get(proxy.url(&format!("/b/slow?ms=30000&n={i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.bytes().await.unwrap().len(), 43);
    }
    // All five were answered while the backend still holds the first forwarded hit.
    analytics.wait_for(1, |s| s.path == "/slow").await;
    assert_eq!(
        analytics
            .requests()
            .iter()
            .filter(|s| s.path == "/slow")
            .count(),
        1
    );
    // One hit with the forwarder, at most one in the queue: at least three were dropped, and
    // counted (an unbounded queue would drop none).
    let dropped: u64 = proxy
        .metrics()
        .await
        .lines()
        .find_map(|l| l.strip_prefix("crossgate_beacon_forward_dropped_total{beacon=\"slowfwd\"} "))
        .expect("the drop counter of slowfwd")
        .parse()
        .unwrap();
    assert!((3..=4).contains(&dropped), "{dropped} hits dropped");
}

#[tokio::test]
async fn a_dead_forward_upstream_does_not_fail_the_hit() {
    let proxy = Proxy::start(&config(dead_addr(), 16)).await;
    let r = client().get(proxy.url("/b/pv?x=1")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}
