//! What a request head must be before anything is routed or forwarded (RFC 9112 §3.2 and
//! §6.1-6.3), checked once, on the head as pingora parsed it:
//!
//! - the target is origin-form (`/...`), absolute-form (`http://` or `https://` with an
//!   authority), or `*` for OPTIONS; anything else (`x:/admin`, `evil.example:80`) is a 400.
//!   An absolute-form target is then rewritten to origin form with its authority as `Host`
//!   ([`to_origin_form`]), so that the request is routed on exactly the host and path that go
//!   upstream, and parsed once;
//! - HTTP/1.1 has exactly one `Host` (none, or two: 400); HTTP/1.0 may have none;
//! - `Content-Length` is one field line of digits (no sign, no list, no overflow: 400); the
//!   value goes upstream rewritten (`05` as `5`);
//! - `Transfer-Encoding` is exactly `chunked`, once, never beside `Content-Length` nor in
//!   HTTP/1.0 (400); a coding crossgate does not apply (`gzip, chunked`) is a 501: de-chunked
//!   and forwarded as `chunked` only, the backend would get gzip bytes with no coding declared.
//!
//! Where RFC 9112 lets a server choose (both framings: process by `Transfer-Encoding` or
//! refuse), crossgate refuses, as nginx does since 1.23 and HAProxy does for HTTP/1.0.

use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderValue, Method, Version};
use pingora::http::RequestHeader;

pub(crate) use crate::wire::target::Form;
pub(crate) use crate::wire::Refused;
use crate::wire::{bad, framing, target};

/// Checks an HTTP/1 request head (see the module's list); `raw` is the head as it came
/// (pingora drops `Content-Length` from a parsed head that also has `Transfer-Encoding`).
/// `Ok`: it may be routed; an absolute-form target is still to be rewritten with
/// [`to_origin_form`].
pub(crate) fn check<'a>(req: &'a RequestHeader, raw: &[u8]) -> Result<Checked<'a>, Refused> {
    let form = target::form(req.raw_path(), req.method == Method::OPTIONS)?;
    let mut hosts = req.headers.get_all(HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => return Err(bad("more than one Host field")),
        (None, _) if req.version != Version::HTTP_10 => {
            return Err(bad("an HTTP/1.1 request without Host"))
        }
        (Some(host), None) if !target::is_authority(host.as_bytes()) => {
            return Err(bad("a Host that is not a host[:port]"))
        }
        _ => {}
    }
    let chunked = transfer_coding(req)?;
    let length = content_length(&req.headers, false)?;
    if chunked && (length.is_some() || has_field(raw, b"content-length")) {
        return Err(bad("both Content-Length and Transfer-Encoding"));
    }
    let body = match (chunked, length) {
        (true, _) => Framing::Chunked,
        (false, n) => Framing::Length(n.unwrap_or(0)),
    };
    Ok(Checked { form, body })
}

/// A request head that passed [`check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Checked<'a> {
    pub form: Form<'a>,
    pub body: Framing,
}

/// How the request's body is framed (none is `Length(0)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Length(u64),
    Chunked,
}

/// The request with an absolute-form target as it is routed and forwarded: the target's
/// authority as `Host` (it wins over a `Host` field, RFC 9112 §3.2.2), the target in origin
/// form.
pub(crate) fn to_origin_form(req: &mut RequestHeader, authority: &str, rest: &str) {
    let path = match rest.strip_prefix('?') {
        Some(_) => format!("/{rest}"),
        None if rest.is_empty() => "/".to_owned(),
        None => rest.to_owned(),
    };
    // Both were checked to be valid here (`check`); a failure leaves the head as it was,
    // and `check` refuses what could not be parsed.
    if let (Ok(uri), Ok(host)) = (
        http::Uri::builder().path_and_query(path).build(),
        HeaderValue::from_str(authority),
    ) {
        req.set_uri(uri);
        let _ = req.insert_header(HOST, host);
    }
}

/// Whether the body is chunked: `Transfer-Encoding` absent, or exactly `chunked` once.
fn transfer_coding(req: &RequestHeader) -> Result<bool, Refused> {
    let mut fields = req.headers.get_all(TRANSFER_ENCODING).iter();
    let Some(first) = fields.next() else {
        return Ok(false);
    };
    if req.version == Version::HTTP_10 {
        return Err(bad("Transfer-Encoding in an HTTP/1.0 request"));
    }
    if fields.next().is_some() {
        return Err(bad("more than one Transfer-Encoding field"));
    }
    framing::transfer_coding(first.as_bytes()).map(|()| true)
}

