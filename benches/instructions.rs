//! Instruction counts per invocation, for `valgrind --tool=callgrind`, which counts the same
//! for the same binary and input whatever else the machine is doing. One phase per run:
//!
//! `VERGE_PHASE=noop/call VERGE_ITERATIONS=1000 valgrind --tool=callgrind target/release/deps/instructions-…`
//!
//! Phases: `{noop,security_headers,ab_rewrite,jwt}/{marshal_in,call,marshal_out,load,pool_round_trip}`, split as in
//! `benches/functions.rs` (the event's JS objects are written inside `call`), and the edge
//! tier's `edge_noop/{call,load,pool_round_trip}`, `edge_route/call` (the load benchmark's
//! origin-request router) and `edge_response_header/call` (an origin-response handler adding a
//! header). `VERGE_REQUEST=load` measures the load
//! benchmark's request instead of a browser's (`benches/support/invocations.rs`).
//! `scripts/instructions.sh` runs each phase at two iteration counts and reports the difference
//! per iteration, so set-up (loading the function, starting the pool) cancels out.
#![expect(
    clippy::expect_used,
    reason = "a bench with a broken fixture should stop loudly"
)]

use std::hint::black_box;
use std::time::Duration;

use verge_config::Hook;
use verge_functions::cff_event::{self, CffEvent};
use verge_functions::cff_runtime::LoadedFunction;
use verge_functions::{FastPool, PoolConfig};

#[path = "support/invocations.rs"]
mod invocations;
use invocations::{
    AB_REWRITE, EDGE_NOOP, EDGE_RESPONSE_HEADER, EDGE_ROUTE, NOOP, SECURITY_HEADERS,
    edge_invocation_at, invocation, jwt_invocation,
};

/// Allocations are counted per thread, as the fast tier's memory limit needs.
#[global_allocator]
static ALLOCATOR: verge_functions::alloc_meter::CountingAllocator =
    verge_functions::alloc_meter::CountingAllocator;

fn main() {
    let phase = std::env::var("VERGE_PHASE").unwrap_or_default();
    let iterations: u32 = std::env::var("VERGE_ITERATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let Some((function, step)) = phase.split_once('/') else {
        // `cargo bench` runs every bench target; without a phase there is nothing to count.
        eprintln!("instructions: set VERGE_PHASE (see scripts/instructions.sh)");
        return;
    };
    if function == "edge_noop" {
        edge(EDGE_NOOP, Hook::OriginRequest, step, iterations);
        return;
    }
    if function == "edge_route" {
        edge(EDGE_ROUTE, Hook::OriginRequest, step, iterations);
        return;
    }
    if function == "edge_response_header" {
        edge(EDGE_RESPONSE_HEADER, Hook::OriginResponse, step, iterations);
        return;
    }
    let inv = match function {
        "noop" => invocation(NOOP, Hook::ViewerRequest),
        "security_headers" => invocation(SECURITY_HEADERS, Hook::ViewerResponse),
        "ab_rewrite" => invocation(AB_REWRITE, Hook::ViewerRequest),
        "jwt" => jwt_invocation(),
        other => {
            eprintln!(
                "instructions: unknown function {other} (noop, security_headers, ab_rewrite, jwt)"
            );
            std::process::exit(2);
        }
    };
    // As the fast pool holds it: shared with the event's deferred parts.
    let inv = std::rc::Rc::new(inv);
    let (hook, code) = (inv.hook, inv.function.code.clone());
    let code = &*code;
    let event = match hook {
        Hook::ViewerResponse => CffEvent::viewer_response(&inv),
        _ => CffEvent::viewer_request(&inv),
    }
    .deferring(&inv);
    // Under valgrind everything runs tens of times slower: budgets and deadlines are lifted so
    // only instructions are measured, never a timeout.
    let budget = Duration::from_secs(10);
    let mut loaded =
        LoadedFunction::load(code, verge_functions::Runtime::CloudfrontJs2).expect("loads");
    let returned = loaded.invoke(&event, budget).result.expect("runs");
    if hook == Hook::ViewerRequest
        && returned
            .as_ref()
            .and_then(|r| r.get("statusCode"))
            .is_some()
    {
        // A viewer-request function here passes the request on; the JWT check refusing its
        // token, say, would count the wrong path.
        eprintln!("instructions: {function} answered with a response instead of the request");
        std::process::exit(2);
    }
    match step {
        "marshal_in" => {
            for _ in 0..iterations {
                black_box(match hook {
                    Hook::ViewerResponse => CffEvent::viewer_response(black_box(&inv)),
                    _ => CffEvent::viewer_request(black_box(&inv)),
                });
            }
        }
        "call" => {
            for _ in 0..iterations {
                black_box(loaded.invoke(black_box(&event), budget));
            }
        }
        "marshal_out" => {
            for _ in 0..iterations {
                black_box(match hook {
                    Hook::ViewerResponse => {
                        cff_event::viewer_response_outcome(&event, returned.clone())
                    }
                    _ => cff_event::viewer_request_outcome(&event, returned.clone()),
                })
                .ok();
            }
        }
        "load" => {
            // A whole context load: what a worker pays after discarding an aborted context.
            for _ in 0..iterations {
                black_box(
                    LoadedFunction::load(black_box(code), verge_functions::Runtime::CloudfrontJs2)
                        .expect("loads"),
                );
            }
        }
        "pool_round_trip" => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let pool = FastPool::start(PoolConfig {
                hard_ceiling: Duration::from_secs(60),
                reply_deadline: Duration::from_secs(60),
                start_deadline: Duration::from_secs(60),
                ..PoolConfig::default()
            })
            .expect("pool");
            let generation = pool.warm(vec![inv.function.clone()]).expect("warm");
            for _ in 0..iterations {
                black_box(runtime.block_on(pool.invoke_in(&generation, (*inv).clone(), budget)));
            }
        }
        other => {
            eprintln!(
                "instructions: unknown phase {other} (marshal_in, call, marshal_out, load, pool_round_trip)"
            );
            std::process::exit(2);
        }
    }
}

/// A Lambda@Edge handler `code` at `hook`: a call on a loaded instance, or the round trip
/// through the edge pool.
fn edge(code: &str, hook: Hook, step: &str, iterations: u32) {
    let inv = edge_invocation_at(code, hook);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let timeout = Duration::from_secs(10);
    match step {
        "call" => {
            let local = tokio::task::LocalSet::new();
            let mut loaded =
                verge_functions::edge_runtime::EdgeFunction::load("bench", code).expect("loads");
            // As an instance does after its first answer.
            verge_functions::edge_runtime::prepare_to_serve();
            // An instance takes each invocation into an `Rc`; one made once here leaves out an
            // allocation a call.
            let shared = std::rc::Rc::new(inv);
            for _ in 0..iterations {
                black_box(local.block_on(&runtime, loaded.invoke(black_box(&shared), timeout)));
            }
        }
        "load" => {
            // A cold start: a fresh context, the host's preludes, the handler's top level.
            for _ in 0..iterations {
                black_box(
                    verge_functions::edge_runtime::EdgeFunction::load("bench", black_box(code))
                        .expect("loads"),
                );
            }
        }
        "pool_round_trip" => {
            let pool = verge_functions::EdgePool::new([inv.function.clone()]);
            for _ in 0..iterations {
                black_box(runtime.block_on(pool.invoke(inv.clone())));
            }
        }
        other => {
            eprintln!("instructions: unknown edge phase {other} (call, load, pool_round_trip)");
            std::process::exit(2);
        }
    }
}
