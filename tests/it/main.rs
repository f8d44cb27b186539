//! verge's integration tests: one binary, a real origin and the real proxy on `127.0.0.1:0`.

mod support;

mod bodies;
mod cli;
mod errors;
mod failover;
mod observability;
mod reload;
mod routing;
mod tls;
