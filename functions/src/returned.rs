//! What a handler returned, read off the JS heap into plain Rust data.
//!
//! Reading into a `serde_json::Value` cost every object an `IndexMap` (a hash table hashed with
//! SipHash) and every key a hash on insert and again on each lookup while validating; callgrind
//! put reading and comparing that way at about a third of a no-op invocation. A [`Returned`]
//! object is a `Vec` of fields in JS key order: building it hashes nothing, and the validators
//! look up only a handful of fixed names in it (or compare field by field against the original
//! event, which keeps its own index).
//!
//! What is read matches boa's `to_json` for everything a handler can return: own properties,
//! enumerable or not, array indices first; `undefined` members left out of objects and `null`
//! in arrays; accessor properties read as `null` (no getter runs); a cycle is an error; nesting
//! and array length are bounded. Proxies are handed to boa's own `to_json`, which reads their
//! (empty) property map without running their traps. An event part built on first touch
//! ([`crate::deferred`]) is an accessor until then: it is built and read like the data it
//! stands for, or, untouched on the result of the invocation being read, left out.

use std::borrow::Cow;
use std::rc::Rc;

use boa_engine::builtins::proxy::Proxy;
use boa_engine::object::builtins::JsArray;
use boa_engine::property::PropertyKey;
use boa_engine::{
    Context, Finalize, JsNativeError, JsObject, JsResult, JsValue, JsVariant, Trace, js_string,
};
use serde_json::Value;

use crate::deferred::{self, Unread};
use crate::encoding::utf8_escaped;
use crate::first_touch::FirstTouch;
use crate::invocation::Invocation;
use crate::js_json::JsBuilder;

/// A value as the handler returned it.
#[derive(Debug, Clone, PartialEq)]
pub enum Returned {
    /// `null`, and numbers JSON cannot hold (`NaN`, infinities).
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number JS holds as a 32-bit integer (what integer literals and status codes are).
    Int(i32),
    /// Any other (finite) number.
    Float(f64),
    /// A string (lone surrogates escaped as boa escapes them).
    String(String),
    /// An array (holes and `undefined` read as `null`).
    Array(Vec<Returned>),
    /// An object's own fields.
    Object(Fields),
}

/// An object's own fields, in JS key order (no duplicates: they come from one object). Keys an
/// event or a result has by name (`value`, `headers`, common header names…) are borrowed from a
/// fixed table ([`known_key`]) rather than copied: a returned request is mostly such keys, and
/// each copy was an allocation and a free on the worker.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Fields(pub Vec<(Key, Returned)>);

/// A field's name.
pub type Key = Cow<'static, str>;

impl Fields {
    /// The field named `key` (a linear search: callers look up a few fixed names).
    pub fn get(&self, key: &str) -> Option<&Returned> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Whether the object has a field named `key`.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Names and values, in JS key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Returned)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v))
    }

    /// Names, in JS key order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_ref())
    }

    /// How many fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first key not in `allowed`.
    pub fn unexpected(&self, allowed: &[&str]) -> Option<&str> {
        self.keys().find(|k| !allowed.contains(k))
    }
}

impl Returned {
    /// The fields of an object.
    pub fn as_object(&self) -> Option<&Fields> {
        match self {
            Returned::Object(fields) => Some(fields),
            _ => None,
        }
    }

