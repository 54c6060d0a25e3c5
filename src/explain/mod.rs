//! `crossgate explain`: what the proxy would answer a browser's cross-origin request, and why,
//! computed by the same functions that serve requests.

use std::fmt::Write;

use std::ops::ControlFlow;

use http::{HeaderName, Method};
use pingora::http::ResponseHeader;

use crate::cors::{is_preflight, CorsPolicy, OriginCheck};
use crate::dispatch::{dispatch, Action, Routed, Serve};
use crate::rules::Rules;

mod browser;
#[cfg(test)]
mod tests;

use browser::{normalize_method, request, safelisted, split_url, url_origin};

/// The answer: the report to print and whether the browser would let the page read the
/// response.
pub struct Explanation {
    pub report: String,
    pub allowed: bool,
}

fn headers_of(resp: &ResponseHeader) -> String {
    let mut lines: Vec<String> = resp
        .headers
        .iter()
        .map(|(k, v)| {
            format!(
                "    {}: {}",
                k.as_str(),
                String::from_utf8_lossy(v.as_bytes())
            )
        })
        .collect();
    lines.sort();
    if lines.is_empty() {
        "    (none)\n".into()
    } else {
        lines.join("\n") + "\n"
    }
}

fn origin_reason(policy: &CorsPolicy, origin: &str) -> String {
    match policy.matching_entry(origin) {
        Some(entry) => format!(
            "origin {origin} is allowed by allow_origins entry {entry:?} of policy {}",
            policy.name
        ),
        None => {
            let mut why = format!(
                "origin {origin} matches no allow_origins entry of policy {}",
                policy.name
            );
            if origin == "null" {
                why.push_str(" (null matches only a literal \"null\" entry)");
            }
            if let Some(f) = &policy.report_only {
                let _ = write!(
                    why,
                    "; the policy is report-only, so it is served as policy {} allows",
                    f.name
                );
            }
            why
        }
    }
}

/// Explains what a page on `origin` gets for `method url` with `headers` ("Name: value"),
/// by asking [`dispatch`] what the proxy would do with the browser's requests.
pub fn explain(
    rules: &Rules,
    url: &str,
    origin: &str,
    method: &str,
    headers: &[String],
    credentials: bool,
) -> Result<Explanation, String> {
    let (host, target) = split_url(url)?;
    // The request target keeps its query (JSONP reads it); routes match the path.
    let target = target.split('#').next().unwrap_or("/");
    let path = target.split('?').next().unwrap_or("/");
    let method = normalize_method(method);
    let method =
        Method::from_bytes(method.as_bytes()).map_err(|_| format!("{method:?} is not a method"))?;
    let parsed = parse_headers(headers)?;
    let mut sent: Vec<(&str, Option<&str>)> = vec![("origin", Some(origin))];
    sent.extend(parsed.iter().map(|(n, v)| (n.as_str(), v.as_deref())));
    let actual = request(method.as_str(), target, &sent)?;
    let action = dispatch(rules, host, &actual);

    let mut out = String::new();
    let page = Page {
        url,
        origin,
        host,
        path,
    };
    let (routed, policy) = match route_and_policy(rules, action, &page, &mut out) {
        ControlFlow::Continue(found) => found,
        ControlFlow::Break(allowed) => {
            return Ok(Explanation {
                report: out,
                allowed,
            })
        }
    };
    if let ControlFlow::Break(allowed) = channel(&routed.serve, &mut out) {
        return Ok(Explanation {
            report: out,
            allowed,
        });
    }
    let mut allowed = preflight(rules, &page, target, &method, &parsed, &mut out)?;
    allowed &= actual_response(policy, &routed, credentials, &mut out)?;
    let _ = writeln!(
        out,
        "result: {}",
        if allowed {
            "ALLOWED: the page can read the response"
        } else {
            "REFUSED: the browser will not let the page read the response"
        }
    );
    Ok(Explanation {
        report: out,
        allowed,
    })
}

/// Where the request comes from and goes to.
struct Page<'a> {
    url: &'a str,
    origin: &'a str,
    host: &'a str,
    path: &'a str,
}

/// The `--header` arguments ("Name: value", or a bare name), checked as header names.
fn parse_headers(headers: &[String]) -> Result<Vec<(HeaderName, Option<String>)>, String> {
    let mut parsed = Vec::new();
    for h in headers {
        let (name, value) = match h.split_once(':') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (h.trim(), None),
        };
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("{name:?} is not a header name"))?;
        parsed.push((name, value.map(str::to_owned)));
    }
    Ok(parsed)
}

/// The route and its CORS policy, or (`Break`) the answer when there is none to ask: a refused
/// path, a same-origin request, no route, or a route without a policy.
fn route_and_policy<'r>(
    rules: &'r Rules,
    action: Action,
    page: &Page,
    out: &mut String,
) -> ControlFlow<bool, (Routed, &'r CorsPolicy)> {
    let Page {
        url,
        origin,
        host,
        path,
    } = *page;
    let own_endpoint = matches!(action, Action::Bridge(_) | Action::Beacon(_));
    let routed = match action {
        Action::BadPath(why) => {
            let _ = writeln!(
                out,
                "path: {path} is refused with 400 by crossgate before routing: {why}"
            );
            return ControlFlow::Break(false);
        }
        Action::Route(r) => Some(r),
        _ => None,
    };
    if let Some(r) = routed.as_ref() {
        if let Some(forward) = r.forward_path.as_deref() {
            let why = match &rules.routes[r.route].strip_prefix {
                Some(prefix) => format!(
                    "route {} strips its prefix {prefix}",
                    rules.routes[r.route].name
                ),
                None => "server.ambiguous_paths is forward_normalized".to_owned(),
            };
            let _ = writeln!(out, "path: routed and forwarded as {forward} ({why})");
        }
    }
    if url_origin(url) == origin {
        let _ = writeln!(
            out,
            "same-origin: the page and the URL share the origin {origin}; CORS does not apply"
        );
        return ControlFlow::Break(true);
    }
    let Some(routed) = routed else {
        let _ = if own_endpoint {
            writeln!(
                out,
                "{path} is served by crossgate itself (the bridge or a beacon), not by a route"
            )
        } else {
            writeln!(
                out,
                "route: none matches host {host} path {path}: crossgate answers 404 itself"
            )
        };
        return ControlFlow::Break(own_endpoint);
    };
    let route = &rules.routes[routed.route];
    let _ = writeln!(
        out,
        "route: {} (upstream {})",
        route.name, route.upstream.name
    );
    let Some(policy) = route.cors.as_deref() else {
        let _ = writeln!(out, "cors: this route leaves CORS to the backend: crossgate adds no CORS headers and forwards preflights");
        return ControlFlow::Break(false);
    };
    let _ = writeln!(out, "{}", origin_reason(policy, origin));
    ControlFlow::Continue((routed, policy))
}

