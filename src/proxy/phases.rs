//! The phases of a request: what the proxy does when the head is in, to the request that goes
//! upstream, to the response head and body, and when the request is over. Each takes
//! pingora-core's `ServerSession`; the engine (`engine.rs`, `forward.rs`) calls them.

use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::protocols::http::ServerSession;

use super::answer::{send, send_preflight, Answer};
use super::errors::is_fault;
use super::record::Moved;
use super::{chunked_h1, client_limits, own, request_host, ActiveGauge, CrossGate, Ctx};
use crate::channels::Channel;
use crate::dispatch::{dispatch, Action};
use crate::path::origin_form;
use crate::{cors, guard, head, jsonp, sse};

/// An HTTP/1 request head as it came, checked before anything else reads it
/// (`head::check`): its size, target, `Host` and framing fields; an absolute-form target is
/// put in origin form with its authority as `Host`, so that what is routed is what goes
/// upstream. HTTP/2 heads come checked and sized by pingora's h2 codec.
fn head_in(session: &mut ServerSession, max_head: usize) -> std::result::Result<(), head::Refused> {
    let ServerSession::H1(h1) = session else {
        return Ok(());
    };
    let raw = h1.get_headers_raw_bytes();
    if raw.len() > max_head {
        return Err(head::Refused {
            status: 431,
            why: "the request head is larger than server.client_max_head_size",
        });
    }
    let checked = head::check(h1.req_header(), &raw)?;
    let absolute = match checked.form {
        head::Form::Absolute { authority, rest } => Some((authority.to_owned(), rest.to_owned())),
        head::Form::Origin | head::Form::Asterisk => None,
    };
    // The guard hands pingora this body and nothing after it (a chunked one checked by
    // crossgate's own decoder, `wire::chunked`), once it is sure that the head pingora parsed
    // is the one it handed over.
    let body = match checked.body {
        head::Framing::Chunked => guard::Body::Chunked,
        head::Framing::Length(n) => guard::Body::Length(n),
    };
    if !guard::message(Some(h1.stream()), raw.len(), body) {
        return Err(head::Refused {
            status: 400,
            why: "the request head's end is in doubt",
        });
    }
    let Some((authority, rest)) = absolute else {
        return Ok(());
    };
    head::to_origin_form(h1.req_header_mut(), &authority, &rest);
    Ok(())
}

impl CrossGate {
    /// The request head is in: the rules in force, the client's limits, the dispatcher's
    /// decision, and the answer when the proxy gives it itself. `Ok(true)`: answered.
    pub(super) async fn begin(&self, session: &mut ServerSession, ctx: &mut Ctx) -> Result<bool> {
        let rules = self.rules.load_full();
        client_limits(session, &rules.server.client);
        ctx.rules = Some(rules.clone());
        if let Err(refused) = head_in(session, rules.server.client.max_head) {
            ctx.channel = Channel::Own;
            // Nothing of it is routed or forwarded, and its body (if any) is not read: the
            // connection ends with the answer.
            session.set_keepalive(None);
            let message = format!("crossgate: request refused: {}", refused.why);
            send(session, Answer::text(refused.status, message), None).await?;
            return Ok(true);
        }
        let req = session.req_header();
        let action = dispatch(&rules, request_host(req), req);
        match action {
            Action::Route(routed) => self.on_route(session, ctx, &rules, routed).await,
            Action::BadPath(why) => {
                ctx.channel = Channel::Own;
                let message = format!("crossgate: ambiguous request path refused: {why}");
                send(session, Answer::text(400, message), None).await?;
                // Answered: what would be routed is not what the backend would get.
                Ok(true)
            }
            Action::Bridge(asset) => {
                ctx.channel = Channel::Own;
                let bridge = rules.bridge.as_ref().expect("dispatched to the bridge");
                Box::pin(own::serve_bridge(session, bridge, asset)).await?;
                // Answered: the bridge's files are served from the binary.
                Ok(true)
            }
            Action::Beacon(i) => {
                ctx.channel = Channel::Beacon;
                Box::pin(self.serve_beacon(session, &rules.beacons[i])).await?;
                // Answered: beacons are the proxy's own endpoints.
                Ok(true)
            }
            Action::NoRoutePreflight(preflight) => {
                ctx.channel = Channel::Preflight;
                send_preflight(session, preflight, &mut ctx.origin).await?;
                // Answered: a preflight for a path no route serves, from default_cors.
                Ok(true)
            }
            Action::NoRoute(origin) => {
                ctx.channel = Channel::Own;
                ctx.origin = origin;
                let req = session.req_header();
                let message = format!(
                    "crossgate: no route for host {} path {}",
                    crate::cors::printable(request_host(req)),
                    crate::cors::printable(req.uri.path())
                );
                let cors = ctx.policy().map(|p| (p, &ctx.origin));
                send(session, Answer::text(404, message), cors).await?;
                // Answered: no route, nothing to forward.
                Ok(true)
            }
        }
    }

