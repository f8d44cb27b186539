//! Command-line interface: argument parsing and one module per subcommand.

pub mod demo;
pub mod logging;
pub mod serve;
pub mod test_function;
pub mod validate;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Exit status for a configuration that cannot be used.
pub const EXIT_BAD_CONFIG: u8 = 64;

/// Exit status after draining because too many fast-tier workers were stuck (EX_SOFTWARE).
pub const EXIT_UNHEALTHY: u8 = 70;

/// verge — run CloudFront Functions and Lambda@Edge code unmodified, in front of your origin.
#[derive(Debug, Parser)]
#[command(name = "verge", version, about)]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy. Without --config: the bundled example in front of a built-in demo origin.
    Serve(ServeArgs),
    /// Check a configuration file; prints one `FILE:LINE:COL: field.path: message` per error.
    Validate(ValidateArgs),
    /// Run a function on an event file offline; prints AWS TestFunction's fields as JSON, plus
    /// `ValidationErrors` (what production would reject).
    TestFunction(TestFunctionArgs),
}

impl Default for Command {
    fn default() -> Self {
        Command::Serve(ServeArgs::default())
    }
}

/// `verge serve`
#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// The configuration file (TOML).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Take over the listening sockets of a running verge (pingora graceful upgrade; send the
    /// old process SIGQUIT).
    #[arg(long, short)]
    pub upgrade: bool,
    /// How often the configuration files are checked for changes, in milliseconds; 0 turns file
    /// watching off (SIGHUP still reloads).
    #[arg(long, default_value_t = 500)]
    pub watch_interval_ms: u64,
}

/// `verge test-function`
#[derive(Debug, Args)]
pub struct TestFunctionArgs {
    /// The function's JavaScript file.
    #[arg(long)]
    pub function: PathBuf,
    /// The event (JSON): a CloudFront Functions event, or with `--runtime lambda-edge` a
    /// Lambda@Edge one (`Records[0].cf`, its hook from `config.eventType`).
    #[arg(long)]
    pub event: PathBuf,
    /// cloudfront-js-1.0, cloudfront-js-2.0 or lambda-edge.
    #[arg(long, default_value = "cloudfront-js-2.0")]
    pub runtime: String,
    /// A CloudFront KeyValueStore import file for the function.
    #[arg(long)]
    pub kvs: Option<PathBuf>,
    /// A CloudFront Function's CPU budget, e.g. "900us" (at most 1ms); a lambda-edge handler
    /// runs under its hook's timeout instead.
    #[arg(long, default_value = "900us")]
    pub budget: String,
}

/// `verge validate`
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The configuration file (TOML).
    #[arg(long, short)]
    pub config: PathBuf,
}
