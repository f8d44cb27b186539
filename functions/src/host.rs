//! Host modules of the fast tier, native where the work is: `crypto` hashing and HMAC (md5, sha1,
//! sha256, sha512; digests as hex, base64, base64url or raw bytes), `querystring`, `buffer`,
//! `cloudfront` (`kvs()`, the three origin helpers, `edgeLocation`, `logCustomData`,
//! `distributionTenant` as on a standard distribution, `cwt.validateToken` in [`crate::cwt`]),
//! `atob`/`btoa`, `TextEncoder`/`TextDecoder`, `console.log`, the 1.0 byte-string methods,
//! `require`, and a module loader so a 2.0 file may begin with `import cf from 'cloudfront'`.
//!
//! What one invocation decides through these modules (an origin, custom log data) is collected
//! in a thread-local record that the worker resets before and reads after each invocation.
//!
//! What every context gets (console, the guards on built-ins, `require`, the module table) is
//! built natively by [`crate::host_core`]; the modules are JavaScript, one [`Part`] each,
//! evaluated only for a function that needs it: parsing is most of what loading a context
//! costs. The JavaScript only collects `update()` chunks and the like; every byte of hashing
//! and encoding happens in Rust.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use boa_engine::module::{ModuleLoader, Referrer};
use boa_engine::object::builtins::{JsPromise, JsUint8Array};
use boa_engine::{
    Context, JsNativeError, JsResult, JsString, JsValue, Module, NativeFunction, Source, js_string,
};
use hmac::{Hmac, Mac};
use sha2::Digest;
use verge_config::Runtime;

/// The most elements (or characters) one allocation-heavy built-in call may produce. Bigger
/// requests are refused before any work starts, because no budget check reaches inside them.
pub const MAX_ELEMENTS: usize = 1 << 20;

/// What one invocation decided through the host modules.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Decisions {
    /// A size check refused an allocation; the invocation fails even if JS caught the error.
    pub memory: Option<String>,
    /// `cf.selectRequestOriginById`, `updateRequestOrigin` or `createRequestOriginGroup`; the
    /// last call wins.
    pub origin: Option<crate::origin_choice::OriginChoice>,
    /// `cf.logCustomData(…)`, URL-encoded and cut at 800 bytes; the last call wins.
    pub log_data: Option<String>,
    /// Whether origin changes are allowed (viewer-request only).
    pub origin_allowed: bool,
    /// `console.log` lines, at most [`MAX_LOG_BYTES`] in all.
    pub logs: Vec<String>,
    logged: usize,
    /// The viewer's raw query string (`None` without a `?`), for `request.rawQueryString()`.
    raw_query: Option<String>,
}

/// CloudFront's limit on what one run may log.
pub const MAX_LOG_BYTES: usize = 10 * 1024;

thread_local! {
    static DECISIONS: RefCell<Decisions> = RefCell::new(Decisions::default());
}

/// Start recording the decisions of an invocation.
pub fn begin(origin_allowed: bool, raw_query: Option<String>) {
    DECISIONS.with(|d| {
        *d.borrow_mut() = Decisions {
            origin_allowed,
            raw_query,
            ..Decisions::default()
        }
    });
}

/// Forget what this invocation decided so far, keeping what it was started with: for running
/// the same invocation again.
pub fn restart() {
    let (origin_allowed, raw_query) = DECISIONS.with(|d| {
        let mut d = d.borrow_mut();
        (d.origin_allowed, d.raw_query.take())
    });
    begin(origin_allowed, raw_query);
}

/// The decisions of the invocation that just ended.
pub fn take() -> Decisions {
    DECISIONS.with(|d| std::mem::take(&mut *d.borrow_mut()))
}

/// Set the calling thread up for running `inv`: its key-value store for `cf.kvs()`, and a fresh
/// record of decisions (an origin may be chosen only at viewer-request; `rawQueryString()`
/// answers the request line's query). The fast pool and `verge test-function` both run
/// invocations through this and [`leave`].
pub fn enter(inv: &crate::invocation::Invocation) {
    crate::kvs::set_current(inv.kvs.clone());
    begin(
        inv.hook == verge_config::Hook::ViewerRequest,
        inv.request
            .has_query
            .then(|| inv.request.querystring.clone()),
    );
}

