//! Scheduling of the function threads, by thread id (Linux):
//!
//! - policies (`sched_setscheduler`; lowering one needs no privilege): threads give themselves
//!   theirs, and a thread busy in JavaScript is lowered by another — an edge instance that
//!   missed its timeout by its caller, a retired fast worker by the supervisor;
//! - a fast worker cleaning up after an aborted runaway (dropping its context, loading a spare)
//!   lowers itself to idle for those milliseconds and comes back, where the process may come
//!   back ([`can_return_from_idle`]);
//! - CPU clocks: the fast pool's supervisor judges a worker by the CPU its invocation used, not
//!   by the wall time, which also counts the time the host gave the CPU to someone else.

/// How a thread asks to be scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// `SCHED_OTHER`: the default. Coming back to it from [`Policy::Idle`] needs
    /// `CAP_SYS_NICE` or an `RLIMIT_NICE` of at least 20 ([`can_return_from_idle`]).
    Normal,
    /// `SCHED_BATCH`: the normal share of CPU, but a wake-up does not preempt the running
    /// thread. Edge instances use it: on a core they share with the proxy thread, waking one
    /// for each queued invocation used to switch the core to it at once and back for the reply,
    /// ~0.7 context switches per request; without the preemption the proxy thread runs until
    /// it waits, and the instance then drains what was queued meanwhile (~0.15 per request).
    /// The proxy threads use it too (`server.batch_scheduling`), the other way round: a reply
    /// does not cut a fast worker off part way through its queue.
    Batch,
    /// `SCHED_IDLE`: runs only when nothing else wants the CPU. A retired fast worker stuck in
    /// a native call uses it while it finishes, and so does an edge instance spinning past its
    /// timeout.
    Idle,
}

/// Give the calling thread `policy`. A failure (a kernel without the policy, a sandbox that
/// forbids the call) leaves the thread as it was and is only logged: the policy is an
/// optimization, never a condition for serving. Whether it took.
pub fn set_own(policy: Policy) -> bool {
    set_thread(0, policy)
}

/// Whether a thread of this process may lower itself to [`Policy::Idle`] and then return to
/// [`Policy::Normal`]: Linux treats idle as nice 20 and lets an unprivileged thread come back
/// only as far as its `RLIMIT_NICE` allows (20 for nice 0), or with `CAP_SYS_NICE`. Probed once,
/// on a scratch thread, so no serving thread can be left at idle by a refused return.
pub fn can_return_from_idle() -> bool {
    static PROBED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *PROBED.get_or_init(|| {
        std::thread::Builder::new()
            .name("verge-sched-probe".into())
            .spawn(|| set_own(Policy::Idle) && set_own(Policy::Normal))
            .ok()
            .and_then(|probe| probe.join().ok())
            .unwrap_or(false)
    })
}

/// The calling thread's id (what [`set_thread`] takes).
pub fn thread_id() -> i32 {
    // SAFETY: gettid(2) has no arguments and cannot fail.
    #[expect(unsafe_code, reason = "gettid(2) has no safe wrapper in std")]
    unsafe {
        libc::gettid()
    }
}

/// CPU time thread `tid` of this process has used so far; `None` if the clock cannot be read
/// (the thread is gone). The fast pool's supervisor reads its workers' clocks this way.
pub fn cpu_time_of(tid: i32) -> Option<std::time::Duration> {
    // Linux names a thread's CPU clock by its id (what glibc's pthread_getcpuclockid returns for
    // a live thread): the id's complement shifted left by three, with the per-thread bit (4)
    // and the scheduler-clock bit (2) set. The id form works for any thread of the process,
    // not only one whose pthread handle is at hand.
    clock_time((!tid << 3) | 6)
}

