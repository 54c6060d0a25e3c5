//! Hot reload and binary upgrade of the real binary, with a client sending requests the whole
//! time: SIGHUP, a file replaced by rename, a Kubernetes ConfigMap's symlink swap, a broken
//! file, and `run --upgrade` + SIGQUIT. Every test asserts zero failed requests: every
//! answer a 200 with its whole body. One kind of failure is retried once, as browsers retry
//! it: a connection closed before any byte of an answer (the number of such retries is
//! printed). Then SIGQUIT refusing to hand the sockets to a socket that is not a `run --upgrade` of the same user.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{free_addr, signal, stdout_lines, wait_until_listening, Backend, Running};

fn dir(name: &str) -> PathBuf {
    common::private_dir("reload", name)
}

/// `sock: None` leaves `server.upgrade_sock` at its default.
fn config(
    proxy: std::net::SocketAddr,
    admin: std::net::SocketAddr,
    backend: &Backend,
    origin: &str,
    sock: Option<&Path>,
) -> String {
    let sock = sock.map_or(String::new(), |s| {
        format!(", upgrade_sock: \"{}\"", s.display())
    });
    format!(
        "listen: \"{proxy}\"\nadmin: {{listen: \"{admin}\"}}\nserver: {{grace_period: 1s, shutdown_timeout: 1s{sock}}}\nupstreams:\n  b: {{servers: [\"{}\"]}}\nroutes:\n  - {{name: api, upstream: b, cors: {{allow_origins: [\"{origin}\"]}}}}\n",
        backend.addr
    )
}

fn start(path: &Path, extra: &[&str]) -> Running {
    start_with(path, extra, &[], Stdio::null())
}

fn start_with(path: &Path, extra: &[&str], env: &[(&str, &Path)], stdout: Stdio) -> Running {
    common::run_crossgate(path, extra, env, stdout)
}

/// A client sending `Origin: https://new.example` requests in a loop until stopped.
struct Traffic {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    /// Requests answered with the new origin allowed.
    new_rule_seen: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
    /// Requests retried once after the connection closed before any response (see the loop).
    retried: Arc<AtomicUsize>,
}

impl Traffic {
    fn start(proxy: std::net::SocketAddr, fresh_connections: bool) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let new_rule_seen = Arc::new(AtomicUsize::new(0));
        let (s, n, f, seen) = (
            stop.clone(),
            sent.clone(),
            failures.clone(),
            new_rule_seen.clone(),
        );
        let retried = Arc::new(AtomicUsize::new(0));
        let retried_report = retried.clone();
        let mut builder = reqwest::Client::builder();
        if fresh_connections {
            builder = builder.pool_max_idle_per_host(0);
        }
        let client = builder.build().unwrap();
        let task = tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                let send = || {
                    client
                        .get(format!("http://{proxy}/api/x"))
                        .header("origin", "https://new.example")
                        .send()
                };
                let mut r = send().await;
                // A connection closed before any byte of a response is what the engine does to
                // a connection it accepted but has not read a request from when the process
                // shuts down (proxy/engine.rs, `serve`). Browsers retry an idempotent request in
                // that one case (as hyper does on pooled connections); so does this client, once.
                if r.as_ref()
                    .is_err_and(|e| format!("{e:?}").contains("IncompleteMessage"))
                {
                    retried.fetch_add(1, Ordering::Relaxed);
                    r = send().await;
                }
                n.fetch_add(1, Ordering::Relaxed);
                match r {
                    Ok(r) if r.status() == 200 => {
                        if r.headers()
                            .get("access-control-allow-origin")
                            .is_some_and(|v| v == "https://new.example")
                        {
                            seen.fetch_add(1, Ordering::Relaxed);
                        }
                        // A body cut short is a failed request too.
                        if let Err(e) = r.bytes().await {
                            f.lock().unwrap().push(format!("body error {e:?}"));
                        }
                    }
                    Ok(r) => f.lock().unwrap().push(format!("status {}", r.status())),
                    Err(e) => f.lock().unwrap().push(format!("error {e:?}")),
                }
            }
        });
        Traffic {
            stop,
            sent,
            failures,
            new_rule_seen,
            task,
            retried: retried_report,
        }
    }

    /// Waits (10 s at most) until the new rule has answered a request.
    async fn wait_for_new_rule(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.new_rule_seen.load(Ordering::Relaxed) == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the new rule never came into force"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the loop; returns how many requests it sent, after asserting none failed.
    async fn finish(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        let failures = self.failures.lock().unwrap().clone();
        println!(
            "{} requests, {} retried once after a connection closed before any response",
            self.sent.load(Ordering::Relaxed),
            self.retried.load(Ordering::Relaxed)
        );
        assert!(
            failures.is_empty(),
            "{} failed requests: {failures:?}",
            failures.len()
        );
        self.sent.load(Ordering::Relaxed)
    }
}

