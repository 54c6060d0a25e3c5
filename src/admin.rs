//! The admin listener: `/metrics` (Prometheus text format), `/healthz` (the process is up) and
//! `/readyz` (a config is loaded and every upstream has a healthy server). It has its own
//! address, loopback by default, so that it is never exposed with the proxy.

use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::metrics::Metrics;
use crate::rules::Rules;

pub struct Admin {
    pub rules: Arc<ArcSwap<Rules>>,
    pub metrics: Arc<Metrics>,
}

fn text(status: StatusCode, content_type: &str, body: String) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CONTENT_LENGTH, body.len())
        .header(http::header::CACHE_CONTROL, "no-store")
        .body(body.into_bytes())
        .expect("a valid response")
}

/// Upstreams with no healthy server, or whose first health check has not completed yet
/// (empty: ready).
pub fn unready_upstreams(rules: &Rules) -> Vec<&str> {
    rules
        .upstreams
        .iter()
        .filter(|u| !u.health_known() || !u.servers.iter().any(|b| b.is_healthy()))
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
                self.metrics.render(&rules),
            ),
            "/healthz" => text(StatusCode::OK, plain, "ok\n".into()),
            "/readyz" => match unready_upstreams(&rules).as_slice() {
                [] => text(StatusCode::OK, plain, "ready\n".into()),
                down => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    plain,
                    format!(
                        "not ready: no healthy server in upstream {}\n",
                        down.join(", ")
                    ),
                ),
            },
            _ => text(
                StatusCode::NOT_FOUND,
                plain,
                "crossgate admin: /metrics, /healthz, /readyz\n".into(),
            ),
        }
    }
}
