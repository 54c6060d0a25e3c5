//! The real binary as a subprocess: `check` on good and bad configs, `demo` answering, and
//! SIGTERM draining an in-flight request.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{
    client, free_addr, header, read_raw_until, stdout_lines, wait_until_listening, Backend, Running,
};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_crossgate"))
}

fn write_config(name: &str, yaml: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("crossgate-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.yaml");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    path
}

fn check(path: &std::path::Path) -> Output {
    bin()
        .args(["check", "--config"])
        .arg(path)
        .output()
        .unwrap()
}

#[test]
fn check_accepts_the_example_config_and_prints_what_it_compiled() {
    let out = check(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config.example.yaml"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("routes (first match wins):"), "{stdout}");
    assert!(
        stdout.contains("1. api: any host, path prefix /api/ -> legacy; cors policy app"),
        "{stdout}"
    );
    assert!(
        stdout.contains("app: origins: http://localhost:3000"),
        "{stdout}"
    );
}

#[test]
fn check_refuses_a_typod_key_with_file_line_path_and_fix() {
    let path = write_config(
        "typo",
        "listen: 127.0.0.1:8080\nupstreams:\n  a: {servers: [127.0.0.1:9]}\nroutes:\n  - name: r\n    upstream: a\n    cors:\n      allow_orgins: [https://a.test]\n",
    );
    let out = check(&path);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:8:7: at routes[0].cors.allow_orgins",
            path.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean `allow_origins`?"), "{stderr}");
    assert!(
        stderr.contains("fix: rename `allow_orgins` to `allow_origins`"),
        "{stderr}"
    );
}

#[test]
fn check_refuses_credentials_with_any_origin_and_says_what_to_use() {
    let path = write_config(
        "creds",
        "listen: 127.0.0.1:8080\nupstreams:\n  a: {servers: [127.0.0.1:9]}\nroutes:\n  - name: r\n    upstream: a\n    cors:\n      allow_origins: any\n      allow_credentials: true\n",
    );
    let out = check(&path);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:9:26: at routes[0].cors.allow_credentials",
            path.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("fix: list the origins that may send credentials"),
        "{stderr}"
    );
}

#[test]
fn check_warns_about_max_age_above_browser_caps_but_passes() {
    let path = write_config(
        "maxage",
        "listen: 127.0.0.1:8080\nupstreams:\n  a: {servers: [127.0.0.1:9]}\nroutes:\n  - name: r\n    upstream: a\n    cors: {allow_origins: any, max_age: 10000}\n",
    );
    let out = check(&path);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning:") && stderr.contains("Chromium's cap of 7200 s"),
        "{stderr}"
    );
}

#[test]
fn check_reports_a_missing_file() {
    let out = check(&PathBuf::from("/nonexistent/crossgate.yaml"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the config file"));
}

/// A config naming `dir/upgrade.sock`, on line 3 column 17.
fn upgrade_sock_config(name: &str, dir: &std::path::Path) -> PathBuf {
    write_config(
        name,
        &format!(
            "listen: 127.0.0.1:0\nserver:\n  upgrade_sock: {}/upgrade.sock\nupstreams:\n  a: {{servers: [127.0.0.1:9]}}\nroutes:\n  - {{name: r, upstream: a}}\n",
            dir.display()
        ),
    )
}

#[test]
fn an_upgrade_sock_in_a_directory_others_can_write_is_refused_by_check_and_run() {
    use std::os::unix::fs::PermissionsExt;
    let shared = std::env::temp_dir().join(format!("crossgate-cli-{}-shared", std::process::id()));
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let path = upgrade_sock_config("opensock", &shared);
    let out = check(&path);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for expected in [
        format!("{}:3:17: at server.upgrade_sock", path.display()),
        format!(
            "the directory {} of server.upgrade_sock is open to other users (mode 0777)",
            shared.display()
        ),
        "can bind the socket first and receive the listening sockets on SIGQUIT".into(),
        format!(
            "fix: chmod 700 {} if only crossgate uses it",
            shared.display()
        ),
    ] {
        assert!(stderr.contains(&expected), "{expected:?} in {stderr}");
    }
    // `run --upgrade` refuses it before pingora binds anything there.
    let out = bin()
        .args(["run", "--upgrade", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is open to other users (mode 0777)"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!shared.join("upgrade.sock").exists());

    // The old default's directory, the sticky /tmp: the fix is another path, not chmod.
    let out = check(&upgrade_sock_config(
        "tmpsock",
        std::path::Path::new("/tmp"),
    ));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the directory /tmp of server.upgrade_sock is open to other users"),
        "{stderr}"
    );
    assert!(
        stderr.contains("fix: set server.upgrade_sock to a path in a directory that only crossgate's user can enter"),
        "{stderr}"
    );
}

#[test]
fn an_upgrade_sock_in_a_directory_of_another_user_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        nix::unistd::geteuid().as_raw(),
        0,
        "giving a directory to another uid needs root (chown): run the suite as root (CI \
         does), or leave this test out by name: cargo test -- --skip {}",
        "an_upgrade_sock_in_a_directory_of_another_user_is_refused"
    );
    let theirs = std::env::temp_dir().join(format!("crossgate-cli-{}-theirs", std::process::id()));
    std::fs::create_dir_all(&theirs).unwrap();
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&theirs, Some(65534), None).unwrap();
    let out = check(&upgrade_sock_config("theirsock", &theirs));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "the directory {} of server.upgrade_sock is owned by uid 65534, neither crossgate's user (uid 0) nor root",
            theirs.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("fix: chown 0 {}", theirs.display())),
        "{stderr}"
    );
}

