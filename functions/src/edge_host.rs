//! Host additions of the edge tier (Lambda@Edge runs on Node.js): `setTimeout`/`clearTimeout`
//! (`setImmediate`), `console.log/info/warn/error` with Node-style formatting, the Node-style
//! `crypto` extras (`randomBytes`, `randomUUID`, `timingSafeEqual`), the `url` module (`URL`,
//! `URLSearchParams`, `parse`, `format`) and the `util` module (`format`, `inspect`,
//! `promisify`, `TextEncoder`/`TextDecoder`), `fetch`, the `require`/`import` names with a
//! `node:` prefix, and the helpers the runtime calls an invocation through. The console (native)
//! is all a context gets at load; the rest are [`Part`]s, evaluated when a function first needs
//! them (the console's formatting on its first line, the timers on the first `setTimeout`).
//!
//! Timers are plain data on the Rust side (deadline and id, in this thread's loop state); their
//! callbacks stay in a JS map. No boa value is ever held outside the context, so nothing of
//! the engine outlives it in thread-local storage.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use boa_engine::object::builtins::JsUint8Array;
use boa_engine::object::{FunctionObjectBuilder, IntegrityLevel, JsObject};
use boa_engine::{Context, JsNativeError, JsResult, JsString, JsValue, NativeFunction, js_string};

use crate::host::Part;

/// The timers of the invocation running on this thread.
#[derive(Default)]
struct Timers {
    next_id: u32,
    due: BTreeSet<(Instant, u32)>,
}

thread_local! {
    static TIMERS: RefCell<Timers> = RefCell::new(Timers::default());
    /// Whether JavaScript may hold timer or fetch callbacks since the last [`take_callbacks_made`].
    static CALLBACKS_MADE: Cell<bool> = const { Cell::new(false) };
}

/// A timer or a fetch was started: its callback sits in a JS map until `__verge_reset`.
pub(crate) fn note_callback_made() {
    CALLBACKS_MADE.with(|c| c.set(true));
}

/// Whether a timer or a fetch was started since the last call (so `__verge_reset` has
/// something to drop); the mark is cleared. An invocation that started neither skips the reset,
/// a call into JavaScript (~4.7k instructions).
pub fn take_callbacks_made() -> bool {
    CALLBACKS_MADE.with(|c| c.replace(false))
}

/// The earliest timer, if any.
pub fn next_timer() -> Option<Instant> {
    TIMERS.with(|t| t.borrow().due.first().map(|(at, _)| *at))
}

/// Take the ids of the timers due at `now`, earliest first.
pub fn take_due(now: Instant) -> Vec<u32> {
    TIMERS.with(|t| {
        let mut t = t.borrow_mut();
        let mut fired = Vec::new();
        while let Some(&(at, id)) = t.due.first() {
            if at > now {
                break;
            }
            t.due.pop_first();
            fired.push(id);
        }
        fired
    })
}

/// Forget every timer (between invocations: a timer left running does not fire later).
pub fn clear_timers() {
    TIMERS.with(|t| t.borrow_mut().due.clear());
}

/// The longest timer delay Node accepts (larger ones fire after 1 ms, as in Node).
const MAX_DELAY_MS: f64 = 2_147_483_647.0;

fn timer_add(_this: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    note_callback_made();
    let ms = args.first().map_or(Ok(0.0), |v| v.to_number(ctx))?;
    let ms = if ms.is_finite() && (1.0..=MAX_DELAY_MS).contains(&ms) {
        ms
    } else {
        1.0
    };
    let at = Instant::now() + Duration::from_micros((ms * 1000.0) as u64);
    let id = TIMERS.with(|t| {
        let mut t = t.borrow_mut();
        t.next_id = t.next_id.wrapping_add(1).max(1);
        let id = t.next_id;
        t.due.insert((at, id));
        id
    });
    Ok(JsValue::from(id))
}

