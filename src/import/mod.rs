//! `crossgate import`: a crossgate config from Kubernetes manifests: Ingresses with
//! ingress-nginx's CORS annotations, and Gateway API HTTPRoutes with the CORS filter.
//!
//! Flow: files --[`crate::config::marked::documents`]--> YAML trees with positions
//! --[`manifest::objects`]--> objects (`kind: List` expanded) --[`ingress`], [`gateway`]-->
//! [`plan::Plan`] (routes, Services, CORS policies, and the report's notes)
//! --[`plan::Plan::order`]--> crossgate's first-match order --[`emit`]--> commented YAML
//! --[`check`]--> compiled by [`crate::rules::compile`] before anything is written.
//!
//! The conversion follows what each source does, read from its code and reference (see the
//! module docs of [`ingress`] and [`gateway`]); where crossgate cannot or will not do the same
//! (credentials with every origin, preflight caches longer than browsers keep them), it takes
//! the safe side and the report says so. Input it cannot read is an error that names the file,
//! line, object and field; input it reads but cannot convert is skipped, with the reason.

pub mod cli;
mod emit;
mod gateway;
mod ingress;
mod manifest;
mod plan;
mod report;
mod selfcheck;
mod upstreams;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use crate::config::{marked, ConfigError};
use plan::{Plan, Port, Service};
use upstreams::upstreams;
pub(crate) use upstreams::Upstream;

/// One input file.
pub struct Source {
    /// Shown in errors and comments.
    pub name: PathBuf,
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct Options {
    /// `listen:` of the config written.
    pub listen: String,
    /// Services are reached as `NAME.NAMESPACE.<service_domain>:PORT`.
    pub service_domain: String,
    /// The namespace of objects whose metadata has none.
    pub namespace: String,
    /// `(upstream name, host:port)`: servers to use instead of a Service's cluster name.
    pub upstreams: Vec<(String, String)>,
    /// What the config written is called in messages (its file name, or "the output").
    pub output_name: String,
    /// The ingress class whose Ingresses are converted (ingress-nginx's `--ingress-class`,
    /// default `nginx`); Ingresses of other classes are ignored, as that controller ignores them.
    pub ingress_class: String,
    /// Ignore Ingresses that name no class (ingress-nginx without
    /// `--watch-ingress-without-class`, and not the cluster's default IngressClass).
    pub skip_classless: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            listen: "0.0.0.0:8080".into(),
            service_domain: "svc.cluster.local".into(),
            namespace: "default".into(),
            upstreams: Vec::new(),
            output_name: "crossgate.yaml".into(),
            ingress_class: "nginx".into(),
            skip_classless: false,
        }
    }
}

/// The config and the report.
#[derive(Debug)]
pub struct Imported {
    pub yaml: String,
    pub report: String,
    /// The upstreams written, by name, with their servers.
    pub upstreams: BTreeMap<String, Vec<String>>,
    /// How many things of the input were not converted, or converted with another meaning
    /// (the report's "Not converted" and "Changed" lines): `--strict` fails when any.
    pub not_exact: usize,
}

/// What the readers share: hosts where ingress-nginx makes every path a regex, and the ports
/// of the Services in the input.
#[derive(Default)]
pub(crate) struct Ctx {
    pub regex_hosts: HashSet<String>,
    pub ports: ingress::ServicePorts,
    /// The ingress class served (`--ingress-class`).
    pub ingress_class: String,
    /// Class-less Ingresses are ignored (`--skip-classless`).
    pub skip_classless: bool,
}

impl Ctx {
    /// Registers a backend Service (resolving a named port from a Service in the input) and
    /// returns its key.
    pub fn service(
        &self,
        plan: &mut Plan,
        namespace: &str,
        name: &str,
        port: Port,
        place: &str,
    ) -> String {
        let mut note = None;
        let port = match port {
            Port::Name(n) => {
                match self
                    .ports
                    .get(&(namespace.to_owned(), name.to_owned()))
                    .and_then(|ps| ps.iter().find(|(pn, _)| *pn == n))
                {
                    Some((_, number)) => {
                        note = Some(format!(
                            "port {n:?} is {number} in the Service in the input"
                        ));
                        plan.report.exact(place, format!("Service {namespace}/{name} port {n:?}: {number}, from the Service in the input"));
                        Port::Number(*number)
                    }
                    None => Port::Name(n),
                }
            }
            p => p,
        };
        plan.service(Service {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            port,
            first_seen: place.to_owned(),
            note,
        })
    }
}

