//! viewer-response: run the behavior's viewer-response function (CloudFront skips it when the
//! origin answered ≥ 400 unless `viewer_response_on_error` is set), then mark the response with
//! its result type and request id.

use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use verge_functions::Hook;

use crate::ctx::RequestCtx;
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
    let function = ctx.behavior().and_then(|b| {
        let runs = response.status.as_u16() < 400 || b.behavior.viewer_response_on_error;
        b.behavior
            .function(Hook::ViewerResponse)
            .filter(|_| runs)
            .cloned()
    });
    if let Some(f) = function {
        Box::pin(function::viewer_response(state, session, response, ctx, f)).await?;
    }
    ctx.response_started = true;
    headers::stamp_response(response, ctx.result, &ctx.request_id)
}
