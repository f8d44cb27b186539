//! One Lambda@Edge handler loaded into its own boa `Context`, and its invocation under a
//! wall-clock deadline.
//!
//! Everything here is `!Send` and lives on one edge instance's thread. Loading follows Node:
//! a CommonJS file runs inside the module wrapper (`exports`, `require`, `module`), an ES module
//! (`import`/`export`) is linked against the host modules and its `handler` (or `default`)
//! export is taken. An invocation calls the handler with the event, a native `context` and a
//! native `callback` ([`crate::edge_context`]), which accepts the `async (event, context)` and
//! `(event, context, callback)` forms, then runs an event loop — promise jobs one at a time,
//! timers when due — until the returned promise or the callback answers, or the deadline
//! passes. Code before the first `await` runs in boa's budgeted loop, so the deadline is checked
//! there too; code after an `await` is bounded by the loop-iteration backstop (and, whatever
//! it does, the pool answers the viewer at the deadline and retires the instance). The
//! function's `memory_mb` is checked where the deadline is, against what the invocation holds
//! ([`crate::alloc_meter::Held`]). Between those checks, inside one stretch of JavaScript, the
//! allocator enforces the thread's hard ceiling if the pool set one ([`hard_ceiling`]):
//! every entry into the engine runs under [`crate::alloc_meter::enforced`].

use std::pin::pin;
use std::rc::Rc;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::{Duration, Instant};

use boa_engine::builtins::promise::PromiseState;
use boa_engine::error::{EngineError, RuntimeLimitError};
use boa_engine::object::builtins::{JsArray, JsPromise, JsUint8Array};
use boa_engine::script::Script;
use boa_engine::{
    Context, JsError, JsObject, JsResult, JsString, JsValue, Module, Source, js_string,
};
use verge_config::Runtime;

use crate::alloc_meter::enforced;
use crate::cff_runtime::LoadError;
use crate::edge_context::{self, ContextTemplate, Settled};
use crate::edge_event::EdgeEvent;
use crate::first_touch::FirstTouch;
use crate::host::{self, HostModules};
use crate::invocation::Invocation;
use crate::job_queue::{Jobs, run_job};
use crate::outcome::{FunctionError, FunctionErrorKind, Outcome};
use crate::returned::{EntryShape, Returned};

/// VM cost units between deadline checks while the handler runs before its first `await`.
const YIELD_EVERY: u32 = 1024;
/// Loop iterations per frame per millisecond of timeout, after an `await`.
const EDGE_LOOPS_PER_MS: u64 = 400_000;
/// Loop iterations per frame for top-level code at load.
const LOAD_LOOP_LIMIT: u64 = 10_000_000;

fn execution(message: impl Into<String>) -> FunctionError {
    FunctionError {
        kind: FunctionErrorKind::Execution,
        message: message.into(),
        edge: true,
    }
}

fn limit(message: impl Into<String>) -> FunctionError {
    FunctionError {
        kind: FunctionErrorKind::Throttled,
        message: message.into(),
        edge: true,
    }
}

fn validation(message: impl Into<String>) -> FunctionError {
    FunctionError {
        kind: FunctionErrorKind::Validation,
        message: message.into(),
        edge: true,
    }
}

/// The message a timed-out invocation reports (Lambda's words).
pub fn timed_out(timeout: Duration) -> FunctionError {
    limit(format!(
        "Task timed out after {:.2} seconds",
        timeout.as_secs_f64()
    ))
}

/// Lambda's answer to a function that runs out of memory is a crashed runtime, which
/// CloudFront reports as an execution error (503).
pub(crate) fn over_memory(limit_mb: u32) -> FunctionError {
    execution(format!(
        "Runtime exited with error: the invocation held more than the function's {limit_mb} MB (memory_mb)"
    ))
}

/// The hard ceiling on what one invocation of a function with `memory_mb` may hold, in bytes,
/// that the allocator enforces inside a stretch of JavaScript no check reaches (see the module
/// docs).
pub fn hard_ceiling(memory_mb: u32) -> u64 {
    (u64::from(memory_mb) << 20).saturating_mul(crate::alloc_meter::CEILING_FACTOR)
}

/// What one invocation held beyond its start, against the function's `memory_mb`.
#[derive(Debug, Clone, Copy)]
struct MemoryLimit {
    start: crate::alloc_meter::Held,
    mb: u32,
}

