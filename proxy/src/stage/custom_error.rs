//! Custom error responses (`[[custom_error_responses]]`), as CloudFront's: when an origin
//! answers a configured error code, or cannot be reached and verge would answer 502 or 504
//! itself, the request is sent again, as a further attempt, for the configured page, through
//! the behavior that page's path matches; the viewer gets that page with the configured status.
//!
//! [`begin`] decides and records it (`RequestCtx::error_page`, which `RequestCtx::route` then
//! follows); `upstream_peer` runs no function for the page, `upstream_request_filter` sends its
//! path, `upstream_response_filter` runs no function on its answer, and [`finish`] gives it its
//! status in `response_filter`, where the viewer-response function does not run on it either.

use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use verge_functions::ResultType;

use crate::ctx::{ErrorPage, RequestCtx};
use crate::state::ProxyState;

/// If a custom error response covers `status` for this request, make the next attempt fetch
/// its page (`true`). Only once per request, and only for a GET or HEAD without a body: the page
/// is fetched with the same method, and a body already read may not be there to send again
/// (such a request keeps the answer it got).
pub fn begin(state: &ProxyState, session: &Session, status: u16, ctx: &mut RequestCtx) -> bool {
    // Every code CloudFront customizes is an error: a success costs one comparison.
    if status < 400 || ctx.error_page.is_some() || ctx.response_started {
        return false;
    }
    let Some(response) = ctx.snapshot.config.custom_error_response(status).cloned() else {
        return false;
    };
    let method = &session.req_header().method;
    if !matches!(*method, http::Method::GET | http::Method::HEAD)
        || !crate::request_body::has_no_body(session)
    {
        return false;
    }
    let Some((behavior, _)) = ctx.snapshot.behavior_for(&response.response_page_path) else {
        return false;
    };
    state
        .metrics
        .custom_error_responses
        .with_label_values(&[status.to_string().as_str()])
        .inc();
    tracing::debug!(
        request_id = %ctx.request_id,
        status,
        page = %response.response_page_path,
        "answering with the custom error response"
    );
    ctx.error_page = Some(Box::new(ErrorPage { behavior, response }));
    // The page's route starts at its primary (and may fail over to its secondary).
    ctx.attempt = 0;
    true
}

/// [`begin`] for a failed origin attempt that will not be retried, with the status verge would
/// answer it with (502 or 504, [`crate::error_page::status_for`]).
pub fn begin_for_error(
    state: &ProxyState,
    session: &Session,
    e: &pingora::Error,
    ctx: &mut RequestCtx,
) -> bool {
    crate::error_page::status_for(e).is_some_and(|status| begin(state, session, status, ctx))
}

/// In `response_filter`: whether this is a custom error page's answer (then no
/// viewer-response function runs); it gets the configured status if the page was fetched
/// (a page that could not be fetched goes to the viewer as fetching it went), and the `Error`
/// result type, as CloudFront marks its custom error responses.
pub fn finish(response: &mut ResponseHeader, ctx: &mut RequestCtx) -> pingora::Result<bool> {
    let Some(page) = &ctx.error_page else {
        return Ok(false);
    };
    if response.status.is_success() {
        response.set_status(page.response.response_code)?;
    }
    ctx.result = ResultType::Error;
    Ok(true)
}
