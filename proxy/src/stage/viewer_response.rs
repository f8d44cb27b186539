//! viewer-response: mark the proxied response with its result type and request id.

use pingora::http::ResponseHeader;

use crate::ctx::RequestCtx;
use crate::headers;

/// `response_filter`.
pub fn on_header(response: &mut ResponseHeader, ctx: &mut RequestCtx) -> pingora::Result<()> {
    ctx.response_started = true;
    headers::stamp_response(response, ctx.result, &ctx.request_id)
}
