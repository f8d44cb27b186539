//! Moving values onto the JS heap, cheaper than boa's own `JsValue::from_json`, and JSON read
//! back off it.
//!
//! Measured with callgrind on a 5-header viewer-request event, boa's conversions were most of
//! an invocation's instructions. `from_json` gives every object a *unique* shape (its own
//! property hash table, grown key by key) and allocates a fresh `JsString` for every key. Here
//! objects start from the context's root *shared* shape, so the same keys in the same order
//! reuse one cached chain of shape transitions, and key strings come from a per-context cache
//! ([`KeyCache`]). [`JsBuilder`] is what event builders write with; [`to_js`] converts a whole
//! `serde_json` value (an event given as JSON: `verge test-function`).
//!
//! Reading back is [`crate::returned`]'s; [`to_json`] gives its result as `serde_json`.

use boa_engine::builtins::object::OrdinaryObject;
use boa_engine::object::NativeObject;
use boa_engine::object::builtins::JsArray;
use boa_engine::property::{PropertyDescriptor, PropertyKey};
use boa_engine::{Context, JsObject, JsResult, JsString, JsValue};
use serde_json::Value;

use crate::returned::Returned;

/// Key strings already made in this context's thread: event keys repeat on every invocation
/// (`value`, `headers`, header names…). Bounded in count and in name length, so hostile key
/// names cannot grow it forever.
/// Hashed with foldhash, not std's SipHash: callgrind put SipHash at ~5,000 instructions per
/// invocation here; foldhash is seeded per process, so viewers cannot choose colliding header
/// names.
///
/// Names written in verge's own code (`version`, `headers`, `value`…) are `&'static str`s
/// whose address never changes: those are looked up by address in a small direct-mapped table
/// first, one multiply instead of hashing the text (callgrind: hashing had become ~6k
/// instructions of a 5-header viewer-request invocation).
#[derive(Default)]
pub struct KeyCache {
    keys: foldhash::HashMap<Box<str>, PropertyKey>,
    fixed: FixedKeys,
    /// Header names title-cased ([`KeyCache::title_cased`]).
    titles: foldhash::HashMap<Box<str>, JsString>,
}

/// [`KeyCache`]'s table of static names by address.
struct FixedKeys([Option<(usize, PropertyKey)>; FixedKeys::SLOTS]);

impl Default for FixedKeys {
    fn default() -> Self {
        FixedKeys(std::array::from_fn(|_| None))
    }
}

impl FixedKeys {
    const SLOTS: usize = 128;

    /// The slot for a string at `address` (Fibonacci hashing of the address; a collision only
    /// costs a lookup in the text-keyed cache).
    fn slot(address: usize) -> usize {
        (address.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (usize::BITS - 7)) % Self::SLOTS
    }
}

impl KeyCache {
    /// Keys kept at most; past this, new keys are made per use.
    const CAPACITY: usize = 4096;
    /// The longest name kept. Names come from viewers (header names) and from parsed JSON
    /// (claims, bodies at the edge): without a bound on their length, a few thousand long ones
    /// would stay in memory for the thread's life.
    const LONGEST: usize = 64;

    /// The key for a name fixed in the source (see the type's docs).
    fn fixed_key(&mut self, name: &'static str) -> PropertyKey {
        let address = name.as_ptr() as usize;
        let slot = FixedKeys::slot(address);
        if let Some((at, key)) = &self.fixed.0[slot]
            && *at == address
            && let PropertyKey::String(text) = key
            && text.len() == name.len()
        {
            return key.clone();
        }
        let key = self.key(name);
        self.fixed.0[slot] = Some((address, key.clone()));
        key
    }

    /// A header name title-cased ([`crate::edge_event::title_case`]), the edge tier's header
    /// `key`, kept as keys are. Header names repeat from request to request; making the text
    /// anew cost an allocation and a copy twice over.
    pub fn title_cased(&mut self, name: &str) -> JsString {
        let kept = name.len() <= Self::LONGEST;
        if kept && let Some(text) = self.titles.get(name) {
            return text.clone();
        }
        let text = JsString::from(crate::edge_event::title_case(name).as_str());
        if kept && self.titles.len() < Self::CAPACITY {
            self.titles.insert(name.into(), text.clone());
        }
        text
    }

