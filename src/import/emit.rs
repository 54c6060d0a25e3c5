//! Writes a [`Plan`] as commented crossgate YAML. serde cannot write comments, so this is a
//! small writer; every value goes through [`scalar`], and the result is parsed and compiled
//! again before it leaves (`super::check`).

use std::fmt::Write;

use super::plan::{Field, Headers, Host, OriginEntry, Origins, PathRule, Plan, Policy};
use super::{Options, Source, Upstream};

/// A YAML scalar: plain when it cannot be read as anything but this string, single-quoted
/// otherwise (double-quoted with escapes if it holds control characters).
pub fn scalar(s: &str) -> String {
    let special = matches!(
        s.to_ascii_lowercase().as_str(),
        "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | "null" | "~"
    );
    let plain = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '/')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_./:-+".contains(&b))
        && !s.ends_with(':')
        && !special;
    if plain {
        s.to_owned()
    } else if s.chars().any(char::is_control) {
        serde_json::to_string(s).unwrap_or_else(|_| format!("'{}'", s.replace('\'', "''")))
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// `# ...` lines at `indent`, wrapped near 100 columns.
fn comment(out: &mut String, indent: usize, text: &str) {
    let pad = " ".repeat(indent);
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let width = 100usize.saturating_sub(indent + 2).max(40);
    let mut line = String::new();
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            let _ = writeln!(out, "{pad}# {line}");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        let _ = writeln!(out, "{pad}# {line}");
    }
}

fn flow(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|s| scalar(s)).collect();
    format!("[{}]", items.join(", "))
}

fn field<T>(out: &mut String, f: &Field<T>, line: String) {
    comment(out, 4, &f.note);
    let _ = writeln!(out, "    {line}");
}

fn policy(out: &mut String, p: &Policy) {
    for c in &p.comment {
        comment(out, 2, c);
    }
    let _ = writeln!(out, "  {}:", scalar(&p.name));
    comment(out, 4, &p.origins.note);
    match &p.origins.value {
        Origins::Any => {
            let _ = writeln!(out, "    allow_origins: any");
        }
        Origins::List(l) if l.is_empty() => {
            let _ = writeln!(out, "    allow_origins: []");
        }
        Origins::List(l) => {
            let _ = writeln!(out, "    allow_origins:");
            for o in l {
                if o.note != entry_text(&o.value) {
                    comment(out, 6, &o.note);
                }
                let _ = match &o.value {
                    OriginEntry::Exact(s) | OriginEntry::Wildcard(s) => {
                        writeln!(out, "      - {}", scalar(s))
                    }
                    OriginEntry::Regex(r) => writeln!(out, "      - regex: {}", scalar(r)),
                };
            }
        }
    }
    field(
        out,
        &p.methods,
        format!("allow_methods: {}", flow(&p.methods.value)),
    );
    let headers = match &p.headers.value {
        Headers::Mirror => "mirror".to_owned(),
        Headers::List(l) => flow(l),
    };
    field(out, &p.headers, format!("allow_headers: {headers}"));
    field(
        out,
        &p.expose,
        format!("expose_headers: {}", flow(&p.expose.value)),
    );
    field(
        out,
        &p.credentials,
        format!("allow_credentials: {}", p.credentials.value),
    );
    if let Some(age) = p.max_age.value {
        field(out, &p.max_age, format!("max_age: {age}"));
    }
}

fn entry_text(e: &OriginEntry) -> String {
    match e {
        OriginEntry::Exact(s) | OriginEntry::Wildcard(s) | OriginEntry::Regex(s) => s.clone(),
    }
}

pub fn config(
    plan: &Plan,
    upstreams: &[Upstream],
    sources: &[Source],
    options: &Options,
) -> String {
    let mut out = String::new();
    header(&mut out, sources, options);
    upstreams_section(&mut out, upstreams);
    policies_section(&mut out, plan);
    routes_section(&mut out, plan);
    out
}

/// Where the config comes from, how to check it, and `listen:`.
fn header(out: &mut String, sources: &[Source], options: &Options) {
    let names: Vec<String> = sources
        .iter()
        .map(|s| s.name.display().to_string())
        .collect();
    comment(
        out,
        0,
        &format!(
            "crossgate config written by `crossgate import` from {}.",
            names.join(", ")
        ),
    );
    comment(out, 0, "Each route, upstream and CORS policy says where it comes from; the import report says what maps exactly, what changes meaning, and what was not converted.");
    comment(out, 0, "Check it with `crossgate check --config FILE` where the upstream names resolve (crossgate resolves them when it loads the file).");
    out.push('\n');
    out.push_str("listen:\n");
    let _ = writeln!(out, "  - {}", scalar(&options.listen));
    out.push('\n');
}

