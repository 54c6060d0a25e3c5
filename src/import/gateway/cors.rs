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

/// One CORS filter being read: where it is, and which of its parts map exactly (for the report's
/// last line about it).
struct Filter<'o, 'a> {
    obj: &'o Object<'a>,
    cors: &'o At<'a>,
    place: String,
    exact: Vec<&'static str>,
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
    let mut filter = Filter {
        obj,
        cors,
        place: obj.place(cors.node),
        exact: Vec::new(),
    };
    let (credentials, cred_note) = filter.credentials()?;
    let (origins, credentials) = filter.origins(&name, credentials, cred_note, plan)?;
    let methods = filter.methods(plan)?;
    let headers = filter.headers()?;
    let expose = filter.expose(credentials.value, plan)?;
    let max_age = filter.max_age(plan)?;
    plan.report.exact(
        &filter.place,
        format!(
            "CORS filter -> cors policy {name} (maps exactly: {})",
            filter.exact.join(", ")
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

/// The notes of a list field: what was written, or `unset` when nothing was.
fn listed(field: &str, items: &[(At, &str)], unset: &str) -> String {
    if items.is_empty() {
        unset.to_owned()
    } else {
        format!(
            "{field} {:?}",
            items.iter().map(|(_, s)| *s).collect::<Vec<_>>()
        )
    }
}

impl<'a> Filter<'_, 'a> {
    fn strings(&self, key: &str) -> Result<Vec<(At<'a>, &'a str)>, ConfigError> {
        strings(self.obj, &self.obj.get(self.cors, key)?)
    }

    /// `allowCredentials` and its note.
    fn credentials(&self) -> Result<(bool, String), ConfigError> {
        let (obj, cors) = (self.obj, self.cors);
        let credentials = match obj.get(cors, "allowCredentials")? {
            None => false,
            Some(at) => bool_field(obj, &at)?,
        };
        let cred_note = if obj.get(cors, "allowCredentials")?.is_some() {
            format!("allowCredentials {credentials}")
        } else {
            "allowCredentials not set: false".to_owned()
        };
        Ok((credentials, cred_note))
    }

    /// `allowOrigins`, and the credentials they leave: `*` with credentials is refused at load,
    /// so it becomes any origin without them.
    fn origins(
        &mut self,
        name: &str,
        credentials: bool,
        cred_note: String,
        plan: &mut Plan,
    ) -> Result<(Field<Origins>, Field<bool>), ConfigError> {
        let obj = self.obj;
        let origin_items = self.strings("allowOrigins")?;
        let any = star_alone(obj, &origin_items, "allowOrigins")?;
        let mut list: Vec<Field<OriginEntry>> = Vec::new();
        for (at, o) in &origin_items {
            if *o == "*" {
                continue;
            }
            let (entry, note) = origin_entry(obj, at, o, plan)?;
            if !list.iter().any(|f| f.value == entry) {
                list.push(Field::new(entry, note));
            }
        }
        if origin_items.is_empty() {
            plan.report.exact(
                &self.place,
                "no allowOrigins: the filter allows no origin, and neither does the policy",
            );
        }
        let origins_note = listed(
            "allowOrigins",
            &origin_items,
            "allowOrigins not set: no origin",
        );
        Ok(if any {
            if credentials {
                plan.report.changed(&self.place, format!("policy {name}: allowOrigins [\"*\"] with allowCredentials true makes the gateway echo every origin with credentials, so any site could act as the signed-in user; crossgate refuses that at load. The policy is allow_origins: any with allow_credentials: false: requests without credentials are answered as before, credentialed ones are refused by browsers. List the origins to keep credentials"));
                (
                    Field::new(Origins::Any, origins_note),
                    Field::new(false, format!("{cred_note}, not with every origin: that would let any site act as the user")),
                )
            } else {
                self.exact.push("any origin");
                (
                    Field::new(Origins::Any, origins_note),
                    Field::new(false, cred_note),
                )
            }
        } else {
            self.exact.push("origins");
            if credentials {
                self.exact.push("credentials");
            }
            (
                Field::new(Origins::List(list), origins_note),
                Field::new(credentials, cred_note),
            )
        })
    }

    /// `allowMethods`: `*` becomes the methods a page can send.
    fn methods(&mut self, plan: &mut Plan) -> Result<Field<Vec<String>>, ConfigError> {
        let obj = self.obj;
        let method_items = self.strings("allowMethods")?;
        Ok(if star_alone(obj, &method_items, "allowMethods")? {
            plan.report.changed(&self.place, format!("allowMethods [\"*\"]: crossgate lists the methods it allows, so this is {}; a page's other methods (such as WebDAV's PROPFIND) are refused now", FETCH_METHODS.join(", ")));
            Field::new(
                FETCH_METHODS.iter().map(|m| m.to_string()).collect(),
                "allowMethods [\"*\"]: every method a page can send",
            )
        } else if method_items.is_empty() {
            self.exact.push("methods");
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
            self.exact.push("methods");
            Field::new(ms, listed("allowMethods", &method_items, ""))
        })
    }

    /// `allowHeaders`: `*` mirrors what the preflight asks for.
    fn headers(&mut self) -> Result<Field<Headers>, ConfigError> {
        let obj = self.obj;
        let header_items = self.strings("allowHeaders")?;
        self.exact.push("request headers");
        Ok(if star_alone(obj, &header_items, "allowHeaders")? {
            Field::new(Headers::Mirror, "allowHeaders [\"*\"]: whatever the preflight asks for (echoed, as the Gateway API allows)")
        } else {
            let mut hs: Vec<String> = Vec::new();
            for (at, h) in &header_items {
                let h = header_name(obj, at, h)?;
                if !hs.contains(&h) {
                    hs.push(h);
                }
            }
            let note = listed("allowHeaders", &header_items, "allowHeaders not set: none");
            Field::new(Headers::List(hs), note)
        })
    }

    /// `exposeHeaders`: `*` is left out when credentials are allowed.
    fn expose(
        &mut self,
        credentials: bool,
        plan: &mut Plan,
    ) -> Result<Field<Vec<String>>, ConfigError> {
        let obj = self.obj;
        let expose_items = self.strings("exposeHeaders")?;
        let mut expose: Vec<String> = Vec::new();
        let mut star_dropped = false;
        for (at, h) in &expose_items {
            if *h == "*" && credentials {
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
            plan.report.changed(&self.place, "exposeHeaders `*` with allowCredentials true: the Gateway API says the gateway cannot use `*` then (browsers read it as a header named *), and crossgate refuses it; left out, so only the headers listed beside it (and the CORS-safelisted ones) are readable");
        } else {
            self.exact.push("exposed headers");
        }
        let expose_note = listed(
            "exposeHeaders",
            &expose_items,
            "exposeHeaders not set: none",
        );
        Ok(Field::new(expose, expose_note))
    }

    /// `maxAge`, the Gateway API's default 5, capped at what browsers keep.
    fn max_age(&mut self, plan: &mut Plan) -> Result<Field<Option<u64>>, ConfigError> {
        let obj = self.obj;
        let (age, age_note, age_place) = match obj.get(self.cors, "maxAge")? {
            None => (
                5,
                "maxAge not set: the Gateway API's default, 5".to_owned(),
                self.place.clone(),
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
        Ok(match browser_max_age(age) {
            Some((capped, why)) => {
                plan.report
                    .changed(&age_place, format!("maxAge {age}: {why}"));
                Field::new(Some(capped), format!("{age_note}; {why}"))
            }
            None => {
                self.exact.push("max age");
                Field::new(Some(age), age_note)
            }
        })
    }
}

/// One origin of `allowOrigins` (not `*`), checked as the API server checks it.
fn origin_entry(
    obj: &Object,
    at: &At,
    o: &str,
    plan: &mut Plan,
) -> Result<(OriginEntry, String), ConfigError> {
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
    Ok((entry, note))
}
