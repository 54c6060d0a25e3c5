//! `dns` and `upstreams`: servers, timeouts, health checks and TLS to the backends.

use super::*;

/// Each server as written with one of its addresses, and each name to follow.
type Servers = (
    Vec<(String, SocketAddr)>,
    Vec<(String, crate::dns::Followed)>,
);

impl Compiler<'_> {
    pub(super) fn upstreams(&mut self) -> Result<BTreeMap<String, Arc<Upstream>>, ConfigError> {
        let cfg = &self.loaded.config;
        let root = YamlPath::root();
        let dns = Arc::new(Dns::new(dns_settings(self.loaded)?));
        let mut upstreams = BTreeMap::new();
        for (name, up) in &cfg.upstreams {
            let u = self.upstream(&root.key("upstreams").key(name), name, up, &dns)?;
            upstreams.insert(name.clone(), Arc::new(u));
        }

        Ok(upstreams)
    }

    pub(super) fn upstream(
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
        let (servers, names) = self.servers(path, name, up)?;
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
            Some(t) => Some(self.upstream_tls(&path.key("tls"), name, up, t)?),
        };
        Ok(
            Upstream::new(name.to_owned(), servers, timeouts, health, tls)
                .follow_dns(names, dns.clone()),
        )
    }

    /// Each server's addresses as resolved, with the written form, and the names to follow.
    fn servers(
        &mut self,
        path: &YamlPath,
        name: &str,
        up: &FileUpstream,
    ) -> Result<Servers, ConfigError> {
        let mut servers = Vec::new();
        let mut names = Vec::new();
        for (i, s) in up.servers.iter().enumerate() {
            let p = path.key("servers").index(i);
            let (addrs, followed) = self.resolved.server(name, i).map_err(|why| {
                self.err(
                    &p,
                    format!("cannot use server {s:?}: {why}"),
                    "write host:port with a name that resolves here, such as 127.0.0.1:9001",
                )
            })?;
            if let Some(why) = self.resolved.unresolved(name, i).map(str::to_owned) {
                self.warn(
                    &p,
                    format!(
                        "server {s:?} does not resolve now ({why}): upstream {name} has no address from it yet; requests that need it get a 502 (with CORS) until the name resolves, tried again every dns.min_ttl"
                    ),
                    "check the name; if its DNS record (a Kubernetes Service) is still being created, nothing: it is picked up when it resolves",
                );
            }
            servers.extend(addrs.into_iter().map(|a| (s.clone(), a)));
            names.extend(followed.map(|n| (s.clone(), n)));
        }
        Ok((servers, names))
    }

    /// `tls` to the upstream: the name verified (never empty by accident) and the CA bundle.
    fn upstream_tls(
        &mut self,
        tp: &YamlPath,
        name: &str,
        up: &FileUpstream,
        t: &FileUpstreamTls,
    ) -> Result<UpstreamTls, ConfigError> {
        let sni = match &t.sni {
            // pingora skips every check for an empty name: never by accident.
            Some(s) if s.is_empty() => {
                return Err(self.err(
                    &tp.key("sni"),
                    "sni is empty, which would turn certificate verification off".into(),
                    "give the upstream's host name, or set verify: false if that is really meant",
                ));
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
            self.warn(
                &tp.key("verify"),
                "verify: false: anyone on the path to the upstream can read and change its traffic"
                    .into(),
                "give the upstream's CA with ca_file instead",
            );
        }
        let ca = match &t.ca_file {
            None => None,
            Some(_) => Some(self.resolved.ca(name).map_err(|why| {
                self.err(
                    &tp.key("ca_file"),
                    why,
                    "give a PEM file of CA certificates",
                )
            })?),
        };
        Ok(UpstreamTls { sni, verify, ca })
    }

    pub(super) fn health(
        &mut self,
        path: &YamlPath,
        hc: &FileHealthCheck,
    ) -> Result<HealthSpec, ConfigError> {
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
}

/// The `dns:` section, compiled. A function of the file alone: `rules::resolve` looks
/// the servers up with the same settings.
pub(in crate::rules) fn dns_settings(loaded: &Loaded) -> Result<DnsSettings, ConfigError> {
    let path = YamlPath::root().key("dns");
    let err = |p: &YamlPath, message: String, fix: &str| loaded.error_at(p, message, fix.into());
    let mut s = DnsSettings::default();
    let Some(d) = loaded.config.dns.as_ref() else {
        return Ok(s);
    };
    if let Some(r) = &d.resolver {
        s.resolver = Some(
            r.parse::<SocketAddr>()
                .or_else(|_| r.parse::<std::net::IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                .map_err(|_| {
                    err(
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
        return Err(err(
            &path.key("min_ttl"),
            "min_ttl is 0, which would re-resolve a name with a TTL of 0 on every tick".into(),
            "give a floor such as 5s",
        ));
    }
    if s.min_ttl > s.max_ttl {
        return Err(err(
            &path.key("max_ttl"),
            format!("max_ttl {:?} is below min_ttl {:?}", s.max_ttl, s.min_ttl),
            "make max_ttl at least min_ttl (defaults: 5s and 300s)",
        ));
    }
    Ok(s)
}
