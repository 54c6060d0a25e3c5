//! The postMessage bridge: an HTML page served from the proxy's own origin that pages on
//! allowed origins embed in an iframe and talk to with `postMessage`
//! (<https://html.spec.whatwg.org/multipage/web-messaging.html>). The frame checks
//! `event.origin` against the bridge's CORS allowlist, the path against `allow_paths`, and the
//! method and request headers as a preflight against the policy would (header values by the
//! Fetch standard's CORS-safelisted request-header rules); it fetches same-origin without
//! following redirects (a redirect's target could be outside `allow_paths`: the page gets an
//! error saying the redirect was refused) and posts the answer back to that exact origin.
//! Everything is built at load time and served from the binary: the page (with the allowlist
//! as a JSON data block), its script, the client library, and a `Content-Security-Policy`
//! whose `frame-ancestors` is the same allowlist.

use bytes::Bytes;
use http::HeaderValue;
use serde_json::json;

use crate::cors::{AllowHeaders, AllowOrigin, CorsPolicy};

/// The frame's script, served at `{path}/bridge-frame.js`.
pub const FRAME_JS: &str = include_str!("frame.js");
/// The client library, served at `{path}/crossgate-bridge.js`.
pub const CLIENT_JS: &str = include_str!("crossgate-bridge.js");

/// A compiled bridge.
pub struct Bridge {
    pub path: String,
    pub frame_js_path: String,
    pub client_js_path: String,
    pub page: Bytes,
    pub csp: HeaderValue,
}

/// What a bridge request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asset {
    Page,
    FrameJs,
    ClientJs,
}

impl Bridge {
    /// Builds the bridge for `policy`, which must list only exact origins and wildcards:
    /// the browser side cannot run the proxy's regexes.
    pub fn new(path: &str, policy: &CorsPolicy, allow_paths: &[String]) -> Result<Bridge, String> {
        let (any, exact, wildcards, sources) = origins(policy)?;
        let headers = headers(policy);
        let expose: Vec<&str> = policy
            .expose_value
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(", ").collect())
            .unwrap_or_default();
        let config = json!({
            "any": any,
            "exact": exact,
            "wildcards": wildcards,
            "paths": allow_paths,
            "credentials": policy.credentials,
            "methods": policy.methods.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
            "headers": headers,
            "expose": expose,
        });
        // `<` is escaped so that nothing in the data block can close the script element.
        let config = config.to_string().replace('<', "\\u003c");
        let base = path.trim_end_matches('/');
        let frame_js_path = format!("{base}/bridge-frame.js");
        let page = format!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>crossgate bridge</title>\n\
             <script type=\"application/json\" id=\"crossgate-config\">{config}</script>\n\
             <script src=\"{frame_js_path}\"></script>\n</head><body></body></html>\n"
        );
        let csp = format!(
            "default-src 'none'; script-src 'self'; connect-src 'self'; frame-ancestors {sources}; base-uri 'none'; form-action 'none'"
        );
        Ok(Bridge {
            path: path.to_owned(),
            client_js_path: format!("{base}/crossgate-bridge.js"),
            frame_js_path,
            page: Bytes::from(page),
            csp: HeaderValue::from_str(&csp)
                .map_err(|_| "an origin cannot go into a CSP header".to_owned())?,
        })
    }

    /// The asset served at `path`, if any.
    pub fn asset(&self, path: &str) -> Option<Asset> {
        if path == self.path {
            Some(Asset::Page)
        } else if path == self.frame_js_path {
            Some(Asset::FrameJs)
        } else if path == self.client_js_path {
            Some(Asset::ClientJs)
        } else {
            None
        }
    }
}

/// What the frame checks `event.origin` against: any origin, or the exact origins and the
/// wildcards; and the `frame-ancestors` sources of the CSP. Regex origins are refused.
fn origins(
    policy: &CorsPolicy,
) -> Result<(bool, Vec<String>, Vec<serde_json::Value>, String), String> {
    Ok(match &policy.origins {
        AllowOrigin::Any => (true, vec![], vec![], "*".to_owned()),
        AllowOrigin::List(list) => {
            if list.has_regex() {
                return Err(format!(
                    "policy {} has regex origins, which the bridge page cannot check in the browser",
                    policy.name
                ));
            }
            // `null` is never answered by the bridge (anyone can make an opaque origin).
            let exact: Vec<String> = list
                .exact_origins()
                .filter(|o| *o != "null")
                .map(str::to_owned)
                .collect();
            let wildcards: Vec<serde_json::Value> = list
                .wildcards()
                .map(|w| json!({"scheme": w.scheme(), "suffix": w.dot_suffix(), "port": w.port()}))
                .collect();
            // CSP source expressions: exact origins and *.suffix wildcards; `null` has none.
            let mut sources: Vec<String> = exact.iter().filter(|o| *o != "null").cloned().collect();
            sources.extend(list.wildcards().map(|w| w.csp_source()));
            let sources = if sources.is_empty() {
                "'none'".to_owned()
            } else {
                sources.join(" ")
            };
            (false, exact, wildcards, sources)
        }
    })
}

