//! The pingora `ProxyHttp` implementation: wiring only. Each phase takes the request's snapshot
//! of the rules (taken once, in `request_filter`) and calls the pure functions of `rules` and
//! `cors`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HOST, ORIGIN};
use http::{HeaderValue, Method, StatusCode};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{ErrorSource, ErrorType, RetryType};

use crate::cors::{self, CorsPolicy, OriginCheck};
use crate::metrics::{self, Metrics};
use crate::rules::{ClientTimeouts, Route, Rules};
use crate::{beacon, bridge, guard, jsonp, sse};

static NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");
static TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
static NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
const X_CONTENT_TYPE_OPTIONS: &str = "x-content-type-options";

/// The proxy. `rules` is swapped whole on reload; each request keeps the snapshot it started with.
pub struct CrossGate {
    pub rules: Arc<ArcSwap<Rules>>,
    /// For the responses crossgate streams itself (SSE with heartbeats).
    pub connector: pingora::connectors::http::Connector,
    /// Beacon hits on their way to an upstream.
    pub beacons: Arc<beacon::Queue>,
    pub metrics: Arc<Metrics>,
    /// Requests begun and not yet logged, for draining on SIGTERM.
    pub in_flight: Arc<AtomicUsize>,
}

/// Counts one open stream in a gauge until dropped.
pub struct ActiveGauge(prometheus::IntGauge);

impl ActiveGauge {
    fn new(g: prometheus::IntGauge) -> ActiveGauge {
        g.inc();
        ActiveGauge(g)
    }
}

impl Drop for ActiveGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
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
    /// Set when this request asked for JSONP with a valid callback.
    jsonp: Option<JsonpState>,
    /// A WebSocket upgrade whose Origin was allowed.
    websocket: bool,
    /// The beacon that answered this request.
    beacon: Option<usize>,
    /// What happened to a JSONP request, for metrics.
    jsonp_result: Option<&'static str>,
    /// Open WebSocket / SSE stream, counted while this request lives.
    stream_gauge: Option<ActiveGauge>,
    /// The response goes to the client chunked over HTTP/1.1: its sends can be coalesced
    /// (`guard::hold_head_flush`).
    chunked_out: bool,
    /// The normalized path that replaces the client's upstream (`ambiguous_paths:
    /// forward_normalized`), so that what was routed is what is forwarded.
    forward_path: Option<String>,
    _in_flight: InFlight,
}

struct JsonpState {
    callback: jsonp::Callback,
    envelope: bool,
    /// Set once the response is known to be wrapped.
    wrapper: Option<jsonp::Wrapper>,
    /// A zstd body that pingora does not decompress.
    zstd: Option<jsonp::ZstdStream>,
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

/// The request's host without its port: the request target's authority when it has one
/// (HTTP/2's `:authority`, or an absolute-form HTTP/1.1 target, which RFC 9112 §3.2.2 says
/// wins over `Host`), else `Host`.
///
/// A fully qualified name's trailing dot is dropped (`api.example.com.` is
/// `api.example.com`), so that it cannot miss its route and fall to a later one.
pub fn request_host(req: &RequestHeader) -> &str {
    let host = match req.uri.host() {
        Some(h) => h,
        None => strip_port(
            req.headers
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or(""),
        ),
    };
    host.strip_suffix('.').unwrap_or(host)
}

pub(crate) fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |i| &host[..=i]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// Writes a short text response of the proxy's own (404, 502, 504...), with CORS headers when
/// a policy allows the origin, so a browser app can read the status.
///
/// Boxed: a rare path, kept out of `request_filter`'s future, which is copied per request.
fn send_text<'a>(
    session: &'a mut Session,
    status: u16,
    message: String,
    cors: Option<(&'a CorsPolicy, &'a OriginCheck)>,
) -> BoxFuture<'a, Result<()>> {
    Box::pin(async move {
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
    })
}

/// An origin-form request target of `path` and `query`.
pub(crate) fn origin_form(path: &str, query: Option<&str>) -> Result<http::Uri> {
    let target = match query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    http::Uri::builder()
        .path_and_query(target)
        .build()
        .map_err(|e| Error::because(ErrorType::InternalError, "rewriting the request target", e))
}

/// The request's Origin, made safe for a log line.
fn log_origin(req: &RequestHeader) -> Option<String> {
    req.headers
        .get(ORIGIN)
        .map(|o| cors::sanitize(&String::from_utf8_lossy(o.as_bytes())))
}

