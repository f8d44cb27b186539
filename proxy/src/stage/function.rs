//! Running a function at a hook and applying what it decided: edits to the request, a generated
//! response, or a CloudFront error result. The function itself runs on the fast pool; this
//! stage only builds the owned snapshot and applies the owned outcome, so no JavaScript value
//! ever crosses an `.await` here.

use std::sync::Arc;

use pingora::Error;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;
use verge_config::Runtime;
use verge_functions::{
    Edits, FunctionDef, FunctionError, FunctionErrorKind, Hook, Invocation, OriginChoice, Outcome,
    RequestSnapshot, ResponseSnapshot, ResultType,
};

use crate::ctx::{Replacement, RequestCtx};
use crate::error_page;
use crate::metrics::CONTINUE;
use crate::stage::origin_select::REPLACE_RESPONSE;
use crate::stage::respond::{send_error, send_generated, wants_json};
use crate::state::ProxyState;

/// The viewer's request as an owned snapshot.
pub fn request_snapshot(session: &Session) -> RequestSnapshot {
    let req = session.req_header();
    RequestSnapshot {
        method: req.method.as_str().to_owned(),
        uri: req.uri.path().to_owned(),
        querystring: req.uri.query().unwrap_or("").to_owned(),
        has_query: req.uri.query().is_some(),
        headers: req
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect(),
        client_ip: session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |a| a.ip()),
    }
}

/// A response as an owned snapshot.
pub fn response_snapshot(response: &ResponseHeader) -> ResponseSnapshot {
    ResponseSnapshot {
        status: response.status.as_u16(),
        headers: response
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect(),
    }
}

/// Take the route a function chose for this request; an unknown origin is a validation error.
fn choose_origin(ctx: &mut RequestCtx, choice: Option<OriginChoice>) -> Result<(), String> {
    if let Some(choice) = choice {
        ctx.route_override = Some(crate::function_route::route_for(ctx, choice)?);
    }
    Ok(())
}

/// Apply a viewer-request function's edits to the request that goes on.
fn apply_request_edits(req: &mut RequestHeader, edits: Edits) -> Result<(), String> {
    if edits.uri.is_some() || edits.querystring.is_some() {
        let path = edits.uri.unwrap_or_else(|| req.uri.path().to_owned());
        let query = edits
            .querystring
            .or_else(|| req.uri.query().map(str::to_owned))
            .unwrap_or_default();
        let target = if query.is_empty() {
            path
        } else {
            format!("{path}?{query}")
        };
        req.set_raw_path(target.as_bytes())
            .map_err(|e| format!("the new URI is not valid: {e}"))?;
    }
    if let Some(headers) = edits.headers {
        crate::header_list::edit(req, &headers)?;
    }
    Ok(())
}

/// Run an invocation on the fast pool and record what every hook records: compute
/// utilization, the function's log lines, its custom log data.
pub async fn invoke(
    state: &ProxyState,
    ctx: &mut RequestCtx,
    f: &FunctionDef,
    invocation: Invocation,
) -> verge_functions::Reply {
    let edge = f.runtime == Runtime::LambdaEdge;
    let dispatched = std::time::Instant::now();
    // The pools' futures hold the invocation at every level (~2 KB): boxed, they are made
    // once on the heap instead of being copied into each caller's future (see `stage`).
    let reply = match &ctx.snapshot.workers {
        _ if edge => Box::pin(ctx.snapshot.edge.invoke(invocation)).await,
        Some(workers) => Box::pin(state.functions.invoke_in(workers, invocation, f.budget)).await,
        None => Box::pin(state.functions.invoke(invocation, f.budget)).await,
    };
    ctx.function_time += dispatched.elapsed();
    if !edge {
        ctx.compute_utilization = Some(reply.utilization);
    }
    emit_logs(f, &ctx.request_id, &reply.logs);
    if reply.log_data.is_some() {
        ctx.function_log_data = reply.log_data.clone();
    }
    reply
}

/// The function's KeyValueStore in the request's snapshot.
fn function_kvs(ctx: &RequestCtx, f: &FunctionDef) -> Option<Arc<verge_functions::kvs::KvStore>> {
    f.kvs
        .as_ref()
        .and_then(|def| ctx.snapshot.kvs(&def.name))
        .cloned()
}