/// What JSONP and WebSocket routes add, or (`Break`) the answer when the channel decides it.
fn channel(serve: &Serve, out: &mut String) -> ControlFlow<bool> {
    match serve {
        Serve::JsonpRefused { why, .. } => {
            let _ = writeln!(out, "jsonp: refused by crossgate: {why}");
            return ControlFlow::Break(false);
        }
        Serve::Jsonp { callback, .. } => {
            let _ = writeln!(
                out,
                "jsonp: a 2xx JSON answer is wrapped as {}(...), readable by the including page",
                callback.as_str()
            );
        }
        Serve::WebSocketRefused(why) => {
            let _ = writeln!(out, "websocket: the upgrade is refused with 403: {why}");
            return ControlFlow::Break(false);
        }
        Serve::WebSocket(_) => {
            let _ = writeln!(
                out,
                "websocket: the upgrade goes through (browsers apply no CORS to WebSockets)"
            );
            return ControlFlow::Break(true);
        }
        _ => {}
    }
    ControlFlow::Continue(())
}

/// Would the browser send a preflight, and would its answer let the request go? `false` when
/// the preflight is refused.
fn preflight(
    rules: &Rules,
    page: &Page,
    target: &str,
    method: &Method,
    parsed: &[(HeaderName, Option<String>)],
    out: &mut String,
) -> Result<bool, String> {
    let mut reasons = Vec::new();
    if !matches!(*method, Method::GET | Method::HEAD | Method::POST) {
        reasons.push(format!("method {method} is not CORS-safelisted"));
    }
    let mut unsafe_names: Vec<String> = parsed
        .iter()
        .filter(|(n, v)| !safelisted(n.as_str(), v.as_deref()))
        .map(|(n, _)| n.as_str().to_owned())
        .collect();
    unsafe_names.sort();
    unsafe_names.dedup();
    for n in &unsafe_names {
        reasons.push(format!("header {n} is not CORS-safelisted"));
    }

    if reasons.is_empty() {
        let _ = writeln!(out, "preflight: no (a simple request)");
        return Ok(true);
    }
    let _ = writeln!(out, "preflight: yes ({})", reasons.join("; "));
    let asked = unsafe_names.join(",");
    let mut pre = vec![
        ("origin", Some(page.origin)),
        ("access-control-request-method", Some(method.as_str())),
    ];
    if !unsafe_names.is_empty() {
        pre.push(("access-control-request-headers", Some(asked.as_str())));
    }
    let preflight = request("OPTIONS", target, &pre)?;
    debug_assert!(is_preflight(&preflight));
    let Action::Route(Routed {
        serve: Serve::Preflight(p),
        ..
    }) = dispatch(rules, page.host, &preflight)
    else {
        return Err("the preflight was not answered by the route's policy".into());
    };
    let _ = writeln!(
        out,
        "preflight answer: {} (by crossgate; never forwarded)",
        p.header.status.as_u16()
    );
    out.push_str(&headers_of(&p.header));
    if let Some(body) = &p.body {
        let _ = writeln!(out, "    body: {}", body.trim_end());
    }
    Ok(p.header.status.as_u16() == 204)
}

/// The headers crossgate sets on the actual response, and whether the browser lets the page
/// read it.
fn actual_response(
    policy: &CorsPolicy,
    routed: &Routed,
    credentials: bool,
    out: &mut String,
) -> Result<bool, String> {
    let check = routed
        .serve
        .origin()
        .cloned()
        .unwrap_or(OriginCheck::NoOrigin);
    let mut resp = ResponseHeader::build(200, None).map_err(|e| e.to_string())?;
    policy.apply_actual(&mut resp, &check);
    let _ = writeln!(out, "response: forwarded to the backend; crossgate sets these headers on its answer (errors included):");
    out.push_str(&headers_of(&resp));
    // `resp` started empty: its Allow-Origin is exactly what the decision serves.
    let served_acao = resp.headers.get("access-control-allow-origin");
    let mut readable = served_acao.is_some();
    if credentials {
        // A credentialed request needs the exact origin echoed and Allow-Credentials: true.
        let creds = resp
            .headers
            .get("access-control-allow-credentials")
            .is_some_and(|v| v == "true");
        if served_acao.is_some_and(|v| v == "*") || !creds {
            let _ = writeln!(out, "credentials: refused by the browser (it needs the exact origin and Access-Control-Allow-Credentials: true)");
            readable = false;
        }
    }
    if let OriginCheck::WouldDeny { .. } = &check {
        let _ = writeln!(out, "report-only: counted as would_deny and logged");
    }
    Ok(readable)
}
