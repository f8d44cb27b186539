//! The part of the host every context gets, built natively: `console`, the allocation guards on
//! built-ins that nothing interrupts once they run, the nested-quantifier check on
//! `new RegExp(…)`, `require` and the module table, and the means to install a host
//! [`Part`](crate::host::Part) on first use (`__verge_lazy_global`, `__verge_global`,
//! `__verge_has`).
//!
//! Why native: boa parses and compiles JavaScript at every context load, and this core, when it
//! was JavaScript, was four fifths of a fast-tier context's load (6.2M of 7.8M instructions) —
//! what a worker pays to start, to take a reload, to clean up after each runaway, and what an
//! edge instance pays to cold-start. The module parts stay JavaScript: a function pays for
//! those only when it uses them.
//!
//! The globals it leaves, and what the parts call:
//! - `__verge_modules`: the module table; each part adds its module there;
//! - `__verge_module(name)`: a module by name, its part installed first if needed (the ES module
//!   loader makes `import` from it);
//! - `__verge_has(part)`: whether a part is installed (reads the install's marker);
//! - `__verge_global(name, value)`: a part publishing a global, unless the function stored or
//!   deleted that name first;
//! - `__verge_lazy_global(name, part)`: a global left as an accessor that installs `part` on
//!   first read;
//! - `__verge_adopt(bytes)`: a `Uint8Array` as a `Buffer` (installs `buffer`).

use boa_engine::builtins::object::OrdinaryObject;
use boa_engine::object::builtins::JsFunction;
use boa_engine::object::{FunctionObjectBuilder, IntegrityLevel, JsObject};
use boa_engine::property::PropertyDescriptor;
use boa_engine::{
    Context, JsArgs as _, JsNativeError, JsResult, JsString, JsSymbol, JsValue, NativeFunction,
    Source, js_string,
};
use verge_config::Runtime;

use crate::host::{MAX_ELEMENTS, install_named, note_memory, record_log};

/// Build the core globals of `runtime`. The natives the parts call (`__verge_install`,
/// `__verge_memory`, …) are registered by [`crate::host::install`] before this runs.
pub(crate) fn install(ctx: &mut Context, runtime: Runtime) -> JsResult<()> {
    let global = ctx.global_object();
    if runtime != Runtime::LambdaEdge {
        // The edge tier has Node's console ([`crate::edge_host`]).
        install_console(ctx)?;
    }
    install_guards(ctx)?;
    install_regexp_guard(ctx)?;

    let modules = JsObject::with_object_proto(ctx.intrinsics());
    let lazy = JsObject::with_null_proto();
    let module = NativeFunction::from_copy_closure_with_captures(
        move |_, args, modules, ctx| {
            let name = string_of(args.get_or_undefined(0), ctx)?;
            module_named(runtime, modules, &name, ctx)
        },
        modules.clone(),
    );
    let require = NativeFunction::from_copy_closure_with_captures(
        move |_, args, modules, ctx| {
            let name = string_of(args.get_or_undefined(0), ctx)?;
            // Node's `node:` scheme names the same built-in modules.
            let name = match name.to_std_string_escaped().strip_prefix("node:") {
                Some(rest) => JsString::from(rest),
                None => name,
            };
            module_named(runtime, modules, &name, ctx)
        },
        modules.clone(),
    );
    let has = NativeFunction::from_fn_ptr(|_, args, ctx| {
        let part = string_of(args.get_or_undefined(0), ctx)?;
        let marker = format!("__verge_part_{}", crate::encoding::utf8_escaped(&part));
        let marker = JsString::from(marker);
        Ok(ctx.global_object().has_own_property(marker, ctx)?.into())
    });
    let publish = NativeFunction::from_copy_closure_with_captures(
        |_, args, lazy, ctx| {
            publish_global(
                lazy,
                args.get_or_undefined(0),
                args.get_or_undefined(1),
                ctx,
            )
        },
        lazy.clone(),
    );
    let lazy_global = NativeFunction::from_copy_closure_with_captures(
        move |_, args, lazy, ctx| {
            let name = string_of(args.get_or_undefined(0), ctx)?;
            let part = string_of(args.get_or_undefined(1), ctx)?;
            define_lazy_global(runtime, lazy, name, part, ctx)?;
            Ok(JsValue::undefined())
        },
        lazy.clone(),
    );
    let adopt = NativeFunction::from_copy_closure(move |_, args, ctx| {
        install_named(runtime, "buffer", ctx)?;
        let adopt = ctx
            .global_object()
            .get(js_string!("__verge_adopt_buffer"), ctx)?;
        let adopt = adopt
            .as_callable()
            .ok_or_else(|| JsNativeError::typ().with_message("the buffer part is missing"))?;
        adopt.call(
            &JsValue::undefined(),
            &[args.get_or_undefined(0).clone()],
            ctx,
        )
    });

    hidden(&global, js_string!("__verge_modules"), modules.clone(), ctx)?;
    let functions = [
        (js_string!("__verge_module"), "module", 1, module),
        (js_string!("__verge_has"), "has", 1, has),
        (js_string!("__verge_global"), "global", 2, publish),
        (
            js_string!("__verge_lazy_global"),
            "lazyGlobal",
            2,
            lazy_global,
        ),
        (js_string!("__verge_adopt"), "adopt", 1, adopt),
        (js_string!("require"), "require", 1, require),
    ];
    for (key, name, length, native) in functions {
        let f = function(ctx, name, length, native);
        hidden(&global, key, f, ctx)?;
    }

    if runtime == Runtime::CloudfrontJs1 {
        // A class is simplest made by the engine; one line to parse.
        ctx.eval(Source::from_bytes(
            "Object.defineProperty(globalThis, 'MemoryError', \
             { value: class MemoryError extends Error {}, writable: true, configurable: true });",
        ))?;
        install_named(runtime, "bytestrings", ctx)?;
    } else {
        // `require('buffer')` is only a handle on the class, installed on first read.
        let buffer_class = NativeFunction::from_copy_closure(move |_, _, ctx| {
            install_named(runtime, "buffer", ctx)?;
            ctx.global_object()
                .get(js_string!("__verge_buffer_class"), ctx)
        });
        let getter = function(ctx, "get Buffer", 0, buffer_class);
        let handle = JsObject::with_object_proto(ctx.intrinsics());
        handle.define_property_or_throw(
            js_string!("Buffer"),
            PropertyDescriptor::builder()
                .get(getter)
                .enumerable(true)
                .configurable(true),
            ctx,
        )?;
        handle.set_integrity_level(IntegrityLevel::Frozen, ctx)?;
        modules.create_data_property_or_throw(js_string!("buffer"), handle, ctx)?;
        for &(name, part) in lazy_globals(runtime) {
            define_lazy_global(runtime, &lazy, name.into(), part.into(), ctx)?;
        }
    }
    Ok(())
}

