//! The pingora `ProxyHttp` implementation: wiring only. Each phase takes the request's snapshot
//! of the rules (taken once, in `request_filter`) and calls the pure functions of `rules` and
//! `cors`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HOST, ORIGIN};
use http::{HeaderValue, Method};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{ErrorSource, ErrorType};

use crate::cors::{self, CorsPolicy, OriginCheck};
use crate::rules::{Route, Rules};

static NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");
static TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
static NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
const X_CONTENT_TYPE_OPTIONS: &str = "x-content-type-options";

/// The proxy. `rules` is swapped whole on reload; each request keeps the snapshot it started with.
pub struct CrossGate {
    pub rules: Arc<ArcSwap<Rules>>,
    /// Requests begun and not yet logged, for draining on SIGTERM.
    pub in_flight: Arc<AtomicUsize>,
}

/// Counts a request as in flight until its context is dropped.
pub struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(counter: &Arc<AtomicUsize>) -> InFlight {
        counter.fetch_add(1, Ordering::AcqRel);
        InFlight(counter.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Per-request state.
pub struct Ctx {
    rules: Option<Arc<Rules>>,
    route: Option<usize>,
    origin: OriginCheck,
    preflight: bool,
    started: Instant,
    upstream_started: Option<Instant>,
    upstream_time: Option<Duration>,
    tries: usize,
    _in_flight: InFlight,
}

impl Ctx {
    fn route(&self) -> Option<&Route> {
        Some(&self.rules.as_ref()?.routes[self.route?])
    }

    /// The policy for this request's responses: the route's, or `default_cors` when no route
    /// matched.
    fn policy(&self) -> Option<&CorsPolicy> {
        let rules = self.rules.as_ref()?;
        match self.route {
            Some(i) => rules.routes[i].cors.as_deref(),
            None => rules.default_cors.as_deref(),
        }
    }
}

/// The request's host without its port, from `Host` or (HTTP/2) the URI authority.
pub fn request_host(req: &RequestHeader) -> &str {
    let raw = req
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.host())
        .unwrap_or("");
    strip_port(raw)
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |i| &host[..=i]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// Writes a short text response of the proxy's own (404, 502, 504...), with CORS headers when
/// a policy allows the origin, so a browser app can read the status.
async fn send_text(
    session: &mut Session,
    status: u16,
    message: String,
    cors: Option<(&CorsPolicy, &OriginCheck)>,
) -> Result<()> {
    let body = Bytes::from(message + "\n");
    let mut h = ResponseHeader::build_no_case(status, Some(8))?;
    h.insert_header(CONTENT_TYPE, TEXT_PLAIN.clone())?;
    h.insert_header(CONTENT_LENGTH, body.len())?;
    h.insert_header(X_CONTENT_TYPE_OPTIONS, NOSNIFF.clone())?;
    h.insert_header(CACHE_CONTROL, NO_STORE.clone())?;
    if let Some((policy, check)) = cors {
        policy.apply_actual(&mut h, check);
    }
    let head = session.req_header().method == Method::HEAD;
    session.write_response_header(Box::new(h), head).await?;
    if !head {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}

/// The status the proxy answers with when it cannot get a response from upstream.
fn error_status(e: &Error) -> u16 {
    match (e.esource(), e.etype()) {
        (_, ErrorType::HTTPStatus(code)) => *code,
        (
            ErrorSource::Upstream,
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout,
        ) => 504,
        (ErrorSource::Upstream, _) => 502,
        (
            ErrorSource::Downstream,
            ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed,
        ) => 0, // the client is gone
        (ErrorSource::Downstream, _) => 400,
        _ => 500,
    }
}

#[async_trait]
impl ProxyHttp for CrossGate {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            rules: None,
            route: None,
            origin: OriginCheck::NoOrigin,
            preflight: false,
            started: Instant::now(),
            upstream_started: None,
            upstream_time: None,
            tries: 0,
            _in_flight: InFlight::new(&self.in_flight),
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let rules = self.rules.load_full();
        let req = session.req_header();
        ctx.route = rules.find_index(request_host(req), req.uri.path());
        ctx.rules = Some(rules);

        let Some(route) = ctx.route() else {
            let req = session.req_header();
            ctx.origin = match ctx.policy() {
                Some(p) => p.check_origin(req),
                None => OriginCheck::NoOrigin,
            };
            let message = format!(
                "crossgate: no route for host {} path {}",
                cors::printable(request_host(req)),
                cors::printable(req.uri.path())
            );
            send_text(
                session,
                404,
                message,
                ctx.policy().map(|p| (p, &ctx.origin)),
            )
            .await?;
            // Answered: no route, nothing to forward.
            return Ok(true);
        };
        let Some(policy) = route.cors.as_deref() else {
            return Ok(false);
        };
        let req = session.req_header();
        if cors::is_preflight(req) {
            let preflight = policy.preflight(req);
            ctx.preflight = true;
            ctx.origin = preflight.check;
            let end = preflight.body.is_none();
            session
                .write_response_header(Box::new(preflight.header), end)
                .await?;
            if let Some(body) = preflight.body {
                session
                    .write_response_body(Some(Bytes::from(body)), true)
                    .await?;
            }
            // Answered: preflights are the proxy's job and never reach the backend.
            return Ok(true);
        }
        ctx.origin = policy.check_origin(req);
        Ok(false)
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let route = ctx
            .route()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no route"))?;
        let backend = route.upstream.select();
        let peer = Box::new(backend.peer.clone());
        ctx.tries += 1;
        ctx.upstream_started = Some(Instant::now());
        Ok(peer)
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        // Nothing was sent yet, so any method may go to the next server.
        if ctx
            .route()
            .is_some_and(|r| ctx.tries < r.upstream.servers.len())
        {
            e.set_retry(true);
        }
        e
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.upstream_time = ctx.upstream_started.map(|t| t.elapsed());
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(policy) = ctx.route().and_then(|r| r.cors.as_deref()) {
            policy.apply_actual(resp, &ctx.origin);
        }
        Ok(())
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let code = error_status(e);
        if code > 0 && session.response_written().is_none() {
            let message = match (code, ctx.route()) {
                (504, Some(r)) => format!("crossgate: upstream {} timed out", r.upstream.name),
                (502, Some(r)) => format!(
                    "crossgate: upstream {} failed: {}",
                    r.upstream.name,
                    e.etype().as_str()
                ),
                _ => format!("crossgate: {}", e.etype().as_str()),
            };
            let cors = ctx.policy().map(|p| (p, &ctx.origin));
            if let Err(write_err) = send_text(session, code, message, cors).await {
                tracing::debug!(error = %write_err, "could not send the error response");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        let Some(rules) = ctx.rules.as_ref() else {
            return;
        };
        if !rules.log.access_log {
            return;
        }
        let req = session.req_header();
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let origin = req
            .headers
            .get(ORIGIN)
            .map(|o| cors::sanitize(&String::from_utf8_lossy(o.as_bytes())));
        tracing::info!(
            target: "crossgate::access",
            method = %req.method,
            host = %cors::sanitize(request_host(req)),
            path = %cors::sanitize(req.uri.path()),
            status,
            origin = origin.as_deref().unwrap_or("-"),
            route = ctx.route().map_or("-", |r| r.name.as_str()),
            cors = if ctx.policy().is_some() { ctx.origin.label() } else { "off" },
            preflight = ctx.preflight,
            upstream_ms = ctx.upstream_time.map(|d| d.as_secs_f64() * 1000.0),
            duration_ms = ctx.started.elapsed().as_secs_f64() * 1000.0,
            error = e.map(|e| e.etype().as_str()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_loses_its_port() {
        assert_eq!(strip_port("api.example.com:8080"), "api.example.com");
        assert_eq!(strip_port("api.example.com"), "api.example.com");
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
    }

    #[test]
    fn upstream_timeouts_are_504_and_other_upstream_failures_502() {
        let e = Error::new(ErrorType::ReadTimedout).into_up();
        assert_eq!(error_status(&e), 504);
        let e = Error::new(ErrorType::ConnectRefused).into_up();
        assert_eq!(error_status(&e), 502);
        let e = Error::new(ErrorType::ReadError).into_down();
        assert_eq!(error_status(&e), 0);
    }
}
