//! The one decision per request: which way it is served, taken from the rules and the
//! request head alone (no socket, no pingora session), so that the proxy and `explain`
//! cannot disagree. The proxy's adapter turns the [`Action`] into an answer or a forward.
//!
//! The order is the proxy's: the path first (one value routed and forwarded), then the
//! proxy's own endpoints (bridge, beacons), then the route, and on the route: upgrades,
//! preflights, event streams with heartbeats, JSONP, and the plain forward.

use std::time::Duration;

use http::header::UPGRADE;
use http::Method;
use pingora::http::RequestHeader;

use crate::bridge::Asset;
use crate::channels::{jsonp, sse, websocket};
use crate::cors::{self, OriginCheck, Preflight};
use crate::path;
use crate::refusal::Refusal;
use crate::rules::Rules;

/// How a request is served.
#[derive(Debug)]
pub enum Action {
    /// Refused before routing: a plain 400 (`server.ambiguous_paths: reject`).
    BadPath(Refusal),
    /// One of the bridge's files.
    Bridge(Asset),
    /// A beacon endpoint (its index in `Rules::beacons`).
    Beacon(usize),
    /// No route serves the path: the proxy's 404, with `default_cors`'s check.
    NoRoute(OriginCheck),
    /// A preflight to a path no route serves, answered from `default_cors`.
    NoRoutePreflight(Preflight),
    /// A route serves it.
    Route(Routed),
}

/// A request a route serves.
#[derive(Debug)]
pub struct Routed {
    /// The route's index in `Rules::routes`.
    pub route: usize,
    /// The path that replaces the client's upstream (`ambiguous_paths: forward_normalized`).
    pub forward_path: Option<String>,
    pub serve: Serve,
}

/// How a routed request is served.
#[derive(Debug)]
pub enum Serve {
    /// Answered from the route's policy, never forwarded.
    Preflight(Preflight),
    /// An upgrade that may go through (its origin check, for the log).
    WebSocket(OriginCheck),
    /// An upgrade refused with 403: browsers apply no CORS to WebSockets.
    WebSocketRefused(Refusal),
    /// The route leaves CORS to the backend.
    Plain,
    /// Forwarded; the response gets the CORS headers of this check.
    Forward(OriginCheck),
    /// An event stream the proxy streams itself, with a heartbeat.
    Sse {
        origin: OriginCheck,
        heartbeat: Duration,
    },
    /// A JSONP request with a valid callback from an allowed page.
    Jsonp {
        origin: OriginCheck,
        callback: jsonp::Callback,
    },
    /// A JSONP request refused: 400 for the callback, 403 for the including page.
    JsonpRefused { origin: OriginCheck, why: Refusal },
}

impl Serve {
    /// The origin check whose CORS headers the response (or the proxy's error) carries.
    pub fn origin(&self) -> Option<&OriginCheck> {
        match self {
            Serve::Preflight(p) => Some(&p.check),
            Serve::WebSocket(o)
            | Serve::Forward(o)
            | Serve::Sse { origin: o, .. }
            | Serve::Jsonp { origin: o, .. }
            | Serve::JsonpRefused { origin: o, .. } => Some(o),
            Serve::WebSocketRefused(_) | Serve::Plain => None,
        }
    }
}

/// Any HTTP/1.1 upgrade request (pingora's own test): all of them go through the WebSocket
/// checks, so that an `Upgrade: h2c` or `websocket, x` cannot slip past them.
pub fn is_upgrade(req: &RequestHeader) -> bool {
    req.version == http::Version::HTTP_11 && req.headers.contains_key(UPGRADE)
}

