//! Compiling configs: what each section accepts, refuses and warns about.

use super::*;

use crate::test_util::try_rules_from_yaml as compile_str;

const BASE: &str = "listen: 127.0.0.1:0\nupstreams:\n  api:\n    servers: [127.0.0.1:9]\n";

#[test]
fn first_matching_route_wins_by_host_and_path() {
    let rules = compile_str(&format!(
        "{BASE}routes:\n  - {{name: exact, host: api.example.com, path: {{exact: /health}}, upstream: api}}\n  - {{name: sub, host: '*.example.com', path: /v1/, upstream: api}}\n  - {{name: re, path: {{regex: '/items/[0-9]+'}}, upstream: api}}\n  - {{name: all, upstream: api}}\n"
    ))
    .unwrap();
    let name = |h: &str, p: &str| rules.find(h, p).map(|r| r.name.clone());
    assert_eq!(name("api.example.com", "/health").as_deref(), Some("exact"));
    assert_eq!(name("API.example.com", "/health").as_deref(), Some("exact"));
    assert_eq!(name("api.example.com", "/health/x").as_deref(), Some("all"));
    assert_eq!(name("a.example.com", "/v1/x").as_deref(), Some("sub"));
    assert_eq!(name("example.com", "/v1/x").as_deref(), Some("all"));
    assert_eq!(name("x", "/items/12").as_deref(), Some("re"));
    assert_eq!(name("x", "/items/12/more").as_deref(), Some("all"));
}

#[test]
fn a_dotted_path_is_refused_by_default_and_routed_where_it_resolves_when_normalized() {
    let routes = "routes:\n  - {name: public, path: /public/, upstream: api}\n  - {name: admin, path: /admin/, upstream: api}\n";
    let rules = compile_str(&format!("{BASE}{routes}")).unwrap();
    assert!(rules.find("x", "/public/..%2Fadmin/x").is_none());
    assert_eq!(
        rules.find("x", "/public/a%20b").map(|r| r.name.as_str()),
        Some("public")
    );
    let rules = compile_str(&format!(
        "{BASE}server: {{ambiguous_paths: forward_normalized}}\n{routes}"
    ))
    .unwrap();
    assert_eq!(
        rules
            .find("x", "/public/..%2Fadmin/x")
            .map(|r| r.name.as_str()),
        Some("admin")
    );
    assert_eq!(
        rules
            .find("x", "/public/..;/other")
            .map(|r| r.name.as_str()),
        None
    );
}

#[test]
fn keep_is_a_warning_that_names_the_risk() {
    let rules = compile_str(&format!(
        "{BASE}server: {{ambiguous_paths: keep}}\nroutes:\n  - {{name: a, upstream: api}}\n"
    ))
    .unwrap();
    let w = rules
        .warnings
        .iter()
        .find(|w| w.path == "server.ambiguous_paths")
        .expect("a warning");
    assert!(w.to_string().contains("forwarded as sent"), "{w}");
}

#[test]
fn hosts_compare_without_a_trailing_dot() {
    let rules = compile_str(&format!(
        "{BASE}routes:\n  - {{name: a, host: api.example.com., upstream: api}}\n"
    ))
    .unwrap();
    assert!(rules.find("api.example.com", "/").is_some());
}

#[test]
fn a_websocket_under_an_any_policy_needs_an_explicit_opt_in() {
    let route = |ws: &str| {
        format!("{BASE}routes:\n  - name: live\n    upstream: api\n    cors: {{allow_origins: any}}\n    websocket: {ws}\n")
    };
    let e = compile_str(&route("{}")).err().expect("refused");
    assert_eq!(e.path, "routes[0].websocket");
    assert!(e.to_string().contains("hijacking"), "{e}");
    assert!(e.to_string().contains("allow_any_origin: true"), "{e}");
    let rules = compile_str(&route("{allow_any_origin: true}")).unwrap();
    assert!(rules
        .warnings
        .iter()
        .any(|w| w.path == "routes[0].websocket.allow_any_origin"));
}

#[test]
fn no_route_matches_when_nothing_catches_all() {
    let rules = compile_str(&format!(
        "{BASE}routes:\n  - {{name: a, path: /api/, upstream: api}}\n"
    ))
    .unwrap();
    assert!(rules.find("x", "/other").is_none());
}

