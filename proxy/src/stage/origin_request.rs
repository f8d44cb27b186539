//! origin-request: the request as it goes upstream — origin path prefix, `Host` and the
//! origin's custom headers.

use std::time::Instant;

use pingora::http::RequestHeader;

use crate::ctx::RequestCtx;

/// `upstream_request_filter`: rewrite the upstream request for the chosen origin.
pub fn prepare(upstream: &mut RequestHeader, ctx: &mut RequestCtx) -> pingora::Result<()> {
    let Some(target) = ctx.origin.clone() else {
        return Ok(());
    };
    let o = &target.origin;
    if !o.path.is_empty() {
        let mut path = Vec::with_capacity(o.path.len() + upstream.raw_path().len());
        path.extend_from_slice(o.path.as_bytes());
        path.extend_from_slice(upstream.raw_path());
        upstream.set_raw_path(&path)?;
    }
    if !o.preserve_host || upstream.headers.get(http::header::HOST).is_none() {
        upstream.insert_header(http::header::HOST, target.host_header.clone())?;
    }
    for (name, value) in &target.custom_headers {
        upstream.insert_header(name.clone(), value.clone())?;
    }
    ctx.origin_sent = Some(Instant::now());
    Ok(())
}
