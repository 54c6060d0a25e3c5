//! Hostile clients on raw sockets: each gets a proper refusal (or a safe answer), nothing
//! panics, and a normal client is served right after.

mod common;

use common::{normal_client_is_served, Backend, Proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn config(backend: &Backend) -> String {
    format!(
        "listen: LISTEN\nupstreams:\n  b: {{servers: [\"{}\"]}}\nroutes:\n  - {{name: api, upstream: b, cors: {{allow_origins: [https://app.example.com]}}}}\n",
        backend.addr
    )
}

/// Sends raw bytes, returns the response head (or what the socket said).
async fn raw(proxy: &Proxy, bytes: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut buf = vec![0; 64 * 1024];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("no answer within 10 s")
        .unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn an_oversized_header_block_gets_431() {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config(&backend)).await;
    // ~40 KB: past crossgate's 32 KiB default, well within what the backend (hyper, ~400 KB)
    // takes and answers 200 to, so the 431 can only be crossgate's.
    let mut req = b"GET /x HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..40 {
        req.extend_from_slice(format!("X-Pad-{i}: {}\r\n", "a".repeat(1000)).as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    let head = raw(&proxy, &req).await;
    assert!(head.starts_with("HTTP/1.1 431"), "{head}");
    assert!(backend.requests().is_empty());
    normal_client_is_served(proxy.addr).await;
}

#[tokio::test]
async fn smuggling_shapes_are_refused_or_forwarded_with_one_framing() {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config(&backend)).await;
    // Two different Content-Lengths: refused.
    let head = raw(
        &proxy,
        b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    // Content-Length with Transfer-Encoding: refused before anything is forwarded (RFC 9112
    // §6.3 lets a server refuse; nginx does). tests/desync.rs checks the bytes upstream.
    let head = raw(&proxy, b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert!(backend.requests().is_empty());
    normal_client_is_served(proxy.addr).await;
}

/// Answered (200 from the backend, or 400 from the parser) and without any CORS header.
fn assert_answered_without_cors(head: &str, what: &str) {
    assert!(
        head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.1 400"),
        "{what}: {head}"
    );
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("access-control-allow-origin"),
        "{what}: {head}"
    );
}

#[tokio::test]
async fn malformed_origins_get_no_cors_headers_and_break_nothing() {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config(&backend)).await;
    let long = format!("https://{}.com", "a".repeat(20_000));
    let origins: Vec<Vec<u8>> = vec![
        b"https://\xc3\xa4.example.com".to_vec(),
        b"https://app.example.com:99999".to_vec(),
        b"https://app.example.com:0".to_vec(),
        b"HTTPS://APP.EXAMPLE.COM".to_vec(),
        b"https://app.example.com/".to_vec(),
        // (A trailing tab would be trimmed by HTTP itself, RFC 9110 5.5; one inside stays.)
        b"https://app.\texample.com".to_vec(),
        b"null".to_vec(),
        b"".to_vec(),
        long.into_bytes(),
    ];
    for o in origins {
        let mut req = b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\nOrigin: ".to_vec();
        req.extend_from_slice(&o);
        req.extend_from_slice(b"\r\n\r\n");
        let head = raw(&proxy, &req).await;
        let shown = String::from_utf8_lossy(&o[..o.len().min(60)]).into_owned();
        assert_answered_without_cors(&head, &shown);
    }
    // A CR or LF inside the value: a bare CR is refused by the parser; a bare LF ends the line
    // (RFC 9112 2.2), so the client sent two headers. Either way nothing after it is echoed.
    for bad in [
        &b"https://app.example.com\rX-Injected: 1"[..],
        b"https://app.example.com\nX-Injected: 1",
    ] {
        let mut req = b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\nOrigin: ".to_vec();
        req.extend_from_slice(bad);
        req.extend_from_slice(b"\r\n\r\n");
        let head = raw(&proxy, &req).await;
        let lower = head.to_ascii_lowercase();
        assert!(!lower.contains("x-injected"), "{head}");
        for line in lower
            .lines()
            .filter(|l| l.starts_with("access-control-allow-origin"))
        {
            assert_eq!(
                line, "access-control-allow-origin: https://app.example.com",
                "{head}"
            );
        }
    }
    // Several Origin headers: a browser never sends that, so nothing is allowed, whichever
    // of them is on the list.
    for pair in [
        ("https://app.example.com", "https://evil.example"),
        ("https://evil.example", "https://app.example.com"),
        ("https://app.example.com", "https://app.example.com"),
    ] {
        let req = format!(
            "GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\nOrigin: {}\r\nOrigin: {}\r\n\r\n",
            pair.0, pair.1
        );
        let head = raw(&proxy, req.as_bytes()).await;
        assert_answered_without_cors(&head, &format!("{pair:?}"));
    }
    // A preflight with such an origin is refused, never answered with Allow headers.
    let head = raw(&proxy, b"OPTIONS /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\nOrigin: https://app.example.com:99999\r\nAccess-Control-Request-Method: PUT\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("access-control-allow-"),
        "{head}"
    );
    normal_client_is_served(proxy.addr).await;
}

#[tokio::test]
async fn garbage_instead_of_http_gets_400() {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config(&backend)).await;
    // A TLS ClientHello sent to a plain listener, then more noise.
    let head = raw(
        &proxy,
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",
    )
    .await;
    assert!(
        head.is_empty() || head.starts_with("HTTP/1.1 400"),
        "{head:?}"
    );
    let head = raw(&proxy, b"GET /x HTTP/9.9\r\nHost: x\r\n\r\n").await;
    assert!(
        head.is_empty() || head.starts_with("HTTP/1.1 4") || head.starts_with("HTTP/1.1 505"),
        "{head:?}"
    );
    normal_client_is_served(proxy.addr).await;
}
