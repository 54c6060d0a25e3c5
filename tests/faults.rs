//! Upstream faults, each from a real misbehaving server on loopback: the client gets the right
//! status with CORS headers, or a stream that ends in an error (never a truncated body that
//! looks whole), and a client of a healthy route at the same time is unaffected.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{client, dead_addr, free_addr, header, Backend, Proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ORIGIN: &str = "https://app.example.com";

/// What a misbehaving server does once it has read a request head.
#[derive(Clone, Copy)]
enum Fault {
    /// Closes the connection without a word.
    Close,
    /// Sends a 200 head and part of a Content-Length body, then resets (RST).
    ResetMidBody,
    /// The same with a chunked body.
    ResetMidChunks,
    /// Sends a 200 head and part of the body, then sends nothing more (holds the socket).
    Stall,
    /// Answers something that is not HTTP.
    Garbage,
}

/// A server that misbehaves on every connection; counts the request heads it read.
struct Faulty {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    methods: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Faulty {
    async fn start(fault: Fault) -> Faulty {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let methods = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (n, m) = (requests.clone(), methods.clone());
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let (n, m) = (n.clone(), m.clone());
                tokio::spawn(async move { misbehave(socket, fault, &n, &m).await });
            }
        });
        Faulty {
            addr,
            requests,
            methods,
        }
    }

    fn methods(&self) -> Vec<String> {
        self.methods.lock().unwrap().clone()
    }
}

async fn misbehave(
    mut s: TcpStream,
    fault: Fault,
    n: &AtomicUsize,
    methods: &std::sync::Mutex<Vec<String>>,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(k) => head.extend_from_slice(&buf[..k]),
        }
    }
    let method = String::from_utf8_lossy(&head)
        .split(' ')
        .next()
        .unwrap_or_default()
        .to_owned();
    methods.lock().unwrap().push(method);
    n.fetch_add(1, Ordering::SeqCst);
    let part = "x".repeat(1000);
    match fault {
        Fault::Close => {}
        Fault::ResetMidBody | Fault::ResetMidChunks => {
            let framing = if matches!(fault, Fault::ResetMidBody) {
                "Content-Length: 100000".to_owned()
            } else {
                "Transfer-Encoding: chunked".to_owned()
            };
            let body = if matches!(fault, Fault::ResetMidBody) {
                part
            } else {
                format!("{:x}\r\n{part}\r\n", part.len())
            };
            let _ = s
                .write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n{framing}\r\n\r\n{body}"
                    )
                    .as_bytes(),
                )
                .await;
            let _ = s.flush().await;
            // Linger 0: close sends RST instead of FIN.
            let std = s.into_std().unwrap();
            socket2::SockRef::from(&std)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
            drop(std);
        }
        Fault::Stall => {
            let _ = s
                .write_all(
                    format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n{part}")
                        .as_bytes(),
                )
                .await;
            // Holds the socket open, sending nothing, until the proxy gives up.
            let _ = s.read(&mut buf).await;
        }
        Fault::Garbage => {
            let _ = s.write_all(b"HELLO THERE\r\nnot: http\r\n\r\n").await;
        }
    }
}

/// One route to the faulty upstream and one to a healthy backend.
fn config(servers: &[SocketAddr], healthy: &Backend, read_timeout: &str) -> String {
    let list = servers
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "listen: LISTEN\nadmin: {{listen: ADMIN}}\nupstreams:\n  bad: {{servers: [{list}], read_timeout: {read_timeout}}}\n  good: {{servers: [\"{}\"]}}\nroutes:\n  - {{name: healthy, path: /ok, upstream: good, cors: {{allow_origins: [\"{ORIGIN}\"]}}}}\n  - {{name: faulty, upstream: bad, cors: {{allow_origins: [\"{ORIGIN}\"]}}}}\n",
        healthy.addr
    )
}

/// A request on the healthy route that is in flight while the fault happens; resolves to its
/// status.
fn bystander(proxy: &Proxy) -> tokio::task::JoinHandle<u16> {
    let url = proxy.url("/ok/slow?ms=300");
    tokio::spawn(async move {
        let r = client()
            .get(url)
            .header("origin", ORIGIN)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        r.bytes().await.unwrap();
        status
    })
}

async fn get(proxy: &Proxy, path: &str) -> reqwest::Response {
    client()
        .get(proxy.url(path))
        .header("origin", ORIGIN)
        .send()
        .await
        .unwrap()
}

