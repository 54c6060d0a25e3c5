//! HTTP/1 message boundaries, kept by the guard under pingora's codec (the engine security
//! issue, point 6). pingora decodes a chunked request body with `httparse::parse_chunk_size`,
//! which takes a bare LF or any other byte into a chunk extension and skips trailer lines
//! unchecked: where a front end ends such a body elsewhere, the bytes after it would be read
//! as a request it never sent. So the guard never hands pingora a byte past the end of the
//! current message:
//!
//! - a head's bytes up to its empty line (a head that grows past `client_max_head_size` before
//!   its empty line is refused: 431); the rest waits here;
//! - then, once the engine has said how the body is framed ([`Body`], from the head pingora
//!   parsed), the body up to its end: a length counted down, or a chunked body followed by
//!   [`Chunked`], strictly (a refusal is a 400);
//! - an upgraded connection's bytes as they come.
//!
//! The engine checks that the head pingora parsed is exactly the bytes handed over as the
//! head: where the two would disagree on its end, the request is refused. Pipelined requests
//! wait here rather than in pingora's buffer, and are handed over one message at a time.

use crate::wire::chunked::{ChunkError, Chunked, Step};

/// How the body after a head is framed, as the engine read the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// This many bytes (0: none).
    Length(u64),
    Chunked,
    /// An upgraded connection: no more messages.
    Opaque,
}

/// Why the guard stopped a connection's reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    /// The head grew past the limit before its end (431).
    TooLarge,
    /// The chunked body broke its grammar (400).
    Body(ChunkError),
    /// The parser asked for more of a head that had ended here (400).
    Disagree,
}

#[derive(Debug)]
enum Mode {
    /// Reading a head: bytes handed over so far, whether the current line has anything but
    /// CR, whether any line had (empty lines before the request line are skipped, as
    /// httparse does).
    Head {
        count: usize,
        line: bool,
        content: bool,
    },
    /// The head has ended: waiting for the engine's [`Body`].
    Await,
    Length(u64),
    Chunked(Chunked),
    Opaque,
}

const HEAD: Mode = Mode::Head {
    count: 0,
    line: false,
    content: false,
};

/// A connection's messages as the guard hands them to pingora.
#[derive(Debug)]
pub(super) struct Messages {
    mode: Mode,
    /// What was read past the current message's end, for the next reads.
    held: Vec<u8>,
    held_at: usize,
    max_head: usize,
    /// The length of the head that ended last (for the engine's check).
    pub(super) head_len: usize,
}

impl Messages {
    pub(super) fn new(max_head: usize) -> Messages {
        Messages {
            mode: HEAD,
            held: Vec::new(),
            held_at: 0,
            max_head,
            head_len: 0,
        }
    }

    /// The engine's word on the body after the head that ended.
    pub(super) fn body(&mut self, body: Body) {
        self.mode = match body {
            Body::Opaque => Mode::Opaque,
            Body::Length(0) => HEAD,
            Body::Length(n) => Mode::Length(n),
            Body::Chunked => Mode::Chunked(Chunked::new()),
        };
    }

    /// Whether a head has ended and the engine has not yet said what follows.
    pub(super) fn awaiting(&self) -> bool {
        matches!(self.mode, Mode::Await)
    }

    /// Bytes read earlier past a message's end, handed over (up to `room`, and up to the
    /// current message's end) before the connection is read again.
    pub(super) fn take_held(&mut self, room: usize) -> Option<Result<&[u8], Refused>> {
        if self.held_at == self.held.len() || room == 0 {
            return None;
        }
        let end = self.held.len().min(self.held_at + room);
        let start = self.held_at;
        let n = match admit(&mut self.mode, &self.held[start..end], self.max_head) {
            Ok((n, head)) => {
                if let Some(len) = head {
                    self.head_len = len;
                }
                n
            }
            Err(e) => return Some(Err(e)),
        };
        self.held_at += n;
        Some(Ok(&self.held[start..start + n]))
    }

    /// After [`Self::take_held`]'s bytes were copied out: an emptied buffer is freed (an idle
    /// connection holds none).
    pub(super) fn settle_held(&mut self) {
        if self.held_at == self.held.len() {
            self.held = Vec::new();
            self.held_at = 0;
        }
    }

    /// Bytes just read from the connection: how many of them are handed over now; the rest
    /// are kept for the next reads.
    pub(super) fn admit_read(&mut self, read: &[u8]) -> Result<usize, Refused> {
        let (n, head) = admit(&mut self.mode, read, self.max_head)?;
        if let Some(len) = head {
            self.head_len = len;
        }
        if n < read.len() {
            self.held.extend_from_slice(&read[n..]);
        }
        Ok(n)
    }
}