/// The function's `console.log` lines, into verge's log with the request id (as CloudFront
/// prefixes each line with it).
fn emit_logs(f: &FunctionDef, request_id: &str, lines: &[String]) {
    for line in lines {
        tracing::info!(target: "verge::function", request_id, function = %f.name, "{line}");
    }
}

/// Count an invocation by result and, for the fast tier, record its compute utilization. The
/// usual result goes to the counters the request's snapshot resolved for its behavior's hook.
pub fn count(
    state: &ProxyState,
    ctx: &RequestCtx,
    hook: Hook,
    f: &FunctionDef,
    result: &str,
    utilization: u32,
) {
    if result == CONTINUE
        && let Some(meters) = ctx.behavior().and_then(|b| b.function_meters(hook))
    {
        meters.count_continue(utilization);
        return;
    }
    let utilization = crate::metrics::has_utilization(f).then_some(utilization);
    state.metrics.count_function(&f.name, result, utilization);
}

/// Whether a failure lets the request go on unmodified: only for a function configured to fail
/// open, and only when it was over budget, throttled or without capacity (never for errors in
/// its code or its return value).
fn fails_open(f: &FunctionDef, failure: &FunctionError, ctx: &mut RequestCtx) -> bool {
    if !f.fail_open || failure.kind != FunctionErrorKind::Throttled {
        return false;
    }
    tracing::warn!(
        request_id = %ctx.request_id,
        function = %f.name,
        error = %failure.message,
        "function failed open: going on unmodified"
    );
    ctx.error = Some(format!(
        "function {} failed open: {}",
        f.name, failure.message
    ));
    true
}

/// Answer with the CloudFront error for a failed function and log why.
async fn fail(
    session: &mut Session,
    ctx: &mut RequestCtx,
    f: &FunctionDef,
    e: &FunctionError,
) -> pingora::Result<()> {
    tracing::warn!(
        request_id = %ctx.request_id,
        function = %f.name,
        result = e.result_type().as_str(),
        error = %e.message,
        "function failed"
    );
    send_error(
        session,
        ctx,
        e.status(),
        e.result_type(),
        "The function associated with this request could not run or returned an invalid value.",
    )
    .await?;
    ctx.error = Some(format!("function {}: {}", f.name, e.message));
    Ok(())
}

/// The result type of a response a function generated.
fn generated_result(f: &FunctionDef) -> ResultType {
    if f.runtime == Runtime::LambdaEdge {
        ResultType::LambdaGeneratedResponse
    } else {
        ResultType::FunctionGeneratedResponse
    }
}

/// A validation failure of `f` (with the result type of its tier).
pub fn invalid(f: &FunctionDef, message: String) -> FunctionError {
    FunctionError {
        kind: FunctionErrorKind::Validation,
        message,
        edge: f.runtime == Runtime::LambdaEdge,
    }
}

/// Make CloudFront's error for `failure` the response `fail_to_proxy` writes (the response
/// hooks, and origin-request, cannot write it themselves), and log why.
pub fn replace_with_failure(
    session: &Session,
    ctx: &mut RequestCtx,
    f: &FunctionDef,
    failure: &FunctionError,
) -> pingora::Result<()> {
    tracing::warn!(
        request_id = %ctx.request_id,
        function = %f.name,
        result = failure.result_type().as_str(),
        error = %failure.message,
        "function failed"
    );
    let (header, body) = error_page::render(
        failure.status(),
        failure.result_type(),
        &ctx.request_id,
        "The function associated with this request could not run or returned an invalid value.",
        wants_json(session),
    )?;
    ctx.result = failure.result_type();
    ctx.error = Some(format!("function {}: {}", f.name, failure.message));
    ctx.replacement = Some(Box::new(Replacement::page(header, body)));
    Ok(())
}

