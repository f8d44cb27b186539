//! The end of a request: one structured access-log line and the request metrics.

use pingora::Error;
use pingora::proxy::Session;

use crate::ctx::RequestCtx;
use crate::metrics::status_class;
use crate::state::ProxyState;

/// The `tracing` target of access-log lines, for filtering (`RUST_LOG=verge::access=off`).
pub const ACCESS_TARGET: &str = "verge::access";

/// `logging`.
pub fn finish(state: &ProxyState, session: &Session, e: Option<&Error>, ctx: &RequestCtx) {
    let status = session.response_written().map_or(0, |r| r.status.as_u16());
    let behavior = ctx.behavior().map_or("-", |b| b.label.as_str());
    state
        .metrics
        .requests
        .with_label_values(&[behavior, status_class(status)])
        .inc();
    if !state.access_log {
        return;
    }
    let req = session.req_header();
    let error = ctx
        .error
        .clone()
        .or_else(|| e.map(ToString::to_string))
        .unwrap_or_default();
    tracing::info!(
        target: ACCESS_TARGET,
        request_id = %ctx.request_id,
        client = %session.client_addr().map(ToString::to_string).unwrap_or_default(),
        method = %req.method,
        path = %req.uri.path(),
        behavior,
        origin = ctx.origin_name(),
        status,
        origin_status = ctx.origin_status.unwrap_or(0),
        bytes = session.body_bytes_sent(),
        duration_ms = ctx.started.elapsed().as_secs_f64() * 1e3,
        origin_ms = ctx.origin_duration.map_or(0.0, |d| d.as_secs_f64() * 1e3),
        result = ctx.result.as_str(),
        failover = ctx.failover.unwrap_or(""),
        generation = ctx.snapshot.generation,
        error,
        "access"
    );
}
