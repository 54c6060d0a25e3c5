//! `crossgate explain`: what the proxy would answer a browser's cross-origin request, and why,
//! computed by the same functions that serve requests.

use std::fmt::Write;

use http::{HeaderName, Method};
use pingora::http::{RequestHeader, ResponseHeader};

use crate::cors::{is_preflight, CorsPolicy, OriginCheck};
use crate::dispatch::{dispatch, Action, Routed, Serve};
use crate::rules::Rules;

/// The answer: the report to print and whether the browser would let the page read the
/// response.
pub struct Explanation {
    pub report: String,
    pub allowed: bool,
}

/// Request headers a page may set without a preflight (Fetch, "CORS-safelisted
/// request-header"); `content-type` only with one of three values.
fn safelisted(name: &str, value: Option<&str>) -> bool {
    match name {
        "accept" | "accept-language" | "content-language" => true,
        "content-type" => value.is_some_and(|v| {
            let essence = v
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            matches!(
                essence.as_str(),
                "application/x-www-form-urlencoded" | "multipart/form-data" | "text/plain"
            )
        }),
        _ => false,
    }
}

/// Fetch normalizes these method names to upper case; others stay as written.
fn normalize_method(m: &str) -> String {
    match m.to_ascii_uppercase().as_str() {
        u @ ("DELETE" | "GET" | "HEAD" | "OPTIONS" | "POST" | "PUT") => u.to_owned(),
        _ => m.to_owned(),
    }
}

/// The URL's origin (`scheme://host[:port]`, default port left out).
fn url_origin(url: &str) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let end = url[scheme_end..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| scheme_end + i);
    let origin = url[..end].to_ascii_lowercase();
    origin
        .strip_suffix(":80")
        .filter(|o| o.starts_with("http://"))
        .or_else(|| {
            origin
                .strip_suffix(":443")
                .filter(|o| o.starts_with("https://"))
        })
        .map_or(origin.clone(), str::to_owned)
}

fn split_url(url: &str) -> Result<(&str, &str), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("{url:?} is not an http:// or https:// URL"))?;
    let (authority, path) = rest
        .find('/')
        .map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
    let host = crate::proxy::strip_port(authority);
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    Ok((host, path))
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

