//! Kubernetes Ingress (`networking.k8s.io/v1`) with ingress-nginx's CORS annotations.
//!
//! What ingress-nginx does was read from its own sources (kubernetes/ingress-nginx at
//! dbb11b92, March 2026), not guessed:
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
//! - `internal/ingress/controller/location.go`: a Prefix path `/p` becomes the prefix `/p/`
//!   plus the exact `/p` (so not `/pq`); `docs/user-guide/ingress-path-matching.md`: with
//!   `use-regex` (or `rewrite-target`) on any Ingress of a host, every path of that host is a
//!   case-insensitive regex anchored at its start, tried longest first.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;

use super::manifest::{At, Object};
use super::plan::{
    Field, Headers, Host, OriginEntry, Origins, PathRule, Plan, Policy, Port, Route,
};
use super::{browser_max_age, Ctx};
use crate::config::ConfigError;

pub const PREFIX: &str = "nginx.ingress.kubernetes.io/";
pub const DEFAULT_METHODS: &str = "GET, PUT, POST, DELETE, PATCH, OPTIONS";
pub const DEFAULT_HEADERS: &str = "DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization";
pub const DEFAULT_MAX_AGE: u64 = 1_728_000;

const CORS_ANNOTATIONS: [&str; 7] = [
    "enable-cors",
    "cors-allow-origin",
    "cors-allow-methods",
    "cors-allow-headers",
    "cors-expose-headers",
    "cors-allow-credentials",
    "cors-max-age",
];

