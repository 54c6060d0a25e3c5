//! What a backend learns of the client through the proxy: `X-Forwarded-For`,
//! `X-Forwarded-Proto`, `X-Forwarded-Host`, `X-Real-IP` and RFC 7239's `Forwarded`.
//!
//! A client can send any of these itself, so whether its values are believed depends on who
//! connected: a peer in `server.trusted_proxies` (a load balancer in front of crossgate) has
//! its values kept, and crossgate appends itself as the next hop (`X-Forwarded-For: client,
//! lb` then `, peer`); any other peer's values are dropped and replaced by what crossgate saw
//! (the secure default: with no list, nothing a client says about itself reaches a backend).
//! `X-Real-IP` is the client as far as trusted hops tell: the right-most address of
//! `X-Forwarded-For` that is not a trusted proxy (nginx's `real_ip_recursive`), else the peer.

use std::net::IpAddr;

use http::header::HeaderName;
use http::HeaderValue;
use ipnet::IpNet;
use pingora::http::RequestHeader;

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
pub const FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// The proxies whose forwarding fields are believed (`server.trusted_proxies`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> TrustedProxies {
        TrustedProxies(nets)
    }

    /// Parses one `trusted_proxies` entry: a CIDR (`10.0.0.0/8`, `fd00::/8`) or one address.
    pub fn parse_entry(entry: &str) -> Option<IpNet> {
        entry
            .parse::<IpNet>()
            .ok()
            .or_else(|| entry.parse::<IpAddr>().ok().map(IpNet::from))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The hop crossgate is: who connected to it, over what, for which host.
#[derive(Debug, Clone, Copy)]
pub struct Hop<'a> {
    /// The peer's address (none on a Unix socket).
    pub peer: Option<IpAddr>,
    pub tls: bool,
    /// The `Host` the request was routed on, as sent (with its port).
    pub host: &'a str,
}

impl Hop<'_> {
    fn proto(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }
}

/// The forwarding fields a request goes upstream with (see the module), worked out once per
/// request from the client's head, and set on each upstream head made for it ([`Self::apply`]).
#[derive(Debug, Clone, Default)]
pub struct Forwarding {
    fields: Vec<(HeaderName, HeaderValue)>,
}

impl Forwarding {
    /// The fields for `req` (the client's head) arriving through `hop`.
    pub fn new(req: &RequestHeader, hop: &Hop<'_>, trusted: &TrustedProxies) -> Forwarding {
        let believed = hop.peer.is_some_and(|p| trusted.contains(p));
        let peer = hop.peer.map(|p| p.to_canonical().to_string());
        let mut xff = Vec::new();
        let mut forwarded = Vec::new();
        let (mut proto, mut host) = (None, None);
        if believed {
            join(req, &X_FORWARDED_FOR, &mut xff);
            join(req, &FORWARDED, &mut forwarded);
            proto = req.headers.get(&X_FORWARDED_PROTO).cloned();
            host = req.headers.get(&X_FORWARDED_HOST).cloned();
        }
        let real = believed
            .then(|| client_from(&xff, trusted))
            .flatten()
            .or(peer.clone());
        if let Some(peer) = &peer {
            append(&mut xff, peer.as_bytes());
        }
        let mut element = match hop.peer.map(|p| p.to_canonical()) {
            Some(IpAddr::V6(ip)) => format!("for=\"[{ip}]\""),
            Some(ip) => format!("for={ip}"),
            None => "for=unknown".to_owned(),
        };
        element.push_str(";proto=");
        element.push_str(hop.proto());
        if !hop.host.is_empty()
            && hop
                .host
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        {
            element.push_str(";host=\"");
            element.push_str(hop.host);
            element.push('"');
        }
        append(&mut forwarded, element.as_bytes());
        let host = host.or_else(|| {
            HeaderValue::from_str(hop.host)
                .ok()
                .filter(|h| !h.is_empty())
        });
        let fields = [
            (
                X_FORWARDED_FOR,
                HeaderValue::from_bytes(&xff).ok().filter(|v| !v.is_empty()),
            ),
            (FORWARDED, HeaderValue::from_bytes(&forwarded).ok()),
            (
                X_FORWARDED_PROTO,
                Some(proto.unwrap_or(HeaderValue::from_static(hop.proto()))),
            ),
            (X_FORWARDED_HOST, host),
            (X_REAL_IP, real.and_then(|r| HeaderValue::from_str(&r).ok())),
        ];
        Forwarding {
            fields: fields
                .into_iter()
                .filter_map(|(n, v)| Some((n, v?)))
                .collect(),
        }
    }

