//! The request id: the one a client or a load balancer in front sent in `X-Request-Id` (kept
//! when it is a plain token, as ingress-nginx keeps it), else one made here: 32 hex digits,
//! half unique within the process, half a keyed hash no one can work out from other ids
//! (nginx's `$request_id` has the same shape). It names a request, it is no secret. It goes
//! upstream in `X-Request-Id` and into the access log, so that a line of a backend's log and a
//! line of crossgate's can be matched.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use http::header::HeaderName;
use http::HeaderValue;
use pingora::http::RequestHeader;

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest id kept from a request; a longer one is replaced.
const MAX_LEN: usize = 128;

/// A request's id.
#[derive(Debug, Clone)]
pub enum RequestId {
    /// The request's own `X-Request-Id`.
    Kept(HeaderValue),
    /// Made here: 32 lowercase hex digits.
    Made([u8; 32]),
}

/// Whether a received id is kept: 1 to 128 bytes of letters, digits and `-_.:+/=@` (UUIDs,
/// hex and base64 ids, W3C trace ids); anything else (spaces, quotes, control bytes, a list)
/// is replaced.
fn keepable(v: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&v.len())
        && v.iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:+/=@".contains(b))
}

/// splitmix64's finalizer: a bijection of u64, so distinct counters give distinct ids.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// SipHash of `n` under this process's random keys.
fn keyed(n: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static STATE: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    let mut h = STATE
        .get_or_init(std::collections::hash_map::RandomState::new)
        .build_hasher();
    h.write_u64(n);
    h.finish()
}

/// This process's key, random per process (std's hasher keys come from the OS).
fn key() -> u64 {
    static KEY: OnceLock<u64> = OnceLock::new();
    *KEY.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.finish()
    })
}

impl RequestId {
    /// The id of `req`: its `X-Request-Id` if it has exactly one that is keepable, else a new
    /// one.
    pub fn of(req: &RequestHeader) -> RequestId {
        let mut sent = req.headers.get_all(&X_REQUEST_ID).iter();
        match (sent.next(), sent.next()) {
            (Some(v), None) if keepable(v.as_bytes()) => RequestId::Kept(v.clone()),
            _ => RequestId::new(),
        }
    }

    /// A new id.
    pub fn new() -> RequestId {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let k1 = key();
        // The first half is unique per counter value (a bijection of it); the second is a
        // keyed hash of it (SipHash under this process's random keys), which no one who has
        // seen other ids can work out. An id names a request; it is not a secret.
        let (hi, lo) = (mix(n.wrapping_add(k1)), keyed(n));
        let mut out = [0u8; 32];
        for (i, b) in hi.to_be_bytes().iter().chain(&lo.to_be_bytes()).enumerate() {
            out[2 * i] = HEX[usize::from(b >> 4)];
            out[2 * i + 1] = HEX[usize::from(b & 0xf)];
        }
        RequestId::Made(out)
    }

    pub fn as_str(&self) -> &str {
        match self {
            // Keepable ids are ASCII.
            RequestId::Kept(v) => v.to_str().unwrap_or("-"),
            RequestId::Made(b) => std::str::from_utf8(b).expect("hex digits"),
        }
    }

    /// The `X-Request-Id` value that goes upstream.
    pub fn value(&self) -> HeaderValue {
        match self {
            RequestId::Kept(v) => v.clone(),
            RequestId::Made(b) => HeaderValue::from_bytes(b).expect("hex digits"),
        }
    }

    /// The same id holding no part of the buffer it was read from (a tunnel keeps it for its
    /// whole life).
    pub fn own(&mut self) {
        if let RequestId::Kept(v) = self {
            *v = HeaderValue::from_bytes(v.as_bytes()).expect("a value that was valid");
        }
    }
}

impl Default for RequestId {
    fn default() -> Self {
        RequestId::new()
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    fn req(ids: &[&str]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        for id in ids {
            r.append_header(X_REQUEST_ID, *id).unwrap();
        }
        r
    }

    #[test]
    fn a_plain_token_is_kept() {
        for id in [
            "abc-123",
            "7f3c2a1e-9b4d-4c7a-8e2f-1a2b3c4d5e6f",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "aGVsbG8=",
        ] {
            assert_eq!(RequestId::of(&req(&[id])).as_str(), id);
        }
    }

    #[test]
    fn anything_else_is_replaced_by_a_new_id() {
        let long = "a".repeat(MAX_LEN + 1);
        for ids in [
            &[][..],
            &[""],
            &["a b"],
            &["x\" cors=allowed"],
            &["a,b"],
            &[long.as_str()],
            &["a", "b"],
        ] {
            let id = RequestId::of(&req(ids));
            assert!(matches!(id, RequestId::Made(_)), "{ids:?} kept");
            assert_eq!(id.as_str().len(), 32);
        }
        assert!(matches!(
            RequestId::of(&req(&[&"a".repeat(MAX_LEN)])),
            RequestId::Kept(_)
        ));
    }

    #[test]
    fn made_ids_are_hex_and_distinct() {
        let ids: std::collections::HashSet<String> = (0..10_000)
            .map(|_| RequestId::new().as_str().to_owned())
            .collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(10) {
            assert!(id.bytes().all(|b| HEX.contains(&b)), "{id}");
            assert_eq!(HeaderValue::from_str(id).unwrap(), id.as_str());
        }
    }
}
