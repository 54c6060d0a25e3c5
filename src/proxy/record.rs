//! What a finished request leaves behind: its metrics and its access-log line, and the
//! report-only log of what a policy would refuse.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pingora::http::RequestHeader;
use pingora::protocols::http::ServerSession;
use pingora::{Error, ErrorSource};

use super::ctx::{Client, Ctx};
use super::errors::is_fault;
use super::{request_host, CrossGate};
use crate::channels::Channel;
use crate::cors::{self, CorsPolicy, OriginCheck};
use crate::jsonp::JsonpResult;
use crate::metrics::{self, DecisionKind};
use crate::rules::Route;

/// The request's Origin, made safe for a log line.
fn log_origin(req: &RequestHeader) -> Option<String> {
    req.headers
        .get(http::header::ORIGIN)
        .map(|o| cors::sanitize(&String::from_utf8_lossy(o.as_bytes())))
}

/// How often report-only lines are written: the first request of each route and origin in a
/// window, at most `REPORT_LINES` lines a window; the rest are counted and said in one line
/// when the next window begins. Every refusal is in the refused-origins report (`/refused`)
/// whatever the log says.
const REPORT_WINDOW: Duration = Duration::from_secs(60);
const REPORT_LINES: usize = 100;

/// The report-only log's window: who was logged in it, and how many lines were not written.
pub struct ReportLog(Mutex<ReportWindow>);

struct ReportWindow {
    started: Instant,
    logged: HashSet<(String, String)>,
    suppressed: u64,
}

impl Default for ReportLog {
    fn default() -> Self {
        ReportLog(Mutex::new(ReportWindow {
            started: Instant::now(),
            logged: HashSet::new(),
            suppressed: 0,
        }))
    }
}

impl ReportLog {
    /// Whether a line for `route` and `origin` is written now; a new window first says how
    /// many lines the last one left out.
    fn admit(&self, route: &str, origin: &str) -> bool {
        let mut w = self.0.lock();
        if w.started.elapsed() >= REPORT_WINDOW {
            if w.suppressed > 0 {
                tracing::warn!(
                    target: "crossgate::report_only",
                    suppressed = w.suppressed,
                    window_s = REPORT_WINDOW.as_secs(),
                    "report-only: more requests would have been denied than were logged (one line per route and origin a window); the admin listener's /refused has them all",
                );
            }
            w.started = Instant::now();
            w.logged.clear();
            w.suppressed = 0;
        }
        let key = (route.to_owned(), origin.to_owned());
        if w.logged.len() < REPORT_LINES && !w.logged.contains(&key) {
            w.logged.insert(key);
            return true;
        }
        w.suppressed += 1;
        false
    }
}

/// Logs a request that a report-only policy would refuse, with its origin, so that ops can
/// see who would break before enforcing (rate limited: [`ReportLog`]).
pub(super) fn report_would_deny(
    log: &ReportLog,
    req: &RequestHeader,
    route: &Route,
    policy: &CorsPolicy,
    check: &OriginCheck,
) {
    if let OriginCheck::WouldDeny { why, served } = check {
        let origin = log_origin(req);
        let origin = origin.as_deref().unwrap_or("-");
        if !log.admit(&route.name, origin) {
            return;
        }
        tracing::warn!(
            target: "crossgate::report_only",
            route = %route.name,
            policy = %policy.name,
            origin,
            served = served.label(),
            why = %why,
            "report-only policy would deny this request",
        );
    }
}

/// What a finished request moved: body bytes read from the client and sent to it.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Moved {
    pub(super) read: u64,
    pub(super) sent: u64,
}

/// A duration in milliseconds to the microsecond (`0.657`, not `0.6574979999999999`).
fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// A header's value made safe for a log line, `-` when absent.
fn logged(req: &RequestHeader, name: http::header::HeaderName) -> String {
    req.headers.get(name).map_or_else(
        || "-".to_owned(),
        |v| cors::sanitize(&String::from_utf8_lossy(v.as_bytes())),
    )
}

