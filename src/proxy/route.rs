//! A request that a route serves: what `phases::begin` does once [`crate::dispatch`] has
//! found the route, by the way the route serves it (`Serve`).

use std::time::Duration;

use pingora::prelude::*;
use pingora::protocols::http::ServerSession as Session;

use super::answer::{send, send_preflight, Answer};
use super::record::report_would_deny;
use super::{peer_for, ActiveGauge, CrossGate, Ctx};
use crate::channels::Channel;
use crate::cors::OriginCheck;
use crate::dispatch::{Routed, Serve};
use crate::metrics::DecisionKind;
use crate::refusal::RefusalKind;
use crate::rules::{Route, Rules};
use crate::{jsonp, sse};

impl CrossGate {
    /// Serves a request that a route serves; `Ok(true)` when it was answered here.
    // Long because it is one flat match over `Serve`, an arm (of a few lines) per way a route
    // serves a request, read top to bottom; each arm's early answer is commented where it is.
    pub(super) async fn on_route(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        rules: &Rules,
        routed: Routed,
    ) -> Result<bool> {
        ctx.route = Some(routed.route);
        ctx.forward_path = routed.forward_path;
        let route = &rules.routes[routed.route];
        let req = session.req_header();
        if let (Some(policy), Some(origin)) = (route.cors.as_deref(), routed.serve.origin()) {
            report_would_deny(&self.report_log, req, route, policy, origin);
        }
        self.refused.observe(&route.name, &routed.serve, req);
        match routed.serve {
            Serve::WebSocketRefused(why) => {
                let message = format!("crossgate: WebSocket refused: {why}");
                // Only a refused Origin is a CORS decision (and counted as one); an upgrade
                // on a route without `websocket:`, or not to a WebSocket, is not.
                ctx.cors_decision = why.is_origin();
                ctx.origin = OriginCheck::Denied(why);
                ctx.channel = Channel::Own;
                send(session, Answer::text(403, message), None).await?;
                // Answered: browsers apply no CORS to WebSockets, so the Origin check is ours.
                Ok(true)
            }
            Serve::WebSocket(origin) => {
                ctx.origin = origin;
                ctx.channel = Channel::WebSocket;
                Ok(false)
            }
            Serve::Plain => {
                ctx.channel = Channel::Forward;
                Ok(false)
            }
            Serve::Forward(origin) => {
                ctx.origin = origin;
                ctx.channel = Channel::Forward;
                Ok(false)
            }
            Serve::Preflight(preflight) => {
                ctx.channel = Channel::Preflight;
                self.route_metrics(route).decision(
                    &self.metrics,
                    DecisionKind::Preflight,
                    &preflight.check,
                );
                send_preflight(session, preflight, &mut ctx.origin).await?;
                // Answered: preflights are the proxy's job and never reach the backend.
                Ok(true)
            }
            Serve::Sse { origin, heartbeat } => {
                ctx.origin = origin;
                ctx.channel = Channel::Sse;
                Box::pin(self.stream_events(session, ctx, route, heartbeat)).await?;
                // Answered: the stream was proxied here, with heartbeats.
                Ok(true)
            }
            Serve::JsonpRefused { origin, why } => {
                ctx.origin = origin;
                ctx.channel = Channel::JsonpRefused;
                // A bad callback is a bad request; an including page not on the list, a 403.
                let status = if why.kind() == RefusalKind::Callback {
                    400
                } else {
                    403
                };
                let message = format!("crossgate: JSONP refused: {why}");
                send(session, Answer::text(status, message), None).await?;
                // Answered: nothing executable for a refused JSONP request.
                Ok(true)
            }
            Serve::Jsonp { origin, callback } => {
                ctx.origin = origin;
                let j = route.jsonp.as_ref().expect("dispatched as JSONP");
                ctx.channel = Channel::Jsonp(Box::new(jsonp::JsonpState::new(callback, j)));
                // Wrapping needs the plain body, whatever the backend compresses.
                ctx.decompress = true;
                Ok(false)
            }
        }
    }

    /// Proxies an event stream itself, with heartbeats while the upstream is silent.
    async fn stream_events(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        route: &Route,
        heartbeat: Duration,
    ) -> Result<()> {
        let peer = peer_for(route, false)?;
        ctx.upstream_addr = pingora::upstreams::peer::Peer::address(&*peer)
            .as_inet()
            .copied();
        let forwarding = match &ctx.rules {
            Some(rules) => super::forwarding(session, &rules.server.trusted_proxies),
            None => Default::default(),
        };
        let silence = route.read_timeout.unwrap_or(route.upstream.timeouts.read);
        ctx.tries += 1;
        let check = ctx.origin.clone();
        let gauge = self
            .metrics
            .sse_active
            .with_label_values(&[route.name.as_str()]);
        let policy = route.cors.as_deref().expect("dispatched with a policy");
        let mut stream_gauge = None;
        let result = sse::stream(
            session,
            &self.connector,
            sse::Upstream {
                peer: &peer,
                path: ctx.forward_path.as_deref(),
                host: &route.upstream.name,
                forwarding: &forwarding,
                upstream_host: route.upstream_host.as_deref(),
                request_id: ctx.request_id(session.req_header()).value(),
            },
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
        ctx.upstream_time = Some(result?.upstream_time);
        Ok(())
    }
}
