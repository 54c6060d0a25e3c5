//! An upgraded HTTP/1 connection (a WebSocket) as a tunnel: once the upstream has answered the
//! handshake with 101, both connections leave their HTTP sessions, whose buffers and state are
//! freed, and bytes are copied both ways until one side closes, the upstream is silent for the
//! route's `idle_timeout`, or a side stops taking bytes (the client for `client_send_timeout`,
//! the upstream for `idle_timeout`). Bytes are read into the stack and written on at once; a
//! buffer is allocated only for what a side did not take yet. What an idle WebSocket holds is
//! then its two sockets, the task and the request's summary and context, about 5.5 KiB
//! (benches/RESULTS.md, idle WebSocket memory).

use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::FutureExt;
use http::HeaderValue;
use pingora::http::RequestHeader;
use pingora::protocols::http::ServerSession;
use pingora::protocols::Stream;
use pingora::{Error, ErrorType};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Instant;

use super::forward::{down, Upgraded};
use super::record::Moved;
use super::{CrossGate, Ctx};
use crate::cors::OriginCheck;

/// What the access log and metrics need of the request once its session is gone: the method,
/// the path, Host, Origin, User-Agent and Referer, without the header-case map (an idle tunnel holds it for its
/// whole life).
fn summary(req: &RequestHeader) -> RequestHeader {
    let path = req.uri.path().as_bytes();
    let mut head =
        RequestHeader::build_no_case(req.method.clone(), path, Some(2)).unwrap_or_else(|_| {
            RequestHeader::build_no_case("GET", b"/", Some(2)).expect("a fixed head")
        });
    for name in [
        http::header::HOST,
        http::header::ORIGIN,
        http::header::USER_AGENT,
        http::header::REFERER,
    ] {
        if let Some(v) = req.headers.get(&name) {
            let _ = head.insert_header(name, owned(v));
        }
    }
    head
}

/// A header value of its own. A value parsed by pingora is a slice of the session's read
/// buffer (4 KiB), which a clone would keep alive for as long as the tunnel.
fn owned(v: &HeaderValue) -> HeaderValue {
    HeaderValue::from_bytes(v.as_bytes()).expect("a value that was valid")
}

/// The allowed Origin in the request's context, copied out of the session's read buffer.
fn own_origin(check: &mut OriginCheck) {
    match check {
        OriginCheck::Allowed(v) => *v = owned(v),
        OriginCheck::WouldDeny { served, .. } => own_origin(served),
        OriginCheck::NoOrigin | OriginCheck::Denied(_) => {}
    }
}

/// A close frame with status 1001 "going away" (RFC 6455 §7.4.1), unmasked: the server's.
const GOING_AWAY: [u8; 4] = [0x88, 0x02, 0x03, 0xe9];

/// The same close frame as a client sends it (masked with `key`, §5.3).
fn going_away_masked(key: [u8; 4]) -> [u8; 8] {
    [
        0x88,
        0x82,
        key[0],
        key[1],
        key[2],
        key[3],
        0x03 ^ key[0],
        0xe9 ^ key[1],
    ]
}

/// A mask key no one can predict (RFC 6455 §5.3): from std's per-process random hasher keys.
fn mask_key() -> [u8; 4] {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    let [a, b, c, d, ..] = h.finish().to_le_bytes();
    [a, b, c, d]
}

/// The server is going away (the grace period is over): each side that is between frames
/// gets a close frame with 1001 before the connections close, so that a page's `onclose`
/// sees 1001 and reconnects (to another replica) rather than a broken connection (1006).
async fn say_going_away(client: &mut Stream, upstream: &mut Stream, out: &Flow, back: &Flow) {
    const LIMIT: Duration = Duration::from_secs(1);
    let to_client = async {
        if back.left.is_empty() && back.frames.at_boundary() && !back.frames.closed {
            let _ = send(client, &GOING_AWAY, LIMIT).await;
        }
    };
    let to_upstream = async {
        if out.left.is_empty() && out.frames.at_boundary() && !out.frames.closed {
            let _ = send(upstream, &going_away_masked(mask_key()), LIMIT).await;
        }
    };
    // Both at once: a client slow to take its close does not hold the upstream's back.
    tokio::join!(to_client, to_upstream);
}

/// Resolves when the grace period is over (never, if the proxy is gone first).
async fn closing_time(closing: &mut tokio::sync::watch::Receiver<bool>) {
    if closing.wait_for(|closing| *closing).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// What a tunnel moved: the client's bytes, and the upstream's.
fn moved(out: &Flow, back: &Flow) -> Moved {
    Moved {
        read: out.moved,
        sent: back.moved,
    }
}

/// `write_all` and a flush, within `limit`.
async fn send(to: &mut Stream, bytes: &[u8], limit: Duration) -> io::Result<()> {
    let write = async {
        to.write_all(bytes).await?;
        to.flush().await
    };
    tokio::time::timeout(limit, write)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "send timed out"))?
}