fn version(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// One access-log line, at `$level`: the request, who sent it over what, how it was served
/// and by which server, what it moved and how long it took. What the client chose freely
/// (host, path, Origin, User-Agent, Referer) is logged as string values: quoted and escaped in
/// the text format (logfmt: `origin="https://x.test cors=allowed"` cannot pass for two
/// fields), plain JSON strings in the JSON format. The rest is crossgate's own words, or
/// tokens that hold no space or quote (the method, a kept request id), written bare.
macro_rules! access_line {
    ($level:expr, $line:expr) => {{
        let l = $line;
        tracing::event!(
            target: "crossgate::access",
            $level,
            client = %l.client.as_str(),
            request_id = %l.request_id,
            method = %l.method,
            host = l.host.as_str(),
            path = l.path.as_str(),
            version = %l.version,
            tls = %l.tls,
            status = l.status,
            origin = l.origin.as_str(),
            route = %l.route,
            cors = %l.cors,
            preflight = l.preflight,
            upstream = %l.upstream.as_str(),
            retries = l.retries,
            bytes_in = l.moved.read,
            bytes_out = l.moved.sent,
            user_agent = l.user_agent.as_str(),
            referer = l.referer.as_str(),
            upstream_ms = l.upstream_ms,
            duration_ms = l.duration_ms,
            error = %l.error.unwrap_or("-"),
            detail = l.detail.as_deref(),
        )
    }};
}

/// The fields of an access-log line.
struct Line<'a> {
    client: String,
    request_id: &'a str,
    method: &'a str,
    host: String,
    path: String,
    version: &'static str,
    tls: &'a str,
    status: u16,
    origin: String,
    route: &'a str,
    cors: &'static str,
    preflight: bool,
    upstream: String,
    retries: usize,
    moved: Moved,
    user_agent: String,
    referer: String,
    upstream_ms: Option<f64>,
    duration_ms: f64,
    error: Option<&'static str>,
    detail: Option<String>,
}

