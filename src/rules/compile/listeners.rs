//! `listen`, `admin`, `tls` and `server`: the addresses, certificates and process settings.

use super::*;

/// The proxy's listen addresses, the admin listener's, and the HTTPS listeners.
type Listeners = (Vec<SocketAddr>, Option<SocketAddr>, Vec<TlsListener>);

impl Compiler<'_> {
    pub(super) fn listeners(&self) -> Result<Listeners, ConfigError> {
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

        let admin = self.admin(&listen)?;
        let tls_listeners = self.tls_listeners(&listen, admin)?;
        Ok((listen, admin, tls_listeners))
    }

    /// `admin.listen`: an address of its own.
    fn admin(&self, listen: &[SocketAddr]) -> Result<Option<SocketAddr>, ConfigError> {
        let cfg = &self.loaded.config;
        let root = YamlPath::root();
        Ok(match &cfg.admin {
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
        })
    }

    /// `tls`: each HTTPS listener on an address of its own, with its certificate as resolved.
    fn tls_listeners(
        &self,
        listen: &[SocketAddr],
        admin: Option<SocketAddr>,
    ) -> Result<Vec<TlsListener>, ConfigError> {
        let cfg = &self.loaded.config;
        let root = YamlPath::root();
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
            let cert = self.resolved.cert(i).map_err(|why| {
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
        Ok(tls_listeners)
    }

    pub(super) fn server(&mut self) -> Result<ServerSettings, ConfigError> {
        let cfg = &self.loaded.config;
        let root = YamlPath::root();
        let server_path = root.key("server");
        if cfg.server.threads == 0 {
            return Err(self.err(
                &server_path.key("threads"),
                "threads is 0".into(),
                "use 1 or more",
            ));
        }
        // Its directory was checked by resolve (`upgrade_sock::check_config`).
        self.resolved
            .upgrade_sock()
            .map_err(|(why, fix)| self.err(&server_path.key("upgrade_sock"), why, fix))?;
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
                max_head: self.head_size(
                    &server_path.key("client_max_head_size"),
                    cfg.server.client_max_head_size,
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
            trusted_proxies: self.trusted_proxies(&server_path.key("trusted_proxies"))?,
        };
        if server.ambiguous_paths == AmbiguousPaths::Keep {
            self.warn(
                &server_path.key("ambiguous_paths"),
                "ambiguous_paths is keep: a path such as /public/..%2F..%2Fapi/x is routed as /api/x but forwarded as sent, so a backend that resolves it differently serves it under another route's rules".into(),
                "use reject (the default) or forward_normalized",
            );
        }

        Ok(server)
    }

    /// `server.trusted_proxies`: addresses or CIDRs; one that trusts every address is warned
    /// about (any client could then say who it is).
    fn trusted_proxies(&mut self, path: &YamlPath) -> Result<TrustedProxies, ConfigError> {
        let mut nets = Vec::new();
        for (i, entry) in self.loaded.config.server.trusted_proxies.iter().enumerate() {
            let Some(net) = TrustedProxies::parse_entry(entry.trim()) else {
                return Err(self.err(
                    &path.index(i),
                    format!("`{entry}` is not an IP address or CIDR"),
                    "write an address (10.0.0.5, fd00::5) or a CIDR (10.0.0.0/8, fd00::/8); names are not resolved here",
                ));
            };
            if net.prefix_len() == 0 {
                self.warn(
                    &path.index(i),
                    format!("`{entry}` trusts every client: any client can set the X-Forwarded-For and X-Real-IP a backend sees"),
                    "list only the addresses of the proxies in front of crossgate",
                );
            }
            nets.push(net);
        }
        Ok(TrustedProxies::new(nets))
    }
}
