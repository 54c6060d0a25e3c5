//! End to end in a real headless Chromium (Debian's `chromium` and `chromium-driver`, driven
//! over WebDriver with fantoccini): a page on one loopback origin uses crossgate on another
//! through every channel, and a page on an unlisted origin is refused.
//!
//! One test runs the scenarios in order in one browser (starting Chromium per scenario would
//! cost more than the scenarios) and names every scenario that failed.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{dead_addr, Backend, Proxy};
use fantoccini::wd::TimeoutConfiguration;
use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Value};

const INSTALL: &str = "install Chromium and its WebDriver: `apt-get install -y chromium chromium-driver` (Debian; `cargo xtask test` does this)";

struct Browser {
    client: Client,
    driver: Child,
    _profile: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn find(tool: &str, candidates: &[&str]) -> String {
    candidates
        .iter()
        .find(|p| std::path::Path::new(p).exists())
        .map(|p| p.to_string())
        .unwrap_or_else(|| panic!("{tool} not found (looked at {candidates:?}): {INSTALL}"))
}

async fn start_browser() -> Browser {
    let chromium = find(
        "Chromium",
        &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
    );
    let chromedriver = find(
        "chromedriver",
        &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
    );
    // Port 0: chromedriver picks a free port and says which.
    let mut driver = Command::new(chromedriver)
        .arg("--port=0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start chromedriver: {e}: {INSTALL}"));
    let stdout = driver.stdout.take().unwrap();
    let port = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        let port = lines.by_ref().map_while(Result::ok).find_map(|l| {
            l.split("started successfully on port ")
                .nth(1)
                .and_then(|p| p.trim_end_matches('.').trim().parse::<u16>().ok())
        });
        // Keep draining so chromedriver never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        port
    })
    .await
    .unwrap()
    .expect("chromedriver did not say which port it listens on");

    let profile = TempDir(
        std::env::temp_dir().join(format!("crossgate-chromium-{}-{port}", std::process::id())),
    );
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", format!("--user-data-dir={}", profile.0.display()),
            ],
        },
    });
    let Value::Object(caps) = caps else {
        unreachable!()
    };
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .unwrap_or_else(|e| panic!("cannot start a Chromium session: {e}: {INSTALL}"));
    client
        .update_timeouts(TimeoutConfiguration::new(
            Some(Duration::from_secs(20)),
            Some(Duration::from_secs(20)),
            None,
        ))
        .await
        .unwrap();
    Browser {
        client,
        driver,
        _profile: profile,
    }
}

