//! A deadline for each request head: the slow-loris defence pingora lacks.
//!
//! pingora times out each read of a request head separately (and not at all between requests
//! on a kept-alive connection), so a client that trickles one header byte at a time holds a
//! connection forever. [`HeadGuard`] wraps every connection's stream: from a request's
//! first byte (for the first request, from the connect) until the proxy has the whole head
//! ([`head_done`], called from `phases::begin`), reads fail once `client_header_timeout` has
//! passed, and pingora closes the connection. The timer is armed only when a head has to wait
//! for more bytes, so a head that arrives in one read costs a clock read and no timer. Between
//! requests ([`idle`], from `phases::done`) and while a body or upgraded stream flows, nothing is
//! timed here; pingora's own read, keep-alive and write timeouts apply.
//!
//! Pipelined requests (HTTP/1.1 pipelining is on, see `proxy::client_limits`) arrive in reads
//! made for an earlier request, and pingora keeps them in its own buffer: a head that is whole
//! there is parsed without a read and never waits on this clock, however long the requests
//! before it took. A head of which only the start came that way is timed from the next byte
//! that arrives for it; the wait for that byte is bounded by `client_keepalive_timeout`, as on
//! any kept-alive connection.
//!
//! The first head's deadline covers what comes before it too: on a TLS listener the
//! handshake ([`Guarded`] does it, as pingora's listeners give it a fixed 60 s), on HTTP/2 the
//! connection preface. An HTTP/2 connection carries many requests at once, and its heads are
//! header blocks (a HEADERS frame and its CONTINUATIONs, RFC 9113 §6.10) that the guard sees in
//! the client's frames (`h2.rs`): each must be whole within `client_header_timeout` of the read
//! that brought its HEADERS frame's header. Nothing else on an h2 connection is timed here.
//!
//! On HTTP/1 the wrapper also keeps message boundaries (`h1.rs`): pingora is handed a head up
//! to its empty line (a head past `client_max_head_size` is refused, [`refused`] says 431),
//! then, once the engine has said how its body is framed ([`message`]), that body and nothing
//! after it, a chunked one checked by crossgate's own strict decoder (`crate::wire::chunked`);
//! what was read past a message's end waits here for the next reads. pingora's codec alone
//! takes a bare LF into a chunk extension and skips trailer lines unchecked.
//!
//! The same wrapper coalesces the sends of a chunked response. pingora 0.9 flushes the head of
//! any response without a Content-Length, every chunk, and the last chunk, each in its own send,
//! even when the head, the body and the end arrived from the upstream together: a small JSONP
//! answer cost three sends where a Content-Length answer costs one. When the proxy knows that
//! more of the same batch follows ([`hold_head_flush`], [`hold_until_last_chunk`], set from the
//! body filter, which pingora runs for a whole batch before writing it), the flushes in between
//! are held, and the batch leaves in one send. Nothing is held across a wait: a held flush is
//! done before the next read of the connection (pingora reads the client while it waits for
//! the upstream, and to get the next request) and at shutdown.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::listeners::tls::Acceptor;
use pingora::protocols::l4::stream::Stream as L4Stream;

use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::TlsRef;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::rules::Rules;

mod h1;
mod h2;

pub use h1::Body;

/// `body_word` values besides a length.
const NO_BODY_WORD: u64 = u64::MAX;
const CHUNKED: u64 = u64::MAX - 1;
const OPAQUE: u64 = u64::MAX - 2;

const IDLE: u8 = 0;
const HEAD: u8 = 1;
const DONE: u8 = 2;

/// Flushes pass.
const PASS: u8 = 0;
/// The next flush (a head's, with its body following in the same batch) is held.
const HOLD_ONE: u8 = 1;
/// Every flush is held until the last chunk of a chunked body is written.
const HOLD_TO_END: u8 = 2;

