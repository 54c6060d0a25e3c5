//! One entry of ingress-nginx's `cors-allow-origin`, as crossgate allows it. ingress-nginx
//! (`template.go`, `buildCorsOriginRegex`) writes `(entry)$` into one case-insensitive regex,
//! quoted except for the `*` of `*.`, which becomes `[A-Za-z0-9\-]+`: one DNS label. Its
//! validation (`cors/main.go`) refuses the whole annotation, and answers `*`, for an entry with
//! a path or a scheme in capitals, and skips an entry without a scheme.

use super::super::plan::OriginEntry;

/// One `cors-allow-origin` entry, as crossgate will allow it.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum OriginItem {
    Any,
    /// Never allowed anything in ingress-nginx (it skips it); the reason.
    Skipped(String),
    Origin {
        entry: OriginEntry,
        /// How it maps (for the comment).
        note: String,
        /// Why ingress-nginx refuses the whole annotation for it (it then answers `*`).
        refused: Option<String>,
        /// How crossgate's answer differs from ingress-nginx's for this entry.
        changed: Option<String>,
    },
}

pub(super) fn valid_host_chars(h: &str) -> bool {
    !h.is_empty()
        && !h.starts_with('.')
        && !h.ends_with('.')
        && !h.contains("..")
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// Reads one entry of `cors-allow-origin` (already trimmed, not empty).
pub(super) fn origin_item(e: &str) -> Result<OriginItem, (String, String)> {
    let bad = |why: &str| {
        (
            format!("cors-allow-origin entry {e:?} is not an origin: {why}"),
            "write scheme://host[:port] (https://app.example.com), https://*.example.com, null or *, separated by commas".to_owned(),
        )
    };
    if e == "*" {
        return Ok(OriginItem::Any);
    }
    if e == "null" {
        return Ok(null_item());
    }
    let Some((scheme, rest)) = e.split_once("://") else {
        return if valid_host_chars(e.split(':').next().unwrap_or("")) {
            Ok(OriginItem::Skipped(format!("cors-allow-origin entry {e:?} has no scheme: ingress-nginx skips it (with an error in its log), so it never allowed anything; not converted (write https://{e} to allow it)")))
        } else {
            Err(bad("expected scheme://host[:port]"))
        };
    };
    if scheme.is_empty() || !scheme.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(bad("the scheme must be letters, such as https"));
    }
    let mut refused = Vec::new();
    let lower_scheme = scheme.to_ascii_lowercase();
    if scheme != lower_scheme {
        refused.push(format!("the scheme {scheme} is not in lower case"));
    }
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if !path.is_empty() {
        refused.push(format!(
            "it ends in {path:?}, and an Origin header never carries a path or a trailing slash"
        ));
    }
    let (wild, host_port) = match authority.strip_prefix("*.") {
        Some(r) => (true, r),
        None => (false, authority),
    };
    let (host, port) = host_and_port(host_port, &bad)?;
    origin(e, &lower_scheme, wild, &host, port, refused).map_err(|why| bad(&why))
}

/// `null`, the origin of sandboxed frames and file: pages.
fn null_item() -> OriginItem {
    OriginItem::Origin {
        entry: OriginEntry::Exact("null".into()),
        note: "null (opaque origins: sandboxed frames, file: pages)".into(),
        refused: None,
        changed: Some("`null`: ingress-nginx's origin regex is anchored at the end only, so `null` also allowed any origin ending in null (such as http://xnull); crossgate allows only the literal origin null".into()),
    }
}

/// The host (in lower case) and port of an entry's authority, its `*.` taken off.
fn host_and_port(
    host_port: &str,
    bad: &impl Fn(&str) -> (String, String),
) -> Result<(String, Option<u16>), (String, String)> {
    let (host, port) = match host_port.rsplit_once(':') {
        Some((h, p)) => {
            let port = p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad("the port must be a number from 1 to 65535"))?;
            (h, Some(port))
        }
        None => (host_port, None),
    };
    if host.contains('*') {
        return Err(bad(
            "ingress-nginx supports `*` only as the whole first label (https://*.example.com)",
        ));
    }
    if !valid_host_chars(host) {
        return Err(bad(
            "the host must be a DNS name (letters, digits, - and .)",
        ));
    }
    Ok((host.to_ascii_lowercase(), port))
}

