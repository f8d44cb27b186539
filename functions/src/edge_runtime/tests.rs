use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use verge_config::{FunctionDef, Hook};

use super::*;
use crate::alloc_meter::Held;
use crate::edge_fixtures::{def, invocation};
use crate::first_touch::Part;
use crate::outcome::Edits;

/// Load `f` and invoke it once at `hook` within its timeout there, on a current-thread runtime
/// as an edge instance does.
fn run_def(f: &Arc<FunctionDef>, hook: Hook) -> EdgeInvoked {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut loaded = EdgeFunction::load(&f.name, &f.code).unwrap();
    let inv = invocation(f, hook);
    tokio::task::LocalSet::new()
        .block_on(&runtime, loaded.invoke(&Rc::new(inv), f.timeout_at(hook)))
}

/// Load `code` and invoke it once at `hook` within `timeout`.
fn run_at(code: &str, hook: Hook, timeout: Duration) -> EdgeInvoked {
    run_def(&def(code, 1, timeout), hook)
}

fn run(code: &str) -> EdgeInvoked {
    run_at(code, Hook::ViewerRequest, Duration::from_secs(5))
}

fn edits(invoked: EdgeInvoked) -> Edits {
    match invoked.result {
        Ok(Outcome::Continue(edits)) => edits,
        other => panic!("expected edits, got {other:?}"),
    }
}

fn failure_kind(invoked: &EdgeInvoked) -> FunctionErrorKind {
    match &invoked.result {
        Err(e) => e.kind,
        Ok(o) => panic!("expected a failure, got {o:?}"),
    }
}

fn header<'a>(edits: &'a Edits, name: &str) -> Option<&'a str> {
    edits
        .headers
        .as_ref()?
        .value_of(name)
        .and_then(|v| std::str::from_utf8(v).ok())
}

/// The `x-out` header a viewer-request handler set.
fn x_out(code: &str) -> String {
    let e = edits(run(code));
    header(&e, "x-out").unwrap_or_default().to_owned()
}

const ADD_HEADER_BODY: &str = "const request = event.Records[0].cf.request; \
    request.headers['x-ab'] = [{ key: 'X-AB', value: request.querystring + ':' + request.clientIp }];";

#[test]
fn commonjs_esm_async_and_callback_forms_give_the_same_answer() {
    let forms = [
        format!(
            "exports.handler = async (event, context) => {{ {ADD_HEADER_BODY} return request; }};"
        ),
        format!(
            "module.exports.handler = async function (event) {{ {ADD_HEADER_BODY} return request; }};"
        ),
        format!(
            "module.exports = {{ handler: (event, context, callback) => {{ {ADD_HEADER_BODY} callback(null, request); }} }};"
        ),
        format!(
            "'use strict';\nexports.handler = (event, context, callback) => {{ {ADD_HEADER_BODY} setTimeout(() => callback(null, request), 5); }};"
        ),
        format!(
            "import crypto from 'crypto';\nexport const handler = async (event) => {{ {ADD_HEADER_BODY} return request; }};"
        ),
        format!("export default async function (event) {{ {ADD_HEADER_BODY} return request; }}"),
        format!(
            "export const handler = (event, context, callback) => {{ {ADD_HEADER_BODY} context.succeed(request); }};"
        ),
    ];
    for code in &forms {
        let e = edits(run(code));
        assert_eq!(header(&e, "x-ab"), Some("a=1:203.0.113.7"), "{code}");
        assert_eq!(e.uri, None, "{code}");
    }
}

#[test]
fn a_non_async_handler_that_returns_instead_of_calling_back_fails_validation() {
    let invoked =
        run("exports.handler = (event, context) => { return event.Records[0].cf.request; };");
    assert_eq!(failure_kind(&invoked), FunctionErrorKind::Validation);
    let message = invoked.result.unwrap_err().message;
    assert!(message.contains("invalid json"), "{message}");
    // Never answering at all is the same kind of failure.
    let silent = run("exports.handler = (event, context, callback) => {};");
    assert_eq!(failure_kind(&silent), FunctionErrorKind::Validation);
}

#[test]
fn throws_rejections_and_callback_errors_are_execution_errors() {
    for code in [
        "exports.handler = async () => { throw new Error('boom'); };",
        "exports.handler = () => Promise.reject(new Error('boom'));",
        "exports.handler = (e, c, callback) => { callback(new Error('boom')); };",
        "exports.handler = (e, c, callback) => { setTimeout(() => { throw new Error('boom'); }, 1); };",
        "exports.handler = (e, c, callback) => { throw new Error('boom'); };",
    ] {
        let invoked = run(code);
        assert_eq!(
            failure_kind(&invoked),
            FunctionErrorKind::Execution,
            "{code}"
        );
        let message = invoked.result.unwrap_err().message;
        assert!(message.contains("boom"), "{code}: {message}");
    }
}

