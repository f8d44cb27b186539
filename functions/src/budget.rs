//! CPU-time budgets. The budget is CPU time of the invocation, as CloudFront's compute
//! utilization is: time the worker thread spends queued or preempted is never charged.
//!
//! The cheap wall clock (`Instant`) is checked at every yield; only when it passes the deadline
//! is the thread's CPU clock read to confirm, so a preempted worker carries on. The CPU clock is
//! also read when a run starts and ends; on a fast worker that is a system call only when the
//! thread was switched out since the last one ([`crate::cpu_clock`]).

use std::time::{Duration, Instant};

/// The largest budget a fast-tier function may have (CloudFront's ~1 ms).
pub const MAX_BUDGET: Duration = Duration::from_millis(1);

/// The most bytes one invocation may allocate (counted by [`crate::alloc_meter`]), whatever it
/// frees again. Far above what a function doing its job allocates within 1 ms of CPU.
pub const MEMORY_LIMIT: u64 = 64 << 20;

/// CPU time consumed by the calling thread (zero if the clock cannot be read, which
/// `CLOCK_THREAD_CPUTIME_ID` always can): see [`crate::cpu_clock::thread_cpu_time`].
#[inline]
pub fn thread_cpu_time() -> Duration {
    crate::cpu_clock::thread_cpu_time()
}

thread_local! {
    /// CPU time this thread spent in [`exempt`] work so far.
    static EXEMPT: std::cell::Cell<Duration> = const { std::cell::Cell::new(Duration::ZERO) };
}

/// Run `f` without charging its CPU time to the budget of the invocation running on this
/// thread: for work the host does on a function's behalf that a different load would have done
/// before the invocation (installing a host module on its first use).
pub fn exempt<R>(f: impl FnOnce() -> R) -> R {
    let start = thread_cpu_time();
    let out = f();
    let spent = thread_cpu_time().saturating_sub(start);
    EXEMPT.with(|e| e.set(e.get() + spent));
    out
}

fn exempt_so_far() -> Duration {
    EXEMPT.with(std::cell::Cell::get)
}

/// Budget checks (engine yields and promise jobs) up to which a spent budget is not yet
/// trusted as the function's own doing. A function that really runs its budget down in the VM
/// reaches hundreds of yields first (one per 256 cost units); a trivial one makes a handful. When
/// a budget is spent within this few, the CPU went elsewhere: a native built-in doing big work,
/// or the host — on a VM, time stolen by the hypervisor while the thread ran can count in its
/// CPU clock (seen: a trivial function "using" 5 ms, once in ~500,000 invocations under load;
/// the cause was not pinned down).
const FEW_CHECKS: u32 = 16;

/// One invocation's budget.
///
/// A budget spent within `FEW_CHECKS` does not abort the run at once: it may go on for one
/// budget more, so that it can finish and be confirmed by running it again (see
/// `cff_runtime`). What it used is still measured from its start, so the run fails its budget
/// unless the re-run, with a strict budget, passes.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    limit: Duration,
    /// CPU time after which the run is stopped at the next check: the limit, or twice it once
    /// extended.
    abort_after: Duration,
    /// Whether a budget spent early may be extended (not for a confirming re-run).
    may_extend: bool,
    /// Budget checks so far.
    checks: u32,
    cpu_start: Duration,
    /// The thread's [`exempt`] CPU time when the run started.
    exempt_start: Duration,
    /// When the run started, by the wall clock.
    wall_start: Instant,
    /// When the wall clock says the budget might be used up; pushed back when the CPU clock
    /// shows the thread was preempted.
    wall_deadline: Instant,
    /// The thread's allocation count when the invocation started.
    allocated_start: u64,
    /// [`Budget::exhausted`] said stop.
    stopped: bool,
}

impl Budget {
    /// Start charging `limit` of CPU time now.
    pub fn start(limit: Duration) -> Self {
        let now = Instant::now();
        Budget {
            limit,
            abort_after: limit,
            may_extend: true,
            checks: 0,
            cpu_start: thread_cpu_time(),
            exempt_start: exempt_so_far(),
            wall_start: now,
            wall_deadline: now + limit,
            allocated_start: crate::alloc_meter::allocated(),
            stopped: false,
        }
    }

    /// Bytes allocated by this invocation so far.
    pub fn allocated(&self) -> u64 {
        crate::alloc_meter::allocated().saturating_sub(self.allocated_start)
    }

    /// Whether the invocation allocated more than [`MEMORY_LIMIT`].
    pub fn over_memory(&self) -> bool {
        self.allocated() > MEMORY_LIMIT
    }

    /// CPU time used so far, less what [`exempt`] work took. A reading at or past the limit is
    /// taken again by the system call's clock ([`crate::cpu_clock::thread_cpu_time_exact`]):
    /// overruns are judged on the kernel's own count.
    pub fn used(&self) -> Duration {
        let used = self.used_by(thread_cpu_time());
        if used < self.limit {
            return used;
        }
        self.used_by(crate::cpu_clock::thread_cpu_time_exact())
    }