/// Logs a request that a report-only policy would refuse, with its origin, so that ops can
/// see who would break before enforcing.
fn report_would_deny(req: &RequestHeader, route: &Route, policy: &CorsPolicy, check: &OriginCheck) {
    if let OriginCheck::WouldDeny { why, served } = check {
        let origin = log_origin(req);
        tracing::warn!(
            target: "crossgate::report_only",
            route = %route.name,
            policy = %policy.name,
            origin = %origin.as_deref().unwrap_or("-"),
            served = served.label(),
            why = %why,
            "report-only policy would deny this request",
        );
    }
}

/// The next server of the route's upstream, with the route's timeouts.
fn peer_for(route: &Route, websocket: bool) -> Box<HttpPeer> {
    let backend = route.upstream.select();
    let mut peer = Box::new(backend.peer.clone());
    if let Some(ws) = route.websocket.filter(|_| websocket) {
        // An upgraded connection is closed after this long without a frame from upstream.
        peer.options.read_timeout = Some(ws.idle_timeout);
        peer.options.write_timeout = Some(ws.idle_timeout);
    } else if let Some(t) = route.read_timeout {
        peer.options.read_timeout = Some(t);
    }
    peer
}

/// Any HTTP/1.1 upgrade request: all of them go through the WebSocket checks, so that an
/// `Upgrade: h2c` or `websocket, x` cannot slip past them.
fn is_upgrade(session: &Session) -> bool {
    session.is_upgrade_req()
}