/// End the run [`enter`] set up: what it decided; the key-value store is let go.
pub fn leave() -> Decisions {
    crate::kvs::set_current(None);
    take()
}

/// Resolves `import x from 'crypto'` to the host modules; anything else is refused. A module is
/// made on its first import, from what `require` gives (the core's `__verge_module`, which
/// knows the runtime's modules and installs a module's [`Part`] if it was not yet).
#[derive(Default)]
pub struct HostModules {
    modules: RefCell<HashMap<String, Module>>,
}

impl ModuleLoader for HostModules {
    async fn load_imported_module(
        self: Rc<Self>,
        _referrer: Referrer,
        request: boa_engine::module::ModuleRequest,
        context: &RefCell<&mut Context>,
    ) -> JsResult<Module> {
        let name = request.specifier().to_std_string_escaped();
        // Node's `node:` scheme names the same built-in modules.
        let name = name.strip_prefix("node:").unwrap_or(&name);
        if let Some(module) = self.modules.borrow().get(name) {
            return Ok(module.clone());
        }
        let ctx = &mut *context.borrow_mut();
        let make = ctx.global_object().get(js_string!("__verge_module"), ctx)?;
        let make = make
            .as_callable()
            .ok_or_else(|| type_error("host modules missing"))?;
        let value = make.call(&JsValue::undefined(), &[JsString::from(name).into()], ctx)?;
        let module = module_of(value, ctx)?;
        self.modules
            .borrow_mut()
            .insert(name.to_owned(), module.clone());
        Ok(module)
    }
}

/// A piece of the host's JavaScript that a context evaluates only for a function that needs
/// it: at load when the function's source contains one of `words` (plain text search, so a
/// false "yes" only costs the load what it cost before), otherwise on first use — a
/// `require`, an `import`, or the first read of a global it defines — without charging the
/// running invocation's budget. Parsing is most of what a context's load costs (boa parses
/// and compiles every function body up front), and most functions use few of the modules.
pub struct Part {
    /// The name it is installed by (`__verge_install(name)`, [`install_named`]).
    pub name: &'static str,
    /// Words whose presence in a function's source installs the part at load.
    pub words: &'static [&'static str],
    /// The JavaScript, run once in the context's global scope.
    pub source: &'static str,
}

/// The parts of the CloudFront Functions runtimes (byte strings are 1.0's, installed always),
/// all but `cloudfront` and the byte strings shared with Lambda@Edge.
const CFF_PARTS: &[Part] = &[
    Part {
        name: "buffer",
        // By name, or through a host call that returns one: a digest without an encoding, a
        // KeyValueStore value in `bytes` format.
        words: &["Buffer", "buffer", "digest", "bytes"],
        source: crate::buffer::PRELUDE,
    },
    Part {
        name: "crypto",
        words: &["crypto"],
        source: CRYPTO,
    },
    Part {
        name: "querystring",
        words: &["querystring"],
        source: QUERYSTRING,
    },
    Part {
        name: "cloudfront",
        words: &["cloudfront"],
        source: CLOUDFRONT,
    },
    Part {
        name: "text",
        words: &["TextEncoder", "TextDecoder"],
        source: TEXT,
    },
    Part {
        name: "bytestrings",
        words: &[],
        source: BYTE_STRINGS,
    },
];

/// The parts a runtime's functions may have (1.0's byte strings name no word: the core
/// installs them always; the edge's `crypto_node` builds on the common `crypto`).
fn parts_of(runtime: Runtime) -> impl Iterator<Item = &'static Part> {
    let edge: &[Part] = match runtime {
        Runtime::LambdaEdge => crate::edge_host::PARTS,
        _ => &[],
    };
    CFF_PARTS
        .iter()
        .filter(move |part| match runtime {
            Runtime::CloudfrontJs1 => matches!(part.name, "crypto" | "querystring" | "bytestrings"),
            Runtime::CloudfrontJs2 => part.name != "bytestrings",
            Runtime::LambdaEdge => {
                matches!(part.name, "buffer" | "crypto" | "querystring" | "text")
            }
        })
        .chain(edge)
}

