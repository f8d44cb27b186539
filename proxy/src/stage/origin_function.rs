//! The origin hooks' functions (edge tier only, as on CloudFront).
//!
//! - **origin-request** runs in `upstream_peer`, once per origin attempt (again for a group's
//!   secondary on failover), after DNS resolved the attempt's origin and after `via` /
//!   `x-forwarded-for` were added. It sees the request as the origin would get it (`host` is
//!   the origin's) and the origin in `request.origin.custom` (`.s3` for a bucket); its edits
//!   are kept in the request context and applied in `upstream_request_filter`; a changed
//!   `request.origin` (`custom`, or `s3` for a bucket) becomes this attempt's origin (resolved
//!   asynchronously); a generated response or a failure is written by `fail_to_proxy`.
//! - **origin-response** runs in `upstream_response_filter` on every origin answer that is not
//!   failing over, 4xx and 5xx included. Status and header edits apply in place; a replaced
//!   body (or a failure) becomes a whole response that `fail_to_proxy` writes, so it also
//!   reaches the viewer when the origin's answer had no body (204, 304, HEAD,
//!   `content-length: 0`). The viewer-response function runs on such a written response too
//!   (`stage::viewer_response::on_replacement`).

use std::sync::Arc;

use pingora::Error;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use verge_functions::{
    EdgeOrigin, FunctionDef, HeaderEdits, Hook, Invocation, OriginChoice, Outcome,
};

use crate::ctx::{Replacement, RequestCtx};
use crate::metrics::CONTINUE;
use crate::origin::OriginTarget;
use crate::stage::function::{self, request_snapshot};
use crate::stage::origin_select::REPLACE_RESPONSE;
use crate::state::ProxyState;

/// `request.origin` for a configured (or function-made) origin: `custom`, or `s3` for a bucket
/// (configured as one, or one a function switched to).
fn edge_origin(target: &OriginTarget) -> EdgeOrigin {
    let o = &target.origin;
    EdgeOrigin {
        domain_name: o.host.clone(),
        port: o.port,
        https: o.scheme == verge_config::Scheme::Https,
        path: o.path.clone(),
        read_timeout: o.read_timeout,
        keepalive_timeout: o.idle_timeout,
        custom_headers: target
            .custom_headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        s3_region: o.s3.as_ref().map(|bucket| bucket.region.clone()),
    }
}

/// The error that sends pingora to `fail_to_proxy`, which writes `ctx.replacement`.
fn answered(why: &'static str) -> Box<Error> {
    Error::explain(REPLACE_RESPONSE, why)
}

/// Run the origin-request function for this attempt's `target`. `Ok(Some(t))` when the
/// function moved the request to another origin; `Err` when verge answers instead (a
/// generated response or a failure, in `ctx.replacement`).
pub async fn origin_request(
    state: &ProxyState,
    session: &mut Session,
    ctx: &mut RequestCtx,
    f: Arc<FunctionDef>,
    target: &Arc<OriginTarget>,
) -> pingora::Result<Option<Arc<OriginTarget>>> {
    // The body first: reading it may answer `Expect: 100-continue` and drop that header.
    let body = ctx.body_for(session, Hook::OriginRequest).await?;
    let mut request = request_snapshot(session);
    // The request as the origin will get it: its own Host unless the viewer's is kept.
    if !target.origin.preserve_host || !request.headers.iter().any(|(n, _)| n == "host") {
        request.headers.retain(|(n, _)| n != "host");
        request
            .headers
            .push(("host".into(), target.host_header.as_bytes().to_vec()));
    }
    let sent_headers = request.headers.clone();
    let invocation = Invocation {
        function: f.clone(),
        hook: Hook::OriginRequest,
        request_id: ctx.request_id.clone(),
        request,
        response: None,
        kvs: None,
        origin: Some(edge_origin(target)),
        body,
    };
    let reply = function::invoke(state, ctx, &f, invocation).await;
    let failure = match reply.result {
        Ok(Outcome::Respond(response)) => {
            function::count(
                state,
                ctx,
                Hook::OriginRequest,
                &f,
                "LambdaGeneratedResponse",
                0,
            );
            let result = verge_functions::ResultType::LambdaGeneratedResponse;
            ctx.result = result;
            let header = crate::stage::respond::response_header(response.status, response.headers)?;
            ctx.replacement = Some(Box::new(Replacement::generated(
                header,
                response.body.into(),
            )?));
            return Err(answered("origin-request function generated the response"));
        }
        Ok(Outcome::Continue(mut edits)) => {
            ctx.replace_body(edits.body.take());
            let moved = match edits.origin.take() {
                None => Ok(None),
                Some(OriginChoice::Update(update)) => {
                    crate::function_route::updated(target, &update).map(|t| Some(Arc::new(t)))
                }
                Some(_) => Err("an origin-request function can only change request.origin".into()),
            };
            match moved {
                Ok(moved) => {
                    function::count(state, ctx, Hook::OriginRequest, &f, CONTINUE, 0);
                    // Whatever headers the function left are the ones sent (Host included:
                    // a new domain does not change it by itself, as on CloudFront).
                    if edits.headers.is_none() {
                        edits.headers = Some(HeaderEdits::Whole(sent_headers));
                    }
                    ctx.origin_edits = Some(Box::new(edits));
                    return Ok(moved);
                }
                Err(message) => function::invalid(&f, message),
            }
        }
        Err(e) => e,
    };
    function::count(
        state,
        ctx,
        Hook::OriginRequest,
        &f,
        failure.result_type().as_str(),
        0,
    );
    function::replace_with_failure(session, ctx, &f, &failure)?;
    Err(answered("origin-request function failed"))
}

/// Run the origin-response function on the origin's answer.
pub async fn origin_response(
    state: &ProxyState,
    session: &Session,
    response: &mut ResponseHeader,
    ctx: &mut RequestCtx,
    f: Arc<FunctionDef>,
) -> pingora::Result<()> {
    let invocation = Invocation {
        function: f.clone(),
        hook: Hook::OriginResponse,
        request_id: ctx.request_id.clone(),
        request: request_snapshot(session),
        response: Some(function::response_snapshot(response)),
        kvs: None,
        origin: ctx.origin.as_deref().map(edge_origin),
        body: None,
    };
    let reply = function::invoke(state, ctx, &f, invocation).await;
    let failure = match reply.result {
        Ok(Outcome::Continue(edits)) => {
            let body = edits.body.clone();
            match function::apply_response_edits(response, edits) {
                Ok(_) => {
                    function::count(state, ctx, Hook::OriginResponse, &f, CONTINUE, 0);
                    let Some(body) = body else { return Ok(()) };
                    ctx.replacement = Some(Box::new(Replacement::replaced_body(
                        response.clone(),
                        body.into(),
                        true,
                    )?));
                    return Err(answered("body replaced at origin-response"));
                }
                Err(message) => function::invalid(&f, message),
            }
        }
        Ok(Outcome::Respond(_)) => function::invalid(
            &f,
            "an origin-response function must return the response".into(),
        ),
        Err(e) => e,
    };
    function::count(
        state,
        ctx,
        Hook::OriginResponse,
        &f,
        failure.result_type().as_str(),
        0,
    );
    function::replace_with_failure(session, ctx, &f, &failure)?;
    Err(answered("origin-response function failed"))
}
