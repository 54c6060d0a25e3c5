//! Just enough of HTTP/2's framing (RFC 9113 §4.1) to see, in the bytes a client sends, when
//! a request head is on its way: a header block, that is a HEADERS frame and the CONTINUATION
//! frames that must follow it with nothing in between (§6.10), up to the frame that carries
//! END_HEADERS. The h2 codec does the real parsing; a stream that does not follow the framing
//! is refused there, and here it only stops being seen as a head.

/// The client connection preface (§3.4), which comes before the first frame.
const PREFACE_LEN: u8 = 24;
const FRAME_HEADER_LEN: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_HEADERS: u8 = 0x4;

/// Where the client's bytes stand in its frames.
#[derive(Debug)]
pub(super) struct Frames {
    /// Bytes of the preface still to come.
    preface: u8,
    /// The header of the frame being read, and how much of it has come.
    header: [u8; FRAME_HEADER_LEN],
    header_len: usize,
    /// Payload bytes of the current frame still to come (its header is whole).
    payload: usize,
    /// A header block has begun and its END_HEADERS frame is not whole yet.
    in_block: bool,
    /// The current frame is the last of its header block.
    ends_block: bool,
}

/// What one read brought.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Fed {
    /// A header block ended (a request head is in).
    pub ended: bool,
    /// A header block began (the one in progress now, if any, began in this read).
    pub began: bool,
}

impl Frames {
    pub(super) fn new() -> Frames {
        Frames {
            preface: PREFACE_LEN,
            header: [0; FRAME_HEADER_LEN],
            header_len: 0,
            payload: 0,
            in_block: false,
            ends_block: false,
        }
    }

    /// A header block is on its way.
    pub(super) fn in_block(&self) -> bool {
        self.in_block
    }

    /// Follows the frames through the bytes of one read.
    pub(super) fn feed(&mut self, mut bytes: &[u8]) -> Fed {
        let mut fed = Fed::default();
        if self.preface > 0 {
            let n = bytes.len().min(usize::from(self.preface));
            // n <= preface, a u8.
            self.preface -= n as u8;
            bytes = &bytes[n..];
        }
        while !bytes.is_empty() {
            if self.payload > 0 {
                let n = bytes.len().min(self.payload);
                self.payload -= n;
                bytes = &bytes[n..];
                if self.payload == 0 {
                    self.frame_done(&mut fed);
                }
                continue;
            }
            let n = bytes.len().min(FRAME_HEADER_LEN - self.header_len);
            self.header[self.header_len..self.header_len + n].copy_from_slice(&bytes[..n]);
            self.header_len += n;
            bytes = &bytes[n..];
            if self.header_len == FRAME_HEADER_LEN {
                self.header_len = 0;
                self.frame_begins(&mut fed);
                if self.payload == 0 {
                    self.frame_done(&mut fed);
                }
            }
        }
        fed
    }

    /// A frame header is whole.
    fn frame_begins(&mut self, fed: &mut Fed) {
        let h = &self.header;
        self.payload = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
        let (kind, flags) = (h[3], h[4]);
        match kind {
            HEADERS => {
                // A HEADERS frame inside a block is a protocol error for the codec; here it
                // starts a block like any other.
                self.in_block = true;
                fed.began = true;
                self.ends_block = flags & END_HEADERS != 0;
            }
            CONTINUATION if self.in_block => self.ends_block = flags & END_HEADERS != 0,
            // Anything else inside a block is a connection error for the codec (§6.10).
            _ => {
                self.in_block = false;
                self.ends_block = false;
            }
        }
    }

