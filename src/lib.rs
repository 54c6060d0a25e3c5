//! crossgate: a reverse proxy that gives browsers on other origins what they need to use legacy
//! HTTP APIs (CORS first; JSONP, Comet, WebSocket, beacons and a postMessage bridge build on it).
//!
//! The path of one request (ARCHITECTURE.md has the long form):
//!
//! 1. `guard` wraps the accepted stream: deadlines for the TLS handshake and each head.
//! 2. `proxy`'s engine (`proxy/engine.rs`, a pingora-core `ServerApp`) reads the request and
//!    takes its snapshot of the compiled `rules`.
//! 3. `dispatch::dispatch` decides, from the rules and the head alone: the path (`path`), the
//!    proxy's own endpoints (`bridge`, `beacon`), the route, and on it the `cors` check,
//!    the preflight answer, the `channels` checks (WebSocket Origin, JSONP callback and page).
//! 4. The engine answers what is the proxy's to answer, or forwards (`proxy/forward.rs`, the
//!    heads through `head`) with one `Channel` in its context; the shared phases
//!    (`proxy/phases.rs`) call that channel's functions and `cors::CorsPolicy::apply_actual`;
//!    an accepted WebSocket becomes a tunnel (`proxy/tunnel.rs`).
//! 5. The request's end (`proxy/record.rs`) records `metrics` and the access line
//!    (`logging` sets up tracing); refusals are typed (`refusal::Refusal`).
//!
//! `config` (the YAML as written) -> `rules::resolve` (every lookup and file read) ->
//! `rules::compile_with` (pure) -> `Rules` (nothing left to parse) is the only way in; `reload`
//! swaps the whole `Rules`. `matcher` (hosts and paths) is the model's leaf.
//!
//! The engine's modules are private; the public ones are what the binary, tests, benches and
//! fuzz targets use (ARCHITECTURE.md, "What may import what").

mod admin;
mod channels;
pub mod config;
mod cors;
pub mod demo;
pub mod describe;
mod dispatch;
mod dns;
pub mod explain;
pub mod forwarded;
mod guard;
mod head;
pub mod import;
pub mod logging;
mod matcher;
mod metrics;
pub mod origin;
pub mod path;
pub mod percent;
mod proxy;
mod refusal;
mod refused;
mod reload;
pub mod request_id;
pub mod rules;
pub mod server;
#[cfg(any(test, feature = "test-util"))]
pub mod test_util;
pub mod tls;
pub mod upgrade_sock;
mod upstream;
pub mod wire;

use channels::sse;
pub use channels::{beacon, bridge, jsonp};
