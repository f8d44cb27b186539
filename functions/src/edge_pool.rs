//! The edge pool: Lambda@Edge instances (DESIGN §3.1).
//!
//! Each function has up to `instances` instances; each instance is an OS thread running a
//! current-thread tokio runtime and owning one boa context, and serves one invocation at a
//! time — so one instance spinning on CPU after an `await` cannot delay the timers or deadlines
//! of another, and a function's concurrency limit is its instance count. Instances start on
//! first use (a cold start, counted and timed) and keep their globals between invocations,
//! like a warm Lambda container. A function's invocations wait in one queue (`queue`) that
//! its instances drain, the most recently idle instance woken first; an instance that finishes
//! takes the next invocation without sleeping. Instance threads take `SCHED_BATCH`
//! ([`crate::sched`]), so waking one does not preempt the proxy thread on a shared core.
//!
//! The caller's side enforces the limits whatever the instance does: an invocation no instance
//! took within [`INSTANCE_WAIT`] gets an instance of its own if the limit allows, or else is
//! taken back and refused (`LambdaLimitExceeded`), and the
//! reply is awaited only until the invocation's timeout (plus a small grace for the instance's
//! own timeout answer) from when an instance took it. An instance that misses that is retired:
//! the caller — or, when the caller left before its answer (the viewer hung up), a timer task
//! in its place — lowers its thread to `SCHED_IDLE` (it may spin on CPU for a while yet, and must
//! not take CPU from the proxy or other instances) and hands its place to a new instance at
//! once, as Lambda frees a timed-out environment's concurrency; the old thread ends when it next
//! gets control (the loop backstop stops a spinning handler up to tens of timeouts later). At
//! most `instances` may be retiring that way at once; past that a timed-out instance keeps its
//! place until its thread ends, so runaways cannot pile up more than twice the instance count
//! in threads ([`queue`]).
//!
//! Memory is bounded the same way from the instance's side: inside one stretch of JavaScript
//! no check reaches, an instance that passes its hard ceiling
//! ([`crate::edge_runtime::hard_ceiling`]) answers its invocation with Lambda's out-of-memory
//! error, hands its place to a replacement and parks for good ([`crate::alloc_meter`]), so a
//! handler allocating without end cannot take the process down with it.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use verge_config::FunctionDef;

use crate::edge_runtime::{EdgeFunction, hard_ceiling, over_memory, timed_out};
use crate::fast_pool::{Reply, ReplySlot};
use crate::invocation::Invocation;
use crate::outcome::{FunctionError, FunctionErrorKind};

mod queue;

use queue::{Arrival, Next, Queue, START_DELAY, Waiter};

/// How long an invocation waits for an instance to take it before it is refused.
pub const INSTANCE_WAIT: Duration = Duration::from_millis(100);
/// How long past the timeout the caller waits for the instance's own timeout answer.
const TIMEOUT_GRACE: Duration = Duration::from_millis(50);
/// Stack of an instance thread (deep recursion in handlers stays within boa's limits).
pub(crate) const INSTANCE_STACK: usize = 8 << 20;

/// Counters of one function's instances, read at metrics scrape.
#[derive(Debug, Default)]
pub struct EdgeStats {
    /// Instances started (first use, or after one was recycled).
    pub cold_starts: AtomicU64,
    /// Time spent loading at those starts, in microseconds.
    pub cold_start_micros: AtomicU64,
    /// Invocations answered at their timeout.
    pub timeouts: AtomicU64,
    /// Invocations refused because every instance was busy.
    pub concurrency_refusals: AtomicU64,
    /// Instances parked for good at their hard memory ceiling (each keeps its thread and memory).
    pub parked: AtomicU64,
}

/// One function's instances at a moment ([`EdgePool::occupancy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occupancy {
    /// Instances counting against the function's `instances` limit.
    pub instances: usize,
    /// Of those, the ones idle, waiting for an invocation.
    pub idle: usize,
}

