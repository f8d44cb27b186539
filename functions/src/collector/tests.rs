use std::time::Duration;

use verge_config::Runtime;

use super::*;

/// Whether boa collected by itself while `garbage_bytes` of its objects were made and dropped
/// (the worker never collects here).
fn engine_collected_during(garbage_bytes: usize) -> bool {
    let watch = CollectorWatch::arm();
    for _ in 0..garbage_bytes / 1024 {
        drop(boa_engine::gc::Gc::new([0u8; 1024]));
    }
    watch.collected()
}

#[test]
fn headroom_keeps_the_engine_from_collecting_until_the_worker_does() {
    // Each test runs on a thread of its own, with boa's collector state of its own.
    let garbage = 8 << 20;
    let without = std::thread::spawn(move || {
        force_collect();
        engine_collected_during(garbage)
    });
    assert!(
        without.join().unwrap(),
        "without headroom the engine collects within 8 MiB (it starts at 1 MiB)"
    );
    let with = std::thread::spawn(move || {
        make_headroom(2 * garbage);
        // Twice over, with the worker's collection between: the headroom stays.
        let first = engine_collected_during(garbage);
        force_collect();
        (first, engine_collected_during(garbage))
    });
    assert_eq!(with.join().unwrap(), (false, false));
}

#[test]
fn the_first_idle_moment_makes_headroom_and_later_ones_collect() {
    std::thread::spawn(|| {
        let mut policy = CollectionPolicy::new();
        assert!(engine_collected_during(2 << 20), "no headroom yet");
        // Without a context there is nothing to make room for.
        policy.when_idle(false);
        assert!(
            engine_collected_during(2 << 20),
            "headroom made by a worker with no context"
        );
        policy.when_idle(true);
        assert!(
            !engine_collected_during(8 << 20),
            "headroom made at the first idle moment"
        );
        policy.invocations = 3;
        let watch = CollectorWatch::arm();
        policy.when_idle(true);
        assert!(watch.collected(), "a later idle moment collects");
        assert_eq!(policy.invocations, 0);
    })
    .join()
    .unwrap();
}

#[test]
fn a_worker_busy_from_its_start_makes_headroom_after_its_first_invocation() {
    use crate::cff_runtime::LoadedFunction;
    std::thread::spawn(|| {
        let mut f = LoadedFunction::load(
            "function handler(e) { return e.request; }",
            Runtime::CloudfrontJs2,
        )
        .unwrap();
        let event = serde_json::json!({"request": {"uri": "/"}});
        let mut policy = CollectionPolicy::new();
        assert!(f.invoke(&event, Duration::from_secs(5)).result.is_ok());
        // No idle moment came first: the worker went straight on to its next job.
        policy.after_invocation("f");
        assert!(
            !engine_collected_during(8 << 20),
            "the engine still collects by itself after the worker's first invocation"
        );
        // Its own schedule is the default one, not halved by the engine's collections.
        for _ in 0..20 {
            assert!(f.invoke(&event, Duration::from_secs(5)).result.is_ok());
            policy.after_invocation("f");
        }
        assert_eq!(policy.after_bytes, GC_AFTER_BYTES);
        assert_eq!(policy.after_invocations, GC_AFTER_INVOCATIONS);
    })
    .join()
    .unwrap();
}

#[test]
fn headroom_leaves_nothing_behind() {
    std::thread::spawn(|| {
        force_collect();
        let held = crate::alloc_meter::Held::now();
        make_headroom(32 << 20);
        // The ballast is freed: what the thread holds grew by far less than it.
        assert!(held.grown() < 1 << 20, "{} bytes still held", held.grown());
    })
    .join()
    .unwrap();
}

#[test]
fn a_collection_the_engine_started_by_itself_makes_the_worker_collect_sooner() {
    use crate::cff_runtime::LoadedFunction;
    let garbage = "function handler(e) { var a = []; \
                   for (var i = 0; i < 2000; i++) { a.push({i: i}); } return e.request; }";
    let mut f = LoadedFunction::load(garbage, Runtime::CloudfrontJs2).unwrap();
    let event = serde_json::json!({"request": {"uri": "/"}});
    // A collection the worker started (loading, discarding a context) is not the engine's.
    let mut policy = CollectionPolicy::new();
    // As if the headroom were made, but with the engine's trigger left at its 1 MiB: the
    // engine collects by itself as it would once a context's live heap outgrows the headroom.
    HEADROOM_MADE.with(|h| h.set(ENGINE_HEADROOM));
    force_collect();
    policy.after_invocation("f");
    assert_eq!(policy.after_bytes, GC_AFTER_BYTES);
    // With the worker's own triggers out of reach, only the engine's can collect: ~400 KB of
    // objects per invocation reach its 1 MiB within a few invocations.
    policy.after_bytes = u64::MAX;
    policy.after_invocations = u32::MAX;
    for _ in 0..50 {
        assert!(f.invoke(&event, Duration::from_secs(5)).result.is_ok());
        let engine_collected = policy.after_invocation("f");
        // The pool counts what the policy reports (`verge_functions_engine_collections`).
        assert_eq!(engine_collected, policy.after_bytes != u64::MAX);
        if engine_collected {
            break;
        }
    }
    assert_eq!(policy.after_bytes, u64::MAX / 2);
    assert_eq!(policy.after_invocations, u32::MAX / 2);
    // Collected just now, by the worker: counting starts again.
    assert_eq!(policy.invocations, 0);
    // Halving stops at a floor.
    for _ in 0..80 {
        drop(boa_engine::gc::Gc::new(0u8));
        boa_engine::gc::force_collect();
        policy.after_invocation("f");
    }
    assert_eq!(policy.after_bytes, 64 * 1024);
    assert_eq!(policy.after_invocations, 8);
}

#[test]
fn headroom_is_made_once_per_thread_for_a_given_size() {
    let made = std::thread::spawn(|| {
        let forced = || FORCED.with(std::cell::Cell::get);
        let start = forced();
        make_headroom_once(1 << 20);
        let first = forced() - start;
        make_headroom_once(1 << 20);
        make_headroom_once(512 << 10);
        let again = forced() - start;
        make_headroom_once(2 << 20);
        (first, again, forced() - start)
    });
    // One collection each time ballast is made: once, not again for the same or a smaller
    // size, once more for a larger one.
    assert_eq!(made.join().unwrap(), (1, 1, 2));
}

#[test]
fn an_edge_instance_prepared_to_serve_leaves_the_engine_room_to_allocate() {
    let garbage = 3 << 20;
    let collected_after = |serve: bool| {
        std::thread::spawn(move || {
            let code = "exports.handler = async (event) => event.Records[0].cf.request;";
            let loaded = crate::edge_runtime::EdgeFunction::load("edge", code).unwrap();
            if serve {
                crate::edge_runtime::prepare_to_serve();
            }
            let collected = engine_collected_during(garbage);
            drop(loaded);
            collected
        })
        .join()
        .unwrap()
    };
    assert!(
        collected_after(false),
        "with boa's own trigger, 3 MiB of garbage after a load is collected"
    );
    assert!(
        !collected_after(true),
        "with the edge headroom (4 MiB), it is not"
    );
}
