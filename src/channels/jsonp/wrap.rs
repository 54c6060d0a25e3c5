//! The body: whether a response is wrapped ([`decide`]), the streaming [`Wrapper`] that
//! escapes U+2028/U+2029 across chunk boundaries, and the bounded zstd decoder.

use bytes::{Bytes, BytesMut};

use super::Callback;

/// Whether a JSON body is wrapped, given the response status and `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrap {
    /// Leave the response as it is (not JSON, or an error without `envelope`).
    Passthrough,
    /// `/**/cb(` + body + `);`
    Plain,
    /// `/**/cb({"meta":{"status":S},"data":` + body + `});`, answered with 200.
    Envelope,
    /// `/**/cb({"meta":{"status":S},"data":null});`, the body dropped (an error that is not JSON).
    EnvelopeNoData,
}

/// `application/json` or any `+json` type, parameters and case ignored.
pub fn is_json(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return false };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.ends_with("+json")
            && essence
                .split_once('/')
                .is_some_and(|(t, s)| !t.is_empty() && s.len() > 5))
}

pub fn decide(status: u16, content_type: Option<&str>, envelope: bool) -> Wrap {
    // Redirects, 304 (the browser's cached script stays valid), informational and bodiless
    // answers pass as they are.
    if matches!(status, 100..=199 | 204 | 300..=399) {
        return Wrap::Passthrough;
    }
    let ok = (200..300).contains(&status);
    match (is_json(content_type), ok, envelope) {
        (true, true, false) => Wrap::Plain,
        (true, _, true) => Wrap::Envelope,
        (false, false, true) => Wrap::EnvelopeNoData,
        _ => Wrap::Passthrough,
    }
}

/// The streaming wrapper: feed it each body chunk in order.
#[derive(Debug)]
pub struct Wrapper {
    prefix: Option<Bytes>,
    suffix: Bytes,
    drop_body: bool,
    /// The start of a U+2028/U+2029 sequence cut by a chunk boundary (at most 2 bytes).
    held: Vec<u8>,
}

impl Wrapper {
    pub fn new(callback: &Callback, wrap: Wrap, status: u16) -> Wrapper {
        let cb = callback.as_str();
        let (prefix, suffix) = match wrap {
            Wrap::Plain | Wrap::Passthrough => (format!("/**/{cb}("), ");".to_owned()),
            Wrap::Envelope => (
                format!("/**/{cb}({{\"meta\":{{\"status\":{status}}},\"data\":"),
                "});".to_owned(),
            ),
            Wrap::EnvelopeNoData => (
                format!("/**/{cb}({{\"meta\":{{\"status\":{status}}},\"data\":null}});"),
                String::new(),
            ),
        };
        Wrapper {
            prefix: Some(Bytes::from(prefix)),
            suffix: Bytes::from(suffix),
            drop_body: wrap == Wrap::EnvelopeNoData,
            held: Vec::new(),
        }
    }

    /// Wraps one chunk; `end` marks the last call. Returns what to send.
    pub fn feed(&mut self, chunk: Option<&[u8]>, end: bool) -> Option<Bytes> {
        let input = chunk.unwrap_or_default();
        let mut out = BytesMut::with_capacity(input.len() + 32);
        if let Some(p) = self.prefix.take() {
            out.extend_from_slice(&p);
        }
        if !self.drop_body {
            self.escape_into(input, &mut out, end);
        }
        if end {
            out.extend_from_slice(&self.suffix);
        }
        (!out.is_empty()).then(|| out.freeze())
    }

    fn escape_into(&mut self, input: &[u8], out: &mut BytesMut, end: bool) {
        // Join what was held back with the new input only around the boundary.
        let joined;
        let data: &[u8] = if self.held.is_empty() {
            input
        } else {
            let mut j = std::mem::take(&mut self.held);
            j.extend_from_slice(input);
            joined = j;
            &joined
        };
        let mut start = 0;
        let mut i = 0;
        while i < data.len() {
            // Jump to the next 0xE2 (the first byte of U+2028/U+2029); the rest is copied as is.
            match memchr::memchr(0xE2, &data[i..]) {
                Some(off) => i += off,
                None => break,
            }
            // data[i] is 0xE2 here.
            match (data.get(i + 1), data.get(i + 2)) {
                (Some(0x80), Some(b @ (0xA8 | 0xA9))) => {
                    out.extend_from_slice(&data[start..i]);
                    out.extend_from_slice(if *b == 0xA8 { b"\\u2028" } else { b"\\u2029" });
                    i += 3;
                    start = i;
                    continue;
                }
                // Cut at the chunk's end: keep the bytes for the next chunk.
                (None, _) | (Some(0x80), None) if !end => {
                    out.extend_from_slice(&data[start..i]);
                    self.held.extend_from_slice(&data[i..]);
                    return;
                }
                _ => {}
            }
            i += 1;
        }
        out.extend_from_slice(&data[start..]);
    }
}

/// A streaming zstd decoder, for `Content-Encoding: zstd` (pingora 0.9 decompresses gzip and
/// br itself, not zstd).
pub struct ZstdStream {
    decoder: zstd::stream::raw::Decoder<'static>,
    buf: Vec<u8>,
    /// Decoded bytes so far, against [`MAX_DECODED`].
    total: usize,
}

/// The most a compressed JSONP body may decode to: a bound against decompression bombs.
pub const MAX_DECODED: usize = 64 * 1024 * 1024;

impl ZstdStream {
    pub fn new() -> std::io::Result<ZstdStream> {
        let mut decoder = zstd::stream::raw::Decoder::new()?;
        // Windows of at most 8 MiB (the default allows 128 MiB per stream).
        decoder.set_parameter(zstd::stream::raw::DParameter::WindowLogMax(23))?;
        Ok(ZstdStream {
            decoder,
            buf: vec![0; 32 * 1024],
            total: 0,
        })
    }

    /// Decodes one chunk of the compressed body.
    pub fn decode(&mut self, input: &[u8]) -> std::io::Result<Bytes> {
        use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
        let mut out = BytesMut::new();
        let mut src = InBuffer::around(input);
        loop {
            let mut dst = OutBuffer::around(&mut self.buf[..]);
            self.decoder.run(&mut src, &mut dst)?;
            let written = dst.pos();
            self.total += written;
            if self.total > MAX_DECODED {
                return Err(std::io::Error::other(format!(
                    "the zstd body decodes to more than {MAX_DECODED} bytes"
                )));
            }
            out.extend_from_slice(&self.buf[..written]);
            // Done when all input is consumed and the decoder had room to spare.
            if src.pos() == input.len() && written < self.buf.len() {
                return Ok(out.freeze());
            }
        }
    }
}
