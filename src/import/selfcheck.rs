//! The import proves its own routing: every host and path of the input (each rule's path, an
//! example under each prefix, a sample of each regex where one can be derived, a wildcard's
//! one- and two-label names, and a host that no rule names) is replayed through the dispatcher
//! `explain` uses ([`Rules::find`]) on the config written, and where crossgate sends it is
//! compared with where the source's controller would: the same backend Services and the same
//! CORS policy.
//!
//! The source side is a model of the controllers' documented precedence, written from their
//! documentation, not from the converter (which ranks routes for crossgate's first match):
//! - ingress-nginx (`docs/user-guide/ingress-path-matching.md`, and the Ingress API): a request
//!   goes to the server of its host: an exact host, else a wildcard `*.suffix` of exactly one
//!   label (the longest suffix), else the default server (rules without a host). Within it, an
//!   `Exact` path wins, then the longest prefix (`Prefix` by whole path elements, a trailing
//!   `/` ignored; `ImplementationSpecific` as a string prefix); on a host where any Ingress
//!   asks for regexes (`use-regex`, `rewrite-target`), every path is a case-insensitive regex
//!   from the start of the path, tried longest first, the first match winning. What no path
//!   takes goes to the host's `defaultBackend` (an Ingress without rules: the default server's),
//!   else the controller's default backend (a 404).
//! - Gateway API (`HTTPRouteSpec.Hostnames`, `HTTPRouteRule.Matches`): the most specific
//!   hostname (exact, else the longest wildcard suffix, any number of labels, else routes
//!   without hostnames); within it `Exact`, then the longest `PathPrefix` (whole path
//!   elements), regexes ranked among the prefixes by length (implementation-specific, as the
//!   converter says in its report), the oldest rule on a tie.
//!
//! Each request is judged against the rules of its own controller only: an Ingress and an
//! HTTPRoute are two data planes in the source. Requests are GETs without headers: rules that
//! also match on method, headers or query are not converted and not modeled.

use std::collections::BTreeSet;

use regex::Regex;

use super::plan::{Controller, Host, Plan, SourcePath, SourceRule};
use crate::rules::Rules;

/// A host that no rule names (RFC 6761 `.invalid`).
const NO_RULE_HOST: &str = "crossgate-selfcheck.invalid";

/// What the replay found.
#[derive(Debug, Default)]
pub struct Replayed {
    pub requests: usize,
    /// One line per request routed otherwise than the source would route it.
    pub differences: Vec<String>,
    /// Regexes for which no sample path could be derived.
    pub unsampled: Vec<String>,
}

/// Replays the input's hosts and paths (`plan.sources`) through `rules` (the config written).
pub fn replay(plan: &Plan, rules: &Rules) -> Replayed {
    let mut out = Replayed::default();
    let mut requests = BTreeSet::new();
    for r in &plan.sources {
        let paths = match sample_paths(&r.path) {
            Some(p) => p,
            None => {
                out.unsampled.push(r.what.clone());
                continue;
            }
        };
        for host in sample_hosts(&r.host) {
            for path in &paths {
                requests.insert((controller_key(r.controller), host.clone(), path.clone()));
            }
        }
    }
    let controllers: BTreeSet<u8> = plan
        .sources
        .iter()
        .map(|r| controller_key(r.controller))
        .collect();
    for c in controllers {
        for path in ["/", "/crossgate-selfcheck"] {
            requests.insert((c, NO_RULE_HOST.to_owned(), path.to_owned()));
        }
    }
    out.requests = requests.len();
    for (c, host, path) in requests {
        let mine: Vec<&SourceRule> = plan
            .sources
            .iter()
            .filter(|r| controller_key(r.controller) == c)
            .collect();
        let expected = pick(&mine, &host, &path);
        let actual = rules
            .find(&host, &path)
            .and_then(|route| plan.routes.iter().find(|r| r.name == route.name));
        let same = match (expected, actual) {
            (None, None) => true,
            // A route's Services are joined into one upstream (`a+b`) when it is written.
            (Some(e), Some(a)) => {
                e.converted && e.backends.join("+") == a.backends.join("+") && e.policy == a.policy
            }
            _ => false,
        };
        if same {
            continue;
        }
        let source = match expected {
            None => "the source has no rule for it (its default backend answers 404)".to_owned(),
            Some(e) if !e.converted => {
                format!("the source serves it by {} (not converted)", e.what)
            }
            Some(e) => format!(
                "the source sends it to {} ({}) by {}",
                e.backends.join(", "),
                policy(&e.policy),
                e.what
            ),
        };
        let crossgate = match actual {
            None => "crossgate routes it nowhere (404)".to_owned(),
            Some(a) => format!(
                "crossgate routes it to {} ({}) by route {}",
                a.backends.join(", "),
                policy(&a.policy),
                a.name
            ),
        };
        out.differences
            .push(format!("GET http://{host}{path}: {source}; {crossgate}"));
    }
    out
}

