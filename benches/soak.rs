//! Soak: mixed traffic through a real crossgate for a long time, with reloads, then a report
//! of requests, errors, and the proxy's RSS and open descriptors at the start and the end.
//! Run by benches/soak.sh (which builds the release binary):
//!
//!   soak CROSSGATE_BINARY SECONDS REPORT_FILE
//!
//! It starts the demo backend (`crossgate backend`) and the proxy on config.example.yaml (with
//! free ports), then runs at once: CORS GETs (kept-alive and on new connections), preflights,
//! JSONP, SSE streams (two events each), WebSocket churn (connect, three echoes, close), and a
//! config rewrite with SIGHUP every 3 s. Every answer is checked, not only its status. The
//! verdict: no errors, RSS within 10% (or 8 MiB) of where it was after the warm-up, and open
//! descriptors within 16 of it. Exit 1 otherwise.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const ORIGIN: &str = "http://localhost:3000";
const WARM_UP: Duration = Duration::from_secs(15);

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[derive(Default)]
struct Tally {
    counts: Mutex<std::collections::BTreeMap<&'static str, u64>>,
    errors: AtomicU64,
    first_errors: Mutex<Vec<String>>,
}

impl Tally {
    fn ok(&self, kind: &'static str) {
        *self.counts.lock().unwrap().entry(kind).or_default() += 1;
    }

    fn error(&self, kind: &'static str, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_errors.lock().unwrap();
        if first.len() < 20 {
            first.push(format!("{kind}: {what}"));
        }
    }

    fn record(&self, kind: &'static str, r: Result<(), String>) {
        match r {
            Ok(()) => self.ok(kind),
            Err(e) => self.error(kind, e),
        }
    }
}

