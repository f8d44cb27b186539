//! One CloudFront Function loaded into its own boa `Context`, and the budgeted invocation.
//!
//! Everything here is `!Send` and lives only on a fast-pool worker thread (or the throwaway
//! thread that checks a function at load). The pieces of DESIGN §3.2 in this file:
//! - a pre-compiled invoker script `handler(__verge_event)` evaluated with
//!   `evaluate_async_with_budget`, polled with a no-op waker; the CPU budget is checked at every
//!   yield;
//! - async handlers: the budgeted loop does not run after an `await`, so promise jobs are run
//!   one at a time by this module, with the budget checked between jobs;
//! - `RuntimeLimits` backstops (loop iterations per frame, recursion depth) for loops under
//!   native callbacks and after an `await`;
//! - no `eval` / `new Function` (host hook), `Date` frozen at invocation start (clock), always
//!   strict.
//!
//! After any abort the context holds stale frames, so the caller discards it.

use std::cell::Cell;
use std::pin::pin;
use std::rc::Rc;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use boa_engine::builtins::promise::PromiseState;
use boa_engine::context::time::JsInstant;
use boa_engine::context::{Clock, HostHooks};
use boa_engine::error::{EngineError, RuntimeLimitError};
use boa_engine::job::JobExecutor;
use boa_engine::object::builtins::JsPromise;
use boa_engine::realm::Realm;
use boa_engine::script::Script;
use boa_engine::{
    Context, JsError, JsNativeError, JsResult, JsString, JsValue, Module, Source, js_string,
};
use boa_gc::Gc;
use serde_json::Value;

use crate::budget::Budget;
use crate::cff_event::CffEvent;
use crate::deferred::Kit;
use crate::host::{self, HostModules};
use crate::invocation::Invocation;
use crate::job_queue::{Jobs, run_job};
use crate::js_json::{self, JsBuilder};
use crate::outcome::{FunctionError, FunctionErrorKind};
use crate::returned::{self, Returned};
use verge_config::Runtime;

/// The calibrated loop limit stays within these bounds whatever the probe measured.
const LOOP_LIMIT_BOUNDS: (u64, u64) = (10_000, 400_000);
/// Loop iterations per frame for top-level code at load.
const LOAD_LOOP_LIMIT: u64 = 1_000_000;
/// Call depth allowed.
const RECURSION_LIMIT: usize = 64;
/// VM cost units between yields to the budget check.
const YIELD_EVERY: u32 = 256;
/// Invocations within half the budget, with no failure since, after which an overrun is doubted: run again
/// under a strict budget before it fails the viewer's request or counts toward throttling. On a
/// virtual machine, time the hypervisor takes while a worker runs can be charged to the
/// worker's CPU clock, and a function that used a few percent of its budget for this many runs
/// is likelier to have been robbed than to have run away. A function that runs away on every
/// call never builds such a history, so its runaways are answered at once, within budget; one
/// that runs away after a calm stretch costs one strict budget more, once per stretch (a
/// confirmed overrun, or any other failure, ends the stretch). Neither an overrun the strict
/// re-run clears nor a run within budget but past half of it ends it: host stalls come in
/// bursts, and a calm function hit twice within a few milliseconds would otherwise fail the
/// second time (seen in the load benchmark: JWT checks answered 503 in runs where other doubted
/// overruns were cleared).
pub const CALM_RUNS: u32 = 16;

/// Loop iterations allowed per call frame during an invocation: a backstop for loops the
/// budgeted loop cannot interrupt (under native callbacks, after an `await`). Calibrated once
/// per process from the measured cost of one iteration of a small loop: twice what fits in the
/// largest budget (1 ms), so a function within its budget never meets it and a runaway after
/// an `await` is stopped within a few milliseconds of CPU.
pub fn loop_limit() -> u64 {
    static LIMIT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(|| {
        let (limit, per_iteration) = calibrate_loop_limit();
        tracing::info!(
            loop_limit = limit,
            ns_per_iteration = per_iteration.as_nanos() as u64,
            "calibrated the fast tier's loop-iteration backstop"
        );
        limit
    })
}

