//! The CORS engine's rules, one test each, without sockets.

use super::*;
use crate::origin::{canonical_exact, Wildcard};

fn list(entries: &[&str]) -> AllowOrigin {
    let mut l = OriginList::default();
    for e in entries {
        if e.contains('*') {
            l.push_wildcard(Wildcard::parse(e).unwrap(), e.to_string());
        } else {
            l.push_exact(canonical_exact(e).unwrap(), e.to_string());
        }
    }
    AllowOrigin::List(l)
}

fn spec(origins: AllowOrigin) -> PolicySpec {
    PolicySpec {
        name: "app".into(),
        origins,
        methods: vec![Method::GET, Method::PUT],
        headers: Some(vec![
            HeaderName::from_static("x-custom"),
            HeaderName::from_static("content-type"),
        ]),
        expose: vec![HeaderName::from_static("x-request-id")],
        credentials: false,
        max_age: Some(600),
        private_network: false,
        upstream_headers: UpstreamHeaders::Override,
        report_only: None,
    }
}

fn req(method: &str, headers: &[(&str, &str)]) -> RequestHeader {
    let mut r = RequestHeader::build(method, b"/api/x", None).unwrap();
    for (k, v) in headers {
        r.append_header(k.to_string(), *v).unwrap();
    }
    r
}

fn get<'a>(h: &'a ResponseHeader, name: &str) -> Option<&'a str> {
    h.headers.get(name).map(|v| v.to_str().unwrap())
}

fn response(headers: &[(&str, &str)]) -> ResponseHeader {
    let mut r = ResponseHeader::build(200, None).unwrap();
    for (k, v) in headers {
        r.append_header(k.to_string(), *v).unwrap();
    }
    r
}

#[test]
fn preflight_needs_options_origin_and_request_method() {
    assert!(is_preflight(&req(
        "OPTIONS",
        &[
            ("origin", "https://a.test"),
            ("access-control-request-method", "PUT")
        ]
    )));
    assert!(!is_preflight(&req(
        "OPTIONS",
        &[("origin", "https://a.test")]
    )));
    assert!(!is_preflight(&req(
        "OPTIONS",
        &[("access-control-request-method", "PUT")]
    )));
    assert!(!is_preflight(&req(
        "GET",
        &[
            ("origin", "https://a.test"),
            ("access-control-request-method", "PUT")
        ]
    )));
}

#[test]
fn allowed_preflight_gets_the_full_answer() {
    let p = CorsPolicy::new(spec(list(&["https://app.example.com"])));
    let r = p.preflight(&req(
        "OPTIONS",
        &[
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "X-Custom, content-type"),
        ],
    ));
    assert_eq!(r.header.status.as_u16(), 204);
    assert!(r.body.is_none());
    assert_eq!(
        get(&r.header, "access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(
        get(&r.header, "access-control-allow-methods"),
        Some("GET, PUT")
    );
    assert_eq!(
        get(&r.header, "access-control-allow-headers"),
        Some("x-custom, content-type")
    );
    assert_eq!(get(&r.header, "access-control-max-age"), Some("600"));
    assert_eq!(get(&r.header, "access-control-allow-credentials"), None);
    assert_eq!(
        get(&r.header, "vary"),
        Some("Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
    );
}

#[test]
fn denied_preflight_has_no_allow_headers_and_says_why() {
    let p = CorsPolicy::new(spec(list(&["https://app.example.com"])));
    let r = p.preflight(&req(
        "OPTIONS",
        &[
            ("origin", "https://evil.example"),
            ("access-control-request-method", "PUT"),
        ],
    ));
    assert_eq!(r.header.status.as_u16(), 403);
    assert!(r
        .header
        .headers
        .keys()
        .all(|k| !k.as_str().starts_with("access-control-allow")));
    assert!(r
        .body
        .unwrap()
        .contains("\"https://evil.example\" is not in allow_origins of policy app"));
    assert!(get(&r.header, "vary").unwrap().contains("Origin"));
}

#[test]
fn preflight_for_unlisted_method_or_header_is_refused() {
    let p = CorsPolicy::new(spec(list(&["https://app.example.com"])));
    let r = p.preflight(&req(
        "OPTIONS",
        &[
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "DELETE"),
        ],
    ));
    assert_eq!(r.header.status.as_u16(), 403);
    assert!(r.body.unwrap().contains("method DELETE"));
    let r = p.preflight(&req(
        "OPTIONS",
        &[
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "x-other"),
        ],
    ));
    assert_eq!(r.header.status.as_u16(), 403);
    // POST is CORS-safelisted: the browser allows it whatever Allow-Methods says.
    let r = p.preflight(&req(
        "OPTIONS",
        &[
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "POST"),
        ],
    ));
    assert_eq!(r.header.status.as_u16(), 204);
}

