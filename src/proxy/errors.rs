//! What the client gets when the upstream fails: the status, and the proxy's own answer
//! with CORS headers (a JSONP envelope where the route wraps errors).

use pingora::prelude::*;
use pingora::protocols::http::ServerSession as Session;
use pingora::{ErrorSource, ErrorType};

use super::answer::{send, Answer};
use super::ctx::Ctx;
use crate::channels::Channel;

/// The status the proxy answers with when it cannot get a response from upstream.
pub(super) fn error_status(e: &Error) -> u16 {
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

/// A failure of the proxy or of the upstream (a 5xx), not the client's: its access-log line is
/// at ERROR.
pub(super) fn is_fault(e: &Error) -> bool {
    error_status(e) >= 500
}

/// Answers a request whose exchange with the upstream failed, if nothing was sent yet: the
/// JSONP envelope when the route wraps errors, else a line of text; with the CORS headers of
/// an allowed origin. Returns the status (0: the client is gone).
pub(super) async fn answer_failure(session: &mut Session, e: &Error, ctx: &Ctx) -> u16 {
    // A request body the guard refused (a chunked body that broke its grammar) is the
    // client's fault, though pingora saw only a failed read.
    let code = crate::guard::refused(session.stream()).unwrap_or_else(|| error_status(e));
    if code == 0 || session.response_written().is_some() {
        return code;
    }
    let envelope = match &ctx.channel {
        Channel::Jsonp(j) => j.envelope_callback(),
        _ => None,
    };
    let answer = match (envelope, ctx.route()) {
        (Some(callback), _) => Answer::script(crate::jsonp::error_body(callback, code)),
        (None, Some(r)) if code == 504 => Answer::text(
            code,
            format!("crossgate: upstream {} timed out", r.upstream.name),
        ),
        (None, Some(r)) if code == 502 => Answer::text(
            code,
            format!(
                "crossgate: upstream {} failed: {}",
                r.upstream.name,
                e.etype().as_str()
            ),
        ),
        (None, _) if code == 413 => Answer::text(
            code,
            format!(
                "crossgate: {}",
                e.context
                    .as_ref()
                    .map_or("request body too large", |c| c.as_str())
            ),
        ),
        (None, _) => Answer::text(code, format!("crossgate: {}", e.etype().as_str())),
    };
    let cors = ctx.policy().map(|p| (p, &ctx.origin));
    if let Err(write_err) = send(session, answer, cors).await {
        tracing::debug!(error = %write_err, "could not send the error response");
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

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
