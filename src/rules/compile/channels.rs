//! The channels' settings: `jsonp` on routes, `beacons`, `bridge`.

use super::*;

impl Compiler<'_> {
    pub(super) fn jsonp(
        &self,
        route: &YamlPath,
        j: &FileJsonp,
        cors: Option<&CorsPolicy>,
    ) -> Result<JsonpRoute, ConfigError> {
        let path = route.key("jsonp");
        let Some(policy) = cors else {
            return Err(self.err(&path, "jsonp needs the route's cors policy: its allow_origins decides which pages may load the script".into(), "add cors: to this route (a policy name or an inline policy)"));
        };
        if policy.credentials && !j.acknowledge_credentials {
            return Err(self.err(
                &path,
                format!("jsonp on a route whose CORS policy ({}) allows credentials: a <script> request always carries the user's cookies, and only the Referer check stands between them and any page", policy.name),
                "serve JSONP on a route whose policy has allow_credentials: false, or set jsonp.acknowledge_credentials: true if the responses hold nothing user-specific",
            ));
        }
        let param = j
            .callback_param
            .clone()
            .unwrap_or_else(|| "callback".into());
        if param.is_empty()
            || param == "_"
            || !param
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        {
            return Err(self.err(
                &path.key("callback_param"),
                format!("invalid callback_param {param:?}"),
                "use a plain query parameter name such as callback or jsonp",
            ));
        }
        Ok(JsonpRoute {
            param,
            envelope: j.envelope,
            allow_without_referer: j.without_referer == Permission::Allow,
            callback_pattern: j.callback_pattern,
        })
    }

    pub(super) fn beacons(
        &self,
        upstreams: &BTreeMap<String, Arc<Upstream>>,
    ) -> Result<Vec<Beacon>, ConfigError> {
        let cfg = &self.loaded.config;
        let root = YamlPath::root();
        let mut beacons = Vec::new();
        for (i, b) in cfg.beacons.iter().enumerate() {
            let path = root.key("beacons").index(i);
            if !b.path.starts_with('/') {
                return Err(self.err(
                    &path.key("path"),
                    format!("beacon path {:?} does not start with /", b.path),
                    format!("write \"/{}\"", b.path),
                ));
            }
            if beacons.iter().any(|o: &Beacon| o.name == b.name) {
                return Err(self.err(
                    &path.key("name"),
                    format!("duplicate beacon name {:?}", b.name),
                    "give every beacon its own name (it labels logs and metrics)",
                ));
            }
            let forward = match &b.forward {
                None => None,
                Some(f) => Some(beacon::Forward {
                    upstream: upstreams.get(&f.upstream).cloned().ok_or_else(|| {
                        self.err(
                            &path.key("forward").key("upstream"),
                            format!("unknown upstream {:?}", f.upstream),
                            format!(
                                "name one of the upstreams: {}",
                                closest(&f.upstream, upstreams.keys())
                            ),
                        )
                    })?,
                    path: match &f.path {
                        Some(p) if !p.starts_with('/') => {
                            return Err(self.err(
                                &path.key("forward").key("path"),
                                format!("path {p:?} does not start with /"),
                                format!("write \"/{p}\""),
                            ))
                        }
                        Some(p) => p.clone(),
                        None => b.path.clone(),
                    },
                }),
            };
            beacons.push(Beacon {
                name: b.name.clone(),
                host: self.host(&path.key("host"), b.host.as_deref())?,
                path: b.path.clone(),
                max_fields: b.max_fields.unwrap_or(32),
                forward,
            });
        }
        Ok(beacons)
    }

    pub(super) fn bridge(
        &mut self,
        policies: &BTreeMap<String, Arc<CorsPolicy>>,
        used: &mut HashSet<String>,
    ) -> Result<Option<Bridge>, ConfigError> {
        let cfg = &self.loaded.config;
        let root = YamlPath::root();
        let bridge = match &cfg.bridge {
            None => None,
            Some(b) => {
                let path = root.key("bridge");
                if !b.path.starts_with('/') {
                    return Err(self.err(
                        &path.key("path"),
                        format!("bridge path {:?} does not start with /", b.path),
                        format!("write \"/{}\"", b.path),
                    ));
                }
                for (i, p) in b.allow_paths.iter().enumerate() {
                    if !p.starts_with('/') {
                        return Err(self.err(
                            &path.key("allow_paths").index(i),
                            format!("path {p:?} does not start with /"),
                            format!("write \"/{p}\""),
                        ));
                    }
                }
                if b.allow_paths.is_empty() {
                    self.warn(
                        &path.key("allow_paths"),
                        "allow_paths is empty: the bridge will refuse every request".into(),
                        "list the path prefixes pages may fetch, such as [/api/]",
                    );
                }
                let policy = self.cors_ref(&path.key("cors"), &b.cors, policies, used)?;
                Some(Bridge::new(&b.path, &policy, &b.allow_paths).map_err(|why| {
                    self.err(&path.key("cors"), why, "give the bridge a policy with exact origins and https://*.example.com wildcards only")
                })?)
            }
        };
        Ok(bridge)
    }
}