/// Decides how `req` is served under `rules`. `host` is the request's host without port or
/// trailing dot (`crate::proxy::request_host`).
pub fn dispatch(rules: &Rules, host: &str, req: &RequestHeader) -> Action {
    let raw = req.uri.path();
    let target = match path::target(raw, req.raw_path_is_utf8(), rules.server.ambiguous_paths) {
        Ok(t) => t,
        Err(why) => return Action::BadPath(Refusal::AmbiguousPath(why)),
    };
    if let Some(asset) = rules.bridge.as_ref().and_then(|b| b.asset(raw)) {
        return Action::Bridge(asset);
    }
    if let Some(i) = rules.beacons.iter().position(|b| b.matches(host, raw)) {
        return Action::Beacon(i);
    }
    let Some(route) = rules.find_index(host, target.key()) else {
        return match rules.default_cors.as_deref() {
            // A 404 is no answer to a preflight (the browser reports a CORS error, not the
            // status): answer it from default_cors, so that the actual request goes out and
            // its 404 is readable.
            Some(p) if cors::is_preflight(req) => Action::NoRoutePreflight(p.preflight(req)),
            Some(p) => Action::NoRoute(p.check_origin(req)),
            None => Action::NoRoute(OriginCheck::NoOrigin),
        };
    };
    let forward_path = match &rules.routes[route].strip_prefix {
        Some(prefix) => Some(stripped(target.key(), prefix)),
        None => target.forward().map(str::to_owned),
    };
    let serve = serve(rules, route, req);
    Action::Route(Routed {
        route,
        forward_path,
        serve,
    })
}

/// The path a `strip_prefix` route forwards: the path it was routed on without the prefix
/// (which that path starts with: the route matched it), with a leading `/`, percent-encoded
/// so that one decoding gives it back. Built from the routed path, never from the client's
/// spelling, so that what was routed is what is forwarded.
fn stripped(key: &str, prefix: &str) -> String {
    let rest = key.get(prefix.len()..).unwrap_or("");
    if rest.starts_with('/') {
        path::encode(rest.as_bytes())
    } else {
        format!("/{}", path::encode(rest.as_bytes()))
    }
}