/// Browsers cap how long they keep a preflight: Chromium 7200 s, Firefox 86400 s. Above
/// Chromium's cap the policy says 7200 (a shorter cache only means more preflights).
pub(crate) fn browser_max_age(age: u64) -> Option<(u64, String)> {
    use crate::rules::{CHROMIUM_MAX_AGE, FIREFOX_MAX_AGE};
    if age <= CHROMIUM_MAX_AGE {
        return None;
    }
    let why = if age > FIREFOX_MAX_AGE {
        format!("above every browser's cap (Chromium {CHROMIUM_MAX_AGE} s, Firefox {FIREFOX_MAX_AGE} s), so no browser kept a preflight that long; written as {CHROMIUM_MAX_AGE}: Chromium caches as before, Firefox for 2 hours instead of 24 (more preflights, and a changed policy reaches browsers sooner)")
    } else {
        format!("above Chromium's cap of {CHROMIUM_MAX_AGE} s; written as {CHROMIUM_MAX_AGE}: Chromium caches as before, Firefox for 2 hours instead of {age} s")
    };
    Some((CHROMIUM_MAX_AGE, why))
}

/// Converts the manifests of `sources` into a crossgate config and its report.
pub fn import(sources: &[Source], options: &Options) -> Result<Imported, ConfigError> {
    check_options(options)?;
    let trees = sources.iter().map(parse).collect::<Result<Vec<_>, _>>()?;
    let mut objects = Vec::new();
    for (s, docs) in sources.iter().zip(&trees) {
        objects.extend(manifest::objects(&s.name, docs, &options.namespace)?);
    }

    let mut plan = Plan::default();
    let ctx = context(&objects, options, &mut plan)?;
    convert(&objects, &ctx, &mut plan)?;
    plan.order();
    let upstreams = upstreams(&mut plan, options)?;
    if plan.routes.is_empty() {
        return Err(nothing_to_import(&plan, sources));
    }
    let yaml = emit::config(&plan, &upstreams, sources, options);
    let (warnings, rules) = check(&yaml, options)?;
    let replayed = selfcheck::replay(&plan, &rules);
    let report = report::text(&plan, sources, &upstreams, &warnings, &replayed, options);
    Ok(Imported {
        yaml,
        report,
        not_exact: plan.report.unsupported.len()
            + plan.report.changed.len()
            + replayed.differences.len(),
        upstreams: upstreams
            .iter()
            .map(|u| {
                (
                    u.name.clone(),
                    u.servers.iter().map(|(s, _)| s.clone()).collect(),
                )
            })
            .collect(),
    })
}

/// `--listen` and `--service-domain`, checked before any input is read.
fn check_options(options: &Options) -> Result<(), ConfigError> {
    if options.listen.parse::<std::net::SocketAddr>().is_err() {
        return Err(ConfigError::new(
            Path::new("--listen"),
            None,
            String::new(),
            format!(
                "{:?} is not an address crossgate can listen on",
                options.listen
            ),
            "give an IP and a port, such as 0.0.0.0:8080 or [::]:8080".into(),
        ));
    }
    let domain_ok = !options.service_domain.is_empty()
        && options
            .service_domain
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if !domain_ok {
        return Err(ConfigError::new(
            Path::new("--service-domain"),
            None,
            String::new(),
            format!("{:?} is not a DNS domain", options.service_domain),
            "give the cluster's domain, such as svc.cluster.local".into(),
        ));
    }
    Ok(())
}

/// One input file's YAML documents.
fn parse(s: &Source) -> Result<Vec<marked::Node>, ConfigError> {
    marked::documents(&s.text).map_err(|e| {
        ConfigError::new(
            &s.name,
            Some((e.line, e.col)),
            String::new(),
            format!("this is not valid YAML: {}", e.message),
            "fix the YAML at this line (kubectl apply --dry-run=client -f FILE reports the same)"
                .into(),
        )
    })
}