/// Time a probe loop (best of a few runs, after a warm-up) and derive the limit.
fn calibrate_loop_limit() -> (u64, Duration) {
    const ITERATIONS: u64 = 50_000;
    let (low, high) = LOOP_LIMIT_BOUNDS;
    let mut context = Context::default();
    context
        .runtime_limits_mut()
        .set_loop_iteration_limit(ITERATIONS * 2);
    let probe = format!(
        "(function () {{ var x = 0; for (var i = 0; i < {ITERATIONS}; i++) {{ x += i % 7; }} return x; }})()"
    );
    let Ok(script) = Script::parse(Source::from_bytes(&probe), None, &mut context) else {
        return (low, Duration::ZERO);
    };
    let mut best = Duration::MAX;
    for _ in 0..4 {
        let started = Instant::now();
        if script.evaluate(&mut context).is_err() {
            return (low, Duration::ZERO);
        }
        best = best.min(started.elapsed());
    }
    let per_iteration = best / ITERATIONS as u32;
    let fits = crate::budget::MAX_BUDGET.as_nanos() / per_iteration.as_nanos().max(1);
    ((2 * fits as u64).clamp(low, high), per_iteration)
}

/// Refuses `eval` and `new Function`, as CloudFront does.
struct NoDynamicCode;

impl HostHooks for NoDynamicCode {
    fn ensure_can_compile_strings(
        &self,
        _realm: Realm,
        _parameters: &[JsString],
        _body: &JsString,
        _direct: bool,
        _context: &mut Context,
    ) -> JsResult<()> {
        Err(JsNativeError::eval()
            .with_message("eval and new Function are not available in CloudFront Functions")
            .into())
    }

    /// ArrayBuffers (and so typed arrays) are bounded natively.
    fn max_buffer_size(&self, _context: &mut Context) -> u64 {
        crate::host::MAX_ELEMENTS as u64 * 8
    }
}

/// `Date` reads the time the invocation started, for the whole invocation.
struct FrozenClock {
    origin: Instant,
    frozen_millis: Cell<i64>,
}

impl FrozenClock {
    fn freeze_now(&self) {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        self.frozen_millis.set(millis);
    }
}

impl Clock for FrozenClock {
    fn now(&self) -> JsInstant {
        let elapsed = self.origin.elapsed();
        JsInstant::new(elapsed.as_secs(), elapsed.subsec_nanos())
    }

    fn system_time_millis(&self) -> i64 {
        self.frozen_millis.get()
    }
}

/// Why a function could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LoadError(pub String);

/// Load a module: its imports resolve to the host modules, and `handler` — declared at module
/// scope, exported or not, as CloudFront loads it — is made reachable for the invoker by a
/// statement appended after the last line, so line numbers in errors stay the file's own.
fn load_module(source: &str, context: &mut Context, jobs: &Rc<Jobs>) -> Result<(), LoadError> {
    let text = format!(
        "{source}\n;globalThis.__verge_handler = typeof handler === 'function' ? handler : undefined;\n"
    );
    let module = Module::parse(Source::from_bytes(&text), None, context)
        .map_err(|e| LoadError(format!("syntax error: {e}")))?;
    let promise = module.load_link_evaluate(context);
    crate::load_check::settle_module(&promise, context, jobs).map_err(LoadError)
}

/// What one invocation produced.
#[derive(Debug)]
pub struct Invoked {
    /// The handler's return value as JSON (`None` for `undefined`), or the failure.
    pub result: Result<Option<Returned>, FunctionError>,
    /// CPU used, percent of the budget.
    pub utilization: u32,
    /// The context was aborted mid-run and must not be used again.
    pub poisoned: bool,
    /// The run was stopped at its CPU budget although the function had long been well within
    /// it (see [`CALM_RUNS`]): the host, not the function, may have taken the time. The caller
    /// confirms the overrun with [`LoadedFunction::confirm`] in a fresh context before it
    /// answers or counts it.
    pub doubtful_overrun: bool,
}