impl MemoryLimit {
    fn start(mb: u32) -> Self {
        MemoryLimit {
            start: crate::alloc_meter::Held::now(),
            mb,
        }
    }

    /// The failure (the context aborted) once the invocation holds more than the limit.
    fn check(&self) -> Result<(), (FunctionError, bool)> {
        let limit = u64::from(self.mb) << 20;
        if self.start.grown() > limit {
            // Garbage counts until it is collected, and boa collects by the size of its own
            // objects, not of the element vectors and strings they point to: a handler
            // churning through big arrays can be over on paper while holding little.
            boa_engine::gc::force_collect();
            if self.start.grown() > limit {
                return Err((over_memory(self.mb), true));
            }
        }
        Ok(())
    }
}

/// What bounds one invocation: its deadline (the function's timeout from the start) and the
/// memory it may hold. Checked together wherever control comes back to the runtime: between
/// the budgeted loop's slices, after each promise job and after each round of timers.
#[derive(Debug, Clone, Copy)]
struct Limits {
    deadline: Instant,
    timeout: Duration,
    memory: MemoryLimit,
}

impl Limits {
    fn start(timeout: Duration, memory_mb: u32) -> Self {
        Limits {
            deadline: Instant::now() + timeout,
            timeout,
            memory: MemoryLimit::start(memory_mb),
        }
    }

    /// The failure (the context aborted) once the deadline has passed.
    fn check_time(&self) -> Result<(), (FunctionError, bool)> {
        if Instant::now() >= self.deadline {
            return Err((timed_out(self.timeout), true));
        }
        Ok(())
    }

    /// Both limits, time first.
    fn check(&self) -> Result<(), (FunctionError, bool)> {
        self.check_time()?;
        self.memory.check()
    }
}

/// What one invocation produced.
#[derive(Debug)]
pub struct EdgeInvoked {
    /// Continue, respond, or the failure.
    pub result: Result<Outcome, FunctionError>,
    /// `console.*` lines.
    pub logs: Vec<String>,
    /// What the handler answered (for `verge test-function`), when it answered.
    pub output: Option<Returned>,
    /// The context was aborted mid-run (or timed out) and must be rebuilt.
    pub poisoned: bool,
}

/// A handler ready to run on this thread.
pub struct EdgeFunction {
    context: Context,
    jobs: Rc<Jobs>,
    invoker: Script,
    /// The handler's declared parameter count (`handler.length`).
    handler_length: usize,
    /// The parts of Lambda's `context` that are the same on every invocation.
    template: ContextTemplate,
    /// The means to build the context and parts of the event on first touch (`None` if the
    /// engine would not make them: then everything is built in full).
    first_touch: Option<FirstTouch>,
    /// Event keys already made in this context.
    keys: crate::js_json::KeyCache,
    /// The shape of the events' `{key, value}` header entries, which the result reader takes
    /// without its general walk ([`crate::returned::EntryShape`]).
    entry: Option<EntryShape>,
}

/// Turn an engine error into a readable string, with the error's own message for JS errors.
fn describe(e: &JsError, context: &mut Context) -> String {
    match e.try_native(context) {
        Ok(native) => native.to_string(),
        Err(_) => e.to_string(),
    }
}

/// Load an ES module and return its handler: the `handler` export, else a `default` export
/// that is a function or has a `handler`.
fn load_esm(source: &str, context: &mut Context, jobs: &Rc<Jobs>) -> Result<JsValue, LoadError> {
    let module = Module::parse(Source::from_bytes(source), None, context)
        .map_err(|e| LoadError(format!("syntax error: {e}")))?;
    let promise = module.load_link_evaluate(context);
    crate::load_check::settle_module(&promise, context, jobs).map_err(LoadError)?;
    let handler = module
        .get_value(js_string!("handler"), context)
        .map_err(|e| LoadError(e.to_string()))?;
    if handler.is_callable() {
        return Ok(handler);
    }
    let default = module
        .get_value(js_string!("default"), context)
        .unwrap_or_default();
    if default.is_callable() {
        return Ok(default);
    }
    match default.as_object() {
        Some(obj) => obj
            .get(js_string!("handler"), context)
            .map_err(|e| LoadError(e.to_string())),
        None => Ok(JsValue::undefined()),
    }
}