/// The first pass: counts what was read, and collects what the readers share (Service ports,
/// regex hosts) before any object is converted.
fn context(
    objects: &[manifest::Object],
    options: &Options,
    plan: &mut Plan,
) -> Result<Ctx, ConfigError> {
    let mut ctx = Ctx {
        ingress_class: options.ingress_class.clone(),
        skip_classless: options.skip_classless,
        ..Ctx::default()
    };
    for o in objects {
        if ["Ingress", "HTTPRoute", "Service"].contains(&o.kind) {
            *plan.report.read.entry(o.kind.to_owned()).or_default() += 1;
        }
        match (o.kind, o.api_version) {
            ("Service", "v1") => ingress::service_ports(o, &mut ctx.ports)?,
            ("Ingress", "networking.k8s.io/v1") if ingress::served(o, &ctx)?.is_ok() => {
                ctx.regex_hosts.extend(ingress::regex_hosts(o)?)
            }
            _ => {}
        }
    }
    Ok(ctx)
}

/// The second pass: each Ingress and HTTPRoute (once) into the plan.
fn convert(objects: &[manifest::Object], ctx: &Ctx, plan: &mut Plan) -> Result<(), ConfigError> {
    let mut seen: BTreeMap<(String, String, &str), String> = BTreeMap::new();
    for o in objects {
        if matches!(o.kind, "Ingress" | "HTTPRoute") {
            let key = (o.kind.to_owned(), o.namespace.clone(), o.name);
            if let Some(first) = seen.get(&key) {
                plan.report.unsupported(&o.place(o.node), format!("the same object is in the input again (first at {first}); this copy is not converted"));
                continue;
            }
            seen.insert(key, o.place(o.node));
        }
        match (o.kind, o.api_version) {
            ("Ingress", "networking.k8s.io/v1") => ingress::convert(o, ctx, plan)?,
            ("HTTPRoute", "gateway.networking.k8s.io/v1" | "gateway.networking.k8s.io/v1beta1") => {
                gateway::convert(o, ctx, plan)?
            }
            ("Ingress", v) => plan.report.unsupported(&o.place(o.node), format!("apiVersion {v}: only networking.k8s.io/v1 Ingresses are read (the beta versions left Kubernetes in 1.22); export it again with kubectl get ingress -o yaml")),
            ("HTTPRoute", v) => plan.report.unsupported(&o.place(o.node), format!("apiVersion {v}: only gateway.networking.k8s.io/v1 (and v1beta1) HTTPRoutes are read")),
            ("Service", _) => {}
            (kind, _) => *plan.report.ignored.entry(kind.to_owned()).or_default() += 1,
        }
    }
    Ok(())
}

/// The error when no route was converted: why each object was skipped.
fn nothing_to_import(plan: &Plan, sources: &[Source]) -> ConfigError {
    let mut why = report::skipped(plan);
    if why.is_empty() {
        why = "no Ingress (networking.k8s.io/v1) or HTTPRoute (gateway.networking.k8s.io/v1) with a Service backend".into();
    }
    let names: Vec<String> = sources
        .iter()
        .map(|s| s.name.display().to_string())
        .collect();
    ConfigError::new(
        Path::new(&names.join(", ")),
        None,
        String::new(),
        format!("nothing to import: {why}"),
        "give the Ingress and HTTPRoute manifests to convert (kubectl get ingress,httproute -A -o yaml > routes.yaml)".into(),
    )
}

