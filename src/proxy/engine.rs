//! crossgate's own request engine on pingora-core's public app traits (issue 13): pingora is
//! the server (listeners, TLS, the HTTP/1 and HTTP/2 codecs, graceful upgrade, connectors);
//! the loop that reads a request, serves it and reads the next is crossgate's.
//!
//! - An HTTP/1 connection is one future for its whole life ([`Engine`]'s `ServerApp`), its
//!   state ([`Conn`]: the upstream connection it used last) on that future, not moved into a
//!   boxed future per request as pingora's `HttpServerApp` loop does (benches/RESULTS.md, the
//!   engine study: 11.4k instructions per request).
//! - An HTTP/2 connection (ALPN `h2`) goes through pingora's own h2 loop, which hands each
//!   stream to that connection's [`H2Conn`] as a session of its own; the upstream connections
//!   its streams used are kept on it for its next streams (not handed to pingora's pool and
//!   taken back per stream: benches/RESULTS.md, ~8k instructions per stream).
//! - Each request runs the shared phases (`phases.rs`): the dispatcher's decision and the
//!   proxy's own answers in `begin`, the exchange with the upstream in `forward.rs`, the
//!   answer to a failure in `errors.rs`, and the metrics and access log in `done`.

use std::sync::Arc;

use async_trait::async_trait;
use http::Method;
use pingora::apps::{HttpServerApp, HttpServerOptions, ReusedHttpStream, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{Stream, ALPN};
use pingora::server::ShutdownWatch;
use pingora::ErrorType;

use super::errors::answer_failure;
use super::forward::{Conn, Pinned, Upgraded};
use super::{CrossGate, Ctx};
use crate::guard;

/// The keep-alive timeout of a connection's first request, in seconds (pingora's default; the
/// rules' `client_keepalive_timeout` applies from the first request on).
const FIRST_KEEPALIVE: u64 = 60;

/// How many idle upstream connections an HTTP/2 connection keeps for its next streams (one per
/// stream it ran at once, up to this); more go to pingora's pool.
const H2_KEPT: usize = 32;

/// The proxy's `ServerApp`: HTTP/1 connections served by crossgate's loop, HTTP/2 ones by
/// pingora's.
pub struct Engine {
    proxy: Arc<CrossGate>,
    /// pingora's HTTP server options (read by its h2 loop).
    options: Arc<HttpServerOptions>,
}

/// One HTTP/2 connection: each of its streams served as one request, and the upstream
/// connections its finished streams used, for its next streams. They go to pingora's pool
/// when the connection and its last stream are over.
struct H2Conn {
    proxy: Arc<CrossGate>,
    options: Arc<HttpServerOptions>,
    kept: parking_lot::Mutex<Vec<Pinned>>,
}

impl Engine {
    /// `options`: pingora's HTTP server options (read by its h2 loop).
    pub fn new(proxy: CrossGate, options: HttpServerOptions) -> Engine {
        Engine {
            proxy: Arc::new(proxy),
            options: Arc::new(options),
        }
    }
}

#[async_trait]
impl ServerApp for Engine {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            let _open = super::ActiveGauge::new(
                self.proxy
                    .metrics
                    .connections_open
                    .with_label_values(&["h2"]),
            );
            let h2 = Arc::new(H2Conn {
                proxy: self.proxy.clone(),
                options: self.options.clone(),
                kept: parking_lot::Mutex::new(Vec::new()),
            });
            return h2.process_new(stream, shutdown).await;
        }
        let proxy = &*self.proxy;
        let _open =
            super::ActiveGauge::new(proxy.metrics.connections_open.with_label_values(&["http1"]));
        let mut shutdown = shutdown.clone();
        let mut conn = Conn::default();
        let mut stream = stream;
        let mut prefix = None;
        let mut keepalive = Some(FIRST_KEEPALIVE);
        loop {
            let mut session = ServerSession::new_http1(stream);
            if *shutdown.borrow() {
                // Shutting down: this request is the connection's last.
                keepalive = None;
            }
            session.set_keepalive(keepalive);
            if let Some(p) = prefix.take() {
                // Pipelined requests read with the one before.
                session.set_pipelining_enabled(true);
                session.set_pipelined_prefix(p);
            }
            match proxy
                .serve(&mut session, &mut conn, Some(&mut shutdown))
                .await
            {
                Served::Done { reusable: true } => {}
                Served::Done { reusable: false } => break,
                Served::Upgraded(up, ctx) => {
                    proxy.release(&mut conn);
                    // From now on the client's bytes are the tunnel's, not HTTP messages.
                    guard::opaque(session.stream());
                    self.proxy.tunnel(session, up, ctx).await;
                    return None;
                }
            }
            keepalive = session.get_keepalive();
            match session.finish().await {
                Ok(Some(reusable)) => (stream, prefix) = reusable.into_parts(),
                _ => break,
            }
        }
        proxy.release(&mut conn);
        None
    }
}

