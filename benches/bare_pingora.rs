//! A bare pingora 0.9.1 passthrough proxy: no routing, no CORS, one upstream peer reused. Built
//! with the same profile as crossgate (`cargo bench --no-run`), it is the framework's own
//! ceiling that benches/compare.py measures crossgate against.
//!
//! Usage: bare_pingora --listen 127.0.0.1:8081 --upstream 127.0.0.1:8000 [--threads 1]

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};
use pingora::server::configuration::ServerConf;

/// The same allocator as crossgate's binary, so that the comparison is of the proxies.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

struct Bare(Box<HttpPeer>);

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(self.0.clone())
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
    let mut proxy = pingora::proxy::http_proxy_service(
        &server.configuration,
        Bare(Box::new(HttpPeer::new(upstream, false, String::new()))),
    );
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.run_forever();
}
