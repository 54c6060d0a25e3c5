//! What crossgate records for Prometheus. Every label comes from the config (route, upstream,
//! server, beacon names) or from a small fixed set (method, status class, kind, decision,
//! result), never from request data, so the number of series is bounded by the config.

use http::Method;
use std::sync::OnceLock;

use prometheus::{
    Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::cors::OriginCheck;
use crate::jsonp::JsonpResult;

/// The registry and every metric. One per running gateway.
/// What the gauges that follow the live config are rendered from (not the whole rules).
pub struct Live<'a> {
    pub config_hash: &'a str,
    /// Forwarding beacons have a drop counter from the start.
    pub beacons: &'a [crate::beacon::Beacon],
    /// Each server's health, and which upstreams follow DNS.
    pub upstreams: &'a [std::sync::Arc<crate::upstream::Upstream>],
    /// The routes, whose byte counters exist from the start.
    pub routes: &'a [crate::rules::Route],
}

pub struct Metrics {
    pub registry: Registry,
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub upstream_duration: HistogramVec,
    pub cors_decisions: IntCounterVec,
    pub jsonp: IntCounterVec,
    pub websocket_active: IntGaugeVec,
    pub websocket_total: IntCounterVec,
    pub sse_active: IntGaugeVec,
    pub beacon_hits: IntCounterVec,
    pub beacon_dropped: IntCounterVec,
    pub upstream_errors: IntCounterVec,
    pub dns_resolutions: IntCounterVec,
    pub server_healthy: IntGaugeVec,
    pub reloads: IntCounterVec,
    pub last_reload_success: Gauge,
    /// 1 if the last load of the config compiled, 0 if it failed (the previous rules are live).
    pub last_reload_successful: IntGauge,
    /// One series, `hash` = the live rules' config hash, value 1.
    pub config_info: IntGaugeVec,
    /// Sessions (SSE streams, WebSockets): their length, apart from request latency.
    pub session_duration: HistogramVec,
    pub requests_in_flight: IntGauge,
    pub connections_open: IntGaugeVec,
    /// Body bytes read from clients and sent to them, by route.
    pub request_body_bytes: IntCounterVec,
    pub response_body_bytes: IntCounterVec,
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("registered once");
    c
}

fn gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(g.clone())).expect("registered once");
    g
}

/// `crossgate_session_duration_seconds`: buckets from a second to a day.
fn session_histogram(r: &Registry) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(
            "crossgate_session_duration_seconds",
            "How long SSE streams and WebSockets stayed open, by route (kept out of crossgate_request_duration_seconds).",
        )
        .buckets(vec![1.0, 10.0, 60.0, 300.0, 1800.0, 3600.0, 14400.0, 86400.0]),
        &["route"],
    )
    .expect("valid metric");
    r.register(Box::new(h.clone())).expect("registered once");
    h
}

