//! The compiled configuration: everything parsed, resolved and joined once.
//!
//! [`compile`] consumes a loaded file and either returns [`Rules`], which request code can use
//! without any further check, or the first [`ConfigError`]. Warnings (values browsers will cap,
//! unused policies) are collected beside the rules.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, Method};
use pingora::http::RequestHeader;
use pingora::lb::health_check::HttpHealthCheck;
use regex::Regex;

use crate::beacon::{self, Beacon};
use crate::bridge::Bridge;
use crate::config::{
    ConfigError, CorsRef, FileAllowHeaders, FileCorsPolicy, FileDns, FileHealthCheck, FileJsonp,
    FileOrigin, FileOrigins, FilePath, FileUpstream, Loaded, LogFormat, Permission, PolicyMode,
    Seconds, YamlPath,
};
use crate::cors::{AllowOrigin, CorsPolicy, PolicySpec};
use crate::dns::{Dns, DnsSettings};
use crate::jsonp::CallbackPattern;
use crate::origin::{anchored_regex, canonical_exact, OriginList, Wildcard};
use crate::path::AmbiguousPaths;
use crate::upstream::{HealthSpec, Timeouts, Upstream, UpstreamTls};

/// Browsers cap `Access-Control-Max-Age`: Chromium at 2 hours, Firefox at 24.
pub const CHROMIUM_MAX_AGE: u64 = 7200;
pub const FIREFOX_MAX_AGE: u64 = 86400;

/// Which hosts a route serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    Any,
    Exact(String),
    /// `*.example.com`, stored as `.example.com`.
    Suffix(String),
}

impl HostMatch {
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostMatch::Any => true,
            HostMatch::Exact(h) => host.eq_ignore_ascii_case(h),
            HostMatch::Suffix(s) => {
                host.len() > s.len()
                    && host.is_char_boundary(host.len() - s.len())
                    && host[host.len() - s.len()..].eq_ignore_ascii_case(s)
            }
        }
    }
}

/// Which paths a route serves.
#[derive(Debug, Clone)]
pub enum PathMatch {
    Prefix(String),
    Exact(String),
    Regex(Regex),
}

impl PathMatch {
    fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Prefix(p) => path.starts_with(p.as_str()),
            PathMatch::Exact(p) => path == p,
            PathMatch::Regex(r) => r.is_match(path),
        }
    }
}

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

/// JSONP settings of a route (its origin rules are the route's CORS policy).
#[derive(Debug, Clone)]
pub struct JsonpRoute {
    pub param: String,
    pub envelope: bool,
    pub allow_without_referer: bool,
    pub callback_pattern: CallbackPattern,
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
}

/// Limits on how slowly a client may send or read (see `server:` in config.example.yaml).
#[derive(Debug, Clone, Copy)]
pub struct ClientTimeouts {
    pub header: Duration,
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

/// Whether every host `b` matches is matched by `a`.
fn covers_host(a: &HostMatch, b: &HostMatch) -> bool {
    match (a, b) {
        (HostMatch::Any, _) => true,
        (HostMatch::Exact(x), HostMatch::Exact(y)) => x == y,
        (HostMatch::Suffix(s), HostMatch::Exact(h)) => h.len() > s.len() && h.ends_with(s.as_str()),
        (HostMatch::Suffix(s), HostMatch::Suffix(t)) => t.ends_with(s.as_str()),
        _ => false,
    }
}

/// Whether every path `b` matches is matched by `a` (regexes are not compared).
fn covers_path(a: &PathMatch, b: &PathMatch) -> bool {
    match (a, b) {
        (PathMatch::Prefix(p), PathMatch::Prefix(q))
        | (PathMatch::Prefix(p), PathMatch::Exact(q)) => q.starts_with(p.as_str()),
        (PathMatch::Exact(p), PathMatch::Exact(q)) => p == q,
        _ => false,
    }
}

/// Compiles a loaded file into rules.
pub fn compile(loaded: &Loaded) -> Result<Rules, ConfigError> {
    Compiler {
        loaded,
        warnings: Vec::new(),
        fallbacks: HashSet::new(),
    }
    .run()
}

struct Compiler<'a> {
    loaded: &'a Loaded,
    warnings: Vec<ConfigError>,
    /// Policies named as a report-only fallback (they count as used).
    fallbacks: HashSet<String>,
}

fn closest<'a>(name: &str, known: impl Iterator<Item = &'a String>) -> String {
    let known: Vec<&String> = known.collect();
    let best = known
        .iter()
        .map(|k| (strsim::jaro_winkler(name, k), *k))
        .filter(|(s, _)| *s > 0.7)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    let list = known
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    match best {
        Some((_, k)) => format!("did you mean `{k}`? (defined: {list})"),
        None if known.is_empty() => "none are defined".into(),
        None => format!("defined: {list}"),
    }
}

