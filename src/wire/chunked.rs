//! The chunked transfer coding of a request body (RFC 9112 §7.1), followed byte by byte:
//! where the body ends, or why it is refused. Strict by construction, where pingora's codec
//! (`httparse::parse_chunk_size`) is not:
//!
//! - a chunk size is `1*HEXDIG`, at most 16 digits (no `0x`, sign, space or empty size);
//! - an extension follows its grammar: `*( BWS ";" BWS token [ BWS "=" BWS ( token /
//!   quoted-string ) ] )`, so no control byte (a bare LF included) gets in; the extensions of
//!   a chunk line are bounded;
//! - every line ends in CRLF, and chunk data is followed by exactly CRLF;
//! - trailer fields are `token ":" value` lines (no obs-fold, no control byte but HTAB),
//!   bounded in all (16 KiB, 100 fields), and end at the empty line, not at the first CRLFCRLF.
//!
//! A front end that reads a body differently from this either refuses it too or reads the
//! same bytes as one body: nothing after the body's end is taken for the next request.

use std::fmt;

/// The longest run of extensions on one chunk line.
const MAX_EXTENSIONS: usize = 4096;

/// The largest trailer section.
const MAX_TRAILERS: usize = 16 * 1024;

/// The most trailer fields (hyper's default limit on a head's and on trailers' fields, so
/// that no reference reading the same body refuses what crossgate reads).
const MAX_TRAILER_FIELDS: usize = 100;

/// Why a chunked body is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    /// A chunk size that is not 1 to 16 hex digits.
    Size,
    /// An extension outside its grammar (a control byte, a bare LF, a stray character).
    Extension,
    /// Extensions longer than the bound.
    ExtensionTooLong,
    /// A line that does not end in CRLF, or chunk data not followed by CRLF.
    LineEnd,
    /// A trailer line that is not a field line.
    Trailer,
    /// Trailers longer than the bound, or of more fields.
    TrailersTooLong,
}

impl fmt::Display for ChunkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChunkError::Size => "a chunk size that is not 1 to 16 hex digits",
            ChunkError::Extension => "a chunk extension outside its grammar",
            ChunkError::ExtensionTooLong => "chunk extensions longer than 4096 bytes",
            ChunkError::LineEnd => "a chunk line or chunk data not ended by CRLF",
            ChunkError::Trailer => "a trailer line that is not a field line",
            ChunkError::TrailersTooLong => "trailers longer than 16 KiB or of more than 100 fields",
        })
    }
}

/// Where the decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In the size's hex digits.
    Size,
    /// Whitespace after the size or a value: only `;` may follow.
    BeforeSemicolon,
    /// After `;`: whitespace, then an extension's name.
    BeforeName,
    Name,
    /// Whitespace after a name: `=` or `;`.
    AfterName,
    /// After `=`: whitespace, then a token or a quoted string.
    BeforeValue,
    Token,
    Quoted,
    QuotedEscape,
    /// Right after a quoted string's closing quote.
    AfterQuoted,
    /// The CR of a chunk line is in: its LF.
    LineLf,
    /// In a chunk's data.
    Data,
    /// The CR after a chunk's data.
    DataCr,
    DataLf,
    /// The start of a trailer line (or of the empty line that ends the body).
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    /// The CR of the empty line is in: its LF ends the body.
    EndLf,
    /// The body has ended.
    Done,
}

/// A chunked body being read.
#[derive(Debug, Clone)]
pub struct Chunked {
    state: State,
    /// The current chunk's size, then what is left of its data.
    size: u64,
    digits: u8,
    extensions: usize,
    trailers: usize,
    /// Trailer field lines read.
    trailer_fields: usize,
}

impl Default for Chunked {
    fn default() -> Self {
        Chunked::new()
    }
}

/// What [`Chunked::feed`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// All of the input belongs to the body, which goes on.
    More,
    /// The body ends after this many bytes of the input.
    End(usize),
}

/// A token character (RFC 9110 §5.6.2).
pub(crate) fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

