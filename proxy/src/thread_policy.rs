//! The scheduling policy of the threads that serve requests (`server.batch_scheduling`).
//!
//! On a core that a proxy thread shares with fast workers (a one-core machine, or more
//! functions than cores), every reply a worker sends wakes the proxy thread, and under Linux's
//! default policy the woken thread preempts the worker at once: the worker is cut off part way
//! through its queue, the proxy thread handles one reply and waits again, and the core switches
//! back. With `SCHED_BATCH` a wake-up does not preempt: the worker drains what is queued, then
//! the proxy thread handles every reply in one go. By hand, verge with a viewer-request and a
//! viewer-response function on one core switched less than half as often and served ~7% more
//! requests a second (BENCHMARKS.md, session 36). The thread keeps its normal share of the CPU;
//! what it gives up is running the instant it is woken while another thread holds its core.
//!
//! pingora starts its threads without a hook, so each thread settles its own policy on the
//! first request it serves, and again when a reload changes the setting: one thread-local read
//! per request otherwise.

use std::cell::Cell;

use verge_functions::sched::{self, Policy};

thread_local! {
    /// Whether this thread last gave itself `SCHED_BATCH` (`None`: never asked).
    static BATCH: Cell<Option<bool>> = const { Cell::new(None) };
}

/// Give the calling thread `SCHED_BATCH` when `batch`, the default policy otherwise, unless it
/// already has it. A refusal is logged by [`sched::set_thread`] and not asked again until the
/// setting changes: the policy is an optimization, never a condition for serving.
pub fn settle(batch: bool) {
    let _ = BATCH.try_with(|settled| {
        if settled.get() != Some(batch) {
            settled.set(Some(batch));
            sched::set_own(if batch { Policy::Batch } else { Policy::Normal });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use verge_functions::sched::own as policy;

    #[test]
    fn a_thread_takes_the_policy_asked_for_and_gives_it_back_when_the_setting_changes() {
        std::thread::spawn(|| {
            assert_eq!(policy(), libc::SCHED_OTHER);
            settle(true);
            assert_eq!(policy(), libc::SCHED_BATCH);
            // Asked again with the same setting: nothing changes (and no system call is made).
            settle(true);
            assert_eq!(policy(), libc::SCHED_BATCH);
            settle(false);
            assert_eq!(policy(), libc::SCHED_OTHER);
        })
        .join()
        .unwrap();
    }
}
