//! The fast pool: plain OS threads that own their boa contexts, fed from one bounded queue.
//!
//! - Hand-off: the caller sends an owned [`Invocation`] and awaits a `oneshot` reply. A full
//!   queue answers at once with the throttled result instead of queueing without bound.
//! - The caller never waits on a stuck worker: the reply is awaited with a deadline.
//! - A supervisor retires a worker whose invocation used more CPU than the hard ceiling (only
//!   native work no check reaches can get there), lowers it to idle priority at once and starts
//!   a replacement, so capacity is never lost. The retired thread exits when its call finally
//!   returns. CPU, not wall time: a healthy worker that waited for a core is not a runaway.
//! - Memory no check reaches (a promise job allocating without end) meets the allocator's hard
//!   ceiling, [`HARD_CEILING`]: the worker answers with the memory error and parks for good
//!   ([`crate::alloc_meter`]); the supervisor then retires it as stuck, as above.
//! - Generations (DESIGN §4): [`FastPool::warm`] starts a new set of workers that load every
//!   function of a new configuration before any request reaches them, then switches new
//!   invocations to them; the previous generation drains its queue and exits. Serving workers
//!   never compile during a reload. A function not warmed (a test pool) loads on first use.
//! - Contexts are kept warm (globals persist); a context that was aborted is dropped and a spare
//!   is loaded right after the reply, before the worker takes its next invocation — at idle
//!   priority where the process may come back from it ([`IdleCleanup`]), so those milliseconds
//!   do not slow the proxy thread sharing the core. Garbage collection runs between
//!   invocations, outside the budget.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError, bounded};
use tokio::sync::oneshot;
use verge_config::{FunctionDef, Hook, Runtime};

use crate::cff_event::{self, CffEvent};
use crate::cff_runtime::LoadedFunction;
use crate::collector::{CollectionPolicy, force_collect};
use crate::invocation::Invocation;
use crate::outcome::{FunctionError, FunctionErrorKind, Outcome};

/// Overruns within [`THROTTLE_WINDOW`] that throttle a function ...
pub const THROTTLE_AFTER: u32 = 3;
/// ... when they are at least this share (1 in N) of its invocations in that window. Sustained
/// overruns throttle (CloudFront: a function that "continuously exceeds" its budget); a handful
/// among hundreds of thousands of invocations within budget is the host's noise or a rare input,
/// and throttling for them would turn each into seconds of 503s for every viewer.
pub const THROTTLE_SHARE: u64 = 100;
/// The window in which overruns are counted.
pub const THROTTLE_WINDOW: Duration = Duration::from_secs(10);
/// How long a throttled function is not run.
pub const THROTTLE_FOR: Duration = Duration::from_secs(5);

/// Overrun history of one function version, in a window opened by its first overrun.
#[derive(Debug)]
struct Overruns {
    since: Instant,
    overruns: u32,
    /// Invocations since the window opened (counted only while a window is open).
    invocations: u64,
    throttled_until: Option<Instant>,
}

/// Which functions are throttled, keyed by their definition (a new version starts clean).
#[derive(Debug, Default)]
struct Throttle {
    functions: Mutex<std::collections::HashMap<usize, Overruns>>,
}

impl Throttle {
    fn key(def: &Arc<FunctionDef>) -> usize {
        Arc::as_ptr(def) as usize
    }

    /// Count an invocation about to run; the time left in a throttle, if the function is
    /// throttled now.
    fn admit(&self, def: &Arc<FunctionDef>) -> Option<Duration> {
        let mut functions = self.functions.lock().ok()?;
        let entry = functions.get_mut(&Self::key(def))?;
        let left = entry
            .throttled_until
            .and_then(|until| until.checked_duration_since(Instant::now()));
        if left.is_none() {
            entry.invocations += 1;
        }
        left
    }

    /// Record an overrun; `severe` (the hard ceiling or the reply deadline) throttles at once.
    fn overrun(&self, def: &Arc<FunctionDef>, severe: bool) {
        let Ok(mut functions) = self.functions.lock() else {
            return;
        };
        // Forget functions no configuration holds any more.
        if functions.len() > 1024 {
            functions.clear();
        }
        let now = Instant::now();
        let entry = functions.entry(Self::key(def)).or_insert(Overruns {
            since: now,
            overruns: 0,
            invocations: 0,
            throttled_until: None,
        });
        if now.duration_since(entry.since) >= THROTTLE_WINDOW {
            (entry.since, entry.overruns, entry.invocations) = (now, 0, 0);
        }
        entry.overruns += 1;
        let share_held = u64::from(entry.overruns) * THROTTLE_SHARE >= entry.invocations.max(1);
        if severe || (entry.overruns >= THROTTLE_AFTER && share_held) {
            entry.throttled_until = Some(now + THROTTLE_FOR);
            // The next window opens when the throttle ends (`duration_since` is 0 until then).
            (entry.since, entry.overruns, entry.invocations) = (now + THROTTLE_FOR, 0, 0);
            tracing::warn!(
                function = %def.name,
                seconds = THROTTLE_FOR.as_secs(),
                "function throttled after repeated budget overruns"
            );
        }
    }
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Worker threads (at least two, so one stuck worker never stops the tier).
    pub workers: usize,
    /// Invocations waiting for a worker before new ones are refused.
    pub queue: usize,
    /// How much CPU a worker may use on one invocation before it is retired and replaced.
    pub hard_ceiling: Duration,
    /// How long a caller waits for a reply once a worker started the invocation.
    pub reply_deadline: Duration,
    /// How long an invocation may wait for a worker to start it (queue wait, and loading a new
    /// version of the function), before it is answered as throttled.
    pub start_deadline: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            workers: std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .max(2),
            queue: 1024,
            hard_ceiling: Duration::from_millis(50),
            reply_deadline: Duration::from_millis(250),
            start_deadline: Duration::from_secs(2),
        }
    }
}