#[test]
fn timers_fire_in_order_and_the_context_has_lambdas_fields() {
    let code = "exports.handler = async (event, context) => {
        const order = [];
        await new Promise((resolve) => {
            setTimeout(() => order.push('b'), 20);
            setTimeout(() => order.push('a'), 5);
            const never = setTimeout(() => order.push('cancelled'), 10);
            clearTimeout(never);
            setTimeout(resolve, 40);
        });
        const r = event.Records[0].cf.request;
        const left = context.getRemainingTimeInMillis();
        r.headers['x-order'] = [{ value: order.join('') }];
        r.headers['x-context'] = [{ value: [context.functionName, context.functionVersion,
            context.awsRequestId, context.memoryLimitInMB, context.invokedFunctionArn,
            left > 0 && left <= 5000].join(',') }];
        return r;
    };";
    let started = Instant::now();
    let e = edits(run(code));
    assert!(started.elapsed() >= Duration::from_millis(40));
    assert_eq!(header(&e, "x-order"), Some("ab"));
    assert_eq!(
        header(&e, "x-context"),
        Some("edge,1,req-1,128,arn:aws:lambda:us-east-1:000000000000:function:edge:1,true")
    );
}

#[test]
fn the_contexts_memory_limit_is_the_functions_memory_mb() {
    let code = "exports.handler = async (event, context) => {
        const r = event.Records[0].cf.request;
        r.headers['x-memory'] = [{ value: context.memoryLimitInMB }];
        return r;
    };";
    let memory = |memory_mb: Option<u32>| {
        let mut f = (*def(code, 1, Duration::from_secs(5))).clone();
        if let Some(mb) = memory_mb {
            f.memory_mb = mb;
        }
        let e = edits(run_def(&Arc::new(f), Hook::OriginRequest));
        header(&e, "x-memory").map(str::to_owned)
    };
    assert_eq!(
        memory(None).as_deref(),
        Some("128"),
        "Lambda@Edge's default"
    );
    assert_eq!(memory(Some(3008)).as_deref(), Some("3008"));
}

/// Check that the run of `code` that gave `invoked` after `took` failed as `kind`, within 20 s,
/// and left its context to be replaced; its message.
fn stopped_as(code: &str, invoked: EdgeInvoked, took: Duration, kind: FunctionErrorKind) -> String {
    assert_eq!(failure_kind(&invoked), kind, "{code}");
    assert!(invoked.poisoned, "{code}");
    assert!(took < Duration::from_secs(20), "{code}: {took:?}");
    invoked.result.unwrap_err().message
}

#[test]
fn an_invocation_past_its_timeout_is_stopped_and_the_context_recycled() {
    let timeout = Duration::from_millis(200);
    // Waiting on a timer past the deadline; spinning before any await; spinning after one.
    for code in [
        "exports.handler = async () => { await new Promise((r) => setTimeout(r, 60000)); };",
        "exports.handler = async () => { while (true) {} };",
        "exports.handler = async () => { await null; for (;;) {} };",
    ] {
        let started = Instant::now();
        let invoked = run_at(code, Hook::OriginRequest, timeout);
        let took = started.elapsed();
        let message = stopped_as(code, invoked, took, FunctionErrorKind::Throttled);
        assert!(took >= timeout, "{code}: {took:?}");
        assert!(
            message.contains("timed out") || message.contains("loop-iteration"),
            "{code}: {message}"
        );
    }
}

/// Load `code` as a function with `memory_mb` and invoke it once at origin-request (30 s).
fn run_with_memory(code: &str, memory_mb: u32) -> EdgeInvoked {
    let f = Arc::new(FunctionDef {
        memory_mb,
        ..(*def(code, 1, Duration::from_secs(30))).clone()
    });
    run_def(&f, Hook::OriginRequest)
}

#[test]
fn an_invocation_holding_more_than_its_memory_is_stopped_as_an_execution_error() {
    // Keeping 1 MB buffers: before any await (boa's budgeted loop), one per promise job
    // after awaits, and one per timer callback.
    for code in [
        "exports.handler = async () => { const kept = []; for (let i = 0; ; i++) { kept.push(new Uint8Array(1000000)); } };",
        "exports.handler = async () => { const kept = []; for (let i = 0; ; i++) { await null; kept.push(new Uint8Array(1000000)); } };",
        "const kept = []; exports.handler = async () => { for (let i = 0; ; i++) { await new Promise((r) => setTimeout(() => { kept.push(new Uint8Array(1000000)); r(); }, 0)); } };",
    ] {
        let started = Instant::now();
        let invoked = run_with_memory(code, 128);
        let took = started.elapsed();
        // The context is replaced, as Lambda replaces a crashed runtime; stopped by the memory
        // check, long before the 30 s timeout.
        let message = stopped_as(code, invoked, took, FunctionErrorKind::Execution);
        assert!(message.contains("128 MB (memory_mb)"), "{code}: {message}");
        eprintln!("stopped in {took:?}: {code}");
    }
}

