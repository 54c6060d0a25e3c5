//! TLS both ways, with certificates generated here: HTTPS listeners offering HTTP/2 by ALPN
//! (every channel over h2, JSONP included), HTTPS upstreams verified against a CA file, a
//! certificate swapped by a reload, and slow TLS and HTTP/2 clients cut at the header timeout.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{free_addr, header, wait_until_listening, Backend, Proxy};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

/// A CA and a leaf certificate for `localhost`, as PEM files in `dir`.
struct Pki {
    ca_pem: String,
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

fn pki(dir: &Path, name: &str) -> Pki {
    std::fs::create_dir_all(dir).unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("crossgate test CA {name}"),
    );
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf_params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    leaf_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("localhost {name}"));
    let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
    let (cert, key, ca_path) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}-ca.pem")),
    );
    std::fs::write(&cert, leaf.pem()).unwrap();
    std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
    std::fs::write(&ca_path, ca.pem()).unwrap();
    Pki {
        ca_pem: ca.pem(),
        cert,
        key,
        ca: ca_path,
    }
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("crossgate-tls-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn https_client(pki: &Pki, tls_addr: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap())
        .resolve("localhost", tls_addr)
        .build()
        .unwrap()
}

fn front_config(backend: SocketAddr, tls_addr: SocketAddr, pki: &Pki) -> String {
    format!(
        r#"
listen: LISTEN
tls:
  - {{listen: "{tls_addr}", cert: "{cert}", key: "{key}"}}
upstreams:
  b: {{servers: ["{b}"]}}
cors_policies:
  app: {{allow_origins: [https://app.example.com], allow_methods: [GET, PUT]}}
routes:
  - {{name: jsonp, path: /jsonp/, upstream: b, cors: app, jsonp: {{without_referer: allow}}}}
  - {{name: beat, path: /beat/, upstream: b, cors: app, read_timeout: 10s, sse: {{heartbeat: 100ms}}}}
  - {{name: api, path: /, upstream: b, cors: app}}
beacons:
  - {{name: pv, path: /b/pv}}
"#,
        cert = pki.cert.display(),
        key = pki.key.display(),
        b = backend
    )
}

#[tokio::test]
async fn https_listener_speaks_http2_for_every_channel() {
    let d = tmp("h2");
    let pki = pki(&d, "front");
    let backend = Backend::start("b").await;
    let tls_addr = free_addr();
    let _proxy = Proxy::start(&front_config(backend.addr, tls_addr, &pki)).await;
    wait_until_listening(tls_addr).await;
    let c = https_client(&pki, tls_addr);
    let base = format!("https://localhost:{}", tls_addr.port());

    let r = c
        .get(format!("{base}/api/x"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://app.example.com")
    );

    let r = c
        .request(reqwest::Method::OPTIONS, format!("{base}/api/x"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "PUT")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.version(), r.status().as_u16()),
        (reqwest::Version::HTTP_2, 204)
    );

    // JSONP rewriting over h2: no Transfer-Encoding (the h2 client would refuse the response).
    let r = c
        .get(format!("{base}/jsonp/items?callback=cb"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(header(&r, "transfer-encoding"), None);
    assert_eq!(
        r.text().await.unwrap(),
        r#"/**/cb({"backend":"b","method":"GET","path":"/jsonp/items"});"#
    );
    let r = c
        .get(format!("{base}/jsonp/chunked-2028?callback=cb"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.text().await.unwrap(),
        r#"/**/cb({"s":"a\u2028b\u2029c", "n":1});"#
    );

    // SSE with heartbeats over h2.
    let r = c
        .get(format!("{base}/beat/sse-paced?gap=400"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);

    let body = r.text().await.unwrap();
    assert!(
        body.contains("data: paced 1\n\n")
            && body.contains(":\n\n")
            && body.contains("data: paced 2\n\n"),
        "{body:?}"
    );

    let r = c.get(format!("{base}/b/pv?x=1")).send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().len(), 43);
    // The plain listener still speaks HTTP/1.1.
    let r = reqwest::get(_proxy.url("/api/x")).await.unwrap();
    assert_eq!(
        (r.version(), r.status().as_u16()),
        (reqwest::Version::HTTP_11, 200)
    );
}

/// An HTTP/1.1 backend that answers every request with the number of the connection it came
/// on (0, 1, ...), keeping each connection alive.
async fn numbering_backend() -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for n in 0usize.. {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    while let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                        got.drain(..end + 4);
                        let body = n.to_string();
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if s.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => got.extend_from_slice(&buf[..k]),
                    }
                }
            });
        }
    });
    addr
}

