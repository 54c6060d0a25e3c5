//! Gateway API HTTPRoute (`gateway.networking.k8s.io/v1`) with the CORS filter ([`cors`]).
//!
//! Semantics read from the API's own reference (kubernetes-sigs/gateway-api at 4564255a):
//! - `apis/v1/httproute_types.go`, `HTTPCORSFilter`: `*` alone allows every origin, and with
//!   `allowCredentials: true` the gateway must echo the request's origin (never `*`); a host
//!   `*` is a greedy match to the left over any number of labels (`https://*.example.com`
//!   takes a.b.example.com too), and a host of `*` alone takes every host of that scheme;
//!   `allowMethods: ["*"]` and `allowHeaders: ["*"]` may be answered by echoing the request;
//!   `exposeHeaders: ["*"]` cannot be used with credentials; safelisted methods are always
//!   allowed; `maxAge` defaults to 5 (seconds) and is at least 1; `allowCredentials` omitted is
//!   false. `*` may not stand beside other origins, methods or headers (CEL rules).
//! - `apis/v1/shared_types.go`, `CORSOrigin`: the pattern an origin must match.
//! - `HTTPPathMatch` and `PathMatchType`: `PathPrefix` matches whole path elements with a
//!   trailing `/` ignored (`/abc` takes `/abc`, `/abc/`, `/abc/def`, not `/abcd`); `Exact` is
//!   case-sensitive and exact; `RegularExpression` is implementation-specific. A rule without
//!   matches matches `PathPrefix /`.
//! - `HTTPRouteRule.Matches`: precedence is Exact, then the longest PathPrefix, then method,
//!   header and query matches, then the oldest route. RegularExpression's place is
//!   implementation-specific: here it is ranked with the prefixes by length, as Contour does.

mod cors;

use super::manifest::{At, Object};
use super::plan::{Controller, Host, PathRule, Plan, Policy, Port, Route, SourcePath, SourceRule};
use super::Ctx;
use crate::config::ConfigError;
use cors::cors_policy;

pub fn convert(obj: &Object, ctx: &Ctx, plan: &mut Plan) -> Result<(), ConfigError> {
    let root = obj.root();
    let spec = obj.need(&root, "spec")?;
    let ns = obj.namespace.as_str();
    let base = format!("httproute-{ns}-{}", obj.name);
    plan.report.general("HTTPRoute parentRefs are not read: the routes answer on crossgate's own listeners (--listen) for the hostnames they list (every host when they list none), whatever the attached Gateway's listeners restricted");

    let hosts = hosts(obj, &spec)?;
    let Some(rules) = obj.get(&spec, "rules")? else {
        plan.report
            .unsupported(&obj.place(spec.node), "no rules: nothing to route");
        return Ok(());
    };
    for (i, rule) in obj.list(&rules)?.into_iter().enumerate() {
        convert_rule(obj, &rule, &base, i, &hosts, ctx, plan)?;
    }
    Ok(())
}

/// `spec.hostnames`; none is every host.
fn hosts(obj: &Object, spec: &At) -> Result<Vec<Host>, ConfigError> {
    let mut hosts = Vec::new();
    if let Some(hn) = obj.get(spec, "hostnames")? {
        for h in obj.list(&hn)? {
            hosts.push(hostname(obj, &h)?);
        }
    }
    if hosts.is_empty() {
        hosts.push(Host::Any);
    }
    Ok(hosts)
}

/// One of `spec.rules`: a route per host and path match, or the reason it is skipped.
fn convert_rule(
    obj: &Object,
    rule: &At,
    base: &str,
    i: usize,
    hosts: &[Host],
    ctx: &Ctx,
    plan: &mut Plan,
) -> Result<(), ConfigError> {
    let rule_name = obj.opt_str(rule, "name")?.map(|(_, n)| n);
    let what = match rule_name {
        Some(n) => format!("rules[{i}] ({n})"),
        None => format!("rules[{i}]"),
    };
    let place = obj.place(rule.node);

    // The matches first: a rule none of whose matches converts is not converted at all, and
    // its filters (a CORS policy) must not be reported as mapped.
    let matches = matches(obj, rule, &what, plan)?;
    if matches.is_empty() {
        plan.report.unsupported(&place, format!("{what}: none of its matches is converted (see above), so neither is the rule, its backends or its filters (a CORS policy with them)"));
        return Ok(());
    }

    let (policy, skip) = filters(obj, rule, &what, base, i, plan)?;
    if let Some(why) = skip {
        plan.report.unsupported(&place, why);
        return Ok(());
    }

    let backends = backends(obj, rule, &what, ctx, plan)?;
    if backends.is_empty() {
        plan.report.unsupported(&place, format!("{what} has no Service backend: the Gateway API answers such a rule with 500; not converted"));
        return Ok(());
    }

    let policy = policy.map(|p| plan.add_policy(p));
    let routes = RuleRoutes {
        obj,
        rule,
        base,
        i,
        what: &what,
        place: &place,
        backends: &backends,
        policy: &policy,
        many_hosts: hosts.len() > 1,
    };
    for (k, host) in hosts.iter().enumerate() {
        for (j, m) in &matches {
            routes.push(k, host, *j, m, plan);
        }
    }
    Ok(())
}

