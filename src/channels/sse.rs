//! Server-Sent Events with heartbeats (<https://html.spec.whatwg.org/multipage/server-sent-events.html>).
//!
//! pingora's body filters only run when the upstream sends something, so a comment line cannot
//! be injected while the upstream is silent. On routes with `sse.heartbeat`, crossgate streams
//! the response itself: it sends the request upstream with pingora's HTTP connector, forwards
//! each chunk as soon as it arrives, and writes `:\n\n` (an SSE comment, ignored by
//! `EventSource`) whenever the upstream has been silent for the heartbeat interval. The
//! upstream may stay silent for the route's read timeout before the stream is ended.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::header;
use pingora::connectors::http::Connector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::protocols::http::client::HttpSession;
use pingora::protocols::http::ServerSession as Session;
use pingora::upstreams::peer::HttpPeer;
use pingora::ErrorType;

/// The comment line sent while the upstream is silent.
pub const HEARTBEAT: &[u8] = b":\n\n";

/// Whether a request is an `EventSource` connection (which always sends this `Accept`).
pub fn wants_event_stream(req: &RequestHeader) -> bool {
    req.method == http::Method::GET
        && req
            .headers
            .get_all(header::ACCEPT)
            .iter()
            .any(|v| v.to_str().is_ok_and(|s| s.contains("text/event-stream")))
}

pub fn is_event_stream(resp: &ResponseHeader) -> bool {
    resp.headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"))
}

/// The request as it goes upstream: as the engine sends any (`crate::head`: hop-by-hop fields
/// dropped, HTTP/1.1, origin form, Host from an HTTP/2 `:authority`), without the body's length
/// (an EventSource sends none, and none is forwarded here), and `path` (when set) forwarded
/// instead of the client's.
fn upstream_request(
    req: &RequestHeader,
    path: Option<&str>,
    host: &str,
) -> Result<Box<RequestHeader>> {
    let mut head = crate::head::upstream_request(req, false, host)?;
    head.remove_header(&header::CONTENT_LENGTH);
    // An event stream is sent as it comes, and heartbeats go between its events: a
    // compressor would buffer it, and a heartbeat cannot go inside compressed bytes.
    head.remove_header(&header::ACCEPT_ENCODING);
    if let Some(path) = path {
        // ambiguous_paths: forward_normalized: the routed path is the forwarded one.
        let uri = crate::path::origin_form(path, head.uri.query())?;
        head.set_uri(uri);
    }
    Ok(head)
}

/// The upstream's response header as the client gets it (before the route's headers): as the
/// engine relays any (`crate::head`; its framing for an HTTP/1 client is set last,
/// `head::client_framing`: chunked when it has no length). Returns whether it is an event
/// stream, which gets heartbeats.
fn client_response(resp: &mut ResponseHeader, http2: bool) -> bool {
    crate::head::client_response(resp, http2);
    // A backend that compresses though it was not asked to: its stream is relayed as it
    // comes, without heartbeats, which would break the compressed bytes.
    let identity = resp
        .headers
        .get(header::CONTENT_ENCODING)
        .map_or(true, |e| e.as_bytes().eq_ignore_ascii_case(b"identity"));
    let beats = identity && is_event_stream(resp);
    if beats {
        // A heartbeat changes the length; an event stream has none anyway.
        resp.remove_header(&header::CONTENT_LENGTH);
    }
    beats
}

/// What the stream did, for the access log.
pub struct Streamed {
    pub upstream_time: Duration,
}

/// Where an event stream's request goes.
pub struct Upstream<'a> {
    pub peer: &'a HttpPeer,
    /// Replaces the client's path upstream (`ambiguous_paths: forward_normalized`).
    pub path: Option<&'a str>,
    /// The `Host` of a request that has none (`head::upstream_request`).
    pub host: &'a str,
    /// The forwarding fields it goes with.
    pub forwarding: &'a crate::forwarded::Forwarding,
    /// The route's `upstream_host`, which replaces the client's `Host`.
    pub upstream_host: Option<&'a str>,
    /// The request's `X-Request-Id`.
    pub request_id: http::HeaderValue,
}