fn timer_cancel(_this: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let id = args.first().map_or(Ok(0), |v| v.to_u32(ctx))?;
    TIMERS.with(|t| t.borrow_mut().due.retain(|(_, i)| *i != id));
    Ok(JsValue::undefined())
}

/// The most random bytes one call may ask for (Node's limit is larger; this is a memory bound).
const MAX_RANDOM_BYTES: usize = 1 << 20;

fn random_bytes(_this: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let n = args.first().map_or(Ok(0.0), |v| v.to_number(ctx))?;
    if !(0.0..=MAX_RANDOM_BYTES as f64).contains(&n) || n.fract() != 0.0 {
        return Err(JsNativeError::range()
            .with_message(format!(
                "randomBytes: the size must be a whole number from 0 to {MAX_RANDOM_BYTES}"
            ))
            .into());
    }
    let mut bytes = vec![0u8; n as usize];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).map_err(|_| {
        JsNativeError::error().with_message("randomBytes: the system randomness source failed")
    })?;
    Ok(JsUint8Array::from_iter(bytes, ctx)?.into())
}

/// `timingSafeEqual(a, b)`: compares every byte whatever the first difference.
fn timing_safe_equal(_this: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let arg = |i: usize, ctx: &mut Context| -> JsResult<Vec<u8>> {
        let v = args.get(i).cloned().unwrap_or_default();
        crate::buffer::bytes_of(&v, ctx)?.ok_or_else(|| {
            JsNativeError::typ()
                .with_message("timingSafeEqual: both arguments must be Buffers or typed arrays")
                .into()
        })
    };
    let (a, b) = (arg(0, ctx)?, arg(1, ctx)?);
    if a.len() != b.len() {
        return Err(JsNativeError::range()
            .with_message("Input buffers must have the same byte length")
            .into());
    }
    let diff = a.iter().zip(&b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    Ok(JsValue::from(diff == 0))
}

/// A native function as boa calls it.
type Native = fn(&JsValue, &[JsValue], &mut Context) -> JsResult<JsValue>;

const NATIVES: [(&str, usize, Native); 6] = [
    ("__verge_fetch_start", 4, crate::edge_fetch::start),
    ("__verge_timer_add", 1, timer_add),
    ("__verge_timer_cancel", 1, timer_cancel),
    ("__verge_random_bytes", 1, random_bytes),
    ("__verge_timing_safe_equal", 2, timing_safe_equal),
    ("__verge_verify", 5, crate::signature::verify_native),
];

/// Register the edge natives, the Node-style console, and `__verge_reset`. The globals of the
/// [`PARTS`] (`url`, `util`, `fetch`, the timers, `crypto`'s Node extras) are left for their
/// first use by [`crate::host_core`].
pub fn install(ctx: &mut Context) -> JsResult<()> {
    for (name, length, f) in NATIVES {
        ctx.register_global_callable(JsString::from(name), length, NativeFunction::from_fn_ptr(f))?;
    }
    install_console(ctx)?;
    let reset = FunctionObjectBuilder::new(ctx.realm(), NativeFunction::from_fn_ptr(reset))
        .name(js_string!("reset"))
        .build();
    crate::host_core::hidden(
        &ctx.global_object(),
        js_string!("__verge_reset"),
        reset,
        ctx,
    )
}

/// `__verge_reset()`, called by the runtime after an invocation that started a timer or a
/// fetch: the callbacks those parts hold in JavaScript are dropped.
fn reset(_this: &JsValue, _args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let global = ctx.global_object();
    for (part, clear) in [
        ("__verge_part_timers", js_string!("__verge_timers_reset")),
        ("__verge_part_fetch", js_string!("__verge_fetch_reset")),
    ] {
        if global.has_own_property(JsString::from(part), ctx)?
            && let Some(clear) = global.get(clear, ctx)?.as_callable()
        {
            clear.call(&JsValue::undefined(), &[], ctx)?;
        }
    }
    Ok(JsValue::undefined())
}

/// `console` as Lambda's Node.js has it: one captured line per call, with the level column,
/// formatted as `util.format` does (the `format` part, installed on the first call).
fn install_console(ctx: &mut Context) -> JsResult<()> {
    let console = JsObject::with_object_proto(ctx.intrinsics());
    for (name, level) in [
        ("log", "INFO"),
        ("info", "INFO"),
        ("debug", "DEBUG"),
        ("trace", "TRACE"),
        ("warn", "WARN"),
        ("error", "ERROR"),
    ] {
        let native = NativeFunction::from_copy_closure(move |_, args, ctx| {
            crate::host::install_named(verge_config::Runtime::LambdaEdge, "format", ctx)?;
            let util = ctx.global_object().get(js_string!("__verge_util"), ctx)?;
            let format = util
                .as_object()
                .map(|util| util.get(js_string!("format"), ctx))
                .transpose()?
                .and_then(|f| f.as_callable())
                .ok_or_else(|| JsNativeError::typ().with_message("util.format is missing"))?;
            let line = format
                .call(&JsValue::undefined(), args, ctx)?
                .to_string(ctx)?;
            let line = crate::encoding::utf8_escaped(&line);
            crate::host::record_log(format!("{level}\t{line}"));
            Ok(JsValue::undefined())
        });
        let f = FunctionObjectBuilder::new(ctx.realm(), native)
            .name(JsString::from(name))
            .build();
        console.create_data_property_or_throw(JsString::from(name), f, ctx)?;
    }
    console.set_integrity_level(IntegrityLevel::Frozen, ctx)?;
    crate::host_core::open(&ctx.global_object(), js_string!("console"), console, ctx)
}

/// `util.format` / `util.inspect` / `util.promisify`, enough for log lines: what the console
/// formats with and the `util` module hands out (as the hidden `__verge_util`).
const FORMAT: &str = r#"
(function () {
    function inspect(value) {
        if (typeof value === 'string') { return "'" + value + "'"; }
        if (value instanceof Error) { return value.stack ? String(value.stack) : String(value); }
        if (typeof value === 'function') { return '[Function: ' + (value.name || 'anonymous') + ']'; }
        if (value === undefined || typeof value !== 'object' || value === null) { return String(value); }
        try { return JSON.stringify(value); } catch (e) { return '[object]'; }
    }
    function format(first) {
        var args = Array.prototype.slice.call(arguments);
        var out = '';
        var i = 1;
        if (typeof first === 'string') {
            out = first.replace(/%[sdifjoO%]/g, function (m) {
                if (m === '%%') { return '%'; }
                if (i >= args.length) { return m; }
                var a = args[i++];
                switch (m) {
                    case '%s': return typeof a === 'string' ? a : inspect(a);
                    case '%d': case '%i': return String(m === '%i' ? parseInt(a, 10) : Number(a));
                    case '%f': return String(parseFloat(a));
                    case '%j': try { return JSON.stringify(a); } catch (e) { return '[Circular]'; }
                    default: return inspect(a);
                }
            });
        } else {
            i = 0;
        }
        for (; i < args.length; i++) {
            var a = args[i];
            out += (out.length ? ' ' : '') + (typeof a === 'string' ? a : inspect(a));
        }
        return out;
    }
    function promisify(f) {
        return function () {
            var self = this, args = Array.prototype.slice.call(arguments);
            return new Promise(function (resolve, reject) {
                args.push(function (err, value) { if (err) { reject(err); } else { resolve(value); } });
                f.apply(self, args);
            });
        };
    }
    Object.defineProperty(globalThis, '__verge_util',
        { value: Object.freeze({ format: format, inspect: inspect, promisify: promisify }) });
})();
"#;

/// Timers: the callback stays here, the deadline goes to the host's event loop
/// (`__verge_timer_add`), which calls `__verge_fire(id)` when it is due.
const TIMERS_JS: &str = r#"
(function () {
    var hidden = function (name, value) { Object.defineProperty(globalThis, name, { value: value }); };
    var timers = new Map();
    function setTimeout(callback, ms) {
        if (typeof callback !== 'function') { throw new TypeError('The "callback" argument must be of type function'); }
        var args = Array.prototype.slice.call(arguments, 2);
        var id = __verge_timer_add(ms);
        timers.set(id, function () { callback.apply(undefined, args); });
        return id;
    }
    function clearTimeout(id) {
        if (timers.delete(id)) { __verge_timer_cancel(id); }
    }
    function setImmediate(callback) {
        var args = Array.prototype.slice.call(arguments, 1);
        return setTimeout.apply(undefined, [callback, 0].concat(args));
    }
    __verge_global('setTimeout', setTimeout);
    __verge_global('clearTimeout', clearTimeout);
    __verge_global('setImmediate', setImmediate);
    __verge_global('clearImmediate', clearTimeout);
    hidden('__verge_fire', function (id) {
        var f = timers.get(id);
        if (f) { timers.delete(id); f(); }
    });
    hidden('__verge_set_timeout', setTimeout);
    hidden('__verge_timers_reset', function () { timers.clear(); });
})();
"#;

/// `fetch`, `Headers` and `Response`: the request goes to the host (allow-list, caps,
/// timeouts); the answer comes back through `__verge_fetch_done`, called by the event loop.
const FETCH: &str = r#"
(function () {
    var fetches = new Map();
    var hidden = function (name, value) { Object.defineProperty(globalThis, name, { value: value }); };
    function Headers(init) {
        this._map = new Map();
        if (init === undefined || init === null) { return; }
        var self = this;
        if (init instanceof Headers) {
            init.forEach(function (v, k) { self.append(k, v); });
        } else if (Array.isArray(init)) {
            init.forEach(function (pair) { self.append(pair[0], pair[1]); });
        } else {
            Object.keys(init).forEach(function (k) { self.append(k, init[k]); });
        }
    }
    Headers.prototype.append = function (name, value) {
        var k = String(name).toLowerCase(), list = this._map.get(k);
        if (list) { list.push(String(value)); } else { this._map.set(k, [String(value)]); }
    };
    Headers.prototype.set = function (name, value) { this._map.set(String(name).toLowerCase(), [String(value)]); };
    Headers.prototype.get = function (name) {
        var list = this._map.get(String(name).toLowerCase());
        return list ? list.join(', ') : null;
    };
    Headers.prototype.has = function (name) { return this._map.has(String(name).toLowerCase()); };
    Headers.prototype['delete'] = function (name) { this._map['delete'](String(name).toLowerCase()); };
    Headers.prototype.forEach = function (callback, thisArg) {
        var self = this;
        Array.from(this._map.keys()).sort().forEach(function (k) { callback.call(thisArg, self.get(k), k, self); });
    };
    Headers.prototype.entries = function () {
        var out = [];
        this.forEach(function (v, k) { out.push([k, v]); });
        return out[Symbol.iterator]();
    };
    Headers.prototype.keys = function () { return Array.from(this.entries(), function (e) { return e[0]; })[Symbol.iterator](); };
    Headers.prototype.values = function () { return Array.from(this.entries(), function (e) { return e[1]; })[Symbol.iterator](); };
    Headers.prototype[Symbol.iterator] = Headers.prototype.entries;
    function Response(body, init) {
        init = init || {};
        this.status = init.status === undefined ? 200 : init.status;
        this.statusText = init.statusText === undefined ? '' : String(init.statusText);
        this.ok = this.status >= 200 && this.status < 300;
        this.headers = new Headers(init.headers);
        this.url = init.url || '';
        this.redirected = false;
        this.type = 'basic';
        this._body = body === undefined || body === null ? Buffer.alloc(0)
            : (typeof body === 'string' ? Buffer.from(body, 'utf8') : Buffer.from(body));
        this.bodyUsed = false;
    }
    Response.prototype._take = function () {
        if (this.bodyUsed) { return Promise.reject(new TypeError('Body is unusable: Body has already been read')); }
        this.bodyUsed = true;
        return Promise.resolve(this._body);
    };
    Response.prototype.text = function () { return this._take().then(function (b) { return b.toString('utf8'); }); };
    Response.prototype.json = function () { return this.text().then(function (t) { return JSON.parse(t); }); };
    Response.prototype.arrayBuffer = function () {
        return this._take().then(function (b) { return b.buffer.slice(b.byteOffset, b.byteOffset + b.length); });
    };
    function fetch(input, init) {
        return new Promise(function (resolve, reject) {
            init = init || {};
            var url = typeof input === 'string' ? input
                : (input && typeof input.href === 'string') ? input.href
                : (input && typeof input.url === 'string') ? input.url : String(input);
            var headers = new Headers(init.headers);
            var body = init.body;
            if (body === undefined || body === null) {
                body = undefined;
            } else if (__verge_has('url') && body instanceof __verge_url.URLSearchParams) {
                if (!headers.has('content-type')) { headers.set('content-type', 'application/x-www-form-urlencoded;charset=UTF-8'); }
                body = Buffer.from(body.toString(), 'utf8');
            } else if (typeof body === 'string') {
                if (!headers.has('content-type')) { headers.set('content-type', 'text/plain;charset=UTF-8'); }
                body = Buffer.from(body, 'utf8');
            } else if (!(body instanceof Uint8Array)) {
                body = Buffer.from(String(body), 'utf8');
            }
            var pairs = [];
            headers.forEach(function (v, k) { pairs.push([k, v]); });
            var id = __verge_fetch_start(url, String(init.method || 'GET').toUpperCase(), pairs, body);
            fetches.set(id, { resolve: resolve, reject: reject, url: url });
        });
    }
    __verge_global('fetch', fetch);
    __verge_global('Headers', Headers);
    __verge_global('Response', Response);
    hidden('__verge_fetch_reset', function () { fetches.clear(); });
    hidden('__verge_fetch_done', function (id, error, status, statusText, headers, body) {
        var call = fetches.get(id);
        if (!call) { return; }
        fetches['delete'](id);
        if (error !== null) {
            call.reject(new TypeError('fetch failed: ' + error));
            return;
        }
        call.resolve(new Response(body, { status: status, statusText: statusText, headers: headers, url: call.url }));
    });
})();
"#;

/// `crypto`: the common module plus Node's extras.
const CRYPTO_NODE: &str = r#"
(function () {
    function toBuffer(bytes) { return __verge_adopt(bytes); }
    function Verify(alg) { this._alg = String(alg); this._parts = []; }
    Verify.prototype.update = function (data, encoding) {
        this._parts.push(typeof data === 'string' ? Buffer.from(data, encoding || 'utf8') : data);
        return this;
    };
    Verify.prototype.verify = function (key, signature, encoding) {
        var sig = typeof signature === 'string' ? Buffer.from(signature, encoding || 'utf8') : signature;
        return __verge_verify(this._alg, keyOf(key), Buffer.concat(this._parts), sig, dsaEncoding(key));
    };
    function keyOf(key) {
        if (key !== null && typeof key === 'object' && !ArrayBuffer.isView(key) && key.key !== undefined) { key = key.key; }
        return typeof key === 'string' ? key : Buffer.from(key).toString('utf8');
    }
    function dsaEncoding(key) {
        return key !== null && typeof key === 'object' && key.dsaEncoding === 'ieee-p1363' ? 'ieee-p1363' : 'der';
    }
    __verge_install('crypto');
    var common = __verge_modules.crypto;
    __verge_modules.crypto = Object.freeze({
        createHash: common.createHash,
        createHmac: common.createHmac,
        randomBytes: function (n, callback) {
            var bytes = toBuffer(__verge_random_bytes(n));
            if (typeof callback === 'function') {
                __verge_install('timers');
                __verge_set_timeout(callback, 0, null, bytes);
                return undefined;
            }
            return bytes;
        },
        randomUUID: function () {
            var b = __verge_random_bytes(16);
            b[6] = (b[6] & 0x0f) | 0x40;
            b[8] = (b[8] & 0x3f) | 0x80;
            var h = toBuffer(b).toString('hex');
            return h.slice(0, 8) + '-' + h.slice(8, 12) + '-' + h.slice(12, 16) + '-' + h.slice(16, 20) + '-' + h.slice(20);
        },
        timingSafeEqual: __verge_timing_safe_equal,
        createVerify: function (alg) { return new Verify(alg); },
        verify: function (alg, data, key, signature) {
            return new Verify(alg === null || alg === undefined ? 'sha256' : alg).update(data).verify(key, signature);
        }
    });

})();
"#;

/// `url`: WHATWG `URL` and `URLSearchParams` (the parts handlers use), and the legacy
/// `parse`/`format`.
const URL: &str = r#"
(function () {
    function encode(s) { return encodeURIComponent(s).replace(/%20/g, '+'); }
    function decode(s) { return decodeURIComponent(String(s).replace(/\+/g, ' ')); }
    function URLSearchParams(init) {
        this._list = [];
        if (init === undefined || init === null) { return; }
        if (typeof init === 'object') {
            var self = this;
            if (init instanceof URLSearchParams) { init = init._list; }
            if (Array.isArray(init)) {
                init.forEach(function (pair) { self._list.push([String(pair[0]), String(pair[1])]); });
            } else {
                Object.keys(init).forEach(function (k) { self._list.push([k, String(init[k])]); });
            }
            return;
        }
        var text = String(init);
        if (text.charAt(0) === '?') { text = text.slice(1); }
        var list = this._list;
        text.split('&').forEach(function (part) {
            if (!part) { return; }
            var eq = part.indexOf('=');
            list.push(eq < 0 ? [decode(part), ''] : [decode(part.slice(0, eq)), decode(part.slice(eq + 1))]);
        });
    }
    URLSearchParams.prototype.get = function (name) {
        for (var i = 0; i < this._list.length; i++) { if (this._list[i][0] === name) { return this._list[i][1]; } }
        return null;
    };
    URLSearchParams.prototype.getAll = function (name) {
        return this._list.filter(function (p) { return p[0] === name; }).map(function (p) { return p[1]; });
    };
    URLSearchParams.prototype.has = function (name) { return this.get(name) !== null; };
    URLSearchParams.prototype.append = function (name, value) { this._list.push([String(name), String(value)]); this._changed(); };
    URLSearchParams.prototype.delete = function (name) {
        this._list = this._list.filter(function (p) { return p[0] !== name; }); this._changed();
    };
    URLSearchParams.prototype.set = function (name, value) {
        var found = false;
        this._list = this._list.filter(function (p) {
            if (p[0] !== name) { return true; }
            if (found) { return false; }
            found = true; p[1] = String(value); return true;
        });
        if (!found) { this._list.push([String(name), String(value)]); }
        this._changed();
    };
    URLSearchParams.prototype.sort = function () {
        this._list.sort(function (a, b) { return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0; }); this._changed();
    };
    URLSearchParams.prototype.forEach = function (f, thisArg) {
        var self = this;
        this._list.forEach(function (p) { f.call(thisArg, p[1], p[0], self); });
    };
    URLSearchParams.prototype.entries = function () { return this._list.map(function (p) { return [p[0], p[1]]; })[Symbol.iterator](); };
    URLSearchParams.prototype.keys = function () { return this._list.map(function (p) { return p[0]; })[Symbol.iterator](); };
    URLSearchParams.prototype.values = function () { return this._list.map(function (p) { return p[1]; })[Symbol.iterator](); };
    URLSearchParams.prototype[Symbol.iterator] = URLSearchParams.prototype.entries;
    URLSearchParams.prototype.toString = function () {
        return this._list.map(function (p) { return encode(p[0]) + '=' + encode(p[1]); }).join('&');
    };
    URLSearchParams.prototype._changed = function () {
        if (this._url) { var s = this.toString(); this._url._search = s ? '?' + s : ''; }
    };
    var URL_PATTERN = /^([a-zA-Z][a-zA-Z0-9+.-]*:)(?:\/\/(?:([^:@\/?#]*)(?::([^@\/?#]*))?@)?(\[[^\]]*\]|[^:\/?#]*)(?::(\d*))?)?([^?#]*)(\?[^#]*)?(#.*)?$/;
    var DEFAULT_PORTS = { 'http:': '80', 'https:': '443', 'ws:': '80', 'wss:': '443', 'ftp:': '21' };
    function URL(input, base) {
        var text = String(input).trim();
        var m = URL_PATTERN.exec(text);
        if (!m && base !== undefined) {
            var b = base instanceof URL ? base : new URL(base);
            if (text.charAt(0) === '/' && text.charAt(1) === '/') {
                m = URL_PATTERN.exec(b.protocol + text);
            } else if (text.charAt(0) === '/') {
                m = URL_PATTERN.exec(b.origin + text);
            } else if (text.charAt(0) === '?') {
                m = URL_PATTERN.exec(b.origin + b.pathname + text);
            } else if (text.charAt(0) === '#') {
                m = URL_PATTERN.exec(b.origin + b.pathname + b.search + text);
            } else {
                var dir = b.pathname.slice(0, b.pathname.lastIndexOf('/') + 1);
                m = URL_PATTERN.exec(b.origin + dir + text);
            }
        }
        if (!m) { var e = new TypeError('Invalid URL'); e.code = 'ERR_INVALID_URL'; e.input = text; throw e; }
        this._protocol = m[1].toLowerCase();
        this.username = m[2] || '';
        this.password = m[3] || '';
        this._hostname = (m[4] || '').toLowerCase();
        var port = m[5] || '';
        this._port = DEFAULT_PORTS[this._protocol] === port ? '' : port;
        var special = DEFAULT_PORTS[this._protocol] !== undefined;
        this._pathname = m[6] || (special ? '/' : '');
        this._search = m[7] && m[7].length > 1 ? m[7] : '';
        this.hash = m[8] && m[8].length > 1 ? m[8] : '';
        this._params = null;
    }
    function accessor(name, get, set) {
        Object.defineProperty(URL.prototype, name, { get: get, set: set, configurable: true });
    }
    accessor('protocol', function () { return this._protocol; }, function (v) { v = String(v); this._protocol = v.slice(-1) === ':' ? v : v + ':'; });
    accessor('hostname', function () { return this._hostname; }, function (v) { this._hostname = String(v).toLowerCase(); });
    accessor('port', function () { return this._port; }, function (v) { v = String(v); this._port = DEFAULT_PORTS[this._protocol] === v ? '' : v; });
    accessor('host', function () { return this._hostname + (this._port ? ':' + this._port : ''); }, function (v) {
        var parts = String(v).split(':'); this._hostname = parts[0].toLowerCase(); this.port = parts[1] || '';
    });
    accessor('origin', function () { return this._protocol + '//' + this.host; });
    accessor('pathname', function () { return this._pathname; }, function (v) { v = String(v); this._pathname = v.charAt(0) === '/' ? v : '/' + v; });
    accessor('search', function () { return this._search; }, function (v) {
        v = String(v); this._search = v === '' || v === '?' ? '' : (v.charAt(0) === '?' ? v : '?' + v);
        if (this._params) { this._params._list = new URLSearchParams(this._search)._list; }
    });
    accessor('searchParams', function () {
        if (!this._params) { this._params = new URLSearchParams(this._search); this._params._url = this; }
        return this._params;
    });
    accessor('href', function () {
        var auth = this.username ? this.username + (this.password ? ':' + this.password : '') + '@' : '';
        return this._protocol + '//' + auth + this.host + this._pathname + this._search + this.hash;
    }, function (v) { var u = new URL(v); for (var k in u) { if (Object.prototype.hasOwnProperty.call(u, k)) { this[k] = u[k]; } } });
    URL.prototype.toString = function () { return this.href; };
    URL.prototype.toJSON = function () { return this.href; };
    function legacyParse(text, parseQuery) {
        var u;
        try { u = new URL(text); } catch (e) { u = new URL(text, 'http://localhost'); u._relative = true; }
        var search = u.search;
        var query = search ? search.slice(1) : (parseQuery ? {} : null);
        if (parseQuery && search) { query = __verge_module('querystring').parse(search.slice(1)); }
        var relative = u._relative === true;
        return {
            protocol: relative ? null : u.protocol, slashes: !relative,
            auth: u.username ? u.username + (u.password ? ':' + u.password : '') : null,
            host: relative ? null : u.host, port: relative || !u.port ? null : u.port,
            hostname: relative ? null : u.hostname, hash: u.hash || null,
            search: search || (parseQuery ? '' : null), query: query,
            pathname: u.pathname, path: u.pathname + search,
            href: relative ? u.pathname + search + u.hash : u.href
        };
    }
    function legacyFormat(obj) {
        if (obj instanceof URL) { return obj.href; }
        var protocol = obj.protocol ? (obj.protocol.slice(-1) === ':' ? obj.protocol : obj.protocol + ':') : '';
        var host = obj.host || (obj.hostname ? obj.hostname + (obj.port ? ':' + obj.port : '') : '');
        var search = obj.search || (obj.query && typeof obj.query === 'object'
            ? '?' + __verge_module('querystring').stringify(obj.query) : '');
        if (search === '?') { search = ''; }
        return protocol + (host ? '//' + host : '') + (obj.pathname || '') + search + (obj.hash || '');
    }
    __verge_global('URL', URL);
    __verge_global('URLSearchParams', URLSearchParams);
    Object.defineProperty(globalThis, '__verge_url', {
        value: Object.freeze({ URL: URL, URLSearchParams: URLSearchParams })
    });
    __verge_modules.url = Object.freeze({ URL: URL, URLSearchParams: URLSearchParams, parse: legacyParse, format: legacyFormat });
})();
"#;

/// `util`: `format`, `inspect` and `promisify` (the console's own), the text coders, `types`.
const UTIL: &str = r#"
(function () {
    __verge_install('text');
    __verge_install('format');
    var util = __verge_util;
    __verge_modules.util = Object.freeze({
        format: util.format, inspect: util.inspect, promisify: util.promisify,
        TextEncoder: __verge_text.TextEncoder, TextDecoder: __verge_text.TextDecoder,
        types: Object.freeze({ isPromise: function (p) { return p instanceof Promise; } })
    });
})();
"#;

/// The parts only Lambda@Edge functions have (see [`crate::host::Part`]).
pub(crate) const PARTS: &[Part] = &[
    Part {
        name: "format",
        words: &["console"],
        source: FORMAT,
    },
    Part {
        name: "timers",
        words: &[
            "setTimeout",
            "clearTimeout",
            "setImmediate",
            "clearImmediate",
        ],
        source: TIMERS_JS,
    },
    Part {
        name: "crypto_node",
        words: &["crypto"],
        source: CRYPTO_NODE,
    },
    Part {
        name: "fetch",
        words: &["fetch", "Headers", "Response"],
        source: FETCH,
    },
    Part {
        name: "url",
        words: &["URL", "url"],
        source: URL,
    },
    Part {
        name: "util",
        words: &["util"],
        source: UTIL,
    },
];
