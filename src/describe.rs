//! Human-readable summaries of compiled rules, for `crossgate check`.

use std::fmt::Write;

use crate::config::UpstreamHeaders;
use crate::cors::{AllowHeaders, AllowOrigin, CorsPolicy};
use crate::rules::{HostMatch, PathMatch, Route, Rules};

pub fn policy(p: &CorsPolicy) -> String {
    let origins = match &p.origins {
        AllowOrigin::Any => "any (answered with *)".to_owned(),
        AllowOrigin::List(l) if l.entries.is_empty() => "none".to_owned(),
        AllowOrigin::List(l) => l.entries.join(", "),
    };
    let headers = match &p.headers {
        AllowHeaders::Mirror => "mirror".to_owned(),
        AllowHeaders::List { value: None, .. } => "none".to_owned(),
        AllowHeaders::List { value: Some(v), .. } => v.to_str().unwrap_or_default().to_owned(),
    };
    let mut out = format!(
        "origins: {origins}; methods: {}; headers: {headers}",
        p.methods_value.to_str().unwrap_or_default()
    );
    if let Some(v) = &p.expose_value {
        let _ = write!(out, "; expose: {}", v.to_str().unwrap_or_default());
    }
    if p.credentials {
        out.push_str("; credentials");
    }
    if let Some(v) = &p.max_age {
        let _ = write!(out, "; max_age: {}s", v.to_str().unwrap_or_default());
    }
    if p.private_network {
        out.push_str("; private network");
    }
    let upstream = match p.upstream_headers {
        UpstreamHeaders::Override => "override",
        UpstreamHeaders::Passthrough => "passthrough",
    };
    let _ = write!(out, "; upstream CORS headers: {upstream}");
    if let Some(f) = &p.report_only {
        let _ = write!(
            out,
            "; REPORT ONLY (what it would refuse is served as policy {} allows)",
            f.name
        );
    }
    out
}

/// What `crossgate check` prints after a successful compile.
pub fn rules(r: &Rules) -> String {
    let mut out = String::new();
    let listen: Vec<String> = r.listen.iter().map(|a| a.to_string()).collect();
    let _ = writeln!(out, "listen: {}", listen.join(", "));
    let _ = writeln!(out, "upstreams:");
    for u in &r.upstreams {
        let servers: Vec<String> = u
            .servers()
            .iter()
            .map(|b| format!("{} ({})", b.written, b.addr))
            .collect();
        let health = u.health.as_ref().map_or("no health check".to_owned(), |h| {
            format!("health check GET {} every {:?}", h.path, h.interval)
        });
        let _ = writeln!(out, "  {}: {}; {}", u.name, servers.join(", "), health);
    }
    if !r.policies.is_empty() {
        let _ = writeln!(out, "cors_policies:");
        for (name, p) in &r.policies {
            let _ = writeln!(out, "  {name}: {}", policy(p));
        }
    }
    let _ = writeln!(out, "routes (first match wins):");
    for (i, route) in r.routes.iter().enumerate() {
        let _ = writeln!(out, "  {i}. {}", route_line(r, route));
    }
    for b in &r.beacons {
        let forward = b.forward.as_ref().map_or("not forwarded".to_owned(), |f| {
            format!("forwarded to {}{}", f.upstream.name, f.path)
        });
        let _ = writeln!(out, "beacon {}: {} ({forward})", b.name, b.path);
    }
    if let Some(b) = &r.bridge {
        let _ = writeln!(
            out,
            "bridge: {} ({})",
            b.path,
            b.csp.to_str().unwrap_or_default()
        );
    }
    if let Some(p) = &r.default_cors {
        let _ = writeln!(out, "no route: 404 with cors {}", p.name);
    } else {
        let _ = writeln!(out, "no route: 404 without CORS headers");
    }
    out
}

/// One route of `rules`: its host, path, upstream, CORS and channel settings.
fn route_line(r: &Rules, route: &Route) -> String {
    let host = match &route.host {
        HostMatch::Any => "any host".to_owned(),
        HostMatch::Exact(h) => format!("host {h}"),
        HostMatch::Suffix(s) => format!("host *{s}"),
    };
    let path = match &route.path {
        PathMatch::Prefix(p) => format!("path prefix {p}"),
        PathMatch::Exact(p) => format!("path = {p}"),
        PathMatch::Regex(re) => format!("path regex {}", re.as_str()),
    };
    let cors = match &route.cors {
        None => "CORS left to the backend".to_owned(),
        Some(p) if r.policies.values().any(|n| std::sync::Arc::ptr_eq(n, p)) => {
            format!("cors policy {}", p.name)
        }
        Some(p) => format!("cors {{{}}}", policy(p)),
    };
    let extras = extras(route);
    let extras = if extras.is_empty() {
        String::new()
    } else {
        format!("; {}", extras.join("; "))
    };
    format!(
        "{}: {host}, {path} -> {}; {cors}{extras}",
        route.name, route.upstream.name
    )
}

/// A route's read timeout and channels (JSONP, SSE, WebSocket).
fn extras(route: &Route) -> Vec<String> {
    let mut extras = Vec::new();
    if let Some(t) = route.read_timeout {
        extras.push(format!("read timeout {t:?}"));
    }
    if let Some(j) = &route.jsonp {
        let referer = if j.allow_without_referer {
            "allowed"
        } else {
            "refused"
        };
        extras.push(format!(
            "jsonp (?{}=, envelope {}, no Referer {referer})",
            j.param, j.envelope
        ));
    }
    if let Some(s) = &route.sse {
        extras.push(match s.heartbeat {
            Some(h) => format!("sse heartbeat {h:?}"),
            None => "sse".to_owned(),
        });
    }
    if let Some(ws) = &route.websocket {
        let no_origin = if ws.allow_without_origin {
            "allowed"
        } else {
            "refused"
        };
        extras.push(format!(
            "websocket (idle {:?}, no Origin {no_origin})",
            ws.idle_timeout
        ));
    }
    extras
}
