//! Parts of a Lambda@Edge invocation built when the handler first touches them.
//!
//! Most handlers look at a small part of what they are given: an origin-response function
//! adding security headers never reads `cf.request`, few read `cf.config` and, unless they
//! route, `request.origin`, and most never touch Lambda's `context`. Building each of those on the JS heap costs about a thousand
//! instructions a property (boa's shape transitions), and the edge tier's event and context are
//! written in full for every invocation (callgrind, `edge_noop/call`: the context alone was
//! 16.4k of 115k instructions).
//!
//! A part built on first touch is a `Proxy` of an empty ordinary object (its target), which
//! carries what it needs to build the part ([`Pending`]). Every trap first puts the part's
//! properties on the target, then does what a proxy without that trap does: it forwards to the
//! target. So the handler sees the same properties, values, key order and identity as on a part
//! built in full, and the proxy's invariants always hold (every answer is the target's own).
//! Unlike an accessor, the part is a data property of its parent: descriptors, enumeration and
//! `JSON.stringify` of the parent are unchanged.
//!
//! Each function remembers the parts its handler has touched ([`FirstTouch::defers`]): later
//! invocations have those built in full, since reading a part through its traps costs more than
//! building it. What tells a deferred part from a built one: nothing a handler can observe,
//! except that an event part never touched during its invocation cannot be built after it
//! (reading it from an event kept in a global throws, as for the fast tier's deferred parts,
//! [`crate::deferred`]); a deferred `context` carries its own fields and can be read at any time.
//!
//! Reading the handler's answer back ([`crate::returned::read_edge_result`]): a proxy made for
//! the running invocation is read as its target, built first if it was not; the one exception
//! is `request.origin` at origin-request, on the event's own request, left out when never
//! touched (the result's `origin` reads as unchanged when missing, and it is unchanged).

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use boa_engine::object::FunctionObjectBuilder;
use boa_engine::{
    Context, Finalize, JsArgs, JsData, JsNativeError, JsObject, JsResult, JsString, JsValue,
    NativeFunction, Source, Trace,
};
use boa_gc::GcRefCell;

use crate::edge_context::Fields;
use crate::edge_event::EdgeEvent;
use crate::invocation::Invocation;
use crate::js_json::{JsBuilder, KeyCache};

/// A part of an invocation that can be built on first touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Lambda's `context` argument.
    Context,
    /// `event.Records[0].cf.config`.
    Config,
    /// `event.Records[0].cf.request` at the response hooks.
    Request,
    /// `request.origin` at origin-request.
    Origin,
}

impl Part {
    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A part of the event (not the context), built from the invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventPart {
    /// `cf.config`.
    Config,
    /// `cf.request` at the response hooks.
    Request,
    /// `request.origin` at origin-request.
    Origin,
}

impl From<EventPart> for Part {
    fn from(part: EventPart) -> Part {
        match part {
            EventPart::Config => Part::Config,
            EventPart::Request => Part::Request,
            EventPart::Origin => Part::Origin,
        }
    }
}

/// What a part built on first touch is built from.
#[derive(Trace, Finalize)]
pub enum Pending {
    /// The context's fields (they are the context's own: it can be built at any time).
    Context(Fields),
    /// A part of the event of an invocation, held weakly: holding it until the proxies are
    /// collected would keep every invocation's request alive between collections.
    Event(
        #[unsafe_ignore_trace] Weak<Invocation>,
        #[unsafe_ignore_trace] EventPart,
    ),
}

impl Pending {
    fn part(&self) -> Part {
        match self {
            Pending::Context(_) => Part::Context,
            Pending::Event(_, part) => (*part).into(),
        }
    }

