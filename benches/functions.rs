//! Per-invocation cost of CloudFront Functions, split the way the time is spent: building the
//! event (marshal in, Rust side), the JS call itself (event into the context, handler, result
//! out of it), reading the result back (marshal out, Rust side), and the whole round trip
//! through the fast pool (hand-off included). For a no-op and the security-headers function.
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
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use verge_config::{FunctionDef, Hook, Pos, Runtime};
use verge_functions::cff_event;
use verge_functions::cff_runtime::LoadedFunction;
use verge_functions::{FastPool, Invocation, PoolConfig, RequestSnapshot, ResponseSnapshot};

/// Allocations are counted per thread, as the fast tier's memory limit needs.
#[global_allocator]
static ALLOCATOR: verge_functions::alloc_meter::CountingAllocator =
    verge_functions::alloc_meter::CountingAllocator;

const NOOP: &str = "function handler(event) { return event.request; }";
const SECURITY_HEADERS: &str = "function handler(event) {
    var h = event.response.headers;
    h['strict-transport-security'] = { value: 'max-age=63072000; includeSubdomains; preload' };
    h['x-content-type-options'] = { value: 'nosniff' };
    h['x-frame-options'] = { value: 'DENY' };
    h['referrer-policy'] = { value: 'same-origin' };
    return event.response;
}";

fn invocation(code: &str, hook: Hook) -> Invocation {
    let header = |n: &str, v: &str| (n.to_owned(), v.as_bytes().to_vec());
    Invocation {
        function: Arc::new(FunctionDef {
            name: "bench".into(),
            runtime: Runtime::CloudfrontJs2,
            code_path: "bench.js".into(),
            code: Arc::from(code),
            kvs: None,
            budget: Duration::from_millis(1),
            enforce_size_limit: true,
            fail_open: false,
            pos: Pos::START,
        }),
        hook,
        request_id: "0123456789abcdef0123456789abcdef".into(),
        request: RequestSnapshot {
            method: "GET".into(),
            uri: "/media/index.html".into(),
            querystring: "id=42&lang=en".into(),
            has_query: true,
            headers: vec![
                header("host", "www.example.com"),
                header("user-agent", "Mozilla/5.0 (X11; Linux x86_64)"),
                header("accept", "text/html,application/xhtml+xml"),
                header("accept-language", "en-US,en;q=0.9"),
                header("cookie", "session=abc123; ab=b"),
            ],
            client_ip: "203.0.113.9".parse().expect("ip"),
        },
        response: (hook == Hook::ViewerResponse).then(|| ResponseSnapshot {
            status: 200,
            headers: vec![
                header("content-type", "text/html; charset=utf-8"),
                header("content-length", "1234"),
                header("cache-control", "max-age=60"),
            ],
        }),
        kvs: None,
    }
}

fn per_invocation(c: &mut Criterion) {
    for (name, code, hook) in [
        ("noop", NOOP, Hook::ViewerRequest),
        ("security_headers", SECURITY_HEADERS, Hook::ViewerResponse),
    ] {
        let inv = invocation(code, hook);
        let event = match hook {
            Hook::ViewerResponse => cff_event::viewer_response_event(&inv),
            _ => cff_event::viewer_request_event(&inv),
        };
        c.bench_function(&format!("{name}/marshal_in"), |b| {
            b.iter(|| match hook {
                Hook::ViewerResponse => cff_event::viewer_response_event(black_box(&inv)),
                _ => cff_event::viewer_request_event(black_box(&inv)),
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
                    cff_event::viewer_response_outcome(&inv, &event, black_box(returned.clone()))
                }
                _ => cff_event::viewer_request_outcome(&inv, &event, black_box(returned.clone())),
            })
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let pool = FastPool::start(PoolConfig::default()).expect("pool");
        c.bench_function(&format!("{name}/pool_round_trip"), |b| {
            b.iter(|| runtime.block_on(pool.invoke(inv.clone(), Duration::from_millis(1))))
        });
    }
}

criterion_group!(benches, per_invocation);
criterion_main!(benches);
