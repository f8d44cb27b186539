//! `Buffer` for the 2.0 runtime (spec §1.5): a `Uint8Array` subclass whose conversions
//! (strings in utf8, hex, base64, base64url, latin1 to bytes and back), comparisons and searches
//! run natively; the rest (reads and writes of numbers, `fill`, `copy`, `concat`) is a thin
//! layer over the typed-array built-ins, which are native already.
//!
//! [`bytes_of`] is also how the other host modules read a `Buffer` or any typed array.

use boa_engine::object::builtins::{JsArrayBuffer, JsTypedArray, JsUint8Array};
use boa_engine::{Context, JsNativeError, JsResult, JsString, JsValue};

use crate::encoding;
use crate::host::MAX_ELEMENTS;

/// The bytes of a typed array (any element type, as stored), a `DataView`'s window or an
/// `ArrayBuffer`; `None` for anything else.
pub fn bytes_of(value: &JsValue, ctx: &mut Context) -> JsResult<Option<Vec<u8>>> {
    let Some(object) = value.as_object() else {
        return Ok(None);
    };
    if let Ok(buffer) = JsArrayBuffer::from_object(object.clone()) {
        return Ok(buffer.to_vec());
    }
    let Ok(view) = JsTypedArray::from_object(object.clone()) else {
        return Ok(None);
    };
    let offset = view.byte_offset(ctx)?;
    let length = view.byte_length(ctx)?;
    let buffer = view.buffer(ctx)?;
    let Some(buffer) = buffer.as_object() else {
        return Ok(None);
    };
    let buffer = JsArrayBuffer::from_object(buffer.clone())?;
    Ok(buffer
        .data()
        .and_then(|data| data.get(offset..offset + length).map(<[u8]>::to_vec)))
}

fn type_error(message: impl Into<String>) -> boa_engine::JsError {
    JsNativeError::typ().with_message(message.into()).into()
}

fn required_bytes(value: &JsValue, what: &str, ctx: &mut Context) -> JsResult<Vec<u8>> {
    bytes_of(value, ctx)?.ok_or_else(|| type_error(format!("{what} must be a Buffer")))
}

/// Decode `text` in a (normalized) Node encoding.
pub fn decode_string(text: &JsString, encoding: &str) -> JsResult<Vec<u8>> {
    let bytes = match encoding {
        "utf8" => encoding::utf8_lossy(text).into_bytes(),
        "hex" => encoding::hex_decode_prefix(&encoding::utf8_lossy(text)),
        "base64" | "base64url" => encoding::base64_decode_forgiving(&encoding::utf8_lossy(text)),
        // Each UTF-16 unit's low byte, as Node does for latin1 and ascii.
        "latin1" | "ascii" => text.iter().map(|unit| unit as u8).collect(),
        other => return Err(type_error(format!("Unknown encoding: {other}"))),
    };
    Ok(bytes)
}

/// Encode bytes as a string in a (normalized) Node encoding.
pub fn encode_bytes(bytes: &[u8], encoding: &str) -> JsResult<JsString> {
    Ok(match encoding {
        "utf8" => JsString::from(String::from_utf8_lossy(bytes).as_ref()),
        "hex" => JsString::from(encoding::hex(bytes)),
        "base64" => JsString::from(encoding::base64(bytes, true, false)),
        "base64url" => JsString::from(encoding::base64(bytes, false, true)),
        "latin1" => JsString::from(&bytes.iter().map(|&b| u16::from(b)).collect::<Vec<_>>()[..]),
        "ascii" => JsString::from(
            &bytes
                .iter()
                .map(|&b| u16::from(b & 0x7f))
                .collect::<Vec<_>>()[..],
        ),
        other => return Err(type_error(format!("Unknown encoding: {other}"))),
    })
}

fn encoding_arg(args: &[JsValue], i: usize, ctx: &mut Context) -> JsResult<String> {
    match args.get(i) {
        Some(v) if !v.is_undefined() => Ok(encoding::utf8_escaped(&v.to_string(ctx)?)),
        _ => Ok("utf8".into()),
    }
}