/// pingora's last chunk of a chunked body, written on its own.
const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// A connection's stream with a deadline on its request heads.
pub struct HeadGuard {
    inner: Stream,
    limit: Duration,
    /// HTTP/1: the message boundaries (`h1.rs`): pingora is never handed a byte past the
    /// current message's end.
    h1: Option<h1::Messages>,
    /// The engine's word on the body after the head that ended ([`message`]), applied at the
    /// next read: `NO_BODY_WORD`, `CHUNKED`, `OPAQUE` or a length.
    body_word: AtomicU64,
    /// The length of the head that ended and that the engine has not checked yet.
    ended_head: AtomicUsize,
    /// Why reads were stopped: 0, or the status the engine answers (431, 400).
    refused: AtomicU16,
    state: AtomicU8,
    /// When the current head began.
    started: Instant,
    /// Armed only when a read of a head has to wait: a head that arrives in one read (the
    /// usual case) costs no timer operation.
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
    /// PASS, HOLD_ONE or HOLD_TO_END.
    hold: AtomicU8,
    /// A flush was held: it is owed before the next read.
    held: bool,
    /// HTTP/2: the client's frames, followed to see its request heads.
    h2: Option<h2::Frames>,
}

impl HeadGuard {
    /// An HTTP/1 connection whose first request's head must be whole within `limit` of
    /// `connected`.
    pub fn new(inner: Stream, limit: Duration, connected: Instant) -> HeadGuard {
        HeadGuard {
            inner,
            limit,
            h1: Some(h1::Messages::new(usize::MAX)),
            body_word: AtomicU64::new(NO_BODY_WORD),
            ended_head: AtomicUsize::new(usize::MAX),
            refused: AtomicU16::new(0),
            state: AtomicU8::new(HEAD),
            started: connected,
            timer: None,
            armed: false,
            hold: AtomicU8::new(PASS),
            held: false,
            h2: None,
        }
    }

    /// Reads of an HTTP/1 request head fail once more than `max_head` bytes of it came and
    /// it is still not whole ([`refused`] says 431): a client cannot make the proxy hold more
    /// than about that much per connection for an unfinished head.
    pub fn with_max_head(self, max_head: usize) -> HeadGuard {
        HeadGuard {
            h1: Some(h1::Messages::new(max_head)),
            ..self
        }
    }

    /// An HTTP/2 connection: the preface and the first request's head must be whole within
    /// `limit` of `connected`, each later head (a HEADERS frame and its CONTINUATIONs) within
    /// `limit` of the read that brought its HEADERS frame's header. pingora's session code
    /// never calls [`head_done`] or [`idle`] for h2 streams (they have no stream of their
    /// own); the frames say when a head is in.
    pub fn h2(inner: Stream, limit: Duration, connected: Instant) -> HeadGuard {
        HeadGuard {
            h2: Some(h2::Frames::new()),
            h1: None,
            ..HeadGuard::new(inner, limit, connected)
        }
    }
}

fn guard(stream: Option<&Stream>) -> Option<&HeadGuard> {
    stream?.as_any().downcast_ref::<HeadGuard>()
}

