//! The report as JSON (`/refused`) and as a page that refreshes itself (`/refused.html`).
//!
//! Every origin in them was sent by a client, so the page escapes it twice over: controls and
//! non-ASCII as `\u{..}` and the length bounded ([`crate::cors::sanitize`]), then HTML
//! metacharacters. The admin listener serves the page with a CSP that allows nothing but the
//! page itself (no script, no style, no image), so even a mistake here could not run code.

use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::{RouteReport, CAPACITY, MAX_ORIGIN_BYTES};

/// Seconds between two loads of the page.
pub const REFRESH_SECONDS: u32 = 5;

/// The whole report: `{capacity, max_origin_bytes, routes: [{route, refusals, entries}]}`.
pub fn json(routes: &[(String, RouteReport)], now: SystemTime) -> Value {
    let routes: Vec<Value> = routes
        .iter()
        .map(|(name, r)| {
            let entries: Vec<Value> = r
                .entries
                .iter()
                .map(|s| {
                    json!({
                        "origin": s.key.origin,
                        "reason": s.key.reason.label(),
                        "decision": s.key.decision.label(),
                        "count": s.count,
                        "error": s.error,
                        "first_seen": rfc3339(s.first_seen),
                        "last_seen": rfc3339(s.last_seen),
                        "last_seen_unix_ms": unix_ms(s.last_seen),
                        "example": s.extra,
                    })
                })
                .collect();
            json!({
                "route": name,
                "refusals": r.total,
                // Any count is at most this much above the truth.
                "max_error": r.total / r.capacity as u64,
                "entries": entries,
            })
        })
        .collect();
    json!({
        "generated": rfc3339(now),
        "capacity": CAPACITY,
        "max_origin_bytes": MAX_ORIGIN_BYTES,
        "routes": routes,
    })
}

/// The page: one table per route, largest counts first.
pub fn html(routes: &[(String, RouteReport)], now: SystemTime) -> String {
    let mut out = String::with_capacity(4096);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
         <title>crossgate: refused origins</title></head><body>\n\
         <h1>Refused origins</h1>\n<p id=\"generated\">{} (refreshes every {REFRESH_SECONDS} s; \
         the {CAPACITY} most frequent per route; JSON at <a href=\"/refused\">/refused</a>)</p>\n",
        rfc3339(now)
    );
    if routes.is_empty() {
        out.push_str(
            "<p id=\"none\">Nothing refused, and nothing a report-only policy would refuse.</p>\n",
        );
    }
    for (name, r) in routes {
        let _ = write!(
            out,
            "<h2>Route {}</h2>\n<p>{} refusals; counts are at most {} above the truth \
             (the error column says by how much for each).</p>\n\
             <table border=\"1\" cellpadding=\"4\" class=\"route\">\n\
             <tr><th>origin</th><th>decision</th><th>reason</th><th>count</th><th>error</th>\
             <th>last seen</th><th>example</th></tr>\n",
            escape(name),
            r.total,
            r.total / r.capacity as u64,
        );
        for s in &r.entries {
            let _ = writeln!(
                out,
                "<tr class=\"entry\"><td class=\"origin\">{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&s.key.origin),
                s.key.decision.label(),
                s.key.reason.label(),
                s.count,
                s.error,
                rfc3339(s.last_seen),
                escape(&s.extra),
            );
        }
        out.push_str("</table>\n");
    }
    out.push_str("</body></html>\n");
    out
}

/// A client's string made safe as HTML text or attribute value.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in crate::cors::sanitize(s).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `t` as RFC 3339 in UTC, to the second (days to dates: Howard Hinnant's `civil_from_days`).
fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::refusal::RefusalKind;
    use crate::refused::{Decision, Key, Summary};
    use std::time::Duration;

    #[test]
    fn dates_are_rfc3339_in_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400 + 3_661);
        assert_eq!(rfc3339(t), "2000-02-29T01:01:01Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_798_761_599);
        assert_eq!(rfc3339(t), "2026-12-31T23:59:59Z");
    }

    #[test]
    fn a_hostile_origin_is_text_on_the_page_and_verbatim_in_the_json() {
        let mut s = Summary::new(CAPACITY);
        let hostile = "https://x<script>alert(1)</script>\"'&\n";
        let key = Key {
            origin: hostile.into(),
            reason: RefusalKind::Origin,
            decision: Decision::WouldDeny,
        };
        s.observe(&key, UNIX_EPOCH);
        let routes = vec![("api<b>".to_owned(), RouteReport::of(&s))];
        let page = html(&routes, UNIX_EPOCH);
        assert!(!page.contains("<script"), "{page}");
        assert!(!page.contains("api<b>"), "{page}");
        assert!(page.contains("https://x&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;\\n"));
        let v = json(&routes, UNIX_EPOCH);
        assert_eq!(v["routes"][0]["entries"][0]["origin"], hostile);
        assert_eq!(v["routes"][0]["entries"][0]["decision"], "would_deny");
    }
}
