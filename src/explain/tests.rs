use super::*;

fn rules() -> Rules {
    let yaml = "listen: 127.0.0.1:0\nupstreams:\n  b: {servers: [127.0.0.1:9]}\nroutes:\n  - name: api\n    path: /api/\n    upstream: b\n    cors: {allow_origins: ['https://*.example.com'], allow_methods: [GET, PUT], allow_headers: [x-custom], allow_credentials: true}\n  - {name: public, path: /public/, upstream: b, cors: {allow_origins: any}}\n";
    crate::test_util::rules_from_yaml(yaml)
}

fn ex(url: &str, origin: &str, method: &str, headers: &[&str], credentials: bool) -> Explanation {
    let headers: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    explain(&rules(), url, origin, method, &headers, credentials).unwrap()
}

#[test]
fn a_simple_allowed_request() {
    // The query is not part of the path routes match; `get` is normalized like Fetch does.
    let e = ex(
        "https://api.test/api/x?q=1",
        "https://a.example.com",
        "get",
        &[],
        true,
    );
    assert!(e.allowed, "{}", e.report);
    assert!(
        e.report
            .contains("allowed by allow_origins entry \"https://*.example.com\""),
        "{}",
        e.report
    );
    assert!(e.report.contains("preflight: no"), "{}", e.report);
    assert!(
        e.report
            .contains("access-control-allow-origin: https://a.example.com"),
        "{}",
        e.report
    );
}

#[test]
fn a_preflighted_request_shows_the_preflight_answer() {
    let e = ex(
        "https://api.test/api/x",
        "https://a.example.com",
        "PUT",
        &["X-Custom: 1", "Content-Type: application/json"],
        false,
    );
    assert!(!e.allowed, "content-type is not listed: {}", e.report);
    assert!(e.report.contains("preflight: yes (method PUT is not CORS-safelisted; header content-type is not CORS-safelisted; header x-custom is not CORS-safelisted)"), "{}", e.report);
    assert!(e.report.contains("preflight answer: 403"), "{}", e.report);
    let e = ex(
        "https://api.test/api/x",
        "https://a.example.com",
        "PUT",
        &["X-Custom: 1"],
        false,
    );
    assert!(e.allowed, "{}", e.report);
    assert!(e.report.contains("preflight answer: 204"), "{}", e.report);
}

#[test]
fn credentials_need_an_exact_origin() {
    let e = ex(
        "https://api.test/public/x",
        "https://a.example.com",
        "GET",
        &[],
        false,
    );
    assert!(e.allowed, "{}", e.report);
    let e = ex(
        "https://api.test/public/x",
        "https://a.example.com",
        "GET",
        &[],
        true,
    );
    assert!(
        !e.allowed,
        "the browser refuses * with credentials: {}",
        e.report
    );
    assert!(
        e.report.contains("credentials: refused by the browser"),
        "{}",
        e.report
    );
}

#[test]
fn same_origin_needs_no_cors() {
    let e = ex(
        "https://a.example.com:443/api/x",
        "https://a.example.com",
        "PUT",
        &[],
        false,
    );
    assert!(
        e.allowed && e.report.starts_with("same-origin"),
        "{}",
        e.report
    );
}

#[test]
fn refusals_say_why() {
    let e = ex(
        "https://api.test/api/x",
        "https://example.com.evil.io",
        "GET",
        &[],
        false,
    );
    assert!(!e.allowed);
    assert!(
        e.report
            .contains("matches no allow_origins entry of policy routes[0].cors"),
        "{}",
        e.report
    );
    let e = ex(
        "https://api.test/other",
        "https://a.example.com",
        "GET",
        &[],
        false,
    );
    assert!(!e.allowed);
    assert!(e.report.contains("route: none matches"), "{}", e.report);
    assert!(explain(
        &rules(),
        "ftp://x/",
        "https://a.example.com",
        "GET",
        &[],
        false
    )
    .is_err());
}
