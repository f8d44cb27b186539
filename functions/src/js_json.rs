//! Moving events between `serde_json` values and the JS heap, cheaper than boa's own
//! `JsValue::from_json` / `to_json`.
//!
//! Events are built as JSON on the Rust side (the original stays there for validating what the
//! handler returns) and converted into the handler's context on every invocation, and the
//! handler's result comes back the same way. Measured with callgrind on a 5-header
//! viewer-request event, boa's conversions were most of an invocation's instructions:
//! - `from_json` gives every object a *unique* shape (its own property hash table, grown key
//!   by key) and allocates a fresh `JsString` for every key. Here objects start from the
//!   context's root *shared* shape, so the same keys in the same order reuse one cached chain
//!   of shape transitions, and key strings come from a per-context cache.
//! - `to_json` turns every string (keys included) into a Rust `String` through an escaping
//!   `Display` implementation, one formatted `char` at a time. Here ASCII strings are copied
//!   as bytes; only strings with lone surrogates take the escaping path, so the result is the
//!   same as boa's.
//!
//! What is read back matches boa's `to_json` for everything a handler can return: own
//! properties, enumerable or not, array indices first; `undefined` members left out of
//! objects and `null` in arrays; accessor properties read as `null` (no getter runs); a cycle
//! is an error; nesting and array length are bounded. Proxies are handed to boa's own
//! `to_json`, which reads their (empty) property map without running their traps.

use boa_engine::builtins::object::OrdinaryObject;
use boa_engine::builtins::proxy::Proxy;
use boa_engine::object::builtins::JsArray;
use boa_engine::property::{PropertyDescriptor, PropertyKey};
use boa_engine::{Context, JsNativeError, JsObject, JsResult, JsString, JsValue, JsVariant};
use serde_json::{Map, Value};