/// What a caller gets back.
#[derive(Debug)]
pub struct Reply {
    /// Continue, respond, or fail with a CloudFront result type.
    pub result: Result<Outcome, FunctionError>,
    /// CPU used, percent of the function's budget (CloudFront's compute utilization).
    pub utilization: u32,
    /// `console.log` lines, at most 10 KB.
    pub logs: Vec<String>,
    /// `cf.logCustomData`, URL-encoded, at most 800 bytes.
    pub log_data: Option<String>,
}

impl Reply {
    /// A failure with nothing measured or logged.
    pub(crate) fn failed(error: FunctionError) -> Self {
        Reply {
            result: Err(error),
            utilization: 0,
            logs: Vec::new(),
            log_data: None,
        }
    }
}

struct Task {
    invocation: Invocation,
    budget: Duration,
    /// Stamped (microseconds since the pool's epoch) when the worker starts the invocation,
    /// after any load: the reply deadline runs from then. A stamp, not a message, so the
    /// caller is woken once per invocation (by the reply), not twice.
    started: Arc<AtomicU64>,
    reply: oneshot::Sender<Reply>,
}

/// A worker as the supervisor sees it.
struct WorkerState {
    /// Microseconds since the pool's epoch when the current invocation started; 0 when idle.
    busy_since: AtomicU64,
    /// The supervisor's first look at the current invocation (only the supervisor uses it).
    sighted: Mutex<Sighting>,
    /// The worker thread's id, 0 until it runs: its CPU clock is read, and its priority
    /// lowered, by this id.
    thread_id: AtomicI32,
    /// Its ceiling hook ran: the thread is parked for good.
    parked: AtomicBool,
    retired: AtomicBool,
    /// The thread has returned (its generation ended, or it was retired and finished).
    exited: AtomicBool,
    /// Its generation's queue (a replacement joins the same one).
    rx: Receiver<Task>,
    /// Its generation's functions, loaded before the first invocation.
    warm: Arc<[Arc<FunctionDef>]>,
}

struct Shared {
    throttle: Throttle,
    epoch: Instant,
    workers: Mutex<Vec<Arc<WorkerState>>>,
    retired: AtomicU64,
    /// Retired workers, until their threads return.
    stuck: Mutex<Vec<Arc<WorkerState>>>,
    config: PoolConfig,
    stop: AtomicBool,
    loads: LoadCounts,
    /// The supervisor's thread, woken when an invocation starts while it sleeps.
    supervisor: OnceLock<std::thread::Thread>,
    /// The supervisor sleeps because no worker was busy (see [`supervise`]).
    supervisor_asleep: AtomicBool,
    /// Workers cleaning up after an abort at idle priority now ([`IdleCleanup`]).
    idle_cleanups: AtomicUsize,
    /// Collections the engine started by itself on a worker ([`FastPool::engine_collections`]).
    engine_collections: AtomicU64,
}

/// How contexts came to be loaded, for metrics and tests.
#[derive(Debug, Default)]
struct LoadCounts {
    warm: AtomicU64,
    on_demand: AtomicU64,
    spare: AtomicU64,
    spare_at_idle: AtomicU64,
    confirm: AtomicU64,
}

/// Context loads so far, by when they happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loads {
    /// By a new generation before it served anything.
    pub warm: u64,
    /// On a serving worker, by the first invocation of a function it had not loaded.
    pub on_demand: u64,
    /// A replacement for a context discarded after an abort, loaded between invocations (at
    /// idle priority, or not: see [`Loads::spare_at_idle`]).
    pub spare: u64,
    /// How many of [`Loads::spare`] were loaded at idle priority (where the process can
    /// return from it: [`crate::sched::can_return_from_idle`]).
    pub spare_at_idle: u64,
    /// A fresh context for confirming a doubtful overrun (see
    /// [`crate::cff_runtime::CALM_RUNS`]), loaded during the invocation.
    pub confirm: u64,
}

/// One set of workers and the queue that feeds them. A configuration snapshot holds the
/// generation warmed with its functions, so every request runs on workers that loaded its
/// functions ahead of time; the generation's workers exit once the last holder is gone and
/// the queue is drained.
pub struct Generation {
    tx: Sender<Task>,
    number: u64,
}

impl Generation {
    /// 1 for the pool's first generation, one more per [`FastPool::warm`].
    pub fn number(&self) -> u64 {
        self.number
    }
}

impl std::fmt::Debug for Generation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generation")
            .field("number", &self.number)
            .finish()
    }
}

/// The fast worker pool. Dropping it stops the workers once the queue is drained.
pub struct FastPool {
    current: arc_swap::ArcSwap<Generation>,
    shared: Arc<Shared>,
}

fn throttled(message: impl Into<String>) -> FunctionError {
    FunctionError {
        kind: FunctionErrorKind::Throttled,
        message: message.into(),
        edge: false,
    }
}

