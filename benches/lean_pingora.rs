//! The engine study (issue 13, point 1): a CORS proxy on pingora-core's public `HttpServerApp`,
//! without pingora-proxy. pingora still does the listening, the HTTP/1 and HTTP/2 codecs and the
//! upstream connects; what goes is pingora-proxy's per-request machinery. Three choices are
//! measured against it, each switchable, so that the profile can attribute each:
//!
//! - the upstream connection of a kept-alive client connection stays in that connection's own
//!   state (`HttpPersistentSettings`' user context) from one request to the next, instead of going
//!   back to the shared pool with an idle-watch task per request (`--pool` puts it back in a pool
//!   as pingora-proxy does, for comparison);
//! - one deadline per request, reset rather than registered again (`tokio::time::Sleep::reset`
//!   on a timer kept per connection), instead of a pingora timer per wait (`--pingora-timers`
//!   sets the per-wait read/write/keep-alive timeouts as crossgate does today);
//! - the CORS headers built once, at start, as `http` values (names static, values checked once),
//!   and the preflight answer a prebuilt header written by reference.
//!
//! It does the job benches/crossgate.yaml.in gives crossgate on `/api/`: one allowed origin with
//! credentials, preflights answered with 204, `Vary: Origin`, the backend's errors keeping their
//! CORS headers. It is a measuring instrument, not a proxy to deploy: one upstream, no routing,
//! no retries, hop-by-hop handling limited to what the benchmark's requests carry.
//!
//! Usage: lean_pingora --listen 127.0.0.1:8081 --upstream 127.0.0.1:8000 [--threads N]
//!        [--tls-listen ADDR --tls-cert F --tls-key F] [--pool] [--pingora-timers] [--own-loop]

use std::any::Any;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::header::{self, HeaderName, HeaderValue};
use pingora::apps::{
    HttpPersistentSettings, HttpServerApp, HttpServerOptions, ReusedHttpStream, ServerApp,
};
use pingora::connectors::TransportConnector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::v1::client::HttpSession as UpstreamSession;
use pingora::protocols::http::ServerSession;
use pingora::protocols::{Stream, ALPN};
use pingora::server::configuration::ServerConf;
use pingora::server::{Server, ShutdownWatch};
use pingora::services::listening::Service;
use pingora::upstreams::peer::HttpPeer;
use pingora::Result;
use tokio::time::{Instant, Sleep};

/// The same allocator as crossgate's binary, so that the comparison is of the proxies.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const MINUTE: Duration = Duration::from_secs(60);
const ORIGIN: &[u8] = b"http://bench.example";

/// Headers built once at start.
struct Cors {
    /// The whole preflight answer.
    preflight: ResponseHeader,
    /// Added to every response to the allowed origin.
    actual: [(HeaderName, HeaderValue); 2],
}

impl Cors {
    fn new() -> Cors {
        let v = HeaderValue::from_static;
        let mut preflight = ResponseHeader::build_no_case(204, Some(6)).expect("a status");
        for (name, value) in [
            (
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                v("http://bench.example"),
            ),
            (header::ACCESS_CONTROL_ALLOW_CREDENTIALS, v("true")),
            (header::ACCESS_CONTROL_ALLOW_METHODS, v("GET, POST, PUT")),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                v("content-type, x-requested-with"),
            ),
            (header::ACCESS_CONTROL_MAX_AGE, v("600")),
            (
                header::VARY,
                v("Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
            ),
        ] {
            preflight.insert_header(name, value).expect("a header");
        }
        Cors {
            preflight,
            actual: [
                (
                    header::ACCESS_CONTROL_ALLOW_ORIGIN,
                    v("http://bench.example"),
                ),
                (header::ACCESS_CONTROL_ALLOW_CREDENTIALS, v("true")),
            ],
        }
    }
}

struct Lean {
    peer: HttpPeer,
    connector: TransportConnector,
    cors: Cors,
    options: HttpServerOptions,
    /// Return the upstream connection to pingora's pool after each request (as pingora-proxy
    /// does) instead of keeping it in the client connection's state.
    pool: bool,
    /// pingora's per-wait timers (read, write, keep-alive) instead of one deadline.
    pingora_timers: bool,
}

/// What a kept-alive client connection carries from one request to the next.
struct Conn {
    upstream: Option<Stream>,
    deadline: Pin<Box<Sleep>>,
}

impl Lean {
    /// The upstream connection for this request: the client connection's own, else the pool's,
    /// else a new one.
    async fn upstream(&self, own: &mut Option<Stream>) -> Result<UpstreamSession> {
        let stream = match own.take() {
            Some(s) => s,
            None => match self.connector.reused_stream(&self.peer).await {
                Some(s) => s,
                None => self.connector.new_stream(&self.peer).await?,
            },
        };
        let mut up = UpstreamSession::new(stream);
        if self.pingora_timers {
            up.read_timeout = Some(MINUTE);
            up.write_timeout = Some(MINUTE);
        }
        Ok(up)
    }