/// `__verge_buf_from_string(text, encoding)`: a `Uint8Array` (the prelude makes it a `Buffer`).
fn from_string(_this: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let text = args.first().cloned().unwrap_or_default().to_string(ctx)?;
    if text.len() > MAX_ELEMENTS * 4 {
        return Err(JsNativeError::range()
            .with_message("Buffer.from: the string is over the memory limit")
            .into());
    }
    let encoding = encoding_arg(args, 1, ctx)?;
    let bytes = decode_string(&text, &encoding)?;
    Ok(JsUint8Array::from_iter(bytes, ctx)?.into())
}

/// `__verge_buf_to_string(buffer, encoding, start, end)`.
fn to_string(_this: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let bytes = required_bytes(&args.first().cloned().unwrap_or_default(), "this", ctx)?;
    let encoding = encoding_arg(args, 1, ctx)?;
    let bound = |i: usize, default: usize, ctx: &mut Context| -> JsResult<usize> {
        match args.get(i) {
            Some(v) if !v.is_undefined() => {
                let n = v.to_integer_or_infinity(ctx)?;
                Ok(match n {
                    boa_engine::value::IntegerOrInfinity::Integer(n) => {
                        n.clamp(0, bytes.len() as i64) as usize
                    }
                    boa_engine::value::IntegerOrInfinity::PositiveInfinity => bytes.len(),
                    boa_engine::value::IntegerOrInfinity::NegativeInfinity => 0,
                })
            }
            _ => Ok(default),
        }
    };
    let start = bound(2, 0, ctx)?;
    let end = bound(3, bytes.len(), ctx)?.max(start);
    Ok(encode_bytes(&bytes[start..end], &encoding)?.into())
}

/// `__verge_buf_compare(a, b)`: -1, 0 or 1, bytewise.
fn compare(_this: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let a = required_bytes(&args.first().cloned().unwrap_or_default(), "buf1", ctx)?;
    let b = required_bytes(&args.get(1).cloned().unwrap_or_default(), "buf2", ctx)?;
    Ok(JsValue::from(a.cmp(&b) as i32))
}

/// `__verge_buf_index(haystack, needle, from, last)`: the byte offset of `needle`, or -1.
fn index(_this: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let hay = required_bytes(&args.first().cloned().unwrap_or_default(), "this", ctx)?;
    let needle = required_bytes(&args.get(1).cloned().unwrap_or_default(), "value", ctx)?;
    let from = args.get(2).cloned().unwrap_or_default().to_i32(ctx)?;
    let last = args.get(3).is_some_and(JsValue::to_boolean);
    let len = hay.len() as i64;
    let from = if from < 0 {
        (len + i64::from(from)).max(0)
    } else {
        i64::from(from)
    } as usize;
    let found = if needle.is_empty() {
        Some(from.min(hay.len()))
    } else if last {
        let top = from.min(hay.len().saturating_sub(needle.len()));
        (0..=top)
            .rev()
            .find(|&i| hay.get(i..i + needle.len()) == Some(&needle[..]))
    } else {
        (from..hay.len()).find(|&i| hay.get(i..i + needle.len()) == Some(&needle[..]))
    };
    Ok(JsValue::from(found.map_or(-1, |i| i as i64) as f64))
}

/// A native function as boa calls it.
type Native = fn(&JsValue, &[JsValue], &mut Context) -> JsResult<JsValue>;

/// The natives behind [`PRELUDE`].
pub const NATIVES: [(&str, usize, Native); 4] = [
    ("__verge_buf_from_string", 2, from_string),
    ("__verge_buf_to_string", 4, to_string),
    ("__verge_buf_compare", 2, compare),
    ("__verge_buf_index", 4, index),
];