#[test]
fn memory_churned_through_is_not_memory_held() {
    // 300 MB allocated over the invocation, one buffer of it held at a time. Buffers are freed
    // only by the collector, which boa would not run by itself in time: the check collects
    // before it judges.
    let code = "exports.handler = async (event) => { let total = 0; \
        for (let i = 0; i < 300; i++) { total += new Uint8Array(1000000).length; \
        if (i % 10 === 0) { await null; } } \
        const request = event.Records[0].cf.request; \
        request.headers['x-total'] = [{ key: 'X-Total', value: String(total) }]; return request; };";
    let started = Held::now();
    let edits = edits(run_with_memory(code, 128));
    assert_eq!(header(&edits, "x-total"), Some("300000000"));
    // The churn was real: a limit on what is allocated, not held, would have stopped it.
    let churned = crate::alloc_meter::allocated() - started.allocated_at();
    assert!(churned > 256 << 20, "{churned}");
}

#[test]
fn an_unfired_timers_callback_does_not_outlive_its_invocation() {
    // Each invocation answers before its timer fires; the callback holds 1 MB. The JS map of
    // callbacks is reset after an invocation that started a timer, so they do not pile up.
    let code = "exports.handler = async (event) => { \
        const big = new Uint8Array(1 << 20).fill(1); \
        setTimeout(() => big.length, 60000); \
        return event.Records[0].cf.request; };";
    let f = def(code, 1, Duration::from_secs(5));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut loaded = EdgeFunction::load(&f.name, &f.code).unwrap();
    let inv = Rc::new(invocation(&f, Hook::OriginRequest));
    let local = tokio::task::LocalSet::new();
    let mut invoke = || {
        let invoked = local.block_on(&runtime, loaded.invoke(&inv, Duration::from_secs(5)));
        edits(invoked);
    };
    invoke();
    boa_engine::gc::force_collect();
    let started = Held::now();
    for _ in 0..40 {
        invoke();
    }
    boa_engine::gc::force_collect();
    let held = started.grown();
    assert!(held < 8 << 20, "40 invocations left {held} bytes held");
    // And one that starts no timer or fetch has nothing to reset.
    assert!(!crate::edge_host::take_callbacks_made());
}

#[test]
fn node_modules_are_there_through_require_and_import() {
    let code = "const crypto = require('crypto');
        const { URL, URLSearchParams } = require('url');
        const util = require('node:util');
        const qs = require('querystring');
        exports.handler = async (event) => {
            const r = event.Records[0].cf.request;
            const u = new URL('https://Example.org:443/a/b?x=1&y=two#h');
            u.searchParams.set('x', '2');
            const random = crypto.randomBytes(16);
            const same = crypto.timingSafeEqual(Buffer.from('abc'), Buffer.from('abc'));
            const differ = crypto.timingSafeEqual(Buffer.from('abc'), Buffer.from('abd'));
            let refused = false;
            try { crypto.timingSafeEqual(Buffer.from('a'), Buffer.from('ab')); } catch (e) { refused = e instanceof RangeError; }
            const parts = [
                crypto.createHash('sha256').update('abc').digest('hex').slice(0, 8),
                crypto.createHmac('sha256', 'k').update('m').digest('base64').length,
                random.length, Buffer.isBuffer(random), same, differ, refused,
                crypto.randomUUID().length,
                u.href, u.host, u.pathname, new URLSearchParams('a=1&b=%20c').get('b'),
                require('url').parse('/p?q=1', true).query.q,
                util.format('%s=%d', 'n', 42), util.format('a', { b: 1 }),
                qs.stringify({ k: 'v w' }),
                new util.TextDecoder().decode(new TextEncoder().encode('é')),
            ];
            r.headers['x-out'] = [{ value: parts.join('|') }];
            return r;
        };";
    assert_eq!(
        x_out(code),
        "ba7816bf|44|16|true|true|false|true|36|https://example.org/a/b?x=2&y=two#h|example.org|/a/b| c|1|n=42|a {\"b\":1}|k=v%20w|é"
    );
    let esm = "import { createHash } from 'crypto';\nimport qs from 'node:querystring';\n\
        export async function handler(event) { const r = event.Records[0].cf.request; \
        r.headers['x-h'] = [{ value: createHash('md5').update(qs.stringify({ a: 1 })).digest('hex') }]; return r; }";
    let e = edits(run(esm));
    let h = header(&e, "x-h").unwrap_or_default();
    assert!(
        h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()),
        "{h}"
    );
}

