//! A raw HTTP/1 backend for protocol tests: it reads each request (head, and a body by its
//! Content-Length or chunked framing), records it with the connection it came on and every
//! byte each connection carried, and answers with the bytes a test scripts, including what a
//! well-behaved server would not send (a short body, a close in the middle, bytes after the
//! answer, written only when the test says so).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};

/// One request as the raw backend read it.
#[derive(Debug, Clone)]
pub struct Got {
    pub head: String,
    pub body: Vec<u8>,
    /// Which of the backend's connections it came on (0, 1, ...).
    pub conn: usize,
}

impl Got {
    /// A header's value, by case-insensitive name (the first of its lines).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.split("\r\n").skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
    pub fn headers_named(&self, name: &str) -> usize {
        self.head
            .split("\r\n")
            .skip(1)
            .filter(|l| {
                l.split_once(':')
                    .is_some_and(|(n, _)| n.eq_ignore_ascii_case(name))
            })
            .count()
    }
}

/// What the backend does for a request: bytes to write, then whether to close, or to echo
/// whatever comes next as `echo:<bytes>` (an upgraded connection).
pub struct Answer {
    pub bytes: Vec<u8>,
    pub close: bool,
    pub echo: bool,
    /// Bytes written after the answer, once the gate gives a permit (`Later`).
    pub later: Option<Later>,
}

/// Bytes a backend writes after its answer, when the test opens `gate`; `written` counts
/// the times it did.
#[derive(Clone)]
pub struct Later {
    pub bytes: Vec<u8>,
    pub gate: Arc<Semaphore>,
    pub written: Counter,
}

/// A count that tests can wait on.
#[derive(Clone, Default)]
pub struct Counter(Arc<(Mutex<usize>, Notify)>);

impl Counter {
    pub fn add(&self) {
        *self.0 .0.lock().unwrap() += 1;
        self.0 .1.notify_waiters();
    }

    pub fn get(&self) -> usize {
        *self.0 .0.lock().unwrap()
    }

    /// Waits until the count is at least `n` (10 s at most).
    pub async fn wait_for(&self, n: usize) {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let notified = self.0 .1.notified();
                if self.get() >= n {
                    return;
                }
                notified.await;
            }
        })
        .await
        .expect("the count was not reached within 10 s");
    }
}

pub fn answer(bytes: &str) -> Answer {
    Answer {
        bytes: bytes.as_bytes().to_vec(),
        close: false,
        echo: false,
        later: None,
    }
}

/// `bytes`, and `later` written after them once its gate opens.
pub fn answer_then_later(bytes: &str, later: &Later) -> Answer {
    Answer {
        later: Some(later.clone()),
        ..answer(bytes)
    }
}

pub fn answer_then_close(bytes: &str) -> Answer {
    Answer {
        close: true,
        ..answer(bytes)
    }
}

pub fn answer_then_echo(bytes: &str) -> Answer {
    Answer {
        echo: true,
        ..answer(bytes)
    }
}

type Script = Arc<dyn Fn(&Got) -> Answer + Send + Sync>;

