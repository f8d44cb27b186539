//! Origin selection and failover. `upstream_peer` runs once per attempt: the first attempt
//! goes to the behavior's origin (or its group's primary), a failover attempt to the
//! secondary; the behavior's origin-request function runs for each attempt. Failover follows
//! CloudFront: only GET, HEAD and OPTIONS, only before any response
//! reached the viewer, on connection failure, timeout, or a configured status.

use pingora::proxy::Session;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType};

use verge_functions::Hook;

use crate::ctx::RequestCtx;
use crate::origin::OriginTarget;
use crate::stage::{custom_error, origin_function};
use crate::state::ProxyState;

/// The error raised from `upstream_response_filter` to fail over on a status code.
pub const FAILOVER_STATUS: ErrorType = ErrorType::Custom("origin status triggers failover");

/// The error raised from `response_filter` to answer with `RequestCtx::replacement` instead of
/// the origin's response (written by `fail_to_proxy`).
pub const REPLACE_RESPONSE: ErrorType = ErrorType::Custom("response replaced by a function");

/// The error raised from `upstream_response_filter` when the origin answered a status that has
/// a custom error response: the next attempt fetches the page (`RequestCtx::error_page`).
pub const CUSTOM_ERROR_PAGE: ErrorType = ErrorType::Custom("custom error response");

/// Whether this request may still move to its group's secondary.
pub fn can_fail_over(session: &Session, ctx: &RequestCtx) -> bool {
    let method = &session.req_header().method;
    ctx.attempt == 0
        && !ctx.response_started
        && matches!(
            *method,
            http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
        )
        && ctx.route().is_some_and(|r| r.group().is_some())
}

/// Switch to the secondary and count it.
fn fail_over(state: &ProxyState, ctx: &mut RequestCtx, reason: &'static str) {
    ctx.attempt = 1;
    ctx.failover = Some(reason);
    if let Some(group) = ctx.route().and_then(|r| r.group()) {
        state
            .metrics
            .failovers
            .with_label_values(&[group.name.as_str(), reason])
            .inc();
        tracing::info!(request_id = %ctx.request_id, group = %group.name, reason, "failing over to the secondary origin");
    }
}

/// Count a failed attempt at the current origin.
fn count_origin_error(state: &ProxyState, ctx: &RequestCtx, kind: &str) {
    state
        .metrics
        .origin_errors
        .with_label_values(&[ctx.origin_name(), kind])
        .inc();
}

/// A short name for the kind of an origin failure, for metrics.
fn error_kind(e: &Error) -> &'static str {
    use ErrorType::*;
    match e.etype() {
        ConnectTimedout | ReadTimedout | WriteTimedout => "timeout",
        ConnectRefused | ConnectNoRoute | ConnectError | SocketError | BindError => "connect",
        TLSHandshakeFailure | TLSHandshakeTimedout | InvalidCert | HandshakeError => "tls",
        _ => "other",
    }
}

/// `upstream_peer`: the peer for this attempt, resolving the origin's name asynchronously.
pub async fn peer(
    state: &ProxyState,
    session: &mut Session,
    ctx: &mut RequestCtx,
) -> pingora::Result<Box<HttpPeer>> {
    loop {
        let Some(target) = ctx.route().map(|r| r.origin(ctx.attempt).clone()) else {
            return Err(Error::explain(
                ErrorType::InternalError,
                "no behavior matched before origin selection",
            ));
        };
        match resolve(state, &target).await {
            Ok(addr) => {
                ctx.origin = Some(target.clone());
                ctx.origin_edits = None;
                // A custom error page is fetched as it is, without the behavior's function.
                let function = ctx
                    .behavior()
                    .and_then(|b| b.behavior.function(Hook::OriginRequest).cloned())
                    .filter(|_| ctx.error_page.is_none());
                let Some(f) = function else {
                    return Ok(Box::new(target.peer(addr)));
                };
                // CloudFront resolves the origin before origin-request runs, and again when
                // the function moved the request elsewhere.
                let moved = Box::pin(origin_function::origin_request(
                    state, session, ctx, f, &target,
                ))
                .await?;
                let Some(moved) = moved else {
                    return Ok(Box::new(target.peer(addr)));
                };
                ctx.origin = Some(moved.clone());
                return match resolve(state, &moved).await {
                    Ok(addr) => Ok(Box::new(moved.peer(addr))),
                    Err(message) => {
                        count_origin_error(state, ctx, "dns");
                        Err(Error::explain(ErrorType::ConnectError, message).into_up())
                    }
                };
            }
            Err(message) => {
                ctx.origin = Some(target.clone());
                count_origin_error(state, ctx, "dns");
                if can_fail_over(session, ctx) {
                    fail_over(state, ctx, "dns");
                    continue;
                }
                let e = Error::explain(ErrorType::ConnectError, message).into_up();
                // verge would answer 502: its custom error page, if it has one, is fetched now.
                if custom_error::begin_for_error(state, session, &e, ctx) {
                    continue;
                }
                return Err(e);
            }
        }
    }
}

/// The address of an origin: its literal, or its name resolved (cached, asynchronous).
async fn resolve(
    state: &ProxyState,
    target: &OriginTarget,
) -> Result<std::net::SocketAddr, String> {
    let o = &target.origin;
    match target.literal {
        Some(addr) => Ok(addr),
        None => {
            state
                .dns
                .resolve(&o.host, o.port, o.dns_ttl, o.connect_timeout)
                .await
        }
    }
}

/// `fail_to_connect`: fail over when allowed; never retry the same origin in a loop.
pub fn on_connect_error(
    state: &ProxyState,
    session: &Session,
    ctx: &mut RequestCtx,
    mut e: Box<Error>,
) -> Box<Error> {
    count_origin_error(state, ctx, error_kind(&e));
    if can_fail_over(session, ctx) {
        fail_over(state, ctx, "connect");
        e.set_retry(true);
    } else {
        // The answer would be verge's own 502 or 504: its custom error page, if it has one.
        let page = custom_error::begin_for_error(state, session, &e, ctx);
        e.set_retry(page);
    }
    e
}

/// `error_while_proxy`: fail over on timeouts, broken connections and failover statuses;
/// otherwise pingora's own policy (retry an idempotent request once a reused connection broke).
pub fn on_proxy_error(
    state: &ProxyState,
    session: &mut Session,
    ctx: &mut RequestCtx,
    e: Box<Error>,
    client_reused: bool,
) -> Box<Error> {
    let mut e = e.more_context(format!("origin: {}", ctx.origin_name()));
    if ctx.response_started || *e.etype() == REPLACE_RESPONSE {
        e.set_retry(false);
        return e;
    }
    if *e.etype() == CUSTOM_ERROR_PAGE {
        // Not a failure of the origin: the next attempt fetches the page.
        e.set_retry(true);
        return e;
    }
    let status_failover = *e.etype() == FAILOVER_STATUS;
    if !status_failover {
        count_origin_error(state, ctx, error_kind(&e));
    }
    if can_fail_over(session, ctx) {
        fail_over(
            state,
            ctx,
            if status_failover {
                "status"
            } else {
                error_kind(&e)
            },
        );
        e.set_retry(true);
    } else if !session.req_header().method.is_idempotent()
        || session.as_ref().retry_buffer_truncated()
        || status_failover
    {
        e.set_retry(false);
    } else {
        e.retry.decide_reuse(client_reused);
    }
    // A failure no attempt will retry: verge's own 502 or 504 then, or its custom error page.
    if !e.retry() && custom_error::begin_for_error(state, session, &e, ctx) {
        e.set_retry(true);
    }
    e
}
