//! JSONP: wrapping a JSON response as `callback(...)` for legacy `<script>` clients, safely.
//!
//! - The callback is validated against a strict identifier grammar (dotted names only) and a
//!   length cap; anything else is refused with a non-executable 400.
//! - The output starts with `/**/`, so a callback name can never be read as something else
//!   at the start of a script (the Rosetta Flash family of attacks), and is served as
//!   `application/javascript` with `nosniff`.
//! - U+2028 and U+2029 are valid in JSON strings but were line terminators in JavaScript
//!   before ES2019; they are escaped as `\u2028`/`\u2029`, also when their three UTF-8 bytes
//!   arrive in different chunks. The body is never buffered whole.

mod phases;
mod route;
mod wrap;
pub use phases::{
    caller_allowed, error_body, response_body, response_header, upstream_request, JsonpResult,
    JsonpState, JAVASCRIPT,
};
pub use route::JsonpRoute;
pub use wrap::{decide, is_json, Wrap, Wrapper, ZstdStream, MAX_DECODED};

/// The longest callback name accepted, in bytes.
pub const MAX_CALLBACK: usize = 128;

/// A callback name that matched `^[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$]*)*$`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback(String);

impl Callback {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Which callback names a route accepts (`jsonp.callback_pattern`).
///
/// A dotted name (`app.handlers.done`) runs a method of whatever object the page has at that
/// path, with the JSON as its argument. The answer is cross-origin script, so that is the
/// including page's own code: but a page that includes JSONP from its own origin (or an
/// allowed one) with an attacker-chosen callback lets the attacker call any reachable method
/// of that page (Same Origin Method Execution). `identifier` closes that to plain global
/// functions.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackPattern {
    /// `^[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$]*)*$` (jQuery's and most
    /// libraries' names).
    #[default]
    Dotted,
    /// `^[A-Za-z_$][A-Za-z0-9_$]*$`: a plain function name, no member access.
    Identifier,
}

/// Validates a callback name under the default grammar (dotted names).
pub fn validate(name: &str) -> Result<Callback, String> {
    validate_with(name, CallbackPattern::Dotted)
}

/// Validates a callback name. The error says why, for the 400 body.
pub fn validate_with(name: &str, pattern: CallbackPattern) -> Result<Callback, String> {
    if name.is_empty() {
        return Err("the callback is empty".into());
    }
    if name.len() > MAX_CALLBACK {
        return Err(format!("the callback is longer than {MAX_CALLBACK} bytes"));
    }
    let ident_start = |b: u8| b.is_ascii_alphabetic() || b == b'_' || b == b'$';
    let ident = |b: u8| ident_start(b) || b.is_ascii_digit();
    if pattern == CallbackPattern::Identifier && name.contains('.') {
        return Err(
            "the callback must be a plain function name such as handle (this route's jsonp.callback_pattern is identifier)".into(),
        );
    }
    for part in name.split('.') {
        let bytes = part.as_bytes();
        if bytes.is_empty() || !ident_start(bytes[0]) || !bytes.iter().all(|b| ident(*b)) {
            return Err(
                "the callback must be a JavaScript name such as handle or app.handlers.done".into(),
            );
        }
    }
    Ok(Callback(name.to_owned()))
}

/// Decodes a query component; `None` when the result is not UTF-8 or an escape is broken.
fn percent_decode(s: &str) -> Option<String> {
    match crate::percent::decode(s, true) {
        (bytes, true) => String::from_utf8(bytes).ok(),
        (_, false) => None,
    }
}

/// What the query says about JSONP.
#[derive(Debug, PartialEq, Eq)]
pub enum Ask {
    /// No callback parameter: a plain request.
    No,
    Yes(Callback),
    /// A callback parameter that cannot be used, and why.
    Invalid(String),
}

/// Looks for the callback parameter `param` in a raw query string.
pub fn ask(query: Option<&str>, param: &str, pattern: CallbackPattern) -> Ask {
    // Most requests on a JSONP route are plain ones: nothing to parse.
    let Some(query) = query.filter(|q| !q.is_empty()) else {
        return Ask::No;
    };
    let mut found: Option<&str> = None;
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if percent_decode(k).as_deref() == Some(param) {
            if found.is_some() {
                return Ask::Invalid(format!("the query has several {param} parameters"));
            }
            found = Some(v);
        }
    }
    match found {
        None => Ask::No,
        Some(raw) => match percent_decode(raw) {
            None => Ask::Invalid("the callback is not valid percent-encoded UTF-8".into()),
            Some(name) => match validate_with(&name, pattern) {
                Ok(cb) => Ask::Yes(cb),
                Err(why) => Ask::Invalid(why),
            },
        },
    }
}

/// The query without the callback parameter and the `_` cache-buster that jQuery adds, so the
/// backend and its caches see the plain request. `None` when nothing is left.
pub fn strip_query(query: &str, param: &str) -> Option<String> {
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let k = pair.split_once('=').map_or(*pair, |(k, _)| k);
            let k = percent_decode(k);
            !pair.is_empty() && k.as_deref() != Some(param) && k.as_deref() != Some("_")
        })
        .collect();
    (!kept.is_empty()).then(|| kept.join("&"))
}

