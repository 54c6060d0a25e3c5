//! The proxy: crossgate's request engine on pingora-core ([`engine`]). Each request takes its
//! snapshot of the rules, asks [`crate::dispatch`] how it is served, and is either answered
//! here ([`answer`], [`own`]) or keeps its [`Channel`] for the later phases (`phases.rs`),
//! which call the channel's functions (`crate::channels`) and the CORS engine (`crate::cors`).

mod answer;
mod ctx;
mod engine;
mod errors;
mod forward;
mod own;
mod phases;
mod record;
mod route;
mod tunnel;

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::header::{CONTENT_LENGTH, HOST};
use http::{Method, StatusCode};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::ServerSession;
use pingora::upstreams::peer::HttpPeer;

pub use ctx::{ActiveGauge, Ctx};
pub use engine::Engine;
pub use record::ReportLog;

use crate::metrics::Metrics;
use crate::rules::{ClientTimeouts, Route, Rules};
use crate::{beacon, guard};

/// The proxy. `rules` is swapped whole on reload; each request keeps the snapshot it started with.
pub struct CrossGate {
    pub rules: Arc<ArcSwap<Rules>>,
    /// For the responses crossgate streams itself (SSE with heartbeats).
    pub connector: pingora::connectors::http::Connector,
    /// The engine's upstream connections (connects, TLS, the pool).
    pub transport: pingora::connectors::TransportConnector,
    /// Beacon hits on their way to an upstream.
    pub beacons: Arc<beacon::Queue>,
    pub metrics: Arc<Metrics>,
    /// Who is refused, and who would be (the admin listener's `/refused`).
    pub refused: Arc<crate::refused::Refused>,
    /// Requests begun and not yet logged, for draining on SIGTERM.
    pub in_flight: Arc<AtomicUsize>,
    /// The report-only log's rate limit.
    pub report_log: ReportLog,
    /// Set when the grace period is over: open WebSockets get a 1001 close and end.
    pub closing: Arc<tokio::sync::watch::Sender<bool>>,
}

/// The request's host without its port: the request target's authority when it has one
/// (HTTP/2's `:authority`, or an absolute-form HTTP/1.1 target, which RFC 9112 §3.2.2 says
/// wins over `Host`), else `Host`.
///
/// A fully qualified name's trailing dot is dropped (`api.example.com.` is
/// `api.example.com`), so that it cannot miss its route and fall to a later one.
pub fn request_host(req: &RequestHeader) -> &str {
    let host = match req.uri.host() {
        Some(h) => h,
        None => strip_port(
            req.headers
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or(""),
        ),
    };
    host.strip_suffix('.').unwrap_or(host)
}

/// The forwarding fields of the request in `session` (`crate::forwarded`): who connected,
/// over what, for which host, believed as `trusted` says.
pub(crate) fn forwarding(
    session: &ServerSession,
    trusted: &crate::forwarded::TrustedProxies,
) -> crate::forwarded::Forwarding {
    let req = session.req_header();
    let host = match req.uri.authority() {
        Some(a) => a.as_str(),
        None => req
            .headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or(""),
    };
    let hop = crate::forwarded::Hop {
        peer: session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip()),
        tls: session.digest().is_some_and(|d| d.ssl_digest.is_some()),
        host,
    };
    crate::forwarded::Forwarding::new(req, &hop, trusted)
}

pub(crate) fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |i| &host[..=i]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// The next server of the route's upstream, with the route's timeouts; an error (a 502) while
/// the upstream has no address.
fn peer_for(route: &Route, websocket: bool) -> pingora::Result<Box<HttpPeer>> {
    let backend = route
        .upstream
        .select()
        .ok_or_else(|| crate::beacon::no_address(&route.upstream.name))?;
    let mut peer = Box::new(backend.peer.clone());
    if let Some(ws) = route.websocket.filter(|_| websocket) {
        // An upgraded connection is closed after this long without a frame from upstream.
        peer.options.read_timeout = Some(ws.idle_timeout);
        peer.options.write_timeout = Some(ws.idle_timeout);
    } else if let Some(t) = route.read_timeout {
        peer.options.read_timeout = Some(t);
    }
    Ok(peer)
}

/// The head is in: its deadline stops ([`guard`]), and the body, response and next-request
/// timeouts of the rules in force apply to this client.
fn client_limits(session: &mut ServerSession, limits: &ClientTimeouts) {
    guard::head_done(session.stream());
    // HTTP/1.1 pipelining (RFC 9112 §9.3.2): bytes that come after this request (the next
    // requests, sent before this one is answered) are kept and parsed as the next request once
    // this one is answered, so that answers go out in order. Without it pingora closes the
    // connection after this answer and the requests behind it get none. (pingora carries the
    // setting to the connection's next request; setting it again costs nothing.)
    session.set_pipelining_enabled(true);
    session.set_read_timeout(Some(limits.body));
    session.set_write_timeout(Some(limits.send));
    // Only where pingora keeps the connection (not `Connection: close`, not HTTP/1.0).
    if session.get_keepalive().is_some() {
        session.set_keepalive(Some(limits.keepalive.as_secs().max(1)));
    }
}

/// Whether pingora will send this response chunked on an HTTP/1.1 connection (it keeps the
/// upstream's framing): a head, then chunks, then the last chunk, each flushed.
fn chunked_h1(session: &ServerSession, resp: &ResponseHeader) -> bool {
    let req = session.req_header();
    let s = resp.status;
    !session.is_http2()
        && req.version == http::Version::HTTP_11
        && req.method != Method::HEAD
        && !(s.is_informational() || s == StatusCode::NO_CONTENT || s == StatusCode::NOT_MODIFIED)
        && !resp.headers.contains_key(CONTENT_LENGTH)
        && resp
            .headers
            .get(http::header::TRANSFER_ENCODING)
            .is_some_and(|v| {
                let v = v.as_bytes().trim_ascii_end();
                v.len() >= 7 && v[v.len() - 7..].eq_ignore_ascii_case(b"chunked")
            })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_loses_its_port() {
        assert_eq!(strip_port("api.example.com:8080"), "api.example.com");
        assert_eq!(strip_port("api.example.com"), "api.example.com");
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
    }
}
