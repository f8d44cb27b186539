//! A fast-tier worker's CPU clock, read without a system call while the thread has not been
//! switched out.
//!
//! Budgets are CPU time (`CLOCK_THREAD_CPUTIME_ID`), and reading that clock is a system call
//! (~0.5 µs on the VMs measured) whose return is also a point where the kernel may switch the
//! worker out for the proxy thread sharing its core. Each invocation read it at least once, at
//! its start.
//!
//! A thread's CPU time runs exactly as the wall clock does for as long as the thread stays on
//! its CPU. So after one real reading (the anchor), the CPU time is the anchor plus the wall time
//! since, until the thread is next switched out. What tells that it was: the control page of a
//! per-thread perf event (`perf_event_open(2)`, a software task clock that counts nothing
//! verge reads). The kernel rewrites that page, bumping its `lock` sequence, every time it
//! schedules the thread in again. `lock` unchanged since the anchor means no switch since, and
//! the wall clock stands in for the CPU clock; changed, and the clock is read again.
//!
//! Time the host takes from a running vCPU, and interrupts served on the thread's time, may be
//! counted by the wall clock and not by the kernel's CPU clock: the estimate can read high,
//! never low. An anchor is trusted for [`ANCHOR_LIFETIME`] at most, which bounds that error to
//! what the host took within it. A budget reading at or past its limit is taken again by the
//! system call ([`thread_cpu_time_exact`], used by `Budget::used`), so overruns are judged on
//! the kernel's own count; a run's start, an estimate, can still read high by that bound, and
//! the run be charged that much less.
//!
//! Where the event cannot be opened (`perf_event_paranoid` 3, a seccomp filter) or the page is
//! not seen to change across a sleep when the clock is set up, every reading is the system call.
//! Only threads that ask ([`use_on_this_thread`]) get the fast path: the fast pool's workers.

use std::cell::RefCell;
use std::time::{Duration, Instant};

/// `struct perf_event_attr` as of its first version (`PERF_ATTR_SIZE_VER0`, 64 bytes): the
/// kernel takes a shorter attr from older callers and zeroes the rest.
#[repr(C)]
struct PerfEventAttr {
    kind: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    /// Bit flags: `exclude_kernel` is bit 5, `exclude_hv` bit 6; `disabled` (bit 0) clear.
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
}

const PERF_TYPE_SOFTWARE: u32 = 1;
const PERF_COUNT_SW_TASK_CLOCK: u64 = 1;
const EXCLUDE_KERNEL: u64 = 1 << 5;
const EXCLUDE_HV: u64 = 1 << 6;
/// `PERF_FLAG_FD_CLOEXEC`: the event's fd is not inherited by a program verge would start.
const FD_CLOEXEC_FLAG: libc::c_ulong = 1 << 3;
/// How long a real reading stands in for the CPU clock without a switch: the most the
/// estimate can count of time the host took from the running vCPU. Under load an anchor lasts
/// about 25 invocations anyway (0.04 system calls a request, BENCHMARKS.md session 35).
const ANCHOR_LIFETIME: Duration = Duration::from_millis(1);
/// Where `lock` sits in `struct perf_event_mmap_page` (after `version` and `compat_version`).
const LOCK_OFFSET: usize = 8;

/// One thread's event and its mapped control page.
struct SwitchWatch {
    fd: libc::c_int,
    page: *mut libc::c_void,
    page_len: usize,
}

