//! The postMessage bridge's files as served over HTTP. Its behaviour in a browser (origin and
//! path checks, answers to the exact origin) is tested in tests/browser.rs.

mod common;

use common::{client, dead_addr, header, Proxy};

fn config() -> String {
    format!(
        r#"
listen: LISTEN
upstreams:
  b: {{servers: ["{}"]}}
cors_policies:
  app: {{allow_origins: [https://app.example.com, "https://*.example.org"], allow_credentials: true}}
bridge: {{path: /_crossgate/bridge, cors: app, allow_paths: [/api/]}}
routes:
  - {{name: api, path: /api/, upstream: b, cors: app}}
"#,
        dead_addr()
    )
}

#[tokio::test]
async fn the_bridge_page_may_only_be_framed_by_allowed_origins() {
    let proxy = Proxy::start(&config()).await;
    let r = client()
        .get(proxy.url("/_crossgate/bridge"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(header(&r, "x-frame-options"), None);
    let csp = header(&r, "content-security-policy").unwrap().to_owned();
    assert!(
        csp.contains("frame-ancestors https://app.example.com https://*.example.org;"),
        "{csp}"
    );
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let page = r.text().await.unwrap();
    assert!(page.contains(r#""paths":["/api/"]"#), "{page}");
    assert!(
        page.contains(r#"<script src="/_crossgate/bridge/bridge-frame.js"></script>"#),
        "{page}"
    );
}

#[tokio::test]
async fn the_scripts_are_served_from_the_binary() {
    let proxy = Proxy::start(&config()).await;
    let r = client()
        .get(proxy.url("/_crossgate/bridge/bridge-frame.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&r, "content-type"),
        Some("application/javascript; charset=utf-8")
    );
    assert_eq!(r.text().await.unwrap(), crossgate::bridge::FRAME_JS);
    let r = client()
        .get(proxy.url("/_crossgate/bridge/crossgate-bridge.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "x-content-type-options"), Some("nosniff"));
    assert_eq!(
        header(&r, "cross-origin-resource-policy"),
        Some("cross-origin")
    );
    assert!(r.text().await.unwrap().contains("CrossgateBridge"));
    let r = client()
        .post(proxy.url("/_crossgate/bridge"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
}