#[test]
fn mirror_echoes_request_headers() {
    let mut s = spec(list(&["https://app.example.com"]));
    s.headers = None;
    let p = CorsPolicy::new(s);
    let r = p.preflight(&req(
        "OPTIONS",
        &[
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "x-anything"),
        ],
    ));
    assert_eq!(
        get(&r.header, "access-control-allow-headers"),
        Some("x-anything")
    );
    assert!(get(&r.header, "vary")
        .unwrap()
        .contains("Access-Control-Request-Headers"));
}

#[test]
fn private_network_only_when_configured_and_asked() {
    let asking = req(
        "OPTIONS",
        &[
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "GET"),
            ("access-control-request-private-network", "true"),
        ],
    );
    let p = CorsPolicy::new(spec(list(&["https://app.example.com"])));
    assert_eq!(
        get(
            &p.preflight(&asking).header,
            "access-control-allow-private-network"
        ),
        None
    );
    let mut s = spec(list(&["https://app.example.com"]));
    s.private_network = true;
    let p = CorsPolicy::new(s);
    assert_eq!(
        get(
            &p.preflight(&asking).header,
            "access-control-allow-private-network"
        ),
        Some("true")
    );
    let not_asking = req(
        "OPTIONS",
        &[
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "GET"),
        ],
    );
    assert_eq!(
        get(
            &p.preflight(&not_asking).header,
            "access-control-allow-private-network"
        ),
        None
    );
}

#[test]
fn any_without_credentials_answers_star() {
    let p = CorsPolicy::new(spec(AllowOrigin::Any));
    let check = p.check_origin(&req("GET", &[("origin", "https://whoever.test")]));
    assert_eq!(check, OriginCheck::Allowed(HeaderValue::from_static("*")));
    let mut resp = response(&[]);
    p.apply_actual(&mut resp, &check);
    assert_eq!(get(&resp, "access-control-allow-origin"), Some("*"));
    // The answer is the same for every request, so nothing to vary on.
    assert_eq!(get(&resp, "vary"), None);
    // Without Origin too: a cached copy must carry `*` as well.
    let check = p.check_origin(&req("GET", &[]));
    let mut resp = response(&[]);
    p.apply_actual(&mut resp, &check);
    assert_eq!(get(&resp, "access-control-allow-origin"), Some("*"));
}

