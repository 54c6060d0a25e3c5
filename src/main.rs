//! The crossgate command line: `run` (the default), `check` and `demo`.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use crossgate::config::{self, LogFormat};
use crossgate::rules::{self, Lookups, Rules};
use crossgate::server::{Gateway, Options};
use crossgate::{demo, describe, explain, logging, upgrade_sock};

/// jemalloc: measured here at about 5% less CPU per proxied GET than glibc's malloc, and
/// less memory per idle WebSocket (mimalloc was faster still but used 4x the memory per
/// idle socket). It must be set in the binary to be linked at all.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A reverse proxy that gives browser apps on other origins CORS access to legacy HTTP APIs.
#[derive(Parser)]
#[command(name = "crossgate", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// `crossgate --config FILE` is `crossgate run --config FILE`.
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy (the default).
    Run(RunArgs),
    /// Validate a config file and print what it compiles to. Exit 1 on error.
    Check {
        #[arg(long, short)]
        config: PathBuf,
        /// Do not look server names up in DNS (CI, a laptop without the production
        /// resolver): everything else is checked as `run` would.
        #[arg(long)]
        no_resolve: bool,
    },
    /// Explain what the proxy would answer a browser's cross-origin request, and why. Exit 0
    /// if the page could read the response, 1 if not.
    Explain {
        #[arg(long, short)]
        config: PathBuf,
        /// The page's origin, such as https://app.example.com.
        #[arg(long)]
        origin: String,
        #[arg(long, default_value = "GET")]
        method: String,
        /// A request header the page sets, "Name: value" (repeatable).
        #[arg(long = "header", short = 'H')]
        headers: Vec<String>,
        /// The page sends credentials (fetch with credentials: "include").
        #[arg(long)]
        credentials: bool,
        /// Do not look server names up in DNS (routing and policies need no addresses).
        #[arg(long)]
        no_resolve: bool,
        /// The URL the page requests, such as https://api.example.com/api/users.
        url: String,
    },
    /// Convert Kubernetes Ingresses (ingress-nginx CORS annotations) and Gateway API
    /// HTTPRoutes (CORS filter) into a crossgate config, with a report of what changes. Exit 1
    /// on an error (nothing is written).
    Import(crossgate::import::cli::ImportArgs),
    /// Run only the demo backend (JSON, WebSocket echo, SSE clock), for benchmarks.
    #[command(hide = true)]
    Backend {
        #[arg(long)]
        listen: SocketAddr,
    },
    /// Start an embedded demo legacy backend and crossgate in front of it.
    Demo {
        /// The config to run; its upstreams on loopback are served by the demo backend.
        #[arg(long, short, default_value = "config.example.yaml")]
        config: PathBuf,
    },
}

