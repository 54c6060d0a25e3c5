//! JSONP's part of each phase of a request, called through [`crate::channels::Channel`]: who
//! may include the script, what goes upstream, and how the answer is wrapped.

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::HeaderValue;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::{Error, ErrorType, Result};

use super::JsonpRoute;
use super::{referer_origin, strip_query, Callback, Wrap, Wrapper, ZstdStream};
use crate::cors::{self, CorsPolicy};
use crate::refusal::Refusal;

static VARY_REFERER: HeaderValue = HeaderValue::from_static("Referer, Sec-Fetch-Site");
pub static JAVASCRIPT: HeaderValue =
    HeaderValue::from_static("application/javascript; charset=utf-8");
static NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");

/// A JSONP request's own state.
pub struct JsonpState {
    pub callback: Callback,
    envelope: bool,
    /// Set once the response is known to be wrapped.
    wrapper: Option<Wrapper>,
    /// A zstd body that pingora does not decompress.
    zstd: Option<ZstdStream>,
    /// What happened, for metrics (None until the response head is known).
    pub result: Option<JsonpResult>,
}

/// What became of a JSONP request (the metric's label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonpResult {
    Wrapped,
    Rejected,
    Passthrough,
}

impl JsonpState {
    pub fn new(callback: Callback, route: &JsonpRoute) -> JsonpState {
        JsonpState {
            callback,
            envelope: route.envelope,
            wrapper: None,
            zstd: None,
            result: None,
        }
    }

    /// The callback for the proxy's own errors, when the route wraps them (`envelope`).
    pub fn envelope_callback(&self) -> Option<&Callback> {
        self.envelope.then_some(&self.callback)
    }
}

/// JSONP is readable by whichever page includes the script, so the including page must be on
/// the route's allowlist: a same-origin request, or a `Referer` whose origin is allowed.
pub fn caller_allowed(
    req: &RequestHeader,
    policy: &CorsPolicy,
    without_referer: bool,
) -> std::result::Result<(), Refusal> {
    let fetch_site = req.headers.get("sec-fetch-site").map(|v| v.as_bytes());
    if fetch_site == Some(b"same-origin") {
        return Ok(());
    }
    match req.headers.get(http::header::REFERER) {
        Some(referer) => {
            let text = referer.to_str().unwrap_or("");
            match referer_origin(text) {
                Some(origin) if policy.allows(origin) => Ok(()),
                _ => Err(Refusal::Referer {
                    page: referer_origin(text).unwrap_or(text).to_owned(),
                    policy: policy.name.clone(),
                }),
            }
        }
        // A browser that says the request is cross-site but hides the page (referrerpolicy
        // no-referrer) is not let through by `without_referer: allow`: that is meant for
        // clients that are not browsers.
        None if fetch_site.is_some_and(|s| s != b"none") => Err(Refusal::CrossSiteWithoutReferer),
        None if without_referer => Ok(()),
        None => Err(Refusal::NoReferer),
    }
}

/// The request as the backend must see it: without the callback parameter (and jQuery's
/// `_`), without credentials the policy does not allow, asking for the whole plain body.
pub fn upstream_request(
    upstream: &mut RequestHeader,
    param: &str,
    credentials: bool,
) -> Result<()> {
    if let Some(query) = upstream.uri.query() {
        let query = strip_query(query, param);
        let uri = crate::path::origin_form(upstream.uri.path(), query.as_deref())?;
        upstream.set_uri(uri);
    }
    // A <script> carries the user's cookies whatever the CORS policy says, and the answer is
    // readable by the including page: unless the policy allows credentials, the backend must
    // not see them (it would answer as the user).
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
    Ok(())
}

/// Decides from the response head whether the body is wrapped, and sets the headers of a
/// wrapped answer.
pub fn response_header(j: &mut JsonpState, resp: &mut ResponseHeader, h2: bool) -> Result<()> {
    let status = resp.status.as_u16();
    let content_type = resp.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let mut wrap = super::decide(status, content_type, j.envelope);
    // pingora has decoded gzip and br already; zstd is ours; anything else stays as is.
    match resp
        .headers
        .get(http::header::CONTENT_ENCODING)
        .map(|v| v.as_bytes())
    {
        None => {}
        Some(e) if e.eq_ignore_ascii_case(b"identity") => {}
        Some(e) if e.eq_ignore_ascii_case(b"zstd") && wrap != Wrap::Passthrough => {
            j.zstd = Some(
                ZstdStream::new()
                    .map_err(|e| Error::because(ErrorType::InternalError, "zstd decoder", e))?,
            );
        }
        Some(_) => wrap = Wrap::Passthrough,
    }
    if wrap == Wrap::Passthrough {
        j.result = Some(JsonpResult::Passthrough);
        return Ok(());
    }
    j.result = Some(JsonpResult::Wrapped);
    j.wrapper = Some(Wrapper::new(&j.callback, wrap, status));
    wrapped_headers(resp, wrap, h2)
}

/// The headers of a wrapped response: a script, never sniffed, of a length only known at the
/// end (U+2028 escapes grow it), with no strong validator of the unwrapped body.
fn wrapped_headers(resp: &mut ResponseHeader, wrap: Wrap, h2: bool) -> Result<()> {
    if matches!(wrap, Wrap::Envelope | Wrap::EnvelopeNoData) {
        // The script must run for the client to see meta.status.
        resp.set_status(200)?;
    }
    resp.insert_header(CONTENT_TYPE, JAVASCRIPT.clone())?;
    resp.insert_header("x-content-type-options", NOSNIFF.clone())?;
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

/// Decodes (zstd) and wraps one piece of the body.
pub fn response_body(
    j: &mut JsonpState,
    body: &mut Option<Bytes>,
    end_of_stream: bool,
) -> Result<()> {
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
    Ok(())
}

/// The proxy's own error as a JSONP envelope: a script that runs and hands
/// `{"meta":{"status":502},"data":null}` to the callback.
pub fn error_body(callback: &Callback, status: u16) -> Bytes {
    let mut w = Wrapper::new(callback, Wrap::EnvelopeNoData, status);
    w.feed(None, true).unwrap_or_default()
}