struct Task {
    /// Names the task for its caller, who may take it back from the queue.
    id: u64,
    invocation: Invocation,
    timeout: Duration,
    reply: oneshot::Sender<Reply>,
    /// When an instance took the task (microseconds since the function's epoch, plus one; 0
    /// while queued): the caller's reply deadline runs from then. A stamp the caller reads only
    /// when its timer fires, so the instance wakes the caller once, with the answer.
    taken: Arc<AtomicU64>,
    /// The id of the thread running the task while it runs; 0 before and after; [`GAVE_UP`]
    /// once the caller answered the timeout (and lowered that thread). Whoever swaps first
    /// decides: a caller that finds an id lowers it, and an instance that finds `GAVE_UP`
    /// retires, so an instance lowered this way never serves again.
    running_on: Arc<AtomicI32>,
}

/// [`Task::running_on`] once its caller gave up on it.
const GAVE_UP: i32 = -1;

/// One function's instances, as callers and instance threads share them: its definition, its
/// counters, the queue its work waits in.
#[derive(Clone)]
struct Shared {
    def: Arc<FunctionDef>,
    stats: Arc<EdgeStats>,
    queue: Arc<Queue<Task>>,
    /// What [`Task::taken`] counts from.
    epoch: Instant,
}

/// The edge tier of one configuration snapshot.
#[derive(Default)]
pub struct EdgePool {
    functions: HashMap<String, Shared>,
}