#[derive(Args)]
struct RunArgs {
    #[arg(long, short, default_value = "config.yaml")]
    config: PathBuf,
    /// Overrides `log.format` from the config.
    #[arg(long, value_enum)]
    log_format: Option<LogFormatArg>,
    /// Take the listening sockets over from a running crossgate: start this, then send the
    /// old process SIGQUIT. No connection is refused in between.
    #[arg(long)]
    upgrade: bool,
    /// Reload only on SIGHUP, not when the config file changes.
    #[arg(long)]
    no_watch: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Run(args)) => run(&args),
        None => run(&cli.run),
        Some(Command::Check { config, no_resolve }) => check(&config, lookups(no_resolve)),
        Some(Command::Import(args)) => return crossgate::import::cli::run(&args),
        Some(Command::Demo { config }) => run_demo(&config),
        Some(Command::Backend { listen }) => demo::spawn(listen)
            .map_err(|e| format!("cannot listen on {listen}: {e}"))
            .map(|addr| {
                println!("demo backend on {addr}");
                loop {
                    std::thread::park();
                }
            }),
        Some(Command::Explain {
            config,
            origin,
            method,
            headers,
            credentials,
            url,
            no_resolve,
        }) => {
            return match compile_with(&config, lookups(no_resolve)).and_then(|rules| {
                explain::explain(&rules, &url, &origin, &method, &headers, credentials)
            }) {
                Ok(e) => {
                    print!("{}", e.report);
                    if e.allowed {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(message) => {
                    eprintln!("error: {message}");
                    ExitCode::from(2)
                }
            };
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The config example shipped in the binary, so `crossgate demo` runs from any directory.
const EXAMPLE: &str = include_str!("../config.example.yaml");

/// For `run`: a server name that does not resolve yet is a warning, not an error.
fn compile(path: &Path) -> Result<Rules, String> {
    compile_with(path, Lookups::Tolerant)
}

fn compile_with(path: &Path, lookups: Lookups) -> Result<Rules, String> {
    let loaded = if path == Path::new("config.example.yaml") && !path.exists() {
        let config = config::parse_yaml(path, EXAMPLE).map_err(|e| e.to_string())?;
        config::Loaded {
            path: path.into(),
            source: EXAMPLE.into(),
            config,
        }
    } else {
        config::load(path).map_err(|e| e.to_string())?
    };
    let resolved = rules::resolve_with(&loaded, lookups);
    let rules = rules::compile_with(&loaded, &resolved).map_err(|e| e.to_string())?;
    for w in &rules.warnings {
        eprintln!("warning: {w}");
    }
    Ok(rules)
}

/// `check` and `explain` look names up and fail on one that does not resolve, unless told not
/// to look them up (`--no-resolve`).
fn lookups(no_resolve: bool) -> Lookups {
    if no_resolve {
        Lookups::Off
    } else {
        Lookups::Required
    }
}

fn check(path: &Path, lookups: Lookups) -> Result<(), String> {
    let rules = compile_with(path, lookups)?;
    print!("{}", describe::rules(&rules));
    if lookups == Lookups::Off {
        println!("server names not looked up (--no-resolve): run looks them up at start");
    }
    // What crossgate_config_info{hash} shows for this file once it is live.
    println!("config hash: {}", rules.config_hash);
    println!("{}: OK", path.display());
    Ok(())
}

/// Binds each listen address once, so a busy port is a clear error before pingora starts.
fn ensure_free(addrs: impl IntoIterator<Item = SocketAddr>) -> Result<(), String> {
    for a in addrs {
        TcpListener::bind(a).map_err(|e| format!("cannot listen on {a}: {e}\n  fix: stop what uses it, or change `listen:` in the config"))?;
    }
    Ok(())
}

fn run(args: &RunArgs) -> Result<(), String> {
    let rules = compile(&args.config)?;
    let format = match args.log_format {
        Some(LogFormatArg::Json) => LogFormat::Json,
        Some(LogFormatArg::Text) => LogFormat::Text,
        None => rules.log.format,
    };
    logging::init(format);
    if !args.upgrade {
        let tls = rules.tls_listeners.iter().map(|l| l.addr);
        ensure_free(rules.listen.iter().copied().chain(rules.admin).chain(tls))?;
    }
    // Before pingora binds the socket (--upgrade) or may connect to it (SIGQUIT).
    let upgrade_sock = match upgrade_sock::prepare(&rules.server.upgrade_sock) {
        Ok(path) => path,
        // Serving needs no upgrade socket; a later SIGQUIT refuses and says why.
        Err(why @ upgrade_sock::Refusal::CannotCreate { .. }) if !args.upgrade => {
            tracing::warn!(fix = %why.fix(), "{why}; SIGQUIT upgrades will be refused");
            rules.server.upgrade_sock.clone()
        }
        Err(why) => return Err(format!("{why}\n  fix: {}", why.fix())),
    };
    tracing::info!(config = %args.config.display(), listen = ?rules.listen, routes = rules.routes.len(), config_hash = %rules.config_hash, upgrade = args.upgrade, upgrade_sock = %upgrade_sock.display(), "crossgate starting");
    let options = Options {
        upgrade: args.upgrade,
        watch: !args.no_watch,
        upgrade_sock: Some(upgrade_sock),
    };
    Gateway::with_options(rules, &options).run_with_signals(args.config.clone());
    Ok(())
}

fn run_demo(path: &Path) -> Result<(), String> {
    let rules = compile(path)?;
    logging::init(rules.log.format);
    ensure_free(rules.listen.iter().copied().chain(rules.admin))?;
    let mut started = Vec::new();
    for up in &rules.upstreams {
        for b in up.servers().iter().filter(|b| b.addr.ip().is_loopback()) {
            if started.contains(&b.addr) {
                continue;
            }
            demo::spawn(b.addr).map_err(|e| {
                format!(
                    "the demo backend cannot listen on {} (upstream {}): {e}",
                    b.addr, up.name
                )
            })?;
            started.push(b.addr);
        }
    }
    let proxy = rules.listen[0];
    let base = format!("http://{proxy}");
    println!("crossgate demo: proxy on {base}, demo legacy backend on {started:?}\n");
    println!("Try, in another terminal:");
    println!("  curl -i {base}/api/users -H 'Origin: http://localhost:3000'          # allowed: CORS headers added");
    println!("  curl -i {base}/api/users -H 'Origin: https://evil.example'           # refused: no CORS headers");
    println!("  curl -i -X OPTIONS {base}/api/users/1 -H 'Origin: http://localhost:3000' \\");
    println!("       -H 'Access-Control-Request-Method: PUT' -H 'Access-Control-Request-Headers: content-type'  # preflight");
    println!("  curl -i {base}/api/error -H 'Origin: http://localhost:3000'          # backend 500, still readable");
    println!("  curl -i {base}/nowhere -H 'Origin: http://localhost:3000'            # the proxy's own 404");
    println!("  curl -i '{base}/public/users?callback=show'                         # JSONP");
    println!("  curl -N {base}/events/clock -H 'Accept: text/event-stream'           # Server-Sent Events");
    println!("  curl -i '{base}/poll/wait?ms=3000' -H 'Origin: http://localhost:3000' # long poll");
    println!("  curl -i '{base}/beacon/pv?event=view&page=/home' -o /dev/null        # image ping");
    println!("  WebSocket echo: ws://{proxy}/ws/echo (Origin http://localhost:3000)");
    println!("  postMessage bridge: {base}/_crossgate/bridge (client: {base}/_crossgate/bridge/crossgate-bridge.js)");
    if let Some(admin) = rules.admin {
        println!("  curl -s http://{admin}/metrics | grep crossgate_                # Prometheus metrics");
    }
    println!("Stop with Ctrl-C.\n");
    Gateway::new(rules).run_with_signals(path.to_path_buf());
    Ok(())
}
