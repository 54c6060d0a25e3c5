//! The answer to a preflight: 204 with the policy's Allow headers, or 403 with the reason.

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD, VARY,
};
use http::{HeaderName, HeaderValue, Method};
use pingora::http::{RequestHeader, ResponseHeader};

use super::*;
use crate::refusal::Refusal;

impl CorsPolicy {
    /// Answers a preflight (see [`is_preflight`]) without forwarding it.
    pub fn preflight(&self, req: &RequestHeader) -> Preflight {
        let strict = self.preflight_strict(req);
        match (&strict.check, &self.report_only) {
            (OriginCheck::Denied(why), Some(fallback)) => {
                let mut served = fallback.preflight(req);
                let why = why.clone();
                served.check = OriginCheck::WouldDeny {
                    served: Box::new(served.check),
                    why,
                };
                served
                    .header
                    .insert_header("Vary", self.vary_preflight.clone())
                    .expect("static");
                served
            }
            _ => strict,
        }
    }

    fn preflight_strict(&self, req: &RequestHeader) -> Preflight {
        let check = match self.check_origin_strict(req) {
            OriginCheck::Allowed(v) => match self.check_request_method_and_headers(req) {
                Ok(()) => OriginCheck::Allowed(v),
                Err(why) => OriginCheck::Denied(why),
            },
            other => other,
        };
        let status = if matches!(check, OriginCheck::Allowed(_)) {
            204
        } else {
            403
        };
        // Built as plain `http` parts with static names, then handed to pingora: its
        // `insert_header` parses every name again (5% of a preflight's instructions). The wire
        // form is what `build_no_case` gave: no case map, names as pingora titles them.
        let (mut parts, ()) = http::Response::new(()).into_parts();
        parts.status = http::StatusCode::from_u16(status).expect("valid status");
        let h = &mut parts.headers;
        h.reserve(8);
        h.insert(VARY, self.vary_preflight.clone());
        let body = match &check {
            OriginCheck::Allowed(acao) => {
                self.allow(h, acao, req);
                // 204: no Content-Length (RFC 9110 §8.6).
                None
            }
            OriginCheck::Denied(why) => Some(refuse(h, why)),
            OriginCheck::NoOrigin | OriginCheck::WouldDeny { .. } => {
                unreachable!("a preflight has an Origin, and the strict check never defers")
            }
        };
        Preflight {
            check,
            header: Box::new(ResponseHeader::from(parts)),
            body,
        }
    }

    /// A 204's headers: the origin, and what the policy allows.
    fn allow(&self, h: &mut http::HeaderMap, acao: &HeaderValue, req: &RequestHeader) {
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, acao.clone());
        if self.credentials {
            h.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, TRUE.clone());
        }
        h.insert(ACCESS_CONTROL_ALLOW_METHODS, self.methods_value.clone());
        match &self.headers {
            AllowHeaders::Mirror => {
                if let Some(v) = mirrored_headers(req) {
                    h.insert(ACCESS_CONTROL_ALLOW_HEADERS, v);
                }
            }
            AllowHeaders::List { value: Some(v), .. } => {
                h.insert(ACCESS_CONTROL_ALLOW_HEADERS, v.clone());
            }
            AllowHeaders::List { value: None, .. } => {}
        }
        if let Some(age) = &self.max_age {
            h.insert(ACCESS_CONTROL_MAX_AGE, age.clone());
        }
        if self.private_network && asks_private_network(req) {
            h.insert(ALLOW_PRIVATE_NETWORK, TRUE.clone());
        }
    }

    /// Refuses what the browser would refuse anyway, so that the 403 says why: a method that is
    /// neither listed nor CORS-safelisted, or a header that is not listed.
    fn check_request_method_and_headers(&self, req: &RequestHeader) -> Result<(), Refusal> {
        let method = req
            .headers
            .get(ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|v| v.to_str().ok())
            .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
            .ok_or(Refusal::RequestMethodInvalid)?;
        let safelisted = method == Method::GET || method == Method::HEAD || method == Method::POST;
        if !safelisted && !self.methods.contains(&method) {
            return Err(Refusal::Method {
                method: method.to_string(),
                policy: self.name.clone(),
                allowed: self.methods_value.to_str().unwrap_or_default().to_owned(),
            });
        }
        let asked = req.headers.get_all(ACCESS_CONTROL_REQUEST_HEADERS);
        match &self.headers {
            AllowHeaders::Mirror => {
                for v in asked {
                    if !v.to_str().is_ok_and(is_header_name_list) {
                        return Err(Refusal::RequestHeadersInvalid { not_ascii: false });
                    }
                }
            }
            AllowHeaders::List { names, .. } => {
                for v in asked {
                    let text = v
                        .to_str()
                        .map_err(|_| Refusal::RequestHeadersInvalid { not_ascii: true })?;
                    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                        if !names.contains(&name.to_ascii_lowercase()) {
                            return Err(Refusal::Header {
                                header: name.to_owned(),
                                policy: self.name.clone(),
                            });
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// A 403's headers, and its body: why the preflight is refused.
fn refuse(h: &mut http::HeaderMap, why: &Refusal) -> String {
    let body = format!("crossgate: CORS preflight refused: {why}\n");
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    body
}

/// Every `Access-Control-Request-Headers` line, joined (already checked to be header names).
fn mirrored_headers(req: &RequestHeader) -> Option<HeaderValue> {
    let lines: Vec<&HeaderValue> = req
        .headers
        .get_all(ACCESS_CONTROL_REQUEST_HEADERS)
        .iter()
        .collect();
    match lines.as_slice() {
        [] => None,
        [one] => Some((*one).clone()),
        many => {
            let joined: Vec<&str> = many.iter().filter_map(|v| v.to_str().ok()).collect();
            HeaderValue::from_str(&joined.join(", ")).ok()
        }
    }
}

fn asks_private_network(req: &RequestHeader) -> bool {
    req.headers
        .get(REQUEST_PRIVATE_NETWORK)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"))
}

fn is_header_name_list(s: &str) -> bool {
    s.split(',')
        .map(str::trim)
        .all(|n| n.is_empty() || HeaderName::from_bytes(n.as_bytes()).is_ok())
}
