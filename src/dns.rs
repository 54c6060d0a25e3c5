//! Upstream names that follow DNS. A server written as a name (`api.internal:8080`) is resolved
//! at load, then again each time its answer's TTL runs out (clamped between `dns.min_ttl` and
//! `dns.max_ttl`), so that cloud load balancers and Kubernetes headless services whose
//! addresses change stay reachable. IP literals are never re-resolved.
//!
//! What changes between two answers: new addresses join the rotation (healthy, as a server of a
//! fresh config does); removed ones leave it, which drains them: requests already on them
//! finish on the connection they have, and `select` no longer hands them out. Addresses that stay
//! keep their `Backend`, health and all. A failed or empty answer keeps the last good one (an
//! upstream never loses every server to a resolver outage) and is counted in
//! `crossgate_dns_resolutions_total{result="error"}`; the name is tried again after `min_ttl`.
//!
//! hickory-resolver does the lookups because the std resolver hides TTLs. Its cache is off: the
//! schedule here is the cache, and a cached answer would outlive `max_ttl`.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::TokioResolver;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::metrics::Metrics;
use crate::upstream::LiveUpstreams;

/// The `dns:` section, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSettings {
    /// None: the system's resolvers (/etc/resolv.conf).
    pub resolver: Option<SocketAddr>,
    /// A TTL below this (0 included) is raised to it: a resolver outage or a TTL of 0 does not
    /// turn into a query per tick.
    pub min_ttl: Duration,
    /// A TTL above this is lowered to it: an address change is seen within `max_ttl`.
    pub max_ttl: Duration,
}

impl Default for DnsSettings {
    fn default() -> Self {
        DnsSettings {
            resolver: None,
            min_ttl: Duration::from_secs(5),
            max_ttl: Duration::from_secs(300),
        }
    }
}

/// One resolver per compiled config, shared by its upstreams.
pub struct Dns {
    pub settings: DnsSettings,
    /// Built on first use, in the runtime that then keeps using it (the background service).
    resolver: OnceLock<Option<TokioResolver>>,
}

impl Dns {
    pub fn new(settings: DnsSettings) -> Dns {
        Dns {
            settings,
            resolver: OnceLock::new(),
        }
    }

    /// Resolves `host` to the addresses it has now and how long they may be used.
    pub async fn lookup(&self, host: &str) -> Result<Answer, String> {
        let resolver = self.resolver.get_or_init(|| match build(&self.settings) {
            Ok(r) => Some(r),
            Err(why) => {
                tracing::error!(%why, "no DNS resolver: upstream names are not re-resolved");
                None
            }
        });
        match resolver {
            Some(r) => lookup(r, host, &self.settings).await,
            None => Err("no DNS resolver".into()),
        }
    }
}

/// Addresses of a name and how long they hold (already clamped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub addrs: Vec<IpAddr>,
    pub ttl: Duration,
}

/// Raises `ttl` to `min`, lowers it to `max`.
pub fn clamp_ttl(ttl: Duration, min: Duration, max: Duration) -> Duration {
    ttl.max(min).min(max)
}

/// What goes from `old` to `new`: (added, removed), each in the order given.
pub fn diff(old: &[SocketAddr], new: &[SocketAddr]) -> (Vec<SocketAddr>, Vec<SocketAddr>) {
    let added = new.iter().filter(|a| !old.contains(a)).copied().collect();
    let removed = old.iter().filter(|a| !new.contains(a)).copied().collect();
    (added, removed)
}

fn build(settings: &DnsSettings) -> Result<TokioResolver, String> {
    let mut builder = match settings.resolver {
        Some(addr) => {
            let servers = NameServerConfigGroup::from_ips_clear(&[addr.ip()], addr.port(), true);
            TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, vec![], servers),
                TokioConnectionProvider::default(),
            )
            .with_options(ResolverOpts::default())
        }
        None => TokioResolver::builder_tokio()
            .map_err(|e| format!("cannot read the system's resolver config: {e}"))?,
    };
    let opts = builder.options_mut();
    opts.cache_size = 0;
    opts.timeout = Duration::from_secs(2);
    Ok(builder.build())
}

/// The longest a lookup may take, retries included. hickory tries a silent server 2 s at a
/// time, for each record type and attempt (12 s measured): a resolver that is down should cost
/// less than that before the name is counted as failed and tried again after min_ttl.
const LOOKUP_LIMIT: Duration = Duration::from_secs(5);

async fn lookup(r: &TokioResolver, host: &str, s: &DnsSettings) -> Result<Answer, String> {
    let found = tokio::time::timeout(LOOKUP_LIMIT, r.lookup_ip(host))
        .await
        .map_err(|_| format!("no answer within {LOOKUP_LIMIT:?}"))?
        .map_err(|e| e.to_string())?;
    let mut addrs: Vec<IpAddr> = Vec::new();
    for ip in found.iter() {
        if !addrs.contains(&ip) {
            addrs.push(ip);
        }
    }
    if addrs.is_empty() {
        return Err("the name resolves to no address".into());
    }
    let ttl = found
        .as_lookup()
        .records()
        .iter()
        .map(|r| Duration::from_secs(u64::from(r.ttl())))
        .min()
        .unwrap_or_default();
    Ok(Answer {
        addrs,
        ttl: clamp_ttl(ttl, s.min_ttl, s.max_ttl),
    })
}

/// A name to follow: its host, port, and when to resolve it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Followed {
    pub host: String,
    pub port: u16,
    pub ttl: Duration,
}