    /// The current frame's payload is whole.
    fn frame_done(&mut self, fed: &mut Fed) {
        if self.in_block && self.ends_block {
            self.in_block = false;
            self.ends_block = false;
            fed.ended = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    fn frame(kind: u8, flags: u8, payload_len: usize) -> Vec<u8> {
        let l = (payload_len as u32).to_be_bytes();
        let mut f = vec![l[1], l[2], l[3], kind, flags, 0, 0, 0, 1];
        f.resize(FRAME_HEADER_LEN + payload_len, 0xAB);
        f
    }

    fn fed(ended: bool, began: bool) -> Fed {
        Fed { ended, began }
    }

    #[test]
    fn the_preface_and_settings_are_not_a_head() {
        let mut f = Frames::new();
        assert_eq!(
            f.feed(&[PREFACE, &frame(0x4, 0, 6)].concat()),
            fed(false, false)
        );
        assert!(!f.in_block());
    }

    #[test]
    fn a_headers_frame_with_end_headers_is_a_whole_head() {
        let mut f = Frames::new();
        let bytes = [PREFACE, &frame(HEADERS, END_HEADERS | 0x1, 20)].concat();
        assert_eq!(f.feed(&bytes), fed(true, true));
        assert!(!f.in_block());
    }

    #[test]
    fn a_head_that_comes_byte_by_byte_is_in_progress_until_its_last_byte() {
        let mut f = Frames::new();
        f.feed(PREFACE);
        let bytes = frame(HEADERS, END_HEADERS, 5);
        for (i, b) in bytes.iter().enumerate() {
            let got = f.feed(&[*b]);
            match i {
                // The frame header is whole: the head has begun.
                8 => assert_eq!(got, fed(false, true)),
                13 => assert_eq!(got, fed(true, false)),
                _ => assert_eq!(got, fed(false, false)),
            }
            assert_eq!(f.in_block(), (8..13).contains(&i), "after byte {i}");
        }
    }

    #[test]
    fn a_block_lasts_until_the_continuation_with_end_headers() {
        let mut f = Frames::new();
        f.feed(PREFACE);
        assert_eq!(f.feed(&frame(HEADERS, 0x1, 10)), fed(false, true));
        assert!(f.in_block());
        assert_eq!(f.feed(&frame(CONTINUATION, 0, 10)), fed(false, false));
        assert!(f.in_block());
        assert_eq!(
            f.feed(&frame(CONTINUATION, END_HEADERS, 0)),
            fed(true, false)
        );
        assert!(!f.in_block());
    }

    #[test]
    fn data_and_control_frames_between_heads_are_not_heads() {
        let mut f = Frames::new();
        f.feed(PREFACE);
        f.feed(&frame(HEADERS, END_HEADERS, 3));
        for kind in [0x0, 0x3, 0x6, 0x8] {
            assert_eq!(f.feed(&frame(kind, 0, 8)), fed(false, false));
            assert!(!f.in_block());
        }
        // A DATA frame whose payload looks like a HEADERS frame header is payload.
        let mut data = frame(0x0, 0, 9);
        data[FRAME_HEADER_LEN..].copy_from_slice(&frame(HEADERS, 0, 0));
        assert_eq!(f.feed(&data), fed(false, false));
        assert!(!f.in_block());
    }

    #[test]
    fn one_read_can_end_a_head_and_begin_the_next() {
        let mut f = Frames::new();
        f.feed(PREFACE);
        f.feed(&frame(HEADERS, 0, 4));
        let mut bytes = frame(CONTINUATION, END_HEADERS, 4);
        bytes.extend_from_slice(&frame(HEADERS, END_HEADERS, 4)[..11]);
        assert_eq!(f.feed(&bytes), fed(true, true));
        assert!(f.in_block());
    }

    #[test]
    fn another_frame_inside_a_block_ends_it_for_the_codec_to_refuse() {
        let mut f = Frames::new();
        f.feed(PREFACE);
        f.feed(&frame(HEADERS, 0, 4));
        assert_eq!(f.feed(&frame(0x0, 0, 4)), fed(false, false));
        assert!(!f.in_block());
        // A CONTINUATION out of a block does not begin one.
        f.feed(&frame(CONTINUATION, 0, 4));
        assert!(!f.in_block());
    }
}
