//! Who is refused, and who would be: per route, a [`SpaceSaving`] summary of the origins that
//! crossgate refuses (`denied`) or that a `report_only` policy would refuse (`would_deny`),
//! with the reason, counts, error bounds and when each was last seen. The admin listener
//! serves it as `/refused` (JSON) and `/refused.html` ([`page`]); it is what a team needs
//! before switching a policy from `report_only` to `enforce`.
//!
//! Constant memory whatever the traffic: [`CAPACITY`] counters per route, each origin cut to
//! [`MAX_ORIGIN_BYTES`]. Origins are attacker-controlled, so they never become metric labels.
//!
//! Cheap on the hot path: [`Refused::observe`] looks only at the dispatcher's decision, so an
//! allowed request touches nothing; a refusal takes its route's lock for one scan of the
//! counters. Summaries are keyed by route name, so they survive a reload; routes a reload
//! removed are dropped when the report is next read.

mod page;
mod space_saving;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::{Mutex, RwLock};
use pingora::http::RequestHeader;

pub use page::{html, json};
pub use space_saving::{Slot, SpaceSaving};

use crate::cors::OriginCheck;
use crate::dispatch::Serve;
use crate::refusal::{Refusal, RefusalKind};
use crate::rules::Rules;

/// Counters kept per route.
pub const CAPACITY: usize = 50;
/// An origin (or including page) longer than this is cut, at a character boundary.
pub const MAX_ORIGIN_BYTES: usize = 256;
/// The example sentence kept with each counter is cut to this.
const MAX_EXAMPLE_BYTES: usize = 300;

/// Refused, or served by a report-only policy's fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    Denied,
    WouldDeny,
}

impl Decision {
    pub fn label(self) -> &'static str {
        match self {
            Decision::Denied => "denied",
            Decision::WouldDeny => "would_deny",
        }
    }
}

/// What one counter counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// The Origin (the including page's origin for JSONP), cut to [`MAX_ORIGIN_BYTES`], or a
    /// parenthesised note when the request had none.
    pub origin: String,
    pub reason: RefusalKind,
    pub decision: Decision,
}

/// The summary of one route: the last refusal's sentence is kept with each counter.
pub type Summary = SpaceSaving<Key, String>;

/// Every route's summary.
#[derive(Default)]
pub struct Refused {
    routes: RwLock<HashMap<String, Arc<Mutex<Summary>>>>,
}

impl Refused {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records what the dispatcher decided for a request on `route`, if it refused or would
    /// refuse it (an allowed request returns at once).
    pub fn observe(&self, route: &str, serve: &Serve, req: &RequestHeader) {
        for_each_refusal(serve, |decision, why| {
            self.record(route, decision, why, req, SystemTime::now())
        });
    }

    /// Counts one refusal.
    pub fn record(
        &self,
        route: &str,
        decision: Decision,
        why: &Refusal,
        req: &RequestHeader,
        now: SystemTime,
    ) {
        let reason = why.kind();
        let origin = subject(why, req);
        let summary = self.summary(route);
        let mut summary = summary.lock();
        let slot = summary.observe_with(
            |k| k.reason == reason && k.decision == decision && k.origin == origin,
            || Key {
                origin: origin.to_owned(),
                reason,
                decision,
            },
            now,
        );
        slot.extra.clear();
        let example = why.to_string();
        slot.extra.push_str(cut(&example, MAX_EXAMPLE_BYTES));
    }

    fn summary(&self, route: &str) -> Arc<Mutex<Summary>> {
        if let Some(s) = self.routes.read().get(route) {
            return s.clone();
        }
        // Route names come from the config, so the map is as bounded as the route table.
        self.routes
            .write()
            .entry(route.to_owned())
            .or_insert_with(|| Arc::new(Mutex::new(Summary::new(CAPACITY))))
            .clone()
    }

