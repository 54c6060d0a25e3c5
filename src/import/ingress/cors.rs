//! ingress-nginx's CORS annotations, read as ingress-nginx reads them (kubernetes/ingress-nginx
//! at dbb11b92, March 2026):
//! - `docs/user-guide/nginx-configuration/annotations.md`, "Enable CORS": the seven annotations
//!   and their documented defaults (enable-cors false; allow-origin `*`; allow-methods
//!   `GET, PUT, POST, DELETE, PATCH, OPTIONS`; allow-headers
//!   `DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization`
//!   (`Range` since 2022, #8459: older copies of the docs lack it); expose-headers empty;
//!   allow-credentials true; max-age 1728000).
//! - `internal/ingress/annotations/cors/main.go`: the same defaults in code, and what happens to
//!   a value its validation patterns refuse: the default is used instead (`*` for origins), with
//!   only a warning in the controller's log.
//! - `internal/ingress/controller/template/template.go`, `buildCorsOriginRegex`: each origin
//!   becomes `(origin)$` in one case-insensitive nginx regex, anchored at the end only, with the
//!   `*` of `*.` replaced by `[A-Za-z0-9\-]+`: exactly one DNS label.
//! - `rootfs/etc/nginx/template/nginx.tmpl`, "CORS": `*` is answered as
//!   `Access-Control-Allow-Origin: *` together with `Allow-Credentials: true`; every OPTIONS
//!   request of an allowed origin is answered 204 by nginx itself.
//!
//! A value whose meaning is clear is converted as its author meant it, and where ingress-nginx
//! reads it otherwise (an origin with a path makes it fall back to `*`) the report says so; a
//! value with no clear meaning is an error.

use super::super::browser_max_age;
use super::super::manifest::{At, Object};
use super::super::plan::{Field, Headers, OriginEntry, Origins, Plan, Policy};
use super::origin::{origin_item, OriginItem};
use super::values::{
    go_bool, go_int, items, nginx_takes, normalized, quoted, BOOLEANS, EXPOSE_VALID, METHODS_VALID,
    ORIGINS_VALID,
};
use crate::config::ConfigError;

pub(super) const PREFIX: &str = "nginx.ingress.kubernetes.io/";
pub(super) const DEFAULT_METHODS: &str = "GET, PUT, POST, DELETE, PATCH, OPTIONS";
pub(super) const DEFAULT_HEADERS: &str = "DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization";
pub(super) const DEFAULT_MAX_AGE: u64 = 1_728_000;

pub(super) const CORS_ANNOTATIONS: [&str; 7] = [
    "enable-cors",
    "cors-allow-origin",
    "cors-allow-methods",
    "cors-allow-headers",
    "cors-expose-headers",
    "cors-allow-credentials",
    "cors-max-age",
];

/// Allowed origins with their comments.
type OriginList = Vec<Field<OriginEntry>>;

/// One Ingress's annotations while its CORS policy is read, one function per annotation.
struct Reader<'x, 'a> {
    obj: &'x Object<'a>,
    anns: &'x [(&'a str, At<'a>, &'a str)],
    /// What maps exactly, for the report's line about the policy.
    exact: Vec<&'static str>,
}