impl std::fmt::Debug for EdgePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgePool")
            .field("functions", &self.functions.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn limit_exceeded(message: impl Into<String>) -> Reply {
    Reply::failed(FunctionError {
        kind: FunctionErrorKind::Throttled,
        message: message.into(),
        edge: true,
    })
}

/// Instances parked at their hard memory ceiling since the process started, in every
/// configuration (each keeps its thread and memory until the process exits).
static PARKED: AtomicUsize = AtomicUsize::new(0);

/// Edge instances parked for good at their hard memory ceiling, process-wide.
pub fn parked_instances() -> usize {
    PARKED.load(Ordering::Relaxed)
}

/// Numbers tasks, so a caller can find its own in a queue.
static NEXT_TASK: AtomicU64 = AtomicU64::new(0);

impl EdgePool {
    /// A pool for these (edge-tier) functions; no thread starts until a function is invoked.
    pub fn new(functions: impl IntoIterator<Item = Arc<FunctionDef>>) -> Self {
        // As for the fast tier: an instance's memory limit and timeouts assume cheap faults.
        crate::alloc_meter::tune_allocator();
        let functions = functions
            .into_iter()
            .map(|def| {
                let shared = Shared {
                    stats: Arc::new(EdgeStats::default()),
                    queue: Arc::new(Queue::new(def.instances)),
                    epoch: Instant::now(),
                    def: def.clone(),
                };
                (def.name.clone(), shared)
            })
            .collect();
        EdgePool { functions }
    }

    /// Each function's counters.
    pub fn stats(&self) -> impl Iterator<Item = (&str, &EdgeStats)> {
        self.functions
            .iter()
            .map(|(name, f)| (name.as_str(), f.stats.as_ref()))
    }

    /// Per function, its instances now: how many count against its limit, and how many of
    /// those wait idle for work (the rest are running an invocation, starting, or tidying up).
    pub fn occupancy(&self) -> impl Iterator<Item = (&str, Occupancy)> {
        self.functions.iter().map(|(name, f)| {
            let (instances, idle) = f.queue.occupancy();
            (name.as_str(), Occupancy { instances, idle })
        })
    }

    /// Run `invocation` on an instance of its function.
    pub async fn invoke(&self, invocation: Invocation) -> Reply {
        let Some(f) = self.functions.get(&invocation.function.name) else {
            return limit_exceeded(format!(
                "function {} has no instances in this configuration",
                invocation.function.name
            ));
        };
        let timeout = f.def.timeout_at(invocation.hook);
        let mut watch = TimeoutWatch {
            running_on: Arc::new(AtomicI32::new(0)),
            taken: Arc::new(AtomicU64::new(0)),
            shared: f.clone(),
            timeout,
            armed: true,
        };
        let reply = Self::invoke_on(f, invocation, &watch).await;
        watch.armed = false;
        reply
    }

    /// [`EdgePool::invoke`] on function `f`, with the task's shared state held by `watch`.
    async fn invoke_on(f: &Shared, invocation: Invocation, watch: &TimeoutWatch) -> Reply {
        let timeout = watch.timeout;
        let (reply, mut answer) = oneshot::channel();
        let id = NEXT_TASK.fetch_add(1, Ordering::Relaxed);
        let (taken, running_on) = (watch.taken.clone(), watch.running_on.clone());
        let task = Task {
            id,
            invocation,
            timeout,
            reply,
            taken: taken.clone(),
            running_on: running_on.clone(),
        };
        let queued = tokio::time::Instant::now();
        if f.queue.push(task).wake_or_start() && !f.started(id) {
            return limit_exceeded("cannot start an instance");
        }
        // Until an instance takes it: a moment in, a task still queued behind busy instances
        // gets an instance of its own (within the limit); one not taken within the instance
        // wait is taken back and refused.
        let mut nudged = false;
        loop {
            let until = queued + if nudged { INSTANCE_WAIT } else { START_DELAY };
            match tokio::time::timeout_at(until, &mut answer).await {
                Ok(Ok(reply)) => return reply,
                Ok(Err(_)) => return limit_exceeded("the instance stopped during the invocation"),
                Err(_) => {}
            }
            if !nudged {
                nudged = true;
                if f.queue.nudge().wake_or_start() && !f.started(id) {
                    return limit_exceeded("cannot start an instance");
                }
                continue;
            }
            // Still queued at the end of the wait: refused only if the limit allows no other
            // instance for it.
            let (helps, refused) = f.queue.serve_or_take_back(|t| t.id == id);
            // Every help is given, even after a failed start: each one was counted.
            let mut start_failed = false;
            for help in helps {
                start_failed |= help.wake_or_start() && !f.start_for_queue();
            }
            if refused.is_some() {
                f.stats.concurrency_refusals.fetch_add(1, Ordering::Relaxed);
                return limit_exceeded(format!(
                    "all {} instances of {} are busy (its concurrency limit)",
                    f.def.instances, f.def.name
                ));
            }
            if start_failed && f.queue.take_back_unserved(|t| t.id == id).is_some() {
                return limit_exceeded("cannot start an instance");
            }
            break;
        }
        // Taken, or an instance on its way will take it (a cold start under load can take
        // longer than the instance wait): the answer is due by the timeout (plus the grace)
        // from then. A stamp not yet written counts from now.
        let stamp = taken.load(Ordering::Acquire);
        let taken_at = match stamp {
            0 => tokio::time::Instant::now(),
            _ => tokio::time::Instant::from_std(f.epoch + Duration::from_micros(stamp - 1)),
        };
        match tokio::time::timeout_at(taken_at + timeout + TIMEOUT_GRACE, &mut answer).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => limit_exceeded("the instance stopped during the invocation"),
            Err(_) => {
                give_up(&running_on, f);
                f.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                Reply::failed(timed_out(timeout))
            }
        }
    }
}

/// The caller's side of a task whose timeout passed: an instance still busy with it (CPU after
/// an `await`, or native code) retires itself when it gets control back, until then runs only
/// on idle CPU, and hands its place to a new instance now. True when an instance was still
/// running it.
fn give_up(running_on: &AtomicI32, f: &Shared) -> bool {
    let tid = running_on.swap(GAVE_UP, Ordering::AcqRel);
    if tid <= 0 {
        return false;
    }
    crate::sched::set_thread(tid, crate::sched::Policy::Idle);
    if f.queue.hand_over(tid).wake_or_start() {
        let _ = f.start_for_queue();
    }
    true
}

/// What a caller holds of its task while it waits. A caller dropped before its answer (the
/// viewer hung up) leaves, still armed: the timeout is then enforced by a timer task of its
/// own, so an instance running past it is lowered and retired exactly as if the caller had
/// waited.
struct TimeoutWatch {
    running_on: Arc<AtomicI32>,
    taken: Arc<AtomicU64>,
    shared: Shared,
    timeout: Duration,
    /// Cleared once the caller has its answer.
    armed: bool,
}