/// Run a CommonJS file in Node's module wrapper and return `module.exports.handler`. The
/// wrapper opens on the file's first line, so line numbers in errors are the file's own.
fn load_commonjs(
    source: &str,
    context: &mut Context,
    jobs: &Rc<Jobs>,
) -> Result<JsValue, LoadError> {
    let wrapped =
        format!("(function (exports, require, module, __filename, __dirname) {{{source}\n}})");
    let script = Script::parse(Source::from_bytes(&wrapped), None, context)
        .map_err(|e| LoadError(format!("syntax error: {e}")))?;
    let wrapper = script
        .evaluate(context)
        .map_err(|e| LoadError(format!("syntax error: {e}")))?;
    let wrapper = wrapper
        .as_callable()
        .ok_or_else(|| LoadError("the module wrapper is not a function".into()))?;
    let exports = JsObject::with_object_proto(context.intrinsics());
    let module = JsObject::with_object_proto(context.intrinsics());
    module
        .set(js_string!("exports"), exports.clone(), false, context)
        .map_err(|e| LoadError(e.to_string()))?;
    let require = context
        .global_object()
        .get(js_string!("require"), context)
        .map_err(|e| LoadError(e.to_string()))?;
    wrapper
        .call(
            &JsValue::undefined(),
            &[
                exports.into(),
                require,
                module.clone().into(),
                JsString::from("/var/task/index.js").into(),
                JsString::from("/var/task").into(),
            ],
            context,
        )
        .map_err(|e| {
            LoadError(format!(
                "the top-level code failed: {}",
                describe(&e, context)
            ))
        })?;
    while let Some(job) = jobs.pop() {
        run_job(job, context).map_err(|e| LoadError(format!("the top-level code failed: {e}")))?;
    }
    let exports = module
        .get(js_string!("exports"), context)
        .map_err(|e| LoadError(e.to_string()))?;
    match exports.as_object() {
        Some(obj) if !exports.is_callable() => obj
            .get(js_string!("handler"), context)
            .map_err(|e| LoadError(e.to_string())),
        // `module.exports = async (event) => …`
        _ => Ok(exports),
    }
}

impl EdgeFunction {
    /// Compile and run a handler's top-level code in a fresh context.
    pub fn load(name: &str, source: &str) -> Result<Self, LoadError> {
        let jobs = Rc::new(Jobs::default());
        let mut context = Context::builder()
            .job_executor(jobs.clone())
            .module_loader(Rc::new(HostModules::default()))
            .build()
            .map_err(|e| LoadError(format!("cannot create a JavaScript context: {e}")))?;
        host::install(&mut context, Runtime::LambdaEdge, source)
            .map_err(|e| LoadError(format!("cannot install the host modules: {e}")))?;
        context
            .runtime_limits_mut()
            .set_loop_iteration_limit(LOAD_LOOP_LIMIT);
        // Before the handler's code: the traps take the engine's own `Reflect`.
        let first_touch = FirstTouch::new(&mut context)
            .inspect_err(|e| {
                tracing::warn!(
                    function = name,
                    error = %e,
                    "cannot make the means to build parts on first touch; every part is built in full"
                );
            })
            .ok();
        let template = ContextTemplate::new(name, &mut context);
        let handler = if crate::source_scan::is_module(source) {
            load_esm(source, &mut context, &jobs)?
        } else {
            load_commonjs(source, &mut context, &jobs)?
        };
        if !handler.is_callable() {
            return Err(LoadError(
                "no handler is exported (exports.handler, module.exports.handler, export const handler or export default)"
                    .into(),
            ));
        }
        let handler_length = handler
            .as_object()
            .and_then(|h| h.get(js_string!("length"), &mut context).ok())
            .and_then(|l| l.as_number())
            .map_or(0, |l| l as usize);
        context
            .global_object()
            .set(js_string!("__verge_handler"), handler, false, &mut context)
            .map_err(|e| LoadError(e.to_string()))?;
        let invoker = Script::parse(
            Source::from_bytes("__verge_handler(__verge_event, __verge_ctx, __verge_callback)"),
            None,
            &mut context,
        )
        .map_err(|e| LoadError(e.to_string()))?;
        let mut keys = crate::js_json::KeyCache::default();
        let entry = EntryShape::key_value_entries(&mut crate::js_json::JsBuilder {
            keys: &mut keys,
            context: &mut context,
        });
        Ok(EdgeFunction {
            context,
            jobs,
            invoker,
            handler_length,
            template,
            first_touch,
            keys,
            entry,
        })
    }

