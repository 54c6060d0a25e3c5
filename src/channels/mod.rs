//! The ways a request is served besides a plain forward, one module each: what the channel
//! needs from the config, its checks, and its part of each phase. The adapter
//! (`crate::proxy`) calls them through [`Channel`], by `match`: static dispatch.
//!
//! - [`jsonp`]: `callback(...)` for `<script>` clients;
//! - [`sse`]: event streams with heartbeats;
//! - [`websocket`]: the handshake's Origin check;
//! - [`beacon`]: image pings answered by the proxy;
//! - [`bridge`]: the postMessage bridge page.

pub mod beacon;
pub mod bridge;
pub mod jsonp;
pub mod sse;
pub mod websocket;

/// What one request is, once dispatched: each variant carries its channel's own state for
/// the phases after `begin` (`proxy/phases.rs`).
pub enum Channel {
    /// Not dispatched yet (or answered before a route was known).
    None,
    /// Answered by the proxy itself: the bridge, a beacon, the 404, a refusal.
    Own,
    /// A beacon hit.
    Beacon,
    /// A preflight, answered from the policy.
    Preflight,
    /// Forwarded, with the route's CORS headers.
    Forward,
    /// An allowed WebSocket upgrade: no CORS headers, the route's idle timeout.
    WebSocket,
    /// An event stream proxied with heartbeats.
    Sse,
    /// A JSONP request with a valid callback from an allowed page.
    Jsonp(Box<jsonp::JsonpState>),
    /// A JSONP request refused (a bad callback, or a page not on the allowlist).
    JsonpRefused,
}

impl Channel {
    pub fn is_websocket(&self) -> bool {
        matches!(self, Channel::WebSocket)
    }

    pub fn jsonp(&mut self) -> Option<&mut jsonp::JsonpState> {
        match self {
            Channel::Jsonp(j) => Some(j),
            _ => None,
        }
    }
}