/// Bytes read per call, each way, into a buffer on the stack of the call: nothing is held
/// between reads.
const CHUNK: usize = 16 * 1024;

/// Rounds of reading and writing one direction before the task lets others run.
const ROUNDS: usize = 8;

/// One direction of the tunnel. While the connection is idle it holds no buffer: bytes are
/// read into the stack and written on at once; only what the other side did not take yet is
/// kept, in a buffer allocated for it and freed when it is written.
#[derive(Default)]
struct Flow {
    left: Bytes,
    /// Written into the stream's own write buffer, not flushed yet.
    unflushed: bool,
    /// Since when the other side has not taken bytes this direction has read.
    blocked: Option<Instant>,
    /// The side read from has closed.
    ended: bool,
    /// Bytes read this way so far.
    moved: u64,
    /// Where the bytes read this way are in the WebSocket's frames.
    frames: Frames,
}

/// Where a byte stream is in its WebSocket frames (RFC 6455 §5.2), so that the proxy can tell
/// whether a frame of its own may go in now (a close at the end of the grace period) without
/// breaking one in flight: the header of the frame being read, or the payload bytes left.
#[derive(Default)]
struct Frames {
    head: [u8; 14],
    have: usize,
    payload: u64,
    /// A close frame (opcode 8) went this way: no second one may follow (RFC 6455 §5.5.1).
    closed: bool,
}

impl Frames {
    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.payload > 0 {
                let n = self.payload.min(bytes.len() as u64);
                self.payload -= n;
                bytes = &bytes[n as usize..];
                continue;
            }
            self.head[self.have] = bytes[0];
            self.have += 1;
            bytes = &bytes[1..];
            if self.have < 2 {
                continue;
            }
            let (b1, ext) = (self.head[1], &self.head[2..self.have]);
            let ext_len = match b1 & 0x7f {
                126 => 2,
                127 => 8,
                _ => 0,
            };
            let mask_len = if b1 & 0x80 != 0 { 4 } else { 0 };
            if self.have < 2 + ext_len + mask_len {
                continue;
            }
            self.closed |= self.head[0] & 0x0f == 0x8;
            self.payload = match ext_len {
                0 => u64::from(b1 & 0x7f),
                _ => ext[..ext_len]
                    .iter()
                    .fold(0u64, |n, &b| (n << 8) | u64::from(b)),
            };
            self.have = 0;
        }
    }

    /// Between two frames.
    fn at_boundary(&self) -> bool {
        self.have == 0 && self.payload == 0
    }
}

impl Flow {
    /// Nothing read is waiting to be written.
    fn drained(&self) -> bool {
        self.left.is_empty() && !self.unflushed
    }

    /// The other side did not take bytes now: from when its limit counts.
    fn wait(&mut self) {
        self.blocked.get_or_insert_with(Instant::now);
    }

    /// Moves what it can from `from` to `to` without waiting; true if bytes were read.
    fn pump(
        &mut self,
        cx: &mut Context<'_>,
        from: &mut Stream,
        to: &mut Stream,
    ) -> io::Result<bool> {
        let mut read = false;
        for _ in 0..ROUNDS {
            if !self.left.is_empty() {
                let n = write_now(cx, to, &self.left)?;
                self.left.advance(n);
                if !self.left.is_empty() {
                    self.wait();
                    return Ok(read);
                }
                // Written: the buffer is freed (an advanced `Bytes` would keep it).
                self.left = Bytes::new();
            }
            if self.unflushed {
                if Pin::new(&mut *to).poll_flush(cx)?.is_pending() {
                    self.wait();
                    return Ok(read);
                }
                self.unflushed = false;
            }
            self.blocked = None;
            if self.ended {
                return Ok(read);
            }
            let mut buf = [MaybeUninit::<u8>::uninit(); CHUNK];
            let mut got = ReadBuf::uninit(&mut buf);
            if Pin::new(&mut *from).poll_read(cx, &mut got)?.is_pending() {
                return Ok(read);
            }
            let got = got.filled();
            if got.is_empty() {
                self.ended = true;
                return Ok(read);
            }
            read = true;
            self.moved += got.len() as u64;
            self.frames.feed(got);
            self.unflushed = true;
            let n = write_now(cx, to, got)?;
            if n < got.len() {
                self.left = Bytes::copy_from_slice(&got[n..]);
                self.wait();
                return Ok(read);
            }
        }
        // More is coming than a round takes: come back after the others.
        cx.waker().wake_by_ref();
        Ok(read)
    }
}

/// Writes what `to` takes of `bytes` now; a stream that takes no bytes is an error.
fn write_now(cx: &mut Context<'_>, to: &mut Stream, bytes: &[u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < bytes.len() {
        match Pin::new(&mut *to).poll_write(cx, &bytes[n..])? {
            Poll::Ready(0) => return Err(io::ErrorKind::WriteZero.into()),
            Poll::Ready(k) => n += k,
            Poll::Pending => break,
        }
    }
    Ok(n)
}