    /// The text of a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Returned::String(s) => Some(s),
            _ => None,
        }
    }

    /// The items of an array.
    pub fn as_array(&self) -> Option<&[Returned]> {
        match self {
            Returned::Array(items) => Some(items),
            _ => None,
        }
    }

    /// A field of an object (`None` for a missing field or a value that is not an object).
    pub fn get(&self, key: &str) -> Option<&Returned> {
        self.as_object().and_then(|o| o.get(key))
    }

    /// A non-negative integer. JS has one number type, so an integral float counts
    /// (`Math.floor(x)` can be held as one).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Returned::Int(i) => u64::try_from(i).ok(),
            Returned::Float(f) if f.fract() == 0.0 && (0.0..=9.0e15).contains(&f) => Some(f as u64),
            _ => None,
        }
    }

    /// As JSON: for showing what a function returned (`verge test-function`), for host
    /// functions that take plain data, and for error messages.
    pub fn into_json(self) -> Value {
        match self {
            Returned::Null => Value::Null,
            Returned::Bool(b) => Value::Bool(b),
            Returned::Int(i) => Value::from(i),
            Returned::Float(f) => Value::from(f),
            Returned::String(s) => Value::String(s),
            Returned::Array(items) => {
                Value::Array(items.into_iter().map(Returned::into_json).collect())
            }
            Returned::Object(fields) => Value::Object(
                fields
                    .0
                    .into_iter()
                    .map(|(k, v)| (k.into_owned(), v.into_json()))
                    .collect(),
            ),
        }
    }
}

/// A JSON value as if a handler had returned it (boa's own reader's results, and tests).
impl From<&Value> for Returned {
    fn from(value: &Value) -> Self {
        match value {
            Value::Null => Returned::Null,
            Value::Bool(b) => Returned::Bool(*b),
            Value::Number(n) => match n.as_i64().and_then(|i| i32::try_from(i).ok()) {
                Some(i) => Returned::Int(i),
                None => Returned::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => Returned::String(s.clone()),
            Value::Array(items) => Returned::Array(items.iter().map(Returned::from).collect()),
            Value::Object(map) => Returned::Object(Fields(
                map.iter()
                    .map(|(k, v)| (Cow::Owned(k.clone()), Returned::from(v)))
                    .collect(),
            )),
        }
    }
}

/// Objects nested deeper than this are not read back: no event needs more, and reading
/// recursively deeper could overflow the worker's stack (a handler can build a million-deep
/// chain cheaply).
pub const MAX_DEPTH: usize = 64;

/// Arrays longer than this are not read back (`a.length = 4e9` is one statement).
pub const MAX_ARRAY_LENGTH: u64 = 1 << 16;

/// A JS value as the handler returned it (`None` for `undefined`), as boa's `to_json` reads it
/// — except that nesting past [`MAX_DEPTH`] and arrays past [`MAX_ARRAY_LENGTH`] are errors,
/// where boa's would overflow the stack or run out of memory.
pub fn read(value: &JsValue, context: &mut Context) -> JsResult<Option<Returned>> {
    read_result(value, None, None, context)
}

/// [`read`] for a handler's result: deferred event parts of invocation `current` that the
/// handler never touched are left out of the object it returned (the comparators read them as
/// unchanged); everywhere else deferred parts are built and read ([`crate::deferred`]).
/// Objects of `entry`'s shape (the entries of the tier's events: `{value}` in CloudFront
/// Functions, `{key, value}` in Lambda@Edge) are read without the general walk
/// ([`read_entry`]).
pub fn read_result(
    value: &JsValue,
    current: Option<&Rc<Invocation>>,
    entry: Option<&EntryShape>,
    context: &mut Context,
) -> JsResult<Option<Returned>> {
    let mut path = Path {
        objects: Vec::new(),
        current,
        entry: entry.map(|e| (e.template.borrow().shape().to_addr_usize(), &*e.keys)),
        first_touch: None,
    };
    read_value(value, &mut path, context)
}

/// [`read_result`] for a Lambda@Edge handler's answer: the running invocation's parts built on
/// first touch are read as what they are ([`FirstTouch::read_as`], [`FirstTouch::leaves_out`]).
pub fn read_edge_result(
    value: &JsValue,
    entry: Option<&EntryShape>,
    first_touch: Option<&FirstTouch>,
    context: &mut Context,
) -> JsResult<Option<Returned>> {
    let mut path = Path {
        objects: Vec::new(),
        current: None,
        entry: entry.map(|e| (e.template.borrow().shape().to_addr_usize(), &*e.keys)),
        first_touch,
    };
    read_value(value, &mut path, context)
}

/// The shape of an event's entries, which the reader recognizes: a template entry made as the
/// event writer makes every entry (it keeps the shape alive, so no other shape can take its
/// address), and the shape's keys in order.
#[derive(Trace, Finalize)]
pub struct EntryShape {
    template: JsObject,
    #[unsafe_ignore_trace]
    keys: Box<[(PropertyKey, &'static str)]>,
}

impl EntryShape {
    /// The shape of CloudFront Functions' `{value}` entries, from a template made by the event
    /// writer's own builder (so a change to how entries are made changes the template with it).
    pub fn value_entries(js: &mut JsBuilder<'_>) -> Option<Self> {
        Self::of(js.value_entry(js_string!()))
    }

    /// The shape of Lambda@Edge's `{key, value}` header entries, made as
    /// [`EntryShape::value_entries`] makes its template.
    pub fn key_value_entries(js: &mut JsBuilder<'_>) -> Option<Self> {
        Self::of(js.key_value_entry(js_string!().into(), js_string!()))
    }

    /// The shape of `template`, an ordinary object whose own properties are data properties
    /// named in [`known_key`]; `None` for anything else (every entry is then read by the
    /// general walk).
    fn of(template: JsObject) -> Option<Self> {
        let keys = {
            let object = template.borrow();
            if object.properties().index_property_keys().next().is_some() {
                return None;
            }
            object
                .shape()
                .keys()
                .into_iter()
                .map(|key| {
                    let PropertyKey::String(s) = &key else {
                        return None;
                    };
                    let name = s.as_str().as_latin1().and_then(known_key)?;
                    object.properties().get(&key)?.value()?;
                    Some((key, name))
                })
                .collect::<Option<Box<[_]>>>()?
        };
        template
            .is_ordinary()
            .then_some(EntryShape { template, keys })
    }

    /// The template entry.
    pub fn template(&self) -> &JsObject {
        &self.template
    }
}

/// Where the reader is: the objects being read, outermost first (to detect cycles and bound
/// depth), the invocation whose result it is, and the address and keys of the entries' shape.
struct Path<'a> {
    objects: Vec<JsObject>,
    current: Option<&'a Rc<Invocation>>,
    entry: Option<(usize, &'a [(PropertyKey, &'static str)])>,
    first_touch: Option<&'a FirstTouch>,
}