/// A backend that reads each request (head, and a body by its Content-Length or chunked
/// framing) and answers with the script's bytes.
pub struct RawBackend {
    pub addr: SocketAddr,
    got: Arc<Mutex<Vec<Got>>>,
    /// Every byte each connection carried to the backend, by connection.
    raw: Arc<Mutex<Vec<Vec<u8>>>>,
    /// Told each time body bytes arrive.
    progress: Arc<Notify>,
    /// Body bytes (with their chunked framing) received since the test last set it to 0.
    pub body_bytes: Arc<Mutex<usize>>,
    /// Connections the backend has closed or seen closed.
    closed: Arc<(Mutex<usize>, Notify)>,
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The length of a whole chunked body at the start of `buf` (its chunks, the last chunk and
/// the trailer section), or None while it is not all there.
fn chunked_len(buf: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let line = find(&buf[at..], b"\r\n")?;
        let size_text = String::from_utf8_lossy(&buf[at..at + line]);
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        at += line + 2;
        if size == 0 {
            // Trailer fields, each ending in CRLF, then an empty line.
            loop {
                let end = find(&buf[at..], b"\r\n")?;
                at += end + 2;
                if end == 0 {
                    return Some(at);
                }
            }
        }
        if buf.len() < at + size + 2 {
            return None;
        }
        at += size + 2;
    }
}

impl RawBackend {
    pub async fn start(script: impl Fn(&Got) -> Answer + Send + Sync + 'static) -> RawBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let progress = Arc::new(Notify::new());
        let body_bytes = Arc::new(Mutex::new(0));
        let script: Script = Arc::new(script);
        let closed = Arc::new((Mutex::new(0), Notify::new()));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let (g, p, b, c, r) = (
            got.clone(),
            progress.clone(),
            body_bytes.clone(),
            closed.clone(),
            raw.clone(),
        );
        tokio::spawn(async move {
            let mut conns = 0;
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    return;
                };
                let (g, p, b, c, script) =
                    (g.clone(), p.clone(), b.clone(), c.clone(), script.clone());
                let conn = conns;
                conns += 1;
                r.lock().unwrap().push(Vec::new());
                let r = r.clone();
                tokio::spawn(async move {
                    let s = Recorded { s, conn, raw: r };
                    serve(s, g, p, b, script).await;
                    *c.0.lock().unwrap() += 1;
                    c.1.notify_waiters();
                });
            }
        });
        RawBackend {
            addr,
            got,
            raw,
            progress,
            body_bytes,
            closed,
        }
    }

    pub fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// The bytes each connection carried to the backend, by connection.
    pub fn raw(&self) -> Vec<Vec<u8>> {
        self.raw.lock().unwrap().clone()
    }

    /// Waits until the backend has closed `n` connections.
    pub async fn wait_for_closed(&self, n: usize) {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let notified = self.closed.1.notified();
                if *self.closed.0.lock().unwrap() >= n {
                    return;
                }
                notified.await;
            }
        })
        .await
        .expect("the backend did not close within 10 s");
    }

    /// Waits until at least `n` body bytes have arrived.
    pub async fn wait_for_body_bytes(&self, n: usize) {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let notified = self.progress.notified();
                if *self.body_bytes.lock().unwrap() >= n {
                    return;
                }
                notified.await;
            }
        })
        .await
        .expect("the body did not reach the backend within 10 s");
    }
}

/// A backend connection that records what it reads.
struct Recorded {
    s: TcpStream,
    conn: usize,
    raw: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Recorded {
    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.s.read(buf).await?;
        self.raw.lock().unwrap()[self.conn].extend_from_slice(&buf[..n]);
        Ok(n)
    }

    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.s.write_all(bytes).await
    }
}

async fn serve(
    mut s: Recorded,
    got: Arc<Mutex<Vec<Got>>>,
    progress: Arc<Notify>,
    body_bytes: Arc<Mutex<usize>>,
    script: Script,
) {
    let mut buf = Vec::new();
    loop {
        // The head.
        let end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 8192];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end);
        // What came with the head is the body's start.
        *body_bytes.lock().unwrap() += buf.len();
        progress.notify_waiters();
        let mut req = Got {
            head,
            body: Vec::new(),
            conn: s.conn,
        };
        // The body: by Content-Length, or chunked up to the last chunk and its trailer.
        let chunked = req
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let length: usize = req
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        loop {
            let complete = if chunked {
                chunked_len(&buf)
            } else {
                (buf.len() >= length).then_some(length)
            };
            if let Some(n) = complete {
                req.body = buf.drain(..n).collect();
                break;
            }
            let mut chunk = [0u8; 65536];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    *body_bytes.lock().unwrap() += n;
                    progress.notify_waiters();
                }
            }
        }
        let a = script(&req);
        got.lock().unwrap().push(req);
        if s.write_all(&a.bytes).await.is_err() {
            return;
        }
        if let Some(later) = a.later {
            // One permit per write: the test opens the gate once for each.
            if let Ok(permit) = later.gate.acquire().await {
                permit.forget();
            }
            if s.write_all(&later.bytes).await.is_err() {
                return;
            }
            later.written.add();
        }
        if a.close {
            return;
        }
        if a.echo {
            loop {
                if !buf.is_empty() {
                    let mut reply = b"echo:".to_vec();
                    reply.append(&mut buf);
                    if s.write_all(&reply).await.is_err() {
                        return;
                    }
                }
                let mut chunk = [0u8; 8192];
                match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
        }
    }
}
