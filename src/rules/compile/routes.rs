//! `routes`: host and path matchers, the upstream, the policy and the channels of each.

use super::*;

impl Compiler<'_> {
    pub(super) fn routes(
        &mut self,
        upstreams: &BTreeMap<String, Arc<Upstream>>,
        policies: &BTreeMap<String, Arc<CorsPolicy>>,
        used: &mut HashSet<String>,
    ) -> Result<Vec<Route>, ConfigError> {
        let cfg = &self.loaded.config;
        let root = YamlPath::root();

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
            if r.name == "none" || r.name == "beacon" {
                return Err(self.err(
                    &path.key("name"),
                    format!("the route name {:?} is reserved", r.name),
                    "choose another name: the metrics label requests with no route `none` and the beacons' `beacon`",
                ));
            }
            if !names.insert(r.name.as_str()) {
                return Err(self.err(
                    &path.key("name"),
                    format!("duplicate route name {:?}", r.name),
                    "give every route its own name (it labels logs and metrics)",
                ));
            }
            routes.push(self.route(&path, r, upstreams, policies, used)?);
        }

        Ok(routes)
    }

    /// One route: its upstream, policy and channels, then its matchers.
    fn route(
        &mut self,
        path: &YamlPath,
        r: &FileRoute,
        upstreams: &BTreeMap<String, Arc<Upstream>>,
        policies: &BTreeMap<String, Arc<CorsPolicy>>,
        used: &mut HashSet<String>,
    ) -> Result<Route, ConfigError> {
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
            Some(c) => Some(self.cors_ref(&path.key("cors"), c, policies, used)?),
        };
        let jsonp = match &r.jsonp {
            None => None,
            Some(j) => Some(self.jsonp(path, j, cors.as_deref())?),
        };
        let websocket = match &r.websocket {
            None => None,
            Some(ws) => Some(self.websocket(path, r, ws, cors.as_deref())?),
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
            Some(_) => {
                Some(self.positive(&path.key("read_timeout"), r.read_timeout, Duration::ZERO)?)
            }
        };
        let matcher = self.path(&path.key("path"), r.path.as_ref())?;
        let strip_prefix = match (r.strip_prefix, &matcher) {
            (false, _) => None,
            (true, PathMatch::Prefix(p)) if p.bytes().all(is_plain_path_byte) => {
                Some(p.trim_end_matches('/').to_owned()).filter(|p| !p.is_empty())
            }
            (true, PathMatch::Prefix(p)) => {
                return Err(self.err(
                    &path.key("path"),
                    format!("strip_prefix on the prefix {p:?}, which has bytes a path is sent with percent-encoded"),
                    "use a prefix of letters, digits, / and -._~ only",
                ))
            }
            (true, _) => {
                return Err(self.err(
                    &path.key("strip_prefix"),
                    "strip_prefix needs a prefix path: an exact or regex path has no prefix to take off".into(),
                    "write path: /prefix (or {prefix: /prefix}) on this route, or remove strip_prefix",
                ))
            }
        };
        if strip_prefix.is_some()
            && self.loaded.config.server.ambiguous_paths == AmbiguousPaths::Keep
        {
            return Err(self.err(
                &path.key("strip_prefix"),
                "strip_prefix with server.ambiguous_paths: keep: the path sent as the client wrote it may not start with the prefix it was routed by".into(),
                "use ambiguous_paths: reject (the default) or forward_normalized",
            ));
        }
        let upstream_host =
            match &r.upstream_host {
                None => None,
                Some(h) if is_host_value(h) => Some(h.clone()),
                Some(h) => return Err(self.err(
                    &path.key("upstream_host"),
                    format!("invalid upstream_host {h:?}"),
                    "write a host with an optional port, such as api.internal or api.internal:8080",
                )),
            };
        let max_body_size = match r.max_body_size {
            Some(s) => s.0,
            None => self.loaded.config.server.client_max_body_size.0,
        };
        Ok(Route {
            metrics: std::sync::OnceLock::new(),
            read_timeout,
            websocket,
            sse,
            name: r.name.clone(),
            host: self.host(&path.key("host"), r.host.as_deref())?,
            path: matcher,
            upstream,
            cors,
            jsonp,
            upstream_host,
            strip_prefix,
            max_body_size: (max_body_size > 0).then_some(max_body_size),
        })
    }

    /// A route's `websocket`: the Origin check needs the route's policy, and one that allows any
    /// origin only by an explicit opt-in.
    fn websocket(
        &mut self,
        path: &YamlPath,
        r: &FileRoute,
        ws: &FileWebSocket,
        cors: Option<&CorsPolicy>,
    ) -> Result<WebSocketRoute, ConfigError> {
        if cors.is_none() {
            return Err(self.err(&path.key("websocket"), "websocket needs the route's cors policy: browsers do not apply CORS to WebSockets, so crossgate checks the upgrade's Origin against its allow_origins".into(), "add cors: to this route (a policy name or an inline policy)"));
        }
        let any = cors.is_some_and(|p| matches!(p.origins, AllowOrigin::Any));
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
        Ok(WebSocketRoute {
            idle_timeout: self.positive(
                &path.key("websocket").key("idle_timeout"),
                ws.idle_timeout,
                Duration::from_secs(300),
            )?,
            allow_without_origin: ws.without_origin == Permission::Allow,
        })
    }

    pub(super) fn host(
        &self,
        path: &YamlPath,
        host: Option<&str>,
    ) -> Result<HostMatch, ConfigError> {
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

    pub(super) fn path(
        &self,
        yaml: &YamlPath,
        path: Option<&FilePath>,
    ) -> Result<PathMatch, ConfigError> {
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
}

/// A byte a path prefix may have to be stripped from the path as sent (where none is
/// percent-encoded: unreserved characters and `/`).
fn is_plain_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"/-._~".contains(&b)
}

/// A `Host` value: a name or address with an optional port, no space, path or user.
fn is_host_value(h: &str) -> bool {
    !h.is_empty()
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b))
}