// ingress-nginx's validation patterns (cors/main.go), applied to the value with its spaces
// removed; a value they refuse is replaced by the annotation's default.
static ORIGINS_VALID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^((((([a-z]+://)?(\*\.)?[A-Za-z0-9\-.]*(:\d+)?,?)|null)+)|\*)?$")
        .expect("a valid pattern")
});
// The methods and expose-headers patterns are checked a second time on the value with its
// spaces, where `\s?` allows one space after a comma, no more.
static METHODS_VALID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([A-Za-z]+,?\s?)+$").expect("a valid pattern"));
static EXPOSE_VALID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(([A-Za-z0-9\-_]+|\*),?\s?)+$").expect("a valid pattern"));

/// An annotation's value as ingress-nginx reads it (`parser.normalizeString`: each line
/// trimmed).
fn normalized(v: &str) -> String {
    v.split('\n').map(str::trim).collect::<Vec<_>>().join("\n")
}

/// Would ingress-nginx take this list value, or fall back to the default?
fn nginx_takes(v: &str, pattern: &Regex, also_with_spaces: bool) -> bool {
    let v = normalized(v);
    let squeezed = v.replace(' ', "");
    pattern.is_match(&squeezed)
        && !squeezed.contains(['\r', '\n'])
        && (!also_with_spaces || pattern.is_match(&v))
}

/// Go's `strconv.ParseBool`, which ingress-nginx uses.
pub fn go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.Atoi`: optional sign, decimal digits.
fn go_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The comma list of an annotation, as ingress-nginx splits it: empty items (a trailing
/// comma) dropped, spaces around items trimmed.
fn items(v: &str) -> Vec<&str> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// One `cors-allow-origin` entry, as crossgate will allow it.
#[derive(Debug, PartialEq, Eq)]
pub enum OriginItem {
    Any,
    /// Never allowed anything in ingress-nginx (it skips it); the reason.
    Skipped(String),
    Origin {
        entry: OriginEntry,
        /// How it maps (for the comment).
        note: String,
        /// Why ingress-nginx refuses the whole annotation for it (it then answers `*`).
        refused: Option<String>,
        /// How crossgate's answer differs from ingress-nginx's for this entry.
        changed: Option<String>,
    },
}

fn valid_host_chars(h: &str) -> bool {
    !h.is_empty()
        && !h.starts_with('.')
        && !h.ends_with('.')
        && !h.contains("..")
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// Reads one entry of `cors-allow-origin` (already trimmed, not empty).
pub fn origin_item(e: &str) -> Result<OriginItem, (String, String)> {
    let bad = |why: &str| {
        (
            format!("cors-allow-origin entry {e:?} is not an origin: {why}"),
            "write scheme://host[:port] (https://app.example.com), https://*.example.com, null or *, separated by commas".to_owned(),
        )
    };
    if e == "*" {
        return Ok(OriginItem::Any);
    }
    if e == "null" {
        return Ok(OriginItem::Origin {
            entry: OriginEntry::Exact("null".into()),
            note: "null (opaque origins: sandboxed frames, file: pages)".into(),
            refused: None,
            changed: Some("`null`: ingress-nginx's origin regex is anchored at the end only, so `null` also allowed any origin ending in null (such as http://xnull); crossgate allows only the literal origin null".into()),
        });
    }
    let Some((scheme, rest)) = e.split_once("://") else {
        return if valid_host_chars(e.split(':').next().unwrap_or("")) {
            Ok(OriginItem::Skipped(format!("cors-allow-origin entry {e:?} has no scheme: ingress-nginx skips it (with an error in its log), so it never allowed anything; not converted (write https://{e} to allow it)")))
        } else {
            Err(bad("expected scheme://host[:port]"))
        };
    };
    if scheme.is_empty() || !scheme.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(bad("the scheme must be letters, such as https"));
    }
    let mut refused = Vec::new();
    let lower_scheme = scheme.to_ascii_lowercase();
    if scheme != lower_scheme {
        refused.push(format!("the scheme {scheme} is not in lower case"));
    }
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if !path.is_empty() {
        refused.push(format!(
            "it ends in {path:?}, and an Origin header never carries a path or a trailing slash"
        ));
    }
    let (wild, host_port) = match authority.strip_prefix("*.") {
        Some(r) => (true, r),
        None => (false, authority),
    };
    let (host, port) = match host_port.rsplit_once(':') {
        Some((h, p)) => {
            let port = p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad("the port must be a number from 1 to 65535"))?;
            (h, Some(port))
        }
        None => (host_port, None),
    };
    if host.contains('*') {
        return Err(bad(
            "ingress-nginx supports `*` only as the whole first label (https://*.example.com)",
        ));
    }
    if !valid_host_chars(host) {
        return Err(bad(
            "the host must be a DNS name (letters, digits, - and .)",
        ));
    }
    let host = host.to_ascii_lowercase();
    let default = crate::origin::default_port(&lower_scheme);
    let mut changed = None;
    let port_part = match port {
        Some(p) if Some(p) == default => {
            changed = Some(format!("{e:?}: :{p} is the default port of {lower_scheme}, which browsers leave out of the Origin header, so ingress-nginx's text match never allowed it; crossgate compares origins, and allows {lower_scheme}://{}{host}", if wild { "*." } else { "" }));
            String::new()
        }
        Some(p) => format!(":{p}"),
        None => String::new(),
    };
    let refused = (!refused.is_empty()).then(|| refused.join("; "));
    if wild {
        let re = format!(
            "{lower_scheme}://[a-z0-9-]+{}{}",
            regex::escape(&format!(".{host}")),
            regex::escape(&port_part)
        );
        return Ok(OriginItem::Origin {
            note: format!("{e}: ingress-nginx's `*.` stands for exactly one DNS label ([A-Za-z0-9-]+), so this is a regex (crossgate's own `*.` wildcards also match deeper names)"),
            entry: OriginEntry::Regex(re),
            refused,
            changed,
        });
    }
    let exact = format!("{lower_scheme}://{host}{port_part}");
    let exact = crate::origin::canonical_exact(&exact).map_err(|p| bad(&p.message))?;
    Ok(OriginItem::Origin {
        note: e.to_owned(),
        entry: OriginEntry::Exact(exact),
        refused,
        changed,
    })
}

/// The hosts (`""` for rules without one) on which ingress-nginx turns every path into a
/// regex: those of an Ingress with `use-regex: "true"` or a `rewrite-target`.
pub fn regex_hosts(obj: &Object) -> Result<Vec<String>, ConfigError> {
    let anns = annotations(obj)?;
    let on = anns.iter().any(|(k, _, v)| {
        (*k == "use-regex" && go_bool(v) == Some(true)) || (*k == "rewrite-target" && !v.is_empty())
    });
    if !on {
        return Ok(Vec::new());
    }
    let root = obj.root();
    let Some(spec) = obj.get(&root, "spec")? else {
        return Ok(Vec::new());
    };
    let mut hosts = Vec::new();
    if let Some(rules) = obj.get(&spec, "rules")? {
        for rule in obj.list(&rules)? {
            let host = obj.opt_str(&rule, "host")?.map_or("", |(_, h)| h);
            hosts.push(host.to_ascii_lowercase());
        }
    }
    Ok(hosts)
}

/// `nginx.ingress.kubernetes.io/` annotations: (name without the prefix, node, value).
fn annotations<'a>(obj: &Object<'a>) -> Result<Vec<(&'a str, At<'a>, &'a str)>, ConfigError> {
    let root = obj.root();
    let Some(meta) = obj.get(&root, "metadata")? else {
        return Ok(Vec::new());
    };
    let Some(anns) = obj.get(&meta, "annotations")? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (key, at) in obj.entries(&anns)? {
        let Some(name) = key.strip_prefix(PREFIX) else {
            continue;
        };
        let value = match &at.node.value {
            crate::config::marked::Value::Null => "",
            crate::config::marked::Value::Scalar(s) => s.as_str(),
            _ => {
                return Err(obj.err(
                    &at,
                    "an annotation's value is a string, found a list or a map".into(),
                    "write the value on one line, in quotes",
                ))
            }
        };
        out.push((name, at, value));
    }
    Ok(out)
}

pub fn convert(obj: &Object, ctx: &Ctx, plan: &mut Plan) -> Result<(), ConfigError> {
    let anns = annotations(obj)?;
    let place = obj.place(obj.node);
    let policy = cors_policy(obj, &anns, plan)?.map(|p| plan.add_policy(p));
    other_annotations(&anns, &place, plan);
    ingress_class(obj, plan)?;
    let rewrite = anns
        .iter()
        .find(|(k, _, v)| *k == "rewrite-target" && !v.is_empty());

    let root = obj.root();
    let spec = obj.need(&root, "spec")?;
    if let Some(tls) = obj.get(&spec, "tls")? {
        for t in obj.list(&tls)? {
            let secret = obj.opt_str(&t, "secretName")?.map_or("", |(_, s)| s);
            let mut hosts = Vec::new();
            if let Some(h) = obj.get(&t, "hosts")? {
                for h in obj.list(&h)? {
                    hosts.push(obj.str(&h)?);
                }
            }
            plan.report.unsupported(&obj.place(t.node), format!("spec.tls (hosts {}, Secret {secret:?}): not converted; crossgate serves HTTPS from PEM files (`tls:` listeners with cert and key, which can be the Secret mounted as files), or leave TLS to the load balancer in front", hosts.join(", ")));
        }
    }
    let ns = obj.namespace.as_str();
    let base = format!("ingress-{ns}-{}", obj.name);
    if let Some(rules) = obj.get(&spec, "rules")? {
        for (i, rule) in obj.list(&rules)?.into_iter().enumerate() {
            let (host, host_key) = match obj.opt_str(&rule, "host")? {
                None => (Host::Any, String::new()),
                Some((at, h)) => (ingress_host(obj, &at, h, plan)?, h.to_ascii_lowercase()),
            };
            let Some(http) = obj.get(&rule, "http")? else {
                plan.report.unsupported(&obj.place(rule.node), format!("spec.rules[{i}] ({}) has no http paths: ingress-nginx sends its requests to the default backend; not converted", host.describe()));
                continue;
            };
            if let Some((_, t, target)) = rewrite {
                plan.report.unsupported(&obj.place(t.node), format!("rewrite-target {target:?}: crossgate forwards the path the browser sent and does not rewrite it, so the paths of spec.rules[{i}] ({}) are not converted (their backends would get other paths than today)", host.describe()));
                continue;
            }
            for (j, p) in obj
                .list(&obj.need(&http, "paths")?)?
                .into_iter()
                .enumerate()
            {
                let Some(backend) = backend(obj, &obj.need(&p, "backend")?, ctx, plan)? else {
                    continue;
                };
                let routes = ingress_paths(
                    obj,
                    &p,
                    &host,
                    ctx.regex_hosts.contains(&host_key),
                    &format!("{base}-{i}-{j}"),
                    plan,
                )?;
                for mut r in routes {
                    r.backends = vec![backend.clone()];
                    r.policy = policy.clone();
                    plan.routes.push(r);
                }
            }
        }
    }
    if let Some(d) = obj.get(&spec, "defaultBackend")? {
        if let Some(backend) = backend(obj, &d, ctx, plan)? {
            let place = obj.place(d.node);
            plan.report.exact(&place, format!("spec.defaultBackend -> route {base}-default, any host, prefix /, after every other route (as ingress-nginx's catch-all server)"));
            plan.routes.push(Route {
                name: format!("{base}-default"),
                host: Host::Any,
                path: PathRule::Prefix("/".into()),
                backends: vec![backend],
                policy: policy.clone(),
                comment: vec![format!(
                    "{} ({}): spec.defaultBackend, for requests no other route takes.",
                    obj.label(),
                    obj.loc(d.node)
                )],
                path_rank: (1, -1),
                implied: false,
                tier: 1,
                place,
            });
        }
    }
    Ok(())
}

/// The nginx.ingress.kubernetes.io annotations act only under ingress-nginx: say so when the
/// Ingress names another class.
fn ingress_class(obj: &Object, plan: &mut Plan) -> Result<(), ConfigError> {
    let root = obj.root();
    let from_spec = match obj.get(&root, "spec")? {
        Some(spec) => obj.opt_str(&spec, "ingressClassName")?,
        None => None,
    };
    let from_annotation = match obj.get(&root, "metadata")? {
        Some(meta) => match obj.get(&meta, "annotations")? {
            Some(a) => obj.opt_str(&a, "kubernetes.io/ingress.class")?,
            None => None,
        },
        None => None,
    };
    if let Some((at, class)) = from_spec.or(from_annotation) {
        if !class.contains("nginx") {
            plan.report.changed(&obj.place(at.node), format!("ingress class {class:?}: the nginx.ingress.kubernetes.io annotations act only under ingress-nginx, so this Ingress's controller may not have applied them; converted as ingress-nginx would serve it"));
        }
    }
    Ok(())
}

fn ingress_host(obj: &Object, at: &At, h: &str, plan: &mut Plan) -> Result<Host, ConfigError> {
    let lower = h.to_ascii_lowercase();
    let bad = || {
        obj.err(
            at,
            format!("invalid host {h:?}"),
            "write a DNS name such as api.example.com, or *.example.com (a wildcard is only the whole first label)",
        )
    };
    if let Some(suffix) = lower.strip_prefix("*.") {
        if !valid_host_chars(suffix) {
            return Err(bad());
        }
        plan.report.changed(&obj.place(at.node), format!("host {h}: the Ingress API's `*.` (and ingress-nginx's) matches exactly one label (a.{suffix}, not a.b.{suffix}); crossgate's *.{suffix} matches deeper names too"));
        return Ok(Host::Wildcard(suffix.to_owned()));
    }
    if !valid_host_chars(&lower) {
        return Err(bad());
    }
    Ok(Host::Exact(lower))
}

/// The routes of one Ingress path (the `backend` and `policy` are set by the caller).
fn ingress_paths(
    obj: &Object,
    p: &At,
    host: &Host,
    regex_host: bool,
    name: &str,
    plan: &mut Plan,
) -> Result<Vec<Route>, ConfigError> {
    let type_at = obj.need(p, "pathType")?;
    let path_type = obj.str(&type_at)?;
    const TYPES: [&str; 3] = ["Prefix", "Exact", "ImplementationSpecific"];
    if !TYPES.contains(&path_type) {
        let hint = TYPES
            .iter()
            .find(|t| t.eq_ignore_ascii_case(path_type))
            .map_or(String::new(), |t| format!(" (did you mean {t}?)"));
        return Err(obj.err(
            &type_at,
            format!("unknown pathType {path_type:?}{hint}"),
            "use Prefix, Exact or ImplementationSpecific (the API server refuses anything else)",
        ));
    }
    let (path_at, path) = match obj.opt_str(p, "path")? {
        Some((at, s)) if !s.is_empty() => (at, s),
        _ if path_type == "ImplementationSpecific" => (p.clone(), "/"),
        _ => {
            return Err(obj.err(
                p,
                format!("a {path_type} path needs `path:`"),
                "add path: /something",
            ))
        }
    };
    if !path.starts_with('/') {
        return Err(obj.err(
            &path_at,
            format!("path {path:?} does not start with /"),
            format!("write \"/{path}\""),
        ));
    }
    let place = obj.place(p.node);
    let what = format!("{}, path {path} ({path_type})", host.describe());
    let comment = |extra: &str| {
        let mut c = vec![format!("{} ({}): {what}.", obj.label(), obj.loc(p.node))];
        if !extra.is_empty() {
            c.push(extra.to_owned());
        }
        c
    };
    let route =
        |path: PathRule, rank: (u8, i64), implied: bool, suffix: &str, c: Vec<String>| Route {
            name: format!("{name}{suffix}"),
            host: host.clone(),
            path,
            backends: Vec::new(),
            policy: None,
            comment: c,
            path_rank: rank,
            implied,
            tier: 0,
            place: place.clone(),
        };
    let len = path.len() as i64;
    if regex_host {
        // nginx.tmpl: `location ~* "^PATH"`; crossgate anchors both ends, so `.*` keeps
        // the end open. The path is a PCRE regex to nginx; Rust's syntax is close but not
        // the same (no look-around or back-references).
        let re = format!("(?i)(?:{path}).*");
        if let Err(e) = crate::origin::anchored_regex(&re) {
            plan.report.unsupported(&place, format!("{what}: ingress-nginx reads it as a regex (use-regex or rewrite-target on this host), which Rust's regex syntax cannot express ({}); not converted", e.message.lines().next().unwrap_or("")));
            return Ok(Vec::new());
        }
        plan.report.exact(&place, format!("{what} -> route {name}: ingress-nginx matches every path of this host as a case-insensitive regex from the start of the path (use-regex or rewrite-target on an Ingress of the host), and so does the route"));
        return Ok(vec![route(
            PathRule::Regex(re),
            (1, -len),
            false,
            "",
            comment("ingress-nginx: `location ~* \"^PATH\"` (use-regex or rewrite-target on this host): a case-insensitive regex from the start of the path."),
        )]);
    }
    Ok(match path_type {
        "Exact" => {
            plan.report.exact(&place, format!("{what} -> route {name}"));
            vec![route(
                PathRule::Exact(path.into()),
                (0, -len),
                false,
                "",
                comment(""),
            )]
        }
        "Prefix" if path == "/" => {
            plan.report.exact(&place, format!("{what} -> route {name}"));
            vec![route(
                PathRule::Prefix("/".into()),
                (1, -1),
                false,
                "",
                comment(""),
            )]
        }
        "Prefix" => {
            // location.go: the prefix `/p/` and the exact `/p`: whole path segments only.
            let slash = if path.ends_with('/') {
                path.to_owned()
            } else {
                format!("{path}/")
            };
            let mut out = vec![route(
                PathRule::Prefix(slash.clone()),
                (1, -(slash.len() as i64)),
                false,
                "",
                comment(&format!("A Prefix matches whole segments: {path} and {slash}..., never {path}x (ingress-nginx writes the same two locations).")),
            )];
            if !path.ends_with('/') {
                out.push(route(
                    PathRule::Exact(path.into()),
                    (0, -len),
                    true,
                    "-exact",
                    comment(&format!("The exact half of the Prefix {path}.")),
                ));
                plan.report.exact(
                    &place,
                    format!("{what} -> routes {name} (prefix {slash}) and {name}-exact ({path})"),
                );
            } else {
                plan.report
                    .exact(&place, format!("{what} -> route {name} (prefix {slash})"));
            }
            out
        }
        _ => {
            // ImplementationSpecific without use-regex: nginx's plain `location PATH`, a
            // string prefix (`/p` also takes `/pq`), the longest winning.
            plan.report.exact(
                &place,
                format!(
                    "{what} -> route {name}: a plain string prefix, as nginx's `location {path}`"
                ),
            );
            vec![route(
                PathRule::Prefix(path.into()),
                (1, -len),
                false,
                "",
                comment(
                    "ImplementationSpecific is nginx's plain prefix location: a string prefix.",
                ),
            )]
        }
    })
}