fn execution(message: impl Into<String>) -> FunctionError {
    FunctionError {
        kind: FunctionErrorKind::Execution,
        message: message.into(),
        edge: false,
    }
}

impl FastPool {
    /// Start the first generation of workers (with nothing warmed) and the supervisor.
    pub fn start(config: PoolConfig) -> std::io::Result<Self> {
        // Budgets in CPU time need page faults that cost microseconds, not milliseconds.
        crate::alloc_meter::tune_allocator();
        if !crate::sched::can_return_from_idle() {
            tracing::info!(
                "fast-tier workers replace an aborted runaway's context at normal priority: \
                 this process may not return a thread from SCHED_IDLE (grant CAP_SYS_NICE or \
                 an RLIMIT_NICE of 20 to let them do it at idle priority)"
            );
        }
        let shared = Arc::new(Shared {
            throttle: Throttle::default(),
            epoch: Instant::now(),
            workers: Mutex::new(Vec::new()),
            retired: AtomicU64::new(0),
            stuck: Mutex::new(Vec::new()),
            config,
            stop: AtomicBool::new(false),
            loads: LoadCounts::default(),
            supervisor: OnceLock::new(),
            supervisor_asleep: AtomicBool::new(false),
            idle_cleanups: AtomicUsize::new(0),
            engine_collections: AtomicU64::new(0),
        });
        let (tx, _ready) = start_generation(&shared, &Arc::from([]))?;
        let supervised = shared.clone();
        let supervisor = std::thread::Builder::new()
            .name("verge-fast-supervisor".into())
            .spawn(move || supervise(&supervised))?;
        let _ = shared.supervisor.set(supervisor.thread().clone());
        Ok(FastPool {
            current: arc_swap::ArcSwap::from_pointee(Generation { tx, number: 1 }),
            shared,
        })
    }

    /// Start a new generation of workers that load `functions` first, and wait (up to the start
    /// deadline) until every one of them has. It becomes the pool's current generation (what
    /// [`FastPool::invoke`] uses); [`FastPool::invoke_in`] targets a given one. A previous
    /// generation finishes what it has queued and exits once nothing holds it.
    pub fn warm(&self, functions: Vec<Arc<FunctionDef>>) -> std::io::Result<Arc<Generation>> {
        let functions: Arc<[Arc<FunctionDef>]> = Arc::from(functions);
        let (tx, ready) = start_generation(&self.shared, &functions)?;
        let deadline = Instant::now() + self.shared.config.start_deadline;
        for _ in 0..self.shared.config.workers.max(2) {
            let left = deadline.saturating_duration_since(Instant::now());
            if ready.recv_timeout(left).is_err() {
                tracing::warn!(
                    "a new fast-tier worker did not finish warming within {:?}; switching anyway",
                    self.shared.config.start_deadline
                );
                break;
            }
        }
        let number = self.current.load().number + 1;
        let generation = Arc::new(Generation { tx, number });
        self.current.store(generation.clone());
        Ok(generation)
    }

    /// Workers retired so far for exceeding the hard ceiling.
    pub fn retired_workers(&self) -> u64 {
        self.shared.retired.load(Ordering::Acquire)
    }

    /// Retired workers whose threads are still running (stuck in a native call): each holds a
    /// thread and possibly memory until its call returns, so a process collecting them is not
    /// healthy (DESIGN §3.2: past a limit verge drains and exits for its supervisor to restart
    /// it).
    pub fn stuck_workers(&self) -> usize {
        match self.shared.stuck.lock() {
            Ok(mut stuck) => {
                stuck.retain(|w| !w.exited.load(Ordering::Relaxed));
                stuck.len()
            }
            Err(_) => 0,
        }
    }

    /// Context loads so far.
    pub fn loads(&self) -> Loads {
        let l = &self.shared.loads;
        Loads {
            warm: l.warm.load(Ordering::Relaxed),
            on_demand: l.on_demand.load(Ordering::Relaxed),
            spare: l.spare.load(Ordering::Relaxed),
            spare_at_idle: l.spare_at_idle.load(Ordering::Relaxed),
            confirm: l.confirm.load(Ordering::Relaxed),
        }
    }

    /// Collections boa started by itself on this pool's workers, seen between invocations.
    /// Each may have landed inside an invocation and been charged to its budget; the workers'
    /// own schedule is meant to keep this at 0 (see [`crate::collector`]).
    pub fn engine_collections(&self) -> u64 {
        self.shared.engine_collections.load(Ordering::Relaxed)
    }

    /// The generation new invocations go to (1 for the first).
    pub fn generation(&self) -> u64 {
        self.current.load().number
    }

    /// Run one invocation. Never waits longer than the reply deadline. A function that keeps
    /// exceeding its budget, or needed the deadline once, is throttled for [`THROTTLE_FOR`]:
    /// answered at once without running.
    pub async fn invoke(&self, invocation: Invocation, budget: Duration) -> Reply {
        let generation = self.current.load_full();
        self.invoke_in(&generation, invocation, budget).await
    }

