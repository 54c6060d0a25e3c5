//! The engine's security against desync (the engine security issue): an upstream connection
//! never hands one request another's answer, and what reaches an upstream is exactly what was
//! routed. Raw clients on real sockets, and a raw backend that records every byte each of its
//! connections carried (`common::raw`), so that a stray byte upstream shows.

mod common;

use std::sync::Arc;

use common::raw::{answer, answer_then_echo, answer_then_later, Counter, Got, Later, RawBackend};
use common::Proxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// A 200 whose body is `text`.
fn ok(text: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{text}",
        text.len()
    )
}

/// The request line's target and the cookie, as the body of the answer: each client can tell
/// its own answer from another's.
fn whose(g: &Got) -> String {
    let target = g.head.split(' ').nth(1).unwrap_or("").to_owned();
    match g.header("cookie") {
        Some(c) => format!("{target} {c}"),
        None => target,
    }
}

fn config(backend: &RawBackend) -> String {
    format!(
        r#"
listen: LISTEN
upstreams:
  b: {{servers: ["{}"]}}
cors_policies:
  app: {{allow_origins: [https://app.example.com], allow_methods: [GET, POST, PUT]}}
routes:
  - {{name: ws, path: /ws, upstream: b, cors: app, websocket: {{}}}}
  - {{name: jsonp, path: /jsonp, upstream: b, cors: app, jsonp: {{}}}}
  - {{name: events, path: /events, upstream: b, cors: app, sse: {{heartbeat: 10s}}}}
  - {{name: api, path: /, upstream: b, cors: app}}
"#,
        backend.addr
    )
}

/// A raw client connection, with what it read past the last response.
struct Client {
    s: TcpStream,
    buf: Vec<u8>,
}

async fn connect(proxy: &Proxy) -> Client {
    Client {
        s: TcpStream::connect(proxy.addr).await.unwrap(),
        buf: Vec::new(),
    }
}

impl Client {
    async fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).await.unwrap();
    }

    /// Reads more; false when the proxy closed.
    async fn more(&mut self) -> bool {
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), self.s.read(&mut chunk))
            .await
            .expect("no answer within 10 s")
            .unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    /// Reads one response: its head, and its body by Content-Length (none for `bodiless`);
    /// what came after it stays for the next.
    async fn response(&mut self, bodiless: bool) -> String {
        let end = loop {
            if let Some(i) = common::raw::find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            assert!(
                self.more().await,
                "closed before a response head: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
        let length: usize = head
            .split("\r\n")
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        let whole = if bodiless { end } else { end + length };
        while self.buf.len() < whole {
            assert!(self.more().await, "closed before the body was whole");
        }
        let r: Vec<u8> = self.buf.drain(..whole).collect();
        String::from_utf8_lossy(&r).into_owned()
    }
}

/// The body of a response read by [`response`].
fn body(r: &str) -> &str {
    r.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

/// Sends `bytes` on a new connection and reads until the proxy closes it.
async fn exchange(proxy: &Proxy, bytes: &[u8]) -> String {
    let mut s = connect(proxy).await;
    s.send(bytes).await;
    while s.more().await {}
    String::from_utf8_lossy(&s.buf).into_owned()
}

/// A backend that answers `HEAD /late` with the head of a GET's answer and, when the test
/// opens the gate, writes that answer's "body": a whole fake response, which a connection used
/// again would hand the next request as its answer.
async fn late_body_backend() -> (RawBackend, Later) {
    let later = Later {
        bytes: ok("STOLEN").into_bytes(),
        gate: Arc::new(Semaphore::new(0)),
        written: Counter::default(),
    };
    let l = later.clone();
    let backend = RawBackend::start(move |g| {
        if g.head.starts_with("HEAD /late") {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                l.bytes.len()
            );
            answer_then_later(&head, &l)
        } else {
            answer(&ok(&whose(g)))
        }
    })
    .await;
    (backend, later)
}

/// Sends `HEAD /late` and reads its answer, then lets the stray bytes go and waits until the
/// backend has written them: they are in the kept upstream connection's socket, after the
/// answer's end.
async fn head_with_late_body(s: &mut Client, later: &Later) {
    s.send(b"HEAD /late HTTP/1.1\r\nHost: api.example.com\r\n\r\n")
        .await;
    let r = s.response(true).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let before = later.written.get();
    later.gate.add_permits(1);
    later.written.wait_for(before + 1).await;
}

async fn get(s: &mut Client, path: &str, cookie: Option<&str>) -> String {
    let cookie = cookie.map_or(String::new(), |c| format!("Cookie: {c}\r\n"));
    s.send(format!("GET {path} HTTP/1.1\r\nHost: api.example.com\r\n{cookie}\r\n").as_bytes())
        .await;
    s.response(false).await
}

#[tokio::test]
async fn a_kept_upstream_connection_that_got_bytes_after_its_answer_is_never_used_again() {
    let (backend, later) = late_body_backend().await;
    let proxy = Proxy::start(&config(&backend)).await;
    let mut a = connect(&proxy).await;
    head_with_late_body(&mut a, &later).await;
    // At once (well within any idle time): the connection must be looked at all the same.
    let r = get(&mut a, "/mine", None).await;
    assert_eq!(body(&r), "/mine", "{r}");
    let got = backend.got();
    assert_eq!(got.len(), 2);
    assert_ne!(
        got[0].conn, got[1].conn,
        "the poisoned connection carried the GET"
    );
}

#[tokio::test]
async fn stray_bytes_never_become_another_clients_answer() {
    let (backend, later) = late_body_backend().await;
    let proxy = Proxy::start(&config(&backend)).await;
    // A leaves the poisoned connection behind (kept, then pooled when A closes).
    let mut a = connect(&proxy).await;
    head_with_late_body(&mut a, &later).await;
    drop(a);
    // B and C come after, on connections of their own: each gets its own answer.
    let mut b = connect(&proxy).await;
    let r = get(&mut b, "/api/profile", Some("session=VICTIM")).await;
    assert_eq!(body(&r), "/api/profile session=VICTIM", "{r}");
    let mut c = connect(&proxy).await;
    let r = get(&mut c, "/c", None).await;
    assert_eq!(body(&r), "/c", "{r}");
    // A again, on a new connection, and B once more: nobody got anyone's answer.
    let mut a = connect(&proxy).await;
    head_with_late_body(&mut a, &later).await;
    let r = get(&mut b, "/api/profile", Some("session=VICTIM")).await;
    assert_eq!(body(&r), "/api/profile session=VICTIM", "{r}");
    let r = get(&mut a, "/a", None).await;
    assert_eq!(body(&r), "/a", "{r}");
    for g in backend.got() {
        assert!(!g.head.is_empty());
    }
}

#[tokio::test]
async fn an_answer_whose_end_is_in_doubt_ends_its_upstream_connection() {
    // A 204 that announces a body (RFC 9110 §15.3.5: it has none): what follows it on the
    // connection is out of step, so the connection is not used again, even before any stray
    // byte has arrived.
    let later = Later {
        bytes: ok("STOLEN").into_bytes(),
        gate: Arc::new(Semaphore::new(0)),
        written: Counter::default(),
    };
    let l = later.clone();
    let backend = RawBackend::start(move |g| {
        if g.head.starts_with("GET /nothing") {
            answer_then_later("HTTP/1.1 204 No Content\r\nContent-Length: 40\r\n\r\n", &l)
        } else if g.head.starts_with("GET /short") {
            // One byte more than its length, in the same write.
            answer("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcdeHTTP/1.1 200 OK\r\n")
        } else {
            answer(&ok(&whose(g)))
        }
    })
    .await;
    let proxy = Proxy::start(&config(&backend)).await;
    let mut s = connect(&proxy).await;
    s.send(b"GET /nothing HTTP/1.1\r\nHost: api.example.com\r\n\r\n")
        .await;
    let r = s.response(true).await;
    assert!(r.starts_with("HTTP/1.1 204"), "{r}");
    let r = get(&mut s, "/after-204", None).await;
    assert_eq!(body(&r), "/after-204", "{r}");
    later.gate.add_permits(1);
    let r = get(&mut s, "/short", None).await;
    assert_eq!(body(&r), "abcd", "{r}");
    let r = get(&mut s, "/after-short", None).await;
    assert_eq!(body(&r), "/after-short", "{r}");
    let conns: Vec<usize> = backend.got().iter().map(|g| g.conn).collect();
    assert_eq!(conns.len(), 4, "{conns:?}");
    assert_ne!(conns[0], conns[1], "the 204's connection was used again");
    assert_ne!(
        conns[2], conns[3],
        "the over-long answer's connection was used again"
    );
}

#[tokio::test]
async fn an_answer_with_both_framings_is_a_502() {
    let backend = RawBackend::start(|_| {
        answer(
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n\
             3\r\nabc\r\n0\r\n\r\n",
        )
    })
    .await;
    let proxy = Proxy::start(&config(&backend)).await;
    let r = exchange(
        &proxy,
        b"GET /both HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 502"), "{r}");
}

#[tokio::test]
async fn targets_that_are_neither_origin_nor_absolute_form_are_refused() {
    let backend = RawBackend::start(|g| answer(&ok(&whose(g)))).await;
    let proxy = Proxy::start(&config(&backend)).await;
    for target in [
        "x:/admin",
        "x:/admin/..%2f..%2fsecret",
        "evil.example:80",
        "api.example.com/admin",
        "ftp://api.example.com/admin",
        "*",
    ] {
        let r = exchange(
            &proxy,
            format!("GET {target} HTTP/1.1\r\nHost: api.example.com\r\n\r\n").as_bytes(),
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 400"), "{target}: {r}");
    }
    // An absolute-form target is routed and forwarded on its own authority, in origin form.
    let mut s = connect(&proxy).await;
    s.send(b"GET http://api.example.com/v1?q=1 HTTP/1.1\r\nHost: api.example.com\r\n\r\n")
        .await;
    let r = s.response(false).await;
    assert_eq!(body(&r), "/v1?q=1", "{r}");
    let raw = backend.raw();
    assert_eq!(raw.len(), 1, "only the absolute-form request went upstream");
    let sent = String::from_utf8_lossy(&raw[0]);
    assert!(sent.starts_with("GET /v1?q=1 HTTP/1.1\r\n"), "{sent}");
    let hosts: Vec<_> = sent
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("host:"))
        .collect();
    assert_eq!(hosts, ["Host: api.example.com"], "{sent}");
}

#[tokio::test]
async fn a_request_without_one_host_is_refused_and_http10_gets_one_upstream() {
    let backend = RawBackend::start(|g| answer(&ok(&whose(g)))).await;
    let proxy = Proxy::start(&config(&backend)).await;
    for bytes in [
        &b"GET /x HTTP/1.1\r\n\r\n"[..],
        b"GET http://api.example.com/x HTTP/1.1\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: a.example/admin\r\n\r\n",
        // No DNS name has a `%` (found by wire_differential: hyper refuses it).
        b"GET /x HTTP/1.1\r\nHost: a.example%2F\r\n\r\n",
    ] {
        let r = exchange(&proxy, bytes).await;
        assert!(
            r.starts_with("HTTP/1.1 400"),
            "{}: {r}",
            String::from_utf8_lossy(bytes)
        );
    }
    assert!(backend.raw().is_empty(), "a refused request went upstream");
    // HTTP/1.0 may leave Host out; HTTP/1.1, which goes upstream, may not.
    let r = exchange(&proxy, b"GET /old HTTP/1.0\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let got = &backend.got()[0];
    assert!(
        got.head.starts_with("GET /old HTTP/1.1\r\n"),
        "{}",
        got.head
    );
    assert_eq!(got.header("host").as_deref(), Some("b"), "{}", got.head);
}

#[tokio::test]
async fn a_head_larger_than_the_limit_is_431_and_never_forwarded() {
    let backend = RawBackend::start(|g| answer(&ok(&whose(g)))).await;
    let yaml = config(&backend).replace(
        "upstreams:",
        "server: {client_max_head_size: 8192}\nupstreams:",
    );
    let proxy = Proxy::start(&yaml).await;
    let padded = |bytes: usize| {
        format!(
            "GET /big HTTP/1.1\r\nHost: api.example.com\r\nX-Pad: {}\r\nConnection: close\r\n\r\n",
            "a".repeat(bytes)
        )
    };
    // In one write, just past the limit.
    let r = exchange(&proxy, padded(8192).as_bytes()).await;
    assert!(r.starts_with("HTTP/1.1 431"), "{r}");
    // Just under it: served.
    let r = exchange(&proxy, padded(7900).as_bytes()).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    // Trickled, never ending: cut with a 431 once past the limit (pingora alone would read
    // up to 1 MB, then answer 400).
    let s = connect(&proxy).await.s;
    let (mut rd, mut wr) = s.into_split();
    let writer = tokio::spawn(async move {
        wr.write_all(b"GET /slow HTTP/1.1\r\nHost: api.example.com\r\n")
            .await
            .unwrap();
        let line = format!("X-Pad: {}\r\n", "a".repeat(1000));
        while wr.write_all(line.as_bytes()).await.is_ok() {}
    });
    let mut got = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), rd.read_to_end(&mut got))
        .await
        .expect("the trickled head was not cut within 10 s");
    let r = String::from_utf8_lossy(&got);
    assert!(r.starts_with("HTTP/1.1 431"), "{r}");
    writer.abort();
    // Only the request under the limit went upstream.
    assert_eq!(backend.got().len(), 1);
}

