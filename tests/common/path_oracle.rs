//! "What is routed is what is forwarded", checked for one raw path: shared by
//! tests/properties.rs and fuzz/fuzz_targets/path.rs (included with `#[path]`).

use crossgate::path::{normalize, target, AmbiguousPaths};
use crossgate::rules::Rules;

/// Routes of every kind (prefix, exact, regex, host) and no catch-all, under `mode`.
pub fn rules(mode: &str) -> Rules {
    let yaml = format!(
        "listen: 127.0.0.1:0\nserver: {{ambiguous_paths: {mode}}}\nupstreams:\n  b: {{servers: [127.0.0.1:9]}}\ncors_policies:\n  app: {{allow_origins: [https://app.example.com]}}\n  public: {{allow_origins: any}}\nroutes:\n  - {{name: api, path: /api/, upstream: b, cors: app}}\n  - {{name: exact, path: {{exact: /public/users}}, upstream: b, cors: app}}\n  - {{name: re, path: {{regex: '/re/[a-z]+'}}, upstream: b, cors: app}}\n  - {{name: public, path: /public/, upstream: b, cors: public}}\n"
    );
    crossgate::test_util::rules_from_yaml(&yaml)
}

/// The one decoding of a path, as a backend that decodes once reads it.
fn decode_once(s: &str) -> Vec<u8> {
    crossgate::percent::decode(s, false).0
}

/// For `raw` under `rules` (of `mode`): the path crossgate forwards, decided again, routes
/// to the same route; a backend that decodes it once reads exactly the routed path; and
/// `explain` names the same route.
pub fn check(rules: &Rules, mode: AmbiguousPaths, raw: &str) {
    let name = |key: &str| {
        rules
            .find_index("x", key)
            .map(|i| rules.routes[i].name.clone())
    };
    let Ok(t) = target(raw, true, mode) else {
        assert!(
            mode != AmbiguousPaths::Keep,
            "keep refuses nothing: {raw:?}"
        );
        assert!(rules.find("x", raw).is_none());
        return;
    };
    let forwarded = t.forward().unwrap_or(raw);
    let again = target(forwarded, true, mode)
        .unwrap_or_else(|why| panic!("{raw:?} forwarded as {forwarded:?} is refused: {why}"));
    assert_eq!(
        name(again.key()),
        name(t.key()),
        "{raw:?} forwarded as {forwarded:?}"
    );
    if mode != AmbiguousPaths::Keep {
        assert_eq!(
            String::from_utf8_lossy(&decode_once(forwarded)),
            t.key(),
            "{raw:?} forwarded as {forwarded:?}"
        );
    }
    if mode == AmbiguousPaths::ForwardNormalized {
        // Even the most path-resolving backend reads the routed path.
        assert_eq!(
            String::from_utf8_lossy(&normalize(forwarded.as_bytes())),
            t.key(),
            "{raw:?} forwarded as {forwarded:?}"
        );
    }
    // explain takes a URL: only paths that a URL carries as they are (no query or fragment,
    // no spaces or control characters, which no request line carries either).
    let url_path = raw.starts_with('/')
        && !raw.contains(['?', '#'])
        && !raw.contains(|c: char| c.is_whitespace() || c.is_control());
    if url_path {
        let e = match crossgate::explain::explain(
            rules,
            &format!("http://x{raw}"),
            "https://app.example.com",
            "GET",
            &[],
            false,
        ) {
            Ok(e) => e,
            // Only for a target no request line can carry (RFC 3986: `<`, `"`, `{`...).
            Err(why) => {
                let uri_char = |c: char| {
                    !c.is_ascii() || c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/%".contains(c)
                };
                assert!(
                    !raw.chars().all(uri_char),
                    "explain refused {raw:?}, a path a request can carry: {why}"
                );
                return;
            }
        };
        match name(t.key()) {
            Some(n) => assert!(
                e.report.contains(&format!("route: {n} ")),
                "{raw:?}: {}",
                e.report
            ),
            None => assert!(e.report.contains("route: none"), "{raw:?}: {}", e.report),
        }
    }
}

/// The pieces raw paths are made of in the property test: separators, dots, escapes of
/// each kind, parameters and plain names.
pub const PIECES: &[&str] = &[
    "/", "//", ".", "..", "api", "public", "users", "re", "x", "%2F", "%2f", "%2E", "%2e", "%5C",
    "%5c", "\\", ";", ";x=1", "%25", "%252F", "%20", "%C3%A9", "%", "%+f", "%00", "%3B", "%3F",
    "é", "*",
];
