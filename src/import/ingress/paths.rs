//! The routes of one Ingress path, as ingress-nginx writes its locations (location.go,
//! nginx.tmpl): Exact, Prefix (the prefix `/p/` and the exact `/p`), ImplementationSpecific (a
//! plain string prefix), and every path of a regex host.

use super::super::manifest::{At, Object};
use super::super::plan::{Host, PathRule, Plan, Route, SourcePath};
use crate::config::ConfigError;

/// The routes of one Ingress path (the `backend` and `policy` are set by the caller).
pub(super) fn ingress_paths(
    obj: &Object,
    p: &At,
    host: &Host,
    regex_host: bool,
    name: &str,
    plan: &mut Plan,
) -> Result<Vec<Route>, ConfigError> {
    let (path_type, path) = path_of(obj, p)?;
    let place = obj.place(p.node);
    let what = format!("{}, path {path} ({path_type})", host.describe());
    let comment = |extra: &str| {
        let mut c = vec![format!("{} ({}): {what}.", obj.label(), obj.loc(p.node))];
        if !extra.is_empty() {
            c.push(extra.to_owned());
        }
        c
    };
    let route =
        |path: PathRule, rank: (u8, i64), implied: bool, suffix: &str, c: Vec<String>| Route {
            name: format!("{name}{suffix}"),
            host: host.clone(),
            path,
            backends: Vec::new(),
            policy: None,
            comment: c,
            path_rank: rank,
            implied,
            tier: 0,
            read_timeout: None,
            strip_prefix: false,
            place: place.clone(),
        };
    let len = path.len() as i64;
    if regex_host {
        return Ok(regex_path(path, &what, name, &place, plan, route, comment));
    }
    Ok(match path_type {
        "Exact" => {
            plan.report.exact(&place, format!("{what} -> route {name}"));
            vec![route(
                PathRule::Exact(path.into()),
                (0, -len),
                false,
                "",
                comment(""),
            )]
        }
        "Prefix" if path == "/" => {
            plan.report.exact(&place, format!("{what} -> route {name}"));
            vec![route(
                PathRule::Prefix("/".into()),
                (1, -1),
                false,
                "",
                comment(""),
            )]
        }
        "Prefix" => prefix_paths(path, &what, name, &place, plan, route, comment),
        _ => string_prefix_path(path, &what, name, &place, plan, route, comment),
    })
}

/// What an Ingress path takes as ingress-nginx documents it (`ingress-path-matching.md`), for
/// the self-check: on a regex host, a case-insensitive regex from the start of the path.
pub(super) fn source_path(
    obj: &Object,
    p: &At,
    regex_host: bool,
) -> Result<SourcePath, ConfigError> {
    let (path_type, path) = path_of(obj, p)?;
    Ok(match path_type {
        _ if regex_host => SourcePath::Regex {
            pattern: format!("(?i)^(?:{path})"),
            written: path.into(),
        },
        "Exact" => SourcePath::Exact(path.into()),
        "Prefix" => SourcePath::Prefix(path.into()),
        _ => SourcePath::StringPrefix(path.into()),
    })
}

/// The prefix-stripping forms of `rewrite-target` (ingress-nginx's rewrite docs): the path
/// `P(/|$)(.*)` with `/$2`, or `P/(.*)` with `/$1`, for a literal `P` (letters, digits and
/// `/-_~`: a `.` would be any character to nginx). Returns `P`, and whether the source also
/// takes `P` itself (the first form, which sends it upstream as `/`).
fn strip_form<'p>(path: &'p str, target: &str) -> Option<(&'p str, bool)> {
    let literal = |p: &str| {
        p.len() > 1
            && p.starts_with('/')
            && !p.ends_with('/')
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/-_~".contains(&b))
    };
    if let Some(p) = path.strip_suffix("(/|$)(.*)") {
        if target == "/$2" && literal(p) {
            return Some((p, true));
        }
    }
    if let Some(p) = path.strip_suffix("/(.*)") {
        if target == "/$1" && literal(p) {
            return Some((p, false));
        }
    }
    None
}

