//! verge: an edge-function reverse proxy. `verge serve`, `verge validate`; see the README.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let _log_guard = cli::logging::init();
    match args.command.unwrap_or_default() {
        cli::Command::Serve(serve) => cli::serve::run(serve),
        cli::Command::Validate(validate) => cli::validate::run(&validate),
        cli::Command::TestFunction(test) => cli::test_function::run(&test),
    }
}
