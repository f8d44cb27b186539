//! `verge serve`: load the configuration (or the bundled example and the demo origin), install
//! the SIGHUP handler, start the reload watcher, and run pingora's server until SIGTERM/SIGINT.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pingora::server::RunArgs;
use verge_proxy::ProxyState;

use super::{EXIT_BAD_CONFIG, EXIT_UNHEALTHY, ServeArgs, demo};

/// The example served when no configuration is given, with the files it names. They are
/// written to a folder of their own at start, so relative paths resolve wherever verge runs and
/// the example reloads like any configuration.
const BUNDLED: &[(&str, &str)] = &[
    ("verge.toml", include_str!("../../examples/verge.toml")),
    (
        "functions/viewer-request-ab.js",
        include_str!("../../examples/functions/viewer-request-ab.js"),
    ),
    (
        "functions/viewer-request-redirect.js",
        include_str!("../../examples/functions/viewer-request-redirect.js"),
    ),
    (
        "functions/viewer-response-security-headers.js",
        include_str!("../../examples/functions/viewer-response-security-headers.js"),
    ),
];

/// Write the bundled example into a fresh folder; the configuration's path.
fn write_bundled() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("verge-example-{}", std::process::id()));
    for (name, text) in BUNDLED {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, text)?;
    }
    Ok(dir.join("verge.toml"))
}

/// Run the subcommand.
pub fn run(args: ServeArgs) -> ExitCode {
    let bundled = args.config.is_none();
    let config_path = match &args.config {
        Some(path) => path.clone(),
        None => match write_bundled() {
            Ok(path) => path,
            Err(e) => {
                eprintln!("verge: cannot write the bundled example: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let config = match verge_config::load(&config_path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    // The reload watcher's starting point is what the files were when they were just read: an
    // edit made while the proxy starts is then a change it reloads.
    let first_look = verge_proxy::reload_watch::Files::look(config.watched_files());
    let (access_log, access_writer) = if config.logging.access_log {
        match verge_proxy::AccessLog::stdout() {
            Ok((log, writer)) => (log, Some(writer)),
            Err(e) => {
                eprintln!("verge: cannot start the access log: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        (verge_proxy::AccessLog::disabled(), None)
    };
    let state = match ProxyState::with_access_log(config, access_log) {
        Ok(state) => state,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };

    // Installed before the server starts: SIGHUP's default action would end the process. The
    // handler writes a byte the reload watcher sleeps on.
    let sighup = match std::os::unix::net::UnixStream::pair().and_then(|(read, write)| {
        signal_hook::low_level::pipe::register(signal_hook::consts::SIGHUP, write)?;
        Ok(read)
    }) {
        Ok(read) => read,
        Err(e) => {
            eprintln!("verge: cannot install the SIGHUP handler: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    if bundled {
        tracing::info!(config = %config_path.display(), "serving the bundled example");
    }
    {
        let (state, stop) = (state.clone(), stop.clone());
        let interval = (args.watch_interval_ms > 0)
            .then(|| Duration::from_millis(args.watch_interval_ms.max(50)));
        let spawned = std::thread::Builder::new()
            .name("verge-reload".into())
            .spawn(move || {
                verge_proxy::reload_watch::watch(state, first_look, sighup, interval, stop)
            });
        if let Err(e) = spawned {
            eprintln!("verge: cannot start the reload watcher: {e}");
            return ExitCode::FAILURE;
        }
    }

    let unhealthy = Arc::new(AtomicBool::new(false));
    {
        let (state, stop, unhealthy) = (state.clone(), stop.clone(), unhealthy.clone());
        let spawned = std::thread::Builder::new()
            .name("verge-health".into())
            .spawn(move || watch_health(&state, &stop, &unhealthy));
        if let Err(e) = spawned {
            eprintln!("verge: cannot start the health watcher: {e}");
            return ExitCode::FAILURE;
        }
    }

    if !args.upgrade {
        let mut listeners = verge_proxy::server::ensure_can_listen_all(&state.snapshot().config);
        if bundled {
            listeners = listeners.and_then(|()| {
                verge_proxy::server::ensure_can_listen("the demo origin", demo::DEMO_ADDR)
            });
        }
        if let Err(e) = listeners {
            eprintln!("verge: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    }
    let mut server = match verge_proxy::server::build(&state, args.upgrade) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("verge: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    if bundled {
        server.add_service(demo::service());
    }
    let config = state.snapshot().config.clone();
    tracing::info!(
        listen = ?config.server.listen,
        tls = ?config.server.tls.iter().map(|t| t.listen).collect::<Vec<_>>(),
        admin = %config.admin.listen,
        behaviors = config.behaviors.len(),
        "verge is serving"
    );
    server.run(RunArgs::default());
    stop.store(true, Ordering::Relaxed);
    if let Some(writer) = access_writer {
        writer.finish();
    }
    tracing::info!("verge stopped");
    if unhealthy.load(Ordering::Relaxed) {
        return ExitCode::from(EXIT_UNHEALTHY);
    }
    ExitCode::SUCCESS
}

/// How often the health watcher counts stuck fast-tier workers (a worker is declared stuck
/// after the hard ceiling, and draining takes seconds: a second more is nothing).
const HEALTH_TICK: Duration = Duration::from_secs(1);

/// DESIGN §3.2: a retired fast-tier worker stuck in a native call keeps its thread (and maybe
/// memory) until the call returns, and an edge instance parked at its hard memory ceiling
/// keeps both for good; past `server.max_stuck_workers` of them together the process is not
/// healthy. Then verge drains as on SIGTERM (requests in flight finish) and exits with
/// [`EXIT_UNHEALTHY`], for its supervisor to restart it.
fn watch_health(state: &ProxyState, stop: &AtomicBool, unhealthy: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(HEALTH_TICK);
        let limit = state.snapshot().config.server.max_stuck_workers;
        let parked = verge_functions::edge_pool::parked_instances();
        let stuck = state.functions.stuck_workers() + parked;
        if stuck >= limit {
            tracing::error!(
                stuck,
                parked,
                limit,
                "function threads are stuck in native calls or parked at their memory ceiling; \
                 draining and exiting for a restart"
            );
            unhealthy.store(true, Ordering::Relaxed);
            if let Err(e) = signal_hook::low_level::raise(signal_hook::consts::SIGTERM) {
                tracing::error!(error = %e, "cannot signal the shutdown; exiting now");
                std::process::exit(i32::from(EXIT_UNHEALTHY));
            }
            return;
        }
    }
}
