//! `cors_policies` and inline policies: every header value built once.

use super::*;

impl Compiler<'_> {
    pub(super) fn policies(&mut self) -> Result<BTreeMap<String, Arc<CorsPolicy>>, ConfigError> {
        let cfg = &self.loaded.config;
        let root = YamlPath::root();
        let mut policies = BTreeMap::new();
        // Enforcing policies first: report-only ones name one of them as their fallback.
        for report_only in [false, true] {
            for (name, p) in cfg
                .cors_policies
                .iter()
                .filter(|(_, p)| (p.mode == PolicyMode::ReportOnly) == report_only)
            {
                let compiled = self.policy(
                    &root.key("cors_policies").key(name),
                    name.clone(),
                    p,
                    &policies,
                )?;
                policies.insert(name.clone(), Arc::new(compiled));
            }
        }
        Ok(policies)
    }

    pub(super) fn cors_ref(
        &mut self,
        path: &YamlPath,
        c: &CorsRef,
        policies: &BTreeMap<String, Arc<CorsPolicy>>,
        used: &mut HashSet<String>,
    ) -> Result<Arc<CorsPolicy>, ConfigError> {
        match c {
            CorsRef::Named(n) => {
                used.insert(n.clone());
                policies.get(n).cloned().ok_or_else(|| {
                    self.err(
                        path,
                        format!("unknown CORS policy {n:?}"),
                        format!(
                            "name a policy from cors_policies ({}), or write the policy inline",
                            closest(n, policies.keys())
                        ),
                    )
                })
            }
            CorsRef::Inline(p) => Ok(Arc::new(self.policy(
                path,
                path.to_string(),
                p,
                policies,
            )?)),
        }
    }

    pub(super) fn policy(
        &mut self,
        path: &YamlPath,
        name: String,
        p: &FileCorsPolicy,
        named: &BTreeMap<String, Arc<CorsPolicy>>,
    ) -> Result<CorsPolicy, ConfigError> {
        let report_only = self.report_only(path, p, named)?;
        let origins = self.allow_origins(path, p)?;
        let methods = self.methods(path, p)?;

        let headers = match &p.allow_headers {
            None => Some(Vec::new()),
            Some(FileAllowHeaders::Mirror) => None,
            Some(FileAllowHeaders::List(hs)) => Some(self.header_names(
                &path.key("allow_headers"),
                hs,
                false,
                "use `allow_headers: mirror` to allow whatever the browser asks for",
            )?),
        };
        let expose = self.header_names(
            &path.key("expose_headers"),
            &p.expose_headers,
            !p.allow_credentials,
            "with allow_credentials, `*` is a literal name to browsers: list the headers to expose",
        )?;

        self.lint_max_age(path, p);

        Ok(CorsPolicy::new(PolicySpec {
            name,
            origins,
            methods,
            headers,
            expose,
            credentials: p.allow_credentials,
            max_age: p.max_age,
            private_network: p.allow_private_network,
            upstream_headers: p.upstream_headers,
            report_only,
        }))
    }

    /// `mode` and `report_only_fallback`: the enforcing policy a report-only one falls back to.
    fn report_only(
        &mut self,
        path: &YamlPath,
        p: &FileCorsPolicy,
        named: &BTreeMap<String, Arc<CorsPolicy>>,
    ) -> Result<Option<Arc<CorsPolicy>>, ConfigError> {
        Ok(match (p.mode, &p.report_only_fallback) {
            (PolicyMode::Enforce, None) => None,
            (PolicyMode::Enforce, Some(_)) => {
                self.warn(
                    &path.key("report_only_fallback"),
                    "report_only_fallback is ignored in mode enforce".into(),
                    "remove it, or set mode: report_only",
                );
                None
            }
            (PolicyMode::ReportOnly, None) => {
                return Err(self.err(&path.key("mode"), "mode report_only without report_only_fallback: nothing would serve the requests this policy would refuse".into(), "name the policy to serve them with, such as report_only_fallback: legacy-permissive"));
            }
            (PolicyMode::ReportOnly, Some(f)) => match named.get(f) {
                Some(fallback) if fallback.report_only.is_none() => {
                    self.fallbacks.insert(f.clone());
                    Some(fallback.clone())
                }
                Some(_) => {
                    return Err(self.err(
                        &path.key("report_only_fallback"),
                        format!("the fallback policy {f:?} is itself report_only"),
                        "name a policy in mode enforce",
                    ))
                }
                None => {
                    return Err(self.err(
                        &path.key("report_only_fallback"),
                        format!("unknown CORS policy {f:?}"),
                        format!(
                            "name a policy from cors_policies ({})",
                            closest(f, named.keys())
                        ),
                    ))
                }
            },
        })
    }

    /// `allow_origins`: any, or a list of exact origins, wildcards and anchored regexes.
    fn allow_origins(
        &mut self,
        path: &YamlPath,
        p: &FileCorsPolicy,
    ) -> Result<AllowOrigin, ConfigError> {
        Ok(match &p.allow_origins {
            FileOrigins::Any if p.allow_credentials => {
                return Err(self.err(
                    &path.key("allow_credentials"),
                    "allow_credentials: true with allow_origins: any: browsers refuse `Access-Control-Allow-Origin: *` on credentialed requests, and echoing every origin would let any site act as the user".into(),
                    "list the origins that may send credentials in allow_origins (exact, https://*.example.com or {regex: ...}), or set allow_credentials: false",
                ));
            }
            FileOrigins::Any => AllowOrigin::Any,
            FileOrigins::List(entries) => {
                if entries.is_empty() {
                    self.warn(
                        &path.key("allow_origins"),
                        "allow_origins is empty: every cross-origin request is refused".into(),
                        "list the origins to allow",
                    );
                }
                let mut list = OriginList::default();
                for (i, e) in entries.iter().enumerate() {
                    let ep = path.key("allow_origins").index(i);
                    self.push_origin(&ep, e, p.allow_credentials, &mut list)?;
                }
                AllowOrigin::List(list)
            }
        })
    }

    /// One entry of `allow_origins`: an exact origin, a wildcard or an anchored regex.
    fn push_origin(
        &mut self,
        ep: &YamlPath,
        e: &FileOrigin,
        credentials: bool,
        list: &mut OriginList,
    ) -> Result<(), ConfigError> {
        match e {
            FileOrigin::Pattern(s) if s.contains('*') => {
                if s.trim() == "*" {
                    return Err(self.err(
                        ep,
                        "`*` inside the list".into(),
                        "write allow_origins: any (without a list) to allow every origin",
                    ));
                }
                let w = Wildcard::parse(s).map_err(|e| self.err(ep, e.message, e.fix))?;
                list.push_wildcard(w, s.clone());
            }
            FileOrigin::Pattern(s) => {
                let c = canonical_exact(s).map_err(|e| self.err(ep, e.message, e.fix))?;
                list.push_exact(c, s.clone());
            }
            FileOrigin::Regex(r, dot_acknowledged) => {
                let re =
                    anchored_regex(r).map_err(|e| self.err(&ep.key("regex"), e.message, e.fix))?;
                if let (Some(_), false) = (unescaped_host_dot(r), dot_acknowledged) {
                    let why = format!("regex {r:?} has an unescaped `.` in its host: `.` matches any character, so `https://[a-z]+.shop.test` also allows `https://evilxshop.test`, a domain anyone can register");
                    let fix = "escape it (\\.); if any character is meant, add allow_unescaped_dot: true to this entry";
                    if credentials {
                        return Err(self.err(
                            &ep.key("regex"),
                            format!("{why}, and this policy allows credentials"),
                            fix,
                        ));
                    }
                    self.warn(&ep.key("regex"), why, fix);
                }
                if re.is_match("null") {
                    return Err(self.err(&ep.key("regex"), format!("regex {r:?} matches the origin `null`, which sandboxed frames and file: pages of any site send"), "crossgate never lets a regex match null: list \"null\" literally if you mean it, and anchor the regex on a scheme such as https://"));
                }
                if [
                    "https://crossgate-lint-probe.invalid",
                    "http://crossgate-lint-probe.invalid:8080",
                ]
                .iter()
                .any(|o| re.is_match(o))
                {
                    self.warn(
                        &ep.key("regex"),
                        format!("regex {r:?} matches any http(s) origin"),
                        "anchor it on your own domain, such as https://[a-z0-9-]+\\.example\\.com",
                    );
                }
                list.push_regex(re, format!("regex {r}"));
            }
        }
        Ok(())
    }

    /// `allow_methods`, upper-cased and without repeats (default GET, HEAD, POST).
    fn methods(&self, path: &YamlPath, p: &FileCorsPolicy) -> Result<Vec<Method>, ConfigError> {
        Ok(match &p.allow_methods {
            None => vec![Method::GET, Method::HEAD, Method::POST],
            Some(ms) => {
                let mut out = Vec::new();
                for (i, m) in ms.iter().enumerate() {
                    let mp = path.key("allow_methods").index(i);
                    if m == "*" {
                        return Err(self.err(
                            &mp,
                            "`*` in allow_methods".into(),
                            "list the methods, such as [GET, POST, PUT, DELETE]",
                        ));
                    }
                    let method =
                        Method::from_bytes(m.to_ascii_uppercase().as_bytes()).map_err(|_| {
                            self.err(
                                &mp,
                                format!("invalid method {m:?}"),
                                "use a method name such as GET or PATCH",
                            )
                        })?;
                    if !out.contains(&method) {
                        out.push(method);
                    }
                }
                out
            }
        })
    }

    /// A `max_age` above what browsers keep is a warning.
    fn lint_max_age(&mut self, path: &YamlPath, p: &FileCorsPolicy) {
        if let Some(age) = p.max_age {
            if age > CHROMIUM_MAX_AGE {
                let cap = if age > FIREFOX_MAX_AGE {
                    "Chromium's cap of 7200 s and Firefox's of 86400 s"
                } else {
                    "Chromium's cap of 7200 s"
                };
                self.warn(
                    &path.key("max_age"),
                    format!("max_age {age} is above {cap}: browsers will use their cap"),
                    "set max_age to 7200 or less",
                );
            }
        }
    }

    pub(super) fn header_names(
        &self,
        path: &YamlPath,
        names: &[String],
        star_ok: bool,
        star_fix: &str,
    ) -> Result<Vec<HeaderName>, ConfigError> {
        let mut out = Vec::new();
        for (i, n) in names.iter().enumerate() {
            let p = path.index(i);
            if n == "*" && !star_ok {
                return Err(self.err(&p, "`*` is not allowed here".into(), star_fix));
            }
            let h = HeaderName::from_bytes(n.as_bytes()).map_err(|_| {
                self.err(
                    &p,
                    format!("invalid header name {n:?}"),
                    "use a header name such as x-request-id",
                )
            })?;
            if !out.contains(&h) {
                out.push(h);
            }
        }
        Ok(out)
    }
}

