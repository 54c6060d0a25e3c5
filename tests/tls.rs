//! TLS both ways, with certificates generated here: HTTPS listeners offering HTTP/2 by ALPN
//! (every channel over h2, JSONP included), HTTPS upstreams verified against a CA file, and a
//! certificate swapped by a reload.

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

fn front_config(backend: &Backend, tls_addr: SocketAddr, pki: &Pki) -> String {
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
        b = backend.addr
    )
}

#[tokio::test]
async fn https_listener_speaks_http2_for_every_channel() {
    let d = tmp("h2");
    let pki = pki(&d, "front");
    let backend = Backend::start("b").await;
    let tls_addr = free_addr();
    let _proxy = Proxy::start(&front_config(&backend, tls_addr, &pki)).await;
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
    let _front = Proxy::start(&front_config(&backend, tls_addr, &front_pki)).await;
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