/// The streams of an HTTP/2 connection reuse the upstream connection its earlier streams used,
/// and when the client leaves, that upstream connection is not closed: the next client's
/// request goes on it (the engine keeps upstream connections per h2 connection and gives them
/// to pingora's pool when the connection ends; closing them instead would show here).
#[tokio::test]
async fn h2_streams_share_upstream_connections_that_outlive_the_client() {
    let d = tmp("h2-kept");
    let pki = pki(&d, "front");
    let backend = numbering_backend().await;
    let tls_addr = free_addr();
    let _proxy = Proxy::start(&front_config(backend, tls_addr, &pki)).await;
    wait_until_listening(tls_addr).await;
    let base = format!("https://localhost:{}", tls_addr.port());
    let served_on = |c: &reqwest::Client, path: &str| {
        let req = c.get(format!("{base}{path}"));
        async move {
            let r = req.send().await.unwrap();
            assert_eq!(
                (r.version(), r.status().as_u16()),
                (reqwest::Version::HTTP_2, 200)
            );
            r.text().await.unwrap()
        }
    };

    let first = https_client(&pki, tls_addr);
    let mut on = Vec::new();
    for i in 0..5 {
        on.push(served_on(&first, &format!("/a/{i}")).await);
    }
    assert_eq!(
        on, ["0"; 5],
        "one h2 connection's streams, one after another"
    );
    drop(first);

    let next = https_client(&pki, tls_addr);
    assert_eq!(
        served_on(&next, "/b").await,
        "0",
        "the first client's upstream connection serves the next client"
    );
}

fn chain_config(front_tls: SocketAddr, tls: &str) -> String {
    format!("listen: LISTEN\nupstreams:\n  secure:\n    servers: [\"{front_tls}\"]\n    health_check: {{path: /health, interval: 50ms}}\n    tls: {tls}\nroutes:\n  - {{name: r, upstream: secure, cors: {{allow_origins: [https://app.example.com]}}}}\n")
}

#[tokio::test]
async fn https_upstreams_are_verified_against_their_ca() {
    let d = tmp("upstream");
    let front_pki = pki(&d, "front");
    let other = pki(&d, "other");
    let backend = Backend::start("b").await;
    let tls_addr = free_addr();
    let _front = Proxy::start(&front_config(backend.addr, tls_addr, &front_pki)).await;
    wait_until_listening(tls_addr).await;

    // Verified with the right CA and name: through.
    let ok = Proxy::start(&chain_config(
        tls_addr,
        &format!(
            "{{sni: localhost, ca_file: \"{}\"}}",
            front_pki.ca.display()
        ),
    ))
    .await;
    let r = reqwest::get(ok.url("/api/x")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-backend"), Some("b"));
    // The health check went over TLS too.
    backend.wait_for(1, |s| s.path == "/health").await;

    // The wrong CA, or the wrong name: refused, and the browser still sees CORS on the 502.
    for tls in [
        format!("{{sni: localhost, ca_file: \"{}\"}}", other.ca.display()),
        format!(
            "{{sni: not-localhost.test, ca_file: \"{}\"}}",
            front_pki.ca.display()
        ),
    ] {
        let bad = Proxy::start(&chain_config(tls_addr, &tls)).await;
        let r = reqwest::Client::new()
            .get(bad.url("/api/x"))
            .header("origin", "https://app.example.com")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 502, "{tls}");
        assert_eq!(
            header(&r, "access-control-allow-origin"),
            Some("https://app.example.com")
        );
    }
    // verify: false lets it through (and check warns about it).
    let off = Proxy::start(&chain_config(
        tls_addr,
        &format!(
            "{{sni: localhost, verify: false, ca_file: \"{}\"}}",
            other.ca.display()
        ),
    ))
    .await;
    assert_eq!(reqwest::get(off.url("/api/x")).await.unwrap().status(), 200);
}

/// The certificate a TLS server presents for `localhost`, if it is signed by `ca_pem`.
async fn served_certificate(addr: SocketAddr, ca_pem: &str) -> Option<Vec<u8>> {
    use std::sync::Arc;
    use tokio_rustls::rustls::{self, pki_types::ServerName};
    let mut roots = rustls::RootCertStore::empty();
    let der = x509_der(ca_pem);
    roots.add(der.into()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .ok()?;
    Some(tls.get_ref().1.peer_certificates()?[0].to_vec())
}

fn x509_der(pem: &str) -> Vec<u8> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    p.contents
}