/// The Service of an Ingress backend, registered in the plan; `None` if it is not a Service.
fn backend(
    obj: &Object,
    at: &At,
    ctx: &Ctx,
    plan: &mut Plan,
) -> Result<Option<String>, ConfigError> {
    if let Some(res) = obj.get(at, "resource")? {
        let kind = obj.opt_str(&res, "kind")?.map_or("?", |(_, k)| k);
        plan.report.unsupported(
            &obj.place(res.node),
            format!(
                "backend resource {kind}: only Service backends are converted; this path is not"
            ),
        );
        return Ok(None);
    }
    let svc = obj.need(at, "service")?;
    let name = obj.str(&obj.need(&svc, "name")?)?;
    let port_at = obj.need(&svc, "port")?;
    let port = match (obj.get(&port_at, "number")?, obj.opt_str(&port_at, "name")?) {
        (Some(n), _) => Port::Number(obj.port(&n)?),
        (None, Some((_, port_name))) => Port::Name(port_name.to_owned()),
        (None, None) => {
            return Err(obj.err(
                &port_at,
                "the service port has neither `number` nor `name`".into(),
                "write port: {number: 80} or port: {name: http}",
            ))
        }
    };
    Ok(Some(ctx.service(
        plan,
        &obj.namespace,
        name,
        port,
        &obj.place(svc.node),
    )))
}