#[test]
fn node_modules_and_globals_a_source_never_names_come_on_first_use() {
    // Names spelled so the load-time scan does not see them: none of these parts (nor
    // `Buffer`) is evaluated at load, each comes on its first `require` or global read.
    let code = "const C = 'cry' + 'pto', U = 'ur' + 'l', T = 'ut' + 'il', F = 'fe' + 'tch';
        const parts = [C + '_node', U, T, F, 'text', 'for' + 'mat', 'tim' + 'ers'];
        const atLoad = parts.map((p) => __verge_has(p)).concat(typeof globalThis['__verge_adopt_' + 'buf' + 'fer']);
        // What the function does to a lazy global before its part comes stays done.
        globalThis['Text' + 'Encoder'] = 5;
        delete globalThis['Text' + 'Decoder'];
        exports.handler = async (event) => {
            const r = event.Records[0].cf.request;
            // Logging formats with the `format` part; a timer needs the `timers` part.
            globalThis['con' + 'sole'].log('%s', 'x');
            await new Promise((done) => globalThis['setTime' + 'out'](done, 1));
            const helpers = require(T);
            const out = [
                atLoad.join(','),
                require(C).randomUUID().length,
                new (require(U)['UR' + 'L'])('https://a.example/x?y=1').searchParams.get('y'),
                new globalThis['UR' + 'L']('http://b.example:80/').host,
                typeof globalThis[F], new globalThis['Head' + 'ers']({ A: '1' }).get('a'),
                helpers.format('%d', 7), new helpers['Text' + 'Decoder']().decode(new helpers['Text' + 'Encoder']().encode('é')),
                globalThis['Text' + 'Encoder'], ('Text' + 'Decoder') in globalThis,
                parts.map((p) => __verge_has(p)).join(','),
            ];
            r.headers['x-out'] = [{ value: out.join('|') }];
            return r;
        };";
    assert_eq!(
        x_out(code),
        "false,false,false,false,false,false,false,undefined|36|1|b.example|function|1|7|é|5|false|true,true,true,true,true,true,true"
    );
}

#[test]
fn globals_persist_between_invocations_of_one_instance() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let code = "let count = 0; exports.handler = async (event) => { count += 1; \
        const r = event.Records[0].cf.request; r.headers['x-count'] = [{ value: String(count) }]; return r; };";
    let f = def(code, 1, Duration::from_secs(1));
    let mut loaded = EdgeFunction::load("edge", code).unwrap();
    let local = tokio::task::LocalSet::new();
    for expected in ["1", "2", "3"] {
        let invoked = local.block_on(
            &runtime,
            loaded.invoke(
                &Rc::new(invocation(&f, Hook::ViewerRequest)),
                Duration::from_secs(1),
            ),
        );
        assert_eq!(header(&edits(invoked), "x-count"), Some(expected));
    }
}

#[test]
fn console_lines_are_captured_with_their_level() {
    let invoked = run(
        "exports.handler = async (event) => { console.log('hello %s', 'world', 3); \
         console.error(new Error('bad').message); return event.Records[0].cf.request; };",
    );
    assert_eq!(
        invoked.logs,
        vec!["INFO\thello world 3".to_owned(), "ERROR\tbad".to_owned()]
    );
}

#[test]
fn load_errors_name_the_problem() {
    let cases = [
        ("exports.other = 1;", "no handler is exported"),
        ("exports.handler = async (event => {", "syntax error"),
        ("throw new Error('at load');", "at load"),
        (
            "import x from 'fs';\nexport const handler = async () => {};",
            "fs",
        ),
    ];
    for (code, expected) in cases {
        let Err(e) = EdgeFunction::load("edge", code) else {
            panic!("{code} loaded");
        };
        assert!(e.0.contains(expected), "{code}: {}", e.0);
    }
    assert!(check_loads("edge", "while (true) {}", Duration::from_secs(2)).is_err());
    assert!(
        check_loads(
            "edge",
            "exports.handler = async () => {};",
            Duration::from_secs(5)
        )
        .is_ok()
    );
}

