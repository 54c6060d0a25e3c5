//! Upstream groups: servers resolved at load (names then follow DNS, see `dns`), round-robin
//! over the healthy ones, and an active HTTP health check (pingora's `HttpHealthCheck` does the
//! probing; the schedule and the thresholds are ours, so they follow the live config across
//! reloads).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::lb::health_check::{HealthCheck, HttpHealthCheck};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::upstreams::peer::HttpPeer;

use crate::dns::{Dns, Followed};
use crate::metrics::Metrics;

/// One backend server.
pub struct Backend {
    /// As written in the config (`legacy.internal:8080`), for logs and metrics.
    pub written: String,
    pub addr: SocketAddr,
    /// The `server` label of its metrics: `written`, and for a name also the address it
    /// resolved to (`api.internal:8080 10.0.0.5:8080`), so that the servers of one name differ.
    pub label: String,
    /// Built once; cloned per request.
    pub peer: HttpPeer,
    probe_target: pingora::lb::Backend,
    healthy: AtomicBool,
    /// Consecutive probe results that disagree with `healthy`.
    streak: AtomicUsize,
}

impl Backend {
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
}

impl Upstream {
    /// Takes over what an older compile of this upstream learned about its servers (matched
    /// by address), so that a reload does not put a dead server back into rotation.
    pub fn inherit_health(&self, old: &Upstream) {
        let olds = old.servers();
        for b in self.servers().iter() {
            if let Some(o) = olds.iter().find(|o| o.addr == b.addr) {
                b.healthy.store(o.is_healthy(), Ordering::Relaxed);
                b.streak
                    .store(o.streak.load(Ordering::Relaxed), Ordering::Relaxed);
            }
        }
        if self.health.is_some() && old.health.is_some() {
            self.probed
                .store(old.probed.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    /// Keeps, for each name that did not resolve when this compile was made (a reload during a
    /// DNS outage: `rules::Lookups::Tolerant`), the addresses the older compile had for it, so
    /// that a reload never empties an upstream that was serving: the last good addresses stay
    /// in rotation, as when the re-resolution of a running name fails.
    pub fn keep_addresses_of_unresolved(&self, old: &Upstream) {
        let olds = old.servers();
        for name in &self.names {
            let now = self.servers();
            if now.iter().any(|b| b.written == name.written) {
                continue;
            }
            let addrs: Vec<SocketAddr> = olds
                .iter()
                .filter(|b| b.written == name.written)
                .map(|b| b.addr)
                .collect();
            if !addrs.is_empty() {
                self.replace_name_addrs(&name.written, &addrs);
            }
        }
    }

    /// Whether the health of the servers is known: no check is configured, or one round of
    /// probes has completed.
    pub fn health_known(&self) -> bool {
        self.health.is_none() || self.probed.load(Ordering::Relaxed)
    }
}

/// HTTPS to the servers of an upstream.
pub struct UpstreamTls {
    pub sni: String,
    pub verify: bool,
    pub ca: Option<Arc<[pingora::utils::tls::WrappedX509]>>,
}

/// Timeouts applied to every connection to an upstream.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub read: Duration,
    pub write: Duration,
    pub idle: Duration,
}

pub struct HealthSpec {
    pub probe: HttpHealthCheck,
    pub path: String,
    pub interval: Duration,
    pub healthy_threshold: usize,
    pub unhealthy_threshold: usize,
}

/// A named group of servers.
pub struct Upstream {
    pub name: String,
    /// Swapped whole when a name resolves to other addresses. Empty only while the names it
    /// is written with do not resolve (`rules::Lookups::Tolerant`).
    servers: ArcSwap<Vec<Arc<Backend>>>,
    pub timeouts: Timeouts,
    pub health: Option<HealthSpec>,
    tls: Option<UpstreamTls>,
    /// The servers written as names, re-resolved on their TTL.
    names: Vec<Name>,
    dns: Option<Arc<Dns>>,
    resolving: AtomicBool,
    next: AtomicUsize,
    next_check: parking_lot::Mutex<Instant>,
    checking: AtomicBool,
    /// A round of probes has completed.
    probed: AtomicBool,
}

impl Upstream {
    pub fn new(
        name: String,
        servers: Vec<(String, SocketAddr)>,
        timeouts: Timeouts,
        mut health: Option<HealthSpec>,
        tls: Option<UpstreamTls>,
    ) -> Upstream {
        let servers = servers
            .into_iter()
            .map(|(written, addr)| Arc::new(backend(written, addr, tls.as_ref(), timeouts)))
            .collect::<Vec<_>>();
        // Probes go the way requests go: over TLS, with the same name and trust (the
        // template's address is not used: each probe goes to its server's).
        if let Some(h) = health.as_mut() {
            let timeout = h.probe.peer_template.options.read_timeout;
            let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
            h.probe.peer_template =
                backend(String::new(), unspecified, tls.as_ref(), timeouts).peer;
            h.probe.peer_template.options.connection_timeout = timeout;
            h.probe.peer_template.options.read_timeout = timeout;
        }
        Upstream {
            name,
            servers: ArcSwap::from_pointee(servers),
            timeouts,
            health,
            tls,
            names: Vec::new(),
            dns: None,
            resolving: AtomicBool::new(false),
            next: AtomicUsize::new(0),
            next_check: parking_lot::Mutex::new(Instant::now()),
            checking: AtomicBool::new(false),
            probed: AtomicBool::new(false),
        }
    }

    /// Re-resolves the servers written as names (each as written, and what to follow; their
    /// first addresses are among the servers given to `new`) with `dns`.
    pub fn follow_dns(mut self, names: Vec<(String, Followed)>, dns: Arc<Dns>) -> Upstream {
        let now = Instant::now();
        self.names = names
            .into_iter()
            .map(|(written, f)| Name {
                written,
                host: f.host,
                port: f.port,
                next: parking_lot::Mutex::new(now + f.ttl),
            })
            .collect();
        if !self.names.is_empty() {
            self.dns = Some(dns);
        }
        self
    }

    pub fn follows_dns(&self) -> bool {
        self.dns.is_some()
    }

    /// The servers now in rotation (a snapshot).
    pub fn servers(&self) -> Arc<Vec<Arc<Backend>>> {
        self.servers.load_full()
    }

    pub fn server_count(&self) -> usize {
        self.servers.load().len()
    }

    /// Puts `addrs` in rotation for the name written `written`, in place of what it resolved
    /// to before. Servers that stay are kept as they are (health included); a removed server
    /// only leaves the list, so requests on it finish. Returns (added, removed).
    pub fn replace_name_addrs(
        &self,
        written: &str,
        addrs: &[SocketAddr],
    ) -> (Vec<SocketAddr>, Vec<SocketAddr>) {
        let current = self.servers.load_full();
        let mine: Vec<SocketAddr> = current
            .iter()
            .filter(|b| b.written == written)
            .map(|b| b.addr)
            .collect();
        let (added, removed) = crate::dns::diff(&mine, addrs);
        if added.is_empty() && removed.is_empty() {
            return (added, removed);
        }
        let mut next: Vec<Arc<Backend>> = current
            .iter()
            .filter(|b| !(b.written == written && removed.contains(&b.addr)))
            .cloned()
            .collect();
        next.extend(added.iter().map(|&a| {
            Arc::new(backend(
                written.to_owned(),
                a,
                self.tls.as_ref(),
                self.timeouts,
            ))
        }));
        self.servers.store(Arc::new(next));
        (added, removed)
    }

    /// Resolves the names whose TTL has run out. Returns at once if none is due.
    pub(crate) async fn refresh_dns_if_due(self: Arc<Self>, metrics: Arc<Metrics>) {
        let Some(dns) = &self.dns else { return };
        if self.resolving.swap(true, Ordering::AcqRel) {
            return;
        }
        for name in &self.names {
            if Instant::now() < *name.next.lock() {
                continue;
            }
            let (host, port) = (name.host.as_str(), name.port);
            let wait = match dns.lookup(host).await {
                Ok(answer) => {
                    metrics.dns_resolved(&self.name, true);
                    let addrs: Vec<SocketAddr> = answer
                        .addrs
                        .iter()
                        .map(|&ip| SocketAddr::new(ip, port))
                        .collect();
                    let (added, removed) = self.replace_name_addrs(&name.written, &addrs);
                    if !added.is_empty() || !removed.is_empty() {
                        tracing::info!(upstream = %self.name, server = %name.written, ?added, ?removed, "the name resolves to other addresses: rotation updated");
                    }
                    answer.ttl
                }
                Err(why) => {
                    metrics.dns_resolved(&self.name, false);
                    tracing::warn!(upstream = %self.name, server = %name.written, %why, "cannot resolve the name: the last addresses stay in rotation");
                    dns.settings.min_ttl
                }
            };
            *name.next.lock() = Instant::now() + wait;
        }
        self.resolving.store(false, Ordering::Release);
    }

    /// The next healthy server in round-robin order. When every server is marked down, the
    /// rotation goes on over all of them: a failing health check must not turn a degraded
    /// backend into a certain 502. None while the upstream has no address at all (its names
    /// do not resolve yet).
    pub fn select(&self) -> Option<Arc<Backend>> {
        let servers = self.servers.load();
        let n = servers.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let b = (0..n)
            .map(|i| &servers[(start + i) % n])
            .find(|b| b.is_healthy())
            .unwrap_or(&servers[start]);
        Some(b.clone())
    }

    /// Runs one round of probes if one is due. Returns at once otherwise.
    async fn check_if_due(self: Arc<Self>) {
        let Some(spec) = &self.health else { return };
        {
            let mut next = self.next_check.lock();
            if Instant::now() < *next || self.checking.swap(true, Ordering::AcqRel) {
                return;
            }
            *next = Instant::now() + spec.interval;
        }
        // New servers from DNS are probed from the next round on.
        for b in self.servers().iter() {
            let ok = spec.probe.check(&b.probe_target).await.is_ok();
            let was = b.is_healthy();
            if ok == was {
                b.streak.store(0, Ordering::Relaxed);
                continue;
            }
            let streak = b.streak.fetch_add(1, Ordering::Relaxed) + 1;
            let needed = if ok {
                spec.healthy_threshold
            } else {
                spec.unhealthy_threshold
            };
            if streak >= needed {
                b.healthy.store(ok, Ordering::Relaxed);
                b.streak.store(0, Ordering::Relaxed);
                if ok {
                    tracing::info!(upstream = %self.name, server = %b.written, "server is healthy again");
                } else {
                    tracing::warn!(upstream = %self.name, server = %b.written, path = %spec.path, "server failed its health check: taken out of rotation");
                }
            }
        }
        self.probed.store(true, Ordering::Relaxed);
        self.checking.store(false, Ordering::Release);
    }
}

/// A server written as a name, and when it is next resolved.
struct Name {
    /// As written: `api.internal:8080`.
    written: String,
    host: String,
    port: u16,
    next: parking_lot::Mutex<Instant>,
}

fn backend(
    written: String,
    addr: SocketAddr,
    tls: Option<&UpstreamTls>,
    timeouts: Timeouts,
) -> Backend {
    let mut peer = match tls {
        Some(t) => {
            let mut p = HttpPeer::new(addr, true, t.sni.clone());
            p.options.verify_cert = t.verify;
            p.options.verify_hostname = t.verify;
            p.options.ca = t.ca.clone();
            p
        }
        None => HttpPeer::new(addr, false, String::new()),
    };
    peer.options.connection_timeout = Some(timeouts.connect);
    peer.options.read_timeout = Some(timeouts.read);
    peer.options.write_timeout = Some(timeouts.write);
    peer.options.idle_timeout = Some(timeouts.idle);
    let label = if written.parse::<SocketAddr>().is_ok() {
        written.clone()
    } else {
        format!("{written} {addr}")
    };
    Backend {
        probe_target: pingora::lb::Backend {
            addr: pingora::protocols::l4::socket::SocketAddr::Inet(addr),
            weight: 1,
            ext: Default::default(),
        },
        written,
        addr,
        label,
        peer,
        healthy: AtomicBool::new(true),
        streak: AtomicUsize::new(0),
    }
}

/// What holds the live upstreams (the compiled rules): the background services here and in
/// `dns` read them through this, so that this module does not import the rules that hold it.
pub trait LiveUpstreams: Send + Sync + 'static {
    fn upstreams(&self) -> &[Arc<Upstream>];
}

/// Runs the health checks of whatever config is live.
pub struct HealthChecks<R> {
    pub rules: Arc<ArcSwap<R>>,
}

/// How often the scheduler looks for due checks; each upstream has its own interval.
const TICK: Duration = Duration::from_millis(100);

#[async_trait]
impl<R: LiveUpstreams> BackgroundService for HealthChecks<R> {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            let rules = self.rules.load_full();
            for up in rules.upstreams().iter().filter(|u| u.health.is_some()) {
                tokio::spawn(up.clone().check_if_due());
            }
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeouts() -> Timeouts {
        let t = Duration::from_secs(1);
        Timeouts {
            connect: t,
            read: t,
            write: t,
            idle: t,
        }
    }