fn assert_error_with_cors(r: &reqwest::Response, status: u16) {
    assert_eq!(r.status(), status);
    assert_eq!(header(r, "access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(header(r, "vary"), Some("Origin"));
}

#[tokio::test]
async fn refused_closed_and_garbage_upstreams_are_502_with_cors() {
    let healthy = Backend::start("good").await;
    let closer = Faulty::start(Fault::Close).await;
    let garbage = Faulty::start(Fault::Garbage).await;
    for (what, addr) in [
        ("refused", dead_addr()),
        ("accept-then-close", closer.addr),
        ("invalid HTTP", garbage.addr),
    ] {
        let proxy = Proxy::start(&config(&[addr], &healthy, "5s")).await;
        let other = bystander(&proxy);
        let r = get(&proxy, "/api/x").await;
        assert_error_with_cors(&r, 502);
        let body = r.text().await.unwrap();
        assert!(body.contains("upstream bad failed"), "{what}: {body}");
        assert_eq!(other.await.unwrap(), 200, "{what}: the bystander failed");
    }
    // Each request reached the misbehaving servers once: nothing was retried on a server that
    // has no sibling.
    assert_eq!(closer.requests.load(Ordering::SeqCst), 1);
    assert_eq!(garbage.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn idempotent_requests_go_to_the_next_server_after_a_dropped_connection_posts_do_not() {
    let healthy = Backend::start("good").await;
    let closer = Faulty::start(Fault::Close).await;
    let second = Backend::start("second").await;
    let proxy = Proxy::start(&config(&[closer.addr, second.addr], &healthy, "5s")).await;

    for _ in 0..4 {
        let r = get(&proxy, "/api/x").await;
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "x-backend"), Some("second"));
    }
    let gets = closer.methods().iter().filter(|m| *m == "GET").count();
    assert!(gets >= 1, "round robin never picked the closing server");

    let mut failed = 0;
    for _ in 0..4 {
        let r = client()
            .post(proxy.url("/api/x"))
            .header("origin", ORIGIN)
            .body("{\"charge\": 1}")
            .send()
            .await
            .unwrap();
        if r.status() == 502 {
            assert_error_with_cors(&r, 502);
            failed += 1;
        } else {
            assert_eq!(r.status(), 200);
        }
    }
    // A POST that reached the closing server failed and was never sent again.
    let posts_to_closer = closer.methods().iter().filter(|m| *m == "POST").count();
    let posts_to_second = second
        .requests()
        .iter()
        .filter(|s| s.method == reqwest::Method::POST)
        .count();
    assert!(
        posts_to_closer >= 1,
        "round robin never picked the closing server"
    );
    assert_eq!(failed, posts_to_closer);
    assert_eq!(
        posts_to_closer + posts_to_second,
        4,
        "a POST was sent twice"
    );
}

#[tokio::test]
async fn a_reset_in_the_middle_of_a_body_ends_the_client_stream_in_an_error() {
    let healthy = Backend::start("good").await;
    for fault in [Fault::ResetMidBody, Fault::ResetMidChunks] {
        let faulty = Faulty::start(fault).await;
        let proxy = Proxy::start(&config(&[faulty.addr], &healthy, "5s")).await;
        let other = bystander(&proxy);
        let r = get(&proxy, "/api/x").await;
        // The head was already on its way: it carries CORS, and the body then fails.
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "access-control-allow-origin"), Some(ORIGIN));
        let body = r.bytes().await;
        assert!(
            body.is_err(),
            "a truncated body was delivered as if whole: {} bytes",
            body.unwrap().len()
        );
        assert_eq!(other.await.unwrap(), 200);
        assert_eq!(
            faulty.requests.load(Ordering::SeqCst),
            1,
            "retried after a response began"
        );
    }
}

#[tokio::test]
async fn a_backend_that_stops_mid_stream_is_cut_at_the_read_timeout() {
    let healthy = Backend::start("good").await;
    let faulty = Faulty::start(Fault::Stall).await;
    let proxy = Proxy::start(&config(&[faulty.addr], &healthy, "300ms")).await;
    let other = bystander(&proxy);
    let r = get(&proxy, "/api/x").await;
    assert_eq!(r.status(), 200);
    let body = tokio::time::timeout(Duration::from_secs(10), r.bytes())
        .await
        .expect("the stalled stream was not cut within 10 s");
    assert!(body.is_err(), "the stalled body was delivered as if whole");
    assert_eq!(other.await.unwrap(), 200);
}

