//! Load for the scenarios wrk cannot drive (benches/compare.py runs it):
//!
//!   loadgen ws-echo URL COUNT         WebSocket echo round trips; prints p50/p99 in µs and msgs/s
//!   loadgen ws-idle URL COUNT         opens COUNT WebSockets, prints "ready", holds them until stdin closes
//!   loadgen sse-first URL COUNT       time to the first event of an SSE stream, COUNT times; p50/p99 in µs
//!
//! Every connection sends `Origin: http://bench.example` (the origin the peers' configs allow).

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const ORIGIN: &str = "http://bench.example";

fn percentile(sorted: &[u128], p: f64) -> u128 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(name: &str, mut micros: Vec<u128>, elapsed: Duration) {
    micros.sort_unstable();
    println!(
        "{name} count={} p50_us={} p99_us={} per_s={:.0}",
        micros.len(),
        percentile(&micros, 0.5),
        percentile(&micros, 0.99),
        micros.len() as f64 / elapsed.as_secs_f64()
    );
}

async fn ws_connect(
    url: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut req = url.into_client_request().expect("a ws:// URL");
    req.headers_mut().insert("origin", ORIGIN.parse().unwrap());
    tokio_tungstenite::connect_async(req)
        .await
        .expect("WebSocket handshake")
        .0
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let (Some(mode), Some(url), Some(count)) = (args.first(), args.get(1), args.get(2)) else {
        // `cargo bench` runs every bench target: nothing to do without arguments.
        return;
    };
    let count: usize = count.parse().expect("COUNT");
    match mode.as_str() {
        "ws-echo" => {
            let mut ws = ws_connect(url).await;
            let payload = "x".repeat(64);
            let mut times = Vec::with_capacity(count);
            let start = Instant::now();
            for _ in 0..count {
                let t = Instant::now();
                ws.send(Message::text(payload.clone())).await.unwrap();
                ws.next().await.expect("an echo").unwrap();
                times.push(t.elapsed().as_micros());
            }
            report("ws-echo", times, start.elapsed());
        }
        "ws-idle" => {
            let mut held = Vec::with_capacity(count);
            for _ in 0..count {
                held.push(ws_connect(url).await);
            }
            println!("ready {}", held.len());
            let mut line = String::new();
            let _ =
                tokio::task::spawn_blocking(move || std::io::stdin().read_line(&mut line)).await;
            drop(held);
        }
        "sse-first" => {
            let client = reqwest::Client::new();
            let mut times = Vec::with_capacity(count);
            let start = Instant::now();
            for _ in 0..count {
                let t = Instant::now();
                let r = client
                    .get(url)
                    .header("accept", "text/event-stream")
                    .header("origin", ORIGIN)
                    .send()
                    .await
                    .unwrap();
                let mut body = r.bytes_stream();
                let mut seen = Vec::new();
                while !seen.windows(2).any(|w| w == b"\n\n") {
                    seen.extend_from_slice(&body.next().await.expect("an event").unwrap());
                }
                times.push(t.elapsed().as_micros());
            }
            report("sse-first", times, start.elapsed());
        }
        other => panic!("unknown mode {other}"),
    }
}
