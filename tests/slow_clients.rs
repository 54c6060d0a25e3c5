//! Clients that are slow on purpose: slow-loris heads and bodies, idle kept-alive connections,
//! 10,000 connections that never send a byte, and a WebSocket that never reads. Each is cut by
//! its `server.client_*` timeout, memory stays bounded, and a normal client is served meanwhile.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{free_addr, normal_client_is_served, wait_until_listening, Backend, Proxy, Running};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ORIGIN: &str = "https://app.example.com";

fn config(backend: &Backend, server: &str) -> String {
    format!(
        "listen: LISTEN\nadmin: {{listen: ADMIN}}\nserver: {{{server}}}\nupstreams:\n  b: {{servers: [\"{}\"]}}\nroutes:\n  - {{name: api, upstream: b, websocket: {{}}, cors: {{allow_origins: [\"{ORIGIN}\"]}}}}\n",
        backend.addr
    )
}

/// A kept-alive connection on which one GET has been answered (a small body, read whole).
async fn after_one_request(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 8192];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    s
}

/// Reads until the proxy closes the connection (EOF or reset); what was read.
async fn until_closed(s: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(within, read_all)
        .await
        .expect("the proxy kept the connection open");
    got
}

#[tokio::test]
async fn a_slow_loris_head_is_cut_at_the_header_timeout() {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config(&backend, "client_header_timeout: 700ms")).await;
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(b"GET /x HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    trickle_until_cut(&mut s).await;
    assert!(backend.requests().is_empty());
    normal_client_is_served(proxy.addr).await;
}

#[tokio::test]
async fn a_slow_loris_head_after_a_kept_alive_request_is_cut_too() {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config(&backend, "client_header_timeout: 700ms")).await;
    let mut s = after_one_request(proxy.addr).await;
    // The second request's head arrives byte by byte.
    s.write_all(b"GET /y HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    trickle_until_cut(&mut s).await;
    assert_eq!(backend.requests().len(), 1);
    normal_client_is_served(proxy.addr).await;
}

#[tokio::test]
async fn a_slow_loris_head_pipelined_behind_a_request_is_cut_too() {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config(&backend, "client_header_timeout: 700ms")).await;
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    // The start of the second head comes in the same write as the first request (and is kept
    // for after its answer); the rest of it byte by byte.
    s.write_all(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\nGET /y HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let mut first = Vec::new();
    common::read_raw_until(&mut s, &mut first, b"\"path\":\"/x\"}").await;
    trickle_until_cut(&mut s).await;
    assert_eq!(backend.requests().len(), 1);
    normal_client_is_served(proxy.addr).await;
}

/// Sends one more header byte every 50 ms (every single read is quick, the head never ends)
/// until the proxy closes the connection, which must be after the trickle began and not before
/// the 700 ms header timeout (less a margin for the clock).
async fn trickle_until_cut(s: &mut TcpStream) {
    let started = Instant::now();
    let mut sent = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let cut = loop {
        tick.tick().await;
        if s.write_all(b"a").await.is_err() {
            break started.elapsed();
        }
        sent += 1;
        // A closed socket shows on a read before a write fails.
        let mut probe = [0u8; 1];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(1), s.read(&mut probe)).await
        {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the trickle was never cut"
        );
    };
    assert!(sent >= 5, "cut before the trickle began ({sent} bytes)");
    assert!(cut >= Duration::from_millis(600), "cut after {cut:?}");
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_at_the_header_timeout() {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config(&backend, "client_header_timeout: 500ms")).await;
    let mut silent = TcpStream::connect(proxy.addr).await.unwrap();
    normal_client_is_served(proxy.addr).await;
    let got = until_closed(&mut silent, Duration::from_secs(10)).await;
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
}