/// Notes for the other `nginx.ingress.kubernetes.io/` annotations.
fn other_annotations(anns: &[(&str, At, &str)], place: &str, plan: &mut Plan) {
    let mut ignored = Vec::new();
    for (name, _, value) in anns {
        if CORS_ANNOTATIONS.contains(name) || *name == "use-regex" || *name == "rewrite-target" {
            continue;
        }
        if let Some(close) = CORS_ANNOTATIONS
            .iter()
            .find(|k| strsim::jaro_winkler(name, k) > 0.9)
        {
            plan.report.unsupported(place, format!("annotation {PREFIX}{name}: unknown to ingress-nginx, which ignores it, and so does the import (did you mean {close}?)"));
            continue;
        }
        if name.ends_with("snippet") && value.to_ascii_lowercase().contains("access-control-") {
            plan.report.changed(place, format!("{name}: this nginx snippet writes Access-Control-* headers of its own; crossgate does not run nginx snippets, so only the converted policy answers now"));
        }
        ignored.push(*name);
    }
    if !ignored.is_empty() {
        plan.report.unsupported(
            place,
            format!(
                "annotations not converted (no crossgate equivalent in this import): {}",
                ignored.join(", ")
            ),
        );
    }
}

/// The value of a CORS annotation, if set.
fn ann<'x, 'a>(
    anns: &'x [(&'a str, At<'a>, &'a str)],
    name: &str,
) -> Option<&'x (&'a str, At<'a>, &'a str)> {
    anns.iter().find(|(k, _, _)| *k == name)
}

