//! One path, one decision: the path a request is routed on is the path its backend gets.
//!
//! A proxy that routes on a decoded, dot-resolved path but forwards the target as the client
//! wrote it lets `/public/..%2F..%2Fapi/users` pass the public route's rules and reach the
//! backend's `/api/users` handler wherever the backend does not resolve `..%2F` the same way
//! (nginx's `proxy_pass` without a URI has that flaw). [`target`] decides, for each request,
//! one value that is both routed and forwarded, by `server.ambiguous_paths`
//! ([`AmbiguousPaths`]):
//!
//! - `reject` (default): a path whose decoding or dot resolution would change what it routes
//!   to is refused ([`Ambiguity`]); any other path is routed on its percent-decoding (decoded
//!   exactly once) and forwarded as sent. A backend that decodes it once sees the routed path.
//! - `forward_normalized`: routed on the normalized path, and that path (re-encoded) is what
//!   goes upstream.
//! - `keep`: routed on the normalized path, forwarded as sent (the old behaviour; a warning at
//!   load names the risk).
//!
//! Decoding happens once: `%252F` is the three characters `%2F` in the routed path, never a
//! slash. In `reject` mode it is refused (a backend that decodes twice would see a slash); in
//! `forward_normalized` it is forwarded as `%252F` again.

use std::borrow::Cow;
use std::fmt;

use crate::percent::escape_at;

/// What to do with a path whose decoding or dot resolution changes its routing
/// (`server.ambiguous_paths`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AmbiguousPaths {
    /// A plain 400 that says why; the backend never sees it.
    #[default]
    Reject,
    /// The normalized path goes upstream (the query as sent).
    ForwardNormalized,
    /// Routed normalized, forwarded as sent: a backend that resolves paths differently can be
    /// reached under another route's rules.
    Keep,
}

/// Why a path was refused in `reject` mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ambiguity {
    /// `%2F`: a slash that some backends decode before splitting the path and others after.
    EncodedSlash,
    /// `\` or `%5C`, a separator on some servers (IIS, Windows file paths).
    Backslash,
    /// A `.` or `..` segment, spelled plainly, percent-encoded, or with `;parameters`
    /// (Tomcat's `..;`).
    DotSegment,
    /// `%25` followed by two hex digits: an escape that a second decoding would turn into
    /// another character.
    DoubleEncoded,
    /// A percent-encoded control byte (`%00`-`%1F`, `%7F`): C backends stop at `%00`.
    ControlByte,
    /// A `%` that does not begin two hex digits (RFC 3986 2.1).
    BadEscape,
    /// Raw bytes that are not UTF-8 (they must be percent-encoded).
    NotUtf8,
    /// An empty segment (`//admin`, `/a//b`): nginx and other slash-merging servers read it
    /// as one slash, so `//admin` is `/admin` there but not to a route's prefix.
    EmptySegment,
    /// A `;` in a segment (`/;x/admin`, `/admin;x`), raw or `%3B`: Tomcat, Jetty and other
    /// servers that strip path parameters read `/;x/admin` as `/admin` (the shape of
    /// CVE-2020-1957).
    PathParameter,
}

impl Ambiguity {
    /// The reason, for the 400 body and the access log.
    pub fn reason(self) -> &'static str {
        match self {
            Ambiguity::EncodedSlash => "the path has an encoded slash (%2F)",
            Ambiguity::Backslash => "the path has a backslash (\\ or %5C)",
            Ambiguity::DotSegment => {
                "the path has a dot segment (. or .., plain, encoded or with ;parameters)"
            }
            Ambiguity::DoubleEncoded => {
                "the path has a double-encoded escape (%25 and two hex digits)"
            }
            Ambiguity::ControlByte => "the path has an encoded control byte (%00-%1F or %7F)",
            Ambiguity::BadEscape => "the path has a % that does not begin two hex digits",
            Ambiguity::NotUtf8 => "the path has raw bytes that are not UTF-8",
            Ambiguity::EmptySegment => "the path has an empty segment (//)",
            Ambiguity::PathParameter => "the path has a ; (a path parameter, raw or %3B)",
        }
    }
}

impl fmt::Display for Ambiguity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// The one value a request is routed on, and what goes upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target<'a> {
    /// Routed on this key; the target is forwarded as the client sent it.
    AsSent(Cow<'a, str>),
    /// Routed on `key`; `forward` (percent-encoded, no query) replaces the path upstream.
    Rewritten { key: String, forward: String },
}