/// How the route at `index` serves `req`.
fn serve(rules: &Rules, index: usize, req: &RequestHeader) -> Serve {
    let route = &rules.routes[index];
    if is_upgrade(req) {
        return match websocket::check(req, route) {
            Ok(()) => Serve::WebSocket(match route.cors.as_deref() {
                Some(p) => p.check_origin(req),
                None => OriginCheck::NoOrigin,
            }),
            Err(why) => Serve::WebSocketRefused(why),
        };
    }
    let Some(policy) = route.cors.as_deref() else {
        return Serve::Plain;
    };
    if cors::is_preflight(req) {
        return Serve::Preflight(policy.preflight(req));
    }
    let origin = policy.check_origin(req);
    if let Some(heartbeat) = route.sse.and_then(|s| s.heartbeat) {
        if sse::wants_event_stream(req) {
            return Serve::Sse { origin, heartbeat };
        }
    }
    if let Some(j) = route.jsonp.as_ref().filter(|_| req.method == Method::GET) {
        match jsonp::ask(req.uri.query(), &j.param, j.callback_pattern) {
            jsonp::Ask::No => {}
            jsonp::Ask::Invalid(why) => {
                let why = Refusal::Callback(why);
                return Serve::JsonpRefused { origin, why };
            }
            jsonp::Ask::Yes(callback) => {
                return match jsonp::caller_allowed(req, policy, j.allow_without_referer) {
                    Ok(()) => Serve::Jsonp { origin, callback },
                    Err(why) => Serve::JsonpRefused { origin, why },
                };
            }
        }
    }
    Serve::Forward(origin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::rules_from_yaml;

    const YAML: &str = r#"
listen: 127.0.0.1:0
upstreams:
  b: {servers: [127.0.0.1:9]}
cors_policies:
  app: {allow_origins: [https://app.example.com], allow_methods: [GET, PUT]}
default_cors: app
beacons:
  - {name: pv, path: /b/pv}
bridge:
  path: /_bridge
  cors: app
  allow_paths: [/api/]
routes:
  - {name: ws, path: /ws/, upstream: b, cors: app, websocket: {}}
  - {name: events, path: /events/, upstream: b, cors: app, sse: {heartbeat: 15s}}
  - {name: jsonp, path: /jsonp/, upstream: b, cors: app, jsonp: {}}
  - {name: plain, path: /plain/, upstream: b}
  - {name: api, path: /api/, upstream: b, cors: app}
"#;

    fn req(method: &str, target: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build(method, target.as_bytes(), None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    fn routed(a: Action) -> (String, Serve) {
        let rules = rules_from_yaml(YAML);
        match a {
            Action::Route(r) => (rules.routes[r.route].name.clone(), r.serve),
            other => panic!("not routed: {other:?}"),
        }
    }

    fn go(method: &str, target: &str, headers: &[(&str, &str)]) -> Action {
        dispatch(&rules_from_yaml(YAML), "x", &req(method, target, headers))
    }

    const APP: (&str, &str) = ("origin", "https://app.example.com");
    const EVIL: (&str, &str) = ("origin", "https://evil.test");

    #[test]
    fn an_ambiguous_path_is_refused_before_anything_else() {
        assert!(matches!(
            go("GET", "/_bridge/..%2Fapi", &[]),
            Action::BadPath(Refusal::AmbiguousPath(_))
        ));
    }

    #[test]
    fn the_proxys_own_endpoints_come_before_routes() {
        assert!(matches!(go("GET", "/_bridge", &[]), Action::Bridge(_)));
        assert!(matches!(go("GET", "/b/pv?x=1", &[]), Action::Beacon(0)));
    }

    #[test]
    fn an_unrouted_preflight_is_answered_from_default_cors_and_the_rest_is_a_404() {
        let pre = [APP, ("access-control-request-method", "PUT")];
        match go("OPTIONS", "/nowhere", &pre) {
            Action::NoRoutePreflight(p) => assert_eq!(p.header.status.as_u16(), 204),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            go("GET", "/nowhere", &[APP]),
            Action::NoRoute(OriginCheck::Allowed(_))
        ));
    }

    #[test]
    fn a_preflight_asking_for_a_header_we_do_not_allow_is_answered_with_its_refusal() {
        let (name, serve) = routed(go(
            "OPTIONS",
            "/api/x",
            &[
                APP,
                ("access-control-request-method", "PUT"),
                ("access-control-request-headers", "x-secret"),
            ],
        ));
        assert_eq!(name, "api");
        match serve {
            Serve::Preflight(p) => {
                assert_eq!(p.header.status.as_u16(), 403);
                assert!(matches!(
                    p.check,
                    OriginCheck::Denied(Refusal::Header { .. })
                ));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_websocket_from_an_unlisted_origin_is_refused_and_other_upgrades_too() {
        let ws = [("upgrade", "websocket"), ("connection", "upgrade")];
        let (_, serve) = routed(go("GET", "/ws/echo", &[ws[0], ws[1], EVIL]));
        assert!(matches!(
            serve,
            Serve::WebSocketRefused(Refusal::WebSocketOrigin { .. })
        ));
        let (_, serve) = routed(go("GET", "/ws/echo", &[ws[0], ws[1], APP]));
        assert!(matches!(serve, Serve::WebSocket(OriginCheck::Allowed(_))));
        let (_, serve) = routed(go("GET", "/api/x", &[("upgrade", "h2c"), APP]));
        assert!(matches!(
            serve,
            Serve::WebSocketRefused(Refusal::WebSocketDisabled { .. })
        ));
    }

    #[test]
    fn jsonp_with_a_bad_callback_or_an_unlisted_page_is_refused() {
        let (_, serve) = routed(go("GET", "/jsonp/x?callback=alert(1)", &[]));
        assert!(matches!(
            serve,
            Serve::JsonpRefused {
                why: Refusal::Callback(_),
                ..
            }
        ));
        let (_, serve) = routed(go(
            "GET",
            "/jsonp/x?callback=cb",
            &[("referer", "https://evil.test/page")],
        ));
        assert!(matches!(
            serve,
            Serve::JsonpRefused {
                why: Refusal::Referer { .. },
                ..
            }
        ));
        let (_, serve) = routed(go(
            "GET",
            "/jsonp/x?callback=cb",
            &[("referer", "https://app.example.com/page")],
        ));
        assert!(matches!(serve, Serve::Jsonp { .. }));
        // Not a GET, or no callback: a plain forward.
        let (_, serve) = routed(go("GET", "/jsonp/x", &[]));
        assert!(matches!(serve, Serve::Forward(_)));
    }

    #[test]
    fn event_streams_with_a_heartbeat_and_plain_routes() {
        let (_, serve) = routed(go("GET", "/events/x", &[("accept", "text/event-stream")]));
        assert!(matches!(serve, Serve::Sse { .. }));
        let (_, serve) = routed(go("GET", "/plain/x", &[EVIL]));
        assert!(matches!(serve, Serve::Plain));
        let (_, serve) = routed(go("GET", "/api/x", &[EVIL]));
        assert!(matches!(serve, Serve::Forward(OriginCheck::Denied(_))));
    }
}