/// The entry as crossgate allows it: a one-label regex for `*.`, else the exact origin; the
/// error is why it is not an origin.
fn origin(
    e: &str,
    lower_scheme: &str,
    wild: bool,
    host: &str,
    port: Option<u16>,
    refused: Vec<String>,
) -> Result<OriginItem, String> {
    let default = crate::origin::default_port(lower_scheme);
    let mut changed = None;
    let port_part = match port {
        Some(p) if Some(p) == default => {
            changed = Some(format!("{e:?}: :{p} is the default port of {lower_scheme}, which browsers leave out of the Origin header, so ingress-nginx's text match never allowed it; crossgate compares origins, and allows {lower_scheme}://{}{host}", if wild { "*." } else { "" }));
            String::new()
        }
        Some(p) => format!(":{p}"),
        None => String::new(),
    };
    let refused = (!refused.is_empty()).then(|| refused.join("; "));
    if wild {
        let re = format!(
            "{lower_scheme}://[a-z0-9-]+{}{}",
            regex::escape(&format!(".{host}")),
            regex::escape(&port_part)
        );
        return Ok(OriginItem::Origin {
            note: format!("{e}: ingress-nginx's `*.` stands for exactly one DNS label ([A-Za-z0-9-]+), so this is a regex (crossgate's own `*.` wildcards also match deeper names)"),
            entry: OriginEntry::Regex(re),
            refused,
            changed,
        });
    }
    let exact = format!("{lower_scheme}://{host}{port_part}");
    let exact = crate::origin::canonical_exact(&exact).map_err(|p| p.message)?;
    Ok(OriginItem::Origin {
        note: e.to_owned(),
        entry: OriginEntry::Exact(exact),
        refused,
        changed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_label_wildcard_becomes_a_regex_for_exactly_one_label() {
        let OriginItem::Origin { entry, refused, .. } =
            origin_item("https://*.example.com").unwrap()
        else {
            panic!()
        };
        assert_eq!(refused, None);
        let OriginEntry::Regex(re) = entry else {
            panic!("{entry:?}")
        };
        let re = crate::origin::anchored_regex(&re).unwrap();
        assert!(re.is_match("https://a.example.com"));
        assert!(!re.is_match("https://a.b.example.com"));
        assert!(!re.is_match("https://example.com"));
        assert!(!re.is_match("http://a.example.com"));
        assert!(!re.is_match("https://a.example.com.evil.io"));
    }

    #[test]
    fn a_wildcard_keeps_its_port() {
        let OriginItem::Origin { entry, .. } = origin_item("http://*.example.com:8443").unwrap()
        else {
            panic!()
        };
        let OriginEntry::Regex(re) = entry else {
            panic!()
        };
        let re = crate::origin::anchored_regex(&re).unwrap();
        assert!(re.is_match("http://a.example.com:8443"));
        assert!(!re.is_match("http://a.example.com"));
    }

    #[test]
    fn an_origin_with_a_path_keeps_its_intent_and_says_ingress_nginx_refused_it() {
        let OriginItem::Origin { entry, refused, .. } =
            origin_item("https://App.Example.com/app/").unwrap()
        else {
            panic!()
        };
        assert_eq!(entry, OriginEntry::Exact("https://app.example.com".into()));
        assert!(refused.unwrap().contains("path"));
    }

    #[test]
    fn a_default_port_is_dropped_and_reported_as_a_change() {
        let OriginItem::Origin { entry, changed, .. } =
            origin_item("https://app.example.com:443").unwrap()
        else {
            panic!()
        };
        assert_eq!(entry, OriginEntry::Exact("https://app.example.com".into()));
        assert!(changed.unwrap().contains("never allowed it"));
    }

    #[test]
    fn an_origin_without_a_scheme_is_skipped_like_ingress_nginx_does() {
        assert!(matches!(
            origin_item("app.example.com").unwrap(),
            OriginItem::Skipped(_)
        ));
    }

    #[test]
    fn junk_in_an_origin_list_is_an_error_that_says_what_to_write() {
        let (msg, fix) = origin_item("https://a.example.com https://b.example.com").unwrap_err();
        assert!(msg.contains("is not an origin"), "{msg}");
        assert!(fix.contains("separated by commas"), "{fix}");
        assert!(origin_item("https://api.*.example.com").is_err());
        assert!(origin_item("https://a.example.com:99999").is_err());
    }
}