/// The globals of `runtime` that wait as accessors for their part's first use: `(name, part)`.
fn lazy_globals(runtime: Runtime) -> impl Iterator<Item = &'static (&'static str, &'static str)> {
    const NODE_AND_2_0: &[(&str, &str)] = &[
        ("Buffer", "buffer"),
        ("TextEncoder", "text"),
        ("TextDecoder", "text"),
    ];
    const EDGE_ONLY: &[(&str, &str)] = &[
        ("fetch", "fetch"),
        ("Headers", "fetch"),
        ("Response", "fetch"),
        ("URL", "url"),
        ("URLSearchParams", "url"),
        ("setTimeout", "timers"),
        ("clearTimeout", "timers"),
        ("setImmediate", "timers"),
        ("clearImmediate", "timers"),
    ];
    let (common, edge): (&[_], &[_]) = match runtime {
        Runtime::CloudfrontJs1 => (&[], &[]),
        Runtime::CloudfrontJs2 => (NODE_AND_2_0, &[]),
        Runtime::LambdaEdge => (NODE_AND_2_0, EDGE_ONLY),
    };
    common.iter().chain(edge)
}

/// The part that makes module `name` in `runtime`, if the runtime has such a module.
fn module_part(runtime: Runtime, name: &str) -> Option<&'static str> {
    match (runtime, name) {
        (Runtime::LambdaEdge, "crypto") => Some("crypto_node"),
        (_, "crypto") => Some("crypto"),
        (_, "querystring") => Some("querystring"),
        (Runtime::LambdaEdge, "url") => Some("url"),
        (Runtime::LambdaEdge, "util") => Some("util"),
        (Runtime::CloudfrontJs2, "cloudfront") => Some("cloudfront"),
        _ => None,
    }
}

