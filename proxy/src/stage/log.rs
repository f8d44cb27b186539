//! The end of a request: one access-log line and the request metrics.

use pingora::Error;
use pingora::proxy::Session;

use crate::ctx::RequestCtx;
use crate::metrics::status_class;
use crate::state::ProxyState;

fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// `logging`.
pub fn finish(state: &ProxyState, session: &Session, e: Option<&Error>, ctx: &RequestCtx) {
    let status = session.response_written().map_or(0, |r| r.status.as_u16());
    let behavior = ctx.behavior();
    match behavior {
        Some(b) => b.requests.count(status),
        None => state
            .metrics
            .requests
            .with_label_values(&["-", status_class(status)])
            .inc(),
    }
    let Some(mut line) = state.access_log.line() else {
        return;
    };
    let req = session.req_header();
    let error = match (&ctx.error, e) {
        (Some(message), _) => message.clone(),
        (None, Some(e)) => e.to_string(),
        (None, None) => String::new(),
    };
    line.str("request_id", &ctx.request_id);
    match session.client_addr() {
        Some(addr) => match addr.as_inet() {
            Some(inet) => line.addr("client", inet),
            None => line.str("client", &addr.to_string()),
        },
        None => line.str("client", ""),
    };
    line.str("method", req.method.as_str())
        .str("path", req.uri.path())
        .str("behavior", behavior.map_or("-", |b| b.label.as_str()))
        .str("origin", ctx.origin_name())
        .uint("status", u64::from(status))
        .uint("origin_status", u64::from(ctx.origin_status.unwrap_or(0)))
        .uint("bytes", session.body_bytes_sent() as u64)
        .millis("duration_ms", micros(ctx.started.elapsed()))
        .millis("origin_ms", ctx.origin_duration.map_or(0, micros))
        .millis("function_ms", micros(ctx.function_time))
        .str("result", ctx.result.as_str())
        .str("failover", ctx.failover.unwrap_or(""))
        .uint("generation", ctx.snapshot.generation)
        .uint(
            "compute_utilization",
            u64::from(ctx.compute_utilization.unwrap_or(0)),
        )
        .str(
            "function_log_data",
            ctx.function_log_data.as_deref().unwrap_or(""),
        )
        .str("error", &error);
    state.access_log.send(line);
}