    /// A copy of each route's summary, in the order of `rules`; routes that `rules` no longer
    /// has (removed by a reload) are dropped.
    pub fn snapshot(&self, rules: &Rules) -> Vec<(String, RouteReport)> {
        self.routes
            .write()
            .retain(|name, _| rules.routes.iter().any(|r| &r.name == name));
        let routes = self.routes.read();
        rules
            .routes
            .iter()
            .filter_map(|r| {
                let s = routes.get(&r.name)?.lock();
                Some((r.name.clone(), RouteReport::of(&s)))
            })
            .collect()
    }

    /// Counters held across all routes (for tests of the bound).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.routes.read().values().map(|s| s.lock().len()).sum()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One route's summary, copied out of its lock.
#[derive(Debug, Clone)]
pub struct RouteReport {
    /// Refusals counted since the start (each counter's error is at most total / capacity).
    pub total: u64,
    pub capacity: usize,
    /// Largest count first.
    pub entries: Vec<Slot<Key, String>>,
}

impl RouteReport {
    fn of(s: &Summary) -> Self {
        RouteReport {
            total: s.total(),
            capacity: s.capacity(),
            entries: s.top().into_iter().cloned().collect(),
        }
    }
}

/// Calls `f` for each refusal in the dispatcher's decision: an origin check that refused or
/// would refuse (actual requests, preflights with their method and header reasons), a JSONP
/// request refused for its including page, and a WebSocket refused for its Origin. Bad
/// callbacks, ambiguous paths and non-WebSocket upgrades say nothing about origins.
pub fn for_each_refusal(serve: &Serve, mut f: impl FnMut(Decision, &Refusal)) {
    match serve.origin() {
        Some(OriginCheck::Denied(why)) => f(Decision::Denied, why),
        Some(OriginCheck::WouldDeny { why, .. }) => f(Decision::WouldDeny, why),
        _ => {}
    }
    match serve {
        Serve::JsonpRefused { why, .. } if why.kind() == RefusalKind::Referer => {
            f(Decision::Denied, why)
        }
        Serve::WebSocketRefused(why) if why.kind() == RefusalKind::WebSocketOrigin => {
            f(Decision::Denied, why)
        }
        _ => {}
    }
}

/// Who was refused: the origin the refusal names, else the request's Origin, cut to
/// [`MAX_ORIGIN_BYTES`].
fn subject<'a>(why: &'a Refusal, req: &'a RequestHeader) -> &'a str {
    let named = match why {
        Refusal::OriginNotListed { origin, .. } | Refusal::WebSocketOrigin { origin, .. } => {
            origin.as_str()
        }
        Refusal::Referer { page, .. } => page.as_str(),
        Refusal::CrossSiteWithoutReferer | Refusal::NoReferer => "(no Referer)",
        Refusal::SeveralOrigins | Refusal::WebSocketSeveralOrigins => "(several Origin headers)",
        Refusal::WebSocketNoOrigin => "(no Origin)",
        _ => match req.headers.get(http::header::ORIGIN).map(|o| o.to_str()) {
            Some(Ok(o)) => o,
            Some(Err(_)) => "(an Origin that is not ASCII)",
            None => "(no Origin)",
        },
    };
    cut(named, MAX_ORIGIN_BYTES)
}

/// `s` cut to at most `max` bytes, at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::{dispatch, Action};
    use crate::test_util::rules_from_yaml;

