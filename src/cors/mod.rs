//! The CORS engine, after the Fetch standard (<https://fetch.spec.whatwg.org/#http-cors-protocol>).
//!
//! A [`CorsPolicy`] is compiled once from the config: every header value it can send is built
//! at load time, so the request path only looks things up and clones `HeaderValue`s. The
//! functions here are pure: they read a request header and write a response header, with no
//! socket and no pingora session, so each rule is unit-tested beside the code.
//!
//! - this file: the compiled policy and the origin check;
//! - `preflight.rs`: the answer to a preflight;
//! - `actual.rs`: the headers of an actual response, `Vary` merging;
//! - `text.rs`: values from requests made safe for bodies and logs.

mod actual;
mod preflight;
#[cfg(test)]
mod tests;
mod text;

pub use actual::merge_vary;
pub use text::{printable, sanitize};

use std::collections::HashSet;
use std::sync::Arc;

use http::header::{ACCESS_CONTROL_REQUEST_METHOD, ORIGIN};
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
    /// 204, or 403 with `body` when refused. Boxed where it is built: the answer moves from
    /// the dispatcher through the adapter's futures to pingora (which takes a box) as a pointer.
    pub header: Box<ResponseHeader>,
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
}

/// A CORS preflight: `OPTIONS` with both `Origin` and `Access-Control-Request-Method`. Any
/// other `OPTIONS` is the backend's business and is forwarded.
pub fn is_preflight(req: &RequestHeader) -> bool {
    req.method == Method::OPTIONS
        && req.headers.contains_key(ORIGIN)
        && req.headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
}
