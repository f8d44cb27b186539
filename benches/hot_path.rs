//! Per-request work on verge's hot path, without the network: behavior matching over a
//! realistic behavior list, request ids, and rendering an error page.
//!
//! Run: `cargo bench --bench hot_path`
#![expect(
    clippy::expect_used,
    reason = "a bench with a broken fixture should stop loudly"
)]
#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented pub fn"
)]

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use verge_proxy::snapshot::Snapshot;

/// Allocations are counted per thread, as the fast tier's memory limit needs.
#[global_allocator]
static ALLOCATOR: verge_functions::alloc_meter::CountingAllocator =
    verge_functions::alloc_meter::CountingAllocator;

fn snapshot() -> Snapshot {
    let mut text = String::from("[origins.o]\nurl = \"http://127.0.0.1:1\"\n");
    for i in 0..20 {
        text.push_str(&format!(
            "[[behaviors]]\npath_pattern = \"/section{i}/*.html\"\norigin = \"o\"\n"
        ));
    }
    text.push_str("[[behaviors]]\npath_pattern = \"*\"\norigin = \"o\"\n");
    let config = verge_config::parse(&text, Path::new("bench.toml")).expect("valid config");
    let metrics = verge_proxy::metrics::Metrics::new().expect("metrics");
    Snapshot::build(Arc::new(config), 1, &metrics).expect("snapshot")
}

fn hot_path(c: &mut Criterion) {
    let s = snapshot();
    c.bench_function("behavior_match/21_patterns/last", |b| {
        b.iter(|| {
            s.behavior_for(black_box("/static/app/main.js"))
                .map(|(i, _)| i)
        })
    });
    c.bench_function("behavior_match/21_patterns/tenth", |b| {
        b.iter(|| {
            s.behavior_for(black_box("/section9/a/b/index.html"))
                .map(|(i, _)| i)
        })
    });
    c.bench_function("request_id", |b| b.iter(verge_proxy::request_id::next));
    c.bench_function("error_page/html", |b| {
        b.iter(|| {
            verge_proxy::error_page::render(
                502,
                verge_functions::ResultType::Error,
                black_box("0123456789abcdef0123456789abcdef"),
                "The origin o could not be reached.",
                false,
            )
        })
    });
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