impl HeadGuard {
    /// Polls the armed timer (registering the task's waker); true once it has fired.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.timer
            .as_mut()
            .is_some_and(|t| t.as_mut().poll(cx).is_ready())
    }

    /// HTTP/1: the engine's word on the body, if it came, then bytes read earlier past a
    /// message's end, if any (no read of the connection then).
    fn held(&mut self, buf: &mut ReadBuf<'_>) -> Option<Poll<io::Result<()>>> {
        let m = self.h1.as_mut()?;
        let word = self.body_word.swap(NO_BODY_WORD, Ordering::Relaxed);
        if word != NO_BODY_WORD {
            m.body(match word {
                CHUNKED => Body::Chunked,
                OPAQUE => Body::Opaque,
                n => Body::Length(n),
            });
        }
        let taken = match m.take_held(buf.remaining())? {
            Ok(bytes) => {
                buf.put_slice(bytes);
                Ok(())
            }
            Err(why) => Err(why),
        };
        m.settle_held();
        if let Err(why) = taken {
            return Some(self.refuse(why));
        }
        if m.awaiting() {
            self.ended_head.store(m.head_len, Ordering::Relaxed);
        }
        Some(Poll::Ready(Ok(())))
    }

    /// Stops the connection's reads: the engine answers with the status `refused` says.
    fn refuse(&self, why: h1::Refused) -> Poll<io::Result<()>> {
        let (status, message) = match why {
            h1::Refused::TooLarge => (
                431,
                "the request head is larger than client_max_head_size".to_owned(),
            ),
            h1::Refused::Body(e) => (400, format!("the chunked request body has {e}")),
            h1::Refused::Disagree => (400, "the request head's end is in doubt".to_owned()),
        };
        self.refused.store(status, Ordering::Relaxed);
        Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, message)))
    }

    fn timed_out(&self) -> Poll<io::Result<()>> {
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the request head took longer than {:?}", self.limit),
        )))
    }
}

/// The request head is in: stop the clock (the body and any upgraded stream are not timed
/// here).
pub fn head_done(stream: Option<&Stream>) {
    if let Some(g) = guard(stream) {
        g.state.store(DONE, Ordering::Relaxed);
    }
}

/// Why the guard stopped the connection's reads, as the status to answer: 431 (a head past
/// `client_max_head_size` before its end), 400 (a chunked body that broke its grammar, or a
/// head whose end the parser and the guard saw differently); `None`: it did not.
pub fn refused(stream: Option<&Stream>) -> Option<u16> {
    guard(stream)
        .map(|g| g.refused.load(Ordering::Relaxed))
        .filter(|s| *s != 0)
}

/// An HTTP/1 head of `head_len` bytes was parsed, and its body is framed as `body`: the
/// guard hands pingora that body and nothing after it. `false`: the guard handed over a head
/// of another length (the parser and the guard disagree on where it ended): the request must
/// be refused.
pub fn message(stream: Option<&Stream>, head_len: usize, body: Body) -> bool {
    let Some(g) = guard(stream).filter(|g| g.h2.is_none()) else {
        return true;
    };
    if g.ended_head.swap(usize::MAX, Ordering::Relaxed) != head_len {
        return false;
    }
    let word = match body {
        Body::Length(n) => n.min(OPAQUE - 1),
        Body::Chunked => CHUNKED,
        Body::Opaque => OPAQUE,
    };
    g.body_word.store(word, Ordering::Relaxed);
    true
}

/// The connection is upgraded (a WebSocket tunnel): its bytes are handed over as they come.
pub fn opaque(stream: Option<&Stream>) {
    if let Some(g) = guard(stream) {
        g.body_word.store(OPAQUE, Ordering::Relaxed);
    }
}

/// The request is over: the clock starts again at the next request's first byte. Nothing more
/// is held (a flush still owed is done before the next read, or at shutdown).
pub fn idle(stream: Option<&Stream>) {
    if let Some(g) = guard(stream) {
        g.state.store(IDLE, Ordering::Relaxed);
        g.hold.store(PASS, Ordering::Relaxed);
    }
}

/// A chunked response's head and the first of its body are about to be written in one batch:
/// hold the head's flush, so that both leave in the body's send.
pub fn hold_head_flush(stream: Option<&Stream>) {
    if let Some(g) = guard(stream) {
        g.hold.store(HOLD_ONE, Ordering::Relaxed);
    }
}

/// A chunked response's last batch (its head too, if not yet sent) is about to be written:
/// hold every flush until the last chunk is written, so that the batch leaves in one send.
pub fn hold_until_last_chunk(stream: Option<&Stream>) {
    if let Some(g) = guard(stream) {
        g.hold.store(HOLD_TO_END, Ordering::Relaxed);
    }
}

