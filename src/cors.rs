//! The CORS engine, after the Fetch standard (<https://fetch.spec.whatwg.org/#http-cors-protocol>).
//!
//! A [`CorsPolicy`] is compiled once from the config: every header value it can send is built
//! at load time, so the request path only looks things up and clones `HeaderValue`s. The
//! functions here are pure: they read a request header and write a response header, with no
//! socket and no pingora session, so each rule is unit-tested beside the code.

use std::collections::HashSet;
use std::sync::Arc;

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::{HeaderName, HeaderValue, Method};
use pingora::http::{RequestHeader, ResponseHeader};

use crate::config::UpstreamHeaders;
use crate::origin::OriginList;
use crate::refusal::Refusal;

// Header names are inserted as `&'static str` in title case: pingora's case-preserving
// header maps copy a `HeaderName` they do not know into a new buffer on every insert.

/// Private Network Access (<https://wicg.github.io/private-network-access/>).
pub const REQUEST_PRIVATE_NETWORK: HeaderName =
    HeaderName::from_static("access-control-request-private-network");
pub const ALLOW_PRIVATE_NETWORK: HeaderName =
    HeaderName::from_static("access-control-allow-private-network");

static TRUE: HeaderValue = HeaderValue::from_static("true");
static STAR: HeaderValue = HeaderValue::from_static("*");

/// Which origins a policy allows.
#[derive(Debug)]
pub enum AllowOrigin {
    /// Every origin, answered with `*` (never with credentials: refused at load).
    Any,
    List(OriginList),
}

/// `Access-Control-Allow-Headers` on preflights.
#[derive(Debug)]
pub enum AllowHeaders {
    /// Echo `Access-Control-Request-Headers` (and vary on it).
    Mirror,
    List {
        /// Lowercase names, to check what a preflight asks for.
        names: HashSet<String>,
        value: Option<HeaderValue>,
    },
}

/// A compiled CORS policy.
#[derive(Debug)]
pub struct CorsPolicy {
    /// The policy's name in `cors_policies`, or the YAML path of an inline one.
    pub name: String,
    pub origins: AllowOrigin,
    pub methods: Vec<Method>,
    pub methods_value: HeaderValue,
    pub headers: AllowHeaders,
    pub expose_value: Option<HeaderValue>,
    pub credentials: bool,
    pub max_age: Option<HeaderValue>,
    pub private_network: bool,
    pub upstream_headers: UpstreamHeaders,
    /// In report-only mode, the policy that serves what this one would refuse.
    pub report_only: Option<Arc<CorsPolicy>>,
    /// `Vary` on actual responses (None when the answer never depends on the request).
    vary_actual: Option<HeaderValue>,
    vary_preflight: HeaderValue,
}

/// What the policy says of a request's `Origin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginCheck {
    /// No `Origin`: not a cross-origin browser request; no CORS headers.
    NoOrigin,
    /// Allowed: the value to send as `Access-Control-Allow-Origin`.
    Allowed(HeaderValue),
    /// Refused, and why (for the log and the preflight's 403 body).
    Denied(Refusal),
    /// A report-only policy would refuse (why), and `served` is what its fallback decided.
    WouldDeny {
        served: Box<OriginCheck>,
        why: Refusal,
    },
}

impl OriginCheck {
    /// A word for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            OriginCheck::NoOrigin => "no_origin",
            OriginCheck::Allowed(_) => "allowed",
            OriginCheck::Denied(_) => "denied",
            OriginCheck::WouldDeny { .. } => "would_deny",
        }
    }
}

/// The proxy's own answer to a preflight.
#[derive(Debug)]
pub struct Preflight {
    pub check: OriginCheck,
    /// 204, or 403 with `body` when refused.
    pub header: ResponseHeader,
    pub body: Option<String>,
}

