//! Per-request state: the rules snapshot, the route, the origin check, timings, and one
//! [`Channel`] with the channel's own state.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::channels::Channel;
use crate::cors::{CorsPolicy, OriginCheck};
use crate::request_id::RequestId;
use crate::rules::{Route, Rules};

/// Counts one open stream in a gauge until dropped.
pub struct ActiveGauge(prometheus::IntGauge);

impl ActiveGauge {
    pub(super) fn new(g: prometheus::IntGauge) -> ActiveGauge {
        g.inc();
        ActiveGauge(g)
    }
}

impl Drop for ActiveGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Counts a request as in flight (for draining, and in `crossgate_requests_in_flight`) until
/// its context is dropped.
pub struct InFlight(Arc<AtomicUsize>, prometheus::IntGauge);

impl InFlight {
    pub(super) fn new(counter: &Arc<AtomicUsize>, gauge: &prometheus::IntGauge) -> InFlight {
        counter.fetch_add(1, Ordering::AcqRel);
        gauge.inc();
        InFlight(counter.clone(), gauge.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
        self.1.dec();
    }
}

/// Per-request state.
pub struct Ctx {
    pub(super) rules: Option<Arc<Rules>>,
    pub(super) route: Option<usize>,
    pub(super) origin: OriginCheck,
    pub(super) channel: Channel,
    pub(super) started: Instant,
    pub(super) upstream_started: Option<Instant>,
    pub(super) upstream_time: Option<Duration>,
    pub(super) tries: usize,
    /// The normalized path that replaces the client's upstream (`ambiguous_paths:
    /// forward_normalized`), so that what was routed is what is forwarded.
    pub(super) forward_path: Option<String>,
    /// Open WebSocket / SSE stream, counted while this request lives.
    pub(super) stream_gauge: Option<ActiveGauge>,
    /// The response goes to the client chunked over HTTP/1.1: its sends can be coalesced
    /// (`guard::hold_head_flush`).
    pub(super) chunked_out: bool,
    /// The upstream's body is decoded on its way (JSONP wraps the plain body).
    pub(super) decompress: bool,
    /// Request body bytes read from the client so far (for `max_body_size`).
    pub(super) body_read: u64,
    /// Whether the request's answer counts in `crossgate_cors_decisions_total` (not a refused
    /// upgrade that is not about its Origin).
    pub(super) cors_decision: bool,
    /// Who asked, and over what: read for the access log only (`done`, or when a tunnel
    /// opens), so that a request without one does not pay for it.
    pub(super) client: Option<Client>,
    /// `X-Request-Id`: the request's own, or one made for it; sent upstream and logged. Made
    /// on first use ([`Ctx::request_id`]): a preflight without an access log needs none.
    request_id: std::sync::OnceLock<RequestId>,
    /// The server that answered (or failed) last.
    pub(super) upstream_addr: Option<std::net::SocketAddr>,
    _in_flight: InFlight,
}

/// The client connection a request came on, as the access log shows it.
#[derive(Debug, Clone)]
pub struct Client {
    pub(super) addr: Option<std::net::SocketAddr>,
    /// The TLS version (`TLSv1.3`), none over plain TCP.
    pub(super) tls: Option<std::borrow::Cow<'static, str>>,
}

impl Client {
    /// Nothing known of it.
    pub(super) fn unknown() -> Client {
        Client {
            addr: None,
            tls: None,
        }
    }

    pub(super) fn of(session: &pingora::protocols::http::ServerSession) -> Client {
        Client {
            addr: session.client_addr().and_then(|a| a.as_inet()).copied(),
            tls: session
                .digest()
                .and_then(|d| d.ssl_digest.as_ref())
                .map(|s| s.version.clone()),
        }
    }
}

impl Ctx {
    /// The context of a request just read.
    pub(super) fn new(in_flight: &Arc<AtomicUsize>, gauge: &prometheus::IntGauge) -> Ctx {
        Ctx {
            rules: None,
            route: None,
            origin: OriginCheck::NoOrigin,
            channel: Channel::None,
            started: Instant::now(),
            upstream_started: None,
            upstream_time: None,
            tries: 0,
            forward_path: None,
            stream_gauge: None,
            chunked_out: false,
            decompress: false,
            body_read: 0,
            cors_decision: true,
            client: None,
            request_id: std::sync::OnceLock::new(),
            upstream_addr: None,
            _in_flight: InFlight::new(in_flight, gauge),
        }
    }

    /// The request's id (`req`: its head, read the first time).
    pub(super) fn request_id(&self, req: &pingora::http::RequestHeader) -> &RequestId {
        self.request_id.get_or_init(|| RequestId::of(req))
    }

    /// The request's id made to outlive its head's buffer (a tunnel keeps it).
    pub(super) fn own_request_id(&mut self, req: &pingora::http::RequestHeader) {
        self.request_id(req);
        if let Some(id) = self.request_id.get_mut() {
            id.own();
        }
    }

    pub(super) fn route(&self) -> Option<&Route> {
        Some(&self.rules.as_ref()?.routes[self.route?])
    }

    /// The policy for this request's responses: the route's, or `default_cors` when no route
    /// matched.
    pub(super) fn policy(&self) -> Option<&CorsPolicy> {
        let rules = self.rules.as_ref()?;
        match self.route {
            Some(i) => rules.routes[i].cors.as_deref(),
            None => rules.default_cors.as_deref(),
        }
    }
}