/// An object of the entries' shape whose values are not objects, read without the general
/// walk; `None` for anything else, which the walk reads.
///
/// A returned event is mostly entries (one per header, cookie and query parameter in
/// CloudFront Functions, one per header value in Lambda@Edge), and the walk spent on each the
/// cycle check, a list of its keys with a name lookup per key, and a property lookup per key.
/// A shared shape names an object's prototype and its keys with their attributes in order, so
/// an ordinary object of the template's shape with no indexed elements has exactly the
/// template's own properties, writable, enumerable data properties in the same order: what the
/// walk would read is those fields. (Shapes live as long as an object has them; the template
/// keeps this one.)
fn read_entry(object: &JsObject, path: &Path<'_>) -> Option<Returned> {
    let (shape, keys) = path.entry?;
    if !object.is_ordinary() || path.objects.len() >= MAX_DEPTH {
        return None;
    }
    let borrowed = object.borrow();
    if borrowed.shape().to_addr_usize() != shape
        || borrowed.properties().index_property_keys().next().is_some()
    {
        return None;
    }
    let mut fields = Vec::with_capacity(keys.len());
    for (key, name) in keys {
        let value = borrowed.properties().get(key)?.value()?.clone();
        // `undefined` members are left out, as the walk leaves them out; an object (or a
        // BigInt, a Symbol) is for the walk.
        if let Some(value) = read_plain(&value)? {
            fields.push((Cow::Borrowed(*name), value));
        }
    }
    Some(Returned::Object(Fields(fields)))
}

/// boa's own reader, for what this one hands over to it.
fn boa_read(value: &JsValue, context: &mut Context) -> JsResult<Option<Returned>> {
    Ok(value.to_json(context)?.as_ref().map(Returned::from))
}

