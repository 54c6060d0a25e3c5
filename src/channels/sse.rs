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

/// Hop-by-hop headers (RFC 9110 §7.6.1) that a proxy must not forward.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "upgrade",
    "trailer",
];

fn strip_hop_by_hop<F: FnMut(&str)>(names: impl Iterator<Item = String>, mut remove: F) {
    for n in names {
        if HOP_BY_HOP.contains(&n.as_str()) {
            remove(&n);
        }
    }
}

/// The headers that `Connection` names (RFC 9110 §7.6.1), to be removed; `Connection` itself
/// goes with the other hop-by-hop headers.
fn connection_listed(headers: &http::HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect()
}

/// The request as it goes upstream: hop-by-hop headers and the body's length dropped, an
/// HTTP/2 request's target and Host made HTTP/1.1's, and `path` (when set) forwarded instead of
/// the client's.
fn upstream_request(req: &mut RequestHeader, path: Option<&str>) -> Result<()> {
    for n in connection_listed(&req.headers) {
        req.remove_header(n.as_str());
    }
    let names: Vec<String> = req.headers.keys().map(|k| k.as_str().to_owned()).collect();
    strip_hop_by_hop(names.into_iter(), |n| {
        req.remove_header(n);
    });
    // The request body is not forwarded on this path (an EventSource sends none).
    req.remove_header(&header::CONTENT_LENGTH);
    // An HTTP/2 request goes upstream as HTTP/1.1: origin-form target, Host from :authority.
    if !req.headers.contains_key(header::HOST) {
        if let Some(authority) = req.uri.authority().map(|a| a.as_str().to_owned()) {
            req.insert_header(header::HOST, authority)?;
        }
    }
    if let Some(path) = path {
        // ambiguous_paths: forward_normalized: the routed path is the forwarded one.
        let uri = crate::path::origin_form(path, req.uri.query())?;
        req.set_uri(uri);
    } else if req.uri.authority().is_some() {
        let target = req
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let uri = http::Uri::builder()
            .path_and_query(target)
            .build()
            .map_err(|e| {
                Error::because(ErrorType::InternalError, "rewriting the request target", e)
            })?;
        req.set_uri(uri);
    }
    req.set_version(http::Version::HTTP_11);
    Ok(())
}

/// The upstream's response header as the client gets it (before the route's headers): hop-by-hop
/// headers dropped, and chunked on HTTP/1 when it has no length. Returns whether it is an
/// event stream, which gets heartbeats.
fn client_response(resp: &mut ResponseHeader, http2: bool) -> Result<bool> {
    for n in connection_listed(&resp.headers) {
        resp.remove_header(n.as_str());
    }
    let names: Vec<String> = resp.headers.keys().map(|k| k.as_str().to_owned()).collect();
    strip_hop_by_hop(names.into_iter(), |n| {
        resp.remove_header(n);
    });
    let beats = is_event_stream(resp);
    if beats {
        // A heartbeat changes the length; an event stream has none anyway.
        resp.remove_header(&header::CONTENT_LENGTH);
    }
    let bodiless = matches!(resp.status.as_u16(), 100..=199 | 204 | 304);
    if !bodiless && !http2 && !resp.headers.contains_key(header::CONTENT_LENGTH) {
        resp.insert_header(header::TRANSFER_ENCODING, "chunked")?;
    }
    Ok(beats)
}

/// What the stream did, for the access log.
pub struct Streamed {
    pub upstream_time: Duration,
}

/// Proxies one request, streaming the response with heartbeats while the upstream is silent.
/// `path` replaces the client's path upstream (`ambiguous_paths: forward_normalized`).
/// `decorate` adds the route's headers (CORS) to the response header. An error before the
/// response header was written leaves the answer to the caller (502/504 with CORS).
///
/// Boxed: its future (with pingora's connector in it) is large, and would otherwise be part of
/// `request_filter`'s future, which is built and copied for every request.
pub fn stream<'a>(
    session: &'a mut Session,
    connector: &'a Connector,
    peer: &'a HttpPeer,
    path: Option<&'a str>,
    heartbeat: Duration,
    silence_limit: Duration,
    decorate: impl FnOnce(&mut ResponseHeader) + Send + 'a,
) -> BoxFuture<'a, Result<Streamed>> {
    Box::pin(async move {
        let started = Instant::now();
        let up = |e: Box<Error>| e.into_up();
        let (mut upstream, _reused) = connector.get_http_session(peer).await.map_err(up)?;

        let mut req = session.req_header().clone();
        upstream_request(&mut req, path)?;
        upstream
            .write_request_header(Box::new(req))
            .await
            .map_err(up)?;
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
        let beats = client_response(&mut resp, session.is_http2())?;
        decorate(&mut resp);
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
