//! Lambda's `context` object and `callback` for one invocation, made natively.
//!
//! A handler answers in one of two ways: it returns a promise (an `async` handler), or it calls
//! `callback(err, result)` (also reachable as `context.done`, `context.succeed(result)` and
//! `context.fail(err)`); whichever comes first wins, as in Lambda's Node runtime. The callback
//! functions are native and write the answer into this thread's slot, tagged with the
//! invocation's number, so a callback kept from an earlier invocation settles nothing. Made in
//! JS, the same helper cost a wrapper promise and five closures per invocation (callgrind: about
//! a third of a no-op's instructions).
//!
//! A function whose handler has not touched its context yet gets one built on first touch
//! ([`crate::first_touch`]).

use std::cell::{Cell, RefCell};
use std::time::Instant;

use boa_engine::object::FunctionObjectBuilder;
use boa_engine::{
    Context, Finalize, JsArgs, JsNativeError, JsObject, JsResult, JsString, JsValue,
    NativeFunction, Trace, js_string,
};

use crate::first_touch::{FirstTouch, Part, Pending};
use crate::js_json::{JsBuilder, string};

/// What the handler answered through the callback: a result, or an error.
#[derive(Debug)]
pub enum Settled {
    /// `callback(null, result)`, `context.succeed(result)`.
    Answered(JsValue),
    /// `callback(err)`, `context.fail(err)`.
    Failed(JsValue),
}

thread_local! {
    /// The number of the invocation running on this thread, and its callback's answer.
    static CALLBACK: RefCell<(u64, Option<Settled>)> = const { RefCell::new((0, None)) };
    /// When the running invocation times out (`getRemainingTimeInMillis`).
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
    /// Invocations started on this thread (numbers are never reused on a thread).
    static STARTED: Cell<u64> = const { Cell::new(0) };
}

/// Start an invocation on this thread, answering by `deadline`; its number, for [`ContextTemplate::make`].
pub fn begin(deadline: Instant) -> u64 {
    let id = STARTED.with(|n| {
        n.set(n.get() + 1);
        n.get()
    });
    CALLBACK.with(|c| *c.borrow_mut() = (id, None));
    DEADLINE.with(|d| d.set(Some(deadline)));
    id
}

/// End the running invocation: its callback answers nothing from now on, and an answer that
/// was not taken is dropped now, while the engine is still there to drop it.
pub fn end() {
    CALLBACK.with(|c| *c.borrow_mut() = (0, None));
    DEADLINE.with(|d| d.set(None));
}

/// Whether the callback has answered the running invocation.
pub fn called_back() -> bool {
    CALLBACK.with(|c| c.borrow().1.is_some())
}

/// The callback's answer, if it came; the slot is left empty (it must not keep JS values alive
/// between invocations).
pub fn take() -> Option<Settled> {
    CALLBACK.with(|c| c.borrow_mut().1.take())
}

fn settle(id: u64, answer: Settled) {
    CALLBACK.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 == id && c.1.is_none() {
            c.1 = Some(answer);
        }
    });
}

/// `new Error(message)`.
pub fn error(message: &str, context: &mut Context) -> JsValue {
    JsNativeError::error()
        .with_message(message.to_owned())
        .into_opaque(context)
        .into()
}

/// A function object named `name` with `length` parameters.
fn named(
    context: &mut Context,
    name: &'static str,
    length: usize,
    native: NativeFunction,
) -> JsValue {
    FunctionObjectBuilder::new(context.realm(), native)
        .name(JsString::from(name))
        .length(length)
        .build()
        .into()
}

/// A callback of invocation `id`: `call` gets its arguments; it returns `undefined`.
fn function(
    context: &mut Context,
    name: &'static str,
    length: usize,
    id: u64,
    call: fn(&[JsValue], u64, &mut Context),
) -> JsValue {
    let native = NativeFunction::from_copy_closure_with_captures(
        move |_, args, id, context| {
            call(args, *id, context);
            Ok(JsValue::undefined())
        },
        id,
    );
    named(context, name, length, native)
}

fn callback(args: &[JsValue], id: u64, _: &mut Context) {
    let err = args.get_or_undefined(0);
    if err.is_null_or_undefined() {
        settle(id, Settled::Answered(args.get_or_undefined(1).clone()));
    } else {
        settle(id, Settled::Failed(err.clone()));
    }
}

fn succeed(args: &[JsValue], id: u64, _: &mut Context) {
    settle(id, Settled::Answered(args.get_or_undefined(0).clone()));
}