#[test]
fn the_first_answer_wins_and_a_kept_callback_answers_no_later_invocation() {
    // The callback before the returned promise settles: the callback's answer.
    let first = run("exports.handler = async (event, context, callback) => { \
        const r = event.Records[0].cf.request; \
        r.headers['x-by'] = [{ value: 'callback' }]; callback(null, r); \
        await null; return { status: '500' }; };");
    assert_eq!(header(&edits(first), "x-by"), Some("callback"));
    // `context.fail()` without an error is still an execution error.
    let failed = run("exports.handler = (event, context) => { context.fail(); };");
    assert_eq!(failure_kind(&failed), FunctionErrorKind::Execution);
    // A thenable that is not a native promise is adopted, as `await` would.
    let thenable = run("exports.handler = (event) => ({ then(resolve) { \
        const r = event.Records[0].cf.request; r.headers['x-by'] = [{ value: 'thenable' }]; \
        resolve(r); } });");
    assert_eq!(header(&edits(thenable), "x-by"), Some("thenable"));

    // A callback kept in a global from the first invocation, called during the second: the
    // second invocation is answered by its own promise, not by the stale callback.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let code = "let kept = null; exports.handler = async (event, context, callback) => { \
        const r = event.Records[0].cf.request; \
        if (kept === null) { kept = callback; return r; } \
        kept(null, { status: '418' }); \
        await null; r.headers['x-by'] = [{ value: 'own promise' }]; return r; };";
    let f = def(code, 1, Duration::from_secs(1));
    let mut loaded = EdgeFunction::load("edge", code).unwrap();
    let local = tokio::task::LocalSet::new();
    let mut answers = Vec::new();
    for _ in 0..2 {
        let invoked = local.block_on(
            &runtime,
            loaded.invoke(
                &Rc::new(invocation(&f, Hook::ViewerRequest)),
                Duration::from_secs(1),
            ),
        );
        answers.push(header(&edits(invoked), "x-by").map(str::to_owned));
    }
    assert_eq!(answers, [None, Some("own promise".to_owned())]);
}

/// Load `code` once and invoke it at `hook` once per request id, in order; each invocation's
/// edits, and which of `parts` were to be built on first touch when it started.
fn invoke_in_turn(
    code: &str,
    hook: Hook,
    parts: &[Part],
    request_ids: &[&str],
) -> Vec<(Edits, Vec<bool>)> {
    let f = def(code, 1, Duration::from_secs(5));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut loaded = EdgeFunction::load(&f.name, &f.code).unwrap();
    let local = tokio::task::LocalSet::new();
    request_ids
        .iter()
        .map(|id| {
            let first_touch = loaded.first_touch.as_ref().unwrap();
            let deferred = parts.iter().map(|p| first_touch.defers(*p)).collect();
            let mut inv = invocation(&f, hook);
            inv.request_id = (*id).into();
            let invoked = local.block_on(
                &runtime,
                loaded.invoke(&Rc::new(inv), Duration::from_secs(5)),
            );
            (edits(invoked), deferred)
        })
        .collect()
}

/// [`invoke_in_turn`], with what each invocation set in `x-out` (a request header, or a
/// response header at the response hooks).
fn x_out_per_invocation_at(
    code: &str,
    hook: Hook,
    parts: &[Part],
    request_ids: &[&str],
) -> Vec<(String, Vec<bool>)> {
    invoke_in_turn(code, hook, parts, request_ids)
        .into_iter()
        .map(|(e, deferred)| (header(&e, "x-out").unwrap_or_default().to_owned(), deferred))
        .collect()
}

/// [`x_out_per_invocation_at`] viewer-request, and whether the context was to be built on
/// first touch.
fn x_out_per_invocation(code: &str, request_ids: &[&str]) -> Vec<(String, bool)> {
    x_out_per_invocation_at(code, Hook::ViewerRequest, &[Part::Context], request_ids)
        .into_iter()
        .map(|(out, deferred)| (out, deferred[0]))
        .collect()
}

/// Everything a handler can see of its context, as text.
const CONTEXT_PROBE: &str = "const probe = (context, callback) => {
    'use strict';
    const seen = {
        keys: Object.keys(context),
        names: Object.getOwnPropertyNames(context),
        json: JSON.parse(JSON.stringify(context)),
        spread: Object.keys({ ...context }),
        has: ['awsRequestId' in context, 'nope' in context],
        described: Object.getOwnPropertyDescriptor(context, 'functionName'),
        done: context.done === callback,
        types: [typeof context.succeed, typeof context.fail, typeof context.getRemainingTimeInMillis],
        prototype: Object.getPrototypeOf(context) === Object.prototype,
        extensible: Object.isExtensible(context),
        inspected: require('util').inspect(context),
        forIn: (() => { const k = []; for (const name in context) k.push(name); return k; })(),
    };
    context.callbackWaitsForEmptyEventLoop = false;
    delete context.logStreamName;
    Object.defineProperty(context, 'added', { value: 1, enumerable: true });
    seen.after = JSON.stringify(context);
    Object.freeze(context);
    seen.frozen = Object.isFrozen(context);
    try { context.functionName = 'changed'; seen.assigned = 'no error'; }
    catch (e) { seen.assigned = e.constructor.name; }
    seen.name = context.functionName;
    return JSON.stringify(seen);
};";

