//! viewer-request: connection settings, CloudFront's request size limits, behavior matching,
//! the behavior's viewer-request function, and the forwarding headers every origin request
//! carries (added after the function, before origin-request, as CloudFront does).

use pingora::proxy::Session;
use verge_functions::{Hook, ResultType};

use crate::ctx::RequestCtx;
use crate::stage::function;
use crate::stage::respond::send_error;
use crate::state::ProxyState;
use crate::{header_case, headers};

/// Apply the viewer-connection timeouts of the request's snapshot, and its scheduling policy
/// to the thread serving it.
pub fn prepare_connection(session: &mut Session, ctx: &RequestCtx) {
    let server = &ctx.snapshot.config.server;
    crate::thread_policy::settle(server.batch_scheduling);
    session.set_read_timeout(Some(server.client_timeout));
    session.set_write_timeout(Some(server.client_timeout));
    // Whether the connection stays open is the viewer's to say, and pingora read it from the
    // request: HTTP/1.1 unless `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`.
    // Only how long it may sit idle is verge's. (Setting it regardless kept an HTTP/1.0
    // viewer's connection open after its answer, and that viewer waits for the close.)
    if session.get_keepalive().is_some() {
        session.set_keepalive(Some(keepalive_secs(server.keepalive_timeout)));
    }
}

/// An idle timeout in pingora's whole seconds, rounded up: pingora reads 0 as "no limit", so a
/// sub-second `server.keepalive_timeout` must not become 0.
fn keepalive_secs(timeout: std::time::Duration) -> u64 {
    timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0)
}

/// Bytes of the request line and header block as they came over HTTP/1.1.
fn request_head_bytes(session: &Session) -> usize {
    let req = session.req_header();
    let line = req.method.as_str().len() + 1 + req.raw_path().len() + " HTTP/1.1\r\n".len();
    let headers: usize = req
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum();
    line + headers + 2
}

/// Check limits, match the behavior, run its viewer-request function. `Ok(true)` means verge
/// already answered.
pub async fn run(
    state: &ProxyState,
    session: &mut Session,
    ctx: &mut RequestCtx,
) -> pingora::Result<bool> {
    let server = &ctx.snapshot.config.server;
    // Before anything edits the request's headers: room for the forwarding headers and a
    // function's additions.
    header_case::normalize(session.req_header_mut(), server.preserve_header_case, 4);
    let (max_url, max_head) = (server.max_url_bytes, server.max_header_bytes);
    let url_len = session.req_header().raw_path().len();
    if url_len > max_url {
        let detail = format!("The URL is {url_len} bytes long; at most {max_url} are accepted.");
        Box::pin(send_error(session, ctx, 414, ResultType::Error, &detail)).await?;
        return Ok(true);
    }
    let head = request_head_bytes(session);
    if head > max_head {
        let detail = format!(
            "The request line and headers are {head} bytes; at most {max_head} are accepted."
        );
        Box::pin(send_error(session, ctx, 431, ResultType::Error, &detail)).await?;
        return Ok(true);
    }

    // No copy of the path: the match borrows the request header and the snapshot only.
    let matched = ctx
        .snapshot
        .behavior_for(session.req_header().uri.path())
        .map(|(index, route)| {
            let b = &route.behavior;
            let adds_cloudfront = !b.cloudfront_headers.is_empty();
            (
                index,
                b.function(Hook::ViewerRequest).cloned(),
                adds_cloudfront,
            )
        });
    let Some((index, function, adds_cloudfront)) = matched else {
        Box::pin(send_error(
            session,
            ctx,
            404,
            ResultType::Error,
            "No behavior matches this path.",
        ))
        .await?;
        return Ok(true);
    };
    ctx.behavior = Some(index);
    if let Some(f) = function
        && Box::pin(function::viewer_request(state, session, ctx, f)).await?
    {
        return Ok(true);
    }

    // CloudFront adds these before origin-request functions run, so functions see them.
    let client = session.client_addr().and_then(|a| a.as_inet()).copied();
    headers::add_forwarding(session.req_header_mut(), client.map(|a| a.ip()))?;
    if adds_cloudfront && let Some(route) = ctx.snapshot.behavior(index) {
        let viewer = headers::Viewer {
            tls: session.digest().is_some_and(|d| d.ssl_digest.is_some()),
            addr: client,
            version: session.req_header().version,
        };
        headers::add_cloudfront(
            session.req_header_mut(),
            &route.behavior.cloudfront_headers,
            &viewer,
        )?;
    }
    Ok(false)
}