/// Browsers send the page's Origin with every WebSocket handshake but apply no CORS to it:
/// the server must check it, or any site can open a socket with the user's cookies
/// (cross-site WebSocket hijacking).
fn websocket_allowed(req: &RequestHeader, route: &Route) -> std::result::Result<(), String> {
    let Some(ws) = route.websocket else {
        return Err(format!(
            "WebSocket upgrades are not enabled on route {}",
            route.name
        ));
    };
    let websocket = req
        .headers
        .get(http::header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    if !websocket {
        return Err("only `Upgrade: websocket` is let through".into());
    }
    let policy = route
        .cors
        .as_deref()
        .ok_or("the route has no CORS policy")?;
    let mut origins = req.headers.get_all(ORIGIN).iter();
    match (origins.next(), origins.next()) {
        (None, _) if ws.allow_without_origin => Ok(()),
        (None, _) => Err("the upgrade has no Origin, and websocket.without_origin is deny".into()),
        (Some(_), Some(_)) => Err("the upgrade has several Origin headers".into()),
        (Some(o), None) => match o.to_str() {
            Ok(text) if policy.allows(text) => Ok(()),
            _ => Err(format!(
                "origin {} is not in allow_origins of policy {}",
                cors::printable(&String::from_utf8_lossy(o.as_bytes())),
                policy.name
            )),
        },
    }
}

/// JSONP is readable by whichever page includes the script, so the including page must be on
/// the route's allowlist: a same-origin request, or a `Referer` whose origin is allowed.
fn jsonp_caller_allowed(
    req: &RequestHeader,
    policy: &CorsPolicy,
    without_referer: bool,
) -> std::result::Result<(), String> {
    let fetch_site = req.headers.get("sec-fetch-site").map(|v| v.as_bytes());
    if fetch_site == Some(b"same-origin") {
        return Ok(());
    }
    match req.headers.get(http::header::REFERER) {
        Some(referer) => {
            let text = referer.to_str().unwrap_or("");
            match jsonp::referer_origin(text) {
                Some(origin) if policy.allows(origin) => Ok(()),
                _ => Err(format!(
                    "the including page {} is not in allow_origins of policy {}",
                    cors::printable(jsonp::referer_origin(text).unwrap_or(text)),
                    policy.name
                )),
            }
        }
        // A browser that says the request is cross-site but hides the page (referrerpolicy
        // no-referrer) is not let through by `without_referer: allow`: that is meant for
        // clients that are not browsers.
        None if fetch_site.is_some_and(|s| s != b"none") => {
            Err("a cross-site request without a Referer".into())
        }
        None if without_referer => Ok(()),
        None => {
            Err("the request has no Referer, and this route's jsonp.without_referer is deny".into())
        }
    }
}

static VARY_REFERER: HeaderValue = HeaderValue::from_static("Referer, Sec-Fetch-Site");
static JAVASCRIPT: HeaderValue = HeaderValue::from_static("application/javascript; charset=utf-8");

/// The headers of a wrapped response: a script, never sniffed, of a length only known at the
/// end (U+2028 escapes grow it), with no strong validator of the unwrapped body.
fn jsonp_response_headers(resp: &mut ResponseHeader, wrap: jsonp::Wrap, h2: bool) -> Result<()> {
    if matches!(wrap, jsonp::Wrap::Envelope | jsonp::Wrap::EnvelopeNoData) {
        // The script must run for the client to see meta.status.
        resp.set_status(200)?;
    }
    resp.insert_header(CONTENT_TYPE, JAVASCRIPT.clone())?;
    resp.insert_header(X_CONTENT_TYPE_OPTIONS, NOSNIFF.clone())?;
    resp.remove_header(&CONTENT_LENGTH);
    resp.remove_header(&http::header::CONTENT_ENCODING);
    resp.remove_header(&http::header::ACCEPT_RANGES);
    let strong_etag = resp
        .headers
        .get(http::header::ETAG)
        .is_some_and(|e| !e.as_bytes().starts_with(b"W/"));
    if strong_etag {
        resp.remove_header(&http::header::ETAG);
    }
    if !h2 {
        resp.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
    }
    // Who may run this script depends on the including page: a shared cache must not hand
    // one page's copy to another.
    cors::merge_vary(resp, &VARY_REFERER);
    Ok(())
}

/// The proxy's own error as a JSONP envelope (`envelope: true`): a script that runs and
/// hands `{"meta":{"status":502},"data":null}` to the callback.
async fn send_jsonp_error(
    session: &mut Session,
    callback: &jsonp::Callback,
    status: u16,
    ctx: &Ctx,
) -> Result<()> {
    let mut w = jsonp::Wrapper::new(callback, jsonp::Wrap::EnvelopeNoData, status);
    let body = w.feed(None, true).unwrap_or_default();
    let mut h = ResponseHeader::build_no_case(200, Some(8))?;
    h.insert_header(CONTENT_TYPE, JAVASCRIPT.clone())?;
    h.insert_header(X_CONTENT_TYPE_OPTIONS, NOSNIFF.clone())?;
    h.insert_header(CONTENT_LENGTH, body.len())?;
    h.insert_header(CACHE_CONTROL, NO_STORE.clone())?;
    if let Some(policy) = ctx.policy() {
        policy.apply_actual(&mut h, &ctx.origin);
    }
    session.write_response_header(Box::new(h), false).await?;
    session.write_response_body(Some(body), true).await
}

/// The head is in: its deadline stops ([`guard`]), and the body, response and next-request
/// timeouts of the rules in force apply to this client.
fn client_limits(session: &mut Session, limits: &ClientTimeouts) {
    guard::head_done(session.stream());
    // HTTP/1.1 pipelining (RFC 9112 §9.3.2): bytes that come after this request (the next
    // requests, sent before this one is answered) are kept and parsed as the next request once
    // this one is answered, so that answers go out in order. Without it pingora closes the
    // connection after this answer and the requests behind it get none. (pingora carries the
    // setting to the connection's next request; setting it again costs nothing.)
    session.set_pipelining_enabled(true);
    session.set_read_timeout(Some(limits.body));
    session.set_write_timeout(Some(limits.send));
    // Only where pingora keeps the connection (not `Connection: close`, not HTTP/1.0).
    if session.get_keepalive().is_some() {
        session.set_keepalive(Some(limits.keepalive.as_secs().max(1)));
    }
}

/// Whether pingora will send this response chunked on an HTTP/1.1 connection (it keeps the
/// upstream's framing): a head, then chunks, then the last chunk, each flushed.
fn chunked_h1(session: &Session, resp: &ResponseHeader) -> bool {
    let req = session.req_header();
    let s = resp.status;
    !session.is_http2()
        && req.version == http::Version::HTTP_11
        && req.method != Method::HEAD
        && !(s.is_informational() || s == StatusCode::NO_CONTENT || s == StatusCode::NOT_MODIFIED)
        && !resp.headers.contains_key(CONTENT_LENGTH)
        && resp
            .headers
            .get(http::header::TRANSFER_ENCODING)
            .is_some_and(|v| {
                let v = v.as_bytes().trim_ascii_end();
                v.len() >= 7 && v[v.len() - 7..].eq_ignore_ascii_case(b"chunked")
            })
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
        // A request body that stopped arriving (server.client_body_timeout).
        (ErrorSource::Downstream, ErrorType::ReadTimedout) => 408,
        (ErrorSource::Downstream, _) => 400,
        _ => 500,
    }
}

static HTML: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");