    fn upstream(addrs: &[&str]) -> Upstream {
        let servers = addrs
            .iter()
            .map(|a| (a.to_string(), a.parse().unwrap()))
            .collect();
        Upstream::new("u".into(), servers, timeouts(), None, None)
    }

    #[test]
    fn round_robin_skips_unhealthy_servers_and_fails_open() {
        let u = upstream(&["127.0.0.1:1", "127.0.0.1:2"]);
        u.servers()[1].healthy.store(false, Ordering::Relaxed);
        assert!((0..4).all(|_| u.select().unwrap().addr.port() == 1));
        u.servers()[0].healthy.store(false, Ordering::Relaxed);
        let ports: Vec<u16> = (0..4).map(|_| u.select().unwrap().addr.port()).collect();
        assert!(
            ports.contains(&1) && ports.contains(&2),
            "all down: rotate over all: {ports:?}"
        );
    }

    #[test]
    fn a_new_answer_keeps_the_servers_that_stay_adds_the_new_and_drops_the_removed() {
        // Servers 1 and 2 came from one name.
        let servers = vec![
            ("127.0.0.1:1".to_owned(), "127.0.0.1:1".parse().unwrap()),
            ("api:80".to_owned(), "127.0.0.9:80".parse().unwrap()),
            ("api:80".to_owned(), "127.0.0.2:80".parse().unwrap()),
        ];
        let u = Upstream::new("u".into(), servers, timeouts(), None, None);
        u.servers()[2].healthy.store(false, Ordering::Relaxed);
        let kept = u.servers()[2].clone();
        let (added, removed) = u.replace_name_addrs(
            "api:80",
            &[
                "127.0.0.2:80".parse().unwrap(),
                "127.0.0.3:80".parse().unwrap(),
            ],
        );
        assert_eq!(added, vec!["127.0.0.3:80".parse::<SocketAddr>().unwrap()]);
        assert_eq!(removed, vec!["127.0.0.9:80".parse::<SocketAddr>().unwrap()]);
        let now: Vec<String> = u.servers().iter().map(|b| b.label.clone()).collect();
        assert_eq!(
            now,
            ["127.0.0.1:1", "api:80 127.0.0.2:80", "api:80 127.0.0.3:80"]
        );
        assert!(
            Arc::ptr_eq(&u.servers()[1], &kept),
            "a server that stays is the same server"
        );
        assert!(!u.servers()[1].is_healthy(), "and keeps its health");
        assert!(u.servers()[2].is_healthy(), "a new server starts healthy");
        let before = u.servers();
        assert_eq!(
            u.replace_name_addrs(
                "api:80",
                &[
                    "127.0.0.3:80".parse().unwrap(),
                    "127.0.0.2:80".parse().unwrap()
                ]
            ),
            (vec![], vec![])
        );
        assert!(
            Arc::ptr_eq(&before, &u.servers()),
            "the same answer changes nothing"
        );
    }

