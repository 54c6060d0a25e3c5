//! What SIGTERM and SIGQUIT do to what is open, through the real binary: WebSockets get a 1001
//! close when the grace period ends, the admin listener answers (503 on /readyz) while the
//! process drains, and after a SIGQUIT hand-over the old process exits once drained rather
//! than after its whole grace period.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{client, free_addr, signal, wait_until_listening, Backend, Running};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

/// A private directory for one test's config and upgrade socket.
fn dir(name: &str) -> PathBuf {
    common::private_dir("drain", name)
}

fn start(config: &Path, extra: &[&str]) -> Running {
    common::run_crossgate(config, extra, &[], Stdio::null())
}

/// Waits for the process to exit (`within` at most) and returns how long that took.
async fn exits_within(mut child: Running, within: Duration) -> Duration {
    let started = Instant::now();
    tokio::task::spawn_blocking(move || loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "the process did not exit within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    })
    .await
    .unwrap()
}

fn config(
    proxy: std::net::SocketAddr,
    admin: std::net::SocketAddr,
    backend: &Backend,
    server: &str,
) -> String {
    format!(
        "listen: \"{proxy}\"\nadmin: {{listen: \"{admin}\"}}\nserver: {{{server}}}\nupstreams:\n  b: {{servers: [\"{}\"]}}\ncors_policies:\n  app: {{allow_origins: [https://app.example.com]}}\nroutes:\n  - {{name: ws, path: /ws/, upstream: b, cors: app, websocket: {{idle_timeout: 60s}}}}\n  - {{name: api, path: /, upstream: b, cors: app}}\n",
        backend.addr
    )
}

#[tokio::test]
async fn websockets_get_a_1001_close_when_the_grace_period_ends() {
    let backend = Backend::start("b").await;
    let (proxy, admin) = (free_addr(), free_addr());
    let d = dir("ws");
    let path = d.join("config.yaml");
    std::fs::write(
        &path,
        config(
            proxy,
            admin,
            &backend,
            "grace_period: 1s, shutdown_timeout: 1s",
        ),
    )
    .unwrap();
    let child = start(&path, &["--no-watch"]);
    wait_until_listening(proxy).await;
    let mut req = format!("ws://{proxy}/ws/echo")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("origin", "https://app.example.com".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.send(Message::text("before")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("before"));

    signal(&child, "-TERM");
    // The WebSocket outlives the 1 s grace period; then the page sees 1001 "going away", a
    // close it can reconnect on, not a broken connection (1006).
    let next = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("no close within 10 s")
        .expect("the connection ended without a close frame")
        .expect("the connection broke without a close frame");
    match next {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("expected a 1001 close, got {other:?}"),
    }
    // The backend got its close too (the echo server logs the code a client closed with).
    backend.wait_for(1, |s| s.path == "/ws-closed/1001").await;
    exits_within(child, Duration::from_secs(10)).await;
}

#[tokio::test]
async fn the_admin_listener_answers_while_the_process_drains() {
    let backend = Backend::start("b").await;
    let (proxy, admin) = (free_addr(), free_addr());
    let d = dir("admin");
    let path = d.join("config.yaml");
    std::fs::write(&path, config(proxy, admin, &backend, "grace_period: 20s")).unwrap();
    let child = start(&path, &["--no-watch"]);
    wait_until_listening(proxy).await;
    wait_until_listening(admin).await;
    let ready = |admin| async move {
        let r = client()
            .get(format!("http://{admin}/readyz"))
            .send()
            .await
            .expect("the admin listener did not answer");
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!(ready(admin).await.0, 200);

    let slow = tokio::spawn(client().get(format!("http://{proxy}/slow?ms=3000")).send());
    backend.wait_for(1, |s| s.path == "/slow").await;
    signal(&child, "-TERM");
    // Not ready from the signal on, and still answering.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = ready(admin).await;
        if status == 503 {
            assert_eq!(body, "not ready: draining\n");
            break;
        }
        assert_eq!(status, 200);
        assert!(Instant::now() < deadline, "/readyz never said draining");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The drain can be watched: the slow request is still in flight.
    let metrics = client()
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .expect("no /metrics while draining")
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == "crossgate_requests_in_flight 1"),
        "{metrics}"
    );
    let r = slow.await.unwrap().unwrap();
    assert_eq!(r.status(), 200);
    exits_within(child, Duration::from_secs(10)).await;
}

/// After SIGQUIT, pingora keeps the old process accepting for its 5 s hand-over window; then
/// the old process drains as on SIGTERM and exits once nothing is in flight, not after its
/// whole (here 60 s) grace period.
#[tokio::test]
async fn after_sigquit_the_old_process_exits_once_drained() {
    let backend = Backend::start("b").await;
    let (proxy, admin) = (free_addr(), free_addr());
    let d = dir("quit");
    let path = d.join("config.yaml");
    let sock = d.join("upgrade.sock");
    std::fs::write(
        &path,
        config(
            proxy,
            admin,
            &backend,
            &format!("grace_period: 60s, upgrade_sock: \"{}\"", sock.display()),
        ),
    )
    .unwrap();
    let old = start(&path, &["--no-watch"]);
    wait_until_listening(proxy).await;
    let new = start(&path, &["--upgrade", "--no-watch"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        assert!(
            Instant::now() < deadline,
            "the new process never opened its socket"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // In flight on the old process when the sockets are handed over: it finishes there.
    let slow = tokio::spawn(client().get(format!("http://{proxy}/slow?ms=1500")).send());
    backend.wait_for(1, |s| s.path == "/slow").await;
    signal(&old, "-QUIT");
    let took = exits_within(old, Duration::from_secs(30)).await;
    assert!(
        took < Duration::from_secs(20),
        "the old process took {took:?}: it waited out its grace period"
    );
    assert_eq!(slow.await.unwrap().unwrap().status(), 200);
    // The new process serves.
    let r = client()
        .get(format!("http://{proxy}/after"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(new);
}