    /// Put the part's properties on `target`.
    fn build_onto(&self, target: &JsObject, js: &mut JsBuilder<'_>) -> JsResult<()> {
        match self {
            Pending::Context(fields) => fields.write_onto(target, js),
            Pending::Event(source, part) => {
                let inv = source.upgrade().ok_or_else(|| {
                    JsNativeError::typ().with_message(
                        "this part of the event was not read during its invocation, which has ended",
                    )
                })?;
                let event = EdgeEvent::new(&inv);
                match part {
                    EventPart::Config => event.write_config_onto(target, js),
                    EventPart::Request => event.write_request_onto(target, js),
                    EventPart::Origin => event.write_origin_onto(target, js),
                }
            }
        }
        Ok(())
    }
}

/// What the target of a part carries until the part is built.
#[derive(Trace, Finalize, JsData)]
struct Unbuilt {
    /// `None` once the part is on the target.
    pending: GcRefCell<Option<Pending>>,
    /// The function's touched parts ([`FirstTouch::touched`]).
    #[unsafe_ignore_trace]
    touched: Rc<Cell<u8>>,
}

/// The traps of a part built on first touch: each builds the part on the target, then does
/// what a proxy without that trap does. The operations trapped are those whose answer depends
/// on the target's own properties (`getPrototypeOf`, `setPrototypeOf` and `isExtensible` do
/// not). `Reflect`'s functions are taken when the function is loaded, before any of its code
/// runs: a handler that replaces them changes nothing here. The traps object has no prototype,
/// so a trap it leaves out is not looked up on `Object.prototype`, which a handler's code (or
/// a prototype-polluting merge of a viewer's JSON) may have given such a name.
const TRAPS: &str = "(build) => {
    const { get, set, has, ownKeys, getOwnPropertyDescriptor, defineProperty, deleteProperty,
        preventExtensions, setPrototypeOf } = Reflect;
    const traps = {
        get(t, k, r) { build(t); return get(t, k, r); },
        set(t, k, v, r) { build(t); return set(t, k, v, r); },
        has(t, k) { build(t); return has(t, k); },
        ownKeys(t) { build(t); return ownKeys(t); },
        getOwnPropertyDescriptor(t, k) { build(t); return getOwnPropertyDescriptor(t, k); },
        defineProperty(t, k, d) { build(t); return defineProperty(t, k, d); },
        deleteProperty(t, k) { build(t); return deleteProperty(t, k); },
        preventExtensions(t) { build(t); return preventExtensions(t); },
    };
    setPrototypeOf(traps, null);
    return traps;
}";

/// The traps' `build(target)`.
fn build_target(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    if let Some(target) = args.get_or_undefined(0).as_object() {
        build(&target, context)?;
    }
    Ok(JsValue::undefined())
}

/// Build the part on `target` unless it has been built.
fn build(target: &JsObject, context: &mut Context) -> JsResult<()> {
    // Taken out before building: the target's data is borrowed while it is read.
    let taken = target.downcast_ref::<Unbuilt>().and_then(|unbuilt| {
        let pending = unbuilt.pending.borrow_mut().take()?;
        unbuilt
            .touched
            .set(unbuilt.touched.get() | pending.part().bit());
        Some(pending)
    });
    if let Some(pending) = taken {
        let mut keys = KeyCache::default();
        pending.build_onto(
            target,
            &mut JsBuilder {
                keys: &mut keys,
                context,
            },
        )?;
    }
    Ok(())
}

/// Whether `target`'s part is still to be built.
fn unbuilt(target: &JsObject) -> bool {
    target
        .downcast_ref::<Unbuilt>()
        .is_some_and(|u| u.pending.borrow().is_some())
}

/// One function's means to make parts built on first touch, made when it is loaded.
pub struct FirstTouch {
    /// `Proxy`.
    proxy: JsObject,
    /// The handler object of every proxy made ([`TRAPS`]).
    traps: JsObject,
    /// The parts a proxy of this function's was touched for, one bit per [`Part`].
    touched: Rc<Cell<u8>>,
    /// The running invocation's proxies with their targets, and its event's request object,
    /// for the result reader ([`FirstTouch::read_as`], [`FirstTouch::leaves_out`]); emptied
    /// when the invocation ends ([`FirstTouch::end_invocation`]).
    made: RefCell<Vec<(JsObject, JsObject)>>,
    request: RefCell<Option<JsObject>>,
}