/// An event a handler can be given, written onto the JS heap when the handler is called.
pub trait Event {
    /// The event in `js`'s context; `event.request` gets the kit's request prototype (which
    /// gives it `rawQueryString()`).
    fn write(&self, js: &mut JsBuilder<'_>, kit: &Gc<Kit>) -> JsResult<JsValue>;

    /// The invocation the event's deferred parts come from ([`crate::deferred`]), if any.
    fn source(&self) -> Option<&Rc<Invocation>> {
        None
    }
}

/// The proxy's events, built from the invocation.
impl Event for CffEvent<'_> {
    fn write(&self, js: &mut JsBuilder<'_>, kit: &Gc<Kit>) -> JsResult<JsValue> {
        Ok(CffEvent::write(self, js, kit))
    }

    fn source(&self) -> Option<&Rc<Invocation>> {
        CffEvent::source(self)
    }
}

/// An event given as JSON (`verge test-function` passes the user's event file as written).
impl Event for Value {
    fn write(&self, js: &mut JsBuilder<'_>, kit: &Gc<Kit>) -> JsResult<JsValue> {
        let request_prototype = &kit.request_prototype;
        let event = js_json::to_js(self, js.keys, js.context);
        if let Some(request) = event
            .as_object()
            .map(|e| e.get(js_string!("request"), js.context))
            .transpose()?
            .and_then(|r| r.as_object())
        {
            request.set_prototype(Some(request_prototype.clone()));
        }
        Ok(event)
    }
}

/// A function ready to run on this thread.
pub struct LoadedFunction {
    context: Context,
    invoker: Script,
    clock: Rc<FrozenClock>,
    jobs: Rc<Jobs>,
    /// The request prototype, the deferred parts' accessors and the event keys already made
    /// in this context.
    kit: Gc<Kit>,
    /// Invocations in a row that finished within half their budget (or whose overrun a strict
    /// re-run cleared).
    calm: u32,
}

/// A run over its CPU budget, with the figures (see [`Budget::overrun_detail`]).
fn over_budget(meter: &Budget, used: Duration) -> FunctionError {
    throttled(format!(
        "the function exceeded its CPU budget ({})",
        meter.overrun_detail(used)
    ))
}

fn execution(message: impl Into<String>) -> FunctionError {
    FunctionError {
        kind: FunctionErrorKind::Execution,
        message: message.into(),
        edge: false,
    }
}

fn throttled(message: impl Into<String>) -> FunctionError {
    FunctionError {
        kind: FunctionErrorKind::Throttled,
        message: message.into(),
        edge: false,
    }
}

fn over_memory(meter: &Budget) -> FunctionError {
    throttled(format!(
        "the function went over its memory limit ({} MiB allocated, limit {} MiB)",
        meter.allocated() >> 20,
        crate::budget::MEMORY_LIMIT >> 20
    ))
}

/// Map an engine error: runtime-limit hits are throttling (the function ran away), anything
/// else is an execution error.
fn js_failure(e: &JsError) -> FunctionError {
    match e.as_engine() {
        Some(EngineError::RuntimeLimit(RuntimeLimitError::LoopIteration)) => {
            throttled("the function exceeded its loop-iteration limit")
        }
        Some(EngineError::RuntimeLimit(RuntimeLimitError::Recursion)) => {
            throttled("the function exceeded its recursion limit")
        }
        Some(other) => throttled(format!("the function was stopped: {other}")),
        None => execution(e.to_string()),
    }
}

