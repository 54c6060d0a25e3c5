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