/// The rule's filters: its CORS policy, and the reason to skip the rule when a filter has no
/// crossgate equivalent.
fn filters(
    obj: &Object,
    rule: &At,
    what: &str,
    base: &str,
    i: usize,
    plan: &mut Plan,
) -> Result<(Option<Policy>, Option<String>), ConfigError> {
    let mut policy = None;
    let mut skip = None;
    if let Some(filters) = obj.get(rule, "filters")? {
        for f in obj.list(&filters)? {
            let type_at = obj.need(&f, "type")?;
            match obj.str(&type_at)? {
                "CORS" => {
                    if policy.is_some() {
                        return Err(obj.err(&f, "a second CORS filter in this rule".into(), "merge them into one (the API refuses a repeated CORS filter: \"CORS filter cannot be repeated\")"));
                    }
                    let name = format!("{base}-{i}");
                    policy = Some(cors_policy(obj, &obj.need(&f, "cors")?, name, plan)?);
                }
                t @ ("RequestHeaderModifier" | "ResponseHeaderModifier" | "RequestMirror") => {
                    plan.report.changed(&obj.place(f.node), format!("{what}: the {t} filter is not converted; requests and responses pass without it"));
                }
                t => skip = Some(format!("{what}: the {t} filter has no crossgate equivalent, and serving the rule without it would change where requests go or who may send them; the rule is not converted")),
            }
        }
    }
    Ok((policy, skip))
}

/// A path match: its index in `matches`, and (type, value, where it is written).
type Match<'a> = (usize, (String, String, Option<At<'a>>));

/// The rule's path matches; one that also matches on headers, query or method is skipped.
fn matches<'a>(
    obj: &Object<'a>,
    rule: &At<'a>,
    what: &str,
    plan: &mut Plan,
) -> Result<Vec<Match<'a>>, ConfigError> {
    // An empty or absent list is the API's default, `PathPrefix /`.
    let listed = match obj.get(rule, "matches")? {
        Some(m) => obj.list(&m)?,
        None => Vec::new(),
    };
    let mut matches = Vec::new();
    if listed.is_empty() {
        matches.push((0, ("PathPrefix".to_owned(), "/".to_owned(), None)));
    }
    for (j, m) in listed.into_iter().enumerate() {
        let mut extra = Vec::new();
        for k in ["headers", "queryParams", "method"] {
            if obj.get(&m, k)?.is_some() {
                extra.push(k);
            }
        }
        if !extra.is_empty() {
            plan.report.unsupported(&obj.place(m.node), format!("{what}.matches[{j}] also matches on {}: crossgate routes on host and path only, and the path alone would take requests the rule does not; not converted", extra.join(", ")));
            continue;
        }
        matches.push((j, path_match(obj, &m)?));
    }
    Ok(matches)
}

/// What the routes of one rule share.
struct RuleRoutes<'r, 'a> {
    obj: &'r Object<'a>,
    rule: &'r At<'a>,
    base: &'r str,
    i: usize,
    what: &'r str,
    place: &'r str,
    backends: &'r [String],
    policy: &'r Option<String>,
    many_hosts: bool,
}