/// A path of an Ingress with `rewrite-target`: a prefix-stripping form ([`strip_form`])
/// becomes a prefix route with `strip_prefix` (what changes is said: ingress-nginx matches the
/// path case-insensitively, and the first form also takes `P` itself); any other form is not
/// converted.
pub(super) fn rewritten(
    obj: &Object,
    p: &At,
    target: &str,
    host: &Host,
    name: &str,
    plan: &mut Plan,
) -> Result<Vec<Route>, ConfigError> {
    let (_, path) = path_of(obj, p)?;
    let place = obj.place(p.node);
    let what = format!(
        "{}, path {path} with rewrite-target {target:?}",
        host.describe()
    );
    let Some((prefix, bare)) = strip_form(path, target) else {
        plan.report.unsupported(&place, format!("{what}: crossgate forwards the path it routed and rewrites it only by taking a prefix off (the forms P(/|$)(.*) with /$2 and P/(.*) with /$1); this path is not converted (its backend would get other paths than today)"));
        return Ok(Vec::new());
    };
    let slash = format!("{prefix}/");
    let mut note = format!("{what} -> route {name}: prefix {slash} with strip_prefix ({slash}x goes upstream as /x, as ingress-nginx rewrites it); ingress-nginx matches the path case-insensitively ({}/x too), crossgate's prefix only as written", prefix.to_ascii_uppercase());
    if bare {
        note.push_str(&format!(
            "; and {prefix} itself, which ingress-nginx sends upstream as /, is not this route's"
        ));
    }
    plan.report.changed(&place, note);
    Ok(vec![Route {
        name: name.to_owned(),
        host: host.clone(),
        path: PathRule::Prefix(slash.clone()),
        backends: Vec::new(),
        policy: None,
        comment: vec![
            format!("{} ({}): {what}.", obj.label(), obj.loc(p.node)),
            format!("rewrite-target takes {prefix} off the path: {slash}x goes upstream as /x (strip_prefix). ingress-nginx matched it case-insensitively; this prefix is matched as written."),
        ],
        // Ranked with the host's regexes by the length of the path written, as ingress-nginx
        // orders them.
        path_rank: (1, -(path.len() as i64)),
        implied: false,
        tier: 0,
        read_timeout: None,
        strip_prefix: true,
        place,
    }])
}

/// An Ingress path's `pathType` and `path`, checked as the API server checks them.
fn path_of<'a>(obj: &Object<'a>, p: &At<'a>) -> Result<(&'a str, &'a str), ConfigError> {
    let type_at = obj.need(p, "pathType")?;
    let path_type = obj.str(&type_at)?;
    const TYPES: [&str; 3] = ["Prefix", "Exact", "ImplementationSpecific"];
    if !TYPES.contains(&path_type) {
        let hint = TYPES
            .iter()
            .find(|t| t.eq_ignore_ascii_case(path_type))
            .map_or(String::new(), |t| format!(" (did you mean {t}?)"));
        return Err(obj.err(
            &type_at,
            format!("unknown pathType {path_type:?}{hint}"),
            "use Prefix, Exact or ImplementationSpecific (the API server refuses anything else)",
        ));
    }
    let (path_at, path) = match obj.opt_str(p, "path")? {
        Some((at, s)) if !s.is_empty() => (at, s),
        _ if path_type == "ImplementationSpecific" => (p.clone(), "/"),
        _ => {
            return Err(obj.err(
                p,
                format!("a {path_type} path needs `path:`"),
                "add path: /something",
            ))
        }
    };
    if !path.starts_with('/') {
        return Err(obj.err(
            &path_at,
            format!("path {path:?} does not start with /"),
            format!("write \"/{path}\""),
        ));
    }
    Ok((path_type, path))
}

