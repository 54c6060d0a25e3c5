//! Builds and runs the pingora server from compiled rules: the proxy, the admin listener, the
//! health checks, the re-resolution of upstream names and the beacon forwarder, plus the
//! signals (SIGTERM drains, SIGINT stops, SIGQUIT hands the sockets to a new process, SIGHUP
//! reloads).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora::services::background::background_service;
use tokio::sync::{mpsc, Mutex};

use crate::admin::Admin;
use crate::metrics::Metrics;
use crate::proxy::CrossGate;
use crate::reload::Reloader;
use crate::rules::Rules;
use crate::upstream::HealthChecks;

/// Client connections on plain TCP listeners read straight into pingora's own buffers, without
/// its 64 KiB read buffer in between. pingora allocates that buffer zero-filled for every
/// accepted connection, and once freed memory is reused, all 16 pages of each one are written
/// (idle WebSockets after a first batch had come and gone: 87 KiB each with it, 35 KiB
/// without; `tests/slow_clients.rs` checks a second wave of idle connections). pingora reads
/// request heads and bodies into buffers of its own, so the extra buffer saved no system
/// calls: per kept-alive request the instruction counts are the same. TLS listeners keep it
/// (rustls reads in small pieces). Writes keep pingora's default buffer (1460 bytes).
const CLIENT_TCP_BUFFERS: pingora::listeners::L4BufferSettings =
    pingora::listeners::L4BufferSettings {
        read: Some(0),
        write: None,
    };

/// How long open WebSockets get for their 1001 close once the grace period is over.
const CLOSE_HEADROOM: Duration = Duration::from_secs(1);

/// Whole seconds for pingora's settings, rounded up so that a configured 500ms is not 0.
fn ceil_secs(d: std::time::Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// How the process was started.
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// Take the listening sockets over from a running crossgate (which is then sent SIGQUIT).
    pub upgrade: bool,
    /// Reload when the config file changes (SIGHUP always reloads).
    pub watch: bool,
    /// The upgrade socket as `upgrade_sock::prepare` checked and resolved it; None: the
    /// config's path as it is (embedders and tests that never upgrade).
    pub upgrade_sock: Option<PathBuf>,
}

/// Everything pingora needs to run crossgate; `run` blocks until shutdown.
pub struct Gateway {
    server: Server,
    pub rules: Arc<ArcSwap<Rules>>,
    pub metrics: Arc<Metrics>,
    pub in_flight: Arc<AtomicUsize>,
    /// Set on SIGTERM: `/readyz` answers 503 and the admin listener stays open to exit.
    pub draining: Arc<AtomicBool>,
    /// Set at the end of the grace period: open WebSockets get a 1001 close.
    pub closing: Arc<tokio::sync::watch::Sender<bool>>,
    /// Each HTTPS listener's certificate, swapped on reload.
    pub certs: Arc<Vec<(std::net::SocketAddr, Arc<crate::tls::SwappableCert>)>>,
    grace_period: Duration,
    watch: bool,
    upgrade_sock: PathBuf,
}

