//! The HTTPRoute CORS filter (`HTTPCORSFilter` in apis/v1/httproute_types.go, `CORSOrigin` in
//! apis/v1/shared_types.go, kubernetes-sigs/gateway-api at 4564255a) as a crossgate policy.
//! Values the API server would refuse are errors here too.

use std::sync::LazyLock;

use regex::Regex;

use super::super::browser_max_age;
use super::super::manifest::{At, Object};
use super::super::plan::{Field, Headers, OriginEntry, Origins, Plan, Policy};
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

pub(super) fn cors_policy(
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
