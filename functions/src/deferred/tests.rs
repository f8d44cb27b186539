//! A handler sees the same event, and verge reads back the same result, whether the event's
//! parts are built up front or on first touch.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use verge_config::{FunctionDef, Hook, Runtime};

use crate::cff_event::{self, CffEvent};
use crate::cff_runtime::LoadedFunction;
use crate::invocation::{Invocation, RequestSnapshot, ResponseSnapshot};
use crate::outcome::{FunctionError, FunctionErrorKind, Outcome};

/// Generous: these tests compare answers, not speed.
const BUDGET: Duration = Duration::from_secs(5);

fn invocation(hook: Hook, query: &str) -> Invocation {
    let header = |n: &str, v: &str| (n.to_owned(), v.as_bytes().to_vec());
    Invocation {
        function: Arc::new(FunctionDef::inline("f", Runtime::CloudfrontJs2, "")),
        hook,
        request_id: "rid-1".into(),
        request: RequestSnapshot {
            method: "GET".into(),
            uri: "/index.html".into(),
            querystring: query.into(),
            has_query: !query.is_empty(),
            headers: vec![
                header("host", "example.com"),
                header("accept", "a"),
                header("accept", "b"),
                header("cookie", "s=1; t=2"),
                header("cookie", "s=3"),
            ],
            client_ip: "203.0.113.9".parse().unwrap(),
        },
        response: (hook == Hook::ViewerResponse).then(|| ResponseSnapshot {
            status: 200,
            headers: vec![
                header("content-type", "text/html"),
                header("set-cookie", "id=1; Path=/"),
                header("set-cookie", "id=2; Secure"),
                header("set-cookie", "other=x"),
            ],
        }),
        kvs: None,
        origin: None,
        body: None,
    }
}

type Answer = Result<Outcome, FunctionError>;

/// Run `handler` on each invocation in turn in one context, the event built as `deferred`
/// says, and read each result as the fast pool does.
fn answers(handler: &str, invocations: &[Invocation], deferred: bool) -> Vec<Answer> {
    let mut function = LoadedFunction::load(handler, Runtime::CloudfrontJs2).unwrap();
    invocations
        .iter()
        .map(|inv| {
            let inv = Rc::new(inv.clone());
            let event = match inv.hook {
                Hook::ViewerResponse => CffEvent::viewer_response(&inv),
                _ => CffEvent::viewer_request(&inv),
            };
            let event = if deferred {
                let event = event.deferring(&inv);
                assert!(event.source().is_some());
                event
            } else {
                event
            };
            let result = function.invoke(&event, BUDGET).result;
            result.and_then(|returned| match inv.hook {
                Hook::ViewerResponse => cff_event::viewer_response_outcome(&event, returned),
                _ => cff_event::viewer_request_outcome(&event, returned),
            })
        })
        .collect()
}

/// Both ways give the same answers; returns them.
fn same_both_ways(handler: &str, invocations: &[Invocation]) -> Vec<Answer> {
    let eager = answers(handler, invocations, false);
    let deferred = answers(handler, invocations, true);
    assert_eq!(deferred, eager, "handler: {handler}");
    eager
}

fn request(handler_body: &str) -> Answer {
    let source = format!("function handler(event) {{ {handler_body} }}");
    let mut all = same_both_ways(&source, &[invocation(Hook::ViewerRequest, "a=1&b&a=2")]);
    all.remove(0)
}

fn response(handler_body: &str) -> Answer {
    let source = format!("function handler(event) {{ {handler_body} }}");
    let mut all = same_both_ways(&source, &[invocation(Hook::ViewerResponse, "q=1")]);
    all.remove(0)
}

/// The headers a request edit sends on, as `name: value` lines.
fn header(answer: &Answer, name: &str) -> Option<String> {
    let Ok(Outcome::Continue(edits)) = answer else {
        panic!("not a continued request: {answer:?}");
    };
    let value = edits.headers.as_ref()?.value_of(name)?;
    Some(String::from_utf8_lossy(value).into_owned())
}

#[test]
fn untouched_parts_read_back_as_unchanged() {
    let answer = request("return event.request;");
    assert_eq!(answer, Ok(Outcome::Continue(Default::default())));
    let answer = response("return event.response;");
    assert_eq!(answer, Ok(Outcome::Continue(Default::default())));
}

#[test]
fn parts_read_by_the_handler_hold_the_event_values() {
    let answer = request(
        "var r = event.request; \
         r.headers['x-seen'] = { value: [event.context.requestId, event.context.eventType, \
           event.viewer.ip, r.querystring.a.multiValue[1].value, r.cookies.s.multiValue[1].value, \
           r.cookies.t.value].join(' ') }; \
         return r;",
    );
    assert_eq!(
        header(&answer, "x-seen").as_deref(),
        Some("rid-1 viewer-request 203.0.113.9 2 3 2")
    );
}