fn controller_key(c: Controller) -> u8 {
    match c {
        Controller::IngressNginx => 0,
        Controller::Gateway => 1,
    }
}

fn policy(p: &Option<String>) -> String {
    match p {
        Some(p) => format!("CORS policy {p}"),
        None => "no CORS".into(),
    }
}

/// The hosts a rule's requests are sent with: its own, a wildcard's names of one and two
/// labels, and for a rule of any host, a host no rule names.
fn sample_hosts(host: &Host) -> Vec<String> {
    match host {
        Host::Exact(h) => vec![h.to_ascii_lowercase()],
        Host::Wildcard(s) => vec![format!("selfcheck.{s}"), format!("a.selfcheck.{s}")],
        Host::Any => vec![NO_RULE_HOST.to_owned()],
    }
}

/// The paths a rule's requests are sent with; None for a regex no sample was found for.
fn sample_paths(path: &SourcePath) -> Option<Vec<String>> {
    Some(match path {
        SourcePath::Exact(p) => vec![p.clone()],
        SourcePath::Prefix(p) => {
            vec![p.clone(), format!("{}/selfcheck", p.trim_end_matches('/'))]
        }
        SourcePath::StringPrefix(p) => vec![p.clone(), format!("{p}selfcheck")],
        SourcePath::Default => vec!["/".into(), "/crossgate-selfcheck".into()],
        SourcePath::Regex { pattern, written } => {
            let samples = regex_samples(pattern, written);
            if samples.is_empty() {
                return None;
            }
            samples
        }
    })
}

/// Paths the regex takes, at most two: its literal start, then that with a few common endings
/// (`/p(/|$)(.*)` gives `/p` and `/p/`, so both of what the route takes are replayed).
fn regex_samples(pattern: &str, written: &str) -> Vec<String> {
    let Ok(re) = Regex::new(pattern) else {
        return Vec::new();
    };
    let literal: String = written
        .chars()
        .take_while(|c| !"\\.^$*+?()[]{}|".contains(*c))
        .collect();
    let lit = literal.trim_end_matches('/');
    let mut out: Vec<String> = Vec::new();
    for p in [
        literal.clone(),
        format!("{lit}/"),
        format!("{lit}/selfcheck"),
        format!("{literal}selfcheck"),
        format!("{lit}/1"),
        format!("{lit}/1/selfcheck"),
        format!("{literal}1"),
        format!("{literal}1/"),
        format!("{literal}1/selfcheck"),
    ] {
        if out.len() < 2 && p.starts_with('/') && re.is_match(&p) && !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// The rule the controller would send `host` and `path` to (None: its default backend).
fn pick<'a>(rules: &[&'a SourceRule], host: &str, path: &str) -> Option<&'a SourceRule> {
    let controller = rules.first()?.controller;
    let server = server(rules, host, controller);
    let by_path = match controller {
        Controller::IngressNginx
            if server
                .iter()
                .any(|r| matches!(r.path, SourcePath::Regex { .. })) =>
        {
            longest_regex_first(&server, path)
        }
        _ => exact_then_longest(&server, path, controller),
    };
    by_path.or_else(|| {
        server
            .iter()
            .copied()
            .find(|r| r.path == SourcePath::Default)
    })
}