/// The settings a policy is built from (already validated by `rules::compile`).
pub struct PolicySpec {
    pub name: String,
    pub origins: AllowOrigin,
    pub methods: Vec<Method>,
    pub headers: Option<Vec<HeaderName>>,
    pub expose: Vec<HeaderName>,
    pub credentials: bool,
    pub max_age: Option<u64>,
    pub private_network: bool,
    pub upstream_headers: UpstreamHeaders,
    pub report_only: Option<Arc<CorsPolicy>>,
}

fn join<T: AsRef<str>>(items: impl IntoIterator<Item = T>) -> Option<HeaderValue> {
    let joined = items
        .into_iter()
        .map(|s| s.as_ref().to_owned())
        .collect::<Vec<_>>()
        .join(", ");
    // Names and methods are tokens, so the joined value is always a valid header value.
    (!joined.is_empty()).then(|| HeaderValue::from_str(&joined).expect("tokens joined by commas"))
}

impl CorsPolicy {
    pub fn new(spec: PolicySpec) -> CorsPolicy {
        let origin_dependent = matches!(spec.origins, AllowOrigin::List(_));
        let headers = match spec.headers {
            None => AllowHeaders::Mirror,
            Some(list) => AllowHeaders::List {
                names: list.iter().map(|h| h.as_str().to_owned()).collect(),
                value: join(list.iter().map(|h| h.as_str())),
            },
        };
        let mut vary = Vec::new();
        if origin_dependent {
            vary.push("Origin");
        }
        vary.extend([
            "Access-Control-Request-Method",
            "Access-Control-Request-Headers",
        ]);
        if spec.private_network {
            vary.push("Access-Control-Request-Private-Network");
        }
        CorsPolicy {
            name: spec.name,
            methods_value: join(spec.methods.iter().map(|m| m.as_str()))
                .unwrap_or_else(|| HeaderValue::from_static("GET, HEAD, POST")),
            methods: spec.methods,
            headers,
            expose_value: join(spec.expose.iter().map(|h| h.as_str())),
            credentials: spec.credentials,
            max_age: spec.max_age.map(HeaderValue::from),
            private_network: spec.private_network,
            upstream_headers: spec.upstream_headers,
            // A report-only policy's answer depends on the origin even when its fallback's
            // does not.
            vary_actual: (origin_dependent || spec.report_only.is_some())
                .then(|| HeaderValue::from_static("Origin")),
            report_only: spec.report_only,
            vary_preflight: join(vary).expect("never empty"),
            origins: spec.origins,
        }
    }

    /// Checks the request's `Origin` header(s) against the allowlist.
    pub fn check_origin(&self, req: &RequestHeader) -> OriginCheck {
        match (self.check_origin_strict(req), &self.report_only) {
            (OriginCheck::Denied(why), Some(fallback)) => OriginCheck::WouldDeny {
                served: Box::new(fallback.check_origin(req)),
                why,
            },
            (check, _) => check,
        }
    }

    /// This policy's own decision, report-only or not.
    fn check_origin_strict(&self, req: &RequestHeader) -> OriginCheck {
        let mut values = req.headers.get_all(ORIGIN).iter();
        let Some(origin) = values.next() else {
            // `*` goes on every response of an `any` policy, with or without Origin, so that
            // a cache never stores a copy without it (Fetch, "CORS protocol and HTTP caches").
            return match self.origins {
                AllowOrigin::Any => OriginCheck::Allowed(STAR.clone()),
                AllowOrigin::List(_) => OriginCheck::NoOrigin,
            };
        };
        if values.next().is_some() {
            return OriginCheck::Denied(Refusal::SeveralOrigins);
        }
        match &self.origins {
            AllowOrigin::Any => OriginCheck::Allowed(STAR.clone()),
            AllowOrigin::List(list) => {
                let Ok(text) = origin.to_str() else {
                    return OriginCheck::Denied(Refusal::OriginNotAscii {
                        policy: self.name.clone(),
                    });
                };
                match list.find(text) {
                    Some(_) => OriginCheck::Allowed(origin.clone()),
                    None => OriginCheck::Denied(Refusal::OriginNotListed {
                        origin: text.to_owned(),
                        policy: self.name.clone(),
                    }),
                }
            }
        }
    }