#[test]
fn a_context_made_on_first_touch_shows_the_handler_what_a_built_one_does() {
    let code = format!(
        "{CONTEXT_PROBE}
        exports.handler = (event, context, callback) => {{
            const r = event.Records[0].cf.request;
            r.headers['x-out'] = [{{ value: probe(context, callback) }}];
            callback(null, r);
        }};"
    );
    let seen = x_out_per_invocation(&code, &["req-1", "req-1", "req-1"]);
    // The first context is a proxy given its fields by the first touch; once touched, the
    // function's contexts are built in full.
    let deferred: Vec<bool> = seen.iter().map(|(_, d)| *d).collect();
    assert_eq!(deferred, [true, false, false]);
    assert_eq!(seen[0].0, seen[1].0, "made on first touch, then in full");
    assert_eq!(seen[1].0, seen[2].0);
    let v: serde_json::Value = serde_json::from_str(&seen[0].0).unwrap();
    let keys = [
        "functionName",
        "functionVersion",
        "invokedFunctionArn",
        "memoryLimitInMB",
        "awsRequestId",
        "logGroupName",
        "logStreamName",
        "callbackWaitsForEmptyEventLoop",
        "getRemainingTimeInMillis",
        "done",
        "succeed",
        "fail",
    ];
    assert_eq!(v["keys"], serde_json::json!(keys));
    assert_eq!(v["names"], serde_json::json!(keys));
    assert_eq!(v["spread"], serde_json::json!(keys));
    assert_eq!(v["forIn"], serde_json::json!(keys));
    assert_eq!(v["json"]["awsRequestId"], "req-1");
    assert_eq!(v["json"]["callbackWaitsForEmptyEventLoop"], true);
    assert_eq!(v["has"], serde_json::json!([true, false]));
    assert_eq!(
        v["described"],
        serde_json::json!({"value": "edge", "writable": true, "enumerable": true, "configurable": true})
    );
    assert_eq!(v["done"], true);
    assert_eq!(
        v["types"],
        serde_json::json!(["function", "function", "function"])
    );
    assert_eq!(v["prototype"], true);
    assert_eq!(v["extensible"], true);
    assert!(
        v["inspected"].as_str().unwrap().contains("awsRequestId"),
        "{}",
        v["inspected"]
    );
    let after: serde_json::Value = serde_json::from_str(v["after"].as_str().unwrap()).unwrap();
    assert_eq!(after["callbackWaitsForEmptyEventLoop"], false);
    assert!(after.get("logStreamName").is_none());
    assert_eq!(after["added"], 1);
    assert_eq!(v["frozen"], true);
    assert_eq!(
        v["assigned"], "TypeError",
        "a frozen context refuses assignment (strict)"
    );
    assert_eq!(v["name"], "edge");
}

#[test]
fn a_handler_that_never_touches_its_context_keeps_getting_one_made_on_first_touch() {
    let code = "exports.handler = async (event, context) => {
        const r = event.Records[0].cf.request;
        r.headers['x-out'] = [{ value: 'untouched' }];
        return r;
    };";
    let seen = x_out_per_invocation(code, &["req-1", "req-2", "req-3"]);
    assert!(
        seen.iter()
            .all(|(out, deferred)| out == "untouched" && *deferred)
    );
}

#[test]
fn a_context_kept_untouched_from_an_earlier_invocation_belongs_to_that_invocation() {
    // The first invocation keeps its context without touching it; the second reads it and
    // calls its `succeed`, which must not answer the second invocation.
    let code = "let kept;
        exports.handler = async (event, context) => {
            const r = event.Records[0].cf.request;
            if (!kept) {
                kept = context;
                r.headers['x-out'] = [{ value: 'kept' }];
                return r;
            }
            kept.succeed({ status: '403' });
            r.headers['x-out'] = [{ value: [kept.awsRequestId, context.awsRequestId].join(',') }];
            return r;
        };";
    let seen = x_out_per_invocation(code, &["req-1", "req-2"]);
    assert_eq!(seen[0], ("kept".to_owned(), true));
    assert_eq!(
        seen[1].0, "req-1,req-2",
        "each context keeps its own request id"
    );
}

#[test]
fn a_handler_replacing_reflect_does_not_change_a_context_made_on_first_touch() {
    let code = "Reflect.get = () => 'replaced';
        Reflect.ownKeys = () => [];
        exports.handler = (event, context, callback) => {
            const r = event.Records[0].cf.request;
            r.headers['x-out'] = [{ value: context.functionName + ',' + Object.keys(context).length }];
            callback(null, r);
        };";
    let seen = x_out_per_invocation(code, &["req-1"]);
    assert_eq!(seen[0], ("edge,12".to_owned(), true));
}

