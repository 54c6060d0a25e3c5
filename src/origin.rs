//! Origins and the allowlists that match them.
//!
//! Browsers send the serialized origin (HTML "ASCII serialization of an origin"): a lowercase
//! `scheme://host[:port]` with the default port left out, or `null` for opaque origins. Matching
//! is exact on all three parts: an exact entry is a hash lookup, a wildcard
//! (`https://*.example.com`) matches one or more whole DNS labels in front of the suffix, and a
//! regex is anchored at both ends. `null` only ever matches a literal `null` entry, and only an
//! origin that parses as a serialized origin is shown to wildcards and regexes.

use std::collections::HashMap;

use regex::Regex;

/// A request origin split into its parts. Borrowed from the header value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin<'a> {
    pub scheme: &'a str,
    pub host: &'a str,
    /// The explicit port, if any (browsers omit the scheme's default).
    pub port: Option<u16>,
}

impl<'a> Origin<'a> {
    /// Parses a serialized origin strictly: lowercase scheme and host, an optional port from 1 to
    /// 65535 without leading zeros, and nothing else (no path, user info, spaces or controls).
    pub fn parse(s: &'a str) -> Option<Origin<'a>> {
        let (scheme, rest) = s.split_once("://")?;
        if scheme.is_empty()
            || !scheme.starts_with(|c: char| c.is_ascii_lowercase())
            || !scheme
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
        {
            return None;
        }
        let (host, port) = split_port(rest)?;
        if !valid_host(host) {
            return None;
        }
        Some(Origin { scheme, host, port })
    }

    /// The port to compare: the explicit one or the scheme's default.
    pub fn effective_port(&self) -> Option<u16> {
        self.port.or_else(|| default_port(self.scheme))
    }
}

fn split_port(rest: &str) -> Option<(&str, Option<u16>)> {
    // An IPv6 literal carries colons inside its brackets.
    let port_sep = if rest.starts_with('[') {
        let close = rest.find(']')?;
        match &rest[close + 1..] {
            "" => None,
            p if p.starts_with(':') => Some(close + 1),
            _ => return None,
        }
    } else {
        rest.rfind(':')
    };
    match port_sep {
        None => Some((rest, None)),
        Some(i) => {
            let digits = &rest[i + 1..];
            if digits.is_empty()
                || digits.len() > 5
                || digits.starts_with('0')
                || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            let port: u32 = digits.parse().ok()?;
            let port = u16::try_from(port).ok().filter(|p| *p != 0)?;
            Some((&rest[..i], Some(port)))
        }
    }
}

fn valid_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[') {
        return inner.strip_suffix(']').is_some_and(|v6| {
            !v6.is_empty()
                && v6
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        });
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        })
}

pub fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

/// Why a config origin entry is refused, with the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    pub message: String,
    pub fix: String,
}

fn pattern_error(message: String, fix: impl Into<String>) -> PatternError {
    PatternError {
        message,
        fix: fix.into(),
    }
}

/// Canonicalizes an exact origin from the config the way a browser would send it: lowercase,
/// default port removed. Refuses anything a browser could never send.
pub fn canonical_exact(entry: &str) -> Result<String, PatternError> {
    if entry == "null" {
        return Ok("null".into());
    }
    let lower = entry.to_ascii_lowercase();
    let Some((scheme, rest)) = lower.split_once("://") else {
        return Err(pattern_error(
            format!("invalid origin {entry:?}: an origin is scheme://host[:port]"),
            "write it like \"https://app.example.com\"",
        ));
    };
    if let Some(i) = rest.find(['/', '?', '#']) {
        return Err(pattern_error(
            format!("invalid origin {entry:?}: an origin has no path, query or trailing slash"),
            format!("write \"{scheme}://{}\"", &rest[..i]),
        ));
    }
    let Some(origin) = Origin::parse(&lower) else {
        return Err(pattern_error(
            format!("invalid origin {entry:?}: expected scheme://host[:port] with a valid host name and a port from 1 to 65535"),
            "write it like \"https://app.example.com\" or \"http://localhost:3000\"",
        ));
    };
    Ok(match origin.port {
        Some(p) if Some(p) == default_port(origin.scheme) => {
            format!("{}://{}", origin.scheme, origin.host)
        }
        _ => lower,
    })
}

/// `scheme://*.suffix[:port]`: one or more labels in front of `suffix`, same scheme and port.
#[derive(Debug, Clone)]
pub struct Wildcard {
    scheme: String,
    /// `.example.com`, with the leading dot that bounds the match at a label.
    dot_suffix: String,
    port: Option<u16>,
}