#[tokio::test]
async fn a_slow_backend_past_the_read_timeout_is_504_with_cors() {
    let healthy = Backend::start("good").await;
    let slow = Backend::start("slow").await;
    let proxy = Proxy::start(&config(&[slow.addr], &healthy, "200ms")).await;
    let other = bystander(&proxy);
    let r = get(&proxy, "/api/slow?ms=3000").await;
    assert_error_with_cors(&r, 504);
    assert_eq!(other.await.unwrap(), 200);
}

/// Waits until the server's health gauge reads `value`.
async fn wait_health(proxy: &Proxy, server: SocketAddr, value: u8) {
    let line = format!(
        "crossgate_upstream_server_healthy{{server=\"{server}\",upstream=\"bad\"}} {value}"
    );
    proxy.wait_for_metric(&line, Duration::from_secs(10)).await;
}

#[tokio::test]
async fn a_server_that_goes_down_is_taken_out_and_comes_back_in() {
    let healthy = Backend::start("good").await;
    let up = Backend::start("up").await;
    // Nothing listens here yet.
    let down = free_addr();
    let yaml = config(&[up.addr, down], &healthy, "5s").replace(
        "read_timeout: 5s}",
        "read_timeout: 5s, health_check: {path: /health, interval: 50ms, timeout: 1s, unhealthy_threshold: 1, healthy_threshold: 1}}",
    );
    let proxy = Proxy::start(&yaml).await;
    wait_health(&proxy, down, 0).await;
    for _ in 0..6 {
        let r = get(&proxy, "/api/x").await;
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "x-backend"), Some("up"));
    }
    // The server comes back where it was.
    let back = Backend::start_at("back", down).await;
    wait_health(&proxy, down, 1).await;
    let mut hits = 0;
    for _ in 0..6 {
        let r = get(&proxy, "/api/x").await;
        assert_eq!(r.status(), 200);
        hits += usize::from(header(&r, "x-backend") == Some("back"));
    }
    assert_eq!(hits, 3, "the server did not come back into rotation");
    assert!(!back.requests().is_empty());
}

/// A kept-alive upstream connection that the server reset (RST) between two requests of the
/// same client connection: the proxy's write of the next request head fails at once, and the
/// request goes again on a new connection instead of answering 502 (nginx does the same for a
/// cached connection). Found in the browser test, where a backend connection reset between
/// two fetches of one page made the second a 502.
#[tokio::test]
async fn a_kept_connection_the_server_reset_is_retried_on_a_new_one() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = listener.local_addr().unwrap();
    let (reset, reset_now) = tokio::sync::oneshot::channel::<()>();
    let (was_reset, reset_done) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        // The first connection answers once, then is reset when the test says so.
        let (mut s, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        common::read_raw_until(&mut s, &mut got, b"\r\n\r\n").await;
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
            .await
            .unwrap();
        reset_now.await.unwrap();
        let std = s.into_std().unwrap();
        socket2::SockRef::from(&std)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(std);
        was_reset.send(()).unwrap();
        // Later connections answer normally.
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            common::read_raw_until(&mut s, &mut got, b"\r\n\r\n").await;
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond")
                .await;
        }
    });
    let proxy = Proxy::start(&format!(
        "listen: LISTEN\nupstreams:\n  b: {{servers: [\"{backend}\"]}}\nroutes:\n  - {{name: api, upstream: b}}\n"
    ))
    .await;

    let mut c = TcpStream::connect(proxy.addr).await.unwrap();
    let mut got = Vec::new();
    c.write_all(b"GET /a HTTP/1.1\r\nHost: api\r\n\r\n")
        .await
        .unwrap();
    common::read_raw_until(&mut c, &mut got, b"first").await;
    // The reset reaches the proxy's socket before close returns (loopback).
    reset.send(()).unwrap();
    reset_done.await.unwrap();
    got.clear();
    c.write_all(b"GET /b HTTP/1.1\r\nHost: api\r\n\r\n")
        .await
        .unwrap();
    common::read_raw_until(&mut c, &mut got, b"\r\n\r\n").await;
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    common::read_raw_until(&mut c, &mut got, b"second").await;
}
