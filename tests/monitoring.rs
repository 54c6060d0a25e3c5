//! deploy/'s monitoring: the Prometheus alerting rules (`prometheus-rules.yaml`, with unit tests
//! in `prometheus-rules.test.yaml`) and the Grafana dashboard (`grafana-dashboard.json`).
//! promtool checks the rules, runs their unit tests and parses every dashboard query; a real
//! crossgate in front of a real backend, after traffic of every kind and a reload, serves every
//! metric they name, and the dashboard shows every metric it serves.

mod common;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{client, dead_addr, free_addr, wait_until_listening, Backend, Running};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

fn deploy(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(file)
}

/// Runs promtool with `args` and returns its output; fails with the output if it fails, and
/// with how to install it if it is not there. `$PROMTOOL` names another binary.
fn promtool<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let bin = std::env::var_os("PROMTOOL").unwrap_or_else(|| "promtool".into());
    let out = Command::new(&bin).args(args).output().unwrap_or_else(|e| {
        panic!(
            "cannot run {bin:?} ({e}). promtool is missing: install it with \
                 `sudo apt-get install -y prometheus` (Debian and Ubuntu ship promtool in the \
                 prometheus package), or put the promtool of a Prometheus release on PATH or \
                 in $PROMTOOL"
        )
    });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool failed:\n{text}");
    text
}

fn rules() -> serde_yaml::Value {
    serde_yaml::from_str(&std::fs::read_to_string(deploy("prometheus-rules.yaml")).unwrap())
        .unwrap()
}

fn dashboard() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(deploy("grafana-dashboard.json")).unwrap())
        .unwrap()
}

/// Every alert rule, as (name, rule).
fn alerts() -> Vec<(String, serde_yaml::Value)> {
    let mut out = Vec::new();
    for group in rules()["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let name = rule["alert"]
                .as_str()
                .expect("only alerting rules")
                .to_owned();
            out.push((name, rule.clone()));
        }
    }
    out
}

/// The PromQL of the rules: each alert's `expr`.
fn rule_queries() -> Vec<String> {
    alerts()
        .iter()
        .map(|(_, r)| r["expr"].as_str().unwrap().to_owned())
        .collect()
}

/// The PromQL of the dashboard: every `expr` (panel targets, annotations) and the selector of
/// every `label_values(selector, label)` variable, with Grafana's variables replaced by what
/// Prometheus would be sent (`$__rate_interval` by a duration, `$var` in a matcher by `.*`).
fn dashboard_queries() -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                        ("definition", serde_json::Value::String(d)) => {
                            let inner = d
                                .strip_prefix("label_values(")
                                .and_then(|s| s.rsplit_once(','))
                                .map(|(selector, _)| selector.trim().to_owned())
                                .unwrap_or_else(|| panic!("a variable query that is not label_values(selector, label): {d}"));
                            out.push(inner);
                        }
                        _ => walk(v, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&dashboard(), &mut out);
    out.iter()
        .map(|q| {
            let q = q
                .replace("$__rate_interval", "5m")
                .replace("$__interval", "1m")
                .replace("$__range", "1h");
            regex::Regex::new(r"\$\{?\w+\}?")
                .unwrap()
                .replace_all(&q, ".*")
                .into_owned()
        })
        .collect()
}

/// The metric names a PromQL expression selects: identifiers followed by `{` or `[`, and any
/// `crossgate_*` identifier. String literals (label values, regexes), label names inside
/// braces, Grafana `$variables` and durations are not names.
fn metric_names(expr: &str) -> BTreeSet<String> {
    // String literals blanked out, so that `{decision="would_deny"}` holds no identifier.
    let mut plain = String::with_capacity(expr.len());
    let mut quote = None;
    let mut escaped = false;
    for c in expr.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
                plain.push(' ');
            }
            None if matches!(c, '"' | '\'' | '`') => {
                quote = Some(c);
                plain.push(' ');
            }
            None => plain.push(c),
        }
    }
    let bytes = plain.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    let mut names = BTreeSet::new();
    let (mut i, mut braces) = (0, 0usize);
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'{' {
            braces += 1;
        } else if b == b'}' {
            braces = braces.saturating_sub(1);
        }
        if !is_ident(b) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_ident(bytes[i]) {
            i += 1;
        }
        let word = &plain[start..i];
        let after = plain[i..].trim_start().chars().next();
        let starts_like_a_name = !word.as_bytes()[0].is_ascii_digit();
        let variable = start > 0 && bytes[start - 1] == b'$';
        if starts_like_a_name
            && !variable
            && braces == 0
            && (word.starts_with("crossgate_") || matches!(after, Some('{') | Some('[')))
        {
            names.insert(word.to_owned());
        }
    }
    names
}