impl CrossGate {
    /// The route's metric handles, created on its first request.
    pub(super) fn route_metrics<'r>(&self, route: &'r Route) -> &'r metrics::RouteMetrics {
        route.metrics.get_or_init(|| {
            metrics::RouteMetrics::new(&self.metrics, &route.name, &route.upstream.name)
        })
    }

    /// The metrics of a finished request.
    pub(super) fn record(
        &self,
        req: &RequestHeader,
        status: u16,
        e: Option<&Error>,
        ctx: &Ctx,
        moved: Moved,
    ) {
        let m = &self.metrics;
        let Some(r) = ctx.route() else {
            // The proxy's own answers without a route: beacons and 404s.
            let route = match ctx.channel {
                Channel::Beacon => "beacon",
                _ => "none",
            };
            m.requests
                .with_label_values(&[
                    route,
                    metrics::method_label(&req.method),
                    metrics::status_class(status),
                ])
                .inc();
            m.request_duration
                .with_label_values(&[route])
                .observe(ctx.started.elapsed().as_secs_f64());
            m.request_body_bytes
                .with_label_values(&[route])
                .inc_by(moved.read);
            m.response_body_bytes
                .with_label_values(&[route])
                .inc_by(moved.sent);
            return;
        };
        let rm = self.route_metrics(r);
        rm.request(m, &req.method, status);
        rm.body_in.inc_by(moved.read);
        rm.body_out.inc_by(moved.sent);
        if ctx.stream_gauge.is_some() {
            // An SSE stream or a WebSocket lasts as long as the page keeps it: its length is a
            // session's, not a request's latency, and would fill the route's p99.
            rm.session_duration
                .observe(ctx.started.elapsed().as_secs_f64());
        } else {
            rm.duration.observe(ctx.started.elapsed().as_secs_f64());
        }
        if let Some(t) = ctx.upstream_time {
            rm.upstream_duration.observe(t.as_secs_f64());
        }
        // Preflights are counted when answered; allowed upgrades carry no CORS.
        let counted =
            ctx.cors_decision && !matches!(ctx.channel, Channel::Preflight | Channel::WebSocket);
        if r.cors.is_some() && counted {
            rm.decision(m, DecisionKind::Actual, &ctx.origin);
        }
        match &ctx.channel {
            Channel::Jsonp(j) => {
                if let Some(result) = j.result {
                    rm.jsonp(m, result);
                }
            }
            Channel::JsonpRefused => rm.jsonp(m, JsonpResult::Rejected),
            _ => {}
        }
        if let Some(e) = e.filter(|e| *e.esource() == ErrorSource::Upstream) {
            self.count_upstream_error(r, e);
        }
    }

    pub(super) fn count_upstream_error(&self, r: &Route, e: &Error) {
        self.metrics
            .upstream_errors
            .with_label_values(&[r.upstream.name.as_str(), metrics::upstream_error_kind(e)])
            .inc();
    }

    /// A request refused before it had a context: a head that does not parse (400), grew past
    /// `client_max_head_size` (431), or a CONNECT (405). Counted (route `none`) and logged,
    /// with what is known of it.
    pub(super) fn refused_head(
        &self,
        session: &ServerSession,
        method: &str,
        status: u16,
        why: &Error,
    ) {
        self.metrics
            .requests
            .with_label_values(&["none", "other", metrics::status_class(status)])
            .inc();
        if !self.rules.load().log.access_log {
            return;
        }
        let client = Client::of(session);
        let line = Line {
            client: client.addr.map_or_else(|| "-".into(), |a| a.to_string()),
            request_id: "-",
            method,
            host: "-".into(),
            path: "-".into(),
            version: "-",
            tls: client.tls.as_deref().unwrap_or("-"),
            status,
            origin: "-".into(),
            route: "-",
            cors: "off",
            preflight: false,
            upstream: "-".into(),
            retries: 0,
            moved: Moved::default(),
            user_agent: "-".into(),
            referer: "-".into(),
            upstream_ms: None,
            duration_ms: 0.0,
            error: Some(why.etype().as_str()),
            // The cause alone: the error's context holds the head as read, cookies and all.
            detail: Some(match &why.cause {
                Some(c) => cors::sanitize(&c.to_string()),
                None => why.context.as_ref().map_or_else(
                    || why.etype().as_str().to_owned(),
                    |c| cors::sanitize(c.as_str()),
                ),
            }),
        };
        access_line!(tracing::Level::INFO, line);
    }

    /// One access-log line. A failure of the proxy or the upstream (a 502, a 504) is the line
    /// itself, at ERROR with the error's detail, not a second line.
    pub(super) fn access_log(
        &self,
        req: &RequestHeader,
        status: u16,
        e: Option<&Error>,
        ctx: &Ctx,
        moved: Moved,
        client: &Client,
    ) {
        let fault = e.filter(|e| is_fault(e));
        let line = Line {
            client: client.addr.map_or_else(|| "-".into(), |a| a.to_string()),
            request_id: ctx.request_id(req).as_str(),
            method: req.method.as_str(),
            host: cors::sanitize(request_host(req)),
            path: cors::sanitize(req.uri.path()),
            version: version(req.version),
            tls: client.tls.as_deref().unwrap_or("-"),
            status,
            origin: log_origin(req).unwrap_or_else(|| "-".into()),
            route: match (ctx.route(), &ctx.channel) {
                (Some(r), _) => r.name.as_str(),
                (None, Channel::Beacon) => "beacon",
                (None, _) => "-",
            },
            cors: if ctx.policy().is_some() {
                ctx.origin.label()
            } else {
                "off"
            },
            preflight: matches!(ctx.channel, Channel::Preflight),
            upstream: ctx
                .upstream_addr
                .map_or_else(|| "-".into(), |a| a.to_string()),
            retries: ctx.tries.saturating_sub(1),
            moved,
            user_agent: logged(req, http::header::USER_AGENT),
            referer: logged(req, http::header::REFERER),
            upstream_ms: ctx.upstream_time.map(ms),
            duration_ms: ms(ctx.started.elapsed()),
            error: e.map(|e| e.etype().as_str()),
            detail: fault.map(|e| cors::sanitize(&e.to_string())),
        };
        if fault.is_some() {
            access_line!(tracing::Level::ERROR, line);
        } else {
            access_line!(tracing::Level::INFO, line);
        }
    }
}
