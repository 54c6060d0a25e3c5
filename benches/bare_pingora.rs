//! A bare pingora 0.9.1 passthrough proxy: no routing, no CORS, one upstream peer reused. Built
//! with the same profile as crossgate (`cargo bench --no-run`), it is the framework's own
//! ceiling that benches/compare.py measures crossgate against. For the preflight scenario it
//! answers a CORS preflight itself from `request_filter` with one fixed set of headers (built
//! the cheapest way pingora allows: `build_no_case`, static names, static values), so that the
//! comparison is of answering a preflight, not of proxying one.
//!
//! With `--timeouts` it also sets the timeouts crossgate sets by default (upstream connect 5 s,
//! read, write and idle 60 s; client keep-alive, body read and send 60 s), the pingora timers
//! every request of a production proxy pays for: comparing with it separates crossgate's own
//! work from the cost of those defences.
//!
//! Usage: bare_pingora --listen 127.0.0.1:8081 --upstream 127.0.0.1:8000 [--threads 1] [--timeouts]

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};
use pingora::server::configuration::ServerConf;

/// The same allocator as crossgate's binary, so that the comparison is of the proxies.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

struct Bare {
    peer: Box<HttpPeer>,
    timeouts: bool,
}

const MINUTE: std::time::Duration = std::time::Duration::from_secs(60);

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(self.peer.clone())
    }

    async fn request_filter(&self, session: &mut Session, _c: &mut ()) -> Result<bool> {
        use http::header::*;
        use http::HeaderValue as V;
        if self.timeouts {
            // What crossgate's request_filter sets (src/proxy.rs, client_limits).
            session.set_read_timeout(Some(MINUTE));
            session.set_write_timeout(Some(MINUTE));
            if session.get_keepalive().is_some() {
                session.set_keepalive(Some(MINUTE.as_secs()));
            }
        }
        let req = session.req_header();
        if req.method != http::Method::OPTIONS
            || !req.headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
        {
            return Ok(false);
        }
        // The same answer as crossgate's for benches/crossgate.yaml.in's policy.
        let mut h = ResponseHeader::build_no_case(204, Some(6))?;
        let fixed = [
            (
                ACCESS_CONTROL_ALLOW_ORIGIN,
                V::from_static("http://bench.example"),
            ),
            (ACCESS_CONTROL_ALLOW_CREDENTIALS, V::from_static("true")),
            (
                ACCESS_CONTROL_ALLOW_METHODS,
                V::from_static("GET, POST, PUT"),
            ),
            (
                ACCESS_CONTROL_ALLOW_HEADERS,
                V::from_static("content-type, x-requested-with"),
            ),
            (ACCESS_CONTROL_MAX_AGE, V::from_static("600")),
            (
                VARY,
                V::from_static(
                    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
                ),
            ),
        ];
        for (name, value) in fixed {
            h.insert_header(name, value)?;
        }
        session.write_response_header(Box::new(h), true).await?;
        Ok(true)
    }
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    // `cargo bench` runs every bench target with `--bench`: nothing to measure here.
    if std::env::args().any(|a| a == "--bench") && arg("--listen").is_none() {
        return;
    }
    let listen = arg("--listen").expect("--listen ADDR");
    let upstream: std::net::SocketAddr = arg("--upstream")
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
    let timeouts = std::env::args().any(|a| a == "--timeouts");
    let mut peer = Box::new(HttpPeer::new(upstream, false, String::new()));
    if timeouts {
        // crossgate's upstream defaults (src/rules.rs).
        peer.options.connection_timeout = Some(std::time::Duration::from_secs(5));
        peer.options.read_timeout = Some(MINUTE);
        peer.options.write_timeout = Some(MINUTE);
        peer.options.idle_timeout = Some(MINUTE);
    }
    let mut proxy =
        pingora::proxy::http_proxy_service(&server.configuration, Bare { peer, timeouts });
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.run_forever();
}