    /// [`FastPool::invoke`] on the workers of `generation`.
    pub async fn invoke_in(
        &self,
        generation: &Generation,
        invocation: Invocation,
        budget: Duration,
    ) -> Reply {
        let def = invocation.function.clone();
        if let Some(left) = def
            .throttle
            .then(|| self.shared.throttle.admit(&def))
            .flatten()
        {
            return Reply::failed(throttled(format!(
                "throttled for {}s more after repeated budget overruns",
                left.as_secs() + 1
            )));
        }
        let (reply, blame) = self.dispatch(generation, invocation, budget).await;
        if let Err(e) = &reply.result
            && e.kind == FunctionErrorKind::Throttled
            && blame != Blame::Capacity
            && def.throttle
        {
            self.shared.throttle.overrun(&def, blame == Blame::Deadline);
        }
        reply
    }

    async fn dispatch(
        &self,
        generation: &Generation,
        invocation: Invocation,
        budget: Duration,
    ) -> (Reply, Blame) {
        let failed = |error: FunctionError, utilization: u32| Reply {
            utilization,
            ..Reply::failed(error)
        };
        let (reply, mut answer) = oneshot::channel();
        let started = Arc::new(AtomicU64::new(0));
        let task = Task {
            invocation,
            budget,
            started: started.clone(),
            reply,
        };
        let sent = generation.tx.try_send(task);
        match sent {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let e = throttled("no fast-tier capacity: the queue is full");
                return (failed(e, 0), Blame::Capacity);
            }
            Err(TrySendError::Disconnected(_)) => {
                return (
                    failed(execution("the fast tier is shut down"), 0),
                    Blame::Capacity,
                );
            }
        }
        // Waiting for a worker has its own cap; the reply deadline runs from the stamp the
        // worker leaves when it starts. The timer only looks at the stamp when it fires.
        let config = &self.shared.config;
        let epoch = self.shared.epoch;
        let enqueued = tokio::time::Instant::now();
        let mut until = enqueued + config.start_deadline.min(config.reply_deadline);
        loop {
            match tokio::time::timeout_at(until, &mut answer).await {
                Ok(Ok(reply)) => return (reply, Blame::Function),
                Ok(Err(_)) => {
                    let e = execution("the function's worker stopped without answering");
                    return (failed(e, 0), Blame::Function);
                }
                Err(_) => {}
            }
            let stamp = started.load(Ordering::Acquire);
            if stamp == 0 {
                if enqueued.elapsed() >= config.start_deadline {
                    let e = throttled(format!(
                        "no fast-tier worker started it within {:?}",
                        config.start_deadline
                    ));
                    return (failed(e, 0), Blame::Capacity);
                }
                until = (tokio::time::Instant::now() + config.reply_deadline)
                    .min(enqueued + config.start_deadline);
                continue;
            }
            let started_at = tokio::time::Instant::from_std(epoch + Duration::from_micros(stamp));
            let deadline = started_at + config.reply_deadline;
            if tokio::time::Instant::now() >= deadline {
                let e = throttled(format!("no answer within {:?}", config.reply_deadline));
                return (failed(e, 100), Blame::Deadline);
            }
            until = deadline;
        }
    }
}

/// Whose fault a failed dispatch was, for throttling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Blame {
    /// The function ran (and overran, if it failed as throttled).
    Function,
    /// The function ran past the reply deadline: throttle at once.
    Deadline,
    /// No capacity; the function never ran and is not to blame.
    Capacity,
}

impl Drop for FastPool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

/// A new queue and its workers, each loading `functions` before it takes an invocation and
/// then reporting on the returned receiver.
fn start_generation(
    shared: &Arc<Shared>,
    functions: &Arc<[Arc<FunctionDef>]>,
) -> std::io::Result<(Sender<Task>, Receiver<()>)> {
    let (tx, rx) = bounded(shared.config.queue.max(1));
    let (ready_tx, ready) = bounded(shared.config.workers.max(2));
    for _ in 0..shared.config.workers.max(2) {
        spawn_worker(
            shared,
            rx.clone(),
            functions.clone(),
            Some(ready_tx.clone()),
        )?;
    }
    Ok((tx, ready))
}

fn spawn_worker(
    shared: &Arc<Shared>,
    rx: Receiver<Task>,
    warm: Arc<[Arc<FunctionDef>]>,
    ready: Option<Sender<()>>,
) -> std::io::Result<()> {
    let state = Arc::new(WorkerState::new(rx, warm));
    if let Ok(mut workers) = shared.workers.lock() {
        workers.push(state.clone());
    }
    let shared = shared.clone();
    std::thread::Builder::new()
        .name("verge-fast".into())
        .spawn(move || {
            work(&shared, &state, ready);
            state.exited.store(true, Ordering::Relaxed);
        })?;
    Ok(())
}

/// Ticks without a busy worker before the supervisor sleeps until an invocation starts.
const QUIET_TICKS: u32 = 10;
/// The longest the sleeping supervisor waits before looking again anyway (long in unit tests,
/// so that an invocation that failed to wake it shows as a late retirement).
const SUPERVISOR_NAP: Duration = Duration::from_secs(if cfg!(test) { 10 } else { 1 });

/// Whether any worker of any generation is running an invocation.
fn any_busy(shared: &Shared) -> bool {
    shared.workers.lock().is_ok_and(|workers| {
        workers
            .iter()
            .any(|w| w.busy_since.load(Ordering::SeqCst) != 0)
    })
}