    /// Run the handler on `inv` until it answers or its `timeout` passes.
    pub async fn invoke(&mut self, inv: &Rc<Invocation>, timeout: Duration) -> EdgeInvoked {
        let limits = Limits::start(timeout, inv.function.memory_mb);
        // The backstop for loops after an `await`, where no deadline check reaches: sized from
        // an iteration cost below anything boa achieves (2.5 ns), so it only ever stops a run
        // that has already failed its deadline — which the pool has answered by then. Not the
        // fast tier's calibration: that one is measured once, maybe on a busy machine.
        let loops = EDGE_LOOPS_PER_MS.saturating_mul(timeout.as_millis().max(1) as u64);
        self.context
            .runtime_limits_mut()
            .set_loop_iteration_limit(loops);
        host::begin(false, None);
        crate::edge_fetch::begin(&inv.function, limits.deadline);
        let event = EdgeEvent::new(inv);
        let mut result = self.run(inv, &event, limits).await;
        // A burst with no check inside it (one native call, say) is caught here.
        if result.is_ok()
            && let Err(e) = limits.memory.check()
        {
            result = Err(e);
        }
        let decisions = host::take();
        // Nothing of this invocation runs later: its timers and queued jobs go, and so does a
        // callback answer left unread on a failure path (no JS value outlives the invocation in
        // a thread-local).
        edge_context::end();
        if let Some(first_touch) = &self.first_touch {
            first_touch.end_invocation();
        }
        crate::edge_host::clear_timers();
        crate::edge_fetch::clear();
        self.jobs.clear();
        // Only an invocation that started a timer or a fetch left callbacks to drop.
        let reset = !crate::edge_host::take_callbacks_made()
            || self
                .context
                .global_object()
                .get(js_string!("__verge_reset"), &mut self.context)
                .ok()
                .and_then(|f| f.as_callable())
                .is_some_and(|f| {
                    enforced(|| f.call(&JsValue::undefined(), &[], &mut self.context)).is_ok()
                });
        let poisoned = matches!(&result, Err((_, true))) || !reset;
        let (result, output) = match result {
            Ok(returned) => (event.outcome(returned.as_ref()), returned),
            Err((e, _)) => (Err(e), None),
        };
        EdgeInvoked {
            result,
            logs: decisions.logs,
            output,
            poisoned,
        }
    }

    /// The handler's answer (`None` for `undefined`/`null`), or the failure and whether the
    /// context was aborted.
    async fn run(
        &mut self,
        inv: &Rc<Invocation>,
        event: &EdgeEvent<'_>,
        limits: Limits,
    ) -> Result<Option<Returned>, (FunctionError, bool)> {
        let context = &mut self.context;
        let id = edge_context::begin(limits.deadline);
        // Building the event cannot fail: it only makes plain objects and data properties.
        enforced(|| {
            let mut js = crate::js_json::JsBuilder {
                keys: &mut self.keys,
                context,
            };
            let first_touch = self.first_touch.as_ref();
            let ev = event.write(&mut js, first_touch.map(|f| (f, inv)));
            let (ctx_obj, callback) = self.template.make(
                id,
                &inv.request_id,
                inv.function.memory_mb,
                first_touch,
                &mut js,
            );
            js.set_global("__verge_event", ev);
            js.set_global("__verge_ctx", ctx_obj);
            js.set_global("__verge_callback", callback);
        });
        // Up to the first `await`: boa's budgeted loop, the limits checked at every yield.
        let value = enforced(|| {
            let mut future = pin!(
                self.invoker
                    .evaluate_async_with_budget(context, YIELD_EVERY)
            );
            let mut task = TaskContext::from_waker(Waker::noop());
            loop {
                match future.as_mut().poll(&mut task) {
                    Poll::Ready(result) => break Ok(result),
                    Poll::Pending => limits.check()?,
                }
            }
        })?;
        let value = value.map_err(|e| failure(&e, context))?;
        let promise = if let Some(promise) = value.as_promise() {
            Some(promise)
        } else if enforced(|| is_thenable(&value, context)) {
            // A thenable that is not a native promise: adopt it as `await` would.
            let adopted = enforced(|| JsPromise::resolve(value, context));
            Some(adopted.map_err(|e| failure(&e, context))?)
        } else {
            if !value.is_undefined() && self.handler_length < 3 && !edge_context::called_back() {
                return Err((
                    validation(
                        "The Lambda function returned invalid json: The json output is not parsable. (A handler that is not async returns its result through the callback.)",
                    ),
                    false,
                ));
            }
            None
        };
        self.event_loop(promise.as_ref(), limits).await?;
        let context = &mut self.context;
        // The callback first: it wins a tie with the promise, as the earlier of the two.
        let answer = edge_context::take().or_else(|| match promise.map(|p| p.state()) {
            Some(PromiseState::Fulfilled(v)) => Some(Settled::Answered(v)),
            Some(PromiseState::Rejected(reason)) => Some(Settled::Failed(reason)),
            _ => None,
        });
        match answer {
            Some(Settled::Answered(v)) if v.is_undefined() || v.is_null() => Ok(None),
            Some(Settled::Answered(v)) => enforced(|| {
                crate::returned::read_edge_result(
                    &v,
                    self.entry.as_ref(),
                    self.first_touch.as_ref(),
                    context,
                )
            })
            .map_err(|e| {
                (
                    validation(format!(
                        "The Lambda function returned invalid json: The json output is not parsable ({e})"
                    )),
                    false,
                )
            }),
            Some(Settled::Failed(reason)) => {
                let reason = if reason.is_null_or_undefined() {
                    edge_context::error("the handler rejected", context)
                } else {
                    reason
                };
                Err((rejection(&reason, context), false))
            }
            None => Err((execution("the handler did not settle"), true)),
        }
    }