/// A value that is neither an object, a BigInt nor a Symbol, read (`Some(None)` for
/// `undefined`); `None` for those three, which need more than the value itself.
fn read_plain(value: &JsValue) -> Option<Option<Returned>> {
    Some(Some(match value.variant() {
        JsVariant::Null => Returned::Null,
        JsVariant::Undefined => return Some(None),
        JsVariant::Boolean(b) => Returned::Bool(b),
        JsVariant::Integer32(i) => Returned::Int(i),
        // As `serde_json` (and so boa's reader) stores a float: non-finite ones are `null`.
        JsVariant::Float64(f) if f.is_finite() => Returned::Float(f),
        JsVariant::Float64(_) => Returned::Null,
        JsVariant::String(s) => Returned::String(utf8_escaped(&s)),
        JsVariant::Object(_) | JsVariant::BigInt(_) | JsVariant::Symbol(_) => return None,
    }))
}

fn read_value(
    value: &JsValue,
    path: &mut Path<'_>,
    context: &mut Context,
) -> JsResult<Option<Returned>> {
    if let Some(plain) = read_plain(value) {
        return Ok(plain);
    }
    let Some(object) = value.as_object() else {
        // A BigInt or a Symbol: boa's reader says what JSON makes of it (an error).
        return boa_read(value, context);
    };
    // A proxy's own keys come from its `ownKeys` trap, JavaScript that would run here outside
    // any budget; boa's reader looks only at the proxy's own (empty) property map.
    if object.is::<Proxy>() {
        // Except a part of the running edge invocation built on first touch: its target.
        if let Some(target) = path
            .first_touch
            .map(|f| f.read_as(&object, context))
            .transpose()?
            .flatten()
        {
            return read_value(&target.into(), path, context);
        }
        return boa_read(value, context);
    }
    if let Some(entry) = read_entry(&object, path) {
        return Ok(Some(entry));
    }
    let array = object.is_array();
    if path
        .objects
        .iter()
        .any(|seen| JsObject::equals(seen, &object))
    {
        return Err(JsNativeError::typ()
            .with_message("cyclic object value")
            .into());
    }
    if path.objects.len() >= MAX_DEPTH {
        return Err(JsNativeError::typ()
            .with_message(format!("objects nested more than {MAX_DEPTH} deep"))
            .into());
    }
    path.objects.push(object.clone());
    let result = if array {
        read_array(&object, path, context)
    } else {
        read_object(&object, path, context)
    };
    path.objects.pop();
    result.map(Some)
}

fn own_value(object: &JsObject, key: &PropertyKey) -> Option<JsValue> {
    object
        .borrow()
        .properties()
        .get(key)
        .and_then(|p| p.value().cloned())
}

fn read_array(object: &JsObject, path: &mut Path<'_>, context: &mut Context) -> JsResult<Returned> {
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
            Some(v) => read_value(&v, path, context)?.unwrap_or(Returned::Null),
            None => Returned::Null,
        };
        items.push(item);
    }
    Ok(Returned::Array(items))
}

fn read_object(
    object: &JsObject,
    path: &mut Path<'_>,
    context: &mut Context,
) -> JsResult<Returned> {
    // Keys come from the object's property map (no JavaScript runs: proxies are not read
    // here). Exotic objects also list keys that have no entry in it (typed-array elements,
    // a String object's characters): boa's reader leaves those out, and so does this one.
    let exotic = !object.is_ordinary();
    let keys = object.own_property_keys(context)?;
    let mut fields = Vec::with_capacity(keys.len());
    for key in keys {
        let name: Key = match &key {
            PropertyKey::String(s) => match s.as_str().as_latin1().and_then(known_key) {
                Some(known) => Cow::Borrowed(known),
                None => Cow::Owned(utf8_escaped(s)),
            },
            PropertyKey::Index(i) => Cow::Owned(i.get().to_string()),
            PropertyKey::Symbol(_) => {
                return Err(JsNativeError::typ()
                    .with_message("cannot convert Symbol to JSON")
                    .into());
            }
        };
        let value = match own_value(object, &key) {
            Some(v)
                if path.objects.len() == 1
                    && path
                        .first_touch
                        .is_some_and(|f| f.leaves_out(object, &name, &v)) =>
            {
                continue;
            }
            Some(v) => read_value(&v, path, context)?,
            None if exotic && !object.borrow().properties().contains_key(&key) => continue,
            None => {
                let top = path.objects.len() == 1;
                match deferred::unread(object, &key, path.current, top, context)? {
                    Unread::Accessor => Some(Returned::Null),
                    Unread::Untouched => continue,
                    Unread::Value(v) => read_value(&v, path, context)?,
                }
            }
        };
        if let Some(value) = value {
            fields.push((name, value));
        }
    }
    Ok(Returned::Object(Fields(fields)))
}

