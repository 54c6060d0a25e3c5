//! crossgate's own reading of HTTP/1 bytes, where pingora's codec is laxer than RFC 9112
//! allows a proxy to be (the wire-layer issue grows this into the whole HTTP/1 codec). A leaf:
//! it knows bytes and nothing of routes; its verdicts are unit tested without sockets.
//!
//! - [`chunked`]: the chunked transfer coding of a request body, strictly, byte by byte.

pub mod chunked;