/// `require(name)` without the scheme: the module from the table, its part installed first.
fn module_named(
    runtime: Runtime,
    modules: &JsObject,
    name: &JsString,
    ctx: &mut Context,
) -> JsResult<JsValue> {
    if !modules.has_own_property(name.clone(), ctx)?
        && let Some(part) = module_part(runtime, &name.to_std_string_escaped())
    {
        install_named(runtime, part, ctx)?;
    }
    if modules.has_own_property(name.clone(), ctx)? {
        return modules.get(name.clone(), ctx);
    }
    Err(JsNativeError::error()
        .with_message(format!(
            "Cannot find module '{}'",
            crate::encoding::utf8_escaped(name)
        ))
        .into())
}

/// `__verge_global(name, value)`: a part publishes `value` as a global — unless the function
/// got there first. What it stored stays its own, and so does a name it deleted: only a name
/// still held by the part's own lazy accessor, or one that was never lazy and is free, is
/// taken.
fn publish_global(
    lazy: &JsObject,
    name: &JsValue,
    value: &JsValue,
    ctx: &mut Context,
) -> JsResult<JsValue> {
    let name = string_of(name, ctx)?;
    let global = ctx.global_object();
    let own = own_getter(&global, &name, ctx)?;
    let mine = lazy.get(name.clone(), ctx)?;
    let take = match (&own, mine.is_undefined()) {
        (None, true) => true,
        (Some(getter), false) => getter.strict_equals(&mine),
        _ => false,
    };
    if take {
        open(&global, name, value.clone(), ctx)?;
    }
    Ok(JsValue::undefined())
}

/// The global `name` as an accessor until first read: the read installs `part` (uncharged:
/// [`install_named`]), which publishes the real value; a write first makes it the function's own.
fn define_lazy_global(
    runtime: Runtime,
    lazy: &JsObject,
    name: JsString,
    part: JsString,
    ctx: &mut Context,
) -> JsResult<()> {
    let get = NativeFunction::from_copy_closure_with_captures(
        move |_, _, (name, part, lazy), ctx| {
            install_named(runtime, &part.to_std_string_escaped(), ctx)?;
            let global = ctx.global_object();
            let still_mine = match own_getter(&global, name, ctx)? {
                None => true,
                Some(getter) => getter.strict_equals(&lazy.get(name.clone(), ctx)?),
            };
            if still_mine {
                Ok(JsValue::undefined())
            } else {
                global.get(name.clone(), ctx)
            }
        },
        (name.clone(), part, lazy.clone()),
    );
    let set = NativeFunction::from_copy_closure_with_captures(
        |_, args, name, ctx| {
            let value = args.get_or_undefined(0).clone();
            open(&ctx.global_object(), name.clone(), value, ctx)?;
            Ok(JsValue::undefined())
        },
        name.clone(),
    );
    let get = function(ctx, "get", 0, get);
    let set = function(ctx, "set", 1, set);
    lazy.create_data_property_or_throw(name.clone(), get.clone(), ctx)?;
    ctx.global_object().define_property_or_throw(
        name,
        PropertyDescriptor::builder()
            .get(get)
            .set(set)
            .configurable(true),
        ctx,
    )?;
    Ok(())
}

/// The own property `name` of `object`: `None` when there is none, otherwise its getter
/// (`undefined` for a data property).
fn own_getter(object: &JsObject, name: &JsString, ctx: &mut Context) -> JsResult<Option<JsValue>> {
    let descriptor = OrdinaryObject::get_own_property_descriptor(
        &JsValue::undefined(),
        &[object.clone().into(), name.clone().into()],
        ctx,
    )?;
    match descriptor.as_object() {
        None => Ok(None),
        Some(descriptor) => Ok(Some(descriptor.get(js_string!("get"), ctx)?)),
    }
}

/// `console`: one function for `log`, `info`, `warn` and `error`, logging its first argument
/// as `String(…)` would (the host keeps at most 10 KB a run, CloudFront's limit).
fn install_console(ctx: &mut Context) -> JsResult<()> {
    let log = function(
        ctx,
        "log",
        1,
        NativeFunction::from_fn_ptr(|_, args, ctx| {
            let line = string_of(args.get_or_undefined(0), ctx)?;
            record_log(crate::encoding::utf8_escaped(&line));
            Ok(JsValue::undefined())
        }),
    );
    let console = JsObject::with_object_proto(ctx.intrinsics());
    for name in ["log", "info", "warn", "error"] {
        console.create_data_property_or_throw(JsString::from(name), log.clone(), ctx)?;
    }
    console.set_integrity_level(IntegrityLevel::Frozen, ctx)?;
    open(&ctx.global_object(), js_string!("console"), console, ctx)
}