impl HeadGuard {
    /// Does a flush that was held, and stops holding: the connection is about to wait.
    fn settle(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.hold.store(PASS, Ordering::Relaxed);
        if self.held {
            std::task::ready!(Pin::new(&mut self.inner).poll_flush(cx))?;
            self.held = false;
        }
        Poll::Ready(Ok(()))
    }

    /// The last chunk ends a hold-to-end.
    fn wrote(&self, first: &[u8]) {
        if first == LAST_CHUNK && self.hold.load(Ordering::Relaxed) == HOLD_TO_END {
            self.hold.store(PASS, Ordering::Relaxed);
        }
    }
}

impl AsyncRead for HeadGuard {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.held || this.hold.load(Ordering::Relaxed) != PASS {
            std::task::ready!(this.settle(cx))?;
        }
        let state = this.state.load(Ordering::Relaxed);
        if state == HEAD && this.armed && this.expired(cx) {
            return this.timed_out();
        }
        if this.h1.is_some() {
            if let Some(ready) = this.held(buf) {
                return ready;
            }
        }
        if state == DONE && this.armed {
            // A head that waited is in. The timer goes: it holds the waker of the task that
            // waited, and an upgraded connection's tunnel is another task, which would keep
            // the finished one's memory (8.6 KiB) until the head's deadline.
            this.timer = None;
            this.armed = false;
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        match polled {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                if let Some(m) = this.h1.as_mut() {
                    // Only up to the current message's end; the rest is kept (`h1.rs`).
                    match m.admit_read(&buf.filled()[before..]) {
                        Ok(n) => buf.set_filled(before + n),
                        Err(why) => return this.refuse(why),
                    }
                    if m.awaiting() {
                        this.ended_head.store(m.head_len, Ordering::Relaxed);
                    }
                }
                let new_head = match this.h2.as_mut() {
                    None => state == IDLE,
                    Some(frames) => {
                        let fed = frames.feed(&buf.filled()[before..]);
                        if fed.ended {
                            this.state.store(IDLE, Ordering::Relaxed);
                        }
                        // A head from connect (none has ended yet) keeps its clock.
                        fed.began && frames.in_block() && (fed.ended || state == IDLE)
                    }
                };
                if new_head {
                    // The first bytes of the next request: its head has `limit` from now.
                    this.state.store(HEAD, Ordering::Relaxed);
                    this.started = Instant::now();
                    this.armed = false;
                }
            }
            Poll::Pending if state == HEAD && !this.armed => {
                // The head is incomplete and the client is silent: start the clock.
                let deadline = this.started + this.limit;
                match this.timer.as_mut() {
                    Some(t) => t.as_mut().reset(deadline),
                    None => this.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
                }
                this.armed = true;
                if this.expired(cx) {
                    return this.timed_out();
                }
            }
            _ => {}
        }
        polled
    }
}

