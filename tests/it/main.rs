//! verge's integration tests: one binary, a real origin and the real proxy on `127.0.0.1:0`.

#[cfg(test)]
mod support;

#[cfg(test)]
mod bodies;
#[cfg(test)]
mod cli;
#[cfg(test)]
mod custom_errors;
#[cfg(test)]
mod edge;
#[cfg(test)]
mod errors;
#[cfg(test)]
mod failover;
#[cfg(test)]
mod fetch;
#[cfg(test)]
mod functions;
#[cfg(test)]
mod include_body;
#[cfg(test)]
mod observability;
#[cfg(test)]
mod reload;
#[cfg(test)]
mod routing;
#[cfg(test)]
mod s3_origin;
#[cfg(test)]
mod setup_script;
#[cfg(test)]
mod tls;
#[cfg(test)]
mod upgrade;
#[cfg(test)]
mod viewer_connection;

/// Allocations are counted per thread, as the fast tier's memory limit needs.
#[global_allocator]
static ALLOCATOR: verge_functions::alloc_meter::CountingAllocator =
    verge_functions::alloc_meter::CountingAllocator;
