use std::sync::Arc;

use boa_engine::Context;
use serde_json::{Value, json};
use verge_config::{FunctionDef, Hook, Runtime};

use super::*;
use crate::invocation::RequestSnapshot;

/// The event as a handler sees it: written onto a JS heap, read back as JSON (which builds
/// every deferred part).
fn event_json(event: &CffEvent<'_>) -> Value {
    let mut context = Context::default();
    let prototype = context.intrinsics().constructors().object().prototype();
    let kit = Kit::new(prototype, &mut context);
    let js = event.write(
        &mut JsBuilder {
            keys: &mut kit.keys.borrow_mut(),
            context: &mut context,
        },
        &kit,
    );
    crate::js_json::to_json(&js, &mut context).unwrap().unwrap()
}

/// The event built in full, after checking that the one with deferred parts reads the same.
fn eager_and_deferred(i: &Invocation, hook: Hook, make: fn(&Invocation) -> CffEvent<'_>) -> Value {
    let eager = event_json(&make(i));
    let source = Rc::new(Invocation { hook, ..i.clone() });
    let event = make(&source).deferring(&source);
    assert!(event.source().is_some(), "the event defers its parts");
    assert_eq!(
        event_json(&event),
        eager,
        "deferred parts read as the eager event"
    );
    eager
}

fn viewer_request_event(i: &Invocation) -> Value {
    eager_and_deferred(i, Hook::ViewerRequest, |i| CffEvent::viewer_request(i))
}

fn viewer_response_event(i: &Invocation) -> Value {
    eager_and_deferred(i, Hook::ViewerResponse, |i| CffEvent::viewer_response(i))
}

/// Read a returned request as the worker does: against the event built from the invocation.
fn request_outcome(i: &Invocation, returned: Option<Value>) -> Result<Outcome, FunctionError> {
    viewer_request_outcome(
        &CffEvent::viewer_request(i),
        returned.as_ref().map(Returned::from),
    )
}

fn response_outcome(i: &Invocation, returned: Option<Value>) -> Result<Outcome, FunctionError> {
    viewer_response_outcome(
        &CffEvent::viewer_response(i),
        returned.as_ref().map(Returned::from),
    )
}