/// The rules of the host's server (ingress-nginx) or most specific hostname (Gateway API).
fn server<'a>(rules: &[&'a SourceRule], host: &str, c: Controller) -> Vec<&'a SourceRule> {
    let of = |want: &Host| -> Vec<&'a SourceRule> {
        rules.iter().copied().filter(|r| &r.host == want).collect()
    };
    let exact = Host::Exact(host.to_owned());
    if rules.iter().any(|r| r.host == exact) {
        return of(&exact);
    }
    let wildcard = rules
        .iter()
        .filter_map(|r| match &r.host {
            Host::Wildcard(s) => Some(s),
            _ => None,
        })
        .filter(|s| {
            match host
                .strip_suffix(s.as_str())
                .and_then(|h| h.strip_suffix('.'))
            {
                None => false,
                // ingress-nginx: exactly one label; the Gateway API: one or more.
                Some(label) => {
                    !label.is_empty() && (c == Controller::Gateway || !label.contains('.'))
                }
            }
        })
        .max_by_key(|s| s.len());
    match wildcard {
        Some(s) => of(&Host::Wildcard(s.clone())),
        None => of(&Host::Any),
    }
}

/// ingress-nginx on a regex host: regexes by the length of the path written, longest first,
/// the first that matches.
fn longest_regex_first<'a>(server: &[&'a SourceRule], path: &str) -> Option<&'a SourceRule> {
    let mut regexes: Vec<(&'a SourceRule, &str, &str)> = server
        .iter()
        .filter_map(|r| match &r.path {
            SourcePath::Regex { pattern, written } => {
                Some((*r, pattern.as_str(), written.as_str()))
            }
            _ => None,
        })
        .collect();
    // Stable: the first in the input wins a tie.
    regexes.sort_by_key(|(_, _, written)| std::cmp::Reverse(written.len()));
    regexes
        .into_iter()
        .find(|(_, pattern, _)| Regex::new(pattern).is_ok_and(|re| re.is_match(path)))
        .map(|(r, _, _)| r)
}