#[tokio::test]
async fn a_stalled_request_body_is_cut_at_the_body_timeout() {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config(
        &backend,
        "client_header_timeout: 30s, client_body_timeout: 500ms",
    ))
    .await;
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(b"POST /read-body HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example.com\r\nContent-Length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    let got = until_closed(&mut s, Duration::from_secs(10)).await;
    let head = String::from_utf8_lossy(&got);
    // A 408 with CORS headers, then the close; the backend never got a whole body.
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("access-control-allow-origin: https://app.example.com"),
        "{head}"
    );
    normal_client_is_served(proxy.addr).await;
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_at_the_keepalive_timeout() {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config(&backend, "client_keepalive_timeout: 1s")).await;
    let mut s = after_one_request(proxy.addr).await;
    // The response is complete in one read here (a small JSON body); then silence.
    let rest = until_closed(&mut s, Duration::from_secs(10)).await;
    assert!(
        !String::from_utf8_lossy(&rest).contains("HTTP/1.1"),
        "a second response?"
    );
}

/// A WebSocket client that never reads while the backend sends without pause.
#[tokio::test]
async fn a_websocket_that_never_reads_is_cut_at_the_send_timeout() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config(&backend, "client_send_timeout: 500ms")).await;
    let mut req = format!("ws://{}/ws/echo", proxy.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("origin", ORIGIN.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.send(Message::text("flood")).await.unwrap();
    // From here on the client reads nothing; the proxy's writes to it stall.
    let gauge = "crossgate_websocket_connections_active{route=\"api\"}";
    proxy
        .wait_for_metric(&format!("{gauge} 1"), Duration::from_secs(10))
        .await;
    normal_client_is_served(proxy.addr).await;
    // Cut at the send timeout: the gauge is back to 0.
    proxy
        .wait_for_metric(&format!("{gauge} 0"), Duration::from_secs(20))
        .await;
    drop(ws);
    normal_client_is_served(proxy.addr).await;
}

/// The real binary on `yaml`, as its own process (its memory and descriptors are read from
/// /proc), its output discarded.
fn run_binary(name: &str, yaml: &str) -> Running {
    let dir = std::env::temp_dir().join(format!("crossgate-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.yaml");
    std::fs::write(&path, yaml).unwrap();
    Running(
        std::process::Command::new(env!("CARGO_BIN_EXE_crossgate"))
            .args(["run", "--no-watch", "--config"])
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// The proxy runs as its own process here: 10,000 sockets on each side would not fit one
/// process's descriptor limit.
#[tokio::test]
async fn ten_thousand_idle_connections_are_held_in_bounded_memory_then_closed() {
    const N: usize = 10_000;
    let limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).map(str::to_owned))
        })
        .and_then(|soft| soft.parse::<usize>().ok());
    assert!(
        limit.map_or(true, |soft| soft >= N + 500),
        "this test holds {N} sockets: raise the open-file limit first (`ulimit -n 20000`; `cargo xtask test` does)"
    );
    let backend = Backend::start("b").await;
    let (addr, admin) = (free_addr(), free_addr());
    let yaml = config(&backend, "client_header_timeout: 3s")
        .replace("LISTEN", &addr.to_string())
        .replace("ADMIN", &admin.to_string());
    let child = run_binary("idle", &yaml);
    let pid = child.0.id();
    wait_until_listening(addr).await;
    normal_client_is_served(addr).await;
    let (rss_before, fds_before) = (rss_kib(pid), open_fds(pid));

    let mut held = Vec::with_capacity(N);
    for _ in 0..N {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    // Served while the 10,000 are held, and they have all been accepted by then.
    normal_client_is_served(addr).await;
    let accepted = || async {
        while open_fds(pid) < fds_before + N {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), accepted())
        .await
        .unwrap_or_else(|_| panic!("only {} of {N} accepted", open_fds(pid) - fds_before));
    let rss_held = rss_kib(pid);
    let per_conn = (rss_held.saturating_sub(rss_before)) as usize * 1024 / N;
    eprintln!("{N} idle connections: {per_conn} bytes of RSS each");
    assert!(per_conn < 64 * 1024, "{per_conn} bytes per idle connection");

    // The header timeout closes every one of them; the proxy's descriptors return.
    let closed = async {
        while open_fds(pid) > fds_before + 10 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), closed)
        .await
        .unwrap_or_else(|_| panic!("{} descriptors still open", open_fds(pid) - fds_before));
    let mut buf = [0u8; 1];
    for s in held.iter_mut().step_by(997) {
        assert_eq!(s.read(&mut buf).await.unwrap_or(0), 0, "still open");
    }
    drop(held);
    normal_client_is_served(addr).await;

    // A second wave reuses the memory the first one freed. Nothing per connection may be
    // allocated zero-filled at its full size: pingora's 64 KiB read buffer was, and every page
    // of a reused one was written (measured: 47 KiB more per connection than the first wave,
    // at least 40 whatever the allocator has returned to the system meanwhile; without it 12,
    // at most the first wave's 24).
    let mut again = Vec::with_capacity(N);
    for _ in 0..N {
        again.push(TcpStream::connect(addr).await.unwrap());
    }
    normal_client_is_served(addr).await;
    tokio::time::timeout(Duration::from_secs(20), accepted())
        .await
        .unwrap_or_else(|_| panic!("only {} of {N} accepted", open_fds(pid) - fds_before));
    let grown = rss_kib(pid).saturating_sub(rss_held) as usize * 1024 / N;
    eprintln!("second wave of {N}: RSS grew {grown} bytes per connection over the first");
    assert!(
        grown < 32 * 1024,
        "a second wave of idle connections grew RSS by {grown} bytes each"
    );
}