impl RuleRoutes<'_, '_> {
    /// The routes of host `k` and match `j`: one, or two for a `PathPrefix` (its prefix and
    /// its exact half); none for a regex crossgate cannot read.
    fn push(
        &self,
        k: usize,
        host: &Host,
        j: usize,
        (kind, value, at): &(String, String, Option<At>),
        plan: &mut Plan,
    ) {
        let (obj, base, i, what) = (self.obj, self.base, self.i, self.what);
        let mut name = format!("{base}-{i}-{j}");
        if self.many_hosts {
            name.push_str(&format!("-h{k}"));
        }
        let at_place = at
            .as_ref()
            .map_or(self.place.to_owned(), |a| obj.place(a.node));
        let desc = format!("{what}, {}, {kind} {value}", host.describe());
        let at_loc = at
            .as_ref()
            .map_or(obj.loc(self.rule.node), |a| obj.loc(a.node));
        let comment = vec![format!("{} ({at_loc}): {desc}.", obj.label())];
        let route = |path: PathRule,
                     rank: (u8, i64),
                     implied: bool,
                     suffix: &str,
                     extra: Option<String>| {
            let mut comment = comment.clone();
            comment.extend(extra);
            Route {
                name: format!("{name}{suffix}"),
                host: host.clone(),
                path,
                backends: self.backends.to_vec(),
                policy: self.policy.clone(),
                comment,
                path_rank: rank,
                implied,
                tier: 0,
                read_timeout: None,
                strip_prefix: false,
                place: at_place.clone(),
            }
        };
        let (path, converted) = match kind.as_str() {
            "Exact" => (SourcePath::Exact(value.clone()), true),
            "PathPrefix" => (SourcePath::Prefix(value.clone()), true),
            _ => (
                // Implementation-specific; read as the routes read it (see the module).
                SourcePath::Regex {
                    pattern: format!("^(?:{value})$"),
                    written: value.clone(),
                },
                crate::origin::anchored_regex(value).is_ok(),
            ),
        };
        plan.sources.push(SourceRule {
            controller: Controller::Gateway,
            host: host.clone(),
            path,
            backends: self.backends.to_vec(),
            policy: self.policy.clone(),
            converted,
            what: format!("{at_place} {desc}"),
        });
        let len = value.len() as i64;
        match kind.as_str() {
            "Exact" => {
                plan.report
                    .exact(&at_place, format!("{desc} -> route {name}"));
                plan.routes.push(route(
                    PathRule::Exact(value.clone()),
                    (0, -len),
                    false,
                    "",
                    None,
                ));
            }
            "PathPrefix" => prefix_routes(value, &desc, &name, &at_place, plan, route),
            _ => regex_route(value, &desc, &name, &at_place, plan, route),
        }
    }
}

/// `PathPrefix`: `/` alone is one prefix route; any other is its prefix with a trailing `/` and
/// its exact half, as the Gateway API matches whole path elements.
fn prefix_routes(
    value: &str,
    desc: &str,
    name: &str,
    at_place: &str,
    plan: &mut Plan,
    route: impl Fn(PathRule, (u8, i64), bool, &str, Option<String>) -> Route,
) {
    let trimmed = value.trim_end_matches('/');
    if trimmed.is_empty() {
        plan.report
            .exact(at_place, format!("{desc} -> route {name}"));
        plan.routes.push(route(
            PathRule::Prefix("/".into()),
            (1, -1),
            false,
            "",
            None,
        ));
    } else {
        let slash = format!("{trimmed}/");
        plan.report.exact(at_place, format!("{desc} -> routes {name} (prefix {slash}) and {name}-exact ({trimmed}): whole path elements, as the Gateway API matches them"));
        plan.routes.push(route(
            PathRule::Prefix(slash.clone()),
            (1, -(trimmed.len() as i64)),
            false,
            "",
            Some(format!("PathPrefix matches whole path elements: {trimmed} and {slash}..., never {trimmed}x.")),
        ));
        plan.routes.push(route(
            PathRule::Exact(trimmed.to_owned()),
            (0, -(trimmed.len() as i64)),
            true,
            "-exact",
            Some(format!("The exact half of PathPrefix {value}.")),
        ));
    }
}

/// `RegularExpression`: read in Rust regex syntax, or skipped when crossgate cannot read it.
fn regex_route(
    value: &str,
    desc: &str,
    name: &str,
    at_place: &str,
    plan: &mut Plan,
    route: impl Fn(PathRule, (u8, i64), bool, &str, Option<String>) -> Route,
) {
    if let Err(e) = crate::origin::anchored_regex(value) {
        plan.report.unsupported(
            at_place,
            format!(
                "{desc}: not a regex crossgate (Rust regex syntax) reads ({}); not converted",
                e.message.lines().next().unwrap_or("")
            ),
        );
        return;
    }
    plan.report.changed(at_place, format!("{desc} -> route {name}: RegularExpression is implementation-specific; crossgate reads it in Rust regex syntax, case-sensitive and anchored at both ends (it must match the whole path, as Envoy-based gateways do), and tries it among the prefixes of its host by length, longest first (as Contour does): check that it means the same"));
    plan.routes.push(route(
        PathRule::Regex(value.to_owned()),
        (1, -(value.len() as i64)),
        false,
        "",
        None,
    ));
}