fn upstreams_section(out: &mut String, upstreams: &[Upstream]) {
    comment(out, 0, "One upstream per backend Service (NAMESPACE-SERVICE-PORT, the names ingress-nginx gives its upstreams; several Services of one rule are joined with +). No health_check: ingress-nginx has none either, and Kubernetes readiness keeps unready pods out of a Service.");
    out.push_str("upstreams:\n");
    for u in upstreams {
        let _ = writeln!(out, "  {}:", scalar(&u.name));
        out.push_str("    servers:\n");
        for (server, note) in &u.servers {
            comment(out, 6, note);
            let _ = writeln!(out, "      - {}", scalar(server));
        }
    }
}

/// The policies some route uses (none: no `cors_policies:`).
fn policies_section(out: &mut String, plan: &Plan) {
    let used: Vec<&str> = plan
        .routes
        .iter()
        .filter_map(|r| r.policy.as_deref())
        .collect();
    let policies: Vec<&Policy> = plan
        .policies
        .iter()
        .filter(|p| used.contains(&p.name.as_str()))
        .collect();
    if !policies.is_empty() {
        out.push('\n');
        out.push_str("cors_policies:\n");
        for (i, p) in policies.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            policy(out, p);
        }
    }
}

fn routes_section(out: &mut String, plan: &Plan) {
    out.push('\n');
    comment(out, 0, "First match wins: exact hosts, then wildcard hosts (longest first), then any host; within a host, exact paths, then the longest prefix, as the sources rank them.");
    out.push_str("routes:\n");
    for r in &plan.routes {
        for c in &r.comment {
            comment(out, 2, c);
        }
        if r.policy.is_none() {
            comment(out, 2, "No cors: the source had no CORS for it, so CORS stays the backend's business (preflights are forwarded, headers untouched).");
        }
        let _ = writeln!(out, "  - name: {}", scalar(&r.name));
        match &r.host {
            Host::Any => {}
            Host::Exact(h) => {
                let _ = writeln!(out, "    host: {}", scalar(h));
            }
            Host::Wildcard(s) => {
                let _ = writeln!(out, "    host: {}", scalar(&format!("*.{s}")));
            }
        }
        let _ = match &r.path {
            PathRule::Prefix(p) => writeln!(out, "    path: {}", scalar(p)),
            PathRule::Exact(p) => writeln!(out, "    path: {{exact: {}}}", scalar(p)),
            PathRule::Regex(p) => writeln!(out, "    path: {{regex: {}}}", scalar(p)),
        };
        let _ = writeln!(out, "    upstream: {}", scalar(&r.backends[0]));
        if r.strip_prefix {
            let _ = writeln!(out, "    strip_prefix: true");
        }
        if let Some(s) = r.read_timeout {
            let _ = writeln!(out, "    read_timeout: {s}s");
        }
        if let Some(p) = &r.policy {
            let _ = writeln!(out, "    cors: {}", scalar(p));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_that_yaml_would_read_otherwise_are_quoted() {
        assert_eq!(scalar("api.example.com"), "api.example.com");
        assert_eq!(scalar("/api/"), "/api/");
        assert_eq!(scalar("*.example.com"), "'*.example.com'");
        assert_eq!(scalar("true"), "'true'");
        assert_eq!(scalar("No"), "'No'");
        assert_eq!(scalar("0.0.0.0:8080"), "'0.0.0.0:8080'");
        assert_eq!(scalar("it's"), "'it''s'");
        assert_eq!(scalar("a\nb"), "\"a\\nb\"");
        assert_eq!(scalar(r"https://[a-z]+\.x"), r"'https://[a-z]+\.x'");
    }

    #[test]
    fn comments_wrap_and_lose_line_breaks() {
        let mut out = String::new();
        comment(&mut out, 2, &format!("{} end\nnext", "word ".repeat(30)));
        assert!(
            out.lines().all(|l| l.starts_with("  # ") && l.len() <= 100),
            "{out}"
        );
        assert!(out.contains("end next"), "{out}");
    }
}
