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
    let _log_guard = cli::logging::init(match command {
        cli::Command::Serve(_) => cli::logging::Role::Serving,
        cli::Command::Validate(_) | cli::Command::TestFunction(_) => cli::logging::Role::OneShot,
    });
    match command {
        cli::Command::Serve(serve) => cli::serve::run(serve),
        cli::Command::Validate(validate) => cli::validate::run(&validate),
        cli::Command::TestFunction(test) => cli::test_function::run(&test),
    }
}
