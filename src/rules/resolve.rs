//! `resolve`: everything compiling needs from outside the file, read in one step before it, so
//! that [`super::compile_with`] is a pure function of the file and what was read here:
//!
//! - the addresses of each upstream server written as a name (DNS, `crate::dns`);
//! - each HTTPS listener's PEM certificate chain and key, each upstream's CA bundle
//!   (`crate::tls`), with paths relative to the config file's directory;
//! - whether `server.upgrade_sock`'s directory, if it exists, is private (`crate::upgrade_sock`).
//!
//! Nothing is judged here: each outcome, good or bad, is kept for compile, which turns a bad
//! one into a config error at its place in the file, so a file with several problems reports
//! the same first one as when compile did the I/O itself. Resolving goes in compile's order
//! (listeners, server, upstreams) and stops at the first failure: compile never looks past it.
//!
//! [`Resolved::offline`] answers the same questions without I/O, for the fuzz target.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use pingora::utils::tls::WrappedX509;

use crate::config::Loaded;
use crate::dns::{DnsSettings, Followed, Server};
use crate::tls::Certified;

/// A server's addresses now and, for a name, what to follow.
pub type Addresses = (Vec<SocketAddr>, Option<Followed>);

/// A refused `server.upgrade_sock`: the message and the fix, as the config error shows them.
pub type SockRefusal = (String, String);

/// What [`resolve`] read, for [`super::compile_with`].
#[derive(Default)]
pub struct Resolved {
    /// Each HTTPS listener's certificate, in `tls:` order.
    certs: Vec<Result<Certified, String>>,
    /// The upgrade socket's check.
    upgrade_sock: Option<Result<(), SockRefusal>>,
    /// Each upstream's servers, in the order written.
    servers: BTreeMap<String, Vec<Result<Addresses, String>>>,
    /// Each upstream's `tls.ca_file`, by upstream name.
    ca: BTreeMap<String, Result<Arc<[WrappedX509]>, String>>,
    /// Names that did not resolve ([`Lookups::Tolerant`]), by upstream and server index: why.
    unresolved: BTreeMap<(String, usize), String>,
}

/// How server names are looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookups {
    /// Looked up; one that does not resolve is a config error (`check`, `explain`).
    Required,
    /// Looked up; one that does not resolve yet is a server with no address, followed like
    /// any name (tried again every `dns.min_ttl`), and a warning: `run` and reloads, so that a
    /// pod does not crash-loop while its Service is being created.
    Tolerant,
    /// Not looked up (`--no-resolve`): each name stands for itself, as [`Resolved::offline`]
    /// has it.
    Off,
}

/// Why compile found nothing: resolving stopped at an earlier failure, which compile reports
/// first, so this is never shown.
const NOT_READ: &str = "not read: an earlier file or lookup failed";

impl Resolved {
    pub(super) fn cert(&self, listener: usize) -> Result<Certified, String> {
        self.certs
            .get(listener)
            .cloned()
            .unwrap_or_else(|| Err(NOT_READ.into()))
    }

    pub(super) fn upgrade_sock(&self) -> Result<(), SockRefusal> {
        self.upgrade_sock
            .clone()
            .unwrap_or_else(|| Err((NOT_READ.into(), String::new())))
    }

    pub(super) fn server(&self, upstream: &str, i: usize) -> Result<Addresses, String> {
        self.servers
            .get(upstream)
            .and_then(|s| s.get(i))
            .cloned()
            .unwrap_or_else(|| Err(NOT_READ.into()))
    }

    /// Why server `i` of `upstream` has no address yet, if its name did not resolve.
    pub(super) fn unresolved(&self, upstream: &str, i: usize) -> Option<&str> {
        self.unresolved
            .get(&(upstream.to_owned(), i))
            .map(String::as_str)
    }

    pub(super) fn ca(&self, upstream: &str) -> Result<Arc<[WrappedX509]>, String> {
        self.ca
            .get(upstream)
            .cloned()
            .unwrap_or_else(|| Err(NOT_READ.into()))
    }

    /// What compile needs, without I/O: IP literals as written, every name at 192.0.2.1 (a
    /// documentation address, RFC 5737) and followed, `cert` (or, without one, an error) for
    /// every HTTPS listener, an empty bundle for every CA file, and an upgrade socket whose
    /// path fits. For the fuzz target: compile then takes every path it takes on a real file.
    pub fn offline(loaded: &Loaded, cert: Option<&Certified>) -> Resolved {
        let cfg = &loaded.config;
        let certs = cfg
            .tls
            .iter()
            .map(|_| {
                cert.cloned()
                    .ok_or_else(|| "offline: no file is read".into())
            })
            .collect();
        let upgrade_sock = crate::upgrade_sock::check_len(&cfg.server.upgrade_sock)
            .map_err(|why| (why.to_string(), why.fix()));
        let min_ttl = super::compile::dns_settings(loaded)
            .map_or(DnsSettings::default().min_ttl, |d| d.min_ttl);
        let offline = |s: &String| unresolved(s, min_ttl);
        Resolved {
            certs,
            upgrade_sock: Some(upgrade_sock),
            servers: cfg
                .upstreams
                .iter()
                .map(|(name, u)| (name.clone(), u.servers.iter().map(offline).collect()))
                .collect(),
            ca: cfg
                .upstreams
                .iter()
                .filter(|(_, u)| u.tls.as_ref().is_some_and(|t| t.ca_file.is_some()))
                .map(|(name, _)| (name.clone(), Ok(Arc::from([]))))
                .collect(),
            unresolved: BTreeMap::new(),
        }
    }
}