async fn scrape(admin: std::net::SocketAddr) -> String {
    reqwest::get(format!("http://{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn sighup_reloads_without_failing_a_request_and_in_flight_requests_keep_their_rules() {
    let backend = Backend::start("b").await;
    let (proxy, admin) = (free_addr(), free_addr());
    let d = dir("hup");
    let path = d.join("config.yaml");
    let sock = d.join("upgrade.sock");
    std::fs::write(
        &path,
        config(proxy, admin, &backend, "https://old.example", Some(&sock)),
    )
    .unwrap();
    // --no-watch: only SIGHUP may reload in this test.
    let child = start(&path, &["--no-watch"]);
    wait_until_listening(proxy).await;

    let traffic = Traffic::start(proxy, false);
    // A request in flight across the reload keeps the rules it started with.
    let slow = tokio::spawn(
        reqwest::Client::new()
            .get(format!("http://{proxy}/api/slow?ms=1500"))
            .header("origin", "https://old.example")
            .send(),
    );
    backend.wait_for(1, |s| s.path == "/api/slow").await;
    std::fs::write(
        &path,
        config(proxy, admin, &backend, "https://new.example", Some(&sock)),
    )
    .unwrap();
    signal(&child, "-HUP");
    traffic.wait_for_new_rule().await;
    let sent = traffic.finish().await;
    assert!(sent > 1);

    let r = slow.await.unwrap().unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://old.example"
    );
    assert!(scrape(admin)
        .await
        .contains("crossgate_config_reloads_total{result=\"success\"} 2"));
}

#[tokio::test]
async fn a_file_replaced_by_rename_is_reloaded() {
    let backend = Backend::start("b").await;
    let (proxy, admin) = (free_addr(), free_addr());
    let d = dir("rename");
    let path = d.join("config.yaml");
    let sock = d.join("upgrade.sock");
    std::fs::write(
        &path,
        config(proxy, admin, &backend, "https://old.example", Some(&sock)),
    )
    .unwrap();
    let _child = start(&path, &[]);
    wait_until_listening(proxy).await;
    let traffic = Traffic::start(proxy, false);
    // What editors and config tools do: write a new file, rename it over the old one.
    let tmp = d.join(".config.yaml.tmp");
    std::fs::write(
        &tmp,
        config(proxy, admin, &backend, "https://new.example", Some(&sock)),
    )
    .unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    traffic.wait_for_new_rule().await;
    traffic.finish().await;
}

#[tokio::test]
async fn a_kubernetes_configmap_update_is_reloaded() {
    use std::os::unix::fs::symlink;
    let backend = Backend::start("b").await;
    let (proxy, admin) = (free_addr(), free_addr());
    let d = dir("k8s");
    let sock = d.join("upgrade.sock");
    // The kubelet's layout: config.yaml -> ..data/config.yaml, ..data -> ..<timestamp>.
    std::fs::create_dir(d.join("..v1")).unwrap();
    std::fs::write(
        d.join("..v1/config.yaml"),
        config(proxy, admin, &backend, "https://old.example", Some(&sock)),
    )
    .unwrap();
    symlink("..v1", d.join("..data")).unwrap();
    symlink("..data/config.yaml", d.join("config.yaml")).unwrap();
    let _child = start(&d.join("config.yaml"), &[]);
    wait_until_listening(proxy).await;
    let traffic = Traffic::start(proxy, false);
    // An update: a new timestamped directory, then ..data swapped by an atomic rename.
    std::fs::create_dir(d.join("..v2")).unwrap();
    std::fs::write(
        d.join("..v2/config.yaml"),
        config(proxy, admin, &backend, "https://new.example", Some(&sock)),
    )
    .unwrap();
    symlink("..v2", d.join("..data_tmp")).unwrap();
    std::fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();
    traffic.wait_for_new_rule().await;
    traffic.finish().await;
}

#[tokio::test]
async fn a_broken_file_is_reported_and_the_old_rules_stay() {
    let backend = Backend::start("b").await;
    let (proxy, admin) = (free_addr(), free_addr());
    let d = dir("broken");
    let path = d.join("config.yaml");
    let sock = d.join("upgrade.sock");
    std::fs::write(
        &path,
        config(proxy, admin, &backend, "https://new.example", Some(&sock)),
    )
    .unwrap();
    let mut child = Running(
        Command::new(env!("CARGO_BIN_EXE_crossgate"))
            .args(["run", "--no-watch", "--config"])
            .arg(&path)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let rx = stdout_lines(&mut child.0);
    wait_until_listening(proxy).await;
    let traffic = Traffic::start(proxy, false);
    traffic.wait_for_new_rule().await;

    let broken = config(proxy, admin, &backend, "https://new.example", Some(&sock))
        .replace("allow_origins", "allow_orgins");
    std::fs::write(&path, broken).unwrap();
    signal(&child, "-HUP");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut report = String::new();
    while !report.contains("fix:") {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no reload error in the log; got {report:?}"));
        if line.contains("config reload failed") || !report.is_empty() {
            report.push_str(&line);
            report.push('\n');
        }
    }
    assert!(
        report.contains(&format!(
            "{}:7:37: at routes[0].cors.allow_orgins",
            path.display()
        )),
        "{report}"
    );
    assert!(report.contains("routes[0].cors.allow_orgins"), "{report}");
    let before = traffic.new_rule_seen.load(Ordering::Relaxed);
    // The old rules still answer.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while traffic.new_rule_seen.load(Ordering::Relaxed) < before + 5 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "requests stopped being served by the old rules"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    traffic.finish().await;
    assert!(scrape(admin)
        .await
        .contains("crossgate_config_reloads_total{result=\"failure\"} 1"));
}

/// The default socket, in systemd's `$RUNTIME_DIRECTORY` (here one that does not exist yet:
/// the old process creates it, private).
#[tokio::test]
async fn an_upgrade_hands_the_sockets_over_without_failing_a_request() {
    use std::os::unix::fs::PermissionsExt;
    let backend = Backend::start("b").await;
    let (proxy, admin) = (free_addr(), free_addr());
    let d = dir("upgrade");
    let path = d.join("config.yaml");
    let runtime = d.join("run");
    let sock = runtime.join("upgrade.sock");
    std::fs::write(
        &path,
        config(proxy, admin, &backend, "https://new.example", None),
    )
    .unwrap();
    let env = [("RUNTIME_DIRECTORY", runtime.as_path())];
    let mut old = start_with(&path, &["--no-watch"], &env, Stdio::null());
    wait_until_listening(proxy).await;
    let mode = std::fs::metadata(&runtime).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "{} is {mode:o}", runtime.display());
    // New connections for every request, so that each one is accepted by whichever process
    // holds the socket at that moment.
    let traffic = Traffic::start(proxy, true);
    traffic.wait_for_new_rule().await;

    let new = start_with(&path, &["--upgrade", "--no-watch"], &env, Stdio::null());
    // The new process waits for the sockets on the upgrade socket.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the new process never opened {}",
            sock.display()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    signal(&old, "-QUIT");
    let status = tokio::task::spawn_blocking(move || old.0.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "the old process: {status:?}");
    // The old process is gone; the new one keeps answering.
    let served = traffic.new_rule_seen.load(Ordering::Relaxed);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while traffic.new_rule_seen.load(Ordering::Relaxed) < served + 20 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new process does not answer"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    traffic.finish().await;
    drop(new);
}

/// Starts crossgate on a private socket directory (after `plant` has put there what it wants)
/// with its log captured, sends it SIGQUIT and returns the ERROR line that refuses the
/// hand-over, after checking that the process still answers.
async fn sigquit_refusal<T>(name: &str, plant: impl FnOnce(&Path) -> T) -> (String, T) {
    let backend = Backend::start("b").await;
    let (proxy, admin) = (free_addr(), free_addr());
    let d = dir(name);
    let path = d.join("config.yaml");
    let sock = d.join("upgrade.sock");
    let planted = plant(&sock);
    std::fs::write(
        &path,
        config(proxy, admin, &backend, "https://new.example", Some(&sock)),
    )
    .unwrap();
    let mut old = start_with(&path, &["--no-watch"], &[], Stdio::piped());
    let rx = stdout_lines(&mut old.0);
    wait_until_listening(proxy).await;
    signal(&old, "-QUIT");
    // Longer than the 5 s the old process waits for a socket to appear.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let line = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("no refusal of the hand-over in the log");
        if line.contains("SIGQUIT") {
            break line;
        }
    };
    assert!(line.contains("ERROR"), "{line}");
    assert!(
        line.contains("not handing the listening sockets over, still serving"),
        "{line}"
    );
    // Still serving: the same process answers a new connection.
    let r = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
        .get(format!("http://{proxy}/api/x"))
        .header("origin", "https://new.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://new.example"
    );
    assert!(old.0.try_wait().unwrap().is_none(), "the old process left");
    (line, planted)
}