#[tokio::test]
async fn empty_segments_and_path_parameters_are_refused_in_reject_mode() {
    let backend = RawBackend::start(|g| answer(&ok(&whose(g)))).await;
    let proxy = Proxy::start(&config(&backend)).await;
    for path in [
        "//admin",
        "/a//admin",
        "/;x/admin",
        "/admin;jsessionid=1",
        "/admin%3bx",
    ] {
        let r = exchange(
            &proxy,
            format!("GET {path} HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 400"), "{path}: {r}");
    }
    assert!(backend.raw().is_empty(), "an ambiguous path went upstream");
}

#[tokio::test]
async fn a_101_to_a_request_that_asked_for_no_upgrade_is_a_502_and_opens_no_tunnel() {
    let backend = RawBackend::start(|_| {
        answer_then_echo(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        )
    })
    .await;
    // No route serves /internal/: it can only reach the backend through a tunnel.
    let proxy = Proxy::start(&format!(
        r#"
listen: LISTEN
upstreams:
  b: {{servers: ["{}"]}}
cors_policies:
  app: {{allow_origins: [https://app.example.com]}}
routes:
  - {{name: ws, path: /ws, upstream: b, cors: app, websocket: {{}}}}
  - {{name: plain, path: /plain, upstream: b, cors: app}}
"#,
        backend.addr
    ))
    .await;
    // A handshake whose Connection lacks `upgrade` (so no upgrade goes upstream), then what
    // would be the tunnel's first bytes.
    let smuggled =
        b"GET /internal/admin HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n";
    for path in ["/ws", "/plain"] {
        let mut bytes = format!(
            "GET {path} HTTP/1.1\r\nHost: api.example.com\r\nOrigin: https://app.example.com\r\n\
             Upgrade: websocket\r\nConnection: keep-alive\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        .into_bytes();
        bytes.extend_from_slice(smuggled);
        let r = exchange(&proxy, &bytes).await;
        assert!(!r.contains("101 Switching"), "{path}: {r}");
        assert!(!r.contains("echo:"), "{path}: {r}");
    }
    let plain = exchange(
        &proxy,
        b"GET /plain HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(plain.starts_with("HTTP/1.1 502"), "{plain}");
    for raw in backend.raw() {
        let sent = String::from_utf8_lossy(&raw);
        assert!(
            !sent.contains("/internal/admin"),
            "reached the backend: {sent}"
        );
        assert!(!sent.to_ascii_lowercase().contains("upgrade:"), "{sent}");
    }
}

#[tokio::test]
async fn framing_fields_are_checked_and_one_length_goes_upstream() {
    let backend = RawBackend::start(|g| answer(&ok(&whose(g)))).await;
    let proxy = Proxy::start(&config(&backend)).await;
    for (head, status) in [
        ("Content-Length: 5, 5\r\n", 400),
        ("Content-Length: 5\r\nContent-Length: 5\r\n", 400),
        ("Content-Length: +5\r\n", 400),
        ("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", 400),
        ("Transfer-Encoding: gzip, chunked\r\n", 501),
        (
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            400,
        ),
        ("Transfer-Encoding: \"chunked\"\r\n", 400),
    ] {
        let r = exchange(
            &proxy,
            format!(
                "POST /up HTTP/1.1\r\nHost: api.example.com\r\n{head}\r\n5\r\nhello\r\n0\r\n\r\n"
            )
            .as_bytes(),
        )
        .await;
        assert!(r.starts_with(&format!("HTTP/1.1 {status}")), "{head}: {r}");
    }
    assert!(backend.raw().is_empty(), "a refused request went upstream");
    let r = exchange(
        &proxy,
        b"POST /up HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 05\r\nConnection: close\r\n\r\nhello",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let got = &backend.got()[0];
    assert_eq!(got.headers_named("content-length"), 1, "{}", got.head);
    assert_eq!(got.header("content-length").as_deref(), Some("5"));
    assert_eq!(got.body, b"hello");
}

/// An HTTP/1.0 request's whole answer (to the close): a 200 in crossgate's own version,
/// without `Transfer-Encoding`, which an HTTP/1.0 client does not know.
async fn http10_answer(proxy: &Proxy, bytes: &[u8]) -> String {
    let r = exchange(proxy, bytes).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(!r.to_ascii_lowercase().contains("transfer-encoding"), "{r}");
    r
}

#[tokio::test]
async fn http10_clients_get_no_chunks_and_every_client_gets_http11() {
    let backend = RawBackend::start(|g| {
        if g.head.starts_with("GET /chunked") {
            answer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        } else if g.head.starts_with("GET /events") {
            common::raw::answer_then_close(
                "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n\
                 d\r\ndata: hello\n\n\r\n0\r\n\r\n",
            )
        } else if g.head.starts_with("GET /jsonp") {
            answer(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
            )
        } else {
            // An HTTP/1.0 server: no length, the body ends with the connection.
            common::raw::answer_then_close("HTTP/1.0 200 OK\r\n\r\nold body")
        }
    })
    .await;
    let proxy = Proxy::start(&config(&backend)).await;
    // A chunked answer to an HTTP/1.0 client: its body as is, ended by the close.
    let r = http10_answer(&proxy, b"GET /chunked HTTP/1.0\r\n\r\n").await;
    assert!(r.ends_with("\r\n\r\nhello"), "{r}");
    // JSONP's wrapped body (of no known length) likewise.
    let r = http10_answer(
        &proxy,
        b"GET /jsonp?callback=cb HTTP/1.0\r\nReferer: https://app.example.com/\r\n\r\n",
    )
    .await;
    assert!(r.contains("cb("), "{r}");
    // An event stream (streamed by crossgate itself, with heartbeats) likewise.
    let r = http10_answer(
        &proxy,
        b"GET /events HTTP/1.0\r\nAccept: text/event-stream\r\nOrigin: https://app.example.com\r\n\r\n",
    )
    .await;
    assert!(r.ends_with("\r\n\r\ndata: hello\n\n"), "{r:?}");
    // An HTTP/1.0 server's close-delimited answer to an HTTP/1.1 client: in crossgate's own
    // version, chunked, and the client's connection goes on.
    let mut s = connect(&proxy).await;
    s.send(b"GET /old HTTP/1.1\r\nHost: api.example.com\r\n\r\n")
        .await;
    while common::raw::find(&s.buf, b"0\r\n\r\n").is_none() {
        assert!(
            s.more().await,
            "closed: {}",
            String::from_utf8_lossy(&s.buf)
        );
    }
    let r = String::from_utf8_lossy(&std::mem::take(&mut s.buf)).into_owned();
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let lower = r.to_ascii_lowercase();
    assert!(lower.contains("transfer-encoding: chunked"), "{r}");
    assert!(!lower.contains("connection: close"), "{r}");
    assert!(r.contains("old body"), "{r}");
    let r = get(&mut s, "/chunked-again", None).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
}

#[tokio::test]
async fn a_request_pipelined_behind_expect_continue_is_answered() {
    let backend = RawBackend::start(|g| answer(&ok(&whose(g)))).await;
    let proxy = Proxy::start(&config(&backend)).await;
    let mut s = connect(&proxy).await;
    s.send(
        b"PUT /up HTTP/1.1\r\nHost: api.example.com\r\nExpect: 100-continue\r\n\
          Content-Length: 5\r\n\r\nhello\
          GET /next HTTP/1.1\r\nHost: api.example.com\r\n\r\n",
    )
    .await;
    let mut answers = Vec::new();
    while answers.len() < 2 {
        let r = s.response(false).await;
        if r.starts_with("HTTP/1.1 100") {
            // The 100 may come first (the body came with the head: it need not).
            continue;
        }
        answers.push(body(&r).to_owned());
    }
    assert_eq!(answers, ["/up", "/next"]);
    let got = backend.got();
    assert_eq!(got[0].body, b"hello");
}

#[tokio::test]
async fn a_chunked_body_outside_its_grammar_is_refused_and_nothing_after_it_is_read() {
    // A bare LF in a chunk extension: pingora's own decoder reads `2;\nxx` as a size line,
    // where a front end that ends chunk lines at LF reads the size line `2;` and the data
    // `xx`. The two would disagree on where the body ends, and what crossgate read after it
    // as the next request (`GET /api/smuggled`) would be, to the front end, part of this one.
    let backend = RawBackend::start(|g| answer(&ok(&whose(g)))).await;
    let proxy = Proxy::start(&config(&backend)).await;
    let smuggled = "GET /api/smuggled HTTP/1.1\r\nHost: api.example.com\r\n\r\n";
    for body in [
        "2;\nxx\r\nab\r\n0\r\n\r\n",
        "2;a=\"x\0\"\r\nab\r\n0\r\n\r\n",
        "0x2\r\nab\r\n0\r\n\r\n",
        "\r\nab\r\n0\r\n\r\n",
        "2\nab\r\n0\r\n\r\n",
        "2\r\nabX\r\n0\r\n\r\n",
        "2\r\nab\r\n0\r\nGET /trailer HTTP/1.1\r\n\r\n",
        "2\r\nab\r\n0\r\nX: a\r\n b\r\n\r\n",
    ]
    .into_iter()
    .map(str::to_owned)
    // More trailer fields than a reference reads (hyper: 100), found by wire_differential.
    .chain(std::iter::once(format!(
        "2\r\nab\r\n0\r\n{}\r\n",
        "T: 1\r\n".repeat(101)
    ))) {
        let r = exchange(
            &proxy,
            format!(
                "POST /up HTTP/1.1\r\nHost: api.example.com\r\nTransfer-Encoding: chunked\r\n\r\n\
                 {body}{smuggled}"
            )
            .as_bytes(),
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 400"), "{body:?}: {r}");
        assert!(!r.contains("/api/smuggled"), "{body:?}: {r}");
    }
    for raw in backend.raw() {
        let sent = String::from_utf8_lossy(&raw);
        assert!(
            !sent.contains("/api/smuggled"),
            "reached the backend: {sent}"
        );
    }
    assert!(
        backend.got().is_empty(),
        "a refused body reached the backend whole"
    );
}

#[tokio::test]
async fn a_well_formed_chunked_body_with_extensions_and_trailers_keeps_the_connection() {
    let backend = RawBackend::start(|g| answer(&ok(&whose(g)))).await;
    let proxy = Proxy::start(&config(&backend)).await;
    let mut s = connect(&proxy).await;
    s.send(
        b"POST /up HTTP/1.1\r\nHost: api.example.com\r\nTransfer-Encoding: chunked\r\n\r\n\
          3;name=\"a b\";x\r\nabc\r\n2 ; y = z\r\nde\r\n0\r\nX-Sum: 5\r\n\r\n\
          GET /next HTTP/1.1\r\nHost: api.example.com\r\n\r\n",
    )
    .await;
    let r = s.response(false).await;
    assert_eq!(body(&r), "/up", "{r}");
    let r = s.response(false).await;
    assert_eq!(body(&r), "/next", "{r}");
    let got = backend.got();
    let sent = String::from_utf8_lossy(&got[0].body);
    assert!(sent.contains("abc") && sent.contains("de"), "{sent}");
    assert!(!sent.contains("name") && !sent.contains("X-Sum"), "{sent}");
}

#[tokio::test]
async fn an_http2_connection_never_hands_a_stream_stray_bytes_from_the_one_before() {
    // The upstream connections an HTTP/2 connection keeps for its next streams are checked
    // like an HTTP/1 connection's own.
    let (backend, later) = late_body_backend().await;
    let (_proxy, tls_addr, client) = common::with_h2_listener(&config(&backend), "desync").await;
    let url = |path: &str| format!("https://localhost:{}{path}", tls_addr.port());
    let r = client.head(url("/late")).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    later.gate.add_permits(1);
    later.written.wait_for(1).await;
    let r = client
        .get(url("/api/profile"))
        .header("cookie", "session=VICTIM")
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "/api/profile session=VICTIM");
    let got = backend.got();
    assert_ne!(
        got[0].conn, got[1].conn,
        "the poisoned connection carried the GET"
    );
}