/// Proxies one request, streaming the response with heartbeats while the upstream is silent.
/// `decorate` adds the route's headers (CORS) to the response header. An error before the
/// response header was written leaves the answer to the caller (502/504 with CORS).
///
/// Boxed: its future (with pingora's connector in it) is large, and would otherwise be part of
/// every request's future (`phases::begin`'s).
pub fn stream<'a>(
    session: &'a mut Session,
    connector: &'a Connector,
    to: Upstream<'a>,
    heartbeat: Duration,
    silence_limit: Duration,
    decorate: impl FnOnce(&mut ResponseHeader) + Send + 'a,
) -> BoxFuture<'a, Result<Streamed>> {
    Box::pin(async move {
        let started = Instant::now();
        let up = |e: Box<Error>| e.into_up();
        let (mut upstream, _reused) = connector.get_http_session(to.peer).await.map_err(up)?;

        let mut req = upstream_request(session.req_header(), to.path, to.host)?;
        to.forwarding.apply(&mut req);
        if let Some(host) = to.upstream_host {
            req.insert_header(header::HOST, host)?;
        }
        req.insert_header(crate::request_id::X_REQUEST_ID, to.request_id)?;
        upstream.write_request_header(req).await.map_err(up)?;
        upstream.finish_request_body().await.map_err(up)?;
        match tokio::time::timeout(silence_limit, upstream.read_response_header()).await {
            Ok(r) => r.map_err(up)?,
            Err(_) => {
                return Error::e_explain(ErrorType::ReadTimedout, "no response header")
                    .map_err(|e| e.into_up())
            }
        }
        let upstream_time = started.elapsed();
        let mut resp = upstream
            .response_header()
            .ok_or_else(|| {
                Error::explain(ErrorType::InvalidHTTPHeader, "no response header").into_up()
            })?
            .clone();
        let beats = client_response(&mut resp, session.is_http2());
        decorate(&mut resp);
        if !session.is_http2() && crate::head::client_framing(&mut resp, session.req_header()) {
            // An HTTP/1.0 client: the stream ends with the connection.
            session.set_keepalive(None);
        }
        session.write_response_header(Box::new(resp)).await?;

        relay(session, &mut upstream, beats, heartbeat, silence_limit).await?;
        Ok(Streamed { upstream_time })
    })
}

/// Forwards the body as it comes, with a heartbeat after each `heartbeat` of silence on an
/// event stream, until the upstream ends it or is silent for `silence_limit`.
async fn relay(
    session: &mut Session,
    upstream: &mut HttpSession,
    beats: bool,
    heartbeat: Duration,
    silence_limit: Duration,
) -> Result<()> {
    let up = |e: Box<Error>| e.into_up();
    let mut last_data = Instant::now();
    loop {
        let wait = if beats { heartbeat } else { silence_limit };
        match tokio::time::timeout(wait, upstream.read_response_body()).await {
            Ok(Ok(Some(chunk))) => {
                last_data = Instant::now();
                session.write_response_body(chunk, false).await?;
            }
            Ok(Ok(None)) => {
                session.finish_body().await?;
                return Ok(());
            }
            Ok(Err(e)) => return Err(up(e)),
            Err(_) if last_data.elapsed() >= silence_limit => {
                return Error::e_explain(
                    ErrorType::ReadTimedout,
                    "the upstream stream was silent for its read timeout",
                )
                .map_err(|e| e.into_up());
            }
            Err(_) => {
                session
                    .write_response_body(Bytes::from_static(HEARTBEAT), false)
                    .await?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_source_requests_are_recognized_by_accept() {
        let mut r = RequestHeader::build("GET", b"/events", None).unwrap();
        assert!(!wants_event_stream(&r));
        r.insert_header("accept", "text/event-stream").unwrap();
        assert!(wants_event_stream(&r));
        let mut post = RequestHeader::build("POST", b"/events", None).unwrap();
        post.insert_header("accept", "text/event-stream").unwrap();
        assert!(!wants_event_stream(&post));
    }
}