    /// One request, from its head to the end of the answer. `Ok(false)`: no request came (the
    /// client closed a kept-alive connection).
    async fn serve(&self, session: &mut ServerSession, own: &mut Option<Stream>) -> Result<bool> {
        if !session.read_request().await? {
            return Ok(false);
        }
        let allowed = session.get_header(header::ORIGIN).map(|o| o.as_bytes()) == Some(ORIGIN);
        let req = session.req_header();
        if allowed
            && req.method == http::Method::OPTIONS
            && req
                .headers
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            session
                .write_response_header_ref(&self.cors.preflight)
                .await?;
            return Ok(true);
        }
        let head = upstream_head(req);
        let mut up = self.upstream(own).await?;
        up.write_request_header(head).await?;
        while let Some(chunk) = session.read_request_body().await? {
            up.write_body(&chunk).await?;
        }
        up.finish_body().await?;
        let mut resp = up.read_resp_header_parts().await?;
        resp.remove_header(&header::CONNECTION);
        resp.remove_header("keep-alive");
        if allowed {
            for (name, value) in &self.cors.actual {
                resp.insert_header(name.clone(), value.clone())?;
            }
            merge_vary(&mut resp)?;
        }
        session.write_response_header(resp).await?;
        while !up.is_body_done() {
            match up.read_body_bytes().await? {
                Some(bytes) => {
                    session
                        .write_response_body(bytes, up.is_body_done())
                        .await?
                }
                None => break,
            }
        }
        // The response's own say on keep-alive (pingora's client leaves it off until asked).
        up.respect_keepalive();
        match up.reuse().await {
            // An HTTP/2 stream has no connection state of its own to keep it in.
            Some(s) if self.pool || session.is_http2() => {
                let key = pingora::upstreams::peer::Peer::reuse_hash(&self.peer);
                self.connector.release_stream(s, key, Some(MINUTE));
            }
            Some(s) => *own = Some(s),
            None => {}
        }
        Ok(true)
    }
}

/// The head sent upstream: the client's, HTTP/1.1, without hop-by-hop headers, with Host from
/// an HTTP/2 `:authority`.
fn upstream_head(req: &RequestHeader) -> Box<RequestHeader> {
    let mut head = Box::new(req.clone());
    if head.version != http::Version::HTTP_11 {
        if head.headers.get(header::HOST).is_none() {
            if let Some(authority) = req.uri.authority() {
                let value = HeaderValue::from_str(authority.as_str()).expect("an authority");
                let _ = head.insert_header(header::HOST, value);
            }
        }
        head.set_version(http::Version::HTTP_11);
    }
    for name in [
        header::CONNECTION,
        header::TE,
        header::UPGRADE,
        header::TRAILER,
    ] {
        head.remove_header(&name);
    }
    head.remove_header("keep-alive");
    head
}

/// `Vary: Origin` joined onto the backend's Vary, not a second Vary line.
fn merge_vary(resp: &mut ResponseHeader) -> Result<()> {
    match resp.headers.get(header::VARY) {
        None => resp.insert_header(header::VARY, HeaderValue::from_static("Origin")),
        Some(v) if v.as_bytes().eq_ignore_ascii_case(b"origin") => Ok(()),
        Some(v) => {
            let mut joined = v.as_bytes().to_vec();
            joined.extend_from_slice(b", Origin");
            let value = HeaderValue::from_bytes(&joined).expect("a header value");
            resp.insert_header(header::VARY, value)
        }
    }
}