/// The JavaScript half: the `Buffer` class over the natives. Installs `globalThis.Buffer`, and
/// the hidden `__verge_buffer_class` (what `import { Buffer } from 'buffer'` gives, whatever
/// the function does to the global) and `__verge_adopt_buffer`.
pub const PRELUDE: &str = r#"
(function () {
    var LIMIT = __verge_max_elements;
    // No prototype: `constructor` or `toString` is no encoding.
    var ENCODINGS = Object.assign(Object.create(null), { 'utf8': 'utf8', 'utf-8': 'utf8',
        'hex': 'hex', 'base64': 'base64', 'base64url': 'base64url', 'latin1': 'latin1',
        'binary': 'latin1', 'ascii': 'ascii' });
    function encodingOf(enc) {
        if (enc === undefined || enc === null) { return 'utf8'; }
        // The name as usually written first: lower-casing costs a call.
        var e = typeof enc === 'string' ? ENCODINGS[enc] : undefined;
        if (e === undefined) { e = ENCODINGS[String(enc).toLowerCase()]; }
        if (e === undefined) { throw new TypeError('Unknown encoding: ' + enc); }
        return e;
    }
    function size(n) {
        if (typeof n !== 'number' || !(n >= 0) || n !== Math.floor(n)) {
            throw new RangeError('The "size" argument must be a non-negative integer. Received ' + n);
        }
        if (n > LIMIT) {
            __verge_memory('Buffer of ' + n + ' bytes');
            throw new RangeError('Buffer of ' + n + ' bytes is over the memory limit (' + LIMIT + ')');
        }
        return n;
    }
    function outOfRange(what, value) {
        var e = new RangeError('The value of "' + what + '" is out of range. Received ' + value);
        e.code = 'ERR_OUT_OF_RANGE';
        return e;
    }
    class Buffer extends Uint8Array {}
    function adopt(bytes) { return Object.setPrototypeOf(bytes, Buffer.prototype); }
    function from(value, encodingOrOffset, length) {
        if (typeof value === 'string') {
            return adopt(__verge_buf_from_string(value, encodingOf(encodingOrOffset)));
        }
        if (value instanceof ArrayBuffer) {
            var offset = encodingOrOffset === undefined ? 0 : Number(encodingOrOffset);
            var count = length === undefined ? value.byteLength - offset : Number(length);
            if (offset < 0 || offset > value.byteLength) { throw outOfRange('offset', offset); }
            if (count < 0 || offset + count > value.byteLength) { throw outOfRange('length', count); }
            return adopt(new Uint8Array(value, offset, count));
        }
        if (ArrayBuffer.isView(value)) {
            var copy = new Uint8Array(size(value.length));
            copy.set(value);
            return adopt(copy);
        }
        if (value !== null && typeof value === 'object') {
            if (value.type === 'Buffer' && Array.isArray(value.data)) { return from(value.data); }
            if (typeof value.length === 'number') {
                var bytes = new Uint8Array(size(value.length >>> 0));
                for (var i = 0; i < bytes.length; i++) { bytes[i] = Number(value[i]) & 255; }
                return adopt(bytes);
            }
            var primitive = typeof value.valueOf === 'function' ? value.valueOf() : value;
            if (primitive !== value && primitive !== null && primitive !== undefined) {
                return from(primitive, encodingOrOffset, length);
            }
        }
        throw new TypeError('The first argument must be a string, Buffer, ArrayBuffer, Array, ' +
            'or array-like object. Received ' + (value === null ? 'null' : typeof value));
    }
    function bytesOf(value, enc) {
        if (typeof value === 'string') { return from(value, enc); }
        if (ArrayBuffer.isView(value)) { return value; }
        throw new TypeError('The "value" argument must be a string, Buffer or Uint8Array');
    }
    var statics = {
        from: from,
        alloc: function (n, fill, enc) {
            var buf = adopt(new Uint8Array(size(n)));
            if (fill !== undefined && fill !== 0 && n > 0) { buf.fill(fill, 0, n, enc); }
            return buf;
        },
        allocUnsafe: function (n) { return adopt(new Uint8Array(size(n))); },
        allocUnsafeSlow: function (n) { return adopt(new Uint8Array(size(n))); },
        byteLength: function (value, enc) {
            if (typeof value === 'string') { return __verge_buf_from_string(value, encodingOf(enc)).length; }
            if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) { return value.byteLength; }
            throw new TypeError('The "string" argument must be a string, Buffer, or ArrayBuffer');
        },
        compare: function (a, b) { return __verge_buf_compare(a, b); },
        concat: function (list, totalLength) {
            if (!Array.isArray(list)) { throw new TypeError('The "list" argument must be an Array'); }
            var total = 0, i;
            for (i = 0; i < list.length; i++) {
                if (!ArrayBuffer.isView(list[i])) {
                    throw new TypeError('The "list[' + i + ']" argument must be a Buffer or Uint8Array');
                }
                total += list[i].length;
            }
            if (totalLength !== undefined) { total = Number(totalLength); }
            var out = adopt(new Uint8Array(size(total)));
            var at = 0;
            for (i = 0; i < list.length && at < total; i++) {
                var part = list[i].length > total - at ? list[i].subarray(0, total - at) : list[i];
                out.set(part, at);
                at += part.length;
            }
            return out;
        },
        isBuffer: function (value) { return value instanceof Buffer; },
        isEncoding: function (enc) {
            return typeof enc === 'string' && ENCODINGS[enc.toLowerCase()] !== undefined;
        }
    };
    Object.keys(statics).forEach(function (name) {
        Object.defineProperty(Buffer, name, { value: statics[name], writable: true, configurable: true });
    });
    var fillBytes = Uint8Array.prototype.fill;
    var indexByte = Uint8Array.prototype.indexOf;
    var lastIndexByte = Uint8Array.prototype.lastIndexOf;
    function checkOffset(buf, offset, width) {
        if (offset === undefined) { offset = 0; }
        if (typeof offset !== 'number' || offset !== Math.floor(offset)) {
            throw new TypeError('The "offset" argument must be an integer. Received ' + offset);
        }
        if (offset < 0 || offset + width > buf.length) { throw outOfRange('offset', offset); }
        return offset;
    }
    function view(buf) { return new DataView(buf.buffer, buf.byteOffset, buf.length); }
    function search(buf, value, byteOffset, enc, last) {
        if (typeof byteOffset === 'string') { enc = byteOffset; byteOffset = undefined; }
        if (typeof value === 'number') {
            var from = byteOffset === undefined ? (last ? buf.length - 1 : 0) : Number(byteOffset);
            return (last ? lastIndexByte : indexByte).call(buf, value & 255, from);
        }
        var start = byteOffset === undefined ? (last ? buf.length : 0) : Number(byteOffset);
        return __verge_buf_index(buf, bytesOf(value, enc), start, last);
    }
    var methods = {
        toString: function (enc, start, end) {
            return __verge_buf_to_string(this, encodingOf(enc), start, end);
        },
        toJSON: function () { return { type: 'Buffer', data: Array.prototype.slice.call(this) }; },
        equals: function (other) { return __verge_buf_compare(this, other) === 0; },
        compare: function (target, tStart, tEnd, sStart, sEnd) {
            var t = target.subarray(tStart || 0, tEnd === undefined ? target.length : tEnd);
            var s = this.subarray(sStart || 0, sEnd === undefined ? this.length : sEnd);
            return __verge_buf_compare(s, t);
        },
        copy: function (target, tStart, sStart, sEnd) {
            tStart = tStart || 0; sStart = sStart || 0;
            if (sEnd === undefined) { sEnd = this.length; }
            var n = Math.max(0, Math.min(sEnd - sStart, target.length - tStart));
            if (n > 0) { target.set(this.subarray(sStart, sStart + n), tStart); }
            return n;
        },
        fill: function (value, offset, end, enc) {
            if (typeof offset === 'string') { enc = offset; offset = 0; end = this.length; }
            if (typeof end === 'string') { enc = end; end = this.length; }
            offset = offset === undefined ? 0 : offset;
            end = end === undefined ? this.length : end;
            if (offset < 0 || end > this.length) { throw outOfRange('offset', offset); }
            if (typeof value === 'number' || typeof value === 'boolean') {
                return fillBytes.call(this, Number(value) & 255, offset, end);
            }
            var pattern = bytesOf(value, enc);
            if (pattern.length === 0) { return fillBytes.call(this, 0, offset, end); }
            for (var i = offset, j = 0; i < end; i++, j = (j + 1) % pattern.length) {
                this[i] = pattern[j];
            }
            return this;
        },
        includes: function (value, byteOffset, enc) { return search(this, value, byteOffset, enc, false) !== -1; },
        indexOf: function (value, byteOffset, enc) { return search(this, value, byteOffset, enc, false); },
        lastIndexOf: function (value, byteOffset, enc) { return search(this, value, byteOffset, enc, true); },
        slice: function (start, end) { return this.subarray(start, end); },
        swap16: function () { return swap(this, 2); },
        swap32: function () { return swap(this, 4); },
        swap64: function () { return swap(this, 8); },
        write: function (string, offset, length, enc) {
            if (typeof offset === 'string') { enc = offset; offset = 0; length = undefined; }
            else if (typeof length === 'string') { enc = length; length = undefined; }
            offset = offset === undefined ? 0 : offset;
            if (offset < 0 || offset > this.length) { throw outOfRange('offset', offset); }
            var bytes = from(String(string), enc);
            var n = Math.min(bytes.length, this.length - offset, length === undefined ? Infinity : length);
            this.set(bytes.subarray(0, n), offset);
            return n;
        },
        readIntBE: function (offset, width) { return readInt(this, offset, width, false, true); },
        readIntLE: function (offset, width) { return readInt(this, offset, width, true, true); },
        readUIntBE: function (offset, width) { return readInt(this, offset, width, false, false); },
        readUIntLE: function (offset, width) { return readInt(this, offset, width, true, false); },
        writeIntBE: function (value, offset, width) { return writeInt(this, value, offset, width, false); },
        writeIntLE: function (value, offset, width) { return writeInt(this, value, offset, width, true); },
        writeUIntBE: function (value, offset, width) { return writeInt(this, value, offset, width, false); },
        writeUIntLE: function (value, offset, width) { return writeInt(this, value, offset, width, true); }
    };
    function swap(buf, width) {
        if (buf.length % width !== 0) {
            throw new RangeError('Buffer size must be a multiple of ' + (width * 8) + '-bits');
        }
        for (var i = 0; i < buf.length; i += width) {
            for (var a = i, b = i + width - 1; a < b; a++, b--) {
                var t = buf[a]; buf[a] = buf[b]; buf[b] = t;
            }
        }
        return buf;
    }
    function readInt(buf, offset, width, little, signed) {
        if (!(width >= 1 && width <= 6)) { throw outOfRange('byteLength', width); }
        offset = checkOffset(buf, offset, width);
        var value = 0;
        for (var i = 0; i < width; i++) {
            value = value * 256 + buf[offset + (little ? width - 1 - i : i)];
        }
        var top = Math.pow(2, 8 * width);
        return signed && value >= top / 2 ? value - top : value;
    }
    function writeInt(buf, value, offset, width, little) {
        if (!(width >= 1 && width <= 6)) { throw outOfRange('byteLength', width); }
        offset = checkOffset(buf, offset, width);
        var top = Math.pow(2, 8 * width);
        var v = ((Math.trunc(Number(value)) % top) + top) % top;
        for (var i = 0; i < width; i++) {
            buf[offset + (little ? i : width - 1 - i)] = v % 256;
            v = Math.floor(v / 256);
        }
        return offset + width;
    }
    // readUInt16BE, writeFloatLE, …: one DataView accessor each; `UInt` names with `Uint` aliases.
    [['Int8', 'Int8', 1], ['UInt8', 'Uint8', 1], ['Int16', 'Int16', 2], ['UInt16', 'Uint16', 2],
     ['Int32', 'Int32', 4], ['UInt32', 'Uint32', 4], ['Float', 'Float32', 4], ['Double', 'Float64', 8]
    ].forEach(function (t) {
        var name = t[0], kind = t[1], width = t[2];
        var suffixes = width === 1 ? [''] : ['BE', 'LE'];
        suffixes.forEach(function (suffix) {
            var little = suffix === 'LE';
            var read = function (offset) {
                offset = checkOffset(this, offset, width);
                return view(this)['get' + kind](offset, little);
            };
            var write = function (value, offset) {
                offset = checkOffset(this, offset, width);
                view(this)['set' + kind](offset, Number(value), little);
                return offset + width;
            };
            methods['read' + name + suffix] = read;
            methods['write' + name + suffix] = write;
            if (name.indexOf('UInt') === 0) {
                methods['readUint' + name.slice(4) + suffix] = read;
                methods['writeUint' + name.slice(4) + suffix] = write;
            }
        });
    });
    methods.readUintBE = methods.readUIntBE; methods.readUintLE = methods.readUIntLE;
    methods.writeUintBE = methods.writeUIntBE; methods.writeUintLE = methods.writeUIntLE;
    Object.keys(methods).forEach(function (name) {
        Object.defineProperty(Buffer.prototype, name, { value: methods[name], writable: true, configurable: true });
    });
    __verge_global('Buffer', Buffer);
    Object.defineProperty(globalThis, '__verge_buffer_class', { value: Buffer });
    Object.defineProperty(globalThis, '__verge_adopt_buffer', { value: adopt });
})();
"#;