#[async_trait]
impl HttpServerApp for H2Conn {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        _shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        let mut conn = Conn::default();
        // The connection its last finished stream used (`connect` checks it is to the same
        // server and still open, as on an HTTP/1 connection).
        conn.pinned = self.kept.lock().pop();
        // An HTTP/2 stream is never upgraded (the engine tunnels HTTP/1 only).
        if let Served::Done { reusable: true } =
            self.proxy.serve(&mut session, &mut conn, None).await
        {
            let _ = session.finish().await;
        }
        if let Some(p) = conn.pinned.take() {
            let mut kept = self.kept.lock();
            if kept.len() < H2_KEPT {
                kept.push(p);
            } else {
                drop(kept);
                self.proxy.release_pinned(p);
            }
        }
        None
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        Some(&self.options)
    }
}

impl Drop for H2Conn {
    fn drop(&mut self) {
        // The connection and all its streams are over. pingora's pool watches an idle
        // connection from a task of its own: without a runtime (shutting down), they close.
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        for p in self.kept.get_mut().drain(..) {
            self.proxy.release_pinned(p);
        }
    }
}

/// How a request on a connection ended.
enum Served {
    /// Answered (or failed); `reusable`: the connection may carry another request.
    Done { reusable: bool },
    /// A WebSocket handshake succeeded: the connection becomes a tunnel (`tunnel.rs`), logged
    /// when it ends.
    Upgraded(Box<Upgraded>, Box<Ctx>),
}

impl CrossGate {
    /// Reads one request and serves it. `shutdown` (HTTP/1): a wait for the next request ends when the server
    /// begins to shut down.
    async fn serve(
        &self,
        session: &mut ServerSession,
        conn: &mut Conn,
        shutdown: Option<&mut ShutdownWatch>,
    ) -> Served {
        let closed = Served::Done { reusable: false };
        let read = match shutdown {
            Some(watch) => tokio::select! {
                biased;
                r = session.read_request() => r,
                _ = watch.wait_for(|down| *down) => return closed,
            },
            None => session.read_request().await,
        };
        match read {
            Ok(true) => {}
            Ok(false) => return closed,
            Err(e) => {
                // A head that does not parse gets a 400, one that grew past
                // client_max_head_size a 431 (RFC 6585 §5), one whose end the guard saw
                // elsewhere a 400; a connection that broke, nothing.
                let status = guard::refused(session.stream())
                    .or_else(|| matches!(e.etype(), ErrorType::InvalidHTTPHeader).then_some(400));
                if let Some(status) = status {
                    let _ = session.respond_error(status).await;
                    self.refused_head(session, "-", status, &e);
                }
                session.shutdown().await;
                return closed;
            }
        }
        if session.req_header().method == Method::CONNECT {
            // Not a forward proxy: CONNECT reframes the connection (RFC 9110 §9.3.6).
            let _ = session.respond_error(405).await;
            let why =
                pingora::Error::explain(ErrorType::HTTPStatus(405), "CONNECT: not a forward proxy");
            self.refused_head(session, "CONNECT", 405, &why);
            session.shutdown().await;
            return closed;
        }
        let mut ctx = Ctx::new(&self.in_flight, &self.metrics.requests_in_flight);
        let result = match self.begin(session, &mut ctx).await {
            Ok(true) => Ok(None),
            Ok(false) => self.forward(session, &mut ctx, conn).await,
            Err(e) => Err(e),
        };
        let error = match result {
            Ok(Some(upgraded)) => return Served::Upgraded(upgraded, Box::new(ctx)),
            Ok(None) => None,
            Err(e) => Some(e),
        };
        if let Some(e) = &error {
            // The status is in the access log (or, without one, a fault's ERROR line); a
            // client that left before its answer was complete is ordinary traffic.
            answer_failure(session, e, &ctx).await;
        }
        self.done(session, error.as_deref(), &ctx);
        Served::Done {
            reusable: error.is_none(),
        }
    }
}
