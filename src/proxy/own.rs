//! The proxy's own endpoints: the bridge's files and beacon hits.

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderName, HeaderValue, Method};
use pingora::prelude::*;
use pingora::protocols::http::ServerSession as Session;

use super::answer::{send, Answer};
use super::CrossGate;
use crate::{beacon, bridge};

static HTML: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");

/// 413 for a beacon body over the limit; the rest of the body is not read, so the
/// connection is not reused.
fn refuse_too_large(session: &mut Session) -> BoxFuture<'_, Result<()>> {
    session.set_keepalive(None);
    let message = format!(
        "crossgate: beacon bodies are at most {} bytes",
        beacon::MAX_BODY
    );
    send(session, Answer::text(413, message), None)
}

/// Serves the bridge page or one of its scripts (GET and HEAD only).
pub(super) async fn serve_bridge(
    session: &mut Session,
    b: &bridge::Bridge,
    asset: bridge::Asset,
) -> Result<()> {
    let method = &session.req_header().method;
    if method != Method::GET && method != Method::HEAD {
        return send(session, Answer::method_not_allowed("GET, HEAD"), None).await;
    }
    let script = || crate::jsonp::JAVASCRIPT.clone();
    let answer = match asset {
        bridge::Asset::Page => Answer::file(HTML.clone(), b.page.clone())
            .with(
                HeaderName::from_static("content-security-policy"),
                b.csp.clone(),
            )
            .with(
                HeaderName::from_static("referrer-policy"),
                HeaderValue::from_static("no-referrer"),
            ),
        bridge::Asset::FrameJs => {
            Answer::file(script(), Bytes::from_static(bridge::FRAME_JS.as_bytes()))
        }
        // The client library is included by pages on other origins.
        bridge::Asset::ClientJs => {
            Answer::file(script(), Bytes::from_static(bridge::CLIENT_JS.as_bytes()))
                .with(
                    HeaderName::from_static("cross-origin-resource-policy"),
                    HeaderValue::from_static("cross-origin"),
                )
                .with(
                    http::header::ACCESS_CONTROL_ALLOW_ORIGIN,
                    HeaderValue::from_static("*"),
                )
        }
    };
    send(session, answer, None).await
}

impl CrossGate {
    /// Answers a beacon hit: GET/HEAD with the GIF, POST (at most 64 KiB of text or JSON) with
    /// 204. The hit is logged, and queued for its upstream without waiting.
    pub(super) async fn serve_beacon(
        &self,
        session: &mut Session,
        b: &beacon::Beacon,
    ) -> Result<()> {
        let req = session.req_header();
        let method = req.method.clone();
        let query = req.uri.query().map(str::to_owned);
        let content_type = req.headers.get(CONTENT_TYPE).cloned();
        let declared_len = req
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let body = match method {
            Method::GET | Method::HEAD => Bytes::new(),
            Method::POST => {
                if declared_len.is_some_and(|n| n > beacon::MAX_BODY) {
                    return refuse_too_large(session).await;
                }
                if !beacon::acceptable_type(content_type.as_ref()) {
                    let message = "crossgate: beacon bodies are text/plain or JSON";
                    return send(session, Answer::text(415, message), None).await;
                }
                let mut body = bytes::BytesMut::new();
                while let Some(chunk) = session.read_request_body().await? {
                    if body.len() + chunk.len() > beacon::MAX_BODY {
                        return refuse_too_large(session).await;
                    }
                    body.extend_from_slice(&chunk);
                }
                body.freeze()
            }
            _ => {
                let answer = Answer::method_not_allowed("GET, HEAD, POST");
                return send(session, answer, None).await;
            }
        };
        let forwarded = self.log_and_forward_hit(b, &method, query, content_type, &body);
        tracing::info!(
            target: "crossgate::beacon",
            beacon = %b.name,
            method = %method,
            // The page's own words: quoted (logfmt), so that a value cannot pass for a field.
            fields = forwarded.0.as_str(),
            fields_skipped = forwarded.1,
            body_bytes = body.len(),
            forwarded = forwarded.2,
        );
        let answer = if method == Method::POST {
            Answer::no_content()
        } else {
            Answer::gif()
        };
        send(session, answer, None).await
    }

    /// Counts a hit and offers it to the forwarder: the logged fields, how many were skipped,
    /// and what became of the forward.
    fn log_and_forward_hit(
        &self,
        b: &beacon::Beacon,
        method: &Method,
        query: Option<String>,
        content_type: Option<HeaderValue>,
        body: &Bytes,
    ) -> (String, usize, &'static str) {
        let (fields, skipped) = beacon::log_fields(query.as_deref(), b.max_fields);
        self.metrics
            .beacon_hits
            .with_label_values(&[b.name.as_str()])
            .inc();
        let Some(f) = &b.forward else {
            return (fields, skipped, "no");
        };
        let target = match &query {
            Some(q) => format!("{}?{q}", f.path),
            None => f.path.clone(),
        };
        let hit = beacon::Hit {
            beacon: b.name.clone(),
            upstream: f.upstream.clone(),
            method: if method == Method::POST {
                "POST"
            } else {
                "GET"
            },
            target,
            content_type,
            body: body.clone(),
        };
        if self.beacons.offer(hit) {
            return (fields, skipped, "queued");
        }
        self.metrics
            .beacon_dropped
            .with_label_values(&[b.name.as_str()])
            .inc();
        (fields, skipped, "dropped: queue full")
    }
}