/// Wake the supervisor if it sleeps: called by a worker that starts an invocation (after it
/// marked itself busy), so an idle process is not woken every tick for nothing.
fn wake_supervisor(shared: &Shared) {
    if shared.supervisor_asleep.load(Ordering::SeqCst)
        && shared.supervisor_asleep.swap(false, Ordering::SeqCst)
        && let Some(thread) = shared.supervisor.get()
    {
        thread.unpark();
    }
}

/// Retire workers stuck past the hard ceiling and replace them. It ticks at a fifth of the
/// ceiling while workers are busy; after [`QUIET_TICKS`] ticks without one it sleeps until a
/// worker starts an invocation — an idle verge is then not woken a hundred times a second,
/// which on a shared core costs the processes that are busy there.
fn supervise(shared: &Arc<Shared>) {
    let tick = (shared.config.hard_ceiling / 5).max(Duration::from_millis(1));
    let mut quiet = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        if quiet >= QUIET_TICKS {
            // Marked asleep before looking at the workers, and a worker marks itself busy
            // before looking at this flag: one of the two sees the other (both SeqCst).
            shared.supervisor_asleep.store(true, Ordering::SeqCst);
            if !any_busy(shared) {
                std::thread::park_timeout(SUPERVISOR_NAP);
            }
            shared.supervisor_asleep.store(false, Ordering::SeqCst);
            if !any_busy(shared) {
                // The nap ran out (or an invocation came and went): nothing to watch yet.
                continue;
            }
            quiet = 0;
        }
        std::thread::sleep(tick);
        let now = shared.epoch.elapsed().as_micros() as u64;
        let ceiling = shared.config.hard_ceiling;
        let (stuck, busy) = match shared.workers.lock() {
            Ok(mut workers) => {
                workers.retain(|w| !w.exited.load(Ordering::Relaxed));
                let mut busy = false;
                let mut stuck = Vec::new();
                workers.retain(|w| {
                    let since = w.busy_since.load(Ordering::SeqCst);
                    busy |= since != 0;
                    match (since != 0).then(|| w.stuck(now, since, ceiling)).flatten() {
                        Some(why) => {
                            stuck.push((w.clone(), why, since));
                            false
                        }
                        None => true,
                    }
                });
                (stuck, busy)
            }
            Err(_) => (Vec::new(), true),
        };
        quiet = if busy { 0 } else { quiet + 1 };
        for (worker, why, since) in stuck {
            worker.retired.store(true, Ordering::SeqCst);
            // Still on the invocation judged (a runaway that just finished would otherwise run
            // one more invocation lowered; marked retired, it exits after that one).
            let same = worker.busy_since.load(Ordering::SeqCst) == since;
            if why != Stuck::Parked && same {
                // It may compute for a long while yet: from now on only on CPU nobody else
                // wants, while its replacement serves at the normal priority.
                crate::sched::set_thread(
                    worker.thread_id.load(Ordering::Relaxed),
                    crate::sched::Policy::Idle,
                );
            }
            tracing::warn!(
                ceiling_ms = ceiling.as_millis() as u64,
                reason = why.describe(),
                "a fast-tier worker is stuck; retired and replaced"
            );
            if let Err(e) = spawn_worker(shared, worker.rx.clone(), worker.warm.clone(), None) {
                tracing::error!(error = %e, "cannot start a replacement fast-tier worker");
            }
            if let Ok(mut stuck) = shared.stuck.lock() {
                stuck.push(worker);
            }
            // Counted last: whoever sees the count sees the worker lowered and listed as stuck.
            shared.retired.fetch_add(1, Ordering::Release);
        }
    }
}

/// Why the supervisor retires a busy worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stuck {
    /// Its invocation used more CPU than the hard ceiling: native work no budget check
    /// reaches (a comparator under a built-in sort, say).
    Computing,
    /// Its ceiling hook ran: parked for good at the memory ceiling.
    Parked,
    /// Busy for [`BLOCKED_AFTER`] without using the CPU that long: waiting on something, which
    /// nothing a worker runs should do (a backstop).
    Blocked,
}

impl Stuck {
    fn describe(self) -> &'static str {
        match self {
            Stuck::Computing => "its invocation used more CPU than the hard ceiling",
            Stuck::Parked => "it passed its memory ceiling and is parked for good",
            Stuck::Blocked => "it has been busy for long without using the CPU",
        }
    }

    /// The verdict on a busy worker from what its invocation has spent so far. CPU time, not
    /// wall time, measures a runaway: on a loaded host a healthy worker can wait tens of
    /// milliseconds for a core, and retiring it for that (and lowering it to idle priority)
    /// would starve the very invocation it was running. `cpu` is `None` when the thread's clock
    /// cannot be read; the wall time then stands in for it, as the most the CPU can have been.
    fn judge(
        parked: bool,
        wall: Duration,
        cpu: Option<Duration>,
        ceiling: Duration,
    ) -> Option<Self> {
        if parked {
            return Some(Stuck::Parked);
        }
        if cpu.unwrap_or(wall) > ceiling {
            return Some(Stuck::Computing);
        }
        (wall > BLOCKED_AFTER).then_some(Stuck::Blocked)
    }
}

/// How long a worker may stay busy without using a hard ceiling of CPU before the supervisor
/// takes it for blocked. Its caller gave up long before (the reply deadline).
const BLOCKED_AFTER: Duration = Duration::from_secs(10);