/// 405 with the methods that are allowed.
async fn method_not_allowed(session: &mut Session, allow: &'static str) -> Result<()> {
    let mut h = ResponseHeader::build_no_case(405, Some(2))?;
    h.insert_header(http::header::ALLOW, allow)?;
    h.insert_header(CONTENT_LENGTH, 0)?;
    session.write_response_header(Box::new(h), true).await
}

/// 413 for a beacon body over the limit; the rest of the body is not read, so the
/// connection is not reused.
fn refuse_too_large(session: &mut Session) -> BoxFuture<'_, Result<()>> {
    session.set_keepalive(None);
    send_text(
        session,
        413,
        format!(
            "crossgate: beacon bodies are at most {} bytes",
            beacon::MAX_BODY
        ),
        None,
    )
}

/// Serves the bridge page or one of its scripts (GET and HEAD only).
/// Boxed: a rare path, kept out of `request_filter`'s future.
fn serve_bridge<'a>(
    session: &'a mut Session,
    b: &'a bridge::Bridge,
    asset: bridge::Asset,
) -> BoxFuture<'a, Result<()>> {
    Box::pin(async move {
        let method = session.req_header().method.clone();
        if method != Method::GET && method != Method::HEAD {
            return method_not_allowed(session, "GET, HEAD").await;
        }
        let (body, content_type) = match asset {
            bridge::Asset::Page => (b.page.clone(), HTML.clone()),
            bridge::Asset::FrameJs => (
                Bytes::from_static(bridge::FRAME_JS.as_bytes()),
                JAVASCRIPT.clone(),
            ),
            bridge::Asset::ClientJs => (
                Bytes::from_static(bridge::CLIENT_JS.as_bytes()),
                JAVASCRIPT.clone(),
            ),
        };
        let mut h = ResponseHeader::build_no_case(200, Some(8))?;
        h.insert_header(CONTENT_TYPE, content_type)?;
        h.insert_header(CONTENT_LENGTH, body.len())?;
        h.insert_header(X_CONTENT_TYPE_OPTIONS, NOSNIFF.clone())?;
        h.insert_header(CACHE_CONTROL, "no-cache")?;
        match asset {
            bridge::Asset::Page => {
                h.insert_header("content-security-policy", b.csp.clone())?;
                h.insert_header("referrer-policy", "no-referrer")?;
            }
            // The client library is included by pages on other origins.
            bridge::Asset::ClientJs => {
                h.insert_header("cross-origin-resource-policy", "cross-origin")?;
                h.insert_header(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")?;
            }
            bridge::Asset::FrameJs => {}
        }
        let head = method == Method::HEAD;
        session.write_response_header(Box::new(h), head).await?;
        if !head {
            session.write_response_body(Some(body), true).await?;
        }
        Ok(())
    })
}