#[tokio::test]
async fn sigquit_keeps_the_sockets_from_a_socket_planted_by_another_user_and_keeps_serving() {
    assert_eq!(
        nix::unistd::geteuid().as_raw(),
        0,
        "planting a socket of another uid needs root (chown): run the suite as root (CI does), \
         or leave this test out by name: cargo test -- --skip {}",
        "sigquit_keeps_the_sockets_from_a_socket_planted_by_another_user_and_keeps_serving"
    );
    let (line, listener) = sigquit_refusal("planted", |sock| {
        // What a local attacker does: bind the path before `run --upgrade` does.
        let listener = std::os::unix::net::UnixListener::bind(sock).unwrap();
        std::os::unix::fs::chown(sock, Some(65534), None).unwrap();
        listener
    })
    .await;
    assert!(line.contains("belongs to uid 65534"), "{line}");
    assert!(line.contains("not to crossgate's user (uid 0)"), "{line}");
    // Nothing connected to the planted socket (the refusal comes before any connect).
    listener.set_nonblocking(true).unwrap();
    let accepted = listener.accept();
    assert!(
        accepted
            .as_ref()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock),
        "the planted socket got a connection: {accepted:?}"
    );
}

/// pingora shuts the old process down even when it could not send the sockets: without a
/// new process waiting, SIGQUIT used to leave no one serving.
#[tokio::test]
async fn sigquit_without_a_process_waiting_for_the_sockets_keeps_serving() {
    let (line, ()) = sigquit_refusal("nobody", |_| {}).await;
    assert!(
        line.contains("no process started with `run --upgrade` is waiting"),
        "{line}"
    );
}

