use std::time::{Duration, Instant};

use verge_config::Hook;

use super::*;
use crate::edge_fixtures::{def, invocation};
use crate::outcome::Outcome;

const WAIT_THEN_ANSWER: &str = "exports.handler = async (event) => {
    const ms = Number(event.Records[0].cf.request.querystring.split('=')[1]);
    await new Promise((r) => setTimeout(r, ms));
    return event.Records[0].cf.request;
};";

fn inv_waiting(f: &Arc<FunctionDef>, ms: u64) -> Invocation {
    let mut inv = invocation(f, Hook::ViewerRequest);
    inv.request.querystring = format!("ms={ms}");
    inv
}

fn is_limit(reply: &Reply) -> bool {
    matches!(&reply.result, Err(e) if e.kind == FunctionErrorKind::Throttled && e.edge)
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_serve_concurrently_up_to_the_limit_and_the_excess_is_refused() {
    let f = def(WAIT_THEN_ANSWER, 2, Duration::from_secs(5));
    let pool = Arc::new(EdgePool::new([f.clone()]));
    let started = Instant::now();
    let calls: Vec<_> = (0..2)
        .map(|_| {
            let (pool, inv) = (pool.clone(), inv_waiting(&f, 500));
            tokio::spawn(async move { pool.invoke(inv).await })
        })
        .collect();
    // Both instances are busy for 500 ms: a third call waits briefly, then is refused.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let refused = pool.invoke(inv_waiting(&f, 0)).await;
    assert!(is_limit(&refused), "{:?}", refused.result);
    for call in calls {
        let reply = call.await.unwrap();
        assert!(
            matches!(reply.result, Ok(Outcome::Continue(_))),
            "{:?}",
            reply.result
        );
    }
    // The two ran side by side, not one after the other.
    assert!(
        started.elapsed() < Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    let (_, stats) = pool.stats().next().unwrap();
    assert_eq!(stats.cold_starts.load(Ordering::Relaxed), 2);
    assert_eq!(stats.concurrency_refusals.load(Ordering::Relaxed), 1);
    // Warm now: the next call reuses an instance.
    assert!(pool.invoke(inv_waiting(&f, 0)).await.result.is_ok());
    assert_eq!(stats.cold_starts.load(Ordering::Relaxed), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spinning_instance_is_answered_at_its_timeout_while_others_keep_working() {
    // One instance spins on CPU after an await; the other waits on a timer meanwhile.
    let code = "exports.handler = async (event) => {
        const q = event.Records[0].cf.request.querystring;
        await null;
        if (q === 'spin') { for (;;) {} }
        await new Promise((r) => setTimeout(r, 100));
        return event.Records[0].cf.request;
    };";
    // The calm call includes a cold start, which an unoptimized build under the parallel suite
    // can stretch to most of a second: the spin's timeout leaves it room, and the calm answer
    // must still come well before it (so it did not wait for the spinning instance).
    let timeout = Duration::from_millis(2000);
    let f = def(code, 2, timeout);
    let pool = Arc::new(EdgePool::new([f.clone()]));
    let mut spin = invocation(&f, Hook::OriginRequest);
    spin.request.querystring = "spin".into();
    let spinning = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            (pool.invoke(spin).await, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    let calm = pool.invoke(invocation(&f, Hook::OriginRequest)).await;
    let calm_took = started.elapsed();
    assert!(calm.result.is_ok(), "{:?}", calm.result);
    assert!(
        calm_took < timeout - Duration::from_millis(300),
        "{calm_took:?}"
    );
    let (reply, took) = spinning.await.unwrap();
    assert!(is_limit(&reply), "{:?}", reply.result);
    assert!(took >= timeout, "{took:?}");
    assert!(took < timeout + Duration::from_secs(3), "{took:?}");
    // Its slot is free again: a new instance (a cold start) answers.
    let again = pool.invoke(invocation(&f, Hook::OriginRequest)).await;
    assert!(again.result.is_ok(), "{:?}", again.result);
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_instances_end_with_their_pool() {
    let f = def(WAIT_THEN_ANSWER, 4, Duration::from_secs(5));
    let pool = EdgePool::new([f.clone()]);
    for _ in 0..20 {
        let reply = pool.invoke(inv_waiting(&f, 0)).await;
        assert!(reply.result.is_ok(), "{:?}", reply.result);
    }
    let queue = pool.functions[&f.name].queue.clone();
    assert!(queue.live() >= 1);
    // A replaced snapshot drops its pool: the idle instances' threads end.
    drop(pool);
    let deadline = Instant::now() + Duration::from_secs(10);
    while queue.live() > 0 {
        assert!(Instant::now() < deadline, "an instance thread did not end");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn invocations_beyond_the_instances_wait_their_turn_within_the_instance_wait() {
    let f = def(WAIT_THEN_ANSWER, 1, Duration::from_secs(5));
    let pool = Arc::new(EdgePool::new([f.clone()]));
    // Warm, so the turns below are not charged a cold start.
    assert!(pool.invoke(inv_waiting(&f, 0)).await.result.is_ok());
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let (pool, inv) = (pool.clone(), inv_waiting(&f, 10));
            tokio::spawn(async move { pool.invoke(inv).await })
        })
        .collect();
    // One instance, three calls of 10 ms: the last starts about 20 ms in, within the 100 ms wait.
    for call in calls {
        let reply = call.await.unwrap();
        assert!(reply.result.is_ok(), "{:?}", reply.result);
    }
    let (_, stats) = pool.stats().next().unwrap();
    assert_eq!(stats.cold_starts.load(Ordering::Relaxed), 1);
    assert_eq!(stats.concurrency_refusals.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_right_after_the_first_answer_is_served_warm() {
    // After its first answer an instance makes its collector headroom, which can outlast the
    // moment a queued call waits before getting an instance of its own: without counting on
    // the instance coming back, 3 of 20 pools here cold-started a second one at that moment
    // (and the call took 15–18 ms instead of a few).
    // Only a call that waited out the whole instance wait (a thread starved that long by the
    // rest of the suite) may get one.
    for round in 0..60 {
        let f = def(WAIT_THEN_ANSWER, 8, Duration::from_secs(5));
        let pool = EdgePool::new([f.clone()]);
        let reply = pool.invoke(inv_waiting(&f, 0)).await;
        assert!(reply.result.is_ok(), "{:?}", reply.result);
        let started = Instant::now();
        let reply = pool.invoke(inv_waiting(&f, 0)).await;
        let took = started.elapsed();
        assert!(reply.result.is_ok(), "{:?}", reply.result);
        let (_, stats) = pool.stats().next().unwrap();
        let cold_starts = stats.cold_starts.load(Ordering::Relaxed);
        assert!(
            cold_starts == 1 || took >= INSTANCE_WAIT,
            "round {round}: the second call started an instance of its own ({cold_starts} cold \
             starts) after waiting only {took:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_slow_invocations_gets_an_instance_each_up_to_the_limit() {
    let f = def(WAIT_THEN_ANSWER, 32, Duration::from_secs(5));
    let pool = Arc::new(EdgePool::new([f.clone()]));
    let started = Instant::now();
    let calls: Vec<_> = (0..32)
        .map(|_| {
            let (pool, inv) = (pool.clone(), inv_waiting(&f, 300));
            tokio::spawn(async move { pool.invoke(inv).await })
        })
        .collect();
    // Below the limit nothing is refused: once, under a full `make test`, one of the 32 was,
    // when callers' timers fired out of queue order (see `Queue::nudge`).
    let mut refused = 0;
    for call in calls {
        let reply = call.await.unwrap();
        match &reply.result {
            Ok(_) => {}
            Err(e) if e.kind == FunctionErrorKind::Throttled => refused += 1,
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(refused, 0, "{refused} of 32 refused");
    // Side by side, not in turns of 300 ms (9.6 s), and never more instances than the limit
    // (under a heavy load an instance that finished may take a late task: fewer is fine).
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let (_, stats) = pool.stats().next().unwrap();
    assert!(stats.cold_starts.load(Ordering::Relaxed) <= 32);
    assert_eq!(stats.concurrency_refusals.load(Ordering::Relaxed), 0);
}

/// Scheduling policies (`/proc` field 41) of this process's threads named `name`.
fn policies_of_threads_named(name: &str) -> Vec<i32> {
    let mut policies = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let stat = std::fs::read_to_string(task.unwrap().path().join("stat")).unwrap_or_default();
        // `pid (comm) state …`: the name may hold spaces, so fields count from the last ')'.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if head.split_once('(').map(|(_, comm)| comm) != Some(name) {
            continue;
        }
        if let Some(policy) = rest.split_whitespace().nth(41 - 3) {
            policies.push(policy.parse().unwrap());
        }
    }
    policies
}

#[tokio::test(flavor = "multi_thread")]
async fn instance_threads_run_with_the_batch_policy() {
    let f = Arc::new(FunctionDef {
        name: "sched-probe".into(),
        ..(*def(WAIT_THEN_ANSWER, 2, Duration::from_secs(5))).clone()
    });
    let pool = EdgePool::new([f.clone()]);
    assert!(pool.invoke(inv_waiting(&f, 0)).await.result.is_ok());
    // Thread names are cut to 15 bytes: "verge-edge-sche".
    let policies = policies_of_threads_named("verge-edge-sche");
    assert!(!policies.is_empty(), "no instance thread found");
    assert!(
        policies.iter().all(|p| *p == libc::SCHED_BATCH),
        "{policies:?}"
    );
}

/// A function of one instance with a 300 ms timeout that spins after an `await` when its query
/// string is `spin`, and answers otherwise; `name` names its instance threads (the first 15
/// bytes of "verge-edge-NAME").
fn spin_probe(name: &str) -> Arc<FunctionDef> {
    let code = "exports.handler = async (event) => {
        const q = event.Records[0].cf.request.querystring;
        await null;
        if (q === 'spin') { for (;;) {} }
        return event.Records[0].cf.request;
    };";
    Arc::new(FunctionDef {
        name: name.into(),
        ..(*def(code, 1, Duration::from_millis(300))).clone()
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_spinning_past_its_timeout_is_lowered_to_idle() {
    // One instance, spinning after an await: the loop backstop is seconds of CPU away.
    let f = spin_probe("idle-probe");
    let pool = EdgePool::new([f.clone()]);
    let mut spin = invocation(&f, Hook::OriginRequest);
    spin.request.querystring = "spin".into();
    let reply = pool.invoke(spin).await;
    assert!(is_limit(&reply), "{:?}", reply.result);
    // Thread names are cut to 15 bytes: "verge-edge-idle". The spinning thread now runs only
    // on idle CPU.
    let policies = policies_of_threads_named("verge-edge-idle");
    assert_eq!(policies, vec![libc::SCHED_IDLE]);
    let (_, stats) = pool.stats().next().unwrap();
    assert_eq!(stats.timeouts.load(Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timed_out_instance_hands_its_place_to_a_new_one_while_it_still_spins() {
    // One instance; the spinning one is stopped only by the loop backstop, seconds of CPU away
    // (at idle priority), so it is still there when the next invocations come.
    let f = spin_probe("hand-probe");
    let pool = EdgePool::new([f.clone()]);
    let spin = || {
        let mut inv = invocation(&f, Hook::OriginRequest);
        inv.request.querystring = "spin".into();
        inv
    };
    let reply = pool.invoke(spin()).await;
    assert!(is_limit(&reply), "{:?}", reply.result);
    // Thread names are cut to 15 bytes: "verge-edge-hand".
    assert_eq!(
        policies_of_threads_named("verge-edge-hand"),
        vec![libc::SCHED_IDLE]
    );
    // The function's capacity is back at once: a new instance answers while the old one spins.
    let calm = pool.invoke(invocation(&f, Hook::OriginRequest)).await;
    assert!(calm.result.is_ok(), "{:?}", calm.result);
    let mut policies = policies_of_threads_named("verge-edge-hand");
    policies.sort_unstable();
    assert_eq!(policies, vec![libc::SCHED_BATCH, libc::SCHED_IDLE]);
    let (_, stats) = pool.stats().next().unwrap();
    assert_eq!(stats.cold_starts.load(Ordering::Relaxed), 2);
    // A second runaway while the first still retires: at most `instances` hand their place
    // over, so this one keeps it and the function is at its limit until a thread ends.
    let reply = pool.invoke(spin()).await;
    assert!(is_limit(&reply), "{:?}", reply.result);
    let refused = pool.invoke(invocation(&f, Hook::OriginRequest)).await;
    assert!(is_limit(&refused), "{:?}", refused.result);
    assert_eq!(stats.concurrency_refusals.load(Ordering::Relaxed), 1);
    assert_eq!(stats.timeouts.load(Ordering::Relaxed), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_spinning_after_its_caller_left_is_lowered_at_the_timeout_all_the_same() {
    let f = spin_probe("left-probe");
    let pool = EdgePool::new([f.clone()]);
    // Warm, so the spinning invocation is taken at once.
    let warm = pool.invoke(invocation(&f, Hook::OriginRequest)).await;
    assert!(warm.result.is_ok(), "{:?}", warm.result);
    let mut spin = invocation(&f, Hook::OriginRequest);
    spin.request.querystring = "spin".into();
    // The viewer hangs up 250 ms in (the warm instance took the task at once; its own timeout,
    // 300 ms from then plus the grace, has not come): the caller is dropped unanswered.
    let left = tokio::time::timeout(Duration::from_millis(250), pool.invoke(spin)).await;
    assert!(left.is_err(), "answered before the caller left: {left:?}");
    // Thread names are cut to 15 bytes: "verge-edge-left". Past the timeout (300 ms and the
    // grace), the spinning thread runs only on idle CPU.
    let mut policies = Vec::new();
    for _ in 0..100 {
        policies = policies_of_threads_named("verge-edge-left");
        if policies == [libc::SCHED_IDLE] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(policies, vec![libc::SCHED_IDLE]);
    let (_, stats) = pool.stats().next().unwrap();
    assert_eq!(stats.timeouts.load(Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_whose_timeout_passed_during_a_cold_start_is_not_started_afterwards() {
    // The cold start (400 ms of top-level code) outlasts the 100 ms timeout, which runs from
    // when the instance took the task: its caller is answered without it, and the instance,
    // once loaded, must not run it for nobody.
    let code = "var t = Date.now(); while (Date.now() - t < 400) {}
        var n = 0;
        exports.handler = async (event) => {
            n += 1;
            const r = event.Records[0].cf.request;
            r.headers['x-n'] = [{key: 'x-n', value: String(n)}];
            return r;
        };";
    let f = def(code, 1, Duration::from_millis(100));
    let pool = EdgePool::new([f.clone()]);
    let late = pool.invoke(invocation(&f, Hook::OriginRequest)).await;
    assert!(is_limit(&late), "{:?}", late.result);
    // Refused (and taken back, never run) while the instance still loads.
    let mut reply = pool.invoke(invocation(&f, Hook::OriginRequest)).await;
    for _ in 0..50 {
        if !is_limit(&reply) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        reply = pool.invoke(invocation(&f, Hook::OriginRequest)).await;
    }
    let Ok(Outcome::Continue(edits)) = reply.result else {
        panic!("{:?}", reply.result)
    };
    let Some(crate::HeaderEdits::Whole(headers)) = edits.headers else {
        panic!("the handler's headers, whole: {:?}", edits.headers)
    };
    let n: Vec<_> = headers.iter().filter(|(k, _)| k == "x-n").collect();
    assert_eq!(n.len(), 1, "{headers:?}");
    assert_eq!(n[0].1, b"1", "the timed-out task ran after all");
    let (_, stats) = pool.stats().next().unwrap();
    assert_eq!(stats.cold_starts.load(Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_allocating_without_end_in_one_job_is_answered_parked_and_replaced() {
    // After the `await`, the loop runs as one promise job: no deadline or memory check reaches
    // it, and the loop backstop is minutes away. Only the allocator's hard ceiling stops it.
    let code = "exports.handler = async (event) => {
        const q = event.Records[0].cf.request.querystring;
        await null;
        if (q === 'hog') { const kept = []; for (;;) { kept.push(new Array(1024).fill(q)); } }
        return event.Records[0].cf.request;
    };";
    let f = Arc::new(FunctionDef {
        memory_mb: 16,
        ..(*def(code, 1, Duration::from_secs(30))).clone()
    });
    let pool = EdgePool::new([f.clone()]);
    let parked_before = parked_instances();
    let mut hog = invocation(&f, Hook::OriginRequest);
    hog.request.querystring = "hog".into();
    let started = Instant::now();
    let reply = pool.invoke(hog).await;
    let took = started.elapsed();
    // Lambda's answer to a function out of memory, from the instance itself: long before the
    // 30 s timeout the caller would otherwise wait for.
    let e = reply
        .result
        .expect_err("the hog was answered with a result");
    assert_eq!(e.kind, FunctionErrorKind::Execution, "{}", e.message);
    assert!(e.message.contains("16 MB (memory_mb)"), "{}", e.message);
    assert!(took < Duration::from_secs(15), "{took:?}");
    let (_, stats) = pool.stats().next().unwrap();
    assert_eq!(stats.parked.load(Ordering::Relaxed), 1);
    assert_eq!(stats.timeouts.load(Ordering::Relaxed), 0);
    assert!(parked_instances() > parked_before);
    // The parked instance gave its place to a replacement: with one instance allowed, the
    // next invocation is served, by a second cold start.
    let next = pool.invoke(invocation(&f, Hook::OriginRequest)).await;
    assert!(
        matches!(next.result, Ok(Outcome::Continue(_))),
        "{:?}",
        next.result
    );
    assert_eq!(stats.cold_starts.load(Ordering::Relaxed), 2);
}