impl CrossGate {
    /// The route's metric handles, created on its first request.
    fn route_metrics<'r>(&self, route: &'r Route) -> &'r metrics::RouteMetrics {
        route.metrics.get_or_init(|| {
            metrics::RouteMetrics::new(&self.metrics, &route.name, &route.upstream.name)
        })
    }

    /// The metrics of a finished request.
    fn record(&self, req: &RequestHeader, status: u16, e: Option<&Error>, ctx: &Ctx) {
        let m = &self.metrics;
        let Some(r) = ctx.route() else {
            // The proxy's own answers without a route: beacons and 404s.
            let route = if ctx.beacon.is_some() {
                "beacon"
            } else {
                "none"
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
        rm.duration.observe(ctx.started.elapsed().as_secs_f64());
        if let Some(t) = ctx.upstream_time {
            rm.upstream_duration.observe(t.as_secs_f64());
        }
        if r.cors.is_some() && !ctx.preflight && !ctx.websocket {
            rm.decision(m, "actual", ctx.origin.label());
        }
        if let Some(result) = ctx.jsonp_result {
            rm.jsonp(m, result);
        }
        if let Some(e) = e.filter(|e| *e.esource() == ErrorSource::Upstream) {
            self.count_upstream_error(r, e);
        }
    }

    fn count_upstream_error(&self, r: &Route, e: &Error) {
        self.metrics
            .upstream_errors
            .with_label_values(&[r.upstream.name.as_str(), metrics::upstream_error_kind(e)])
            .inc();
    }
}

static GIF_TYPE: HeaderValue = HeaderValue::from_static("image/gif");

impl CrossGate {
    /// Answers a beacon hit: GET/HEAD with the GIF, POST (at most 64 KiB of text or JSON) with
    /// 204. The hit is logged, and queued for its upstream without waiting.
    /// Boxed: kept out of `request_filter`'s future, which is copied per request.
    fn serve_beacon<'a>(
        &'a self,
        session: &'a mut Session,
        b: &'a beacon::Beacon,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let req = session.req_header();
            let method = req.method.clone();
            let query = req.uri.query().map(str::to_owned);
            let content_type = req.headers.get(CONTENT_TYPE).cloned();
            let declared_len = req
                .headers
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<usize>().ok());
            let body = match method {
                Method::GET | Method::HEAD => Bytes::new(),
                Method::POST => {
                    if declared_len.is_some_and(|n| n > beacon::MAX_BODY) {
                        return refuse_too_large(session).await;
                    }
                    if !beacon::acceptable_type(content_type.as_ref()) {
                        return send_text(
                            session,
                            415,
                            "crossgate: beacon bodies are text/plain or JSON".into(),
                            None,
                        )
                        .await;
                    }
                    let mut body = bytes::BytesMut::new();
                    while let Some(chunk) = session.read_request_body().await? {
                        if body.len() + chunk.len() > beacon::MAX_BODY {
                            return refuse_too_large(session).await;
                        }
                        body.extend_from_slice(&chunk);
                    }
                    body.freeze()
                }
                _ => {
                    return method_not_allowed(session, "GET, HEAD, POST").await;
                }
            };
            let (fields, skipped) = beacon::log_fields(query.as_deref(), b.max_fields);
            self.metrics
                .beacon_hits
                .with_label_values(&[b.name.as_str()])
                .inc();
            let mut forwarded = "no";
            if let Some(f) = &b.forward {
                let target = match &query {
                    Some(q) => format!("{}?{q}", f.path),
                    None => f.path.clone(),
                };
                let hit = beacon::Hit {
                    beacon: b.name.clone(),
                    upstream: f.upstream.clone(),
                    method: if method == Method::POST {
                        "POST"
                    } else {
                        "GET"
                    },
                    target,
                    content_type,
                    body: body.clone(),
                };
                forwarded = if self.beacons.offer(hit) {
                    "queued"
                } else {
                    self.metrics
                        .beacon_dropped
                        .with_label_values(&[b.name.as_str()])
                        .inc();
                    "dropped: queue full"
                };
            }
            tracing::info!(
                target: "crossgate::beacon",
                beacon = %b.name,
                method = %method,
                fields = %fields,
                fields_skipped = skipped,
                body_bytes = body.len(),
                forwarded,
            );
            if method == Method::POST {
                let mut h = ResponseHeader::build_no_case(204, Some(2))?;
                h.insert_header(CACHE_CONTROL, NO_STORE.clone())?;
                return session.write_response_header(Box::new(h), true).await;
            }
            let mut h = ResponseHeader::build_no_case(200, Some(4))?;
            h.insert_header(CONTENT_TYPE, GIF_TYPE.clone())?;
            h.insert_header(CONTENT_LENGTH, beacon::GIF.len())?;
            h.insert_header(CACHE_CONTROL, NO_STORE.clone())?;
            let head = method == Method::HEAD;
            session.write_response_header(Box::new(h), head).await?;
            if !head {
                session
                    .write_response_body(Some(Bytes::from_static(beacon::GIF)), true)
                    .await?;
            }
            Ok(())
        })
    }
}

#[async_trait]
impl ProxyHttp for CrossGate {
    // Boxed: pingora moves the per-request future (which holds the context) twice per request.
    type CTX = Box<Ctx>;

