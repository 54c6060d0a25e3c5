//! `crossgate import`'s arguments and its files: read the manifests, convert, write the config
//! and the report. Exit 0 when a config was written, 1 on an error (nothing is written then)
//! or, with `--strict`, when anything was not converted exactly (both are written then), 2 for
//! a usage error (clap's).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use super::{import, Options, Source};

/// Arguments of `crossgate import`.
#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// Kubernetes manifests: Ingresses (networking.k8s.io/v1, with ingress-nginx's CORS
    /// annotations) and HTTPRoutes (gateway.networking.k8s.io/v1, with the CORS filter); several
    /// documents per file and `kind: List` are read, other kinds skipped. `-` reads standard
    /// input.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Write the config to this file (default: standard output).
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Write the report to this file (default: standard error).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// The config's listen address.
    #[arg(long, default_value = "0.0.0.0:8080", value_name = "ADDR")]
    pub listen: String,
    /// Services are reached as NAME.NAMESPACE.DOMAIN:PORT.
    #[arg(long, default_value = "svc.cluster.local", value_name = "DOMAIN")]
    pub service_domain: String,
    /// The namespace of objects whose metadata names none.
    #[arg(long, default_value = "default", value_name = "NAMESPACE")]
    pub namespace: String,
    /// Use HOST:PORT for the upstream NAME (NAMESPACE-SERVICE-PORT, as the config written names it)
    /// instead of the Service's cluster name; also resolves a named port. Repeatable.
    #[arg(long = "upstream", value_name = "NAME=HOST:PORT")]
    pub upstreams: Vec<String>,
    /// Convert the Ingresses of this class (spec.ingressClassName, or the
    /// kubernetes.io/ingress.class annotation), as ingress-nginx started with --ingress-class
    /// serves them; others are skipped and listed.
    #[arg(long, default_value = "nginx", value_name = "CLASS")]
    pub ingress_class: String,
    /// Skip Ingresses that name no class (ingress-nginx without --watch-ingress-without-class,
    /// where its IngressClass is not the cluster's default).
    #[arg(long)]
    pub skip_classless: bool,
    /// Exit 1 (after writing the config and the report) when anything was not converted or
    /// was converted with another meaning: the report's "Changes meaning" and "Not converted".
    #[arg(long)]
    pub strict: bool,
}

pub fn run(args: &ImportArgs) -> ExitCode {
    match run_inner(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run_inner(args: &ImportArgs) -> Result<(), String> {
    let mut sources = Vec::new();
    for f in &args.files {
        let text = if f.as_os_str() == "-" {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| format!("cannot read standard input: {e}"))?;
            s
        } else {
            std::fs::read_to_string(f).map_err(|e| {
                format!(
                    "{}: cannot read it: {e}\n  fix: check the path",
                    f.display()
                )
            })?
        };
        let name = if f.as_os_str() == "-" {
            PathBuf::from("<stdin>")
        } else {
            f.clone()
        };
        sources.push(Source { name, text });
    }
    let mut upstreams = Vec::new();
    for u in &args.upstreams {
        let Some((name, addr)) = u.split_once('=') else {
            return Err(format!("--upstream {u}: expected NAME=HOST:PORT\n  fix: write it like --upstream default-web-80=10.0.0.5:8080"));
        };
        upstreams.push((name.trim().to_owned(), addr.trim().to_owned()));
    }
    let options = Options {
        listen: args.listen.clone(),
        service_domain: args.service_domain.clone(),
        namespace: args.namespace.clone(),
        upstreams,
        output_name: args
            .output
            .as_ref()
            .map_or("standard output".into(), |p| p.display().to_string()),
        ingress_class: args.ingress_class.clone(),
        skip_classless: args.skip_classless,
    };
    let imported = import(&sources, &options).map_err(|e| e.to_string())?;
    match &args.output {
        Some(p) => std::fs::write(p, &imported.yaml)
            .map_err(|e| format!("{}: cannot write it: {e}", p.display()))?,
        None => std::io::stdout()
            .write_all(imported.yaml.as_bytes())
            .map_err(|e| format!("cannot write to standard output: {e}"))?,
    }
    match &args.report {
        Some(p) => std::fs::write(p, &imported.report)
            .map_err(|e| format!("{}: cannot write it: {e}", p.display()))?,
        None => eprint!("{}", imported.report),
    }
    if args.strict && imported.not_exact > 0 {
        return Err(format!(
            "--strict: {} item(s) of the input were not converted, or were converted with another meaning (the report's \"Changes meaning\" and \"Not converted\" sections)",
            imported.not_exact
        ));
    }
    Ok(())
}