/// Whether a raw head (a start line, then field lines) has a field named `name` (lowercase).
pub(crate) fn has_field(raw: &[u8], name: &[u8]) -> bool {
    raw.split(|&c| c == b'\n').skip(1).any(|line| {
        line.len() > name.len()
            && line[..name.len()].eq_ignore_ascii_case(name)
            && line[name.len()] == b':'
    })
}

/// The body's length from `Content-Length`: one field line of digits. `merge`: identical
/// lines count as one (HTTP/2, where the field may be repeated, RFC 9110 §8.6); HTTP/1 allows
/// one line only.
pub(crate) fn content_length(
    headers: &http::HeaderMap,
    merge: bool,
) -> Result<Option<u64>, Refused> {
    let mut length = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        let n = framing::content_length(value.as_bytes())
            .ok_or(bad("a Content-Length that is not one number"))?;
        match length {
            None => length = Some(n),
            Some(m) if merge && m == n => {}
            Some(_) => return Err(bad("more than one Content-Length field")),
        }
    }
    Ok(length)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(
        version: Version,
        method: &str,
        target: &[u8],
        fields: &[(&str, &[u8])],
    ) -> RequestHeader {
        let mut r = RequestHeader::build(method, target, None).unwrap();
        r.set_version(version);
        for (n, v) in fields {
            r.append_header(n.to_string(), HeaderValue::from_bytes(v).unwrap())
                .unwrap();
        }
        r
    }

    fn verdict(target: &[u8], fields: &[(&str, &[u8])]) -> Result<(), u16> {
        let r = head(Version::HTTP_11, "GET", target, fields);
        check(&r, b"").map(|_| ()).map_err(|e| e.status)
    }

    const HOST_OK: (&str, &[u8]) = ("host", b"api.example.com");

    /// Checks `r`, which must have an absolute-form target, and puts it in origin form.
    fn in_origin_form(r: &mut RequestHeader) {
        let Ok(Checked {
            form: Form::Absolute { authority, rest },
            ..
        }) = check(r, b"")
        else {
            panic!("not absolute-form");
        };
        let (authority, rest) = (authority.to_owned(), rest.to_owned());
        to_origin_form(r, &authority, &rest);
    }

    #[test]
    fn only_origin_absolute_and_asterisk_forms_are_targets() {
        assert_eq!(verdict(b"/admin", &[HOST_OK]), Ok(()));
        assert_eq!(verdict(b"http://api.example.com/admin", &[HOST_OK]), Ok(()));
        assert_eq!(verdict(b"HTTPS://api.example.com", &[HOST_OK]), Ok(()));
        for refused in [
            &b"x:/admin"[..],
            b"x:/admin/..%2f..%2fsecret",
            b"evil.example:80",
            b"api.example.com/admin",
            b"ftp://api.example.com/",
            b"http:///admin",
            b"http://user@api.example.com/",
            b"*",
        ] {
            assert_eq!(
                verdict(refused, &[HOST_OK]),
                Err(400),
                "{}",
                String::from_utf8_lossy(refused)
            );
        }
        let r = head(Version::HTTP_11, "OPTIONS", b"*", &[HOST_OK]);
        assert_eq!(check(&r, b"").map(|c| c.form), Ok(Form::Asterisk));
    }

    #[test]
    fn an_absolute_target_is_routed_and_forwarded_on_its_own_authority() {
        let mut r = head(
            Version::HTTP_11,
            "GET",
            b"http://api.example.com:8080?q=1",
            &[("host", b"other.example")],
        );
        in_origin_form(&mut r);
        assert_eq!(r.uri.to_string(), "/?q=1");
        assert_eq!(r.raw_path(), b"/?q=1");
        assert_eq!(r.headers["host"], "api.example.com:8080");
        assert_eq!(r.headers.get_all("host").iter().count(), 1);
    }

    #[test]
    fn an_absolute_target_without_a_path_gets_the_root_and_a_path_is_kept() {
        for (target, path) in [
            (&b"http://api.example.com"[..], "/"),
            (b"http://api.example.com/v1/x", "/v1/x"),
            (b"http://api.example.com/v1?q=1", "/v1?q=1"),
        ] {
            let mut r = head(Version::HTTP_11, "GET", target, &[HOST_OK]);
            in_origin_form(&mut r);
            assert_eq!(r.raw_path(), path.as_bytes());
        }
    }

    #[test]
    fn a_field_is_found_by_its_name_and_colon_only() {
        let raw = b"POST / HTTP/1.1\r\nContent-Length: 5\r\nX: y\r\ncontent-length";
        assert!(has_field(raw, b"content-length"));
        assert!(has_field(raw, b"x"));
        // A line that is the name alone (no colon) is not the field, and does not panic.
        assert!(!has_field(
            b"GET / HTTP/1.1\r\ncontent-length",
            b"content-length"
        ));
        assert!(!has_field(
            b"GET / HTTP/1.1\r\ncontent-lengthy: 1",
            b"content-length"
        ));
    }

    #[test]
    fn http11_needs_exactly_one_valid_host_and_http10_none() {
        assert_eq!(verdict(b"/", &[]), Err(400));
        assert_eq!(verdict(b"/", &[HOST_OK, HOST_OK]), Err(400));
        assert_eq!(verdict(b"/", &[("host", b"a.example/x")]), Err(400));
        assert_eq!(verdict(b"/", &[("host", b"a@b.example")]), Err(400));
        assert_eq!(verdict(b"/", &[("host", b"[::1]:8080")]), Ok(()));
        assert_eq!(verdict(b"/", &[("host", b"127.0.0.1:80")]), Ok(()));
        assert_eq!(verdict(b"/", &[("host", b"")]), Ok(()));
        let r = head(Version::HTTP_10, "GET", b"/", &[]);
        assert_eq!(check(&r, b"").map(|c| c.form), Ok(Form::Origin));
    }

    #[test]
    fn content_length_is_one_number() {
        assert_eq!(verdict(b"/", &[HOST_OK, ("content-length", b"05")]), Ok(()));
        for refused in [
            &b"5, 5"[..],
            b"+5",
            b"-1",
            b"0x5",
            b"5 5",
            b"",
            b"99999999999999999999",
        ] {
            assert_eq!(
                verdict(b"/", &[HOST_OK, ("content-length", refused)]),
                Err(400),
                "{}",
                String::from_utf8_lossy(refused)
            );
        }
        let two = [
            HOST_OK,
            ("content-length", &b"5"[..]),
            ("content-length", b"5"),
        ];
        assert_eq!(verdict(b"/", &two), Err(400));
        let r = head(Version::HTTP_2, "POST", b"/", &two[1..]);
        assert_eq!(content_length(&r.headers, true), Ok(Some(5)));
    }

    #[test]
    fn transfer_encoding_is_exactly_chunked() {
        let te = |v: &'static [u8]| verdict(b"/", &[HOST_OK, ("transfer-encoding", v)]);
        assert_eq!(te(b"chunked"), Ok(()));
        assert_eq!(te(b"Chunked"), Ok(()));
        assert_eq!(te(b"gzip, chunked"), Err(501));
        assert_eq!(te(b"gzip"), Err(501));
        assert_eq!(te(b"chunked, chunked"), Err(400));
        for refused in [
            &b"\"chunked\""[..],
            b"chunked,",
            b",chunked",
            b"chunked;q=1",
            b"\xa0chunked",
        ] {
            assert_eq!(
                te(refused),
                Err(400),
                "{}",
                String::from_utf8_lossy(refused)
            );
        }
        let both = [
            HOST_OK,
            ("transfer-encoding", &b"chunked"[..]),
            ("content-length", b"5"),
        ];
        assert_eq!(verdict(b"/", &both), Err(400));
        let twice = [
            HOST_OK,
            ("transfer-encoding", &b"chunked"[..]),
            ("transfer-encoding", b"chunked"),
        ];
        assert_eq!(verdict(b"/", &twice), Err(400));
        // pingora drops Content-Length from a parsed head that has both: the raw head tells.
        let te = head(
            Version::HTTP_11,
            "POST",
            b"/",
            &[HOST_OK, ("transfer-encoding", b"chunked")],
        );
        let raw = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-length: 5\r\n\r\n";
        assert_eq!(check(&te, raw).map_err(|e| e.status), Err(400));
        let r = head(
            Version::HTTP_10,
            "POST",
            b"/",
            &[("transfer-encoding", b"chunked")],
        );
        assert_eq!(check(&r, b"").map_err(|e| e.status), Err(400));
    }
}
