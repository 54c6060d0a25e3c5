//! What a finished request leaves behind: its metrics and its access-log line, and the
//! report-only log of what a policy would refuse.

use pingora::http::RequestHeader;
use pingora::{Error, ErrorSource};

use super::ctx::Ctx;
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

/// Logs a request that a report-only policy would refuse, with its origin, so that ops can
/// see who would break before enforcing.
pub(super) fn report_would_deny(
    req: &RequestHeader,
    route: &Route,
    policy: &CorsPolicy,
    check: &OriginCheck,
) {
    if let OriginCheck::WouldDeny { why, served } = check {
        let origin = log_origin(req);
        tracing::warn!(
            target: "crossgate::report_only",
            route = %route.name,
            policy = %policy.name,
            origin = origin.as_deref().unwrap_or("-"),
            served = served.label(),
            why = %why,
            "report-only policy would deny this request",
        );
    }
}

impl CrossGate {
    /// The route's metric handles, created on its first request.
    pub(super) fn route_metrics<'r>(&self, route: &'r Route) -> &'r metrics::RouteMetrics {
        route.metrics.get_or_init(|| {
            metrics::RouteMetrics::new(&self.metrics, &route.name, &route.upstream.name)
        })
    }

    /// The metrics of a finished request.
    pub(super) fn record(&self, req: &RequestHeader, status: u16, e: Option<&Error>, ctx: &Ctx) {
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
            return;
        };
        let rm = self.route_metrics(r);
        rm.request(m, &req.method, status);
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

    /// One access-log line.
    pub(super) fn access_log(
        &self,
        req: &RequestHeader,
        status: u16,
        e: Option<&Error>,
        ctx: &Ctx,
    ) {
        let origin = log_origin(req);
        let route = match (ctx.route(), &ctx.channel) {
            (Some(r), _) => r.name.as_str(),
            (None, Channel::Beacon) => "beacon",
            (None, _) => "-",
        };
        // What the client chose (host, path, Origin) is logged as a string value: quoted and
        // escaped in the text format (`origin="https://x.test cors=allowed"` cannot pass for
        // two fields), a plain JSON string in the JSON format.
        let (host, path) = (
            cors::sanitize(request_host(req)),
            cors::sanitize(req.uri.path()),
        );
        tracing::info!(
            target: "crossgate::access",
            method = %req.method,
            host = host.as_str(),
            path = path.as_str(),
            status,
            origin = origin.as_deref().unwrap_or("-"),
            route = %route,
            cors = %if ctx.policy().is_some() { ctx.origin.label() } else { "off" },
            preflight = matches!(ctx.channel, Channel::Preflight),
            upstream_ms = ctx.upstream_time.map(|d| d.as_secs_f64() * 1000.0),
            duration_ms = ctx.started.elapsed().as_secs_f64() * 1000.0,
            error = e.map(|e| e.etype().as_str()),
        );
    }
}