/// A page server: the origin the browser's page runs on.
async fn page_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(|| async {
        axum::response::Html(
            "<!doctype html><html><head><title>page</title></head><body></body></html>",
        )
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// A backend that moved a page: `/api/moved/...` (under the bridge's `allow_paths`) answers
/// 302 to `/private/secret` (outside them, on a route no page may read), which answers
/// [`SECRET`]. Gives back its address and the paths it was asked for, in order.
async fn redirecting_backend() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    use axum::response::IntoResponse;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let log = asked.clone();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let log = log.clone();
        async move {
            log.lock().unwrap().push(uri.path().to_owned());
            if uri.path().starts_with("/api/moved/") {
                let location = [(axum::http::header::LOCATION, "/private/secret")];
                (axum::http::StatusCode::FOUND, location, "moved").into_response()
            } else {
                SECRET.into_response()
            }
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, asked)
}

const SECRET: &str = "s3cr3t: only for pages on this origin";

/// Runs `body` (the body of an async JS function with `P`, the proxy's base URL, in scope) in
/// the page; returns what it returned, or the error it threw as `{"error": "..."}`.
async fn run(client: &Client, proxy: &str, body: &str) -> Value {
    let script = format!(
        "const P = arguments[0]; const done = arguments[arguments.length - 1];\n\
         (async () => {{ {body} }})().then(v => done({{ ok: v === undefined ? null : v }}), e => done({{ error: String(e) }}));"
    );
    match client.execute_async(&script, vec![json!(proxy)]).await {
        Ok(v) => v,
        Err(e) => json!({ "error": format!("webdriver: {e}") }),
    }
}

fn config(backend: &Backend, redirecting: SocketAddr, page: &str) -> String {
    format!(
        r#"
listen: LISTEN
admin: {{listen: "ADMIN"}}
upstreams:
  b: {{servers: ["{b}"]}}
  r: {{servers: ["{redirecting}"]}}
  dead: {{servers: ["{dead}"]}}
cors_policies:
  app:
    allow_origins: ["{page}"]
    allow_methods: [GET, PUT]
    allow_headers: [x-custom, content-type]
    expose_headers: [x-backend]
    allow_credentials: true
  public: {{allow_origins: any}}
routes:
  - {{name: jsonp, path: /jsonp/, upstream: b, cors: {{allow_origins: ["{page}"]}}, jsonp: {{}}}}
  - {{name: events, path: /events/, upstream: b, cors: app, sse: {{heartbeat: 1s}}}}
  - {{name: ws, path: /ws/, upstream: b, cors: app, websocket: {{}}}}
  - {{name: public, path: /public/, upstream: b, cors: public}}
  - {{name: dead, path: /dead/, upstream: dead, cors: app}}
  - {{name: moved, path: /api/moved/, upstream: r, cors: app}}
  - {{name: private, path: /private/, upstream: r}}
  - {{name: plain, path: /plain/, upstream: b, cors: {{allow_origins: ["{page}"]}}}}
  - {{name: api, path: /, upstream: b, cors: app}}
beacons:
  - {{name: pv, path: /b/pv, forward: {{upstream: b, path: /collect}}}}
bridge: {{path: /_crossgate/bridge, cors: {{allow_origins: ["{page}"], allow_credentials: true}}, allow_paths: [/api/]}}
"#,
        b = backend.addr,
        dead = dead_addr(),
    )
}

struct Suite {
    failures: Vec<String>,
}

impl Suite {
    fn check(&mut self, name: &str, result: &Value, ok: impl FnOnce(&Value) -> bool) {
        let passed = result.get("ok").is_some_and(ok);
        println!(
            "{} {name}: {result}",
            if passed { "ok    " } else { "FAILED" }
        );
        if !passed {
            self.failures.push(format!("{name}: {result}"));
        }
    }
}

#[tokio::test]
async fn every_channel_works_in_a_real_browser() {
    let backend = Backend::start("b").await;
    let page = page_server().await;
    let foreign = page_server().await;
    let (redirecting, asked) = redirecting_backend().await;
    let proxy = Proxy::start(&config(&backend, redirecting, &page)).await;
    let p = format!("http://{}", proxy.addr);
    let browser = start_browser().await;
    let c = &browser.client;
    let mut s = Suite {
        failures: Vec::new(),
    };

    c.goto(&format!("{page}/")).await.unwrap();

    let r = run(c, &p, "const r = await fetch(P + '/api/items'); return { status: r.status, body: await r.json() };").await;
    s.check("CORS fetch", &r, |v| {
        v["status"] == 200 && v["body"]["path"] == "/api/items"
    });

    let r = run(c, &p, "const r = await fetch(P + '/api/items/1', { method: 'PUT', headers: { 'X-Custom': 'yes', 'Content-Type': 'application/json' }, body: '{}' }); return { status: r.status, body: await r.json() };").await;
    s.check("preflighted PUT with a custom header", &r, |v| {
        v["status"] == 200 && v["body"]["method"] == "PUT"
    });
    let seen = backend.requests();
    let put = seen
        .iter()
        .find(|x| x.path == "/api/items/1" && x.method == reqwest::Method::PUT);
    s.check("the PUT reached the backend with its header, the preflight did not", &json!({"ok": {
        "put_header": put.and_then(|x| x.headers.get("x-custom")).map(|h| h.to_str().unwrap().to_owned()),
        "options": seen.iter().filter(|x| x.method == reqwest::Method::OPTIONS).count(),
    }}), |v| v["put_header"] == "yes" && v["options"] == 0);

    let r = run(
        c,
        &p,
        "const r = await fetch(P + '/api/me', { credentials: 'include' }); return r.status;",
    )
    .await;
    s.check("credentialed fetch to a credentials policy", &r, |v| {
        *v == 200
    });
    let r = run(c, &p, "try { await fetch(P + '/public/x', { credentials: 'include' }); return 'read'; } catch (e) { return 'blocked: ' + e.name; }").await;
    s.check(
        "credentialed fetch to an `any` policy is refused by the browser",
        &r,
        |v| v == "blocked: TypeError",
    );

    let r = run(c, &p, "const r = await fetch(P + '/api/items'); return { exposed: r.headers.get('x-backend'), hidden: r.headers.get('date') };").await;
    s.check("exposed header readable, others not", &r, |v| {
        v["exposed"] == "b" && v["hidden"].is_null()
    });

    let r = run(c, &p, "const r = await fetch(P + '/api/status/503'); return { status: r.status, body: await r.text() };").await;
    s.check("backend error status readable", &r, |v| v["status"] == 503);
    let r = run(
        c,
        &p,
        "const r = await fetch(P + '/dead/x'); return r.status;",
    )
    .await;
    s.check("proxy 502 readable", &r, |v| *v == 502);

    let r = run(c, &p, "return await new Promise((res, rej) => { window.gotData = d => res(d); const s = document.createElement('script'); s.src = P + '/jsonp/items?callback=gotData'; s.onerror = () => rej(new Error('script failed')); document.head.appendChild(s); });").await;
    s.check("JSONP script tag", &r, |v| v["path"] == "/jsonp/items");

    let r = run(c, &p, "return await new Promise((res, rej) => { const ws = new WebSocket(P.replace('http:', 'ws:') + '/ws/echo'); ws.onopen = () => ws.send('ping from the page'); ws.onmessage = e => { ws.close(); res(e.data); }; ws.onerror = () => rej(new Error('websocket failed')); });").await;
    s.check("WebSocket echo", &r, |v| v == "ping from the page");

    for creds in [false, true] {
        let r = run(c, &p, &format!("return await new Promise((res, rej) => {{ const got = []; const es = new EventSource(P + '/events/sse-paced?gap=100', {{ withCredentials: {creds} }}); es.onmessage = e => {{ got.push(e.data); if (got.length === 2) {{ es.close(); res(got); }} }}; es.onerror = () => {{ if (got.length < 2) {{ es.close(); rej(new Error('eventsource failed after ' + got.length)); }} }}; }});")).await;
        s.check(
            &format!("EventSource (withCredentials: {creds})"),
            &r,
            |v| *v == json!(["paced 1", "paced 2"]),
        );
    }

    let r = run(c, &p, "return await new Promise((res, rej) => { const img = new Image(); img.onload = () => res([img.naturalWidth, img.naturalHeight]); img.onerror = () => rej(new Error('image failed')); img.src = P + '/b/pv?event=view&page=%2Fhome'; });").await;
    s.check("beacon image", &r, |v| *v == json!([1, 1]));
    let r = run(
        c,
        &p,
        "return navigator.sendBeacon(P + '/b/pv?event=unload', 'bye from the page');",
    )
    .await;
    s.check("sendBeacon queued", &r, |v| *v == true);
    backend
        .wait_for(1, |x| {
            x.path == "/collect" && x.method == reqwest::Method::POST
        })
        .await;

    let bridge = "await new Promise((res, rej) => { const s = document.createElement('script'); s.src = P + '/_crossgate/bridge/crossgate-bridge.js'; s.onload = res; s.onerror = () => rej(new Error('bridge script failed')); document.head.appendChild(s); });";
    let r = run(c, &p, &format!("{bridge} const b = await CrossgateBridge.connect(); const r = await b.fetch('/api/items?via=bridge', {{ method: 'GET' }}); let refused; try {{ await b.fetch('/other/x'); refused = 'fetched'; }} catch (e) {{ refused = e.message; }} return {{ status: r.status, body: JSON.parse(r.body), refused }};")).await;
    s.check("postMessage bridge", &r, |v| {
        v["status"] == 200
            && v["body"]["path"] == "/api/items"
            && v["refused"]
                .as_str()
                .is_some_and(|m| m.contains("path not allowed"))
    });

    let r = run(c, &p, "const b = await CrossgateBridge.connect(); const out = {}; for (const path of ['/api/..%2Fadmin/x', '/api/..;/admin', '/api/%2e%2e/admin', '/api/a\\\\..\\\\admin']) { try { await b.fetch(path); out[path] = 'fetched'; } catch (e) { out[path] = e.message; } } return out;").await;
    s.check(
        "bridge refuses paths that resolve outside allow_paths",
        &r,
        |v| {
            v.as_object().is_some_and(|o| {
                o.len() == 4
                    && o.values()
                        .all(|m| m.as_str().is_some_and(|m| m.contains("path not allowed")))
            })
        },
    );
    let r = run(c, &p, "const b = await CrossgateBridge.connect(); let method; try { await b.fetch('/api/x', { method: 'PATCH' }); method = 'sent'; } catch (e) { method = e.message; } const r = await b.fetch('/api/x'); return { method, headers: r.headers };").await;
    s.check(
        "bridge applies the policy's methods and exposed headers",
        &r,
        |v| {
            v["method"]
                .as_str()
                .is_some_and(|m| m.contains("method not allowed"))
                && v["headers"]["content-type"] == "application/json"
                && v["headers"]["x-backend"].is_null()
        },
    );
    let r = run(c, &p, "const b = await CrossgateBridge.connect(); try { const r = await b.fetch('/api/moved/to-private'); return { status: r.status, body: r.body }; } catch (e) { return { refused: e.message }; }").await;
    let asked_for = asked.lock().unwrap().clone();
    s.check(
        "bridge refuses a redirect, and its target outside allow_paths is never requested",
        &json!({ "ok": { "answer": r, "asked": asked_for } }),
        |v| {
            v["answer"]["ok"]["refused"]
                .as_str()
                .is_some_and(|m| m.contains("redirect refused"))
                && !v.to_string().contains("s3cr3t")
                && v["asked"] == json!(["/api/moved/to-private"])
        },
    );

    // Each case goes through the bridge and, as a cross-origin fetch, to a route whose policy
    // allows the page but no request header (as the bridge's): Chromium preflights exactly the
    // cases the Fetch standard does not safelist, and crossgate refuses those preflights.
    let cases = json!([
        {"content-type": "text/plain"},
        {"content-type": "application/json"},
        {"Content-Type": "  TEXT/Plain ; charset=utf-8 "},
        {"content-type": "multipart/form-data; boundary=x"},
        {"content-type": "application/x-www-form-urlencoded"},
        {"content-type": "text/plain; charset=\"utf-8\""},
        {"content-type": "text/plain, application/json"},
        {"content-type": "text /plain"},
        {"content-type": "text/plain;a=[b]"},
        {"content-type": "text/plain; x=é"},
        {"content-type": format!("text/plain;x={}", "a".repeat(115))},
        {"content-type": format!("text/plain;x={}", "a".repeat(116))},
        {"accept": "application/json, text/*;q=0.5"},
        {"accept": "a\"b"},
        {"accept": "a{b}"},
        {"accept": "a".repeat(128)},
        {"accept": "a".repeat(129)},
        {"accept-language": "en-US,en;q=0.9"},
        {"accept-language": "en_US"},
        {"content-language": "de-DE, fr"},
        {"content-language": "de/DE"},
        {"range": "bytes=0-99"},
        {"range": "bytes=10-"},
        {"range": "bytes=-500"},
        {"range": "bytes=5-1"},
        {"range": "bytes=0-1,3-4"},
        {"range": "bytes = 0-1"},
        {"x-custom": "1"},
        {"accept": "*/*", "content-language": "en", "x-custom": "1"},
    ]);
    let r = run(c, &p, &format!("const b = await CrossgateBridge.connect(); const cases = {cases}; const out = []; for (const [i, h] of cases.entries()) {{ let bridge, browser; try {{ await b.fetch('/api/headers/' + i, {{ method: 'POST', headers: h, body: 'x' }}); bridge = 'relayed'; }} catch (e) {{ bridge = e.message; }} try {{ await fetch(P + '/plain/headers/' + i, {{ method: 'POST', headers: h, body: 'x' }}); browser = 'sent'; }} catch (e) {{ browser = 'preflighted and refused: ' + e.name; }} out.push({{ headers: h, bridge, browser }}); }} return out;")).await;
    s.check(
        "bridge refuses content-type: application/json and relays text/plain",
        &r,
        |v| {
            v[0]["bridge"] == "relayed"
                && v[1]["bridge"].as_str().is_some_and(|m| {
                    m.contains("header not allowed: content-type: application/json")
                })
        },
    );
    let disagree = r["ok"].as_array().map(|cases| {
        cases
            .iter()
            .filter(|x| (x["bridge"] == "relayed") != (x["browser"] == "sent"))
            .cloned()
            .collect::<Vec<_>>()
    });
    s.check(
        "bridge relays exactly the request headers Chromium sends without a preflight",
        &json!({ "ok": disagree }),
        |v| v.as_array().is_some_and(Vec::is_empty),
    );
    let seen = backend.requests();
    let sent_as = |path: &str| {
        seen.iter().find(|x| x.path == path).map(|x| {
            x.headers
                .get("content-type")
                .map(|h| h.to_str().unwrap().to_owned())
        })
    };
    s.check(
        "the backend got the text/plain request, never the application/json one",
        &json!({ "ok": { "text": sent_as("/api/headers/0"), "json": sent_as("/api/headers/1") } }),
        |v| v["text"] == "text/plain" && v["json"].is_null(),
    );

    // The frame's own origin check (not only CSP's frame-ancestors): a popup is not framed.
    let popup = "const w = window.open(P + '/_crossgate/bridge'); const answer = await new Promise(res => { const t0 = Date.now(); const onMsg = ev => { if (ev.source === w && ev.data && ev.data.type === 'ready') { window.removeEventListener('message', onMsg); res('ready'); } }; window.addEventListener('message', onMsg); const tick = () => { if (Date.now() - t0 > 3000) { window.removeEventListener('message', onMsg); res('no answer'); return; } try { w.postMessage({ crossgate: 1, id: 0, type: 'hello' }, new URL(P).origin); } catch (e) {} setTimeout(tick, 100); }; tick(); }); w.close(); return answer;";
    let r = run(c, &p, popup).await;
    s.check("bridge answers an allowed origin in a popup", &r, |v| {
        v == "ready"
    });

    // A page on an origin that is not listed.
    c.goto(&format!("{foreign}/")).await.unwrap();
    let before = backend.requests().len();
    let r = run(c, &p, "try { await fetch(P + '/api/items'); return 'read'; } catch (e) { return 'blocked: ' + e.name; }").await;
    s.check("unlisted origin: fetch blocked", &r, |v| {
        v == "blocked: TypeError"
    });
    let r = run(c, &p, "try { await fetch(P + '/api/items/2', { method: 'PUT', headers: { 'X-Custom': '1' } }); return 'sent'; } catch (e) { return 'blocked: ' + e.name; }").await;
    s.check("unlisted origin: preflighted PUT blocked", &r, |v| {
        v == "blocked: TypeError"
    });
    let after: Vec<_> = backend.requests().into_iter().skip(before).collect();
    s.check("unlisted origin: the simple GET was forwarded, the PUT never was", &json!({"ok": {
        "gets": after.iter().filter(|x| x.method == reqwest::Method::GET && x.path == "/api/items").count(),
        "puts": after.iter().filter(|x| x.method == reqwest::Method::PUT).count(),
    }}), |v| v["gets"] == 1 && v["puts"] == 0);
    let r = run(c, &p, "return await new Promise(res => { window.gotData = () => res('ran'); const s = document.createElement('script'); s.src = P + '/jsonp/items?callback=gotData'; s.onerror = () => res('refused'); document.head.appendChild(s); });").await;
    s.check("unlisted origin: JSONP refused", &r, |v| v == "refused");
    let r = run(c, &p, "return await new Promise(res => { const ws = new WebSocket(P.replace('http:', 'ws:') + '/ws/echo'); ws.onopen = () => { ws.close(); res('open'); }; ws.onerror = () => res('refused'); });").await;
    s.check("unlisted origin: WebSocket refused", &r, |v| v == "refused");
    let r = run(c, &p, &format!("{bridge} try {{ await CrossgateBridge.connect(undefined, {{ timeoutMs: 3000 }}); return 'connected'; }} catch (e) {{ return 'refused'; }}")).await;
    s.check("unlisted origin: bridge refused", &r, |v| v == "refused");
    let r = run(c, &p, popup).await;
    s.check(
        "unlisted origin: the bridge frame itself does not answer",
        &r,
        |v| v == "no answer",
    );

    // The admin listener's report of who was refused, as an operator's browser shows it,
    // after a request from an origin crafted to inject markup into it.
    let hostile = "https://x<script>document.title='pwned'</script><img id=pwned src=x>";
    let r = common::client()
        .get(proxy.url("/api/items"))
        .header("origin", hostile)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let admin = proxy.admin.expect("the config has an admin listener");
    c.goto(&format!("http://{admin}/refused.html"))
        .await
        .unwrap();
    let r = run(c, &p, "return { title: document.title, rows: [...document.querySelectorAll('tr.entry')].map(tr => [...tr.cells].map(td => td.textContent)), injected: document.querySelectorAll('script, img, #pwned').length, refresh: document.querySelector('meta[http-equiv=refresh]') !== null };").await;
    let row = |origin: &str, reason: &str| {
        r["ok"]["rows"].as_array().is_some_and(|rows| {
            rows.iter()
                .any(|x| x[0] == origin && x[1] == "denied" && x[2] == reason)
        })
    };
    let refused_page = [
        ("origin_not_listed", row(&foreign, "origin_not_listed")),
        ("referer", row(&foreign, "referer")),
        ("websocket_origin", row(&foreign, "websocket_origin")),
        ("hostile, as text", row(hostile, "origin_not_listed")),
    ];
    s.check(
        "the refused-origins page lists the unlisted page's refusals and the hostile origin as text",
        &json!({ "ok": { "report": r, "found": refused_page } }),
        |v| {
            v["found"]
                .as_array()
                .is_some_and(|f| f.iter().all(|x| x[1] == true))
                && v["report"]["ok"]["title"] == "crossgate: refused origins"
                && v["report"]["ok"]["injected"] == 0
                && v["report"]["ok"]["refresh"] == true
        },
    );

    let _ = browser.client.clone().close().await;
    assert!(
        s.failures.is_empty(),
        "browser scenarios failed:\n{}",
        s.failures.join("\n")
    );
}
