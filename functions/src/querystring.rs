//! The `querystring` module (both runtimes, spec §1.5), native: `parse`/`decode`,
//! `stringify`/`encode`, `escape`, `unescape`, with Node's rules — repeated keys become arrays,
//! `+` is a space when parsing, malformed escapes are kept as they are and invalid UTF-8
//! becomes U+FFFD, `maxKeys` (default 1000, 0 = unlimited), arrays expand to repeated keys and
//! values that are not strings, finite numbers or booleans become `name=`.

use boa_engine::object::builtins::JsArray;
use boa_engine::property::PropertyKey;
use boa_engine::{Context, JsNativeError, JsObject, JsResult, JsString, JsValue, js_string};

use crate::encoding::utf8_escaped;

/// Percent-encode as `encodeURIComponent` does (Node's `querystring.escape`); a lone surrogate
/// is a `URIError`, as there.
pub fn escape(text: &JsString) -> JsResult<String> {
    let decoded = String::from_utf16(&text.iter().collect::<Vec<_>>())
        .map_err(|_| JsNativeError::uri().with_message("URI malformed"))?;
    let mut out = String::with_capacity(decoded.len());
    for byte in decoded.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    Ok(out)
}

/// Percent-decode leniently (Node's `unescapeBuffer`): `%` not followed by two hex digits is
/// kept, the bytes are read as UTF-8 with U+FFFD for invalid sequences; `+` becomes a space
/// when `plus_is_space`.
pub fn unescape(text: &str, plus_is_space: bool) -> String {
    String::from_utf8_lossy(&unescape_bytes(text, plus_is_space)).into_owned()
}

/// [`unescape`]'s bytes, before they are read as UTF-8.
pub fn unescape_bytes(text: &str, plus_is_space: bool) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let hex = |c: u8| (c as char).to_digit(16);
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            other => out.push(other),
        }
        i += 1;
    }
    out
}

fn string_or(args: &[JsValue], i: usize, default: &str, ctx: &mut Context) -> JsResult<String> {
    match args.get(i) {
        Some(v) if !v.is_undefined() && !v.is_null() => {
            let s = utf8_escaped(&v.to_string(ctx)?);
            Ok(if s.is_empty() { default.to_owned() } else { s })
        }
        _ => Ok(default.to_owned()),
    }
}

/// A custom `decodeURIComponent`/`encodeURIComponent` from the options argument.
fn option_function(args: &[JsValue], name: &str, ctx: &mut Context) -> JsResult<Option<JsObject>> {
    let Some(options) = args.get(3).and_then(JsValue::as_object) else {
        return Ok(None);
    };
    let f = options.get(JsString::from(name), ctx)?;
    Ok(f.as_callable())
}

/// `querystring.parse(str, sep, eq, {decodeURIComponent, maxKeys})`.
fn parse(_this: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let result = JsObject::with_null_proto();
    let text = match args.first() {
        Some(v) if v.is_string() => utf8_escaped(&v.to_string(ctx)?),
        _ => return Ok(result.into()),
    };
    let sep = string_or(args, 1, "&", ctx)?;
    let eq = string_or(args, 2, "=", ctx)?;
    let max_keys = match args.get(3).and_then(JsValue::as_object) {
        Some(options) => {
            let v = options.get(js_string!("maxKeys"), ctx)?;
            if v.is_number() {
                v.to_u32(ctx)? as usize
            } else {
                1000
            }
        }
        None => 1000,
    };
    let decoder = option_function(args, "decodeURIComponent", ctx)?;
    let decode = |piece: &str, ctx: &mut Context| -> JsResult<JsValue> {
        match &decoder {
            None => Ok(JsString::from(unescape(piece, true)).into()),
            Some(f) => {
                let spaced = piece.replace('+', " ");
                match f.call(
                    &JsValue::undefined(),
                    &[JsString::from(spaced.as_str()).into()],
                    ctx,
                ) {
                    Ok(v) => Ok(v),
                    // Node falls back to its own decoder when the custom one throws.
                    Err(_) => Ok(JsString::from(unescape(piece, true)).into()),
                }
            }
        }
    };
    let mut keys = 0usize;
    for pair in text.split(sep.as_str()) {
        if pair.is_empty() {
            continue;
        }
        if max_keys != 0 && keys >= max_keys {
            break;
        }
        keys += 1;
        let (name, value) = pair.split_once(eq.as_str()).unwrap_or((pair, ""));
        let name = decode(name, ctx)?.to_string(ctx)?;
        let value = decode(value, ctx)?;
        let key = PropertyKey::from(name);
        let existing = result.get(key.clone(), ctx)?;
        let merged: JsValue = if existing.is_undefined() {
            value
        } else if let Some(array) = existing.as_object().filter(|o| o.is_array()) {
            JsArray::from_object(array.clone())?.push(value, ctx)?;
            continue;
        } else {
            JsArray::from_iter([existing, value], ctx).into()
        };
        result.create_data_property_or_throw(key, merged, ctx)?;
    }
    Ok(result.into())
}

