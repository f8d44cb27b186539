//! origin-request: the request as it goes upstream — origin path prefix, `Host` and the
//! origin's custom headers, or what the origin-request function decided; then, for an S3
//! origin with credentials, its signature.

use std::time::{Instant, SystemTime};

use pingora::http::RequestHeader;

use crate::ctx::RequestCtx;

/// `upstream_request_filter`: rewrite the upstream request for the chosen origin; then, when
/// an include-body function replaced the body, give the request the replacement's length
/// (after the edits, so no header edit undoes it); last, sign it for an S3 origin that has
/// credentials, so the signature covers every header as sent.
pub fn prepare(upstream: &mut RequestHeader, ctx: &mut RequestCtx) -> pingora::Result<()> {
    if let Some(page) = &ctx.error_page {
        // A custom error page: its path (under the origin's path, below), no query.
        upstream.set_raw_path(page.response.response_page_path.as_bytes())?;
    }
    rewrite(upstream, ctx)?;
    if let Some(held) = ctx.body.as_mut() {
        held.prepare_attempt(upstream)?;
    }
    if let Some(target) = &ctx.origin
        && let Some(bucket) = &target.origin.s3
        && let Some(credentials) =
            bucket.signer(upstream.headers.contains_key(http::header::AUTHORIZATION))
    {
        crate::s3_sign::sign(upstream, credentials, &bucket.region, SystemTime::now())?;
    }
    Ok(())
}

/// The path, `Host` and headers the chosen origin gets.
fn rewrite(upstream: &mut RequestHeader, ctx: &mut RequestCtx) -> pingora::Result<()> {
    let Some(target) = ctx.origin.clone() else {
        return Ok(());
    };
    let o = &target.origin;
    // Taken: `upstream_peer` (and so the function) runs again before any other attempt.
    if let Some(edits) = ctx.origin_edits.take().map(|edits| *edits) {
        // The origin-request function decided the request: its path and query (under the
        // origin's path) and its headers, Host included; then the origin's custom headers.
        let path = edits.uri.unwrap_or_else(|| upstream.uri.path().to_owned());
        let query = edits
            .querystring
            .or_else(|| upstream.uri.query().map(str::to_owned))
            .unwrap_or_default();
        let mut target_path = format!("{}{path}", o.path);
        if !query.is_empty() {
            target_path.push('?');
            target_path.push_str(&query);
        }
        upstream.set_raw_path(target_path.as_bytes())?;
        if let Some(headers) = edits.headers {
            crate::header_list::edit(upstream, &headers)
                .map_err(|e| pingora::Error::explain(pingora::ErrorType::InvalidHTTPHeader, e))?;
        }
        for (name, value) in &target.custom_headers {
            upstream.insert_header(name.clone(), value.clone())?;
        }
        ctx.origin_sent = Some(Instant::now());
        return Ok(());
    }
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