    const YAML: &str = r#"
listen: 127.0.0.1:0
upstreams:
  b: {servers: [127.0.0.1:9]}
cors_policies:
  app: {allow_origins: [https://app.example.com], allow_methods: [GET, PUT]}
  legacy: {allow_origins: any}
  strict: {allow_origins: [https://app.example.com], mode: report_only, report_only_fallback: legacy}
routes:
  - {name: ws, path: /ws/, upstream: b, cors: app, websocket: {}}
  - {name: jsonp, path: /jsonp/, upstream: b, cors: app, jsonp: {}}
  - {name: trial, path: /trial/, upstream: b, cors: strict}
  - {name: api, path: /api/, upstream: b, cors: app}
"#;

    fn req(method: &str, target: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build(method, target.as_bytes(), None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    /// Dispatches the request and records it as the proxy does.
    fn send(refused: &Refused, rules: &Rules, r: RequestHeader) {
        let Action::Route(routed) = dispatch(rules, "x", &r) else {
            panic!("not routed")
        };
        refused.observe(&rules.routes[routed.route].name, &routed.serve, &r);
    }

    fn entries(
        refused: &Refused,
        rules: &Rules,
        route: &str,
    ) -> Vec<(String, &'static str, &'static str, u64)> {
        refused
            .snapshot(rules)
            .into_iter()
            .find(|(n, _)| n == route)
            .map(|(_, r)| {
                r.entries
                    .iter()
                    .map(|s| {
                        (
                            s.key.origin.clone(),
                            s.key.reason.label(),
                            s.key.decision.label(),
                            s.count,
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn allowed_requests_leave_nothing_and_each_refusal_is_counted_with_its_reason() {
        let rules = rules_from_yaml(YAML);
        let refused = Refused::new();
        let app = ("origin", "https://app.example.com");
        let evil = ("origin", "https://evil.test");
        send(&refused, &rules, req("GET", "/api/x", &[app]));
        send(&refused, &rules, req("GET", "/trial/x", &[app]));
        assert!(refused.is_empty(), "allowed requests are not recorded");

        send(&refused, &rules, req("GET", "/api/x", &[evil]));
        send(&refused, &rules, req("GET", "/api/y", &[evil]));
        let pre = [app, ("access-control-request-method", "DELETE")];
        send(&refused, &rules, req("OPTIONS", "/api/x", &pre));
        send(&refused, &rules, req("GET", "/trial/x", &[evil]));
        let page = ("referer", "https://evil.test/page.html");
        send(
            &refused,
            &rules,
            req("GET", "/jsonp/x?callback=cb", &[page]),
        );
        let ws = [("upgrade", "websocket"), ("connection", "upgrade")];
        send(&refused, &rules, req("GET", "/ws/x", &[ws[0], ws[1], evil]));
        // A bad callback says nothing about who calls.
        send(
            &refused,
            &rules,
            req("GET", "/jsonp/x?callback=alert(1)", &[]),
        );

        let evil = "https://evil.test".to_owned();
        let app = "https://app.example.com".to_owned();
        assert_eq!(
            entries(&refused, &rules, "api"),
            [
                (evil.clone(), "origin_not_listed", "denied", 2),
                (app, "method", "denied", 1)
            ]
        );
        assert_eq!(
            entries(&refused, &rules, "trial"),
            [(evil.clone(), "origin_not_listed", "would_deny", 1)]
        );
        assert_eq!(
            entries(&refused, &rules, "jsonp"),
            [(evil.clone(), "referer", "denied", 1)]
        );
        assert_eq!(
            entries(&refused, &rules, "ws"),
            [(evil, "websocket_origin", "denied", 1)]
        );
    }

    #[test]
    fn long_origins_are_cut_and_routes_a_reload_removed_are_dropped() {
        let rules = rules_from_yaml(YAML);
        let refused = Refused::new();
        let long = format!("https://{}.test", "é".repeat(300));
        let r = req("GET", "/api/x", &[]);
        let why = Refusal::OriginNotListed {
            origin: long,
            policy: "app".into(),
        };
        refused.record("api", Decision::Denied, &why, &r, SystemTime::now());
        refused.record("gone", Decision::Denied, &why, &r, SystemTime::now());
        let got = entries(&refused, &rules, "api");
        assert!(got[0].0.len() <= MAX_ORIGIN_BYTES && got[0].0.len() > 250);
        assert_eq!(refused.snapshot(&rules).len(), 1, "route gone is dropped");
        assert_eq!(refused.len(), 1);
    }
}
