//! A routed request's exchange with its upstream, on pingora-core's HTTP/1 client: the server
//! chosen (round-robin over the healthy ones), the connection (the one this client connection
//! used last, else the pool's, else a new one), the request head and body out, the response
//! head and body back through the route's filters, a successful upgrade relayed both ways, and
//! the retries crossgate has always made.
//!
//! Retries: a connect that fails moves to the next server, whatever the method (nothing was
//! sent). Once sent, only an idempotent request whose body is still whole in the retry buffer
//! is sent again, and only if the connection closed before any response byte (or had been
//! reset before the request head could be written), to any server
//! if the connection was a reused one (the server may have dropped it while idle), otherwise
//! to the next (nginx's `proxy_next_upstream error` for idempotent methods). Never once the
//! response has begun, never for POST or PATCH.

use std::time::Instant;

use futures_util::FutureExt;
use pingora::http::RequestHeader;
use pingora::prelude::*;
use pingora::protocols::http::compression::ResponseCompressionCtx;
use pingora::protocols::http::v1::client::HttpSession as Upstream;
use pingora::protocols::http::{HttpTask, ServerSession};
use pingora::protocols::Stream;
use pingora::upstreams::peer::{HttpPeer, Peer};
use pingora::{ErrorSource, ErrorType, RetryType};
use tokio::io::AsyncReadExt;

use super::phases::{response_body, upstream_request};
use super::{peer_for, CrossGate, Ctx};
use crate::head;

/// The upstream connection a client connection keeps between its requests.
pub(super) struct Pinned {
    key: u64,
    stream: Stream,
    idle: Option<std::time::Duration>,
}

/// The most of an answer read ahead of the client, per connection: the batch of pieces
/// relayed in one write stops growing past this (nginx holds `proxy_buffers`, 8 x 4-8 KiB),
/// so that a client that stops reading holds this much, not all the upstream can send.
const RELAY_AHEAD: usize = 64 * 1024;

/// What a client connection carries from one request to the next.
#[derive(Default)]
pub(super) struct Conn {
    pub(super) pinned: Option<Pinned>,
    /// The answer's pieces gathered for one write (`Exchange::relay`), kept empty between
    /// requests so that its allocation is made once per connection.
    batch: Vec<HttpTask>,
}

fn up(e: Box<Error>) -> Box<Error> {
    e.into_up()
}

/// The request head could not be written: a connection the server had closed (a reset
/// already in, so the write fails at once) took none of it. Like a close before any answer
/// byte, that may be sent again on another connection (`forward`'s retry rules; nginx does
/// not even count a failure of a kept-alive connection as a try). A write that timed out may
/// have been read: not retried.
fn unsent(e: Box<Error>) -> Box<Error> {
    let mut e = up(e);
    if matches!(e.etype(), ErrorType::WriteError) {
        e.retry = RetryType::ReusedOnly;
    }
    e
}

/// Sends `100 Continue` (the client waits for it before its body, RFC 9110 §10.1.1). pingora
/// takes any response head written before the body is read for the answer, and closes the
/// connection after it; the 100 is not the answer: the connection goes on.
async fn write_continue(session: &mut ServerSession) -> Result<()> {
    let ServerSession::H1(h1) = session else {
        return session.write_continue_response().await;
    };
    h1.set_close_on_response_before_downstream_finish(false);
    let written = h1.write_continue_response().await;
    h1.set_close_on_response_before_downstream_finish(true);
    written
}

/// An upstream answer crossgate will not relay (a 502); its connection is not used again.
fn upstream_fault(why: &'static str) -> Box<Error> {
    let mut e = Error::explain(ErrorType::InvalidHTTPHeader, why);
    e.as_up();
    e
}

/// The body bytes a piece of the answer carries.
fn body_len(task: &HttpTask) -> usize {
    match task {
        HttpTask::Body(Some(b), _) | HttpTask::UpgradedBody(Some(b), _) => b.len(),
        _ => 0,
    }
}

/// A client-side error, unless pingora already said whose it is.
pub(super) fn down(mut e: Box<Error>) -> Box<Error> {
    if *e.esource() == ErrorSource::Unset {
        e.as_down();
    }
    e
}