/// pingora's server, bootstrapped, with the settings of `server:` and the command line.
fn pingora_server(rules: &Rules, options: &Options, upgrade_sock: &std::path::Path) -> Server {
    let conf = ServerConf {
        threads: rules.server.threads,
        // A second past crossgate's own: at the end of the grace period crossgate closes the
        // WebSockets (1001) and exits itself (`handle_signals`), before pingora drops its
        // runtimes and, with them, every connection unclosed.
        grace_period_seconds: Some(ceil_secs(rules.server.grace_period) + CLOSE_HEADROOM.as_secs()),
        graceful_shutdown_timeout_seconds: Some(ceil_secs(rules.server.shutdown_timeout)),
        upgrade_sock: upgrade_sock.display().to_string(),
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade: options.upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();
    server
}

/// The proxy's listeners: what pingora binds (plain TCP for all), each address with its TLS
/// acceptor if it is an HTTPS listener, and each HTTPS listener's swappable certificate.
type Endpoints = (
    Vec<pingora::listeners::ListenerConfig>,
    Vec<(
        std::net::SocketAddr,
        Option<pingora::listeners::tls::Acceptor>,
    )>,
    Vec<(std::net::SocketAddr, Arc<crate::tls::SwappableCert>)>,
);

fn endpoints(listen: &[std::net::SocketAddr], tls: &[crate::rules::TlsListener]) -> Endpoints {
    let mut listeners = Vec::new();
    let mut endpoints = Vec::new();
    for addr in listen {
        endpoints.push(
            pingora::listeners::ListenerConfig::tcp(addr.to_string()).l4_buffer(CLIENT_TCP_BUFFERS),
        );
        listeners.push((*addr, None));
    }
    let mut certs = Vec::new();
    for l in tls {
        let resolver = crate::tls::SwappableCert::new(l.cert.clone());
        let mut settings =
            pingora::listeners::tls::TlsSettings::intermediate("", "").expect("no I/O");
        settings.set_cert_resolver(resolver.clone());
        if l.http2 {
            settings.enable_h2();
        }
        // A TCP listener for pingora: the handshake is done in `Guarded`, within
        // client_header_timeout (pingora's TLS listener would allow it 60 s).
        endpoints.push(pingora::listeners::ListenerConfig::tcp(l.addr.to_string()));
        listeners.push((l.addr, Some(settings.build())));
        certs.push((l.addr, resolver));
    }
    (endpoints, listeners, certs)
}

/// The admin listener: health, metrics, `/refused`.
fn add_admin(
    server: &mut Server,
    addr: std::net::SocketAddr,
    rules: &Arc<ArcSwap<Rules>>,
    metrics: &Arc<Metrics>,
    refused: Arc<crate::refused::Refused>,
    draining: &Arc<AtomicBool>,
) {
    let mut admin = pingora::services::listening::Service::new(
        "crossgate admin".into(),
        pingora::apps::http_app::HttpServer::new_app(Admin {
            rules: rules.clone(),
            metrics: metrics.clone(),
            refused,
            draining: draining.clone(),
        }),
    );
    admin.add_tcp(&addr.to_string());
    server.add_service(AdminService {
        inner: admin,
        draining: draining.clone(),
    });
}

/// The admin listener as a service that stays open while the process drains (SIGTERM), so
/// that `/metrics` shows the drain (`crossgate_requests_in_flight` going to 0) and `/readyz`
/// answers 503 until the process exits. On a SIGQUIT hand-over it closes with the proxy's
/// listeners (the new process serves it from the same socket).
struct AdminService {
    inner: pingora::services::listening::Service<pingora::apps::http_app::HttpServer<Admin>>,
    draining: Arc<AtomicBool>,
}

#[async_trait]
impl pingora::services::Service for AdminService {
    async fn start_service(
        &mut self,
        fds: Option<pingora::server::ListenFds>,
        mut shutdown: pingora::server::ShutdownWatch,
        listeners_per_fd: usize,
    ) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let draining = self.draining.clone();
        tokio::spawn(async move {
            let _ = shutdown.wait_for(|down| *down).await;
            if draining.load(Ordering::Acquire) {
                // Open until the process exits (a dropped sender would stop it too).
                std::future::pending::<()>().await;
            }
            let _ = tx.send(true);
        });
        pingora::services::Service::start_service(&mut self.inner, fds, rx, listeners_per_fd).await;
    }

    fn name(&self) -> &str {
        "crossgate admin"
    }

    // What the wrapped service says: its addresses (pingora closes inherited sockets that no
    // service claims after an upgrade only when every service lists its own), threads and
    // runtime.
    fn threads(&self) -> Option<usize> {
        pingora::services::Service::threads(&self.inner)
    }

    fn runtime_opts_override(
        &self,
        global: &pingora::server::RuntimeOpts,
    ) -> Option<pingora::server::RuntimeOpts> {
        pingora::services::Service::runtime_opts_override(&self.inner, global)
    }

    fn listen_addresses(&self) -> Option<Vec<String>> {
        pingora::services::Service::listen_addresses(&self.inner)
    }
}

/// The beacon forwarder, the health checks and the re-resolution of upstream names.
fn add_background_services(
    server: &mut Server,
    forwarder: crate::beacon::Forwarder,
    rules: &Arc<ArcSwap<Rules>>,
    metrics: &Arc<Metrics>,
) {
    server.add_service(background_service("beacon forwarder", forwarder));
    server.add_service(background_service(
        "health checks",
        HealthChecks {
            rules: rules.clone(),
        },
    ));
    server.add_service(background_service(
        "upstream DNS",
        crate::dns::DnsRefresh {
            rules: rules.clone(),
            metrics: metrics.clone(),
        },
    ));
}

impl Gateway {
    pub fn new(rules: Rules) -> Gateway {
        Self::with_options(rules, &Options::default())
    }

