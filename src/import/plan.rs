//! What an import produces before it is written out: routes, upstreams (Services) and CORS
//! policies, each with the comments that say where it came from, and the report.

use std::collections::BTreeMap;

/// The hosts a route serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Any,
    Exact(String),
    /// `*.example.com`, stored as `example.com`.
    Wildcard(String),
}

impl Host {
    /// Exact hosts first, then wildcards from the longest suffix, then routes for any host:
    /// how nginx picks a `server_name` and how the Gateway API ranks hostnames.
    fn rank(&self) -> (u8, i64) {
        match self {
            Host::Exact(_) => (0, 0),
            Host::Wildcard(s) => (1, -(s.len() as i64)),
            Host::Any => (2, 0),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Host::Any => "any host".into(),
            Host::Exact(h) => format!("host {h}"),
            Host::Wildcard(s) => format!("host *.{s}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathRule {
    Prefix(String),
    Exact(String),
    /// Rust regex syntax, anchored at both ends by crossgate.
    Regex(String),
}

impl PathRule {
    pub fn describe(&self) -> String {
        match self {
            PathRule::Prefix(p) => format!("prefix {p}"),
            PathRule::Exact(p) => format!("exact {p}"),
            PathRule::Regex(r) => format!("regex {r}"),
        }
    }
}

/// A Kubernetes Service port: a number, or a name that only the Service object resolves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Port {
    Number(u16),
    Name(String),
}

/// A backend Service, keyed `NAMESPACE-NAME-PORT` as ingress-nginx names its upstreams.
#[derive(Debug, Clone)]
pub struct Service {
    pub namespace: String,
    pub name: String,
    pub port: Port,
    /// Where it was first named, for the comment.
    pub first_seen: String,
    /// How a named port was resolved, if it was.
    pub note: Option<String>,
}

impl Service {
    pub fn key(&self) -> String {
        let port = match &self.port {
            Port::Number(n) => n.to_string(),
            Port::Name(n) => n.clone(),
        };
        format!("{}-{}-{port}", self.namespace, self.name)
    }
}

#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub host: Host,
    pub path: PathRule,
    /// Service keys; several share the route's upstream round-robin.
    pub backends: Vec<String>,
    /// A policy name in [`Plan::policies`]; `None` leaves CORS to the backend.
    pub policy: Option<String>,
    pub comment: Vec<String>,
    /// Order among the routes of one host (lower first), set by the reader from the source's
    /// precedence rules.
    pub path_rank: (u8, i64),
    /// Added to reproduce a source rule (the exact half of a prefix): an explicit route for
    /// the same host and path wins over it.
    pub implied: bool,
    /// 1 for catch-all default backends, served after everything else.
    pub tier: u8,
    /// `read_timeout` in seconds (ingress-nginx's `proxy-read-timeout`).
    pub read_timeout: Option<u64>,
    /// The prefix is taken off before the request goes upstream (ingress-nginx's usual
    /// `rewrite-target`).
    pub strip_prefix: bool,
    /// `file:line Kind ns/name`, for report lines.
    pub place: String,
}

/// A setting and the comment that says where its value came from.
#[derive(Debug, Clone)]
pub struct Field<T> {
    pub value: T,
    pub note: String,
}

impl<T> Field<T> {
    pub fn new(value: T, note: impl Into<String>) -> Self {
        Field {
            value,
            note: note.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginEntry {
    Exact(String),
    /// `https://*.example.com[:port]`, crossgate's own wildcard.
    Wildcard(String),
    Regex(String),
}

#[derive(Debug, Clone)]
pub enum Origins {
    Any,
    List(Vec<Field<OriginEntry>>),
}

#[derive(Debug, Clone)]
pub enum Headers {
    List(Vec<String>),
    Mirror,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    pub comment: Vec<String>,
    pub origins: Field<Origins>,
    pub methods: Field<Vec<String>>,
    pub headers: Field<Headers>,
    pub expose: Field<Vec<String>>,
    pub credentials: Field<bool>,
    pub max_age: Field<Option<u64>>,
}

/// One line of the report: where in the input, and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub place: String,
    pub text: String,
}

#[derive(Debug, Default)]
pub struct Report {
    pub exact: Vec<Note>,
    pub changed: Vec<Note>,
    pub unsupported: Vec<Note>,
    /// Objects ingress-nginx does not serve (another class), so neither is anything made.
    pub skipped: Vec<Note>,
    /// Points that hold for the whole conversion (said once).
    pub general: Vec<String>,
    /// Objects read, by kind (`Ingress: 3`).
    pub read: BTreeMap<String, usize>,
    /// Objects of kinds that carry no routing, by kind.
    pub ignored: BTreeMap<String, usize>,
}

impl Report {
    pub fn exact(&mut self, place: &str, text: impl Into<String>) {
        push(&mut self.exact, place, text.into());
    }
    pub fn changed(&mut self, place: &str, text: impl Into<String>) {
        push(&mut self.changed, place, text.into());
    }
    pub fn unsupported(&mut self, place: &str, text: impl Into<String>) {
        push(&mut self.unsupported, place, text.into());
    }
    pub fn skipped(&mut self, place: &str, text: impl Into<String>) {
        push(&mut self.skipped, place, text.into());
    }
    pub fn general(&mut self, text: impl Into<String>) {
        let text = text.into();
        if !self.general.contains(&text) {
            self.general.push(text);
        }
    }
}

fn push(list: &mut Vec<Note>, place: &str, text: String) {
    let note = Note {
        place: place.to_owned(),
        text,
    };
    if !list.contains(&note) {
        list.push(note);
    }
}

#[derive(Debug, Default)]
pub struct Plan {
    pub routes: Vec<Route>,
    pub policies: Vec<Policy>,
    pub services: BTreeMap<String, Service>,
    pub report: Report,
    /// Each path rule of the input as its controller reads it, for the self-check.
    pub sources: Vec<SourceRule>,
}

/// Which controller reads a rule: their rules never meet in the source (each is its own data
/// plane), so each request is judged against the rules of its own kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    IngressNginx,
    Gateway,
}

/// What a source rule's path takes, as its controller documents it (`crate::import::selfcheck`
/// models the precedence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourcePath {
    /// `Exact`: the path, case-sensitive.
    Exact(String),
    /// Ingress `Prefix`, Gateway `PathPrefix`: whole path elements, a trailing `/` ignored.
    Prefix(String),
    /// Ingress `ImplementationSpecific` without regex: nginx's string prefix.
    StringPrefix(String),
    /// A regex: the pattern as the controller applies it (Rust syntax), and the path as
    /// written (regexes are ranked by its length).
    Regex { pattern: String, written: String },
    /// An Ingress's `defaultBackend`: what the host's other rules do not take.
    Default,
}

/// One path rule of the input: who reads it, which host and path it takes, and where it
/// sends them (backend Service keys and CORS policy, as its routes carry them).
#[derive(Debug, Clone)]
pub struct SourceRule {
    pub controller: Controller,
    pub host: Host,
    pub path: SourcePath,
    pub backends: Vec<String>,
    pub policy: Option<String>,
    /// Its routes were written (else the report says why not).
    pub converted: bool,
    /// `file:line Kind ns/name` and what it is, for the report.
    pub what: String,
}

impl Plan {
    /// Registers a backend Service and returns its key. Keys join namespace, name and port
    /// with `-`, which two Services can share (`a-b`/`c` and `a`/`b-c`): the second gets `-2`.
    pub fn service(&mut self, s: Service) -> String {
        let base = s.key();
        let mut key = base.clone();
        for n in 2.. {
            match self.services.get(&key) {
                None => {
                    self.services.insert(key.clone(), s);
                    break;
                }
                Some(o) if o.namespace == s.namespace && o.name == s.name && o.port == s.port => {
                    break
                }
                Some(_) => key = format!("{base}-{n}"),
            }
        }
        key
    }