/// Whether a kept upstream connection is still open and quiet: a closed one reads 0 at once,
/// and one on which anything arrived since its last answer ended is out of step (a late body
/// of a HEAD, 204 or 304 answer, a body longer than its length): what arrived would be taken
/// for the next request's answer, another client's perhaps. Either is never used again. Asked
/// before every reuse, however short the idle time (pingora's pool does the same; nginx closes
/// a cached upstream connection on any read event); the read is tried only when the reactor
/// says the socket is readable.
fn still_open(stream: &mut Stream) -> bool {
    let mut probe = [0u8; 1];
    // Unconstrained: a task out of tokio's cooperative budget would see Pending, that is
    // "quiet", whatever the socket holds.
    tokio::task::unconstrained(stream.read(&mut probe))
        .now_or_never()
        .is_none()
}

/// A request body larger than the route's `max_body_size` (nginx's `client_max_body_size`):
/// a 413, and the connection ends (the rest of the body is not read).
fn too_large(session: &mut ServerSession, limit: u64) -> Box<Error> {
    session.set_keepalive(None);
    Error::explain(
        ErrorType::HTTPStatus(413),
        format!("the request body is larger than max_body_size ({limit} bytes)"),
    )
    .into_down()
}

/// The request head that goes upstream: the client's, sanitized, with the route's changes.
fn upstream_head(session: &ServerSession, has_body: bool, ctx: &Ctx) -> Result<Box<RequestHeader>> {
    let host = ctx.route().map_or("", |r| r.upstream.name.as_str());
    let mut head = head::upstream_request(session.req_header(), has_body, host)?;
    if let Some(rules) = &ctx.rules {
        super::forwarding(session, &rules.server.trusted_proxies).apply(&mut head);
    }
    upstream_request(&mut head, ctx)?;
    let id = ctx.request_id(session.req_header()).value();
    head.insert_header(crate::request_id::X_REQUEST_ID, id)?;
    Ok(head)
}

impl CrossGate {
    /// The connection for `peer`: the client connection's own if it is to the same server and
    /// still open, else the pool's, else a new one. `true`: a reused connection.
    async fn connect(&self, peer: &HttpPeer, conn: &mut Conn) -> Result<(Upstream, bool)> {
        let key = peer.reuse_hash();
        if let Some(mut p) = conn.pinned.take() {
            if p.key == key && still_open(&mut p.stream) {
                return Ok((Upstream::new(p.stream), true));
            }
            if p.key != key {
                self.release_pinned(p);
            }
        }
        if let Some(s) = self.transport.reused_stream(peer).await {
            return Ok((Upstream::new(s), true));
        }
        let s = self.transport.new_stream(peer).await?;
        Ok((Upstream::new(s), false))
    }

    /// Keeps a finished exchange's connection in the client connection, for its next request
    /// (an HTTP/2 stream's goes to the pool when the stream ends, [`CrossGate::release`]).
    async fn keep(&self, mut upstream: Upstream, peer: &HttpPeer, conn: &mut Conn) {
        upstream.respect_keepalive();
        let Some(stream) = upstream.reuse().await else {
            return;
        };
        let pinned = Pinned {
            key: peer.reuse_hash(),
            stream,
            idle: peer.options.idle_timeout,
        };
        if let Some(old) = conn.pinned.replace(pinned) {
            self.release_pinned(old);
        }
    }

    /// Gives a client connection's kept upstream connection to the pool when it ends.
    pub(super) fn release(&self, conn: &mut Conn) {
        if let Some(p) = conn.pinned.take() {
            self.release_pinned(p);
        }
    }

    /// Gives a kept upstream connection to the pool.
    pub(super) fn release_pinned(&self, p: Pinned) {
        self.transport.release_stream(p.stream, p.key, p.idle);
    }

