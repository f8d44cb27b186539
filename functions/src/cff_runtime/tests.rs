use std::time::{Duration, Instant};

use serde_json::json;

use super::*;

const BUDGET: Duration = Duration::from_millis(1);

fn run(source: &str) -> Invoked {
    let mut f = LoadedFunction::load(source, Runtime::CloudfrontJs2).unwrap();
    f.invoke(&json!({"request": {"uri": "/a"}}), BUDGET)
}

fn kind(i: &Invoked) -> FunctionErrorKind {
    i.result.as_ref().unwrap_err().kind
}

#[test]
fn sync_and_async_handlers_return_their_value() {
    let i = run("function handler(event) { event.request.uri = '/b'; return event.request; }");
    assert_eq!(
        i.result.unwrap().map(Returned::into_json),
        Some(json!({"uri": "/b"}))
    );
    let i = run(
        "async function handler(event) { await Promise.resolve(1); return {statusCode: 204}; }",
    );
    assert_eq!(
        i.result.unwrap().map(Returned::into_json),
        Some(json!({"statusCode": 204}))
    );
    assert!(!i.poisoned);
}

#[test]
fn distribution_tenant_is_not_available_on_a_standard_distribution() {
    let i = run("import cf from 'cloudfront';\n\
         function handler(event) { \
           try { return cf.distributionTenant.id; } catch (e) { return e.name + ': ' + e.message; } }");
    assert_eq!(
        i.result.unwrap().map(Returned::into_json),
        Some(json!(
            "TypeError: distributionTenant module is not available"
        ))
    );
    let i = run("import cf from 'cloudfront';\n\
         function handler(event) { \
           try { return cf.distributionTenant.parameters.get('plan'); } \
           catch (e) { return e.name + ': ' + e.message; } }");
    assert_eq!(
        i.result.unwrap().map(Returned::into_json),
        Some(json!(
            "TypeError: distributionTenant module is not available"
        ))
    );
}

#[test]
fn cwt_tokens_are_validated_into_their_claims() {
    let token = crate::cwt::tests::hs256_token(b"kvs secret", true);
    let source = format!(
        "import cf from 'cloudfront';\n\
         function handler(e) {{ \
           var claims = cf.cwt.validateToken('{token}', {{key: 'kvs secret'}}); \
           var viaBuffer = cf.cwt.validateToken('{token}', {{key: Buffer.from('kvs secret')}}); \
           var errors = [['wrong', {{key: 'other'}}], ['none', {{}}], ['nothing', undefined]] \
             .map(function (c) {{ \
               try {{ cf.cwt.validateToken('{token}', c[1]); return c[0] + ': no error'; }} \
               catch (err) {{ return c[0] + ': ' + err.name + ': ' + err.message; }} }}); \
           return [claims[2], claims[4], Buffer.isBuffer(claims[7]), claims[7].toString('hex'), \
             Object.keys(claims), viaBuffer[2], errors]; }}"
    );
    let mut f = LoadedFunction::load(&source, Runtime::CloudfrontJs2).unwrap();
    let invoked = f.invoke(&json!({"request": {"uri": "/a"}}), Duration::from_secs(1));
    assert_eq!(
        invoked.result.unwrap().map(Returned::into_json),
        Some(json!([
            "bench-user",
            4102444800.0,
            true,
            "0b71",
            ["2", "4", "7"],
            "bench-user",
            [
                "wrong: Error: cwt.validateToken: the token's MAC does not match: a wrong key or \
                 an altered token",
                "none: TypeError: cwt.validateToken: no key given (the second argument is {key})",
                "nothing: TypeError: cwt.validateToken: the second argument must be {key}"
            ]
        ]))
    );
}

#[test]
fn cwt_claims_of_every_cbor_kind_become_javascript_values() {
    // {-1: -5, 1: 2^60, 3: [1, "a", true, null], 5: {1: 1.5}, 6: 1(1000)}
    let payload = [
        0xa5, 0x20, 0x24, 0x01, 0x1b, 0x10, 0, 0, 0, 0, 0, 0, 0, 0x03, 0x84, 0x01, 0x61, b'a',
        0xf5, 0xf6, 0x05, 0xa1, 0x01, 0xf9, 0x3e, 0x00, 0x06, 0xc1, 0x19, 0x03, 0xe8,
    ];
    let token = crate::cwt::tests::hs256_token_of(b"k", &payload, false);
    let source = format!(
        "import cf from 'cloudfront';\n\
         function handler(e) {{ var c = cf.cwt.validateToken('{token}', {{key: 'k'}}); \
           return [c['-1'], typeof c[1], String(c[1]), c[3], c[5], c[6], Object.keys(c)]; }}"
    );
    let mut f = LoadedFunction::load(&source, Runtime::CloudfrontJs2).unwrap();
    let invoked = f.invoke(&json!({"request": {"uri": "/a"}}), Duration::from_secs(1));
    assert_eq!(
        invoked.result.unwrap().map(Returned::into_json),
        Some(json!([
            -5,
            "bigint",
            "1152921504606846976",
            [1, "a", true, null],
            {"1": 1.5},
            1000,
            ["1", "3", "5", "6", "-1"]
        ]))
    );
}

