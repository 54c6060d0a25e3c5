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
mod paths;
mod values;

use std::collections::BTreeMap;

use super::manifest::{At, Object};
use super::plan::{Controller, Host, PathRule, Plan, Port, Route, SourceRule};
use super::Ctx;
use crate::config::ConfigError;
use cors::{cors_policy, CORS_ANNOTATIONS, PREFIX};
use origin::valid_host_chars;
use paths::{ingress_paths, rewritten, source_path};
use values::go_bool;

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

/// Whether ingress-nginx of the class converted serves this Ingress: `Err(why)` when it
/// ignores it (another class; no class with `--skip-classless`).
pub fn served(obj: &Object, ctx: &Ctx) -> Result<Result<(), String>, ConfigError> {
    Ok(match ingress_class(obj)? {
        Some((_, class)) if class == ctx.ingress_class => Ok(()),
        Some((_, class)) => Err(format!("ingress class {class:?}: only Ingresses of the class {:?} are converted (--ingress-class), as ingress-nginx of that class serves no other; skipped", ctx.ingress_class)),
        None if ctx.skip_classless => Err("no ingress class: skipped (--skip-classless, as ingress-nginx without --watch-ingress-without-class)".into()),
        None => Ok(()),
    })
}

pub fn convert(obj: &Object, ctx: &Ctx, plan: &mut Plan) -> Result<(), ConfigError> {
    let anns = annotations(obj)?;
    let place = obj.place(obj.node);
    if let Err(why) = served(obj, ctx)? {
        plan.report.skipped(&place, why);
        return Ok(());
    }
    if let Some((_, at, _)) = anns
        .iter()
        .find(|(k, _, v)| *k == "canary" && go_bool(v) == Some(true))
    {
        // ingress-nginx builds no server or location from a canary: it adds it to the main
        // Ingress's locations as a weighted (or header/cookie-chosen) alternative.
        plan.report.unsupported(&obj.place(at.node), "canary Ingress: ingress-nginx sends a share of the main Ingress's traffic here (by weight, header or cookie); crossgate has no traffic splitting, so it is not converted and the main Ingress's route takes all of it");
        return Ok(());
    }
    let policy = cors_policy(obj, &anns, plan)?.map(|p| plan.add_policy(p));
    other_annotations(&anns, &place, plan);
    let read_timeout = read_timeout(obj, &anns, plan)?;
    let first_route = plan.routes.len();
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
        let hosts = rule_hosts(obj, &spec, plan)?;
        default_backend(obj, &d, &base, &policy, hosts, ctx, plan)?;
    }
    for r in &mut plan.routes[first_route..] {
        r.read_timeout = read_timeout;
    }
    Ok(())
}

/// The hosts of an Ingress's rules (`None`: it has no rules), each once.
fn rule_hosts(obj: &Object, spec: &At, plan: &mut Plan) -> Result<Option<Vec<Host>>, ConfigError> {
    let Some(rules) = obj.get(spec, "rules")? else {
        return Ok(None);
    };
    let mut hosts: Vec<Host> = Vec::new();
    for rule in obj.list(&rules)? {
        let host = match obj.opt_str(&rule, "host")? {
            None => Host::Any,
            Some((at, h)) => ingress_host(obj, &at, h, plan)?,
        };
        if !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    Ok((!hosts.is_empty()).then_some(hosts))
}

/// `proxy-read-timeout` (seconds): the `read_timeout` of the Ingress's routes.
fn read_timeout(
    obj: &Object,
    anns: &[(&str, At, &str)],
    plan: &mut Plan,
) -> Result<Option<u64>, ConfigError> {
    let Some((_, at, value)) = anns.iter().find(|(k, _, _)| *k == "proxy-read-timeout") else {
        return Ok(None);
    };
    match value.trim().parse::<u64>() {
        Ok(s) if s > 0 => {
            plan.report.exact(
                &obj.place(at.node),
                format!("proxy-read-timeout {value:?} -> read_timeout: {s}s on its routes"),
            );
            Ok(Some(s))
        }
        _ => Err(obj.err(
            at,
            format!("proxy-read-timeout {value:?} is not a number of seconds"),
            "write a whole number of seconds, such as \"120\"",
        )),
    }
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
        let regex_host = ctx.regex_hosts.contains(&host_key);
        let source = |j: usize, p: &At, backends: Vec<String>, converted: bool| {
            Ok::<_, ConfigError>(SourceRule {
                controller: Controller::IngressNginx,
                host: host.clone(),
                path: source_path(obj, p, regex_host)?,
                backends,
                policy: self.policy.clone(),
                converted,
                what: format!("{} spec.rules[{i}].http.paths[{j}]", obj.place(p.node)),
            })
        };
        let paths = obj.list(&obj.need(&http, "paths")?)?;
        for (j, p) in paths.into_iter().enumerate() {
            let Some(backend) = backend(obj, &obj.need(&p, "backend")?, ctx, plan)? else {
                continue;
            };
            let name = format!("{base}-{i}-{j}");
            let routes = match self.rewrite {
                Some((_, target)) => rewritten(obj, &p, target, &host, &name, plan)?,
                None => ingress_paths(obj, &p, &host, regex_host, &name, plan)?,
            };
            plan.sources
                .push(source(j, &p, vec![backend.clone()], !routes.is_empty())?);
            for mut r in routes {
                r.backends = vec![backend.clone()];
                r.policy = self.policy.clone();
                plan.routes.push(r);
            }
        }
        Ok(())
    }
}