#[tokio::test]
async fn demo_serves_the_example_api_through_the_proxy() {
    let (proxy, backend) = (free_addr(), free_addr());
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.yaml"))
            .unwrap();
    let yaml = example
        .replace("127.0.0.1:8080", &proxy.to_string())
        .replace("127.0.0.1:9001", &backend.to_string())
        .replace("127.0.0.1:9090", &free_addr().to_string());
    let path = write_config("demo", &yaml);
    let _child = Running(
        bin()
            .args(["demo", "--config"])
            .arg(&path)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until_listening(proxy).await;
    let r = client()
        .get(format!("http://{proxy}/api/users"))
        .header("origin", "http://localhost:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("http://localhost:3000")
    );
    assert!(header(&r, "x-request-id").is_some());
    let users: serde_json::Value = r.json().await.unwrap();
    assert_eq!(users[0]["name"], "Ada Lovelace");
    let r = client()
        .get(format!("http://{proxy}/api/error"))
        .header("origin", "http://localhost:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("http://localhost:3000")
    );
    // Every channel has an example in the demo.
    let r = client()
        .get(format!("http://{proxy}/public/users?callback=show"))
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().starts_with("/**/show([{"));
    let r = client()
        .get(format!("http://{proxy}/beacon/pv?event=view"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().len(), 43);
    let r = client()
        .get(format!("http://{proxy}/events/clock"))
        .header("accept", "text/event-stream")
        .header("origin", "http://localhost:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "content-type"), Some("text/event-stream"));
    let mut events = r.bytes_stream();
    use futures_util::StreamExt;
    let first = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(std::str::from_utf8(&first).unwrap().contains("event: tick"));
    let r = client()
        .get(format!("http://{proxy}/_crossgate/bridge"))
        .send()
        .await
        .unwrap();
    assert!(header(&r, "content-security-policy")
        .unwrap()
        .contains("frame-ancestors http://localhost:3000"));
    let r = client()
        .get(format!("http://{proxy}/poll/wait?ms=10"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn sigterm_lets_the_in_flight_request_finish_then_exits() {
    let backend = Backend::start("b").await;
    let proxy = free_addr();
    let path = write_config(
        "drain",
        &format!(
            "listen: \"{proxy}\"\nserver: {{grace_period: 20s}}\nupstreams:\n  b: {{servers: [\"{}\"]}}\nroutes:\n  - {{name: r, upstream: b}}\n",
            backend.addr
        ),
    );
    let mut child = Running(
        bin()
            .args(["run", "--config"])
            .arg(&path)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until_listening(proxy).await;

    let slow = tokio::spawn(client().get(format!("http://{proxy}/slow?ms=1500")).send());
    backend.wait_for(1, |s| s.path == "/slow").await;
    let pid = child.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());

    let r = slow
        .await
        .unwrap()
        .expect("the in-flight request was cut by SIGTERM");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "{\"waited_ms\":1500}");

    // The process exits on its own once drained, well within the 20 s grace period.
    let status = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(s) = child.0.try_wait().unwrap() {
                return Some(s);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .unwrap();
    let status = status.expect("crossgate did not exit after draining");
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn json_access_log_has_one_line_per_request_with_every_field() {
    let backend = Backend::start("b").await;
    let proxy = free_addr();
    let path = write_config(
        "jsonlog",
        &format!(
            "listen: \"{proxy}\"\nupstreams:\n  b: {{servers: [\"{}\"]}}\nroutes:\n  - {{name: api, upstream: b, cors: {{allow_origins: [https://app.example.com]}}}}\n",
            backend.addr
        ),
    );
    let mut child = Running(
        bin()
            .args(["--log-format", "json", "--config"]) // `run` is the default subcommand
            .arg(&path)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let rx = stdout_lines(&mut child.0);
    wait_until_listening(proxy).await;
    let r = client()
        .post(format!("http://{proxy}/items?q=1"))
        .header("origin", "https://app.example.com")
        .header("user-agent", "probe/1.0 \"quoted\"")
        .header("referer", "https://app.example.com/page")
        .body("hello world")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.bytes().await.unwrap();

    let (line, before) = next_log_line(&rx, "crossgate::access");
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["target"], "crossgate::access");
    assert_eq!(v["level"], "INFO");
    assert_eq!(v["method"], "POST");
    assert_eq!(v["path"], "/items");
    assert_eq!(v["status"], 200);
    assert_eq!(v["origin"], "https://app.example.com");
    assert_eq!(v["route"], "api");
    assert_eq!(v["cors"], "allowed");
    assert_eq!(v["host"], proxy.ip().to_string(), "{line}");
    assert_eq!(v["version"], "HTTP/1.1", "{line}");
    assert_eq!(v["tls"], "-", "{line}");
    assert_eq!(v["upstream"], backend.addr.to_string(), "{line}");
    assert_eq!(v["retries"], 0, "{line}");
    assert_eq!(v["bytes_in"], 11, "{line}");
    assert_eq!(v["bytes_out"], body.len(), "{line}");
    assert_eq!(v["user_agent"], "probe/1.0 \"quoted\"", "{line}");
    assert_eq!(v["referer"], "https://app.example.com/page", "{line}");
    let client_addr: std::net::SocketAddr = v["client"].as_str().unwrap().parse().unwrap();
    assert!(
        client_addr.ip().is_loopback() && client_addr.port() != 0,
        "{line}"
    );
    assert!(v["upstream_ms"].as_f64().is_some(), "{line}");
    // Durations to the microsecond, not 0.6574979999999999.
    for field in ["upstream_ms", "duration_ms"] {
        let text = v[field].to_string();
        let decimals = text.split_once('.').map_or(0, |(_, d)| d.len());
        assert!(decimals <= 3, "{field} = {text}");
    }
    // The request id went upstream with the request.
    let id = v["request_id"].as_str().unwrap();
    assert_eq!(id.len(), 32, "{line}");
    let seen = backend.requests();
    assert_eq!(seen[0].headers["x-request-id"], id);
    // pingora's own lines (startup) share the schema, without the log bridge's build paths.
    assert!(
        before.iter().any(|l| l.contains("pingora_core")),
        "{before:?}"
    );
    for l in &before {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert!(v["target"].is_string() && v["level"].is_string(), "{l}");
        assert!(!l.contains("log.file") && !l.contains("/.cargo/"), "{l}");
    }

    // A request id sent by the client (or a load balancer in front) is kept and forwarded.
    client()
        .get(format!("http://{proxy}/items"))
        .header("x-request-id", "7f3c2a1e-9b4d-4c7a-8e2f-1a2b3c4d5e6f")
        .send()
        .await
        .unwrap();
    let (line, _) = next_log_line(&rx, "crossgate::access");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["request_id"], "7f3c2a1e-9b4d-4c7a-8e2f-1a2b3c4d5e6f");
    backend.wait_for(2, |_| true).await;
    assert_eq!(
        backend.requests()[1].headers["x-request-id"],
        "7f3c2a1e-9b4d-4c7a-8e2f-1a2b3c4d5e6f"
    );
}

/// The next log line of `target` on the captured stdout, and the lines before it; fails after
/// 10 s.
fn next_log_line(rx: &std::sync::mpsc::Receiver<String>, target: &str) -> (String, Vec<String>) {
    let mut before = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("no {target} line within 10 s; before it: {before:?}"));
        if line.contains(target) {
            return (line, before);
        }
        before.push(line);
    }
}

/// Starts `crossgate run` on `yaml` with stdout captured line by line.
fn run_capturing(
    name: &str,
    yaml: &str,
    extra: &[&str],
) -> (Running, std::sync::mpsc::Receiver<String>) {
    let path = write_config(name, yaml);
    let mut child = Running(
        bin()
            .args(extra)
            .arg("--config")
            .arg(&path)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let rx = stdout_lines(&mut child.0);
    (child, rx)
}

#[tokio::test]
async fn text_access_log_is_the_default() {
    let backend = Backend::start("b").await;
    let proxy = free_addr();
    let yaml = format!(
        "listen: \"{proxy}\"\nupstreams:\n  b: {{servers: [\"{}\"]}}\nroutes:\n  - {{name: api, upstream: b}}\n",
        backend.addr
    );
    let (_child, rx) = run_capturing("textlog", &yaml, &["run"]);
    wait_until_listening(proxy).await;
    client()
        .get(format!("http://{proxy}/items"))
        .send()
        .await
        .unwrap();
    let (line, _) = next_log_line(&rx, "crossgate::access");
    assert!(!line.starts_with('{'), "{line}");
    for field in [
        "method=GET",
        "path=\"/items\"",
        "status=200",
        "route=api",
        "cors=off",
    ] {
        assert!(line.contains(field), "{field} missing in {line}");
    }
    // What a client sends is quoted: an Origin cannot forge fields of the line.
    client()
        .get(format!("http://{proxy}/items"))
        .header("origin", "https://x.test cors=allowed route=admin")
        .send()
        .await
        .unwrap();
    let (line, _) = next_log_line(&rx, "crossgate::access");
    assert!(
        line.contains("origin=\"https://x.test cors=allowed route=admin\""),
        "{line}"
    );
    let unquoted: Vec<&str> = line
        .split('"')
        .step_by(2)
        .flat_map(str::split_whitespace)
        .filter(|w| w.starts_with("route=") || w.starts_with("cors="))
        .collect();
    assert_eq!(unquoted, ["route=api", "cors=off"], "{line}");
}

#[tokio::test]
async fn sigterm_cuts_a_request_that_outlives_the_grace_period() {
    let backend = Backend::start("b").await;
    let proxy = free_addr();
    let path = write_config(
        "cut",
        &format!(
            "listen: \"{proxy}\"\nserver: {{grace_period: 1s, shutdown_timeout: 1s}}\nupstreams:\n  b: {{servers: [\"{}\"]}}\nroutes:\n  - {{name: r, upstream: b}}\n",
            backend.addr
        ),
    );
    let mut child = Running(
        bin()
            .args(["run", "--config"])
            .arg(&path)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until_listening(proxy).await;
    let slow = tokio::spawn(async move {
        let r = client()
            .get(format!("http://{proxy}/slow?ms=30000"))
            .send()
            .await?;
        r.text().await
    });
    backend.wait_for(1, |s| s.path == "/slow").await;
    assert!(Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap()
        .success());
    let outcome = tokio::time::timeout(Duration::from_secs(20), slow)
        .await
        .expect("the request was not cut");
    assert!(
        outcome.unwrap().is_err(),
        "a 30 s request cannot finish within a 1 s grace period"
    );
    let status = tokio::task::spawn_blocking(move || child.0.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn beacon_hits_are_logged_with_bounded_fields() {
    let proxy = free_addr();
    let yaml = format!(
        "listen: \"{proxy}\"\nupstreams:\n  b: {{servers: [\"127.0.0.1:9\"]}}\nbeacons:\n  - {{name: pv, path: /b, max_fields: 2}}\nroutes:\n  - {{name: api, upstream: b}}\n"
    );
    let (_child, rx) = run_capturing("beaconlog", &yaml, &["run"]);
    wait_until_listening(proxy).await;
    client()
        .get(format!("http://{proxy}/b?ev=view&page=%2Fhome&extra=1"))
        .send()
        .await
        .unwrap();
    let (line, _) = next_log_line(&rx, "crossgate::beacon");
    assert!(line.contains("beacon=pv"), "{line}");
    assert!(line.contains("fields=\"ev=view page=/home\""), "{line}");
    assert!(line.contains("fields_skipped=1"), "{line}");
}

#[tokio::test]
async fn report_only_logs_who_would_be_refused() {
    let backend = Backend::start("b").await;
    let proxy = free_addr();
    let yaml = format!(
        "listen: \"{proxy}\"\nupstreams:\n  b: {{servers: [\"{}\"]}}\ncors_policies:\n  legacy: {{allow_origins: any}}\n  strict: {{allow_origins: [https://app.example.com], mode: report_only, report_only_fallback: legacy}}\nroutes:\n  - {{name: api, upstream: b, cors: strict}}\n",
        backend.addr
    );
    let (_child, rx) = run_capturing("reportonly", &yaml, &["run"]);
    wait_until_listening(proxy).await;
    client()
        .get(format!("http://{proxy}/x"))
        .header("origin", "https://old-partner.example")
        .send()
        .await
        .unwrap();
    let (line, _) = next_log_line(&rx, "crossgate::report_only");
    assert!(
        line.contains("origin=\"https://old-partner.example\""),
        "{line}"
    );
    assert!(
        line.contains("policy=strict") && line.contains("route=api"),
        "{line}"
    );
    // Rate limited: the same route and origin again within the minute writes no line, another
    // origin does.
    for origin in [
        "https://old-partner.example",
        "https://old-partner.example",
        "https://other-partner.example",
    ] {
        client()
            .get(format!("http://{proxy}/x"))
            .header("origin", origin)
            .send()
            .await
            .unwrap();
    }
    let (line, _) = next_log_line(&rx, "crossgate::report_only");
    assert!(
        line.contains("origin=\"https://other-partner.example\""),
        "{line}"
    );
}

#[tokio::test]
async fn a_failed_request_is_one_error_line_and_a_refused_head_is_logged_and_counted() {
    let (proxy, admin) = (free_addr(), free_addr());
    let yaml = format!(
        "listen: \"{proxy}\"\nadmin: {{listen: \"{admin}\"}}\nupstreams:\n  d: {{servers: [\"{}\"]}}\nroutes:\n  - {{name: api, upstream: d}}\n",
        common::dead_addr()
    );
    let (_child, rx) = run_capturing("faultlog", &yaml, &["run"]);
    wait_until_listening(proxy).await;
    let r = client()
        .get(format!("http://{proxy}/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let (line, _) = next_log_line(&rx, "crossgate::access");
    assert!(line.contains(" ERROR "), "{line}");
    assert!(
        line.contains("status=502") && line.contains("detail=\""),
        "{line}"
    );

    // A head the parser refuses: a 400, a line (without the head's bytes) and a count.
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(proxy).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nCookie: secret=1\r\nBad Header: x\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    read_raw_until(&mut s, &mut got, b"\r\n").await;
    assert!(
        got.starts_with(b"HTTP/1.1 400 "),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    let (line, between) = next_log_line(&rx, "crossgate::access");
    assert!(line.contains("status=400"), "{line}");
    assert!(line.contains("error=InvalidHTTPHeader"), "{line}");
    assert!(
        !line.contains("secret"),
        "the refused head's bytes are logged: {line}"
    );
    // The 502 was said once: no second ERROR line after its access line.
    assert!(
        !between
            .iter()
            .any(|l| l.contains("fail to proxy") || l.contains("ERROR")),
        "{between:?}"
    );
    let metrics = client()
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            "crossgate_requests_total{method=\"other\",route=\"none\",status_class=\"4xx\"} 1"
        ),
        "{metrics}"
    );
}

#[test]
fn explain_exits_0_when_allowed_and_1_when_refused() {
    let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config.example.yaml");
    let explain = |origin: &str, method: &str, headers: &[&str], url: &str| {
        let mut cmd = bin();
        cmd.args(["explain", "--config"])
            .arg(&example)
            .args(["--origin", origin, "--method", method]);
        for h in headers {
            cmd.args(["--header", h]);
        }
        cmd.arg(url).output().unwrap()
    };
    let out = explain(
        "https://shop.example.com",
        "PUT",
        &["Content-Type: application/json"],
        "http://127.0.0.1:8080/api/users/1",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("route: api (upstream legacy)"), "{text}");
    assert!(
        text.contains("allowed by allow_origins entry \"https://*.example.com\""),
        "{text}"
    );
    assert!(text.contains("preflight: yes"), "{text}");
    assert!(text.contains("preflight answer: 204"), "{text}");
    assert!(
        text.contains("access-control-allow-origin: https://shop.example.com"),
        "{text}"
    );

    let out = explain(
        "https://evil.example",
        "GET",
        &[],
        "http://127.0.0.1:8080/api/users",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("origin https://evil.example matches no allow_origins entry of policy app"),
        "{text}"
    );
    assert!(text.contains("REFUSED"), "{text}");

    let out = explain(
        "http://localhost:3000",
        "PATCH",
        &[],
        "http://127.0.0.1:8080/api/users/1",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("method PATCH is not in allow_methods"));
}

/// What CI can check of deploy/ without a container engine or systemd: the ConfigMap's config
/// compiles, and the files name the commands and paths the binary has.
#[test]
fn the_deployment_examples_are_consistent_with_the_binary() {
    use serde::Deserialize;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let manifests = std::fs::read_to_string(root.join("deploy/kubernetes.yaml")).unwrap();
    let config = serde_yaml::Deserializer::from_str(&manifests)
        .map(|doc| serde_yaml::Value::deserialize(doc).unwrap())
        .find(|v| v["kind"] == "ConfigMap")
        .and_then(|v| v["data"]["config.yaml"].as_str().map(str::to_owned))
        .expect("a ConfigMap with config.yaml");
    // Names are resolved at load: the in-cluster Service name does not resolve here.
    let config = config.replace("legacy-api.default.svc.cluster.local:80", "127.0.0.1:9");
    let out = check(&write_config("k8s", &config));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for probe in [
        "path: /readyz, port: admin",
        "path: /healthz, port: admin",
        "prometheus.io/port: \"9090\"",
    ] {
        assert!(manifests.contains(probe), "{probe}");
    }
    // The pod: a Pod Security "restricted" namespace admits it, it holds no API token, the
    // kubelet waits for the whole drain before SIGKILL, and a disruption takes one replica.
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&manifests)
        .map(|doc| serde_yaml::Value::deserialize(doc).unwrap())
        .collect();
    let kind = |k: &str| {
        docs.iter()
            .find(|d| d["kind"] == k)
            .unwrap_or_else(|| panic!("no {k}"))
    };
    let pod = &kind("Deployment")["spec"]["template"]["spec"];
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["automountServiceAccountToken"], false);
    let container = &pod["containers"][0];
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(
        container["securityContext"]["capabilities"]["drop"][0],
        "ALL"
    );
    let pre_stop: u64 = container["lifecycle"]["preStop"]["exec"]["command"][1]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("a preStop sleep");
    let settings: serde_yaml::Value = serde_yaml::from_str(&config).unwrap();
    let seconds = |v: &serde_yaml::Value| -> u64 {
        v.as_str().unwrap().trim_end_matches('s').parse().unwrap()
    };
    let drain = pre_stop
        + seconds(&settings["server"]["grace_period"])
        + seconds(&settings["server"]["shutdown_timeout"]);
    let kill_after = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        kill_after >= drain + 5,
        "terminationGracePeriodSeconds {kill_after} leaves no headroom over {drain} s of drain"
    );
    let pdb = kind("PodDisruptionBudget");
    assert_eq!(
        pdb["spec"]["selector"],
        kind("Deployment")["spec"]["selector"]
    );
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    let unit = std::fs::read_to_string(root.join("deploy/crossgate.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/crossgate run --config /etc/crossgate/config.yaml")
    );
    // `systemctl reload` checks the file first: a broken one fails the reload, unsignalled.
    let reloads: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("ExecReload="))
        .collect();
    assert_eq!(
        reloads,
        [
            "/usr/local/bin/crossgate check --config /etc/crossgate/config.yaml",
            "/bin/kill -HUP $MAINPID"
        ]
    );
    let dockerfile = std::fs::read_to_string(root.join("deploy/Dockerfile")).unwrap();
    for path in [
        "Cargo.toml",
        "Cargo.lock",
        "xtask",
        "src",
        "benches",
        "config.example.yaml",
    ] {
        let copied = dockerfile
            .lines()
            .any(|l| l.starts_with("COPY ") && l.split_whitespace().any(|w| w == path));
        assert!(copied, "{path} is not copied");
        assert!(root.join(path).exists(), "{path}");
    }
}

/// The admin listener (`/metrics`, `/readyz`: no authentication) is not published by the
/// shipped examples: the image keeps it on loopback and does not EXPOSE it, and in Kubernetes
/// no Service or hostPort carries it and the NetworkPolicy admits it only from a selected
/// namespace (the kubelet's probes come from the node, which NetworkPolicy always admits).
#[test]
fn the_deploy_examples_never_publish_the_admin_listener() {
    use serde::Deserialize;
    use serde_yaml::Value;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
    // `listen: A` or `listen: [A, B]`.
    let addrs = |v: &Value| -> Vec<std::net::SocketAddr> {
        let one = |v: &Value| v.as_str().expect("an address").parse().expect("ip:port");
        match v.as_sequence() {
            Some(list) => list.iter().map(one).collect(),
            None => vec![one(v)],
        }
    };
    let addr = |v: &Value| addrs(v)[0];

    // The image's example config: config.example.yaml with the Dockerfile's own
    // `sed -e 's/A/B/'`s. It is not where the default command reads (a container without a
    // mounted config must fail, not serve the example).
    let dockerfile = read("deploy/Dockerfile");
    assert!(
        !dockerfile
            .lines()
            .any(|l| l.starts_with("COPY ") && l.ends_with(" /etc/crossgate/config.yaml")),
        "the image must not ship a config where the default command reads one"
    );
    assert!(
        dockerfile.contains(r#"CMD ["run", "--config", "/etc/crossgate/config.yaml""#),
        "{dockerfile}"
    );
    let mut image_config = read("config.example.yaml");
    let mut substitutions = 0;
    for line in dockerfile.lines().filter(|l| l.contains("sed ")) {
        for expr in line.split(" -e ").skip(1) {
            let parts: Vec<&str> = expr.trim_start_matches('\'').split('/').collect();
            assert_eq!(parts[0], "s", "{line}");
            image_config = image_config.replace(parts[1], parts[2]);
            substitutions += 1;
        }
    }
    assert!(
        substitutions > 0,
        "the Dockerfile no longer seds the config"
    );
    let image_config: Value = serde_yaml::from_str(&image_config).unwrap();
    assert!(
        addrs(&image_config["listen"])
            .iter()
            .all(|a| !a.ip().is_loopback()),
        "the proxy must listen on all interfaces for -p"
    );
    let admin = addr(&image_config["admin"]["listen"]);
    assert!(
        admin.ip().is_loopback(),
        "the image's admin listener is on {admin}"
    );
    let admin_port = admin.port().to_string();
    for line in dockerfile.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"EXPOSE") {
            assert!(
                !words
                    .iter()
                    .any(|w| w.split('/').next() == Some(&admin_port)),
                "{line}"
            );
        }
        // A documented `-p` of the admin port binds the host's loopback only.
        for w in words.windows(2).filter(|w| w[0] == "-p") {
            let spec = w[1].trim_end_matches(|c: char| !c.is_ascii_digit());
            let published = spec.rsplit(':').next() == Some(admin_port.as_str());
            assert!(!published || spec.starts_with("127.0.0.1:"), "{line}");
        }
    }

    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&read("deploy/kubernetes.yaml"))
        .map(|doc| Value::deserialize(doc).unwrap())
        .collect();
    let of_kind = |k: &'static str| docs.iter().filter(move |d| d["kind"] == k);
    let config: Value = of_kind("ConfigMap")
        .find_map(|d| d["data"]["config.yaml"].as_str())
        .map(|c| serde_yaml::from_str(c).unwrap())
        .expect("a ConfigMap with config.yaml");
    let admin = addr(&config["admin"]["listen"]).port();
    let deployment = of_kind("Deployment").next().expect("a Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_ne!(pod["hostNetwork"], Value::Bool(true));
    let ports = pod["containers"][0]["ports"].as_sequence().unwrap();
    let admin_port = ports
        .iter()
        .find(|p| p["containerPort"].as_u64() == Some(admin.into()))
        .expect("the admin port is named for the probes");
    assert!(admin_port["hostPort"].is_null(), "{admin_port:?}");
    let name = admin_port["name"].as_str().unwrap();
    let is_admin = |p: &Value| p.as_str() == Some(name) || p.as_u64() == Some(admin.into());
    for service in of_kind("Service") {
        for p in service["spec"]["ports"].as_sequence().unwrap() {
            assert!(
                !is_admin(&p["port"]) && !is_admin(&p["targetPort"]),
                "{p:?}"
            );
        }
    }
    let policy = of_kind("NetworkPolicy")
        .find(|p| p["spec"]["podSelector"] == deployment["spec"]["selector"])
        .expect("a NetworkPolicy for the Deployment's pods");
    assert!(policy["spec"]["policyTypes"]
        .as_sequence()
        .unwrap()
        .contains(&"Ingress".into()));
    for rule in policy["spec"]["ingress"].as_sequence().unwrap() {
        // A rule without ports admits every port; without `from`, every source.
        let covers_admin = match rule["ports"].as_sequence() {
            None => true,
            Some(ports) => ports.iter().any(|p| is_admin(&p["port"])),
        };
        let from_anywhere = rule["from"].as_sequence().map_or(true, |f| f.is_empty());
        assert!(!(covers_admin && from_anywhere), "{rule:?}");
    }
}

#[tokio::test]
async fn a_client_leaving_an_event_stream_is_not_logged_as_an_error() {
    let backend = Backend::start("b").await;
    let proxy = free_addr();
    let yaml = format!(
        "listen: \"{proxy}\"\nupstreams:\n  b: {{servers: [\"{}\"], read_timeout: 1m}}\nroutes:\n  - {{name: events, upstream: b}}\n",
        backend.addr
    );
    let (_child, rx) = run_capturing("sseleave", &yaml, &["run"]);
    wait_until_listening(proxy).await;
    {
        // Event 1 arrives, then the client closes its socket while the backend holds event 2
        // (a raw socket: an HTTP client library may keep it until more data comes).
        use tokio::io::AsyncWriteExt;
        let mut s = tokio::net::TcpStream::connect(proxy).await.unwrap();
        s.write_all(b"GET /events/sse-gated HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        read_raw_until(&mut s, &mut Vec::new(), b"data: event 1").await;
    }
    // The access line comes after pingora's error line, if there is one.
    let (line, before) = next_log_line(&rx, "crossgate::access");
    assert!(line.contains("path=\"/events/sse-gated\""), "{line}");
    assert!(
        line.contains("error=") && line.contains("ConnectionClosed"),
        "the access log keeps the reason: {line}"
    );
    assert!(
        !before.iter().any(|l| l.contains("ERROR")),
        "a client that left was logged as an error: {before:?}"
    );
}

/// The systemd unit as systemd reads it: `systemd-analyze verify` (with the unit's binary
/// path pointed at the one built here) finds nothing to say: no unknown key, no missing
/// executable, no bad value.
#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let unit = std::fs::read_to_string(root.join("deploy/crossgate.service"))
        .unwrap()
        .replace("/usr/local/bin/crossgate", env!("CARGO_BIN_EXE_crossgate"));
    let dir = std::env::temp_dir().join(format!("crossgate-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("crossgate.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap_or_else(|e| {
            panic!("systemd-analyze: {e}: install it with `apt-get install systemd` (cargo xtask test does)")
        });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.trim().is_empty(),
        "systemd-analyze verify says:\n{stderr}"
    );
}

/// `check` and `explain` where production names do not resolve (CI on a Kubernetes config):
/// `--no-resolve` checks everything else, and says that the names were not looked up.
#[test]
fn check_and_explain_run_without_dns_with_no_resolve() {
    use serde::Deserialize;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let manifests = std::fs::read_to_string(root.join("deploy/kubernetes.yaml")).unwrap();
    let config = serde_yaml::Deserializer::from_str(&manifests)
        .map(|doc| serde_yaml::Value::deserialize(doc).unwrap())
        .find(|v| v["kind"] == "ConfigMap")
        .and_then(|v| v["data"]["config.yaml"].as_str().map(str::to_owned))
        .unwrap();
    // A name that no resolver anywhere answers (RFC 6761 .invalid).
    let config = config.replace(
        "legacy-api.default.svc.cluster.local:80",
        "legacy-api.invalid:80",
    );
    let path = write_config("noresolve", &config);
    let out = check(&path);
    assert!(!out.status.success(), "the name resolved?");
    let out = bin()
        .args(["check", "--no-resolve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("legacy-api.invalid:80"), "{stdout}");
    assert!(stdout.contains("--no-resolve"), "{stdout}");
    assert!(stdout.ends_with(": OK\n"), "{stdout}");
    let out = bin()
        .args(["explain", "--no-resolve", "--config"])
        .arg(&path)
        .args([
            "--origin",
            "https://app.example.com",
            "https://api.example.com/api/users",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("route: api "), "{stdout}");
}
