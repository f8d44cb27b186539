//! The real proxy, in process: configuration written to a temporary folder, loaded and
//! validated as `verge serve` does, served by verge's own apps from an accept loop on
//! `127.0.0.1:0` (plain, admin, and one per TLS listener).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use verge_proxy::{ProxyState, ReloadReport, embed};

use super::Reply;

/// A running proxy; stops accepting when dropped.
pub struct Proxy {
    /// Plain HTTP listener.
    pub addr: SocketAddr,
    /// Admin listener.
    pub admin: SocketAddr,
    /// One address per `[[server.tls]]` listener.
    pub tls: Vec<SocketAddr>,
    /// Shared state (snapshot, metrics, reload).
    pub state: Arc<ProxyState>,
    /// The folder holding the configuration and the files it names.
    pub dir: tempfile::TempDir,
    shutdown: watch::Sender<bool>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// Start a proxy whose configuration is `config`, written as `verge.toml` in a new folder.
pub async fn proxy(config: &str) -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    proxy_in(dir, config).await
}

/// Start a proxy with `config` in `dir` (which may already hold files it names).
pub async fn proxy_in(dir: tempfile::TempDir, config: &str) -> Proxy {
    let path = dir.path().join("verge.toml");
    std::fs::write(&path, config).unwrap();
    let config = verge_config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let tls_count = config.server.tls.len();
    let state = ProxyState::new(config).unwrap_or_else(|e| panic!("{e}"));
    let (shutdown, rx) = watch::channel(false);

    let bind = || async { TcpListener::bind("127.0.0.1:0").await.unwrap() };
    let listener = bind().await;
    let addr = listener.local_addr().unwrap();
    tokio::spawn(embed::serve(
        listener,
        None,
        embed::proxy_app(&state),
        rx.clone(),
    ));
    let admin_listener = bind().await;
    let admin = admin_listener.local_addr().unwrap();
    tokio::spawn(embed::serve(
        admin_listener,
        None,
        embed::admin_app(&state),
        rx.clone(),
    ));
    let mut tls = Vec::new();
    for i in 0..tls_count {
        let l = bind().await;
        tls.push(l.local_addr().unwrap());
        let acceptor = embed::tls_acceptor(&state, i).unwrap();
        tokio::spawn(embed::serve(
            l,
            Some(acceptor),
            embed::proxy_app(&state),
            rx.clone(),
        ));
    }
    Proxy {
        addr,
        admin,
        tls,
        state,
        dir,
        shutdown,
    }
}

impl Proxy {
    /// GET through the proxy.
    pub async fn get(&self, path: &str) -> Reply {
        super::get(self.addr, path).await
    }

    /// The configuration file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("verge.toml")
    }

    /// Write a file into the proxy's folder.
    pub fn write(&self, name: impl AsRef<Path>, contents: impl AsRef<[u8]>) {
        std::fs::write(self.dir.path().join(name), contents).unwrap();
    }

    /// Replace the configuration text and reload, as SIGHUP does.
    pub fn reload_with(&self, config: &str) -> Result<ReloadReport, verge_config::ConfigErrors> {
        std::fs::write(self.config_path(), config).unwrap();
        self.state.reload("test")
    }

    /// The admin listener's `/metrics`.
    pub async fn metrics(&self) -> String {
        super::get(self.admin, "/metrics").await.text()
    }
}

/// The value of a metric sample line starting with `prefix` (name and labels), or 0.
pub fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}
