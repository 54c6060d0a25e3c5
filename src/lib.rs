//! crossgate: a reverse proxy that gives browsers on other origins what they need to use legacy
//! HTTP APIs (CORS first; JSONP, Comet, WebSocket, beacons and a postMessage bridge build on it).
//!
//! The path of one request (ARCHITECTURE.md has the long form):
//!
//! 1. `guard` wraps the accepted stream: deadlines for the TLS handshake and each head.
//! 2. `proxy` (pingora's `ProxyHttp`) takes the request's snapshot of the compiled `rules`.
//! 3. `dispatch::dispatch` decides, from the rules and the head alone: the path (`path`), the
//!    proxy's own endpoints (`bridge`, `beacon`), the route, and on it the `cors` check,
//!    the preflight answer, the `channels` checks (WebSocket Origin, JSONP callback and page).
//! 4. The adapter answers what is the proxy's to answer, or forwards with one `Channel` in its
//!    context; later phases call that channel's functions and `cors::CorsPolicy::apply_actual`.
//! 5. `logging` records `metrics` and the access line; refusals are typed (`refusal::Refusal`).
//!
//! `config` (the YAML as written) -> `rules::compile` -> `Rules` (nothing left to parse) is the
//! only way in; `reload` swaps the whole `Rules`.

pub mod admin;
pub mod channels;
pub mod config;
pub mod cors;
pub mod demo;
pub mod describe;
pub mod dispatch;
pub mod dns;
pub mod explain;
pub mod guard;
pub mod import;
pub mod logging;
pub mod matcher;
pub mod metrics;
pub mod origin;
pub mod path;
pub mod percent;
pub mod proxy;
pub mod refusal;
pub mod refused;
pub mod reload;
pub mod rules;
pub mod server;
#[cfg(any(test, feature = "test-util"))]
pub mod test_util;
pub mod tls;
pub mod upgrade_sock;
pub mod upstream;

pub use channels::{beacon, bridge, jsonp, sse};