/// Everything a handler can see of `cf.request` and `cf.config`, as text.
const EVENT_PROBE: &str = "const probe = (event) => {
    'use strict';
    const cf = event.Records[0].cf;
    const described = Object.getOwnPropertyDescriptor(cf, 'request');
    const seen = {
        event: JSON.parse(JSON.stringify(event)),
        cfKeys: Object.keys(cf),
        requestKeys: Object.keys(cf.request),
        configKeys: Reflect.ownKeys(cf.config),
        described: [typeof described.value, described.writable, described.enumerable, described.configurable],
        has: ['uri' in cf.request, 'nope' in cf.config],
        hostKey: cf.request.headers.host[0].key,
        inspected: require('util').inspect(cf.config),
        forIn: (() => { const k = []; for (const name in cf.config) k.push(name); return k; })(),
        assigned: Object.keys(Object.assign({}, cf.request)),
    };
    cf.request.uri = '/changed';
    delete cf.config.distributionId;
    seen.after = JSON.stringify([cf.request.uri, cf.config]);
    return JSON.stringify(seen);
};";

#[test]
fn event_parts_made_on_first_touch_show_the_handler_what_built_ones_do() {
    let code = format!(
        "{EVENT_PROBE}
        exports.handler = async (event) => {{
            const response = event.Records[0].cf.response;
            response.headers['x-out'] = [{{ key: 'X-Out', value: probe(event) }}];
            return response;
        }};"
    );
    let seen = x_out_per_invocation_at(
        &code,
        Hook::OriginResponse,
        &[Part::Request, Part::Config, Part::Context],
        &["req-1", "req-1"],
    );
    // Both parts built on first touch, then in full; the context was never touched.
    assert_eq!(seen[0].1, [true, true, true]);
    assert_eq!(seen[1].1, [false, false, true]);
    assert_eq!(seen[0].0, seen[1].0, "made on first touch, then in full");
    let v: serde_json::Value = serde_json::from_str(&seen[0].0).unwrap();
    let cf = &v["event"]["Records"][0]["cf"];
    assert_eq!(cf["request"]["uri"], "/path");
    assert_eq!(cf["request"]["clientIp"], "203.0.113.7");
    assert_eq!(cf["config"]["eventType"], "origin-response");
    assert_eq!(cf["config"]["requestId"], "req-1");
    assert_eq!(
        v["cfKeys"],
        serde_json::json!(["config", "request", "response"])
    );
    assert_eq!(
        v["requestKeys"],
        serde_json::json!([
            "clientIp",
            "headers",
            "method",
            "querystring",
            "uri",
            "origin"
        ])
    );
    assert_eq!(
        v["configKeys"],
        serde_json::json!([
            "distributionDomainName",
            "distributionId",
            "eventType",
            "requestId"
        ])
    );
    assert_eq!(
        v["described"],
        serde_json::json!(["object", true, true, true])
    );
    assert_eq!(v["has"], serde_json::json!([true, false]));
    assert_eq!(v["hostKey"], "Host");
    assert!(
        v["inspected"].as_str().unwrap().contains("verge.local"),
        "{}",
        v["inspected"]
    );
    let after: serde_json::Value = serde_json::from_str(v["after"].as_str().unwrap()).unwrap();
    assert_eq!(after[0], "/changed");
    assert!(after[1].get("distributionId").is_none());
    assert_eq!(after[1]["eventType"], "origin-response");
}

#[test]
fn a_response_handler_that_never_reads_the_request_keeps_it_made_on_first_touch() {
    let code = "exports.handler = async (event) => {
        const response = event.Records[0].cf.response;
        response.headers['x-out'] = [{ key: 'X-Out', value: response.status }];
        return response;
    };";
    let seen = x_out_per_invocation_at(
        code,
        Hook::OriginResponse,
        &[Part::Request, Part::Config],
        &["req-1", "req-2", "req-3"],
    );
    assert!(
        seen.iter()
            .all(|(out, deferred)| out == "200" && *deferred == [true, true]),
        "{seen:?}"
    );
}

#[test]
fn an_event_part_kept_untouched_past_its_invocation_cannot_be_read() {
    // The first invocation keeps its event's request without reading it; the second reads it.
    let code = "let kept;
        exports.handler = async (event) => {
            const response = event.Records[0].cf.response;
            let out = 'kept';
            if (!kept) {
                kept = event.Records[0].cf.request;
            } else {
                try { out = kept.uri; } catch (e) { out = e.constructor.name + ': ' + e.message; }
            }
            response.headers['x-out'] = [{ key: 'X-Out', value: out }];
            return response;
        };";
    let seen = x_out_per_invocation_at(code, Hook::OriginResponse, &[Part::Request], &["a", "b"]);
    assert_eq!(seen[0].0, "kept");
    assert!(seen[1].0.starts_with("TypeError: "), "{}", seen[1].0);
}

