//! What a backend learns through crossgate (the operations issue, point 4): who the client is
//! (`X-Forwarded-For`, `X-Real-IP`, `X-Forwarded-Proto`, `X-Forwarded-Host`, `Forwarded`),
//! never what a client claims about itself unless it connected through a trusted proxy.

mod common;

use common::{client, with_h2_listener, Backend, Proxy};

fn config(backend: &Backend, server: &str) -> String {
    format!(
        r#"
listen: LISTEN
server: {{{server}}}
upstreams:
  b: {{servers: ["{}"]}}
cors_policies:
  app: {{allow_origins: [https://app.example.com]}}
routes:
  - {{name: events, path: /events, upstream: b, cors: app, sse: {{heartbeat: 10s}}}}
  - {{name: api, path: /, upstream: b, cors: app}}
"#,
        backend.addr
    )
}

/// The forwarding fields the backend saw on its last request, each as one line.
fn seen_fields(backend: &Backend) -> Vec<(String, String)> {
    let seen = backend.seen();
    let last = seen.last().expect("a request reached the backend");
    [
        "x-forwarded-for",
        "x-real-ip",
        "x-forwarded-proto",
        "x-forwarded-host",
        "forwarded",
    ]
    .iter()
    .map(|name| {
        let values: Vec<_> = last
            .headers
            .get_all(*name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert!(values.len() <= 1, "{name}: {values:?}");
        (name.to_string(), values.join(""))
    })
    .collect()
}

fn expect(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

async fn get_spoofed(proxy: &Proxy, path: &str) {
    let r = client()
        .get(proxy.url(path))
        .header("x-forwarded-for", "1.2.3.4")
        .header("x-real-ip", "1.2.3.4")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "admin.internal")
        .header("forwarded", "for=1.2.3.4;proto=https")
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_clients_own_forwarding_fields_are_replaced_by_what_crossgate_saw() {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config(&backend, "")).await;
    let host = proxy.addr.to_string();
    let want = expect(&[
        ("x-forwarded-for", "127.0.0.1"),
        ("x-real-ip", "127.0.0.1"),
        ("x-forwarded-proto", "http"),
        ("x-forwarded-host", &host),
        (
            "forwarded",
            &format!("for=127.0.0.1;proto=http;host=\"{host}\""),
        ),
    ]);
    get_spoofed(&proxy, "/api/users").await;
    assert_eq!(seen_fields(&backend), want);
    // An event stream goes upstream with the same fields.
    let before = backend.seen().len();
    get_spoofed(&proxy, "/events").await;
    assert_eq!(backend.seen().len(), before + 1);
    assert_eq!(seen_fields(&backend), want);
}

#[tokio::test]
async fn a_trusted_proxys_fields_are_kept_and_crossgate_is_appended() {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config(&backend, "trusted_proxies: [127.0.0.0/8]")).await;
    let host = proxy.addr.to_string();
    get_spoofed(&proxy, "/api/users").await;
    assert_eq!(
        seen_fields(&backend),
        expect(&[
            ("x-forwarded-for", "1.2.3.4, 127.0.0.1"),
            ("x-real-ip", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "admin.internal"),
            (
                "forwarded",
                &format!("for=1.2.3.4;proto=https, for=127.0.0.1;proto=http;host=\"{host}\""),
            ),
        ])
    );
}

#[tokio::test]
async fn over_https_and_http2_the_proto_is_https_and_the_host_is_the_authority() {
    let backend = Backend::start("b").await;
    let (_proxy, tls_addr, h2) = with_h2_listener(&config(&backend, ""), "forwarding").await;
    let r = h2
        .get(format!("https://localhost:{}/api/x", tls_addr.port()))
        .header("x-forwarded-for", "1.2.3.4")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    let host = format!("localhost:{}", tls_addr.port());
    assert_eq!(
        seen_fields(&backend),
        expect(&[
            ("x-forwarded-for", "127.0.0.1"),
            ("x-real-ip", "127.0.0.1"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", &host),
            (
                "forwarded",
                &format!("for=127.0.0.1;proto=https;host=\"{host}\""),
            ),
        ])
    );
}

#[test]
fn a_trusted_proxies_entry_that_is_not_an_address_is_refused_at_load() {
    let yaml = "listen: 127.0.0.1:0\nserver: {trusted_proxies: [10.0.0.0/8, lb.internal]}\nupstreams:\n  b: {servers: [\"127.0.0.1:1\"]}\nroutes:\n  - {name: api, path: /, upstream: b}\n";
    let Err(err) = crossgate::test_util::try_rules_from_yaml(yaml) else {
        panic!("loaded");
    };
    let text = err.to_string();
    assert!(text.contains("server.trusted_proxies[1]"), "{text}");
    assert!(
        text.contains("`lb.internal` is not an IP address or CIDR"),
        "{text}"
    );
    assert!(text.contains("10.0.0.0/8"), "{text}");
}

/// Routes with the options a migration needs: a prefix stripped, the upstream's own `Host`,
/// body limits.
fn options_config(backend: &Backend, server: &str) -> String {
    format!(
        r#"
listen: LISTEN
server: {{{server}}}
upstreams:
  b: {{servers: ["{}"]}}
cors_policies:
  app: {{allow_origins: [https://app.example.com], allow_methods: [GET, POST]}}
routes:
  - {{name: stripped, path: /svc/, upstream: b, cors: app, strip_prefix: true}}
  - {{name: vhost, path: /vhost/, upstream: b, cors: app, upstream_host: "legacy.internal:8080"}}
  - {{name: small, path: /small/, upstream: b, cors: app, max_body_size: 10}}
  - {{name: unlimited, path: /big/, upstream: b, cors: app, max_body_size: 0}}
  - {{name: api, path: /, upstream: b, cors: app}}
"#,
        backend.addr
    )
}

/// The path and query the backend saw on its last request.
fn last_target(backend: &Backend) -> String {
    let seen = backend.seen();
    let last = seen.last().expect("a request reached the backend");
    match &last.query {
        Some(q) => format!("{}?{q}", last.path),
        None => last.path.clone(),
    }
}

#[tokio::test]
async fn a_stripped_prefix_forwards_the_routed_path_without_it() {
    let backend = Backend::start("b").await;
    for mode in ["reject", "forward_normalized"] {
        let proxy = Proxy::start(&options_config(
            &backend,
            &format!("ambiguous_paths: {mode}"),
        ))
        .await;
        for (sent, forwarded) in [
            ("/svc/users?page=2", "/users?page=2"),
            ("/svc/", "/"),
            ("/svc/a%20b/c", "/a%20b/c"),
            ("/svc/%75sers", "/users"),
        ] {
            let r = client().get(proxy.url(sent)).send().await.unwrap();
            assert_eq!(r.status(), 200, "{mode}: {sent}");
            assert_eq!(last_target(&backend), forwarded, "{mode}: {sent}");
        }
        // What routes elsewhere is not stripped.
        let r = client().get(proxy.url("/svcx/users")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(last_target(&backend), "/svcx/users", "{mode}");
    }
    // A path whose decoding would leave the prefix is refused (reject), or routed and stripped
    // as the path it normalizes to (forward_normalized): never forwarded as sent. Raw sockets:
    // an HTTP client library resolves `%2e%2e` itself.
    let proxy = Proxy::start(&options_config(&backend, "")).await;
    let before = backend.seen().len();
    for sent in [
        "/svc/..%2Fadmin",
        "/svc/%2e%2e/admin",
        "/svc//admin",
        "/svc/..;/admin",
    ] {
        assert_eq!(raw_get(&proxy, sent).await, 400, "{sent}");
    }
    assert_eq!(
        backend.seen().len(),
        before,
        "nothing ambiguous went upstream"
    );
    let proxy = Proxy::start(&options_config(
        &backend,
        "ambiguous_paths: forward_normalized",
    ))
    .await;
    assert_eq!(raw_get(&proxy, "/svc/x/%2e%2e/users").await, 200);
    assert_eq!(last_target(&backend), "/users");
    assert_eq!(raw_get(&proxy, "/svc/%2e%2e/admin").await, 200);
    assert_eq!(
        last_target(&backend),
        "/admin",
        "/svc/../admin is /admin, routed by the catch-all and forwarded whole"
    );
}

/// The status of `GET target` sent as these bytes.
async fn raw_get(proxy: &Proxy, target: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(
        format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer);
    text.get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"))
}

#[tokio::test]
async fn upstream_host_replaces_the_clients_host_and_x_forwarded_host_keeps_it() {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&options_config(&backend, "")).await;
    let r = client().get(proxy.url("/vhost/x")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let seen = backend.seen();
    let last = seen.last().unwrap();
    assert_eq!(last.headers["host"], "legacy.internal:8080");
    assert_eq!(last.headers.get_all("host").iter().count(), 1);
    assert_eq!(last.headers["x-forwarded-host"], proxy.addr.to_string());
    // Other routes keep the client's.
    client().get(proxy.url("/x")).send().await.unwrap();
    assert_eq!(
        backend.seen().last().unwrap().headers["host"],
        proxy.addr.to_string()
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413_with_cors_and_never_reaches_the_backend() {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&options_config(&backend, "")).await;
    let post = |path: &str, body: reqwest::Body| {
        client()
            .post(proxy.url(path))
            .header("origin", "https://app.example.com")
            .body(body)
    };
    // Declared over the route's limit: refused before anything goes upstream.
    let before = backend.seen().len();
    let r = post("/small/x", "eleven byte".into()).send().await.unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(r.headers()["connection"], "close");
    let text = r.text().await.unwrap();
    assert!(
        text.contains("larger than max_body_size (10 bytes)"),
        "{text}"
    );
    assert_eq!(backend.seen().len(), before);
    // At the limit: through.
    let r = post("/small/x", "ten bytes!".into()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // The server's default, 1 MiB (nginx's): over it 413, and a route with 0 has no limit.
    let big = vec![b'x'; (1 << 20) + 1];
    let r = post("/x", big.clone().into()).send().await.unwrap();
    assert_eq!(r.status(), 413);
    let before = backend.seen().len();
    let r = post("/big/x", big.clone().into()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(backend.seen().len(), before + 1);
    // Streamed (chunked, no length declared) past the limit: 413 once it is crossed.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..4).map(|_| Ok(b"12345".to_vec())).collect();
    let r = post(
        "/small/read-body",
        reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 413);
}

#[test]
fn route_options_that_cannot_hold_are_refused_at_load() {
    let load = |server: &str, route: &str| {
        let yaml = format!("listen: 127.0.0.1:0\nserver: {{{server}}}\nupstreams:\n  b: {{servers: [\"127.0.0.1:1\"]}}\nroutes:\n  - {{name: r, upstream: b, {route}}}\n");
        match crossgate::test_util::try_rules_from_yaml(&yaml) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    };
    let e = load("", "path: {exact: /a}, strip_prefix: true");
    assert!(
        e.contains("routes[0].strip_prefix") && e.contains("needs a prefix path"),
        "{e}"
    );
    let e = load("", "path: {regex: '/a/.*'}, strip_prefix: true");
    assert!(e.contains("needs a prefix path"), "{e}");
    let e = load("ambiguous_paths: keep", "path: /a/, strip_prefix: true");
    assert!(e.contains("ambiguous_paths: keep"), "{e}");
    let e = load("", "path: '/a b/', strip_prefix: true");
    assert!(e.contains("percent-encoded"), "{e}");
    let e = load("", "path: /a/, upstream_host: 'api internal'");
    assert!(
        e.contains("routes[0].upstream_host") && e.contains("invalid upstream_host"),
        "{e}"
    );
    let e = load("client_max_body_size: 10x", "path: /a/");
    assert!(e.contains("invalid size \"10x\""), "{e}");
    assert_eq!(
        load(
            "client_max_body_size: 10m",
            "path: /a/, max_body_size: 512k, strip_prefix: true, upstream_host: a.internal"
        ),
        ""
    );
}