    pub fn with_options(rules: Rules, options: &Options) -> Gateway {
        let upgrade_sock = options
            .upgrade_sock
            .clone()
            .unwrap_or_else(|| rules.server.upgrade_sock.clone());
        let mut server = pingora_server(&rules, options, &upgrade_sock);
        let listen = rules.listen.clone();
        let admin_addr = rules.admin;
        let grace_period = rules.server.grace_period;
        let in_flight = Arc::new(AtomicUsize::new(0));
        let draining = Arc::new(AtomicBool::new(false));
        let closing = Arc::new(tokio::sync::watch::channel(false).0);
        let metrics = Arc::new(Metrics::new());
        let refused = Arc::new(crate::refused::Refused::new());
        metrics.reloaded(true);
        let (beacon_queue, forwarder) = crate::beacon::Queue::new(rules.server.beacon_queue);
        let rules = Arc::new(ArcSwap::from_pointee(rules));

        let proxy = CrossGate {
            rules: rules.clone(),
            in_flight: in_flight.clone(),
            connector: pingora::connectors::http::Connector::new(None),
            transport: pingora::connectors::TransportConnector::new(Some(
                pingora::connectors::ConnectorOptions::from_server_conf(&server.configuration),
            )),
            beacons: beacon_queue,
            metrics: metrics.clone(),
            refused: refused.clone(),
            report_log: Default::default(),
            closing: closing.clone(),
        };
        // An HTTP/2 connection with no request in flight is closed after
        // client_keepalive_timeout, as an idle HTTP/1 one is (pingora leaves it open forever
        // by default). pingora reads this option per connection from a field fixed here: a
        // reload does not change it.
        let mut http = pingora::apps::HttpServerOptions::default();
        http.h2_idle_timeout = Some(rules.load().server.client.keepalive);
        let (endpoints, listeners, certs) = endpoints(&listen, &rules.load().tls_listeners);
        let mut service = pingora::services::listening::Service::new(
            "crossgate".into(),
            crate::guard::Guarded {
                app: Arc::new(crate::proxy::Engine::new(proxy, http)),
                rules: rules.clone(),
                listeners,
            },
        );
        for endpoint in endpoints {
            service.add_listener(endpoint);
        }
        server.add_service(service);
        if let Some(addr) = admin_addr {
            add_admin(&mut server, addr, &rules, &metrics, refused, &draining);
        }
        add_background_services(&mut server, forwarder, &rules, &metrics);
        Gateway {
            server,
            rules,
            metrics,
            in_flight,
            draining,
            closing,
            certs: Arc::new(certs),
            grace_period,
            watch: options.watch,
            upgrade_sock,
        }
    }

    /// Runs until `signal` asks for shutdown. SIGTERM-style graceful shutdown keeps serving
    /// in-flight requests for the grace period.
    pub fn run(self, signal: Box<dyn ShutdownSignalWatch>) {
        self.server.run(RunArgs {
            shutdown_signal: signal,
        });
    }

    /// Runs with Unix signals and reloads `config` on SIGHUP and when it changes:
    /// SIGTERM drains (the process exits as soon as no request is in flight, and at the latest
    /// after the grace period, when open WebSockets get a 1001 close; the admin listener stays
    /// open, `/readyz` 503), SIGINT stops at once, SIGQUIT hands the listening sockets to a
    /// new process started with `--upgrade` once `upgrade_sock::check_handover` passes (else it
    /// logs why and keeps serving), then drains as SIGTERM does once pingora stops accepting.
    pub fn run_with_signals(self, config: PathBuf) {
        let reloader = Arc::new(Reloader::new(
            config,
            self.rules.clone(),
            self.metrics.clone(),
            self.certs.clone(),
        ));
        let _watcher = if self.watch {
            match reloader.watch() {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch the config file: reload with SIGHUP");
                    None
                }
            }
        } else {
            None
        };
        let (tx, watch) = ChannelShutdown::pair();
        let drain = Drain {
            in_flight: self.in_flight.clone(),
            grace: self.grace_period,
            draining: self.draining.clone(),
            closing: self.closing.clone(),
            phases: self.server.watch_execution_phase(),
        };
        let upgrade_sock = self.upgrade_sock.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for signal handling");
                rt.block_on(handle_signals(tx, drain, reloader, upgrade_sock));
            })
            .expect("a thread for signal handling");
        self.run(Box::new(watch));
    }
}