/// What `crossgate check` prints as the file's hash.
fn check_hash(path: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_crossgate"))
        .args(["check", "--config"])
        .arg(path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("config hash: "))
        .unwrap_or_else(|| panic!("no `config hash:` line in\n{stdout}"))
        .to_owned()
}

/// The next log line that contains `marker` (10 s at most).
fn log_line(rx: &std::sync::mpsc::Receiver<String>, marker: &str) -> String {
    log_lines_until(rx, marker)
        .pop()
        .expect("the line with the marker")
}

#[tokio::test]
async fn the_config_hash_check_prints_is_on_metrics_in_the_log_and_follows_a_reload() {
    let backend = Backend::start("b").await;
    let (proxy, admin) = (free_addr(), free_addr());
    let d = dir("hash");
    let path = d.join("config.yaml");
    let sock = d.join("upgrade.sock");
    std::fs::write(
        &path,
        config(proxy, admin, &backend, "https://old.example", Some(&sock)),
    )
    .unwrap();
    let old = check_hash(&path);
    let mut child = Running(
        Command::new(env!("CARGO_BIN_EXE_crossgate"))
            .args(["run", "--no-watch", "--config"])
            .arg(&path)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let rx = stdout_lines(&mut child.0);
    assert!(log_line(&rx, "crossgate starting").contains(&format!("config_hash={old}")));
    wait_until_listening(admin).await;
    let info = |hash: &str| format!("crossgate_config_info{{hash=\"{hash}\"}} 1");
    let text = scrape(admin).await;
    assert!(text.contains(&info(&old)), "{text}");
    assert_eq!(text.matches("crossgate_config_info{").count(), 1, "{text}");

    // A changed config: a new hash, the same in check, the log and /metrics; the old series
    // is gone.
    std::fs::write(
        &path,
        config(proxy, admin, &backend, "https://new.example", Some(&sock)),
    )
    .unwrap();
    let new = check_hash(&path);
    assert_ne!(new, old);
    signal(&child, "-HUP");
    assert!(log_line(&rx, "config reloaded").contains(&format!("config_hash={new}")));
    let text = scrape(admin).await;
    assert!(text.contains(&info(&new)), "{text}");
    assert!(!text.contains(&old), "the old hash is still there:\n{text}");

    // The same config reformatted: block style, other key order, other quoting, comments.
    let reformatted = format!(
        "# the same config, written differently\nroutes:\n  - cors:\n      allow_origins:\n        - https://new.example   # unquoted\n    upstream: b\n    name: api\nupstreams:\n  b:\n    servers: ['{}']\nserver:\n  upgrade_sock: {}\n  shutdown_timeout: 1s\n  grace_period: 1s\nadmin:\n  listen: {admin}\nlisten: {proxy}\n",
        backend.addr,
        sock.display()
    );
    std::fs::write(&path, reformatted).unwrap();
    assert_eq!(check_hash(&path), new);
    signal(&child, "-HUP");
    assert!(log_line(&rx, "config reloaded").contains(&format!("config_hash={new}")));
    let text = scrape(admin).await;
    assert!(text.contains(&info(&new)), "{text}");
    assert!(text.contains("crossgate_config_reloads_total{result=\"success\"} 3"));

    // A broken file: the log names the hash that stays live, and so does /metrics.
    std::fs::write(&path, "listen: [").unwrap();
    signal(&child, "-HUP");
    assert!(log_line(&rx, "config reload failed").contains(&format!("config hash {new}")));
    let text = scrape(admin).await;
    assert!(text.contains(&info(&new)), "{text}");
    assert!(
        text.contains("crossgate_config_last_reload_successful 0"),
        "{text}"
    );
}

/// The lines of `rx` up to the first that contains `marker` (10 s at most), `marker`'s
/// included.
fn log_lines_until(rx: &std::sync::mpsc::Receiver<String>, marker: &str) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no log line with {marker:?} within 10 s: {lines:#?}"));
        let found = line.contains(marker);
        lines.push(line);
        if found {
            return lines;
        }
    }
}

