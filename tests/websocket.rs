//! WebSocket upgrades through the real proxy with a real client: frames both ways, close
//! codes in both directions, the Origin check and the idle timeout.

mod common;

use std::time::Duration;

use common::{Backend, Proxy};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

fn config(backend: &Backend) -> String {
    format!(
        r#"
listen: LISTEN
upstreams:
  b: {{servers: ["{addr}"]}}
cors_policies:
  app: {{allow_origins: [https://app.example.com]}}
routes:
  - {{name: ws, path: /ws/, upstream: b, cors: app, websocket: {{idle_timeout: 1s}}}}
  - {{name: bots, path: /bots/ws/, upstream: b, cors: app, websocket: {{without_origin: allow}}}}
  - {{name: plain, path: /, upstream: b, cors: app}}
"#,
        addr = backend.addr
    )
}

async fn setup() -> (Backend, Proxy) {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config(&backend)).await;
    (backend, proxy)
}

async fn connect(
    proxy: &Proxy,
    path: &str,
    origin: Option<&str>,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    WsError,
> {
    let mut req = format!("ws://{}{}", proxy.addr, path)
        .into_client_request()
        .unwrap();
    if let Some(o) = origin {
        req.headers_mut().insert("origin", o.parse().unwrap());
    }
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

fn refused_status(e: WsError) -> u16 {
    match e {
        WsError::Http(resp) => resp.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

#[tokio::test]
async fn frames_pass_both_ways() {
    let (_backend, proxy) = setup().await;
    let mut ws = connect(&proxy, "/ws/echo", Some("https://app.example.com"))
        .await
        .unwrap();
    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hello"));
    let big = vec![7u8; 200_000];
    ws.send(Message::binary(big.clone())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(big));
}

/// Every byte through a tunnel whose client takes bytes slowly: the client's socket has a
/// 4 KiB receive buffer, so the proxy's writes to it are partial and what it read waits in
/// the tunnel, while the client sends on. 64 distinct 64 KiB messages each way arrive whole
/// and in order.
#[tokio::test]
async fn a_slow_client_loses_no_bytes_either_way() {
    let (_backend, proxy) = setup().await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(proxy.addr).await.unwrap();
    let mut req = format!("ws://{}/ws/echo", proxy.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("origin", "https://app.example.com".parse().unwrap());
    let (ws, _) = tokio_tungstenite::client_async(req, stream).await.unwrap();
    let (mut tx, mut rx) = ws.split();
    const COUNT: usize = 64;
    let message = |i: usize| {
        Message::binary(
            (0..65_536)
                .map(|j| (i * 31 + j / 7) as u8)
                .collect::<Vec<u8>>(),
        )
    };
    let sender = tokio::spawn(async move {
        for i in 0..COUNT {
            tx.send(message(i)).await.unwrap();
        }
        tx
    });
    for i in 0..COUNT {
        let got = rx.next().await.unwrap().unwrap();
        assert!(got == message(i), "message {i} did not come back as sent");
    }
    let _sink = sender.await.unwrap();
}

#[tokio::test]
async fn close_codes_pass_both_ways() {
    let (backend, proxy) = setup().await;
    // Backend to client.
    let mut ws = connect(&proxy, "/ws/echo", Some("https://app.example.com"))
        .await
        .unwrap();
    ws.send(Message::text("close-me")).await.unwrap();
    match ws.next().await.unwrap().unwrap() {
        Message::Close(Some(f)) => {
            assert_eq!(f.code, CloseCode::from(4001));
            assert_eq!(f.reason.as_str(), "bye");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    // Client to backend.
    let mut ws = connect(&proxy, "/ws/echo", Some("https://app.example.com"))
        .await
        .unwrap();
    ws.close(Some(CloseFrame {
        code: CloseCode::from(4000),
        reason: "done".into(),
    }))
    .await
    .unwrap();
    backend.wait_for(1, |s| s.path == "/ws-closed/4000").await;
    // The handshakes reached the backend's echo route (the refusal tests count on its log).
    assert_eq!(
        backend
            .requests()
            .iter()
            .filter(|s| s.path == "/ws/echo")
            .count(),
        2
    );
}

#[tokio::test]
async fn a_foreign_origin_is_refused_with_403() {
    let (backend, proxy) = setup().await;
    let e = connect(&proxy, "/ws/echo", Some("https://evil.example"))
        .await
        .unwrap_err();
    assert_eq!(refused_status(e), 403);
    assert!(
        backend.requests().is_empty(),
        "the upgrade reached the backend"
    );
}

#[tokio::test]
async fn a_missing_origin_follows_the_route_setting() {
    let (_backend, proxy) = setup().await;
    let e = connect(&proxy, "/ws/echo", None).await.unwrap_err();
    assert_eq!(refused_status(e), 403);
    let mut ws = connect(&proxy, "/bots/ws/echo", None).await.unwrap();
    ws.send(Message::text("beep")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("beep"));
}

#[tokio::test]
async fn upgrades_are_refused_on_routes_that_do_not_enable_them() {
    let (backend, proxy) = setup().await;
    let e = connect(&proxy, "/other/ws/echo", Some("https://app.example.com"))
        .await
        .unwrap_err();
    assert_eq!(refused_status(e), 403);
    assert!(backend.requests().is_empty());
}

#[tokio::test]
async fn other_upgrades_cannot_slip_past_the_checks() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (backend, proxy) = setup().await;
    for (path, upgrade) in [
        ("/ws/echo", "h2c"),
        ("/ws/echo", "websocket, x"),
        ("/other", "websocket, x"),
        ("/other", "h2c"),
    ] {
        let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: {upgrade}\r\nOrigin: https://app.example.com\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = vec![0; 1024];
        let n = s.read(&mut buf).await.unwrap();
        let head = String::from_utf8_lossy(&buf[..n]);
        assert!(head.starts_with("HTTP/1.1 403"), "{path} {upgrade}: {head}");
    }
    assert!(backend.requests().is_empty());
}

#[tokio::test]
async fn an_idle_socket_is_closed_after_the_idle_timeout() {
    let (_backend, proxy) = setup().await;
    let mut ws = connect(&proxy, "/ws/echo", Some("https://app.example.com"))
        .await
        .unwrap();
    ws.send(Message::text("still here")).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("still here")
    );
    // Then silence: the proxy ends the connection (idle_timeout is 1s; 20 s bounds the wait).
    let end = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the idle WebSocket was not closed");
}