/// Copies both ways until a side closes (and what it sent is written), the upstream is silent
/// for `idle`, or a side does not take bytes for its limit (`idle` toward the upstream,
/// `send_limit` toward the client).
async fn relay(
    client: &mut Stream,
    upstream: &mut Stream,
    (out, back): (&mut Flow, &mut Flow),
    idle: Duration,
    send_limit: Duration,
) -> io::Result<()> {
    let mut heard = Instant::now();
    let timer = tokio::time::sleep_until(heard + idle);
    tokio::pin!(timer);
    std::future::poll_fn(|cx| {
        out.pump(cx, client, upstream)?;
        if back.pump(cx, upstream, client)? {
            heard = Instant::now();
        }
        if (out.ended || back.ended) && out.drained() && back.drained() {
            return Poll::Ready(Ok(()));
        }
        let mut due = heard + idle;
        if let Some(t) = out.blocked {
            due = due.min(t + idle);
        }
        if let Some(t) = back.blocked {
            due = due.min(t + send_limit);
        }
        if timer.deadline() != due {
            timer.as_mut().reset(due);
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the upstream was silent for idle_timeout, or a side took no bytes for its limit",
            ))),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

impl CrossGate {
    /// Opens the tunnel of an upgraded connection (the 101 to the client, the bytes that came
    /// behind either head) and leaves it running as a task of its own, with only the two
    /// connections and the request's summary: the caller's future, sized for a whole HTTP
    /// exchange, ends. Logged (status 101) when the tunnel ends.
    pub(super) async fn tunnel(
        self: &Arc<Self>,
        session: ServerSession,
        up: Box<Upgraded>,
        mut ctx: Box<Ctx>,
    ) {
        let req = summary(session.req_header());
        own_origin(&mut ctx.origin);
        ctx.own_request_id(session.req_header());
        ctx.client = Some(super::ctx::Client::of(&session));
        let send_limit = ctx
            .rules
            .as_ref()
            .map_or(Duration::from_secs(60), |r| r.server.client.send);
        let Upgraded {
            mut upstream,
            head,
            early,
            idle,
        } = *up;
        let (mut out, mut back) = (Flow::default(), Flow::default());
        for b in &early {
            back.moved += b.len() as u64;
            back.frames.feed(b);
        }
        let io = |e: io::Error| Error::because(ErrorType::WriteError, "the tunnel", e);
        let opened = async {
            // The session gives its connection back (the handshake has no body) with whatever
            // the client sent after it.
            let Some(reusable) = session.finish().await.map_err(down)? else {
                return Error::e_explain(ErrorType::ConnectionClosed, "closing")
                    .map_err(|e| e.into_down());
            };
            let (mut client, prefix) = reusable.into_parts();
            let mut wire = BytesMut::with_capacity(256);
            wire.put_slice(b"HTTP/1.1 101 Switching Protocols\r\n");
            head.header_to_h1_wire(&mut wire);
            wire.put_slice(b"\r\n");
            for b in &early {
                wire.put_slice(b);
            }
            send(&mut client, &wire, send_limit)
                .await
                .map_err(|e| io(e).into_down())?;
            // What the client sent after the handshake: what pingora read, and what the guard
            // kept (it hands over one message at a time), in one write.
            let mut first = prefix.map(|p| p.to_vec()).unwrap_or_default();
            let mut more = [0u8; 4096];
            while let Some(Ok(n)) =
                tokio::task::unconstrained(client.read(&mut more)).now_or_never()
            {
                first.extend_from_slice(&more[..n]);
                if n < more.len() {
                    break;
                }
            }
            out.moved += first.len() as u64;
            out.frames.feed(&first);
            if !first.is_empty() {
                send(&mut upstream, &first, idle)
                    .await
                    .map_err(|e| io(e).into_up())?;
            }
            Ok(client)
        }
        .await;
        let mut client = match opened {
            Ok(client) => client,
            Err(e) => {
                tracing::debug!(error = %e, "a WebSocket tunnel could not open");
                self.done_with(
                    &req,
                    101,
                    None,
                    &ctx,
                    moved(&out, &back),
                    super::ctx::Client::unknown,
                );
                return;
            }
        };
        let proxy = self.clone();
        let mut closing = self.closing.subscribe();
        tokio::spawn(async move {
            // A tunnel's end (a close, a silence past idle_timeout, a client that stopped
            // reading) is the end of an ordinary WebSocket, not a failure of the proxy.
            tokio::select! {
                ended = relay(&mut client, &mut upstream, (&mut out, &mut back), idle, send_limit) => {
                    if let Err(e) = ended {
                        tracing::debug!(error = %e, "a WebSocket tunnel ended");
                    }
                }
                () = closing_time(&mut closing) => {
                    say_going_away(&mut client, &mut upstream, &out, &back).await;
                }
            }
            proxy.done_with(
                &req,
                101,
                None,
                &ctx,
                moved(&out, &back),
                super::ctx::Client::unknown,
            );
        });
    }
}