#[test]
fn load_errors_say_what_is_wrong() {
    let e = |src: &str| {
        LoadedFunction::load(src, Runtime::CloudfrontJs2)
            .err()
            .unwrap()
            .0
    };
    assert!(e("function handler( {").contains("syntax error"));
    assert!(e("function other(e) { return e; }").contains("no function named `handler`"));
    assert!(
        e("import fs from 'fs';\nfunction handler(e){return e}")
            .contains("Cannot find module 'fs'")
    );
    assert!(e("import crypto from 'crypto';\nfunction other(e){return e}").contains("handler"));
    assert!(e("throw new Error('boom'); function handler(e){}").contains("boom"));
    // Strict mode is always on.
    assert!(e("undeclared = 1; function handler(e){ return e }").contains("failed"));
}

#[test]
fn a_top_level_runaway_is_a_load_error() {
    let started = Instant::now();
    let e = LoadedFunction::load(
        "while (true) {} function handler(e){}",
        Runtime::CloudfrontJs2,
    )
    .err()
    .unwrap();
    assert!(e.0.contains("failed"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn throws_and_rejections_are_execution_errors() {
    let i = run("function handler(e) { throw new TypeError('nope'); }");
    assert_eq!(kind(&i), FunctionErrorKind::Execution);
    assert!(i.result.unwrap_err().message.contains("nope"));
    let i = run("async function handler(e) { await null; throw new Error('later'); }");
    assert_eq!(kind(&i), FunctionErrorKind::Execution);
    assert!(i.result.unwrap_err().message.contains("later"));
}

#[test]
fn eval_and_function_constructor_are_refused() {
    let i = run("function handler(e) { return eval('1+1'); }");
    assert_eq!(kind(&i), FunctionErrorKind::Execution);
    let i = run("function handler(e) { return new Function('return 1')(); }");
    assert_eq!(kind(&i), FunctionErrorKind::Execution);
}

/// A budget no test of something else comes near, on a slow or stalled machine: tests about
/// what a function sees, or about a re-run, must not fail because the host took a millisecond.
const ROOMY: Duration = Duration::from_millis(50);

#[test]
fn date_is_frozen_for_the_invocation() {
    let mut f = LoadedFunction::load(
        "function handler(e) { var a = Date.now(); var x = 0; for (var k = 0; k < 5000; k++) { x += k; } \
         return { same: a === Date.now() && a === new Date().getTime() }; }",
        Runtime::CloudfrontJs2,
    )
    .unwrap();
    let i = f.invoke(&json!({"request": {"uri": "/a"}}), ROOMY);
    assert_eq!(
        i.result.unwrap().map(Returned::into_json),
        Some(json!({"same": true}))
    );
}

#[test]
fn runaways_are_stopped_and_poison_the_context() {
    for src in [
        "function handler(e) { while (true) {} }",
        "function handler(e) { try { while (true) {} } catch (x) { return 'caught'; } }",
        "function handler(e) { function f() { return f(); } return f(); }",
        "function fib(n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); } function handler(e) { return fib(40); }",
        "async function handler(e) { await Promise.resolve(); while (true) {} }",
        "function handler(e) { return [1].map(function () { var i = 0; while (true) { i++; } }); }",
    ] {
        let started = Instant::now();
        let i = run(src);
        assert_eq!(
            kind(&i),
            FunctionErrorKind::Throttled,
            "{src}: {:?}",
            i.result
        );
        assert!(i.poisoned, "{src}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{src} took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn a_promise_that_never_settles_is_an_execution_error() {
    let i = run("function handler(e) { return new Promise(function () {}); }");
    assert_eq!(kind(&i), FunctionErrorKind::Execution);
}

#[test]
fn globals_persist_across_invocations_of_a_context() {
    let mut f = LoadedFunction::load(
        "var n = 0; function handler(e) { n++; return n; }",
        Runtime::CloudfrontJs2,
    )
    .unwrap();
    let ev = json!({});
    f.invoke(&ev, BUDGET)
        .result
        .unwrap()
        .map(Returned::into_json);
    assert_eq!(
        f.invoke(&ev, BUDGET)
            .result
            .unwrap()
            .map(Returned::into_json),
        Some(json!(2))
    );
}

#[test]
fn finishing_past_the_budget_inside_a_native_call_is_still_over_budget() {
    let i = run(
        "function handler(e) { var a = Array.from({length: 3000}, function (_, i) { return (i * 7919) % 3000; }); \
         a.sort(function (x, y) { for (var k = 0; k < 100; k++) {} return y - x; }); return 1; }",
    );
    assert_eq!(kind(&i), FunctionErrorKind::Throttled, "{:?}", i.result);
    assert!(!i.poisoned, "it completed, so the context is still clean");
    // The figures a user needs to tell a slow function from a stalled host.
    let message = &i.result.unwrap_err().message;
    assert!(
        message.starts_with("the function exceeded its CPU budget (")
            && message.contains(" µs of CPU against a budget of 1000 µs, in ")
            && message.ends_with(" µs of wall time)"),
        "{message}"
    );
}

#[test]
fn an_overrun_a_strict_rerun_does_not_repeat_is_not_the_functions() {
    // The first run spends its budget inside one native call (as time stolen from the VM
    // would), the second does not: the re-run's answer and logs stand.
    let mut f = LoadedFunction::load(
        "var first = true;\n\
         function handler(e) { console.log(first ? 'first run' : 'run again');\n\
           if (first) { first = false;\n\
             var a = Array.from({length: 3000}, function (_, i) { return (i * 7919) % 3000; });\n\
             a.sort(function (x, y) { for (var k = 0; k < 100; k++) {} return y - x; }); }\n\
           return 1; }",
        Runtime::CloudfrontJs2,
    )
    .unwrap();
    crate::host::begin(true, None);
    // The sort takes hundreds of milliseconds, far past even a roomy budget; the re-run, a
    // console line, must not be failed by a stall of the host.
    let i = f.invoke(&json!({}), ROOMY);
    assert_eq!(i.result.unwrap().map(Returned::into_json), Some(json!(1)));
    assert!(!i.poisoned);
    assert!(i.utilization < 100, "the re-run's use is reported");
    assert_eq!(crate::host::take().logs, vec!["run again".to_owned()]);
    // A loop in the VM spends its budget over many checks: stopped, never re-run.
    let mut g = LoadedFunction::load(
        "var runs = 0; function handler(e) { runs++; if (runs > 1) { return 'ran twice'; } while (true) {} }",
        Runtime::CloudfrontJs2,
    )
    .unwrap();
    let i = g.invoke(&json!({}), BUDGET);
    assert_eq!(kind(&i), FunctionErrorKind::Throttled, "{:?}", i.result);
    assert!(i.poisoned);
}

#[test]
fn crypto_is_importable_and_requirable_and_native() {
    // A 2.0 file: imports first, `handler` declared but not exported (as CloudFront loads it).
    let i = run("import crypto from 'crypto';\n\
         function handler(e) {\n\
           return {\n\
             sha: crypto.createHash('sha256').update('abc').digest('hex'),\n\
             hmac: crypto.createHmac('sha256', 'Jefe').update('what do ya ').update('want for nothing?').digest('base64url'),\n\
             md5: crypto.createHash('md5').update('abc').digest('base64'),\n\
             raw: crypto.createHash('sha1').update('abc').digest().length\n\
           };\n\
         }");
    assert_eq!(
        i.result.unwrap().map(Returned::into_json),
        Some(json!({
            "sha": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "hmac": "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM",
            "md5": "kAFQmDzST7DWlj99KOF/cg==",
            "raw": 20
        }))
    );
    let i = run("var crypto = require('crypto');\n\
         function handler(e) { return crypto.createHash('sha1').update('abc').digest('hex'); }");
    assert_eq!(
        i.result.unwrap().map(Returned::into_json),
        Some(json!("a9993e364706816aba3e25717850c26c9cd0d89d"))
    );
    let i = run("export function handler(e) { return require('crypto').createHash('nope'); }");
    assert_eq!(kind(&i), FunctionErrorKind::Execution);
}

#[test]
fn atob_and_btoa_work_on_binary_strings() {
    let i = run(
        "function handler(e) { return [btoa('hello'), atob('aGVsbG8='), atob(btoa('\\u00ff\\u0000'))\
         .charCodeAt(0), atob('eyJhbGciOiJIUzI1NiJ9')]; }",
    );
    assert_eq!(
        i.result.unwrap().map(Returned::into_json),
        Some(json!(["aGVsbG8=", "hello", 255, "{\"alg\":\"HS256\"}"]))
    );
    let i = run("function handler(e) { return btoa('\\u0100'); }");
    assert_eq!(kind(&i), FunctionErrorKind::Execution);
}

#[test]
fn console_log_is_captured_per_invocation_and_capped() {
    let mut f = LoadedFunction::load(
        "function handler(e) { console.log('uri ' + e.request.uri); console.log({a: 1}); return 1; }",
        Runtime::CloudfrontJs2,
    )
    .unwrap();
    crate::host::begin(true, None);
    f.invoke(&json!({"request": {"uri": "/x"}}), BUDGET);
    let logs = crate::host::take().logs;
    assert_eq!(
        logs,
        vec!["uri /x".to_owned(), "[object Object]".to_owned()]
    );
    crate::host::begin(true, None);
    f.invoke(&json!({"request": {"uri": "/y"}}), BUDGET);
    assert_eq!(
        crate::host::take().logs,
        vec!["uri /y".to_owned(), "[object Object]".to_owned()]
    );
    let mut g = LoadedFunction::load(
        "function handler(e) { var s = 'x'.repeat(4000); for (var k = 0; k < 10; k++) { console.log(s); } return 1; }",
        Runtime::CloudfrontJs2,
    )
    .unwrap();
    crate::host::begin(true, None);
    let invoked = g.invoke(&json!({}), BUDGET);
    assert!(invoked.result.is_ok(), "{:?}", invoked.result);
    let total: usize = crate::host::take().logs.iter().map(String::len).sum();
    assert_eq!(total, 10240);
}

#[test]
fn catastrophic_regexes_are_refused_at_load_and_in_new_regexp() {
    let e = LoadedFunction::load(
        "function handler(e) { return /(a+)+b/.test(e.request.uri); }",
        Runtime::CloudfrontJs2,
    )
    .err()
    .unwrap();
    assert!(e.0.contains("catastrophic"), "{e}");
    let started = Instant::now();
    let i = run(
        "function handler(e) { return new RegExp('(a+)+b').test('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'); }",
    );
    assert_eq!(kind(&i), FunctionErrorKind::Execution);
    assert!(started.elapsed() < Duration::from_secs(2));
    let i = run(
        "function handler(e) { var r = new RegExp('^/api/(v[0-9]+)/'); return [r instanceof RegExp, r.test('/api/v2/x'), /x+/.test('xx')]; }",
    );
    assert_eq!(
        i.result.unwrap().map(Returned::into_json),
        Some(json!([true, true, true]))
    );
}

#[test]
fn the_native_core_keeps_what_functions_can_see_of_it() {
    // console, the guarded built-ins, RegExp and require are made natively at load; what a
    // function can observe of them is what the engine's own built-ins show.
    assert_eq!(
        v2(
            "console.log(); console.log(null); console.log(Symbol('s')); console.info(1, 2);\n\
            return [Object.isFrozen(console), console.log === console.error, typeof console.log,\n\
              Object.keys(globalThis).indexOf('console'),\n\
              [Array.prototype.fill, Array.prototype.join, String.prototype.repeat,\n\
               String.prototype.padStart, String.prototype.padEnd, Array.from]\n\
                .map(function (f) { return f.name + '/' + f.length; }).join(),\n\
              [1, 2].join('-'), 'ab'.repeat(2), 'a'.padStart(3, '.'), 'a'.padEnd(2, '!'),\n\
              new Array(2).fill(7).join(), Array.from({ length: 2 }, function (_, i) { return i * 3; }).join(),\n\
              Array.prototype.join.call('xyz', '+'), Array.from(new Set([4, 5])).join()];"
        ),
        json!([
            true,
            true,
            "function",
            -1,
            "fill/1,join/1,repeat/1,padStart/1,padEnd/1,from/1",
            "1-2",
            "abab",
            "..a",
            "a!",
            "7,7",
            "0,3",
            "x+y+z",
            "4,5"
        ])
    );
    assert_eq!(
        crate::host::take().logs,
        vec!["undefined", "null", "Symbol(s)", "1"]
    );
    assert_eq!(
        v2("class Path extends RegExp {}\n\
            var p = new Path('^/a'), plain = RegExp('b', 'g');\n\
            return [RegExp.name, RegExp.length, /x/.constructor === RegExp, /x/ instanceof RegExp,\n\
              p instanceof Path, p instanceof RegExp, p.test('/a/b'), plain.flags, plain instanceof RegExp,\n\
              new RegExp(/c+/i).flags, new RegExp(/c+/i, 'g').source,\n\
              Object.getPrototypeOf(plain) === RegExp.prototype];"),
        json!([
            "RegExp", 2, true, true, true, true, true, "g", true, "i", "c+", true
        ])
    );
    // A refused pattern given as a regex is checked by its source.
    assert!(
        v2(
            "try { new RegExp(new RegExp('(a+)' + '+b'.slice(0, 1) + 'b')); return 'built'; } \
            catch (e) { return e.name; }"
        ) == json!("SyntaxError")
    );
    assert_eq!(
        v2("var out = [];\n\
            ['node:crypto', 'crypto', 'nope', 'node:nope'].forEach(function (m) {\n\
              try { out.push(typeof require(m).createHash); } catch (e) { out.push(e.name + ': ' + e.message); }\n\
            });\n\
            var d = Object.getOwnPropertyDescriptor(globalThis, 'require');\n\
            return out.concat([require.name, require.length, d.writable, d.enumerable, d.configurable,\n\
              require('buffer') === require('node:buffer'), Object.isFrozen(require('buffer'))]);"),
        json!([
            "function",
            "function",
            "Error: Cannot find module 'nope'",
            "Error: Cannot find module 'nope'",
            "require",
            1,
            false,
            false,
            false,
            true,
            true
        ])
    );
}

#[test]
fn text_encoder_and_decoder_speak_utf8() {
    let i = run(
        "function handler(e) { var b = new TextEncoder().encode('h\\u00e9\\u20ac'); \
         var d = new TextDecoder(); \
         return [b.length, b[1], d.decode(b), d.decode(new Uint8Array([0xef, 0xbb, 0xbf, 0x61])), \
                 new TextDecoder('utf-8', {fatal: false}).decode(new Uint8Array([0xff]))]; }",
    );
    assert_eq!(
        i.result.unwrap().map(Returned::into_json),
        Some(json!([6, 0xc3, "h\u{e9}\u{20ac}", "a", "\u{fffd}"]))
    );
    let i = run(
        "function handler(e) { return new TextDecoder('utf-8', {fatal: true}).decode(new Uint8Array([0xff])); }",
    );
    assert_eq!(kind(&i), FunctionErrorKind::Execution);
}

/// The JSON value `body` (a function body) returns when run by a handler of `runtime`.
fn value_of(runtime: Runtime, body: &str) -> Value {
    let source = format!("function handler(e) {{ return (function () {{ {body} }})(); }}");
    let mut f = LoadedFunction::load(&source, runtime).unwrap();
    let invoked = f.invoke(&json!({"request": {"uri": "/a"}}), Duration::from_secs(1));
    invoked
        .result
        .unwrap()
        .map(Returned::into_json)
        .unwrap_or(Value::Null)
}

fn v2(body: &str) -> Value {
    value_of(Runtime::CloudfrontJs2, body)
}

#[test]
fn buffer_converts_between_encodings_natively() {
    assert_eq!(
        v2(
            "var b = Buffer.from('héllo'); return [b.length, b.toString('hex'), b.toString('base64'), \
            Buffer.from('68c3a96c6c6f', 'hex').toString(), Buffer.from('aMOpbGxv', 'base64').toString('utf8'), \
            Buffer.from([0xfb, 0xff]).toString('base64url'), Buffer.from('-_8', 'base64url').toJSON().data, \
            Buffer.isBuffer(b), Buffer.isBuffer(new Uint8Array(1)), Buffer.isEncoding('UTF-8'), Buffer.isEncoding('nope'), \
            Buffer.byteLength('héllo'), String(Buffer.from('abc'))];"
        ),
        json!([
            6,
            "68c3a96c6c6f",
            "aMOpbGxv",
            "héllo",
            "héllo",
            "-_8",
            [251, 255],
            true,
            false,
            true,
            false,
            6,
            "abc"
        ])
    );
}

#[test]
fn names_inherited_from_object_are_no_encodings_or_algorithms() {
    let source = "import crypto from 'crypto';\n\
        function handler(e) {\n\
            var out = [Buffer.isEncoding('constructor'), Buffer.isEncoding('toString'), \
            Buffer.isEncoding('Base64URL'), Buffer.from('aGk', 'BASE64URL').toString()];\n\
            ['constructor', '__proto__', 'hasOwnProperty'].forEach(function (name) {\n\
                try { Buffer.from('x', name); out.push('accepted ' + name); }\n\
                catch (e) { out.push(e.name + ': ' + e.message); }\n\
                try { crypto.createHash(name); out.push('hashed ' + name); }\n\
                catch (e) { out.push(e.message); }\n\
            });\n\
            return out;\n\
        }";
    let mut f = LoadedFunction::load(source, Runtime::CloudfrontJs2).unwrap();
    let invoked = f.invoke(&json!({"request": {"uri": "/a"}}), Duration::from_secs(1));
    assert_eq!(
        invoked.result.unwrap().map(Returned::into_json),
        Some(json!([
            false,
            false,
            true,
            "hi",
            "TypeError: Unknown encoding: constructor",
            "Digest method not supported: constructor",
            "TypeError: Unknown encoding: __proto__",
            "Digest method not supported: __proto__",
            "TypeError: Unknown encoding: hasOwnProperty",
            "Digest method not supported: hasOwnProperty"
        ]))
    );
}

#[test]
fn buffer_statics_and_prototype_methods_behave_as_in_node() {
    assert_eq!(
        v2("var a = Buffer.from('abc'), b = Buffer.from('abd');\n\
            var c = Buffer.concat([a, b]);\n\
            var z = Buffer.alloc(4, 'ab');\n\
            var n = Buffer.alloc(8); n.writeUInt32BE(0xdeadbeef, 0); n.writeInt16LE(-2, 4);\n\
            var s = Buffer.from('0102030405060708', 'hex').swap16();\n\
            var t = Buffer.alloc(3); var copied = a.copy(t, 1);\n\
            return [Buffer.compare(a, b), Buffer.compare(b, a), a.compare(Buffer.from('abc')), a.equals(Buffer.from('abc')),\n\
              c.toString(), c.length, Buffer.concat([a, b], 4).toString(), z.toString(),\n\
              n.readUInt32BE(0), n.readInt16LE(4), n.readUIntBE(0, 3), n.readIntLE(4, 2), n.toString('hex'),\n\
              s.toString('hex'), copied, t.toString('hex'), c.indexOf('bc'), c.lastIndexOf('ab'), c.includes('d'),\n\
              c.indexOf(0x64), c.subarray(1, 3).toString(), Buffer.isBuffer(c.subarray(1)), c.slice(-2).toString(),\n\
              Buffer.alloc(2).fill(7).toJSON().data, a.toString('utf8', 1, 2), Buffer.from(a.buffer, a.byteOffset, 2).toString()];"),
        json!([
            -1,
            1,
            0,
            true,
            "abcabd",
            6,
            "abca",
            "abab",
            3735928559.0,
            -2.0,
            14593470.0,
            -2.0,
            "deadbeeffeff0000",
            "0201040306050807",
            2.0,
            "006162",
            1.0,
            3.0,
            true,
            5,
            "bc",
            true,
            "bd",
            [7, 7],
            "b",
            "ab"
        ])
    );
}

#[test]
fn buffer_refuses_what_node_refuses_and_sizes_are_guarded() {
    assert_eq!(
        v2("var out = [];\n\
            try { Buffer.from('x', 'utf16'); } catch (e) { out.push(e instanceof TypeError); }\n\
            try { Buffer.alloc(-1); } catch (e) { out.push(e instanceof RangeError); }\n\
            try { Buffer.alloc(4).readUInt32BE(1); } catch (e) { out.push(e.code); }\n\
            try { Buffer.from('abc').swap16(); } catch (e) { out.push(e instanceof RangeError); }\n\
            return out;"),
        json!([true, true, "ERR_OUT_OF_RANGE", true])
    );
    let mut f = LoadedFunction::load(
        "function handler(e) { try { Buffer.alloc(1e9); } catch (x) {} return 1; }",
        Runtime::CloudfrontJs2,
    )
    .unwrap();
    crate::host::begin(true, None);
    f.invoke(&json!({"request": {}}), Duration::from_secs(1));
    assert!(
        crate::host::take().memory.is_some(),
        "the refusal is recorded even when caught"
    );
}

#[test]
fn crypto_digests_are_buffers_and_hash_buffers_as_bytes() {
    assert_eq!(
        v2("var crypto = require('crypto');\n\
            var raw = crypto.createHash('sha256').update('abc').digest();\n\
            var key = crypto.createHmac('sha256', 'k').update('date').digest();\n\
            var chained = crypto.createHmac('sha256', key).update('region').digest('hex');\n\
            var viaHex = crypto.createHmac('sha256', Buffer.from(key.toString('hex'), 'hex')).update('region').digest('hex');\n\
            return [Buffer.isBuffer(raw), raw.toString('hex').slice(0, 8), raw.length,\n\
              crypto.createHash('md5').update(Buffer.from([0xff, 0x00])).digest('hex'), chained === viaHex];"),
        json!([
            true,
            "ba7816bf",
            32,
            "e0e8bfafbb0689563b2fba789c97b3cc",
            true
        ])
    );
}

#[test]
fn json_parse_takes_a_buffer_or_any_value_and_a_reviver() {
    assert_eq!(
        v2(
            "return [JSON.parse(Buffer.from('{\"a\":1}')).a, JSON.parse(12), JSON.parse(true),\n\
            JSON.parse('{\"n\":2,\"m\":3}', function (k, v) { return typeof v === 'number' ? v * 10 : v; })];"
        ),
        json!([1, 12, true, {"n": 20, "m": 30}])
    );
}

#[test]
fn querystring_parses_and_stringifies_as_node() {
    assert_eq!(
        v2("var qs = require('querystring');\n\
            var p = qs.parse('a=1&b=x%20y&a=2&c&d=e+f&&=v&bad=%zz&u=%C3%A9');\n\
            return [p.a, p.b, p.c, p.d, p[''], p.bad, p.u, Object.getPrototypeOf(p) === null,\n\
              qs.stringify({ a: [1, 2], b: 'x y', c: '', d: null, e: true, f: NaN, 'k&': 'é' }),\n\
              qs.stringify({ a: 1, b: 2 }, ';', ':'), qs.parse('a:1;b:2', ';', ':').b,\n\
              Object.keys(qs.parse('a=1&b=2&c=3', null, null, { maxKeys: 2 })),\n\
              qs.escape('a b/é'), qs.unescape('a%20b+c%'), qs.decode === qs.parse, qs.encode({ x: 1 }),\n\
              qs.parse('a=b', null, null, { decodeURIComponent: function (s) { return s.toUpperCase(); } }).A];"),
        json!([
            ["1", "2"],
            "x y",
            "",
            "e f",
            "v",
            "%zz",
            "é",
            true,
            "a=1&a=2&b=x%20y&c=&d=&e=true&f=&k%26=%C3%A9",
            "a:1;b:2",
            "2",
            ["a", "b"],
            "a%20b%2F%C3%A9",
            "a b+c%",
            true,
            "x=1",
            "B"
        ])
    );
}

#[test]
fn raw_query_string_is_a_method_of_the_request_and_never_returned() {
    let source = "function handler(e) { var q = e.request.rawQueryString(); \
                  e.request.headers['x-raw'] = { value: String(q) }; return e.request; }";
    let mut f = LoadedFunction::load(source, Runtime::CloudfrontJs2).unwrap();
    for (raw, expected) in [
        (Some("a=1&b=%20"), "a=1&b=%20"),
        (Some(""), ""),
        (None, "undefined"),
    ] {
        crate::host::begin(true, raw.map(str::to_owned));
        let out = f
            .invoke(&json!({"request": {"uri": "/", "headers": {}}}), BUDGET)
            .result
            .unwrap()
            .map(Returned::into_json)
            .unwrap();
        crate::host::take();
        assert_eq!(out["headers"]["x-raw"]["value"], expected);
        assert_eq!(
            out.as_object().unwrap().len(),
            2,
            "only uri and headers: {out}"
        );
    }
}

#[test]
fn runtime_1_refuses_const_let_async_and_import_and_has_byte_strings() {
    let e = |src: &str| {
        LoadedFunction::load(src, Runtime::CloudfrontJs1)
            .err()
            .unwrap()
            .0
    };
    assert!(
        e("function handler(e) {\n  const x = 1; return x; }")
            .contains("line 2, column 3: `const`")
    );
    assert!(e("function handler(e) { let x = 1; return x; }").contains("`let`"));
    assert!(e("async function handler(e) { return e.request; }").contains("`async`"));
    assert!(e("import crypto from 'crypto';\nfunction handler(e) {}").contains("no `import`"));
    let v1 = |body: &str| value_of(Runtime::CloudfrontJs1, body);
    assert_eq!(
        v1("var crypto = require('crypto');\n\
            var raw = crypto.createHash('sha256').update('abc').digest();\n\
            var key = crypto.createHmac('sha256', 'k').update('date').digest();\n\
            return [typeof raw, raw.length, String.bytesFrom(raw.split('').map(function (c) { return c.charCodeAt(0); })) === raw,\n\
              String.bytesFrom('6869', 'hex'), String.bytesFrom('aGk=', 'base64'), 'é'.toUTF8(), 'é'.toUTF8().length,\n\
              'Ã©'.fromUTF8(), '\\u00ff\\u00fe'.fromUTF8(), 'ā'.toBytes(), 'ab'.toBytes(), 'ab'.fromBytes(),\n\
              crypto.createHmac('sha256', key).update('x').digest('hex').length,\n\
              typeof Buffer, typeof TextEncoder, typeof atob, typeof MemoryError, Object.keys(require('querystring').parse('a=1'))];"),
        json!([
            "string",
            32,
            true,
            "hi",
            "hi",
            "Ã©",
            2,
            "é",
            null,
            null,
            "ab",
            "ab",
            64,
            "undefined",
            "undefined",
            "undefined",
            "function",
            ["a"]
        ])
    );
    let e = LoadedFunction::load(
        "function handler(e) { return require('cloudfront'); }",
        Runtime::CloudfrontJs1,
    )
    .unwrap()
    .invoke(&json!({"request": {}}), BUDGET)
    .result
    .unwrap_err();
    assert!(
        e.message.contains("Cannot find module 'cloudfront'"),
        "{}",
        e.message
    );
}

#[test]
fn allocating_past_the_memory_limit_is_stopped_even_with_cpu_to_spare() {
    let run = |body: &str| {
        let source = format!("function handler(e) {{ {body} }}");
        let mut f = LoadedFunction::load(&source, Runtime::CloudfrontJs2).unwrap();
        let started = Instant::now();
        let invoked = f.invoke(&json!({"request": {}}), Duration::from_secs(5));
        (invoked, started.elapsed())
    };
    // Many allocations, each under the per-call size guard: stopped at a yield.
    let (invoked, took) = run(
        "var keep = []; for (var j = 0; j < 5000; j++) { keep.push(new Uint8Array(4 << 20)); } return keep.length;",
    );
    let e = invoked.result.unwrap_err();
    assert_eq!(e.kind, FunctionErrorKind::Throttled);
    assert!(e.message.contains("memory limit"), "{}", e.message);
    assert!(took < Duration::from_secs(3), "{took:?}");
    // A handful of allocations that double a string: caught by the time it returns.
    let (invoked, _) =
        run("var s = 'x'; for (var i = 0; i < 26; i++) { s = s + s; } return s.length;");
    assert!(invoked.result.unwrap_err().message.contains("memory limit"));
    // An ordinary function is far below the limit.
    let (invoked, _) = run(
        "var a = []; for (var i = 0; i < 1000; i++) { a.push({ i: i, s: 'v' + i }); } return a.length;",
    );
    assert_eq!(
        invoked.result.unwrap().map(Returned::into_json),
        Some(json!(1000))
    );
}

#[test]
fn the_loop_backstop_is_calibrated_to_the_largest_budget() {
    let limit = loop_limit();
    assert!(
        (LOOP_LIMIT_BOUNDS.0..=LOOP_LIMIT_BOUNDS.1).contains(&limit),
        "{limit}"
    );
    let looping = |n: u64| {
        let source = format!(
            "async function handler(e) {{ await Promise.resolve(); var x = 0; for (var i = 0; i < {n}; i++) {{ x++; }} return x; }}"
        );
        let mut f = LoadedFunction::load(&source, Runtime::CloudfrontJs2).unwrap();
        f.invoke(&json!({"request": {}}), Duration::from_secs(5))
            .result
    };
    // After an `await` only the backstop applies: under it the loop finishes, past it it stops.
    assert_eq!(
        looping(limit / 2).unwrap().map(Returned::into_json),
        Some(json!(limit / 2))
    );
    let e = looping(limit * 4).unwrap_err();
    assert_eq!(e.kind, FunctionErrorKind::Throttled, "{}", e.message);
}

/// What a 2.0 function whose source the load-time scan takes for `Buffer`-free returns from
/// its first invocation within the 1 ms budget (in a fresh context, up to three tries).
fn run_without_buffer_at_load(source: &str) -> Value {
    assert!(
        !crate::host::named_parts(Runtime::CloudfrontJs2, source).any(|part| part.name == "buffer")
    );
    // A first invocation in a fresh context runs cold, and this machine's CPU clock has once
    // charged a trivial first use 2.1 ms. Charging the install itself (milliseconds) would fail
    // every attempt, so a fresh load is tried three times before an overrun counts.
    let mut overruns = Vec::new();
    for _ in 0..3 {
        let mut f = LoadedFunction::load(source, Runtime::CloudfrontJs2).unwrap();
        match f.invoke(&json!({"request": {"uri": "/a"}}), BUDGET).result {
            Err(e) if e.kind == FunctionErrorKind::Throttled => overruns.push(e.message),
            result => {
                return result
                    .unwrap()
                    .map(Returned::into_json)
                    .unwrap_or(Value::Null);
            }
        }
    }
    panic!("over budget in three fresh contexts: {overruns:?}");
}

#[test]
fn a_function_that_never_names_buffer_gets_it_on_first_use_within_its_budget() {
    // Spelled so the load-time scan does not see the name: the context loads without the
    // `Buffer` prelude, and the first use installs it uncharged (it takes milliseconds, the
    // budget is 1 ms).
    let source = "var B = 'Buf' + 'fer', D = 'dig' + 'est';
        var crypto = require('crypto');
        var lazy = Object.getOwnPropertyDescriptor(globalThis, B).get !== undefined;
        function handler(e) {
            var first = globalThis[B].from('hi').toString('hex');
            var hash = crypto.createHash('sha256').update('abc')[D]();
            return [lazy, first, hash instanceof globalThis[B], hash.toString('hex').slice(0, 8),
                Object.getOwnPropertyDescriptor(globalThis, B).get === undefined,
                require('buf' + 'fer')[B] === globalThis[B]];
        }";
    assert_eq!(
        run_without_buffer_at_load(source),
        json!([true, "6869", true, "ba7816bf", true, true])
    );
    // A source that names it gets it at load, as a plain global.
    assert_eq!(
        v2(
            "return Object.getOwnPropertyDescriptor(globalThis, 'Buffer').get === undefined \
            && typeof Buffer.from === 'function';"
        ),
        json!(true)
    );
}

#[test]
fn host_parts_a_source_never_names_are_installed_on_first_use_within_its_budget() {
    // Every name spelled so the load-time scan does not see it: the context loads without the
    // parts, and the first `require` or global read installs each one uncharged.
    let source = "var C = 'cry' + 'pto', Q = 'query' + 'string', F = 'cloud' + 'front';
        var T = 'Text' + 'Encoder', D = 'dig' + 'est';
        var atLoad = [C, Q, F, 'text'].map(function (p) { return __verge_has(p); });
        var lazy = Object.getOwnPropertyDescriptor(globalThis, T).get !== undefined;
        function handler(e) {
            return [atLoad, lazy,
                require(C).createHash('md5').update('abc')[D]('hex'),
                require('node:' + Q).stringify({ a: 1 }),
                require(F).edgeLocation.name,
                new globalThis[T]().encode('hi').length,
                Object.getOwnPropertyDescriptor(globalThis, T).get === undefined,
                require(C) === require(C),
                [C, Q, F, 'text'].map(function (p) { return __verge_has(p); })];
        }";
    assert_eq!(
        run_without_buffer_at_load(source),
        json!([
            [false, false, false, false],
            true,
            "900150983cd24fb0d6963f7d28e17f72",
            "a=1",
            "VRG",
            2,
            true,
            true,
            [true, true, true, true]
        ])
    );
    // A source that names them gets them at load, the globals as plain data properties.
    assert_eq!(
        v2(
            "var named = [typeof crypto, typeof querystring, typeof cloudfront, typeof TextEncoder]; \
            return ['crypto', 'querystring', 'cloudfront', 'text'].map(function (p) { return __verge_has(p); }) \
            .concat(Object.getOwnPropertyDescriptor(globalThis, 'TextEncoder').get === undefined);"
        ),
        json!([true, true, true, true, true])
    );
    // 1.0 has neither the coders nor `cloudfront`, and an unknown module is refused by name.
    assert_eq!(
        value_of(
            Runtime::CloudfrontJs1,
            "var out = [typeof TextEncoder, typeof String.prototype.toUTF8]; \
            try { require('cloud' + 'front'); } catch (e) { out.push(e.message); } return out;"
        ),
        json!(["undefined", "function", "Cannot find module 'cloudfront'"])
    );
}

#[test]
fn the_uncharged_installs_run_once_so_a_loop_calling_them_is_stopped_by_its_budget() {
    // Each install is CPU the budget does not see; were a repeat not a no-op, this loop would
    // run on unseen (the `Buffer` prelude takes milliseconds to evaluate).
    let source = "function handler(e) {
            for (;;) { __verge_install('buffer'); __verge_install('crypto'); }
        }";
    // Measured: stopped by its CPU budget at ~1 ms; with repeats allowed, by the memory limit
    // after ~100 ms (re-evaluating allocates), the budget never reached.
    let mut f = LoadedFunction::load(source, Runtime::CloudfrontJs2).unwrap();
    let e = f
        .invoke(&json!({"request": {"uri": "/a"}}), BUDGET)
        .result
        .unwrap_err();
    assert_eq!(e.kind, FunctionErrorKind::Throttled, "{}", e.message);
    assert!(e.message.contains("CPU budget"), "{}", e.message);
    // A part of another runtime is not there to install.
    assert_eq!(
        v2("try { __verge_install('fetch'); return 'installed'; } catch (e) { return e.message; }"),
        json!("no host part named `fetch`")
    );
}

#[test]
fn a_global_the_function_sets_before_first_use_stays_its_own() {
    // The function's own `Buffer` is kept when a digest installs the real one for itself.
    let source = "var B = 'Buf' + 'fer', D = 'dig' + 'est';
        globalThis[B] = 42;
        function handler(e) {
            var hash = require('crypto').createHash('md5').update('')[D]();
            return [globalThis[B], hash.length, hash.toString('hex').slice(0, 6),
                require('buf' + 'fer')[B] === hash.constructor];
        }";
    assert_eq!(
        run_without_buffer_at_load(source),
        json!([42, 16, "d41d8c", true])
    );
}
