//! Image-ping beacons: `GET` answered with a 1x1 transparent GIF (`new Image().src = ...`),
//! `POST` as `navigator.sendBeacon` sends it answered with 204. Every hit is logged with its
//! query fields (bounded) and, optionally, forwarded to an upstream in the background through a
//! bounded queue: when the queue is full the hit is logged and counted, never waited for.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http::HeaderValue;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::prelude::*;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::sync::{mpsc, Mutex};

use crate::cors::sanitize;
use crate::matcher::HostMatch;
use crate::upstream::Upstream;

/// The smallest transparent GIF: 1x1, one transparent colour (43 bytes).
pub const GIF: &[u8; 43] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff\x21\xf9\x04\x01\x00\x00\x00\x00\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00\x3b";

/// The largest `POST` body accepted (sendBeacon's own limit is 64 KiB).
pub const MAX_BODY: usize = 64 * 1024;

/// Longest key and value logged per query field.
const MAX_KEY: usize = 64;
const MAX_VALUE: usize = 256;

/// A configured beacon.
pub struct Beacon {
    pub name: String,
    pub host: HostMatch,
    pub path: String,
    /// Query fields logged per hit.
    pub max_fields: usize,
    pub forward: Option<Forward>,
}

/// Where hits are forwarded.
pub struct Forward {
    pub upstream: Arc<Upstream>,
    /// The path on the upstream (the query of the hit is kept).
    pub path: String,
}

impl Beacon {
    pub fn matches(&self, host: &str, path: &str) -> bool {
        path == self.path && self.host.matches(host)
    }
}

/// `text/plain` (what sendBeacon sends for a string) or JSON, or no type at all.
pub fn acceptable_type(content_type: Option<&HeaderValue>) -> bool {
    let Some(ct) = content_type else { return true };
    let essence = ct
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "text/plain" || essence == "application/json" || essence.ends_with("+json")
}

/// The query's fields for the log: at most `max` of them, each key and value decoded, made
/// printable and cut to a bounded length. Returns the line and how many fields were left out.
pub fn log_fields(query: Option<&str>, max: usize) -> (String, usize) {
    let mut out = Vec::new();
    let mut skipped = 0;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        if out.len() == max {
            skipped += 1;
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = cut(&sanitize(&decode(k)), MAX_KEY);
        let v = cut(&sanitize(&decode(v)), MAX_VALUE);
        out.push(format!("{k}={v}"));
    }
    (out.join(" "), skipped)
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        s.chars().take(max).chain(['…']).collect()
    }
}

fn decode(s: &str) -> String {
    String::from_utf8_lossy(&crate::percent::decode(s, true).0).into_owned()
}

/// A hit waiting to be forwarded.
pub struct Hit {
    pub beacon: String,
    pub upstream: Arc<Upstream>,
    pub method: &'static str,
    /// Path and query on the upstream.
    pub target: String,
    pub content_type: Option<HeaderValue>,
    pub body: Bytes,
}

/// The bounded queue between request handling and the forwarder.
pub struct Queue {
    tx: mpsc::Sender<Hit>,
    pub dropped: AtomicU64,
}

impl Queue {
    /// A queue of `capacity` hits and the service that drains it.
    pub fn new(capacity: usize) -> (Arc<Queue>, Forwarder) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (
            Arc::new(Queue {
                tx,
                dropped: AtomicU64::new(0),
            }),
            Forwarder {
                rx: Mutex::new(rx),
                connector: Connector::new(None),
            },
        )
    }

    /// Queues a hit without waiting. `false` when the queue is full (the hit is dropped).
    pub fn offer(&self, hit: Hit) -> bool {
        match self.tx.try_send(hit) {
            Ok(()) => true,
            Err(_) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }
}

/// An upstream whose names do not resolve yet has no server to send to.
pub fn no_address(upstream: &str) -> Box<pingora::Error> {
    pingora::Error::explain(
        pingora::ErrorType::ConnectNoRoute,
        format!("upstream {upstream} has no address: its server names do not resolve yet"),
    )
    .into_up()
}

/// Sends queued hits upstream, one at a time.
pub struct Forwarder {
    rx: Mutex<mpsc::Receiver<Hit>>,
    connector: Connector,
}

impl Forwarder {
    async fn send(&self, hit: &Hit) -> Result<u16> {
        let backend = hit
            .upstream
            .select()
            .ok_or_else(|| no_address(&hit.upstream.name))?;
        let peer = &backend.peer;
        let (mut s, _) = self.connector.get_http_session(peer).await?;
        let mut req = RequestHeader::build(hit.method, hit.target.as_bytes(), None)?;
        req.insert_header(http::header::HOST, backend.written.as_str())?;
        req.insert_header("user-agent", "crossgate-beacon")?;
        if let Some(ct) = &hit.content_type {
            req.insert_header(http::header::CONTENT_TYPE, ct.clone())?;
        }
        if hit.method == "POST" {
            req.insert_header(http::header::CONTENT_LENGTH, hit.body.len())?;
        }
        s.write_request_header(Box::new(req)).await?;
        if !hit.body.is_empty() {
            s.write_request_body(hit.body.clone(), true).await?;
        }
        s.finish_request_body().await?;
        s.read_response_header().await?;
        let status = s.response_header().map_or(0, |r| r.status.as_u16());
        while s.read_response_body().await?.is_some() {}
        self.connector
            .release_http_session(s, peer, Some(hit.upstream.timeouts.idle))
            .await;
        Ok(status)
    }
}

#[async_trait]
impl BackgroundService for Forwarder {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut rx = self.rx.lock().await;
        loop {
            let hit = tokio::select! {
                hit = rx.recv() => match hit { Some(h) => h, None => return },
                _ = shutdown.changed() => return,
            };
            match self.send(&hit).await {
                Ok(status) => {
                    tracing::debug!(beacon = %hit.beacon, upstream = %hit.upstream.name, status, "beacon hit forwarded")
                }
                Err(e) => {
                    tracing::warn!(beacon = %hit.beacon, upstream = %hit.upstream.name, error = %e, "beacon hit not forwarded")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gif_is_43_bytes_of_gif89a() {
        assert_eq!(GIF.len(), 43);
        assert!(GIF.starts_with(b"GIF89a"));
        assert_eq!(GIF[GIF.len() - 1], 0x3b);
    }

    #[test]
    fn fields_are_decoded_bounded_and_printable() {
        let (line, skipped) = log_fields(Some("ev=click&page=%2Fhome&x=a%0Ab"), 32);
        assert_eq!(line, "ev=click page=/home x=a\\nb");
        assert_eq!(skipped, 0);
        let many: Vec<String> = (0..40).map(|i| format!("k{i}=v")).collect();
        let (line, skipped) = log_fields(Some(&many.join("&")), 32);
        assert_eq!(line.split(' ').count(), 32);
        assert_eq!(skipped, 8);
        let long = format!("k={}", "v".repeat(1000));
        let (line, _) = log_fields(Some(&long), 32);
        assert!(line.chars().count() < 300, "{}", line.len());
    }

    #[test]
    fn beacon_bodies_are_text_or_json() {
        assert!(acceptable_type(None));
        assert!(acceptable_type(Some(&HeaderValue::from_static(
            "text/plain;charset=UTF-8"
        ))));
        assert!(acceptable_type(Some(&HeaderValue::from_static(
            "application/json"
        ))));
        assert!(!acceptable_type(Some(&HeaderValue::from_static(
            "multipart/form-data; boundary=x"
        ))));
        assert!(!acceptable_type(Some(&HeaderValue::from_static(
            "image/png"
        ))));
    }
}