impl Target<'_> {
    /// The path routes are matched against.
    pub fn key(&self) -> &str {
        match self {
            Target::AsSent(k) => k,
            Target::Rewritten { key, .. } => key,
        }
    }

    /// The path that replaces the client's upstream, if any.
    pub fn forward(&self) -> Option<&str> {
        match self {
            Target::AsSent(_) => None,
            Target::Rewritten { forward, .. } => Some(forward),
        }
    }
}

/// Whether the path needs no decoding and has no segment to resolve: no `%`, no `\`, no
/// `/.` and no `//`. One pass over the bytes; the usual request stops here.
fn is_plain(raw: &[u8], merge_slashes: bool) -> bool {
    // A target that does not start with `/` (`*`, or bytes a client made up) is read as if
    // it did: a leading `..` is a dot segment too.
    raw.first() != Some(&b'.')
        && raw.iter().enumerate().all(|(i, c)| match c {
            b'%' | b'\\' => false,
            b'/' => match raw.get(i + 1) {
                Some(b'.') => false,
                Some(b'/') => !merge_slashes,
                _ => true,
            },
            _ => true,
        })
}

/// A segment that a path resolver removes or climbs out of: `.` or `..`, with any
/// `;parameters` after it ignored.
fn is_dot_segment(seg: &[u8]) -> bool {
    let name = seg.split(|&c| c == b';').next().unwrap_or(b"");
    name == b"." || name == b".."
}

/// What a path is routed on and forwarded as, under `mode`.
///
/// `raw` is the path as the client sent it (no query); `utf8` is false when its raw bytes
/// were not UTF-8 (pingora's `raw_path_is_utf8`).
pub fn target(raw: &str, utf8: bool, mode: AmbiguousPaths) -> Result<Target<'_>, Ambiguity> {
    match mode {
        AmbiguousPaths::Reject => {
            if !utf8 {
                return Err(Ambiguity::NotUtf8);
            }
            if is_plain(raw.as_bytes(), true) && !raw.contains(';') {
                return Ok(Target::AsSent(Cow::Borrowed(raw)));
            }
            strict(raw).map(Target::AsSent)
        }
        AmbiguousPaths::ForwardNormalized => {
            if is_plain(raw.as_bytes(), true) && !raw.contains(';') {
                return Ok(Target::AsSent(Cow::Borrowed(raw)));
            }
            if has_bad_escape(raw.as_bytes()) {
                return Err(Ambiguity::BadEscape);
            }
            if has_parameter(raw.as_bytes()) {
                // What a parameter-stripping server reads is not what any normalization
                // without data loss forwards: refused here too.
                return Err(Ambiguity::PathParameter);
            }
            let normalized = normalize(raw.as_bytes());
            let forward = encode(&normalized);
            let key = String::from_utf8_lossy(&normalized).into_owned();
            if forward == raw {
                return Ok(Target::AsSent(Cow::Owned(key)));
            }
            Ok(Target::Rewritten { key, forward })
        }
        AmbiguousPaths::Keep => Ok(Target::AsSent(if is_plain(raw.as_bytes(), true) {
            Cow::Borrowed(raw)
        } else {
            Cow::Owned(String::from_utf8_lossy(&normalize(raw.as_bytes())).into_owned())
        })),
    }
}

/// A `;` in the path, raw or `%3B`.
fn has_parameter(raw: &[u8]) -> bool {
    raw.iter()
        .enumerate()
        .any(|(i, &c)| c == b';' || (c == b'%' && escape_at(raw, i) == Some(b';')))
}

fn has_bad_escape(raw: &[u8]) -> bool {
    raw.iter()
        .enumerate()
        .any(|(i, &c)| c == b'%' && escape_at(raw, i).is_none())
}