/// A server as written in `upstreams.*.servers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server<'a> {
    /// An IP literal: used as written, never resolved.
    Addr(SocketAddr),
    /// A name, resolved at load and followed.
    Name { host: &'a str, port: u16 },
}

/// What a server `host:port` is, without looking anything up.
pub fn parse_server(s: &str) -> Result<Server<'_>, String> {
    if let Ok(a) = s.parse() {
        return Ok(Server::Addr(a));
    }
    if let Some((scheme, _)) = s.split_once("://") {
        // Not a name that failed to resolve: a URL where host:port belongs.
        return Err(format!(
            "a URL, not host:port: write it without {scheme}:// (and without a path); an HTTPS upstream takes upstreams.NAME.tls"
        ));
    }
    s.rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
        .map(|(host, port)| Server::Name { host, port })
        .ok_or_else(|| "invalid socket address: write host:port".into())
}

/// Resolves a server written `host:port` at load: its addresses, and for a name what to
/// follow. IPv4 is preferred when a name has both. With no `dns.resolver` the system's
/// resolver answers, as before names followed DNS (it shows no TTL: the name is resolved
/// again after min_ttl).
pub fn resolve_server(
    s: &str,
    dns: &DnsSettings,
) -> Result<(Vec<SocketAddr>, Option<Followed>), String> {
    let (host, port) = match parse_server(s)? {
        Server::Addr(a) => return Ok((vec![a], None)),
        Server::Name { host, port } => (host, port),
    };
    let (all, ttl) = if dns.resolver.is_some() {
        let answer = resolve_at_load(dns, host)?;
        let all = answer.addrs.iter().map(|&ip| SocketAddr::new(ip, port));
        (all.collect::<Vec<_>>(), answer.ttl)
    } else {
        let all = std::net::ToSocketAddrs::to_socket_addrs(s).map_err(|e| e.to_string())?;
        (all.collect(), dns.min_ttl)
    };
    let want_v4 = all.iter().any(|a| a.is_ipv4());
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for a in all.into_iter().filter(|a| a.is_ipv4() == want_v4) {
        if !addrs.contains(&a) {
            addrs.push(a);
        }
    }
    if addrs.is_empty() {
        return Err("the name resolves to no address".into());
    }
    let host = host.to_owned();
    Ok((addrs, Some(Followed { host, port, ttl })))
}

/// The first resolution, while the config is compiled (which is not async, and may run inside
/// a runtime or not): a resolver of its own on a thread of its own.
fn resolve_at_load(settings: &DnsSettings, host: &str) -> Result<Answer, String> {
    let settings = settings.clone();
    let host = host.to_owned();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let r = build(&settings)?;
            lookup(&r, &host, &settings).await
        })
    })
    .join()
    .unwrap_or_else(|_| Err("the DNS lookup panicked".into()))
}

/// Re-resolves the names of whatever config is live, each when its TTL runs out.
pub struct DnsRefresh<R> {
    pub rules: Arc<ArcSwap<R>>,
    pub metrics: Arc<Metrics>,
}

/// How often the scheduler looks for names that are due.
const TICK: Duration = Duration::from_millis(100);

#[async_trait]
impl<R: LiveUpstreams> BackgroundService for DnsRefresh<R> {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            let rules = self.rules.load_full();
            for up in rules.upstreams().iter().filter(|u| u.follows_dns()) {
                tokio::spawn(up.clone().refresh_dns_if_due(self.metrics.clone()));
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

    #[test]
    fn a_ttl_is_raised_to_the_floor_and_lowered_to_the_ceiling() {
        let (min, max) = (Duration::from_secs(5), Duration::from_secs(300));
        assert_eq!(
            clamp_ttl(Duration::ZERO, min, max),
            min,
            "a TTL of 0 is floored"
        );
        assert_eq!(
            clamp_ttl(Duration::from_secs(60), min, max),
            Duration::from_secs(60)
        );
        assert_eq!(clamp_ttl(Duration::from_secs(86400), min, max), max);
    }

    #[test]
    fn an_ip_literal_is_used_as_written_and_never_followed() {
        let d = DnsSettings::default();
        let (addrs, followed) = resolve_server("127.0.0.1:80", &d).unwrap();
        assert_eq!(addrs, ["127.0.0.1:80".parse::<SocketAddr>().unwrap()]);
        assert_eq!(followed, None);
        let (_, followed) = resolve_server("[::1]:80", &d).unwrap();
        assert_eq!(followed, None);
    }

    #[test]
    fn a_name_is_followed_and_without_a_resolver_first_re_resolved_after_min_ttl() {
        let d = DnsSettings::default();
        let (addrs, followed) = resolve_server("localhost:8080", &d).unwrap();
        assert!(
            addrs.iter().all(|a| a.is_ipv4() && a.port() == 8080),
            "{addrs:?}"
        );
        let f = followed.unwrap();
        assert_eq!(
            (f.host.as_str(), f.port, f.ttl),
            ("localhost", 8080, d.min_ttl)
        );
        assert!(resolve_server("localhost", &d)
            .unwrap_err()
            .contains("host:port"));
    }

    #[test]
    fn diff_names_the_addresses_that_come_and_go_and_not_those_that_stay() {
        let a: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:80".parse().unwrap();
        let c: SocketAddr = "10.0.0.3:80".parse().unwrap();
        assert_eq!(diff(&[a, b], &[b, c]), (vec![c], vec![a]));
        assert_eq!(
            diff(&[a, b], &[b, a]),
            (vec![], vec![]),
            "order is not a change"
        );
        assert_eq!(diff(&[], &[a]), (vec![a], vec![]));
    }
}