#[test]
fn credentials_with_any_origin_is_refused_with_a_fix() {
    let e = compile_str(&format!(
        "{BASE}routes:\n  - name: a\n    upstream: api\n    cors:\n      allow_origins: any\n      allow_credentials: true\n"
    ))
    .err()
    .unwrap();
    assert_eq!(e.path, "routes[0].cors.allow_credentials");
    assert_eq!(e.location, Some((10, 26)));
    assert!(e.fix.contains("list the origins"), "{e}");
}

#[test]
fn unknown_upstream_suggests_the_closest() {
    let e = compile_str(&format!("{BASE}routes:\n  - {{name: a, upstream: apii}}\n"))
        .err()
        .unwrap();
    assert_eq!(e.path, "routes[0].upstream");
    assert!(e.fix.contains("did you mean `api`"), "{e}");
}

#[test]
fn bad_origin_names_path_line_and_value() {
    let e = compile_str(&format!(
        "{BASE}routes:\n  - name: a\n    upstream: api\n    cors:\n      allow_origins:\n        - https://ok.example\n        - https://app.example.com/\n"
    ))
    .err()
    .unwrap();
    assert_eq!(e.path, "routes[0].cors.allow_origins[1]");
    assert_eq!(e.location.map(|l| l.0), Some(11));
    assert!(e.message.contains("\"https://app.example.com/\""), "{e}");
}

#[test]
fn max_age_above_browser_caps_is_a_warning() {
    let rules = compile_str(&format!(
        "{BASE}routes:\n  - name: a\n    upstream: api\n    cors: {{allow_origins: any, max_age: 90000}}\n"
    ))
    .unwrap();
    let w = rules
        .warnings
        .iter()
        .find(|w| w.path == "routes[0].cors.max_age")
        .expect("a max_age warning");
    assert!(w.message.contains("Firefox"), "{w}");
}

#[test]
fn jsonp_on_a_credentialed_route_needs_an_acknowledgement() {
    let yaml = |ack: &str| {
        format!("{BASE}routes:\n  - name: a\n    upstream: api\n    cors: {{allow_origins: [https://a.test], allow_credentials: true}}\n    jsonp: {{{ack}}}\n")
    };
    let e = compile_str(&yaml("")).err().unwrap();
    assert_eq!(e.path, "routes[0].jsonp");
    assert!(e.fix.contains("acknowledge_credentials: true"), "{e}");
    assert!(compile_str(&yaml("acknowledge_credentials: true")).is_ok());
}

#[test]
fn a_regex_that_matches_null_is_an_error() {
    let e = compile_str(&format!("{BASE}routes:\n  - name: a\n    upstream: api\n    cors:\n      allow_origins: [{{regex: '.*'}}]\n")).err().unwrap();
    assert_eq!(e.path, "routes[0].cors.allow_origins[0].regex");
    assert!(e.message.contains("matches the origin `null`"), "{e}");
}

#[test]
fn lints_warn_about_broad_regexes_shadowed_routes_and_unchecked_upstreams() {
    let rules = compile_str(&format!(
        "{BASE}routes:\n  - name: all\n    upstream: api\n    cors: {{allow_origins: [{{regex: 'https?://.+'}}]}}\n  - {{name: never, path: /api/, upstream: api}}\n  - {{name: other-host, host: b.test, path: /x/, upstream: api}}\n"
    ))
    .unwrap();
    let w: Vec<String> = rules
        .warnings
        .iter()
        .map(|w| format!("{} {}", w.path, w.message))
        .collect();
    assert!(
        w.iter().any(|w| w.contains("matches any http(s) origin")),
        "{w:?}"
    );
    assert!(
        w.iter()
            .any(|w| w.starts_with("routes[1] ")
                && w.contains("\"never\" is never used: route \"all\"")),
        "{w:?}"
    );
    assert!(
        w.iter().any(|w| w.starts_with("routes[2] ")),
        "any-host / covers b.test/x/: {w:?}"
    );
    assert!(
        w.iter()
            .any(|w| w.starts_with("upstreams.api ") && w.contains("no health check")),
        "{w:?}"
    );
    // A narrower route first shadows nothing.
    let rules = compile_str(&format!("{BASE}routes:\n  - {{name: a, path: /api/, upstream: api}}\n  - {{name: b, upstream: api}}\n")).unwrap();
    assert!(rules
        .warnings
        .iter()
        .all(|w| !w.message.contains("never used")));
}

