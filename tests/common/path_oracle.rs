//! "What is routed is what is forwarded", checked for one raw path: shared by
//! tests/properties.rs and fuzz/fuzz_targets/path.rs (included with `#[path]`).

use crossgate::path::{target, AmbiguousPaths};
use crossgate::rules::Rules;

/// Routes of every kind (prefix, exact, regex, host) and no catch-all, under `mode`.
pub fn rules(mode: &str) -> Rules {
    let yaml = format!(
        "listen: 127.0.0.1:0\nserver: {{ambiguous_paths: {mode}}}\nupstreams:\n  b: {{servers: [127.0.0.1:9]}}\ncors_policies:\n  app: {{allow_origins: [https://app.example.com]}}\n  public: {{allow_origins: any}}\nroutes:\n  - {{name: api, path: /api/, upstream: b, cors: app}}\n  - {{name: exact, path: {{exact: /public/users}}, upstream: b, cors: app}}\n  - {{name: re, path: {{regex: '/re/[a-z]+'}}, upstream: b, cors: app}}\n  - {{name: public, path: /public/, upstream: b, cors: public}}\n"
    );
    crossgate::test_util::rules_from_yaml(&yaml)
}

// Independent models of how real backends read a path, written from their documented
// behaviour (none of crossgate's own decoding or normalizing is used here):
//
// - `decode_once`: percent-decoded once (werkzeug/Flask, most frameworks' routers);
// - `decode_resolve`: decoded, then dot segments removed (RFC 3986 §5.2.4; Express's
//   `path.normalize`-style routers);
// - `windows`: decoded, `\` read as `/`, dots removed (IIS, file servers on Windows);
// - `merging`: decoded, slashes merged, dots removed (nginx with `merge_slashes on`, the
//   default; Go's `path.Clean`);
// - `tomcat`: `;parameters` stripped from each segment before decoding, then decoded and
//   dots removed (Tomcat, Jetty: the CVE-2020-1957 shape);
// - `spring`: decoded, then `;parameters` stripped and dots removed (frameworks that strip
//   path parameters from the decoded path);
// - `twice`: decoded twice (a backend behind another decoding hop).

/// `%XX` (two hex digits) decoded once; any other `%` kept as it is.
fn pct_decode(p: &[u8]) -> Vec<u8> {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(p.len());
    let mut i = 0;
    while i < p.len() {
        if p[i] == b'%' && i + 2 < p.len() {
            if let (Some(h), Some(l)) = (hex(p[i + 1]), hex(p[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(p[i]);
        i += 1;
    }
    out
}

/// RFC 3986 §5.2.4 on a path of `/`-separated segments.
fn remove_dots(p: &[u8]) -> Vec<u8> {
    let mut out: Vec<&[u8]> = Vec::new();
    let segs: Vec<&[u8]> = p.split(|&c| c == b'/').collect();
    let last = segs.len().saturating_sub(1);
    let mut trailing = false;
    for (i, seg) in segs.iter().enumerate().skip(1) {
        trailing = false;
        match *seg {
            b"." => trailing = i == last,
            b".." => {
                out.pop();
                trailing = i == last;
            }
            s => out.push(s),
        }
    }
    let mut r = Vec::new();
    for s in &out {
        r.push(b'/');
        r.extend_from_slice(s);
    }
    if trailing || r.is_empty() {
        r.push(b'/');
    }
    r
}

fn merge_slashes(p: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(p.len());
    for &c in p {
        if !(c == b'/' && out.last() == Some(&b'/')) {
            out.push(c);
        }
    }
    out
}

fn strip_params(p: &[u8]) -> Vec<u8> {
    p.split(|&c| c == b'/')
        .map(|seg| seg.split(|&c| c == b';').next().unwrap_or(b""))
        .collect::<Vec<_>>()
        .join(&b'/')
}

/// What each modelled backend reads for a forwarded path, by name.
pub fn backends(forwarded: &str) -> [(&'static str, Vec<u8>); 7] {
    let p = forwarded.as_bytes();
    let decoded = pct_decode(p);
    let backslashes: Vec<u8> = decoded
        .iter()
        .map(|&c| if c == b'\\' { b'/' } else { c })
        .collect();
    [
        ("decode_once", decoded.clone()),
        ("decode_resolve", remove_dots(&decoded)),
        ("windows", remove_dots(&backslashes)),
        ("merging", remove_dots(&merge_slashes(&decoded))),
        ("tomcat", remove_dots(&pct_decode(&strip_params(p)))),
        ("spring", remove_dots(&strip_params(&decoded))),
        ("twice", pct_decode(&decoded)),
    ]
}

/// For `raw` under `rules` (of `mode`): the path crossgate forwards, decided again, routes
/// to the same route; every modelled backend ([`backends`]) that reads it routes it where
/// crossgate did (`reject` and `forward_normalized`); a backend that decodes it once reads
/// exactly the routed path; and `explain` names the same route. A path refused in `reject`
/// mode for an ambiguity of routing is one that two modelled backends read differently.
pub fn check(rules: &Rules, mode: AmbiguousPaths, raw: &str) {
    let name = |key: &[u8]| {
        rules
            .find_index("x", &String::from_utf8_lossy(key))
            .map(|i| rules.routes[i].name.clone())
    };
    let t = match target(raw, true, mode) {
        Ok(t) => t,
        Err(why) => {
            assert!(
                mode != AmbiguousPaths::Keep,
                "keep refuses nothing: {raw:?}"
            );
            let read: Vec<Vec<u8>> = backends(raw).into_iter().map(|(_, r)| r).collect();
            use crossgate::path::Ambiguity::*;
            // (An encoded slash is refused for backends that split the path before decoding
            // it, which read other segments though the same characters: not modelled as a
            // string. Control bytes, bad escapes and raw non-UTF-8 are refused outright.)
            if matches!(
                why,
                Backslash | DotSegment | EmptySegment | PathParameter | DoubleEncoded
            ) {
                assert!(
                    read.iter().any(|r| *r != read[0]),
                    "{raw:?} refused ({why}) though every modelled backend reads it alike"
                );
            }
            return;
        }
    };
    let forwarded = t.forward().unwrap_or(raw);
    if mode != AmbiguousPaths::Keep {
        for (backend, read) in backends(forwarded) {
            if backend == "twice" && mode == AmbiguousPaths::ForwardNormalized {
                // forward_normalized decodes once and forwards `%25XX` as it came (README):
                // only `reject` (which refuses it) holds for a backend that decodes twice.
                continue;
            }
            assert_eq!(
                name(&read),
                name(t.key().as_bytes()),
                "{raw:?} forwarded as {forwarded:?}: the {backend} backend reads {:?}",
                String::from_utf8_lossy(&read)
            );
        }
    }
    let forwarded = t.forward().unwrap_or(raw);
    let again = target(forwarded, true, mode)
        .unwrap_or_else(|why| panic!("{raw:?} forwarded as {forwarded:?} is refused: {why}"));
    assert_eq!(
        name(again.key().as_bytes()),
        name(t.key().as_bytes()),
        "{raw:?} forwarded as {forwarded:?}"
    );
    if mode != AmbiguousPaths::Keep {
        assert_eq!(
            String::from_utf8_lossy(&backends(forwarded)[0].1),
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
        match name(t.key().as_bytes()) {
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
    "%5c", "\\", ";", ";x=1", "%3b", "%25", "%252F", "%20", "%C3%A9", "%", "%+f", "%00", "%3B",
    "%3F", "é", "*",
];