impl Compiler<'_> {
    fn err(&self, path: &YamlPath, message: String, fix: impl Into<String>) -> ConfigError {
        self.loaded.error_at(path, message, fix.into())
    }

    fn warn(&mut self, path: &YamlPath, message: String, fix: impl Into<String>) {
        let w = self.err(path, message, fix);
        self.warnings.push(w);
    }

    fn run(mut self) -> Result<Rules, ConfigError> {
        let cfg = &self.loaded.config;
        let root = YamlPath::root();

        let listen_path = root.key("listen");
        if cfg.listen.0.is_empty() {
            return Err(self.err(
                &listen_path,
                "no listen address".into(),
                "add one, such as 127.0.0.1:8080",
            ));
        }
        let mut listen = Vec::new();
        for (i, a) in cfg.listen.0.iter().enumerate() {
            let addr: SocketAddr = a.parse().map_err(|_| {
                let p = if cfg.listen.0.len() == 1 {
                    listen_path.clone()
                } else {
                    listen_path.index(i)
                };
                self.err(
                    &p,
                    format!("invalid listen address {a:?}"),
                    "write an IP and a port, such as 127.0.0.1:8080 or [::]:8080",
                )
            })?;
            listen.push(addr);
        }

        let admin = match &cfg.admin {
            None => None,
            Some(a) => {
                let text = a.listen.as_deref().unwrap_or("127.0.0.1:9090");
                let addr: SocketAddr = text.parse().map_err(|_| {
                    self.err(
                        &root.key("admin").key("listen"),
                        format!("invalid admin listen address {text:?}"),
                        "write an IP and a port, such as 127.0.0.1:9090",
                    )
                })?;
                if listen.contains(&addr) {
                    return Err(self.err(
                        &root.key("admin").key("listen"),
                        format!("the admin listener {addr} is also a proxy listen address"),
                        "give the admin listener an address of its own",
                    ));
                }
                Some(addr)
            }
        };
        let mut tls_listeners = Vec::new();
        for (i, t) in cfg.tls.iter().enumerate() {
            let path = root.key("tls").index(i);
            let addr: SocketAddr = t.listen.parse().map_err(|_| {
                self.err(
                    &path.key("listen"),
                    format!("invalid listen address {:?}", t.listen),
                    "write an IP and a port, such as 0.0.0.0:8443",
                )
            })?;
            if listen.contains(&addr)
                || admin == Some(addr)
                || tls_listeners.iter().any(|l: &TlsListener| l.addr == addr)
            {
                return Err(self.err(
                    &path.key("listen"),
                    format!("{addr} is used by another listener"),
                    "give every listener its own address",
                ));
            }
            let (cert_path, key_path) = (self.relative(&t.cert), self.relative(&t.key));
            let cert = crate::tls::load_certified(&cert_path, &key_path).map_err(|why| {
                self.err(
                    &path.key("cert"),
                    why,
                    "give a PEM certificate chain and its PEM private key",
                )
            })?;
            tls_listeners.push(TlsListener {
                addr,
                cert,
                cert_path: cert_path.into(),
                key_path: key_path.into(),
                http2: t.http2.unwrap_or(true),
            });
        }
        let server_path = root.key("server");
        if cfg.server.threads == 0 {
            return Err(self.err(
                &server_path.key("threads"),
                "threads is 0".into(),
                "use 1 or more",
            ));
        }
        // Its directory is checked here so that `check` (ExecStartPre) refuses it; `run`
        // creates a missing one and checks again (`upgrade_sock::prepare`).
        crate::upgrade_sock::check_config(&cfg.server.upgrade_sock).map_err(|why| {
            self.err(&server_path.key("upgrade_sock"), why.to_string(), why.fix())
        })?;
        let server = ServerSettings {
            beacon_queue: cfg.server.beacon_queue,
            upgrade_sock: cfg.server.upgrade_sock.clone(),
            threads: cfg.server.threads,
            grace_period: cfg.server.grace_period.0,
            shutdown_timeout: cfg.server.shutdown_timeout.0,
            client: ClientTimeouts {
                header: self.nonzero(
                    &server_path.key("client_header_timeout"),
                    cfg.server.client_header_timeout,
                )?,
                body: self.nonzero(
                    &server_path.key("client_body_timeout"),
                    cfg.server.client_body_timeout,
                )?,
                keepalive: self.nonzero(
                    &server_path.key("client_keepalive_timeout"),
                    cfg.server.client_keepalive_timeout,
                )?,
                send: self.nonzero(
                    &server_path.key("client_send_timeout"),
                    cfg.server.client_send_timeout,
                )?,
            },
            ambiguous_paths: cfg.server.ambiguous_paths,
        };
        if server.ambiguous_paths == AmbiguousPaths::Keep {
            self.warn(
                &server_path.key("ambiguous_paths"),
                "ambiguous_paths is keep: a path such as /public/..%2F..%2Fapi/x is routed as /api/x but forwarded as sent, so a backend that resolves it differently serves it under another route's rules".into(),
                "use reject (the default) or forward_normalized",
            );
        }

        let dns = Arc::new(Dns::new(self.dns(&root.key("dns"), cfg.dns.as_ref())?));
        let mut upstreams = BTreeMap::new();
        for (name, up) in &cfg.upstreams {
            let u = self.upstream(&root.key("upstreams").key(name), name, up, &dns)?;
            upstreams.insert(name.clone(), Arc::new(u));
        }

        let mut policies = BTreeMap::new();
        // Enforcing policies first: report-only ones name one of them as their fallback.
        for report_only in [false, true] {
            for (name, p) in cfg
                .cors_policies
                .iter()
                .filter(|(_, p)| (p.mode == PolicyMode::ReportOnly) == report_only)
            {
                let compiled = self.policy(
                    &root.key("cors_policies").key(name),
                    name.clone(),
                    p,
                    &policies,
                )?;
                policies.insert(name.clone(), Arc::new(compiled));
            }
        }
        let mut used_policies = HashSet::new();

        if cfg.routes.is_empty() {
            return Err(self.err(
                &root.key("routes"),
                "no routes".into(),
                "add a route (see config.example.yaml)",
            ));
        }
        let mut routes = Vec::new();
        let mut names = HashSet::new();
        for (i, r) in cfg.routes.iter().enumerate() {
            let path = root.key("routes").index(i);
            if !names.insert(r.name.as_str()) {
                return Err(self.err(
                    &path.key("name"),
                    format!("duplicate route name {:?}", r.name),
                    "give every route its own name (it labels logs and metrics)",
                ));
            }
            let upstream = upstreams.get(&r.upstream).cloned().ok_or_else(|| {
                self.err(
                    &path.key("upstream"),
                    format!("unknown upstream {:?}", r.upstream),
                    format!(
                        "name one of the upstreams: {}",
                        closest(&r.upstream, upstreams.keys())
                    ),
                )
            })?;
            let cors = match &r.cors {
                None => None,
                Some(c) => {
                    Some(self.cors_ref(&path.key("cors"), c, &policies, &mut used_policies)?)
                }
            };
            let jsonp = match &r.jsonp {
                None => None,
                Some(j) => Some(self.jsonp(&path, j, cors.as_deref())?),
            };
            let websocket = match &r.websocket {
                None => None,
                Some(ws) => {
                    if cors.is_none() {
                        return Err(self.err(&path.key("websocket"), "websocket needs the route's cors policy: browsers do not apply CORS to WebSockets, so crossgate checks the upgrade's Origin against its allow_origins".into(), "add cors: to this route (a policy name or an inline policy)"));
                    }
                    let any = cors
                        .as_deref()
                        .is_some_and(|p| matches!(p.origins, AllowOrigin::Any));
                    let ws_path = path.key("websocket");
                    match (any, ws.allow_any_origin) {
                        (true, false) => return Err(self.err(
                            &ws_path,
                            format!("websocket on route {:?}, whose policy allows any origin: handshakes always carry the user's cookies, so any site could open this socket as the user (cross-site WebSocket hijacking)", r.name),
                            "list the origins in the route's policy, or, for a socket that needs no user's credentials, opt in with websocket: {allow_any_origin: true}",
                        )),
                        (true, true) => self.warn(
                            &ws_path.key("allow_any_origin"),
                            format!("route {:?} lets any site open its WebSocket with the user's cookies", r.name),
                            "keep it only if the socket serves nothing per user",
                        ),
                        (false, true) => self.warn(
                            &ws_path.key("allow_any_origin"),
                            "allow_any_origin has no effect: the route's policy lists its origins".into(),
                            "remove it",
                        ),
                        (false, false) => {}
                    }
                    Some(WebSocketRoute {
                        idle_timeout: self.positive(
                            &path.key("websocket").key("idle_timeout"),
                            ws.idle_timeout,
                            Duration::from_secs(300),
                        )?,
                        allow_without_origin: ws.without_origin == Permission::Allow,
                    })
                }
            };
            let sse = match &r.sse {
                None => None,
                Some(s) => Some(SseRoute {
                    heartbeat: match s.heartbeat {
                        None => None,
                        Some(_) => Some(self.positive(
                            &path.key("sse").key("heartbeat"),
                            s.heartbeat,
                            Duration::ZERO,
                        )?),
                    },
                }),
            };
            let read_timeout = match r.read_timeout {
                None => None,
                Some(_) => Some(self.positive(
                    &path.key("read_timeout"),
                    r.read_timeout,
                    Duration::ZERO,
                )?),
            };
            routes.push(Route {
                metrics: std::sync::OnceLock::new(),
                read_timeout,
                websocket,
                sse,
                name: r.name.clone(),
                host: self.host(&path.key("host"), r.host.as_deref())?,
                path: self.path(&path.key("path"), r.path.as_ref())?,
                upstream,
                cors,
                jsonp,
            });
        }

        self.lint_shadowed(&routes);
        for (name, u) in &upstreams {
            if u.health.is_none() {
                self.warn(&root.key("upstreams").key(name), format!("upstream {name:?} has no health check: a dead server stays in rotation (each request to it is retried on the next server)"), "add health_check: {path: /health}");
            }
        }
        let default_cors = match &cfg.default_cors {
            None => None,
            Some(c) => {
                Some(self.cors_ref(&root.key("default_cors"), c, &policies, &mut used_policies)?)
            }
        };
        let mut beacons = Vec::new();
        for (i, b) in cfg.beacons.iter().enumerate() {
            let path = root.key("beacons").index(i);
            if !b.path.starts_with('/') {
                return Err(self.err(
                    &path.key("path"),
                    format!("beacon path {:?} does not start with /", b.path),
                    format!("write \"/{}\"", b.path),
                ));
            }
            if beacons.iter().any(|o: &Beacon| o.name == b.name) {
                return Err(self.err(
                    &path.key("name"),
                    format!("duplicate beacon name {:?}", b.name),
                    "give every beacon its own name (it labels logs and metrics)",
                ));
            }
            let forward = match &b.forward {
                None => None,
                Some(f) => Some(beacon::Forward {
                    upstream: upstreams.get(&f.upstream).cloned().ok_or_else(|| {
                        self.err(
                            &path.key("forward").key("upstream"),
                            format!("unknown upstream {:?}", f.upstream),
                            format!(
                                "name one of the upstreams: {}",
                                closest(&f.upstream, upstreams.keys())
                            ),
                        )
                    })?,
                    path: match &f.path {
                        Some(p) if !p.starts_with('/') => {
                            return Err(self.err(
                                &path.key("forward").key("path"),
                                format!("path {p:?} does not start with /"),
                                format!("write \"/{p}\""),
                            ))
                        }
                        Some(p) => p.clone(),
                        None => b.path.clone(),
                    },
                }),
            };
            beacons.push(Beacon {
                name: b.name.clone(),
                host: self.host(&path.key("host"), b.host.as_deref())?,
                path: b.path.clone(),
                max_fields: b.max_fields.unwrap_or(32),
                forward,
            });
        }
        let bridge = match &cfg.bridge {
            None => None,
            Some(b) => {
                let path = root.key("bridge");
                if !b.path.starts_with('/') {
                    return Err(self.err(
                        &path.key("path"),
                        format!("bridge path {:?} does not start with /", b.path),
                        format!("write \"/{}\"", b.path),
                    ));
                }
                for (i, p) in b.allow_paths.iter().enumerate() {
                    if !p.starts_with('/') {
                        return Err(self.err(
                            &path.key("allow_paths").index(i),
                            format!("path {p:?} does not start with /"),
                            format!("write \"/{p}\""),
                        ));
                    }
                }
                if b.allow_paths.is_empty() {
                    self.warn(
                        &path.key("allow_paths"),
                        "allow_paths is empty: the bridge will refuse every request".into(),
                        "list the path prefixes pages may fetch, such as [/api/]",
                    );
                }
                let policy =
                    self.cors_ref(&path.key("cors"), &b.cors, &policies, &mut used_policies)?;
                Some(Bridge::new(&b.path, &policy, &b.allow_paths).map_err(|why| {
                    self.err(&path.key("cors"), why, "give the bridge a policy with exact origins and https://*.example.com wildcards only")
                })?)
            }
        };
        let unused: Vec<String> = policies
            .keys()
            .filter(|n| !used_policies.contains(*n) && !self.fallbacks.contains(*n))
            .cloned()
            .collect();
        for name in &unused {
            self.warn(
                &root.key("cors_policies").key(name),
                format!("policy {name:?} is not used by any route"),
                "name it in a route's cors:, or remove it",
            );
        }

        Ok(Rules {
            file: self.loaded.path.clone(),
            listen,
            admin,
            tls_listeners,
            server,
            log: LogSettings {
                format: cfg.log.format,
                access_log: cfg.log.access_log,
            },
            upstreams: upstreams.into_values().collect(),
            policies,
            routes,
            default_cors,
            beacons,
            bridge,
            warnings: self.warnings,
            config_hash: crate::config::semantic_hash(&self.loaded.source),
        })
    }

    fn upstream(
        &mut self,
        path: &YamlPath,
        name: &str,
        up: &FileUpstream,
        dns: &Arc<Dns>,
    ) -> Result<Upstream, ConfigError> {
        if up.servers.is_empty() {
            return Err(self.err(
                &path.key("servers"),
                format!("upstream {name:?} has no servers"),
                "list at least one host:port",
            ));
        }
        let mut servers = Vec::new();
        let mut names = Vec::new();
        for (i, s) in up.servers.iter().enumerate() {
            let p = path.key("servers").index(i);
            let (addrs, name) = crate::dns::resolve_server(s, &dns.settings).map_err(|why| {
                self.err(
                    &p,
                    format!("cannot use server {s:?}: {why}"),
                    "write host:port with a name that resolves here, such as 127.0.0.1:9001",
                )
            })?;
            servers.extend(addrs.into_iter().map(|a| (s.clone(), a)));
            names.extend(name.map(|n| (s.clone(), n)));
        }
        let timeouts = Timeouts {
            connect: up.connect_timeout.map_or(Duration::from_secs(5), |s| s.0),
            read: up.read_timeout.map_or(Duration::from_secs(60), |s| s.0),
            write: up.write_timeout.map_or(Duration::from_secs(60), |s| s.0),
            idle: up.idle_timeout.map_or(Duration::from_secs(60), |s| s.0),
        };
        for (key, d) in [
            ("connect_timeout", timeouts.connect),
            ("read_timeout", timeouts.read),
            ("write_timeout", timeouts.write),
        ] {
            if d.is_zero() {
                return Err(self.err(
                    &path.key(key),
                    format!("{key} is 0"),
                    "give a positive duration such as 30s",
                ));
            }
        }
        let health = match &up.health_check {
            None => None,
            Some(hc) => Some(self.health(&path.key("health_check"), hc)?),
        };
        let tls = match &up.tls {
            None => None,
            Some(t) => {
                let tp = path.key("tls");
                let sni = match &t.sni {
                    // pingora skips every check for an empty name: never by accident.
                    Some(s) if s.is_empty() => {
                        return Err(self.err(&tp.key("sni"), "sni is empty, which would turn certificate verification off".into(), "give the upstream's host name, or set verify: false if that is really meant"));
                    }
                    Some(s) => s.clone(),
                    None => up.servers[0]
                        .rsplit_once(':')
                        .map_or(up.servers[0].as_str(), |(h, _)| h)
                        .trim_matches(['[', ']'])
                        .to_owned(),
                };
                let verify = t.verify.unwrap_or(true);
                if !verify {
                    self.warn(&tp.key("verify"), "verify: false: anyone on the path to the upstream can read and change its traffic".into(), "give the upstream's CA with ca_file instead");
                }
                let ca = match &t.ca_file {
                    None => None,
                    Some(f) => Some(crate::tls::load_ca(&self.relative(f)).map_err(|why| {
                        self.err(
                            &tp.key("ca_file"),
                            why,
                            "give a PEM file of CA certificates",
                        )
                    })?),
                };
                Some(UpstreamTls { sni, verify, ca })
            }
        };
        Ok(
            Upstream::new(name.to_owned(), servers, timeouts, health, tls)
                .follow_dns(names, dns.clone()),
        )
    }

    fn dns(&self, path: &YamlPath, d: Option<&FileDns>) -> Result<DnsSettings, ConfigError> {
        let mut s = DnsSettings::default();
        let Some(d) = d else { return Ok(s) };
        if let Some(r) = &d.resolver {
            s.resolver = Some(
                r.parse::<SocketAddr>()
                    .or_else(|_| r.parse::<std::net::IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                    .map_err(|_| {
                        self.err(
                            &path.key("resolver"),
                            format!("resolver {r:?} is not an IP address"),
                            "write ip:port such as 127.0.0.1:53, or leave resolver out to use /etc/resolv.conf",
                        )
                    })?,
            );
        }
        s.min_ttl = d.min_ttl.map_or(s.min_ttl, |t| t.0);
        s.max_ttl = d.max_ttl.map_or(s.max_ttl, |t| t.0);
        if s.min_ttl.is_zero() {
            return Err(self.err(
                &path.key("min_ttl"),
                "min_ttl is 0, which would re-resolve a name with a TTL of 0 on every tick".into(),
                "give a floor such as 5s",
            ));
        }
        if s.min_ttl > s.max_ttl {
            return Err(self.err(
                &path.key("max_ttl"),
                format!("max_ttl {:?} is below min_ttl {:?}", s.max_ttl, s.min_ttl),
                "make max_ttl at least min_ttl (defaults: 5s and 300s)",
            ));
        }
        Ok(s)
    }

    fn health(&mut self, path: &YamlPath, hc: &FileHealthCheck) -> Result<HealthSpec, ConfigError> {
        if !hc.path.starts_with('/') {
            return Err(self.err(
                &path.key("path"),
                format!("health check path {:?} does not start with /", hc.path),
                format!("write \"/{}\"", hc.path),
            ));
        }
        let host = hc.host.as_deref().unwrap_or("localhost");
        let mut probe = HttpHealthCheck::new(host, false);
        let mut req = RequestHeader::build("GET", hc.path.as_bytes(), None).map_err(|e| {
            self.err(
                &path.key("path"),
                format!("invalid health check path {:?}: {e}", hc.path),
                "use a plain path such as /health",
            )
        })?;
        req.insert_header("Host", host).map_err(|_| {
            self.err(
                &path.key("host"),
                format!("invalid host {host:?}"),
                "use a host name",
            )
        })?;
        req.insert_header("User-Agent", "crossgate-health-check")
            .expect("static");
        probe.req = req;
        let timeout = hc.timeout.map_or(Duration::from_secs(1), |s| s.0);
        probe.peer_template.options.connection_timeout = Some(timeout);
        probe.peer_template.options.read_timeout = Some(timeout);
        let interval = hc.interval.map_or(Duration::from_secs(5), |s| s.0);
        if interval.is_zero() {
            return Err(self.err(
                &path.key("interval"),
                "interval is 0".into(),
                "give a positive duration such as 5s",
            ));
        }
        Ok(HealthSpec {
            probe,
            path: hc.path.clone(),
            interval,
            healthy_threshold: hc.healthy_threshold.unwrap_or(1).max(1),
            unhealthy_threshold: hc.unhealthy_threshold.unwrap_or(1).max(1),
        })
    }

    /// Warns about routes that an earlier route always matches first.
    fn lint_shadowed(&mut self, routes: &[Route]) {
        for (j, later) in routes.iter().enumerate() {
            if let Some(earlier) = routes[..j]
                .iter()
                .find(|e| covers_host(&e.host, &later.host) && covers_path(&e.path, &later.path))
            {
                let path = YamlPath::root().key("routes").index(j);
                self.warn(&path, format!("route {:?} is never used: route {:?} before it matches every request it would", later.name, earlier.name), "move it above the broader route, or narrow the broader one");
            }
        }
    }

    /// A path from the config, relative to the config file's directory.
    fn relative(&self, p: &str) -> String {
        let path = std::path::Path::new(p);
        if path.is_absolute() {
            return p.to_owned();
        }
        match self
            .loaded
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            Some(dir) => dir.join(path).display().to_string(),
            None => p.to_owned(),
        }
    }

    /// A configured duration that must not be zero, or `default`.
    fn positive(
        &self,
        path: &YamlPath,
        d: Option<Seconds>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        d.map_or(Ok(default), |s| self.nonzero(path, s))
    }

    /// A configured duration that must not be zero.
    fn nonzero(&self, path: &YamlPath, d: Seconds) -> Result<Duration, ConfigError> {
        if d.0.is_zero() {
            return Err(self.err(
                path,
                "the duration is 0".into(),
                "give a positive duration such as 30s",
            ));
        }
        Ok(d.0)
    }

    fn jsonp(
        &self,
        route: &YamlPath,
        j: &FileJsonp,
        cors: Option<&CorsPolicy>,
    ) -> Result<JsonpRoute, ConfigError> {
        let path = route.key("jsonp");
        let Some(policy) = cors else {
            return Err(self.err(&path, "jsonp needs the route's cors policy: its allow_origins decides which pages may load the script".into(), "add cors: to this route (a policy name or an inline policy)"));
        };
        if policy.credentials && !j.acknowledge_credentials {
            return Err(self.err(
                &path,
                format!("jsonp on a route whose CORS policy ({}) allows credentials: a <script> request always carries the user's cookies, and only the Referer check stands between them and any page", policy.name),
                "serve JSONP on a route whose policy has allow_credentials: false, or set jsonp.acknowledge_credentials: true if the responses hold nothing user-specific",
            ));
        }
        let param = j
            .callback_param
            .clone()
            .unwrap_or_else(|| "callback".into());
        if param.is_empty()
            || param == "_"
            || !param
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        {
            return Err(self.err(
                &path.key("callback_param"),
                format!("invalid callback_param {param:?}"),
                "use a plain query parameter name such as callback or jsonp",
            ));
        }
        Ok(JsonpRoute {
            param,
            envelope: j.envelope,
            allow_without_referer: j.without_referer == Permission::Allow,
            callback_pattern: j.callback_pattern,
        })
    }

    fn host(&self, path: &YamlPath, host: Option<&str>) -> Result<HostMatch, ConfigError> {
        let Some(h) = host else {
            return Ok(HostMatch::Any);
        };
        // A fully qualified name (`api.example.com.`) is the same host.
        let h = h.strip_suffix('.').unwrap_or(h);
        let (m, bare) = match h.strip_prefix("*.") {
            Some(suffix) => (
                HostMatch::Suffix(format!(".{}", suffix.to_ascii_lowercase())),
                suffix,
            ),
            None => (HostMatch::Exact(h.to_ascii_lowercase()), h),
        };
        let valid = !bare.is_empty()
            && bare.split('.').all(|l| {
                !l.is_empty()
                    && l.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !valid {
            return Err(self.err(path, format!("invalid host {h:?}"), "write a host name without port, such as api.example.com, or *.example.com for its subdomains"));
        }
        Ok(m)
    }

    fn path(&self, yaml: &YamlPath, path: Option<&FilePath>) -> Result<PathMatch, ConfigError> {
        Ok(match path {
            None => PathMatch::Prefix("/".into()),
            Some(FilePath::Prefix(p)) | Some(FilePath::Exact(p)) if !p.starts_with('/') => {
                return Err(self.err(
                    yaml,
                    format!("path {p:?} does not start with /"),
                    format!("write \"/{p}\""),
                ));
            }
            Some(FilePath::Prefix(p)) => PathMatch::Prefix(p.clone()),
            Some(FilePath::Exact(p)) => PathMatch::Exact(p.clone()),
            Some(FilePath::Regex(r)) => {
                PathMatch::Regex(anchored_regex(r).map_err(|e| self.err(yaml, e.message, e.fix))?)
            }
        })
    }

    fn cors_ref(
        &mut self,
        path: &YamlPath,
        c: &CorsRef,
        policies: &BTreeMap<String, Arc<CorsPolicy>>,
        used: &mut HashSet<String>,
    ) -> Result<Arc<CorsPolicy>, ConfigError> {
        match c {
            CorsRef::Named(n) => {
                used.insert(n.clone());
                policies.get(n).cloned().ok_or_else(|| {
                    self.err(
                        path,
                        format!("unknown CORS policy {n:?}"),
                        format!(
                            "name a policy from cors_policies ({}), or write the policy inline",
                            closest(n, policies.keys())
                        ),
                    )
                })
            }
            CorsRef::Inline(p) => Ok(Arc::new(self.policy(
                path,
                path.to_string(),
                p,
                policies,
            )?)),
        }
    }

    fn policy(
        &mut self,
        path: &YamlPath,
        name: String,
        p: &FileCorsPolicy,
        named: &BTreeMap<String, Arc<CorsPolicy>>,
    ) -> Result<CorsPolicy, ConfigError> {
        let report_only = match (p.mode, &p.report_only_fallback) {
            (PolicyMode::Enforce, None) => None,
            (PolicyMode::Enforce, Some(_)) => {
                self.warn(
                    &path.key("report_only_fallback"),
                    "report_only_fallback is ignored in mode enforce".into(),
                    "remove it, or set mode: report_only",
                );
                None
            }
            (PolicyMode::ReportOnly, None) => {
                return Err(self.err(&path.key("mode"), "mode report_only without report_only_fallback: nothing would serve the requests this policy would refuse".into(), "name the policy to serve them with, such as report_only_fallback: legacy-permissive"));
            }
            (PolicyMode::ReportOnly, Some(f)) => match named.get(f) {
                Some(fallback) if fallback.report_only.is_none() => {
                    self.fallbacks.insert(f.clone());
                    Some(fallback.clone())
                }
                Some(_) => {
                    return Err(self.err(
                        &path.key("report_only_fallback"),
                        format!("the fallback policy {f:?} is itself report_only"),
                        "name a policy in mode enforce",
                    ))
                }
                None => {
                    return Err(self.err(
                        &path.key("report_only_fallback"),
                        format!("unknown CORS policy {f:?}"),
                        format!(
                            "name a policy from cors_policies ({})",
                            closest(f, named.keys())
                        ),
                    ))
                }
            },
        };
        let origins = match &p.allow_origins {
            FileOrigins::Any if p.allow_credentials => {
                return Err(self.err(
                    &path.key("allow_credentials"),
                    "allow_credentials: true with allow_origins: any: browsers refuse `Access-Control-Allow-Origin: *` on credentialed requests, and echoing every origin would let any site act as the user".into(),
                    "list the origins that may send credentials in allow_origins (exact, https://*.example.com or {regex: ...}), or set allow_credentials: false",
                ));
            }
            FileOrigins::Any => AllowOrigin::Any,
            FileOrigins::List(entries) => {
                if entries.is_empty() {
                    self.warn(
                        &path.key("allow_origins"),
                        "allow_origins is empty: every cross-origin request is refused".into(),
                        "list the origins to allow",
                    );
                }
                let mut list = OriginList::default();
                for (i, e) in entries.iter().enumerate() {
                    let ep = path.key("allow_origins").index(i);
                    match e {
                        FileOrigin::Pattern(s) if s.contains('*') => {
                            if s.trim() == "*" {
                                return Err(self.err(&ep, "`*` inside the list".into(), "write allow_origins: any (without a list) to allow every origin"));
                            }
                            let w =
                                Wildcard::parse(s).map_err(|e| self.err(&ep, e.message, e.fix))?;
                            list.push_wildcard(w, s.clone());
                        }
                        FileOrigin::Pattern(s) => {
                            let c =
                                canonical_exact(s).map_err(|e| self.err(&ep, e.message, e.fix))?;
                            list.push_exact(c, s.clone());
                        }
                        FileOrigin::Regex(r) => {
                            let re = anchored_regex(r)
                                .map_err(|e| self.err(&ep.key("regex"), e.message, e.fix))?;
                            if re.is_match("null") {
                                return Err(self.err(&ep.key("regex"), format!("regex {r:?} matches the origin `null`, which sandboxed frames and file: pages of any site send"), "crossgate never lets a regex match null: list \"null\" literally if you mean it, and anchor the regex on a scheme such as https://"));
                            }
                            if [
                                "https://crossgate-lint-probe.invalid",
                                "http://crossgate-lint-probe.invalid:8080",
                            ]
                            .iter()
                            .any(|o| re.is_match(o))
                            {
                                self.warn(&ep.key("regex"), format!("regex {r:?} matches any http(s) origin"), "anchor it on your own domain, such as https://[a-z0-9-]+\\.example\\.com");
                            }
                            list.push_regex(re, format!("regex {r}"));
                        }
                    }
                }
                AllowOrigin::List(list)
            }
        };

        let methods = match &p.allow_methods {
            None => vec![Method::GET, Method::HEAD, Method::POST],
            Some(ms) => {
                let mut out = Vec::new();
                for (i, m) in ms.iter().enumerate() {
                    let mp = path.key("allow_methods").index(i);
                    if m == "*" {
                        return Err(self.err(
                            &mp,
                            "`*` in allow_methods".into(),
                            "list the methods, such as [GET, POST, PUT, DELETE]",
                        ));
                    }
                    let method =
                        Method::from_bytes(m.to_ascii_uppercase().as_bytes()).map_err(|_| {
                            self.err(
                                &mp,
                                format!("invalid method {m:?}"),
                                "use a method name such as GET or PATCH",
                            )
                        })?;
                    if !out.contains(&method) {
                        out.push(method);
                    }
                }
                out
            }
        };

        let headers = match &p.allow_headers {
            None => Some(Vec::new()),
            Some(FileAllowHeaders::Mirror) => None,
            Some(FileAllowHeaders::List(hs)) => Some(self.header_names(
                &path.key("allow_headers"),
                hs,
                false,
                "use `allow_headers: mirror` to allow whatever the browser asks for",
            )?),
        };
        let expose = self.header_names(
            &path.key("expose_headers"),
            &p.expose_headers,
            !p.allow_credentials,
            "with allow_credentials, `*` is a literal name to browsers: list the headers to expose",
        )?;

        if let Some(age) = p.max_age {
            if age > CHROMIUM_MAX_AGE {
                let cap = if age > FIREFOX_MAX_AGE {
                    "Chromium's cap of 7200 s and Firefox's of 86400 s"
                } else {
                    "Chromium's cap of 7200 s"
                };
                self.warn(
                    &path.key("max_age"),
                    format!("max_age {age} is above {cap}: browsers will use their cap"),
                    "set max_age to 7200 or less",
                );
            }
        }

        Ok(CorsPolicy::new(PolicySpec {
            name,
            origins,
            methods,
            headers,
            expose,
            credentials: p.allow_credentials,
            max_age: p.max_age,
            private_network: p.allow_private_network,
            upstream_headers: p.upstream_headers,
            report_only,
        }))
    }

    fn header_names(
        &self,
        path: &YamlPath,
        names: &[String],
        star_ok: bool,
        star_fix: &str,
    ) -> Result<Vec<HeaderName>, ConfigError> {
        let mut out = Vec::new();
        for (i, n) in names.iter().enumerate() {
            let p = path.index(i);
            if n == "*" && !star_ok {
                return Err(self.err(&p, "`*` is not allowed here".into(), star_fix));
            }
            let h = HeaderName::from_bytes(n.as_bytes()).map_err(|_| {
                self.err(
                    &p,
                    format!("invalid header name {n:?}"),
                    "use a header name such as x-request-id",
                )
            })?;
            if !out.contains(&h) {
                out.push(h);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_util::try_rules_from_yaml as compile_str;

    const BASE: &str = "listen: 127.0.0.1:0\nupstreams:\n  api:\n    servers: [127.0.0.1:9]\n";

    #[test]
    fn first_matching_route_wins_by_host_and_path() {
        let rules = compile_str(&format!(
            "{BASE}routes:\n  - {{name: exact, host: api.example.com, path: {{exact: /health}}, upstream: api}}\n  - {{name: sub, host: '*.example.com', path: /v1/, upstream: api}}\n  - {{name: re, path: {{regex: '/items/[0-9]+'}}, upstream: api}}\n  - {{name: all, upstream: api}}\n"
        ))
        .unwrap();
        let name = |h: &str, p: &str| rules.find(h, p).map(|r| r.name.clone());
        assert_eq!(name("api.example.com", "/health").as_deref(), Some("exact"));
        assert_eq!(name("API.example.com", "/health").as_deref(), Some("exact"));
        assert_eq!(name("api.example.com", "/health/x").as_deref(), Some("all"));
        assert_eq!(name("a.example.com", "/v1/x").as_deref(), Some("sub"));
        assert_eq!(name("example.com", "/v1/x").as_deref(), Some("all"));
        assert_eq!(name("x", "/items/12").as_deref(), Some("re"));
        assert_eq!(name("x", "/items/12/more").as_deref(), Some("all"));
    }

    #[test]
    fn a_dotted_path_is_refused_by_default_and_routed_where_it_resolves_when_normalized() {
        let routes = "routes:\n  - {name: public, path: /public/, upstream: api}\n  - {name: admin, path: /admin/, upstream: api}\n";
        let rules = compile_str(&format!("{BASE}{routes}")).unwrap();
        assert!(rules.find("x", "/public/..%2Fadmin/x").is_none());
        assert_eq!(
            rules.find("x", "/public/a%20b").map(|r| r.name.as_str()),
            Some("public")
        );
        let rules = compile_str(&format!(
            "{BASE}server: {{ambiguous_paths: forward_normalized}}\n{routes}"
        ))
        .unwrap();
        assert_eq!(
            rules
                .find("x", "/public/..%2Fadmin/x")
                .map(|r| r.name.as_str()),
            Some("admin")
        );
        assert_eq!(
            rules
                .find("x", "/public/..;/other")
                .map(|r| r.name.as_str()),
            None
        );
    }

    #[test]
    fn keep_is_a_warning_that_names_the_risk() {
        let rules = compile_str(&format!(
            "{BASE}server: {{ambiguous_paths: keep}}\nroutes:\n  - {{name: a, upstream: api}}\n"
        ))
        .unwrap();
        let w = rules
            .warnings
            .iter()
            .find(|w| w.path == "server.ambiguous_paths")
            .expect("a warning");
        assert!(w.to_string().contains("forwarded as sent"), "{w}");
    }

    #[test]
    fn hosts_compare_without_a_trailing_dot() {
        let rules = compile_str(&format!(
            "{BASE}routes:\n  - {{name: a, host: api.example.com., upstream: api}}\n"
        ))
        .unwrap();
        assert!(rules.find("api.example.com", "/").is_some());
    }

    #[test]
    fn a_websocket_under_an_any_policy_needs_an_explicit_opt_in() {
        let route = |ws: &str| {
            format!("{BASE}routes:\n  - name: live\n    upstream: api\n    cors: {{allow_origins: any}}\n    websocket: {ws}\n")
        };
        let e = compile_str(&route("{}")).err().expect("refused");
        assert_eq!(e.path, "routes[0].websocket");
        assert!(e.to_string().contains("hijacking"), "{e}");
        assert!(e.to_string().contains("allow_any_origin: true"), "{e}");
        let rules = compile_str(&route("{allow_any_origin: true}")).unwrap();
        assert!(rules
            .warnings
            .iter()
            .any(|w| w.path == "routes[0].websocket.allow_any_origin"));
    }

    #[test]
    fn no_route_matches_when_nothing_catches_all() {
        let rules = compile_str(&format!(
            "{BASE}routes:\n  - {{name: a, path: /api/, upstream: api}}\n"
        ))
        .unwrap();
        assert!(rules.find("x", "/other").is_none());
    }

    #[test]
    fn credentials_with_any_origin_is_refused_with_a_fix() {
        let e = compile_str(&format!(
            "{BASE}routes:\n  - name: a\n    upstream: api\n    cors:\n      allow_origins: any\n      allow_credentials: true\n"
        ))
        .err()
        .unwrap();
        assert_eq!(e.path, "routes[0].cors.allow_credentials");
        assert_eq!(e.location, Some((10, 26)));
        assert!(e.fix.contains("list the origins"), "{e}");
    }

    #[test]
    fn unknown_upstream_suggests_the_closest() {
        let e = compile_str(&format!("{BASE}routes:\n  - {{name: a, upstream: apii}}\n"))
            .err()
            .unwrap();
        assert_eq!(e.path, "routes[0].upstream");
        assert!(e.fix.contains("did you mean `api`"), "{e}");
    }

    #[test]
    fn bad_origin_names_path_line_and_value() {
        let e = compile_str(&format!(
            "{BASE}routes:\n  - name: a\n    upstream: api\n    cors:\n      allow_origins:\n        - https://ok.example\n        - https://app.example.com/\n"
        ))
        .err()
        .unwrap();
        assert_eq!(e.path, "routes[0].cors.allow_origins[1]");
        assert_eq!(e.location.map(|l| l.0), Some(11));
        assert!(e.message.contains("\"https://app.example.com/\""), "{e}");
    }

    #[test]
    fn max_age_above_browser_caps_is_a_warning() {
        let rules = compile_str(&format!(
            "{BASE}routes:\n  - name: a\n    upstream: api\n    cors: {{allow_origins: any, max_age: 90000}}\n"
        ))
        .unwrap();
        let w = rules
            .warnings
            .iter()
            .find(|w| w.path == "routes[0].cors.max_age")
            .expect("a max_age warning");
        assert!(w.message.contains("Firefox"), "{w}");
    }

    #[test]
    fn jsonp_on_a_credentialed_route_needs_an_acknowledgement() {
        let yaml = |ack: &str| {
            format!("{BASE}routes:\n  - name: a\n    upstream: api\n    cors: {{allow_origins: [https://a.test], allow_credentials: true}}\n    jsonp: {{{ack}}}\n")
        };
        let e = compile_str(&yaml("")).err().unwrap();
        assert_eq!(e.path, "routes[0].jsonp");
        assert!(e.fix.contains("acknowledge_credentials: true"), "{e}");
        assert!(compile_str(&yaml("acknowledge_credentials: true")).is_ok());
    }

    #[test]
    fn a_regex_that_matches_null_is_an_error() {
        let e = compile_str(&format!("{BASE}routes:\n  - name: a\n    upstream: api\n    cors:\n      allow_origins: [{{regex: '.*'}}]\n")).err().unwrap();
        assert_eq!(e.path, "routes[0].cors.allow_origins[0].regex");
        assert!(e.message.contains("matches the origin `null`"), "{e}");
    }

    #[test]
    fn lints_warn_about_broad_regexes_shadowed_routes_and_unchecked_upstreams() {
        let rules = compile_str(&format!(
            "{BASE}routes:\n  - name: all\n    upstream: api\n    cors: {{allow_origins: [{{regex: 'https?://.+'}}]}}\n  - {{name: never, path: /api/, upstream: api}}\n  - {{name: other-host, host: b.test, path: /x/, upstream: api}}\n"
        ))
        .unwrap();
        let w: Vec<String> = rules
            .warnings
            .iter()
            .map(|w| format!("{} {}", w.path, w.message))
            .collect();
        assert!(
            w.iter().any(|w| w.contains("matches any http(s) origin")),
            "{w:?}"
        );
        assert!(
            w.iter().any(|w| w.starts_with("routes[1] ")
                && w.contains("\"never\" is never used: route \"all\"")),
            "{w:?}"
        );
        assert!(
            w.iter().any(|w| w.starts_with("routes[2] ")),
            "any-host / covers b.test/x/: {w:?}"
        );
        assert!(
            w.iter()
                .any(|w| w.starts_with("upstreams.api ") && w.contains("no health check")),
            "{w:?}"
        );
        // A narrower route first shadows nothing.
        let rules = compile_str(&format!("{BASE}routes:\n  - {{name: a, path: /api/, upstream: api}}\n  - {{name: b, upstream: api}}\n")).unwrap();
        assert!(rules
            .warnings
            .iter()
            .all(|w| !w.message.contains("never used")));
    }

    #[test]
    fn an_empty_upstream_sni_is_refused() {
        let e = compile_str("listen: 127.0.0.1:0\nupstreams:\n  api: {servers: [127.0.0.1:9], tls: {sni: ''}}\nroutes:\n  - {name: a, upstream: api}\n").err().unwrap();
        assert_eq!(e.path, "upstreams.api.tls.sni");
    }

    #[test]
    fn named_policies_are_shared() {
        let rules = compile_str(&format!(
            "{BASE}cors_policies:\n  app: {{allow_origins: ['https://a.test']}}\nroutes:\n  - {{name: a, path: /a/, upstream: api, cors: app}}\n  - {{name: b, path: /b/, upstream: api, cors: app}}\n"
        ))
        .unwrap();
        assert!(Arc::ptr_eq(
            rules.routes[0].cors.as_ref().unwrap(),
            rules.routes[1].cors.as_ref().unwrap()
        ));
    }
}
