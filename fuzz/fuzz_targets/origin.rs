//! Origin parsing and matching on any input.
//!
//! The input is `pattern \n origin`. Checked: a parsed origin serializes back to exactly its
//! input (the parser is strict, so nothing is normalized away); a wildcard matches only hosts
//! that end with its suffix at a label boundary, with its scheme and port; an exact entry is
//! canonical and matches itself; a regex entry is anchored; the list never matches `null` or
//! a non-origin through a wildcard or regex.
#![no_main]

use crossgate::origin::{anchored_regex, canonical_exact, Origin, OriginList, Wildcard};
use libfuzzer_sys::fuzz_target;

fn serialize(o: &Origin) -> String {
    match o.port {
        Some(p) => format!("{}://{}:{p}", o.scheme, o.host),
        None => format!("{}://{}", o.scheme, o.host),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let (pattern, origin) = s.split_once('\n').unwrap_or((s, s));

    let parsed = Origin::parse(origin);
    if let Some(o) = parsed {
        assert_eq!(serialize(&o), origin);
        assert!(!o.host.is_empty());
        assert!(o.port != Some(0));
        assert!(!origin
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control()));
    }

    let mut list = OriginList::default();
    if let Ok(w) = Wildcard::parse(pattern) {
        if let Some(o) = parsed {
            if w.matches(&o) {
                assert_eq!(o.scheme, w.scheme());
                assert!(
                    o.host.ends_with(w.dot_suffix()),
                    "{pattern} matched {origin}"
                );
                assert!(o.host.len() > w.dot_suffix().len());
                assert!(w.dot_suffix().starts_with('.'));
                assert_eq!(o.effective_port(), w.port());
            }
        }
        list.push_wildcard(w, pattern.to_owned());
    }
    if let Ok(c) = canonical_exact(pattern) {
        assert!(
            c == "null" || Origin::parse(&c).is_some(),
            "{pattern} became {c}"
        );
        list.push_exact(c.clone(), pattern.to_owned());
        assert!(list.find(&c).is_some());
    }
    if let Ok(r) = anchored_regex(pattern) {
        if r.is_match(origin) {
            // Anchored: the whole origin matched, so no extra text around it matches too.
            let padded = format!("{origin}.evil.example");
            if r.is_match(&padded) {
                let first = r.find(&padded).unwrap();
                assert_eq!((first.start(), first.end()), (0, padded.len()));
            }
        }
        list.push_regex(r, pattern.to_owned());
    }
    // Only exact entries can match something that is not a serialized origin.
    if list.find(origin).is_some() {
        if parsed.is_none() {
            assert!(
                list.exact_origins().any(|e| e == origin),
                "{origin} matched {pattern}"
            );
        }
    }
});
