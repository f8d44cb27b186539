//! Per-invocation cost of CloudFront Functions, split the way the time is spent: grouping the
//! event's fields (marshal in, Rust side), the JS call itself (event objects written into the
//! context, handler, result read off it), checking the result against the event and turning it
//! into edits (marshal out, Rust side), and the whole round trip
//! through the fast pool (hand-off included). For a no-op, the security-headers function, the
//! load benchmark's A/B rewrite and its JWT check;
//! and the edge tier's no-op Lambda@Edge handler: the call on a loaded instance, and the round
//! trip through the edge pool (instance thread, event built and read back, hand-off).
//!
//! Run: `cargo bench --bench functions`
#![expect(
    clippy::expect_used,
    reason = "a bench with a broken fixture should stop loudly"
)]
#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented pub fn"
)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
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

fn per_invocation(c: &mut Criterion) {
    for (name, inv) in [
        ("noop", invocation(NOOP, Hook::ViewerRequest)),
        (
            "security_headers",
            invocation(SECURITY_HEADERS, Hook::ViewerResponse),
        ),
        ("ab_rewrite", invocation(AB_REWRITE, Hook::ViewerRequest)),
        ("jwt", jwt_invocation()),
    ] {
        // As the fast pool holds it: shared with the event's deferred parts.
        let inv = std::rc::Rc::new(inv);
        let (hook, code) = (inv.hook, inv.function.code.clone());
        let code = &*code;
        let event = match hook {
            Hook::ViewerResponse => CffEvent::viewer_response(&inv),
            _ => CffEvent::viewer_request(&inv),
        }
        .deferring(&inv);
        c.bench_function(&format!("{name}/marshal_in"), |b| {
            b.iter(|| match hook {
                Hook::ViewerResponse => CffEvent::viewer_response(black_box(&inv)),
                _ => CffEvent::viewer_request(black_box(&inv)),
            })
        });
        let mut loaded =
            LoadedFunction::load(code, verge_functions::Runtime::CloudfrontJs2).expect("loads");
        let returned = loaded
            .invoke(&event, Duration::from_millis(1))
            .result
            .expect("runs");
        c.bench_function(&format!("{name}/call"), |b| {
            b.iter(|| loaded.invoke(black_box(&event), Duration::from_millis(1)))
        });
        c.bench_function(&format!("{name}/marshal_out"), |b| {
            b.iter(|| match hook {
                Hook::ViewerResponse => {
                    cff_event::viewer_response_outcome(&event, black_box(returned.clone()))
                }
                _ => cff_event::viewer_request_outcome(&event, black_box(returned.clone())),
            })
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let pool = FastPool::start(PoolConfig::default()).expect("pool");
        c.bench_function(&format!("{name}/pool_round_trip"), |b| {
            b.iter(|| runtime.block_on(pool.invoke((*inv).clone(), Duration::from_millis(1))))
        });
    }
}

fn edge_per_invocation(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    // As an instance does after its first answer.
    verge_functions::edge_runtime::prepare_to_serve();
    let cases = [
        ("edge_noop", EDGE_NOOP, Hook::OriginRequest),
        ("edge_route", EDGE_ROUTE, Hook::OriginRequest),
        (
            "edge_response_header",
            EDGE_RESPONSE_HEADER,
            Hook::OriginResponse,
        ),
    ];
    for (name, code, hook) in cases {
        let inv = edge_invocation_at(code, hook);
        let mut loaded =
            verge_functions::edge_runtime::EdgeFunction::load("bench", code).expect("loads");
        // An instance takes each invocation into an `Rc` (the event's parts built on first
        // touch hold it weakly); one made once here leaves out an allocation a call.
        let shared = std::rc::Rc::new(inv.clone());
        c.bench_function(&format!("{name}/call"), |b| {
            b.iter(|| {
                local.block_on(
                    &runtime,
                    loaded.invoke(black_box(&shared), Duration::from_secs(5)),
                )
            })
        });
        let pool = verge_functions::EdgePool::new([inv.function.clone()]);
        c.bench_function(&format!("{name}/pool_round_trip"), |b| {
            b.iter(|| runtime.block_on(pool.invoke(inv.clone())))
        });
    }
}

criterion_group!(benches, per_invocation, edge_per_invocation);
criterion_main!(benches);