impl Drop for TimeoutWatch {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        // From when an instance took it; one that has not yet skips it (its reply is closed,
        // and after `give_up` it cannot start it either).
        let stamp = self.taken.load(Ordering::Acquire);
        let taken_at = match stamp {
            0 => Instant::now(),
            _ => self.shared.epoch + Duration::from_micros(stamp - 1),
        };
        let deadline = tokio::time::Instant::from_std(taken_at + self.timeout + TIMEOUT_GRACE);
        let (running_on, shared) = (self.running_on.clone(), self.shared.clone());
        runtime.spawn(async move {
            tokio::time::sleep_until(deadline).await;
            if give_up(&running_on, &shared) {
                shared.stats.timeouts.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
}

impl Drop for EdgePool {
    fn drop(&mut self) {
        // The snapshot is gone: idle instances end now, busy ones after their invocation.
        for f in self.functions.values() {
            f.queue.close();
        }
    }
}

impl Shared {
    /// Start an instance thread (the queue has counted it); it loads the function on its
    /// first task.
    fn start_instance(&self) -> std::io::Result<()> {
        let shared = self.clone();
        std::thread::Builder::new()
            .name(format!("verge-edge-{}", self.def.name))
            .stack_size(INSTANCE_STACK)
            .spawn(move || {
                let live = Live {
                    shared: &shared,
                    arrived: Cell::new(false),
                    tid: Cell::new(None),
                };
                run_instance(&live);
            })?;
        Ok(())
    }

    /// Start the instance the queue asked for; false (logged, and uncounted) when the thread
    /// cannot be made.
    fn start_for_queue(&self) -> bool {
        match self.start_instance() {
            Ok(()) => true,
            Err(e) => {
                self.queue.start_failed();
                tracing::error!(function = %self.def.name, error = %e, "cannot start an edge instance");
                false
            }
        }
    }

    /// An instance thread gives up its place in the count (it ended, or parked for good) —
    /// unless it handed that over already at a timeout.
    fn leave(&self, arrived: bool, tid: Option<i32>) {
        if self.queue.ended(arrived, tid).wake_or_start() {
            let _ = self.start_for_queue();
        }
    }

    /// Start the instance the queue asked for on behalf of the caller of task `id`. False when
    /// it cannot be started and no other instance will take that task (taken back).
    fn started(&self, id: u64) -> bool {
        self.start_for_queue() || self.queue.take_back_unserved(|t| t.id == id).is_none()
    }
}

/// An instance thread's place in its queue's count, given up however the thread ends (a panic
/// included), with a replacement started if the queue asks for one.
struct Live<'a> {
    shared: &'a Shared,
    /// The thread has looked at the queue (it is no longer counted as on its way).
    arrived: Cell<bool>,
    /// The thread's id, once registered with the queue.
    tid: Cell<Option<i32>>,
}

impl Drop for Live<'_> {
    fn drop(&mut self) {
        self.shared.leave(self.arrived.get(), self.tid.get());
    }
}

/// What an instance does when it passes its hard memory ceiling, just before its thread parks
/// for good (run inside the allocator: it answers and hands on, nothing more). Its place in
/// the count goes to a replacement at once, as if the thread had ended.
fn park_hook(shared: &Shared, slot: &ReplySlot, tid: i32) -> Box<dyn FnOnce()> {
    let (shared, slot) = (shared.clone(), slot.clone());
    Box::new(move || {
        let def = &shared.def;
        shared.stats.parked.fetch_add(1, Ordering::Relaxed);
        PARKED.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            function = %def.name,
            ceiling_mb = hard_ceiling(def.memory_mb) >> 20,
            "an edge instance passed its hard memory ceiling inside JavaScript no check \
             reaches; its thread is parked for good (see server.max_stuck_workers)"
        );
        shared.leave(true, Some(tid));
        // The answer last: its caller finds the instance counted and replaced.
        if let Some(reply) = slot.take() {
            let _ = reply.send(Reply::failed(over_memory(def.memory_mb)));
        }
    })
}

