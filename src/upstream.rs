//! Upstream groups: servers resolved at load, round-robin over the healthy ones, and an active
//! HTTP health check (pingora's `HttpHealthCheck` does the probing; the schedule and the
//! thresholds are ours, so they follow the live config across reloads).

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

use crate::rules::Rules;

/// One backend server.
pub struct Backend {
    /// As written in the config (`legacy.internal:8080`), for logs and metrics.
    pub written: String,
    pub addr: SocketAddr,
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
        for b in &self.servers {
            if let Some(o) = old.servers.iter().find(|o| o.addr == b.addr) {
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
    pub servers: Vec<Backend>,
    pub timeouts: Timeouts,
    pub health: Option<HealthSpec>,
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
            .map(|(written, addr)| {
                let mut peer = match &tls {
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
                Backend {
                    probe_target: pingora::lb::Backend {
                        addr: pingora::protocols::l4::socket::SocketAddr::Inet(addr),
                        weight: 1,
                        ext: Default::default(),
                    },
                    written,
                    addr,
                    peer,
                    healthy: AtomicBool::new(true),
                    streak: AtomicUsize::new(0),
                }
            })
            .collect::<Vec<Backend>>();
        // Probes go the way requests go: over TLS, with the same name and trust.
        if let (Some(h), Some(first)) = (health.as_mut(), servers.first()) {
            let timeout = h.probe.peer_template.options.read_timeout;
            h.probe.peer_template = first.peer.clone();
            h.probe.peer_template.options.connection_timeout = timeout;
            h.probe.peer_template.options.read_timeout = timeout;
        }
        Upstream {
            name,
            servers,
            timeouts,
            health,
            next: AtomicUsize::new(0),
            next_check: parking_lot::Mutex::new(Instant::now()),
            checking: AtomicBool::new(false),
            probed: AtomicBool::new(false),
        }
    }

    /// The next healthy server in round-robin order. When every server is marked down, the
    /// rotation goes on over all of them: a failing health check must not turn a degraded
    /// backend into a certain 502.
    pub fn select(&self) -> &Backend {
        let n = self.servers.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        (0..n)
            .map(|i| &self.servers[(start + i) % n])
            .find(|b| b.is_healthy())
            .unwrap_or(&self.servers[start])
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
        for b in &self.servers {
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

/// Runs the health checks of whatever config is live.
pub struct HealthChecks {
    pub rules: Arc<ArcSwap<Rules>>,
}

/// How often the scheduler looks for due checks; each upstream has its own interval.
const TICK: Duration = Duration::from_millis(100);

#[async_trait]
impl BackgroundService for HealthChecks {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            let rules = self.rules.load_full();
            for up in rules.upstreams.iter().filter(|u| u.health.is_some()) {
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

    fn upstream(addrs: &[&str]) -> Upstream {
        let t = Duration::from_secs(1);
        let servers = addrs
            .iter()
            .map(|a| (a.to_string(), a.parse().unwrap()))
            .collect();
        Upstream::new(
            "u".into(),
            servers,
            Timeouts {
                connect: t,
                read: t,
                write: t,
                idle: t,
            },
            None,
            None,
        )
    }

    #[test]
    fn round_robin_skips_unhealthy_servers_and_fails_open() {
        let u = upstream(&["127.0.0.1:1", "127.0.0.1:2"]);
        u.servers[1].healthy.store(false, Ordering::Relaxed);
        assert!((0..4).all(|_| u.select().addr.port() == 1));
        u.servers[0].healthy.store(false, Ordering::Relaxed);
        let ports: Vec<u16> = (0..4).map(|_| u.select().addr.port()).collect();
        assert!(
            ports.contains(&1) && ports.contains(&2),
            "all down: rotate over all: {ports:?}"
        );
    }

    #[test]
    fn a_reload_keeps_what_health_checks_learned() {
        let old = upstream(&["127.0.0.1:1", "127.0.0.1:2"]);
        old.servers[1].healthy.store(false, Ordering::Relaxed);
        let new = upstream(&["127.0.0.1:2", "127.0.0.1:3"]);
        new.inherit_health(&old);
        assert!(
            !new.servers[0].is_healthy(),
            "127.0.0.1:2 was down and stays down"
        );
        assert!(new.servers[1].is_healthy(), "a new server starts healthy");
    }
}