#[test]
fn the_request_of_a_request_hook_is_never_made_on_first_touch() {
    // At origin-request the handler's answer is the request, read back in full: it is built
    // with the event whatever the function did before.
    let code = "exports.handler = async (event) => {
        const request = event.Records[0].cf.request;
        request.headers['x-out'] = [{ key: 'X-Out', value: String(Object.keys(request).length) }];
        return request;
    };";
    let seen = x_out_per_invocation_at(code, Hook::OriginRequest, &[Part::Request], &["a", "b"]);
    assert_eq!(seen[0].0, "6");
    // Never made deferred at this hook, so never touched through a proxy either.
    assert!(seen.iter().all(|(_, d)| d == &[true]));
}

/// Load `code` once and invoke it at origin-request twice; each invocation's edits, and
/// whether `request.origin` was to be built on first touch when it started.
fn origin_request_twice(code: &str) -> Vec<(Edits, bool)> {
    invoke_in_turn(code, Hook::OriginRequest, &[Part::Origin], &["a", "b"])
        .into_iter()
        .map(|(e, deferred)| (e, deferred[0]))
        .collect()
}

#[test]
fn a_router_touching_the_origin_made_on_first_touch_routes_as_with_one_built_in_full() {
    let code = "exports.handler = async (event) => {
        const request = event.Records[0].cf.request;
        request.origin.custom.domainName = 'other.example';
        request.origin.custom.port = 8443;
        request.headers.host = [{ key: 'Host', value: 'other.example' }];
        return request;
    };";
    let seen = origin_request_twice(code);
    assert_eq!(
        seen.iter().map(|(_, d)| *d).collect::<Vec<_>>(),
        [true, false]
    );
    let routed: Vec<String> = seen
        .iter()
        .map(|(e, _)| format!("{:?}", e.origin.as_ref().expect("routed")))
        .collect();
    assert!(
        routed[0].contains("other.example") && routed[0].contains("8443"),
        "{}",
        routed[0]
    );
    assert_eq!(routed[0], routed[1], "made on first touch, then in full");
}

#[test]
fn an_origin_never_touched_is_unchanged_whether_left_out_or_copied() {
    // Returned as the event's own request: the untouched origin is left out (unchanged).
    // Copied into a new object: the proxy is read as its origin, built then: unchanged too.
    for code in [
        "exports.handler = async (event) => {
            const request = event.Records[0].cf.request;
            request.headers['x-out'] = [{ key: 'X-Out', value: 'kept' }];
            return request;
        };",
        "exports.handler = async (event) => {
            const request = event.Records[0].cf.request;
            request.headers['x-out'] = [{ key: 'X-Out', value: 'copied' }];
            return { ...request };
        };",
    ] {
        let seen = origin_request_twice(code);
        for (e, _) in &seen {
            assert!(e.origin.is_none(), "{code}: {:?}", e.origin);
            assert!(header(e, "x-out").is_some(), "{code}");
        }
        // Only the copy builds the origin (when it is read back), which counts as a touch.
        let deferred: Vec<bool> = seen.iter().map(|(_, d)| *d).collect();
        if code.contains("...request") {
            assert_eq!(deferred, [true, false], "{code}");
        } else {
            assert_eq!(deferred, [true, true], "{code}");
        }
    }
}

#[test]
fn a_returned_origin_made_on_first_touch_is_checked_as_one_built_in_full() {
    // An origin moved where a response belongs is read as what it is, not left out.
    let code = "exports.handler = async (event) => {
        const request = event.Records[0].cf.request;
        return { status: '200', origin: request.origin };
    };";
    let f = def(code, 1, Duration::from_secs(5));
    let invoked = run_def(&f, Hook::OriginRequest);
    assert_eq!(
        failure_kind(&invoked),
        FunctionErrorKind::Validation,
        "{:?}",
        invoked.result
    );
}

#[test]
fn a_polluted_object_prototype_does_not_reach_the_traps_of_parts_made_on_first_touch() {
    // Names of traps the proxies leave out, put on `Object.prototype` (as a prototype-polluting
    // merge would): a proxy's handler object must not inherit them.
    let code = "Object.prototype.getPrototypeOf = () => { throw new Error('polluted'); };
        Object.prototype.isExtensible = 'polluted';
        Object.prototype.setPrototypeOf = 'polluted';
        exports.handler = (event, context, callback) => {
            const r = event.Records[0].cf.request;
            const seen = [Object.getPrototypeOf(context) === Object.prototype,
                Object.isExtensible(context), context.functionName,
                Object.isExtensible(event.Records[0].cf.config)];
            r.headers['x-out'] = [{ value: seen.join(',') }];
            callback(null, r);
        };";
    let seen = x_out_per_invocation(code, &["req-1"]);
    assert_eq!(seen[0], ("true,true,edge,true".to_owned(), true));
}
