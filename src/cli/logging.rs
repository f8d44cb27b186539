//! Logging: JSON lines on stdout (stderr for commands whose stdout is their result) through a
//! non-blocking writer (a slow terminal or pipe never stalls a proxy thread), filtered by
//! `RUST_LOG` (default `info`). pingora's `log` records are bridged into `tracing`.

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::util::SubscriberInitExt;

/// Install the global subscriber writing to stdout (`to_stdout`) or stderr; keep the guard
/// alive until exit so buffered lines are written.
pub fn init(to_stdout: bool) -> WorkerGuard {
    let builder = tracing_appender::non_blocking::NonBlockingBuilder::default()
        // Never drop access-log lines silently: under sustained overload, writers wait.
        .lossy(false);
    let (writer, guard) = if to_stdout {
        builder.finish(std::io::stdout())
    } else {
        builder.finish(std::io::stderr())
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_target(true)
        .with_env_filter(filter)
        .with_writer(writer)
        .finish();
    if let Err(e) = subscriber.try_init() {
        eprintln!("verge: logging is not available: {e}");
    }
    guard
}