    /// Forwards a routed request and relays the answer; an error before the response head
    /// was sent is answered by the caller.
    pub(super) async fn forward(
        &self,
        session: &mut ServerSession,
        ctx: &mut Ctx,
        conn: &mut Conn,
    ) -> Result<Option<Box<Upgraded>>> {
        let rules = ctx.rules.clone().expect("a routed request has its rules");
        let route = &rules.routes[ctx.route.expect("a routed request has its route")];
        let websocket = ctx.channel.is_websocket();
        // An HTTP/1 WebSocket handshake that succeeds leaves the exchange as a tunnel of its
        // own (`tunnel.rs`): both connections without their HTTP sessions. Only a head that
        // went upstream as a handshake may (`head::upstream_request` keeps `Upgrade` for a
        // whole handshake only).
        let tunnel =
            websocket && !session.is_http2() && head::is_websocket_handshake(session.req_header());
        let has_body = !session.is_body_empty();
        if let Some(limit) = route.max_body_size {
            let declared = head::declared_length(session.req_header()).unwrap_or(0);
            if declared > limit {
                return Err(too_large(session, limit));
            }
        }
        let mut first = Some(upstream_head(session, has_body, ctx)?);
        let continue_first = has_body && head::expects_continue(session.req_header());
        let mut decode = ctx.decompress.then(|| {
            let mut c = ResponseCompressionCtx::new(0, true, false);
            c.request_filter(first.as_deref().expect("built"));
            c
        });
        session.enable_retry_buffering();
        let servers = route.upstream.server_count();
        loop {
            let peer = peer_for(route, websocket)?;
            ctx.upstream_addr = peer.address().as_inet().copied();
            ctx.tries += 1;
            ctx.upstream_started = Some(Instant::now());
            let (mut upstream, reused) = match self.connect(&peer, conn).await {
                Ok(c) => c,
                Err(e) => {
                    let e = up(e);
                    if ctx.tries < servers {
                        // A retried error never reaches the log: count it here.
                        self.count_upstream_error(route, &e);
                        continue;
                    }
                    return Err(e);
                }
            };
            upstream.read_timeout = peer.options.read_timeout;
            upstream.write_timeout = peer.options.write_timeout;
            // Built again only for a retry: the first attempt takes it.
            let head = match first.take() {
                Some(h) => h,
                None => upstream_head(session, has_body, ctx)?,
            };
            let exchange = Exchange {
                proxy: self,
                session: &mut *session,
                upstream: &mut upstream,
                ctx: &mut *ctx,
                decode: decode.as_mut(),
                continue_first,
                tunnel,
                limit: route.max_body_size,
                batch: &mut conn.batch,
            };
            match exchange.run(head).await {
                Ok(Outcome::Done { reusable }) => {
                    if reusable {
                        self.keep(upstream, &peer, conn).await;
                    }
                    return Ok(None);
                }
                Ok(Outcome::Upgraded(head)) => {
                    let idle = route
                        .websocket
                        .map_or(rules.server.client.keepalive, |w| w.idle_timeout);
                    return Ok(Some(Box::new(Upgraded::new(upstream, head, idle))));
                }
                Err(mut e) => {
                    let resendable = session.req_header().method.is_idempotent()
                        && !session.retry_buffer_truncated()
                        && ctx.upstream_time.is_none()
                        && session.response_written().is_none();
                    let retry = matches!(e.retry, RetryType::ReusedOnly)
                        && resendable
                        && (reused || ctx.tries < servers);
                    if !retry {
                        e.retry = RetryType::Decided(false);
                        return Err(e);
                    }
                    self.count_upstream_error(route, &e);
                }
            }
        }
    }
}

/// One attempt: a request sent on one upstream connection and its answer relayed.
struct Exchange<'a> {
    proxy: &'a CrossGate,
    session: &'a mut ServerSession,
    upstream: &'a mut Upstream,
    ctx: &'a mut Ctx,
    decode: Option<&'a mut ResponseCompressionCtx>,
    continue_first: bool,
    /// A 101 to this request ends the exchange as a tunnel.
    tunnel: bool,
    /// The route's `max_body_size`.
    limit: Option<u64>,
    batch: &'a mut Vec<HttpTask>,
}