fn hostname(obj: &Object, at: &At) -> Result<Host, ConfigError> {
    let h = obj.str(at)?;
    let lower = h.to_ascii_lowercase();
    let (wild, name) = match lower.strip_prefix("*.") {
        Some(s) => (true, s),
        None => (false, lower.as_str()),
    };
    let ok = !name.is_empty()
        && name
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if !ok {
        return Err(obj.err(
            at,
            format!("invalid hostname {h:?}"),
            "write a DNS name such as api.example.com, or *.example.com (the wildcard is the whole first label)",
        ));
    }
    // Gateway API: `*.example.com` is a suffix match over one or more labels, as crossgate's.
    Ok(if wild {
        Host::Wildcard(name.to_owned())
    } else {
        Host::Exact(name.to_owned())
    })
}

/// (type, value, node) of a match's path; defaults PathPrefix and `/`.
#[allow(clippy::type_complexity)]
fn path_match<'a>(
    obj: &Object<'a>,
    m: &At<'a>,
) -> Result<(String, String, Option<At<'a>>), ConfigError> {
    let Some(p) = obj.get(m, "path")? else {
        return Ok(("PathPrefix".into(), "/".into(), Some(m.clone())));
    };
    obj.known_keys(&p, &["type", "value"])?;
    let kind = match obj.opt_str(&p, "type")? {
        None => "PathPrefix",
        Some((at, t)) => match t {
            "PathPrefix" | "Exact" | "RegularExpression" => t,
            _ => {
                return Err(obj.err(
                    &at,
                    format!("unknown path match type {t:?}"),
                    "use PathPrefix, Exact or RegularExpression",
                ))
            }
        },
    };
    let value = obj.opt_str(&p, "value")?;
    let value = value.map_or("/", |(_, v)| v);
    if kind != "RegularExpression" && !value.starts_with('/') {
        return Err(obj.err(
            &p,
            format!("path {value:?} does not start with /"),
            format!("write \"/{value}\" (the API server requires an absolute path)"),
        ));
    }
    Ok((kind.into(), value.into(), Some(p)))
}

/// The rule's Service backends, registered in the plan.
fn backends(
    obj: &Object,
    rule: &At,
    what: &str,
    ctx: &Ctx,
    plan: &mut Plan,
) -> Result<Vec<String>, ConfigError> {
    let mut out = Vec::new();
    let mut weights = Vec::new();
    let Some(refs) = obj.get(rule, "backendRefs")? else {
        return Ok(out);
    };
    for b in obj.list(&refs)? {
        let place = obj.place(b.node);
        let kind = obj.opt_str(&b, "kind")?.map_or("Service", |(_, k)| k);
        let group = obj.opt_str(&b, "group")?.map_or("", |(_, g)| g);
        if kind != "Service" || !(group.is_empty() || group == "core") {
            plan.report.unsupported(
                &place,
                format!(
                    "{what}: backend {kind} (group {group:?}): only Service backends are converted"
                ),
            );
            continue;
        }
        let weight = match obj.get(&b, "weight")? {
            None => 1,
            Some(w) => obj.str(&w)?.parse::<u32>().map_err(|_| {
                obj.err(
                    &w,
                    "weight is not a whole number".into(),
                    "write a weight from 0 to 1000000",
                )
            })?,
        };
        if weight == 0 {
            plan.report.exact(
                &place,
                format!("{what}: a backend of weight 0 gets no requests, and is left out"),
            );
            continue;
        }
        if obj.get(&b, "filters")?.is_some() {
            plan.report.changed(&place, format!("{what}: filters on a backendRef are not converted; requests reach the backend without them"));
        }
        let name = obj.str(&obj.need(&b, "name")?)?;
        let namespace = obj
            .opt_str(&b, "namespace")?
            .map_or(obj.namespace.clone(), |(_, n)| n.to_owned());
        let port = obj.port(&obj.need(&b, "port")?)?;
        weights.push(weight);
        out.push(ctx.service(plan, &namespace, name, Port::Number(port), &place));
    }
    if weights.iter().any(|w| *w != weights[0]) {
        plan.report.changed(&obj.place(rule.node), format!("{what}: backend weights {weights:?} are not converted: crossgate spreads requests evenly over the servers of an upstream"));
    }
    Ok(out)
}
