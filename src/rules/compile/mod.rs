//! `compile`: a loaded file into [`Rules`], one section at a time, each in its own file:
//!
//! - `listeners.rs`: `listen`, `admin`, `tls`, `server`;
//! - `upstreams.rs`: `dns`, `upstreams` (servers, timeouts, health checks, TLS);
//! - `policies.rs`: `cors_policies` and inline policies;
//! - `routes.rs`: `routes` (hosts, paths, their channels' settings);
//! - `channels.rs`: the channels' settings (`jsonp`, `beacons`, `bridge`);
//! - `lints.rs`: warnings about what compiles but is probably wrong.
//!
//! The first error is returned, with the file, line, YAML path, value and fix; warnings are
//! collected beside the rules.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, Method};
use pingora::http::RequestHeader;
use pingora::lb::health_check::HttpHealthCheck;

use crate::beacon::{self, Beacon};
use crate::bridge::Bridge;
use crate::config::{
    ConfigError, CorsRef, FileAllowHeaders, FileCorsPolicy, FileHealthCheck, FileJsonp, FileOrigin,
    FileOrigins, FilePath, FileRoute, FileUpstream, FileUpstreamTls, FileWebSocket, Loaded,
    Permission, PolicyMode, Seconds, YamlPath,
};
use crate::cors::{AllowOrigin, CorsPolicy, PolicySpec};
use crate::dns::{Dns, DnsSettings};
use crate::forwarded::TrustedProxies;
use crate::origin::{anchored_regex, canonical_exact, OriginList, Wildcard};
use crate::path::AmbiguousPaths;
use crate::upstream::{HealthSpec, Timeouts, Upstream, UpstreamTls};

use super::resolve::Resolved;
use super::*;

mod channels;
mod lints;
mod listeners;
mod policies;
mod routes;
mod upstreams;

pub(super) use upstreams::dns_settings;

/// Compiles a loaded file into rules: [`resolve`](super::resolve::resolve) (the lookups and file
/// reads), then [`compile_with`].
pub fn compile(loaded: &Loaded) -> Result<Rules, ConfigError> {
    compile_with(loaded, &super::resolve::resolve(loaded))
}

/// Compiles a loaded file into rules with what was resolved for it. Pure: no lookup, no file
/// read, no clock.
pub fn compile_with(loaded: &Loaded, resolved: &Resolved) -> Result<Rules, ConfigError> {
    Compiler {
        loaded,
        resolved,
        warnings: Vec::new(),
        fallbacks: HashSet::new(),
    }
    .run()
}

struct Compiler<'a> {
    loaded: &'a Loaded,
    /// Server addresses, certificates, CA bundles, the upgrade socket's check.
    resolved: &'a Resolved,
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
        let (listen, admin, tls_listeners) = self.listeners()?;
        let server = self.server()?;
        let upstreams = self.upstreams()?;
        let policies = self.policies()?;
        let mut used_policies = HashSet::new();
        let routes = self.routes(&upstreams, &policies, &mut used_policies)?;
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
        let beacons = self.beacons(&upstreams)?;
        let bridge = self.bridge(&policies, &mut used_policies)?;
        self.lint_unused_policies(&policies, &used_policies);

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

    /// A path from the config, relative to the config file's directory.
    fn relative(&self, p: &str) -> String {
        super::resolve::relative(self.loaded, p)
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
    /// A request head limit: at least what browsers send (cookies included), at most
    /// pingora's own ceiling.
    fn head_size(&self, path: &YamlPath, bytes: usize) -> Result<usize, ConfigError> {
        if !(1024..=1_048_575).contains(&bytes) {
            return Err(self.err(
                path,
                format!("{bytes} bytes is outside 1024..=1048575"),
                "give a size in bytes such as 32768 (nginx's default) or 16384 (HAProxy's)",
            ));
        }
        Ok(bytes)
    }

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
}
