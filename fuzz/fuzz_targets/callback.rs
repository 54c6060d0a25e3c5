//! Callback validation and the JSONP query handling on any input: an accepted callback is a
//! dotted JavaScript name of at most 128 bytes (nothing that could end the call and start new
//! code), and query parsing never panics.
#![no_main]

use crossgate::jsonp::{ask, referer_origin, strip_query, validate, Ask, MAX_CALLBACK};
use libfuzzer_sys::fuzz_target;

fn is_name(s: &str) -> bool {
    s.split('.').all(|part| {
        let b = part.as_bytes();
        !b.is_empty()
            && (b[0].is_ascii_alphabetic() || b[0] == b'_' || b[0] == b'$')
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'$')
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match validate(s) {
        Ok(cb) => {
            assert_eq!(cb.as_str(), s);
            assert!(s.len() <= MAX_CALLBACK);
            assert!(is_name(s), "accepted {s:?}");
        }
        Err(why) => assert!(
            !(s.len() <= MAX_CALLBACK && is_name(s)),
            "refused {s:?}: {why}"
        ),
    }
    // The same text as a query string.
    match ask(Some(s), "callback", Default::default()) {
        Ask::Yes(cb) => assert!(is_name(cb.as_str())),
        Ask::No | Ask::Invalid(_) => {}
    }
    if let Some(rest) = strip_query(s, "callback") {
        assert!(rest.len() <= s.len());
        assert!(matches!(ask(Some(&rest), "callback", Default::default()), Ask::No));
    }
    if let Some(o) = referer_origin(s) {
        assert!(s.starts_with(o));
    }
});