impl SwitchWatch {
    /// Open a task clock event on the calling thread and map its control page.
    fn open() -> Option<Self> {
        let attr = PerfEventAttr {
            kind: PERF_TYPE_SOFTWARE,
            size: std::mem::size_of::<PerfEventAttr>() as u32,
            config: PERF_COUNT_SW_TASK_CLOCK,
            sample_period: 0,
            sample_type: 0,
            read_format: 0,
            flags: EXCLUDE_KERNEL | EXCLUDE_HV,
            wakeup_events: 0,
            bp_type: 0,
            config1: 0,
        };
        // SAFETY: perf_event_open reads `attr` (ours, `size` bytes long) and returns a new fd or
        // -1; pid 0 and cpu -1 mean this thread on any CPU, group -1 none.
        #[expect(
            unsafe_code,
            reason = "perf_event_open(2) has no wrapper in std or libc"
        )]
        let fd = unsafe {
            libc::syscall(
                libc::SYS_perf_event_open,
                &attr as *const PerfEventAttr,
                0,
                -1,
                -1,
                FD_CLOEXEC_FLAG,
            )
        };
        if fd < 0 {
            return None;
        }
        let fd = fd as libc::c_int;
        // SAFETY: sysconf has no memory effects.
        #[expect(unsafe_code, reason = "sysconf(3) has no safe wrapper in std")]
        let page_len = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
        // SAFETY: maps the event's control page (one page, read-only, shared with the kernel);
        // the result is checked against MAP_FAILED before any use.
        #[expect(unsafe_code, reason = "mmap(2) of a perf event has no safe wrapper")]
        let page = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                page_len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if page == libc::MAP_FAILED {
            // SAFETY: closes the fd opened above, which nothing else holds.
            #[expect(unsafe_code, reason = "close(2) of a raw fd")]
            unsafe {
                libc::close(fd);
            }
            return None;
        }
        Some(SwitchWatch { fd, page, page_len })
    }

    /// The page's sequence: changes whenever the kernel schedules this thread in.
    fn sequence(&self) -> u32 {
        // SAFETY: the page is mapped for as long as `self` lives and is at least a page long;
        // the kernel writes it, so the read is volatile.
        #[expect(unsafe_code, reason = "a read of a page the kernel shares with us")]
        let seq = unsafe {
            std::ptr::read_volatile(self.page.cast::<u8>().add(LOCK_OFFSET).cast::<u32>())
        };
        std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
        seq
    }
}

impl Drop for SwitchWatch {
    fn drop(&mut self) {
        // SAFETY: unmaps the page mapped in `open` and closes its fd; neither is used after.
        #[expect(unsafe_code, reason = "munmap(2) and close(2) of what `open` made")]
        unsafe {
            libc::munmap(self.page, self.page_len);
            libc::close(self.fd);
        }
    }
}

/// A real reading of the CPU clock, and the wall time and switch sequence it was taken at.
#[derive(Clone, Copy)]
struct Anchor {
    cpu: Duration,
    wall: Instant,
    sequence: u32,
}

/// The calling thread's fast clock: its watch, and the last real reading if still usable.
struct FastClock {
    watch: SwitchWatch,
    anchor: Option<Anchor>,
}

impl FastClock {
    fn now(&mut self) -> Duration {
        if let Some(anchor) = self.anchor
            && self.watch.sequence() == anchor.sequence
        {
            let since = anchor.wall.elapsed();
            if since < ANCHOR_LIFETIME {
                return anchor.cpu + since;
            }
        }
        self.read()
    }

    /// A real reading, which becomes the anchor.
    fn read(&mut self) -> Duration {
        let before = self.watch.sequence();
        let wall = Instant::now();
        let cpu = syscall_cpu_time();
        // A switch between the two readings leaves no anchor: the next reading is real too.
        self.anchor = (self.watch.sequence() == before).then_some(Anchor {
            cpu,
            wall,
            sequence: before,
        });
        cpu
    }
}

thread_local! {
    static CLOCK: RefCell<Option<FastClock>> = const { RefCell::new(None) };
}

/// The calling thread's CPU time by the system call.
fn syscall_cpu_time() -> Duration {
    #[cfg(test)]
    tests::SYSCALLS.with(|n| n.set(n.get() + 1));
    crate::sched::clock_time(libc::CLOCK_THREAD_CPUTIME_ID).unwrap_or(Duration::ZERO)
}

/// Give the calling thread the fast path, if this host allows it: the event opens, and its
/// sequence is seen to change across a short sleep (a switch). `false` when it does not; the
/// thread then reads the clock by system call, as every thread does by default. Called by each
/// fast worker before it serves (the check sleeps ~100 µs).
pub fn use_on_this_thread() -> bool {
    let Some(watch) = SwitchWatch::open() else {
        return false;
    };
    let before = watch.sequence();
    std::thread::sleep(Duration::from_micros(100));
    if watch.sequence() == before {
        tracing::debug!(
            "the perf event's page did not change across a sleep: CPU clock by syscall"
        );
        return false;
    }
    CLOCK.with(|c| {
        *c.borrow_mut() = Some(FastClock {
            watch,
            anchor: None,
        });
    });
    true
}

/// Whether the calling thread has the fast path.
pub fn on_this_thread() -> bool {
    CLOCK.with(|c| c.borrow().is_some())
}

/// CPU time consumed by the calling thread: from the anchor and the wall clock while the thread
/// has not been switched out since it (threads set up by [`use_on_this_thread`]), else by
/// the system call.
pub fn thread_cpu_time() -> Duration {
    CLOCK.with(|c| match c.borrow_mut().as_mut() {
        Some(clock) => clock.now(),
        None => syscall_cpu_time(),
    })
}

