//! Test fixtures: a real backend server on an ephemeral port that records every request it
//! gets, and crossgate started in-process (pingora `Server::run` on a thread with a channel
//! shutdown) on another ephemeral port.

#![allow(dead_code)]

pub mod raw;

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use crossgate::server::{ChannelShutdown, Gateway};
use futures_util::StreamExt;
use pingora::server::ShutdownSignal;
use tokio::sync::Notify;

/// What the backend saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    /// The body, when the request declared its length (at most 1 MiB); chunked bodies are
    /// read only by `/read-body`.
    pub body: Vec<u8>,
}

#[derive(Default)]
struct Log {
    seen: Mutex<Vec<Seen>>,
    changed: Notify,
}

/// A real HTTP backend. Paths (the last segment counts, `/x/vary` is `/vary`):
/// - `.../status/N`: answers status N with a JSON body;
/// - `/slow?ms=N`: answers after N ms;
/// - `/vary`: sends `Vary: Accept-Encoding`;
/// - `/read-body`: reads the whole request body, then answers with its length;
/// - `/own-cors`: sends CORS headers of its own;
/// - `/health`: 200, or the status set with [`Backend::set_health`];
/// - anything else: 200 with JSON naming this backend, the method and path.
///
/// `OPTIONS` to any path answers 200 with `allow` and the body `backend options`.
pub struct Backend {
    pub addr: SocketAddr,
    pub name: &'static str,
    log: Arc<Log>,
    health: Arc<Mutex<u16>>,
    gate: Arc<tokio::sync::Semaphore>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Backend {
    pub async fn start(name: &'static str) -> Backend {
        Backend::start_at(name, "127.0.0.1:0".parse().unwrap()).await
    }

    /// A backend on a given address (a server that comes back where it was).
    pub async fn start_at(name: &'static str, addr: SocketAddr) -> Backend {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Log::default());
        let health = Arc::new(Mutex::new(200u16));
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (l, h, g) = (log.clone(), health.clone(), gate.clone());
        let ws_log = log.clone();
        let echo = axum::routing::get(
            move |uri: axum::http::Uri,
                  headers: HeaderMap,
                  ws: axum::extract::ws::WebSocketUpgrade| {
                let log = ws_log.clone();
                async move {
                    // The handshake is logged like any request, so that a test can tell
                    // whether one reached the backend.
                    log.seen.lock().unwrap().push(Seen {
                        method: Method::GET,
                        path: uri.path().to_owned(),
                        query: uri.query().map(str::to_owned),
                        headers,
                        body: Vec::new(),
                    });
                    log.changed.notify_waiters();
                    ws.on_upgrade(move |socket| ws_echo(socket, log))
                }
            },
        );
        let app = axum::Router::new()
            .route("/ws/echo", echo.clone())
            .route("/bots/ws/echo", echo)
            .fallback(move |req: Request| {
                let (l, h, g) = (l.clone(), h.clone(), g.clone());
                async move { handle(name, &l, &h, g, req).await }
            });
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Backend {
            addr,
            name,
            log,
            health,
            gate,
            _shutdown: tx,
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.log.seen.lock().unwrap().clone()
    }

    /// Requests to paths other than `/health`.
    pub fn requests(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.path != "/health")
            .collect()
    }

    /// Lets `/sse-gated` send its next event.
    pub fn release_event(&self) {
        self.gate.add_permits(1);
    }

    pub fn set_health(&self, status: u16) {
        *self.health.lock().unwrap() = status;
    }

    /// Waits until the log holds `n` entries that satisfy `pred` (10 s at most).
    pub async fn wait_for(&self, n: usize, pred: impl Fn(&Seen) -> bool) {
        let wait = async {
            loop {
                let notified = self.log.changed.notified();
                if self.seen().iter().filter(|s| pred(s)).count() >= n {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .expect("the backend did not see the expected requests within 10 s");
    }
}

async fn handle(
    name: &str,
    log: &Log,
    health: &Mutex<u16>,
    gate: Arc<tokio::sync::Semaphore>,
    req: Request,
) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .filter(|n| *n <= 1 << 20);
    // A body of declared length is read before the answer, and recorded.
    let (body, read) = match declared {
        Some(_) => match axum::body::to_bytes(body, 1 << 20).await {
            Ok(b) => (Body::empty(), Some(b)),
            Err(_) => (Body::empty(), None),
        },
        None => (body, None),
    };
    log.seen.lock().unwrap().push(Seen {
        method: method.clone(),
        path: path.clone(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers.clone(),
        body: read.as_deref().unwrap_or_default().to_vec(),
    });
    let req = Request::from_parts(parts, body);
    log.changed.notify_waiters();

    let json = |status: u16, body: String| {
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .header("x-backend", name)
            .body(Body::from(body))
            .unwrap()
    };
    if method == Method::OPTIONS {
        return Response::builder()
            .status(200)
            .header("allow", "GET, PUT, OPTIONS")
            .header("x-backend", name)
            .body(Body::from("backend options"))
            .unwrap();
    }
    if let Some((_, code)) = path.split_once("/status/") {
        let code: u16 = code.parse().unwrap_or(500);
        return json(code, format!("{{\"status\":{code}}}"));
    }
    // Special paths match on their last segment, so that any route prefix reaches them.
    let last = format!("/{}", path.rsplit('/').next().unwrap_or(""));
    match last.as_str() {
        "/read-body" => match read {
            Some(b) => json(200, format!("{{\"read\":{}}}", b.len())),
            None => match axum::body::to_bytes(req.into_body(), 1 << 20).await {
                Ok(b) => json(200, format!("{{\"read\":{}}}", b.len())),
                Err(_) => json(400, "{\"read\":null}".into()),
            },
        },
        "/health" => {
            let status = *health.lock().unwrap();
            json(status, "{}".into())
        }
        "/slow" => {
            let ms: u64 = query
                .strip_prefix("ms=")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            json(200, format!("{{\"waited_ms\":{ms}}}"))
        }
        "/sse-gated" => {
            // Event 1 at once, then one event each time the test calls release_event, then
            // the end after `n` events (default 2).
            let n: u32 = query
                .strip_prefix("n=")
                .and_then(|v| v.parse().ok())
                .unwrap_or(2);
            let stream = futures_util::stream::unfold(1u32, move |i| {
                let gate = gate.clone();
                async move {
                    if i > n {
                        return None;
                    }
                    if i > 1 {
                        gate.acquire().await.unwrap().forget();
                    }
                    let event = bytes::Bytes::from(format!("id: {i}\ndata: event {i}\n\n"));
                    Some((Ok::<_, std::io::Error>(event), i + 1))
                }
            });
            Response::builder()
                .header("content-type", "text/event-stream")
                .header("cache-control", "no-cache")
                .body(Body::from_stream(stream))
                .unwrap()
        }
        "/sse-gzip" => {
            // Events gzipped when the request accepts gzip (or `?always`), sent in two
            // halves 600 ms apart (the backend's pace: longer than a heartbeat).
            let accepts = req
                .headers()
                .get("accept-encoding")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("gzip"));
            let events = b"data: zipped 1\n\ndata: zipped 2\n\n";
            let (encoding, body) = if accepts || query == "always" {
                let (e, b) = compress("gzip", events);
                (Some(e), b)
            } else {
                (None, events.to_vec())
            };
            let half = body.len() / 2;
            let (first, second) = (body[..half].to_vec(), body[half..].to_vec());
            let stream = futures_util::stream::iter([(first, 0u64), (second, 600)]).then(
                |(piece, wait)| async move {
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                    Ok::<_, std::io::Error>(bytes::Bytes::from(piece))
                },
            );
            let mut r = Response::builder().header("content-type", "text/event-stream");
            if let Some(e) = encoding {
                r = r.header("content-encoding", e);
            }
            r.body(Body::from_stream(stream)).unwrap()
        }
        "/sse-paced" => {
            // Two events `gap` ms apart (the backend's pace, to outlast a read timeout).
            let gap: u64 = query
                .strip_prefix("gap=")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1000);
            let stream = futures_util::stream::iter([1u32, 2]).then(move |i| async move {
                if i > 1 {
                    tokio::time::sleep(Duration::from_millis(gap)).await;
                }
                Ok::<_, std::io::Error>(bytes::Bytes::from(format!("data: paced {i}\n\n")))
            });
            Response::builder()
                .header("content-type", "text/event-stream")
                .body(Body::from_stream(stream))
                .unwrap()
        }
        "/chunked-2028" => {
            // JSON whose U+2028 and U+2029 bytes are cut across chunk boundaries, paced so
            // that the chunks leave separately.
            let chunks: Vec<&'static [u8]> = vec![
                b"{\"s\":\"a\xE2",
                b"\x80\xA8b\xE2\x80",
                b"\xA9c\", \"n\":",
                b"1}",
            ];
            let stream = futures_util::stream::iter(chunks).then(|c| async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok::<_, std::io::Error>(bytes::Bytes::from_static(c))
            });
            Response::builder()
                .header("content-type", "application/json")
                .header("x-backend", name)
                .body(Body::from_stream(stream))
                .unwrap()
        }
        "/gzip" | "/br" | "/zstd" => {
            let plain =
                b"{\"compressed\":true,\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}";
            let (encoding, body) = compress(&last[1..], plain);
            Response::builder()
                .header("content-type", "application/json")
                .header("content-encoding", encoding)
                .header("etag", "\"strong-etag\"")
                .body(Body::from(body))
                .unwrap()
        }
        "/html" => Response::builder()
            .header("content-type", "text/html")
            .body(Body::from("<p>hello</p>"))
            .unwrap(),
        "/events" => Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from("data: one\n\ndata: two\n\n"))
            .unwrap(),
        "/etag" => Response::builder()
            .header("content-type", "application/json")
            .header("etag", "\"v1\"")
            .header("accept-ranges", "bytes")
            .body(Body::from("{\"v\":1}"))
            .unwrap(),
        "/vary" => {
            let mut r = json(200, "{}".into());
            r.headers_mut()
                .insert("vary", "Accept-Encoding".parse().unwrap());
            r
        }
        "/own-cors" => {
            let mut r = json(200, "{}".into());
            let h = r.headers_mut();
            h.insert("access-control-allow-origin", "*".parse().unwrap());
            h.insert("access-control-allow-credentials", "true".parse().unwrap());
            h.insert("access-control-expose-headers", "x-secret".parse().unwrap());
            r
        }
        _ => json(
            200,
            format!("{{\"backend\":\"{name}\",\"method\":\"{method}\",\"path\":\"{path}\"}}"),
        ),
    }
}