/// What the supervisor saw when it first looked at a worker's current invocation.
#[derive(Debug, Default)]
struct Sighting {
    /// The invocation's `busy_since` (unique per invocation of a worker).
    since: u64,
    /// The worker thread's CPU time then.
    cpu: Duration,
}

impl WorkerState {
    /// A worker not started yet, taking tasks from `rx` after loading `warm`.
    fn new(rx: Receiver<Task>, warm: Arc<[Arc<FunctionDef>]>) -> Self {
        WorkerState {
            busy_since: AtomicU64::new(0),
            sighted: Mutex::new(Sighting::default()),
            thread_id: AtomicI32::new(0),
            parked: AtomicBool::new(false),
            retired: AtomicBool::new(false),
            exited: AtomicBool::new(false),
            rx,
            warm,
        }
    }

    /// Whether the worker, busy since `since` (microseconds since the epoch, as `now`), is
    /// stuck, and why. The CPU counted is what the thread used since the supervisor first saw
    /// this invocation: the worker reads no clock for it (that would be a system call on every
    /// invocation), and the little it may have used before — normally under one tick — only
    /// delays a runaway's retirement by as much; it never retires a healthy worker early.
    fn stuck(&self, now: u64, since: u64, ceiling: Duration) -> Option<Stuck> {
        let wall = Duration::from_micros(now.saturating_sub(since));
        let cpu = match self.thread_id.load(Ordering::Relaxed) {
            0 => None,
            tid => crate::sched::cpu_time_of(tid),
        };
        let cpu = cpu.and_then(|cpu| {
            let mut sighted = self.sighted.lock().ok()?;
            if sighted.since != since {
                *sighted = Sighting { since, cpu };
            }
            Some(cpu.saturating_sub(sighted.cpu))
        });
        Stuck::judge(self.parked.load(Ordering::Relaxed), wall, cpu, ceiling)
    }
}

/// Contexts this worker holds, keyed by the function definition they were loaded from.
#[derive(Default)]
struct Loaded {
    functions: Vec<(Arc<FunctionDef>, LoadedFunction)>,
}

impl Loaded {
    fn get(
        &mut self,
        def: &Arc<FunctionDef>,
        count: &AtomicU64,
    ) -> Result<&mut LoadedFunction, FunctionError> {
        let index = match self.functions.iter().position(|(d, _)| Arc::ptr_eq(d, def)) {
            Some(i) => i,
            None => {
                // A new version arrives with a reload, which is also when old ones go: drop
                // the contexts no configuration uses any more (only this worker holds them).
                self.functions.retain(|(d, _)| Arc::strong_count(d) > 1);
                let loaded = LoadedFunction::load(&def.code, def.runtime)
                    .map_err(|e| execution(format!("cannot load {}: {e}", def.name)))?;
                // Loading leaves garbage behind; collect now, outside the timed window, so the
                // first invocation is not charged a collector pause.
                force_collect();
                count.fetch_add(1, Ordering::Relaxed);
                self.functions.push((def.clone(), loaded));
                self.functions.len() - 1
            }
        };
        Ok(&mut self.functions[index].1)
    }

    fn has(&self, def: &Arc<FunctionDef>) -> bool {
        self.functions.iter().any(|(d, _)| Arc::ptr_eq(d, def))
    }

    /// Drop a function's context. Its heap is left for the caller's next collection (the
    /// reload that follows runs one), so a discard and a reload cost one collection, not two.
    fn discard(&mut self, def: &Arc<FunctionDef>) {
        self.functions.retain(|(d, _)| !Arc::ptr_eq(d, def));
    }
}

/// How long a worker waits for work before collecting the garbage of its last invocations.
const COLLECT_WHEN_IDLE_AFTER: Duration = Duration::from_millis(100);
/// How long an idle worker with nothing to collect sleeps between looks at the pool's `stop`.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// What a fast-tier invocation may hold, garbage included, while its JavaScript runs before
/// the allocator parks the worker: [`crate::alloc_meter::CEILING_FACTOR`] times what it may
/// allocate in all ([`crate::budget::MEMORY_LIMIT`], checked where the budget is).
pub const HARD_CEILING: u64 = crate::alloc_meter::CEILING_FACTOR * crate::budget::MEMORY_LIMIT;

/// Where a function thread (fast worker or edge instance) keeps the reply channel of the
/// invocation it runs: taken back after it, or by the ceiling hook if the thread parks during
/// it.
pub(crate) type ReplySlot = std::rc::Rc<std::cell::Cell<Option<oneshot::Sender<Reply>>>>;

/// What a worker does when it passes its hard ceiling, just before it parks for good (run
/// inside the allocator: it marks itself parked and answers, nothing more; the supervisor sees
/// the mark and retires and replaces it).
fn park_hook(slot: &ReplySlot, me: &Arc<WorkerState>) -> Box<dyn FnOnce()> {
    let slot = slot.clone();
    let me = me.clone();
    Box::new(move || {
        me.parked.store(true, Ordering::Relaxed);
        tracing::error!(
            ceiling_mb = HARD_CEILING >> 20,
            "a fast-tier worker passed its hard memory ceiling inside JavaScript no check \
             reaches; its thread is parked for good (see server.max_stuck_workers)"
        );
        if let Some(reply) = slot.take() {
            let _ = reply.send(Reply::failed(over_hard_ceiling()));
        }
    })
}

