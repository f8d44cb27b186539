//! Logging: JSON lines on stdout (stderr for commands whose stdout is their result) through a
//! non-blocking writer (a slow terminal or pipe never stalls a proxy thread), filtered by
//! `RUST_LOG` (default `info` when serving, `warn` for the one-shot commands). pingora's `log`
//! records are bridged into `tracing`.

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::util::SubscriberInitExt;

/// What the process is doing, which decides where its log lines go and what they hold.
pub enum Role {
    /// `serve`: logs (the access log among them) are its output, on stdout, from `info` up.
    Serving,
    /// `validate`, `test-function`: the result is on stdout, so logs go to stderr, and only
    /// what went wrong (`warn` up): a one-shot command's stderr is not for start-up notes.
    OneShot,
}

/// Install the global subscriber for `role`, its default level overridden by `RUST_LOG`; keep
/// the guard alive until exit so buffered lines are written.
pub fn init(role: Role) -> WorkerGuard {
    let builder = tracing_appender::non_blocking::NonBlockingBuilder::default()
        // Never drop access-log lines silently: under sustained overload, writers wait.
        .lossy(false);
    let (writer, guard, default_level) = match role {
        Role::Serving => {
            let (writer, guard) = builder.finish(std::io::stdout());
            (writer, guard, "info")
        }
        Role::OneShot => {
            let (writer, guard) = builder.finish(std::io::stderr());
            (writer, guard, "warn")
        }
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