impl LoadedFunction {
    /// Compile and run a function's top-level code in a fresh context of `runtime`.
    pub fn load(source: &str, runtime: Runtime) -> Result<Self, LoadError> {
        crate::regex_guard::check_source(source).map_err(LoadError)?;
        if runtime == Runtime::CloudfrontJs1 {
            if let Some(why) = crate::source_scan::runtime1_refusal(source) {
                return Err(LoadError(why));
            }
            if crate::source_scan::is_module(source) {
                return Err(LoadError(
                    "the cloudfront-js-1.0 runtime has no `import`/`export`; use require('crypto') \
                     or runtime cloudfront-js-2.0"
                        .into(),
                ));
            }
        }
        let clock = Rc::new(FrozenClock {
            origin: Instant::now(),
            frozen_millis: Cell::new(0),
        });
        clock.freeze_now();
        let jobs = Rc::new(Jobs::default());
        let mut context = Context::builder()
            .host_hooks(Rc::new(NoDynamicCode))
            .clock(clock.clone())
            .job_executor(jobs.clone())
            .module_loader(Rc::new(HostModules::default()))
            .build()
            .map_err(|e| LoadError(format!("cannot create a JavaScript context: {e}")))?;
        host::install(&mut context, runtime, source)
            .map_err(|e| LoadError(format!("cannot install the host modules: {e}")))?;
        let request_prototype = host::request_prototype(&mut context)
            .map_err(|e| LoadError(format!("cannot install the host modules: {e}")))?;
        let kit = Kit::new(request_prototype, &mut context);
        context
            .runtime_limits_mut()
            .set_loop_iteration_limit(LOAD_LOOP_LIMIT);
        context
            .runtime_limits_mut()
            .set_recursion_limit(RECURSION_LIMIT);
        // Always strict, as on CloudFront (a parser setting, so positions in errors are the
        // file's own).
        context.strict(true);
        if crate::source_scan::is_module(source) {
            load_module(source, &mut context, &jobs)?;
        } else {
            let script = Script::parse(Source::from_bytes(source), None, &mut context)
                .map_err(|e| LoadError(format!("syntax error: {e}")))?;
            script
                .evaluate(&mut context)
                .map_err(|e| LoadError(format!("the top-level code failed: {e}")))?;
            jobs.clone()
                .run_jobs(&mut context)
                .map_err(|e| LoadError(format!("the top-level code failed: {e}")))?;
            let handler = context
                .global_object()
                .get(js_string!("handler"), &mut context)
                .map_err(|e| LoadError(e.to_string()))?;
            context
                .global_object()
                .set(js_string!("__verge_handler"), handler, false, &mut context)
                .map_err(|e| LoadError(e.to_string()))?;
        }
        let handler = context
            .global_object()
            .get(js_string!("__verge_handler"), &mut context)
            .map_err(|e| LoadError(e.to_string()))?;
        if !handler.is_callable() {
            return Err(LoadError(
                "no function named `handler` is declared at the top level".into(),
            ));
        }
        let invoker = Script::parse(
            Source::from_bytes("__verge_handler(__verge_event)"),
            None,
            &mut context,
        )
        .map_err(|e| LoadError(e.to_string()))?;
        context
            .runtime_limits_mut()
            .set_loop_iteration_limit(loop_limit());
        Ok(LoadedFunction {
            context,
            invoker,
            clock,
            jobs,
            kit,
            calm: 0,
        })
    }

    /// Run the handler on `event` within `budget` of CPU time.
    ///
    /// Work inside a native built-in is not interrupted; if a run finished past its budget it
    /// still failed it — unless the overrun is doubtful and the same invocation, run again
    /// under a strict budget, passes: then the CPU went to the host, not the function, and the
    /// re-run's answer stands. An overrun is doubtful when the budget went within a few checks
    /// (see [`Budget::spent_early`]) or after [`CALM_RUNS`] calm invocations. A finished run is
    /// re-run here in the same context; a stopped one left this context unusable, so the
    /// caller re-runs it in a fresh one ([`Invoked::doubtful_overrun`]). A fast-tier function
    /// has no network or timers and `Date` stays frozen, so running it again gives the viewer
    /// what one run would have.
    pub fn invoke(&mut self, event: &dyn Event, budget: Duration) -> Invoked {
        self.run(event, budget, Budget::start)
    }