fn histogram(r: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let buckets = vec![
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        60.0,
    ];
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
        .expect("valid metric");
    r.register(Box::new(h.clone())).expect("registered once");
    h
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        let last_reload_success = Gauge::new(
            "crossgate_config_last_reload_success_timestamp_seconds",
            "When the config was last loaded successfully (Unix time).",
        )
        .expect("valid metric");
        r.register(Box::new(last_reload_success.clone()))
            .expect("registered once");
        let last_reload_successful = IntGauge::new(
            "crossgate_config_last_reload_successful",
            "1 if the last load of the config compiled, 0 if it failed and the previous rules stay live.",
        )
        .expect("valid metric");
        r.register(Box::new(last_reload_successful.clone()))
            .expect("registered once");
        let reloads = counter(
            &r,
            "crossgate_config_reloads_total",
            "Config reloads, by result (success, failure).",
            &["result"],
        );
        // Both series from the start: a counter that first appears at 1 shows no increase, and
        // an alert on the first failed reload would never fire.
        for result in ["success", "failure"] {
            reloads.with_label_values(&[result]);
        }
        let build_info = gauge(
            &r,
            "crossgate_build_info",
            "1, labelled with the version of crossgate that runs and the pingora it is built on.",
            &["version", "pingora"],
        );
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), "0.9.1"])
            .set(1);
        let requests_in_flight = IntGauge::new(
            "crossgate_requests_in_flight",
            "Requests begun and not yet answered and logged (sessions included).",
        )
        .expect("valid metric");
        r.register(Box::new(requests_in_flight.clone()))
            .expect("registered once");
        let connections_open = gauge(
            &r,
            "crossgate_client_connections_open",
            "Client connections open now, by protocol (http1, h2).",
            &["protocol"],
        );
        for protocol in ["http1", "h2"] {
            connections_open.with_label_values(&[protocol]);
        }
        // process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds...
        #[cfg(target_os = "linux")]
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .expect("registered once");
        Metrics {
            session_duration: session_histogram(&r),
            requests_in_flight,
            connections_open,
            requests: counter(&r, "crossgate_requests_total", "Requests answered, by route, method and status class.", &["route", "method", "status_class"]),
            request_duration: histogram(&r, "crossgate_request_duration_seconds", "Time from the request to the end of the response, by route.", &["route"]),
            upstream_duration: histogram(&r, "crossgate_upstream_duration_seconds", "Time until the upstream's response header, by upstream.", &["upstream"]),
            cors_decisions: counter(&r, "crossgate_cors_decisions_total", "CORS decisions, by route, kind (preflight, actual) and decision (allowed, denied, would_deny, no_origin).", &["route", "kind", "decision"]),
            jsonp: counter(&r, "crossgate_jsonp_responses_total", "JSONP requests, by route and result (wrapped, rejected, passthrough).", &["route", "result"]),
            websocket_active: gauge(&r, "crossgate_websocket_connections_active", "WebSocket connections open now, by route.", &["route"]),
            websocket_total: counter(&r, "crossgate_websocket_connections_total", "WebSocket connections upgraded, by route.", &["route"]),
            sse_active: gauge(&r, "crossgate_sse_streams_active", "Server-Sent Event streams open now, by route.", &["route"]),
            beacon_hits: counter(&r, "crossgate_beacon_hits_total", "Beacon hits answered, by beacon.", &["beacon"]),
            beacon_dropped: counter(&r, "crossgate_beacon_forward_dropped_total", "Beacon hits not forwarded because the queue was full, by beacon.", &["beacon"]),
            request_body_bytes: counter(&r, "crossgate_request_body_bytes_total", "Request body bytes read from clients, by route (none: unrouted; beacon: beacon hits).", &["route"]),
            response_body_bytes: counter(&r, "crossgate_response_body_bytes_total", "Response body bytes sent to clients, by route (WebSocket frames included; heads not counted).", &["route"]),
            upstream_errors: counter(&r, "crossgate_upstream_errors_total", "Failed exchanges with an upstream, by kind (connect, timeout, reset, invalid).", &["upstream", "kind"]),
            dns_resolutions: counter(&r, "crossgate_dns_resolutions_total", "Re-resolutions of upstream server names, by upstream and result (ok, error: the last good addresses stay in rotation).", &["upstream", "result"]),
            server_healthy: gauge(&r, "crossgate_upstream_server_healthy", "1 if the server passes its health check (or has none), 0 if it is out of rotation.", &["upstream", "server"]),
            reloads,
            config_info: gauge(&r, "crossgate_config_info", "1, labelled with the hash of the config the live rules were compiled from (the hash `crossgate check` prints): replicas that show the same hash run the same config.", &["hash"]),
            last_reload_success,
            last_reload_successful,
            registry: r,
        }
    }

    /// The text exposition of every metric, with the gauges that describe `rules` (server
    /// health, the config hash) read from them first.
    pub fn render(&self, live: Live<'_>) -> String {
        let Live {
            config_hash,
            beacons,
            upstreams,
            routes,
        } = live;
        // A route's byte counters exist from the start (at 0), so that its first bytes are an
        // increase that rate() sees.
        for r in routes {
            self.request_body_bytes
                .with_label_values(&[r.name.as_str()]);
            self.response_body_bytes
                .with_label_values(&[r.name.as_str()]);
        }
        // Exactly one series: the hash of the rules that answer requests now.
        self.config_info.reset();
        self.config_info.with_label_values(&[config_hash]).set(1);
        // A forwarding beacon's drop counter exists from the start (at 0), so that the first
        // drop is an increase that rate() and alerts see.
        for b in beacons.iter().filter(|b| b.forward.is_some()) {
            self.beacon_dropped.with_label_values(&[b.name.as_str()]);
        }
        self.server_healthy.reset();
        for u in upstreams {
            for b in u.servers().iter() {
                self.server_healthy
                    .with_label_values(&[u.name.as_str(), b.label.as_str()])
                    .set(i64::from(b.is_healthy()));
            }
            // Every kind of upstream error from the start (at 0), so that the first error of
            // a kind is an increase that rate() and alerts see.
            for kind in UPSTREAM_ERROR_KINDS {
                self.upstream_errors
                    .with_label_values(&[u.name.as_str(), kind]);
            }
            // Both series from the start, as for reloads: the first failure is an increase.
            if u.follows_dns() {
                for result in ["ok", "error"] {
                    self.dns_resolutions
                        .with_label_values(&[u.name.as_str(), result]);
                }
            }
        }
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }

    /// Records one re-resolution of a server name of `upstream`.
    pub fn dns_resolved(&self, upstream: &str, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.dns_resolutions
            .with_label_values(&[upstream, result])
            .inc();
    }

    /// Records a config load.
    pub fn reloaded(&self, ok: bool) {
        self.reloads
            .with_label_values(&[if ok { "success" } else { "failure" }])
            .inc();
        self.last_reload_successful.set(i64::from(ok));
        if ok {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            self.last_reload_success.set(now);
        }
    }
}

