//! crossgate: a reverse proxy that gives browsers on other origins what they need to use legacy
//! HTTP APIs (CORS first; JSONP, Comet, WebSocket, beacons and a postMessage bridge build on it).

pub mod admin;
pub mod beacon;
pub mod bridge;
pub mod config;
pub mod cors;
pub mod demo;
pub mod describe;
pub mod explain;
pub mod guard;
pub mod jsonp;
pub mod logging;
pub mod metrics;
pub mod origin;
pub mod path;
pub mod percent;
pub mod proxy;
pub mod reload;
pub mod rules;
pub mod server;
pub mod sse;
pub mod tls;
pub mod upgrade_sock;
pub mod upstream;