fn inv(query: &str, headers: &[(&str, &str)]) -> Invocation {
    Invocation {
        function: Arc::new(FunctionDef::inline("f", Runtime::CloudfrontJs2, "")),
        hook: Hook::ViewerRequest,
        request_id: "rid".into(),
        request: RequestSnapshot {
            method: "GET".into(),
            uri: "/index.html".into(),
            querystring: query.into(),
            has_query: !query.is_empty(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect(),
            client_ip: "203.0.113.9".parse().unwrap(),
        },
        response: None,
        kvs: None,
        origin: None,
        body: None,
    }
}

fn edits(o: Outcome) -> Edits {
    match o {
        Outcome::Continue(e) => e,
        other => panic!("{other:?}"),
    }
}

#[test]
fn event_has_the_cloudfront_shape() {
    let i = inv(
        "a=1&b&a=2",
        &[
            ("host", "example.com"),
            ("accept", "x"),
            ("accept", "y"),
            ("cookie", "s=1; t=2"),
            ("cookie", "s=3"),
            ("x-forwarded-proto", "https"),
        ],
    );
    let e = viewer_request_event(&i);
    assert_eq!(e["version"], "1.0");
    assert_eq!(e["context"]["eventType"], "viewer-request");
    assert_eq!(e["context"]["requestId"], "rid");
    assert_eq!(e["viewer"]["ip"], "203.0.113.9");
    let r = &e["request"];
    assert_eq!(r["method"], "GET");
    assert_eq!(r["uri"], "/index.html");
    assert_eq!(
        r["querystring"]["a"],
        json!({"value": "1", "multiValue": [{"value": "1"}, {"value": "2"}]})
    );
    assert_eq!(r["querystring"]["b"], json!({"value": ""}));
    assert_eq!(r["headers"]["host"], json!({"value": "example.com"}));
    assert_eq!(r["headers"]["accept"]["multiValue"][1]["value"], "y");
    assert!(r["headers"].get("cookie").is_none(), "Cookie is split out");
    assert!(
        r["headers"].get("x-forwarded-proto").is_none(),
        "disallowed headers are hidden"
    );
    assert_eq!(r["cookies"]["t"], json!({"value": "2"}));
    assert_eq!(r["cookies"]["s"]["multiValue"][1]["value"], "3");
    assert_eq!(e["request"]["querystring"].as_object().unwrap().len(), 2);
}

#[test]
fn empty_query_is_an_empty_object() {
    let e = viewer_request_event(&inv("", &[]));
    assert_eq!(e["request"]["querystring"], json!({}));
    assert_eq!(e["request"]["cookies"], json!({}));
}

#[test]
fn unchanged_request_has_no_edits() {
    let i = inv("a=1", &[("host", "h")]);
    let e = viewer_request_event(&i);
    let out = edits(request_outcome(&i, Some(e["request"].clone())).unwrap());
    assert_eq!(out, Edits::default());
}

#[test]
fn uri_header_query_and_cookie_edits_are_applied() {
    let i = inv(
        "a=1",
        &[
            ("host", "h"),
            ("cookie", "s=1"),
            ("x-forwarded-proto", "https"),
        ],
    );
    let e = viewer_request_event(&i);
    let mut r = e["request"].clone();
    r["uri"] = json!("/new/index.html");
    r["querystring"]["z"] = json!({"value": ""});
    r["headers"]["x-added"] = json!({"value": "v"});
    r["cookies"]["s"] = json!({"value": "2"});
    r["cookies"]["u"] = json!({"value": "3"});
    let out = edits(request_outcome(&i, Some(r)).unwrap());
    assert_eq!(out.uri.as_deref(), Some("/new/index.html"));
    assert_eq!(out.querystring.as_deref(), Some("a=1&z"));
    let edited = out.headers.unwrap();
    assert_eq!(
        edited.values_of("x-forwarded-proto"),
        None,
        "hidden headers are not touched"
    );
    let h = edited.applied_to(&i.request.headers);
    let get = |n: &str| {
        h.iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
    };
    assert_eq!(get("x-added").as_deref(), Some("v"));
    assert_eq!(get("cookie").as_deref(), Some("s=2; u=3"));
    assert_eq!(
        get("x-forwarded-proto").as_deref(),
        Some("https"),
        "hidden headers pass through"
    );
}

#[test]
fn only_the_headers_a_function_changed_are_edits() {
    let mut i = inv(
        "",
        &[
            ("host", "h"),
            ("accept", "x"),
            ("x-gone", "g"),
            ("x-same", "s"),
            ("cookie", "a=1"),
        ],
    );
    // Not UTF-8: the function sees its lossy text, and returning that text leaves the bytes.
    i.request.headers.push(("x-raw".into(), vec![0xff, b'v']));
    let e = viewer_request_event(&i);
    let mut r = e["request"].clone();
    r["headers"]["accept"] = json!({"value": "y"});
    r["headers"]["x-new"] = json!({"value": "n"});
    // The same single value written as a `multiValue` is no change.
    r["headers"]["x-same"] = json!({"value": "s", "multiValue": [{"value": "s"}]});
    r["headers"].as_object_mut().unwrap().remove("x-gone");
    let edited = edits(request_outcome(&i, Some(r)).unwrap())
        .headers
        .unwrap();
    assert_eq!(
        edited,
        HeaderEdits::Changes {
            set: vec![
                ("accept".into(), b"y".to_vec()),
                ("x-new".into(), b"n".to_vec())
            ],
            removed: vec!["x-gone".into()],
        }
    );
    let after = edited.applied_to(&i.request.headers);
    assert!(
        after.contains(&("x-raw".into(), vec![0xff, b'v'])),
        "{after:?}"
    );
    assert!(
        after.contains(&("cookie".into(), b"a=1".to_vec())),
        "{after:?}"
    );
    // A read-only header may be neither removed nor changed; unchanged, it is no edit.
    let bad = |change: &dyn Fn(&mut Value)| {
        let mut r = e["request"].clone();
        change(&mut r);
        request_outcome(&i, Some(r)).unwrap_err().message
    };
    assert!(
        bad(&|r| drop(r["headers"].as_object_mut().unwrap().remove("host"))).contains("read-only")
    );
    assert!(bad(&|r| r["headers"]["host"] = json!({"value": "other"})).contains("read-only"));
    assert!(bad(&|r| r["headers"]["via"] = json!({"value": "1.1 x"})).contains("read-only"));
    // `cookie` under `headers` is checked, then left to `cookies`.
    assert!(bad(&|r| r["headers"]["cookie"] = json!({"value": "a\nb"})).contains("CR, LF"));
    let mut r = e["request"].clone();
    r["headers"]["cookie"] = json!({"value": "ignored=1"});
    assert_eq!(
        edits(request_outcome(&i, Some(r)).unwrap()),
        Edits::default()
    );
}

#[test]
fn removing_one_of_thousands_of_headers_takes_linear_time() {
    // Finding the removed names by searching the returned object per name is quadratic: with
    // 40,000 names (more than `server.max_header_bytes` lets a viewer send, so that the two
    // are far apart) it took ~1.4 s here in a release build, a set of the returned names a few
    // milliseconds. The bound leaves a wide margin on both sides.
    let names: Vec<String> = (0..40_000).map(|n| format!("x-{n}")).collect();
    let headers: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
    let i = inv("", &headers);
    let mut returned = serde_json::Map::new();
    for name in &names[1..] {
        returned.insert(name.clone(), json!({"value": "v"}));
    }
    let request = json!({"method": "GET", "uri": "/index.html", "headers": returned});
    let started = std::time::Instant::now();
    let edited = edits(request_outcome(&i, Some(request)).unwrap()).headers;
    assert!(
        started.elapsed() < std::time::Duration::from_millis(700),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        edited,
        Some(HeaderEdits::Changes {
            set: vec![],
            removed: vec!["x-0".into()]
        })
    );
}

#[test]
fn multivalue_write_back_rules() {
    let i = inv("", &[("accept", "x"), ("accept", "y")]);
    let e = viewer_request_event(&i);
    // Changing `value` replaces the first value and keeps the rest.
    let mut r = e["request"].clone();
    r["headers"]["accept"]["value"] = json!("X");
    let h = edits(request_outcome(&i, Some(r)).unwrap())
        .headers
        .unwrap()
        .applied_to(&i.request.headers);
    let accept: Vec<_> = h
        .iter()
        .filter(|(n, _)| n == "accept")
        .map(|(_, v)| v.clone())
        .collect();
    assert_eq!(accept, vec![b"X".to_vec(), b"y".to_vec()]);
    // A modified `multiValue` wins over `value`.
    let mut r = e["request"].clone();
    r["headers"]["accept"] =
        json!({"value": "ignored", "multiValue": [{"value": "p"}, {"value": "q"}, {"value": "r"}]});
    let h = edits(request_outcome(&i, Some(r)).unwrap())
        .headers
        .unwrap()
        .applied_to(&i.request.headers);
    assert_eq!(h.iter().filter(|(n, _)| n == "accept").count(), 3);
}

#[test]
fn a_raw_string_querystring_is_accepted() {
    let i = inv("b=2&a=1", &[]);
    let e = viewer_request_event(&i);
    let mut r = e["request"].clone();
    r["querystring"] = json!("a=1&b=2");
    let out = edits(request_outcome(&i, Some(r)).unwrap());
    assert_eq!(out.querystring.as_deref(), Some("a=1&b=2"));
}

fn rejected(i: &Invocation, change: impl FnOnce(&mut serde_json::Value)) -> String {
    let e = viewer_request_event(i);
    let mut r = e["request"].clone();
    change(&mut r);
    let err = request_outcome(i, Some(r)).unwrap_err();
    assert_eq!(err.kind, FunctionErrorKind::Validation);
    assert_eq!(err.status(), 502);
    err.message
}

#[test]
fn invalid_returns_are_validation_errors() {
    let i = inv("", &[("host", "h")]);
    assert!(rejected(&i, |r| r["body"] = json!("x")).contains("unexpected field `body`"));
    assert!(rejected(&i, |r| r["method"] = json!("POST")).contains("read-only"));
    assert!(
        rejected(&i, |r| r["headers"]["host"] = json!({"value": "other"}))
            .contains("`host` is read-only")
    );
    assert!(
        rejected(&i, |r| {
            r["headers"].as_object_mut().unwrap().remove("host");
        })
        .contains("`host` is read-only")
    );
    assert!(
        rejected(&i, |r| r["headers"]["x-forwarded-proto"] =
            json!({"value": "http"}))
        .contains("may not be set")
    );
    assert!(rejected(&i, |r| r["headers"]["x-a"] = json!({"value": "a\r\nb"})).contains("CR, LF"));
    assert!(rejected(&i, |r| r["headers"]["X-Up"] = json!({"value": "a"})).contains("lowercase"));
    assert!(
        rejected(&i, |r| r["headers"]["x-n"] = json!({"value": 5})).contains("must be a string")
    );
    assert!(rejected(&i, |r| r["uri"] = json!("no-slash")).contains("not a valid path"));
    assert!(rejected(&i, |r| r["querystring"] = json!("a b")).contains("space"));
    assert!(
        request_outcome(&i, None)
            .unwrap_err()
            .message
            .contains("undefined")
    );
}

#[test]
fn generated_responses_are_read_with_their_rules() {
    let i = inv("", &[]);
    // Only a status is enough.
    match request_outcome(&i, Some(json!({"statusCode": 204}))).unwrap() {
        Outcome::Respond(r) => assert_eq!((r.status, r.body.len()), (204, 0)),
        other => panic!("{other:?}"),
    }
    let full = json!({
        "statusCode": 302,
        "statusDescription": "Found",
        "headers": {"location": {"value": "https://example.com/"}},
        "cookies": {"s": {"value": "1", "attributes": "Path=/; Secure"}},
        "body": {"encoding": "base64", "data": "aGk="},
    });
    match request_outcome(&i, Some(full)).unwrap() {
        Outcome::Respond(r) => {
            assert_eq!(r.status, 302);
            assert!(
                r.headers
                    .contains(&("location".into(), b"https://example.com/".to_vec()))
            );
            assert!(
                r.headers
                    .contains(&("set-cookie".into(), b"s=1; Path=/; Secure".to_vec()))
            );
            assert_eq!(r.body, b"hi");
        }
        other => panic!("{other:?}"),
    }
    let bad = json!({"statusCode": 200, "body": {"encoding": "base64", "data": "!!"}});
    assert!(
        request_outcome(&i, Some(bad))
            .unwrap_err()
            .message
            .contains("base64")
    );
    let bad = json!({"statusCode": 99});
    assert!(request_outcome(&i, Some(bad)).is_err());
}

/// The origin's headers a viewer-response invocation carries.
fn response_headers(i: &Invocation) -> HeaderList {
    i.response
        .as_ref()
        .map(|r| r.headers.clone())
        .unwrap_or_default()
}

fn response_inv(status: u16, headers: &[(&str, &str)]) -> Invocation {
    let mut i = inv("", &[("host", "h")]);
    i.hook = Hook::ViewerResponse;
    i.response = Some(crate::invocation::ResponseSnapshot {
        status,
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect(),
    });
    i
}

#[test]
fn viewer_response_event_has_status_headers_and_set_cookies() {
    let i = response_inv(
        200,
        &[
            ("content-type", "text/html"),
            ("set-cookie", "a=1; Path=/; Secure"),
            ("set-cookie", "a=2"),
            ("set-cookie", "b=3"),
        ],
    );
    let e = viewer_response_event(&i);
    assert_eq!(e["context"]["eventType"], "viewer-response");
    let r = &e["response"];
    assert_eq!(r["statusCode"], 200);
    assert_eq!(r["statusDescription"], "OK");
    assert_eq!(r["headers"]["content-type"]["value"], "text/html");
    assert!(
        r["headers"].get("set-cookie").is_none(),
        "Set-Cookie is split out"
    );
    assert_eq!(r["cookies"]["a"]["value"], "1");
    assert_eq!(r["cookies"]["a"]["attributes"], "Path=/; Secure");
    assert_eq!(r["cookies"]["a"]["multiValue"][1]["value"], "2");
    assert_eq!(r["cookies"]["b"], json!({"value": "3", "attributes": ""}));
    assert_eq!(e["request"]["uri"], "/index.html");
}

#[test]
fn viewer_response_edits_status_headers_cookies_and_body() {
    let i = response_inv(200, &[("content-type", "text/html"), ("set-cookie", "a=1")]);
    let e = viewer_response_event(&i);
    let mut r = e["response"].clone();
    r["statusCode"] = json!(418);
    r["headers"]["strict-transport-security"] = json!({"value": "max-age=63072000"});
    r["cookies"]["s"] = json!({"value": "x", "attributes": "HttpOnly"});
    r["body"] = json!({"encoding": "text", "data": "<p>hi</p>"});
    let out = edits(response_outcome(&i, Some(r)).unwrap());
    assert_eq!(out.status, Some(418));
    let h = out.headers.unwrap().applied_to(&response_headers(&i));
    assert!(h.contains(&(
        "strict-transport-security".into(),
        b"max-age=63072000".to_vec()
    )));
    assert!(h.contains(&("set-cookie".into(), b"a=1".to_vec())));
    assert!(h.contains(&("set-cookie".into(), b"s=x; HttpOnly".to_vec())));
    assert_eq!(out.body.as_deref(), Some(&b"<p>hi</p>"[..]));
    // Only headers changed: Set-Cookie from the origin is kept.
    let mut r = e["response"].clone();
    r["headers"]["x-frame-options"] = json!({"value": "DENY"});
    let edited = edits(response_outcome(&i, Some(r)).unwrap())
        .headers
        .unwrap();
    assert_eq!(edited.values_of("set-cookie"), None);
    let h = edited.applied_to(&response_headers(&i));
    assert!(h.contains(&("set-cookie".into(), b"a=1".to_vec())));
    // Unchanged: no edits at all.
    let unchanged = edits(response_outcome(&i, Some(e["response"].clone())).unwrap());
    assert_eq!(unchanged, Edits::default());
}

#[test]
fn viewer_response_rules_are_enforced() {
    let i = response_inv(200, &[("via", "1.1 origin")]);
    let e = viewer_response_event(&i);
    let bad = |change: &dyn Fn(&mut serde_json::Value)| {
        let mut r = e["response"].clone();
        change(&mut r);
        response_outcome(&i, Some(r)).unwrap_err().message
    };
    assert!(bad(&|r| r["headers"]["via"] = json!({"value": "x"})).contains("read-only"));
    assert!(bad(&|r| r["uri"] = json!("/x")).contains("unexpected field"));
    assert!(bad(&|r| r["statusCode"] = json!(99)).contains("statusCode"));
    assert!(bad(&|r| r["body"] = json!({"encoding": "base64", "data": "%%"})).contains("base64"));
    assert!(bad(&|r| r["headers"]["x-cache"] = json!({"value": "Hit"})).contains("may not be set"));
}

#[test]
fn many_header_names_group_and_compare_through_the_index() {
    // Past `Grouped::LINEAR` names the grouping switches to a hash index: repeats of early and
    // late names must still land in one entry, and an unchanged return must still be no edit.
    let names: Vec<String> = (0..40).map(|n| format!("x-h{n}")).collect();
    let mut headers: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "a")).collect();
    headers.push(("x-h3", "b"));
    headers.push(("x-h30", "c"));
    let i = inv("", &headers);
    let e = viewer_request_event(&i);
    assert_eq!(e["request"]["headers"].as_object().unwrap().len(), 40);
    assert_eq!(
        e["request"]["headers"]["x-h3"]["multiValue"][1]["value"],
        "b"
    );
    assert_eq!(
        e["request"]["headers"]["x-h30"]["multiValue"][1]["value"],
        "c"
    );
    let out = edits(request_outcome(&i, Some(e["request"].clone())).unwrap());
    assert_eq!(out, Edits::default());
    let mut r = e["request"].clone();
    r["headers"]["x-h30"]["value"] = json!("C");
    let h = edits(request_outcome(&i, Some(r)).unwrap())
        .headers
        .unwrap()
        .applied_to(&i.request.headers);
    let x30: Vec<_> = h
        .iter()
        .filter(|(n, _)| n == "x-h30")
        .map(|(_, v)| v.as_slice())
        .collect();
    assert_eq!(
        x30,
        [b"C".as_slice(), b"c".as_slice()],
        "value replaced, the rest kept"
    );
}