#[test]
fn metric_names_are_read_out_of_promql_without_label_values_variables_or_functions() {
    let names = metric_names(
        r#"histogram_quantile(0.9, sum by (le, route) (rate(crossgate_request_duration_seconds_bucket{route=~"$route",decision="crossgate_fake"}[$__rate_interval])))
           / on (job) group_left sum(up{job="x"}[5m] offset 1d) and crossgate_config_info or vector(0) > bool 1"#,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        [
            "crossgate_config_info",
            "crossgate_request_duration_seconds_bucket",
            "up"
        ]
    );
}

#[test]
fn promtool_accepts_the_alerting_rules() {
    let out = promtool([
        OsStr::new("check"),
        OsStr::new("rules"),
        deploy("prometheus-rules.yaml").as_os_str(),
    ]);
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn the_alerting_rules_pass_their_promtool_unit_tests() {
    let out = promtool([
        OsStr::new("test"),
        OsStr::new("rules"),
        deploy("prometheus-rules.test.yaml").as_os_str(),
    ]);
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn every_alert_has_a_for_a_severity_a_summary_and_a_description_and_the_issue_s_alerts_exist() {
    let alerts = alerts();
    for (name, rule) in &alerts {
        assert!(rule["for"].as_str().is_some(), "{name} has no `for:`");
        let severity = rule["labels"]["severity"].as_str();
        assert!(
            matches!(severity, Some("warning" | "critical")),
            "{name}: severity {severity:?}"
        );
        for a in ["summary", "description"] {
            let text = rule["annotations"][a].as_str().unwrap_or("");
            assert!(text.len() > 20, "{name} has no useful {a}");
        }
    }
    let names: BTreeSet<&str> = alerts.iter().map(|(n, _)| n.as_str()).collect();
    for wanted in [
        "CrossgateUpstreamDown",
        "CrossgateHigh5xxRatio",
        "CrossgateRefusedOriginsSpike",
        "CrossgateConfigReloadFailed",
        "CrossgateBeaconHitsDropped",
        "CrossgateReplicasRunDifferentConfigs",
        "CrossgateDown",
        "CrossgateAbsent",
    ] {
        assert!(names.contains(wanted), "no alert {wanted}");
    }
    // The unit tests cover every alert.
    let tests = std::fs::read_to_string(deploy("prometheus-rules.test.yaml")).unwrap();
    for name in &names {
        assert!(
            tests.contains(&format!("alertname: {name}\n")),
            "prometheus-rules.test.yaml does not test {name}"
        );
    }
}

#[test]
fn the_dashboard_is_importable_json_whose_panels_all_use_the_datasource_variable() {
    let d = dashboard();
    assert!(d["uid"].is_string() && d["title"].is_string());
    let vars = d["templating"]["list"].as_array().unwrap();
    assert!(
        vars.iter().any(|v| v["type"] == "datasource"
            && v["name"] == "datasource"
            && v["query"] == "prometheus"),
        "no Prometheus datasource variable"
    );
    // No datasource is named by a uid that exists only on one Grafana.
    fn datasources(v: &serde_json::Value, out: &mut Vec<serde_json::Value>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    if k == "datasource" {
                        out.push(v.clone());
                    } else {
                        datasources(v, out);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| datasources(i, out)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    datasources(&d, &mut found);
    for ds in &found {
        let ok = ds["uid"] == "${datasource}" || ds["type"] == "grafana";
        assert!(ok, "a datasource other than ${{datasource}}: {ds}");
    }
    let mut ids = BTreeSet::new();
    for p in d["panels"].as_array().unwrap() {
        let id = p["id"].as_u64().expect("every panel has an id");
        assert!(ids.insert(id), "panel id {id} twice");
        let grid = &p["gridPos"];
        for k in ["h", "w", "x", "y"] {
            assert!(grid[k].is_u64(), "panel {id} has no gridPos.{k}");
        }
        assert!(grid["x"].as_u64().unwrap() + grid["w"].as_u64().unwrap() <= 24);
        if p["type"] != "row" {
            let targets = p["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "panel {id} has no query");
            assert!(
                p["description"].as_str().is_some_and(|s| !s.is_empty()),
                "panel {id} has no description"
            );
        }
    }
}

#[test]
fn every_dashboard_query_is_promql_that_promtool_parses() {
    let queries = dashboard_queries();
    assert!(queries.len() > 20, "{queries:?}");
    // As recording rules, which `promtool check rules` parses.
    let mut file = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, q) in queries.iter().enumerate() {
        file.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {}\n",
            serde_json::Value::from(q.as_str())
        ));
    }
    let path = std::env::temp_dir().join(format!(
        "crossgate-dashboard-queries-{}.yaml",
        std::process::id()
    ));
    std::fs::write(&path, &file).unwrap();
    let out = promtool([OsStr::new("check"), OsStr::new("rules"), path.as_os_str()]);
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", queries.len())),
        "{out}\n{file}"
    );
    let _ = std::fs::remove_file(path);
}

/// A config with a route for every channel, a report-only policy, a dead upstream, a health
/// check and a forwarding beacon whose queue of 1 overflows. `origin` changes for a reload.
fn config(
    proxy: SocketAddr,
    admin: SocketAddr,
    backend: &Backend,
    dir: &Path,
    origin: &str,
) -> String {
    format!(
        r#"
listen: "{proxy}"
admin: {{listen: "{admin}"}}
server: {{beacon_queue: 1, grace_period: 1s, shutdown_timeout: 1s, upgrade_sock: "{sock}"}}
upstreams:
  b: {{servers: ["{b}"], health_check: {{path: /health, interval: 1s}}}}
  dead: {{servers: ["{dead}"]}}
  named: {{servers: ["localhost:{port}"]}}
cors_policies:
  app: {{allow_origins: ["{origin}"], allow_methods: [GET, PUT]}}
  strict: {{allow_origins: ["{origin}"], mode: report_only, report_only_fallback: open}}
  open: {{allow_origins: any}}
routes:
  - {{name: jsonp, path: /jsonp/, upstream: b, cors: app, jsonp: {{without_referer: allow}}}}
  - {{name: ws, path: /ws/, upstream: b, cors: app, websocket: {{}}}}
  - {{name: events, path: /events/, upstream: b, cors: app, read_timeout: 10s}}
  - {{name: dead, path: /dead/, upstream: dead, cors: app}}
  - {{name: named, path: /named/, upstream: named, cors: app}}
  - {{name: strict, path: /strict/, upstream: b, cors: strict}}
  - {{name: api, path: /, upstream: b, cors: app}}
beacons:
  - {{name: pv, path: /b/pv, forward: {{upstream: b, path: /slow}}}}
"#,
        sock = dir.join("upgrade.sock").display(),
        b = backend.addr,
        dead = dead_addr(),
        port = backend.addr.port(),
    )
}

async fn scrape(admin: SocketAddr) -> String {
    client()
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The names of the samples on a /metrics page (`_bucket`, `_sum`, `_count` for histograms).
fn sample_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn after_real_traffic_metrics_has_every_metric_the_alerts_and_dashboard_query_and_the_dashboard_shows_them_all(
) {
    let backend = Backend::start("b").await;
    let (proxy, admin) = (free_addr(), free_addr());
    let dir = std::env::temp_dir().join(format!("crossgate-monitoring-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The upgrade socket's directory must be private (server.upgrade_sock).
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let path = dir.join("config.yaml");
    let app = "https://app.example.com";
    std::fs::write(&path, config(proxy, admin, &backend, &dir, app)).unwrap();
    let child = Running(
        Command::new(env!("CARGO_BIN_EXE_crossgate"))
            .args(["run", "--no-watch", "--config"])
            .arg(&path)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until_listening(proxy).await;
    wait_until_listening(admin).await;
    let url = |p: &str| format!("http://{proxy}{p}");
    let get = |p: &str, origin: &str| client().get(url(p)).header("origin", origin).send();

    // Allowed, refused, would-deny (report_only), a backend 5xx, a dead upstream.
    for (p, origin) in [
        ("/api/x", app),
        ("/api/x", "https://evil.example"),
        ("/strict/x", "https://evil.example"),
        ("/api/status/503", app),
        ("/dead/x", app),
    ] {
        get(p, origin).await.unwrap();
    }
    // A preflight, JSONP, beacon hits: the first is forwarded (and held 30 s by the
    // backend), the queue of 1 takes the next, the others are dropped.
    client()
        .request(reqwest::Method::OPTIONS, url("/api/x"))
        .header("origin", app)
        .header("access-control-request-method", "PUT")
        .send()
        .await
        .unwrap();
    client()
        .get(url("/jsonp/x?callback=cb"))
        .send()
        .await
        .unwrap();
    for _ in 0..4 {
        client().get(url("/b/pv?ms=30000")).send().await.unwrap();
    }
    // An open WebSocket and an open event stream.
    let mut req = format!("ws://{proxy}/ws/echo")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("origin", app.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.send(Message::text("x")).await.unwrap();
    ws.next().await.unwrap().unwrap();
    let sse = client()
        .get(url("/events/sse-gated"))
        .header("origin", app)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    let mut events = sse.bytes_stream();
    events.next().await.unwrap().unwrap();
    // A reload with a changed config.
    std::fs::write(
        &path,
        config(proxy, admin, &backend, &dir, "https://app2.example.com"),
    )
    .unwrap();
    let ok = Command::new("kill")
        .args(["-HUP", &child.0.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = scrape(admin).await;
        if text.contains("crossgate_config_reloads_total{result=\"success\"} 2") {
            break text;
        }
        assert!(tokio::time::Instant::now() < deadline, "no reload:\n{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let dropped = text
        .lines()
        .find_map(|l| l.strip_prefix("crossgate_beacon_forward_dropped_total{beacon=\"pv\"} "))
        .and_then(|v| v.parse::<f64>().ok());
    assert!(dropped >= Some(1.0), "no beacon hit was dropped:\n{text}");

    let served = sample_names(&text);
    let mut missing = Vec::new();
    let mut named = BTreeSet::new();
    for (source, queries) in [
        ("prometheus-rules.yaml", rule_queries()),
        ("grafana-dashboard.json", dashboard_queries()),
    ] {
        for q in &queries {
            for name in metric_names(q) {
                // `up` is Prometheus's own series for each scrape (CrossgateDown).
                if !served.contains(&name) && name != "up" {
                    missing.push(format!("{source}: {name} in {q}"));
                }
                named.insert((source, name));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "queries name metrics that /metrics does not serve (a histogram is queried as NAME_bucket, NAME_sum or NAME_count):\n{}\n\n/metrics:\n{text}",
        missing.join("\n")
    );
    assert!(named.len() > 10, "{named:?}");

    // The converse: each metric crossgate serves has a panel.
    let on_dashboard: BTreeSet<&str> = named
        .iter()
        .filter(|(s, _)| *s == "grafana-dashboard.json")
        .map(|(_, n)| n.as_str())
        .collect();
    let families: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    assert!(families.len() >= 15, "{families:?}");
    for family in families {
        let shown = [
            family.to_owned(),
            format!("{family}_bucket"),
            format!("{family}_count"),
            format!("{family}_sum"),
        ]
        .iter()
        .any(|n| on_dashboard.contains(n.as_str()));
        assert!(
            shown,
            "{family} is on /metrics but on no panel of deploy/grafana-dashboard.json: add one"
        );
    }
    drop(ws);
    drop(events);
    drop(child);
}
