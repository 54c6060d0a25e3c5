//! A chunked response whose parts reach the proxy together leaves in one send: pingora 0.9
//! flushes the head, each chunk and the last chunk separately, and crossgate holds the flushes
//! in between (`src/guard/mod.rs`). Counted on the client's socket (`TCP_INFO`'s data segments
//! received, exact on loopback), and checked never to hold anything while the proxy waits.

mod common;

use std::os::fd::AsRawFd;

use common::{read_raw_until, Backend, Proxy};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn config(backend: &Backend) -> String {
    format!(
        r#"
listen: LISTEN
upstreams:
  b: {{servers: ["{}"]}}
cors_policies:
  app: {{allow_origins: [https://app.example.com]}}
routes:
  - {{name: api, path: /, upstream: b, cors: app, jsonp: {{without_referer: allow}}}}
"#,
        backend.addr
    )
}

/// Segments with data this socket has received (Linux `tcpi_data_segs_in`).
fn data_segments_in(s: &TcpStream) -> u32 {
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: a valid socket descriptor, and a buffer of the length given.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    assert_eq!(
        rc,
        0,
        "getsockopt(TCP_INFO): {}",
        std::io::Error::last_os_error()
    );
    info.tcpi_data_segs_in
}

async fn request(s: &mut TcpStream, path: &str) {
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: api.example.com\r\nOrigin: https://app.example.com\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
}

#[tokio::test]
async fn a_small_jsonp_answer_leaves_in_one_send_and_the_next_one_too() {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config(&backend)).await;
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    for i in 0..3 {
        let before = data_segments_in(&s);
        request(&mut s, &format!("/items?callback=cb{i}")).await;
        let mut got = Vec::new();
        read_raw_until(&mut s, &mut got, b"\r\n0\r\n\r\n").await;
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.contains(&format!("/**/cb{i}(")), "{text}");
        assert!(
            text.contains("\r\nAccess-Control-Allow-Origin: https://app.example.com\r\n"),
            "{text}"
        );
        // Head, wrapped body and last chunk: three sends without the held flushes.
        assert_eq!(
            data_segments_in(&s) - before,
            1,
            "response {i} came in more than one send: {text}"
        );
    }
    // A Content-Length answer on the same connection is untouched.
    request(&mut s, "/items").await;
    let mut got = Vec::new();
    read_raw_until(&mut s, &mut got, b"}").await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("content-length:"),
        "{text}"
    );
}

#[tokio::test]
async fn an_event_streams_head_and_first_event_leave_together_and_nothing_is_held() {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config(&backend)).await;
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    request(&mut s, "/events/sse-gated?n=2").await;
    let mut got = Vec::new();
    // The backend holds event 2 until released: event 1 must come without it.
    read_raw_until(&mut s, &mut got, b"data: event 1\n\n").await;
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(text.contains("text/event-stream"), "{text}");
    assert_eq!(
        data_segments_in(&s),
        1,
        "the head and the first event came in more than one send: {text}"
    );
    backend.release_event();
    read_raw_until(&mut s, &mut got, b"data: event 2\n\n").await;
    read_raw_until(&mut s, &mut got, b"\r\n0\r\n\r\n").await;
    // The connection is kept alive and serves the next request.
    request(&mut s, "/items?callback=cb").await;
    let mut next = Vec::new();
    read_raw_until(&mut s, &mut next, b"\r\n0\r\n\r\n").await;
    assert!(String::from_utf8_lossy(&next).contains("/**/cb("));
}