/// How many elements a guarded built-in is about to make, from its `this` and arguments;
/// `None` when the call is not checked.
type Size = fn(&JsValue, &[JsValue], &mut Context) -> JsResult<Option<f64>>;

/// Allocation-heavy built-ins are checked before they start (nothing interrupts them once
/// running); a refusal marks the invocation as over its memory limit even if JS catches it.
fn install_guards(ctx: &mut Context) -> JsResult<()> {
    let array_proto = ctx.intrinsics().constructors().array().prototype();
    let string_proto = ctx.intrinsics().constructors().string().prototype();
    let array = ctx.intrinsics().constructors().array().constructor();
    let this_length: Size = |this, _, ctx| {
        let length = this.to_object(ctx)?.get(js_string!("length"), ctx)?;
        Ok(Some(f64::from(length.to_u32(ctx)?)))
    };
    let repeat: Size = |this, args, ctx| {
        let units = string_of(this, ctx)?.len() as f64;
        Ok(Some(units * number_or_zero(args.get_or_undefined(0), ctx)?))
    };
    let pad: Size = |_, args, ctx| Ok(Some(number_or_zero(args.get_or_undefined(0), ctx)?));
    // An array-like without an iterator: its `length` says how many elements.
    let from: Size = |_, args, ctx| {
        let Some(items) = args.get_or_undefined(0).as_object() else {
            return Ok(None);
        };
        if items.is_callable() || items.get(JsSymbol::iterator(), ctx)?.is_callable() {
            return Ok(None);
        }
        let length = items.get(js_string!("length"), ctx)?;
        Ok(Some(number_or_zero(&length, ctx)?))
    };
    guard_method(ctx, &array_proto, "fill", "fill", this_length)?;
    guard_method(ctx, &array_proto, "join", "join", this_length)?;
    guard_method(ctx, &string_proto, "repeat", "repeat", repeat)?;
    guard_method(ctx, &string_proto, "padStart", "padStart", pad)?;
    guard_method(ctx, &string_proto, "padEnd", "padEnd", pad)?;
    guard_method(ctx, &array, "from", "Array.from", from)?;
    Ok(())
}

/// Replace `owner[name]` with a function that checks `size` first and then calls the
/// original with the same `this` and arguments (same name and length as the original);
/// `label` names the call in the refusal.
fn guard_method(
    ctx: &mut Context,
    owner: &JsObject,
    name: &'static str,
    label: &'static str,
    size: Size,
) -> JsResult<()> {
    let original = owner.get(JsString::from(name), ctx)?;
    let Some(original) = original.as_callable() else {
        return Err(JsNativeError::typ()
            .with_message(format!("built-in {name} is not a function"))
            .into());
    };
    let length = original.get(js_string!("length"), ctx)?.to_u32(ctx)? as usize;
    let guarded = NativeFunction::from_copy_closure_with_captures(
        move |this, args, original, ctx| {
            if let Some(n) = size(this, args, ctx)? {
                check_size(label, n, ctx)?;
            }
            original.call(this, args, ctx)
        },
        original,
    );
    let guarded = function(ctx, name, length, guarded);
    owner.define_property_or_throw(
        JsString::from(name),
        PropertyDescriptor::builder()
            .value(guarded)
            .writable(true)
            .configurable(true),
        ctx,
    )?;
    Ok(())
}

/// Refuse a built-in call that would make more than [`MAX_ELEMENTS`] elements.
fn check_size(what: &str, n: f64, ctx: &mut Context) -> JsResult<()> {
    if n.is_nan() || n <= MAX_ELEMENTS as f64 {
        return Ok(());
    }
    let shown = crate::encoding::utf8_escaped(&JsValue::from(n).to_string(ctx)?);
    note_memory(format!("{what} of {shown} elements"));
    Err(JsNativeError::range()
        .with_message(format!(
            "{what}: {shown} elements is over the memory limit ({MAX_ELEMENTS})"
        ))
        .into())
}