/// A route's metric handles, created on first use and kept with the route (each compile of
/// the config has its own routes), so that a request looks up no labels.
pub struct RouteMetrics {
    route: String,
    requests: Vec<OnceLock<IntCounter>>,
    decisions: Vec<OnceLock<IntCounter>>,
    jsonp: Vec<OnceLock<IntCounter>>,
    pub duration: Histogram,
    pub session_duration: Histogram,
    pub upstream_duration: Histogram,
    pub body_in: IntCounter,
    pub body_out: IntCounter,
}

const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE", "other",
];
const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];
const KINDS: [&str; 2] = ["preflight", "actual"];

/// Which CORS decision is counted (the `kind` label, in `KINDS`' order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionKind {
    Preflight = 0,
    Actual = 1,
}
const DECISIONS: [&str; 4] = ["allowed", "denied", "would_deny", "no_origin"];
const JSONP: [&str; 3] = ["wrapped", "rejected", "passthrough"];

fn slots(n: usize) -> Vec<OnceLock<IntCounter>> {
    (0..n).map(|_| OnceLock::new()).collect()
}

impl RouteMetrics {
    pub fn new(m: &Metrics, route: &str, upstream: &str) -> RouteMetrics {
        RouteMetrics {
            route: route.to_owned(),
            requests: slots(METHODS.len() * CLASSES.len()),
            decisions: slots(KINDS.len() * DECISIONS.len()),
            jsonp: slots(JSONP.len()),
            duration: m.request_duration.with_label_values(&[route]),
            session_duration: m.session_duration.with_label_values(&[route]),
            upstream_duration: m.upstream_duration.with_label_values(&[upstream]),
            body_in: m.request_body_bytes.with_label_values(&[route]),
            body_out: m.response_body_bytes.with_label_values(&[route]),
        }
    }

    pub fn request(&self, m: &Metrics, method: &Method, status: u16) {
        let (mi, ci) = (method_index(method), class_index(status));
        self.requests[mi * CLASSES.len() + ci]
            .get_or_init(|| {
                m.requests
                    .with_label_values(&[self.route.as_str(), METHODS[mi], CLASSES[ci]])
            })
            .inc();
    }

