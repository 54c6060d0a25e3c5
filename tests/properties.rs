//! Property tests: wildcard origins never match across a DNS label boundary, and the JSONP
//! wrapper's output does not depend on how the body is split into chunks.

#[path = "common/jsonp_oracle.rs"]
mod jsonp_oracle;

use crossgate::jsonp::{validate, Wrap, Wrapper};
use crossgate::origin::{Origin, Wildcard};
use proptest::prelude::*;

fn label() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?"
}

proptest! {
    /// `https://*.<suffix>` matches `<labels>.<suffix>` and nothing that merely ends with the
    /// suffix's text or contains it elsewhere.
    #[test]
    fn wildcards_match_whole_labels_only(
        suffix in prop::collection::vec(label(), 1..3),
        prefix in prop::collection::vec(label(), 1..3),
        glue in "[a-z0-9]{1,4}",
        tail in label(),
    ) {
        let suffix = suffix.join(".");
        let w = Wildcard::parse(&format!("https://*.{suffix}")).unwrap();
        let matches = |host: &str| {
            let o = format!("https://{host}");
            Origin::parse(&o).is_some_and(|o| w.matches(&o))
        };
        let labels = prefix.join(".");
        let inside = format!("{labels}.{suffix}");
        // The suffix itself, glued text in front of it, and the suffix followed by more labels.
        let glued = format!("{glue}{suffix}");
        let extended = format!("{labels}.{suffix}.{tail}");
        let suffix_then_more = format!("{suffix}.{tail}");
        // When the tail ends the host with the suffix again, it is a real subdomain.
        prop_assume!(!suffix_then_more.ends_with(&format!(".{suffix}")));
        prop_assert!(matches(&inside), "{}", inside);
        for host in [&suffix, &glued, &extended, &suffix_then_more] {
            prop_assert!(!matches(host), "{}", host);
        }
    }

    /// Any split of any body gives exactly prefix + escaped body + suffix.
    #[test]
    fn the_wrapper_is_independent_of_chunking(
        body in prop::collection::vec(prop_oneof![
            4 => any::<u8>(),
            1 => Just(0xE2u8),
            1 => Just(0x80u8),
            1 => Just(0xA8u8),
            1 => Just(0xA9u8),
        ], 0..200),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let cb = validate("cb").unwrap();
        let run = |chunks: &[&[u8]]| {
            let mut w = Wrapper::new(&cb, Wrap::Plain, 200);
            let mut out = Vec::new();
            if chunks.is_empty() {
                out.extend_from_slice(&w.feed(None, true).unwrap_or_default());
            }
            for (i, c) in chunks.iter().enumerate() {
                out.extend_from_slice(&w.feed(Some(c), i + 1 == chunks.len()).unwrap_or_default());
            }
            out
        };
        let whole = run(&[&body[..]]);
        // The expected output, computed independently of the wrapper.
        let expected = jsonp_oracle::expected(&body);
        prop_assert_eq!(&whole, &expected);
        let points = cuts.iter().map(|c| c.index(body.len() + 1)).collect();
        let chunks = jsonp_oracle::split_at_points(&body, points);
        prop_assert_eq!(run(&chunks), expected);
    }
}

#[path = "common/path_oracle.rs"]
mod path_oracle;

proptest! {
    /// For any raw path made of separators, dots, escapes and names: what crossgate forwards,
    /// decided again, lands on the same route; a backend that decodes it once reads exactly
    /// the routed path; and `explain` names the same route (`reject` and
    /// `forward_normalized`; `keep` only the first).
    #[test]
    fn the_forwarded_path_routes_where_the_request_was_routed(
        pieces in prop::collection::vec(prop::sample::select(path_oracle::PIECES), 0..12),
    ) {
        let raw = format!("/{}", pieces.concat());
        for (mode, name) in [
            (crossgate::path::AmbiguousPaths::Reject, "reject"),
            (crossgate::path::AmbiguousPaths::ForwardNormalized, "forward_normalized"),
            (crossgate::path::AmbiguousPaths::Keep, "keep"),
        ] {
            path_oracle::check(&path_oracle::rules(name), mode, &raw);
        }
    }
}