    /// The response head as the client gets it: the route's CORS headers, JSONP's, the stream
    /// gauges, and whether its sends may be coalesced.
    pub(super) fn response_head(
        &self,
        session: &mut ServerSession,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let websocket = ctx.channel.is_websocket();
        if let Some(policy) = ctx.route().and_then(|r| r.cors.as_deref()) {
            if !websocket {
                policy.apply_actual(resp, &ctx.origin);
            }
        }
        if let Some(j) = ctx.channel.jsonp() {
            jsonp::response_header(j, resp, session.is_http2())?;
        }
        if let Some(route) = ctx.route() {
            let name = route.name.as_str();
            if websocket && resp.status.as_u16() == 101 {
                self.metrics
                    .websocket_total
                    .with_label_values(&[name])
                    .inc();
                let g = self.metrics.websocket_active.with_label_values(&[name]);
                ctx.stream_gauge = Some(ActiveGauge::new(g));
            } else if sse::is_event_stream(resp) {
                let g = self.metrics.sse_active.with_label_values(&[name]);
                ctx.stream_gauge = Some(ActiveGauge::new(g));
            }
        }
        if !session.is_http2() && head::client_framing(resp, session.req_header()) {
            // A body of no declared length to an HTTP/1.0 client ends with the connection.
            session.set_keepalive(None);
        }
        ctx.chunked_out = chunked_h1(session, resp);
        Ok(())
    }

    /// A request is over: its metrics and access-log line, and the head deadline re-armed
    /// for the next request.
    pub(super) fn done(&self, session: &ServerSession, e: Option<&Error>, ctx: &Ctx) {
        guard::idle(session.stream());
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let moved = Moved {
            read: session.body_bytes_read() as u64,
            sent: session.body_bytes_sent() as u64,
        };
        self.done_with(session.req_header(), status, e, ctx, moved, || {
            super::ctx::Client::of(session)
        });
    }

    /// The metrics and access-log line of a request that was answered with `status`. Without
    /// an access log, a failure of the proxy or the upstream still gets an ERROR line.
    /// `client`: who sent it, read only for the access log (a tunnel has it in `ctx`).
    pub(super) fn done_with(
        &self,
        req: &RequestHeader,
        status: u16,
        e: Option<&Error>,
        ctx: &Ctx,
        moved: Moved,
        client: impl FnOnce() -> super::ctx::Client,
    ) {
        let Some(rules) = ctx.rules.as_ref() else {
            return;
        };
        self.record(req, status, e, ctx, moved);
        if rules.log.access_log {
            let client = match &ctx.client {
                Some(c) => c.clone(),
                None => client(),
            };
            self.access_log(req, status, e, ctx, moved, &client);
        } else if let Some(e) = e.filter(|e| is_fault(e)) {
            tracing::error!(
                error = %e,
                status,
                method = %req.method,
                host = cors::sanitize(request_host(req)).as_str(),
                path = cors::sanitize(req.uri.path()).as_str(),
                request_id = ctx.request_id(req).as_str(),
                "fail to proxy",
            );
        }
    }
}

/// What the route changes in the request that goes upstream: the normalized path, JSONP's
/// parameter and credentials.
pub(super) fn upstream_request(upstream: &mut RequestHeader, ctx: &Ctx) -> Result<()> {
    if let Some(path) = ctx.forward_path.as_deref() {
        // ambiguous_paths: forward_normalized, or the route's strip_prefix: the routed path
        // is the forwarded one.
        let uri = origin_form(path, upstream.uri.query())?;
        upstream.set_uri(uri);
    }
    if let Some(host) = ctx.route().and_then(|r| r.upstream_host.as_deref()) {
        upstream.insert_header(http::header::HOST, host)?;
    }
    if let Channel::Jsonp(_) = ctx.channel {
        let route = ctx.route();
        let param = route
            .and_then(|r| r.jsonp.as_ref())
            .map_or("callback", |j| j.param.as_str());
        let credentials = route
            .and_then(|r| r.cors.as_deref())
            .is_some_and(|p| p.credentials);
        jsonp::upstream_request(upstream, param, credentials)?;
    }
    Ok(())
}

/// One piece of the response body on its way to the client: JSONP's wrapping, and which
/// flushes may be held so that a batch leaves in one send.
pub(super) fn response_body(
    session: &ServerSession,
    body: &mut Option<Bytes>,
    end_of_stream: bool,
    ctx: &mut Ctx,
) -> Result<()> {
    if let Some(j) = ctx.channel.jsonp() {
        jsonp::response_body(j, body, end_of_stream)?;
    }
    if ctx.chunked_out {
        // pingora runs this filter over a whole batch of upstream data before writing any
        // of it: say what follows in the batch, so that it leaves in one send.
        if end_of_stream {
            guard::hold_until_last_chunk(session.stream());
        } else if session.response_written().is_none()
            && body.as_ref().is_some_and(|b| !b.is_empty())
        {
            guard::hold_head_flush(session.stream());
        }
    }
    Ok(())
}
