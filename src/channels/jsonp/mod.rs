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

use bytes::{Bytes, BytesMut};

mod phases;
pub use phases::{
    caller_allowed, error_body, response_body, response_header, upstream_request, JsonpResult,
    JsonpState, JAVASCRIPT,
};

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

/// Whether a JSON body is wrapped, given the response status and `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrap {
    /// Leave the response as it is (not JSON, or an error without `envelope`).
    Passthrough,
    /// `/**/cb(` + body + `);`
    Plain,
    /// `/**/cb({"meta":{"status":S},"data":` + body + `});`, answered with 200.
    Envelope,
    /// `/**/cb({"meta":{"status":S},"data":null});`, the body dropped (an error that is not JSON).
    EnvelopeNoData,
}

/// `application/json` or any `+json` type, parameters and case ignored.
pub fn is_json(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return false };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.ends_with("+json")
            && essence
                .split_once('/')
                .is_some_and(|(t, s)| !t.is_empty() && s.len() > 5))
}

pub fn decide(status: u16, content_type: Option<&str>, envelope: bool) -> Wrap {
    // Redirects, 304 (the browser's cached script stays valid), informational and bodiless
    // answers pass as they are.
    if matches!(status, 100..=199 | 204 | 300..=399) {
        return Wrap::Passthrough;
    }
    let ok = (200..300).contains(&status);
    match (is_json(content_type), ok, envelope) {
        (true, true, false) => Wrap::Plain,
        (true, _, true) => Wrap::Envelope,
        (false, false, true) => Wrap::EnvelopeNoData,
        _ => Wrap::Passthrough,
    }
}

/// The streaming wrapper: feed it each body chunk in order.
#[derive(Debug)]
pub struct Wrapper {
    prefix: Option<Bytes>,
    suffix: Bytes,
    drop_body: bool,
    /// The start of a U+2028/U+2029 sequence cut by a chunk boundary (at most 2 bytes).
    held: Vec<u8>,
}

impl Wrapper {
    pub fn new(callback: &Callback, wrap: Wrap, status: u16) -> Wrapper {
        let cb = callback.as_str();
        let (prefix, suffix) = match wrap {
            Wrap::Plain | Wrap::Passthrough => (format!("/**/{cb}("), ");".to_owned()),
            Wrap::Envelope => (
                format!("/**/{cb}({{\"meta\":{{\"status\":{status}}},\"data\":"),
                "});".to_owned(),
            ),
            Wrap::EnvelopeNoData => (
                format!("/**/{cb}({{\"meta\":{{\"status\":{status}}},\"data\":null}});"),
                String::new(),
            ),
        };
        Wrapper {
            prefix: Some(Bytes::from(prefix)),
            suffix: Bytes::from(suffix),
            drop_body: wrap == Wrap::EnvelopeNoData,
            held: Vec::new(),
        }
    }

    /// Wraps one chunk; `end` marks the last call. Returns what to send.
    pub fn feed(&mut self, chunk: Option<&[u8]>, end: bool) -> Option<Bytes> {
        let input = chunk.unwrap_or_default();
        let mut out = BytesMut::with_capacity(input.len() + 32);
        if let Some(p) = self.prefix.take() {
            out.extend_from_slice(&p);
        }
        if !self.drop_body {
            self.escape_into(input, &mut out, end);
        }
        if end {
            out.extend_from_slice(&self.suffix);
        }
        (!out.is_empty()).then(|| out.freeze())
    }

    fn escape_into(&mut self, input: &[u8], out: &mut BytesMut, end: bool) {
        // Join what was held back with the new input only around the boundary.
        let joined;
        let data: &[u8] = if self.held.is_empty() {
            input
        } else {
            let mut j = std::mem::take(&mut self.held);
            j.extend_from_slice(input);
            joined = j;
            &joined
        };
        let mut start = 0;
        let mut i = 0;
        while i < data.len() {
            // Jump to the next 0xE2 (the first byte of U+2028/U+2029); the rest is copied as is.
            match memchr::memchr(0xE2, &data[i..]) {
                Some(off) => i += off,
                None => break,
            }
            // data[i] is 0xE2 here.
            match (data.get(i + 1), data.get(i + 2)) {
                (Some(0x80), Some(b @ (0xA8 | 0xA9))) => {
                    out.extend_from_slice(&data[start..i]);
                    out.extend_from_slice(if *b == 0xA8 { b"\\u2028" } else { b"\\u2029" });
                    i += 3;
                    start = i;
                    continue;
                }
                // Cut at the chunk's end: keep the bytes for the next chunk.
                (None, _) | (Some(0x80), None) if !end => {
                    out.extend_from_slice(&data[start..i]);
                    self.held.extend_from_slice(&data[i..]);
                    return;
                }
                _ => {}
            }
            i += 1;
        }
        out.extend_from_slice(&data[start..]);
    }
}

/// A streaming zstd decoder, for `Content-Encoding: zstd` (pingora 0.9 decompresses gzip and
/// br itself, not zstd).
pub struct ZstdStream {
    decoder: zstd::stream::raw::Decoder<'static>,
    buf: Vec<u8>,
    /// Decoded bytes so far, against [`MAX_DECODED`].
    total: usize,
}

/// The most a compressed JSONP body may decode to: a bound against decompression bombs.
pub const MAX_DECODED: usize = 64 * 1024 * 1024;

impl ZstdStream {
    pub fn new() -> std::io::Result<ZstdStream> {
        let mut decoder = zstd::stream::raw::Decoder::new()?;
        // Windows of at most 8 MiB (the default allows 128 MiB per stream).
        decoder.set_parameter(zstd::stream::raw::DParameter::WindowLogMax(23))?;
        Ok(ZstdStream {
            decoder,
            buf: vec![0; 32 * 1024],
            total: 0,
        })
    }

    /// Decodes one chunk of the compressed body.
    pub fn decode(&mut self, input: &[u8]) -> std::io::Result<Bytes> {
        use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
        let mut out = BytesMut::new();
        let mut src = InBuffer::around(input);
        loop {
            let mut dst = OutBuffer::around(&mut self.buf[..]);
            self.decoder.run(&mut src, &mut dst)?;
            let written = dst.pos();
            self.total += written;
            if self.total > MAX_DECODED {
                return Err(std::io::Error::other(format!(
                    "the zstd body decodes to more than {MAX_DECODED} bytes"
                )));
            }
            out.extend_from_slice(&self.buf[..written]);
            // Done when all input is consumed and the decoder had room to spare.
            if src.pos() == input.len() && written < self.buf.len() {
                return Ok(out.freeze());
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
