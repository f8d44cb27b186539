//! The edge pool: Lambda@Edge instances (DESIGN §3.1).
//!
//! Each function has up to `instances` instances; each instance is an OS thread running a
//! current-thread tokio runtime and owning one boa context, and serves one invocation at a
//! time — so one instance spinning on CPU after an `await` cannot delay the timers or deadlines
//! of another, and a function's concurrency limit is its instance count. Instances start on
//! first use (a cold start, counted and timed) and keep their globals between invocations,
//! like a warm Lambda container.
//!
//! The caller's side enforces the limits whatever the instance does: a free instance is waited
//! for only briefly (then `LambdaLimitExceeded`), and the reply is awaited only until the
//! invocation's timeout (plus a small grace for the instance's own timeout answer); an
//! instance that misses it is retired — its thread ends when it next gets control (the loop
//! backstop stops a spinning handler a few timeouts later) — and a new one takes its place on
//! the next call. The retired instance keeps its concurrency slot until its thread lets go of
//! the task, so runaways cannot pile up threads beyond the function's instance count.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use verge_config::FunctionDef;

use crate::edge_runtime::{EdgeFunction, timed_out};
use crate::fast_pool::Reply;
use crate::invocation::Invocation;
use crate::outcome::{FunctionError, FunctionErrorKind};

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
    invocation: Invocation,
    timeout: Duration,
    reply: oneshot::Sender<Reply>,
    /// The function's concurrency slot, released by the instance when it is done with the
    /// task — so an instance still spinning past its timeout keeps counting against the limit.
    _slot: OwnedSemaphorePermit,
}

/// The caller's handle on one instance thread.
struct Instance {
    tasks: mpsc::UnboundedSender<Task>,
}

/// One function's instances.
struct FunctionInstances {
    def: Arc<FunctionDef>,
    free: Arc<Semaphore>,
    idle: Mutex<Vec<Instance>>,
    stats: Arc<EdgeStats>,
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

impl EdgePool {
    /// A pool for these (edge-tier) functions; no thread starts until a function is invoked.
    pub fn new(functions: impl IntoIterator<Item = Arc<FunctionDef>>) -> Self {
        let functions = functions
            .into_iter()
            .map(|def| {
                let instances = FunctionInstances {
                    free: Arc::new(Semaphore::new(def.instances.max(1))),
                    idle: Mutex::new(Vec::new()),
                    stats: Arc::new(EdgeStats::default()),
                    def: def.clone(),
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
            .map(|(name, f)| (name.as_str(), f.stats.as_ref()))
    }

    /// Run `invocation` on a free instance of its function.
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
            f.stats.concurrency_refusals.fetch_add(1, Ordering::Relaxed);
            return limit_exceeded(format!(
                "all {} instances of {} are busy (its concurrency limit)",
                f.def.instances, f.def.name
            ));
        };
        let timeout = f.def.timeout_at(invocation.hook);
        let recycled = f.idle.lock().map(|mut idle| idle.pop()).unwrap_or(None);
        let instance = match recycled {
            Some(i) => i,
            None => match Instance::start(f.def.clone(), f.stats.clone()) {
                Ok(i) => i,
                Err(e) => return limit_exceeded(format!("cannot start an instance: {e}")),
            },
        };
        let (reply, answer) = oneshot::channel();
        let task = Task {
            invocation,
            timeout,
            reply,
            _slot: slot,
        };
        if instance.tasks.send(task).is_err() {
            return limit_exceeded("the instance stopped before it took the invocation");
        }
        match tokio::time::timeout(timeout + TIMEOUT_GRACE, answer).await {
            Ok(Ok(reply)) => {
                if let Ok(mut idle) = f.idle.lock() {
                    idle.push(instance);
                }
                reply
            }
            Ok(Err(_)) => limit_exceeded("the instance stopped during the invocation"),
            Err(_) => {
                // The instance is still busy (CPU after an `await`, or native code): retire it.
                // Dropping its sender ends its thread when the thread next gets control.
                f.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                drop(instance);
                Reply::failed(timed_out(timeout))
            }
        }
    }
}

impl Instance {
    /// Start an instance thread; it loads the function on its first task.
    fn start(def: Arc<FunctionDef>, stats: Arc<EdgeStats>) -> std::io::Result<Instance> {
        let (tasks, queue) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name(format!("verge-edge-{}", def.name))
            .stack_size(INSTANCE_STACK)
            .spawn(move || run_instance(&def, &stats, queue))?;
        Ok(Instance { tasks })
    }
}

/// An instance thread: its own event loop, one context, one invocation at a time.
fn run_instance(def: &FunctionDef, stats: &EdgeStats, mut queue: mpsc::UnboundedReceiver<Task>) {
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
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let mut loaded: Option<EdgeFunction> = None;
        while let Some(task) = queue.recv().await {
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
                            let _ = task.reply.send(Reply::failed(FunctionError {
                                kind: FunctionErrorKind::Execution,
                                message: format!("the function failed to load: {e}"),
                                edge: true,
                            }));
                            continue;
                        }
                    }
                }
            };
            let invoked = function.invoke(&task.invocation, task.timeout).await;
            if invoked.poisoned {
                // Aborted frames stay on the VM stack: the next invocation gets a fresh
                // context (a cold start), as Lambda replaces a timed-out environment.
                loaded = None;
            }
            let _ = task.reply.send(Reply {
                result: invoked.result,
                utilization: 0,
                logs: invoked.logs,
                log_data: None,
            });
        }
    });
}

#[cfg(test)]
mod tests;