impl Wildcard {
    pub fn parse(entry: &str) -> Result<Wildcard, PatternError> {
        let lower = entry.to_ascii_lowercase();
        let fix = "a wildcard is scheme://*.domain[:port], like \"https://*.example.com\"";
        let Some((scheme, rest)) = lower.split_once("://*.") else {
            return Err(pattern_error(
                format!("invalid wildcard origin {entry:?}: `*` may only stand for whole labels at the start of the host"),
                fix,
            ));
        };
        let probe = format!("{scheme}://x.{rest}");
        let origin = Origin::parse(&probe).ok_or_else(|| {
            pattern_error(
                format!(
                    "invalid wildcard origin {entry:?}: the part after `*.` is not a host[:port]"
                ),
                fix,
            )
        })?;
        if rest.contains('*') {
            return Err(pattern_error(
                format!("invalid wildcard origin {entry:?}: only one leading `*.` is supported"),
                "use {regex: ...} for anything more complex",
            ));
        }
        Ok(Wildcard {
            scheme: scheme.to_owned(),
            dot_suffix: format!(".{}", &origin.host[2..]),
            port: origin.effective_port(),
        })
    }

    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// `.example.com`: the suffix a host must end with, dot included.
    pub fn dot_suffix(&self) -> &str {
        &self.dot_suffix
    }

    /// The port compared (explicit, or the scheme's default).
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The wildcard as a CSP source expression (`https://*.example.com[:port]`).
    pub fn csp_source(&self) -> String {
        match self.port {
            Some(p) if Some(p) != default_port(&self.scheme) => {
                format!("{}://*{}:{p}", self.scheme, self.dot_suffix)
            }
            _ => format!("{}://*{}", self.scheme, self.dot_suffix),
        }
    }

    pub fn matches(&self, origin: &Origin) -> bool {
        origin.scheme == self.scheme
            && origin.effective_port() == self.port
            && origin.host.len() > self.dot_suffix.len()
            && origin.host.ends_with(&self.dot_suffix)
    }
}

/// Compiles a config regex anchored at both ends, whatever anchors it already has.
pub fn anchored_regex(pattern: &str) -> Result<Regex, PatternError> {
    // The pattern must stand on its own first: `x)|(.*` is balanced only inside the wrapper,
    // where it would escape the anchors (found by fuzz/fuzz_targets/origin.rs).
    Regex::new(pattern)
        .and_then(|_| Regex::new(&format!("^(?:{pattern})$")))
        .map_err(|e| {
            pattern_error(
            format!("invalid regex {pattern:?}: {e}"),
            "fix the regular expression (Rust regex syntax; it is anchored at both ends for you)",
        )
        })
}

/// Which allowlist entry matched, by its index in the config list.
pub type EntryIndex = usize;

/// A compiled `allow_origins` list.
#[derive(Debug, Default)]
pub struct OriginList {
    // foldhash, not SipHash: the table is fixed at load, so an attacker's Origin values cannot
    // grow a chain; keyed SipHash cost ~500 instructions per request here.
    exact: HashMap<Box<str>, EntryIndex, foldhash::fast::RandomState>,
    wildcards: Vec<(Wildcard, EntryIndex)>,
    regexes: Vec<(Regex, EntryIndex)>,
    /// The entries as written, for messages.
    pub entries: Vec<String>,
}

impl OriginList {
    pub fn push_exact(&mut self, canonical: String, written: String) {
        self.exact
            .entry(canonical.into_boxed_str())
            .or_insert(self.entries.len());
        self.entries.push(written);
    }
    pub fn push_wildcard(&mut self, w: Wildcard, written: String) {
        self.wildcards.push((w, self.entries.len()));
        self.entries.push(written);
    }
    pub fn push_regex(&mut self, r: Regex, written: String) {
        self.regexes.push((r, self.entries.len()));
        self.entries.push(written);
    }

    /// The exact origins (canonical), `null` included when listed.
    pub fn exact_origins(&self) -> impl Iterator<Item = &str> {
        let mut v: Vec<(&str, EntryIndex)> =
            self.exact.iter().map(|(k, i)| (k.as_ref(), *i)).collect();
        v.sort_by_key(|(_, i)| *i);
        v.into_iter().map(|(k, _)| k)
    }

    pub fn wildcards(&self) -> impl Iterator<Item = &Wildcard> {
        self.wildcards.iter().map(|(w, _)| w)
    }

    pub fn has_regex(&self) -> bool {
        !self.regexes.is_empty()
    }