    /// Run promise jobs and timers until the callback answers or `promise` settles; a deadline,
    /// the memory limit, an abort inside a job, or nothing left that could answer ends the
    /// loop with a failure.
    async fn event_loop(
        &mut self,
        promise: Option<&JsPromise>,
        limits: Limits,
    ) -> Result<(), (FunctionError, bool)> {
        loop {
            while let Some(job) = self.jobs.pop() {
                if let Err(e) = enforced(|| run_job(job, &mut self.context)) {
                    return Err(failure(&e, &mut self.context));
                }
                limits.check()?;
            }
            if edge_context::called_back()
                || promise.is_some_and(|p| !matches!(p.state(), PromiseState::Pending))
            {
                return Ok(());
            }
            // Nothing left that could settle it. (A runaway after an `await` that the loop
            // backstop stopped looks the same to boa, but the backstop is sized to about twice
            // the timeout, so such a run has already failed the deadline check above.)
            let next = crate::edge_host::next_timer();
            let fetching = crate::edge_fetch::pending();
            if next.is_none() && !fetching {
                limits.check_time()?;
                return Err((
                    validation(
                        "The Lambda function returned invalid json: the handler finished without answering (no callback called, no value returned)",
                    ),
                    false,
                ));
            }
            let wake = next.map_or(limits.deadline, |n| n.min(limits.deadline));
            tokio::select! {
                biased;
                done = crate::edge_fetch::next_done(), if fetching => {
                    if let Some((id, answer)) = done {
                        enforced(|| self.deliver_fetch(id, answer))?;
                    }
                }
                () = tokio::time::sleep_until(wake.into()) => {
                    limits.check_time()?;
                    enforced(|| self.fire_due_timers())?;
                    limits.check()?;
                }
            }
        }
    }

    /// Run the callbacks of the timers that are due.
    fn fire_due_timers(&mut self) -> Result<(), (FunctionError, bool)> {
        for id in crate::edge_host::take_due(Instant::now()) {
            let fire = self
                .context
                .global_object()
                .get(js_string!("__verge_fire"), &mut self.context)
                .map_err(|e| (execution(e.to_string()), true))?;
            if let Some(fire) = fire.as_callable()
                && let Err(e) = fire.call(
                    &JsValue::undefined(),
                    &[JsValue::from(id)],
                    &mut self.context,
                )
            {
                // An exception thrown by a timer callback is uncaught: the invocation fails.
                return Err(failure(&e, &mut self.context));
            }
        }
        Ok(())
    }