/// The parts of `runtime` that a function's `source` names, installed at its load.
pub(crate) fn named_parts(runtime: Runtime, source: &str) -> impl Iterator<Item = &'static Part> {
    parts_of(runtime).filter(move |part| part.words.iter().any(|word| source.contains(word)))
}

/// `__verge_install(name)` for a context of `runtime`: evaluate one of its parts (the
/// core and the parts call it on first use), uncharged to the running invocation's budget, and
/// mark it done with a hidden global (which the core's `__verge_has` reads). A marked part
/// is not evaluated again: this is a global a function can call itself, and calling it in a
/// loop would otherwise spend CPU its budget never sees.
fn install_part(runtime: Runtime, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let name = string_arg(args, 0, ctx)?.unwrap_or_default();
    install_named(runtime, &name, ctx)?;
    Ok(JsValue::undefined())
}

/// Install the [`Part`] called `name` of `runtime` if it is not yet (see [`install_part`]).
pub(crate) fn install_named(runtime: Runtime, name: &str, ctx: &mut Context) -> JsResult<()> {
    let part = parts_of(runtime)
        .find(|part| part.name == name)
        .ok_or_else(|| type_error(format!("no host part named `{name}`")))?;
    let marker = JsString::from(format!("__verge_part_{name}"));
    let global = ctx.global_object();
    if !global.has_own_property(marker.clone(), ctx)? {
        crate::budget::exempt(|| ctx.eval(Source::from_bytes(part.source)))?;
        crate::host_core::hidden(&global, marker, true, ctx)?;
    }
    Ok(())
}

/// `crypto` as CloudFront Functions have it: hashes and HMACs, collected in JS and computed
/// natively. Buffers and typed arrays are hashed as bytes; strings as UTF-8 (in 1.0, a byte
/// string — every unit under 256, as digests and `toUTF8` make — as its bytes).
const CRYPTO: &str = r#"
(function () {
    var V1 = __verge_v1;
    function bytesOrString(data) { return ArrayBuffer.isView(data) ? data : String(data); }
    function Hash(alg, key) { this._alg = alg; this._key = key; this._parts = []; }
    Hash.prototype.update = function (data) { this._parts.push(bytesOrString(data)); return this; };
    Hash.prototype.digest = function (encoding) {
        var out = __verge_digest(this._alg, this._key, this._parts, encoding, V1);
        return typeof out === 'string' || V1 ? out : __verge_adopt(out);
    };
    // No prototype: `constructor` is no algorithm. A lookup, not `indexOf`: boa's costs more.
    var ALGORITHMS = Object.assign(Object.create(null),
        { md5: true, sha1: true, sha256: true, sha512: true });
    function checked(alg) {
        alg = String(alg);
        if (ALGORITHMS[alg] !== true) { throw new Error('Digest method not supported: ' + alg); }
        return alg;
    }
    __verge_modules.crypto = Object.freeze({
        createHash: function (alg) { return new Hash(checked(alg), undefined); },
        createHmac: function (alg, key) { return new Hash(checked(alg), bytesOrString(key)); }
    });
})();
"#;