/// Compiles the config written, as `crossgate check` would, and returns its warnings and
/// rules (for the self-check). The servers are swapped for loopback addresses first: the
/// cluster's names do not resolve here, and everything else must compile exactly as written.
fn check(yaml: &str, options: &Options) -> Result<(Vec<String>, crate::rules::Rules), ConfigError> {
    let path = Path::new(&options.output_name);
    let bug = |e: ConfigError| {
        ConfigError::new(
            path,
            e.location,
            e.path,
            format!(
                "the config written does not compile ({}): a bug in crossgate import",
                e.message
            ),
            "report it with the input; meanwhile edit the output by hand".into(),
        )
    };
    let mut config = crate::config::parse_yaml(path, yaml).map_err(bug)?;
    for u in config.upstreams.values_mut() {
        for s in &mut u.servers {
            if s.parse::<std::net::SocketAddr>().is_err() {
                let port = s.rsplit_once(':').map_or("80", |(_, p)| p);
                *s = format!("127.0.0.1:{port}");
            }
        }
    }
    let loaded = crate::config::Loaded {
        path: path.to_path_buf(),
        source: yaml.to_owned(),
        config,
    };
    let rules = crate::rules::compile(&loaded).map_err(bug)?;
    let warnings = rules.warnings.iter().map(|w| w.to_string()).collect();
    Ok((warnings, rules))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(yaml: &str) -> Imported {
        let source = Source {
            name: "t.yaml".into(),
            text: yaml.into(),
        };
        import(&[source], &Options::default()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn ingress(
        name: &str,
        ns: &str,
        annotations: &str,
        host: &str,
        path: &str,
        svc: &str,
    ) -> String {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  namespace: {ns}\n  annotations: {{{annotations}}}\nspec:\n  rules:\n    - host: {host}\n      http:\n        paths:\n          - path: {path}\n            pathType: Prefix\n            backend: {{service: {{name: {svc}, port: {{number: 80}}}}}}\n---\n"
        )
    }

    #[test]
    fn rewrite_target_paths_are_not_converted_and_the_hosts_other_paths_become_regexes() {
        let yaml = ingress(
            "a",
            "x",
            "nginx.ingress.kubernetes.io/rewrite-target: /$1",
            "h.example.com",
            "/old",
            "a",
        ) + &ingress("b", "x", "", "h.example.com", "/keep", "b");
        let out = run(&yaml);
        assert!(
            out.report.contains("rewrite-target \"/$1\""),
            "{}",
            out.report
        );
        assert!(!out.yaml.contains("/old"), "{}", out.yaml);
        assert!(
            out.yaml.contains("path: {regex: '(?i)(?:/keep).*'}"),
            "{}",
            out.yaml
        );
    }

    #[test]
    fn two_services_whose_keys_join_alike_keep_upstreams_of_their_own() {
        let yaml = ingress("a", "a-b", "", "one.example.com", "/", "c")
            + &ingress("b", "a", "", "two.example.com", "/", "b-c");
        let out = run(&yaml);
        assert_eq!(
            out.upstreams.get("a-b-c-80"),
            Some(&vec!["c.a-b.svc.cluster.local:80".to_owned()])
        );
        assert_eq!(
            out.upstreams.get("a-b-c-80-2"),
            Some(&vec!["b-c.a.svc.cluster.local:80".to_owned()])
        );
    }

    #[test]
    fn the_same_object_twice_is_converted_once() {
        let one = ingress("a", "x", "", "h.example.com", "/", "a");
        let out = run(&format!("{one}{one}"));
        assert!(
            out.report.contains("the same object is in the input again"),
            "{}",
            out.report
        );
        assert_eq!(
            out.yaml.matches("- name: ingress-x-a-0-0").count(),
            1,
            "{}",
            out.yaml
        );
    }

    #[test]
    fn annotation_typos_classes_and_cors_snippets_are_reported() {
        let yaml = ingress(
            "a",
            "x",
            "nginx.ingress.kubernetes.io/cors-allow-orgin: 'https://a.example.com', nginx.ingress.kubernetes.io/configuration-snippet: 'more_set_headers \"Access-Control-Allow-Origin: *\";'",
            "h.example.com",
            "/",
            "a",
        );
        let traefik = ingress(
            "t",
            "x",
            "kubernetes.io/ingress.class: traefik",
            "t.example.com",
            "/",
            "t",
        );
        let out = run(&format!("{yaml}{traefik}"));
        for said in [
            "did you mean cors-allow-origin?",
            "writes Access-Control-* headers of its own",
            "Not served by ingress-nginx, so not converted",
            "ingress class \"traefik\": only Ingresses of the class \"nginx\" are converted",
        ] {
            assert!(out.report.contains(said), "{said}: {}", out.report);
        }
        assert!(!out.yaml.contains("t.example.com"), "{}", out.yaml);
        // The typo; the snippet, which changes what answers (and is itself not converted).
        assert_eq!(out.not_exact, 3, "{}", out.report);
    }

    #[test]
    fn flags_that_are_not_an_address_or_a_domain_are_errors_naming_the_flag() {
        let source = Source {
            name: "t.yaml".into(),
            text: ingress("a", "x", "", "h.example.com", "/", "a"),
        };
        let bad_listen = Options {
            listen: "8080".into(),
            ..Options::default()
        };
        let e = import(std::slice::from_ref(&source), &bad_listen).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("--listen: \"8080\" is not an address"),
            "{e}"
        );
        let bad_domain = Options {
            service_domain: "svc cluster".into(),
            ..Options::default()
        };
        let e = import(&[source], &bad_domain).unwrap_err();
        assert!(e.to_string().starts_with("--service-domain: "), "{e}");
    }

    #[test]
    fn an_httproute_regex_is_tried_before_shorter_prefixes_and_reported() {
        let yaml = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  rules:\n    - matches: [{path: {value: /}}]\n      backendRefs: [{name: a, port: 80}]\n    - matches: [{path: {type: RegularExpression, value: '/api/v[0-9]+/.*'}}]\n      backendRefs: [{name: b, port: 80}]\n";
        let out = run(yaml);
        let regex = out
            .yaml
            .find("path: {regex: '/api/v[0-9]+/.*'}")
            .expect("the regex route");
        let root = out.yaml.find("    path: /\n").expect("the prefix route");
        assert!(regex < root, "{}", out.yaml);
        assert!(
            out.report
                .contains("RegularExpression is implementation-specific"),
            "{}",
            out.report
        );
    }

    #[test]
    fn an_httproute_rule_with_a_url_rewrite_is_not_converted() {
        let yaml = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  rules:\n    - filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}}]\n      backendRefs: [{name: a, port: 80}]\n    - matches: [{path: {value: /ok}}]\n      backendRefs: [{name: a, port: 80}]\n";
        let out = run(yaml);
        assert!(
            out.report
                .contains("the URLRewrite filter has no crossgate equivalent"),
            "{}",
            out.report
        );
        assert!(out.yaml.contains("path: /ok/"), "{}", out.yaml);
        assert!(
            !out.yaml.contains("httproute-default-r-0-0"),
            "{}",
            out.yaml
        );
    }

    #[test]
    fn a_rule_whose_only_match_is_on_the_method_takes_its_cors_policy_out_of_maps_exactly() {
        let yaml = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  rules:\n    - matches: [{path: {value: /write}, method: POST}]\n      filters: [{type: CORS, cors: {allowOrigins: ['https://admin.example'], allowCredentials: true}}]\n      backendRefs: [{name: a, port: 80}]\n    - matches: [{path: {value: /ok}}]\n      backendRefs: [{name: a, port: 80}]\n";
        let out = run(yaml);
        let exact = out.report.split("Not converted").next().unwrap_or_default();
        assert!(!exact.contains("admin.example"), "{}", out.report);
        assert!(!out.yaml.contains("admin.example"), "{}", out.yaml);
        assert!(
            out.report.contains("none of its matches is converted"),
            "{}",
            out.report
        );
        assert!(out.not_exact >= 2, "{}", out.report);
    }

    #[test]
    fn a_route_dropped_as_a_duplicate_is_not_also_listed_as_mapped() {
        let yaml = ingress("first", "x", "", "h.example.com", "/api", "a")
            + &ingress("second", "x", "", "h.example.com", "/api", "b");
        let out = run(&yaml);
        let exact = out.report.split("Not converted").next().unwrap_or_default();
        assert!(exact.contains("ingress-x-first-0-0"), "{}", out.report);
        assert!(!exact.contains("ingress-x-second-0-0"), "{}", out.report);
        assert!(
            out.report.contains("already serves the same host and path"),
            "{}",
            out.report
        );
    }
}