impl<'a> Reader<'_, 'a> {
    /// The annotation's node and value, if it is set and not empty (ingress-nginx treats an
    /// empty value as not set).
    fn get(&self, name: &str) -> Option<(&At<'a>, &'a str)> {
        self.anns
            .iter()
            .find(|(k, _, v)| *k == name && !v.trim().is_empty())
            .map(|(_, at, v)| (at, *v))
    }

    fn place(&self, at: &At) -> String {
        self.obj.place(at.node)
    }

    fn credentials(&mut self) -> Result<(bool, String), ConfigError> {
        let Some((at, v)) = self.get("cors-allow-credentials") else {
            return Ok((
                true,
                "cors-allow-credentials not set: ingress-nginx's default true".into(),
            ));
        };
        match go_bool(v) {
            Some(b) => Ok((b, format!("cors-allow-credentials {}", quoted(v)))),
            None => Err(self.obj.err(
                at,
                format!("cors-allow-credentials {v:?} is not a boolean ingress-nginx reads: it uses its default, true (with a warning in its log)"),
                BOOLEANS,
            )),
        }
    }

    /// `None` for `*`, or the list; and the comment.
    fn origins(&mut self, plan: &mut Plan) -> Result<(Option<OriginList>, String), ConfigError> {
        let Some((at, v)) = self.get("cors-allow-origin") else {
            self.exact.push("any origin");
            return Ok((
                None,
                "cors-allow-origin not set: ingress-nginx's default `*`".into(),
            ));
        };
        let place = self.place(at);
        let takes = nginx_takes(v, &ORIGINS_VALID, false);
        let (mut any, mut list, mut refusals, mut changes) = (false, Vec::new(), Vec::new(), 0);
        for e in items(v) {
            match origin_item(e).map_err(|(m, f)| self.obj.err(at, m, f))? {
                OriginItem::Any => any = true,
                OriginItem::Skipped(why) => plan.report.unsupported(&place, why),
                OriginItem::Origin {
                    entry,
                    note,
                    refused,
                    changed,
                } => {
                    if let Some(r) = refused {
                        refusals.push(format!("{e:?}: {r}"));
                    }
                    if let Some(c) = changed {
                        plan.report.changed(&place, c);
                        changes += 1;
                    }
                    if let OriginEntry::Regex(re) = &entry {
                        plan.report.exact(&place, format!("cors-allow-origin {e}: ingress-nginx's `*.` stands for exactly one DNS label; the policy has the regex {re}, which does the same (crossgate's own `*.` wildcards match deeper names too)"));
                    }
                    if !list.iter().any(|f: &Field<OriginEntry>| f.value == entry) {
                        list.push(Field::new(entry, note));
                    }
                }
            }
        }
        let note = format!("cors-allow-origin {}", quoted(v));
        if any {
            if !list.is_empty() {
                plan.report.exact(&place, "cors-allow-origin lists `*` among origins: ingress-nginx then allows every origin, and so does the policy (allow_origins: any)");
            }
            self.exact.push("any origin");
            return Ok((None, note));
        }
        if !refusals.is_empty() || !takes {
            changes += 1;
            let why = if refusals.is_empty() {
                "it does not match the annotation's pattern".to_owned()
            } else {
                refusals.join("; ")
            };
            plan.report.changed(&place, format!("cors-allow-origin: ingress-nginx refuses this value as a whole ({why}) and answers every origin with `*` instead; crossgate allows the origins it lists"));
        }
        plan.report.general("ingress-nginx matches origins with one case-insensitive regex, `(origin)$`, anchored at the end only; browsers send lowercase origins, which crossgate compares exactly (scheme, host, port), so the same origins are allowed except where a note says otherwise");
        if list.is_empty() {
            plan.report.exact(&place, "cors-allow-origin allows no origin that a browser sends: ingress-nginx then answers no CORS headers, and the policy's allow_origins is empty");
        }
        if changes == 0 {
            self.exact.push("origins");
        }
        Ok((Some(list), note))
    }

    fn methods(&mut self, plan: &mut Plan) -> Result<Field<Vec<String>>, ConfigError> {
        let Some((at, v)) = self.get("cors-allow-methods") else {
            self.exact.push("methods");
            return Ok(Field::new(
                items(DEFAULT_METHODS)
                    .into_iter()
                    .map(String::from)
                    .collect(),
                format!("cors-allow-methods not set: ingress-nginx's default {DEFAULT_METHODS}"),
            ));
        };
        let (mut ms, mut lower): (Vec<String>, Vec<&str>) = (Vec::new(), Vec::new());
        for m in items(v) {
            if !m.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(self.obj.err(at, format!("cors-allow-methods has {m:?}, which is not a method name: ingress-nginx refuses the value and uses its default ({DEFAULT_METHODS})"), "list method names separated by commas, such as \"GET, PUT, POST\""));
            }
            let up = m.to_ascii_uppercase();
            // GET, HEAD and POST need no listing (CORS-safelisted); fetch() sends these three
            // in capitals whatever the page wrote (Fetch standard, "normalize" a method).
            if up != m && ["DELETE", "OPTIONS", "PUT"].contains(&up.as_str()) {
                lower.push(m);
            }
            if !ms.contains(&up) {
                ms.push(up);
            }
        }
        if !nginx_takes(v, &METHODS_VALID, true) {
            plan.report.changed(&self.place(at), format!("cors-allow-methods {}: ingress-nginx refuses this spelling (its pattern allows one space after a comma at most, and one line) and sends its default, {DEFAULT_METHODS}; crossgate allows the methods listed", quoted(v)));
        } else if !lower.is_empty() {
            plan.report.changed(&self.place(at), format!("cors-allow-methods {}: ingress-nginx sends {} as written, and browsers compare methods case-sensitively and send DELETE, OPTIONS and PUT in capitals whatever the page wrote, so these never matched; crossgate writes them in capitals, which allows them", quoted(v), lower.join(", ")));
        } else {
            self.exact.push("methods");
        }
        Ok(Field::new(ms, format!("cors-allow-methods {}", quoted(v))))
    }

    fn headers(&mut self, plan: &mut Plan) -> Result<Field<Headers>, ConfigError> {
        let Some((at, v)) = self.get("cors-allow-headers") else {
            self.exact.push("request headers");
            let hs = items(DEFAULT_HEADERS)
                .into_iter()
                .map(str::to_ascii_lowercase)
                .collect();
            return Ok(Field::new(
                Headers::List(hs),
                format!("cors-allow-headers not set: ingress-nginx's default {DEFAULT_HEADERS}"),
            ));
        };
        let mut hs: Vec<String> = Vec::new();
        for h in items(v) {
            if !h
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(self.obj.err(at, format!("cors-allow-headers has {h:?}, which ingress-nginx refuses (letters, digits, - and _ only): it would use its default list instead"), "list header names separated by commas, such as \"Content-Type, X-Request-Id\""));
            }
            let h = h.to_ascii_lowercase();
            if !hs.contains(&h) {
                hs.push(h);
            }
        }
        if normalized(v).contains('\n') {
            plan.report.changed(&self.place(at), format!("cors-allow-headers spans lines: ingress-nginx refuses that and sends its default list ({DEFAULT_HEADERS}); crossgate allows the headers listed"));
        } else {
            self.exact.push("request headers");
        }
        Ok(Field::new(
            Headers::List(hs),
            format!("cors-allow-headers {}", quoted(v)),
        ))
    }

    fn expose(
        &mut self,
        plan: &mut Plan,
        credentials: bool,
    ) -> Result<Field<Vec<String>>, ConfigError> {
        let Some((at, v)) = self.get("cors-expose-headers") else {
            self.exact.push("exposed headers");
            return Ok(Field::new(
                Vec::new(),
                "cors-expose-headers not set: ingress-nginx exposes none",
            ));
        };
        let mut hs: Vec<String> = Vec::new();
        for h in items(v) {
            if h != "*"
                && !h
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(self.obj.err(at, format!("cors-expose-headers has {h:?}, which ingress-nginx refuses (letters, digits, -, _ and * only): it would expose no header"), "list header names separated by commas, such as \"X-Request-Id, X-Total-Count\""));
            }
            if h == "*" && credentials {
                plan.report.exact(&self.place(at), "cors-expose-headers `*` with credentials: browsers read `*` as a header literally named * when credentials are allowed (Fetch standard), so it exposed nothing; left out (crossgate refuses it there)");
                continue;
            }
            let h = h.to_ascii_lowercase();
            if !hs.contains(&h) {
                hs.push(h);
            }
        }
        if !nginx_takes(v, &EXPOSE_VALID, true) {
            plan.report.changed(&self.place(at), format!("cors-expose-headers {}: ingress-nginx refuses this spelling (one space after a comma at most, one line) and exposes no header; crossgate exposes the headers listed", quoted(v)));
        } else {
            self.exact.push("exposed headers");
        }
        Ok(Field::new(hs, format!("cors-expose-headers {}", quoted(v))))
    }

    fn max_age(&mut self, plan: &mut Plan) -> Result<Field<Option<u64>>, ConfigError> {
        let (age, note, place) = match self.get("cors-max-age") {
            Some((at, v)) => {
                let n = go_int(v).ok_or_else(|| {
                    self.obj.err(at, format!("cors-max-age {v:?} is not a whole number of seconds: ingress-nginx uses its default, {DEFAULT_MAX_AGE} (with a warning in its log)"), "write the seconds, such as \"600\"")
                })?;
                let n = u64::try_from(n).map_err(|_| {
                    self.obj.err(
                        at,
                        format!("cors-max-age {v:?} is negative"),
                        "write 0 or more seconds, such as \"600\"",
                    )
                })?;
                (n, format!("cors-max-age {}", quoted(v)), self.place(at))
            }
            None => (
                DEFAULT_MAX_AGE,
                format!("cors-max-age not set: ingress-nginx's default {DEFAULT_MAX_AGE}"),
                self.obj.place(self.obj.node),
            ),
        };
        Ok(match browser_max_age(age) {
            Some((capped, why)) => {
                let default = if age == DEFAULT_MAX_AGE && self.get("cors-max-age").is_none() {
                    " (ingress-nginx's default)"
                } else {
                    ""
                };
                plan.report
                    .changed(&place, format!("cors-max-age {age}{default}: {why}"));
                Field::new(Some(capped), format!("{note}; {why}"))
            }
            None => {
                self.exact.push("max-age");
                Field::new(Some(age), note)
            }
        })
    }
}