    fn new_ctx(&self) -> Box<Ctx> {
        Box::new(Ctx {
            rules: None,
            route: None,
            origin: OriginCheck::NoOrigin,
            preflight: false,
            started: Instant::now(),
            upstream_started: None,
            upstream_time: None,
            tries: 0,
            jsonp: None,
            websocket: false,
            beacon: None,
            jsonp_result: None,
            stream_gauge: None,
            chunked_out: false,
            forward_path: None,
            _in_flight: InFlight::new(&self.in_flight),
        })
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Box<Ctx>) -> Result<bool> {
        let rules = self.rules.load_full();
        client_limits(session, &rules.server.client);
        let req = session.req_header();
        let (host, path) = (request_host(req), req.uri.path());
        let target = match crate::path::target(
            path,
            req.raw_path_is_utf8(),
            rules.server.ambiguous_paths,
        ) {
            Ok(t) => t,
            Err(why) => {
                ctx.rules = Some(rules.clone());
                let message = format!(
                    "crossgate: ambiguous request path refused: {why} (server.ambiguous_paths is reject)"
                );
                send_text(session, 400, message, None).await?;
                // Answered: what would be routed is not what the backend would get.
                return Ok(true);
            }
        };
        if let Some(asset) = rules.bridge.as_ref().and_then(|b| b.asset(path)) {
            ctx.rules = Some(rules.clone());
            serve_bridge(
                session,
                rules.bridge.as_ref().expect("matched above"),
                asset,
            )
            .await?;
            // Answered: the bridge's files are served from the binary.
            return Ok(true);
        }
        if let Some(i) = rules.beacons.iter().position(|b| b.matches(host, path)) {
            ctx.beacon = Some(i);
            ctx.rules = Some(rules.clone());
            self.serve_beacon(session, &rules.beacons[i]).await?;
            // Answered: beacons are the proxy's own endpoints.
            return Ok(true);
        }
        ctx.route = rules.find_index(host, target.key());
        ctx.forward_path = target.forward().map(str::to_owned);
        ctx.rules = Some(rules.clone());

        let Some(route) = ctx.route.map(|i| &rules.routes[i]) else {
            let req = session.req_header();
            if let Some(policy) = rules
                .default_cors
                .as_deref()
                .filter(|_| cors::is_preflight(req))
            {
                // A 404 is no answer to a preflight (the browser reports a CORS error, not the
                // status): answer it from default_cors, so that the actual request goes out and
                // its 404 is readable.
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
                // Answered: a preflight for a path no route serves.
                return Ok(true);
            }
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
        if is_upgrade(session) {
            let req = session.req_header();
            if let Err(why) = websocket_allowed(req, route) {
                ctx.origin = OriginCheck::Denied(why.clone());
                send_text(
                    session,
                    403,
                    format!("crossgate: WebSocket refused: {why}"),
                    None,
                )
                .await?;
                // Answered: browsers apply no CORS to WebSockets, so the Origin check is ours.
                return Ok(true);
            }
            ctx.websocket = true;
            ctx.origin = match route.cors.as_deref() {
                Some(p) => p.check_origin(req),
                None => OriginCheck::NoOrigin,
            };
            return Ok(false);
        }
        let Some(policy) = route.cors.as_deref() else {
            return Ok(false);
        };
        let req = session.req_header();
        if cors::is_preflight(req) {
            let preflight = policy.preflight(req);
            ctx.preflight = true;
            self.route_metrics(route)
                .decision(&self.metrics, "preflight", preflight.check.label());
            report_would_deny(req, route, policy, &preflight.check);
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
        report_would_deny(req, route, policy, &ctx.origin);
        if let Some(heartbeat) = route.sse.and_then(|s| s.heartbeat) {
            if sse::wants_event_stream(req) {
                let peer = peer_for(route, false);
                let silence = route.read_timeout.unwrap_or(route.upstream.timeouts.read);
                ctx.tries += 1;
                let check = ctx.origin.clone();
                let gauge = self
                    .metrics
                    .sse_active
                    .with_label_values(&[route.name.as_str()]);
                let mut stream_gauge = None;
                let result = sse::stream(
                    session,
                    &self.connector,
                    &peer,
                    ctx.forward_path.as_deref(),
                    heartbeat,
                    silence,
                    |resp| {
                        policy.apply_actual(resp, &check);
                        if sse::is_event_stream(resp) {
                            stream_gauge = Some(ActiveGauge::new(gauge));
                        }
                    },
                )
                .await;
                ctx.stream_gauge = stream_gauge;
                let streamed = result?;
                ctx.upstream_time = Some(streamed.upstream_time);
                // Answered: the stream was proxied here, with heartbeats.
                return Ok(true);
            }
        }
        if let Some(j) = &route.jsonp {
            if req.method == Method::GET {
                match jsonp::ask(req.uri.query(), &j.param, j.callback_pattern) {
                    jsonp::Ask::No => {}
                    jsonp::Ask::Invalid(why) => {
                        ctx.jsonp_result = Some("rejected");
                        send_text(
                            session,
                            400,
                            format!("crossgate: JSONP refused: {why}"),
                            None,
                        )
                        .await?;
                        // Answered: nothing executable for a bad callback.
                        return Ok(true);
                    }
                    jsonp::Ask::Yes(callback) => {
                        if let Err(why) = jsonp_caller_allowed(req, policy, j.allow_without_referer)
                        {
                            ctx.jsonp_result = Some("rejected");
                            send_text(
                                session,
                                403,
                                format!("crossgate: JSONP refused: {why}"),
                                None,
                            )
                            .await?;
                            // Answered: the including page is not on the allowlist.
                            return Ok(true);
                        }
                        ctx.jsonp = Some(JsonpState {
                            callback,
                            envelope: j.envelope,
                            wrapper: None,
                            zstd: None,
                        });
                        // Wrapping needs the plain body, whatever the backend compresses.
                        session.upstream_compression.adjust_decompression(true);
                    }
                }
            }
        }
        Ok(false)
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut Box<Ctx>,
    ) -> Result<()> {
        if let Some(path) = ctx.forward_path.as_deref() {
            // ambiguous_paths: forward_normalized: the routed path is the forwarded one.
            let uri = origin_form(path, upstream.uri.query())?;
            upstream.set_uri(uri);
        }
        if ctx.jsonp.is_some() {
            let (param, credentials) = match ctx
                .route()
                .and_then(|r| r.jsonp.as_ref().zip(r.cors.as_deref()))
            {
                Some((j, policy)) => (j.param.as_str(), policy.credentials),
                None => ("callback", false),
            };
            if let Some(query) = upstream.uri.query() {
                let query = jsonp::strip_query(query, param);
                let uri = origin_form(upstream.uri.path(), query.as_deref())?;
                upstream.set_uri(uri);
            }
            // A <script> carries the user's cookies whatever the CORS policy says, and the
            // answer is readable by the including page: unless the policy allows credentials,
            // the backend must not see them (it would answer as the user).
            if !credentials {
                upstream.remove_header(&http::header::COOKIE);
                upstream.remove_header(&http::header::AUTHORIZATION);
            }
            // pingora decodes what the upstream request does not accept: with no Accept-Encoding,
            // whatever the backend compresses anyway (gzip, br) arrives decoded.
            upstream.remove_header(&http::header::ACCEPT_ENCODING);
            // A byte range of the JSON would be wrapped as if it were the whole.
            upstream.remove_header(&http::header::RANGE);
            upstream.remove_header(&http::header::IF_RANGE);
        }
        Ok(())
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Box<Ctx>,
    ) -> Result<Box<HttpPeer>> {
        let route = ctx
            .route()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no route"))?;
        let peer = peer_for(route, ctx.websocket);
        ctx.tries += 1;
        ctx.upstream_started = Some(Instant::now());
        Ok(peer)
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Box<Ctx>,
        mut e: Box<Error>,
    ) -> Box<Error> {
        // Nothing was sent yet, so any method may go to the next server.
        if let Some(r) = ctx.route().filter(|r| ctx.tries < r.upstream.servers.len()) {
            e.set_retry(true);
            // A retried error never reaches `logging`: count it here.
            self.count_upstream_error(r, &e);
        }
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Box<Ctx>,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        // pingora marks a connection that closed or reset before the response head as
        // retryable "if reused" (a pooled connection the server had already dropped). The
        // request was sent, so only an idempotent one with its body still whole may be sent
        // again: to any server if the connection was reused, otherwise to the next server
        // (nginx's `proxy_next_upstream error` for idempotent methods). Once the response has
        // begun, or for POST and PATCH, never.
        let resendable = session.req_header().method.is_idempotent()
            && !session.as_ref().retry_buffer_truncated()
            && ctx.upstream_time.is_none();
        let route = ctx.route();
        let retry = match e.retry {
            RetryType::ReusedOnly if resendable => {
                client_reused || route.is_some_and(|r| ctx.tries < r.upstream.servers.len())
            }
            _ => false,
        };
        e.set_retry(retry);
        if let Some(r) = route.filter(|_| retry) {
            // A retried error never reaches `logging`: count it here.
            self.count_upstream_error(r, &e);
        }
        e
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _resp: &mut ResponseHeader,
        ctx: &mut Box<Ctx>,
    ) -> Result<()> {
        ctx.upstream_time = ctx.upstream_started.map(|t| t.elapsed());
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Box<Ctx>,
    ) -> Result<()> {
        if let Some(policy) = ctx
            .route()
            .and_then(|r| r.cors.as_deref())
            .filter(|_| !ctx.websocket)
        {
            policy.apply_actual(resp, &ctx.origin);
        }
        if let Some(j) = ctx.jsonp.as_mut() {
            let status = resp.status.as_u16();
            let content_type = resp.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
            let mut wrap = jsonp::decide(status, content_type, j.envelope);
            let result_label = &mut ctx.jsonp_result;
            // pingora has decoded gzip and br already; zstd is ours; anything else stays as is.
            match resp
                .headers
                .get(http::header::CONTENT_ENCODING)
                .map(|v| v.as_bytes())
            {
                None => {}
                Some(e) if e.eq_ignore_ascii_case(b"identity") => {}
                Some(e) if e.eq_ignore_ascii_case(b"zstd") && wrap != jsonp::Wrap::Passthrough => {
                    j.zstd = Some(jsonp::ZstdStream::new().map_err(|e| {
                        Error::because(ErrorType::InternalError, "zstd decoder", e)
                    })?);
                }
                Some(_) => wrap = jsonp::Wrap::Passthrough,
            }
            *result_label = Some(if wrap == jsonp::Wrap::Passthrough {
                "passthrough"
            } else {
                "wrapped"
            });
            if wrap != jsonp::Wrap::Passthrough {
                j.wrapper = Some(jsonp::Wrapper::new(&j.callback, wrap, status));
                jsonp_response_headers(resp, wrap, session.is_http2())?;
            }
        }
        if let Some(route) = ctx.route() {
            let name = route.name.as_str();
            if ctx.websocket && resp.status.as_u16() == 101 {
                self.metrics
                    .websocket_total
                    .with_label_values(&[name])
                    .inc();
                let g = self.metrics.websocket_active.with_label_values(&[name]);
                ctx.stream_gauge = Some(ActiveGauge::new(g));
            } else if sse::is_event_stream(resp) {
                let g = self.metrics.sse_active.with_label_values(&[name]);
                ctx.stream_gauge = Some(ActiveGauge::new(g));
            }
        }
        ctx.chunked_out = chunked_h1(session, resp);
        Ok(())
    }

    fn response_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Box<Ctx>,
    ) -> Result<Option<Duration>> {
        if let Some(j) = ctx.jsonp.as_mut() {
            if let (Some(z), Some(chunk)) = (j.zstd.as_mut(), body.as_ref()) {
                let plain = z.decode(chunk).map_err(|e| {
                    Error::because(
                        ErrorType::InvalidHTTPHeader,
                        "the upstream zstd body is corrupt",
                        e,
                    )
                    .into_up()
                })?;
                *body = Some(plain);
            }
            if let Some(w) = j.wrapper.as_mut() {
                *body = w.feed(body.as_deref(), end_of_stream);
            }
        }
        if ctx.chunked_out {
            // pingora runs this filter over a whole batch of upstream data before writing any
            // of it: say what follows in the batch, so that it leaves in one send.
            if end_of_stream {
                guard::hold_until_last_chunk(session.stream());
            } else if session.response_written().is_none()
                && body.as_ref().is_some_and(|b| !b.is_empty())
            {
                guard::hold_head_flush(session.stream());
            }
        }
        Ok(None)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut Box<Ctx>,
    ) -> FailToProxy {
        let code = error_status(e);
        let envelope = ctx
            .jsonp
            .as_ref()
            .filter(|j| j.envelope)
            .map(|j| j.callback.clone());
        if let (Some(callback), true) = (envelope, code > 0 && session.response_written().is_none())
        {
            if let Err(write_err) = send_jsonp_error(session, &callback, code, ctx).await {
                tracing::debug!(error = %write_err, "could not send the error response");
            }
        } else if code > 0 && session.response_written().is_none() {
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

    /// A client that leaves before its answer is complete (an EventSource closed, a page left,
    /// a long poll given up) is ordinary traffic, not an error of the proxy: pingora's
    /// "Fail to proxy" line at ERROR for each would bury real failures. The access log still
    /// records it, with its status and error.
    fn suppress_error_log(&self, _session: &Session, _ctx: &Box<Ctx>, e: &Error) -> bool {
        let client_left = *e.esource() == ErrorSource::Downstream
            && matches!(
                e.etype(),
                ErrorType::ConnectionClosed | ErrorType::WriteError
            );
        if client_left {
            tracing::debug!(error = %e, "the client left before the response was complete");
        }
        client_left
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Box<Ctx>) {
        guard::idle(session.stream());
        let Some(rules) = ctx.rules.as_ref() else {
            return;
        };
        let req = session.req_header();
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        self.record(req, status, e, ctx);
        if !rules.log.access_log {
            return;
        }
        let origin = log_origin(req);
        tracing::info!(
            target: "crossgate::access",
            method = %req.method,
            host = %cors::sanitize(request_host(req)),
            path = %cors::sanitize(req.uri.path()),
            status,
            origin = %origin.as_deref().unwrap_or("-"),
            route = %ctx.route().map(|r| r.name.as_str()).or_else(|| ctx.beacon.map(|_| "beacon")).unwrap_or("-"),
            cors = %if ctx.policy().is_some() { ctx.origin.label() } else { "off" },
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