    /// The entry that allows `origin`, if any.
    pub fn find(&self, origin: &str) -> Option<EntryIndex> {
        if let Some(i) = self.exact.get(origin) {
            return Some(*i);
        }
        // `null` and anything that is not a serialized origin only match exact entries.
        let parsed = Origin::parse(origin)?;
        if let Some((_, i)) = self.wildcards.iter().find(|(w, _)| w.matches(&parsed)) {
            return Some(*i);
        }
        self.regexes
            .iter()
            .find(|(r, _)| r.is_match(origin))
            .map(|(_, i)| *i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> OriginList {
        let mut l = OriginList::default();
        for e in entries {
            if let Some(re) = e.strip_prefix("re:") {
                l.push_regex(anchored_regex(re).unwrap(), e.to_string());
            } else if e.contains('*') {
                l.push_wildcard(Wildcard::parse(e).unwrap(), e.to_string());
            } else {
                l.push_exact(canonical_exact(e).unwrap(), e.to_string());
            }
        }
        l
    }

    #[test]
    fn parses_serialized_origins_strictly() {
        let o = Origin::parse("https://a.example.com:8443").unwrap();
        assert_eq!(
            (o.scheme, o.host, o.port),
            ("https", "a.example.com", Some(8443))
        );
        assert!(Origin::parse("http://[::1]:3000").is_some());
        for bad in [
            "https://A.example.com",
            "https://a.example.com/",
            "https://a.example.com:0",
            "https://a.example.com:65536",
            "https://a.example.com:080",
            "https://user@a.example.com",
            "https://a.example.com\r\nx: y",
            "https://",
            "a.example.com",
            "null",
            "https://a..example.com",
            "https://ä.example.com",
        ] {
            assert!(Origin::parse(bad).is_none(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn exact_match_is_exact_on_scheme_host_and_port() {
        let l = list(&["https://app.example.com", "http://localhost:3000"]);
        assert_eq!(l.find("https://app.example.com"), Some(0));
        assert_eq!(l.find("http://app.example.com"), None);
        assert_eq!(l.find("https://app.example.com:8443"), None);
        assert_eq!(l.find("https://app.example.com.evil.io"), None);
        assert_eq!(l.find("http://localhost:3000"), Some(1));
        assert_eq!(l.find("http://localhost:3001"), None);
        assert_eq!(l.find("http://localhost"), None);
    }

    #[test]
    fn config_origins_are_canonicalized_like_browsers_send_them() {
        assert_eq!(
            canonical_exact("HTTPS://App.Example.com:443").unwrap(),
            "https://app.example.com"
        );
        assert_eq!(
            canonical_exact("http://x.test:80").unwrap(),
            "http://x.test"
        );
        assert_eq!(
            canonical_exact("http://x.test:8080").unwrap(),
            "http://x.test:8080"
        );
        let e = canonical_exact("https://app.example.com/").unwrap_err();
        assert!(e.fix.contains("\"https://app.example.com\""), "{e:?}");
        assert!(canonical_exact("app.example.com").is_err());
    }

    #[test]
    fn wildcard_is_bounded_at_a_dns_label() {
        let l = list(&["https://*.example.com"]);
        assert_eq!(l.find("https://a.example.com"), Some(0));
        assert_eq!(l.find("https://a.b.example.com"), Some(0));
        assert_eq!(l.find("https://example.com"), None);
        assert_eq!(l.find("https://badexample.com"), None);
        assert_eq!(l.find("https://example.com.evil.io"), None);
        assert_eq!(l.find("https://a.example.com.evil.io"), None);
        assert_eq!(l.find("http://a.example.com"), None);
        assert_eq!(l.find("https://a.example.com:8443"), None);
        assert_eq!(l.find("https://.example.com"), None);
    }

    #[test]
    fn wildcard_with_port_matches_that_port_only() {
        let l = list(&["http://*.local.test:8080"]);
        assert_eq!(l.find("http://a.local.test:8080"), Some(0));
        assert_eq!(l.find("http://a.local.test"), None);
    }

    #[test]
    fn malformed_wildcards_are_refused() {
        for bad in [
            "https://a.*.example.com",
            "https://*example.com",
            "*.example.com",
            "https://*.*.example.com",
        ] {
            assert!(Wildcard::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn regexes_are_anchored_at_both_ends() {
        let l = list(&[r"re:https://pr-[0-9]+\.preview\.example\.com"]);
        assert_eq!(l.find("https://pr-12.preview.example.com"), Some(0));
        assert_eq!(l.find("https://pr-12.preview.example.com.evil.io"), None);
        assert_eq!(
            l.find("https://evil.io/https://pr-12.preview.example.com"),
            None
        );
        // Even a pattern that "forgets" anchors, or alternates, is anchored as a whole.
        let l = list(&[r"re:https://a\.test|https://b\.test"]);
        assert_eq!(l.find("https://b.test"), Some(0));
        assert_eq!(l.find("https://b.test.evil.io"), None);
        assert_eq!(l.find("https://x.https://a.test"), None);
        // A pattern that closes the wrapper's group itself would escape the anchors: refused.
        let escape = anchored_regex(r"https://a\.test)|(.*");
        assert!(escape.is_err(), "{escape:?}");
    }

    #[test]
    fn null_only_matches_when_listed_literally() {
        let l = list(&["https://*.example.com", "re:.*"]);
        assert_eq!(l.find("null"), None);
        let l = list(&["null"]);
        assert_eq!(l.find("null"), Some(0));
    }

    #[test]
    fn regexes_never_see_values_that_are_not_origins() {
        let l = list(&["re:.*"]);
        assert_eq!(l.find("https://x.test"), Some(0));
        assert_eq!(l.find("not an origin"), None);
        assert_eq!(l.find("https://x.test\r\nset-cookie: a"), None);
    }
}