/// `cloudfront`: `kvs()`, the origin helpers, and what a standard distribution answers for
/// `edgeLocation` and `distributionTenant`.
const CLOUDFRONT: &str = r#"
(function () {
    // The handle is static (often taken at the top level, at load); the store of the running
    // invocation is looked up by each call.
    function kvs() {
        return Object.freeze({
            get: function (key, options) {
                var format = options && options.format !== undefined ? String(options.format) : 'string';
                var value = __verge_kvs_get(String(key), format);
                return format === 'bytes' ? value.then(__verge_adopt) : value;
            },
            exists: function (key) { return __verge_kvs_exists(String(key)); },
            meta: function () { return __verge_kvs_meta(); }
        });
    }
    __verge_modules.cloudfront = Object.freeze({
        kvs: kvs,
        edgeLocation: Object.freeze({ name: 'VRG', serverIp: '127.0.0.1', region: 'local' }),
        // verge serves standard distributions, never multi-tenant ones: AWS's answer there.
        distributionTenant: Object.freeze({
            get id() { throw new TypeError('distributionTenant module is not available'); },
            parameters: Object.freeze({
                get: function () { throw new TypeError('distributionTenant module is not available'); }
            })
        }),
        selectRequestOriginById: function (id, options) {
            __verge_origin('select', String(id), options === undefined ? null : options);
        },
        updateRequestOrigin: function (params) { __verge_origin('update', '', params); },
        createRequestOriginGroup: function (params) { __verge_origin('group', '', params); },
        logCustomData: function (data) {
            __verge_log_data(encodeURIComponent(String(data)).slice(0, 800));
        },
        cwt: Object.freeze({
            validateToken: function (token, context) {
                if (context === null || typeof context !== 'object') {
                    throw new TypeError('cwt.validateToken: the second argument must be {key}');
                }
                return __verge_cwt_validate(String(token), context.key);
            }
        })
    });
})();
"#;

/// `TextEncoder` / `TextDecoder` (runtime 2.0 and Lambda@Edge): UTF-8 only, converted natively.
const TEXT: &str = r#"
(function () {
    function TextEncoder() {}
    TextEncoder.prototype.encoding = 'utf-8';
    TextEncoder.prototype.encode = function (input) {
        return __verge_utf8_encode(input === undefined ? '' : String(input));
    };
    function TextDecoder(label, options) {
        var name = label === undefined ? 'utf-8' : String(label).toLowerCase();
        if (name !== 'utf-8' && name !== 'utf8') {
            throw new RangeError('TextDecoder: only utf-8 is supported, not ' + label);
        }
        this.encoding = 'utf-8';
        this.fatal = !!(options && options.fatal);
        this.ignoreBOM = !!(options && options.ignoreBOM);
    }
    TextDecoder.prototype.decode = function (input) {
        if (input === undefined) { return ''; }
        return __verge_utf8_decode(input, this.fatal, this.ignoreBOM);
    };
    __verge_global('TextEncoder', TextEncoder);
    __verge_global('TextDecoder', TextDecoder);
    Object.defineProperty(globalThis, '__verge_text', {
        value: Object.freeze({ TextEncoder: TextEncoder, TextDecoder: TextDecoder })
    });
})();
"#;

/// `querystring`, native but for `stringify`'s key listing.
const QUERYSTRING: &str = r#"
(function () {
    function stringify(obj, sep, eq, options) {
        return obj !== null && typeof obj === 'object'
            ? __verge_qs_stringify(obj, sep, eq, options, Object.keys(obj)) : '';
    }
    __verge_modules.querystring = Object.freeze({
        parse: __verge_qs_parse,
        decode: __verge_qs_parse,
        stringify: stringify,
        encode: stringify,
        escape: __verge_qs_escape,
        unescape: __verge_qs_unescape
    });
})();
"#;

/// The 1.0 runtime's byte strings: strings whose units are all under 256.
const BYTE_STRINGS: &str = r#"
(function () {
    var define = function (target, name, f) {
        Object.defineProperty(target, name, { value: f, writable: true, configurable: true });
    };
    var NOT_BYTES = /[^\u0000-\u00ff]/;
    define(String, 'bytesFrom', function (value, encoding) {
        if (typeof value === 'string') {
            var enc = encoding === undefined ? 'utf8' : String(encoding);
            return __verge_buf_to_string(__verge_buf_from_string(value, enc), 'latin1');
        }
        return __verge_buf_to_string(new Uint8Array(value), 'latin1');
    });
    // In this engine a byte string and the Unicode string of the same units are one value:
    // both conversions only check that every unit fits a byte.
    function bytesOnly(start, end) {
        var s = String(this).slice(start, end);
        return NOT_BYTES.test(s) ? null : s;
    }
    define(String.prototype, 'fromBytes', bytesOnly);
    define(String.prototype, 'toBytes', bytesOnly);
    define(String.prototype, 'fromUTF8', function (start, end) {
        var s = String(this).slice(start, end);
        if (NOT_BYTES.test(s)) { return null; }
        return __verge_utf8_decode(__verge_buf_from_string(s, 'latin1'), true, true, true);
    });
    define(String.prototype, 'toUTF8', function (start, end) {
        return __verge_buf_to_string(__verge_buf_from_string(String(this).slice(start, end), 'utf8'), 'latin1');
    });
})();
"#;

