//! How ingress-nginx reads an annotation's value: Go's `strconv` booleans and integers, its
//! comma lists, and the validation patterns of its CORS annotations (cors/main.go).

use std::sync::LazyLock;

use regex::Regex;

// ingress-nginx's validation patterns (cors/main.go), applied to the value with its spaces
// removed; a value they refuse is replaced by the annotation's default.
pub(super) static ORIGINS_VALID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^((((([a-z]+://)?(\*\.)?[A-Za-z0-9\-.]*(:\d+)?,?)|null)+)|\*)?$")
        .expect("a valid pattern")
});
// The methods and expose-headers patterns are checked a second time on the value with its
// spaces, where `\s?` allows one space after a comma, no more.
pub(super) static METHODS_VALID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([A-Za-z]+,?\s?)+$").expect("a valid pattern"));
pub(super) static EXPOSE_VALID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(([A-Za-z0-9\-_]+|\*),?\s?)+$").expect("a valid pattern"));

/// An annotation's value as ingress-nginx reads it (`parser.normalizeString`: each line
/// trimmed).
pub(super) fn normalized(v: &str) -> String {
    v.split('\n').map(str::trim).collect::<Vec<_>>().join("\n")
}

/// Would ingress-nginx take this list value, or fall back to the default?
pub(super) fn nginx_takes(v: &str, pattern: &Regex, also_with_spaces: bool) -> bool {
    let v = normalized(v);
    let squeezed = v.replace(' ', "");
    pattern.is_match(&squeezed)
        && !squeezed.contains(['\r', '\n'])
        && (!also_with_spaces || pattern.is_match(&v))
}

/// Go's `strconv.ParseBool`, which ingress-nginx uses.
pub(super) fn go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.Atoi`: optional sign, decimal digits.
pub(super) fn go_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The comma list of an annotation, as ingress-nginx splits it: empty items (a trailing
/// comma) dropped, spaces around items trimmed.
pub(super) fn items(v: &str) -> Vec<&str> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// An annotation's value as a comment quotes it.
pub(super) fn quoted(v: &str) -> String {
    format!("{:?}", normalized(v))
}

pub(super) const BOOLEANS: &str =
    "write \"true\" or \"false\" (ingress-nginx also reads True, TRUE, 1, t, False, FALSE, 0, f)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_booleans_are_the_spellings_strconv_parsebool_reads() {
        for t in ["true", "True", "TRUE", "1", "t", "T"] {
            assert_eq!(go_bool(t), Some(true), "{t}");
        }
        for f in ["false", "False", "FALSE", "0", "f", "F"] {
            assert_eq!(go_bool(f), Some(false), "{f}");
        }
        for bad in ["yes", "on", " true", "tRuE", ""] {
            assert_eq!(go_bool(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ingress_nginx_refuses_two_spaces_after_a_comma_in_methods() {
        assert!(nginx_takes("GET, POST", &METHODS_VALID, true));
        assert!(nginx_takes("GET,POST,", &METHODS_VALID, true));
        assert!(!nginx_takes("GET,  POST", &METHODS_VALID, true));
        assert!(!nginx_takes("GET,\nPOST", &METHODS_VALID, true));
    }

    #[test]
    fn ingress_nginx_refuses_an_origin_list_with_a_path_or_capital_scheme() {
        assert!(nginx_takes(
            "https://a.example.com, http://*.b.example.com:8080, null",
            &ORIGINS_VALID,
            false
        ));
        assert!(!nginx_takes(
            "https://a.example.com/",
            &ORIGINS_VALID,
            false
        ));
        assert!(!nginx_takes("HTTPS://a.example.com", &ORIGINS_VALID, false));
    }
}
