//! The edge pool: Lambda@Edge instances (DESIGN §3.1).
//!
//! Each function has up to `instances` instances; each instance is an OS thread running a
//! current-thread tokio runtime and owning one boa context, and serves one invocation at a
//! time — so one instance spinning on CPU after an `await` cannot delay the timers or deadlines
//! of another, and a function's concurrency limit is its instance count. Instances start on
//! first use (a cold start, counted and timed) and keep their globals between invocations,
//! like a warm Lambda container. A function's invocations wait in one queue ([`queue`]) that
//! its instances drain, the most recently idle instance woken first; an instance that finishes
//! takes the next invocation without sleeping.
//!
//! The caller's side enforces the limits whatever the instance does: a concurrency slot is
//! waited for only briefly (then `LambdaLimitExceeded`), and the reply is awaited only until
//! the invocation's timeout (plus a small grace for the instance's own timeout answer). An
//! instance that misses it is retired: its thread ends when it next gets control (the loop
//! backstop stops a spinning handler a few timeouts later), and a new one may take its place.
//! An invocation keeps its concurrency slot until its instance lets go of it, so runaways
//! cannot pile up threads beyond the function's instance count.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use verge_config::FunctionDef;

use crate::edge_runtime::{EdgeFunction, timed_out};
use crate::fast_pool::Reply;
use crate::invocation::Invocation;
use crate::outcome::{FunctionError, FunctionErrorKind};

mod queue;

use queue::{Next, Queue, START_DELAY, Waiter};

/// How long an invocation waits for a free instance before it is refused.
pub const INSTANCE_WAIT: Duration = Duration::from_millis(100);
/// How long past the timeout the caller waits for the instance's own timeout answer.
const TIMEOUT_GRACE: Duration = Duration::from_millis(50);
/// Stack of an instance thread (deep recursion in handlers stays within boa's limits).
const INSTANCE_STACK: usize = 8 << 20;

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
}

struct Task {
    /// Names the task for its caller, who may take it back from the queue.
    id: u64,
    invocation: Invocation,
    timeout: Duration,
    reply: oneshot::Sender<Reply>,
    /// The function's concurrency slot, released by the instance when it is done with the
    /// task — so an instance still spinning past its timeout keeps counting against the limit.
    slot: OwnedSemaphorePermit,
}

/// What an instance thread needs: its function, where its counters go, where its work waits.
#[derive(Clone)]
struct Shared {
    def: Arc<FunctionDef>,
    stats: Arc<EdgeStats>,
    queue: Arc<Queue<Task>>,
}

/// One function's instances.
struct FunctionInstances {
    shared: Shared,
    free: Arc<Semaphore>,
}

/// The edge tier of one configuration snapshot.
#[derive(Default)]
pub struct EdgePool {
    functions: HashMap<String, FunctionInstances>,
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

/// Numbers tasks, so a caller can find its own in a queue.
static NEXT_TASK: AtomicU64 = AtomicU64::new(0);

impl EdgePool {
    /// A pool for these (edge-tier) functions; no thread starts until a function is invoked.
    pub fn new(functions: impl IntoIterator<Item = Arc<FunctionDef>>) -> Self {
        let functions = functions
            .into_iter()
            .map(|def| {
                let limit = def.instances.max(1);
                let instances = FunctionInstances {
                    free: Arc::new(Semaphore::new(limit)),
                    shared: Shared {
                        def: def.clone(),
                        stats: Arc::new(EdgeStats::default()),
                        queue: Arc::new(Queue::new(limit)),
                    },
                };
                (def.name.clone(), instances)
            })
            .collect();
        EdgePool { functions }
    }

    /// Each function's counters.
    pub fn stats(&self) -> impl Iterator<Item = (&str, &EdgeStats)> {
        self.functions
            .iter()
            .map(|(name, f)| (name.as_str(), f.shared.stats.as_ref()))
    }

