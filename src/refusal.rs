//! Why crossgate refuses a request (or, under a report-only policy, would refuse it): one typed
//! value that feeds the 403 body, the access log and the metrics, so that a reason can be
//! neither misspelled nor mislabelled.

use std::fmt;

use crate::path::Ambiguity;

/// A refusal, with what the message needs. `Display` is the sentence for bodies and logs
/// (values from the request are escaped and bounded by [`crate::cors::printable`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The Origin (or `null`) matches no `allow_origins` entry.
    OriginNotListed { origin: String, policy: String },
    /// The Origin header is not ASCII, which no browser sends.
    OriginNotAscii { policy: String },
    /// Several Origin headers: nothing is allowed, whichever is listed.
    SeveralOrigins,
    /// `Access-Control-Request-Method` is not a method.
    RequestMethodInvalid,
    /// A preflight asks for a method the policy does not list.
    Method {
        method: String,
        policy: String,
        allowed: String,
    },
    /// `Access-Control-Request-Headers` is not ASCII, or not a list of names (mirror).
    RequestHeadersInvalid { not_ascii: bool },
    /// A preflight asks for a header the policy does not list.
    Header { header: String, policy: String },
    /// The page that includes a JSONP script is not on the allowlist.
    Referer { page: String, policy: String },
    /// A browser says the JSONP request is cross-site but hides the including page.
    CrossSiteWithoutReferer,
    /// No Referer, and the route's `jsonp.without_referer` is deny.
    NoReferer,
    /// A WebSocket handshake from an origin the route's policy does not list.
    WebSocketOrigin { origin: String, policy: String },
    /// A WebSocket handshake without Origin, and `websocket.without_origin` is deny.
    WebSocketNoOrigin,
    /// A WebSocket handshake with several Origin headers.
    WebSocketSeveralOrigins,
    /// An upgrade on a route without `websocket:`.
    WebSocketDisabled { route: String },
    /// An upgrade to something other than `websocket` (`h2c`, `websocket, x`).
    UpgradeNotWebSocket,
    /// A JSONP callback that cannot be used, and why.
    Callback(String),
    /// A path whose decoding would change its routing (`server.ambiguous_paths: reject`).
    AmbiguousPath(Ambiguity),
}

/// What kind of check refused: the bounded label for metrics and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalKind {
    Origin,
    NullOrigin,
    Method,
    Header,
    Referer,
    WebSocketOrigin,
    Upgrade,
    Callback,
    Path,
}

impl RefusalKind {
    pub fn label(self) -> &'static str {
        match self {
            RefusalKind::Origin => "origin_not_listed",
            RefusalKind::NullOrigin => "null_origin",
            RefusalKind::Method => "method",
            RefusalKind::Header => "header",
            RefusalKind::Referer => "referer",
            RefusalKind::WebSocketOrigin => "websocket_origin",
            RefusalKind::Upgrade => "upgrade",
            RefusalKind::Callback => "callback",
            RefusalKind::Path => "path",
        }
    }
}

impl Refusal {
    /// Whether it refuses the request's Origin (a CORS decision, or a WebSocket handshake's
    /// Origin check), rather than what was asked for.
    pub fn is_origin(&self) -> bool {
        !matches!(
            self,
            Refusal::WebSocketDisabled { .. } | Refusal::UpgradeNotWebSocket
        )
    }

    pub fn kind(&self) -> RefusalKind {
        match self {
            Refusal::OriginNotListed { origin, .. } if origin == "null" => RefusalKind::NullOrigin,
            Refusal::OriginNotListed { .. } | Refusal::OriginNotAscii { .. } => RefusalKind::Origin,
            Refusal::SeveralOrigins => RefusalKind::Origin,
            Refusal::RequestMethodInvalid | Refusal::Method { .. } => RefusalKind::Method,
            Refusal::RequestHeadersInvalid { .. } | Refusal::Header { .. } => RefusalKind::Header,
            Refusal::Referer { .. } | Refusal::CrossSiteWithoutReferer | Refusal::NoReferer => {
                RefusalKind::Referer
            }
            Refusal::WebSocketOrigin { .. }
            | Refusal::WebSocketNoOrigin
            | Refusal::WebSocketSeveralOrigins => RefusalKind::WebSocketOrigin,
            Refusal::WebSocketDisabled { .. } | Refusal::UpgradeNotWebSocket => {
                RefusalKind::Upgrade
            }
            Refusal::Callback(_) => RefusalKind::Callback,
            Refusal::AmbiguousPath(_) => RefusalKind::Path,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::cors::printable;
        match self {
            Refusal::OriginNotListed { origin, policy } => write!(
                f,
                "origin {} is not in allow_origins of policy {policy}",
                printable(origin)
            ),
            Refusal::OriginNotAscii { policy } => write!(
                f,
                "the Origin is not ASCII, which no browser sends (policy {policy})"
            ),
            Refusal::SeveralOrigins => f.write_str("the request has several Origin headers"),
            Refusal::RequestMethodInvalid => {
                f.write_str("Access-Control-Request-Method is not a method")
            }
            Refusal::Method {
                method,
                policy,
                allowed,
            } => write!(
                f,
                "method {method} is not in allow_methods of policy {policy} ({allowed})"
            ),
            Refusal::RequestHeadersInvalid { not_ascii: true } => {
                f.write_str("Access-Control-Request-Headers is not ASCII")
            }
            Refusal::RequestHeadersInvalid { not_ascii: false } => {
                f.write_str("Access-Control-Request-Headers is not a list of header names")
            }
            Refusal::Header { header, policy } => write!(
                f,
                "header {} is not in allow_headers of policy {policy}",
                printable(header)
            ),
            Refusal::Referer { page, policy } => write!(
                f,
                "the including page {} is not in allow_origins of policy {policy}",
                printable(page)
            ),
            Refusal::CrossSiteWithoutReferer => {
                f.write_str("a cross-site request without a Referer")
            }
            Refusal::NoReferer => f.write_str(
                "the request has no Referer, and this route's jsonp.without_referer is deny",
            ),
            Refusal::WebSocketOrigin { origin, policy } => write!(
                f,
                "origin {} is not in allow_origins of policy {policy}",
                printable(origin)
            ),
            Refusal::WebSocketNoOrigin => {
                f.write_str("the upgrade has no Origin, and websocket.without_origin is deny")
            }
            Refusal::WebSocketSeveralOrigins => {
                f.write_str("the upgrade has several Origin headers")
            }
            Refusal::WebSocketDisabled { route } => {
                write!(f, "WebSocket upgrades are not enabled on route {route}")
            }
            Refusal::UpgradeNotWebSocket => f.write_str("only `Upgrade: websocket` is let through"),
            Refusal::Callback(why) => f.write_str(why),
            Refusal::AmbiguousPath(why) => write!(f, "{why} (server.ambiguous_paths is reject)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_its_kind_and_escapes_what_the_request_sent() {
        let r = Refusal::OriginNotListed {
            origin: "https://evil.test\n".into(),
            policy: "app".into(),
        };
        assert_eq!(r.kind(), RefusalKind::Origin);
        assert!(!r.to_string().contains('\n'));
        let null = Refusal::OriginNotListed {
            origin: "null".into(),
            policy: "app".into(),
        };
        assert_eq!(null.kind().label(), "null_origin");
    }
}
