//! Per-request state (pingora's `CTX`): the snapshot the request started with, its id, the
//! behavior it matched, the origin attempts made, and what the access log needs at the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use verge_functions::ResultType;

use crate::origin::OriginTarget;
use crate::snapshot::{BehaviorRoute, Route, Snapshot};

/// State for one request.
///
/// pingora keeps this inside the request's future, which is moved (copied) several times per
/// request; the large fields most requests never use are boxed so that copy stays small
/// (`ctx_stays_small`).
#[derive(Debug)]
pub struct RequestCtx {
    /// The configuration this request uses from start to end, even across a reload.
    pub snapshot: Arc<Snapshot>,
    /// `x-verge-request-id`.
    pub request_id: String,
    /// When the request's header was parsed.
    pub started: Instant,
    /// Index of the matched behavior.
    pub behavior: Option<usize>,
    /// 0 for the first origin attempt, 1 after failover to a group's secondary.
    pub attempt: u8,
    /// Why the request failed over, if it did.
    pub failover: Option<&'static str>,
    /// The origin of the current attempt.
    pub origin: Option<Arc<OriginTarget>>,
    /// When the request was sent to the origin.
    pub origin_sent: Option<Instant>,
    /// Time until the origin's response header.
    pub origin_duration: Option<Duration>,
    /// The origin's status, for the last attempt that got a response header.
    pub origin_status: Option<u16>,
    /// Whether a response header has gone to the viewer (no failover after that).
    pub response_started: bool,
    /// How the response came about.
    pub result: ResultType,
    /// Why verge answered with an error, for the log.
    pub error: Option<String>,
    /// Compute utilization of the function that ran, if one did.
    pub compute_utilization: Option<u32>,
    /// Time from handing the last function its invocation to having its reply (all functions
    /// of the request, summed).
    pub function_time: std::time::Duration,
    /// `cf.logCustomData` of the functions that ran (the last call wins).
    pub function_log_data: Option<String>,
    /// Where a viewer-request function sent the request (the `cloudfront` module's origin
    /// helpers); used instead of the behavior's route.
    pub route_override: Option<Route>,
    /// A whole response to write instead of the origin's (a function generated it, replaced
    /// the body, or failed); written by `fail_to_proxy`.
    pub replacement: Option<Box<Replacement>>,
    /// What the origin-request function of the current attempt changed in the request
    /// (applied in `upstream_request_filter`).
    pub origin_edits: Option<Box<verge_functions::Edits>>,
    /// The request body as far as include-body functions read it (and their replacement).
    pub body: Option<Box<crate::request_body::HeldBody>>,
    /// The custom error response answering this request (`[[custom_error_responses]]`): set
    /// when the origin answered its error code; the attempts after that fetch its page.
    pub error_page: Option<Box<ErrorPage>>,
}

/// A custom error response under way: its page is fetched through the behavior its path
/// matches (that behavior's origin, no function), and the viewer gets it with its status.
#[derive(Debug)]
pub struct ErrorPage {
    /// The behavior the page's path matches, whose route the page is fetched through.
    pub behavior: usize,
    /// The configured response: the page's path and the status the viewer gets with it.
    pub response: Arc<verge_config::CustomErrorResponse>,
}

/// A complete response verge writes itself in place of the origin's.
#[derive(Debug)]
pub struct Replacement {
    /// Status and headers, with a `content-length` for `body` (stamped when written).
    pub header: pingora::http::ResponseHeader,
    /// The body.
    pub body: bytes::Bytes,
    /// Whether the behavior's viewer-response function has yet to see this response: one an
    /// origin-request function generated, or whose body origin-response replaced. CloudFront
    /// runs viewer-response on every answer but those a viewer-request function generated, its
    /// own error pages and origin answers ≥ 400 (spec §2.1); verge's own pages and a
    /// viewer-response function's replacement never go through it.
    pub awaits_viewer_response: bool,
}

impl Replacement {
    /// verge's own page (an error, a function's failure): final as it is.
    pub fn page(header: pingora::http::ResponseHeader, body: bytes::Bytes) -> Self {
        Replacement {
            header,
            body,
            awaits_viewer_response: false,
        }
    }

