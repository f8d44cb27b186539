//! Parts of a CloudFront Functions event built when the handler first touches them.
//!
//! Most handlers read a small part of their event: a header rewrite never looks at
//! `event.context` or the query string, a viewer-response function rarely at `event.request`.
//! Building every part on the JS heap and reading it all back was most of an invocation
//! (callgrind, `benches/instructions.rs`: leaving out the parts those handlers never touch took
//! the A/B rewrite from 112k to 85k instructions a call and a viewer-response function from 128k
//! to 80k).
//!
//! A deferred part is an accessor property (enumerable, configurable, in the place the data
//! property would have) on an object that carries the invocation it comes from ([`Owner`]). Its
//! getter builds the part once and keeps it on the owner; its setter keeps the assigned value
//! the same way; every read gives the kept value. The accessor stays in place (see [`settle`]
//! for why). Enumeration, `JSON.stringify`, `in`, `delete` and assignment see what they see on
//! the eager event, key order included.
//!
//! A context's [`Kit`] remembers the parts its handler has touched: later events have those
//! built with the event as plain data properties, since reading a part through its accessor
//! costs more than building it up front. What tells a deferred part from a built one:
//! `Object.getOwnPropertyDescriptor` shows an accessor, and a part never touched during its
//! invocation cannot be built after it (see [`Owner`]).
//!
//! Reading back ([`crate::returned`]): a part never touched on the request or response the
//! handler returned, from the invocation being read, is left out, and the comparators read a
//! missing part as unchanged; anywhere else the part is built and read like any value.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use boa_engine::native_function::NativeFunction;
use boa_engine::object::FunctionObjectBuilder;
use boa_engine::object::builtins::JsFunction;
use boa_engine::property::PropertyKey;
use boa_engine::{
    Context, Finalize, JsData, JsObject, JsResult, JsString, JsValue, Trace, js_string,
};
use boa_gc::{Gc, GcRefCell};

use crate::invocation::Invocation;
use crate::js_json::{JsBuilder, KeyCache};
use crate::returned::EntryShape;

/// A part of a CloudFront Functions event that is built on first touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Trace, Finalize)]
#[boa_gc(empty_trace)]
pub enum Part {
    /// `event.context`.
    Context,
    /// `event.viewer`.
    Viewer,
    /// `event.request` in a viewer-response event.
    Request,
    /// `event.request.querystring`.
    Querystring,
    /// `event.request.cookies`.
    Cookies,
    /// `event.response.cookies`.
    ResponseCookies,
}

impl Part {
    const ALL: [Part; 6] = [
        Part::Context,
        Part::Viewer,
        Part::Request,
        Part::Querystring,
        Part::Cookies,
        Part::ResponseCookies,
    ];

    fn index(self) -> usize {
        self as usize
    }

    fn bit(self) -> u8 {
        1 << self.index()
    }

    /// The property the part is (a static string: nothing to allocate on each touch).
    pub fn property(self) -> PropertyKey {
        PropertyKey::from(match self {
            Part::Context => js_string!("context"),
            Part::Viewer => js_string!("viewer"),
            Part::Request => js_string!("request"),
            Part::Querystring => js_string!("querystring"),
            Part::Cookies | Part::ResponseCookies => js_string!("cookies"),
        })
    }

    /// Whether the part sits on the request or response a handler returns, where the
    /// comparators read it (and read its absence as "unchanged").
    fn on_result(self) -> bool {
        matches!(
            self,
            Part::Querystring | Part::Cookies | Part::ResponseCookies
        )
    }
}

/// A context's means to write events: made once when the function is loaded.
#[derive(Trace, Finalize)]
pub struct Kit {
    /// `event.request`'s prototype (it gives `rawQueryString()`).
    pub request_prototype: JsObject,
    /// Each part's getter and setter, in [`Part::ALL`] order.
    getters: [JsObject; 6],
    setters: [JsObject; 6],
    /// The shape of a header's, cookie's or query parameter's `{value}` entry, kept by a
    /// template made as the event writer makes them, which the result reader recognizes
    /// ([`crate::returned::read_result`]; `None` only if the template were not such an entry,
    /// and then every entry is read by the general walk).
    pub entry: Option<EntryShape>,
    /// Key strings already made in this context (the event writer's and the getters').
    #[unsafe_ignore_trace]
    pub keys: Rc<RefCell<KeyCache>>,
    /// The parts this context's handler has touched, one bit per part in [`Part::ALL`] order:
    /// later events have them built with the event ([`Kit::defers`]).
    #[unsafe_ignore_trace]
    touched: Cell<u8>,
}