impl FirstTouch {
    /// The traps, in `context`; made before the handler's code runs (see [`TRAPS`]).
    pub fn new(context: &mut Context) -> JsResult<FirstTouch> {
        let factory = context.eval(Source::from_bytes(TRAPS))?;
        let build =
            FunctionObjectBuilder::new(context.realm(), NativeFunction::from_fn_ptr(build_target))
                .name(JsString::from("build"))
                .length(1)
                .build();
        let traps = factory
            .as_callable()
            .ok_or_else(|| JsNativeError::typ().with_message("the traps are not a function"))?
            .call(&JsValue::undefined(), &[build.into()], context)?
            .as_object()
            .ok_or_else(|| JsNativeError::typ().with_message("the traps are not an object"))?;
        Ok(FirstTouch {
            proxy: context.intrinsics().constructors().proxy().constructor(),
            traps,
            touched: Rc::new(Cell::new(0)),
            made: RefCell::new(Vec::new()),
            request: RefCell::new(None),
        })
    }

    /// Whether `part` is built on first touch: until a handler of this function touched one.
    pub fn defers(&self, part: Part) -> bool {
        self.touched.get() & part.bit() == 0
    }

    /// A proxy that builds `pending` on first touch; `None` if the engine refused to make one
    /// (then the caller builds the part in full).
    pub fn make(&self, pending: Pending, js: &mut JsBuilder<'_>) -> Option<JsObject> {
        let prototype = js.context.intrinsics().constructors().object().prototype();
        let target = js.object_holding(
            prototype,
            Unbuilt {
                pending: GcRefCell::new(Some(pending)),
                touched: self.touched.clone(),
            },
        );
        let proxy = self
            .proxy
            .construct(
                &[target.clone().into(), self.traps.clone().into()],
                None,
                js.context,
            )
            .ok()?;
        self.made.borrow_mut().push((proxy.clone(), target));
        Some(proxy)
    }

    /// Note the running invocation's event request object (at origin-request, where the
    /// handler usually returns it: [`FirstTouch::leaves_out`]).
    pub fn note_request(&self, request: &JsObject) {
        *self.request.borrow_mut() = Some(request.clone());
    }

    /// What the result reader reads in place of `object`: the target of a proxy made for the
    /// running invocation, with its part built now if it was not. `None` for any other object.
    pub fn read_as(&self, object: &JsObject, context: &mut Context) -> JsResult<Option<JsObject>> {
        let target = self
            .made
            .borrow()
            .iter()
            .find(|(proxy, _)| JsObject::equals(proxy, object))
            .map(|(_, target)| target.clone());
        if let Some(target) = &target {
            build(target, context)?;
        }
        Ok(target)
    }

    /// Whether the result reader leaves out `value`, the `key` property of the returned
    /// object `returned`: the running invocation's `request.origin` never touched, on its
    /// event's request. Left out, it reads as unchanged, which it is; anywhere else a proxy
    /// is read as its built target ([`FirstTouch::read_as`]).
    pub fn leaves_out(&self, returned: &JsObject, key: &str, value: &JsValue) -> bool {
        key == "origin"
            && self
                .request
                .borrow()
                .as_ref()
                .is_some_and(|r| JsObject::equals(r, returned))
            && value.as_object().is_some_and(|v| {
                self.made
                    .borrow()
                    .iter()
                    .any(|(proxy, target)| JsObject::equals(proxy, &v) && unbuilt(target))
            })
    }

    /// Forget the ended invocation's proxies (their parts can still be built: each target
    /// keeps what it needs, or its invocation weakly).
    pub fn end_invocation(&self) {
        self.made.borrow_mut().clear();
        *self.request.borrow_mut() = None;
    }
}