/// The names events and results use, and the request headers most viewers send, as static
/// strings: reading them back copies nothing.
fn known_key(name: &[u8]) -> Option<&'static str> {
    const KNOWN: &[&str] = &[
        // CloudFront Functions events and results.
        "value",
        "multiValue",
        "attributes",
        "request",
        "response",
        "uri",
        "method",
        "querystring",
        "headers",
        "cookies",
        "statusCode",
        "statusDescription",
        "body",
        "encoding",
        "data",
        "version",
        "context",
        "viewer",
        "ip",
        // Lambda@Edge events and results.
        "key",
        "status",
        "bodyEncoding",
        "clientIp",
        "origin",
        "custom",
        "s3",
        "domainName",
        "port",
        "protocol",
        "path",
        "sslProtocols",
        "readTimeout",
        "keepaliveTimeout",
        "customHeaders",
        "authMethod",
        "region",
        "action",
        "inputTruncated",
        "Records",
        "cf",
        "config",
        // Request and response headers, lower-case as events hold them.
        "host",
        "user-agent",
        "accept",
        "accept-encoding",
        "accept-language",
        "cookie",
        "authorization",
        "cache-control",
        "connection",
        "content-length",
        "content-type",
        "referer",
        "pragma",
        "upgrade-insecure-requests",
        "x-forwarded-for",
        "via",
        "x-forwarded-proto",
        "if-none-match",
        "if-modified-since",
        "range",
        "date",
        "server",
        "etag",
        "last-modified",
        "location",
        "set-cookie",
        "vary",
        "expires",
        "age",
    ];
    static TABLE: std::sync::LazyLock<foldhash::HashMap<&'static [u8], &'static str>> =
        std::sync::LazyLock::new(|| KNOWN.iter().map(|k| (k.as_bytes(), *k)).collect());
    TABLE.get(name).copied()
}

#[cfg(test)]
mod tests {
    use boa_engine::{JsString, Source};

    use super::*;
    use crate::js_json::KeyCache;

    /// A context, and the shapes of the entries the event writers make: CloudFront Functions'
    /// `{value}` (the kit's) and Lambda@Edge's `{key, value}` (an edge function's).
    fn setup() -> (Context, EntryShape, EntryShape) {
        let mut context = Context::default();
        let mut keys = KeyCache::default();
        let mut js = JsBuilder {
            keys: &mut keys,
            context: &mut context,
        };
        let value = EntryShape::value_entries(&mut js).expect("an entry");
        let key_value = EntryShape::key_value_entries(&mut js).expect("an entry");
        (context, value, key_value)
    }

    fn eval(source: &str, context: &mut Context) -> JsValue {
        context
            .eval(Source::from_bytes(source))
            .unwrap_or_else(|e| panic!("{source}: {e}"))
    }

    /// Whether `source`'s value is read by [`read_entry`] with `shape` rather than by the walk.
    fn takes_the_entry_path(source: &str, shape: &EntryShape, context: &mut Context) -> bool {
        let value = eval(source, context);
        let object = value.as_object().expect("an object");
        let path = Path {
            objects: Vec::new(),
            current: None,
            entry: Some((shape.template.borrow().shape().to_addr_usize(), &shape.keys)),
            first_touch: None,
        };
        read_entry(&object, &path).is_some()
    }