impl Kit {
    /// The kit for `context`: the accessors of every part, made once.
    pub fn new(request_prototype: JsObject, context: &mut Context) -> Gc<Kit> {
        let accessor = |name: &str,
                        f: fn(&JsValue, &[JsValue], &Part, &mut Context) -> JsResult<JsValue>,
                        part: Part,
                        length: usize,
                        context: &mut Context| {
            let native = NativeFunction::from_copy_closure_with_captures(f, part);
            JsObject::from(
                FunctionObjectBuilder::new(context.realm(), native)
                    .name(JsString::from(
                        format!("{name} {}", part.property()).as_str(),
                    ))
                    .length(length)
                    .build(),
            )
        };
        let getters = Part::ALL.map(|part| accessor("get", get_part, part, 0, context));
        let setters = Part::ALL.map(|part| accessor("set", set_part, part, 1, context));
        let mut keys = KeyCache::default();
        let entry = EntryShape::value_entries(&mut JsBuilder {
            keys: &mut keys,
            context,
        });
        Gc::new(Kit {
            request_prototype,
            entry,
            getters,
            setters,
            keys: Rc::new(RefCell::new(keys)),
            touched: Cell::new(0),
        })
    }

    /// Whether events written with this kit defer `part`: not once the handler has touched it.
    /// A handler reads much the same parts on every call, and building a part it reads through
    /// its accessor costs more than building it with the event (before this, deferral cost
    /// the A/B rewrite +3k instructions a call on a request with two cookies). A handler that
    /// reads a part only sometimes has it built every time after the first, as before parts
    /// were deferred.
    pub fn defers(&self, part: Part) -> bool {
        self.touched.get() & part.bit() == 0
    }

    fn learn(&self, part: Part) {
        self.touched.set(self.touched.get() | part.bit());
    }

    fn is_getter(&self, part: Part, value: Option<&JsValue>) -> bool {
        value
            .and_then(JsValue::as_object)
            .is_some_and(|f| JsObject::equals(&f, &self.getters[part.index()]))
    }
}

/// What an object with deferred parts carries: where its parts come from, while the
/// invocation lasts. Held weakly: holding the invocation until the objects are collected kept
/// a thousand invocations' requests alive between collections, and cost more CPU time per
/// request than building the parts saved (measured by hand: 49.5 µs per request with the
/// no-op function, 48.8 before deferral, 45.0 held weakly). A part never touched during its
/// invocation cannot be built after it: reading it from an event kept in a global throws.
#[derive(Trace, Finalize, JsData)]
pub struct Owner {
    #[unsafe_ignore_trace]
    source: Weak<Invocation>,
    kit: Gc<Kit>,
    /// The parts built or assigned so far: every later read gives the same value.
    kept: GcRefCell<Vec<(Part, JsValue)>>,
}

impl Owner {
    fn kept(&self, part: Part) -> Option<JsValue> {
        self.kept
            .borrow()
            .iter()
            .find(|(p, _)| *p == part)
            .map(|(_, v)| v.clone())
    }

    fn keep(&self, part: Part, value: JsValue) {
        let mut kept = self.kept.borrow_mut();
        kept.retain(|(p, _)| *p != part);
        kept.push((part, value));
    }
}

/// An empty ordinary object with `prototype` whose deferred parts come from `source`.
pub fn owner(
    js: &mut JsBuilder<'_>,
    prototype: JsObject,
    source: &Rc<Invocation>,
    kit: &Gc<Kit>,
) -> JsObject {
    js.object_holding(
        prototype,
        Owner {
            source: Rc::downgrade(source),
            kit: kit.clone(),
            kept: GcRefCell::new(Vec::new()),
        },
    )
}

/// Add `part` to `object` (made by [`owner`]) as a deferred property.
pub fn define(js: &mut JsBuilder<'_>, object: &JsObject, part: Part, kit: &Kit) {
    js.set_accessor(
        object,
        part.property(),
        kit.getters[part.index()].clone(),
        kit.setters[part.index()].clone(),
    );
}

/// The object holding `part` as `this` sees it: `this` or the first of its prototypes whose own
/// `part` property is still the deferred accessor. `None` when the accessor was copied onto
/// an object that carries no invocation; the invocation is `None` once it has ended.
fn find_owner(this: &JsValue, part: Part) -> Option<(JsObject, Option<Rc<Invocation>>, Gc<Kit>)> {
    let key = part.property();
    let mut object = this.as_object();
    // Bounded: a prototype chain is finite, but a handler may make it long.
    for _ in 0..64 {
        let current = object?;
        let found = current.downcast_ref::<Owner>().and_then(|owner| {
            let own = current.borrow().properties().get(&key);
            own.is_some_and(|d| owner.kit.is_getter(part, d.get()))
                .then(|| (owner.source.upgrade(), owner.kit.clone()))
        });
        if let Some((source, kit)) = found {
            return Some((current, source, kit));
        }
        object = current.prototype();
    }
    None
}