/// Where an origin regex has a `.` in its host that reads as a label separator but matches any
/// character: not escaped, not in a bracket class, not followed by a quantifier (`.*`, `.+`
/// are meant as wildcards), after `://` (or anywhere, when the regex names no scheme).
fn unescaped_host_dot(regex: &str) -> Option<usize> {
    let start = regex.find("://").map_or(0, |i| i + 3);
    let bytes = regex.as_bytes();
    let (mut i, mut class) = (0, false);
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'[' if !class => class = true,
            b']' if class => class = false,
            b'.' if !class
                && i >= start
                && !matches!(bytes.get(i + 1), Some(b'*' | b'+' | b'?' | b'{')) =>
            {
                return Some(i)
            }
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod dot_tests {
    use super::unescaped_host_dot;

    #[test]
    fn an_unescaped_dot_in_the_host_is_found_and_escaped_or_bracketed_ones_are_not() {
        assert_eq!(unescaped_host_dot(r"https://[a-z]+.shop.test"), Some(14));
        assert_eq!(
            unescaped_host_dot(r"^https://pr-[0-9]+\.example\.com$"),
            None
        );
        assert_eq!(unescaped_host_dot(r"https://a[.]example[.]com"), None);
        assert_eq!(unescaped_host_dot(r"https://[a-z.]+\.example\.com"), None);
        assert_eq!(
            unescaped_host_dot(r"https://app\.example\.com(:[0-9]+)?"),
            None
        );
        assert_eq!(unescaped_host_dot(r"https://.*\.example\.com"), None);
        assert_eq!(unescaped_host_dot(r"https://.+\.example\.com"), None);
        assert_eq!(unescaped_host_dot(r"https://app.example\.com"), Some(11));
    }
}