#[tokio::test]
async fn a_reload_swaps_the_certificate() {
    let d = tmp("reload");
    let first = pki(&d, "first");
    let backend = Backend::start("b").await;
    let (proxy, tls_addr) = (free_addr(), free_addr());
    let config = d.join("config.yaml");
    // The certificate paths stay; their content changes, as cert-manager or certbot do it.
    let (cert, key) = (d.join("live.pem"), d.join("live.key"));
    std::fs::copy(&first.cert, &cert).unwrap();
    std::fs::copy(&first.key, &key).unwrap();
    std::fs::write(
        &config,
        format!("listen: \"{proxy}\"\ntls:\n  - {{listen: \"{tls_addr}\", cert: live.pem, key: live.key}}\nupstreams:\n  b: {{servers: [\"{}\"]}}\nroutes:\n  - {{name: r, upstream: b}}\n", backend.addr),
    )
    .unwrap();
    // No SIGHUP: the file watcher must notice that the certificate changed on disk, though
    // the config text did not.
    let mut child = Command::new(env!("CARGO_BIN_EXE_crossgate"))
        .args(["run", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_until_listening(tls_addr).await;
    let leaf = |p: &Path| x509_der(&std::fs::read_to_string(p).unwrap());
    assert_eq!(
        served_certificate(tls_addr, &first.ca_pem).await,
        Some(leaf(&first.cert))
    );

    let second = pki(&d, "second");
    std::fs::copy(&second.cert, &cert).unwrap();
    std::fs::copy(&second.key, &key).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    // A handshake that trusts only the second CA succeeds once the new certificate is in.
    loop {
        if let Some(der) = served_certificate(tls_addr, &second.ca_pem).await {
            assert_eq!(der, leaf(&second.cert));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
}

// Slow TLS and HTTP/2 clients: `server.client_header_timeout` bounds the TLS handshake, the
// HTTP/2 preface and the first request's head together from the connect, and each later h2
// request head (a HEADERS frame and its CONTINUATIONs) from its first byte, as it does for
// HTTP/1. pingora alone gives a handshake 60 s and an h2 connection forever.

const HEADER_TIMEOUT: Duration = Duration::from_secs(1);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(2);

fn slow_config(backend: &Backend, tls_addr: SocketAddr, pki: &Pki) -> String {
    format!(
        "listen: LISTEN\nserver: {{client_header_timeout: 1s, client_keepalive_timeout: 2s}}\ntls:\n  - {{listen: \"{tls_addr}\", cert: \"{}\", key: \"{}\"}}\nupstreams:\n  b: {{servers: [\"{}\"]}}\nroutes:\n  - {{name: api, upstream: b, cors: {{allow_origins: [https://app.example.com]}}}}\n",
        pki.cert.display(),
        pki.key.display(),
        backend.addr
    )
}

/// A proxy with a 1 s header timeout, a 2 s keep-alive timeout and its TLS listener.
async fn slow_setup(name: &str) -> (Backend, Proxy, SocketAddr, Pki) {
    let pki = pki(&tmp(name), "front");
    let backend = Backend::start("b").await;
    let tls_addr = free_addr();
    let proxy = Proxy::start(&slow_config(&backend, tls_addr, &pki)).await;
    wait_until_listening(tls_addr).await;
    (backend, proxy, tls_addr, pki)
}

fn client_tls_config(ca_pem: &str, alpn: &[&[u8]]) -> tokio_rustls::rustls::ClientConfig {
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(x509_der(ca_pem).into()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// A TLS connection to `localhost` at `addr` that negotiated HTTP/2.
async fn h2_connect(
    addr: SocketAddr,
    ca_pem: &str,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use tokio_rustls::rustls::pki_types::ServerName;
    let config = client_tls_config(ca_pem, &[b"h2"]);
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    tls
}

/// The bytes of a real TLS ClientHello for `localhost`.
fn client_hello(ca_pem: &str) -> Vec<u8> {
    use tokio_rustls::rustls::{pki_types::ServerName, ClientConnection};
    let config = std::sync::Arc::new(client_tls_config(ca_pem, &[b"h2", b"http/1.1"]));
    let mut c = ClientConnection::new(config, ServerName::try_from("localhost").unwrap()).unwrap();
    let mut out = Vec::new();
    while c.wants_write() {
        c.write_tls(&mut out).unwrap();
    }
    out
}

/// Reads (and drops) what comes until the proxy closes the connection (EOF, a reset, or a TLS
/// stream that ends without close_notify); how long that took. Fails after 10 s.
async fn time_until_closed(s: &mut (impl tokio::io::AsyncRead + Unpin)) -> Duration {
    use tokio::io::AsyncReadExt;
    let started = tokio::time::Instant::now();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read_all)
        .await
        .expect("the proxy kept the connection open for 10 s");
    started.elapsed()
}

/// Sends `bytes` one every 50 ms (each read of the proxy is quick, the whole never ends in
/// time) until the proxy closes the connection; how long after the first byte that was. Fails
/// if all of `bytes` went through, or after 10 s.
async fn trickle_until_closed(
    s: &mut (impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin),
    bytes: &[u8],
) -> Duration {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let started = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut buf = [0u8; 4096];
    for b in bytes {
        tick.tick().await;
        if s.write_all(&[*b]).await.is_err() || s.flush().await.is_err() {
            return started.elapsed();
        }
        // Whatever the proxy sent meanwhile (h2 SETTINGS), then its close, if it has come.
        loop {
            match tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
                Ok(Ok(_)) => {}
                Err(_) => break,
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the trickle was never cut"
        );
    }
    panic!("the whole of {} bytes went through", bytes.len());
}

fn assert_cut_at_the_header_timeout(after: Duration) {
    assert!(
        after >= HEADER_TIMEOUT - Duration::from_millis(300) && after < 5 * HEADER_TIMEOUT,
        "cut after {after:?}, the header timeout is {HEADER_TIMEOUT:?}"
    );
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const SETTINGS: u8 = 0x4;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// An HTTP/2 frame (RFC 9113 §4.1).
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = len.to_be_bytes()[1..].to_vec();
    f.extend_from_slice(&[kind, flags]);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// The HPACK block of `GET https://localhost{path}` (static table entries and literals
/// without indexing, so that blocks do not depend on each other).
fn get_block(path: &str) -> Vec<u8> {
    let mut b = vec![0x82, 0x87, 0x04, path.len() as u8];
    b.extend_from_slice(path.as_bytes());
    b.extend_from_slice(&[0x01, 9]);
    b.extend_from_slice(b"localhost");
    b
}

/// Reads frames until a HEADERS frame on `stream`, acknowledging the proxy's SETTINGS.
async fn read_headers_frame(
    s: &mut (impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin),
    stream: u32,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let read = async {
        loop {
            let mut head = [0u8; 9];
            s.read_exact(&mut head).await.unwrap();
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let mut payload = vec![0u8; len];
            s.read_exact(&mut payload).await.unwrap();
            let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
            match head[3] {
                SETTINGS if head[4] & 0x1 == 0 => {
                    s.write_all(&frame(SETTINGS, 0x1, 0, &[])).await.unwrap();
                }
                HEADERS if id == stream => return,
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("no response head within 10 s");
}

#[tokio::test]
async fn a_tls_client_that_sends_nothing_is_closed_at_the_header_timeout() {
    let (_backend, _proxy, tls_addr, pki) = slow_setup("silent").await;
    let mut s = tokio::net::TcpStream::connect(tls_addr).await.unwrap();
    assert_cut_at_the_header_timeout(time_until_closed(&mut s).await);
    assert_eq!(
        https_client(&pki, tls_addr)
            .get(format!("https://localhost:{}/x", tls_addr.port()))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn a_client_hello_trickled_byte_by_byte_is_cut_at_the_header_timeout() {
    let (_backend, _proxy, tls_addr, pki) = slow_setup("hello").await;
    let hello = client_hello(&pki.ca_pem);
    assert!(hello.len() > 100, "{} bytes", hello.len());
    let mut s = tokio::net::TcpStream::connect(tls_addr).await.unwrap();
    assert_cut_at_the_header_timeout(trickle_until_closed(&mut s, &hello).await);
}

#[tokio::test]
async fn an_h2_client_that_never_sends_a_request_is_closed_at_the_header_timeout() {
    use tokio::io::AsyncWriteExt;
    let (backend, _proxy, tls_addr, pki) = slow_setup("h2-silent").await;
    let started = tokio::time::Instant::now();
    let mut s = h2_connect(tls_addr, &pki.ca_pem).await;
    // The preface and SETTINGS, as every h2 client sends them; then no request.
    s.write_all(&[H2_PREFACE, &frame(SETTINGS, 0, 0, &[])].concat())
        .await
        .unwrap();
    time_until_closed(&mut s).await;
    assert_cut_at_the_header_timeout(started.elapsed());
    assert!(backend.requests().is_empty());
}

#[tokio::test]
async fn an_h2_request_head_trickled_byte_by_byte_is_cut_at_the_header_timeout() {
    use tokio::io::AsyncWriteExt;
    let (backend, _proxy, tls_addr, pki) = slow_setup("h2-trickle").await;
    let mut s = h2_connect(tls_addr, &pki.ca_pem).await;
    s.write_all(&[H2_PREFACE, &frame(SETTINGS, 0, 0, &[])].concat())
        .await
        .unwrap();
    // A HEADERS frame whose block (a request with one long header) comes a byte at a time.
    let mut block = get_block("/x");
    block.extend_from_slice(&[0x00, 6]);
    block.extend_from_slice(b"x-slow");
    block.extend_from_slice(&[100]);
    block.extend_from_slice(&[b'a'; 100]);
    let f = frame(HEADERS, END_HEADERS | END_STREAM, 1, &block);
    assert_cut_at_the_header_timeout(trickle_until_closed(&mut s, &f).await);
    assert!(backend.requests().is_empty());
}

#[tokio::test]
async fn a_later_h2_request_head_that_never_completes_is_cut_at_the_header_timeout() {
    use tokio::io::AsyncWriteExt;
    let (backend, _proxy, tls_addr, pki) = slow_setup("h2-continuation").await;
    let mut s = h2_connect(tls_addr, &pki.ca_pem).await;
    let first = frame(HEADERS, END_HEADERS | END_STREAM, 1, &get_block("/first"));
    s.write_all(&[H2_PREFACE, &frame(SETTINGS, 0, 0, &[]), &first].concat())
        .await
        .unwrap();
    read_headers_frame(&mut s, 1).await;
    assert_eq!(backend.requests().len(), 1);
    // The second request's HEADERS frame says that CONTINUATION frames follow; none comes.
    let started = tokio::time::Instant::now();
    s.write_all(&frame(HEADERS, END_STREAM, 3, &get_block("/second")))
        .await
        .unwrap();
    time_until_closed(&mut s).await;
    assert_cut_at_the_header_timeout(started.elapsed());
    assert_eq!(backend.requests().len(), 1);
}

#[tokio::test]
async fn an_idle_h2_connection_is_closed_at_the_keepalive_timeout() {
    use tokio::io::AsyncWriteExt;
    let (backend, _proxy, tls_addr, pki) = slow_setup("h2-idle").await;
    let mut s = h2_connect(tls_addr, &pki.ca_pem).await;
    let first = frame(HEADERS, END_HEADERS | END_STREAM, 1, &get_block("/first"));
    s.write_all(&[H2_PREFACE, &frame(SETTINGS, 0, 0, &[]), &first].concat())
        .await
        .unwrap();
    read_headers_frame(&mut s, 1).await;
    assert_eq!(backend.requests().len(), 1);
    // Answered; then no request and nothing in flight.
    let after = time_until_closed(&mut s).await;
    assert!(
        after >= KEEPALIVE_TIMEOUT - Duration::from_millis(300)
            && after < KEEPALIVE_TIMEOUT + Duration::from_secs(3),
        "closed after {after:?}, the keep-alive timeout is {KEEPALIVE_TIMEOUT:?}"
    );
}

/// Once its head is in, a request on an h2 connection may take longer than the header timeout
/// (the deadline is for heads, not answers): it is served, and so is the next one.
#[tokio::test]
async fn an_h2_request_slower_than_the_header_timeout_is_served() {
    let (_backend, _proxy, tls_addr, pki) = slow_setup("h2-slow-answer").await;
    let c = https_client(&pki, tls_addr);
    let base = format!("https://localhost:{}", tls_addr.port());
    let r = c.get(format!("{base}/slow?ms=1500")).send().await.unwrap();
    assert_eq!(
        (r.version(), r.status().as_u16()),
        (reqwest::Version::HTTP_2, 200)
    );
    assert_eq!(r.text().await.unwrap(), "{\"waited_ms\":1500}");
    let r = c.get(format!("{base}/again")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}