/// The policy of an Ingress with `enable-cors` true; `None` when CORS is off.
pub(super) fn cors_policy(
    obj: &Object,
    anns: &[(&str, At, &str)],
    plan: &mut Plan,
) -> Result<Option<Policy>, ConfigError> {
    let mut r = Reader {
        obj,
        anns,
        exact: Vec::new(),
    };
    let place = obj.place(obj.node);
    if !r.enabled(&place, plan)? {
        return Ok(None);
    }
    let name = format!("ingress-{}-{}", obj.namespace, obj.name);

    // Credentials first: what `*` becomes depends on them.
    let (origins, credentials) = r.origins_and_credentials(&name, &place, plan)?;
    let methods = r.methods(plan)?;
    let headers = r.headers(plan)?;
    let expose = r.expose(plan, credentials.value)?;
    let max_age = r.max_age(plan)?;
    plan.report.exact(
        &place,
        format!(
            "CORS annotations -> cors policy {name} (maps exactly: {})",
            r.exact.join(", ")
        ),
    );
    plan.report.general("ingress-nginx answers every OPTIONS request of an allowed origin itself (204), even one that is not a preflight, and sends a preflight from an origin it does not allow on to the backend; crossgate answers only real preflights (OPTIONS with Origin and Access-Control-Request-Method), with 204 or a 403 that says why, and sends every other OPTIONS to the backend. Browsers see the same outcome");

    let at = r.get("enable-cors").map_or(obj.node, |(at, _)| at.node);
    let comment = vec![format!(
        "{} ({}): ingress-nginx's CORS annotations (enable-cors true).",
        obj.label(),
        obj.loc(at)
    )];
    Ok(Some(Policy {
        name,
        comment,
        origins,
        methods,
        headers,
        expose,
        credentials,
        max_age,
    }))
}