    /// Run the handler once under a strict budget, with no re-run: the test of an overrun
    /// [`Invoked::doubtful_overrun`] reported from another (calm) context. When it passes, this
    /// context takes over that calm history: the overrun was the host's, not the function's.
    pub fn confirm(&mut self, event: &dyn Event, budget: Duration) -> Invoked {
        let invoked = self.run(event, budget, Budget::strict);
        if invoked.result.is_ok() {
            self.calm = self.calm.max(CALM_RUNS);
        }
        invoked
    }

    fn run(
        &mut self,
        event: &dyn Event,
        budget: Duration,
        start: fn(Duration) -> Budget,
    ) -> Invoked {
        self.clock.freeze_now();
        let calm = std::mem::take(&mut self.calm);
        let Attempt {
            mut result,
            mut poisoned,
            mut meter,
        } = match self.attempt(event, start, budget) {
            Ok(attempt) => attempt,
            Err(failure) => return failure,
        };
        let mut used = meter.used();
        // A strict run (the confirmation itself) is never doubted.
        let calm_before = calm >= CALM_RUNS && meter.may_extend();
        let doubtful = meter.spent_early() || calm_before;
        if result.is_ok() && used > budget && doubtful && !poisoned {
            tracing::debug!(
                used_us = used.as_micros() as u64,
                "over budget, doubtfully: running the invocation again to confirm"
            );
            host::restart();
            self.jobs.clear();
            match self.attempt(event, Budget::strict, budget) {
                Ok(again) => {
                    (result, poisoned, meter) = (again.result, again.poisoned, again.meter)
                }
                Err(failure) => return failure,
            }
            used = meter.used();
        }
        if result.is_ok() && used > budget {
            result = Err(over_budget(&meter, used));
        }
        if result.is_ok() && meter.over_memory() {
            result = Err(over_memory(&meter));
        }
        self.jobs.clear();
        // Only a failure ends the calm stretch. A run within budget but past half of it (the
        // host's stalls come in bursts, and a stall that slows a run is often followed by one
        // that pushes the next past its budget), or an overrun the strict re-run cleared,
        // keeps the stretch without adding to it.
        if result.is_ok() && used <= budget / 2 {
            self.calm = calm.saturating_add(1);
        } else if result.is_ok() {
            self.calm = calm;
        }
        Invoked {
            result,
            utilization: meter.utilization_of(used),
            doubtful_overrun: poisoned && meter.stopped() && calm_before,
            poisoned,
        }
    }

    /// Put `event` into the context and run the handler under a budget made by `start` when
    /// the handler is called (building the event is not the function's time). `Err` is the
    /// whole answer when the event cannot be built. All of it is JavaScript and verge's natives
    /// (nothing here logs or takes a lock), so the worker's hard memory ceiling is enforced
    /// throughout ([`crate::alloc_meter::enforced`]).
    fn attempt(
        &mut self,
        event: &dyn Event,
        start: fn(Duration) -> Budget,
        budget: Duration,
    ) -> Result<Attempt, Invoked> {
        crate::alloc_meter::enforced(|| self.attempt_enforced(event, start, budget))
    }

    /// [`Self::attempt`]'s work, run under the ceiling.
    fn attempt_enforced(
        &mut self,
        event: &dyn Event,
        start: fn(Duration) -> Budget,
        budget: Duration,
    ) -> Result<Attempt, Invoked> {
        let mut keys = self.kit.keys.borrow_mut();
        let mut js = JsBuilder {
            keys: &mut keys,
            context: &mut self.context,
        };
        let set = event
            .write(&mut js, &self.kit)
            .map(|ev| js.set_global("__verge_event", ev));
        drop(keys);
        if let Err(e) = set {
            return Err(Invoked {
                result: Err(execution(format!("cannot build the event: {e}"))),
                utilization: 0,
                poisoned: false,
                doubtful_overrun: false,
            });
        }
        let mut meter = start(budget);
        let (result, poisoned) = run_budgeted(
            &self.invoker,
            &mut self.context,
            &self.jobs,
            &mut meter,
            event.source(),
            self.kit.entry.as_ref(),
        );
        Ok(Attempt {
            result,
            poisoned,
            meter,
        })
    }
}