/// Run the viewer-request function. `Ok(true)` when verge answered the viewer itself.
pub async fn viewer_request(
    state: &ProxyState,
    session: &mut Session,
    ctx: &mut RequestCtx,
    f: Arc<FunctionDef>,
) -> pingora::Result<bool> {
    // The body first: reading it may answer `Expect: 100-continue` and drop that header.
    let body = ctx.body_for(session, Hook::ViewerRequest).await?;
    let invocation = Invocation {
        function: f.clone(),
        hook: Hook::ViewerRequest,
        request_id: ctx.request_id.clone(),
        request: request_snapshot(session),
        response: None,
        kvs: function_kvs(ctx, &f),
        origin: None,
        body,
    };
    let reply = invoke(state, ctx, &f, invocation).await;
    let failure = match reply.result {
        Ok(Outcome::Continue(mut edits)) => {
            let origin = edits.origin.take();
            ctx.replace_body(edits.body.take());
            match choose_origin(ctx, origin)
                .and_then(|()| apply_request_edits(session.req_header_mut(), edits))
            {
                Ok(()) => {
                    count(
                        state,
                        ctx,
                        Hook::ViewerRequest,
                        &f,
                        CONTINUE,
                        reply.utilization,
                    );
                    return Ok(false);
                }
                Err(message) => invalid(&f, message),
            }
        }
        Ok(Outcome::Respond(response)) => {
            let result = generated_result(&f);
            count(
                state,
                ctx,
                Hook::ViewerRequest,
                &f,
                result.as_str(),
                reply.utilization,
            );
            Box::pin(send_generated(session, ctx, response, result)).await?;
            return Ok(true);
        }
        Err(e) => e,
    };
    count(
        state,
        ctx,
        Hook::ViewerRequest,
        &f,
        failure.result_type().as_str(),
        reply.utilization,
    );
    if fails_open(&f, &failure, ctx) {
        return Ok(false);
    }
    Box::pin(fail(session, ctx, &f, &failure)).await?;
    Ok(true)
}

/// Apply a viewer-response function's edits. `Ok(Some(body))` when the body is replaced.
pub fn apply_response_edits(
    response: &mut ResponseHeader,
    edits: Edits,
) -> Result<Option<Vec<u8>>, String> {
    if let Some(status) = edits.status {
        response
            .set_status(status)
            .map_err(|e| format!("status {status} cannot be sent: {e}"))?;
    }
    if let Some(headers) = edits.headers {
        crate::header_list::edit(response, &headers)?;
    }
    Ok(edits.body)
}

/// Run the viewer-response function on the response about to go to the viewer. Edits to status
/// and headers apply in place. A replaced body, or a failure, turns into a whole response that
/// `fail_to_proxy` writes (the `Err` returned here diverts pingora there), so a body also
/// reaches the viewer when the origin's answer had none (204, 304, HEAD, `content-length: 0`),
/// which pingora finishes at the header.
pub async fn viewer_response(
    state: &ProxyState,
    session: &mut Session,
    response: &mut ResponseHeader,
    ctx: &mut RequestCtx,
    f: Arc<FunctionDef>,
) -> pingora::Result<()> {
    let invocation = Invocation {
        function: f.clone(),
        hook: Hook::ViewerResponse,
        request_id: ctx.request_id.clone(),
        request: request_snapshot(session),
        response: Some(response_snapshot(response)),
        kvs: function_kvs(ctx, &f),
        origin: None,
        body: None,
    };
    let reply = invoke(state, ctx, &f, invocation).await;
    let failure = match reply.result {
        Ok(Outcome::Continue(edits)) => match apply_response_edits(response, edits) {
            Ok(replaced) => {
                count(
                    state,
                    ctx,
                    Hook::ViewerResponse,
                    &f,
                    CONTINUE,
                    reply.utilization,
                );
                let Some(body) = replaced else {
                    return Ok(());
                };
                ctx.replacement = Some(Box::new(Replacement::replaced_body(
                    response.clone(),
                    body.into(),
                    false,
                )?));
                return Err(Error::explain(
                    REPLACE_RESPONSE,
                    "body replaced at viewer-response",
                ));
            }
            Err(message) => invalid(&f, message),
        },
        Ok(Outcome::Respond(_)) => invalid(
            &f,
            "a viewer-response function must return the response".into(),
        ),
        Err(e) => e,
    };
    count(
        state,
        ctx,
        Hook::ViewerResponse,
        &f,
        failure.result_type().as_str(),
        reply.utilization,
    );
    if fails_open(&f, &failure, ctx) {
        return Ok(());
    }
    replace_with_failure(session, ctx, &f, &failure)?;
    Err(Error::explain(
        REPLACE_RESPONSE,
        "viewer-response function failed",
    ))
}
