//! Assembling verge as a pingora [`Server`]: the proxy service on the plain and TLS listeners,
//! the admin app, graceful shutdown (SIGTERM) and upgrade (SIGQUIT) as pingora provides them.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use pingora::apps::http_app::HttpServer;
use pingora::listeners::tls::TlsSettings;
use pingora::proxy::http_proxy_service_with_name;
use pingora::server::Server;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::services::listening::Service;
use verge_config::Config;

use crate::admin::AdminApp;
use crate::service::VergeProxy;
use crate::state::ProxyState;

/// Where pingora's graceful upgrade hands the listening sockets of a verge serving
/// `config_file` to a new process: one socket per configuration file (its canonical path,
/// hashed), so the old and new process of an upgrade meet there without being told, and two
/// verges with different configurations on one host never meet. The hash is FNV-1a, fixed by
/// its definition: the new process is often a new build, and std's hasher may change between
/// Rust releases.
pub fn upgrade_sock(config_file: &Path) -> String {
    let path = std::fs::canonicalize(config_file).unwrap_or_else(|_| config_file.to_owned());
    let hash = path
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("/tmp/verge-upgrade-{hash:016x}.sock")
}

/// Whether `addr` (named by the `setting` that asks for it) can be listened on; if not, why:
/// in use, not an address of this machine, or a privileged port. pingora binds its listeners
/// after the server starts, retries an address in use for 30 s and then panics on its own
/// service thread, which leaves the process running and its admin port answering with nothing
/// on the proxy port; checked before, the start fails at once and says why. The socket is bound
/// with `SO_REUSEADDR`, as pingora binds, so a port left in `TIME_WAIT` is not taken as in use.
pub fn ensure_can_listen(setting: &str, addr: SocketAddr) -> Result<(), String> {
    std::net::TcpListener::bind(addr)
        .map(drop)
        .map_err(|e| format!("cannot listen on {addr} ({setting}): {e}"))
}

/// [`ensure_can_listen`] for every listener `config` asks for, in order: the first that cannot
/// be listened on, as an error message. Not for a graceful upgrade, where the running verge
/// still holds them.
pub fn ensure_can_listen_all(config: &Config) -> Result<(), String> {
    let listeners = (config.server.listen.iter().map(|a| ("server.listen", *a)))
        .chain(
            config
                .server
                .tls
                .iter()
                .map(|t| ("server.tls.listen", t.listen)),
        )
        .chain([("admin.listen", config.admin.listen)]);
    for (setting, addr) in listeners {
        ensure_can_listen(setting, addr)?;
    }
    Ok(())
}

/// Build the server for `state`'s configuration. `upgrade` is pingora's `--upgrade`: take the
/// listening sockets over from a running verge (see the README). Check the listeners first
/// ([`ensure_can_listen_all`]) when not upgrading: pingora binds them only once it runs.
pub fn build(state: &Arc<ProxyState>, upgrade: bool) -> pingora::Result<Server> {
    let config = state.snapshot().config.clone();
    let grace = config.server.shutdown_grace.as_secs().max(1);
    let conf = ServerConf {
        threads: config.server.threads,
        grace_period_seconds: Some(grace),
        graceful_shutdown_timeout_seconds: Some(grace),
        upgrade_sock: upgrade_sock(&config.file),
        pid_file: "/tmp/verge.pid".to_owned(),
        // Timeouts of a second or more (all of verge's defaults) on tokio's timer wheel rather
        // than pingora's shared timer map: verge sets read, write and idle timeouts on every
        // connection, and callgrind on the running proxy put pingora's registration (a lock, a
        // map lookup, a shared notifier) at ~5k instructions per request against ~2.5k for
        // tokio's; 113.3k -> 110.1k per request in all without functions.
        fast_timeout_to_tokio_threshold_seconds: Some(0),
        // tokio's work-stealing runtime (pingora's default) stays, although pingora's no-steal
        // runtime (a current-thread runtime per thread) made verge without functions ~10% faster
        // by hand: a current-thread runtime writes its eventfd on every wake from another thread,
        // busy or not, and every function call is answered from a JS thread. Alternating by
        // hand, the edge routing row fell ~10% (14 pairs) and the viewer-request rewrite did not
        // gain (12 pairs); in a harness run every function row fell (BENCHMARKS, session 22).
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();

    let mut proxy = http_proxy_service_with_name(
        &server.configuration,
        VergeProxy::new(state.clone()),
        "verge proxy",
    );
    for addr in &config.server.listen {
        proxy.add_tcp(&addr.to_string());
    }
    for (tls, store) in config.server.tls.iter().zip(&state.certs) {
        let mut settings =
            TlsSettings::intermediate(&tls.cert.to_string_lossy(), &tls.key.to_string_lossy())?;
        // The resolver replaces the files at build time, so renewed certificates are served
        // after a reload without restarting the listener.
        settings.set_cert_resolver(store.clone());
        if tls.http2 {
            settings.enable_h2();
        }
        proxy.add_tls_with_settings(&tls.listen.to_string(), None, settings);
    }
    server.add_service(proxy);

    let mut admin = Service::new(
        "verge admin".to_owned(),
        HttpServer::new_app(AdminApp::new(state.clone())),
    );
    admin.add_tcp(&config.admin.listen.to_string());
    server.add_service(admin);
    Ok(server)
}