/// The proxy's own 502, with the CORS headers (a browser would otherwise see a CORS error).
async fn bad_gateway(session: &mut ServerSession, cors: &Cors) {
    session.set_keepalive(None);
    let Ok(mut resp) = ResponseHeader::build_no_case(502, Some(3)) else {
        return;
    };
    for (name, value) in &cors.actual {
        let _ = resp.insert_header(name.clone(), value.clone());
    }
    let _ = resp.insert_header(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    let _ = session.write_response_header(Box::new(resp)).await;
    let _ = session.finish_body().await;
}

#[async_trait]
impl HttpServerApp for Lean {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        _shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        let mut conn = session
            .take_connection_user_context()
            .and_then(|c| c.downcast::<Conn>().ok())
            .unwrap_or_else(|| {
                Box::new(Conn {
                    upstream: None,
                    deadline: Box::pin(tokio::time::sleep(MINUTE)),
                })
            });
        let outcome = if self.pingora_timers {
            session.set_read_timeout(Some(MINUTE));
            session.set_write_timeout(Some(MINUTE));
            self.serve(&mut session, &mut conn.upstream).await
        } else {
            // No pingora timer on the keep-alive wait (0 = untimed): the one deadline covers
            // the wait and the whole request.
            session.set_keepalive(Some(0));
            let Conn { upstream, deadline } = &mut *conn;
            deadline.as_mut().reset(Instant::now() + MINUTE);
            tokio::select! {
                r = self.serve(&mut session, upstream) => r,
                _ = deadline.as_mut() => return None,
            }
        };
        match outcome {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => {
                if std::env::var_os("LEAN_DEBUG").is_some() {
                    eprintln!("lean: {e}");
                }
                if session.response_written().is_none() {
                    bad_gateway(&mut session, &self.cors).await;
                }
                return None;
            }
        }
        if session.is_http2() {
            let _ = session.finish().await;
            return None;
        }
        let mut settings = HttpPersistentSettings::for_session(&session);
        let reusable = session.finish().await.ok().flatten()?;
        settings.set_user_context(conn as Box<dyn Any + Send + Sync>);
        Some(ReusedHttpStream::from_reusable_stream(reusable, settings))
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        Some(&self.options)
    }
}

/// `--own-loop`: the connection loop is crossgate's own, not pingora's `HttpServerApp`
/// blanket impl: that impl moves each request's `ServerSession` into a boxed future (two
/// memcpys of several KiB per request in the profile) and carries per-connection state through
/// a boxed `Any`. Here an HTTP/1 connection is one future for its whole life, its state on that
/// future's stack; HTTP/2 (ALPN h2) still goes through pingora's own h2 loop, unchanged.
struct OwnLoop(Arc<Lean>);

#[async_trait]
impl ServerApp for OwnLoop {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            return self.0.process_new(stream, shutdown).await;
        }
        let lean = &*self.0;
        let mut upstream = None;
        let mut deadline = Box::pin(tokio::time::sleep(MINUTE));
        let mut stream = stream;
        let mut prefix = None;
        loop {
            let mut session = ServerSession::new_http1(stream);
            session.set_keepalive(Some(0));
            if let Some(p) = prefix.take() {
                session.set_pipelined_prefix(p);
            }
            deadline.as_mut().reset(Instant::now() + MINUTE);
            let outcome = tokio::select! {
                r = lean.serve(&mut session, &mut upstream) => r,
                _ = deadline.as_mut() => return None,
            };
            match outcome {
                Ok(true) => {}
                Ok(false) => return None,
                Err(_) => {
                    if session.response_written().is_none() {
                        bad_gateway(&mut session, &lean.cors).await;
                    }
                    return None;
                }
            }
            if *shutdown.borrow() {
                session.set_keepalive(None);
            }
            let reusable = session.finish().await.ok().flatten()?;
            (stream, prefix) = reusable.into_parts();
        }
    }
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

fn main() {
    // `cargo bench` runs every bench target with `--bench`: nothing to measure here.
    if flag("--bench") && arg("--listen").is_none() {
        return;
    }
    let listen = arg("--listen").expect("--listen ADDR");
    let upstream: SocketAddr = arg("--upstream")
        .expect("--upstream ADDR")
        .parse()
        .expect("an IP:port");
    let threads = arg("--threads").map_or(1, |t| t.parse().expect("a number"));
    let conf = ServerConf {
        threads,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(0),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut peer = HttpPeer::new(upstream, false, String::new());
    peer.options.connection_timeout = Some(Duration::from_secs(5));
    let options = HttpServerOptions::default();
    let app = Lean {
        peer,
        connector: TransportConnector::new(None),
        cors: Cors::new(),
        options,
        pool: flag("--pool"),
        pingora_timers: flag("--pingora-timers"),
    };
    if flag("--own-loop") {
        let service = Service::new("lean".to_string(), OwnLoop(Arc::new(app)));
        serve_on(server, service, &listen);
    } else {
        let service = Service::new("lean".to_string(), app);
        serve_on(server, service, &listen);
    }
}

fn serve_on<A: ServerApp + Send + Sync + 'static>(
    mut server: Server,
    mut service: Service<A>,
    listen: &str,
) {
    service.add_tcp(listen);
    if let Some(tls_listen) = arg("--tls-listen") {
        let cert = arg("--tls-cert").expect("--tls-cert FILE with --tls-listen");
        let key = arg("--tls-key").expect("--tls-key FILE with --tls-listen");
        let mut tls = pingora::listeners::tls::TlsSettings::intermediate(&cert, &key)
            .expect("the certificate and key");
        tls.enable_h2();
        service.add_tls_with_settings(&tls_listen, None, tls);
    }
    server.add_service(service);
    server.run_forever();
}
