//! verge-proxy: the reverse proxy — a pingora `ProxyHttp` implementation with CloudFront-style
//! behaviors, origins and origin groups, error pages, metrics and hot-reloaded configuration.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = verge_config::load(std::path::Path::new("verge.toml"))?;
//! let state = verge_proxy::ProxyState::new(config)?;
//! let server = verge_proxy::server::build(&state, false)?;
//! server.run_forever();
//! # }
//! ```
//!
//! Map: [`service`] is the one `ProxyHttp` impl, each phase delegating to [`stage`];
//! [`state`] holds the published [`snapshot`] and reloads it, [`reload_watch`] tells it when; [`origin`] and [`dns`] make
//! pingora peers, [`function_route`] turns a function's origin choice into a route, [`header_list`] applies a
//! function's header list, [`headers`] are verge's own and [`header_case`] decides how all are
//! written; [`request_body`] holds
//! the body include-body functions read; [`error_page`] renders what verge answers itself; [`metrics`] and [`admin`]
//! are observability; [`server`] assembles pingora's server ([`thread_policy`] schedules its threads), [`embed`] serves the same apps
//! from an accept loop of your own (tests).

pub mod access_log;
pub mod admin;
pub mod ctx;
pub mod digits;
pub mod dns;
pub mod embed;
pub mod error_page;
pub mod function_route;
pub mod header_case;
pub mod header_list;
pub mod headers;
pub mod metrics;
pub mod origin;
pub mod reload_watch;
pub mod request_body;
pub mod request_id;
pub mod s3_sign;
pub mod server;
pub mod service;
pub mod snapshot;
pub mod stage;
pub mod state;
pub mod thread_policy;
pub mod tls;

pub use access_log::AccessLog;
pub use state::{ProxyState, ReloadReport, StartError};
