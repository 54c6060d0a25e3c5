//! Request paths: for any raw path, what crossgate forwards, decided again, lands on the same
//! route, a backend that decodes it once reads exactly the routed path, and `explain` agrees
//! (the checks are shared with tests/properties.rs). The first byte picks the mode.
#![no_main]

#[path = "../../tests/common/path_oracle.rs"]
mod path_oracle;

use std::sync::OnceLock;

use crossgate::path::AmbiguousPaths;
use crossgate::rules::Rules;
use libfuzzer_sys::fuzz_target;

static RULES: OnceLock<[Rules; 3]> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let Ok(s) = std::str::from_utf8(rest) else {
        return;
    };
    let rules = RULES.get_or_init(|| {
        ["reject", "forward_normalized", "keep"].map(path_oracle::rules)
    });
    let (mode, i) = match m % 3 {
        0 => (AmbiguousPaths::Reject, 0),
        1 => (AmbiguousPaths::ForwardNormalized, 1),
        _ => (AmbiguousPaths::Keep, 2),
    };
    // Request targets in origin-form start with `/`.
    path_oracle::check(&rules[i], mode, &format!("/{s}"));
});