/// One run of the handler: its result, whether the context was aborted, what it used.
struct Attempt {
    result: Result<Option<Returned>, FunctionError>,
    poisoned: bool,
    meter: Budget,
}

/// Poll the invoker with a no-op waker, checking the budget at every yield, then settle a
/// returned promise job by job. Returns the result and whether the context was aborted.
fn run_budgeted(
    invoker: &Script,
    context: &mut Context,
    jobs: &Jobs,
    meter: &mut Budget,
    source: Option<&Rc<Invocation>>,
    entry: Option<&returned::EntryShape>,
) -> (Result<Option<Returned>, FunctionError>, bool) {
    let value = {
        let mut future = pin!(invoker.evaluate_async_with_budget(context, YIELD_EVERY));
        let mut task = TaskContext::from_waker(Waker::noop());
        loop {
            match future.as_mut().poll(&mut task) {
                Poll::Ready(result) => break result,
                Poll::Pending if meter.exhausted() => {
                    return (Err(over_budget(meter, meter.used())), true);
                }
                Poll::Pending if meter.over_memory() => return (Err(over_memory(meter)), true),
                Poll::Pending => {}
            }
        }
    };
    let value = match value {
        Ok(v) => v,
        Err(e) => {
            let failure = js_failure(&e);
            let poisoned = failure.kind == FunctionErrorKind::Throttled;
            return (Err(failure), poisoned);
        }
    };
    let value = match value.as_promise() {
        None => value,
        Some(promise) => match settle(&promise, context, jobs, meter) {
            Ok(v) => v,
            Err(failure) => {
                let poisoned = failure.kind == FunctionErrorKind::Throttled;
                return (Err(failure), poisoned);
            }
        },
    };
    match returned::read_result(&value, source, entry, context) {
        Ok(json) => (Ok(json), false),
        Err(e) => (
            Err(FunctionError {
                kind: FunctionErrorKind::Validation,
                message: format!("the returned value cannot be read: {e}"),
                edge: false,
            }),
            false,
        ),
    }
}

/// Run promise jobs until `promise` settles, checking the budget between jobs.
///
/// A runtime-limit abort inside a resumed async function does not reach the job's result: boa
/// leaves the function's promise pending. So a promise still pending when the queue runs dry
/// after jobs ran is treated as an aborted (runaway) run; one pending before any job ran is a
/// promise that was never going to settle.
fn settle(
    promise: &JsPromise,
    context: &mut Context,
    jobs: &Jobs,
    meter: &mut Budget,
) -> Result<JsValue, FunctionError> {
    let mut ran_jobs = false;
    loop {
        match promise.state() {
            PromiseState::Fulfilled(v) => return Ok(v),
            PromiseState::Rejected(reason) => {
                let message = reason.to_string(context).map_or_else(
                    |_| "the handler's promise was rejected".into(),
                    |s| s.to_std_string_escaped(),
                );
                return Err(execution(message));
            }
            PromiseState::Pending => {}
        }
        if meter.exhausted() {
            return Err(over_budget(meter, meter.used()));
        }
        if meter.over_memory() {
            return Err(over_memory(meter));
        }
        let Some(job) = jobs.pop() else {
            if ran_jobs {
                return Err(throttled(
                    "the handler was stopped after an await (loop or recursion limit)",
                ));
            }
            return Err(execution(
                "the handler's promise never settled (the fast tier has no timers or network)",
            ));
        };
        ran_jobs = true;
        run_job(job, context).map_err(|e| js_failure(&e))?;
    }
}

#[cfg(test)]
mod tests;
