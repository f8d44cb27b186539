//! Serving verge's apps from an accept loop of the caller's, on a listener the caller bound —
//! `127.0.0.1:0` in tests, where pingora's own listeners could not report the port they got.
//!
//! The proxy logic, TLS configuration and apps are exactly those of [`crate::server`]; only the
//! accept loop differs.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use pingora::apps::ServerApp;
use pingora::apps::http_app::HttpServer;
use pingora::listeners::tls::Acceptor;
use pingora::protocols::GetSocketDigest;
use pingora::protocols::SocketDigest;
use pingora::protocols::Stream;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::proxy::{HttpProxy, http_proxy};
use pingora::server::configuration::ServerConf;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admin::AdminApp;
use crate::service::VergeProxy;
use crate::state::ProxyState;
use crate::tls;

/// The proxy app for `state`, as pingora's listeners run it.
pub fn proxy_app(state: &Arc<ProxyState>) -> Arc<HttpProxy<VergeProxy>> {
    let conf = Arc::new(ServerConf::default());
    Arc::new(http_proxy(&conf, VergeProxy::new(state.clone())))
}

/// The admin app for `state`.
pub fn admin_app(state: &Arc<ProxyState>) -> Arc<HttpServer<AdminApp>> {
    Arc::new(HttpServer::new_app(AdminApp::new(state.clone())))
}

/// TLS acceptor for the `index`-th `[[server.tls]]` listener, sharing its reloadable certificate.
pub fn tls_acceptor(state: &ProxyState, index: usize) -> Result<Acceptor, String> {
    let snapshot = state.snapshot();
    let listener = snapshot
        .config
        .server
        .tls
        .get(index)
        .ok_or_else(|| format!("no TLS listener {index}"))?;
    let store = state
        .certs
        .get(index)
        .ok_or_else(|| format!("no certificate store {index}"))?;
    let config = tls::server_config(store.clone(), listener.http2)?;
    Ok(Acceptor::from_server_config(Arc::new(config)))
}

/// Accept connections until `shutdown` turns true, serving each with `app` (over TLS when an
/// acceptor is given). Connections already accepted finish on their own.
pub async fn serve<A>(
    listener: TcpListener,
    tls: Option<Acceptor>,
    app: Arc<A>,
    mut shutdown: watch::Receiver<bool>,
) where
    A: ServerApp + Send + Sync + 'static,
{
    let tls = tls.map(Arc::new);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let app = app.clone();
        let tls = tls.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let Some(stream) = wrap(tcp, peer, tls.as_deref()).await else {
                return;
            };
            let mut next = Some(stream);
            while let Some(stream) = next.take() {
                next = app.process_new(stream, &shutdown).await;
            }
        });
    }
}

async fn wrap(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    tls: Option<&Acceptor>,
) -> Option<Stream> {
    // As pingora's own listeners do: responses are written in several small writes, which
    // Nagle's algorithm would hold back for the viewer's delayed ACK (~40 ms per request).
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
    let mut l4 = L4Stream::from(tcp);
    let digest = SocketDigest::from_raw_fd(l4.as_raw_fd());
    let _ = digest.peer_addr.set(Some(peer.into()));
    l4.set_socket_digest(digest);
    match tls {
        None => Some(Box::new(l4)),
        Some(acceptor) => match acceptor.tls_handshake(l4).await {
            Ok(tls_stream) => Some(Box::new(tls_stream)),
            Err(e) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                None
            }
        },
    }
}