    /// Each case read with `shape` and without it (the general walk alone): the same result.
    fn read_alike(cases: &[&str], shape: &EntryShape, context: &mut Context) {
        for source in cases {
            let value = eval(source, context);
            let fast = read_result(&value, None, Some(shape), context);
            let walked = read_result(&value, None, None, context);
            assert_eq!(
                fast.map_err(|e| e.to_string()),
                walked.map_err(|e| e.to_string()),
                "{source}"
            );
        }
    }

    /// The ways an object can look like an entry without being one, for an entry `literal`
    /// (an object literal) of the shape under test.
    fn lookalikes(literal: &str) -> Vec<String> {
        let inner = &literal[1..literal.len() - 1];
        vec![
            format!("({{{inner}, other: 1}})"),
            format!("(() => {{ var e = {literal}; e[0] = 'indexed'; return e; }})()"),
            format!("(() => {{ var e = {literal}; Object.freeze(e); return e; }})()"),
            format!(
                "(() => {{ var e = {literal}; Object.defineProperty(e, 'value', {{value: 'hidden', enumerable: false}}); return e; }})()"
            ),
            format!(
                "(() => {{ var e = {literal}; Object.defineProperty(e, 'value', {{get() {{ return 'computed'; }}}}); return e; }})()"
            ),
            format!(
                "(() => {{ var e = Object.create(null); Object.assign(e, {literal}); return e; }})()"
            ),
            format!(
                "(() => {{ var n = new Number(1); Object.setPrototypeOf(n, Object.prototype); Object.assign(n, {literal}); return n; }})()"
            ),
            format!(
                "(() => {{ var e = {literal}; e.value = {{value: 'an object'}}; return e; }})()"
            ),
        ]
    }

    #[test]
    fn entries_are_read_alike_with_and_without_the_entry_path() {
        let (mut context, value, key_value) = setup();
        let value_cases = [
            "({value: 'a'})",
            "({value: 7})",
            "({value: 1.5})",
            "({value: NaN})",
            "({value: null})",
            "({value: true})",
            "({value: undefined})",
            "({value: 'caf\\u00e9 \\ud800'})",
            "({value: {value: 'nested'}})",
            "({value: [1, {value: 'x'}]})",
            "({value: 'a', other: 1})",
            "(() => { var e = {value: 'a'}; e[0] = 'indexed'; return e; })()",
            "(() => { var e = {value: 'a'}; Object.freeze(e); return e; })()",
            "(() => { var e = {}; Object.defineProperty(e, 'value', {value: 'hidden'}); return e; })()",
            "(() => { var e = {get value() { return 'computed'; }}; return e; })()",
            "(() => { var e = Object.create(null); e.value = 'no prototype'; return e; })()",
            "(() => { var e = {value: 'a'}; delete e.value; e.value = 'again'; return e; })()",
            "(() => { var n = new Number(1); Object.setPrototypeOf(n, Object.prototype); n.value = 'boxed'; return n; })()",
            "({headers: {host: {value: 'h'}, 'x-multi': {value: 'a', multiValue: [{value: 'a'}, {value: 'b'}]}}})",
        ];
        read_alike(&value_cases, &value, &mut context);
        let key_value_cases = [
            "({key: 'Host', value: 'a'})",
            "({key: 'Host', value: 7})",
            "({key: 'Host', value: NaN})",
            "({key: undefined, value: 'a'})",
            "({key: 'Host', value: undefined})",
            "({key: 'Caf\\u00e9', value: 'caf\\u00e9 \\ud800'})",
            "({key: 'Host', value: {value: 'nested'}})",
            "({key: {key: 'nested'}, value: 'a'})",
            "({value: 'a', key: 'Host'})",
            "({key: 'Host'})",
            "({key: 'Host', value: 'a', other: 1})",
            "(() => { var e = {key: 'Host', value: 'a'}; e[0] = 'indexed'; return e; })()",
            "(() => { var e = {key: 'Host', value: 'a'}; Object.freeze(e); return e; })()",
            "(() => { var e = {key: 'Host', get value() { return 'computed'; }}; return e; })()",
            "(() => { var e = Object.create(null); e.key = 'Host'; e.value = 'no prototype'; return e; })()",
            "(() => { var e = {key: 'Host', value: 'a'}; delete e.key; e.key = 'Again'; return e; })()",
            "({headers: {host: [{key: 'Host', value: 'h'}], 'x-multi': [{key: 'X-Multi', value: 'a'}, {key: 'X-Multi', value: 'b'}]}})",
        ];
        read_alike(&key_value_cases, &key_value, &mut context);
        // Each shape's lookalikes too, and each tier's entries read with the other's shape.
        let value_lookalikes = lookalikes("{value: 'a'}");
        let key_value_lookalikes = lookalikes("{key: 'Host', value: 'a'}");
        for (shape, cases) in [
            (&value, &key_value_lookalikes),
            (&key_value, &value_lookalikes),
        ] {
            let cases: Vec<&str> = cases.iter().map(String::as_str).collect();
            read_alike(&cases, shape, &mut context);
            read_alike(&key_value_cases, shape, &mut context);
            read_alike(&value_cases, shape, &mut context);
        }
        // A cycle through an entry's value is still found.
        for (shape, source) in [
            (
                &value,
                "(() => { var e = {value: 'a'}; e.value = e; return e; })()",
            ),
            (
                &key_value,
                "(() => { var e = {key: 'Host', value: 'a'}; e.value = e; return e; })()",
            ),
        ] {
            let cyclic = eval(source, &mut context);
            assert!(read_result(&cyclic, None, Some(shape), &mut context).is_err());
        }
    }