fn fail(args: &[JsValue], id: u64, context: &mut Context) {
    let err = args.get_or_undefined(0);
    let err = if err.is_null_or_undefined() {
        error("failed", context)
    } else {
        err.clone()
    };
    settle(id, Settled::Failed(err));
}

fn remaining_time(_: &JsValue, _: &[JsValue], _: &mut Context) -> JsResult<JsValue> {
    let left = DEADLINE.with(Cell::get).map_or(0, |d| {
        d.saturating_duration_since(Instant::now()).as_millis()
    });
    Ok(JsValue::from(left as f64))
}

/// The parts of a context that stay the same for every invocation of one function.
pub struct ContextTemplate {
    function_name: JsValue,
    arn: JsValue,
    log_group: JsValue,
    remaining_time: JsValue,
    /// `memoryLimitInMB`: the function's `memory_mb` as text, made when it is first seen.
    memory: Option<(u32, JsValue)>,
}

/// One invocation's `context` fields: everything needed to build it, now or on first touch.
#[derive(Trace, Finalize)]
pub struct Fields {
    function_name: JsValue,
    arn: JsValue,
    memory: JsValue,
    request_id: JsValue,
    log_group: JsValue,
    remaining_time: JsValue,
    /// The invocation's `callback`, which `context.done` is.
    callback: JsValue,
    /// The invocation's number: `succeed` and `fail` answer only it.
    #[unsafe_ignore_trace]
    id: u64,
}

impl Fields {
    /// Put the fields on `object`, in Lambda's order.
    pub(crate) fn write_onto(&self, object: &JsObject, js: &mut JsBuilder<'_>) {
        let succeed = function(js.context, "succeed", 1, self.id, succeed);
        let fail = function(js.context, "fail", 1, self.id, fail);
        js.set(object, "functionName", self.function_name.clone());
        js.set(object, "functionVersion", js_string!("1"));
        js.set(object, "invokedFunctionArn", self.arn.clone());
        js.set(object, "memoryLimitInMB", self.memory.clone());
        js.set(object, "awsRequestId", self.request_id.clone());
        js.set(object, "logGroupName", self.log_group.clone());
        js.set(object, "logStreamName", js_string!("verge"));
        js.set(object, "callbackWaitsForEmptyEventLoop", true);
        js.set(
            object,
            "getRemainingTimeInMillis",
            self.remaining_time.clone(),
        );
        js.set(object, "done", self.callback.clone());
        js.set(object, "succeed", succeed);
        js.set(object, "fail", fail);
    }
}

impl ContextTemplate {
    /// For function `name`, in `context`.
    pub fn new(name: &str, context: &mut Context) -> Self {
        let remaining_time = named(
            context,
            "getRemainingTimeInMillis",
            0,
            NativeFunction::from_fn_ptr(remaining_time),
        );
        ContextTemplate {
            function_name: string(name),
            arn: string(&format!(
                "arn:aws:lambda:us-east-1:000000000000:function:{name}:1"
            )),
            log_group: string(&format!("/aws/lambda/us-east-1.{name}")),
            remaining_time,
            memory: None,
        }
    }

    /// The `context` and `callback` of invocation `id` (see [`begin`]) of a function given
    /// `memory_mb`.
    ///
    /// Built on first touch when `first_touch` defers it ([`crate::first_touch`]).
    pub fn make(
        &mut self,
        id: u64,
        request_id: &str,
        memory_mb: u32,
        first_touch: Option<&FirstTouch>,
        js: &mut JsBuilder<'_>,
    ) -> (JsObject, JsValue) {
        let memory = match &self.memory {
            Some((mb, text)) if *mb == memory_mb => text.clone(),
            _ => {
                let text = string(&memory_mb.to_string());
                self.memory = Some((memory_mb, text.clone()));
                text
            }
        };
        let callback = function(js.context, "callback", 2, id, callback);
        let request_id = string(request_id);
        let fields = || Fields {
            function_name: self.function_name.clone(),
            arn: self.arn.clone(),
            memory: memory.clone(),
            request_id: request_id.clone(),
            log_group: self.log_group.clone(),
            remaining_time: self.remaining_time.clone(),
            callback: callback.clone(),
            id,
        };
        if let Some(first_touch) = first_touch
            && first_touch.defers(Part::Context)
            && let Some(proxy) = first_touch.make(Pending::Context(fields()), js)
        {
            return (proxy, callback);
        }
        let object = js.object();
        fields().write_onto(&object, js);
        (object, callback)
    }
}