/// An instance thread: its own event loop, one context, one invocation at a time.
fn run_instance(live: &Live<'_>) {
    crate::sched::set_own(crate::sched::Policy::Batch);
    let shared = live.shared;
    let Shared {
        def, stats, queue, ..
    } = shared;
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(function = %def.name, error = %e, "cannot start an edge instance's event loop");
            return;
        }
    };
    // Nothing runs on this loop between invocations (timers and fetches end with theirs), so
    // the thread sleeps outside it while idle.
    let local = tokio::task::LocalSet::new();
    let me = Waiter::current();
    let mut loaded: Option<EdgeFunction> = None;
    let slot = ReplySlot::default();
    let thread_id = crate::sched::thread_id();
    crate::alloc_meter::on_ceiling(park_hook(shared, &slot, thread_id));
    queue.register(thread_id);
    live.tid.set(Some(thread_id));
    loop {
        let arrival = if live.arrived.replace(true) {
            Arrival::Back(thread_id)
        } else {
            Arrival::Started
        };
        let task = match queue.next(&me, arrival) {
            Next::Task(task, help) => {
                if help.wake_or_start() {
                    let _ = shared.start_for_queue();
                }
                task
            }
            Next::Closed => return,
        };
        let Task {
            invocation,
            timeout,
            reply,
            taken,
            running_on,
            ..
        } = task;
        taken.store(
            shared.epoch.elapsed().as_micros() as u64 + 1,
            Ordering::Release,
        );
        if reply.is_closed() {
            // Its caller is gone (the viewer left): nobody waits for this answer.
            continue;
        }
        let function = match loaded.as_mut() {
            Some(f) => f,
            None => {
                let started = Instant::now();
                let result = EdgeFunction::load(&def.name, &def.code);
                stats.cold_starts.fetch_add(1, Ordering::Relaxed);
                stats
                    .cold_start_micros
                    .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                match result {
                    Ok(f) => loaded.insert(f),
                    Err(e) => {
                        let _ = reply.send(Reply::failed(FunctionError {
                            kind: FunctionErrorKind::Execution,
                            message: format!("the function failed to load: {e}"),
                            edge: true,
                        }));
                        continue;
                    }
                }
            }
        };
        if running_on
            .compare_exchange(0, thread_id, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // Its caller's timeout passed already (a cold start took it all): it was answered
            // without this instance, which must not start it now.
            continue;
        }
        slot.set(Some(reply));
        crate::alloc_meter::set_ceiling(Some(hard_ceiling(def.memory_mb)));
        let invocation = std::rc::Rc::new(invocation);
        let invoked = local.block_on(&runtime, function.invoke(&invocation, timeout));
        crate::alloc_meter::set_ceiling(None);
        let poisoned = invoked.poisoned;
        // The caller answered the timeout without this instance (and may have lowered its
        // thread to idle) exactly when it swapped in `GAVE_UP` first.
        let given_up = running_on.swap(0, Ordering::AcqRel) == GAVE_UP;
        if !given_up && !poisoned {
            // Warm and coming straight back: told before the answer goes, so a task its caller
            // queues next waits for this instance rather than starting another (a poisoned
            // instance is rebuilt, a cold start anyway).
            queue.finishing(thread_id);
        }
        if let Some(reply) = slot.take() {
            let _ = reply.send(Reply {
                result: invoked.result,
                utilization: 0,
                logs: invoked.logs,
                log_data: None,
            });
        }
        if given_up {
            // This instance retires (its caller handed its place over, or it counts against
            // the limit until its thread has ended; its heap goes with the thread).
            return;
        }
        // Off the cold start's path: after the first answer (a no-op after that).
        crate::edge_runtime::prepare_to_serve();
        if poisoned {
            // Aborted frames stay on the VM stack: the next invocation gets a fresh
            // context (a cold start), as Lambda replaces a timed-out environment. Dropped after
            // the reply, and its heap — maybe the memory limit's worth — collected now rather
            // than inside someone's next invocation.
            loaded = None;
            boa_engine::gc::force_collect();
        }
    }
}

#[cfg(test)]
mod tests;