    fn key(&mut self, name: &str) -> PropertyKey {
        // A longer name is never kept, so it is not looked up (hashed) either.
        let kept = name.len() <= Self::LONGEST;
        if kept && let Some(key) = self.keys.get(name) {
            return key.clone();
        }
        let key = PropertyKey::from(JsString::from(name));
        if kept && self.keys.len() < Self::CAPACITY {
            self.keys.insert(name.into(), key.clone());
        }
        key
    }
}

/// Writes JS values into one context, with its cached key strings.
pub struct JsBuilder<'a> {
    /// The context's cached key strings.
    pub keys: &'a mut KeyCache,
    /// The context written into.
    pub context: &'a mut Context,
}

impl JsBuilder<'_> {
    /// An empty ordinary object with `Object.prototype`.
    pub fn object(&mut self) -> JsObject {
        let prototype = self
            .context
            .intrinsics()
            .constructors()
            .object()
            .prototype();
        self.object_with(prototype)
    }

    /// An empty ordinary object with the given prototype, on the root shared shape (so every
    /// object built with the same keys in the same order shares one shape chain).
    pub fn object_with(&mut self, prototype: JsObject) -> JsObject {
        JsObject::new(self.context.root_shape(), prototype, OrdinaryObject).upcast()
    }

    /// An empty ordinary object with the given prototype carrying `data` (invisible to
    /// JavaScript), on the root shared shape as [`JsBuilder::object_with`] makes them.
    pub fn object_holding<T: NativeObject>(&mut self, prototype: JsObject, data: T) -> JsObject {
        JsObject::new(self.context.root_shape(), prototype, data).upcast()
    }

    /// Add an accessor property (enumerable, configurable).
    pub fn set_accessor(&self, object: &JsObject, key: PropertyKey, get: JsObject, set: JsObject) {
        object.insert_property(
            key,
            PropertyDescriptor::builder()
                .get(get)
                .set(set)
                .enumerable(true)
                .configurable(true),
        );
    }

    /// Add a data property (writable, enumerable, configurable, as an object literal's) whose
    /// name is fixed in verge's source.
    pub fn set(&mut self, object: &JsObject, name: &'static str, value: impl Into<JsValue>) {
        let key = self.keys.fixed_key(name);
        Self::insert(object, key, value);
    }

    /// [`JsBuilder::set`] for a name that comes from the input (a header's, a cookie's).
    pub fn set_named(&mut self, object: &JsObject, name: &str, value: impl Into<JsValue>) {
        let key = self.keys.key(name);
        Self::insert(object, key, value);
    }

    /// Put an invocation's argument on the global object (`__verge_event`…), written straight
    /// into its property map as a plain assignment would leave it: the spec's [[Set]] path cost
    /// ~1.9k instructions a name, and a handler cannot make these hidden names refuse it.
    pub fn set_global(&mut self, name: &'static str, value: impl Into<JsValue>) {
        let global = self.context.global_object();
        self.set(&global, name, value);
    }

    /// Put a data property on `object` as an object literal's (or an assignment's) would be.
    pub(crate) fn insert(object: &JsObject, key: PropertyKey, value: impl Into<JsValue>) {
        object.insert_property(
            key,
            PropertyDescriptor::builder()
                .value(value)
                .writable(true)
                .enumerable(true)
                .configurable(true),
        );
    }

    /// A `{value}` entry, as a CloudFront event holds a header's, cookie's or query
    /// parameter's value. Every entry is made here, so all have one shape, which the result
    /// reader recognizes ([`crate::returned::EntryShape`], [`crate::deferred::Kit::entry`]).
    pub fn value_entry(&mut self, value: impl Into<JsValue>) -> JsObject {
        let entry = self.object();
        self.set(&entry, "value", value);
        entry
    }

    /// A `{key, value}` entry, as a Lambda@Edge event holds each value of a header. Every
    /// entry is made here, so all have one shape, which the result reader recognizes
    /// ([`crate::returned::EntryShape`]).
    pub fn key_value_entry(&mut self, key: JsValue, value: impl Into<JsValue>) -> JsObject {
        let entry = self.object();
        self.set(&entry, "key", key);
        self.set(&entry, "value", value);
        entry
    }

    /// An array of the given values.
    pub fn array(&mut self, items: impl IntoIterator<Item = JsValue>) -> JsValue {
        JsArray::from_iter(items, self.context).into()
    }
}

/// A JS string value.
pub fn string(s: &str) -> JsValue {
    JsString::from(s).into()
}

/// A JSON value as a JS value in `context`.
pub fn to_js(value: &Value, keys: &mut KeyCache, context: &mut Context) -> JsValue {
    write(value, &mut JsBuilder { keys, context })
}