fn type_error(message: impl Into<String>) -> boa_engine::JsError {
    JsNativeError::typ().with_message(message.into()).into()
}

fn string_arg(args: &[JsValue], i: usize, ctx: &mut Context) -> JsResult<Option<String>> {
    match args.get(i) {
        None => Ok(None),
        Some(v) if v.is_undefined() || v.is_null() => Ok(None),
        Some(v) => Ok(Some(crate::encoding::utf8_escaped(&v.to_string(ctx)?))),
    }
}

fn hash_bytes(alg: &str, key: Option<&[u8]>, data: &[u8]) -> JsResult<Vec<u8>> {
    macro_rules! run {
        ($hash:ty) => {
            match key {
                None => Ok(<$hash>::digest(data).to_vec()),
                Some(key) => {
                    let mut mac = <Hmac<$hash> as Mac>::new_from_slice(key)
                        .map_err(|e| type_error(format!("invalid HMAC key: {e}")))?;
                    mac.update(data);
                    Ok(mac.finalize().into_bytes().to_vec())
                }
            }
        };
    }
    match alg {
        "md5" => run!(md5::Md5),
        "sha1" => run!(sha1::Sha1),
        "sha256" => run!(sha2::Sha256),
        "sha512" => run!(sha2::Sha512),
        other => Err(type_error(format!(
            "Digest method not supported: {other} (use md5, sha1, sha256 or sha512)"
        ))),
    }
}

/// The bytes a hash input stands for: a `Buffer` or typed array as stored; a string as UTF-8,
/// except in 1.0 where a byte string (every unit under 256) is its units.
pub(crate) fn input_bytes(value: &JsValue, v1: bool, ctx: &mut Context) -> JsResult<Vec<u8>> {
    if let Some(bytes) = crate::buffer::bytes_of(value, ctx)? {
        return Ok(bytes);
    }
    let text = value.to_string(ctx)?;
    if v1 && text.iter().all(|unit| unit < 256) {
        return Ok(text.iter().map(|unit| unit as u8).collect());
    }
    Ok(crate::encoding::utf8_lossy(&text).into_bytes())
}

/// `__verge_digest(alg, key, parts, encoding, v1)`.
fn digest(_this: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let alg = string_arg(args, 0, ctx)?.unwrap_or_default();
    let v1 = args.get(4).is_some_and(JsValue::to_boolean);
    let key = match args.get(1) {
        Some(k) if !k.is_undefined() => Some(input_bytes(k, v1, ctx)?),
        _ => None,
    };
    let mut data = Vec::new();
    if let Some(parts) = args.get(2).and_then(JsValue::as_object) {
        let len = parts.get(js_string!("length"), ctx)?.to_length(ctx)?;
        for i in 0..len {
            let part = parts.get(i, ctx)?;
            data.extend_from_slice(&input_bytes(&part, v1, ctx)?);
        }
    }
    let bytes = hash_bytes(&alg, key.as_deref(), &data)?;
    let encoded = match string_arg(args, 3, ctx)?.as_deref() {
        Some("hex") => crate::encoding::hex(&bytes),
        Some("base64") => crate::encoding::base64(&bytes, true, false),
        Some("base64url") => crate::encoding::base64(&bytes, false, true),
        // 1.0: a byte string; 2.0: bytes the prelude turns into a `Buffer`.
        None if v1 => return Ok(crate::buffer::encode_bytes(&bytes, "latin1")?.into()),
        None => return Ok(JsUint8Array::from_iter(bytes, ctx)?.into()),
        Some(other) => return Err(type_error(format!("unknown digest encoding `{other}`"))),
    };
    Ok(JsString::from(encoded).into())
}