/// `spec.defaultBackend`. ingress-nginx makes it the root location (`/`) of the servers this
/// Ingress's rules create, so it serves those hosts' requests that no path takes; only an
/// Ingress without rules sets the catch-all server's, for any host. `hosts`: the rules' hosts
/// (`None`: no rules).
fn default_backend(
    obj: &Object,
    d: &At,
    base: &str,
    policy: &Option<String>,
    hosts: Option<Vec<Host>>,
    ctx: &Ctx,
    plan: &mut Plan,
) -> Result<(), ConfigError> {
    let Some(backend) = backend(obj, d, ctx, plan)? else {
        return Ok(());
    };
    let place = obj.place(d.node);
    let scoped = hosts.is_some();
    let hosts = hosts.unwrap_or_else(|| vec![Host::Any]);
    for (k, host) in hosts.iter().enumerate() {
        let name = match (scoped, k) {
            (false, _) | (true, 0) => format!("{base}-default"),
            (true, k) => format!("{base}-default-{k}"),
        };
        let text = if scoped {
            format!("spec.defaultBackend -> route {name}, {}, prefix /, after that host's other routes (ingress-nginx: the root location of the server this Ingress's rules make)", host.describe())
        } else {
            format!("spec.defaultBackend -> route {name}, any host, prefix /, after every other route (an Ingress without rules: ingress-nginx's catch-all server)")
        };
        plan.report.exact(&place, text);
        plan.sources.push(SourceRule {
            controller: Controller::IngressNginx,
            host: host.clone(),
            path: super::plan::SourcePath::Default,
            backends: vec![backend.clone()],
            policy: policy.clone(),
            converted: true,
            what: format!("{place} spec.defaultBackend"),
        });
        plan.routes.push(Route {
            name,
            host: host.clone(),
            path: PathRule::Prefix("/".into()),
            backends: vec![backend.clone()],
            policy: policy.clone(),
            comment: vec![format!(
                "{} ({}): spec.defaultBackend, for requests to {} that no other route takes.",
                obj.label(),
                obj.loc(d.node),
                host.describe()
            )],
            path_rank: (1, -1),
            implied: false,
            tier: 1,
            read_timeout: None,
            strip_prefix: false,
            place: place.clone(),
        });
    }
    Ok(())
}

/// The Ingress's class: `spec.ingressClassName`, else the older `kubernetes.io/ingress.class`
/// annotation.
fn ingress_class<'a>(obj: &Object<'a>) -> Result<Option<(At<'a>, &'a str)>, ConfigError> {
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
    Ok(from_spec.or(from_annotation))
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
        if CORS_ANNOTATIONS.contains(name)
            || ["use-regex", "rewrite-target", "proxy-read-timeout"].contains(name)
        {
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