    /// Whether `origin` (a serialized origin) is allowed, for channels other than CORS
    /// (JSONP's Referer, WebSocket's Origin).
    pub fn allows(&self, origin: &str) -> bool {
        let strict = match &self.origins {
            AllowOrigin::Any => true,
            AllowOrigin::List(list) => list.find(origin).is_some(),
        };
        strict || self.report_only.as_ref().is_some_and(|f| f.allows(origin))
    }

    /// The allowlist entry that allows `origin`, as written (for `explain`).
    pub fn matching_entry(&self, origin: &str) -> Option<&str> {
        match &self.origins {
            AllowOrigin::Any => Some("any"),
            AllowOrigin::List(list) => list.find(origin).map(|i| list.entries[i].as_str()),
        }
    }

    /// Answers a preflight (see [`is_preflight`]) without forwarding it.
    pub fn preflight(&self, req: &RequestHeader) -> Preflight {
        let strict = self.preflight_strict(req);
        match (&strict.check, &self.report_only) {
            (OriginCheck::Denied(why), Some(fallback)) => {
                let mut served = fallback.preflight(req);
                let why = why.clone();
                served.check = OriginCheck::WouldDeny {
                    served: Box::new(served.check),
                    why,
                };
                served
                    .header
                    .insert_header("Vary", self.vary_preflight.clone())
                    .expect("static");
                served
            }
            _ => strict,
        }
    }

