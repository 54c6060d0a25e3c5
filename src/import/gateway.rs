//! Gateway API HTTPRoute (`gateway.networking.k8s.io/v1`) with the CORS filter.
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
//!   header and query matches, then the oldest route.

use std::sync::LazyLock;

use regex::Regex;

use super::manifest::{At, Object};
use super::plan::{
    Field, Headers, Host, OriginEntry, Origins, PathRule, Plan, Policy, Port, Route,
};
use super::{browser_max_age, Ctx};
use crate::config::ConfigError;

/// `CORSOrigin`'s validation pattern (shared_types.go).
static CORS_ORIGIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(^\*$)|(^(http(s)?)://(((\*\.)?([a-zA-Z0-9\-]+\.)*[a-zA-Z0-9-]+|\*)(:([0-9]{1,5}))?)$)",
    )
    .expect("a valid pattern")
});

/// `HTTPMethodWithWildcard`.
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];
/// What `allowMethods: ["*"]` becomes: the methods above that a page can send (the Fetch
/// standard forbids CONNECT and TRACE).
const FETCH_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"];

pub fn convert(obj: &Object, ctx: &Ctx, plan: &mut Plan) -> Result<(), ConfigError> {
    let root = obj.root();
    let spec = obj.need(&root, "spec")?;
    let ns = obj.namespace.as_str();
    let base = format!("httproute-{ns}-{}", obj.name);
    plan.report.general("HTTPRoute parentRefs are not read: the routes answer on crossgate's own listeners (--listen) for the hostnames they list (every host when they list none), whatever the attached Gateway's listeners restricted");

    let mut hosts = Vec::new();
    if let Some(hn) = obj.get(&spec, "hostnames")? {
        for h in obj.list(&hn)? {
            hosts.push(hostname(obj, &h)?);
        }
    }
    if hosts.is_empty() {
        hosts.push(Host::Any);
    }

    let Some(rules) = obj.get(&spec, "rules")? else {
        plan.report
            .unsupported(&obj.place(spec.node), "no rules: nothing to route");
        return Ok(());
    };
    for (i, rule) in obj.list(&rules)?.into_iter().enumerate() {
        let rule_name = obj.opt_str(&rule, "name")?.map(|(_, n)| n);
        let what = match rule_name {
            Some(n) => format!("rules[{i}] ({n})"),
            None => format!("rules[{i}]"),
        };
        let place = obj.place(rule.node);

        let mut policy = None;
        let mut skip = None;
        if let Some(filters) = obj.get(&rule, "filters")? {
            for f in obj.list(&filters)? {
                let type_at = obj.need(&f, "type")?;
                match obj.str(&type_at)? {
                    "CORS" => {
                        if policy.is_some() {
                            return Err(obj.err(&f, "a second CORS filter in this rule".into(), "merge them into one (the API allows one filter of each type per rule)"));
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
        if let Some(why) = skip {
            plan.report.unsupported(&place, why);
            continue;
        }

        let backends = backends(obj, &rule, &what, ctx, plan)?;
        if backends.is_empty() {
            plan.report.unsupported(&place, format!("{what} has no Service backend: the Gateway API answers such a rule with 500; not converted"));
            continue;
        }

        // An empty or absent list is the API's default, `PathPrefix /`.
        let listed = match obj.get(&rule, "matches")? {
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

        let policy = policy.map(|p| plan.add_policy(p));
        for (k, host) in hosts.iter().enumerate() {
            for (j, (kind, value, at)) in &matches {
                let mut name = format!("{base}-{i}-{j}");
                if hosts.len() > 1 {
                    name.push_str(&format!("-h{k}"));
                }
                let at_place = at.as_ref().map_or(place.clone(), |a| obj.place(a.node));
                let desc = format!("{what}, {}, {kind} {value}", host.describe());
                let at_loc = at.as_ref().map_or(obj.loc(rule.node), |a| obj.loc(a.node));
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
                        backends: backends.clone(),
                        policy: policy.clone(),
                        comment,
                        path_rank: rank,
                        implied,
                        tier: 0,
                        place: at_place.clone(),
                    }
                };
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
                    "PathPrefix" => {
                        let trimmed = value.trim_end_matches('/');
                        if trimmed.is_empty() {
                            plan.report
                                .exact(&at_place, format!("{desc} -> route {name}"));
                            plan.routes.push(route(
                                PathRule::Prefix("/".into()),
                                (1, -1),
                                false,
                                "",
                                None,
                            ));
                        } else {
                            let slash = format!("{trimmed}/");
                            plan.report.exact(&at_place, format!("{desc} -> routes {name} (prefix {slash}) and {name}-exact ({trimmed}): whole path elements, as the Gateway API matches them"));
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
                    _ => {
                        if let Err(e) = crate::origin::anchored_regex(value) {
                            plan.report.unsupported(&at_place, format!("{desc}: not a regex crossgate (Rust regex syntax) reads ({}); not converted", e.message.lines().next().unwrap_or("")));
                            continue;
                        }
                        plan.report.changed(&at_place, format!("{desc} -> route {name}: RegularExpression is implementation-specific; crossgate reads it in Rust regex syntax, case-sensitive and anchored at both ends (it must match the whole path, as Envoy-based gateways do): check that it means the same"));
                        plan.routes.push(route(
                            PathRule::Regex(value.clone()),
                            (2, 0),
                            false,
                            "",
                            None,
                        ));
                    }
                }
            }
        }
    }
    Ok(())
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

fn bool_field(obj: &Object, at: &At) -> Result<bool, ConfigError> {
    match obj.str(at)? {
        "true" | "True" | "TRUE" => Ok(true),
        "false" | "False" | "FALSE" => Ok(false),
        v => Err(obj.err(at, format!("{v:?} is not a boolean"), "write true or false")),
    }
}

fn strings<'a>(
    obj: &Object<'a>,
    at: &Option<At<'a>>,
) -> Result<Vec<(At<'a>, &'a str)>, ConfigError> {
    let mut out = Vec::new();
    if let Some(at) = at {
        for item in obj.list(at)? {
            let s = obj.str(&item)?;
            out.push((item, s));
        }
    }
    Ok(out)
}

fn star_alone(obj: &Object, items: &[(At, &str)], field: &str) -> Result<bool, ConfigError> {
    let star = items.iter().find(|(_, s)| *s == "*");
    if let Some((at, _)) = star.filter(|_| items.len() > 1) {
        return Err(obj.err(
            at,
            format!("{field} has `*` beside other values: the API server refuses that"),
            format!("write {field}: [\"*\"] alone, or list the values without `*`"),
        ));
    }
    Ok(star.is_some())
}

fn header_name(obj: &Object, at: &At, h: &str) -> Result<String, ConfigError> {
    if h.is_empty()
        || !h
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    {
        return Err(obj.err(
            at,
            format!("invalid header name {h:?}"),
            "write a header name such as X-Request-Id",
        ));
    }
    Ok(h.to_ascii_lowercase())
}

fn cors_policy(
    obj: &Object,
    cors: &At,
    name: String,
    plan: &mut Plan,
) -> Result<Policy, ConfigError> {
    obj.known_keys(
        cors,
        &[
            "allowOrigins",
            "allowMethods",
            "allowHeaders",
            "exposeHeaders",
            "allowCredentials",
            "maxAge",
        ],
    )?;
    let place = obj.place(cors.node);
    let mut exact_parts = Vec::new();
    let credentials = match obj.get(cors, "allowCredentials")? {
        None => false,
        Some(at) => bool_field(obj, &at)?,
    };
    let cred_note = if obj.get(cors, "allowCredentials")?.is_some() {
        format!("allowCredentials {credentials}")
    } else {
        "allowCredentials not set: false".to_owned()
    };

    // allowOrigins.
    let origin_items = strings(obj, &obj.get(cors, "allowOrigins")?)?;
    let any = star_alone(obj, &origin_items, "allowOrigins")?;
    let mut list: Vec<Field<OriginEntry>> = Vec::new();
    for (at, o) in &origin_items {
        if *o == "*" {
            continue;
        }
        if !CORS_ORIGIN.is_match(o) {
            return Err(obj.err(at, format!("{o:?} is not a CORSOrigin: the API server refuses it"), "write http(s)://host[:port], https://*.example.com, https://* or * (no path, no trailing slash)"));
        }
        let lower = o.to_ascii_lowercase();
        let (scheme, rest) = lower.split_once("://").unwrap_or(("https", &lower));
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().ok().filter(|p| *p > 0)),
            None => (rest, None),
        };
        if rest.contains(':') && port.is_none() {
            return Err(obj.err(
                at,
                format!("{o:?}: the port must be from 1 to 65535"),
                "fix the port",
            ));
        }
        let port_part = match port {
            Some(p) if Some(p) != crate::origin::default_port(scheme) => format!(":{p}"),
            _ => String::new(),
        };
        let (entry, note) = if host == "*" {
            // Every host of the scheme (and port): what the Gateway API's `https://*` says.
            let re = format!(
                r"{scheme}://(\[[0-9a-f:.]+\]|[^/:\[\]]+){}",
                regex::escape(&port_part)
            );
            (
                OriginEntry::Regex(re),
                format!(
                    "{o}: every host of {scheme}{}",
                    if port_part.is_empty() {
                        String::new()
                    } else {
                        format!(" on port {}", &port_part[1..])
                    }
                ),
            )
        } else if let Some(suffix) = host.strip_prefix("*.") {
            (
                OriginEntry::Wildcard(format!("{scheme}://*.{suffix}{port_part}")),
                o.to_string(),
            )
        } else {
            let c = crate::origin::canonical_exact(&format!("{scheme}://{host}{port_part}"))
                .map_err(|e| obj.err(at, e.message, e.fix))?;
            (OriginEntry::Exact(c), o.to_string())
        };
        if host == "*" {
            plan.report.exact(&obj.place(at.node), format!("allowOrigins {o}: every origin of the scheme, a regex (crossgate check warns that it matches any such origin, which is what it says)"));
        }
        if !list.iter().any(|f| f.value == entry) {
            list.push(Field::new(entry, note));
        }
    }
    let origins_note = if origin_items.is_empty() {
        plan.report.exact(
            &place,
            "no allowOrigins: the filter allows no origin, and neither does the policy",
        );
        "allowOrigins not set: no origin".to_owned()
    } else {
        format!(
            "allowOrigins {:?}",
            origin_items.iter().map(|(_, s)| *s).collect::<Vec<_>>()
        )
    };
    let (origins, credentials) = if any {
        if credentials {
            plan.report.changed(&place, format!("policy {name}: allowOrigins [\"*\"] with allowCredentials true makes the gateway echo every origin with credentials, so any site could act as the signed-in user; crossgate refuses that at load. The policy is allow_origins: any with allow_credentials: false: requests without credentials are answered as before, credentialed ones are refused by browsers. List the origins to keep credentials"));
            (
                Field::new(Origins::Any, origins_note),
                Field::new(false, format!("{cred_note}, not with every origin: that would let any site act as the user")),
            )
        } else {
            exact_parts.push("any origin");
            (
                Field::new(Origins::Any, origins_note),
                Field::new(false, cred_note),
            )
        }
    } else {
        exact_parts.push("origins");
        if credentials {
            exact_parts.push("credentials");
        }
        (
            Field::new(Origins::List(list), origins_note),
            Field::new(credentials, cred_note),
        )
    };

    // allowMethods.
    let method_items = strings(obj, &obj.get(cors, "allowMethods")?)?;
    let methods = if star_alone(obj, &method_items, "allowMethods")? {
        plan.report.changed(&place, format!("allowMethods [\"*\"]: crossgate lists the methods it allows, so this is {}; a page's other methods (such as WebDAV's PROPFIND) are refused now", FETCH_METHODS.join(", ")));
        Field::new(
            FETCH_METHODS.iter().map(|m| m.to_string()).collect(),
            "allowMethods [\"*\"]: every method a page can send",
        )
    } else if method_items.is_empty() {
        exact_parts.push("methods");
        Field::new(
            vec!["GET".into(), "HEAD".into(), "POST".into()],
            "allowMethods not set: only GET, HEAD and POST, which browsers always allow",
        )
    } else {
        let mut ms: Vec<String> = Vec::new();
        for (at, m) in &method_items {
            if !METHODS.contains(m) {
                return Err(obj.err(
                    at,
                    format!("{m:?} is not an HTTPMethod"),
                    format!(
                        "use one of {} (in capitals), or [\"*\"]",
                        METHODS.join(", ")
                    ),
                ));
            }
            if !ms.iter().any(|x| x == m) {
                ms.push(m.to_string());
            }
        }
        exact_parts.push("methods");
        Field::new(
            ms,
            format!(
                "allowMethods {:?}",
                method_items.iter().map(|(_, s)| *s).collect::<Vec<_>>()
            ),
        )
    };

    // allowHeaders.
    let header_items = strings(obj, &obj.get(cors, "allowHeaders")?)?;
    exact_parts.push("request headers");
    let headers = if star_alone(obj, &header_items, "allowHeaders")? {
        Field::new(Headers::Mirror, "allowHeaders [\"*\"]: whatever the preflight asks for (echoed, as the Gateway API allows)")
    } else {
        let mut hs: Vec<String> = Vec::new();
        for (at, h) in &header_items {
            let h = header_name(obj, at, h)?;
            if !hs.contains(&h) {
                hs.push(h);
            }
        }
        let note = if header_items.is_empty() {
            "allowHeaders not set: none".to_owned()
        } else {
            format!(
                "allowHeaders {:?}",
                header_items.iter().map(|(_, s)| *s).collect::<Vec<_>>()
            )
        };
        Field::new(Headers::List(hs), note)
    };

    // exposeHeaders.
    let expose_items = strings(obj, &obj.get(cors, "exposeHeaders")?)?;
    let mut expose: Vec<String> = Vec::new();
    let mut star_dropped = false;
    for (at, h) in &expose_items {
        if *h == "*" && credentials.value {
            star_dropped = true;
            continue;
        }
        let h = if *h == "*" {
            "*".to_owned()
        } else {
            header_name(obj, at, h)?
        };
        if !expose.contains(&h) {
            expose.push(h);
        }
    }
    if star_dropped {
        plan.report.changed(&place, "exposeHeaders `*` with allowCredentials true: the Gateway API says the gateway cannot use `*` then (browsers read it as a header named *), and crossgate refuses it; left out, so only the headers listed beside it (and the CORS-safelisted ones) are readable");
    } else {
        exact_parts.push("exposed headers");
    }
    let expose_note = if expose_items.is_empty() {
        "exposeHeaders not set: none".to_owned()
    } else {
        format!(
            "exposeHeaders {:?}",
            expose_items.iter().map(|(_, s)| *s).collect::<Vec<_>>()
        )
    };
    let expose = Field::new(expose, expose_note);

    // maxAge.
    let (age, age_note, age_place) = match obj.get(cors, "maxAge")? {
        None => (
            5,
            "maxAge not set: the Gateway API's default, 5".to_owned(),
            place.clone(),
        ),
        Some(at) => {
            let v = obj.str(&at)?;
            let n = v.parse::<u64>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                obj.err(
                    &at,
                    format!("maxAge {v:?} is not a whole number of seconds of at least 1"),
                    "write the seconds, such as 600 (the API's minimum is 1)",
                )
            })?;
            (n, format!("maxAge {n}"), obj.place(at.node))
        }
    };
    let max_age = match browser_max_age(age) {
        Some((capped, why)) => {
            plan.report
                .changed(&age_place, format!("maxAge {age}: {why}"));
            Field::new(Some(capped), format!("{age_note}; {why}"))
        }
        None => {
            exact_parts.push("max age");
            Field::new(Some(age), age_note)
        }
    };
    plan.report.exact(
        &place,
        format!(
            "CORS filter -> cors policy {name} (maps exactly: {})",
            exact_parts.join(", ")
        ),
    );
    Ok(Policy {
        comment: vec![format!(
            "{} ({}): the rule's CORS filter.",
            obj.label(),
            obj.loc(cors.node)
        )],
        name,
        origins,
        methods,
        headers,
        expose,
        credentials,
        max_age,
    })
}
