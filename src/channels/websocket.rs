//! WebSocket upgrades: the Origin check that browsers leave to the server.
//!
//! Browsers send the page's Origin with every handshake but apply no CORS to it (RFC 6455
//! 10.2): the server must check it, or any site can open a socket with the user's cookies
//! (cross-site WebSocket hijacking). Upgrades pass through pingora once allowed; the route's
//! `idle_timeout` bounds a silent connection.

use http::header::{ORIGIN, UPGRADE};
use pingora::http::RequestHeader;

use crate::refusal::Refusal;
use crate::rules::Route;

/// Whether an upgrade on `route` may go through. Every HTTP/1.1 upgrade comes here, so that
/// an `Upgrade: h2c` or `websocket, x` cannot slip past the checks.
pub fn check(req: &RequestHeader, route: &Route) -> Result<(), Refusal> {
    let (Some(ws), Some(policy)) = (route.websocket, route.cors.as_deref()) else {
        // `compile` refuses websocket: without a cors policy.
        return Err(Refusal::WebSocketDisabled {
            route: route.name.clone(),
        });
    };
    let websocket = req
        .headers
        .get(UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    if !websocket {
        return Err(Refusal::UpgradeNotWebSocket);
    }
    let mut origins = req.headers.get_all(ORIGIN).iter();
    match (origins.next(), origins.next()) {
        (None, _) if ws.allow_without_origin => Ok(()),
        (None, _) => Err(Refusal::WebSocketNoOrigin),
        (Some(_), Some(_)) => Err(Refusal::WebSocketSeveralOrigins),
        (Some(o), None) => match o.to_str() {
            Ok(text) if policy.allows(text) => Ok(()),
            _ => Err(Refusal::WebSocketOrigin {
                origin: String::from_utf8_lossy(o.as_bytes()).into_owned(),
                policy: policy.name.clone(),
            }),
        },
    }
}