/// CPU time consumed by the calling thread by the system call, always: what an overrun is
/// judged on. The estimate counts time the host took from the running vCPU, which the kernel's
/// own clock can leave out, so it may read high; never low, so a reading within budget stands.
pub fn thread_cpu_time_exact() -> Duration {
    CLOCK.with(|c| match c.borrow_mut().as_mut() {
        Some(clock) => clock.read(),
        None => syscall_cpu_time(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// Readings of the calling thread's clock that were system calls.
        pub(super) static SYSCALLS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    /// How many of the calling thread's clock readings so far were system calls.
    fn syscall_readings() -> u64 {
        SYSCALLS.with(std::cell::Cell::get)
    }

    /// Spin this thread for `d` of wall time, reading no clock but the wall's.
    fn spin(d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until {
            std::hint::spin_loop();
        }
    }

    /// Spin this thread until the system call's clock says it used `d` of CPU.
    fn burn(d: Duration) {
        let until = syscall_cpu_time() + d;
        while syscall_cpu_time() < until {
            std::hint::spin_loop();
        }
    }

    /// Run `check` on a new thread that has the fast clock. On a host that refuses the perf
    /// event the clock is the system call's, which other tests cover: said on stderr, so a run
    /// can tell, and `check` is not run.
    fn on_a_fast_clock_thread(check: impl FnOnce() + Send + 'static) {
        std::thread::spawn(|| {
            if !use_on_this_thread() {
                eprintln!("perf event unavailable here: the fast CPU clock is not tested");
                return;
            }
            assert!(on_this_thread());
            check();
        })
        .join()
        .unwrap();
    }

    #[test]
    fn the_fast_clock_agrees_with_the_system_call_and_is_not_charged_a_sleep() {
        on_a_fast_clock_thread(|| {
            let (fast_start, real_start) = (thread_cpu_time(), syscall_cpu_time());
            burn(Duration::from_millis(5));
            let fast = thread_cpu_time() - fast_start;
            let real = syscall_cpu_time() - real_start;
            // The two clocks agree: a switch during the burn makes the fast reading a real one,
            // and without one the wall clock ran as the CPU clock did.
            let apart = fast.abs_diff(real);
            assert!(
                apart < Duration::from_millis(1),
                "{fast:?} against {real:?} of CPU"
            );
            // Kept on its core, the thread reads its clock without the system call: a
            // thousand readings take a handful at most (a preemption in between costs one).
            let syscalls = syscall_readings();
            for _ in 0..1000 {
                std::hint::black_box(thread_cpu_time());
            }
            let taken = syscall_readings() - syscalls;
            assert!(taken < 50, "{taken} system calls for 1000 readings");
            // An anchor older than its lifetime is read again, switch or not.
            thread_cpu_time();
            spin(ANCHOR_LIFETIME * 2);
            let syscalls = syscall_readings();
            thread_cpu_time();
            assert_eq!(syscall_readings(), syscalls + 1, "an old anchor trusted");
            let before_sleep = thread_cpu_time();
            std::thread::sleep(Duration::from_millis(30));
            let slept = thread_cpu_time() - before_sleep;
            assert!(
                slept < Duration::from_millis(10),
                "{slept:?} charged for a sleep"
            );
        });
    }

    #[test]
    fn a_budget_on_a_fast_clock_thread_is_charged_its_work_and_not_its_sleep() {
        on_a_fast_clock_thread(|| {
            let limit = Duration::from_millis(4);
            let mut budget = crate::budget::Budget::strict(limit);
            std::thread::sleep(limit * 5);
            assert!(
                !budget.exhausted(),
                "{:?} charged for sleeping",
                budget.used()
            );
            burn(limit * 2);
            // Past its budget by the estimate, the run is judged by the system call's clock.
            let syscalls = syscall_readings();
            assert!(
                budget.exhausted(),
                "{:?} of work not charged",
                budget.used()
            );
            assert!(syscall_readings() > syscalls, "judged on the estimate");
        });
    }

    #[test]
    fn a_thread_that_did_not_ask_reads_the_system_call() {
        std::thread::spawn(|| {
            assert!(!on_this_thread());
            let before = thread_cpu_time();
            std::thread::sleep(Duration::from_millis(20));
            assert!(thread_cpu_time() - before < Duration::from_millis(10));
            assert_eq!(syscall_readings(), 2, "each reading is the system call");
        })
        .join()
        .unwrap();
    }
}
