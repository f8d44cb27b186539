//! `verge validate --config FILE`: every error on its own line as `FILE:LINE:COL: path: message`,
//! exit 0 when the configuration would load.

use std::process::ExitCode;

use super::{EXIT_BAD_CONFIG, ValidateArgs};

/// Run the subcommand.
pub fn run(args: &ValidateArgs) -> ExitCode {
    // The same checks a start or a reload makes: the configuration, then the snapshot (CA files,
    // certificates, what this build can run).
    let checked = verge_config::load(&args.config).and_then(verge_proxy::state::check);
    match checked {
        Ok(config) => {
            println!(
                "{}: ok ({} behaviors, {} origins, {} functions)",
                args.config.display(),
                config.behaviors.len(),
                config.origins.len(),
                config.functions.len()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors.0 {
                println!("{e}");
            }
            ExitCode::from(EXIT_BAD_CONFIG)
        }
    }
}