/// A path of a host where ingress-nginx makes every path a regex.
fn regex_path(
    path: &str,
    what: &str,
    name: &str,
    place: &str,
    plan: &mut Plan,
    route: impl Fn(PathRule, (u8, i64), bool, &str, Vec<String>) -> Route,
    comment: impl Fn(&str) -> Vec<String>,
) -> Vec<Route> {
    // nginx.tmpl: `location ~* "^PATH"`; crossgate anchors both ends, so `.*` keeps
    // the end open. The path is a PCRE regex to nginx; Rust's syntax is close but not
    // the same (no look-around or back-references).
    let re = format!("(?i)(?:{path}).*");
    if let Err(e) = crate::origin::anchored_regex(&re) {
        plan.report.unsupported(place, format!("{what}: ingress-nginx reads it as a regex (use-regex or rewrite-target on this host), which Rust's regex syntax cannot express ({}); not converted", e.message.lines().next().unwrap_or("")));
        return Vec::new();
    }
    plan.report.exact(place, format!("{what} -> route {name}: ingress-nginx matches every path of this host as a case-insensitive regex from the start of the path (use-regex or rewrite-target on an Ingress of the host), and so does the route"));
    vec![route(
        PathRule::Regex(re),
        (1, -(path.len() as i64)),
        false,
        "",
        comment("ingress-nginx: `location ~* \"^PATH\"` (use-regex or rewrite-target on this host): a case-insensitive regex from the start of the path."),
    )]
}

/// A `Prefix` path other than `/`: location.go's prefix `/p/` and exact `/p`, whole path
/// segments only.
fn prefix_paths(
    path: &str,
    what: &str,
    name: &str,
    place: &str,
    plan: &mut Plan,
    route: impl Fn(PathRule, (u8, i64), bool, &str, Vec<String>) -> Route,
    comment: impl Fn(&str) -> Vec<String>,
) -> Vec<Route> {
    let slash = if path.ends_with('/') {
        path.to_owned()
    } else {
        format!("{path}/")
    };
    let mut out = vec![route(
        PathRule::Prefix(slash.clone()),
        (1, -(slash.len() as i64)),
        false,
        "",
        comment(&if path.ends_with('/') {
            format!("A Prefix ending in / takes {path} and everything under it ({path}x too); ingress-nginx writes no location for {} itself, and neither is there a route for it here.", path.trim_end_matches('/'))
        } else {
            format!("A Prefix matches whole segments: {path} and {slash}..., never {path}x (ingress-nginx writes the same two locations).")
        }),
    )];
    if !path.ends_with('/') {
        out.push(route(
            PathRule::Exact(path.into()),
            (0, -(path.len() as i64)),
            true,
            "-exact",
            comment(&format!("The exact half of the Prefix {path}.")),
        ));
        plan.report.exact(
            place,
            format!("{what} -> routes {name} (prefix {slash}) and {name}-exact ({path})"),
        );
    } else {
        plan.report
            .exact(place, format!("{what} -> route {name} (prefix {slash})"));
    }
    out
}

/// `ImplementationSpecific` without use-regex: nginx's plain `location PATH`, a string prefix
/// (`/p` also takes `/pq`), the longest winning.
fn string_prefix_path(
    path: &str,
    what: &str,
    name: &str,
    place: &str,
    plan: &mut Plan,
    route: impl Fn(PathRule, (u8, i64), bool, &str, Vec<String>) -> Route,
    comment: impl Fn(&str) -> Vec<String>,
) -> Vec<Route> {
    plan.report.exact(
        place,
        format!("{what} -> route {name}: a plain string prefix, as nginx's `location {path}`"),
    );
    vec![route(
        PathRule::Prefix(path.into()),
        (1, -(path.len() as i64)),
        false,
        "",
        comment("ImplementationSpecific is nginx's plain prefix location: a string prefix."),
    )]
}
