//! Kubernetes Ingress (`networking.k8s.io/v1`) with ingress-nginx's CORS annotations
//! ([`cors`]).
//!
//! Routes follow what ingress-nginx writes into nginx (kubernetes/ingress-nginx at dbb11b92):
//! - `internal/ingress/controller/location.go`: a Prefix path `/p` becomes the prefix `/p/`
//!   plus the exact `/p` (so not `/pq`); ImplementationSpecific is nginx's plain prefix
//!   location (`/p` also takes `/pq`).
//! - `docs/user-guide/ingress-path-matching.md`: with `use-regex` (or `rewrite-target`) on any
//!   Ingress of a host, every path of that host is a case-insensitive regex anchored at its
//!   start, tried longest first; a host `*.example.com` matches exactly one label.

mod cors;
mod origin;

use std::collections::BTreeMap;

use super::manifest::{At, Object};
use super::plan::{Host, PathRule, Plan, Port, Route};
use super::Ctx;
use crate::config::ConfigError;
use cors::{cors_policy, go_bool, CORS_ANNOTATIONS, PREFIX};
use origin::valid_host_chars;

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
        .find(|(k, _, v)| *k == "rewrite-target" && !v.is_empty())
        .map(|(_, at, target)| (at, *target));

    let root = obj.root();
    let spec = obj.need(&root, "spec")?;
    tls(obj, &spec, plan)?;
    let ns = obj.namespace.as_str();
    let base = format!("ingress-{ns}-{}", obj.name);
    if let Some(rules) = obj.get(&spec, "rules")? {
        let ingress = Ingress {
            obj,
            ctx,
            base: &base,
            policy: &policy,
            rewrite,
        };
        for (i, rule) in obj.list(&rules)?.into_iter().enumerate() {
            ingress.rule(i, &rule, plan)?;
        }
    }
    if let Some(d) = obj.get(&spec, "defaultBackend")? {
        default_backend(obj, &d, &base, &policy, ctx, plan)?;
    }
    Ok(())
}

/// `spec.tls` is not converted: the report says how crossgate serves HTTPS instead.
fn tls(obj: &Object, spec: &At, plan: &mut Plan) -> Result<(), ConfigError> {
    if let Some(tls) = obj.get(spec, "tls")? {
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
    Ok(())
}

/// What the rules of one Ingress share.
struct Ingress<'r, 'a> {
    obj: &'r Object<'a>,
    ctx: &'r Ctx,
    base: &'r str,
    policy: &'r Option<String>,
    /// The `rewrite-target` annotation, when set: where, and its value.
    rewrite: Option<(&'r At<'a>, &'a str)>,
}

impl Ingress<'_, '_> {
    /// `spec.rules[i]`: a route (or two) per path with a Service backend.
    fn rule(&self, i: usize, rule: &At, plan: &mut Plan) -> Result<(), ConfigError> {
        let (obj, ctx, base) = (self.obj, self.ctx, self.base);
        let (host, host_key) = match obj.opt_str(rule, "host")? {
            None => (Host::Any, String::new()),
            Some((at, h)) => (ingress_host(obj, &at, h, plan)?, h.to_ascii_lowercase()),
        };
        let Some(http) = obj.get(rule, "http")? else {
            plan.report.unsupported(&obj.place(rule.node), format!("spec.rules[{i}] ({}) has no http paths: ingress-nginx sends its requests to the default backend; not converted", host.describe()));
            return Ok(());
        };
        if let Some((t, target)) = self.rewrite {
            plan.report.unsupported(&obj.place(t.node), format!("rewrite-target {target:?}: crossgate forwards the path the browser sent and does not rewrite it, so the paths of spec.rules[{i}] ({}) are not converted (their backends would get other paths than today)", host.describe()));
            return Ok(());
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
                r.policy = self.policy.clone();
                plan.routes.push(r);
            }
        }
        Ok(())
    }
}

/// `spec.defaultBackend`: a catch-all route after every other.
fn default_backend(
    obj: &Object,
    d: &At,
    base: &str,
    policy: &Option<String>,
    ctx: &Ctx,
    plan: &mut Plan,
) -> Result<(), ConfigError> {
    if let Some(backend) = backend(obj, d, ctx, plan)? {
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
    let (path_type, path) = path_of(obj, p)?;
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
        return Ok(regex_path(path, &what, name, &place, plan, route, comment));
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
        "Prefix" => prefix_paths(path, &what, name, &place, plan, route, comment),
        _ => string_prefix_path(path, &what, name, &place, plan, route, comment),
    })
}