    fn preflight_strict(&self, req: &RequestHeader) -> Preflight {
        let check = match self.check_origin_strict(req) {
            OriginCheck::Allowed(v) => match self.check_request_method_and_headers(req) {
                Ok(()) => OriginCheck::Allowed(v),
                Err(why) => OriginCheck::Denied(why),
            },
            other => other,
        };
        let status = if matches!(check, OriginCheck::Allowed(_)) {
            204
        } else {
            403
        };
        // Built as plain `http` parts with static names, then handed to pingora: its
        // `insert_header` parses every name again (5% of a preflight's instructions). The wire
        // form is what `build_no_case` gave: no case map, names as pingora titles them.
        let (mut parts, ()) = http::Response::new(()).into_parts();
        parts.status = http::StatusCode::from_u16(status).expect("valid status");
        let h = &mut parts.headers;
        h.reserve(8);
        h.insert(VARY, self.vary_preflight.clone());
        let body = match &check {
            OriginCheck::Allowed(acao) => {
                h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, acao.clone());
                if self.credentials {
                    h.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, TRUE.clone());
                }
                h.insert(ACCESS_CONTROL_ALLOW_METHODS, self.methods_value.clone());
                match &self.headers {
                    AllowHeaders::Mirror => {
                        if let Some(v) = mirrored_headers(req) {
                            h.insert(ACCESS_CONTROL_ALLOW_HEADERS, v);
                        }
                    }
                    AllowHeaders::List { value: Some(v), .. } => {
                        h.insert(ACCESS_CONTROL_ALLOW_HEADERS, v.clone());
                    }
                    AllowHeaders::List { value: None, .. } => {}
                }
                if let Some(age) = &self.max_age {
                    h.insert(ACCESS_CONTROL_MAX_AGE, age.clone());
                }
                if self.private_network && asks_private_network(req) {
                    h.insert(ALLOW_PRIVATE_NETWORK, TRUE.clone());
                }
                // 204: no Content-Length (RFC 9110 §8.6).
                None
            }
            OriginCheck::Denied(why) => {
                let body = format!("crossgate: CORS preflight refused: {why}\n");
                h.insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                h.insert(
                    http::header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                );
                h.insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
                Some(body)
            }
            OriginCheck::NoOrigin | OriginCheck::WouldDeny { .. } => {
                unreachable!("a preflight has an Origin, and the strict check never defers")
            }
        };
        Preflight {
            check,
            header: ResponseHeader::from(parts),
            body,
        }
    }

    /// Refuses what the browser would refuse anyway, so that the 403 says why: a method that is
    /// neither listed nor CORS-safelisted, or a header that is not listed.
    fn check_request_method_and_headers(&self, req: &RequestHeader) -> Result<(), Refusal> {
        let method = req
            .headers
            .get(ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|v| v.to_str().ok())
            .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
            .ok_or(Refusal::RequestMethodInvalid)?;
        let safelisted = method == Method::GET || method == Method::HEAD || method == Method::POST;
        if !safelisted && !self.methods.contains(&method) {
            return Err(Refusal::Method {
                method: method.to_string(),
                policy: self.name.clone(),
                allowed: self.methods_value.to_str().unwrap_or_default().to_owned(),
            });
        }
        let asked = req.headers.get_all(ACCESS_CONTROL_REQUEST_HEADERS);
        match &self.headers {
            AllowHeaders::Mirror => {
                for v in asked {
                    if !v.to_str().is_ok_and(is_header_name_list) {
                        return Err(Refusal::RequestHeadersInvalid { not_ascii: false });
                    }
                }
            }
            AllowHeaders::List { names, .. } => {
                for v in asked {
                    let text = v
                        .to_str()
                        .map_err(|_| Refusal::RequestHeadersInvalid { not_ascii: true })?;
                    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                        if !names.contains(&name.to_ascii_lowercase()) {
                            return Err(Refusal::Header {
                                header: name.to_owned(),
                                policy: self.name.clone(),
                            });
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Sets the CORS headers of an actual (non-preflight) response, including the proxy's own
    /// error responses, and merges `Vary`.
    pub fn apply_actual(&self, resp: &mut ResponseHeader, check: &OriginCheck) {
        if let (OriginCheck::WouldDeny { served, .. }, Some(fallback)) = (check, &self.report_only)
        {
            fallback.apply_actual(resp, served);
            if let Some(v) = &self.vary_actual {
                merge_vary(resp, v);
            }
            return;
        }
        // The backend's own CORS headers pass only for an origin the policy allows: a refused
        // origin never leaves with CORS headers, whoever wrote them.
        let backend_has_cors = resp.headers.contains_key(ACCESS_CONTROL_ALLOW_ORIGIN);
        match self.upstream_headers {
            UpstreamHeaders::Passthrough
                if backend_has_cors && !matches!(check, OriginCheck::Denied(_)) => {}
            _ => {
                strip_cors_headers(resp);
                if let OriginCheck::Allowed(acao) = check {
                    self.insert_common(resp, acao);
                    if let Some(v) = &self.expose_value {
                        resp.insert_header("Access-Control-Expose-Headers", v.clone())
                            .expect("static");
                    }
                }
            }
        }
        if let Some(v) = &self.vary_actual {
            merge_vary(resp, v);
        }
    }

    fn insert_common(&self, h: &mut ResponseHeader, acao: &HeaderValue) {
        h.insert_header("Access-Control-Allow-Origin", acao.clone())
            .expect("valid");
        if self.credentials {
            h.insert_header("Access-Control-Allow-Credentials", TRUE.clone())
                .expect("static");
        }
    }
}

/// A CORS preflight: `OPTIONS` with both `Origin` and `Access-Control-Request-Method`. Any
/// other `OPTIONS` is the backend's business and is forwarded.
pub fn is_preflight(req: &RequestHeader) -> bool {
    req.method == Method::OPTIONS
        && req.headers.contains_key(ORIGIN)
        && req.headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
}

/// Every `Access-Control-Request-Headers` line, joined (already checked to be header names).
fn mirrored_headers(req: &RequestHeader) -> Option<HeaderValue> {
    let lines: Vec<&HeaderValue> = req
        .headers
        .get_all(ACCESS_CONTROL_REQUEST_HEADERS)
        .iter()
        .collect();
    match lines.as_slice() {
        [] => None,
        [one] => Some((*one).clone()),
        many => {
            let joined: Vec<&str> = many.iter().filter_map(|v| v.to_str().ok()).collect();
            HeaderValue::from_str(&joined.join(", ")).ok()
        }
    }
}

fn asks_private_network(req: &RequestHeader) -> bool {
    req.headers
        .get(REQUEST_PRIVATE_NETWORK)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"))
}

fn is_header_name_list(s: &str) -> bool {
    s.split(',')
        .map(str::trim)
        .all(|n| n.is_empty() || HeaderName::from_bytes(n.as_bytes()).is_ok())
}

/// Removes every `Access-Control-*` header (what the backend set on its own). Most backends
/// send none: that case allocates nothing.
pub fn strip_cors_headers(resp: &mut ResponseHeader) {
    if !resp
        .headers
        .keys()
        .any(|k| k.as_str().starts_with("access-control-"))
    {
        return;
    }
    let names: Vec<HeaderName> = resp
        .headers
        .keys()
        .filter(|k| k.as_str().starts_with("access-control-"))
        .cloned()
        .collect();
    for n in names {
        resp.remove_header(&n);
    }
}

/// Adds `add` (a comma list) to the response's `Vary`, as one header line: existing lines are
/// merged, names already present are not repeated, and `Vary: *` is left alone.
pub fn merge_vary(resp: &mut ResponseHeader, add: &HeaderValue) {
    let mut lines = resp.headers.get_all(VARY).iter();
    let (first, second) = (lines.next().cloned(), lines.next().is_some());
    let Some(first) = first else {
        resp.insert_header("Vary", add.clone()).expect("valid");
        return;
    };
    // The common case, one existing line: append only the missing names, without splitting
    // either value into owned strings.
    if !second {
        let current = first.as_bytes();
        if has_token(current, b"*") {
            return;
        }
        let mut merged: Option<Vec<u8>> = None;
        for name in add
            .as_bytes()
            .split(|b| *b == b',')
            .map(<[u8]>::trim_ascii)
            .filter(|n| !n.is_empty())
        {
            if !has_token(current, name) {
                let m = merged.get_or_insert_with(|| current.to_vec());
                m.extend_from_slice(b", ");
                m.extend_from_slice(name);
            }
        }
        if let Some(m) = merged {
            if let Ok(v) = HeaderValue::from_bytes(&m) {
                resp.insert_header("Vary", v).expect("valid");
            }
        }
        return;
    }
    let existing = resp.headers.get_all(VARY).iter();
    let mut names: Vec<String> = Vec::new();
    for v in existing {
        for n in v.to_str().unwrap_or_default().split(',').map(str::trim) {
            if !n.is_empty() && !names.iter().any(|e| e.eq_ignore_ascii_case(n)) {
                names.push(n.to_owned());
            }
        }
    }
    if names.iter().any(|n| n == "*") {
        resp.insert_header("Vary", STAR.clone()).expect("static");
        return;
    }
    for n in add.to_str().unwrap_or_default().split(',').map(str::trim) {
        if !names.iter().any(|e| e.eq_ignore_ascii_case(n)) {
            names.push(n.to_owned());
        }
    }
    match HeaderValue::from_str(&names.join(", ")) {
        Ok(v) => {
            resp.insert_header("Vary", v).expect("valid");
        }
        Err(_) => {
            resp.insert_header("Vary", add.clone()).expect("valid");
        }
    }
}

/// Whether a comma list holds `token` (case-insensitively).
fn has_token(list: &[u8], token: &[u8]) -> bool {
    list.split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// An attacker-controlled value, quoted and made safe for a one-line message.
pub fn printable(s: &str) -> String {
    format!("\"{}\"", sanitize(s))
}

/// An attacker-controlled value made safe for a log field: controls and non-ASCII escaped,
/// length bounded.
pub fn sanitize(s: &str) -> String {
    const MAX: usize = 200;
    let mut out: String = s
        .chars()
        .take(MAX)
        .flat_map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                vec![c]
            } else {
                c.escape_default().collect()
            }
        })
        .collect();
    if s.chars().count() > MAX {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
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
}
