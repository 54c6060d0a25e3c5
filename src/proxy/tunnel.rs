//! An upgraded HTTP/1 connection (a WebSocket) as a tunnel: once the upstream has answered the
//! handshake with 101, both connections leave their HTTP sessions, whose buffers and state are
//! freed, and bytes are copied both ways through two small buffers until one side closes, the
//! upstream is silent for the route's `idle_timeout`, or the client stops taking bytes for
//! `client_send_timeout`. What an idle WebSocket holds is then its two sockets, these buffers
//! and the request's context (benches/RESULTS.md, idle WebSocket memory).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use pingora::http::RequestHeader;
use pingora::protocols::http::ServerSession;
use pingora::protocols::Stream;
use pingora::{Error, ErrorType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::forward::{down, Upgraded};
use super::{CrossGate, Ctx};

/// Bytes copied per read, each way.
const CHUNK: usize = 2048;

/// What the access log and metrics need of the request once its session is gone.
fn summary(req: &RequestHeader) -> RequestHeader {
    let target = req.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut head = RequestHeader::build(req.method.clone(), target.as_bytes(), Some(2))
        .unwrap_or_else(|_| RequestHeader::build("GET", b"/", Some(2)).expect("a fixed head"));
    for name in [http::header::HOST, http::header::ORIGIN] {
        if let Some(v) = req.headers.get(&name) {
            let _ = head.insert_header(name, v.clone());
        }
    }
    head
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

/// Copies both ways until a side closes or a limit passes.
async fn relay(
    client: &mut Stream,
    upstream: &mut Stream,
    idle: Duration,
    send_limit: Duration,
) -> io::Result<()> {
    let mut from_client = [0u8; CHUNK];
    let mut from_upstream = [0u8; CHUNK];
    let silence = tokio::time::sleep(idle);
    tokio::pin!(silence);
    loop {
        tokio::select! {
            n = client.read(&mut from_client) => {
                let n = n?;
                if n == 0 {
                    return Ok(());
                }
                send(upstream, &from_client[..n], idle).await?;
            }
            n = upstream.read(&mut from_upstream) => {
                let n = n?;
                if n == 0 {
                    return Ok(());
                }
                send(client, &from_upstream[..n], send_limit).await?;
                silence.as_mut().reset(Instant::now() + idle);
            }
            _ = &mut silence => {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "the upstream was silent for idle_timeout"));
            }
        }
    }
}

impl CrossGate {
    /// Runs an upgraded connection to its end, then logs the request (status 101).
    /// Opens the tunnel of an upgraded connection (the 101 to the client, the bytes that came
    /// behind either head) and leaves it running as a task of its own, with only the two
    /// connections and its buffers: the caller's future, sized for a whole HTTP exchange, ends.
    /// Logged (status 101) when the tunnel ends.
    pub(super) async fn tunnel(
        self: &Arc<Self>,
        session: ServerSession,
        up: Box<Upgraded>,
        ctx: Box<Ctx>,
    ) {
        let req = summary(session.req_header());
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
            if let Some(p) = prefix {
                send(&mut upstream, &p, idle)
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
                self.done_with(&req, 101, None, &ctx);
                return;
            }
        };
        let proxy = self.clone();
        tokio::spawn(async move {
            // A tunnel's end (a close, a silence past idle_timeout, a client that stopped
            // reading) is the end of an ordinary WebSocket, not a failure of the proxy.
            if let Err(e) = relay(&mut client, &mut upstream, idle, send_limit).await {
                tracing::debug!(error = %e, "a WebSocket tunnel ended");
            }
            proxy.done_with(&req, 101, None, &ctx);
        });
    }
}