/// A backend that answers every request with `size` bytes (a Content-Length body written from
/// one small buffer), counting what it manages to write.
async fn large_answer_backend(
    size: usize,
) -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let written = std::sync::Arc::new(AtomicUsize::new(0));
    let w = written.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let w = w.clone();
            tokio::spawn(async move {
                let mut head = [0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|x| x == b"\r\n\r\n") {
                    match s.read(&mut head).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&head[..n]),
                    }
                }
                let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n");
                if s.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
                let piece = vec![b'x'; 64 * 1024];
                let mut left = size;
                while left > 0 {
                    let n = left.min(piece.len());
                    if s.write_all(&piece[..n]).await.is_err() {
                        return;
                    }
                    left -= n;
                    w.fetch_add(n, Ordering::Relaxed);
                }
            });
        }
    });
    (addr, written)
}

/// The proxy as its own process, so that its memory can be read from /proc.
#[tokio::test]
async fn clients_that_stop_reading_a_large_answer_hold_bounded_memory() {
    use std::sync::atomic::Ordering;
    const CLIENTS: usize = 20;
    let (backend, written) = large_answer_backend(64 << 20).await;
    let addr = free_addr();
    let yaml = format!(
        "listen: \"{addr}\"\nupstreams:\n  b: {{servers: [\"{backend}\"]}}\nroutes:\n  - {{name: api, upstream: b}}\n"
    );
    let child = run_binary("stalled", &yaml);
    let pid = child.0.id();
    wait_until_listening(addr).await;
    let rss_before = rss_kib(pid);
    // Each client asks, reads a little, and then stops reading.
    let mut stalled = Vec::new();
    for _ in 0..CLIENTS {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.set_recv_buffer_size(16 * 1024).unwrap();
        let mut s = sock.connect(addr).await.unwrap();
        s.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        stalled.push(s);
    }
    // Until the backend can write no more: every buffer between it and the clients is full.
    let quiet = async {
        let mut last = usize::MAX;
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = written.load(Ordering::Relaxed);
            if now == last {
                return now;
            }
            last = now;
        }
    };
    let total = tokio::time::timeout(Duration::from_secs(60), quiet)
        .await
        .expect("the backend was still writing after 60 s");
    let grown = rss_kib(pid).saturating_sub(rss_before) as usize * 1024;
    eprintln!(
        "{CLIENTS} stalled clients: the backend wrote {} KiB in all, the proxy's RSS grew {} KiB",
        total / 1024,
        grown / 1024
    );
    // Without the bound, the proxy read what the upstream socket held before each write:
    // +68 to +122 MiB for these 20.
    assert!(
        grown < 32 << 20,
        "{} KiB held for {CLIENTS} clients that stopped reading",
        grown / 1024
    );
    drop(stalled);
}