/// How an exchange ended.
enum Outcome {
    /// The answer was relayed; `reusable`: the upstream connection can carry another request.
    Done { reusable: bool },
    /// The upstream switched protocols (its 101 head, filtered, not yet sent).
    Upgraded(Box<pingora::http::ResponseHeader>),
}

/// A successful WebSocket handshake's upstream side, for the tunnel.
pub(super) struct Upgraded {
    pub(super) upstream: Stream,
    /// The 101 head the client gets.
    pub(super) head: Box<pingora::http::ResponseHeader>,
    /// What the upstream sent after its head, already read.
    pub(super) early: Vec<bytes::Bytes>,
    /// The route's idle timeout.
    pub(super) idle: std::time::Duration,
}

impl Upgraded {
    fn new(
        mut upstream: Upstream,
        head: Box<pingora::http::ResponseHeader>,
        idle: std::time::Duration,
    ) -> Upgraded {
        // Bytes that came with the 101 are in the session's buffer: taken without waiting.
        let mut early = Vec::new();
        while let Some(Ok(task)) = upstream.read_response_task().now_or_never() {
            match task {
                HttpTask::Body(Some(b), end) | HttpTask::UpgradedBody(Some(b), end) => {
                    early.push(b);
                    if end {
                        break;
                    }
                }
                _ => break,
            }
        }
        Upgraded {
            upstream: upstream.into_inner(),
            head,
            early,
            idle,
        }
    }
}