    /// A response an origin-request function generated, headers as it gave them (its
    /// `content-encoding` too: the body may be encoded on purpose), with `body`'s length.
    pub fn generated(
        mut header: pingora::http::ResponseHeader,
        body: bytes::Bytes,
    ) -> pingora::Result<Self> {
        header.insert_header(http::header::CONTENT_LENGTH, body.len())?;
        Ok(Replacement {
            header,
            body,
            awaits_viewer_response: true,
        })
    }

    /// The origin's answer with a function's body in place of its own: the origin's framing
    /// and encoding described the old body, so they go, and the length is the new body's.
    /// `awaits_viewer_response` says which hook replaced it (origin-response: viewer-response
    /// is still to run).
    pub fn replaced_body(
        mut header: pingora::http::ResponseHeader,
        body: bytes::Bytes,
        awaits_viewer_response: bool,
    ) -> pingora::Result<Self> {
        header.remove_header(&http::header::TRANSFER_ENCODING);
        header.remove_header(&http::header::CONTENT_ENCODING);
        header.insert_header(http::header::CONTENT_LENGTH, body.len())?;
        Ok(Replacement {
            header,
            body,
            awaits_viewer_response,
        })
    }
}

impl RequestCtx {
    /// Fresh state for a request that starts now on `snapshot`.
    pub fn new(snapshot: Arc<Snapshot>) -> Self {
        RequestCtx {
            snapshot,
            request_id: crate::request_id::next(),
            started: Instant::now(),
            behavior: None,
            attempt: 0,
            failover: None,
            origin: None,
            origin_sent: None,
            origin_duration: None,
            origin_status: None,
            response_started: false,
            result: ResultType::Miss,
            error: None,
            compute_utilization: None,
            function_time: Duration::ZERO,
            function_log_data: None,
            route_override: None,
            replacement: None,
            origin_edits: None,
            body: None,
            error_page: None,
        }
    }

    /// The matched behavior.
    pub fn behavior(&self) -> Option<&BehaviorRoute> {
        self.behavior.and_then(|i| self.snapshot.behavior(i))
    }

    /// Where this request goes: a custom error page's behavior's route, else a function's
    /// choice, else the behavior's route.
    pub fn route(&self) -> Option<&Route> {
        if let Some(page) = &self.error_page {
            return self.snapshot.behavior(page.behavior).map(|b| &b.route);
        }
        self.route_override
            .as_ref()
            .or_else(|| self.behavior().map(|b| &b.route))
    }

    /// The request body for the function at `hook` when its behavior includes the body there
    /// (read from the viewer up to the hook's cap first).
    pub async fn body_for(
        &mut self,
        session: &mut pingora::proxy::Session,
        hook: verge_functions::Hook,
    ) -> pingora::Result<Option<verge_functions::RequestBody>> {
        if !self
            .behavior()
            .is_some_and(|b| b.behavior.includes_body(hook))
        {
            return Ok(None);
        }
        let cap = verge_functions::edge_event::body_cap(hook);
        let held = self.body.get_or_insert_with(Box::default);
        held.fill(session, cap).await?;
        Ok(Some(held.view(cap)))
    }

    /// Send a function's replacement body upstream instead of the viewer's.
    pub fn replace_body(&mut self, body: Option<Vec<u8>>) {
        if let Some(body) = body {
            self.body
                .get_or_insert_with(Box::default)
                .replace(body.into());
        }
    }

    /// The current origin's name, or `-`.
    pub fn origin_name(&self) -> &str {
        self.origin.as_ref().map_or("-", |o| o.origin.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctx_stays_small() {
        // Unboxed, the replacement response, the origin edits and the held body made it 800
        // bytes, and `memmove` of pingora's futures showed in the no-function profile.
        assert!(
            std::mem::size_of::<RequestCtx>() <= 320,
            "RequestCtx is {} bytes",
            std::mem::size_of::<RequestCtx>()
        );
    }
}
