//! The allowlist cannot be walked around (issue 11): the routed path is the forwarded path,
//! JSONP carries no credentials its policy does not allow, a refused origin never leaves
//! with CORS headers, preflights to unrouted paths, fully qualified hosts, and the callback
//! grammar. Real proxy, real backend; raw sockets where a client library would rewrite the
//! request target.

mod common;

use common::{client, cors_headers, header, read_raw_until, Backend, Proxy};
use tokio::io::AsyncWriteExt;

/// An `api` route under a strict policy, a `public` one open to any origin (with JSONP), a
/// credentialed JSONP route, and a passthrough route; `server` is the `server:` section.
fn config(backend: &Backend, server: &str) -> String {
    format!(
        r#"
listen: LISTEN
server: {server}
upstreams:
  b: {{servers: ["{addr}"]}}
cors_policies:
  app: {{allow_origins: [https://app.example.com]}}
  creds: {{allow_origins: [https://app.example.com], allow_credentials: true}}
  public: {{allow_origins: any}}
default_cors: app
routes:
  - {{name: fqdn, host: fqdn.example.com, path: /, upstream: b, cors: app}}
  - {{name: api, path: /api/, upstream: b, cors: app}}
  - {{name: public, path: /public/, upstream: b, cors: public, jsonp: {{without_referer: allow}}}}
  - {{name: creds, path: /creds/, upstream: b, cors: creds, jsonp: {{acknowledge_credentials: true}}}}
  - {{name: plainjs, path: /plainjs/, upstream: b, cors: public, jsonp: {{without_referer: allow, callback_pattern: identifier}}}}
  - name: passthrough
    path: /passthrough/
    upstream: b
    cors: {{allow_origins: [https://app.example.com], upstream_headers: passthrough}}
"#,
        addr = backend.addr
    )
}

/// Sends `GET target` as written, byte for byte, and returns the status and the whole answer.
async fn raw_get(proxy: &Proxy, target: &str, headers: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let req = format!("GET {target} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    read_raw_until(&mut s, &mut got, b"\r\n\r\n").await;
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text[9..12].parse().unwrap();
    // The rest of the body, until the proxy closes.
    let mut rest = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut s, &mut rest).await;
    (status, text + &String::from_utf8_lossy(&rest))
}

const BYPASS: &str = "/api/users/..%2F..%2Fpublic%2Fusers";

#[tokio::test]
async fn an_ambiguous_path_is_refused_with_400_by_default_and_never_reaches_the_backend() {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config(&backend, "{}")).await;
    for target in [
        BYPASS,
        "/public/..%2Fapi/users",
        "/public/%2e%2e/api/users",
        "/public/..;/api/users",
        "/public/..\\api/users",
        "/public/a%5Capi",
        "/public/a%252Fb",
        "/public/../api/users",
    ] {
        let (status, answer) = raw_get(&proxy, target, "Origin: https://evil.test\r\n").await;
        assert_eq!(status, 400, "{target}: {answer}");
        assert!(
            answer.contains("ambiguous request path refused"),
            "{target}: {answer}"
        );
        assert!(
            !answer
                .to_ascii_lowercase()
                .contains("access-control-allow-origin"),
            "{target}: {answer}"
        );
    }
    assert_eq!(backend.requests().len(), 0, "{:?}", backend.requests());
    // Escapes that do not change the routing pass unchanged.
    for target in ["/public/a%20b", "/public/caf%C3%A9", "/public/file%2Ejson"] {
        let (status, answer) = raw_get(&proxy, target, "").await;
        assert_eq!(status, 200, "{target}: {answer}");
    }
    let seen: Vec<String> = backend.requests().into_iter().map(|s| s.path).collect();
    assert_eq!(
        seen,
        ["/public/a%20b", "/public/caf%C3%A9", "/public/file%2Ejson"]
    );
}

#[tokio::test]
async fn forward_normalized_sends_the_backend_the_path_it_was_routed_on() {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config(&backend, "{ambiguous_paths: forward_normalized}")).await;
    let (status, answer) = raw_get(
        &proxy,
        &format!("{BYPASS}?q=1"),
        "Origin: https://evil.test\r\n",
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    // Routed as /public/users (any origin), and that is what the backend served.
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("access-control-allow-origin: *"),
        "{answer}"
    );
    let seen = backend.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/public/users");
    assert_eq!(seen[0].query.as_deref(), Some("q=1"));
    // Routed on /api/users, so the strict policy applies: no CORS for an unlisted page.
    let (status, answer) = raw_get(
        &proxy,
        "/public/..%2Fapi/users",
        "Origin: https://evil.test\r\n",
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        !answer.to_ascii_lowercase().contains("access-control-"),
        "{answer}"
    );
    assert_eq!(backend.requests()[1].path, "/api/users");
    // Decoded exactly once: %252F is the characters %2F, and goes upstream as %252F.
    let (status, _) = raw_get(&proxy, "/public/a%252Fb", "").await;
    assert_eq!(status, 200);
    assert_eq!(backend.requests()[2].path, "/public/a%252Fb");
    // JSONP's query rewrite keeps the normalized path.
    let (status, answer) = raw_get(&proxy, "/public/x/..%2Fusers?callback=cb", "").await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("/**/cb("), "{answer}");
    assert_eq!(backend.requests()[3].path, "/public/users");
}

#[tokio::test]
async fn keep_forwards_the_path_as_sent() {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config(&backend, "{ambiguous_paths: keep}")).await;
    let (status, _) = raw_get(&proxy, BYPASS, "").await;
    assert_eq!(status, 200);
    assert_eq!(backend.requests()[0].path, BYPASS);
}

#[tokio::test]
async fn explain_agrees_with_the_proxy_on_ambiguous_paths() {
    let yaml = "listen: 127.0.0.1:0\nupstreams:\n  b: {servers: [127.0.0.1:9]}\ncors_policies:\n  public: {allow_origins: any}\nroutes:\n  - {name: api, path: /api/, upstream: b, cors: {allow_origins: [https://app.example.com]}}\n  - {name: public, path: /public/, upstream: b, cors: public}\n";
    let rules =
        |server: &str| crossgate::test_util::rules_from_yaml(&format!("{yaml}server: {server}\n"));
    let url = format!("http://api.test{BYPASS}");
    let e = crossgate::explain::explain(&rules("{}"), &url, "https://evil.test", "GET", &[], false)
        .unwrap();
    assert!(!e.allowed);
    assert!(e.report.contains("400"), "{}", e.report);
    assert!(e.report.contains("encoded slash"), "{}", e.report);
    let e = crossgate::explain::explain(
        &rules("{ambiguous_paths: forward_normalized}"),
        &url,
        "https://evil.test",
        "GET",
        &[],
        false,
    )
    .unwrap();
    assert!(e.allowed, "{}", e.report);
    assert!(e.report.contains("route: public"), "{}", e.report);
    assert!(
        e.report.contains("forwarded as /public/users"),
        "{}",
        e.report
    );
}

#[tokio::test]
async fn jsonp_without_a_credentialed_policy_never_forwards_cookies_or_authorization() {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config(&backend, "{}")).await;
    let r = client()
        .get(proxy.url("/public/me?callback=cb"))
        .header("cookie", "session=secret")
        .header("authorization", "Bearer secret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().starts_with("/**/cb("));
    let seen = backend.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].headers.get("cookie"), None);
    assert_eq!(seen[0].headers.get("authorization"), None);
    // A plain request on the same route is the backend's own business: headers untouched.
    client()
        .get(proxy.url("/public/me"))
        .header("cookie", "session=secret")
        .send()
        .await
        .unwrap();
    assert_eq!(
        backend.requests()[1].headers.get("cookie").unwrap(),
        "session=secret"
    );
    // Where the policy allows credentials (and JSONP acknowledges it), the allowed page's
    // script goes with the user's cookies.
    let r = client()
        .get(proxy.url("/creds/me?callback=cb"))
        .header("referer", "https://app.example.com/page")
        .header("cookie", "session=secret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        backend.requests()[2].headers.get("cookie").unwrap(),
        "session=secret"
    );
}

#[tokio::test]
async fn passthrough_never_lets_a_refused_origin_leave_with_the_backends_cors_headers() {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config(&backend, "{}")).await;
    let r = client()
        .get(proxy.url("/passthrough/own-cors"))
        .header("origin", "https://evil.test")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(cors_headers(&r), Vec::<String>::new());
    // The allowed origin still gets the backend's own.
    let r = client()
        .get(proxy.url("/passthrough/own-cors"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "access-control-allow-origin"), Some("*"));
}

#[tokio::test]
async fn a_preflight_to_an_unrouted_path_is_answered_from_default_cors() {
    let backend = Backend::start("b").await;
    let yaml = format!(
        "listen: LISTEN\nupstreams:\n  b: {{servers: [\"{}\"]}}\ndefault_cors: {{allow_origins: [https://app.example.com], allow_methods: [GET, PUT], allow_headers: [content-type]}}\nroutes:\n  - {{name: api, host: api.test, upstream: b, cors: {{allow_origins: [https://app.example.com]}}}}\n",
        backend.addr
    );
    let proxy = Proxy::start(&yaml).await;
    let preflight = |origin: &'static str| {
        client()
            .request(reqwest::Method::OPTIONS, proxy.url("/nowhere"))
            .header("origin", origin)
            .header("access-control-request-method", "PUT")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let r = preflight("https://app.example.com").await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert!(header(&r, "access-control-allow-methods")
        .unwrap()
        .contains("PUT"));
    // The actual request then gets the 404, readable by the page.
    let r = client()
        .put(proxy.url("/nowhere"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://app.example.com")
    );
    // An origin default_cors does not list gets no CORS headers from it.
    let r = preflight("https://evil.test").await.unwrap();
    assert_eq!(header(&r, "access-control-allow-origin"), None);
    assert_ne!(r.status(), 204);
    assert_eq!(backend.requests().len(), 0);
}

#[tokio::test]
async fn a_fully_qualified_host_with_a_trailing_dot_takes_its_own_route() {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config(&backend, "{}")).await;
    for host in [
        "fqdn.example.com",
        "fqdn.example.com.",
        "FQDN.example.com.:8080",
    ] {
        // The fqdn route (policy app) would allow app.example.com on /public/ too, where the
        // public route would answer `*`: the answer shows which route served it.
        let r = client()
            .get(proxy.url("/public/x"))
            .header("host", host)
            .header("origin", "https://app.example.com")
            .send()
            .await
            .unwrap();
        assert_eq!(
            header(&r, "access-control-allow-origin"),
            Some("https://app.example.com"),
            "{host}"
        );
    }
}

#[tokio::test]
async fn callback_pattern_identifier_refuses_dotted_callbacks() {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config(&backend, "{}")).await;
    let r = client()
        .get(proxy.url("/plainjs/x?callback=opener.close"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("plain function name"));
    let r = client()
        .get(proxy.url("/plainjs/x?callback=cb"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().starts_with("/**/cb("));
    // The default grammar still takes dotted names.
    let r = client()
        .get(proxy.url("/public/x?callback=app.done"))
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().starts_with("/**/app.done("));
}
