//! A deadline for each request head: the slow-loris defence pingora lacks.
//!
//! pingora times out each read of a request head separately (and not at all between requests
//! on a kept-alive connection), so a client that trickles one header byte at a time holds a
//! connection forever. [`HeadGuard`] wraps every HTTP/1 connection's stream: from a request's
//! first byte (for the first request, from the connect) until the proxy has the whole head
//! ([`head_done`], called from `request_filter`), reads fail once `client_header_timeout` has
//! passed, and pingora closes the connection. The timer is armed only when a head has to wait
//! for more bytes, so a head that arrives in one read costs a clock read and no timer. Between requests ([`idle`], from `logging`) and
//! while a body or upgraded stream flows, nothing is timed here; pingora's own read, keep-alive
//! and write timeouts apply. HTTP/2 connections are not wrapped (one stream per request: h2's
//! own flow control and pingora's h2 timeouts apply).

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::apps::ServerApp;

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

const IDLE: u8 = 0;
const HEAD: u8 = 1;
const DONE: u8 = 2;

/// A connection's stream with a deadline on its request heads.
pub struct HeadGuard {
    inner: Stream,
    limit: Duration,
    state: AtomicU8,
    /// When the current head began.
    started: Instant,
    /// Armed only when a read of a head has to wait: a head that arrives in one read (the
    /// usual case) costs no timer operation.
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl HeadGuard {
    /// The clock starts now: the first request's head must arrive within `limit`.
    pub fn new(inner: Stream, limit: Duration) -> HeadGuard {
        HeadGuard {
            inner,
            limit,
            state: AtomicU8::new(HEAD),
            started: Instant::now(),
            timer: None,
            armed: false,
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

/// The request is over: the clock starts again at the next request's first byte.
pub fn idle(stream: Option<&Stream>) {
    if let Some(g) = guard(stream) {
        g.state.store(IDLE, Ordering::Relaxed);
    }
}

impl AsyncRead for HeadGuard {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let state = this.state.load(Ordering::Relaxed);
        if state == HEAD && this.armed && this.expired(cx) {
            return this.timed_out();
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        match polled {
            Poll::Ready(Ok(())) if state == IDLE && buf.filled().len() > before => {
                // The first bytes of the next request: its head has `limit` from now.
                this.state.store(HEAD, Ordering::Relaxed);
                this.started = Instant::now();
                this.armed = false;
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
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for HeadGuard {
    async fn shutdown(&mut self) {
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

/// Wraps a pingora app so that each HTTP/1 connection it gets is a [`HeadGuard`], with the
/// `client_header_timeout` of the rules in force when the connection arrives.
pub struct Guarded<A> {
    pub app: Arc<A>,
    pub rules: Arc<ArcSwap<Rules>>,
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Guarded<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let stream: Stream = if stream.selected_alpn_proto() == Some(ALPN::H2) {
            stream
        } else {
            let limit = self.rules.load().server.client.header;
            Box::new(HeadGuard::new(stream, limit))
        };
        self.app.process_new(stream, shutdown).await
    }

    async fn cleanup(&self) {
        self.app.cleanup().await
    }
}