#[tokio::test]
async fn a_broken_file_is_reported_once_and_putting_it_back_clears_the_alarm() {
    // The systemd layout: a plain file, watched, with other files beside it.
    let backend = Backend::start("b").await;
    let (proxy, admin) = (free_addr(), free_addr());
    let d = dir("once");
    let path = d.join("config.yaml");
    let good = config(
        proxy,
        admin,
        &backend,
        "https://new.example",
        Some(&d.join("u.sock")),
    );
    std::fs::write(&path, &good).unwrap();
    let mut child = Running(
        Command::new(env!("CARGO_BIN_EXE_crossgate"))
            .args(["run", "--config"])
            .arg(&path)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let rx = stdout_lines(&mut child.0);
    wait_until_listening(admin).await;
    std::fs::write(&path, good.replace("allow_origins", "allow_orgins")).unwrap();
    log_line(&rx, "config reload failed");
    // What happens around a file on a server: it is read, and other files in its directory
    // are written (a log, an editor's swap file). None of it is a change of the config.
    for _ in 0..3 {
        std::fs::read_to_string(&path).unwrap();
        std::fs::write(d.join("crossgate.log"), "a log line\n").unwrap();
        std::fs::write(d.join(".config.yaml.swp"), "x").unwrap();
    }
    // The operator puts the running text back: the alarm clears, and the broken file was
    // reported once.
    std::fs::write(&path, &good).unwrap();
    let lines = log_lines_until(&rx, "config is back to the rules that are running");
    let failures = lines
        .iter()
        .filter(|l| l.contains("config reload failed"))
        .count();
    assert_eq!(
        failures, 0,
        "the broken file was reported again: {lines:#?}"
    );
    let metrics = scrape(admin).await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "crossgate_config_last_reload_successful 1"),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l == "crossgate_config_reloads_total{result=\"failure\"} 1"),
        "{metrics}"
    );
}