/// One value as `stringify` writes it.
fn primitive_text(value: &JsValue, ctx: &mut Context) -> JsResult<Option<JsString>> {
    if value.is_string() || value.is_boolean() || value.is_bigint() {
        return Ok(Some(value.to_string(ctx)?));
    }
    if let Some(n) = value.as_number() {
        return Ok(if n.is_finite() {
            Some(value.to_string(ctx)?)
        } else {
            None
        });
    }
    Ok(None)
}

/// `querystring.stringify(obj, sep, eq, {encodeURIComponent})`, with `Object.keys(obj)` last.
fn stringify(_this: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let Some(object) = args.first().and_then(JsValue::as_object) else {
        return Ok(js_string!().into());
    };
    let sep = string_or(args, 1, "&", ctx)?;
    let eq = string_or(args, 2, "=", ctx)?;
    let encoder = option_function(args, "encodeURIComponent", ctx)?;
    let encode = |text: JsString, ctx: &mut Context| -> JsResult<String> {
        match &encoder {
            None => escape(&text),
            Some(f) => Ok(utf8_escaped(
                &f.call(&JsValue::undefined(), &[text.into()], ctx)?
                    .to_string(ctx)?,
            )),
        }
    };
    // The own enumerable string keys, as `Object.keys` gives them (the prelude passes them).
    let keys = match args.get(4).and_then(JsValue::as_object) {
        Some(keys) => JsArray::from_object(keys.clone())?,
        None => return Ok(js_string!().into()),
    };
    let mut parts = Vec::new();
    for i in 0..keys.length(ctx)? {
        let key = keys.get(i, ctx)?.to_string(ctx)?;
        let name = encode(key.clone(), ctx)?;
        let value = object.get(key, ctx)?;
        let values: Vec<JsValue> = match value.as_object().filter(|o| o.is_array()) {
            Some(array) => {
                let array = JsArray::from_object(array.clone())?;
                let len = array.length(ctx)?;
                (0..len)
                    .map(|i| array.get(i, ctx))
                    .collect::<JsResult<_>>()?
            }
            None => vec![value],
        };
        for v in values {
            let text = match primitive_text(&v, ctx)? {
                Some(t) => encode(t, ctx)?,
                None => String::new(),
            };
            parts.push(format!("{name}{eq}{text}"));
        }
    }
    Ok(JsString::from(parts.join(&sep)).into())
}

fn escape_native(_this: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let text = args.first().cloned().unwrap_or_default().to_string(ctx)?;
    Ok(JsString::from(escape(&text)?).into())
}

fn unescape_native(_this: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let text = args.first().cloned().unwrap_or_default().to_string(ctx)?;
    Ok(JsString::from(unescape(&utf8_escaped(&text), false)).into())
}

/// A native function as boa calls it.
type Native = fn(&JsValue, &[JsValue], &mut Context) -> JsResult<JsValue>;

/// The natives behind the module object the host prelude builds.
pub const NATIVES: [(&str, usize, Native); 4] = [
    ("__verge_qs_parse", 4, parse),
    ("__verge_qs_stringify", 5, stringify),
    ("__verge_qs_escape", 1, escape_native),
    ("__verge_qs_unescape", 1, unescape_native),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape_is_lenient_like_node() {
        assert_eq!(unescape("a%20b+c", true), "a b c");
        assert_eq!(unescape("a%20b+c", false), "a b+c");
        assert_eq!(unescape("100%", true), "100%");
        assert_eq!(unescape("%zz%4", true), "%zz%4");
        assert_eq!(unescape("%C3%A9", true), "é");
        assert_eq!(unescape("%FF", true), "\u{FFFD}");
    }

    #[test]
    fn escape_matches_encode_uri_component() {
        let escaped = escape(&JsString::from("a b&c=d/é!*'()~")).unwrap();
        assert_eq!(escaped, "a%20b%26c%3Dd%2F%C3%A9!*'()~");
        let lone = JsString::from(&[0xD800u16][..]);
        assert!(escape(&lone).is_err());
    }
}