/// The origin (`scheme://host[:port]`) of a `Referer` URL.
pub fn referer_origin(referer: &str) -> Option<&str> {
    let scheme_end = referer.find("://")? + 3;
    let end = referer[scheme_end..]
        .find(['/', '?', '#'])
        .map_or(referer.len(), |i| scheme_end + i);
    Some(&referer[..end])
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn cb(s: &str) -> Callback {
        validate(s).unwrap()
    }

    fn wrap_chunks(chunks: &[&[u8]], wrap: Wrap) -> Vec<u8> {
        let mut w = Wrapper::new(&cb("cb"), wrap, 200);
        let mut out = Vec::new();
        for (i, c) in chunks.iter().enumerate() {
            if let Some(b) = w.feed(Some(c), i + 1 == chunks.len()) {
                out.extend_from_slice(&b);
            }
        }
        out
    }

    #[test]
    fn callback_grammar() {
        for ok in ["cb", "_x", "$", "jQuery123_456", "a.b.c", "A1.$b._c"] {
            assert!(validate(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "1a", "a.", ".a", "a..b", "a-b", "alert(1)", "a b", "a[0]", "a;b", "é", "a\nb",
        ] {
            assert!(validate(bad).is_err(), "{bad:?}");
        }
        assert!(validate(&"a".repeat(128)).is_ok());
        assert!(validate(&"a".repeat(129)).is_err());
    }

    #[test]
    fn the_identifier_pattern_refuses_member_access() {
        let id = CallbackPattern::Identifier;
        for ok in ["cb", "_x", "$", "jQuery123_456"] {
            assert!(validate_with(ok, id).is_ok(), "{ok}");
        }
        for bad in ["a.b", "a.b.c", "window.opener.close", "1a", "a-b"] {
            assert!(validate_with(bad, id).is_err(), "{bad:?}");
        }
        assert!(matches!(
            ask(Some("callback=a.b"), "callback", id),
            Ask::Invalid(_)
        ));
        assert_eq!(ask(Some("callback=cb"), "callback", id), Ask::Yes(cb("cb")));
    }

    #[test]
    fn finds_the_callback_in_the_query() {
        assert_eq!(
            ask(Some("callback=cb&x=1"), "callback", CallbackPattern::Dotted),
            Ask::Yes(cb("cb"))
        );
        assert_eq!(
            ask(Some("x=1"), "callback", CallbackPattern::Dotted),
            Ask::No
        );
        assert_eq!(ask(None, "callback", CallbackPattern::Dotted), Ask::No);
        assert_eq!(
            ask(Some("jsonp=a.b"), "jsonp", CallbackPattern::Dotted),
            Ask::Yes(cb("a.b"))
        );
        assert_eq!(
            ask(Some("callback=%24cb"), "callback", CallbackPattern::Dotted),
            Ask::Yes(cb("$cb"))
        );
        assert!(matches!(
            ask(
                Some("callback=alert(1)//"),
                "callback",
                CallbackPattern::Dotted
            ),
            Ask::Invalid(_)
        ));
        assert!(matches!(
            ask(Some("callback="), "callback", CallbackPattern::Dotted),
            Ask::Invalid(_)
        ));
        assert!(matches!(
            ask(
                Some("callback=a&callback=b"),
                "callback",
                CallbackPattern::Dotted
            ),
            Ask::Invalid(_)
        ));
        assert!(matches!(
            ask(Some("callback=%ZZ"), "callback", CallbackPattern::Dotted),
            Ask::Invalid(_)
        ));
    }

    #[test]
    fn strips_the_callback_and_cache_buster() {
        assert_eq!(
            strip_query("callback=cb&_=123&q=1", "callback").as_deref(),
            Some("q=1")
        );
        assert_eq!(
            strip_query("q=1&callback=cb", "callback").as_deref(),
            Some("q=1")
        );
        assert_eq!(strip_query("callback=cb&_=1", "callback"), None);
        assert_eq!(
            strip_query("q=1&__=2", "callback").as_deref(),
            Some("q=1&__=2")
        );
    }

    #[test]
    fn referer_origin_drops_path_query_and_fragment() {
        assert_eq!(
            referer_origin("https://app.example.com/page?x#y"),
            Some("https://app.example.com")
        );
        assert_eq!(
            referer_origin("http://localhost:3000"),
            Some("http://localhost:3000")
        );
        assert_eq!(
            referer_origin("http://localhost:3000?x"),
            Some("http://localhost:3000")
        );
        assert_eq!(referer_origin("not a url"), None);
    }

    #[test]
    fn json_content_types() {
        assert!(is_json(Some("application/json")));
        assert!(is_json(Some("Application/JSON; charset=utf-8")));
        assert!(is_json(Some("application/problem+json")));
        assert!(!is_json(Some("text/html")));
        assert!(!is_json(Some("text/event-stream")));
        assert!(!is_json(Some("+json")));
        assert!(!is_json(None));
    }

    #[test]
    fn decides_what_to_wrap() {
        assert_eq!(decide(200, Some("application/json"), false), Wrap::Plain);
        assert_eq!(
            decide(404, Some("application/json"), false),
            Wrap::Passthrough
        );
        assert_eq!(decide(200, Some("text/html"), false), Wrap::Passthrough);
        assert_eq!(decide(404, Some("application/json"), true), Wrap::Envelope);
        assert_eq!(decide(200, Some("application/json"), true), Wrap::Envelope);
        assert_eq!(decide(502, Some("text/html"), true), Wrap::EnvelopeNoData);
        assert_eq!(
            decide(200, Some("text/event-stream"), true),
            Wrap::Passthrough
        );
        assert_eq!(decide(304, None, true), Wrap::Passthrough);
        assert_eq!(
            decide(302, Some("application/json"), true),
            Wrap::Passthrough
        );
        assert_eq!(decide(101, None, true), Wrap::Passthrough);
    }

    #[test]
    fn wraps_with_comment_prefix_and_suffix() {
        assert_eq!(
            wrap_chunks(&[b"{\"a\":1}"], Wrap::Plain),
            b"/**/cb({\"a\":1});"
        );
        assert_eq!(
            wrap_chunks(&[b"{\"a\"", b":1}"], Wrap::Plain),
            b"/**/cb({\"a\":1});"
        );
    }

    #[test]
    fn escapes_line_separators_even_when_split_across_chunks() {
        let body = "{\"s\":\"a\u{2028}b\u{2029}c\"}".as_bytes();
        let expected = b"/**/cb({\"s\":\"a\\u2028b\\u2029c\"});".to_vec();
        assert_eq!(wrap_chunks(&[body], Wrap::Plain), expected);
        // Every way of cutting the body in two and in three gives the same output.
        for i in 0..=body.len() {
            assert_eq!(
                wrap_chunks(&[&body[..i], &body[i..]], Wrap::Plain),
                expected,
                "cut at {i}"
            );
            for j in i..=body.len() {
                assert_eq!(
                    wrap_chunks(&[&body[..i], &body[i..j], &body[j..]], Wrap::Plain),
                    expected,
                    "cut at {i},{j}"
                );
            }
        }
        // One byte a chunk.
        let single: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(wrap_chunks(&single, Wrap::Plain), expected);
    }

    #[test]
    fn other_three_byte_characters_pass_unchanged() {
        let body = "\"\u{2027}\u{202A}€\"".as_bytes();
        let single: Vec<&[u8]> = body.chunks(1).collect();
        let out = wrap_chunks(&single, Wrap::Plain);
        assert_eq!(out, [b"/**/cb(".as_slice(), body, b");"].concat());
    }

    #[test]
    fn a_truncated_sequence_at_the_very_end_is_flushed() {
        assert_eq!(
            wrap_chunks(&[b"\"x", b"\xE2\x80"], Wrap::Plain),
            b"/**/cb(\"x\xE2\x80);"
        );
    }

    #[test]
    fn envelope_carries_the_status() {
        let mut w = Wrapper::new(&cb("cb"), Wrap::Envelope, 404);
        let out = w.feed(Some(b"{\"error\":\"x\"}"), true).unwrap();
        assert_eq!(
            &out[..],
            b"/**/cb({\"meta\":{\"status\":404},\"data\":{\"error\":\"x\"}});"
        );
        let mut w = Wrapper::new(&cb("cb"), Wrap::EnvelopeNoData, 502);
        assert_eq!(
            w.feed(Some(b"<html>bad gateway</html>"), false),
            Some(Bytes::from_static(
                b"/**/cb({\"meta\":{\"status\":502},\"data\":null});"
            ))
        );
        assert_eq!(w.feed(Some(b"more"), true), None);
    }

    #[test]
    fn zstd_decodes_across_any_chunking() {
        let plain: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let packed = zstd::encode_all(&plain[..], 3).unwrap();
        for size in [1, 7, 4096, packed.len()] {
            let mut z = ZstdStream::new().unwrap();
            let mut out = Vec::new();
            for c in packed.chunks(size) {
                out.extend_from_slice(&z.decode(c).unwrap());
            }
            assert_eq!(out, plain, "chunks of {size}");
        }
    }

    #[test]
    fn a_zstd_bomb_is_refused() {
        let plain = vec![0u8; MAX_DECODED + 1];
        let packed = zstd::encode_all(&plain[..], 19).unwrap();
        let mut z = ZstdStream::new().unwrap();
        let r = packed
            .chunks(64 * 1024)
            .try_for_each(|c| z.decode(c).map(drop));
        assert!(r.is_err());
    }

    #[test]
    fn an_empty_end_call_still_closes_the_call() {
        let mut w = Wrapper::new(&cb("cb"), Wrap::Plain, 200);
        let a = w.feed(Some(b"[1]"), false).unwrap();
        let b = w.feed(None, true).unwrap();
        assert_eq!([&a[..], &b[..]].concat(), b"/**/cb([1]);");
    }
}