/// Echoes WebSocket messages. The text `close-me` makes it close with code 4001; a close from
/// the client is recorded as a request to `/ws-closed/CODE`.
async fn ws_echo(mut socket: axum::extract::ws::WebSocket, log: Arc<Log>) {
    use axum::extract::ws::{CloseFrame, Message};
    while let Some(Ok(msg)) = socket.recv().await {
        match msg {
            // Sends 64 KiB messages until the connection breaks (a client that never reads).
            Message::Text(t) if t.as_str() == "flood" => {
                let chunk = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
                while socket.send(Message::Binary(chunk.clone())).await.is_ok() {}
                return;
            }
            Message::Text(t) if t.as_str() == "close-me" => {
                let frame = CloseFrame {
                    code: 4001,
                    reason: "bye".into(),
                };
                let _ = socket.send(Message::Close(Some(frame))).await;
                return;
            }
            Message::Text(_) | Message::Binary(_) => {
                let echoed = socket.send(msg).await;
                if echoed.is_err() {
                    return;
                }
            }
            Message::Close(frame) => {
                let code = frame.map_or(1005, |f| f.code);
                log.seen.lock().unwrap().push(Seen {
                    method: Method::GET,
                    path: format!("/ws-closed/{code}"),
                    query: None,
                    headers: HeaderMap::new(),
                    body: Vec::new(),
                });
                log.changed.notify_waiters();
                return;
            }
            _ => {}
        }
    }
}

