//! CORS through the real proxy: crossgate on an ephemeral port in front of a real backend,
//! driven with a real HTTP client. One test per rule of the Fetch standard that crossgate
//! implements.

mod common;

use common::{client, cors_headers, header, Backend, Proxy};
use reqwest::Method;

/// A config with an `app` policy (exact origins, a wildcard, a regex, credentials), a `public`
/// one (`any`), and routes for each.
fn config(backend: &Backend, extra_routes: &str) -> String {
    format!(
        r#"
listen: LISTEN
upstreams:
  b:
    servers: ["{addr}"]
    read_timeout: 1s
cors_policies:
  app:
    allow_origins:
      - https://app.example.com
      - http://localhost:3000
      - https://*.example.org
      - regex: 'https://pr-[0-9]+\.preview\.example\.net'
    allow_methods: [GET, PUT, DELETE]
    allow_headers: [content-type, x-custom]
    expose_headers: [x-backend]
    allow_credentials: true
    max_age: 600
  public:
    allow_origins: any
    allow_methods: [GET]
routes:
{extra_routes}
  - {{name: public, path: /public/, upstream: b, cors: public}}
  - name: mirror
    path: /mirror/
    upstream: b
    cors: {{allow_origins: [https://app.example.com], allow_headers: mirror, allow_methods: [PUT]}}
  - name: pna
    path: /pna/
    upstream: b
    cors: {{allow_origins: [https://app.example.com], allow_private_network: true}}
  - name: passthrough
    path: /passthrough/
    upstream: b
    cors: {{allow_origins: [https://app.example.com], upstream_headers: passthrough}}
  - name: nulls
    path: /nulls/
    upstream: b
    cors: {{allow_origins: ["null"]}}
  - {{name: plain, path: /plain/, upstream: b}}
  - {{name: app, path: /, upstream: b, cors: app}}
"#,
        addr = backend.addr
    )
}

async fn setup() -> (Backend, Proxy) {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config(&backend, "")).await;
    (backend, proxy)
}

fn preflight(proxy: &Proxy, path: &str, origin: &str, method: &str) -> reqwest::RequestBuilder {
    client()
        .request(Method::OPTIONS, proxy.url(path))
        .header("origin", origin)
        .header("access-control-request-method", method)
}

#[tokio::test]
async fn preflight_is_answered_by_the_proxy_and_never_forwarded() {
    let (backend, proxy) = setup().await;
    let r = preflight(&proxy, "/api/items/1", "https://app.example.com", "PUT")
        .header("access-control-request-headers", "content-type, x-custom")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(
        header(&r, "access-control-allow-methods"),
        Some("GET, PUT, DELETE")
    );
    assert_eq!(
        header(&r, "access-control-allow-headers"),
        Some("content-type, x-custom")
    );
    assert_eq!(header(&r, "access-control-max-age"), Some("600"));
    assert_eq!(header(&r, "access-control-allow-credentials"), Some("true"));
    assert_eq!(
        header(&r, "content-length"),
        None,
        "RFC 9110: no Content-Length on a 204"
    );
    assert_eq!(r.bytes().await.unwrap().len(), 0);
    assert!(
        backend.requests().is_empty(),
        "the preflight reached the backend: {:?}",
        backend.requests()
    );
}

#[tokio::test]
async fn other_options_requests_reach_the_backend_unchanged() {
    let (backend, proxy) = setup().await;
    // Origin without Access-Control-Request-Method: not a preflight.
    let r = client()
        .request(Method::OPTIONS, proxy.url("/api/items"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "allow"), Some("GET, PUT, OPTIONS"));
    assert_eq!(r.text().await.unwrap(), "backend options");
    // Access-Control-Request-Method without Origin: not a preflight either.
    let r = client()
        .request(Method::OPTIONS, proxy.url("/api/items"))
        .header("access-control-request-method", "PUT")
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "backend options");
    let options: Vec<_> = backend
        .requests()
        .into_iter()
        .filter(|s| s.method == Method::OPTIONS)
        .collect();
    assert_eq!(options.len(), 2);
    assert_eq!(
        options[1]
            .headers
            .get("access-control-request-method")
            .unwrap(),
        "PUT"
    );
}

#[tokio::test]
async fn allowed_origin_is_echoed_with_credentials_and_exposed_headers() {
    let (_backend, proxy) = setup().await;
    let r = client()
        .get(proxy.url("/api/items"))
        .header("origin", "http://localhost:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("http://localhost:3000")
    );
    assert_eq!(header(&r, "access-control-allow-credentials"), Some("true"));
    assert_eq!(
        header(&r, "access-control-expose-headers"),
        Some("x-backend")
    );
    assert_eq!(header(&r, "vary"), Some("Origin"));
    // Preflight-only headers stay on preflights.
    assert_eq!(header(&r, "access-control-allow-methods"), None);
    assert_eq!(header(&r, "access-control-max-age"), None);
}

#[tokio::test]
async fn any_policy_answers_star_and_never_credentials() {
    let (_backend, proxy) = setup().await;
    let r = client()
        .get(proxy.url("/public/x"))
        .header("origin", "https://anyone.test")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "access-control-allow-origin"), Some("*"));
    assert_eq!(header(&r, "access-control-allow-credentials"), None);
    let r = preflight(&proxy, "/public/x", "https://anyone.test", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(header(&r, "access-control-allow-origin"), Some("*"));
    // Without Origin as well, so that a shared cache's copy works for every page.
    let r = client().get(proxy.url("/public/x")).send().await.unwrap();
    assert_eq!(header(&r, "access-control-allow-origin"), Some("*"));
    assert_eq!(header(&r, "vary"), None);
}

#[tokio::test]
async fn private_network_is_allowed_only_when_configured_and_asked() {
    let (_backend, proxy) = setup().await;
    let ask = |path: &str| {
        preflight(&proxy, path, "https://app.example.com", "GET")
            .header("access-control-request-private-network", "true")
            .send()
    };
    let r = ask("/pna/x").await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        header(&r, "access-control-allow-private-network"),
        Some("true")
    );
    assert!(header(&r, "vary")
        .unwrap()
        .contains("Access-Control-Request-Private-Network"));
    let r = ask("/api/x").await.unwrap();
    assert_eq!(header(&r, "access-control-allow-private-network"), None);
    let r = preflight(&proxy, "/pna/x", "https://app.example.com", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "access-control-allow-private-network"), None);
}

#[tokio::test]
async fn disallowed_preflight_is_refused_by_the_proxy_with_a_reason() {
    let (backend, proxy) = setup().await;
    let r = preflight(&proxy, "/api/items/1", "https://evil.example", "PUT")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(
        cors_headers(&r)
            .iter()
            .all(|h| !h.starts_with("access-control-allow-")),
        "{:?}",
        cors_headers(&r)
    );
    assert!(header(&r, "vary").unwrap().contains("Origin"));
    assert_eq!(
        header(&r, "content-type"),
        Some("text/plain; charset=utf-8")
    );
    let body = r.text().await.unwrap();
    assert_eq!(body.lines().count(), 1);
    assert!(
        body.contains("\"https://evil.example\" is not in allow_origins of policy app"),
        "{body}"
    );
    // A method or header the policy does not list is refused too, and says which.
    let r = preflight(&proxy, "/api/items/1", "https://app.example.com", "PATCH")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("method PATCH"));
    let r = preflight(&proxy, "/api/items/1", "https://app.example.com", "PUT")
        .header("access-control-request-headers", "x-not-listed")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("\"x-not-listed\""));
    assert!(backend.requests().is_empty());
}

#[tokio::test]
async fn disallowed_actual_request_is_forwarded_and_returned_without_cors_headers() {
    let (backend, proxy) = setup().await;
    let r = client()
        .get(proxy.url("/own-cors"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The backend's own ACAO: * is stripped too (upstream_headers: override).
    assert!(cors_headers(&r).is_empty(), "{:?}", cors_headers(&r));
    assert_eq!(header(&r, "vary"), Some("Origin"));
    assert_eq!(backend.requests().len(), 1);
}

#[tokio::test]
async fn override_replaces_the_backends_own_cors_headers_with_one_set() {
    let (_backend, proxy) = setup().await;
    let r = client()
        .get(proxy.url("/own-cors"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    let acao: Vec<_> = r
        .headers()
        .get_all("access-control-allow-origin")
        .iter()
        .collect();
    assert_eq!(acao, ["https://app.example.com"]);
    assert_eq!(
        header(&r, "access-control-expose-headers"),
        Some("x-backend")
    );
}

#[tokio::test]
async fn passthrough_keeps_the_backends_cors_headers() {
    let (_backend, proxy) = setup().await;
    // /passthrough/ is served by the generic handler (no own CORS): crossgate adds its headers.
    let r = client()
        .get(proxy.url("/passthrough/x"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://app.example.com")
    );
    // A backend that sends its own: kept as it is.
    let r = client()
        .get(proxy.url("/passthrough/own-cors"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "access-control-allow-origin"), Some("*"));
    assert_eq!(
        header(&r, "access-control-expose-headers"),
        Some("x-secret")
    );
    assert_eq!(
        r.headers()
            .get_all("access-control-allow-origin")
            .iter()
            .count(),
        1
    );
}

#[tokio::test]
async fn vary_is_merged_into_the_backends_vary_as_one_line() {
    let (_backend, proxy) = setup().await;
    for origin in ["https://app.example.com", "https://evil.example"] {
        let r = client()
            .get(proxy.url("/vary"))
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        let vary: Vec<_> = r.headers().get_all("vary").iter().collect();
        assert_eq!(vary, ["Accept-Encoding, Origin"], "origin {origin}");
    }
    // A request without Origin gets Vary too: a cache must not serve it to a browser.
    let r = client().get(proxy.url("/api/x")).send().await.unwrap();
    assert_eq!(header(&r, "vary"), Some("Origin"));
    assert!(cors_headers(&r).is_empty());
    // Preflights vary on the request method and headers too.
    let r = preflight(&proxy, "/api/x", "https://app.example.com", "PUT")
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&r, "vary"),
        Some("Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
    );
}

#[tokio::test]
async fn mirror_echoes_the_requested_headers() {
    let (_backend, proxy) = setup().await;
    let r = preflight(&proxy, "/mirror/x", "https://app.example.com", "PUT")
        .header("access-control-request-headers", "x-anything, x-else")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        header(&r, "access-control-allow-headers"),
        Some("x-anything, x-else")
    );
    // Several request lines are mirrored as one.
    let r = preflight(&proxy, "/mirror/x", "https://app.example.com", "PUT")
        .header("access-control-request-headers", "x-one")
        .header("access-control-request-headers", "x-two")
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&r, "access-control-allow-headers"),
        Some("x-one, x-two")
    );
    assert!(header(&r, "vary")
        .unwrap()
        .contains("Access-Control-Request-Headers"));
}

async fn allowed(proxy: &Proxy, path: &str, origin: &str) -> bool {
    let r = client()
        .get(proxy.url(path))
        .header("origin", origin)
        .send()
        .await
        .unwrap();
    match header(&r, "access-control-allow-origin") {
        Some(v) => {
            assert_eq!(v, origin);
            true
        }
        None => false,
    }
}

#[tokio::test]
async fn origins_match_exactly_on_scheme_host_and_port() {
    let (_backend, proxy) = setup().await;
    assert!(allowed(&proxy, "/api", "https://app.example.com").await);
    assert!(!allowed(&proxy, "/api", "http://app.example.com").await);
    assert!(!allowed(&proxy, "/api", "https://app.example.com:8443").await);
    assert!(!allowed(&proxy, "/api", "https://app.example.com.evil.io").await);
    assert!(!allowed(&proxy, "/api", "https://xapp.example.com").await);
    assert!(allowed(&proxy, "/api", "http://localhost:3000").await);
    assert!(!allowed(&proxy, "/api", "http://localhost:3001").await);
}

#[tokio::test]
async fn wildcards_are_bounded_at_a_dns_label() {
    let (_backend, proxy) = setup().await;
    assert!(allowed(&proxy, "/api", "https://a.example.org").await);
    assert!(allowed(&proxy, "/api", "https://a.b.example.org").await);
    assert!(!allowed(&proxy, "/api", "https://example.org").await);
    assert!(!allowed(&proxy, "/api", "https://badexample.org").await);
    assert!(!allowed(&proxy, "/api", "https://example.org.evil.io").await);
    assert!(!allowed(&proxy, "/api", "http://a.example.org").await);
}

#[tokio::test]
async fn regexes_are_anchored_at_both_ends() {
    let (_backend, proxy) = setup().await;
    assert!(allowed(&proxy, "/api", "https://pr-42.preview.example.net").await);
    assert!(!allowed(&proxy, "/api", "https://pr-42.preview.example.net.evil.io").await);
    assert!(!allowed(&proxy, "/api", "https://evil.io.pr-42.preview.example.net").await);
}

#[tokio::test]
async fn null_origin_matches_only_when_listed_literally() {
    let (_backend, proxy) = setup().await;
    // The app policy has a wildcard and a regex, and no `null`.
    assert!(!allowed(&proxy, "/api", "null").await);
    let r = preflight(&proxy, "/api", "null", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(allowed(&proxy, "/nulls/x", "null").await);
}

#[tokio::test]
async fn backend_errors_carry_cors_headers() {
    let (_backend, proxy) = setup().await;
    for code in [400u16, 404, 500, 503] {
        let r = client()
            .get(proxy.url(&format!("/status/{code}")))
            .header("origin", "https://app.example.com")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), code);
        assert_eq!(
            header(&r, "access-control-allow-origin"),
            Some("https://app.example.com"),
            "status {code}"
        );
        assert_eq!(header(&r, "access-control-allow-credentials"), Some("true"));
    }
}

#[tokio::test]
async fn proxy_404_for_no_route_carries_default_cors() {
    let backend = Backend::start("b").await;
    let yaml = format!(
        "listen: LISTEN\nupstreams:\n  b: {{servers: [\"{}\"]}}\ndefault_cors: {{allow_origins: [https://app.example.com]}}\nroutes:\n  - {{name: api, host: api.test, upstream: b, cors: {{allow_origins: [https://app.example.com]}}}}\n",
        backend.addr
    );
    let proxy = Proxy::start(&yaml).await;
    let r = client()
        .get(proxy.url("/anything"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(header(&r, "x-content-type-options"), Some("nosniff"));
    assert!(r
        .text()
        .await
        .unwrap()
        .starts_with("crossgate: no route for host"));
    // The route itself is reachable by its host.
    let r = client()
        .get(proxy.url("/anything"))
        .header("host", "api.test")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(backend.requests().len() == 1);
}

#[tokio::test]
async fn proxy_502_when_the_upstream_refuses_carries_cors() {
    let backend = Backend::start("b").await;
    let dead = common::dead_addr();
    let yaml = config(
        &backend,
        "  - name: dead\n    path: /dead/\n    upstream: dead\n    cors: app\n",
    )
    .replace(
        "upstreams:\n",
        &format!("upstreams:\n  dead: {{servers: [\"{dead}\"]}}\n"),
    );
    let proxy = Proxy::start(&yaml).await;
    let r = client()
        .get(proxy.url("/dead/x"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert!(r.text().await.unwrap().contains("upstream dead failed"));
    // A refused origin gets the 502 without CORS headers.
    let r = client()
        .get(proxy.url("/dead/x"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert!(cors_headers(&r).is_empty());
}

#[tokio::test]
async fn proxy_504_when_the_upstream_times_out_carries_cors() {
    let (_backend, proxy) = setup().await;
    // read_timeout is 1s; the backend answers after 5s.
    let r = client()
        .get(proxy.url("/slow?ms=5000"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(header(&r, "vary"), Some("Origin"));
}

#[tokio::test]
async fn routes_without_cors_leave_it_to_the_backend() {
    let (backend, proxy) = setup().await;
    let r = preflight(&proxy, "/plain/x", "https://app.example.com", "PUT")
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "backend options");
    let r = client()
        .get(proxy.url("/plain/own-cors"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The backend's own CORS headers arrive as it sent them, and the proxy adds none (nor a
    // Vary of its own).
    let mut sent: Vec<String> = r
        .headers()
        .iter()
        .filter(|(k, _)| k.as_str().starts_with("access-control-"))
        .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap()))
        .collect();
    sent.sort();
    assert_eq!(
        sent,
        [
            "access-control-allow-credentials: true",
            "access-control-allow-origin: *",
            "access-control-expose-headers: x-secret",
        ]
    );
    assert_eq!(header(&r, "vary"), None);
    assert_eq!(backend.requests().len(), 2);
}

#[tokio::test]
async fn several_origin_headers_are_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_backend, proxy) = setup().await;
    let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(b"GET /api/x HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example.com\r\nOrigin: https://app.example.com\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        !out.to_ascii_lowercase()
            .contains("access-control-allow-origin"),
        "{out}"
    );
}

#[tokio::test]
async fn report_only_serves_as_the_fallback_and_counts_would_deny() {
    let backend = Backend::start("b").await;
    let yaml = format!(
        r#"
listen: LISTEN
admin: {{listen: "ADMIN"}}
upstreams:
  b: {{servers: ["{}"]}}
cors_policies:
  legacy: {{allow_origins: any, allow_methods: [GET, PUT]}}
  strict:
    allow_origins: [https://app.example.com]
    allow_methods: [GET, PUT]
    mode: report_only
    report_only_fallback: legacy
routes:
  - {{name: api, upstream: b, cors: strict}}
"#,
        backend.addr
    );
    let proxy = Proxy::start(&yaml).await;
    // On the new allowlist: served by it.
    let r = client()
        .get(proxy.url("/x"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://app.example.com")
    );
    // Not on it: still served, as the permissive policy allows.
    let r = client()
        .get(proxy.url("/x"))
        .header("origin", "https://old-partner.example")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "access-control-allow-origin"), Some("*"));
    assert_eq!(header(&r, "vary"), Some("Origin"));
    let r = preflight(&proxy, "/x", "https://old-partner.example", "PUT")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(header(&r, "access-control-allow-origin"), Some("*"));
    let metrics = proxy.metrics().await;
    assert!(
        metrics.contains(
            r#"crossgate_cors_decisions_total{decision="would_deny",kind="actual",route="api"} 1"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains(r#"crossgate_cors_decisions_total{decision="would_deny",kind="preflight",route="api"} 1"#), "{metrics}");
    assert!(
        metrics.contains(
            r#"crossgate_cors_decisions_total{decision="allowed",kind="actual",route="api"} 1"#
        ),
        "{metrics}"
    );
}
