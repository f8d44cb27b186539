//! Scheduling policies of the function threads (Linux `sched_setscheduler`; lowering a policy
//! needs no privilege). Threads give themselves theirs; the edge pool also lowers an instance
//! that missed its timeout, by its thread id, since that thread is busy in JavaScript.

/// How a thread asks to be scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// `SCHED_BATCH`: the normal share of CPU, but a wake-up does not preempt the running
    /// thread. Edge instances use it: on a core they share with the proxy thread, waking one
    /// for each queued invocation used to switch the core to it at once and back for the reply,
    /// ~0.7 context switches per request; without the preemption the proxy thread runs until
    /// it waits, and the instance then drains what was queued meanwhile (~0.15 per request).
    Batch,
    /// `SCHED_IDLE`: runs only when nothing else wants the CPU. A retired fast worker stuck in
    /// a native call uses it while it finishes, and so does an edge instance spinning past its
    /// timeout.
    Idle,
}

/// Give the calling thread `policy`. A failure (a kernel without the policy, a sandbox that
/// forbids the call) leaves the thread as it was and is only logged: the policy is an
/// optimization, never a condition for serving.
pub fn set_own(policy: Policy) {
    set_thread(0, policy);
}

/// The calling thread's id (what [`set_thread`] takes).
pub fn thread_id() -> i32 {
    // SAFETY: gettid(2) has no arguments and cannot fail.
    #[expect(unsafe_code, reason = "gettid(2) has no safe wrapper in std")]
    unsafe {
        libc::gettid()
    }
}

/// Give thread `tid` of this process (0: the calling thread) `policy`; a failure is only logged,
/// as for [`set_own`].
pub fn set_thread(tid: i32, policy: Policy) {
    let raw = match policy {
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
}

/// The calling thread's policy, as `sched_getscheduler` reports it (for tests).
#[cfg(test)]
pub fn own() -> i32 {
    // SAFETY: sched_getscheduler on the calling thread only reads.
    #[expect(
        unsafe_code,
        reason = "sched_getscheduler(2) has no safe wrapper in std"
    )]
    unsafe {
        libc::sched_getscheduler(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_takes_the_batch_policy_for_itself() {
        let policy = std::thread::spawn(|| {
            set_own(Policy::Batch);
            own()
        })
        .join()
        .unwrap();
        assert_eq!(policy, libc::SCHED_BATCH);
    }
}