    #[test]
    fn writer_made_and_literal_entries_take_the_entry_path_and_nothing_else_does() {
        let (mut context, value, key_value) = setup();
        let global = context.global_object();
        for (name, shape) in [("written", &value), ("writtenKv", &key_value)] {
            global
                .set(
                    JsString::from(name),
                    shape.template().clone(),
                    false,
                    &mut context,
                )
                .unwrap();
        }
        let cases = [
            (
                &value,
                "{value: 'a'}",
                vec![
                    "written",
                    "({value: 'a'})",
                    "(() => { var e = {}; e.value = 'assigned'; return e; })()",
                    "({value: undefined})",
                ],
            ),
            (
                &key_value,
                "{key: 'Host', value: 'a'}",
                vec![
                    "writtenKv",
                    "({key: 'Host', value: 'a'})",
                    "(() => { var e = {}; e.key = 'Host'; e.value = 'assigned'; return e; })()",
                    "({key: 'Host', value: undefined})",
                    "[{key: 'Host', value: 'in an array'}][0]",
                ],
            ),
        ];
        for (shape, literal, taken) in cases {
            for source in taken {
                assert!(
                    takes_the_entry_path(source, shape, &mut context),
                    "{source}"
                );
            }
            for source in lookalikes(literal) {
                assert!(
                    !takes_the_entry_path(&source, shape, &mut context),
                    "{source}"
                );
            }
        }
        // Neither tier's entries pass for the other's.
        assert!(!takes_the_entry_path(
            "({value: 'a'})",
            &key_value,
            &mut context
        ));
        assert!(!takes_the_entry_path(
            "({key: 'Host', value: 'a'})",
            &value,
            &mut context
        ));
        assert!(!takes_the_entry_path(
            "({value: 'a', key: 'Host'})",
            &key_value,
            &mut context
        ));
    }

    #[test]
    fn only_ordinary_objects_of_known_data_keys_make_an_entry_shape() {
        let mut context = Context::default();
        for (source, makes) in [
            ("({value: ''})", true),
            ("({key: '', value: ''})", true),
            ("({notAnEventKey: ''})", false),
            ("({get value() { return ''; }})", false),
            (
                "(() => { var e = {value: ''}; e[0] = 1; return e; })()",
                false,
            ),
            ("[]", false),
        ] {
            let object = eval(source, &mut context).as_object().expect("an object");
            assert_eq!(EntryShape::of(object).is_some(), makes, "{source}");
        }
    }
}
