//! origin-response: time the origin, turn a failover status into a retryable error while
//! the secondary can still be tried, run the behavior's origin-response function, then turn a
//! status with a custom error response into a retry that fetches its page
//! ([`crate::stage::custom_error`]).

use pingora::Error;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use verge_functions::Hook;

use crate::ctx::RequestCtx;
use crate::stage::origin_function;
use crate::stage::origin_select::{CUSTOM_ERROR_PAGE, FAILOVER_STATUS, can_fail_over};
use crate::state::ProxyState;

/// `upstream_response_filter`.
pub async fn on_header(
    state: &ProxyState,
    session: &Session,
    response: &mut ResponseHeader,
    ctx: &mut RequestCtx,
) -> pingora::Result<()> {
    // Before anything edits the response's headers: room for verge's two and a function's.
    crate::header_case::normalize(response, ctx.snapshot.config.server.preserve_header_case, 4);
    let status = response.status.as_u16();
    ctx.origin_status = Some(status);
    if let Some(sent) = ctx.origin_sent {
        let elapsed = sent.elapsed();
        ctx.origin_duration = Some(elapsed);
        if let Some(origin) = &ctx.origin {
            origin.duration.observe(elapsed.as_secs_f64());
        }
    }
    let triggers_failover = can_fail_over(session, ctx)
        && ctx
            .route()
            .and_then(|r| r.group())
            .is_some_and(|g| g.failover_status.contains(&status));
    if triggers_failover {
        return Err(Error::explain(
            FAILOVER_STATUS,
            format!("origin {} answered {status}", ctx.origin_name()),
        )
        .into_up());
    }
    if ctx.error_page.is_some() {
        // The custom error page's own answer: no function, no second page.
        return Ok(());
    }
    let function = ctx
        .behavior()
        .and_then(|b| b.behavior.function(Hook::OriginResponse).cloned());
    if let Some(f) = function {
        Box::pin(origin_function::origin_response(
            state, session, response, ctx, f,
        ))
        .await?;
    }
    // After the function: one that turns an error into a success (or another error) decides.
    let status = response.status.as_u16();
    if crate::stage::custom_error::begin(state, session, status, ctx) {
        return Err(Error::explain(
            CUSTOM_ERROR_PAGE,
            format!(
                "origin {} answered {status}: fetching the custom error page",
                ctx.origin_name()
            ),
        )
        .into_up());
    }
    Ok(())
}
