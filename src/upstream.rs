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