fn cors_policy(
    obj: &Object,
    anns: &[(&str, At, &str)],
    plan: &mut Plan,
) -> Result<Option<Policy>, ConfigError> {
    let place = obj.place(obj.node);
    let enabled = match ann(anns, "enable-cors") {
        None => false,
        Some((_, at, v)) => match (v.trim().is_empty(), go_bool(v)) {
            (true, _) => false,
            (_, Some(b)) => b,
            (_, None) => return Err(obj.err(
                at,
                format!("enable-cors {v:?} is not a boolean ingress-nginx reads: it treats it as false (with a warning in its log)"),
                "write \"true\" or \"false\" (ingress-nginx also reads True, TRUE, 1, t, False, FALSE, 0, f)",
            )),
        },
    };
    if !enabled {
        let set: Vec<&str> = anns
            .iter()
            .map(|(k, _, _)| *k)
            .filter(|k| k.starts_with("cors-"))
            .collect();
        if !set.is_empty() {
            plan.report.exact(&place, format!("{} without enable-cors \"true\": no effect in ingress-nginx, and none here (the routes leave CORS to the backends)", set.join(", ")));
        }
        return Ok(None);
    }
    let name = format!("ingress-{}-{}", obj.namespace, obj.name);
    let quoted = |v: &str| format!("{:?}", normalized(v));
    let mut exact_parts = Vec::new();

    // cors-allow-credentials: read first, since what `*` becomes depends on it.
    let (credentials, cred_note) = match ann(anns, "cors-allow-credentials") {
        None => (true, "cors-allow-credentials not set: ingress-nginx's default true".to_owned()),
        Some((_, _, v)) if v.trim().is_empty() => {
            (true, "cors-allow-credentials empty: ingress-nginx's default true".to_owned())
        }
        Some((_, at, v)) => match go_bool(v) {
            Some(b) => (b, format!("cors-allow-credentials {}", quoted(v))),
            None => return Err(obj.err(
                at,
                format!("cors-allow-credentials {v:?} is not a boolean ingress-nginx reads: it uses its default, true (with a warning in its log)"),
                "write \"true\" or \"false\" (ingress-nginx also reads True, TRUE, 1, t, False, FALSE, 0, f)",
            )),
        },
    };

    // cors-allow-origin.
    let mut any = false;
    let mut list = Vec::new();
    let origins_note;
    let mut origins_exact = true;
    match ann(anns, "cors-allow-origin") {
        Some((_, at, v)) if !v.trim().is_empty() => {
            origins_note = format!("cors-allow-origin {}", quoted(v));
            let takes = nginx_takes(v, &ORIGINS_VALID, false);
            let mut refusals = Vec::new();
            let mut changes = 0;
            for e in items(v) {
                match origin_item(e).map_err(|(m, f)| obj.err(at, m, f))? {
                    OriginItem::Any => any = true,
                    OriginItem::Skipped(why) => plan.report.unsupported(&obj.place(at.node), why),
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
                            plan.report.changed(&obj.place(at.node), c);
                            changes += 1;
                        }
                        if let OriginEntry::Regex(re) = &entry {
                            plan.report.exact(&obj.place(at.node), format!("cors-allow-origin {e}: ingress-nginx's `*.` stands for exactly one DNS label; the policy has the regex {re}, which does the same (crossgate's own `*.` wildcards match deeper names too)"));
                        }
                        if e == "null" {
                            changes += 1;
                        }
                        if !list.iter().any(|f: &Field<OriginEntry>| f.value == entry) {
                            list.push(Field::new(entry, note));
                        }
                    }
                }
            }
            if !refusals.is_empty() || (!takes && !any) {
                changes += 1;
                let why = if refusals.is_empty() {
                    "it does not match the annotation's pattern".to_owned()
                } else {
                    refusals.join("; ")
                };
                plan.report.changed(&obj.place(at.node), format!("cors-allow-origin: ingress-nginx refuses this value as a whole ({why}) and answers every origin with `*` instead; crossgate allows the origins it lists"));
            }
            if any && !list.is_empty() {
                plan.report.exact(&obj.place(at.node), "cors-allow-origin lists `*` among origins: ingress-nginx then allows every origin, and so does the policy (allow_origins: any)");
            }
            if !any {
                plan.report.general("ingress-nginx matches origins with one case-insensitive regex, `(origin)$`, anchored at the end only; browsers send lowercase origins, which crossgate compares exactly (scheme, host, port), so the same origins are allowed except where a note says otherwise");
            }
            if !any && list.is_empty() {
                plan.report.exact(&obj.place(at.node), "cors-allow-origin allows no origin that a browser sends: ingress-nginx then answers no CORS headers, and the policy's allow_origins is empty");
            }
            origins_exact = changes == 0;
        }
        _ => {
            any = true;
            origins_note = "cors-allow-origin not set: ingress-nginx's default `*`".into();
        }
    }

    let (credentials, origins) = if any {
        if credentials {
            plan.report.changed(&place, format!("policy {name}: ingress-nginx answers `*` (cors-allow-origin {}) together with Access-Control-Allow-Credentials: true; browsers refuse that answer for any request that carries cookies or HTTP authentication, and crossgate refuses `any` with credentials at load. The policy is allow_origins: any with allow_credentials: false: what browsers did accept (requests without credentials) is answered the same; to let pages send credentials, list their origins in cors-allow-origin", if ann(anns, "cors-allow-origin").is_some() { "`*`" } else { "not set" }));
        } else {
            exact_parts.push("any origin");
            exact_parts.push("credentials");
        }
        (
            Field::new(
                false,
                if credentials {
                    format!("{cred_note}, but never with `*`: browsers refuse credentials on a `*` answer, and crossgate refuses them at load")
                } else {
                    cred_note.clone()
                },
            ),
            Field::new(Origins::Any, origins_note),
        )
    } else {
        if origins_exact {
            exact_parts.push("origins");
        }
        exact_parts.push("credentials");
        (
            Field::new(credentials, cred_note.clone()),
            Field::new(Origins::List(list), origins_note),
        )
    };

    // cors-allow-methods.
    let methods = match ann(anns, "cors-allow-methods") {
        Some((_, at, v)) if !v.trim().is_empty() => {
            let mut ms: Vec<String> = Vec::new();
            let mut lower = Vec::new();
            for m in items(v) {
                if !m.bytes().all(|b| b.is_ascii_alphabetic()) {
                    return Err(obj.err(at, format!("cors-allow-methods has {m:?}, which is not a method name: ingress-nginx refuses the value and uses its default ({DEFAULT_METHODS})"), "list method names separated by commas, such as \"GET, PUT, POST\""));
                }
                let up = m.to_ascii_uppercase();
                // GET, HEAD and POST need no listing (CORS-safelisted); fetch() sends these
                // three in capitals whatever the page wrote (Fetch standard, "normalize").
                if up != m && ["DELETE", "OPTIONS", "PUT"].contains(&up.as_str()) {
                    lower.push(m);
                }
                if !ms.contains(&up) {
                    ms.push(up);
                }
            }
            if !nginx_takes(v, &METHODS_VALID, true) {
                plan.report.changed(&obj.place(at.node), format!("cors-allow-methods {}: ingress-nginx refuses this spelling (its pattern allows one space after a comma at most, and one line) and sends its default, {DEFAULT_METHODS}; crossgate allows the methods listed", quoted(v)));
            } else if !lower.is_empty() {
                plan.report.changed(&obj.place(at.node), format!("cors-allow-methods {}: ingress-nginx sends {} as written, and browsers compare methods case-sensitively and send DELETE, OPTIONS and PUT in capitals whatever the page wrote, so these never matched; crossgate writes them in capitals, which allows them", quoted(v), lower.join(", ")));
            } else {
                exact_parts.push("methods");
            }
            Field::new(ms, format!("cors-allow-methods {}", quoted(v)))
        }
        _ => {
            exact_parts.push("methods");
            Field::new(
                items(DEFAULT_METHODS)
                    .into_iter()
                    .map(String::from)
                    .collect(),
                format!("cors-allow-methods not set: ingress-nginx's default {DEFAULT_METHODS}"),
            )
        }
    };

    // cors-allow-headers.
    let headers = match ann(anns, "cors-allow-headers") {
        Some((_, at, v)) if !v.trim().is_empty() => {
            let mut hs: Vec<String> = Vec::new();
            for h in items(v) {
                if !h
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    return Err(obj.err(at, format!("cors-allow-headers has {h:?}, which ingress-nginx refuses (letters, digits, - and _ only): it would use its default list instead"), "list header names separated by commas, such as \"Content-Type, X-Request-Id\""));
                }
                let h = h.to_ascii_lowercase();
                if !hs.contains(&h) {
                    hs.push(h);
                }
            }
            if normalized(v).contains('\n') {
                plan.report.changed(&obj.place(at.node), format!("cors-allow-headers spans lines: ingress-nginx refuses that and sends its default list ({DEFAULT_HEADERS}); crossgate allows the headers listed"));
            } else {
                exact_parts.push("request headers");
            }
            Field::new(
                Headers::List(hs),
                format!("cors-allow-headers {}", quoted(v)),
            )
        }
        _ => {
            exact_parts.push("request headers");
            Field::new(
                Headers::List(
                    items(DEFAULT_HEADERS)
                        .into_iter()
                        .map(str::to_ascii_lowercase)
                        .collect(),
                ),
                format!("cors-allow-headers not set: ingress-nginx's default {DEFAULT_HEADERS}"),
            )
        }
    };

    // cors-expose-headers.
    let expose = match ann(anns, "cors-expose-headers") {
        Some((_, at, v)) if !v.trim().is_empty() => {
            let mut hs: Vec<String> = Vec::new();
            let mut star_dropped = false;
            for h in items(v) {
                if h != "*"
                    && !h
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    return Err(obj.err(at, format!("cors-expose-headers has {h:?}, which ingress-nginx refuses (letters, digits, -, _ and * only): it would expose no header"), "list header names separated by commas, such as \"X-Request-Id, X-Total-Count\""));
                }
                if h == "*" && credentials.value {
                    star_dropped = true;
                    continue;
                }
                let h = h.to_ascii_lowercase();
                if !hs.contains(&h) {
                    hs.push(h);
                }
            }
            if star_dropped {
                plan.report.exact(&obj.place(at.node), "cors-expose-headers `*` with credentials: browsers read `*` as a header literally named * when credentials are allowed (Fetch standard), so it exposed nothing; left out (crossgate refuses it there)");
            }
            if !nginx_takes(v, &EXPOSE_VALID, true) {
                plan.report.changed(&obj.place(at.node), format!("cors-expose-headers {}: ingress-nginx refuses this spelling (one space after a comma at most, one line) and exposes no header; crossgate exposes the headers listed", quoted(v)));
            } else {
                exact_parts.push("exposed headers");
            }
            Field::new(hs, format!("cors-expose-headers {}", quoted(v)))
        }
        _ => {
            exact_parts.push("exposed headers");
            Field::new(
                Vec::new(),
                "cors-expose-headers not set: ingress-nginx exposes none",
            )
        }
    };

    // cors-max-age.
    let (age, age_note, age_at) = match ann(anns, "cors-max-age") {
        Some((_, at, v)) if !v.trim().is_empty() => {
            let n = go_int(v).ok_or_else(|| {
                obj.err(at, format!("cors-max-age {v:?} is not a whole number of seconds: ingress-nginx uses its default, {DEFAULT_MAX_AGE} (with a warning in its log)"), "write the seconds, such as \"600\"")
            })?;
            let n = u64::try_from(n).map_err(|_| {
                obj.err(
                    at,
                    format!("cors-max-age {v:?} is negative"),
                    "write 0 or more seconds, such as \"600\"",
                )
            })?;
            (n, format!("cors-max-age {}", quoted(v)), Some(at))
        }
        _ => (
            DEFAULT_MAX_AGE,
            format!("cors-max-age not set: ingress-nginx's default {DEFAULT_MAX_AGE}"),
            None,
        ),
    };
    let max_age = match browser_max_age(age) {
        Some((capped, why)) => {
            let at = age_at.map_or(place.clone(), |a| obj.place(a.node));
            plan.report.changed(
                &at,
                format!(
                    "cors-max-age {age}{}: {why}",
                    if age_at.is_none() {
                        " (ingress-nginx's default)"
                    } else {
                        ""
                    }
                ),
            );
            Field::new(Some(capped), format!("{age_note}; {why}"))
        }
        None => {
            exact_parts.push("max-age");
            Field::new(Some(age), age_note)
        }
    };
    plan.report.exact(
        &place,
        format!(
            "CORS annotations -> cors policy {name} (maps exactly: {})",
            exact_parts.join(", ")
        ),
    );
    plan.report.general("ingress-nginx answers every OPTIONS request of an allowed origin itself (204), even one that is not a preflight, and sends a preflight from an origin it does not allow on to the backend; crossgate answers only real preflights (OPTIONS with Origin and Access-Control-Request-Method), with 204 or a 403 that says why, and sends every other OPTIONS to the backend. Browsers see the same outcome");

    let at = ann(anns, "enable-cors").map_or(obj.node, |(_, at, _)| at.node);
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

