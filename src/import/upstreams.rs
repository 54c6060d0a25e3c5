//! The upstreams of the config written: each route's Services, reached by their cluster names
//! or by the `--upstream NAME=HOST:PORT` given for them.

use std::collections::BTreeMap;
use std::path::Path;

use super::plan::{Plan, Port, Service};
use super::Options;
use crate::config::ConfigError;

/// An upstream of the config: the Services a route spreads its requests over.
pub(crate) struct Upstream {
    pub name: String,
    /// `host:port`, with a comment naming the Service.
    pub servers: Vec<(String, String)>,
}

fn arg_error(message: String, fix: impl Into<String>) -> ConfigError {
    ConfigError::new(
        Path::new("--upstream"),
        None,
        String::new(),
        message,
        fix.into(),
    )
}

/// Turns the Services routes name into upstreams; a route whose Service port is a name that
/// nothing resolves is dropped, with the flag that would resolve it.
pub(super) fn upstreams(plan: &mut Plan, options: &Options) -> Result<Vec<Upstream>, ConfigError> {
    let overrides = overrides(plan, options)?;
    let mut out: Vec<Upstream> = Vec::new();
    let mut kept = Vec::new();
    let mut unresolved: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for mut r in std::mem::take(&mut plan.routes) {
        let mut servers = Vec::new();
        let mut missing = false;
        for key in &r.backends {
            let s = &plan.services[key];
            match server(key, s, &overrides, options) {
                Some(x) => servers.push(x),
                None => {
                    unresolved
                        .entry(key.clone())
                        .or_default()
                        .push(r.name.clone());
                    missing = true;
                }
            }
        }
        if missing {
            continue;
        }
        let name = r.backends.join("+");
        if !out.iter().any(|u| u.name == name) {
            out.push(Upstream {
                name: name.clone(),
                servers,
            });
        }
        r.backends = vec![name];
        kept.push(r);
    }
    plan.routes = kept;
    for (key, routes) in unresolved {
        let s = &plan.services[&key];
        let Port::Name(port) = &s.port else { continue };
        plan.report.unsupported(&s.first_seen, format!("Service {}/{} port {port:?}: a named port is a number only the Service object knows, and it is not in the input, so routes {} are not converted; add the Service's manifest to the input, or give --upstream {key}=HOST:PORT", s.namespace, s.name, routes.join(", ")));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The `--upstream NAME=HOST:PORT` flags, each checked: a `host:port`, and a name the import
/// routes to.
fn overrides<'o>(
    plan: &Plan,
    options: &'o Options,
) -> Result<BTreeMap<&'o str, &'o str>, ConfigError> {
    let mut overrides: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, addr) in &options.upstreams {
        let port_ok = addr
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
        if !port_ok {
            return Err(arg_error(
                format!("{name}={addr}: the address is not host:port"),
                "write --upstream NAME=HOST:PORT, such as default-web-80=10.0.0.5:8080",
            ));
        }
        let used = |key: &str| {
            plan.routes
                .iter()
                .any(|r| r.backends.iter().any(|b| b == key))
        };
        if !used(name) {
            let known: Vec<&str> = plan
                .services
                .keys()
                .map(String::as_str)
                .filter(|k| used(k))
                .collect();
            return Err(arg_error(
                format!("{name}={addr}: the import has no upstream named {name:?}"),
                format!(
                    "name one of the Services the manifests route to: {}",
                    if known.is_empty() {
                        "(none)".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
        overrides.insert(name, addr);
    }
    Ok(overrides)
}

/// A Service's server and its comment: the `--upstream` given for it, or its cluster name;
/// `None` for a named port that nothing resolved.
fn server(
    key: &str,
    s: &Service,
    overrides: &BTreeMap<&str, &str>,
    options: &Options,
) -> Option<(String, String)> {
    let svc = format!("Service {}/{}", s.namespace, s.name);
    if let Some(addr) = overrides.get(key) {
        return Some((
            addr.to_string(),
            format!("{svc} ({key}), given with --upstream"),
        ));
    }
    match &s.port {
        Port::Number(p) => {
            let note = s.note.as_ref().map_or(String::new(), |n| format!(": {n}"));
            Some((
                format!("{}.{}.{}:{p}", s.name, s.namespace, options.service_domain),
                format!("{svc} port {p}{note}"),
            ))
        }
        Port::Name(_) => None,
    }
}