#[test]
fn an_empty_upstream_sni_is_refused() {
    let e = compile_str("listen: 127.0.0.1:0\nupstreams:\n  api: {servers: [127.0.0.1:9], tls: {sni: ''}}\nroutes:\n  - {name: a, upstream: api}\n").err().unwrap();
    assert_eq!(e.path, "upstreams.api.tls.sni");
}

#[test]
fn named_policies_are_shared() {
    let rules = compile_str(&format!(
        "{BASE}cors_policies:\n  app: {{allow_origins: ['https://a.test']}}\nroutes:\n  - {{name: a, path: /a/, upstream: api, cors: app}}\n  - {{name: b, path: /b/, upstream: api, cors: app}}\n"
    ))
    .unwrap();
    assert!(Arc::ptr_eq(
        rules.routes[0].cors.as_ref().unwrap(),
        rules.routes[1].cors.as_ref().unwrap()
    ));
}

#[test]
fn a_route_named_like_a_reserved_metric_label_is_refused() {
    for name in ["none", "beacon"] {
        let e = compile_str(&format!(
            "{BASE}routes:\n  - {{name: {name}, upstream: api}}\n"
        ))
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.contains(&format!("the route name \"{name}\" is reserved")),
            "{e}"
        );
        assert!(e.contains("routes[0].name"), "{e}");
    }
}

#[test]
fn a_url_in_servers_is_named_as_a_url_not_a_dns_failure() {
    let e = compile_str(
        "listen: 127.0.0.1:0\nupstreams:\n  api:\n    servers: [\"http://127.0.0.1:9\"]\nroutes:\n  - {name: r, upstream: api}\n",
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("a URL, not host:port: write it without http://"),
        "{e}"
    );
    assert!(!e.to_lowercase().contains("name or service"), "{e}");
}

#[test]
fn an_unescaped_dot_in_an_origin_regex_host_is_refused_with_credentials_and_warned_without() {
    let policy = |extra: &str, credentials: bool| {
        format!("{BASE}routes:\n  - name: a\n    upstream: api\n    cors:\n      allow_credentials: {credentials}\n      allow_origins: [{{regex: 'https://[a-z]+.shop.test'{extra}}}]\n")
    };
    let e = compile_str(&policy("", true)).err().unwrap();
    assert_eq!(e.path, "routes[0].cors.allow_origins[0].regex");
    assert!(e.message.contains("unescaped `.` in its host"), "{e}");
    assert!(e.message.contains("https://evilxshop.test"), "{e}");
    assert!(e.message.contains("allows credentials"), "{e}");
    assert!(e.fix.contains("allow_unescaped_dot: true"), "{e}");
    let dot = |rules: &Rules| {
        rules
            .warnings
            .iter()
            .any(|w| w.message.contains("unescaped `.`"))
    };
    let rules = compile_str(&policy("", false)).unwrap();
    assert!(dot(&rules), "warned without credentials");
    // Acknowledged: loads, with nothing to say.
    let rules = compile_str(&policy(", allow_unescaped_dot: true", true)).unwrap();
    assert!(!dot(&rules));
    // The acknowledgement is a boolean.
    let e = compile_str(&policy(", allow_unescaped_dot: maybe", true))
        .err()
        .unwrap();
    assert!(e.to_string().contains("allow_unescaped_dot"), "{e}");
}

#[test]
fn a_regex_route_after_a_prefix_route_that_covers_it_is_never_used() {
    let rules = compile_str(&format!("{BASE}routes:\n  - {{name: api, path: /api/, upstream: api}}\n  - {{name: versions, path: {{regex: '/api/v[0-9]+/.*'}}, upstream: api}}\n  - {{name: other, path: {{regex: '/(api|app)/x'}}, upstream: api}}\n  - {{name: case, path: {{regex: '(?i)/api/y'}}, upstream: api}}\n")).unwrap();
    let never: Vec<&str> = rules
        .warnings
        .iter()
        .filter(|w| w.message.contains("never used"))
        .map(|w| w.path.as_str())
        .collect();
    assert_eq!(never, ["routes[1]"], "{:?}", rules.warnings);
}

#[test]
fn allow_headers_star_as_a_string_or_a_list_gets_the_same_fix() {
    for value in ["'*'", "['*']"] {
        let e = compile_str(&format!("{BASE}routes:\n  - name: a\n    upstream: api\n    cors: {{allow_origins: [https://a.example], allow_headers: {value}}}\n"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("use `allow_headers: mirror`"), "{value}: {e}");
        assert!(!e.contains("write [\"*\"]"), "{value}: {e}");
    }
}