impl Reader<'_, '_> {
    /// `enable-cors`; when it is off, the report says the other `cors-` annotations do nothing.
    fn enabled(&self, place: &str, plan: &mut Plan) -> Result<bool, ConfigError> {
        let obj = self.obj;
        let enabled = match self.get("enable-cors") {
            None => false,
            Some((at, v)) => go_bool(v).ok_or_else(|| {
                obj.err(
                    at,
                    format!("enable-cors {v:?} is not a boolean ingress-nginx reads: it treats it as false (with a warning in its log)"),
                    BOOLEANS,
                )
            })?,
        };
        if !enabled {
            let set: Vec<&str> = self
                .anns
                .iter()
                .map(|(k, _, _)| *k)
                .filter(|k| k.starts_with("cors-"))
                .collect();
            if !set.is_empty() {
                plan.report.exact(place, format!("{} without enable-cors \"true\": no effect in ingress-nginx, and none here (the routes leave CORS to the backends)", set.join(", ")));
            }
        }
        Ok(enabled)
    }

    /// The origins and the credentials they leave: `*` with credentials becomes any origin
    /// without them.
    fn origins_and_credentials(
        &mut self,
        name: &str,
        place: &str,
        plan: &mut Plan,
    ) -> Result<(Field<Origins>, Field<bool>), ConfigError> {
        let (credentials, cred_note) = self.credentials()?;
        let (list, origins_note) = self.origins(plan)?;
        Ok(match list {
            None if credentials => {
                plan.report.changed(place, format!("policy {name}: ingress-nginx answers `*` (cors-allow-origin {}) together with Access-Control-Allow-Credentials: true; browsers refuse that answer for any request that carries cookies or HTTP authentication, and crossgate refuses `any` with credentials at load. The policy is allow_origins: any with allow_credentials: false: what browsers did accept (requests without credentials) is answered the same; to let pages send credentials, list their origins in cors-allow-origin", if self.get("cors-allow-origin").is_some() { "`*`" } else { "not set" }));
                (
                    Field::new(Origins::Any, origins_note),
                    Field::new(false, format!("{cred_note}, but never with `*`: browsers refuse credentials on a `*` answer, and crossgate refuses them at load")),
                )
            }
            None => {
                self.exact.push("credentials");
                (
                    Field::new(Origins::Any, origins_note),
                    Field::new(false, cred_note),
                )
            }
            Some(list) => {
                self.exact.push("credentials");
                (
                    Field::new(Origins::List(list), origins_note),
                    Field::new(credentials, cred_note),
                )
            }
        })
    }
}