fn is_ws(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// A byte of a quoted string or a field value: HTAB, SP, visible ASCII, obs-text.
fn is_text(c: u8) -> bool {
    c == b'\t' || c == b' ' || (0x21..=0x7e).contains(&c) || c >= 0x80
}

impl Chunked {
    pub fn new() -> Chunked {
        Chunked {
            state: State::Size,
            size: 0,
            digits: 0,
            extensions: 0,
            trailers: 0,
            trailer_fields: 0,
        }
    }

    /// Reads the next bytes of the body.
    pub fn feed(&mut self, input: &[u8]) -> Result<Step, ChunkError> {
        if self.state == State::Done {
            return Ok(Step::End(0));
        }
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Data {
                // Data is skipped in bulk.
                let take = usize::try_from(self.size)
                    .unwrap_or(usize::MAX)
                    .min(input.len() - i);
                i += take;
                self.size -= take as u64;
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            self.byte(input[i])?;
            i += 1;
            if self.state == State::Done {
                return Ok(Step::End(i));
            }
        }
        Ok(Step::More)
    }

    fn byte(&mut self, c: u8) -> Result<(), ChunkError> {
        use State::*;
        if matches!(
            self.state,
            BeforeSemicolon
                | BeforeName
                | Name
                | AfterName
                | BeforeValue
                | Token
                | Quoted
                | QuotedEscape
                | AfterQuoted
        ) {
            self.extensions += 1;
            if self.extensions > MAX_EXTENSIONS {
                return Err(ChunkError::ExtensionTooLong);
            }
        }
        if matches!(
            self.state,
            TrailerStart | TrailerName | TrailerValue | TrailerLf
        ) {
            self.trailers += 1;
            if self.trailers > MAX_TRAILERS {
                return Err(ChunkError::TrailersTooLong);
            }
        }
        self.state = match (self.state, c) {
            (Size, c) if c.is_ascii_hexdigit() => {
                self.digits += 1;
                if self.digits > 16 {
                    return Err(ChunkError::Size);
                }
                let v = (c as char).to_digit(16).expect("a hex digit") as u64;
                self.size = self.size << 4 | v;
                Size
            }
            (Size, _) if self.digits == 0 => return Err(ChunkError::Size),
            (Size | BeforeSemicolon | AfterName, c) if is_ws(c) => {
                if self.state == AfterName {
                    AfterName
                } else {
                    BeforeSemicolon
                }
            }
            (Size | BeforeSemicolon | Name | AfterName | Token | AfterQuoted, b';') => BeforeName,
            (Size | Name | Token | AfterQuoted, b'\r') => LineLf,
            (Size, _) => return Err(ChunkError::Size),
            (BeforeName, c) if is_ws(c) => BeforeName,
            (BeforeName | Name, c) if is_tchar(c) => Name,
            (Name, c) if is_ws(c) => AfterName,
            (Name | AfterName, b'=') => BeforeValue,
            (BeforeValue, c) if is_ws(c) => BeforeValue,
            (BeforeValue, b'"') => Quoted,
            (BeforeValue | Token, c) if is_tchar(c) => Token,
            (Token | AfterQuoted, c) if is_ws(c) => BeforeSemicolon,
            (Quoted, b'"') => AfterQuoted,
            (Quoted, b'\\') => QuotedEscape,
            (Quoted | QuotedEscape, c) if is_text(c) => Quoted,
            (
                BeforeSemicolon | BeforeName | Name | AfterName | BeforeValue | Token | Quoted
                | QuotedEscape | AfterQuoted,
                _,
            ) => return Err(ChunkError::Extension),
            (LineLf, b'\n') => {
                self.extensions = 0;
                self.digits = 0;
                if self.size == 0 {
                    TrailerStart
                } else {
                    Data
                }
            }
            (DataLf, b'\n') => Size,
            (TrailerLf, b'\n') => {
                self.trailer_fields += 1;
                if self.trailer_fields > MAX_TRAILER_FIELDS {
                    return Err(ChunkError::TrailersTooLong);
                }
                TrailerStart
            }
            (EndLf, b'\n') => Done,
            (LineLf | DataLf | TrailerLf | EndLf, _) => return Err(ChunkError::LineEnd),
            (DataCr, b'\r') => DataLf,
            (DataCr, _) => return Err(ChunkError::LineEnd),
            (TrailerStart, b'\r') => EndLf,
            (TrailerStart | TrailerName, c) if is_tchar(c) => TrailerName,
            (TrailerName, b':') => TrailerValue,
            (TrailerValue, b'\r') => TrailerLf,
            (TrailerValue, c) if is_text(c) => TrailerValue,
            (TrailerStart | TrailerName | TrailerValue, _) => return Err(ChunkError::Trailer),
            // Data is skipped in bulk (`feed`), and nothing is read past the end.
            (Data, _) => Data,
            (Done, _) => Done,
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The verdict on a whole input: where the body ends, or why it is refused.
    fn verdict(input: &[u8]) -> Result<Step, ChunkError> {
        Chunked::new().feed(input)
    }

    /// The same input fed one byte at a time: the same verdict.
    fn verdict_bytewise(input: &[u8]) -> Result<Step, ChunkError> {
        let mut c = Chunked::new();
        for (i, b) in input.iter().enumerate() {
            match c.feed(std::slice::from_ref(b))? {
                Step::More => {}
                Step::End(1) => return Ok(Step::End(i + 1)),
                Step::End(n) => panic!("ended {n} bytes into one byte"),
            }
        }
        Ok(Step::More)
    }

    const AFTER: &[u8] = b"GET /next HTTP/1.1\r\n\r\n";

    #[test]
    fn well_formed_bodies_end_exactly_after_their_empty_line() {
        for body in [
            &b"0\r\n\r\n"[..],
            b"000\r\n\r\n",
            b"5\r\nhello\r\n0\r\n\r\n",
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            b"A\r\n0123456789\r\n0\r\n\r\n",
            b"a\r\n0123456789\r\n0\r\n\r\n",
            b"5;name\r\nhello\r\n0\r\n\r\n",
            b"5;name=value\r\nhello\r\n0\r\n\r\n",
            b"5 ; a = b ; c\r\nhello\r\n0\r\n\r\n",
            b"5;q=\"a \\\" ; b\"\r\nhello\r\n0\r\n\r\n",
            b"5\r\nhello\r\n0;last\r\n\r\n",
            b"5\r\nhello\r\n0\r\nX-Sum: 11\r\nX-Other:\tv\r\n\r\n",
            b"5\r\n\r\n\r\n\r\r\n0\r\n\r\n",
        ] {
            let mut input = body.to_vec();
            input.extend_from_slice(AFTER);
            let expected = Ok(Step::End(body.len()));
            assert_eq!(
                verdict(&input),
                expected,
                "{:?}",
                String::from_utf8_lossy(body)
            );
            assert_eq!(
                verdict_bytewise(&input),
                expected,
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn desync_shapes_are_refused_with_their_reason() {
        use ChunkError::*;
        for (body, why) in [
            // Sizes.
            (&b"\r\n\r\n"[..], Size),
            (b"0x5\r\nhello\r\n0\r\n\r\n", Size),
            (b"+5\r\nhello\r\n0\r\n\r\n", Size),
            (b"-5\r\nhello\r\n0\r\n\r\n", Size),
            (b" 5\r\nhello\r\n0\r\n\r\n", Size),
            (b"5_0\r\n", Size),
            (b"0_2e\r\n", Size),
            (b"10000000000000000\r\n", Size),
            (b"g\r\n", Size),
            // Line ends: a bare LF anywhere, a CR without LF, data not followed by CRLF.
            (b"5\nhello\r\n0\r\n\r\n", Size),
            (b"5\r\nhello\n0\r\n\r\n", LineEnd),
            (b"5\r\nhelloX\r\n0\r\n\r\n", LineEnd),
            (b"5\r\nhello\r\r\n", LineEnd),
            (b"5\rhello", LineEnd),
            (b"5\r\nhello\r\n0\r\n\n", Trailer),
            (b"5\r\nhello\r\n0\r\n\r\r", LineEnd),
            // Extensions: a bare LF (the issue's `2;\nxx`), NUL, CR, other controls, stray bytes.
            (b"2;\nxx\r\nab\r\n0\r\n\r\n", Extension),
            (b"2;a\nxx\r\nab\r\n", Extension),
            (b"2;a=\"x\ny\"\r\n", Extension),
            (b"2;\0\r\n", Extension),
            (b"2;a=b\x0bc\r\n", Extension),
            (b"2;a=\x85\r\n", Extension),
            (b"2 \r\nab\r\n", Extension),
            (b"2;\r\nab\r\n", Extension),
            (b"2;a=\r\nab\r\n", Extension),
            (b"2;a b\r\n", Extension),
            (b"2;a=\"x\" y\r\n", Extension),
            (b"2,3\r\n", Size),
            // Trailers: obs-fold, no colon, a space before the colon, control bytes.
            (b"0\r\nX: a\r\n b\r\n\r\n", Trailer),
            (b"0\r\nGET /smuggled HTTP/1.1\r\n\r\n", Trailer),
            (b"0\r\nX : a\r\n\r\n", Trailer),
            (b"0\r\n: a\r\n\r\n", Trailer),
            (b"0\r\nX: a\0b\r\n\r\n", Trailer),
            (b"0\r\nX: a\nY: b\r\n\r\n", Trailer),
        ] {
            assert_eq!(
                verdict(body),
                Err(why),
                "{:?}",
                String::from_utf8_lossy(body)
            );
            assert_eq!(
                verdict_bytewise(body),
                Err(why),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn a_refusal_says_what_was_wrong() {
        assert_eq!(
            ChunkError::Extension.to_string(),
            "a chunk extension outside its grammar"
        );
        assert_eq!(
            ChunkError::Size.to_string(),
            "a chunk size that is not 1 to 16 hex digits"
        );
    }

    /// A chunk line of `1;` and `n` bytes of extension name, then the rest of a body.
    fn with_extension(n: usize) -> Vec<u8> {
        let mut b = b"1;".to_vec();
        b.extend(std::iter::repeat(b'a').take(n));
        b.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
        b
    }

    /// A last chunk with about `n` bytes of trailer fields (lines of 202 bytes).
    fn with_trailers(n: usize) -> Vec<u8> {
        let mut b = b"0\r\n".to_vec();
        let line = format!("X-Pad: {}\r\n", "a".repeat(193));
        while b.len() + line.len() < n {
            b.extend_from_slice(line.as_bytes());
        }
        b.extend_from_slice(b"\r\n");
        b
    }

    /// A last chunk with `n` short trailer fields.
    fn with_trailer_fields(n: usize) -> Vec<u8> {
        let mut b = b"0\r\n".to_vec();
        for _ in 0..n {
            b.extend_from_slice(b"T: 1\r\n");
        }
        b.extend_from_slice(b"\r\n");
        b
    }

    #[test]
    fn extensions_and_trailers_are_bounded() {
        // The bounds as documented (4 KiB of extensions a line, 16 KiB of trailers): just
        // under them accepted, just over refused. Literal sizes, not the constants, so that
        // a change of a bound shows.
        let ext = with_extension(4000);
        assert_eq!(verdict(&ext), Ok(Step::End(ext.len())));
        assert_eq!(
            verdict(&with_extension(4200)),
            Err(ChunkError::ExtensionTooLong)
        );
        let fields = with_trailers(16_000);
        assert_eq!(verdict(&fields), Ok(Step::End(fields.len())));
        assert_eq!(
            verdict(&with_trailers(16_700)),
            Err(ChunkError::TrailersTooLong)
        );
        // And 100 fields at most, as hyper allows.
        let hundred = with_trailer_fields(100);
        assert_eq!(verdict(&hundred), Ok(Step::End(hundred.len())));
        assert_eq!(
            verdict(&with_trailer_fields(101)),
            Err(ChunkError::TrailersTooLong)
        );
    }

    #[test]
    fn any_split_of_an_input_gives_the_same_verdict() {
        let inputs: [&[u8]; 4] = [
            b"5;a=\"b\"\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nX: y\r\n\r\nGET",
            b"2;\nxx\r\nab\r\n0\r\n\r\n",
            b"5\r\nhello\r\n0\r\nX: a\r\n b\r\n\r\n",
            b"3\r\nabc\r\n0\r\n\r\n",
        ];
        for input in inputs {
            let whole = verdict(input);
            for cut in 0..=input.len() {
                let mut c = Chunked::new();
                let split = match c.feed(&input[..cut]) {
                    Ok(Step::More) => c.feed(&input[cut..]).map(|s| match s {
                        Step::End(n) => Step::End(cut + n),
                        more => more,
                    }),
                    other => other,
                };
                assert_eq!(
                    split,
                    whole,
                    "cut at {cut}: {:?}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }
}
