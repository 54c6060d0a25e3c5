//! The import report: what maps exactly, what changes meaning and why, what was not
//! converted, and what `crossgate check` says of the result.

use super::selfcheck::Replayed;
use std::fmt::Write;

use super::plan::{Note, Plan};
use super::{Options, Source, Upstream};

fn counts(map: &std::collections::BTreeMap<String, usize>) -> String {
    map.iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn section(out: &mut String, title: &str, notes: &[Note]) {
    if notes.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{title} ({}):", notes.len());
    for n in notes {
        let _ = writeln!(out, "  - {}: {}", n.place, n.text);
    }
}

/// What was not converted, in one line (for "nothing to import").
pub fn skipped(plan: &Plan) -> String {
    plan.report
        .unsupported
        .iter()
        .chain(&plan.report.skipped)
        .map(|n| format!("{}: {}", n.place, n.text))
        .collect::<Vec<_>>()
        .join("; ")
}

pub fn text(
    plan: &Plan,
    sources: &[Source],
    upstreams: &[Upstream],
    warnings: &[String],
    replayed: &Replayed,
    options: &Options,
) -> String {
    let r = &plan.report;
    let mut out = String::new();
    let names: Vec<String> = sources
        .iter()
        .map(|s| s.name.display().to_string())
        .collect();
    let policies = plan
        .routes
        .iter()
        .filter_map(|r| r.policy.as_deref())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let _ = writeln!(
        out,
        "crossgate import: read {} from {}; wrote {}, {} and {} to {}.",
        counts(&r.read),
        names.join(", "),
        plural(plan.routes.len(), "route", "routes"),
        plural(upstreams.len(), "upstream", "upstreams"),
        plural(policies, "CORS policy", "CORS policies"),
        options.output_name
    );
    if !r.ignored.is_empty() {
        let _ = writeln!(
            out,
            "Not read (they carry no routes): {}.",
            counts(&r.ignored)
        );
    }
    section(&mut out, "Maps exactly", &r.exact);
    section(&mut out, "Changes meaning", &r.changed);
    section(&mut out, "Not converted", &r.unsupported);
    section(
        &mut out,
        "Not served by ingress-nginx, so not converted",
        &r.skipped,
    );

    let mut general = r.general.clone();
    if upstreams
        .iter()
        .flat_map(|u| &u.servers)
        .any(|(_, note)| !note.ends_with("given with --upstream"))
    {
        general.insert(0, format!("The upstream servers are the Services' cluster names (NAME.NAMESPACE.{}:PORT), which crossgate run follows in DNS (a name that does not resolve yet answers 502 until it does) and crossgate check resolves (use --no-resolve outside the cluster), or import again with --upstream NAME=HOST:PORT. Requests go to the Service's address, which kube-proxy spreads over the pods; ingress-nginx connects to the pods' endpoints itself", options.service_domain));
    }
    general.push("crossgate takes the first route whose host and path match, in the order written (exact hosts, then wildcards, then any host; within a host, exact paths, then the longest prefix). When no route of a host matches a path, crossgate goes on to the wildcard and any-host routes, where nginx and Gateway implementations answer 404 from that host's own rules".into());
    general.push("WebSocket upgrades pass on any path of ingress-nginx and of Gateway implementations; crossgate answers them 403 unless the route has `websocket:` (which checks the handshake's Origin against the route's allow_origins): add `websocket: {}` to routes that serve WebSockets".into());
    let _ = writeln!(out, "\nTo know:");
    for g in &general {
        let _ = writeln!(out, "  - {g}.");
    }
    if warnings.is_empty() {
        let _ = writeln!(out, "\ncrossgate check on the config written: OK.");
    } else {
        let _ = writeln!(
            out,
            "\ncrossgate check on the config written: OK, with {} warnings:",
            warnings.len()
        );
        for w in warnings {
            let _ = writeln!(out, "  warning: {}", w.replace('\n', "\n    "));
        }
    }
    selfcheck(&mut out, replayed);
    out
}

/// The self-check's verdict: how many requests were replayed, and each one routed otherwise.
fn selfcheck(out: &mut String, r: &Replayed) {
    let _ = writeln!(
        out,
        "
Self-check: {} replayed through crossgate's dispatcher on the config written (each rule's path, an example under each prefix, a regex's sample, a wildcard's names of one and two labels, a host no rule names), against where the source's controller sends them:",
        plural(r.requests, "request", "requests")
    );
    if r.differences.is_empty() {
        let _ = writeln!(out, "  every one is routed as the source routes it (same backend Services, same CORS policy).");
    }
    for d in &r.differences {
        let _ = writeln!(out, "  - {d}");
    }
    for u in &r.unsampled {
        let _ = writeln!(
            out,
            "  (no sample path derived for the regex of {u}: not replayed)"
        );
    }
}
