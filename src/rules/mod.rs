//! The compiled configuration: everything parsed, resolved and joined once.
//!
//! [`compile`] consumes a loaded file and either returns [`Rules`], which request code can use
//! without any further check, or the first [`ConfigError`]. Warnings (values browsers will cap,
//! unused policies) are collected beside the rules.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::beacon::Beacon;
use crate::bridge::Bridge;
use crate::config::{ConfigError, LogFormat};
use crate::cors::CorsPolicy;
pub use crate::jsonp::JsonpRoute;
pub use crate::matcher::{HostMatch, PathMatch};
use crate::path::AmbiguousPaths;
use crate::upstream::Upstream;

/// Browsers cap `Access-Control-Max-Age`: Chromium at 2 hours, Firefox at 24.
pub const CHROMIUM_MAX_AGE: u64 = 7200;
pub const FIREFOX_MAX_AGE: u64 = 86400;

pub struct Route {
    pub name: String,
    pub host: HostMatch,
    pub path: PathMatch,
    pub upstream: Arc<Upstream>,
    /// None: crossgate leaves CORS to the backend on this route.
    pub cors: Option<Arc<CorsPolicy>>,
    pub jsonp: Option<JsonpRoute>,
    /// Overrides the upstream's read timeout.
    pub read_timeout: Option<Duration>,
    pub websocket: Option<WebSocketRoute>,
    pub sse: Option<SseRoute>,
    /// The `Host` sent upstream instead of the client's.
    pub upstream_host: Option<String>,
    /// The prefix taken off the path before it goes upstream (the route's own prefix).
    pub strip_prefix: Option<String>,
    /// The largest request body (`None`: no limit).
    pub max_body_size: Option<u64>,
    /// Metric handles, made on first use by the gateway that serves this route.
    pub metrics: std::sync::OnceLock<crate::metrics::RouteMetrics>,
}

#[derive(Debug, Clone, Copy)]
pub struct WebSocketRoute {
    pub idle_timeout: Duration,
    pub allow_without_origin: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct SseRoute {
    pub heartbeat: Option<Duration>,
}

/// An HTTPS listener.
pub struct TlsListener {
    pub addr: SocketAddr,
    pub cert: crate::tls::Certified,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    pub http2: bool,
}

/// Process-level settings.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub beacon_queue: usize,
    pub upgrade_sock: PathBuf,
    pub threads: usize,
    pub grace_period: Duration,
    pub shutdown_timeout: Duration,
    pub client: ClientTimeouts,
    pub ambiguous_paths: AmbiguousPaths,
    /// Whose forwarding fields are believed (`crate::forwarded`).
    pub trusted_proxies: crate::forwarded::TrustedProxies,
}

/// Limits on how slowly a client may send or read, and on how large its request head may be
/// (see `server:` in config.example.yaml).
#[derive(Debug, Clone, Copy)]
pub struct ClientTimeouts {
    pub header: Duration,
    /// The largest request head, in bytes (431 past it).
    pub max_head: usize,
    pub body: Duration,
    pub keepalive: Duration,
    pub send: Duration,
}

#[derive(Debug, Clone, Copy)]
pub struct LogSettings {
    pub format: LogFormat,
    pub access_log: bool,
}

pub struct Rules {
    pub file: PathBuf,
    pub listen: Vec<SocketAddr>,
    /// The admin listener's address, if enabled.
    pub admin: Option<SocketAddr>,
    pub tls_listeners: Vec<TlsListener>,
    pub server: ServerSettings,
    pub log: LogSettings,
    pub upstreams: Vec<Arc<Upstream>>,
    pub policies: BTreeMap<String, Arc<CorsPolicy>>,
    pub routes: Vec<Route>,
    pub default_cors: Option<Arc<CorsPolicy>>,
    pub beacons: Vec<Beacon>,
    pub bridge: Option<Bridge>,
    pub warnings: Vec<ConfigError>,
    /// The file's [`crate::config::semantic_hash`]: the same on every replica that runs it.
    pub config_hash: String,
}

/// The settings read once at start (listeners, threads, shutdown, the beacon queue, the upgrade
/// socket, the log format): one value, so that a reload compares it whole and says exactly what
/// needs a restart.
#[derive(Debug, Clone, PartialEq)]
pub struct StartSettings {
    pub listen: Vec<SocketAddr>,
    /// Each HTTPS listener's address and whether it offers HTTP/2 (certificates reload).
    pub tls: Vec<(SocketAddr, bool)>,
    pub admin: Option<SocketAddr>,
    pub threads: usize,
    pub grace_period: Duration,
    pub shutdown_timeout: Duration,
    pub beacon_queue: usize,
    pub upgrade_sock: PathBuf,
    pub log_format: LogFormat,
}

impl StartSettings {
    /// The settings that differ in `new`, by their config names.
    pub fn changes(&self, new: &StartSettings) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut differs = |changed: bool, name: &'static str| {
            if changed {
                out.push(name);
            }
        };
        differs(self.listen != new.listen, "listen");
        differs(self.tls != new.tls, "tls listeners");
        differs(self.admin != new.admin, "admin.listen");
        differs(self.threads != new.threads, "server.threads");
        differs(
            self.grace_period != new.grace_period || self.shutdown_timeout != new.shutdown_timeout,
            "server.grace_period / server.shutdown_timeout",
        );
        differs(self.beacon_queue != new.beacon_queue, "server.beacon_queue");
        differs(self.upgrade_sock != new.upgrade_sock, "server.upgrade_sock");
        differs(self.log_format != new.log_format, "log.format");
        out
    }
}

impl crate::upstream::LiveUpstreams for Rules {
    fn upstreams(&self) -> &[Arc<Upstream>] {
        &self.upstreams
    }
}

impl Rules {
    /// The settings of these rules that are read once at start.
    pub fn start_settings(&self) -> StartSettings {
        StartSettings {
            listen: self.listen.clone(),
            tls: self
                .tls_listeners
                .iter()
                .map(|l| (l.addr, l.http2))
                .collect(),
            admin: self.admin,
            threads: self.server.threads,
            grace_period: self.server.grace_period,
            shutdown_timeout: self.server.shutdown_timeout,
            beacon_queue: self.server.beacon_queue,
            upgrade_sock: self.server.upgrade_sock.clone(),
            log_format: self.log.format,
        }
    }

    /// The route a request for `host` (without port) and the raw `path` (as sent, no query)
    /// is served by, under `server.ambiguous_paths`; None when no route serves it or the path
    /// is refused. What `explain` and tests ask; the proxy calls [`crate::path::target`] and
    /// [`Rules::find_index`] itself, to keep the forwarded path.
    pub fn find(&self, host: &str, path: &str) -> Option<&Route> {
        let target = crate::path::target(path, true, self.server.ambiguous_paths).ok()?;
        self.find_index(host, target.key()).map(|i| &self.routes[i])
    }

    /// The index of the first route that serves `host` and the routed path `key` (a
    /// [`crate::path::Target`]'s key: already decoded and checked).
    pub fn find_index(&self, host: &str, key: &str) -> Option<usize> {
        self.routes
            .iter()
            .position(|r| r.host.matches(host) && r.path.matches(key))
    }
}

mod compile;
pub mod resolve;
#[cfg(test)]
mod tests;

pub use compile::{compile, compile_with};
pub use resolve::{resolve, resolve_with, Lookups, Resolved};