#[test]
fn actual_response_gets_origin_credentials_expose_and_vary() {
    let mut s = spec(list(&["https://app.example.com"]));
    s.credentials = true;
    let p = CorsPolicy::new(s);
    let check = p.check_origin(&req("GET", &[("origin", "https://app.example.com")]));
    let mut resp = response(&[("vary", "Accept-Encoding")]);
    p.apply_actual(&mut resp, &check);
    assert_eq!(
        get(&resp, "access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(get(&resp, "access-control-allow-credentials"), Some("true"));
    assert_eq!(
        get(&resp, "access-control-expose-headers"),
        Some("x-request-id")
    );
    assert_eq!(resp.headers.get_all("vary").iter().count(), 1);
    assert_eq!(get(&resp, "vary"), Some("Accept-Encoding, Origin"));
}

#[test]
fn denied_actual_response_loses_backend_cors_but_keeps_vary() {
    let p = CorsPolicy::new(spec(list(&["https://app.example.com"])));
    let check = p.check_origin(&req("GET", &[("origin", "https://evil.example")]));
    assert!(matches!(check, OriginCheck::Denied(_)));
    let mut resp = response(&[
        ("access-control-allow-origin", "*"),
        ("access-control-allow-credentials", "true"),
    ]);
    p.apply_actual(&mut resp, &check);
    assert!(resp
        .headers
        .keys()
        .all(|k| !k.as_str().starts_with("access-control-")));
    assert_eq!(get(&resp, "vary"), Some("Origin"));
}

#[test]
fn passthrough_keeps_the_backends_own_headers() {
    let mut s = spec(list(&["https://app.example.com"]));
    s.upstream_headers = UpstreamHeaders::Passthrough;
    let p = CorsPolicy::new(s);
    let check = p.check_origin(&req("GET", &[("origin", "https://app.example.com")]));
    let mut resp = response(&[("access-control-allow-origin", "https://backend-choice.test")]);
    p.apply_actual(&mut resp, &check);
    assert_eq!(
        get(&resp, "access-control-allow-origin"),
        Some("https://backend-choice.test")
    );
    let mut resp = response(&[]);
    p.apply_actual(&mut resp, &check);
    assert_eq!(
        get(&resp, "access-control-allow-origin"),
        Some("https://app.example.com")
    );
}

#[test]
fn passthrough_never_lets_the_backends_headers_out_to_a_refused_origin() {
    let mut s = spec(list(&["https://app.example.com"]));
    s.upstream_headers = UpstreamHeaders::Passthrough;
    let p = CorsPolicy::new(s);
    let check = p.check_origin(&req("GET", &[("origin", "https://evil.example")]));
    assert!(matches!(check, OriginCheck::Denied(_)));
    let mut resp = response(&[
        ("access-control-allow-origin", "*"),
        ("access-control-allow-credentials", "true"),
        ("access-control-expose-headers", "x-secret"),
    ]);
    p.apply_actual(&mut resp, &check);
    assert!(resp
        .headers
        .keys()
        .all(|k| !k.as_str().starts_with("access-control-")));
}

#[test]
fn no_origin_gets_no_cors_headers_but_still_varies() {
    let p = CorsPolicy::new(spec(list(&["https://app.example.com"])));
    let check = p.check_origin(&req("GET", &[]));
    assert_eq!(check, OriginCheck::NoOrigin);
    let mut resp = response(&[]);
    p.apply_actual(&mut resp, &check);
    assert_eq!(get(&resp, "access-control-allow-origin"), None);
    assert_eq!(get(&resp, "vary"), Some("Origin"));
}

#[test]
fn several_origin_headers_are_refused() {
    let p = CorsPolicy::new(spec(list(&["https://app.example.com"])));
    let check = p.check_origin(&req(
        "GET",
        &[
            ("origin", "https://app.example.com"),
            ("origin", "https://app.example.com"),
        ],
    ));
    assert!(matches!(check, OriginCheck::Denied(_)));
}

#[test]
fn report_only_serves_what_the_fallback_allows_and_says_it_would_deny() {
    let fallback = Arc::new(CorsPolicy::new(spec(AllowOrigin::Any)));
    let mut s = spec(list(&["https://app.example.com"]));
    s.report_only = Some(fallback);
    let p = CorsPolicy::new(s);
    // Allowed by the strict list: served by it.
    let check = p.check_origin(&req("GET", &[("origin", "https://app.example.com")]));
    assert_eq!(
        check,
        OriginCheck::Allowed(HeaderValue::from_static("https://app.example.com"))
    );
    // Refused by it: served as the fallback allows, flagged.
    let check = p.check_origin(&req("GET", &[("origin", "https://legacy.example")]));
    assert_eq!(check.label(), "would_deny");
    let mut resp = response(&[]);
    p.apply_actual(&mut resp, &check);
    assert_eq!(get(&resp, "access-control-allow-origin"), Some("*"));
    assert_eq!(get(&resp, "vary"), Some("Origin"));
    let pf = p.preflight(&req(
        "OPTIONS",
        &[
            ("origin", "https://legacy.example"),
            ("access-control-request-method", "PUT"),
        ],
    ));
    assert_eq!(pf.header.status.as_u16(), 204);
    assert_eq!(pf.check.label(), "would_deny");
    assert!(p.allows("https://legacy.example"));
}

#[test]
fn vary_merge_never_duplicates_and_respects_star() {
    let origin = HeaderValue::from_static("Origin");
    let mut r = response(&[("vary", "accept-encoding"), ("vary", "origin")]);
    merge_vary(&mut r, &origin);
    assert_eq!(r.headers.get_all("vary").iter().count(), 1);
    assert_eq!(get(&r, "vary"), Some("accept-encoding, origin"));
    let mut r = response(&[("vary", "*")]);
    merge_vary(&mut r, &origin);
    assert_eq!(get(&r, "vary"), Some("*"));
    // One line already naming it (any case): unchanged; several names to add: appended once.
    let mut r = response(&[("vary", "accept-encoding, ORIGIN")]);
    merge_vary(&mut r, &origin);
    assert_eq!(get(&r, "vary"), Some("accept-encoding, ORIGIN"));
    merge_vary(
        &mut r,
        &HeaderValue::from_static("Origin, Referer, Sec-Fetch-Site"),
    );
    assert_eq!(
        get(&r, "vary"),
        Some("accept-encoding, ORIGIN, Referer, Sec-Fetch-Site")
    );
}

#[test]
fn printable_escapes_controls_and_bounds_length() {
    assert_eq!(printable("a\r\nb"), "\"a\\r\\nb\"");
    assert!(printable(&"x".repeat(500)).ends_with("…\""));
}