/// `new RegExp(…)` gets the same nested-quantifier check as regex literals get at load. The
/// engine's constructor stays the one that builds the object, with the caller's `new.target`
/// (so a subclass of `RegExp` gets its own prototype).
fn install_regexp_guard(ctx: &mut Context) -> JsResult<()> {
    let constructors = ctx.intrinsics().constructors();
    let native = constructors.regexp().constructor();
    let prototype = constructors.regexp().prototype();
    let guarded = NativeFunction::from_copy_closure_with_captures(
        |this, args, (native, prototype), ctx| {
            let pattern = args.get_or_undefined(0);
            let text = if pattern.instance_of(&native.clone().into(), ctx)? {
                let source = pattern.to_object(ctx)?.get(js_string!("source"), ctx)?;
                source.to_string(ctx)?
            } else {
                string_of(pattern, ctx)?
            };
            let text = crate::encoding::utf8_escaped(&text);
            if let Some(why) = crate::regex_guard::nested_quantifier(&text) {
                return Err(JsNativeError::syntax().with_message(why).into());
            }
            let new_target = regexp_new_target(this, prototype, ctx)?;
            let built = native.construct(
                &[pattern.clone(), args.get_or_undefined(1).clone()],
                new_target.as_ref(),
                ctx,
            )?;
            Ok(built.into())
        },
        (native.clone(), prototype.clone()),
    );
    let guarded = FunctionObjectBuilder::new(ctx.realm(), guarded)
        .name(js_string!("RegExp"))
        .length(2)
        .constructor(true)
        .build();
    guarded.define_property_or_throw(
        js_string!("prototype"),
        PropertyDescriptor::builder()
            .value(prototype.clone())
            .writable(false)
            .enumerable(false)
            .configurable(false),
        ctx,
    )?;
    prototype.define_property_or_throw(
        js_string!("constructor"),
        PropertyDescriptor::builder()
            .value(guarded.clone())
            .writable(true)
            .configurable(true),
        ctx,
    )?;
    open(&ctx.global_object(), js_string!("RegExp"), guarded, ctx)
}

/// A native constructor receives `new.target` as `this`. It is taken as such only when it is a
/// constructor whose `prototype` is `RegExp.prototype` or inherits from it (`new RegExp`, a
/// subclass's `super(…)`); a plain call (`RegExp('a')`) builds an ordinary regex.
fn regexp_new_target(
    this: &JsValue,
    regexp_prototype: &JsObject,
    ctx: &mut Context,
) -> JsResult<Option<JsObject>> {
    let Some(target) = this.as_object().filter(|o| o.is_constructor()) else {
        return Ok(None);
    };
    let mut proto = target.get(js_string!("prototype"), ctx)?.as_object();
    // Bounded: a prototype chain is finite, but a proxy could make it look otherwise.
    for _ in 0..64 {
        match proto {
            Some(p) if JsObject::equals(&p, regexp_prototype) => return Ok(Some(target.clone())),
            Some(p) => proto = p.prototype(),
            None => return Ok(None),
        }
    }
    Ok(None)
}

/// `String(value)`: like `ToString`, except that a symbol gives its description instead of
/// throwing.
fn string_of(value: &JsValue, ctx: &mut Context) -> JsResult<JsString> {
    match value.as_symbol() {
        Some(symbol) => Ok(symbol.descriptive_string()),
        None => value.to_string(ctx),
    }
}

/// `Number(value) || 0`, except that a BigInt throws here rather than in the built-in a moment
/// later (each refuses one).
fn number_or_zero(value: &JsValue, ctx: &mut Context) -> JsResult<f64> {
    let n = value.to_number(ctx)?;
    Ok(if n.is_nan() { 0.0 } else { n })
}

/// A named native function object.
fn function(ctx: &mut Context, name: &str, length: usize, native: NativeFunction) -> JsFunction {
    FunctionObjectBuilder::new(ctx.realm(), native)
        .name(JsString::from(name))
        .length(length)
        .build()
}

/// A hidden property (a global, a part's marker): not writable, not enumerable, not
/// configurable.
pub(crate) fn hidden(
    global: &JsObject,
    name: JsString,
    value: impl Into<JsValue>,
    ctx: &mut Context,
) -> JsResult<()> {
    global.define_property_or_throw(
        name,
        PropertyDescriptor::builder()
            .value(value)
            .writable(false)
            .enumerable(false)
            .configurable(false),
        ctx,
    )?;
    Ok(())
}

/// Define `object[name]` as a data property a function may overwrite or delete, not listed by
/// `for … in`: how the engine's own globals are made.
pub(crate) fn open(
    object: &JsObject,
    name: JsString,
    value: impl Into<JsValue>,
    ctx: &mut Context,
) -> JsResult<()> {
    let open = PropertyDescriptor::builder()
        .value(value)
        .writable(true)
        .configurable(true);
    object.define_property_or_throw(name, open, ctx)?;
    Ok(())
}