/// An Ingress path's `pathType` and `path`, checked as the API server checks them.
fn path_of<'a>(obj: &Object<'a>, p: &At<'a>) -> Result<(&'a str, &'a str), ConfigError> {
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
    Ok((path_type, path))
}

/// A path of a host where ingress-nginx makes every path a regex.
fn regex_path(
    path: &str,
    what: &str,
    name: &str,
    place: &str,
    plan: &mut Plan,
    route: impl Fn(PathRule, (u8, i64), bool, &str, Vec<String>) -> Route,
    comment: impl Fn(&str) -> Vec<String>,
) -> Vec<Route> {
    // nginx.tmpl: `location ~* "^PATH"`; crossgate anchors both ends, so `.*` keeps
    // the end open. The path is a PCRE regex to nginx; Rust's syntax is close but not
    // the same (no look-around or back-references).
    let re = format!("(?i)(?:{path}).*");
    if let Err(e) = crate::origin::anchored_regex(&re) {
        plan.report.unsupported(place, format!("{what}: ingress-nginx reads it as a regex (use-regex or rewrite-target on this host), which Rust's regex syntax cannot express ({}); not converted", e.message.lines().next().unwrap_or("")));
        return Vec::new();
    }
    plan.report.exact(place, format!("{what} -> route {name}: ingress-nginx matches every path of this host as a case-insensitive regex from the start of the path (use-regex or rewrite-target on an Ingress of the host), and so does the route"));
    vec![route(
        PathRule::Regex(re),
        (1, -(path.len() as i64)),
        false,
        "",
        comment("ingress-nginx: `location ~* \"^PATH\"` (use-regex or rewrite-target on this host): a case-insensitive regex from the start of the path."),
    )]
}

/// A `Prefix` path other than `/`: location.go's prefix `/p/` and exact `/p`, whole path
/// segments only.
fn prefix_paths(
    path: &str,
    what: &str,
    name: &str,
    place: &str,
    plan: &mut Plan,
    route: impl Fn(PathRule, (u8, i64), bool, &str, Vec<String>) -> Route,
    comment: impl Fn(&str) -> Vec<String>,
) -> Vec<Route> {
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
            (0, -(path.len() as i64)),
            true,
            "-exact",
            comment(&format!("The exact half of the Prefix {path}.")),
        ));
        plan.report.exact(
            place,
            format!("{what} -> routes {name} (prefix {slash}) and {name}-exact ({path})"),
        );
    } else {
        plan.report
            .exact(place, format!("{what} -> route {name} (prefix {slash})"));
    }
    out
}

/// `ImplementationSpecific` without use-regex: nginx's plain `location PATH`, a string prefix
/// (`/p` also takes `/pq`), the longest winning.
fn string_prefix_path(
    path: &str,
    what: &str,
    name: &str,
    place: &str,
    plan: &mut Plan,
    route: impl Fn(PathRule, (u8, i64), bool, &str, Vec<String>) -> Route,
    comment: impl Fn(&str) -> Vec<String>,
) -> Vec<Route> {
    plan.report.exact(
        place,
        format!("{what} -> route {name}: a plain string prefix, as nginx's `location {path}`"),
    );
    vec![route(
        PathRule::Prefix(path.into()),
        (1, -(path.len() as i64)),
        false,
        "",
        comment("ImplementationSpecific is nginx's plain prefix location: a string prefix."),
    )]
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