fn write(value: &Value, js: &mut JsBuilder<'_>) -> JsValue {
    match value {
        Value::Null => JsValue::null(),
        Value::Bool(b) => JsValue::new(*b),
        Value::Number(n) => match n.as_i64().and_then(|i| i32::try_from(i).ok()) {
            Some(i) => JsValue::new(i),
            None => JsValue::new(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => string(s),
        Value::Array(items) => {
            let items: Vec<JsValue> = items.iter().map(|v| write(v, js)).collect();
            js.array(items)
        }
        Value::Object(map) => {
            let object = js.object();
            for (name, value) in map {
                let value = write(value, js);
                js.set_named(&object, name, value);
            }
            object.into()
        }
    }
}

/// A JS value as JSON (`None` for `undefined`), read as [`crate::returned::read`] reads it.
pub fn to_json(value: &JsValue, context: &mut Context) -> JsResult<Option<Value>> {
    Ok(crate::returned::read(value, context)?.map(Returned::into_json))
}

#[cfg(test)]
mod tests {
    use super::*;
    use boa_engine::Source;
    use serde_json::json;

    #[test]
    fn title_cased_names_are_made_once_per_name() {
        let mut keys = KeyCache::default();
        let names = ["user-agent", "x-amz-meta-a", "user-agent"];
        let texts: Vec<JsString> = names.iter().map(|n| keys.title_cased(n)).collect();
        let shown: Vec<String> = texts.iter().map(JsString::to_std_string_escaped).collect();
        assert_eq!(shown, ["User-Agent", "X-Amz-Meta-A", "User-Agent"]);
        // The repeat is the cached string itself, not a new one: the cache and both uses hold it.
        assert_eq!(texts[0].refcount(), Some(3));
        assert_eq!(keys.titles.len(), 2);
    }

    #[test]
    fn only_short_names_are_kept() {
        let mut keys = KeyCache::default();
        let long = "x".repeat(KeyCache::LONGEST + 1);
        let short = "x".repeat(KeyCache::LONGEST);
        for name in [&long, &short, &long, &short] {
            let PropertyKey::String(text) = keys.key(name) else {
                panic!("not a string key");
            };
            assert_eq!(text.to_std_string_escaped(), *name);
            keys.title_cased(name);
        }
        assert_eq!((keys.keys.len(), keys.titles.len()), (1, 1));
    }

    #[test]
    fn names_by_address_give_their_own_keys_whatever_shares_a_slot() {
        // More names than slots: some must share one, and each still gets its own key.
        const NAMES: [&str; 200] = {
            let mut names = [""; 200];
            let all = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
            let mut i = 0;
            while i < 200 {
                // Each a distinct slice (address or length) of one static string.
                let (start, len) = (i % 50, 1 + i / 50);
                names[i] = match all.split_at_checked(start) {
                    Some((_, rest)) => match rest.split_at_checked(len) {
                        Some((name, _)) => name,
                        None => "",
                    },
                    None => "",
                };
                i += 1;
            }
            names
        };
        let mut keys = KeyCache::default();
        for _ in 0..2 {
            for name in NAMES {
                let PropertyKey::String(text) = keys.fixed_key(name) else {
                    panic!("{name}: not a string key");
                };
                assert_eq!(text.to_std_string_escaped(), name);
            }
        }
    }

    fn eval(source: &str, context: &mut Context) -> JsValue {
        context
            .eval(Source::from_bytes(source))
            .unwrap_or_else(|e| panic!("{source}: {e}"))
    }

    #[test]
    fn json_round_trips_through_the_js_heap_as_boa_converts_it() {
        let mut context = Context::default();
        let mut keys = KeyCache::default();
        let value = json!({
            "version": "1.0",
            "n": 7, "big": 1e300, "neg": -3, "wide": 5e9,
            "t": true, "nothing": null,
            "0": "index key", "headers": {"user-agent": {"value": "curl"}, "x": {"value": "é ✓ 😀"}},
            "list": [1, "two", {"three": [3]}, []],
        });
        let js = to_js(&value, &mut keys, &mut context);
        assert_eq!(
            to_json(&js, &mut context).unwrap(),
            js.to_json(&mut context).unwrap()
        );
        let mut back = to_json(&js, &mut context).unwrap().unwrap();
        // Index keys come first in JS's own key order; everything else is unchanged.
        assert_eq!(back.as_object().unwrap().keys().next().unwrap(), "0");
        back.as_object_mut().unwrap().sort_keys();
        let mut expected = value.clone();
        expected.as_object_mut().unwrap().sort_keys();
        assert_eq!(back, expected);
        // The same keys in a second conversion reuse the cached strings.
        let before = keys.keys.len();
        to_js(&value, &mut keys, &mut context);
        assert_eq!(keys.keys.len(), before);
    }

    #[test]
    fn what_handlers_return_reads_back_as_boa_reads_it() {
        let mut context = Context::default();
        let cases = [
            "({a: undefined, b: null, c: [undefined, , 3], d: 'x'})",
            "(() => { const o = {}; Object.defineProperty(o, 'hidden', {value: 1}); \
              Object.defineProperty(o, 'get', {get() { throw new Error('ran'); }, enumerable: true}); return o; })()",
            "({s: 'lone \\uD800 surrogate', u: 'ünï', n: NaN, i: Infinity, f: 1.5})",
            "({typed: new Uint8Array([1, 2]), date: new Date(0), re: /x/, fn() {}})",
            "(() => { const a = [1, 2]; a.extra = 'x'; return {a}; })()",
            "'just a string'",
            "undefined",
        ];
        for source in cases {
            let value = eval(source, &mut context);
            assert_eq!(
                to_json(&value, &mut context).unwrap(),
                value.to_json(&mut context).unwrap(),
                "{source}"
            );
        }
    }

    #[test]
    fn cycles_symbols_and_bigints_are_errors() {
        let mut context = Context::default();
        for source in [
            "(() => { const o = {}; o.self = {o}; return o; })()",
            "({[Symbol('s')]: 1})",
            "({big: 10n})",
        ] {
            let value = eval(source, &mut context);
            assert!(to_json(&value, &mut context).is_err(), "{source}");
        }
        // A shared (not cyclic) object is read twice.
        let value = eval(
            "(() => { const s = {v: 1}; return {a: s, b: s}; })()",
            &mut context,
        );
        assert_eq!(
            to_json(&value, &mut context).unwrap(),
            Some(json!({"a": {"v": 1}, "b": {"v": 1}}))
        );
    }

    #[test]
    fn deep_nesting_and_huge_arrays_are_errors_not_crashes() {
        let mut context = Context::default();
        for source in [
            "(() => { let o = {}; for (let i = 0; i < 200000; i++) { o = {o}; } return o; })()",
            "(() => { let a = []; for (let i = 0; i < 200000; i++) { a = [a]; } return a; })()",
            "(() => { const a = []; a.length = 4294967295; return {a}; })()",
            "(() => { let o = {}; for (let i = 0; i < 200000; i++) { o = {o}; } \
              return Object.assign(new Error('x'), {deep: o}); })()",
        ] {
            let value = eval(source, &mut context);
            assert!(to_json(&value, &mut context).is_err(), "{source}");
        }
        // Up to the limits, values read back.
        let value = eval(
            "(() => { let o = {}; for (let i = 0; i < 60; i++) { o = {o}; } \
              const a = []; a.length = 65536; return {o, a}; })()",
            &mut context,
        );
        let json = to_json(&value, &mut context).unwrap().unwrap();
        assert_eq!(json["a"].as_array().unwrap().len(), 65536);
    }

    #[test]
    fn a_proxy_is_read_without_running_its_traps() {
        let mut context = Context::default();
        let value = eval(
            "new Proxy({a: 1}, {ownKeys() { while (true) {} }, get() { while (true) {} }})",
            &mut context,
        );
        assert_eq!(to_json(&value, &mut context).unwrap(), Some(json!({})));
    }

    #[test]
    fn objects_get_the_prototype_asked_for() {
        let mut context = Context::default();
        let mut keys = KeyCache::default();
        let prototype = eval("({hello() { return 'hi ' + this.name; }})", &mut context);
        let prototype = prototype.as_object().unwrap().clone();
        let mut js = JsBuilder {
            keys: &mut keys,
            context: &mut context,
        };
        let object = js.object_with(prototype);
        js.set(&object, "name", string("verge"));
        context
            .global_object()
            .set(boa_engine::js_string!("o"), object, false, &mut context)
            .unwrap();
        assert_eq!(
            eval("o.hello()", &mut context)
                .to_json(&mut context)
                .unwrap(),
            Some(json!("hi verge"))
        );
    }
}
