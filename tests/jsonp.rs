//! JSONP through the real proxy, with a backend that sends plain, chunked, compressed, HTML,
//! SSE and error bodies.

mod common;

use common::{client, header, Backend, Proxy};

fn config(backend: &Backend, dead: std::net::SocketAddr) -> String {
    format!(
        r#"
listen: LISTEN
upstreams:
  b: {{servers: ["{addr}"]}}
  dead: {{servers: ["{dead}"]}}
cors_policies:
  app: {{allow_origins: [https://app.example.com]}}
routes:
  - {{name: open, path: /jsonp/, upstream: b, cors: app, jsonp: {{without_referer: allow}}}}
  - {{name: strict, path: /strict/, upstream: b, cors: app, jsonp: {{}}}}
  - {{name: env, path: /env/, upstream: b, cors: app, jsonp: {{envelope: true, without_referer: allow}}}}
  - {{name: envdead, path: /envdead/, upstream: dead, cors: app, jsonp: {{envelope: true, without_referer: allow}}}}
  - {{name: named, path: /named/, upstream: b, cors: app, jsonp: {{callback_param: cb, without_referer: allow}}}}
"#,
        addr = backend.addr
    )
}

async fn setup() -> (Backend, Proxy) {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config(&backend, common::dead_addr())).await;
    (backend, proxy)
}

async fn get(proxy: &Proxy, path: &str) -> reqwest::Response {
    client().get(proxy.url(path)).send().await.unwrap()
}

#[tokio::test]
async fn json_is_wrapped_as_a_script_with_safe_headers() {
    let (backend, proxy) = setup().await;
    let r = get(&proxy, "/jsonp/items?callback=app.handle&_=1700000000&q=1").await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "content-type"),
        Some("application/javascript; charset=utf-8")
    );
    assert_eq!(header(&r, "x-content-type-options"), Some("nosniff"));
    assert_eq!(header(&r, "content-length"), None);
    // A shared cache must not give one including page's copy to another.
    assert_eq!(header(&r, "vary"), Some("Origin, Referer, Sec-Fetch-Site"));
    assert_eq!(
        r.text().await.unwrap(),
        r#"/**/app.handle({"backend":"b","method":"GET","path":"/jsonp/items"});"#
    );
    // The backend sees the plain request: no callback, no cache-buster.
    let seen = backend.requests();
    assert_eq!(seen[0].query.as_deref(), Some("q=1"));
    get(&proxy, "/jsonp/items?callback=cb&_=1").await;
    assert_eq!(backend.requests()[1].query, None);
}

#[tokio::test]
async fn line_separators_split_across_chunks_are_escaped() {
    let (_backend, proxy) = setup().await;
    let r = get(&proxy, "/jsonp/chunked-2028?callback=cb").await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.text().await.unwrap(),
        r#"/**/cb({"s":"a\u2028b\u2029c", "n":1});"#
    );
}

#[tokio::test]
async fn compressed_bodies_are_decompressed_before_wrapping() {
    let (backend, proxy) = setup().await;
    for algorithm in ["gzip", "br", "zstd"] {
        // What browsers send: pingora would leave gzip and br encoded for such a client.
        let r = client()
            .get(proxy.url(&format!("/jsonp/{algorithm}?callback=cb")))
            .header("accept-encoding", "gzip, deflate, br, zstd")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{algorithm}");
        assert_eq!(header(&r, "content-encoding"), None, "{algorithm}");
        // pingora's decompression weakens it; a strong one must not survive.
        let etag = header(&r, "etag");
        assert!(
            etag.is_none_or(|e| e.starts_with("W/")),
            "strong ETag kept ({algorithm}): {etag:?}"
        );
        assert_eq!(
            r.text().await.unwrap(),
            r#"/**/cb({"compressed":true,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"});"#,
            "{algorithm}"
        );
    }
    assert!(backend
        .requests()
        .iter()
        .all(|s| s.headers.get("accept-encoding").is_none()));
}

#[tokio::test]
async fn strong_etag_and_ranges_are_dropped_from_wrapped_responses() {
    let (backend, proxy) = setup().await;
    let r = client()
        .get(proxy.url("/jsonp/etag?callback=cb"))
        .header("range", "bytes=0-3")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "etag"), None);
    assert_eq!(header(&r, "accept-ranges"), None);
    assert_eq!(r.text().await.unwrap(), r#"/**/cb({"v":1});"#);
    assert!(backend.requests()[0].headers.get("range").is_none());
    // Without a callback the same response keeps its ETag.
    let r = get(&proxy, "/jsonp/etag").await;
    assert_eq!(header(&r, "etag"), Some("\"v1\""));
}