/// `reject` mode past the fast path: refuses what is ambiguous, else decodes once.
fn strict(raw: &str) -> Result<Cow<'_, str>, Ambiguity> {
    let b = raw.as_bytes();
    let mut decoded = Vec::with_capacity(b.len());
    let mut parameter = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let v = escape_at(b, i).ok_or(Ambiguity::BadEscape)?;
                match v {
                    b'/' => return Err(Ambiguity::EncodedSlash),
                    b'\\' => return Err(Ambiguity::Backslash),
                    b'%' if escape_at(b, i + 2).is_some() => return Err(Ambiguity::DoubleEncoded),
                    0..=0x1f | 0x7f => return Err(Ambiguity::ControlByte),
                    _ => {
                        parameter |= v == b';';
                        decoded.push(v);
                    }
                }
                i += 3;
            }
            b'\\' => return Err(Ambiguity::Backslash),
            c => {
                parameter |= c == b';';
                decoded.push(c);
                i += 1;
            }
        }
    }
    // No encoded slash was let through, so the decoded segments are the raw ones, decoded.
    if decoded.split(|&c| c == b'/').any(is_dot_segment) {
        return Err(Ambiguity::DotSegment);
    }
    if parameter {
        return Err(Ambiguity::PathParameter);
    }
    // Between the first slash and the last segment (a trailing slash is not an empty
    // segment here: `/api/` is a path of its own).
    let segments: Vec<&[u8]> = decoded.split(|&c| c == b'/').collect();
    if segments.len() > 2 && segments[1..segments.len() - 1].iter().any(|s| s.is_empty()) {
        return Err(Ambiguity::EmptySegment);
    }
    if decoded.len() == b.len() {
        // Nothing was decoded (a `//` took the slow path).
        return Ok(Cow::Borrowed(raw));
    }
    Ok(Cow::Owned(String::from_utf8_lossy(&decoded).into_owned()))
}

/// The path as the most path-resolving backend reads it: percent-decoded once (`%2F`
/// included; an invalid escape is kept as is), backslashes read as slashes, dot segments
/// resolved (also Tomcat's `..;param`) and repeated slashes merged.
pub fn normalize(raw: &[u8]) -> Vec<u8> {
    let mut decoded = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match (raw[i], escape_at(raw, i)) {
            (b'%', Some(v)) => {
                decoded.push(if v == b'\\' { b'/' } else { v });
                i += 3;
            }
            (c, _) => {
                decoded.push(if c == b'\\' { b'/' } else { c });
                i += 1;
            }
        }
    }
    let mut segments: Vec<&[u8]> = Vec::new();
    let mut trailing_slash = false;
    for seg in decoded.split(|&c| c == b'/') {
        trailing_slash = true;
        if seg.is_empty() {
            continue;
        }
        match seg.split(|&c| c == b';').next().unwrap_or(b"") {
            b"." => {}
            b".." => {
                segments.pop();
            }
            _ => {
                segments.push(seg);
                trailing_slash = false;
            }
        }
    }
    let mut out = Vec::with_capacity(decoded.len() + 1);
    for seg in &segments {
        out.push(b'/');
        out.extend_from_slice(seg);
    }
    if trailing_slash || out.is_empty() {
        out.push(b'/');
    }
    out
}

/// Percent-encodes a normalized path for the request line: RFC 3986 `pchar`s and `/` stay,
/// every other byte (`%`, `?`, `#`, spaces, controls, non-ASCII) becomes `%XX`, so that one
/// decoding gives back exactly `path`.
pub fn encode(path: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(path.len());
    for &c in path {
        let keep = c.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&c);
        if keep {
            out.push(c as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(c >> 4)] as char);
            out.push(HEX[usize::from(c & 15)] as char);
        }
    }
    out
}