/// What the signal handler needs to drain the process and leave.
struct Drain {
    in_flight: Arc<AtomicUsize>,
    grace: Duration,
    draining: Arc<AtomicBool>,
    closing: Arc<tokio::sync::watch::Sender<bool>>,
    phases: tokio::sync::broadcast::Receiver<pingora::server::ExecutionPhase>,
}

async fn handle_signals(
    tx: mpsc::UnboundedSender<ShutdownSignal>,
    mut drain: Drain,
    reloader: Arc<Reloader>,
    upgrade_sock: PathBuf,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut quit), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::quit()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    let grace = drain.grace;
    let stop = loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!(grace_period = ?grace, "SIGTERM: draining in-flight requests"); break ShutdownSignal::GracefulTerminate }
            _ = quit.recv() => {
                // pingora sends the sockets to whatever listens at the path, and shuts down
                // even when sending fails: decide here, before it is told anything.
                match crate::upgrade_sock::wait_for_handover(&upgrade_sock).await {
                    Ok(()) => { tracing::info!(socket = %upgrade_sock.display(), "SIGQUIT: handing the listening sockets over"); break ShutdownSignal::GracefulUpgrade }
                    Err(why) => tracing::error!(socket = %upgrade_sock.display(), fix = %why.fix(), "SIGQUIT: not handing the listening sockets over, still serving: {why}"),
                }
            }
            _ = int.recv() => { tracing::info!("SIGINT: stopping now"); break ShutdownSignal::FastShutdown }
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the config");
                let r = reloader.clone();
                let _ = tokio::task::spawn_blocking(move || r.reload(true)).await;
            }
        }
    };
    let terminate = matches!(stop, ShutdownSignal::GracefulTerminate);
    let upgrade = matches!(stop, ShutdownSignal::GracefulUpgrade);
    if terminate {
        // Before pingora hears of it: the admin listener stays open and /readyz says 503.
        drain.draining.store(true, Ordering::Release);
    }
    if tx.send(stop).is_err() || !(terminate || upgrade) {
        return;
    }
    if upgrade {
        // The sockets are handed over; pingora keeps accepting for its hand-over window while
        // the new process starts, then stops. A SIGTERM or SIGINT ends the wait at once.
        use pingora::server::ExecutionPhase;
        loop {
            tokio::select! {
                phase = drain.phases.recv() => match phase {
                    Ok(ExecutionPhase::ShutdownStarted) | Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    _ => {}
                },
                _ = term.recv() => leave("stopping now"),
                _ = int.recv() => leave("stopping now"),
            }
        }
        tracing::info!("the new process has the listeners: draining in-flight requests");
    }
    // pingora keeps the process for the whole grace period; leave as soon as nothing is in
    // flight. Listeners stop accepting once the signal is delivered.
    let deadline = tokio::time::Instant::now() + grace;
    while tokio::time::Instant::now() < deadline {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = int.recv() => leave("SIGINT: stopping now"),
            _ = term.recv(), if upgrade => leave("stopping now"),
        }
        if drain.in_flight.load(Ordering::Acquire) == 0 {
            leave("drained: no request in flight, exiting");
        }
    }
    // What is still open is cut: WebSockets first get a 1001 close (each ends and is logged
    // as it goes), for at most a second.
    tracing::info!(
        in_flight = drain.in_flight.load(Ordering::Acquire),
        "grace period over: closing what is still open"
    );
    let _ = drain.closing.send(true);
    let cut = tokio::time::Instant::now() + CLOSE_HEADROOM / 2;
    while drain.in_flight.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < cut {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    leave("exiting");
}

/// Ends the process (pingora would keep it for its whole grace period).
fn leave(why: &str) -> ! {
    tracing::info!("{why}");
    std::process::exit(0);
}

/// A shutdown signal sent through a channel, for tests and embedders.
pub struct ChannelShutdown(Mutex<mpsc::UnboundedReceiver<ShutdownSignal>>);

impl ChannelShutdown {
    pub fn pair() -> (mpsc::UnboundedSender<ShutdownSignal>, ChannelShutdown) {
        let (tx, rx) = mpsc::unbounded_channel();
        (tx, ChannelShutdown(Mutex::new(rx)))
    }
}

#[async_trait]
impl ShutdownSignalWatch for ChannelShutdown {
    async fn recv(&self) -> ShutdownSignal {
        // A dropped sender means the owner is gone: stop at once.
        self.0
            .lock()
            .await
            .recv()
            .await
            .unwrap_or(ShutdownSignal::FastShutdown)
    }
}