/// The shapes that split backends, each checked by the same oracle in every mode: for each,
/// every modelled backend reads the forwarded path where crossgate routed it, or crossgate
/// refuses it (a random search finds these rarely: they need a route name on each side of
/// the separator).
#[test]
fn known_desync_shapes_route_where_every_modelled_backend_reads_them() {
    let shapes = [
        "/public%5C..%5Capi/users",
        "/public%5c..%5capi/users",
        "/public\\..\\api/users",
        "/public/..%2Fapi/users",
        "/public%2F..%2Fapi/users",
        "/public/%2e%2e/api/users",
        "/public/.%2e/api/users",
        "/public/..;x=1/api/users",
        "/public%252F..%252Fapi/users",
        "/public%25252F..%25252Fapi",
        "//api/users",
        "/public//../api/users",
        "/;x/api/users",
        "/api;x=1/users",
        "/public/users;x=1",
        "/public/users%3Bx=1",
        "/re/abc;x",
        "/re/abc/..",
        "/api/../public/users",
        "/public/users/",
        "/public/users%2F",
    ];
    for (mode, name) in [
        (crossgate::path::AmbiguousPaths::Reject, "reject"),
        (
            crossgate::path::AmbiguousPaths::ForwardNormalized,
            "forward_normalized",
        ),
        (crossgate::path::AmbiguousPaths::Keep, "keep"),
    ] {
        let rules = path_oracle::rules(name);
        for raw in shapes {
            path_oracle::check(&rules, mode, raw);
        }
    }
}

/// Rules with a route that strips its prefix, under `mode`.
fn stripping_rules(mode: &str) -> crossgate::rules::Rules {
    crossgate::test_util::rules_from_yaml(&format!(
        "listen: 127.0.0.1:0\nserver: {{ambiguous_paths: {mode}}}\nupstreams:\n  b: {{servers: [127.0.0.1:9]}}\ncors_policies:\n  app: {{allow_origins: [https://app.example.com]}}\nroutes:\n  - {{name: api, path: /api/, upstream: b, cors: app, strip_prefix: true}}\n  - {{name: rest, path: /, upstream: b, cors: app}}\n"
    ))
}

proptest! {
    /// A route that strips its prefix forwards the path it was routed on without it: every
    /// modelled backend reads exactly the routed path less the prefix (what was routed is what
    /// is forwarded), as `explain` reports it.
    #[test]
    fn a_stripped_prefix_forwards_the_routed_path_less_the_prefix(
        pieces in prop::collection::vec(prop::sample::select(path_oracle::PIECES), 0..10),
    ) {
        let raw = format!("/api/{}", pieces.concat());
        for (mode, name) in [
            (crossgate::path::AmbiguousPaths::Reject, "reject"),
            (crossgate::path::AmbiguousPaths::ForwardNormalized, "forward_normalized"),
        ] {
            let Ok(t) = crossgate::path::target(&raw, true, mode) else { continue };
            let rules = stripping_rules(name);
            let Some(route) = rules.find_index("x", t.key()) else { continue };
            if rules.routes[route].name != "api" {
                continue;
            }
            let url_path = !raw.contains(['?', '#'])
                && !raw.contains(|c: char| c.is_whitespace() || c.is_control() || !c.is_ascii());
            if !url_path {
                continue;
            }
            let e = crossgate::explain::explain(
                &rules,
                &format!("http://x{raw}"),
                "https://app.example.com",
                "GET",
                &[],
                false,
            );
            let Ok(e) = e else { continue };
            let forwarded = e
                .report
                .lines()
                .find_map(|l| l.strip_prefix("path: routed and forwarded as "))
                .and_then(|l| l.split(' ').next())
                .unwrap_or_else(|| panic!("{raw:?}: no forwarded path in {}", e.report));
            let rest = &t.key()["/api".len()..];
            let want = if rest.starts_with('/') { rest.to_owned() } else { format!("/{rest}") };
            for (backend, read) in path_oracle::backends(forwarded) {
                if backend == "twice" && name == "forward_normalized" {
                    continue;
                }
                prop_assert_eq!(
                    String::from_utf8_lossy(&read),
                    want.as_str(),
                    "{} {:?} forwarded as {:?}: the {} backend", name, raw, forwarded, backend
                );
            }
        }
    }
}