#[test]
fn an_unchanged_map_in_another_key_order_is_no_edit() {
    let i = inv("a=1&b=2", &[("host", "h"), ("accept", "x")]);
    let e = viewer_request_event(&i);
    let mut r = e["request"].clone();
    let reversed = |v: &Value| {
        Value::Object(
            v.as_object()
                .unwrap()
                .iter()
                .rev()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    };
    r["headers"] = reversed(&r["headers"]);
    r["querystring"] = reversed(&r["querystring"]);
    assert_eq!(
        edits(request_outcome(&i, Some(r)).unwrap()),
        Edits::default()
    );
}

#[test]
fn an_integral_float_status_is_a_status() {
    // JS has one number type: `Math.floor(x)` may be held as a float, and is still 302.
    let i = inv("", &[]);
    match request_outcome(&i, Some(json!({"statusCode": 302.0}))).unwrap() {
        Outcome::Respond(r) => assert_eq!(r.status, 302),
        other => panic!("{other:?}"),
    }
    assert!(request_outcome(&i, Some(json!({"statusCode": 302.5}))).is_err());
    let i = response_inv(200, &[]);
    let unchanged = edits(response_outcome(&i, Some(json!({"statusCode": 200.0}))).unwrap());
    assert_eq!(unchanged.status, None);
}

#[test]
fn event_types_are_the_hooks_own_names_in_both_tiers() {
    for hook in [
        Hook::ViewerRequest,
        Hook::OriginRequest,
        Hook::OriginResponse,
        Hook::ViewerResponse,
    ] {
        assert_eq!(event_type(hook).to_std_string_escaped(), hook.event_type());
    }
}