fn compress(algorithm: &str, plain: &[u8]) -> (&'static str, Vec<u8>) {
    use std::io::Write;
    match algorithm {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(plain).unwrap();
            ("gzip", e.finish().unwrap())
        }
        "br" => {
            let mut out = Vec::new();
            {
                let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                w.write_all(plain).unwrap();
            }
            ("br", out)
        }
        _ => ("zstd", zstd::encode_all(plain, 3).unwrap()),
    }
}

/// A random loopback address other than 127.0.0.1 (all of 127.0.0.0/8 is loopback on
/// Linux). Servers of these tests bind 127.0.0.1, and client sockets take their source port
/// on 127.0.0.1 too, so nothing else can grab a port on this address between our probe and
/// the proxy's bind.
fn private_loopback_ip() -> std::net::Ipv4Addr {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    let r = h.finish().to_le_bytes();
    std::net::Ipv4Addr::new(127, 1 + r[0] % 250, r[1], 1 + r[2] % 250)
}

/// A loopback address (on an IP of its own) where nothing listens, for the proxy to bind.
pub fn free_addr() -> SocketAddr {
    TcpListener::bind((private_loopback_ip(), 0))
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A loopback address where nothing listens or ever will during the test: connecting to it
/// is refused.
pub fn dead_addr() -> SocketAddr {
    SocketAddr::from((private_loopback_ip(), 9))
}

/// crossgate running in this process.
pub struct Proxy {
    pub addr: SocketAddr,
    /// The admin listener, when the config has `ADMIN` in it.
    pub admin: Option<SocketAddr>,
    stop: tokio::sync::mpsc::UnboundedSender<ShutdownSignal>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    /// Starts crossgate with `yaml`, in which `LISTEN` is replaced by the proxy's address and
    /// `ADMIN` by an address for the admin listener.
    pub async fn start(yaml: &str) -> Proxy {
        let addr = free_addr();
        let admin = yaml.contains("ADMIN").then(free_addr);
        let mut yaml = yaml.replace("LISTEN", &addr.to_string());
        if let Some(a) = admin {
            yaml = yaml.replace("ADMIN", &a.to_string());
        }
        let rules = crossgate::test_util::rules_from_yaml(&yaml);
        let (stop, signal) = ChannelShutdown::pair();
        let gateway = Gateway::new(rules);
        let thread = std::thread::spawn(move || gateway.run(Box::new(signal)));
        wait_until_listening(addr).await;
        if let Some(a) = admin {
            wait_until_listening(a).await;
        }
        Proxy {
            addr,
            admin,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The admin listener's `/metrics` text (the config needs `admin: {listen: ADMIN}`).
    pub async fn metrics(&self) -> String {
        let admin = self.admin.expect("the config has no admin listener");
        client()
            .get(format!("http://{admin}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Polls `/metrics` until it has exactly the line `line`; panics after `within`.
    pub async fn wait_for_metric(&self, line: &str, within: Duration) {
        let poll = async {
            while !self.metrics().await.lines().any(|l| l == line) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(within, poll)
            .await
            .unwrap_or_else(|_| panic!("{line} never showed on /metrics within {within:?}"));
    }
}

/// crossgate with `yaml` (as [`Proxy::start`] takes it) plus an HTTPS listener offering
/// HTTP/2, with a fresh self-signed certificate for `localhost`: the proxy, the listener's
/// address, and an HTTP/2 client that trusts the certificate and sends `localhost` there.
pub async fn with_h2_listener(yaml: &str, name: &str) -> (Proxy, SocketAddr, reqwest::Client) {
    let dir = std::env::temp_dir().join(format!("crossgate-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_path, key_path) = (dir.join("h2.pem"), dir.join("h2.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let tls_addr = free_addr();
    let yaml = yaml.replace(
        "upstreams:",
        &format!(
            "tls:\n  - {{listen: \"{tls_addr}\", cert: \"{}\", key: \"{}\"}}\nupstreams:",
            cert_path.display(),
            key_path.display()
        ),
    );
    let proxy = Proxy::start(&yaml).await;
    wait_until_listening(tls_addr).await;
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.pem().as_bytes()).unwrap())
        .resolve("localhost", tls_addr)
        .http2_prior_knowledge()
        .build()
        .unwrap();
    (proxy, tls_addr, client)
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.stop.send(ShutdownSignal::FastShutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Polls until something accepts connections on `addr` (10 s at most).
pub async fn wait_until_listening(addr: SocketAddr) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing listens on {addr} after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// An HTTP client that keeps nothing between tests and follows no redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A normal cross-origin GET of `/x` from `https://app.example.com` is served, with CORS
/// (the client that must be unaffected while a hostile or slow one is at work).
pub async fn normal_client_is_served(addr: SocketAddr) {
    let origin = "https://app.example.com";
    let r = client()
        .get(format!("http://{addr}/x"))
        .header("origin", origin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "access-control-allow-origin"), Some(origin));
}

pub fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).map(|v| v.to_str().unwrap())
}

/// The names of the response's `access-control-*` headers.
pub fn cors_headers(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .keys()
        .map(|k| k.as_str().to_owned())
        .filter(|k| k.starts_with("access-control-"))
        .collect()
}

pub const OK_STATUS: StatusCode = StatusCode::OK;

/// A child process killed when the test ends, whatever happens.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The child's stdout, line by line, read on a thread of its own (so that it never blocks on
/// a full pipe).
pub fn stdout_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Reads from a raw connection until `got` holds `marker`, failing after 10 s with what came.
pub async fn read_raw_until(s: &mut tokio::net::TcpStream, got: &mut Vec<u8>, marker: &[u8]) {
    use tokio::io::AsyncReadExt;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !got.windows(marker.len()).any(|w| w == marker) {
        let mut buf = [0u8; 16384];
        let n = tokio::time::timeout_at(deadline, s.read(&mut buf))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "waited 10 s for {:?}; got {:?}",
                    String::from_utf8_lossy(marker),
                    String::from_utf8_lossy(got)
                )
            })
            .unwrap();
        assert!(n > 0, "closed; got {:?}", String::from_utf8_lossy(got));
        got.extend_from_slice(&buf[..n]);
    }
}

/// A fresh directory for one test, private (mode 0700) as an upgrade socket's must be:
/// `crossgate-KIND-PID-NAME` under the temporary directory.
pub fn private_dir(kind: &str, name: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let d = std::env::temp_dir().join(format!("crossgate-{kind}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
    d
}

/// `crossgate run EXTRA --config CONFIG`, with `env` and its standard output as given.
pub fn run_crossgate(
    config: &std::path::Path,
    extra: &[&str],
    env: &[(&str, &std::path::Path)],
    stdout: std::process::Stdio,
) -> Running {
    Running(
        std::process::Command::new(env!("CARGO_BIN_EXE_crossgate"))
            .arg("run")
            .args(extra)
            .arg("--config")
            .arg(config)
            .envs(env.iter().copied())
            .stdout(stdout)
            .spawn()
            .unwrap(),
    )
}

/// Sends `sig` (`-TERM`, `-QUIT`...) to a running crossgate.
pub fn signal(child: &Running, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &child.0.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} failed");
}
