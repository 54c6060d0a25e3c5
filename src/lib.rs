//! crossgate: a reverse proxy that gives browsers on other origins what they need to use legacy
//! HTTP APIs (CORS first; JSONP, Comet, WebSocket, beacons and a postMessage bridge build on it).

pub mod admin;
pub mod channels;
pub mod config;
pub mod cors;
pub mod demo;
pub mod describe;
pub mod dispatch;
pub mod explain;
pub mod guard;
pub mod import;
pub mod logging;
pub mod metrics;
pub mod origin;
pub mod path;
pub mod percent;
pub mod proxy;
pub mod refusal;
pub mod reload;
pub mod rules;
pub mod server;
#[cfg(any(test, feature = "test-util"))]
pub mod test_util;
pub mod tls;
pub mod upgrade_sock;
pub mod upstream;

pub use channels::{beacon, bridge, jsonp, sse};