/// Every `every`-th request (1: each) gets a new client, so a new connection.
fn due(n: u64, every: u64) -> bool {
    n % every == 0
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn config(example: &str, addrs: [SocketAddr; 3], sock: &Path, max_age: u32) -> String {
    let [proxy, backend, admin] = addrs;
    example
        .replace("/tmp/crossgate-upgrade.sock", &sock.display().to_string())
        .replace("127.0.0.1:8080", &proxy.to_string())
        .replace("127.0.0.1:9001", &backend.to_string())
        .replace("127.0.0.1:9090", &admin.to_string())
        .replace("max_age: 600", &format!("max_age: {max_age}"))
        .replace("access_log: true", "access_log: false")
}

async fn wait_listening(addr: SocketAddr) {
    for _ in 0..500 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("nothing listens on {addr}");
}

async fn cors_get(c: &reqwest::Client, base: &str) -> Result<(), String> {
    let r = c
        .get(format!("{base}/api/users"))
        .header("origin", ORIGIN)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let acao = r.headers().get("access-control-allow-origin").cloned();
    if r.status() != 200 || acao.as_ref().map(|v| v.as_bytes()) != Some(ORIGIN.as_bytes()) {
        return Err(format!("status {} allow-origin {acao:?}", r.status()));
    }
    let body = r.bytes().await.map_err(|e| e.to_string())?;
    if !body.starts_with(b"[") {
        return Err("not the JSON list".into());
    }
    Ok(())
}

async fn preflight(c: &reqwest::Client, base: &str) -> Result<(), String> {
    let r = c
        .request(reqwest::Method::OPTIONS, format!("{base}/api/users/1"))
        .header("origin", ORIGIN)
        .header("access-control-request-method", "PUT")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let methods = r.headers().get("access-control-allow-methods").cloned();
    if r.status() != 204 || methods.is_none() {
        return Err(format!("status {} allow-methods {methods:?}", r.status()));
    }
    Ok(())
}

async fn jsonp(c: &reqwest::Client, base: &str) -> Result<(), String> {
    let r = c
        .get(format!("{base}/public/users?callback=soak.cb&_=1"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status();
    let body = r.bytes().await.map_err(|e| e.to_string())?;
    if status != 200 || !body.starts_with(b"/**/soak.cb([") || !body.ends_with(b");") {
        return Err(format!(
            "status {status}, body {:?}",
            String::from_utf8_lossy(&body[..body.len().min(60)])
        ));
    }
    Ok(())
}

async fn sse(c: &reqwest::Client, base: &str) -> Result<(), String> {
    let r = c
        .get(format!("{base}/events/clock"))
        .header("origin", ORIGIN)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if r.status() != 200 {
        return Err(format!("status {}", r.status()));
    }
    let mut stream = r.bytes_stream();
    let mut seen = Vec::new();
    while seen.windows(2).filter(|w| w == b"\n\n").count() < 2 {
        match tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
            Ok(Some(Ok(chunk))) => seen.extend_from_slice(&chunk),
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(None) => return Err("the stream ended".into()),
            Err(_) => return Err("no event within 5 s".into()),
        }
    }
    if !seen.starts_with(b"id: 0\nevent: tick") {
        return Err(format!("{:?}", String::from_utf8_lossy(&seen)));
    }
    Ok(())
}

async fn websocket(url: &str) -> Result<(), String> {
    let mut req = url.into_client_request().map_err(|e| e.to_string())?;
    req.headers_mut().insert("origin", ORIGIN.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .map_err(|e| e.to_string())?;
    for i in 0..3 {
        let text = format!("soak {i}");
        ws.send(Message::text(text.clone()))
            .await
            .map_err(|e| e.to_string())?;
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.as_str().contains(&text) => {}
            other => return Err(format!("echo {i}: {other:?}")),
        }
    }
    ws.close(None).await.map_err(|e| e.to_string())?;
    Ok(())
}

async fn reloads_total(admin: SocketAddr, result: &str) -> u64 {
    let text = reqwest::get(format!("http://{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = format!("crossgate_config_reloads_total{{result=\"{result}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&line))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let (Some(binary), Some(seconds), Some(report)) = (args.first(), args.get(1), args.get(2))
    else {
        // `cargo bench` runs every bench target: nothing to do without arguments.
        return;
    };
    let duration = Duration::from_secs(seconds.parse().expect("SECONDS"));
    assert!(
        duration > WARM_UP,
        "run longer than the {WARM_UP:?} warm-up"
    );
    let binary = PathBuf::from(binary);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = std::fs::read_to_string(root.join("config.example.yaml")).unwrap();
    let (proxy, backend, admin) = (free_addr(), free_addr(), free_addr());
    let dir = std::env::temp_dir().join(format!("crossgate-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The upgrade socket's directory must be private, or crossgate refuses the config.
    let private = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o700);
    std::fs::set_permissions(&dir, private).unwrap();
    let path = dir.join("config.yaml");
    let sock = dir.join("upgrade.sock");
    let addrs = [proxy, backend, admin];
    std::fs::write(&path, config(&example, addrs, &sock, 600)).unwrap();

    let _backend = Killed(
        Command::new(&binary)
            .args(["backend", "--listen", &backend.to_string()])
            .stdout(Stdio::null())
            .spawn()
            .expect("the crossgate binary"),
    );

    let proxy_child = Killed(
        Command::new(&binary)
            .args(["run", "--no-watch", "--config"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = proxy_child.0.id();
    wait_listening(backend).await;
    wait_listening(proxy).await;

    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let deadline = started + duration;
    let base = format!("http://{proxy}");
    let mut tasks = Vec::new();
    macro_rules! worker {
        ($kind:literal, $new_conn_every:expr, |$c:ident, $b:ident| $call:expr) => {{
            let (tally, $b) = (tally.clone(), base.clone());
            tasks.push(tokio::spawn(async move {
                let mut $c = reqwest::Client::new();
                let mut n = 0u64;
                while Instant::now() < deadline {
                    n += 1;
                    if due(n, $new_conn_every) {
                        $c = reqwest::Client::new();
                    }
                    tally.record($kind, $call.await);
                }
            }));
        }};
    }
    for _ in 0..3 {
        worker!("cors_get", u64::MAX, |c, b| cors_get(&c, &b));
    }
    worker!("cors_get_new_conn", 1, |c, b| cors_get(&c, &b));
    for _ in 0..2 {
        worker!("preflight", 50, |c, b| preflight(&c, &b));
        worker!("jsonp", 50, |c, b| jsonp(&c, &b));
    }
    for _ in 0..4 {
        worker!("sse_stream", 1, |c, b| sse(&c, &b));
    }
    for _ in 0..2 {
        let (tally, url) = (tally.clone(), format!("ws://{proxy}/ws/echo"));
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                tally.record("websocket_session", websocket(&url).await);
            }
        }));
    }
    // Reloads: the file changes (max_age alternates) and SIGHUP says so.
    {
        let (tally, example, path, sock) =
            (tally.clone(), example.clone(), path.clone(), sock.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0u32;
            while Instant::now() + Duration::from_secs(3) < deadline {
                tokio::time::sleep(Duration::from_secs(3)).await;
                i += 1;
                let yaml = config(&example, addrs, &sock, 600 + i % 2);
                let tmp = path.with_extension("tmp");
                std::fs::write(&tmp, yaml).unwrap();
                std::fs::rename(&tmp, &path).unwrap();
                let sent = Command::new("kill")
                    .args(["-HUP", &pid.to_string()])
                    .status();
                tally.record(
                    "reload_sent",
                    match sent {
                        Ok(s) if s.success() => Ok(()),
                        other => Err(format!("kill -HUP: {other:?}")),
                    },
                );
            }
        }));
    }

    // Samples of the proxy's memory and descriptors.
    let mut samples = Vec::new();
    tokio::time::sleep(WARM_UP).await;
    let (rss_start, fds_start) = (rss_kib(pid), open_fds(pid));
    samples.push((started.elapsed(), rss_start, fds_start));
    while Instant::now() < deadline {
        tokio::time::sleep(
            Duration::from_secs(30).min(deadline.saturating_duration_since(Instant::now())),
        )
        .await;
        samples.push((started.elapsed(), rss_kib(pid), open_fds(pid)));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Connections of the last requests are closed now: the end figures.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss_end, fds_end) = (rss_kib(pid), open_fds(pid));
    samples.push((started.elapsed(), rss_end, fds_end));
    let reloads_ok = reloads_total(admin, "success").await;
    let reloads_failed = reloads_total(admin, "failure").await;

    let errors = tally.errors.load(Ordering::Relaxed);
    let rss_flat = rss_end <= rss_start + (rss_start / 10).max(8 * 1024);
    let fds_flat = fds_end <= fds_start + 16;
    let pass = errors == 0 && rss_flat && fds_flat && reloads_failed == 0 && reloads_ok > 0;

    let mut out = String::new();
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let _ = writeln!(out, "# Soak report\n");
    let _ = writeln!(out, "- date: {date}\n- commit: {commit}\n- machine: {} cores, {cpu}\n- duration: {}s (warm-up {}s), 1 proxy thread, config.example.yaml\n- command: `benches/soak.sh {}`\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()), duration.as_secs(), WARM_UP.as_secs(), duration.as_secs());
    let _ = writeln!(out, "**Verdict: {}** (errors {errors}; RSS {} -> {} KiB, {}; descriptors {fds_start} -> {fds_end}, {}; reloads {reloads_ok} applied, {reloads_failed} failed)\n",
        if pass { "pass" } else { "FAIL" },
        rss_start, rss_end, if rss_flat { "flat" } else { "GREW" }, if fds_flat { "flat" } else { "GREW" });
    let _ = writeln!(out, "| traffic | completed |\n|---|---|");
    for (k, v) in tally.counts.lock().unwrap().iter() {
        let _ = writeln!(out, "| {k} | {v} |");
    }
    let _ = writeln!(out, "| errors | {errors} |\n");
    let _ = writeln!(
        out,
        "| time (s) | RSS (KiB) | open descriptors |\n|---|---|---|"
    );
    for (t, rss, fds) in &samples {
        let _ = writeln!(out, "| {} | {rss} | {fds} |", t.as_secs());
    }
    let first = tally.first_errors.lock().unwrap();
    if !first.is_empty() {
        let _ = writeln!(out, "\nFirst errors:\n");
        for e in first.iter() {
            let _ = writeln!(out, "- {e}");
        }
    }
    print!("{out}");
    std::fs::write(report, &out).unwrap();
    std::process::exit(if pass { 0 } else { 1 });
}
