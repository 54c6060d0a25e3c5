//! The admin listener: `/metrics` (Prometheus text format), `/healthz` (the process is up),
//! `/readyz` (a config is loaded and the listeners are serving: the replica can take traffic),
//! `/upstreams` (each upstream's healthy servers; 503 when one has none), and `/refused`
//! (JSON) and `/refused.html` (who is refused, and who a report-only policy would refuse:
//! [`crate::refused`]). It has its own address, loopback by default, so that it is never
//! exposed with the proxy.

use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::metrics::Metrics;
use crate::refused::{self, Refused};
use crate::rules::Rules;

pub struct Admin {
    pub rules: Arc<ArcSwap<Rules>>,
    pub metrics: Arc<Metrics>,
    pub refused: Arc<Refused>,
    /// The process is draining (SIGTERM): not ready.
    pub draining: Arc<std::sync::atomic::AtomicBool>,
}

fn text(status: StatusCode, content_type: &str, body: String) -> Response<Vec<u8>> {
    head(status, content_type, body.len())
        .body(body.into_bytes())
        .expect("a valid response")
}

fn head(status: StatusCode, content_type: &str, len: usize) -> http::response::Builder {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CONTENT_LENGTH, len)
        .header(http::header::CACHE_CONTROL, "no-store")
        // The reports hold origins that clients chose: never sniffed as something else.
        .header(http::header::X_CONTENT_TYPE_OPTIONS, "nosniff")
}

/// The refused-origins page: the CSP allows nothing the page could load or run (it has no
/// script, style or image), nor framing it; its `<meta http-equiv=refresh>` reloads it.
fn report_page(body: String) -> Response<Vec<u8>> {
    head(StatusCode::OK, "text/html; charset=utf-8", body.len())
        .header(
            http::header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        )
        .header(http::header::REFERRER_POLICY, "no-referrer")
        .header(http::header::X_FRAME_OPTIONS, "DENY")
        .body(body.into_bytes())
        .expect("a valid response")
}

/// Each upstream's healthy servers, a line each; 503 when one has none (or its first health
/// check has not completed yet).
fn upstreams(rules: &Rules) -> Response<Vec<u8>> {
    let mut body = String::new();
    for u in &rules.upstreams {
        let servers = u.servers();
        let healthy = servers.iter().filter(|b| b.is_healthy()).count();
        let state = if !u.health_known() {
            "first health check not done"
        } else if healthy == 0 {
            "down"
        } else {
            "up"
        };
        body.push_str(&format!(
            "{}: {state}, {healthy} of {} servers healthy\n",
            u.name,
            servers.len()
        ));
    }
    let status = if unready_upstreams(rules).is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    text(status, "text/plain; charset=utf-8", body)
}

/// Upstreams with no healthy server, or whose first health check has not completed yet
/// (empty: all up).
pub fn unready_upstreams(rules: &Rules) -> Vec<&str> {
    rules
        .upstreams
        .iter()
        .filter(|u| !u.health_known() || !u.servers().iter().any(|b| b.is_healthy()))
        .map(|u| u.name.as_str())
        .collect()
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, http: &mut ServerSession) -> Response<Vec<u8>> {
        let rules = self.rules.load();
        let plain = "text/plain; charset=utf-8";
        match http.req_header().uri.path() {
            "/metrics" => text(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                self.metrics.render(crate::metrics::Live {
                    config_hash: &rules.config_hash,
                    beacons: &rules.beacons,
                    upstreams: &rules.upstreams,
                    routes: &rules.routes,
                }),
            ),
            "/refused" => {
                let report = self.refused.snapshot(&rules);
                let body = refused::json(&report, SystemTime::now()).to_string();
                text(StatusCode::OK, "application/json", body)
            }
            "/refused.html" => {
                let report = self.refused.snapshot(&rules);
                report_page(refused::html(&report, SystemTime::now()))
            }
            "/healthz" => text(StatusCode::OK, plain, "ok\n".into()),
            // Readiness is the replica's own: its config is loaded, its listeners serve (this
            // listener answers only then) and it is not draining (this listener stays open
            // while the process drains, so that the drain can be watched). A dead
            // legacy API is not a reason to take every replica out of the Service: browsers
            // would get a load balancer's opaque error instead of crossgate's 502 with CORS.
            // Upstream health is on /upstreams and in the metrics.
            "/readyz" if self.draining.load(std::sync::atomic::Ordering::Acquire) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                plain,
                "not ready: draining\n".into(),
            ),
            "/readyz" => text(StatusCode::OK, plain, "ready\n".into()),
            "/upstreams" => upstreams(&rules),
            _ => text(
                StatusCode::NOT_FOUND,
                plain,
                "crossgate admin: /metrics, /healthz, /readyz, /upstreams, /refused, \
                 /refused.html\n"
                    .into(),
            ),
        }
    }
}