/// Keep `value` as `owner`'s `part` for every later read. The accessor stays: replacing it
/// with a data property from inside its own getter or setter broke the next read at the same
/// place in the script. boa 0.22 caches where a property read found its property with the
/// object's shape *after* the getter ran, so the new shape was cached with the accessor's
/// slot, and the next read called the part's value as if it were the getter (`TypeError: not
/// a callable function`).
fn settle(owner: &JsObject, part: Part, value: JsValue) {
    if let Some(data) = owner.downcast_ref::<Owner>() {
        data.keep(part, value);
    }
}

/// Build `part` for its owner (no user code runs).
fn build(part: Part, source: &Rc<Invocation>, kit: &Gc<Kit>, context: &mut Context) -> JsValue {
    // The event writer holds the cache only while no JavaScript runs; should a getter ever
    // run inside it, a throwaway cache does.
    let mut spare = KeyCache::default();
    let mut held = kit.keys.try_borrow_mut();
    let keys = match held.as_deref_mut() {
        Ok(keys) => keys,
        Err(_) => &mut spare,
    };
    crate::cff_event::build_part(part, source, kit, &mut JsBuilder { keys, context })
}

fn get_part(
    this: &JsValue,
    _: &[JsValue],
    part: &Part,
    context: &mut Context,
) -> JsResult<JsValue> {
    let part = *part;
    let Some((owner, source, kit)) = find_owner(this, part) else {
        return Ok(JsValue::undefined());
    };
    if let Some(kept) = owner.downcast_ref::<Owner>().and_then(|o| o.kept(part)) {
        return Ok(kept);
    }
    let Some(source) = source else {
        return Err(boa_engine::JsNativeError::typ()
            .with_message(format!(
                "event.{}: this event is from an earlier invocation, and this part was not read \
                 during it (keep the values a later invocation needs, not the event)",
                part.property()
            ))
            .into());
    };
    let value = build(part, &source, &kit, context);
    kit.learn(part);
    settle(&owner, part, value.clone());
    Ok(value)
}

fn set_part(
    this: &JsValue,
    args: &[JsValue],
    part: &Part,
    context: &mut Context,
) -> JsResult<JsValue> {
    let part = *part;
    let value = args.first().cloned().unwrap_or_default();
    match (find_owner(this, part), this.as_object()) {
        // Assigned on the owner itself: kept, and every later read gives it.
        (Some((owner, ..)), Some(target)) if JsObject::equals(&owner, &target) => {
            settle(&owner, part, value);
        }
        // Assigned through an object that inherits it: that object gets its own property, as
        // assigning to an inherited writable data property gives.
        (_, Some(target)) => {
            target.create_data_property_or_throw(part.property(), value, context)?;
        }
        (_, None) => {}
    }
    Ok(JsValue::undefined())
}

/// How the reader takes a property whose value it did not find (an accessor).
pub enum Unread {
    /// Not a deferred part: read as any accessor is.
    Accessor,
    /// A deferred part of the result being read, never touched: leave it out (unchanged).
    Untouched,
    /// A deferred part elsewhere (or already built): its value.
    Value(JsValue),
}

/// What `object`'s property `key`, which has no value, is to the reader. `current` is the
/// invocation being read back; `top` whether `object` is the returned value itself.
pub fn unread(
    object: &JsObject,
    key: &PropertyKey,
    current: Option<&Rc<Invocation>>,
    top: bool,
    context: &mut Context,
) -> JsResult<Unread> {
    let found = {
        let Some(owner) = object.downcast_ref::<Owner>() else {
            return Ok(Unread::Accessor);
        };
        let own = object.borrow().properties().get(key);
        let getter = own.as_ref().and_then(|d| d.get());
        Part::ALL
            .into_iter()
            .find(|p| p.property() == *key && owner.kit.is_getter(*p, getter))
            .map(|part| {
                let untouched = top
                    && part.on_result()
                    && current.is_some_and(|c| std::ptr::eq(Rc::as_ptr(c), owner.source.as_ptr()))
                    && owner.kept(part).is_none();
                (owner.kit.getters[part.index()].clone(), untouched)
            })
    };
    let Some((getter, untouched)) = found else {
        return Ok(Unread::Accessor);
    };
    if untouched {
        return Ok(Unread::Untouched);
    }
    let getter = JsFunction::from_object(getter).ok_or_else(|| {
        boa_engine::JsNativeError::typ().with_message("a deferred part's getter is not callable")
    })?;
    Ok(Unread::Value(getter.call(
        &object.clone().into(),
        &[],
        context,
    )?))
}

#[cfg(test)]
mod tests;