/// `btoa(binaryString)`.
fn btoa(_this: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let text = args.first().cloned().unwrap_or_default().to_string(ctx)?;
    let mut bytes = Vec::with_capacity(text.len());
    for unit in text.iter() {
        let byte = u8::try_from(unit)
            .map_err(|_| type_error("btoa: the string has characters outside Latin-1"))?;
        bytes.push(byte);
    }
    Ok(JsString::from(crate::encoding::base64(&bytes, true, false)).into())
}

/// `atob(base64)`.
fn atob(_this: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let text = args
        .first()
        .cloned()
        .unwrap_or_default()
        .to_string(ctx)?
        .to_std_string_escaped();
    let cleaned: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let bytes = crate::encoding::base64_decode_lenient(&cleaned)
        .ok_or_else(|| type_error("atob: the string is not valid base64"))?;
    let units: Vec<u16> = bytes.into_iter().map(u16::from).collect();
    Ok(JsString::from(&units[..]).into())
}

fn kvs_store() -> JsResult<std::sync::Arc<crate::kvs::KvStore>> {
    crate::kvs::current()
        .ok_or_else(|| type_error("no KeyValueStore is associated with this function"))
}

/// `kvs.get(key, {format})`: a promise, rejected when the key does not exist (as CloudFront).
fn kvs_get(_this: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let store = kvs_store()?;
    let key = string_arg(args, 0, ctx)?.unwrap_or_default();
    let format = string_arg(args, 1, ctx)?.unwrap_or_else(|| "string".into());
    let Some(value) = store.get(&key) else {
        let error = JsNativeError::error().with_message(format!("Key {key} not found"));
        return Ok(JsPromise::reject(error, ctx)?.into());
    };
    let value: JsValue = match format.as_str() {
        "string" => JsString::from(value).into(),
        "json" => match serde_json::from_str::<serde_json::Value>(value) {
            Ok(json) => JsValue::from_json(&json, ctx)?,
            Err(e) => {
                let error = JsNativeError::syntax()
                    .with_message(format!("the value of {key} is not JSON: {e}"));
                return Ok(JsPromise::reject(error, ctx)?.into());
            }
        },
        "bytes" => JsUint8Array::from_iter(value.bytes(), ctx)?.into(),
        other => {
            return Err(type_error(format!(
                "unknown format `{other}`; use string, json or bytes"
            )));
        }
    };
    Ok(JsPromise::resolve(value, ctx)?.into())
}

fn kvs_exists(_this: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let store = kvs_store()?;
    let key = string_arg(args, 0, ctx)?.unwrap_or_default();
    Ok(JsPromise::resolve(store.get(&key).is_some(), ctx)?.into())
}

fn kvs_meta(_this: &JsValue, _args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let store = kvs_store()?;
    let millis = store
        .loaded_at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let when = crate::calendar::iso8601_millis(millis);
    let meta = serde_json::json!({
        "creationDateTime": when,
        "lastUpdatedDateTime": when,
        "keyCount": store.len(),
    });
    let value = JsValue::from_json(&meta, ctx)?;
    Ok(JsPromise::resolve(value, ctx)?.into())
}

/// `__verge_origin(kind, id, params)`: the three origin helpers of the `cloudfront` module.
/// Parameters are checked now, so a bad one throws at the call with the rule it broke.
fn choose_origin(_this: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let kind = string_arg(args, 0, ctx)?.unwrap_or_default();
    let id = string_arg(args, 1, ctx)?.unwrap_or_default();
    let params = crate::js_json::to_json(&args.get(2).cloned().unwrap_or_default(), ctx)?
        .unwrap_or(serde_json::Value::Null);
    let allowed = DECISIONS.with(|d| d.borrow().origin_allowed);
    if !allowed {
        return Err(type_error(
            "the origin can be changed only at viewer-request",
        ));
    }
    let choice = match kind.as_str() {
        "select" => crate::origin_choice::select(&id, &params),
        "update" => crate::origin_choice::update(&params),
        _ => crate::origin_choice::group(&params),
    }
    .map_err(type_error)?;
    DECISIONS.with(|d| d.borrow_mut().origin = Some(choice));
    Ok(JsValue::undefined())
}

