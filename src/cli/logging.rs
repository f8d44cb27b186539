//! Logging: JSON lines on stdout (stderr for commands whose stdout is their result) through a
//! non-blocking writer (a slow terminal or pipe never stalls a proxy thread), filtered by
//! `RUST_LOG` (default `info` when serving, `warn` for the one-shot commands). pingora's `log`
//! records are bridged into `tracing`.

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::util::SubscriberInitExt;

/// Where log lines go.
pub enum Output {
    Stdout,
    Stderr,
}

/// Install the global subscriber writing to `output`, at `default_level` unless `RUST_LOG`
/// says otherwise; keep the guard alive until exit so buffered lines are written.
pub fn init(output: Output, default_level: &str) -> WorkerGuard {
    let builder = tracing_appender::non_blocking::NonBlockingBuilder::default()
        // Never drop access-log lines silently: under sustained overload, writers wait.
        .lossy(false);
    let (writer, guard) = match output {
        Output::Stdout => builder.finish(std::io::stdout()),
        Output::Stderr => builder.finish(std::io::stderr()),
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
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