    fn used_by(&self, now: Duration) -> Duration {
        let exempt = exempt_so_far().saturating_sub(self.exempt_start);
        now.saturating_sub(self.cpu_start).saturating_sub(exempt)
    }

    /// What an overrun looks like in an error message: CPU time used against the budget, and
    /// the wall time it took. Wall time far above CPU time means the thread was preempted
    /// (which is not charged); the two close together on a run that should be quick point at
    /// time the host took that the CPU clock still counted.
    pub fn overrun_detail(&self, used: Duration) -> String {
        format!(
            "{} µs of CPU against a budget of {} µs, in {} µs of wall time",
            used.as_micros(),
            self.limit.as_micros(),
            self.wall_start.elapsed().as_micros()
        )
    }

    /// Start charging `limit` with no extension: for confirming an overrun by running again.
    pub fn strict(limit: Duration) -> Self {
        Budget {
            may_extend: false,
            ..Budget::start(limit)
        }
    }

    /// Whether the run must stop now. Costs one `Instant::now()` unless the wall deadline
    /// passed. A budget spent within `FEW_CHECKS` is extended once by one budget.
    pub fn exhausted(&mut self) -> bool {
        self.checks = self.checks.saturating_add(1);
        if Instant::now() < self.wall_deadline {
            return false;
        }
        let used = self.used();
        if used >= self.abort_after {
            if !self.spent_early() || self.abort_after > self.limit {
                self.stopped = true;
                return true;
            }
            self.abort_after = self.limit * 2;
        }
        // Preempted, or extended: allow the CPU time still owed.
        self.wall_deadline = Instant::now() + (self.abort_after - used.min(self.abort_after));
        false
    }

    /// Whether an overrun may not be the function's own work (see `FEW_CHECKS`), so running
    /// it again with a strict budget is the fair test.
    pub fn spent_early(&self) -> bool {
        self.may_extend && self.checks <= FEW_CHECKS
    }

    /// Whether [`Budget::exhausted`] stopped the run (the CPU budget, not another limit).
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Whether this budget may still be doubted and confirmed by a strict re-run (it is not
    /// itself the strict re-run).
    pub fn may_extend(&self) -> bool {
        self.may_extend
    }

    /// Compute utilization as CloudFront reports it: used / budget × 100, capped at 100.
    pub fn utilization(&self) -> u32 {
        self.utilization_of(self.used())
    }

    /// Compute utilization for a CPU time already read (saves a clock syscall).
    pub fn utilization_of(&self, used: Duration) -> u32 {
        ((used.as_secs_f64() / self.limit.as_secs_f64()) * 100.0)
            .clamp(0.0, 100.0)
            .round() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_work_exhausts_the_budget_and_sleeping_does_not() {
        let mut b = Budget::start(Duration::from_millis(2));
        std::thread::sleep(Duration::from_millis(20));
        assert!(!b.exhausted(), "sleeping is not CPU time");
        let spin_until = Instant::now() + Duration::from_millis(200);
        let mut spent = false;
        while Instant::now() < spin_until {
            if b.exhausted() {
                spent = true;
                break;
            }
        }
        assert!(spent);
        assert_eq!(b.utilization(), 100);
    }

    /// Burn this thread's CPU time (not wall time) for `d`.
    fn burn(d: Duration) {
        let until = thread_cpu_time() + d;
        while thread_cpu_time() < until {
            std::hint::spin_loop();
        }
    }

    #[test]
    fn exempt_work_is_not_charged() {
        let limit = Duration::from_millis(20);
        let mut b = Budget::strict(limit);
        exempt(|| burn(limit * 3));
        assert!(!b.exhausted(), "{:?} charged", b.used());
        assert!(b.used() < limit, "{:?}", b.used());
        burn(limit * 2);
        assert!(b.exhausted(), "the function's own work still is");
    }

    #[test]
    fn a_budget_spent_within_a_few_checks_is_extended_once_and_a_strict_one_never() {
        let limit = Duration::from_millis(2);
        let mut b = Budget::start(limit);
        burn(limit + limit / 2);
        assert!(
            !b.exhausted(),
            "spent at the first check: extended by one budget"
        );
        assert!(b.spent_early());
        burn(limit);
        assert!(b.exhausted(), "the extension is one budget, once");
        let mut strict = Budget::strict(limit);
        burn(limit + limit / 2);
        assert!(strict.exhausted());
        assert!(!strict.spent_early());
        // Many checks before the budget runs out: the function's own work, no extension.
        let mut busy = Budget::start(limit);
        for _ in 0..=FEW_CHECKS {
            assert!(!busy.exhausted());
        }
        burn(limit + limit / 2);
        assert!(busy.exhausted());
        assert!(!busy.spent_early());
    }
}