    /// Run `invocation` on an instance of its function.
    pub async fn invoke(&self, invocation: Invocation) -> Reply {
        let Some(f) = self.functions.get(&invocation.function.name) else {
            return limit_exceeded(format!(
                "function {} has no instances in this configuration",
                invocation.function.name
            ));
        };
        let Ok(Ok(slot)) =
            tokio::time::timeout(INSTANCE_WAIT, f.free.clone().acquire_owned()).await
        else {
            f.shared
                .stats
                .concurrency_refusals
                .fetch_add(1, Ordering::Relaxed);
            return limit_exceeded(format!(
                "all {} instances of {} are busy (its concurrency limit)",
                f.shared.def.instances, f.shared.def.name
            ));
        };
        let timeout = f.shared.def.timeout_at(invocation.hook);
        let (reply, answer) = oneshot::channel();
        let id = NEXT_TASK.fetch_add(1, Ordering::Relaxed);
        let task = Task {
            id,
            invocation,
            timeout,
            reply,
            slot,
        };
        if f.shared.queue.push(task).wake_or_start() && !f.shared.started(id) {
            return limit_exceeded("cannot start an instance");
        }
        // The answer is awaited until the timeout (plus the grace); a moment in, a task still
        // queued behind busy instances gets an instance of its own.
        let mut answer = answer;
        let now = tokio::time::Instant::now();
        let deadline = now + timeout + TIMEOUT_GRACE;
        let mut nudge_at = Some(now + START_DELAY);
        loop {
            let until = nudge_at.map_or(deadline, |n| n.min(deadline));
            match tokio::time::timeout_at(until, &mut answer).await {
                Ok(Ok(reply)) => return reply,
                Ok(Err(_)) => return limit_exceeded("the instance stopped during the invocation"),
                Err(_) if until < deadline => {
                    nudge_at = None;
                    let help = f.shared.queue.nudge(|t| t.id == id);
                    if help.wake_or_start() && !f.shared.started(id) {
                        return limit_exceeded("cannot start an instance");
                    }
                }
                Err(_) => {
                    // The instance is still busy (CPU after an `await`, or native code): it
                    // retires itself when it gets control back.
                    f.shared.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                    return Reply::failed(timed_out(timeout));
                }
            }
        }
    }
}

impl Drop for EdgePool {
    fn drop(&mut self) {
        // The snapshot is gone: idle instances end now, busy ones after their invocation.
        for f in self.functions.values() {
            f.shared.queue.close();
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
                let _live = Live(&shared);
                run_instance(&shared);
            })?;
        Ok(())
    }

    /// Start the instance the queue asked for on behalf of the caller of task `id`. False when
    /// it cannot be started and that task was still queued (taken back: nobody would run it).
    fn started(&self, id: u64) -> bool {
        match self.start_instance() {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(function = %self.def.name, error = %e, "cannot start an edge instance");
                self.queue.start_failed();
                self.queue.withdraw(|t| t.id == id).is_none()
            }
        }
    }

    /// A start the queue asked for, from an instance thread (no caller to tell if it fails).
    fn start_for_queue(&self) {
        if let Err(e) = self.start_instance() {
            self.queue.start_failed();
            tracing::error!(function = %self.def.name, error = %e, "cannot start an edge instance");
        }
    }
}

/// An instance thread's place in its queue's count, given up however the thread ends (a panic
/// included), with a replacement started if the queue asks for one.
struct Live<'a>(&'a Shared);

impl Drop for Live<'_> {
    fn drop(&mut self) {
        if self.0.queue.ended().wake_or_start() {
            self.0.start_for_queue();
        }
    }
}

/// An instance thread: its own event loop, one context, one invocation at a time.
fn run_instance(shared: &Shared) {
    let Shared { def, stats, queue } = shared;
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
    let mut starting = true;
    // The slot of the task just finished, let go when the queue is next asked for work.
    let mut done: Option<OwnedSemaphorePermit> = None;
    loop {
        let task = match queue.next(&me, starting, done.take()) {
            Next::Task(task, help) => {
                if help.wake_or_start() {
                    shared.start_for_queue();
                }
                task
            }
            Next::Closed => return,
        };
        starting = false;
        let Task {
            invocation,
            timeout,
            reply,
            slot,
            ..
        } = task;
        done = Some(slot);
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
        let began = Instant::now();
        let invoked = local.block_on(&runtime, function.invoke(&invocation, timeout));
        if invoked.poisoned {
            // Aborted frames stay on the VM stack: the next invocation gets a fresh
            // context (a cold start), as Lambda replaces a timed-out environment.
            loaded = None;
        }
        let overran = began.elapsed() > timeout + TIMEOUT_GRACE;
        let _ = reply.send(Reply {
            result: invoked.result,
            utilization: 0,
            logs: invoked.logs,
            log_data: None,
        });
        if overran {
            // Its caller answered the timeout without it: this instance retires (its slot is
            // let go as the thread ends).
            return;
        }
    }
}

#[cfg(test)]
mod tests;