/// What `clock` reads now; `None` if it cannot be read (a clock id naming no thread, say).
#[inline]
pub fn clock_time(clock: libc::clockid_t) -> Option<std::time::Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own; an invalid clock id is an EINVAL
    // return, not undefined behaviour.
    #[expect(unsafe_code, reason = "clock_gettime(2) has no safe wrapper in std")]
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    (rc == 0).then(|| std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

/// Give thread `tid` of this process (0: the calling thread) `policy`; a failure is only logged,
/// as for [`set_own`]. Whether it took.
pub fn set_thread(tid: i32, policy: Policy) -> bool {
    let raw = match policy {
        Policy::Normal => libc::SCHED_OTHER,
        Policy::Batch => libc::SCHED_BATCH,
        Policy::Idle => libc::SCHED_IDLE,
    };
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler on a thread id (or 0) with a valid, owned parameter; an id
    // that names no thread any more is an error return, not undefined behaviour.
    #[expect(
        unsafe_code,
        reason = "sched_setscheduler(2) has no safe wrapper in std"
    )]
    let rc = unsafe { libc::sched_setscheduler(tid, raw, &param) };
    if rc != 0 {
        tracing::debug!(
            ?policy,
            tid,
            error = %std::io::Error::last_os_error(),
            "cannot change a thread's scheduling policy"
        );
    }
    rc == 0
}

/// The calling thread's policy, as `sched_getscheduler` reports it (`libc::SCHED_*`).
pub fn own() -> i32 {
    of(0)
}

/// Thread `tid`'s policy (0: the calling thread), as `sched_getscheduler` reports it
/// (`libc::SCHED_*`, or -1 for a thread that is gone). Any thread on the machine the caller may
/// see: the tests read a spawned verge's threads this way.
pub fn of(tid: i32) -> i32 {
    // SAFETY: sched_getscheduler on a thread id only reads; a gone thread is an error return.
    #[expect(
        unsafe_code,
        reason = "sched_getscheduler(2) has no safe wrapper in std"
    )]
    unsafe {
        libc::sched_getscheduler(tid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_thread_takes_the_batch_policy_for_itself() {
        let policy = std::thread::spawn(|| {
            assert!(set_own(Policy::Batch));
            own()
        })
        .join()
        .unwrap();
        assert_eq!(policy, libc::SCHED_BATCH);
    }

    #[test]
    fn a_thread_that_may_return_from_idle_does_so() {
        let (idle, back) = std::thread::spawn(|| {
            let lowered = set_own(Policy::Idle);
            let idle = own();
            let returned = set_own(Policy::Normal);
            assert_eq!(returned, can_return_from_idle(), "the probe disagrees");
            assert!(lowered, "lowering needs no privilege");
            (idle, own())
        })
        .join()
        .unwrap();
        assert_eq!(idle, libc::SCHED_IDLE);
        if can_return_from_idle() {
            assert_eq!(back, libc::SCHED_OTHER);
        }
    }

    #[test]
    fn another_threads_cpu_clock_counts_its_computing_not_its_waiting() {
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let worker = std::thread::spawn(move || {
            tid_tx.send(thread_id()).unwrap();
            // Wait (no CPU), then compute for 100 ms of its own CPU time.
            go_rx.recv().unwrap();
            let start = crate::budget::thread_cpu_time();
            while crate::budget::thread_cpu_time() - start < Duration::from_millis(100) {
                std::hint::spin_loop();
            }
            go_rx.recv().unwrap();
        });
        let tid = tid_rx.recv().unwrap();
        let before = cpu_time_of(tid).expect("a live thread's clock");
        std::thread::sleep(Duration::from_millis(100));
        let waited = cpu_time_of(tid).unwrap() - before;
        assert!(
            waited < Duration::from_millis(20),
            "{waited:?} while waiting"
        );
        go_tx.send(()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while cpu_time_of(tid).unwrap() - before < Duration::from_millis(100) {
            assert!(
                std::time::Instant::now() < deadline,
                "the clock did not move"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        go_tx.send(()).unwrap();
        worker.join().unwrap();
        // The kernel releases the thread a moment after `join` returns.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while cpu_time_of(tid).is_some() {
            assert!(
                std::time::Instant::now() < deadline,
                "a gone thread's clock still read"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