impl Exchange<'_> {
    /// Sends the request and relays the answer; `Ok(true)`: the upstream connection can carry
    /// another request.
    async fn run(mut self, head: Box<RequestHeader>) -> Result<Outcome> {
        self.upstream
            .write_request_header(head)
            .await
            .map_err(unsent)?;
        // A retry sends again what the client's body gave so far.
        if let Some(sent) = self.session.get_retry_buffer() {
            if !sent.is_empty() {
                self.upstream.write_body(&sent).await.map_err(up)?;
            }
        }
        let mut request_done = self.session.is_body_done();
        if request_done {
            self.upstream.finish_body().await.map_err(up)?;
        } else if self.continue_first && self.session.response_written().is_none() {
            write_continue(self.session).await.map_err(down)?;
        }
        let mut response_done = false;
        let mut reusable = true;
        // A body the upstream stopped taking: it may still answer (a 413 before the end).
        let mut send_error = None;
        while !response_done {
            tokio::select! {
                biased;
                task = self.upstream.read_response_task() => {
                    let task = match task {
                        Ok(HttpTask::Header(mut head, _)) if head.status.as_u16() == 101 => {
                            if !self.tunnel {
                                // Only a handshake crossgate forwarded as one may switch the
                                // connection: any other 101 would open a raw tunnel past
                                // routing, paths and CORS for the client's next bytes.
                                return Err(upstream_fault("a 101 to a request that asked for no upgrade"));
                            }
                            self.filter_head(&mut head)?;
                            return Ok(Outcome::Upgraded(head));
                        }
                        Ok(HttpTask::Header(head, end)) => {
                            if !head.status.is_informational() {
                                let raw = self.upstream.get_headers_raw_bytes();
                                reusable &= head::response_framing(&head, &raw).map_err(up)?;
                            }
                            HttpTask::Header(head, end)
                        }
                        Ok(t) => t,
                        Err(e) => return Err(send_error.unwrap_or_else(|| up(e))),
                    };
                    response_done = self.relay(task).await?;
                }
                body = self.session.read_body_or_idle(request_done) => {
                    let sent = match body.map_err(down)? {
                        // An empty piece (a chunk boundary read on its own) is not written: to a
                        // chunked upstream body it would be the last chunk, ending it early.
                        Some(chunk) if chunk.is_empty() => Ok(()),
                        Some(chunk) => {
                            self.ctx.body_read += chunk.len() as u64;
                            if let Some(limit) = self.limit.filter(|&l| self.ctx.body_read > l) {
                                // Streamed past the limit: the upstream connection is dropped
                                // mid-body (never reused), the client gets the 413 if nothing
                                // was answered yet.
                                return Err(too_large(self.session, limit));
                            }
                            self.upstream.write_body(&chunk).await.map(|_| ())
                        }
                        None => {
                            request_done = true;
                            self.upstream.finish_body().await.map(|_| ())
                        }
                    };
                    if let Err(e) = sent {
                        // Stop sending; read what the upstream answers. Neither connection
                        // carries another request: the rest of the body is not read.
                        send_error = Some(up(e));
                        request_done = true;
                        reusable = false;
                        self.session.set_keepalive(None);
                    }
                }
            }
        }
        if !self.session.is_body_done() {
            // The answer is complete before the request: nothing more goes upstream on this
            // connection.
            reusable = false;
        }
        Ok(Outcome::Done { reusable })
    }

    /// What the route does to one piece of the upstream's answer, before it is written: the
    /// response head's filters, JSONP's wrapping of the body.
    fn filter(&mut self, task: &mut HttpTask) -> Result<()> {
        if let Some(d) = self.decode.as_deref_mut() {
            d.response_filter(task);
        }
        match task {
            HttpTask::Header(resp, _) => self.filter_head(resp),
            HttpTask::Body(data, end) | HttpTask::UpgradedBody(data, end) => {
                response_body(self.session, data, *end, self.ctx)
            }
            _ => Ok(()),
        }
    }

    /// The response head's filters: hop-by-hop fields, then the route's (a final head's).
    fn filter_head(&mut self, resp: &mut pingora::http::ResponseHeader) -> Result<()> {
        head::client_response(resp, self.session.is_http2());
        if resp.status.is_informational() && resp.status.as_u16() != 101 {
            return Ok(());
        }
        self.ctx.upstream_time = self.ctx.upstream_started.map(|t| t.elapsed());
        self.proxy.response_head(self.session, resp, self.ctx)
    }

    /// Writes one filtered piece of the answer to the client; `Ok(true)`: it was the last.
    async fn write(&mut self, task: HttpTask) -> Result<bool> {
        let session = &mut *self.session;
        match task {
            HttpTask::Header(resp, end) => {
                // 100 Continue is the proxy's to send (it reads the body); other 1xx (103
                // Early Hints) go on.
                if resp.status.as_u16() != 100 {
                    session.write_response_header(resp).await.map_err(down)?;
                }
                if end {
                    session.finish_body().await.map_err(down)?;
                }
                Ok(end)
            }
            HttpTask::Body(data, end) | HttpTask::UpgradedBody(data, end) => {
                match data {
                    Some(d) if !d.is_empty() => {
                        session.write_response_body(d, end).await.map_err(down)?
                    }
                    _ if end => session.finish_body().await.map_err(down)?,
                    _ => {}
                }
                Ok(end)
            }
            HttpTask::Trailer(_) => Ok(false),
            HttpTask::Done => {
                session.finish_body().await.map_err(down)?;
                Ok(true)
            }
            HttpTask::Failed(e) => Err(e),
        }
    }

    /// Relays what the upstream has sent: the piece just read and every piece already there
    /// behind it, all filtered before any is written, so that a head and a body that came
    /// together leave together (`guard::hold_head_flush`); `Ok(true)`: the answer is complete.
    async fn relay(&mut self, first: HttpTask) -> Result<bool> {
        // Out of `self` while the filters and writes borrow it.
        let mut batch = std::mem::take(self.batch);
        let mut ahead = body_len(&first);
        batch.push(first);
        while ahead < RELAY_AHEAD && !batch.last().is_some_and(HttpTask::is_end) {
            match self.upstream.read_response_task().now_or_never() {
                Some(Ok(t)) => {
                    ahead += body_len(&t);
                    batch.push(t);
                }
                Some(Err(e)) => batch.push(HttpTask::Failed(up(e))),
                None => break,
            }
            if matches!(batch.last(), Some(HttpTask::Failed(_))) {
                break;
            }
        }
        for task in batch.iter_mut() {
            self.filter(task)?;
        }
        let mut done = false;
        for task in batch.drain(..) {
            done |= self.write(task).await?;
        }
        // Empty again, its allocation kept for the next batch (an error drops it).
        *self.batch = batch;
        Ok(done)
    }
}