/// An origin-form request target of `path` and `query`: what the proxy, JSONP and SSE send
/// upstream in place of the client's target.
pub(crate) fn origin_form(path: &str, query: Option<&str>) -> pingora::Result<http::Uri> {
    let target = match query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    http::Uri::builder()
        .path_and_query(target)
        .build()
        .map_err(|e| {
            pingora::Error::because(
                pingora::ErrorType::InternalError,
                "rewriting the request target",
                e,
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use AmbiguousPaths::*;

    fn key(raw: &str, mode: AmbiguousPaths) -> Result<String, Ambiguity> {
        target(raw, true, mode).map(|t| t.key().to_owned())
    }

    #[test]
    fn reject_refuses_what_decoding_or_dot_resolution_would_change() {
        for (raw, why) in [
            (
                "/api/users/..%2F..%2Fpublic%2Fusers",
                Ambiguity::EncodedSlash,
            ),
            ("/public/a%2fb", Ambiguity::EncodedSlash),
            ("/public/a%5Cb", Ambiguity::Backslash),
            ("/public\\..\\admin", Ambiguity::Backslash),
            ("/public/../admin", Ambiguity::DotSegment),
            ("/public/./admin", Ambiguity::DotSegment),
            ("/public/%2e%2e/admin", Ambiguity::DotSegment),
            ("/public/.%2E/admin", Ambiguity::DotSegment),
            ("/public/..;x=1/admin", Ambiguity::DotSegment),
            ("/public/.%3B/admin", Ambiguity::DotSegment),
            ("/public/..", Ambiguity::DotSegment),
            ("/public/a%252Fb", Ambiguity::DoubleEncoded),
            ("/public/a%00b", Ambiguity::ControlByte),
            ("/public/a%+fb", Ambiguity::BadEscape),
            ("/public/a%2", Ambiguity::BadEscape),
            ("//admin", Ambiguity::EmptySegment),
            ("//api//users", Ambiguity::EmptySegment),
            ("/a//", Ambiguity::EmptySegment),
            ("/;x/admin", Ambiguity::PathParameter),
            ("/item;jsessionid=1", Ambiguity::PathParameter),
            ("/admin%3Bx", Ambiguity::PathParameter),
        ] {
            assert_eq!(key(raw, Reject), Err(why), "{raw}");
        }
        assert_eq!(target("/public/x", false, Reject), Err(Ambiguity::NotUtf8));
    }

    #[test]
    fn reject_passes_escapes_that_do_not_change_routing_decoded_once() {
        for (raw, routed) in [
            ("/api/users", "/api/users"),
            ("/a%20b", "/a b"),
            ("/caf%C3%A9", "/café"),
            ("/file%2Ejson", "/file.json"),
            ("/..a/.b/c..", "/..a/.b/c.."),
            ("/a%25b", "/a%b"),
            ("/api/users/", "/api/users/"),
            ("/", "/"),
            ("*", "*"),
        ] {
            assert_eq!(key(raw, Reject).as_deref(), Ok(routed), "{raw}");
            // Forwarded as sent.
            assert_eq!(target(raw, true, Reject).unwrap().forward(), None);
        }
    }

    #[test]
    fn forward_normalized_routes_and_forwards_one_value() {
        for (raw, routed, forwarded) in [
            (
                "/api/users/..%2F..%2Fpublic%2Fusers",
                "/public/users",
                "/public/users",
            ),
            ("/public/../admin", "/admin", "/admin"),
            ("/public\\..\\admin", "/admin", "/admin"),
            ("//api//items/", "/api/items/", "/api/items/"),
            ("/a%20b", "/a b", "/a%20b"),
            ("/a%252Fb", "/a%2Fb", "/a%252Fb"),
            ("/a/%3F/b", "/a/?/b", "/a/%3F/b"),
        ] {
            let t = target(raw, true, ForwardNormalized).unwrap();
            assert_eq!(t.key(), routed, "{raw}");
            assert_eq!(t.forward().unwrap_or(raw), forwarded, "{raw}");
        }
        assert_eq!(key("/a%zz", ForwardNormalized), Err(Ambiguity::BadEscape));
        for raw in ["/public/..;x=1/admin", "/api;x=1/", "/admin%3Bx"] {
            assert_eq!(
                key(raw, ForwardNormalized),
                Err(Ambiguity::PathParameter),
                "{raw}"
            );
        }
    }

    #[test]
    fn keep_routes_normalized_as_before() {
        for (raw, norm) in [
            ("/api/items", "/api/items"),
            ("/public/../admin", "/admin"),
            ("/public/..%2Fadmin", "/admin"),
            ("/public/%2e%2e/admin", "/admin"),
            ("/public/..;x=1/admin", "/admin"),
            ("/public\\..\\admin", "/admin"),
            ("//api//items/", "/api/items/"),
            ("/api/./items/.", "/api/items/"),
            ("/..", "/"),
            ("/a/b/..", "/a/"),
            ("/file.json", "/file.json"),
            ("/a%20b", "/a b"),
        ] {
            let t = target(raw, true, Keep).unwrap();
            assert_eq!(t.key(), norm, "{raw}");
            assert_eq!(t.forward(), None);
        }
    }

    #[test]
    fn encoding_a_normalized_path_decodes_back_to_it() {
        let path = b"/a b/%/?#/\xff/caf\xc3\xa9/x;y=1";
        let encoded = encode(path);
        assert_eq!(encoded, "/a%20b/%25/%3F%23/%FF/caf%C3%A9/x;y=1");
        assert_eq!(normalize(encoded.as_bytes()), path.to_vec());
    }
}
