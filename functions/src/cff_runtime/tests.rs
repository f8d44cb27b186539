use std::time::{Duration, Instant};

use serde_json::json;

use super::*;

const BUDGET: Duration = Duration::from_millis(1);

fn run(source: &str) -> Invoked {
    let mut f = LoadedFunction::load(source).unwrap();
    f.invoke(&json!({"request": {"uri": "/a"}}), BUDGET)
}

fn kind(i: &Invoked) -> FunctionErrorKind {
    i.result.as_ref().unwrap_err().kind
}

#[test]
fn sync_and_async_handlers_return_their_value() {
    let i = run("function handler(event) { event.request.uri = '/b'; return event.request; }");
    assert_eq!(i.result.unwrap(), Some(json!({"uri": "/b"})));
    let i = run(
        "async function handler(event) { await Promise.resolve(1); return {statusCode: 204}; }",
    );
    assert_eq!(i.result.unwrap(), Some(json!({"statusCode": 204})));
    assert!(!i.poisoned);
}

#[test]
fn load_errors_say_what_is_wrong() {
    let e = |src: &str| LoadedFunction::load(src).err().unwrap().0;
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
    let e = LoadedFunction::load("while (true) {} function handler(e){}")
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

#[test]
fn date_is_frozen_for_the_invocation() {
    let i = run(
        "function handler(e) { var a = Date.now(); var x = 0; for (var k = 0; k < 5000; k++) { x += k; } \
         return { same: a === Date.now() && a === new Date().getTime() }; }",
    );
    assert_eq!(i.result.unwrap(), Some(json!({"same": true})));
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
    let mut f = LoadedFunction::load("var n = 0; function handler(e) { n++; return n; }").unwrap();
    let ev = json!({});
    f.invoke(&ev, BUDGET).result.unwrap();
    assert_eq!(f.invoke(&ev, BUDGET).result.unwrap(), Some(json!(2)));
}

#[test]
fn finishing_past_the_budget_inside_a_native_call_is_still_over_budget() {
    let i = run(
        "function handler(e) { var a = Array.from({length: 3000}, function (_, i) { return (i * 7919) % 3000; }); \
         a.sort(function (x, y) { for (var k = 0; k < 100; k++) {} return y - x; }); return 1; }",
    );
    assert_eq!(kind(&i), FunctionErrorKind::Throttled, "{:?}", i.result);
    assert!(!i.poisoned, "it completed, so the context is still clean");
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
        i.result.unwrap(),
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
        i.result.unwrap(),
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
        i.result.unwrap(),
        Some(json!(["aGVsbG8=", "hello", 255, "{\"alg\":\"HS256\"}"]))
    );
    let i = run("function handler(e) { return btoa('\\u0100'); }");
    assert_eq!(kind(&i), FunctionErrorKind::Execution);
}

#[test]
fn console_log_is_captured_per_invocation_and_capped() {
    let mut f = LoadedFunction::load(
        "function handler(e) { console.log('uri ' + e.request.uri); console.log({a: 1}); return 1; }",
    )
    .unwrap();
    crate::host::begin(true);
    f.invoke(&json!({"request": {"uri": "/x"}}), BUDGET);
    let logs = crate::host::take().logs;
    assert_eq!(
        logs,
        vec!["uri /x".to_owned(), "[object Object]".to_owned()]
    );
    crate::host::begin(true);
    f.invoke(&json!({"request": {"uri": "/y"}}), BUDGET);
    assert_eq!(
        crate::host::take().logs,
        vec!["uri /y".to_owned(), "[object Object]".to_owned()]
    );
    let mut g = LoadedFunction::load(
        "function handler(e) { var s = 'x'.repeat(4000); for (var k = 0; k < 10; k++) { console.log(s); } return 1; }",
    )
    .unwrap();
    crate::host::begin(true);
    g.invoke(&json!({}), BUDGET);
    let total: usize = crate::host::take().logs.iter().map(String::len).sum();
    assert_eq!(total, 10240);
}

#[test]
fn catastrophic_regexes_are_refused_at_load_and_in_new_regexp() {
    let e = LoadedFunction::load("function handler(e) { return /(a+)+b/.test(e.request.uri); }")
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
    assert_eq!(i.result.unwrap(), Some(json!([true, true, true])));
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
        i.result.unwrap(),
        Some(json!([6, 0xc3, "h\u{e9}\u{20ac}", "a", "\u{fffd}"]))
    );
    let i = run(
        "function handler(e) { return new TextDecoder('utf-8', {fatal: true}).decode(new Uint8Array([0xff])); }",
    );
    assert_eq!(kind(&i), FunctionErrorKind::Execution);
}