#[test]
fn the_whole_event_serializes_and_enumerates_alike() {
    let answer = request(
        "var r = event.request; \
         r.headers['x-json'] = { value: JSON.stringify(event) }; \
         r.headers['x-keys'] = { value: Object.keys(r).join() + '|' + Object.keys(event).join() }; \
         return r;",
    );
    assert_eq!(
        header(&answer, "x-keys").as_deref(),
        Some("method,uri,querystring,headers,cookies|version,context,viewer,request")
    );
    let json = header(&answer, "x-json").unwrap();
    assert!(
        json.contains(r#""cookies":{"s":{"value":"1","multiValue""#),
        "{json}"
    );
    let answer = response(
        "var h = event.response.headers; \
         h['x-json'] = { value: JSON.stringify(event.request) + JSON.stringify(event.response) }; \
         return event.response;",
    );
    let Ok(Outcome::Continue(edits)) = &answer else {
        panic!("{answer:?}");
    };
    let json = edits.headers.as_ref().unwrap().value_of("x-json").unwrap();
    let json = String::from_utf8_lossy(json);
    assert!(
        json.contains(r#""querystring":{"q":{"value":"1"}}"#),
        "{json}"
    );
    assert!(json.contains(r#""attributes":"Secure""#), "{json}");
}

#[test]
fn edits_to_deferred_parts_reach_the_result() {
    let edits = |answer: Answer| match answer {
        Ok(Outcome::Continue(edits)) => edits,
        other => panic!("{other:?}"),
    };
    let e = edits(request(
        "event.request.querystring.c = { value: '3' }; return event.request;",
    ));
    assert_eq!(e.querystring.as_deref(), Some("a=1&a=2&b&c=3"));
    let e = edits(request(
        "event.request.querystring = 'x=1'; return event.request;",
    ));
    assert_eq!(e.querystring.as_deref(), Some("x=1"));
    let e = edits(request("event.request.cookies = {}; return event.request;"));
    let headers = e.headers.unwrap();
    assert_eq!(headers.values_of("cookie"), Some(vec![]), "{headers:?}");
    let e = edits(request(
        "delete event.request.cookies.s; return event.request;",
    ));
    let headers = e.headers.unwrap();
    assert_eq!(headers.value_of("cookie"), Some(&b"t=2"[..]));
    let e = edits(response(
        "event.response.cookies.other.value = '9'; return event.response;",
    ));
    let headers = e.headers.unwrap();
    let lines: Vec<_> = headers
        .values_of("set-cookie")
        .unwrap()
        .into_iter()
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    assert_eq!(lines, ["id=1; Path=/", "id=2; Secure", "other=9"]);
}

#[test]
fn sealed_frozen_and_inherited_parts_behave_as_plain_properties() {
    let answer = request(
        "var r = event.request; Object.freeze(r); \
         var same = r.querystring === r.querystring && r.cookies === r.cookies; \
         r.headers['x-same'] = { value: String(same) }; return r;",
    );
    assert_eq!(header(&answer, "x-same").as_deref(), Some("true"));
    // Assigning through an object that inherits the part gives that object its own property
    // and leaves the request's alone.
    let answer = request(
        "var r = event.request; var child = Object.create(r); child.querystring = 'z=1'; \
         r.headers['x-child'] = { value: JSON.stringify([child.querystring, \
           Object.keys(r.querystring), child.cookies.t.value]) }; return r;",
    );
    assert_eq!(
        header(&answer, "x-child").as_deref(),
        Some(r#"["z=1",["a","b"],"2"]"#)
    );
}

#[test]
fn an_event_kept_past_its_invocation_keeps_the_parts_read_during_it() {
    let handler = "var kept; function handler(event) { \
        var r = event.request; \
        if (kept) { r.headers['x-kept'] = { value: kept.request.querystring.n.value + \
          kept.viewer.ip } } \
        r.querystring; event.viewer; kept = event; return r; }";
    let answers = same_both_ways(
        handler,
        &[
            invocation(Hook::ViewerRequest, "n=1"),
            invocation(Hook::ViewerRequest, "n=2"),
        ],
    );
    assert_eq!(
        header(&answers[1], "x-kept").as_deref(),
        Some("1203.0.113.9")
    );
}

#[test]
fn a_part_never_read_during_its_invocation_throws_when_read_after_it() {
    let handler = "var kept; function handler(event) { \
        var r = event.request; \
        if (kept) { r.headers['x-kept'] = { value: kept.context.requestId } } \
        kept = event; return r; }";
    let mut first = invocation(Hook::ViewerRequest, "n=1");
    first.request_id = "first".into();
    let both = [first, invocation(Hook::ViewerRequest, "n=2")];
    let eager = answers(handler, &both, false);
    assert_eq!(header(&eager[1], "x-kept").as_deref(), Some("first"));
    let deferred = answers(handler, &both, true);
    assert_eq!(deferred[0], eager[0]);
    let error = deferred[1].clone().unwrap_err();
    assert_eq!(error.kind, FunctionErrorKind::Execution, "{error:?}");
    assert!(
        error.message.contains("event.context") && error.message.contains("earlier invocation"),
        "{error:?}"
    );
}

#[test]
fn a_returned_response_made_from_request_parts_reads_them() {
    // A generated response whose cookies are the request's (deferred) cookies object.
    let answer = request(
        "return { statusCode: 302, headers: { location: { value: '/x' } }, \
           cookies: event.request.cookies };",
    );
    let Ok(Outcome::Respond(generated)) = answer else {
        panic!("{answer:?}");
    };
    let set_cookie: Vec<_> = generated
        .headers
        .iter()
        .filter(|(n, _)| n == "set-cookie")
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .collect();
    assert_eq!(set_cookie, ["s=1", "s=3", "t=2"]);
}

#[test]
fn building_a_large_part_is_not_charged_to_the_budget() {
    // 2,000 cookies (16 KB, within CloudFront's 20 KB of headers): building them takes
    // milliseconds, well past a 900 µs budget, and the eager event built them before the
    // budget started.
    let mut inv = invocation(Hook::ViewerRequest, "");
    let cookies: Vec<String> = (0..2000).map(|i| format!("c{i}=v")).collect();
    inv.request.headers = vec![("cookie".into(), cookies.join("; ").into_bytes())];
    let inv = Rc::new(inv);
    // The handler's own work is one lookup, and its answer small to read back.
    let handler = "function handler(event) { \
        return { statusCode: 200, headers: { 'x-c': { value: event.request.cookies.c1999.value } } }; }";
    let mut function = LoadedFunction::load(handler, Runtime::CloudfrontJs2).unwrap();
    let event = CffEvent::viewer_request(&inv).deferring(&inv);
    let invoked = function.invoke(&event, Duration::from_micros(900));
    let answer = invoked
        .result
        .and_then(|r| cff_event::viewer_request_outcome(&event, r));
    let Ok(Outcome::Respond(generated)) = &answer else {
        panic!("{answer:?}");
    };
    assert_eq!(generated.headers, [("x-c".to_owned(), b"v".to_vec())]);
}

#[test]
fn a_part_the_handler_touched_is_built_with_its_later_events() {
    // Reports how each part sits on the event before reading `cookies` (and never `context`).
    let handler = "function handler(event) { \
        var r = event.request; \
        var how = function (o, k) { return 'get' in Object.getOwnPropertyDescriptor(o, k) ? 'deferred' : 'built'; }; \
        r.headers['x-cookies'] = { value: how(r, 'cookies') }; \
        r.headers['x-context'] = { value: how(event, 'context') }; \
        r.cookies.s.value = 'changed'; \
        return r; }";
    let calls = [
        invocation(Hook::ViewerRequest, "n=1"),
        invocation(Hook::ViewerRequest, "n=2"),
        invocation(Hook::ViewerRequest, "n=3"),
    ];
    let deferred = answers(handler, &calls, true);
    let seen: Vec<_> = deferred
        .iter()
        .map(|a| (header(a, "x-cookies"), header(a, "x-context")))
        .collect();
    let pair = |c: &str, x: &str| (Some(c.to_owned()), Some(x.to_owned()));
    assert_eq!(
        seen,
        [
            pair("deferred", "deferred"),
            pair("built", "deferred"),
            pair("built", "deferred"),
        ]
    );
    // The edit reaches the origin whichever way the part was built.
    for answer in &deferred {
        assert_eq!(
            header(answer, "cookie").as_deref(),
            Some("s=changed; s=3; t=2")
        );
    }
}

#[test]
fn a_part_read_twice_at_the_same_place_reads_the_same() {
    // The same property read runs twice: boa caches how it found the property the first time,
    // so building the part must not change how the owner holds it.
    let answer = request(
        "var r = event.request, n = []; \
         for (var i = 0; i < 3; i++) { n.push(Object.keys(r.cookies).length, r.querystring.a.value); } \
         r.headers['x-n'] = { value: n.join(',') }; return r;",
    );
    assert_eq!(header(&answer, "x-n").as_deref(), Some("2,1,2,1,2,1"));
}

#[test]
fn a_viewer_response_handler_that_reads_the_request_has_it_built_from_then_on() {
    let handler = "function handler(event) { \
        var how = function (o, k) { return 'get' in Object.getOwnPropertyDescriptor(o, k) ? 'deferred' : 'built'; }; \
        var seen = how(event, 'request'); \
        var r = event.request; \
        seen += ' ' + how(r, 'cookies') + ' ' + how(r, 'querystring'); \
        event.response.headers['x-seen'] = { value: seen + ' ' + r.cookies.t.value }; \
        return event.response; }";
    let calls = [
        invocation(Hook::ViewerResponse, "q=1"),
        invocation(Hook::ViewerResponse, "q=2"),
    ];
    let deferred = answers(handler, &calls, true);
    let seen: Vec<_> = deferred
        .iter()
        .map(|answer| {
            let Ok(Outcome::Continue(edits)) = answer else {
                panic!("not a continued response: {answer:?}");
            };
            let headers = edits.headers.as_ref().expect("a header was added");
            let value = headers.value_of("x-seen").expect("x-seen");
            String::from_utf8_lossy(value).into_owned()
        })
        .collect();
    assert_eq!(
        seen,
        ["deferred deferred deferred 2", "built built deferred 2"]
    );
}