/// The answer of an invocation stopped at [`HARD_CEILING`].
pub fn over_hard_ceiling() -> FunctionError {
    throttled(format!(
        "the function went over its memory limit (more than {} MiB held)",
        HARD_CEILING >> 20
    ))
}

fn work(shared: &Arc<Shared>, me: &Arc<WorkerState>, ready: Option<Sender<()>>) {
    me.thread_id
        .store(crate::sched::thread_id(), Ordering::Relaxed);
    // Budgets read this thread's CPU clock at least once an invocation; the fast path saves the
    // system call while the worker keeps its core (a check that sleeps ~100 µs, before serving).
    let fast_clock = crate::cpu_clock::use_on_this_thread();
    tracing::debug!(fast_clock, "fast worker's CPU clock");
    let mut loaded = Loaded::default();
    let slot = ReplySlot::default();
    crate::alloc_meter::on_ceiling(park_hook(&slot, me));
    let mut gc = CollectionPolicy::new();
    if !me.warm.is_empty() {
        gc.make_headroom();
    }
    for def in me.warm.iter() {
        // A function that fails to load here fails the same way when invoked, with its error.
        let _ = loaded.get(def, &shared.loads.warm);
    }
    if let Some(ready) = ready {
        let _ = ready.send(());
    }
    loop {
        if me.retired.load(Ordering::Relaxed) {
            return;
        }
        // Idle with garbage left: collect after a short pause. Idle and clean: only look at
        // `stop` now and then (a closed queue wakes the worker at once anyway).
        let idle_wait = match gc.invocations {
            0 => IDLE_CHECK,
            _ => COLLECT_WHEN_IDLE_AFTER,
        };
        let task = match me.rx.recv_timeout(idle_wait) {
            Ok(task) => task,
            Err(RecvTimeoutError::Timeout) => {
                gc.when_idle(!loaded.functions.is_empty());
                if shared.stop.load(Ordering::Relaxed) {
                    return;
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        if task.reply.is_closed() {
            continue;
        }
        slot.set(Some(task.reply));
        // Shared with the event's deferred parts, which build from it when first touched.
        let invocation = Rc::new(task.invocation);
        crate::alloc_meter::set_ceiling(Some(HARD_CEILING));
        let Ran { reply, discard } = run(
            &mut loaded,
            &invocation,
            task.budget,
            task.started,
            me,
            shared,
        );
        crate::alloc_meter::set_ceiling(None);
        me.busy_since.store(0, Ordering::Relaxed);
        if let Some(reply_to) = slot.take() {
            let _ = reply_to.send(reply);
        }
        // An aborted context is dropped and its heap collected only now, after the reply: on a
        // warm context that takes milliseconds, which the viewer of a runaway need not wait for.
        // Those milliseconds, and the spare's load below (~0.25 ms), run at idle priority where
        // the worker can come back from it: on a core shared with the proxy thread and the other
        // workers they would otherwise take a third of it from every request in flight, and the
        // queue is shared, so the other workers serve meanwhile.
        let at_idle = if discard {
            IdleCleanup::begin(&shared.idle_cleanups, shared.config.workers, &me.retired)
        } else {
            None
        };
        if discard {
            // The proxy thread waiting for that reply may share this core: let it run before
            // the milliseconds of clean-up below, rather than after the scheduler's slice.
            std::thread::yield_now();
            loaded.discard(&invocation.function);
        }
        // A context discarded after an abort is replaced now, between invocations; loading
        // collects, which also takes the discarded heap. Otherwise that heap goes now, not
        // during someone's next invocation.
        let reloaded = !loaded.has(&invocation.function)
            && !me.retired.load(Ordering::Relaxed)
            && loaded
                .get(&invocation.function, &shared.loads.spare)
                .is_ok();
        if reloaded && at_idle.is_some() {
            shared.loads.spare_at_idle.fetch_add(1, Ordering::Relaxed);
        }
        if discard && !reloaded {
            force_collect();
        }
        drop(at_idle);
        // Collect outside the timed window, so a GC pause is never charged to a function.
        if gc.after_invocation(&invocation.function.name) {
            shared.engine_collections.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A worker cleaning up after an abort at idle priority; back to normal when dropped (unless the
/// supervisor retired it meanwhile: it stays where the supervisor put it).
struct IdleCleanup<'a> {
    active: &'a AtomicUsize,
    retired: &'a AtomicBool,
}

impl<'a> IdleCleanup<'a> {
    /// Lower the calling worker to idle, if the process may bring it back
    /// ([`crate::sched::can_return_from_idle`]) and fewer than all but one of the pool's
    /// `workers` are at idle already: one always serves at normal priority, even on a host whose
    /// other processes keep every core busy (an idle thread then gets next to no CPU).
    fn begin(active: &'a AtomicUsize, workers: usize, retired: &'a AtomicBool) -> Option<Self> {
        if !crate::sched::can_return_from_idle() {
            return None;
        }
        // Counted before the check, so two workers cannot both take the last place.
        let others_at_idle = active.fetch_add(1, Ordering::AcqRel);
        if others_at_idle + 1 >= workers.max(2)
            || !crate::sched::set_own(crate::sched::Policy::Idle)
        {
            active.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(IdleCleanup { active, retired })
    }
}

impl Drop for IdleCleanup<'_> {
    fn drop(&mut self) {
        if !self.retired.load(Ordering::Relaxed) {
            crate::sched::set_own(crate::sched::Policy::Normal);
        }
        self.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One invocation's reply, and whether the function's context must be discarded (an aborted
/// run or an engine panic left it unusable) — done by the caller once the reply is sent.
struct Ran {
    reply: Reply,
    discard: bool,
}

fn run(
    loaded: &mut Loaded,
    inv: &Rc<Invocation>,
    budget: Duration,
    started: Arc<AtomicU64>,
    me: &WorkerState,
    shared: &Shared,
) -> Ran {
    // Loading a new version happens before the clocks start: neither the hard ceiling nor the
    // caller's reply deadline is charged for it.
    let attempt = catch_unwind(AssertUnwindSafe(|| {
        run_inner(loaded, inv, budget, &shared.loads, move || {
            let now = shared.epoch.elapsed().as_micros().max(1) as u64;
            me.busy_since.store(now, Ordering::SeqCst);
            started.store(now, Ordering::Release);
            wake_supervisor(shared);
        })
    }));
    match attempt {
        Ok(ran) => ran,
        Err(_) => Ran {
            reply: Reply::failed(execution("the JavaScript engine failed on this function")),
            discard: true,
        },
    }
}

fn run_inner(
    loaded: &mut Loaded,
    inv: &Rc<Invocation>,
    budget: Duration,
    loads: &LoadCounts,
    start_clocks: impl Fn(),
) -> Ran {
    let event = match inv.hook {
        Hook::ViewerRequest => CffEvent::viewer_request(inv).deferring(inv),
        Hook::ViewerResponse => CffEvent::viewer_response(inv).deferring(inv),
        other => {
            return Ran {
                reply: Reply::failed(execution(format!(
                    "{} functions are not run by this build yet",
                    other.key()
                ))),
                discard: false,
            };
        }
    };
    let function = match loaded.get(&inv.function, &loads.on_demand) {
        Ok(f) => f,
        Err(e) => {
            return Ran {
                reply: Reply::failed(e),
                discard: false,
            };
        }
    };
    start_clocks();
    crate::host::enter(inv);
    let mut invoked = function.invoke(&event, budget);
    if invoked.doubtful_overrun {
        invoked = confirm_in_fresh_context(
            loaded,
            inv,
            &event,
            budget,
            &loads.confirm,
            &start_clocks,
            invoked,
        );
    }
    let decisions = crate::host::leave();
    let over_memory = decisions
        .memory
        .clone()
        .map(|what| throttled(format!("the function went over its memory limit ({what})")));
    let result = invoked
        .result
        .and_then(|json| match over_memory {
            Some(e) => Err(e),
            None => Ok(json),
        })
        .and_then(|json| match inv.hook {
            Hook::ViewerResponse => cff_event::viewer_response_outcome(&event, json),
            _ => cff_event::viewer_request_outcome(&event, json),
        })
        .map(|outcome| match outcome {
            Outcome::Continue(mut edits) => {
                edits.origin = decisions.origin;
                Outcome::Continue(edits)
            }
            respond => respond,
        });
    Ran {
        reply: Reply {
            result,
            utilization: invoked.utilization,
            logs: decisions.logs,
            log_data: decisions.log_data,
        },
        discard: invoked.poisoned,
    }
}

/// Run a doubtful overrun again under a strict budget in a fresh context (the stopped run left
/// its own unusable), so that a calm function robbed of CPU time by the host is answered rather
/// than failed and counted toward throttling. Discarding here costs the viewer a collection
/// (milliseconds on a warm context); an overrun that holds costs it one strict budget more.
/// The clocks (the hard ceiling, the caller's reply deadline) start again once the fresh
/// context is loaded: loading is never charged to them. If no fresh context can be loaded, the
/// `stopped` run's overrun stands.
fn confirm_in_fresh_context(
    loaded: &mut Loaded,
    inv: &Invocation,
    event: &CffEvent<'_>,
    budget: Duration,
    loads: &AtomicU64,
    restart_clocks: &impl Fn(),
    stopped: crate::cff_runtime::Invoked,
) -> crate::cff_runtime::Invoked {
    loaded.discard(&inv.function);
    crate::host::restart();
    let function = match loaded.get(&inv.function, loads) {
        Ok(function) => function,
        Err(e) => {
            tracing::warn!(
                function = %inv.function.name,
                error = %e.message,
                "could not load a fresh context to confirm an overrun; the overrun stands"
            );
            // Its context is gone already; the next invocation loads one.
            return crate::cff_runtime::Invoked {
                poisoned: false,
                ..stopped
            };
        }
    };
    restart_clocks();
    let invoked = function.confirm(event, budget);
    tracing::info!(
        function = %inv.function.name,
        confirmed = invoked.result.is_err(),
        "a calm function was stopped at its CPU budget: ran it again in a fresh context to confirm"
    );
    invoked
}

/// Check that a function loads (syntax, top level, a `handler`), on a throwaway thread with a
/// deadline, so a top-level runaway is a load error and never a hung worker.
pub fn check_loads(source: &Arc<str>, runtime: Runtime, deadline: Duration) -> Result<(), String> {
    let source = source.clone();
    crate::load_check::within_deadline("verge-load-check", deadline, move || {
        LoadedFunction::load(&source, runtime)
            .map(drop)
            .map_err(|e| e.0)
    })
}

#[cfg(test)]
mod tests;
