//! verge: an edge-function reverse proxy. `verge serve`, `verge validate`; see the README.

mod cli;

use std::process::ExitCode;

use clap::Parser;

/// Allocations are counted per thread, as the fast tier's memory limit needs.
#[global_allocator]
static ALLOCATOR: verge_functions::alloc_meter::CountingAllocator =
    verge_functions::alloc_meter::CountingAllocator;

fn main() -> ExitCode {
    verge_functions::alloc_meter::tune_allocator();
    let args = cli::Cli::parse();
    let command = args.command.unwrap_or_default();
    // `validate` and `test-function` print their result on stdout; their logs go to stderr,
    // warnings and errors only unless `RUST_LOG` asks for more: a one-shot command's stderr is
    // for what went wrong, not for the engine's start-up notes.
    let serving = matches!(command, cli::Command::Serve(_));
    let _log_guard = if serving {
        cli::logging::init(cli::logging::Output::Stdout, "info")
    } else {
        cli::logging::init(cli::logging::Output::Stderr, "warn")
    };
    match command {
        cli::Command::Serve(serve) => cli::serve::run(serve),
        cli::Command::Validate(validate) => cli::validate::run(&validate),
        cli::Command::TestFunction(test) => cli::test_function::run(&test),
    }
}