    /// `kind`: "preflight" or "actual"; `decision`: an `OriginCheck` label.
    pub fn decision(&self, m: &Metrics, kind: DecisionKind, check: &OriginCheck) {
        let ki = kind as usize;
        let di = match check {
            OriginCheck::Allowed(_) => 0,
            OriginCheck::Denied(_) => 1,
            OriginCheck::WouldDeny { .. } => 2,
            OriginCheck::NoOrigin => 3,
        };
        self.decisions[ki * DECISIONS.len() + di]
            .get_or_init(|| {
                m.cors_decisions
                    .with_label_values(&[self.route.as_str(), KINDS[ki], DECISIONS[di]])
            })
            .inc();
    }

    pub fn jsonp(&self, m: &Metrics, result: JsonpResult) {
        let i = match result {
            JsonpResult::Wrapped => 0,
            JsonpResult::Rejected => 1,
            JsonpResult::Passthrough => 2,
        };
        self.jsonp[i]
            .get_or_init(|| m.jsonp.with_label_values(&[self.route.as_str(), JSONP[i]]))
            .inc();
    }
}

/// The index into `METHODS`.
fn method_index(m: &Method) -> usize {
    match *m {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::DELETE => 4,
        Method::OPTIONS => 5,
        Method::PATCH => 6,
        Method::CONNECT => 7,
        Method::TRACE => 8,
        _ => 9,
    }
}

/// The index into `CLASSES`.
fn class_index(status: u16) -> usize {
    match status {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        500..=599 => 4,
        _ => 5,
    }
}

/// The method as a label: the standard ones, or `other`.
pub fn method_label(m: &Method) -> &'static str {
    METHODS[method_index(m)]
}

/// `2xx` etc.; `none` when nothing was sent.
pub fn status_class(status: u16) -> &'static str {
    CLASSES[class_index(status)]
}

/// The kind of an upstream failure, for `crossgate_upstream_errors_total`.
/// The `kind` labels of `crossgate_upstream_errors_total` ([`upstream_error_kind`]).
const UPSTREAM_ERROR_KINDS: [&str; 4] = ["connect", "timeout", "reset", "invalid"];

pub fn upstream_error_kind(e: &pingora::Error) -> &'static str {
    use pingora::ErrorType::*;
    match e.etype() {
        ConnectTimedout | ReadTimedout | WriteTimedout => "timeout",
        ConnectRefused | ConnectNoRoute | ConnectError | ConnectProxyFailure
        | TLSHandshakeFailure | TLSHandshakeTimedout | InvalidCert | HandshakeError
        | SocketError | BindError => "connect",
        ConnectionClosed | ReadError | WriteError | H2Error | H2Downgrade => "reset",
        _ => "invalid",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reload_counters_exist_at_zero_before_the_first_reload() {
        let m = Metrics::new();
        let text = TextEncoder::new()
            .encode_to_string(&m.registry.gather())
            .unwrap();
        assert!(text.contains("crossgate_config_reloads_total{result=\"failure\"} 0"));
        assert!(text.contains("crossgate_config_reloads_total{result=\"success\"} 0"));
        m.reloaded(false);
        let text = TextEncoder::new()
            .encode_to_string(&m.registry.gather())
            .unwrap();
        assert!(text.contains("crossgate_config_last_reload_successful 0"));
        assert!(text.contains("crossgate_config_reloads_total{result=\"failure\"} 1"));
    }

    #[test]
    fn upstream_error_counters_exist_at_zero_for_every_kind_before_the_first_error() {
        let rules = crate::test_util::rules_from_yaml(
            "listen: 127.0.0.1:0\nupstreams:\n  b: {servers: [127.0.0.1:9]}\nroutes:\n  - {name: r, upstream: b}\n",
        );
        let m = Metrics::new();
        let text = m.render(Live {
            config_hash: &rules.config_hash,
            beacons: &rules.beacons,
            upstreams: &rules.upstreams,
            routes: &rules.routes,
        });
        for kind in ["connect", "timeout", "reset", "invalid"] {
            let line =
                format!("crossgate_upstream_errors_total{{kind=\"{kind}\",upstream=\"b\"}} 0");
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }

    #[test]
    fn labels_are_bounded() {
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(0), "none");
        assert_eq!(status_class(999), "none");
    }
}