fn log(_this: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    record_log(string_arg(args, 0, ctx)?.unwrap_or_default());
    Ok(JsValue::undefined())
}

/// Keep one `console.log` line of the running invocation, cut where the run's 10 KB end.
pub(crate) fn record_log(line: String) {
    DECISIONS.with(|d| {
        let mut d = d.borrow_mut();
        let room = MAX_LOG_BYTES.saturating_sub(d.logged);
        if room == 0 {
            return;
        }
        let mut end = line.len().min(room);
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        d.logged += end;
        d.logs.push(line[..end].to_owned());
    });
}

fn utf8_encode(_this: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let text = string_arg(args, 0, ctx)?.unwrap_or_default();
    Ok(JsUint8Array::from_iter(text.into_bytes(), ctx)?.into())
}

/// `__verge_utf8_decode(bytes, fatal, ignoreBOM, nullOnError)`.
fn utf8_decode(_this: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let input = args.first().cloned().unwrap_or_default();
    let bytes = crate::buffer::bytes_of(&input, ctx)?
        .ok_or_else(|| type_error("TextDecoder: the input must be an ArrayBuffer or a view"))?;
    let fatal = args.get(1).is_some_and(JsValue::to_boolean);
    let ignore_bom = args.get(2).is_some_and(JsValue::to_boolean);
    let null_on_error = args.get(3).is_some_and(JsValue::to_boolean);
    let body = match (ignore_bom, bytes.strip_prefix(&[0xEF, 0xBB, 0xBF])) {
        (false, Some(rest)) => rest,
        _ => &bytes[..],
    };
    let text = match std::str::from_utf8(body) {
        Ok(text) => text.to_owned(),
        Err(_) if null_on_error => return Ok(JsValue::null()),
        Err(e) if fatal => return Err(type_error(format!("TextDecoder: invalid UTF-8 ({e})"))),
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    Ok(JsString::from(text).into())
}

/// `request.rawQueryString()`: the query as the viewer sent it, `undefined` without a `?`.
fn raw_query(_this: &JsValue, _args: &[JsValue], _ctx: &mut Context) -> JsResult<JsValue> {
    Ok(DECISIONS.with(|d| {
        d.borrow()
            .raw_query
            .as_deref()
            .map_or_else(JsValue::undefined, |q| JsString::from(q).into())
    }))
}

fn memory(_this: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    note_memory(string_arg(args, 0, ctx)?.unwrap_or_default());
    Ok(JsValue::undefined())
}

/// Mark the running invocation as over its memory limit (`what` says which call was refused),
/// whether or not the function catches the error it is given.
pub(crate) fn note_memory(what: String) {
    DECISIONS.with(|d| d.borrow_mut().memory = Some(what));
}

fn log_data(_this: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let data = string_arg(args, 0, ctx)?.unwrap_or_default();
    DECISIONS.with(|d| d.borrow_mut().log_data = Some(data));
    Ok(JsValue::undefined())
}

/// A native function as boa calls it.
type Native = fn(&JsValue, &[JsValue], &mut Context) -> JsResult<JsValue>;

/// Register the natives and build the core of `runtime`, with the [`Part`]s the function's
/// `source` names (the rest wait for their first use: a `require`, an
/// `import` through [`HostModules`], a global's first read).
pub fn install(ctx: &mut Context, runtime: Runtime, source: &str) -> JsResult<()> {
    let v1 = runtime == Runtime::CloudfrontJs1;
    let edge = runtime == Runtime::LambdaEdge;
    let natives: [(&str, usize, Native); 12] = [
        ("__verge_kvs_get", 2, kvs_get),
        ("__verge_kvs_exists", 1, kvs_exists),
        ("__verge_kvs_meta", 0, kvs_meta),
        ("__verge_origin", 3, choose_origin),
        ("__verge_log_data", 1, log_data),
        ("__verge_memory", 1, memory),
        ("__verge_log", 1, log),
        ("__verge_utf8_encode", 1, utf8_encode),
        ("__verge_utf8_decode", 4, utf8_decode),
        ("__verge_digest", 5, digest),
        ("__verge_raw_query", 0, raw_query),
        ("__verge_cwt_validate", 2, crate::cwt::validate_native),
    ];
    let all = natives
        .into_iter()
        .chain(crate::buffer::NATIVES)
        .chain(crate::querystring::NATIVES);
    for (name, length, f) in all {
        ctx.register_global_callable(JsString::from(name), length, NativeFunction::from_fn_ptr(f))?;
    }
    ctx.register_global_callable(
        js_string!("__verge_install"),
        1,
        NativeFunction::from_copy_closure(move |_this, args, ctx| install_part(runtime, args, ctx)),
    )?;
    if !v1 {
        ctx.register_global_callable(js_string!("btoa"), 1, NativeFunction::from_fn_ptr(btoa))?;
        ctx.register_global_callable(js_string!("atob"), 1, NativeFunction::from_fn_ptr(atob))?;
    }
    let hidden = boa_engine::property::Attribute::empty();
    ctx.register_global_property(
        js_string!("__verge_max_elements"),
        MAX_ELEMENTS as u32,
        hidden,
    )?;
    ctx.register_global_property(js_string!("__verge_v1"), v1, hidden)?;
    crate::json_parse::install(ctx)?;
    crate::host_core::install(ctx, runtime)?;
    if edge {
        crate::edge_host::install(ctx)?;
    }
    for part in named_parts(runtime, source) {
        install_part(runtime, &[JsString::from(part.name).into()], ctx)?;
    }

    Ok(())
}

/// A host module as an ES module: the object is the `default` export and each of its own
/// properties a named export, so both `import crypto from 'crypto'` and
/// `import { createHash } from 'crypto'` work.
fn module_of(value: JsValue, ctx: &mut Context) -> JsResult<Module> {
    let obj = value
        .as_object()
        .ok_or_else(|| type_error("a host module is not an object"))?;
    let mut names = vec![js_string!("default")];
    for key in obj.own_property_keys(ctx)? {
        if let boa_engine::property::PropertyKey::String(name) = key
            && name != js_string!("default")
        {
            names.push(name);
        }
    }
    Ok(Module::synthetic(
        &names,
        boa_engine::module::SyntheticModuleInitializer::from_copy_closure_with_captures(
            |m, (obj, names), ctx| {
                for name in names {
                    let value = if *name == js_string!("default") {
                        obj.clone().into()
                    } else {
                        obj.get(name.clone(), ctx)?
                    };
                    m.set_export(name, value)?;
                }
                Ok(())
            },
            (obj.clone(), names.clone()),
        ),
        None,
        None,
        ctx,
    ))
}

/// The prototype given to `event.request`: `rawQueryString()` lives there, not on the object,
/// so what the handler returns is only the fields it set.
pub fn request_prototype(ctx: &mut Context) -> JsResult<boa_engine::JsObject> {
    let proto = boa_engine::JsObject::with_object_proto(ctx.intrinsics());
    let method = NativeFunction::from_fn_ptr(raw_query).to_js_function(ctx.realm());
    proto.define_property_or_throw(
        js_string!("rawQueryString"),
        boa_engine::property::PropertyDescriptor::builder()
            .value(method)
            .writable(true)
            .enumerable(false)
            .configurable(true),
        ctx,
    )?;
    Ok(proto)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_match_known_vectors() {
        let hex = |alg, key: Option<&[u8]>, data: &[u8]| {
            crate::encoding::hex(&hash_bytes(alg, key, data).unwrap())
        };
        assert_eq!(hex("md5", None, b"abc"), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            hex("sha1", None, b"abc"),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex("sha256", None, b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(hex("sha512", None, b"abc").starts_with("ddaf35a193617aba"));
        // RFC 4231 test case 2.
        assert_eq!(
            hex("sha256", Some(b"Jefe"), b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(hash_bytes("sha3", None, b"").is_err());
    }
}
