//! Builds and runs the pingora server from compiled rules.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora::services::background::background_service;
use tokio::sync::{mpsc, Mutex};

use crate::proxy::CrossGate;
use crate::rules::Rules;
use crate::upstream::HealthChecks;

/// Whole seconds for pingora's settings, rounded up so that a configured 500ms is not 0.
fn ceil_secs(d: std::time::Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Everything pingora needs to run crossgate; `run` blocks until shutdown.
pub struct Gateway {
    server: Server,
    pub rules: Arc<ArcSwap<Rules>>,
    pub in_flight: Arc<AtomicUsize>,
    grace_period: Duration,
}

impl Gateway {
    pub fn new(rules: Rules) -> Gateway {
        let conf = ServerConf {
            threads: rules.server.threads,
            grace_period_seconds: Some(ceil_secs(rules.server.grace_period)),
            graceful_shutdown_timeout_seconds: Some(ceil_secs(rules.server.shutdown_timeout)),
            ..ServerConf::default()
        };
        let mut server = Server::new_with_opt_and_conf(None, conf);
        server.bootstrap();
        let listen = rules.listen.clone();
        let grace_period = rules.server.grace_period;
        let in_flight = Arc::new(AtomicUsize::new(0));
        let (beacon_queue, forwarder) = crate::beacon::Queue::new(rules.server.beacon_queue);
        let rules = Arc::new(ArcSwap::from_pointee(rules));

        let mut proxy = pingora::proxy::http_proxy_service_with_name(
            &server.configuration,
            CrossGate {
                rules: rules.clone(),
                in_flight: in_flight.clone(),
                connector: pingora::connectors::http::Connector::new(None),
                beacons: beacon_queue,
            },
            "crossgate",
        );
        for addr in &listen {
            proxy.add_tcp(&addr.to_string());
        }
        server.add_service(proxy);
        server.add_service(background_service("beacon forwarder", forwarder));
        server.add_service(background_service(
            "health checks",
            HealthChecks {
                rules: rules.clone(),
            },
        ));
        Gateway {
            server,
            rules,
            in_flight,
            grace_period,
        }
    }

    /// Runs until `signal` asks for shutdown. SIGTERM-style graceful shutdown keeps serving
    /// in-flight requests for the grace period.
    pub fn run(self, signal: Box<dyn ShutdownSignalWatch>) {
        self.server.run(RunArgs {
            shutdown_signal: signal,
        });
    }

    /// Runs with Unix signals: SIGTERM drains (the process exits as soon as no request is in
    /// flight, and at the latest after the grace period), SIGINT stops at once, SIGQUIT hands
    /// the listening sockets to a new process started with `--upgrade`.
    pub fn run_with_signals(self) {
        let (tx, watch) = ChannelShutdown::pair();
        let in_flight = self.in_flight.clone();
        let grace = self.grace_period;
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for signal handling");
                rt.block_on(forward_signals(tx, in_flight, grace));
            })
            .expect("a thread for signal handling");
        self.run(Box::new(watch));
    }
}

async fn forward_signals(
    tx: mpsc::UnboundedSender<ShutdownSignal>,
    in_flight: Arc<AtomicUsize>,
    grace: Duration,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut quit)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::quit()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    let graceful = tokio::select! {
        _ = term.recv() => { tracing::info!(grace_period = ?grace, "SIGTERM: draining in-flight requests"); ShutdownSignal::GracefulTerminate }
        _ = quit.recv() => { tracing::info!("SIGQUIT: handing the listening sockets over"); ShutdownSignal::GracefulUpgrade }
        _ = int.recv() => { tracing::info!("SIGINT: stopping now"); ShutdownSignal::FastShutdown }
    };
    let drain = matches!(graceful, ShutdownSignal::GracefulTerminate);
    if tx.send(graceful).is_err() || !drain {
        return;
    }
    // pingora keeps the process for the whole grace period; leave as soon as nothing is in
    // flight. Listeners stop accepting once the signal is delivered.
    let deadline = tokio::time::Instant::now() + grace;
    while tokio::time::Instant::now() < deadline {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = int.recv() => break,
        }
        if in_flight.load(Ordering::Acquire) == 0 {
            tracing::info!("drained: no request in flight, exiting");
            std::process::exit(0);
        }
    }
    tracing::info!("grace period over");
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