    #[test]
    fn a_reload_during_a_dns_outage_keeps_the_addresses_a_name_had() {
        let followed = || {
            vec![(
                "api:80".to_owned(),
                Followed {
                    host: "api".into(),
                    port: 80,
                    ttl: Duration::from_secs(5),
                },
            )]
        };
        let dns = Arc::new(Dns::new(crate::dns::DnsSettings::default()));
        let old = Upstream::new(
            "u".into(),
            vec![("api:80".to_owned(), "127.0.0.7:80".parse().unwrap())],
            timeouts(),
            None,
            None,
        )
        .follow_dns(followed(), dns.clone());
        // The same name compiled again while it did not resolve: no address of its own.
        let new = Upstream::new("u".into(), Vec::new(), timeouts(), None, None)
            .follow_dns(followed(), dns);
        assert!(new.select().is_none());
        new.keep_addresses_of_unresolved(&old);
        assert_eq!(
            new.select().map(|b| b.addr),
            Some("127.0.0.7:80".parse().unwrap())
        );
        // A name that resolved keeps its own answer.
        let resolved = Upstream::new(
            "u".into(),
            vec![("api:80".to_owned(), "127.0.0.8:80".parse().unwrap())],
            timeouts(),
            None,
            None,
        )
        .follow_dns(
            followed(),
            Arc::new(Dns::new(crate::dns::DnsSettings::default())),
        );
        resolved.keep_addresses_of_unresolved(&old);
        let addrs: Vec<SocketAddr> = resolved.servers().iter().map(|b| b.addr).collect();
        assert_eq!(addrs, ["127.0.0.8:80".parse::<SocketAddr>().unwrap()]);
    }

    #[test]
    fn a_reload_keeps_what_health_checks_learned() {
        let old = upstream(&["127.0.0.1:1", "127.0.0.1:2"]);
        old.servers()[1].healthy.store(false, Ordering::Relaxed);
        let new = upstream(&["127.0.0.1:2", "127.0.0.1:3"]);
        new.inherit_health(&old);
        assert!(
            !new.servers()[0].is_healthy(),
            "127.0.0.1:2 was down and stays down"
        );
        assert!(new.servers()[1].is_healthy(), "a new server starts healthy");
    }
}
