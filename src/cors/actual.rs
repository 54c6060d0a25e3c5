//! The CORS headers of an actual response (the backend's, or the proxy's own), and `Vary`.

use http::header::{ACCESS_CONTROL_ALLOW_ORIGIN, VARY};
use http::{HeaderName, HeaderValue};
use pingora::http::ResponseHeader;

use super::*;

impl CorsPolicy {
    /// Sets the CORS headers of an actual (non-preflight) response, including the proxy's own
    /// error responses, and merges `Vary`.
    pub fn apply_actual(&self, resp: &mut ResponseHeader, check: &OriginCheck) {
        if let (OriginCheck::WouldDeny { served, .. }, Some(fallback)) = (check, &self.report_only)
        {
            fallback.apply_actual(resp, served);
            if let Some(v) = &self.vary_actual {
                merge_vary(resp, v);
            }
            return;
        }
        // The backend's own CORS headers pass only for an origin the policy allows: a refused
        // origin never leaves with CORS headers, whoever wrote them.
        let backend_has_cors = resp.headers.contains_key(ACCESS_CONTROL_ALLOW_ORIGIN);
        match self.upstream_headers {
            UpstreamHeaders::Passthrough
                if backend_has_cors && !matches!(check, OriginCheck::Denied(_)) => {}
            _ => {
                strip_cors_headers(resp);
                if let OriginCheck::Allowed(acao) = check {
                    self.insert_common(resp, acao);
                    if let Some(v) = &self.expose_value {
                        resp.insert_header("Access-Control-Expose-Headers", v.clone())
                            .expect("static");
                    }
                }
            }
        }
        if let Some(v) = &self.vary_actual {
            merge_vary(resp, v);
        }
    }

    fn insert_common(&self, h: &mut ResponseHeader, acao: &HeaderValue) {
        h.insert_header("Access-Control-Allow-Origin", acao.clone())
            .expect("valid");
        if self.credentials {
            h.insert_header("Access-Control-Allow-Credentials", TRUE.clone())
                .expect("static");
        }
    }
}

/// Removes every `Access-Control-*` header (what the backend set on its own). Most backends
/// send none: that case allocates nothing.
pub fn strip_cors_headers(resp: &mut ResponseHeader) {
    if !resp
        .headers
        .keys()
        .any(|k| k.as_str().starts_with("access-control-"))
    {
        return;
    }
    let names: Vec<HeaderName> = resp
        .headers
        .keys()
        .filter(|k| k.as_str().starts_with("access-control-"))
        .cloned()
        .collect();
    for n in names {
        resp.remove_header(&n);
    }
}

/// Adds `add` (a comma list) to the response's `Vary`, as one header line: existing lines are
/// merged, names already present are not repeated, and `Vary: *` is left alone.
pub fn merge_vary(resp: &mut ResponseHeader, add: &HeaderValue) {
    let mut lines = resp.headers.get_all(VARY).iter();
    let (first, second) = (lines.next().cloned(), lines.next().is_some());
    let Some(first) = first else {
        resp.insert_header("Vary", add.clone()).expect("valid");
        return;
    };
    // The common case, one existing line: append only the missing names, without splitting
    // either value into owned strings.
    if !second {
        let current = first.as_bytes();
        if has_token(current, b"*") {
            return;
        }
        let mut merged: Option<Vec<u8>> = None;
        for name in add
            .as_bytes()
            .split(|b| *b == b',')
            .map(<[u8]>::trim_ascii)
            .filter(|n| !n.is_empty())
        {
            if !has_token(current, name) {
                let m = merged.get_or_insert_with(|| current.to_vec());
                m.extend_from_slice(b", ");
                m.extend_from_slice(name);
            }
        }
        if let Some(m) = merged {
            if let Ok(v) = HeaderValue::from_bytes(&m) {
                resp.insert_header("Vary", v).expect("valid");
            }
        }
        return;
    }
    let existing = resp.headers.get_all(VARY).iter();
    let mut names: Vec<String> = Vec::new();
    for v in existing {
        for n in v.to_str().unwrap_or_default().split(',').map(str::trim) {
            if !n.is_empty() && !names.iter().any(|e| e.eq_ignore_ascii_case(n)) {
                names.push(n.to_owned());
            }
        }
    }
    if names.iter().any(|n| n == "*") {
        resp.insert_header("Vary", STAR.clone()).expect("static");
        return;
    }
    for n in add.to_str().unwrap_or_default().split(',').map(str::trim) {
        if !names.iter().any(|e| e.eq_ignore_ascii_case(n)) {
            names.push(n.to_owned());
        }
    }
    match HeaderValue::from_str(&names.join(", ")) {
        Ok(v) => {
            resp.insert_header("Vary", v).expect("valid");
        }
        Err(_) => {
            resp.insert_header("Vary", add.clone()).expect("valid");
        }
    }
}

/// Whether a comma list holds `token` (case-insensitively).
fn has_token(list: &[u8], token: &[u8]) -> bool {
    list.split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}
