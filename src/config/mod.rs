//! The YAML file as users write it.
//!
//! Flow: `config.yaml` --[`load`]--> [`FileConfig`] (serde types that mirror the YAML one to one,
//! `deny_unknown_fields` everywhere) --[`crate::rules::compile`]--> `Rules` (everything parsed,
//! resolved and joined once). Raw types never reach request code.
//!
//! serde_yaml is used only in this module (see [`parse_yaml`]), so that a maintained fork can
//! replace it in one line.

mod de;
mod duration;
mod error;
mod hash;
mod load;
mod locate;
pub mod marked;
mod size;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

pub use duration::Seconds;
pub use error::{ConfigError, PathSeg, YamlPath};
pub use hash::semantic_hash;
pub use load::{load, parse_yaml, Loaded};
pub use size::Size;

/// The YAML library behind the config. Swap this line (and `parse_yaml`) to change it.
use serde_yaml as yaml;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `127.0.0.1:8080` or a list of addresses.
    pub listen: OneOrMany<String>,
    #[serde(default)]
    pub server: FileServer,
    #[serde(default)]
    pub log: FileLog,
    pub upstreams: BTreeMap<String, FileUpstream>,
    /// How upstream names are re-resolved.
    #[serde(default)]
    pub dns: Option<FileDns>,
    #[serde(default)]
    pub cors_policies: BTreeMap<String, FileCorsPolicy>,
    pub routes: Vec<FileRoute>,
    /// CORS for responses that match no route (the proxy's own 404).
    #[serde(default)]
    pub default_cors: Option<CorsRef>,
    /// Image-ping endpoints answered by the proxy itself.
    #[serde(default)]
    pub beacons: Vec<FileBeacon>,
    /// The postMessage bridge page.
    #[serde(default)]
    pub bridge: Option<FileBridge>,
    /// The admin listener: /metrics, /healthz, /readyz, /refused, /refused.html.
    #[serde(default)]
    pub admin: Option<FileAdmin>,
    /// HTTPS listeners.
    #[serde(default)]
    pub tls: Vec<FileTlsListener>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTlsListener {
    pub listen: String,
    /// PEM certificate chain and private key; relative paths are relative to the config file.
    /// Reloaded with the config.
    pub cert: String,
    pub key: String,
    /// Offer HTTP/2 by ALPN (default true).
    #[serde(default)]
    pub http2: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileUpstreamTls {
    /// The server name sent and verified (default: the host of the first server).
    #[serde(default)]
    pub sni: Option<String>,
    /// Verify the certificate chain and host name (default true).
    #[serde(default)]
    pub verify: Option<bool>,
    /// CA bundle (PEM) to verify against, instead of the system's roots.
    #[serde(default)]
    pub ca_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAdmin {
    /// Default 127.0.0.1:9090: keep it off the public network.
    #[serde(default)]
    pub listen: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileBridge {
    /// Where the bridge page is served; its scripts are served below it.
    pub path: String,
    /// Which pages may use the bridge: a policy name or an inline policy (exact origins and
    /// wildcards only: the browser side cannot run regexes).
    pub cors: CorsRef,
    /// Path prefixes the bridge may fetch.
    pub allow_paths: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileBeacon {
    /// Labels logs and metrics.
    pub name: String,
    /// The exact path answered.
    pub path: String,
    #[serde(default)]
    pub host: Option<String>,
    /// Query fields logged per hit (default 32).
    #[serde(default)]
    pub max_fields: Option<usize>,
    #[serde(default)]
    pub forward: Option<FileBeaconForward>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileBeaconForward {
    pub upstream: String,
    /// The path on the upstream (default: the beacon's path); the hit's query is kept.
    #[serde(default)]
    pub path: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileServer {
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// How long SIGTERM keeps serving in-flight requests before the runtime stops.
    #[serde(default = "default_grace")]
    pub grace_period: Seconds,
    /// How long the runtime then waits for tasks to finish.
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout: Seconds,
    /// Beacon hits waiting to be forwarded, across all beacons. When it is full, hits are
    /// still answered and logged, but not forwarded.
    #[serde(default = "default_beacon_queue")]
    pub beacon_queue: usize,
    /// The Unix socket over which `crossgate run --upgrade` takes the listening sockets from the
    /// running process (sent SIGQUIT).
    #[serde(default = "default_upgrade_sock")]
    pub upgrade_sock: PathBuf,
    /// A request head (request line and headers) must arrive whole within this long of its
    /// first byte (of the connection, for the first request): slow-loris headers are cut.
    #[serde(default = "default_header_timeout")]
    pub client_header_timeout: Seconds,
    /// The largest request head (request line and header fields), in bytes: a larger one is
    /// answered 431 and never forwarded (nginx allows 32 KiB by default, HAProxy 16 KiB).
    #[serde(default = "default_max_head_size")]
    pub client_max_head_size: usize,
    /// The longest wait for the next piece of a request body.
    #[serde(default = "default_client_timeout")]
    pub client_body_timeout: Seconds,
    /// How long a kept-alive connection may sit idle between requests.
    #[serde(default = "default_client_timeout")]
    pub client_keepalive_timeout: Seconds,
    /// The longest wait for a client to take the next piece of a response (a client that
    /// stops reading, a WebSocket that never reads).
    #[serde(default = "default_client_timeout")]
    pub client_send_timeout: Seconds,
    /// A path whose percent-decoding or dot resolution changes what it routes to
    /// (`%2F`, `..`, `%2e`, `..;`, backslashes): `reject` (default, 400), `forward_normalized`
    /// (the normalized path goes upstream) or `keep` (forwarded as sent: unsafe).
    #[serde(default)]
    pub ambiguous_paths: crate::path::AmbiguousPaths,
    /// The proxies in front of crossgate (load balancers), as addresses or CIDRs, whose
    /// `X-Forwarded-*` and `Forwarded` fields are kept and appended to; any other client's are
    /// replaced (the default: none trusted).
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// The largest request body, by its declared length or as it streams: a larger one is
    /// answered 413 (default 1m, nginx's; `0`: no limit). Routes may override it.
    #[serde(default = "default_max_body_size")]
    pub client_max_body_size: Size,
}

fn default_max_body_size() -> Size {
    Size(1 << 20)
}

fn default_header_timeout() -> Seconds {
    Seconds::from_secs(10)
}

fn default_max_head_size() -> usize {
    32 * 1024
}

fn default_client_timeout() -> Seconds {
    Seconds::from_secs(60)
}

/// A private runtime directory, never a shared one such as /tmp (see `crate::upgrade_sock`).
fn default_upgrade_sock() -> PathBuf {
    crate::upgrade_sock::default_path()
}

fn default_beacon_queue() -> usize {
    1024
}

fn default_threads() -> usize {
    1
}
fn default_grace() -> Seconds {
    Seconds::from_secs(5)
}
fn default_shutdown_timeout() -> Seconds {
    Seconds::from_secs(5)
}

impl Default for FileServer {
    fn default() -> Self {
        FileServer {
            threads: default_threads(),
            grace_period: default_grace(),
            shutdown_timeout: default_shutdown_timeout(),
            beacon_queue: default_beacon_queue(),
            upgrade_sock: default_upgrade_sock(),
            client_header_timeout: default_header_timeout(),
            client_max_head_size: default_max_head_size(),
            client_body_timeout: default_client_timeout(),
            ambiguous_paths: Default::default(),
            client_keepalive_timeout: default_client_timeout(),
            client_send_timeout: default_client_timeout(),
            trusted_proxies: Vec::new(),
            client_max_body_size: default_max_body_size(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileLog {
    #[serde(default)]
    pub format: LogFormat,
    /// One line per request on the `crossgate::access` target.
    #[serde(default = "yes")]
    pub access_log: bool,
}

impl Default for FileLog {
    fn default() -> Self {
        FileLog {
            format: LogFormat::default(),
            access_log: true,
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileUpstream {
    /// `host:port` servers, resolved when the config is loaded.
    pub servers: Vec<String>,
    #[serde(default)]
    pub connect_timeout: Option<Seconds>,
    #[serde(default)]
    pub read_timeout: Option<Seconds>,
    #[serde(default)]
    pub write_timeout: Option<Seconds>,
    #[serde(default)]
    pub idle_timeout: Option<Seconds>,
    #[serde(default)]
    pub health_check: Option<FileHealthCheck>,
    /// Connect to the servers over HTTPS.
    #[serde(default)]
    pub tls: Option<FileUpstreamTls>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDns {
    /// `ip:port` of the DNS server asked (default: the system's, from /etc/resolv.conf).
    #[serde(default)]
    pub resolver: Option<String>,
    /// Floor of the TTL an upstream name is re-resolved on (default 5s).
    #[serde(default)]
    pub min_ttl: Option<Seconds>,
    /// Ceiling of that TTL (default 300s).
    #[serde(default)]
    pub max_ttl: Option<Seconds>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileHealthCheck {
    pub path: String,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub interval: Option<Seconds>,
    #[serde(default)]
    pub timeout: Option<Seconds>,
    /// Consecutive successes that bring a server back.
    #[serde(default)]
    pub healthy_threshold: Option<usize>,
    /// Consecutive failures that take a server out.
    #[serde(default)]
    pub unhealthy_threshold: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRoute {
    pub name: String,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub path: Option<FilePath>,
    pub upstream: String,
    #[serde(default)]
    pub cors: Option<CorsRef>,
    #[serde(default)]
    pub jsonp: Option<FileJsonp>,
    /// Overrides the upstream's read_timeout on this route (long polling, SSE).
    #[serde(default)]
    pub read_timeout: Option<Seconds>,
    /// Lets WebSocket upgrades through, after checking their Origin.
    #[serde(default)]
    pub websocket: Option<FileWebSocket>,
    /// Server-Sent Events settings.
    #[serde(default)]
    pub sse: Option<FileSse>,
    /// The `Host` the upstream gets instead of the client's (ingress-nginx's `upstream-vhost`).
    #[serde(default)]
    pub upstream_host: Option<String>,
    /// Forward the path without the route's `path` prefix (`/api/users` on prefix `/api` goes
    /// upstream as `/users`): ingress-nginx's usual `rewrite-target`, Traefik's StripPrefix.
    #[serde(default)]
    pub strip_prefix: bool,
    /// Overrides `server.client_max_body_size` on this route (`0`: no limit).
    #[serde(default)]
    pub max_body_size: Option<Size>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileWebSocket {
    /// How long a WebSocket may stay silent before the proxy closes it (default 300s).
    #[serde(default)]
    pub idle_timeout: Option<Seconds>,
    /// Upgrade requests without an Origin (non-browser clients): `deny` (default) or `allow`.
    #[serde(default)]
    pub without_origin: Permission,
    /// Lets the route's policy be `allow_origins: any`. Handshakes always carry cookies, so
    /// that lets any site open a socket as the user (cross-site WebSocket hijacking): only for
    /// sockets that need no user's credentials.
    #[serde(default)]
    pub allow_any_origin: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSse {
    /// Send a comment line (`:`) to the client when the upstream has been silent this long,
    /// so that intermediaries keep the stream open.
    #[serde(default)]
    pub heartbeat: Option<Seconds>,
}

/// JSONP on a route: `jsonp: {}` for the defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileJsonp {
    /// The query parameter that names the callback (default `callback`).
    #[serde(default)]
    pub callback_param: Option<String>,
    /// Wrap every JSON response, errors included, as `cb({"meta":{"status":S},"data":...})`
    /// and answer 200, so that script clients can see the status.
    #[serde(default)]
    pub envelope: bool,
    /// Requests without a `Referer` (and not `Sec-Fetch-Site: same-origin`): `deny` (default)
    /// or `allow`.
    #[serde(default)]
    pub without_referer: Permission,
    /// Needed when the route's CORS policy allows credentials: JSONP requests always carry
    /// cookies and CORS cannot restrict who reads the script.
    #[serde(default)]
    pub acknowledge_credentials: bool,
    /// Which callback names are accepted: `dotted` (default: `handle`, `app.handlers.done`)
    /// or `identifier` (plain function names only).
    #[serde(default)]
    pub callback_pattern: crate::jsonp::CallbackPattern,
}

/// allow | deny.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    Allow,
    #[default]
    Deny,
}

/// `path: /api/` (a prefix) or `path: {prefix|exact|regex: ...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilePath {
    Prefix(String),
    Exact(String),
    Regex(String),
}

/// A route's `cors:` names a policy in `cors_policies` or is a policy itself.
#[derive(Debug)]
pub enum CorsRef {
    Named(String),
    Inline(Box<FileCorsPolicy>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCorsPolicy {
    pub allow_origins: FileOrigins,
    #[serde(default)]
    pub allow_methods: Option<Vec<String>>,
    #[serde(default)]
    pub allow_headers: Option<FileAllowHeaders>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    #[serde(default)]
    pub allow_credentials: bool,
    /// Seconds a browser may cache a preflight.
    #[serde(default)]
    pub max_age: Option<u64>,
    #[serde(default)]
    pub allow_private_network: bool,
    #[serde(default)]
    pub upstream_headers: UpstreamHeaders,
    /// `enforce` (default), or `report_only`: requests this policy would refuse are served
    /// as `report_only_fallback` allows, and counted and logged as would_deny.
    #[serde(default)]
    pub mode: PolicyMode,
    /// The policy (in cors_policies, in enforce mode) that serves what a report_only policy
    /// would refuse: usually the permissive policy being replaced.
    #[serde(default)]
    pub report_only_fallback: Option<String>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyMode {
    #[default]
    Enforce,
    ReportOnly,
}

/// `allow_origins: any` or a list of origins, wildcards and regexes.
#[derive(Debug)]
pub enum FileOrigins {
    Any,
    List(Vec<FileOrigin>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOrigin {
    /// `https://app.example.com`, `https://*.example.com` or `null`.
    Pattern(String),
    /// `{regex: '^https://pr-[0-9]+\.example\.com$'}`, anchored at both ends; the flag is
    /// `allow_unescaped_dot: true` (a `.` in the host that is meant to match any character).
    Regex(String, bool),
}

/// `allow_headers: mirror` or a list of header names.
#[derive(Debug)]
pub enum FileAllowHeaders {
    Mirror,
    List(Vec<String>),
}

/// What to do with `Access-Control-*` headers the backend sends itself.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamHeaders {
    /// Strip them, so that exactly one set (crossgate's) goes out.
    #[default]
    Override,
    /// Keep the backend's when it sends `Access-Control-Allow-Origin`; add crossgate's otherwise.
    Passthrough,
}

/// A scalar or a list of scalars.
#[derive(Debug, Clone)]
pub struct OneOrMany<T>(pub Vec<T>);
