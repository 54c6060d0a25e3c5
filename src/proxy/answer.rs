//! The proxy's own answers (text, script, GIF, 204, 405, 413, 403 with its reason): one value
//! each, and one way to send them, with the CORS headers of an allowed origin so that a
//! browser app can read the status.

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::header::{ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use http::{HeaderName, HeaderValue, Method};
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::protocols::http::ServerSession as Session;

use crate::cors::{CorsPolicy, OriginCheck, Preflight};

static NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");
static TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
static NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
static GIF_TYPE: HeaderValue = HeaderValue::from_static("image/gif");

/// A response of the proxy's own: status, headers in order, and a body (`Content-Length` is
/// added for it) or none (204).
pub struct Answer {
    status: u16,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Option<Bytes>,
}

impl Answer {
    fn new(status: u16, body: Option<Bytes>) -> Answer {
        Answer {
            status,
            headers: Vec::with_capacity(4),
            body,
        }
    }

    /// One more header.
    pub fn with(mut self, name: HeaderName, value: HeaderValue) -> Answer {
        self.headers.push((name, value));
        self
    }

    /// A short plain-text message (404, 400, 403 with a reason, 502, 504...), never cached or
    /// sniffed.
    pub fn text(status: u16, message: impl Into<String>) -> Answer {
        let body = Bytes::from(message.into() + "\n");
        Answer::new(status, Some(body))
            .with(CONTENT_TYPE, TEXT_PLAIN.clone())
            .with(X_CONTENT_TYPE_OPTIONS, NOSNIFF.clone())
            .with(CACHE_CONTROL, NO_STORE.clone())
    }

    /// A file of the proxy's (the bridge's page and scripts).
    pub fn file(content_type: HeaderValue, body: Bytes) -> Answer {
        Answer::new(200, Some(body))
            .with(CONTENT_TYPE, content_type)
            .with(X_CONTENT_TYPE_OPTIONS, NOSNIFF.clone())
            .with(CACHE_CONTROL, HeaderValue::from_static("no-cache"))
    }

    /// A script answer (a JSONP envelope), never cached or sniffed.
    pub fn script(body: Bytes) -> Answer {
        Answer::new(200, Some(body))
            .with(CONTENT_TYPE, crate::jsonp::JAVASCRIPT.clone())
            .with(X_CONTENT_TYPE_OPTIONS, NOSNIFF.clone())
            .with(CACHE_CONTROL, NO_STORE.clone())
    }

    /// The beacon's 1x1 transparent GIF.
    pub fn gif() -> Answer {
        Answer::new(200, Some(Bytes::from_static(crate::beacon::GIF)))
            .with(CONTENT_TYPE, GIF_TYPE.clone())
            .with(CACHE_CONTROL, NO_STORE.clone())
    }

    /// 204 without a body, never cached.
    pub fn no_content() -> Answer {
        Answer::new(204, None).with(CACHE_CONTROL, NO_STORE.clone())
    }

    /// 405 with the methods that are allowed.
    pub fn method_not_allowed(allow: &'static str) -> Answer {
        Answer::new(405, Some(Bytes::new())).with(ALLOW, HeaderValue::from_static(allow))
    }
}

/// Sends `answer`, with the CORS headers `cors` gives the request's origin. A HEAD request
/// gets the head only.
///
/// Boxed: a rare path, kept out of every request's future (`phases::begin`'s).
pub fn send<'a>(
    session: &'a mut Session,
    answer: Answer,
    cors: Option<(&'a CorsPolicy, &'a OriginCheck)>,
) -> BoxFuture<'a, Result<()>> {
    Box::pin(async move {
        let n = answer.headers.len() + 1;
        let mut h = ResponseHeader::build_no_case(answer.status, Some(n + 4))?;
        for (name, value) in answer.headers {
            h.insert_header(name, value)?;
        }
        if let Some(body) = &answer.body {
            h.insert_header(CONTENT_LENGTH, body.len())?;
        }
        if let Some((policy, check)) = cors {
            policy.apply_actual(&mut h, check);
        }
        let head_only = session.req_header().method == Method::HEAD;
        match answer.body.filter(|_| !head_only) {
            Some(body) if !body.is_empty() => {
                session.write_response_header(Box::new(h)).await?;
                session.write_response_body(body, true).await
            }
            _ => {
                session.write_response_header(Box::new(h)).await?;
                session.finish_body().await
            }
        }
    })
}

/// Sends a preflight's answer (built by the policy); its origin check is moved into `origin`
/// first (the request's context), so the log sees it even if the client is gone.
pub async fn send_preflight(
    session: &mut Session,
    preflight: Preflight,
    origin: &mut OriginCheck,
) -> Result<()> {
    let Preflight {
        check,
        header,
        body,
    } = preflight;
    *origin = check;
    session.write_response_header(header).await?;
    match body {
        Some(body) => session.write_response_body(Bytes::from(body), true).await,
        None => session.finish_body().await,
    }
}