/// Ports of the Services in the input, for Ingress backends that name a port.
pub type ServicePorts = BTreeMap<(String, String), Vec<(String, u16)>>;

/// Reads a `kind: Service`'s named ports.
pub fn service_ports(obj: &Object, into: &mut ServicePorts) -> Result<(), ConfigError> {
    let root = obj.root();
    let Some(spec) = obj.get(&root, "spec")? else {
        return Ok(());
    };
    let Some(ports) = obj.get(&spec, "ports")? else {
        return Ok(());
    };
    let entry = into
        .entry((obj.namespace.clone(), obj.name.to_owned()))
        .or_default();
    for p in obj.list(&ports)? {
        if let (Some((_, name)), Some(port)) = (obj.opt_str(&p, "name")?, obj.get(&p, "port")?) {
            entry.push((name.to_owned(), obj.port(&port)?));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_booleans_are_the_spellings_strconv_parsebool_reads() {
        for t in ["true", "True", "TRUE", "1", "t", "T"] {
            assert_eq!(go_bool(t), Some(true), "{t}");
        }
        for f in ["false", "False", "FALSE", "0", "f", "F"] {
            assert_eq!(go_bool(f), Some(false), "{f}");
        }
        for bad in ["yes", "on", " true", "tRuE", ""] {
            assert_eq!(go_bool(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_single_label_wildcard_becomes_a_regex_for_exactly_one_label() {
        let OriginItem::Origin { entry, refused, .. } =
            origin_item("https://*.example.com").unwrap()
        else {
            panic!()
        };
        assert_eq!(refused, None);
        let OriginEntry::Regex(re) = entry else {
            panic!("{entry:?}")
        };
        let re = crate::origin::anchored_regex(&re).unwrap();
        assert!(re.is_match("https://a.example.com"));
        assert!(!re.is_match("https://a.b.example.com"));
        assert!(!re.is_match("https://example.com"));
        assert!(!re.is_match("http://a.example.com"));
        assert!(!re.is_match("https://a.example.com.evil.io"));
    }

    #[test]
    fn a_wildcard_keeps_its_port() {
        let OriginItem::Origin { entry, .. } = origin_item("http://*.example.com:8443").unwrap()
        else {
            panic!()
        };
        let OriginEntry::Regex(re) = entry else {
            panic!()
        };
        let re = crate::origin::anchored_regex(&re).unwrap();
        assert!(re.is_match("http://a.example.com:8443"));
        assert!(!re.is_match("http://a.example.com"));
    }

    #[test]
    fn an_origin_with_a_path_keeps_its_intent_and_says_ingress_nginx_refused_it() {
        let OriginItem::Origin { entry, refused, .. } =
            origin_item("https://App.Example.com/app/").unwrap()
        else {
            panic!()
        };
        assert_eq!(entry, OriginEntry::Exact("https://app.example.com".into()));
        assert!(refused.unwrap().contains("path"));
    }

    #[test]
    fn a_default_port_is_dropped_and_reported_as_a_change() {
        let OriginItem::Origin { entry, changed, .. } =
            origin_item("https://app.example.com:443").unwrap()
        else {
            panic!()
        };
        assert_eq!(entry, OriginEntry::Exact("https://app.example.com".into()));
        assert!(changed.unwrap().contains("never allowed it"));
    }

    #[test]
    fn an_origin_without_a_scheme_is_skipped_like_ingress_nginx_does() {
        assert!(matches!(
            origin_item("app.example.com").unwrap(),
            OriginItem::Skipped(_)
        ));
    }

    #[test]
    fn junk_in_an_origin_list_is_an_error_that_says_what_to_write() {
        let (msg, fix) = origin_item("https://a.example.com https://b.example.com").unwrap_err();
        assert!(msg.contains("is not an origin"), "{msg}");
        assert!(fix.contains("separated by commas"), "{fix}");
        assert!(origin_item("https://api.*.example.com").is_err());
        assert!(origin_item("https://a.example.com:99999").is_err());
    }

    #[test]
    fn ingress_nginx_refuses_two_spaces_after_a_comma_in_methods() {
        assert!(nginx_takes("GET, POST", &METHODS_VALID, true));
        assert!(nginx_takes("GET,POST,", &METHODS_VALID, true));
        assert!(!nginx_takes("GET,  POST", &METHODS_VALID, true));
        assert!(!nginx_takes("GET,\nPOST", &METHODS_VALID, true));
    }

    #[test]
    fn ingress_nginx_refuses_an_origin_list_with_a_path_or_capital_scheme() {
        assert!(nginx_takes(
            "https://a.example.com, http://*.b.example.com:8080, null",
            &ORIGINS_VALID,
            false
        ));
        assert!(!nginx_takes(
            "https://a.example.com/",
            &ORIGINS_VALID,
            false
        ));
        assert!(!nginx_takes("HTTPS://a.example.com", &ORIGINS_VALID, false));
    }
}
