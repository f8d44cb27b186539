//! The one pingora `ProxyHttp` implementation. Each phase is a few lines handing off to
//! [`crate::stage`]; the phase map is in `stage/mod.rs`.
//!
//! Request order: `new_ctx` (takes the snapshot) → `early_request_filter` →
//! `request_filter` (viewer-request) → `upstream_peer` (origin selection, per attempt) →
//! `upstream_request_filter` (origin-request) → `request_body_filter` (include-body) → `upstream_response_filter` (origin-response) →
//! `response_filter` (viewer-response) → `logging`. Failures go through `fail_to_connect` /
//! `error_while_proxy` (failover) and end in `fail_to_proxy` (the error page).

use std::sync::Arc;

use async_trait::async_trait;
use pingora::Error;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;

use crate::ctx::RequestCtx;
use crate::stage;
use crate::state::ProxyState;

/// verge's proxy logic.
pub struct VergeProxy {
    state: Arc<ProxyState>,
}

impl VergeProxy {
    /// A proxy serving from `state`.
    pub fn new(state: Arc<ProxyState>) -> Self {
        VergeProxy { state }
    }
}

#[async_trait]
impl ProxyHttp for VergeProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new(self.state.snapshot())
    }

    async fn early_request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        stage::viewer_request::prepare_connection(session, ctx);
        Ok(())
    }

    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<bool> {
        stage::viewer_request::run(&self.state, session, ctx).await
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<Box<HttpPeer>> {
        stage::origin_select::peer(&self.state, session, ctx).await
    }

    fn fail_to_connect(
        &self,
        session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        e: Box<Error>,
    ) -> Box<Error> {
        stage::origin_select::on_connect_error(&self.state, session, ctx, e)
    }

    fn error_while_proxy(
        &self,
        _peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        stage::origin_select::on_proxy_error(&self.state, session, ctx, e, client_reused)
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        stage::origin_request::prepare(upstream_request, ctx)
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        if let Some(held) = ctx.body.as_mut() {
            held.filter(body);
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        stage::origin_response::on_header(&self.state, session, upstream_response, ctx).await
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        stage::viewer_response::on_header(&self.state, session, upstream_response, ctx).await
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        stage::respond::fail(&self.state, session, e, ctx).await
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        stage::log::finish(&self.state, session, e, ctx);
    }
}