impl AsyncWrite for HeadGuard {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.wrote(buf);
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let [one] = bufs {
            this.wrote(one);
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.hold.load(Ordering::Relaxed) {
            PASS => {
                std::task::ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
                this.held = false;
                Poll::Ready(Ok(()))
            }
            hold => {
                if hold == HOLD_ONE {
                    this.hold.store(PASS, Ordering::Relaxed);
                }
                this.held = true;
                Poll::Ready(Ok(()))
            }
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.settle(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for HeadGuard {
    async fn shutdown(&mut self) {
        if let Err(e) = std::future::poll_fn(|cx| self.settle(cx)).await {
            tracing::debug!(error = %e, "flushing before shutdown");
        }
        self.inner.shutdown().await
    }
}

impl UniqueID for HeadGuard {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for HeadGuard {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for HeadGuard {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for HeadGuard {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for HeadGuard {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for HeadGuard {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

impl fmt::Debug for HeadGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeadGuard")
            .field("inner", &self.inner)
            .field("limit", &self.limit)
            .finish()
    }
}

/// Wraps a pingora app so that each connection it gets is a [`HeadGuard`], with the
/// `client_header_timeout` of the rules in force when the connection arrives; for a TLS
/// listener, the TLS handshake is done here first, within the first head's deadline.
///
/// pingora's TLS listeners do the handshake before the app sees the connection, with a fixed
/// 60 s timeout (`Service::run_endpoint` in pingora-core 0.9.1) and no hook to shorten it, so
/// crossgate's TLS addresses are plain TCP listeners for pingora, and the handshake is pingora's
/// own (`Acceptor::tls_handshake`, the acceptor its listener would have built from the same
/// `TlsSettings`), under the deadline.
pub struct Guarded<A> {
    pub app: Arc<A>,
    pub rules: Arc<ArcSwap<Rules>>,
    /// Every listener of the service by its address, with its acceptor if it is a TLS one.
    pub listeners: Vec<(SocketAddr, Option<Acceptor>)>,
}

impl<A> Guarded<A> {
    /// The TLS acceptor of the listener that `stream` came in on, if that is a TLS listener.
    /// A listener on an unspecified address (`0.0.0.0`, `[::]`) takes the connections that no
    /// listener on the exact address takes, as the kernel decides.
    fn acceptor_for(&self, stream: &Stream) -> Option<&Acceptor> {
        if self.listeners.iter().all(|(_, tls)| tls.is_none()) {
            return None;
        }
        let local = *stream.get_socket_digest()?.local_addr()?.as_inet()?;
        let exact = self.listeners.iter().find(|(a, _)| *a == local);
        let (_, tls) = exact.or_else(|| {
            self.listeners.iter().find(|(a, _)| {
                a.ip().is_unspecified()
                    && a.port() == local.port()
                    && a.is_ipv4() == local.is_ipv4()
            })
        })?;
        tls.as_ref()
    }
}

/// The TLS handshake, cut at `deadline`; `None` when it failed or took too long (the
/// connection is closed).
async fn tls_handshake(acceptor: &Acceptor, stream: Stream, deadline: Instant) -> Option<Stream> {
    let peer = stream
        .get_socket_digest()
        .and_then(|d| d.peer_addr().cloned());
    // pingora's listeners hand over their own TCP stream type, the one its TLS listeners
    // wrap too.
    let tcp = match stream.into_any().downcast::<L4Stream>() {
        Ok(tcp) => *tcp,
        Err(_) => {
            tracing::error!("a connection to a TLS listener is not a TCP stream: closed");
            return None;
        }
    };
    match tokio::time::timeout_at(deadline, acceptor.tls_handshake(tcp)).await {
        Ok(Ok(tls)) => Some(Box::new(tls)),
        Ok(Err(e)) => {
            tracing::debug!(peer = ?peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(peer = ?peer, "TLS handshake cut at client_header_timeout");
            None
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Guarded<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        // pingora calls this as soon as it has accepted the connection: the first head's
        // clock (which covers a TLS handshake too) starts now.
        let connected = Instant::now();
        let (limit, max_head) = {
            let client = &self.rules.load().server.client;
            (client.header, client.max_head)
        };
        let stream = match self.acceptor_for(&stream) {
            // Boxed: the handshake's future is some 10 KiB, which would otherwise be part of
            // this one, copied into its box for every connection, TLS or not.
            Some(acceptor) => Box::pin(tls_handshake(acceptor, stream, connected + limit)).await?,
            None => stream,
        };
        let guard = if stream.selected_alpn_proto() == Some(ALPN::H2) {
            HeadGuard::h2(stream, limit, connected)
        } else {
            HeadGuard::new(stream, limit, connected).with_max_head(max_head)
        };
        self.app.process_new(Box::new(guard), shutdown).await
    }

    async fn cleanup(&self) {
        self.app.cleanup().await
    }
}

#[cfg(test)]
mod tests;