/// How many of `bytes` belong to the current message (at least one, unless refused), and
/// the head's length when a head ended in them.
fn admit(
    mode: &mut Mode,
    bytes: &[u8],
    max_head: usize,
) -> Result<(usize, Option<usize>), Refused> {
    match mode {
        Mode::Opaque => Ok((bytes.len(), None)),
        Mode::Await => Err(Refused::Disagree),
        Mode::Length(left) => {
            let n = usize::try_from(*left)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            *left -= n as u64;
            if *left == 0 {
                *mode = HEAD;
            }
            Ok((n, None))
        }
        Mode::Chunked(c) => match c.feed(bytes).map_err(Refused::Body)? {
            Step::More => Ok((bytes.len(), None)),
            Step::End(n) => {
                *mode = HEAD;
                Ok((n, None))
            }
        },
        Mode::Head {
            count,
            line,
            content,
        } => {
            let mut start = 0;
            for nl in memchr::memchr_iter(b'\n', bytes) {
                *line |= bytes[start..nl].iter().any(|&b| b != b'\r');
                if !*line && *content {
                    // An empty line after a request line: the head ends with this LF.
                    let n = nl + 1;
                    let len = *count + n;
                    if len > max_head {
                        return Err(Refused::TooLarge);
                    }
                    *mode = Mode::Await;
                    return Ok((n, Some(len)));
                }
                *content |= *line;
                *line = false;
                start = nl + 1;
            }
            *line |= bytes[start..].iter().any(|&b| b != b'\r');
            *count += bytes.len();
            if *count > max_head {
                return Err(Refused::TooLarge);
            }
            Ok((bytes.len(), None))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `size` as reads, with the engine's `body` after each head;
    /// what is handed over per message.
    fn messages(
        input: &[u8],
        size: usize,
        body: impl Fn(&[u8]) -> Body,
    ) -> Result<Vec<Vec<u8>>, Refused> {
        let mut m = Messages::new(1024);
        let mut out: Vec<Vec<u8>> = vec![Vec::new()];
        let mut pending = input.chunks(size);
        loop {
            let piece: Vec<u8> = match m.take_held(size) {
                Some(r) => r?.to_vec(),
                None => match pending.next() {
                    Some(read) => {
                        let n = m.admit_read(read)?;
                        read[..n].to_vec()
                    }
                    None => break,
                },
            };
            m.settle_held();
            out.last_mut().unwrap().extend_from_slice(&piece);
            if m.awaiting() {
                let head = out.last().unwrap().clone();
                m.body(body(&head));
                out.push(Vec::new());
            } else if matches!(m.mode, Mode::Head { count: 0, .. })
                && !out.last().unwrap().is_empty()
            {
                out.push(Vec::new());
            }
        }
        out.retain(|v| !v.is_empty());
        Ok(out)
    }

    fn framing(head: &[u8]) -> Body {
        let text = String::from_utf8_lossy(head).to_ascii_lowercase();
        if text.contains("transfer-encoding: chunked") {
            Body::Chunked
        } else if let Some(v) = text.split("content-length: ").nth(1) {
            Body::Length(v.split("\r\n").next().unwrap().parse().unwrap())
        } else {
            Body::Length(0)
        }
    }

    #[test]
    fn pipelined_messages_are_handed_over_one_at_a_time_whatever_the_reads() {
        let input = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n\
                      POST /b HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello\
                      POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\n\r\n\
                      \r\nGET /d HTTP/1.1\r\n\r\n";
        let expected: Vec<&[u8]> = vec![
            b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
            b"POST /b HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
            b"hello",
            b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"3;x=y\r\nabc\r\n0\r\n\r\n",
            b"\r\nGET /d HTTP/1.1\r\n\r\n",
        ];
        for size in [1, 2, 3, 7, 16, 64, input.len()] {
            let got = messages(input, size, framing).unwrap();
            let got: Vec<&[u8]> = got.iter().map(Vec::as_slice).collect();
            assert_eq!(got, expected, "reads of {size}");
        }
    }

    #[test]
    fn a_bare_lf_in_a_chunk_extension_is_refused_and_nothing_after_it_handed_over() {
        let input = b"POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
                      2;\nxx\r\nab\r\n0\r\n\r\nGET /api/smuggled HTTP/1.1\r\n\r\n";
        for size in [1, 5, input.len()] {
            assert_eq!(
                messages(input, size, framing),
                Err(Refused::Body(ChunkError::Extension)),
                "reads of {size}"
            );
        }
    }

    #[test]
    fn a_head_past_the_limit_is_refused_before_its_end() {
        let mut input = b"GET / HTTP/1.1\r\n".to_vec();
        input.extend(std::iter::repeat(b'a').take(2000));
        for size in [100, input.len()] {
            assert_eq!(messages(&input, size, framing), Err(Refused::TooLarge));
        }
        let mut whole = b"GET / HTTP/1.1\r\nX: ".to_vec();
        whole.extend(std::iter::repeat(b'a').take(1010));
        whole.extend_from_slice(b"\r\n\r\n");
        assert_eq!(messages(&whole, 64, framing), Err(Refused::TooLarge));
    }

    #[test]
    fn a_read_while_the_engine_has_not_answered_is_a_disagreement() {
        let mut m = Messages::new(1024);
        assert_eq!(m.admit_read(b"GET / HTTP/1.1\r\n\r\nGET"), Ok(18));
        assert!(m.awaiting());
        assert_eq!(m.head_len, 18);
        assert_eq!(
            m.take_held(10).map(|r| r.map(<[u8]>::to_vec)),
            Some(Err(Refused::Disagree))
        );
    }
}