/// A JSON object from `(key, value)` pairs, moved in (the `json!` macro would clone every
/// nested `Value` through serde's serializer, a large part of building an event).
pub fn object<const N: usize>(fields: [(&str, Value); N]) -> Value {
    Value::Object(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// Key strings already made in this context's thread: event keys repeat on every invocation
/// (`value`, `headers`, header names…). Bounded, so hostile key names cannot grow it forever.
/// Hashed with foldhash, not std's SipHash: callgrind put SipHash at ~5,000 instructions per
/// invocation here; foldhash is seeded per process, so viewers cannot choose colliding header
/// names.
#[derive(Default)]
pub struct KeyCache {
    keys: foldhash::HashMap<Box<str>, PropertyKey>,
}

impl KeyCache {
    /// Keys kept at most; past this, new keys are made per use.
    const CAPACITY: usize = 4096;

    fn key(&mut self, name: &str) -> PropertyKey {
        if let Some(key) = self.keys.get(name) {
            return key.clone();
        }
        let key = PropertyKey::from(JsString::from(name));
        if self.keys.len() < Self::CAPACITY {
            self.keys.insert(name.into(), key.clone());
        }
        key
    }
}

/// A JSON value as a JS value in `context`.
pub fn to_js(value: &Value, keys: &mut KeyCache, context: &mut Context) -> JsValue {
    match value {
        Value::Null => JsValue::null(),
        Value::Bool(b) => JsValue::new(*b),
        Value::Number(n) => match n.as_i64().and_then(|i| i32::try_from(i).ok()) {
            Some(i) => JsValue::new(i),
            None => JsValue::new(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => JsString::from(s.as_str()).into(),
        Value::Array(items) => {
            let items: Vec<JsValue> = items.iter().map(|v| to_js(v, keys, context)).collect();
            JsArray::from_iter(items, context).into()
        }
        Value::Object(map) => {
            let prototype = context.intrinsics().constructors().object().prototype();
            to_js_object(map, prototype, keys, context).into()
        }
    }
}

/// A JSON object as a JS object with the given prototype.
pub fn to_js_object(
    map: &Map<String, Value>,
    prototype: JsObject,
    keys: &mut KeyCache,
    context: &mut Context,
) -> JsObject {
    let object = JsObject::new(context.root_shape(), prototype, OrdinaryObject).upcast();
    for (name, value) in map {
        let value = to_js(value, keys, context);
        object.insert_property(
            keys.key(name),
            PropertyDescriptor::builder()
                .value(value)
                .writable(true)
                .enumerable(true)
                .configurable(true),
        );
    }
    object
}

/// Objects nested deeper than this are not read back: no event needs more, and reading
/// recursively deeper could overflow the worker's stack (a handler can build a million-deep
/// chain cheaply).
pub const MAX_DEPTH: usize = 64;

/// Arrays longer than this are not read back (`a.length = 4e9` is one statement).
pub const MAX_ARRAY_LENGTH: u64 = 1 << 16;

/// A JS value as JSON (`None` for `undefined`), as boa's `to_json` reads it — except that
/// nesting past [`MAX_DEPTH`] and arrays past [`MAX_ARRAY_LENGTH`] are errors, where boa's would
/// overflow the stack or run out of memory.
pub fn to_json(value: &JsValue, context: &mut Context) -> JsResult<Option<Value>> {
    let mut path = Vec::new();
    read(value, &mut path, context)
}

/// `path` holds the objects being read, outermost first, to detect cycles and bound depth.
fn read(
    value: &JsValue,
    path: &mut Vec<JsObject>,
    context: &mut Context,
) -> JsResult<Option<Value>> {
    let object = match value.variant() {
        JsVariant::Null => return Ok(Some(Value::Null)),
        JsVariant::Undefined => return Ok(None),
        JsVariant::Boolean(b) => return Ok(Some(Value::Bool(b))),
        JsVariant::Integer32(i) => return Ok(Some(Value::from(i))),
        JsVariant::Float64(f) => return Ok(Some(Value::from(f))),
        JsVariant::String(s) => return Ok(Some(Value::String(std_string(&s)))),
        JsVariant::Object(object) => object,
        JsVariant::BigInt(_) | JsVariant::Symbol(_) => return value.to_json(context),
    };
    // A proxy's own keys come from its `ownKeys` trap, JavaScript that would run here outside
    // any budget; boa's reader looks only at the proxy's own (empty) property map.
    if object.is::<Proxy>() {
        return value.to_json(context);
    }
    let array = object.is_array();
    if path.iter().any(|seen| JsObject::equals(seen, &object)) {
        return Err(JsNativeError::typ()
            .with_message("cyclic object value")
            .into());
    }
    if path.len() >= MAX_DEPTH {
        return Err(JsNativeError::typ()
            .with_message(format!("objects nested more than {MAX_DEPTH} deep"))
            .into());
    }
    path.push(object.clone());
    let result = if array {
        read_array(&object, path, context)
    } else {
        read_object(&object, path, context)
    };
    path.pop();
    result.map(Some)
}

fn own_value(object: &JsObject, key: &PropertyKey) -> Option<JsValue> {
    object
        .borrow()
        .properties()
        .get(key)
        .and_then(|p| p.value().cloned())
}

fn read_array(
    object: &JsObject,
    path: &mut Vec<JsObject>,
    context: &mut Context,
) -> JsResult<Value> {
    let length = JsArray::from_object(object.clone())?.length(context)?;
    if length > MAX_ARRAY_LENGTH {
        return Err(JsNativeError::range()
            .with_message(format!(
                "an array of {length} elements (at most {MAX_ARRAY_LENGTH})"
            ))
            .into());
    }
    let mut items = Vec::with_capacity(length as usize);
    for index in 0..length {
        let item = match own_value(object, &PropertyKey::from(index as u32)) {
            Some(v) => read(&v, path, context)?.unwrap_or(Value::Null),
            None => Value::Null,
        };
        items.push(item);
    }
    Ok(Value::Array(items))
}

fn read_object(
    object: &JsObject,
    path: &mut Vec<JsObject>,
    context: &mut Context,
) -> JsResult<Value> {
    // Keys come from the object's property map (no JavaScript runs: proxies are not read
    // here). Exotic objects also list keys that have no entry in it (typed-array elements,
    // a String object's characters): boa's reader leaves those out, and so does this one.
    let exotic = !object.is_ordinary();
    let keys = object.own_property_keys(context)?;
    let mut map = Map::with_capacity(keys.len());
    for key in keys {
        let name = match &key {
            PropertyKey::String(s) => std_string(s),
            PropertyKey::Index(i) => i.get().to_string(),
            PropertyKey::Symbol(_) => {
                return Err(JsNativeError::typ()
                    .with_message("cannot convert Symbol to JSON")
                    .into());
            }
        };
        let value = match own_value(object, &key) {
            Some(v) => read(&v, path, context)?,
            None if exotic && !object.borrow().properties().contains_key(&key) => continue,
            None => Some(Value::Null),
        };
        if let Some(value) = value {
            map.insert(name, value);
        }
    }
    Ok(Value::Object(map))
}

/// A JS string as a Rust string: ASCII copied as bytes, other Latin-1 and valid UTF-16
/// decoded, lone surrogates escaped as boa escapes them.
fn std_string(s: &JsString) -> String {
    if let Some(ascii) = s.as_str().as_latin1().filter(|b| b.is_ascii()) {
        // Every byte is ASCII, so this cannot fail; the fallback keeps it panic-free.
        return String::from_utf8(ascii.to_vec()).unwrap_or_default();
    }
    s.to_std_string()
        .unwrap_or_else(|_| s.to_std_string_escaped())
}

#[cfg(test)]
mod tests {
    use super::*;
    use boa_engine::Source;
    use serde_json::json;

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
        let map = json!({"name": "verge"});
        let object = to_js_object(map.as_object().unwrap(), prototype, &mut keys, &mut context);
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
