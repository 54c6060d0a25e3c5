//! Upstream names that follow DNS, against a real DNS server on a loopback UDP port (a small
//! responder built on hickory-proto, whose records, TTL and failures each test sets) and real
//! backends on 127.0.0.x: round-robin over a name's addresses, a changed record followed after
//! its TTL with the removed server drained, the last good answer kept when the resolver fails,
//! and the TTL floor and ceiling.

mod common;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{client, header, Backend, Proxy};
use crossgate::config::{parse_yaml, Loaded};
use crossgate::rules::compile;
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};

/// What the DNS server answers for every name.
struct Zone {
    addrs: Vec<Ipv4Addr>,
    ttl: u32,
    servfail: bool,
    /// Queries are read and never answered (a resolver that is down).
    silent: bool,
    /// When each A query arrived.
    queries: Vec<Instant>,
}

#[derive(Clone)]
struct Dns {
    addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
}

impl Dns {
    async fn start(addrs: &[Ipv4Addr], ttl: u32) -> Dns {
        // A thread of its own: compiling the config blocks the test's runtime on its lookups.
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let zone = Arc::new(Mutex::new(Zone {
            addrs: addrs.to_vec(),
            ttl,
            servfail: false,
            silent: false,
            queries: Vec::new(),
        }));
        let z = zone.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = socket.recv_from(&mut buf) {
                let Ok(query) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let mut zone = z.lock().unwrap();
                let answer = answer(&query, &mut zone);
                if !zone.silent {
                    let _ = socket.send_to(&answer, from);
                }
            }
        });
        Dns { addr, zone }
    }

    fn set(&self, addrs: &[Ipv4Addr]) {
        self.zone.lock().unwrap().addrs = addrs.to_vec();
    }

    fn servfail(&self) {
        self.zone.lock().unwrap().servfail = true;
    }

    fn recover(&self) {
        self.zone.lock().unwrap().servfail = false;
    }

    fn go_silent(&self) {
        self.zone.lock().unwrap().silent = true;
    }

    fn queries(&self) -> Vec<Instant> {
        self.zone.lock().unwrap().queries.clone()
    }

    /// Waits until `n` A queries have arrived (10 s at most).
    async fn wait_for_queries(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.queries().len() < n {
            assert!(
                Instant::now() < deadline,
                "only {} DNS queries within 10 s, expected {n}",
                self.queries().len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn answer(query: &Message, zone: &mut Zone) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(query.op_code())
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(true)
        .set_authoritative(true)
        .add_queries(query.queries().to_vec());
    if zone.servfail {
        m.set_response_code(ResponseCode::ServFail);
    }
    for q in query.queries() {
        if q.query_type() != RecordType::A {
            continue;
        }
        zone.queries.push(Instant::now());
        if zone.servfail {
            continue;
        }
        for ip in &zone.addrs {
            m.add_answer(Record::from_rdata(
                q.name().clone(),
                zone.ttl,
                RData::A(A(*ip)),
            ));
        }
    }
    m.to_vec().unwrap()
}

/// Backends on `ips`, all on one port (a name's addresses share the port written after it).
async fn backends(names: &[&'static str], ips: &[Ipv4Addr]) -> Vec<Backend> {
    let first = Backend::start_at(names[0], SocketAddr::from((ips[0], 0))).await;
    let port = first.addr.port();
    let mut all = vec![first];
    for (name, ip) in names.iter().zip(ips).skip(1) {
        all.push(Backend::start_at(name, SocketAddr::from((*ip, port))).await);
    }
    all
}

fn config(dns: &Dns, min_ttl: &str, max_ttl: &str, port: u16) -> String {
    format!(
        "listen: LISTEN\nadmin: {{listen: ADMIN}}\ndns: {{resolver: \"{}\", min_ttl: {min_ttl}, max_ttl: {max_ttl}}}\nupstreams:\n  g: {{servers: [\"api.test:{port}\"]}}\nroutes:\n  - {{name: r, upstream: g}}\n",
        dns.addr
    )
}

async fn backends_hit(proxy: &Proxy, n: usize) -> HashMap<String, usize> {
    let mut hits = HashMap::new();
    for _ in 0..n {
        let r = client().get(proxy.url("/api/x")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        *hits
            .entry(header(&r, "x-backend").unwrap().to_owned())
            .or_default() += 1;
    }
    hits
}

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

/// The value of the series `name` with exactly `labels`, or 0.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_name_with_two_addresses_is_served_round_robin() {
    let ips = [ip(2), ip(3)];
    let bs = backends(&["a", "b"], &ips).await;
    let dns = Dns::start(&ips, 300).await;
    let proxy = Proxy::start(&config(&dns, "5s", "300s", bs[0].addr.port())).await;
    let hits = backends_hit(&proxy, 10).await;
    assert_eq!(hits.get("a"), Some(&5), "{hits:?}");
    assert_eq!(hits.get("b"), Some(&5), "{hits:?}");
}

#[tokio::test]
async fn a_changed_record_is_followed_after_its_ttl_and_the_removed_server_drains() {
    let ips = [ip(4), ip(5), ip(6)];
    let bs = backends(&["a", "b", "c"], &ips).await;
    let dns = Dns::start(&ips[..2], 1).await;
    let proxy = Proxy::start(&config(&dns, "200ms", "300s", bs[0].addr.port())).await;
    // A slow request on a, in flight while a leaves the rotation.
    let slow = {
        let url = proxy.url("/api/slow?ms=4000");
        tokio::spawn(async move { client().get(url).send().await.unwrap() })
    };
    bs[0].wait_for(1, |s| s.path.ends_with("/slow")).await;

    dns.set(&[ip(6)]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = client().get(proxy.url("/api/x")).send().await.unwrap();
        if header(&r, "x-backend") == Some("c") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new record was not followed within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !slow.is_finished(),
        "the slow request is still in flight on a"
    );
    let hits = backends_hit(&proxy, 6).await;
    assert_eq!(
        hits.get("c"),
        Some(&6),
        "only the new address serves: {hits:?}"
    );
    let r = slow.await.unwrap();
    assert_eq!(r.status(), 200, "the request in flight on a finishes");
    assert_eq!(header(&r, "x-backend"), Some("a"));
}

#[tokio::test]
async fn a_server_that_stays_in_the_answer_keeps_its_health_and_a_new_one_starts_healthy() {
    let ips = [ip(12), ip(13), ip(14)];
    let bs = backends(&["a", "b", "c"], &ips).await;
    bs[1].set_health(503);
    let dns = Dns::start(&ips[..2], 1).await;
    // One round of probes, at start: b is found down and never probed again, so only the
    // health it was given then can keep it out after the answer changes.
    let yaml = config(&dns, "200ms", "300s", bs[0].addr.port()).replace(
        "servers: [\"api.test",
        "health_check: {path: /health, interval: 1h, unhealthy_threshold: 1}, servers: [\"api.test",
    );
    let proxy = Proxy::start(&yaml).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while backends_hit(&proxy, 2).await.get("a") != Some(&2) {
        assert!(
            Instant::now() < deadline,
            "b was never taken out of rotation"
        );
    }

    dns.set(&ips);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = client().get(proxy.url("/api/x")).send().await.unwrap();
        if header(&r, "x-backend") == Some("c") {
            break;
        }
        assert!(Instant::now() < deadline, "c never joined the rotation");
    }
    let hits = backends_hit(&proxy, 8).await;
    assert_eq!(hits.get("b"), None, "b is still out: {hits:?}");
    // A skipped server's turn goes to the next healthy one: c gets b's share.
    assert!(
        hits.get("a") >= Some(&2) && hits.get("c") >= Some(&2),
        "{hits:?}"
    );
}

/// Two addresses resolved, then the resolver fails with `fail`: the failures are counted and
/// both servers go on serving.
async fn last_good_answer_is_kept(ips: [Ipv4Addr; 2], fail: impl FnOnce(&Dns)) {
    let bs = backends(&["a", "b"], &ips).await;
    let dns = Dns::start(&ips, 0).await;
    let proxy = Proxy::start(&config(&dns, "100ms", "300s", bs[0].addr.port())).await;
    let ok = "crossgate_dns_resolutions_total{result=\"ok\",upstream=\"g\"}";
    let error = "crossgate_dns_resolutions_total{result=\"error\",upstream=\"g\"}";
    dns.wait_for_queries(2).await;
    fail(&dns);
    // A silent resolver costs a lookup its time limit (5 s) before it counts.
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric(&proxy.metrics().await, error) < 1.0 {
        assert!(
            Instant::now() < deadline,
            "no failed resolution counted within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let text = proxy.metrics().await;
    assert!(metric(&text, ok) >= 1.0, "{text}");
    let hits = backends_hit(&proxy, 10).await;
    assert_eq!(hits.get("a"), Some(&5), "{hits:?}");
    assert_eq!(hits.get("b"), Some(&5), "{hits:?}");
}

#[tokio::test]
async fn when_the_resolver_answers_servfail_the_last_good_addresses_keep_serving_and_the_failure_is_counted(
) {
    last_good_answer_is_kept([ip(7), ip(8)], Dns::servfail).await;
}

#[tokio::test]
async fn when_the_resolver_stops_answering_the_last_good_addresses_keep_serving_and_the_failure_is_counted(
) {
    last_good_answer_is_kept([ip(15), ip(16)], Dns::go_silent).await;
}

/// The gaps between consecutive A queries.
fn gaps(queries: &[Instant]) -> Vec<Duration> {
    queries.windows(2).map(|w| w[1] - w[0]).collect()
}

#[tokio::test]
async fn a_ttl_of_0_is_raised_to_min_ttl() {
    let bs = backends(&["a"], &[ip(9)]).await;
    let dns = Dns::start(&[ip(9)], 0).await;
    let _proxy = Proxy::start(&config(&dns, "300ms", "300s", bs[0].addr.port())).await;
    // The load's query and three re-resolutions.
    dns.wait_for_queries(4).await;
    let gaps = gaps(&dns.queries());
    assert!(
        gaps.iter().all(|g| *g >= Duration::from_millis(300)),
        "re-resolved sooner than min_ttl: {gaps:?}"
    );
}

#[tokio::test]
async fn a_long_ttl_is_lowered_to_max_ttl() {
    let bs = backends(&["a"], &[ip(10)]).await;
    let dns = Dns::start(&[ip(10)], 3600).await;
    let _proxy = Proxy::start(&config(&dns, "100ms", "500ms", bs[0].addr.port())).await;
    // Three queries within 10 s: the TTL of an hour was cut to max_ttl.
    dns.wait_for_queries(3).await;
    let gaps = gaps(&dns.queries());
    assert!(
        gaps.iter().all(|g| *g >= Duration::from_millis(500)),
        "re-resolved sooner than the clamped TTL: {gaps:?}"
    );
}

fn compile_err(yaml: &str) -> String {
    let path = Path::new("test.yaml");
    let config = parse_yaml(path, yaml).unwrap_or_else(|e| panic!("{e}"));
    match compile(&Loaded {
        path: path.into(),
        source: yaml.to_owned(),
        config,
    }) {
        Ok(_) => panic!("compiled"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn a_name_the_configured_resolver_cannot_resolve_is_a_config_error() {
    let dns = Dns::start(&[ip(11)], 60).await;
    dns.servfail();
    let yaml = config(&dns, "5s", "300s", 8080).replace("ADMIN", "127.0.0.1:9");
    let e = compile_err(&yaml.replace("LISTEN", "127.0.0.1:0"));
    assert!(e.contains("upstreams.g.servers[0]"), "{e}");
    assert!(e.contains("cannot use server \"api.test:8080\""), "{e}");
}

#[test]
fn a_ttl_floor_above_the_ceiling_is_a_config_error_that_names_both() {
    let yaml = "listen: 127.0.0.1:0\ndns: {min_ttl: 10m, max_ttl: 30s}\nupstreams:\n  g: {servers: [\"127.0.0.1:1\"]}\nroutes:\n  - {name: r, upstream: g}\n";
    let e = compile_err(yaml);
    assert!(e.contains("dns.max_ttl"), "{e}");
    assert!(e.contains("below min_ttl"), "{e}");
    assert!(e.contains("make max_ttl at least min_ttl"), "{e}");
}

#[test]
fn a_resolver_that_is_not_an_ip_address_is_a_config_error() {
    let yaml = "listen: 127.0.0.1:0\ndns: {resolver: dns.internal}\nupstreams:\n  g: {servers: [\"127.0.0.1:1\"]}\nroutes:\n  - {name: r, upstream: g}\n";
    let e = compile_err(yaml);
    assert!(e.contains("dns.resolver"), "{e}");
    assert!(e.contains("\"dns.internal\""), "{e}");
}

/// `run` (not `check`) starts with a name that does not resolve yet, as a pod does while its
/// Service is being created: the upstream answers 502 with CORS headers, the name is tried
/// again every min_ttl, and once it resolves the upstream serves.
#[tokio::test]
async fn run_starts_with_a_name_that_does_not_resolve_yet_and_serves_it_once_it_does() {
    use std::process::{Command, Stdio};
    let ips = [ip(12)];
    let bs = backends(&["a"], &ips).await;
    let dns = Dns::start(&ips, 1).await;
    dns.servfail();
    let (proxy, admin) = (common::free_addr(), common::free_addr());
    let yaml = format!(
        "listen: \"{proxy}\"\nadmin: {{listen: \"{admin}\"}}\ndns: {{resolver: \"{}\", min_ttl: 200ms, max_ttl: 300s}}\nupstreams:\n  g: {{servers: [\"api.test:{}\"]}}\nroutes:\n  - {{name: r, upstream: g, cors: {{allow_origins: [https://app.example.com]}}}}\n",
        dns.addr,
        bs[0].addr.port()
    );
    let dir = std::env::temp_dir().join(format!("crossgate-dns-{}-later", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.yaml");
    std::fs::write(&path, yaml).unwrap();
    // `check` looks the name up and refuses it.
    let check = Command::new(env!("CARGO_BIN_EXE_crossgate"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!check.status.success(), "check passed an unresolvable name");
    let mut child = common::Running(
        Command::new(env!("CARGO_BIN_EXE_crossgate"))
            .args(["run", "--no-watch", "--config"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = child.0.stderr.take().unwrap();
    let (tx, warned) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let lines = std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok);
        for l in lines.filter(|l| l.contains("does not resolve now")) {
            let _ = tx.send(l);
        }
    });
    common::wait_until_listening(proxy).await;
    let warning = warned
        .recv_timeout(Duration::from_secs(10))
        .expect("no warning about the name");
    assert!(warning.contains("upstreams.g.servers[0]"), "{warning}");

    let r = client()
        .get(format!("http://{proxy}/api/x"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let upstreams = client()
        .get(format!("http://{admin}/upstreams"))
        .send()
        .await
        .unwrap();
    assert_eq!(upstreams.status(), 503);
    assert_eq!(
        client()
            .get(format!("http://{admin}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "a name that does not resolve yet takes the replica out"
    );

    dns.recover();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = client()
            .get(format!("http://{proxy}/api/x"))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            assert_eq!(header(&r, "x-backend"), Some("a"));
            break;
        }
        assert_eq!(r.status(), 502);
        assert!(Instant::now() < deadline, "the name was never followed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