    /// Sets them on a head that goes upstream: the client's own are dropped first.
    pub fn apply(&self, head: &mut RequestHeader) {
        for name in [
            &X_FORWARDED_FOR,
            &X_FORWARDED_PROTO,
            &X_FORWARDED_HOST,
            &X_REAL_IP,
            &FORWARDED,
        ] {
            head.remove_header(name);
        }
        for (name, value) in &self.fields {
            let _ = head.append_header(name.clone(), value.clone());
        }
    }
}

/// The values of every `name` field, joined with `", "` into `out`.
fn join(head: &RequestHeader, name: &HeaderName, out: &mut Vec<u8>) {
    for v in head.headers.get_all(name) {
        let v = v.as_bytes().trim_ascii();
        if !v.is_empty() {
            append(out, v);
        }
    }
}

fn append(list: &mut Vec<u8>, item: &[u8]) {
    if !list.is_empty() {
        list.extend_from_slice(b", ");
    }
    list.extend_from_slice(item);
}

/// The right-most address of an `X-Forwarded-For` list that is not a trusted proxy; the
/// left-most when all are; none when an entry on the way is not an address.
fn client_from(xff: &[u8], trusted: &TrustedProxies) -> Option<String> {
    let text = std::str::from_utf8(xff).ok()?;
    let mut last = None;
    for entry in text.rsplit(',').map(str::trim).filter(|e| !e.is_empty()) {
        let ip: IpAddr = entry.parse().ok()?;
        last = Some(ip);
        if !trusted.contains(ip) {
            break;
        }
    }
    last.map(|ip| ip.to_canonical().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(entries: &[&str]) -> TrustedProxies {
        TrustedProxies::new(
            entries
                .iter()
                .map(|e| TrustedProxies::parse_entry(e).unwrap())
                .collect(),
        )
    }

    fn head(fields: &[(&str, &str)]) -> RequestHeader {
        let mut h = RequestHeader::build("GET", b"/", None).unwrap();
        for (n, v) in fields {
            h.append_header(n.to_string(), *v).unwrap();
        }
        h
    }

    fn field(h: &RequestHeader, name: &HeaderName) -> Option<String> {
        let mut all = h.headers.get_all(name).iter();
        let first = all.next().map(|v| v.to_str().unwrap().to_owned());
        assert!(all.next().is_none(), "{name} twice");
        first
    }

    const SPOOF: &[(&str, &str)] = &[
        ("X-Forwarded-For", "1.2.3.4"),
        ("x-forwarded-for", "5.6.7.8"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "admin.internal"),
        ("X-Real-IP", "1.2.3.4"),
        ("Forwarded", "for=1.2.3.4;proto=https"),
    ];

    #[test]
    fn an_untrusted_clients_own_values_are_replaced() {
        let mut h = head(SPOOF);
        let hop = Hop {
            peer: Some("203.0.113.7".parse().unwrap()),
            tls: false,
            host: "api.example:8080",
        };
        Forwarding::new(&h, &hop, &TrustedProxies::default()).apply(&mut h);
        assert_eq!(field(&h, &X_FORWARDED_FOR).as_deref(), Some("203.0.113.7"));
        assert_eq!(field(&h, &X_FORWARDED_PROTO).as_deref(), Some("http"));
        assert_eq!(
            field(&h, &X_FORWARDED_HOST).as_deref(),
            Some("api.example:8080")
        );
        assert_eq!(field(&h, &X_REAL_IP).as_deref(), Some("203.0.113.7"));
        assert_eq!(
            field(&h, &FORWARDED).as_deref(),
            Some("for=203.0.113.7;proto=http;host=\"api.example:8080\"")
        );
        // A peer outside the list is not believed either.
        let mut h = head(SPOOF);
        Forwarding::new(&h, &hop, &trusted(&["10.0.0.0/8"])).apply(&mut h);
        assert_eq!(field(&h, &X_FORWARDED_FOR).as_deref(), Some("203.0.113.7"));
    }

    #[test]
    fn a_trusted_proxys_values_are_kept_and_crossgate_appended() {
        let mut h = head(&[
            ("X-Forwarded-For", "198.51.100.1, 10.0.0.9"),
            ("X-Forwarded-For", "10.0.0.8"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "shop.example"),
            ("Forwarded", "for=198.51.100.1;proto=https"),
        ]);
        let hop = Hop {
            peer: Some("10.1.2.3".parse().unwrap()),
            tls: false,
            host: "api.internal",
        };
        Forwarding::new(&h, &hop, &trusted(&["10.0.0.0/8"])).apply(&mut h);
        assert_eq!(
            field(&h, &X_FORWARDED_FOR).as_deref(),
            Some("198.51.100.1, 10.0.0.9, 10.0.0.8, 10.1.2.3")
        );
        assert_eq!(field(&h, &X_FORWARDED_PROTO).as_deref(), Some("https"));
        assert_eq!(
            field(&h, &X_FORWARDED_HOST).as_deref(),
            Some("shop.example")
        );
        // The client: the right-most address that is not a trusted proxy.
        assert_eq!(field(&h, &X_REAL_IP).as_deref(), Some("198.51.100.1"));
        assert_eq!(
            field(&h, &FORWARDED).as_deref(),
            Some("for=198.51.100.1;proto=https, for=10.1.2.3;proto=http;host=\"api.internal\"")
        );
    }

    #[test]
    fn a_trusted_proxy_that_sends_nothing_gets_the_peer_and_v6_is_bracketed() {
        let mut h = head(&[]);
        let hop = Hop {
            peer: Some("2001:db8::1".parse().unwrap()),
            tls: true,
            host: "api.example",
        };
        Forwarding::new(&h, &hop, &trusted(&["2001:db8::/32"])).apply(&mut h);
        assert_eq!(field(&h, &X_FORWARDED_FOR).as_deref(), Some("2001:db8::1"));
        assert_eq!(field(&h, &X_REAL_IP).as_deref(), Some("2001:db8::1"));
        assert_eq!(field(&h, &X_FORWARDED_PROTO).as_deref(), Some("https"));
        assert_eq!(
            field(&h, &FORWARDED).as_deref(),
            Some("for=\"[2001:db8::1]\";proto=https;host=\"api.example\"")
        );
        // An IPv4 client over a dual-stack socket is written as IPv4, and matches v4 entries.
        let mut h = head(&[]);
        let hop = Hop {
            peer: Some("::ffff:10.0.0.1".parse().unwrap()),
            tls: false,
            host: "",
        };
        Forwarding::new(&h, &hop, &trusted(&["10.0.0.1"])).apply(&mut h);
        assert_eq!(field(&h, &X_FORWARDED_FOR).as_deref(), Some("10.0.0.1"));
        assert_eq!(
            field(&h, &FORWARDED).as_deref(),
            Some("for=10.0.0.1;proto=http")
        );
        assert_eq!(field(&h, &X_FORWARDED_HOST), None);
    }

    #[test]
    fn a_forged_entry_on_the_way_stops_the_walk() {
        let t = trusted(&["10.0.0.0/8"]);
        assert_eq!(
            client_from(b"1.1.1.1, 10.0.0.2", &t).as_deref(),
            Some("1.1.1.1")
        );
        assert_eq!(
            client_from(b"1.1.1.1, 2.2.2.2, 10.0.0.2", &t).as_deref(),
            Some("2.2.2.2")
        );
        assert_eq!(
            client_from(b"10.0.0.3, 10.0.0.2", &t).as_deref(),
            Some("10.0.0.3")
        );
        assert_eq!(client_from(b"1.1.1.1, evil, 10.0.0.2", &t), None);
        assert_eq!(TrustedProxies::parse_entry("10.0.0.0/33"), None);
        assert_eq!(TrustedProxies::parse_entry("localhost"), None);
        assert!(trusted(&["127.0.0.1", "::1"]).contains("::1".parse().unwrap()));
    }
}