/// The names a preflight against this policy allows, whatever their values (the engine
/// checks `Access-Control-Request-Headers` by name only); `null` for `mirror`, which
/// allows every name. The frame lets any other header through only if the Fetch standard
/// safelists it, name and value, as a browser would without a preflight.
fn headers(policy: &CorsPolicy) -> serde_json::Value {
    match &policy.headers {
        AllowHeaders::Mirror => serde_json::Value::Null,
        AllowHeaders::List { names, .. } => {
            let mut v: Vec<&String> = names.iter().collect();
            v.sort();
            json!(v)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UpstreamHeaders;
    use crate::cors::PolicySpec;
    use crate::origin::{anchored_regex, canonical_exact, OriginList, Wildcard};

    fn policy(list: OriginList, credentials: bool) -> CorsPolicy {
        CorsPolicy::new(PolicySpec {
            name: "app".into(),
            origins: AllowOrigin::List(list),
            methods: vec![http::Method::GET],
            headers: Some(vec![]),
            expose: vec![],
            credentials,
            max_age: None,
            private_network: false,
            upstream_headers: UpstreamHeaders::Override,
            report_only: None,
        })
    }

    #[test]
    fn csp_frame_ancestors_is_the_allowlist() {
        let mut l = OriginList::default();
        l.push_exact(
            canonical_exact("https://app.example.com").unwrap(),
            "x".into(),
        );
        l.push_exact("null".into(), "null".into());
        l.push_wildcard(
            Wildcard::parse("https://*.example.org:8443").unwrap(),
            "w".into(),
        );
        let b = Bridge::new("/_crossgate/bridge", &policy(l, true), &["/api/".into()]).unwrap();
        let csp = b.csp.to_str().unwrap();
        assert!(
            csp.contains("frame-ancestors https://app.example.com https://*.example.org:8443;"),
            "{csp}"
        );
        assert!(csp.contains("script-src 'self'"), "{csp}");
        let page = std::str::from_utf8(&b.page).unwrap();
        assert!(
            page.contains(r#""exact":["https://app.example.com"]"#),
            "null is never answered: {page}"
        );
        assert!(
            page.contains(r#"{"port":8443,"scheme":"https","suffix":".example.org"}"#),
            "{page}"
        );
        assert!(page.contains(r#""credentials":true"#), "{page}");
        assert!(
            page.contains(r#"<script src="/_crossgate/bridge/bridge-frame.js">"#),
            "{page}"
        );
    }

    #[test]
    fn the_page_lists_the_request_headers_a_preflight_would_allow() {
        let mut p = policy(OriginList::default(), false);
        let page = |p: &CorsPolicy| {
            let b = Bridge::new("/b", p, &["/api/".into()]).unwrap();
            String::from_utf8(b.page.to_vec()).unwrap()
        };
        assert!(page(&p).contains(r#""headers":[]"#), "{}", page(&p));
        p.headers = AllowHeaders::List {
            names: ["x-b".to_owned(), "content-type".to_owned()].into(),
            value: None,
        };
        assert!(
            page(&p).contains(r#""headers":["content-type","x-b"]"#),
            "sorted, lowercase as the frame compares them: {}",
            page(&p)
        );
        p.headers = AllowHeaders::Mirror;
        assert!(page(&p).contains(r#""headers":null"#), "{}", page(&p));
    }

    #[test]
    fn regex_origins_cannot_be_used_by_the_bridge() {
        let mut l = OriginList::default();
        l.push_regex(anchored_regex("https://a\\.test").unwrap(), "r".into());
        assert!(Bridge::new("/b", &policy(l, false), &[]).is_err());
    }

    #[test]
    fn nothing_in_the_config_can_close_the_script_element() {
        let b = Bridge::new(
            "/b",
            &policy(OriginList::default(), false),
            &["/api/</script><script>alert(1)".into()],
        )
        .unwrap();
        let page = std::str::from_utf8(&b.page).unwrap();
        assert_eq!(page.matches("</script>").count(), 2, "{page}");
        assert!(b.csp.to_str().unwrap().contains("frame-ancestors 'none'"));
    }

    #[test]
    fn assets_are_found_by_path() {
        let b = Bridge::new("/b", &policy(OriginList::default(), false), &[]).unwrap();
        assert!(matches!(b.asset("/b"), Some(Asset::Page)));
        assert!(matches!(
            b.asset("/b/bridge-frame.js"),
            Some(Asset::FrameJs)
        ));
        assert!(matches!(
            b.asset("/b/crossgate-bridge.js"),
            Some(Asset::ClientJs)
        ));
        assert!(b.asset("/b/other").is_none());
    }
}