/// A server as written, without a lookup: an address as it is, a name as the documentation
/// address 192.0.2.1 (RFC 5737) with the name followed (`check --no-resolve`, the fuzz
/// target).
fn unresolved(s: &str, ttl: std::time::Duration) -> Result<Addresses, String> {
    Ok(match crate::dns::parse_server(s)? {
        Server::Addr(a) => (vec![a], None),
        Server::Name { host, port } => (
            vec![SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
                port,
            )],
            Some(Followed {
                host: host.to_owned(),
                port,
                ttl,
            }),
        ),
    })
}

/// Does the lookups and reads for `loaded`, in compile's order, up to the first failure.
pub fn resolve(loaded: &Loaded) -> Resolved {
    resolve_with(loaded, Lookups::Required)
}

/// [`resolve`], with server names looked up as `lookups` says (certificates, CA files and the
/// upgrade socket are read as always). `Off` is for `check` and `explain` on a machine that
/// cannot resolve the production names (CI, a laptop): the routing and policies compile the
/// same.
pub fn resolve_with(loaded: &Loaded, lookups: Lookups) -> Resolved {
    let cfg = &loaded.config;
    let mut out = Resolved::default();
    for t in &cfg.tls {
        let (cert, key) = (relative(loaded, &t.cert), relative(loaded, &t.key));
        let c = crate::tls::load_certified(&cert, &key);
        let failed = c.is_err();
        out.certs.push(c);
        if failed {
            return out;
        }
    }
    // Its directory is checked here so that `check` (ExecStartPre) refuses it; `run` creates a
    // missing one and checks again (`upgrade_sock::prepare`).
    let sock = crate::upgrade_sock::check_config(&cfg.server.upgrade_sock)
        .map_err(|why| (why.to_string(), why.fix()));
    let failed = sock.is_err();
    out.upgrade_sock = Some(sock);
    if failed {
        return out;
    }
    // Bad settings fail compile before any server is looked at.
    let Ok(dns) = super::compile::dns_settings(loaded) else {
        return out;
    };
    for (name, up) in &cfg.upstreams {
        let servers = out.servers.entry(name.clone()).or_default();
        for (i, s) in up.servers.iter().enumerate() {
            let a = match lookups {
                Lookups::Required => crate::dns::resolve_server(s, &dns),
                Lookups::Off => unresolved(s, dns.min_ttl),
                Lookups::Tolerant => match crate::dns::resolve_server(s, &dns) {
                    Err(why) => match crate::dns::parse_server(s) {
                        // Written right, not resolving now: followed from no address.
                        Ok(Server::Name { host, port }) => {
                            out.unresolved.insert((name.clone(), i), why);
                            let ttl = dns.min_ttl;
                            let host = host.to_owned();
                            Ok((Vec::new(), Some(Followed { host, port, ttl })))
                        }
                        _ => Err(why),
                    },
                    ok => ok,
                },
            };
            let failed = a.is_err();
            servers.push(a);
            if failed {
                return out;
            }
        }
        if let Some(f) = up.tls.as_ref().and_then(|t| t.ca_file.as_ref()) {
            let ca = crate::tls::load_ca(&relative(loaded, f));
            let failed = ca.is_err();
            out.ca.insert(name.clone(), ca);
            if failed {
                return out;
            }
        }
    }
    out
}

/// A path from the config, relative to the config file's directory.
pub(super) fn relative(loaded: &Loaded, p: &str) -> String {
    let path = Path::new(p);
    if path.is_absolute() {
        return p.to_owned();
    }
    match loaded.path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => dir.join(path).display().to_string(),
        None => p.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_yaml;

    fn loaded(yaml: &str) -> Loaded {
        let path = Path::new("test.yaml");
        Loaded {
            path: path.into(),
            source: yaml.to_owned(),
            config: parse_yaml(path, yaml).unwrap(),
        }
    }

    #[test]
    fn offline_a_name_and_a_ca_file_compile_without_a_lookup_or_a_read() {
        let l = loaded(
            "listen: 127.0.0.1:0\nupstreams:\n  api:\n    servers: [api.internal.invalid:8080, 127.0.0.1:9]\n    tls: {ca_file: /nonexistent/ca.pem}\nroutes:\n  - {name: r, upstream: api}\n",
        );
        let rules = super::super::compile_with(&l, &Resolved::offline(&l, None)).unwrap();
        let servers: Vec<String> = rules.upstreams[0]
            .servers()
            .iter()
            .map(|b| b.addr.to_string())
            .collect();
        assert_eq!(servers, ["192.0.2.1:8080", "127.0.0.1:9"]);
    }

    #[test]
    fn resolving_stops_at_the_first_failure_and_compile_reports_it_in_the_files_order() {
        let l = loaded(
            "listen: 127.0.0.1:0\nupstreams:\n  a:\n    servers: [127.0.0.1:9, no-port]\n  b:\n    servers: [127.0.0.1:10]\nroutes:\n  - {name: r, upstream: a}\n",
        );
        let r = resolve(&l);
        assert_eq!(r.servers["a"].len(), 2, "{:?}", r.servers.keys());
        assert!(!r.servers.contains_key("b"), "nothing after the failure");
        let e = super::super::compile_with(&l, &r)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("cannot use server \"no-port\""), "{e}");
    }
}
