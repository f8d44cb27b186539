//! verge-functions: JavaScript edge functions for verge.
//!
//! The proxy talks to this crate only through `Send` data: it builds an [`Invocation`] (an owned
//! snapshot of the request, and of the response at the response hooks), hands it to a worker
//! pool, and gets back an [`Outcome`] — continue with edits, or answer with a generated
//! response — or a [`FunctionError`] carrying CloudFront's result type. No boa type crosses
//! this boundary: boa's values are `!Send` and live only on the pool's own threads.
//!
//! Behind the boundary, the fast tier (CloudFront Functions):
//! - [`fast_pool`]: worker threads that own their boa contexts, the shared bounded queue, reply
//!   deadlines, the hard-ceiling supervisor and throttling;
//! - [`cff_runtime`]: loading a function (script or ES module) and the budgeted invocation
//!   ([`budget`] measures CPU time, read through [`cpu_clock`]);
//! - [`cff_event`]: the CloudFront Functions event and the validation of what handlers return;
//! - [`host`]: the `crypto` and `cloudfront` modules, `console`, `atob`/`btoa`, 1.0 byte strings,
//!   size guards on allocation-heavy built-ins; [`buffer`]: `Buffer`; [`querystring`]; [`kvs`]:
//!   KeyValueStores; [`cwt`]: CBOR Web Tokens; [`regex_guard`]: catastrophic regexes; [`source_scan`]: load-time token
//!   checks (regex literals, the 1.0 language rules);
//! - [`test_function`]: `verge test-function`.
//!
//! The edge tier (Lambda@Edge):
//! - [`edge_pool`]: per function, instances that each own an OS thread, a current-thread tokio
//!   runtime and one boa context; the concurrency limit, timeouts, cold starts;
//! - [`edge_runtime`]: loading CommonJS or ES-module handlers, the `(event, context)` and
//!   callback forms, the event loop (promise jobs, timers, fetches) under the invocation's
//!   deadline;
//! - [`edge_event`]: the `Records[0].cf` event, written straight onto the JS heap, and the
//!   validation of what handlers return; [`edge_context`]: Lambda's `context` and `callback`;
//! - [`edge_host`]: Node-style globals and modules; [`edge_fetch`] and [`edge_tls`]: `fetch` to
//!   allowed origins.
//!
//! Shared: [`job_queue`] (promise jobs run one at a time); [`js_json`] (events into the JS heap)
//! and [`returned`] (results out of it); `grouped` (names with their values, grouped once);
//! [`alloc_meter`] (bytes allocated and held per thread, and the hard memory ceiling the
//! allocator enforces while JavaScript runs); [`sched`] (the function threads' scheduling
//! policies).

pub mod alloc_meter;
pub mod budget;
pub mod buffer;
pub mod calendar;
pub mod cff_event;
pub mod cff_runtime;
mod collector;
pub mod cpu_clock;
pub mod cwt;
pub mod deferred;
pub mod edge_context;
pub mod edge_event;
pub mod edge_fetch;
#[cfg(test)]
mod edge_fixtures;
pub mod edge_host;
pub mod edge_pool;
pub mod edge_runtime;
pub mod edge_tls;
pub mod encoding;
pub mod fast_pool;
pub mod first_touch;
mod grouped;
pub mod host;
pub(crate) mod host_core;
mod invocation;
pub mod job_queue;
pub mod js_json;
mod json_parse;
pub mod kvs;
pub mod load_check;
pub mod origin_choice;
mod outcome;
pub mod querystring;
pub mod regex_guard;
pub mod returned;
pub mod sched;
pub mod signature;
pub mod source_scan;
pub mod test_function;

/// This crate's unit tests count allocations as the `verge` binary does.
#[cfg(test)]
#[global_allocator]
static ALLOCATOR: alloc_meter::CountingAllocator = alloc_meter::CountingAllocator;

pub use edge_pool::{EdgePool, Occupancy};
pub use fast_pool::{FastPool, Generation, PoolConfig, Reply};
pub use invocation::{
    EdgeOrigin, HeaderList, Invocation, RequestBody, RequestSnapshot, ResponseSnapshot,
};
pub use origin_choice::{OriginChoice, OriginKind, OriginOverrides, OriginUpdate};
pub use outcome::{
    Edits, FunctionError, FunctionErrorKind, GeneratedResponse, HeaderEdits, Outcome, ResultType,
};
pub use verge_config::{FunctionDef, Hook, Runtime};
