//! What the browser sends: the requests `explain` builds, and the Fetch standard's rules for
//! when a cross-origin request needs a preflight.

use pingora::http::RequestHeader;

/// Request headers a page may set without a preflight (Fetch, "CORS-safelisted
/// request-header"); `content-type` only with one of three values.
pub(super) fn safelisted(name: &str, value: Option<&str>) -> bool {
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
pub(super) fn normalize_method(m: &str) -> String {
    match m.to_ascii_uppercase().as_str() {
        u @ ("DELETE" | "GET" | "HEAD" | "OPTIONS" | "POST" | "PUT") => u.to_owned(),
        _ => m.to_owned(),
    }
}

/// The URL's origin (`scheme://host[:port]`, default port left out).
pub(super) fn url_origin(url: &str) -> String {
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

pub(super) fn split_url(url: &str) -> Result<(&str, &str), String> {
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

/// A request head for `explain` (built the way a browser would send it).
pub(super) fn request(
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