/// An exact path first, then the longest prefix (or, for the Gateway API, regex) that takes
/// the path; the first in the input on a tie.
fn exact_then_longest<'a>(
    server: &[&'a SourceRule],
    path: &str,
    c: Controller,
) -> Option<&'a SourceRule> {
    if let Some(r) = server
        .iter()
        .copied()
        .find(|r| matches!(&r.path, SourcePath::Exact(p) if p == path))
    {
        return Some(r);
    }
    let mut best: Option<(&'a SourceRule, usize)> = None;
    for r in server.iter().copied() {
        let len = match &r.path {
            SourcePath::Prefix(p) => {
                let p = p.trim_end_matches('/');
                let takes = p.is_empty()
                    || path == p
                    || path
                        .strip_prefix(p)
                        .is_some_and(|rest| rest.starts_with('/'));
                takes.then_some(p.len())
            }
            SourcePath::StringPrefix(p) => path.starts_with(p.as_str()).then_some(p.len()),
            SourcePath::Regex { pattern, written } if c == Controller::Gateway => {
                let takes = Regex::new(pattern).is_ok_and(|re| re.is_match(path));
                takes.then_some(written.len())
            }
            _ => None,
        };
        // Strictly longer: the first in the input keeps a tie.
        match (len, best) {
            (Some(len), Some((_, l))) if len <= l => {}
            (Some(len), _) => best = Some((r, len)),
            (None, _) => {}
        }
    }
    best.map(|(r, _)| r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(c: Controller, host: Host, path: SourcePath, backend: &str) -> SourceRule {
        SourceRule {
            controller: c,
            host,
            path,
            backends: vec![backend.into()],
            policy: None,
            converted: true,
            what: backend.into(),
        }
    }

    fn picked(rules: &[SourceRule], host: &str, path: &str) -> Option<String> {
        let refs: Vec<&SourceRule> = rules.iter().collect();
        pick(&refs, host, path).map(|r| r.backends[0].clone())
    }

    #[test]
    fn ingress_nginx_exact_then_the_longest_prefix_then_the_hosts_default() {
        use Controller::IngressNginx as N;
        let h = || Host::Exact("api.example".into());
        let rules = [
            rule(N, h(), SourcePath::Prefix("/".into()), "root"),
            rule(N, h(), SourcePath::Prefix("/v1".into()), "v1"),
            rule(N, h(), SourcePath::Exact("/v1/x".into()), "exact"),
            rule(N, h(), SourcePath::StringPrefix("/v1/xy".into()), "string"),
            rule(
                N,
                Host::Wildcard("example".into()),
                SourcePath::Prefix("/".into()),
                "wild",
            ),
            rule(N, Host::Any, SourcePath::Default, "catch-all"),
        ];
        let got = |host, path| picked(&rules, host, path);
        assert_eq!(got("api.example", "/v1/x").as_deref(), Some("exact"));
        assert_eq!(got("api.example", "/v1/xyz").as_deref(), Some("string"));
        assert_eq!(got("api.example", "/v1").as_deref(), Some("v1"));
        assert_eq!(got("api.example", "/v1z").as_deref(), Some("root"));
        assert_eq!(got("other.example", "/v1").as_deref(), Some("wild"));
        // One label only, for ingress-nginx: a.b.example is the default server's.
        assert_eq!(got("a.b.example", "/").as_deref(), Some("catch-all"));
        assert_eq!(got("nowhere.test", "/").as_deref(), Some("catch-all"));
    }

    #[test]
    fn ingress_nginx_regex_hosts_try_the_longest_path_first() {
        use Controller::IngressNginx as N;
        let h = || Host::Exact("r.example".into());
        let re = |w: &str| SourcePath::Regex {
            pattern: format!("(?i)^(?:{w})"),
            written: w.into(),
        };
        let rules = [
            rule(N, h(), re("/api"), "short"),
            rule(N, h(), re("/api/v[0-9]+"), "long"),
        ];
        assert_eq!(
            picked(&rules, "r.example", "/API/v2/x").as_deref(),
            Some("long")
        );
        assert_eq!(
            picked(&rules, "r.example", "/api/x").as_deref(),
            Some("short")
        );
        assert_eq!(picked(&rules, "r.example", "/x"), None);
    }

    #[test]
    fn gateway_wildcards_take_any_number_of_labels_and_nothing_else_is_a_404() {
        use Controller::Gateway as G;
        let rules = [rule(
            G,
            Host::Wildcard("example".into()),
            SourcePath::Prefix("/api".into()),
            "w",
        )];
        assert_eq!(
            picked(&rules, "a.b.example", "/api/x").as_deref(),
            Some("w")
        );
        assert_eq!(picked(&rules, "a.b.example", "/apix"), None);
        assert_eq!(picked(&rules, "example", "/api"), None);
    }

    #[test]
    fn regex_samples_are_derived_from_their_literal_start() {
        assert_eq!(
            regex_samples("(?i)^(?:/api(/|$)(.*))", "/api(/|$)(.*)"),
            ["/api", "/api/"]
        );
        assert!(
            regex_samples("^(?:/v[0-9]+/items)$", "/v[0-9]+/items").is_empty(),
            "no sample among the tried endings"
        );
        assert_eq!(
            regex_samples("^(?:/users/[0-9]+)$", "/users/[0-9]+"),
            ["/users/1"]
        );
    }
}
