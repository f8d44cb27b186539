//! Answering the viewer from verge itself: refusals, proxy errors and function-generated
//! responses.

use bytes::Bytes;
use pingora::Error;
use pingora::http::ResponseHeader;
use pingora::proxy::{FailToProxy, Session};
use verge_functions::{GeneratedResponse, ResultType};

use crate::ctx::RequestCtx;
use crate::state::ProxyState;
use crate::{error_page, headers};

/// Whether the viewer's `Accept` prefers a JSON error page.
pub fn wants_json(session: &Session) -> bool {
    error_page::prefers_json(
        session
            .req_header()
            .headers
            .get(http::header::ACCEPT)
            .map(|v| v.as_bytes()),
    )
}

/// Write an error page for `status` and record why.
pub async fn send_error(
    session: &mut Session,
    ctx: &mut RequestCtx,
    status: u16,
    result: ResultType,
    detail: &str,
) -> pingora::Result<()> {
    ctx.result = result;
    ctx.error = Some(detail.to_owned());
    let (header, body) =
        error_page::render(status, result, &ctx.request_id, detail, wants_json(session))?;
    let head_only = session.req_header().method == http::Method::HEAD;
    session
        .write_response_header(Box::new(header), head_only)
        .await?;
    if !head_only {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}

/// The header of a response a function generated: its status and headers, without the length
/// headers (verge sets `content-length` from the body it writes).
pub fn response_header(
    status: u16,
    headers: verge_functions::HeaderList,
) -> pingora::Result<ResponseHeader> {
    let mut header = ResponseHeader::build(status, Some(headers.len() + 3))?;
    for (name, value) in headers {
        if name == "content-length" || name == "transfer-encoding" {
            continue;
        }
        header.append_header(name, value)?;
    }
    Ok(header)
}

/// Write a response a function generated, marked with its result type.
pub async fn send_generated(
    session: &mut Session,
    ctx: &mut RequestCtx,
    response: GeneratedResponse,
    result: ResultType,
) -> pingora::Result<()> {
    ctx.result = result;
    let mut header = response_header(response.status, response.headers)?;
    header.insert_header(http::header::CONTENT_LENGTH, response.body.len())?;
    headers::stamp_response(&mut header, result, &ctx.request_id)?;
    let head_only = session.req_header().method == http::Method::HEAD || response.body.is_empty();
    session
        .write_response_header(Box::new(header), head_only)
        .await?;
    if !head_only {
        session
            .write_response_body(Some(Bytes::from(response.body)), true)
            .await?;
    }
    Ok(())
}

/// Write a response that replaces the origin's, marked with the request's result type. Its
/// length is set again here: a viewer-response function ran on it since it was made.
async fn send_replacement(
    session: &mut Session,
    ctx: &mut RequestCtx,
    replacement: crate::ctx::Replacement,
) -> pingora::Result<()> {
    let mut header = replacement.header;
    header.remove_header(&http::header::TRANSFER_ENCODING);
    header.insert_header(http::header::CONTENT_LENGTH, replacement.body.len())?;
    headers::stamp_response(&mut header, ctx.result, &ctx.request_id)?;
    let head_only =
        session.req_header().method == http::Method::HEAD || replacement.body.is_empty();
    session
        .write_response_header(Box::new(header), head_only)
        .await?;
    if !head_only {
        session
            .write_response_body(Some(replacement.body), true)
            .await?;
    }
    Ok(())
}

/// `fail_to_proxy`: the one place an error becomes a status. A response a function made in
/// place of the origin's goes through the viewer-response function first where CloudFront's
/// would ([`crate::ctx::Replacement::awaits_viewer_response`]).
pub async fn fail(
    state: &ProxyState,
    session: &mut Session,
    e: &Error,
    ctx: &mut RequestCtx,
) -> FailToProxy {
    if let Some(replacement) = ctx.replacement.take() {
        let replacement =
            crate::stage::viewer_response::on_replacement(state, session, replacement, ctx).await;
        let status = replacement.header.status.as_u16();
        if let Err(write_error) = send_replacement(session, ctx, *replacement).await {
            tracing::debug!(request_id = %ctx.request_id, error = %write_error, "replaced response not delivered");
        }
        return FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        };
    }
    let Some(status) = error_page::status_for(e) else {
        ctx.error = Some(e.to_string());
        return FailToProxy {
            error_code: 0,
            can_reuse_downstream: false,
        };
    };
    let detail = match status {
        504 => format!("The origin {} did not answer in time.", ctx.origin_name()),
        502 => format!("The origin {} could not be reached.", ctx.origin_name()),
        crate::request_body::LENGTH_REQUIRED => "A request body over 64 KiB sent without a \
             Content-Length cannot be read by this behavior's include-body function and still be \
             forwarded; send it with a Content-Length."
            .to_owned(),
        _ => "The request could not be processed.".to_owned(),
    };
    let written = if ctx.response_started {
        // The header is already on the wire: nothing more can be said to this viewer.
        Ok(())
    } else {
        send_error(session, ctx, status, ResultType::Error, &detail).await
    };
    ctx.result = ResultType::Error;
    ctx.error = Some(e.to_string());
    if let Err(write_error) = written {
        tracing::debug!(request_id = %ctx.request_id, error = %write_error, "error page not delivered");
    }
    FailToProxy {
        error_code: status,
        can_reuse_downstream: false,
    }
}