#[tokio::test]
async fn anything_but_a_2xx_json_get_passes_through_untouched() {
    let (_backend, proxy) = setup().await;
    let r = get(&proxy, "/jsonp/html?callback=cb").await;
    assert_eq!(header(&r, "content-type"), Some("text/html"));
    assert_eq!(r.text().await.unwrap(), "<p>hello</p>");
    let r = get(&proxy, "/jsonp/events?callback=cb").await;
    assert_eq!(header(&r, "content-type"), Some("text/event-stream"));
    assert_eq!(r.text().await.unwrap(), "data: one\n\ndata: two\n\n");
    let r = get(&proxy, "/jsonp/status/404?callback=cb").await;
    assert_eq!(r.status(), 404);
    assert_eq!(header(&r, "content-type"), Some("application/json"));
    assert_eq!(r.text().await.unwrap(), r#"{"status":404}"#);
    let r = client()
        .post(proxy.url("/jsonp/x?callback=cb"))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "content-type"), Some("application/json"));
}

#[tokio::test]
async fn bad_callbacks_get_a_plain_400_and_never_reach_the_backend() {
    let (backend, proxy) = setup().await;
    let long = "a".repeat(129);
    for bad in [
        "alert(1)//",
        "a-b",
        "",
        "1abc",
        "a..b",
        "%3Cscript%3E",
        long.as_str(),
        "x&callback=y",
    ] {
        let r = get(&proxy, &format!("/jsonp/items?callback={bad}")).await;
        assert_eq!(r.status(), 400, "{bad}");
        assert_eq!(
            header(&r, "content-type"),
            Some("text/plain; charset=utf-8"),
            "{bad}"
        );
        assert_eq!(
            header(&r, "x-content-type-options"),
            Some("nosniff"),
            "{bad}"
        );
        let body = r.text().await.unwrap();
        assert!(body.starts_with("crossgate: JSONP refused:"), "{body}");
        assert!(
            !body.contains("alert(") && !body.contains("<script>"),
            "{body}"
        );
    }
    assert!(backend.requests().is_empty());
}

#[tokio::test]
async fn envelope_lets_script_clients_see_error_statuses() {
    let (_backend, proxy) = setup().await;
    let r = get(&proxy, "/env/status/404?callback=cb").await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "content-type"),
        Some("application/javascript; charset=utf-8")
    );
    assert_eq!(
        r.text().await.unwrap(),
        r#"/**/cb({"meta":{"status":404},"data":{"status":404}});"#
    );
    let r = get(&proxy, "/env/ok?callback=cb").await;
    assert!(r
        .text()
        .await
        .unwrap()
        .starts_with(r#"/**/cb({"meta":{"status":200},"data":{"backend""#));
    // The proxy's own 502 too.
    let r = get(&proxy, "/envdead/x?callback=cb").await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.text().await.unwrap(),
        r#"/**/cb({"meta":{"status":502},"data":null});"#
    );
}

#[tokio::test]
async fn the_including_page_must_be_allowed() {
    let (backend, proxy) = setup().await;
    let with = |referer: Option<&str>, site: Option<&str>| {
        let mut req = client().get(proxy.url("/strict/x?callback=cb"));
        if let Some(r) = referer {
            req = req.header("referer", r);
        }
        if let Some(s) = site {
            req = req.header("sec-fetch-site", s);
        }
        req.send()
    };
    let r = with(Some("https://app.example.com/page?x=1"), Some("cross-site"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().starts_with("/**/cb("));
    let r = with(Some("https://evil.example/page"), Some("cross-site"))
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("\"https://evil.example\" is not in allow_origins"));
    // No Referer and no Fetch Metadata (a browser without them, or any other client): the
    // default `without_referer: deny` is what refuses it.
    let r = with(None, None).await.unwrap();
    assert_eq!(r.status(), 403, "no Referer is refused by default");
    let why = r.text().await.unwrap();
    assert!(why.contains("jsonp.without_referer is deny"), "{why}");
    // A cross-site request that hides its Referer is refused by another rule.
    let r = with(None, Some("cross-site")).await.unwrap();
    assert_eq!(r.status(), 403);
    let why = r.text().await.unwrap();
    assert!(
        why.contains("a cross-site request without a Referer"),
        "{why}"
    );
    let r = with(None, Some("same-origin")).await.unwrap();
    assert_eq!(r.status(), 200);
    // A browser page that hides its Referer (referrerpolicy=no-referrer) is refused even
    // where requests without one are allowed: that setting is for non-browser clients.
    let r = client()
        .get(proxy.url("/jsonp/x?callback=cb"))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The open route allows requests without a Referer, but still checks one that is sent.
    let r = client()
        .get(proxy.url("/jsonp/x?callback=cb"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client()
        .get(proxy.url("/jsonp/x?callback=cb"))
        .header("referer", "https://evil.example/")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(backend.requests().len(), 3);
}

#[tokio::test]
async fn the_callback_parameter_name_is_configurable() {
    let (backend, proxy) = setup().await;
    let r = get(&proxy, "/named/x?cb=fn").await;
    assert!(r.text().await.unwrap().starts_with("/**/fn("));
    let r = get(&proxy, "/named/x?callback=fn").await;
    assert_eq!(header(&r, "content-type"), Some("application/json"));
    assert_eq!(backend.requests()[1].query.as_deref(), Some("callback=fn"));
}
