//! viewer-response: run the behavior's viewer-response function (CloudFront skips it when the
//! origin answered ≥ 400 unless `viewer_response_on_error` is set), frame the body so an
//! HTTP/1.0 viewer can read it, then mark the response with its result type and request id.
//! A response an origin-request function generated, or whose body origin-response replaced,
//! reaches the viewer through `fail_to_proxy` instead, and the function runs on it there
//! ([`on_replacement`]).

use std::sync::Arc;

use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use verge_functions::{FunctionDef, Hook};

use crate::ctx::{Replacement, RequestCtx};
use crate::headers;
use crate::stage::function;
use crate::state::ProxyState;

/// `response_filter`.
pub async fn on_header(
    state: &ProxyState,
    session: &mut Session,
    response: &mut ResponseHeader,
    ctx: &mut RequestCtx,
) -> pingora::Result<()> {
    // A custom error response's page: no function runs on it.
    let custom_error_page = crate::stage::custom_error::finish(response, ctx)?;
    if let Some(f) = function_for(ctx, response).filter(|_| !custom_error_page) {
        Box::pin(function::viewer_response(state, session, response, ctx, f)).await?;
    }
    ctx.response_started = true;
    frame_for_http10(session, response);
    headers::stamp_response(response, ctx.result, &ctx.request_id)
}

/// The response verge writes in place of the origin's, after the viewer-response function ran
/// on it if it awaits one: with that function's edits, or the response it made instead (a
/// replaced body, or its failure page). Called from `fail_to_proxy`, where pingora sends such
/// responses, since `response_filter` never sees them.
pub async fn on_replacement(
    state: &ProxyState,
    session: &mut Session,
    mut replacement: Box<Replacement>,
    ctx: &mut RequestCtx,
) -> Box<Replacement> {
    if !replacement.awaits_viewer_response {
        return replacement;
    }
    replacement.awaits_viewer_response = false;
    let Some(f) = function_for(ctx, &replacement.header) else {
        return replacement;
    };
    let ran = Box::pin(function::viewer_response(
        state,
        session,
        &mut replacement.header,
        ctx,
        f,
    ))
    .await;
    match ran {
        Ok(()) => replacement,
        // The function replaced the body or failed: what it made is in `ctx.replacement`.
        Err(e) => ctx.replacement.take().unwrap_or_else(|| {
            // Only when verge could not build that answer (its page or the new header): the
            // response stands as the function's edits left it, and the log says why.
            tracing::warn!(request_id = %ctx.request_id, error = %e, "viewer-response outcome not built; sending the response it ran on");
            replacement
        }),
    }
}

/// The behavior's viewer-response function, if it runs on `response`: CloudFront skips it
/// when the answer is ≥ 400, unless the behavior sets `viewer_response_on_error`.
fn function_for(ctx: &RequestCtx, response: &ResponseHeader) -> Option<Arc<FunctionDef>> {
    let b = ctx.behavior()?;
    let runs = response.status.as_u16() < 400 || b.behavior.viewer_response_on_error;
    b.behavior
        .function(Hook::ViewerResponse)
        .filter(|_| runs)
        .cloned()
}

/// An HTTP/1.0 viewer cannot read chunked framing (RFC 9112 §6.1: a server must not send it to
/// one), and pingora passes an origin's `transfer-encoding: chunked` through to every viewer.
/// So the framing goes, with any length sent beside it (which chunked framing overrides, RFC
/// 9112 §6.3), and pingora ends the body by closing the connection. A body without a length,
/// chunked or close-delimited at the origin, has no other end, so the connection is not kept
/// even when the viewer asked for keep-alive (it is when the length is known; an answer with
/// no body and no length, a 204 say, closes it too, which costs that viewer a reconnect).
fn frame_for_http10(session: &mut Session, response: &mut ResponseHeader) {
    use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
    if session.req_header().version != http::Version::HTTP_10 {
        return;
    }
    if response.headers.contains_key(TRANSFER_ENCODING) {
        response.remove_header(&TRANSFER_ENCODING);
        response.remove_header(&CONTENT_LENGTH);
    }
    if !response.headers.contains_key(CONTENT_LENGTH) {
        session.set_keepalive(None);
    }
}
