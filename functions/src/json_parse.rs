//! `JSON.parse` without the script compiler (DESIGN §3.1: replaced with a native, serde_json
//! backed version).
//!
//! boa 0.22's own `JSON.parse` checks the text with serde_json, then wraps it in parentheses,
//! parses it as a script, compiles the script to bytecode and runs it. Callgrind put that at
//! ~53k instructions for the claims of a small JWT, a fifth of the whole invocation of the
//! benchmark's JWT check. Here the value serde_json already parsed is written onto the heap
//! directly ([`crate::js_json::to_js`]).
//!
//! The same texts are accepted and give the same values: serde_json is also what boa checks
//! with, and a text it refuses (or one that is not valid UTF-16) throws the `SyntaxError` boa
//! throws, with the same message. A call with a reviver goes to boa's own function (kept for
//! it). Keys keep their order (serde_json's `preserve_order`), a repeated key keeps its first
//! place and its last value, integer-like keys enumerate first (boa's property keys),
//! `"__proto__"` is an own property, and numbers are read exactly (serde_json's
//! `float_roundtrip`; `-0` stays `-0`). The argument is converted with `ToString` once.

use boa_engine::object::FunctionObjectBuilder;
use boa_engine::{
    Context, JsArgs, JsNativeError, JsObject, JsResult, JsValue, NativeFunction, js_string,
};

use crate::js_json::{KeyCache, to_js};

thread_local! {
    /// Object keys this thread's `JSON.parse` calls made (the same claim names, call after
    /// call). A cache made and dropped per call cost ~1.2k instructions of a small JWT's parse;
    /// keys are plain strings, not tied to any context, and the cache is bounded.
    static KEYS: std::cell::RefCell<KeyCache> = std::cell::RefCell::new(KeyCache::default());
}

/// Put the native `JSON.parse` in place of boa's (kept, for what it alone handles).
pub fn install(ctx: &mut Context) -> JsResult<()> {
    let json = ctx
        .global_object()
        .get(js_string!("JSON"), ctx)?
        .as_object()
        .ok_or_else(|| JsNativeError::typ().with_message("the JSON object is missing"))?;
    let original = json
        .get(js_string!("parse"), ctx)?
        .as_object()
        .ok_or_else(|| JsNativeError::typ().with_message("JSON.parse is missing"))?;
    let native = NativeFunction::from_copy_closure_with_captures(parse, original);
    let parse = FunctionObjectBuilder::new(ctx.realm(), native)
        .name(js_string!("parse"))
        .length(2)
        .build();
    // The attributes of a built-in method: writable, not enumerable, configurable.
    crate::host_core::open(&json, js_string!("parse"), parse, ctx)
}

/// `JSON.parse(text, reviver)`.
fn parse(
    _this: &JsValue,
    args: &[JsValue],
    original: &JsObject,
    ctx: &mut Context,
) -> JsResult<JsValue> {
    if args.get_or_undefined(1).is_callable() {
        return original.call(&JsValue::undefined(), args, ctx);
    }
    let syntax = |e: &dyn std::fmt::Display| JsNativeError::syntax().with_message(e.to_string());
    let text = args
        .get_or_undefined(0)
        .to_string(ctx)?
        .to_std_string()
        .map_err(|e| syntax(&e))?;
    let value = serde_json::from_str::<serde_json::Value>(&text).map_err(|e| syntax(&e))?;
    // Writing the value runs no JavaScript, so nothing can come back here meanwhile; were the
    // cache busy all the same, a fresh one does the job.
    Ok(KEYS.with(|keys| match keys.try_borrow_mut() {
        Ok(mut keys) => to_js(&value, &mut keys, ctx),
        Err(_) => to_js(&value, &mut KeyCache::default(), ctx),
    }))
}

#[cfg(test)]
mod tests {
    use boa_engine::Source;

    use super::*;

    /// What `script` gives with boa's `JSON.parse` and with the native one, each as the JSON of
    /// a description that shows key order, number signs and thrown errors.
    fn both(script: &str) -> (String, String) {
        let run = |native: bool| {
            let mut ctx = Context::default();
            if native {
                install(&mut ctx).unwrap();
            }
            let wrapped = format!(
                "(function () {{ try {{ var v = ({script}); \
                   return JSON.stringify([typeof v, v, Object.keys(Object(v)), \
                     typeof v === 'number' && 1 / v < 0]); }} \
                 catch (e) {{ return e.name + ': ' + e.message; }} }})()"
            );
            ctx.eval(Source::from_bytes(&wrapped))
                .unwrap()
                .to_string(&mut ctx)
                .unwrap()
                .to_std_string_escaped()
        };
        (run(false), run(true))
    }

    #[test]
    fn native_parse_gives_what_boas_gives() {
        for script in [
            r#"JSON.parse('{"sub":"user-42","exp":1700000000,"admin":true,"n":null}')"#,
            r#"JSON.parse('{"b":1,"a":2,"10":3,"2":4,"b":5}')"#,
            r#"JSON.parse('[1, -0, 0.1, 1e-7, 123456789012345678901, 9007199254740993, 2.5e300]')"#,
            r#"JSON.parse('-0')"#,
            r#"JSON.parse(' "caf\\u00e9 \\ud83d\\ude00 \\n" ')"#,
            r#"JSON.parse('{"__proto__": {"x": 1}}')"#,
            r#"JSON.parse('{"a": [{"b": [[], {}]}]}')"#,
            r#"JSON.parse(42)"#,
            r#"JSON.parse(null)"#,
            r#"JSON.parse({ toString: function () { return '[7]'; } })"#,
            // `ToString` runs once, also for a text that is refused.
            r#"(function () { var n = 0; try { JSON.parse({ toString: function () { n++; return '{'; } }); } catch (e) {} return n; })()"#,
            // Refused texts: the same error from the same place.
            r#"JSON.parse('{"a":1,}')"#,
            r#"JSON.parse('')"#,
            r#"JSON.parse(undefined)"#,
            r#"JSON.parse('1e400')"#,
            r#"JSON.parse('\ufeff{}')"#,
            // A reviver runs as boa runs it.
            r#"JSON.parse('{"a":1,"b":[2]}', function (k, v) { return typeof v === 'number' ? v * 10 : v; })"#,
        ] {
            let (boa, native) = both(script);
            assert_eq!(native, boa, "{script}");
        }
    }

    #[test]
    fn the_replacement_looks_like_the_built_in() {
        let mut ctx = Context::default();
        install(&mut ctx).unwrap();
        let v = ctx
            .eval(Source::from_bytes(
                "var d = Object.getOwnPropertyDescriptor(JSON, 'parse'); \
                 [JSON.parse.name, JSON.parse.length, d.writable, d.enumerable, d.configurable, \
                  Object.keys(JSON).length].join()",
            ))
            .unwrap()
            .to_string(&mut ctx)
            .unwrap()
            .to_std_string_escaped();
        assert_eq!(v, "parse,2,true,false,true,0");
    }
}
