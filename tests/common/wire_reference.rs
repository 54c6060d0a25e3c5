//! The differential reference for crossgate's HTTP/1 request reading, shared by
//! `tests/wire.rs` and the `wire_differential` fuzz target: the requests crossgate reads off a
//! stream, and those hyper's HTTP/1 server reads off the same bytes (from an in-memory duplex
//! stream, on a runtime kept for the process).

use std::convert::Infallible;
use std::sync::{Arc, Mutex, OnceLock};

use crossgate::wire::chunked::{Chunked, Step};
use crossgate::wire::request::{Body, Request};
use crossgate::wire::Version;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One request as a parser read it: method, target, HTTP/1 minor version, the fields
/// (lowercased names, sorted: hyper's map does not keep their order across names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub method: Vec<u8>,
    pub target: Vec<u8>,
    pub minor: u8,
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The requests crossgate reads off `input`, one after the other, until it refuses one or
/// the input ends; with the byte each one's message ended at.
pub fn crossgate_reads(input: &[u8]) -> Vec<(Read, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    let mut req = Request::default();
    while at < input.len() {
        let buf = &input[at..];
        if req.parse(buf, 64 * 1024) != Ok(true) {
            break;
        }
        let body_end = match req.body {
            Body::None => Some(req.len),
            Body::Length(n) => usize::try_from(n)
                .ok()
                .and_then(|n| req.len.checked_add(n))
                .filter(|&end| end <= buf.len()),
            Body::Chunked => match Chunked::new().feed(&buf[req.len..]) {
                Ok(Step::End(n)) => Some(req.len + n),
                _ => None,
            },
        };
        let Some(end) = body_end else { break };
        let mut fields: Vec<_> = req
            .fields
            .iter()
            .map(|f| {
                (
                    f.name.of(buf).to_ascii_lowercase(),
                    f.value.of(buf).to_vec(),
                )
            })
            .collect();
        fields.sort();
        let read = Read {
            method: req.method.of(buf).to_vec(),
            target: req.target.of(buf).to_vec(),
            minor: u8::from(req.version == Version::Http11),
            fields,
        };
        at += end;
        out.push((read, at));
        if !req.keep_alive() {
            // HTTP/1.0 without keep-alive, or `Connection: close`: the last message.
            break;
        }
    }
    out
}

/// The requests hyper's HTTP/1 server reads off `input` (each with its whole body read), in
/// order, until it errs or the input ends.
pub fn hyper_reads(input: &[u8]) -> Vec<Read> {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    });
    runtime.block_on(async {
        let (client, server) = tokio::io::duplex(1 << 20);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let record = record.clone();
            async move {
                let (parts, body) = req.into_parts();
                let whole = body.collect().await.is_ok();
                let mut fields: Vec<_> = parts
                    .headers
                    .iter()
                    .map(|(n, v)| (n.as_str().as_bytes().to_vec(), v.as_bytes().to_vec()))
                    .collect();
                fields.sort();
                if whole {
                    record.lock().unwrap().push(Read {
                        method: parts.method.as_str().as_bytes().to_vec(),
                        target: parts.uri.to_string().into_bytes(),
                        minor: u8::from(parts.version == http::Version::HTTP_11),
                        fields,
                    });
                }
                Ok::<_, Infallible>(hyper::Response::new(String::new()))
            }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .half_close(true)
            // crossgate's limit (wire::MAX_FIELDS), not hyper's default 100: the two differ on
            // framing, not on how many fields a head may have.
            .max_headers(256)
            .serve_connection(TokioIo::new(server), service);
        let (mut read_half, mut write_half) = tokio::io::split(client);
        let input = input.to_vec();
        let feed = async move {
            let _ = write_half.write_all(&input).await;
            let _ = write_half.shutdown().await;
        };
        let drain = async move {
            let mut sink = Vec::new();
            let _ = read_half.read_to_end(&mut sink).await;
        };
        let _ = tokio::join!(conn, feed, drain);
        let out = seen.lock().unwrap().clone();
        out
    })
}

/// hyper shows an absolute-form target as the URI it parsed: compared case-insensitively, with
/// the `/` it puts where the target has no path (`http://a` is `http://a/`).
pub fn same_target(ours: &[u8], hyper: &[u8]) -> bool {
    if ours == hyper {
        return true;
    }
    if !ours
        .get(..4)
        .is_some_and(|s| s.eq_ignore_ascii_case(b"http"))
    {
        return false;
    }
    let mut o = ours.to_ascii_lowercase();
    if let Some(start) = o.windows(3).position(|w| w == b"://").map(|i| i + 3) {
        let end = o[start..]
            .iter()
            .position(|&b| b == b'/' || b == b'?')
            .map_or(o.len(), |i| start + i);
        if o.get(end) != Some(&b'/') {
            o.insert(end, b'/');
        }
    }
    hyper.eq_ignore_ascii_case(&o)
}