    /// Settle the promise of fetch `id` with its answer (or its failure).
    fn deliver_fetch(
        &mut self,
        id: u32,
        answer: Result<crate::edge_fetch::FetchReply, String>,
    ) -> Result<(), (FunctionError, bool)> {
        let context = &mut self.context;
        let args = (|| -> JsResult<Vec<JsValue>> {
            let mut args = vec![JsValue::from(id)];
            match answer {
                Err(message) => {
                    args.push(JsString::from(message.as_str()).into());
                }
                Ok(reply) => {
                    let headers = JsArray::new(context)?;
                    for (name, value) in &reply.headers {
                        let pair = JsArray::from_iter(
                            [
                                JsString::from(name.as_str()).into(),
                                JsString::from(value.as_str()).into(),
                            ],
                            context,
                        );
                        headers.push(pair, context)?;
                    }
                    args.extend([
                        JsValue::null(),
                        JsValue::from(reply.status),
                        JsString::from(reply.status_text.as_str()).into(),
                        headers.into(),
                        JsUint8Array::from_iter(reply.body, context)?.into(),
                    ]);
                }
            }
            Ok(args)
        })()
        .map_err(|e| {
            (
                execution(format!("cannot deliver a fetch answer: {e}")),
                false,
            )
        })?;
        let done = context
            .global_object()
            .get(js_string!("__verge_fetch_done"), context)
            .map_err(|e| (execution(e.to_string()), true))?;
        if let Some(done) = done.as_callable()
            && let Err(e) = done.call(&JsValue::undefined(), &args, context)
        {
            return Err(failure(&e, context));
        }
        Ok(())
    }
}

/// Whether `value` is an object with a callable `then` (what `await` adopts).
fn is_thenable(value: &JsValue, context: &mut Context) -> bool {
    value.as_object().is_some_and(|o| {
        o.get(js_string!("then"), context)
            .is_ok_and(|then| then.is_callable())
    })
}

/// A thrown error: runtime limits are the instance running away; anything else is the
/// handler's own exception.
fn failure(e: &JsError, context: &mut Context) -> (FunctionError, bool) {
    match e.as_engine() {
        Some(EngineError::RuntimeLimit(RuntimeLimitError::LoopIteration)) => {
            (limit("the handler exceeded its loop-iteration limit"), true)
        }
        Some(EngineError::RuntimeLimit(_)) => (limit("the handler exceeded a runtime limit"), true),
        Some(other) => (limit(format!("the handler was stopped: {other}")), true),
        None => (execution(describe(e, context)), false),
    }
}

/// A rejection reason (or the error given to the callback): the handler's error.
fn rejection(reason: &JsValue, context: &mut Context) -> FunctionError {
    // `Error: message`, then boa's frames when it has them.
    let text = reason.to_string(context).map_or_else(
        |_| "the handler failed".into(),
        |s| s.to_std_string_escaped(),
    );
    let stack = reason
        .as_object()
        .and_then(|o| o.get(js_string!("stack"), context).ok())
        .and_then(|s| s.as_string().map(|s| s.to_std_string_escaped()))
        .filter(|s| !s.trim().is_empty());
    let text = match stack {
        Some(stack) if !stack.contains(&text) => format!("{text}\n{}", stack.trim_end()),
        _ => text,
    };
    execution(text)
}

/// Ready this thread to serve many invocations: the engine's collection trigger is put
/// [`crate::collector::EDGE_HEADROOM`] above the heap it holds, once per thread (later calls
/// cost a thread-local read). With boa's own 1 MiB trigger, an instance walked its whole heap
/// (intrinsics, host preludes, the handler's globals) every few dozen invocations: callgrind,
/// edge no-op, 183k → 167k instructions an invocation, and a simulated 1 MiB cache missed 582
/// → 241 times an invocation. An instance does this after its first answer, not inside its
/// cold start: making the ballast costs ~1 ms.
pub fn prepare_to_serve() {
    crate::collector::make_headroom_once(crate::collector::EDGE_HEADROOM);
}

/// Load a handler on a throwaway thread within `deadline`: syntax, top-level code and an
/// exported handler are checked without risking a serving thread.
pub fn check_loads(name: &str, source: &str, deadline: Duration) -> Result<(), String> {
    let (name, source) = (name.to_owned(), source.to_owned());
    crate::load_check::within_deadline("verge-edge-check", deadline, move || {
        EdgeFunction::load(&name, &source)
            .map(drop)
            .map_err(|e| e.0)
    })
}

#[cfg(test)]
mod tests;