/// A request head for `explain` (built the way a browser would send it).
fn request(
    method: &str,
    target: &str,
    headers: &[(&str, Option<&str>)],
) -> Result<RequestHeader, String> {
    let mut req =
        RequestHeader::build(method, target.as_bytes(), None).map_err(|e| e.to_string())?;
    for (n, v) in headers {
        req.append_header(n.to_string(), v.unwrap_or(""))
            .map_err(|e| e.to_string())?;
    }
    Ok(req)
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
    let mut sent: Vec<(&str, Option<&str>)> = vec![("origin", Some(origin))];
    sent.extend(parsed.iter().map(|(n, v)| (n.as_str(), v.as_deref())));
    let actual = request(method.as_str(), target, &sent)?;
    let action = dispatch(rules, host, &actual);

    let own_endpoint = matches!(action, Action::Bridge(_) | Action::Beacon(_));
    let mut out = String::new();
    let routed = match action {
        Action::BadPath(why) => {
            let _ = writeln!(
                out,
                "path: {path} is refused with 400 by crossgate before routing: {why}"
            );
            return Ok(Explanation {
                report: out,
                allowed: false,
            });
        }
        Action::Route(r) => Some(r),
        _ => None,
    };
    if let Some(forward) = routed.as_ref().and_then(|r| r.forward_path.as_deref()) {
        let _ = writeln!(
            out,
            "path: routed and forwarded as {forward} (server.ambiguous_paths is forward_normalized)"
        );
    }
    if url_origin(url) == origin {
        let _ = writeln!(
            out,
            "same-origin: the page and the URL share the origin {origin}; CORS does not apply"
        );
        return Ok(Explanation {
            report: out,
            allowed: true,
        });
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
        return Ok(Explanation {
            report: out,
            allowed: own_endpoint,
        });
    };
    let route = &rules.routes[routed.route];
    let _ = writeln!(
        out,
        "route: {} (upstream {})",
        route.name, route.upstream.name
    );
    let Some(policy) = route.cors.as_deref() else {
        let _ = writeln!(out, "cors: this route leaves CORS to the backend: crossgate adds no CORS headers and forwards preflights");
        return Ok(Explanation {
            report: out,
            allowed: false,
        });
    };
    let _ = writeln!(out, "{}", origin_reason(policy, origin));
    match &routed.serve {
        Serve::JsonpRefused { why, .. } => {
            let _ = writeln!(out, "jsonp: refused by crossgate: {why}");
            return Ok(Explanation {
                report: out,
                allowed: false,
            });
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
            return Ok(Explanation {
                report: out,
                allowed: false,
            });
        }
        Serve::WebSocket(_) => {
            let _ = writeln!(
                out,
                "websocket: the upgrade goes through (browsers apply no CORS to WebSockets)"
            );
            return Ok(Explanation {
                report: out,
                allowed: true,
            });
        }
        _ => {}
    }

    // Would the browser send a preflight?
    let mut reasons = Vec::new();
    if !matches!(method, Method::GET | Method::HEAD | Method::POST) {
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

    let mut allowed = true;
    if reasons.is_empty() {
        let _ = writeln!(out, "preflight: no (a simple request)");
    } else {
        let _ = writeln!(out, "preflight: yes ({})", reasons.join("; "));
        let asked = unsafe_names.join(",");
        let mut pre = vec![
            ("origin", Some(origin)),
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
        }) = dispatch(rules, host, &preflight)
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
        if p.header.status.as_u16() != 204 {
            allowed = false;
        }
    }

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
    allowed &= readable;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        let yaml = "listen: 127.0.0.1:0\nupstreams:\n  b: {servers: [127.0.0.1:9]}\nroutes:\n  - name: api\n    path: /api/\n    upstream: b\n    cors: {allow_origins: ['https://*.example.com'], allow_methods: [GET, PUT], allow_headers: [x-custom], allow_credentials: true}\n  - {name: public, path: /public/, upstream: b, cors: {allow_origins: any}}\n";
        crate::test_util::rules_from_yaml(yaml)
    }

    fn ex(
        url: &str,
        origin: &str,
        method: &str,
        headers: &[&str],
        credentials: bool,
    ) -> Explanation {
        let headers: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
        explain(&rules(), url, origin, method, &headers, credentials).unwrap()
    }

    #[test]
    fn a_simple_allowed_request() {
        // The query is not part of the path routes match; `get` is normalized like Fetch does.
        let e = ex(
            "https://api.test/api/x?q=1",
            "https://a.example.com",
            "get",
            &[],
            true,
        );
        assert!(e.allowed, "{}", e.report);
        assert!(
            e.report
                .contains("allowed by allow_origins entry \"https://*.example.com\""),
            "{}",
            e.report
        );
        assert!(e.report.contains("preflight: no"), "{}", e.report);
        assert!(
            e.report
                .contains("access-control-allow-origin: https://a.example.com"),
            "{}",
            e.report
        );
    }

    #[test]
    fn a_preflighted_request_shows_the_preflight_answer() {
        let e = ex(
            "https://api.test/api/x",
            "https://a.example.com",
            "PUT",
            &["X-Custom: 1", "Content-Type: application/json"],
            false,
        );
        assert!(!e.allowed, "content-type is not listed: {}", e.report);
        assert!(e.report.contains("preflight: yes (method PUT is not CORS-safelisted; header content-type is not CORS-safelisted; header x-custom is not CORS-safelisted)"), "{}", e.report);
        assert!(e.report.contains("preflight answer: 403"), "{}", e.report);
        let e = ex(
            "https://api.test/api/x",
            "https://a.example.com",
            "PUT",
            &["X-Custom: 1"],
            false,
        );
        assert!(e.allowed, "{}", e.report);
        assert!(e.report.contains("preflight answer: 204"), "{}", e.report);
    }

    #[test]
    fn credentials_need_an_exact_origin() {
        let e = ex(
            "https://api.test/public/x",
            "https://a.example.com",
            "GET",
            &[],
            false,
        );
        assert!(e.allowed, "{}", e.report);
        let e = ex(
            "https://api.test/public/x",
            "https://a.example.com",
            "GET",
            &[],
            true,
        );
        assert!(
            !e.allowed,
            "the browser refuses * with credentials: {}",
            e.report
        );
        assert!(
            e.report.contains("credentials: refused by the browser"),
            "{}",
            e.report
        );
    }

    #[test]
    fn same_origin_needs_no_cors() {
        let e = ex(
            "https://a.example.com:443/api/x",
            "https://a.example.com",
            "PUT",
            &[],
            false,
        );
        assert!(
            e.allowed && e.report.starts_with("same-origin"),
            "{}",
            e.report
        );
    }

    #[test]
    fn refusals_say_why() {
        let e = ex(
            "https://api.test/api/x",
            "https://example.com.evil.io",
            "GET",
            &[],
            false,
        );
        assert!(!e.allowed);
        assert!(
            e.report
                .contains("matches no allow_origins entry of policy routes[0].cors"),
            "{}",
            e.report
        );
        let e = ex(
            "https://api.test/other",
            "https://a.example.com",
            "GET",
            &[],
            false,
        );
        assert!(!e.allowed);
        assert!(e.report.contains("route: none matches"), "{}", e.report);
        assert!(explain(
            &rules(),
            "ftp://x/",
            "https://a.example.com",
            "GET",
            &[],
            false
        )
        .is_err());
    }
}