    /// Adds a CORS policy under a name no other policy has, and returns the name.
    pub fn add_policy(&mut self, mut p: Policy) -> String {
        let base = p.name.clone();
        for n in 2.. {
            if !self.policies.iter().any(|q| q.name == p.name) {
                break;
            }
            p.name = format!("{base}-{n}");
        }
        let name = p.name.clone();
        self.policies.push(p);
        name
    }

    /// Orders routes by the sources' precedence (crossgate takes the first match), and drops a
    /// route whose host and path an earlier one already has: the source serves that one too.
    pub fn order(&mut self) {
        let mut indexed: Vec<(usize, Route)> = std::mem::take(&mut self.routes)
            .into_iter()
            .enumerate()
            .collect();
        indexed.sort_by_key(|(i, r)| (r.tier, r.host.rank(), r.path_rank, r.implied, *i));
        let mut kept: Vec<Route> = Vec::new();
        for (_, r) in indexed {
            match kept.iter().find(|k| k.host == r.host && k.path == r.path) {
                Some(_) if r.implied => {}
                Some(first) => {
                    // Its reader said where it went: that line no longer holds.
                    let n = &r.name;
                    self.report.exact.retain(|note| {
                        !(note.place == r.place
                            && (note.text.contains(&format!("-> route {n}:"))
                                || note.text.ends_with(&format!("-> route {n}"))
                                || note.text.contains(&format!("-> routes {n} ("))))
                    });
                    let text = format!(
                        "{}, {}: skipped, {} already serves the same host and path (first in the input; Kubernetes controllers keep the oldest object's)",
                        r.host.describe(),
                        r.path.describe(),
                        first.place
                    );
                    self.report.unsupported(&r.place, text);
                }
                None => kept.push(r),
            }
        }
        // Route names join namespace, name and indexes with `-`, which two objects can share.
        let mut names = std::collections::HashSet::new();
        for r in &mut kept {
            let base = r.name.clone();
            let mut n = 2;
            while !names.insert(r.name.clone()) {
                r.name = format!("{base}-{n}");
                n += 1;
            }
        }
        self.routes = kept;
    }
}
