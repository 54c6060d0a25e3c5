//! The admin listener's report of who is refused and who a report-only policy would refuse
//! (`/refused`, `/refused.html`), after real refused traffic through the proxy: actual
//! requests, preflights, report-only would_deny, JSONP Referer and WebSocket Origin
//! refusals; and its bound under a flood of distinct origins.

mod common;

use std::time::{Duration, Instant};

use common::{client, free_addr, wait_until_listening, Backend, Proxy, Running};
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn config(backend: &Backend) -> String {
    format!(
        r#"
listen: LISTEN
admin: {{listen: "ADMIN"}}
upstreams:
  b: {{servers: ["{b}"]}}
cors_policies:
  app: {{allow_origins: [https://app.example.com], allow_methods: [GET, PUT], allow_headers: [x-custom]}}
  legacy: {{allow_origins: any}}
  strict: {{allow_origins: [https://app.example.com], mode: report_only, report_only_fallback: legacy}}
routes:
  - {{name: jsonp, path: /jsonp/, upstream: b, cors: app, jsonp: {{}}}}
  - {{name: ws, path: /ws/, upstream: b, cors: app, websocket: {{}}}}
  - {{name: trial, path: /trial/, upstream: b, cors: strict}}
  - {{name: api, path: /, upstream: b, cors: app}}
"#,
        b = backend.addr,
    )
}

async fn report(proxy: &Proxy) -> Value {
    report_at(proxy.admin.unwrap()).await
}

async fn report_at(admin: std::net::SocketAddr) -> Value {
    let r = client()
        .get(format!("http://{admin}/refused"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(common::header(&r, "content-type"), Some("application/json"));
    r.json().await.unwrap()
}

/// The route's entries as (origin, reason, decision, count).
fn entries(report: &Value, route: &str) -> Vec<(String, String, String, u64)> {
    let routes = report["routes"].as_array().unwrap();
    let Some(r) = routes.iter().find(|r| r["route"] == route) else {
        return Vec::new();
    };
    r["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["origin"].as_str().unwrap().to_owned(),
                e["reason"].as_str().unwrap().to_owned(),
                e["decision"].as_str().unwrap().to_owned(),
                e["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn entry(origin: &str, reason: &str, decision: &str, count: u64) -> (String, String, String, u64) {
    (origin.into(), reason.into(), decision.into(), count)
}

const APP: &str = "https://app.example.com";
const EVIL: &str = "https://evil.example";

#[tokio::test]
async fn the_report_lists_each_refused_origin_with_its_count_reason_and_decision() {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config(&backend)).await;
    let c = client();

    // Allowed traffic leaves nothing in the report.
    for path in ["/api/items", "/trial/items"] {
        let r = c.get(proxy.url(path)).header("origin", APP).send().await;
        assert_eq!(r.unwrap().status(), 200);
    }
    assert_eq!(report(&proxy).await["routes"], serde_json::json!([]));

    for _ in 0..3 {
        let r = c.get(proxy.url("/api/items")).header("origin", EVIL);
        assert_eq!(r.send().await.unwrap().status(), 200);
    }
    let preflight = c
        .request(reqwest::Method::OPTIONS, proxy.url("/api/items/1"))
        .header("origin", APP)
        .header("access-control-request-method", "PUT")
        .header("access-control-request-headers", "x-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 403);
    let trial = c.get(proxy.url("/trial/items")).header("origin", EVIL);
    assert_eq!(trial.send().await.unwrap().status(), 200);
    let jsonp = c
        .get(proxy.url("/jsonp/items?callback=cb"))
        .header("referer", "https://evil.example/page.html")
        .send()
        .await
        .unwrap();
    assert_eq!(jsonp.status(), 403);
    let mut ws = format!("ws://{}/ws/echo", proxy.addr)
        .into_client_request()
        .unwrap();
    ws.headers_mut().insert("origin", EVIL.parse().unwrap());
    match tokio_tungstenite::connect_async(ws).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403),
        other => panic!("the WebSocket was not refused: {:?}", other.map(|_| ())),
    }

    let got = report(&proxy).await;
    assert_eq!(
        entries(&got, "api"),
        [
            entry(EVIL, "origin_not_listed", "denied", 3),
            entry(APP, "header", "denied", 1)
        ]
    );
    assert_eq!(
        entries(&got, "trial"),
        [entry(EVIL, "origin_not_listed", "would_deny", 1)]
    );
    assert_eq!(
        entries(&got, "jsonp"),
        [entry(EVIL, "referer", "denied", 1)]
    );
    assert_eq!(
        entries(&got, "ws"),
        [entry(EVIL, "websocket_origin", "denied", 1)]
    );
    let api = &got["routes"].as_array().unwrap()[3];
    assert_eq!(api["route"], "api", "routes in the config's order");
    assert_eq!(api["refusals"], 4);
    let header = &api["entries"][1];
    assert_eq!(header["error"], 0);
    assert!(
        header["example"].as_str().unwrap().contains("x-secret"),
        "{header}"
    );
    assert!(header["last_seen"].as_str().unwrap().ends_with('Z'));
    // Origins are never metric labels.
    assert!(!proxy.metrics().await.contains("evil.example"));
}

#[tokio::test]
async fn the_page_shows_a_hostile_origin_as_text_under_a_csp_that_allows_nothing() {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config(&backend)).await;
    let hostile = "https://x<script>alert(1)</script><img src=x id=pwned>";
    let r = client()
        .get(proxy.url("/api/items"))
        .header("origin", hostile)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page = client()
        .get(format!("http://{}/refused.html", proxy.admin.unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(
        common::header(&page, "content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(
        common::header(&page, "x-content-type-options"),
        Some("nosniff")
    );
    let csp = common::header(&page, "content-security-policy").unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    let body = page.text().await.unwrap();
    assert!(body.contains("<meta http-equiv=\"refresh\""), "{body}");
    assert!(
        !body.contains("<script") && !body.contains("<img"),
        "{body}"
    );
    assert!(
        body.contains("https://x&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x id=pwned&gt;"),
        "{body}"
    );
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

#[tokio::test]
async fn a_flood_of_distinct_origins_keeps_fifty_entries_a_route_and_memory_flat() {
    const FLOOD: usize = 20_000;
    const WORKERS: usize = 16;
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config(&backend)).await;
    // Preflights from distinct 2 KiB origins (they never reach the backend), and one origin
    // every tenth request, which must stay in the report with a count of at least its own.
    let pad = "a".repeat(2048);
    let send = |from: usize, to: usize| {
        let url = proxy.url("/api/items");
        let pad = pad.clone();
        tokio::spawn(async move {
            let c = client();
            for i in from..to {
                let origin = if i % 10 == 0 {
                    "https://heavy.example".to_owned()
                } else {
                    format!("https://{i}.{pad}.example")
                };
                let r = c
                    .request(reqwest::Method::OPTIONS, &url)
                    .header("origin", origin)
                    .header("access-control-request-method", "GET")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 403);
            }
        })
    };
    let flood = |from: usize, to: usize| {
        let per = (to - from) / WORKERS;
        let tasks: Vec<_> = (0..WORKERS)
            .map(|w| send(from + w * per, from + (w + 1) * per))
            .collect();
        async move {
            for t in tasks {
                t.await.unwrap();
            }
        }
    };
    // Warm up first (connection pools, allocator arenas), then measure the rest.
    flood(0, 2_000).await;
    let before = rss_kib();
    flood(2_000, FLOOD).await;
    let after = rss_kib();

    // 18,000 origins of 2 KiB kept whole would be 36 MiB.
    let grown = after.saturating_sub(before);
    println!("RSS: {before} KiB before the flood, {after} KiB after");
    assert!(grown < 16 * 1024, "RSS grew by {grown} KiB over the flood");

    let got = report(&proxy).await;
    let api = entries(&got, "api");
    assert_eq!(api.len(), 50);
    assert!(api.iter().all(|e| e.0.len() <= 256), "origins are cut");
    assert_eq!(got["routes"][0]["refusals"], FLOOD as u64);
    let heavy = &api[0];
    assert_eq!(heavy.0, "https://heavy.example");
    assert!(heavy.3 >= (FLOOD / 10) as u64, "{heavy:?}");
    let max_error = got["routes"][0]["max_error"].as_u64().unwrap();
    assert_eq!(max_error, (FLOOD / 50) as u64);
}

#[tokio::test]
async fn a_reload_keeps_the_counts_of_routes_that_stay_and_drops_the_routes_it_removed() {
    let backend = Backend::start("b").await;
    let (proxy, admin) = (free_addr(), free_addr());
    let d = std::env::temp_dir().join(format!("crossgate-refused-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let path = d.join("config.yaml");
    let yaml = |routes: &str| {
        format!(
            "listen: \"{proxy}\"\nadmin: {{listen: \"{admin}\"}}\nupstreams:\n  b: {{servers: [\"{}\"]}}\ncors_policies:\n  app: {{allow_origins: [\"{APP}\"]}}\nroutes:\n{routes}  - {{name: api, upstream: b, cors: app}}\n",
            backend.addr
        )
    };
    std::fs::write(
        &path,
        yaml("  - {name: old, path: /old/, upstream: b, cors: app}\n"),
    )
    .unwrap();
    let child = Running(
        std::process::Command::new(env!("CARGO_BIN_EXE_crossgate"))
            .args(["run", "--no-watch", "--config"])
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until_listening(proxy).await;
    wait_until_listening(admin).await;
    let refuse = |path: &'static str| async move {
        let r = client()
            .get(format!("http://{proxy}{path}"))
            .header("origin", EVIL)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    };
    refuse("/api/x").await;
    refuse("/api/x").await;
    refuse("/old/x").await;
    let before = report_at(admin).await;
    assert_eq!(entries(&before, "old").len(), 1);

    std::fs::write(&path, yaml("")).unwrap();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let reloaded = "crossgate_config_reloads_total{result=\"success\"} 2";
    loop {
        let metrics = client()
            .get(format!("http://{admin}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.lines().any(|l| l == reloaded) {
            break;
        }
        assert!(Instant::now() < deadline, "no reload within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    refuse("/api/x").await;
    let after = report_at(admin).await;
    assert_eq!(
        entries(&after, "api"),
        [entry(EVIL, "origin_not_listed", "denied", 3)]
    );
    assert!(entries(&after, "old").is_empty(), "{after}");
    let _ = std::fs::remove_dir_all(&d);
}
