use std::time::Duration;

use boa_engine::Context;
use serde_json::{Value, json};
use verge_config::Hook;

use super::*;
use crate::edge_fixtures::{def, invocation};
use crate::js_json::KeyCache;

/// The event of `inv` as a handler sees it: written into a boa context and read back as JSON.
fn event(inv: &Invocation) -> Value {
    let mut context = Context::default();
    let mut keys = KeyCache::default();
    let js = EdgeEvent::new(inv).write(
        &mut JsBuilder {
            keys: &mut keys,
            context: &mut context,
        },
        None,
    );
    crate::js_json::to_json(&js, &mut context).unwrap().unwrap()
}

/// Read a returned value as the instance does: against the event built from the invocation.
fn outcome(
    inv: &Invocation,
    _event: &Value,
    returned: Option<Value>,
) -> Result<Outcome, FunctionError> {
    EdgeEvent::new(inv).outcome(returned.as_ref().map(Returned::from).as_ref())
}

/// `value` with every object's keys in reverse order (an unchanged part must still be no edit).
fn reversed(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .rev()
                .map(|(k, v)| (k.clone(), reversed(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(reversed).collect()),
        other => other.clone(),
    }
}

fn at(hook: Hook) -> (Invocation, Value) {
    let f = def(
        "exports.handler = async () => {};",
        1,
        Duration::from_secs(1),
    );
    let inv = invocation(&f, hook);
    let ev = event(&inv);
    (inv, ev)
}

/// The event's request (or response) with `change` applied, as a handler would return it.
fn returned(ev: &Value, part: &str, change: impl FnOnce(&mut Value)) -> Option<Value> {
    let mut v = ev["Records"][0]["cf"][part].clone();
    change(&mut v);
    Some(v)
}

fn kind(r: Result<Outcome, FunctionError>) -> FunctionErrorKind {
    r.err().map(|e| e.kind).expect("a failure")
}

#[test]
fn the_event_has_lambda_edges_shape_at_every_hook() {
    let (_, ev) = at(Hook::OriginRequest);
    let cf = &ev["Records"][0]["cf"];
    assert_eq!(cf["config"]["eventType"], "origin-request");
    assert_eq!(cf["config"]["requestId"], "req-1");
    let req = &cf["request"];
    assert_eq!(req["clientIp"], "203.0.113.7");
    assert_eq!(req["querystring"], "a=1");
    assert_eq!(req["uri"], "/path");
    assert_eq!(
        req["headers"]["user-agent"],
        json!([{ "key": "User-Agent", "value": "test" }])
    );
    // `cookie` is an ordinary header in Lambda@Edge.
    assert_eq!(req["headers"]["cookie"][0]["value"], "ab=b");
    assert_eq!(req["origin"]["custom"]["domainName"], "example.org");
    assert_eq!(req["origin"]["custom"]["protocol"], "https");
    assert_eq!(req["origin"]["custom"]["port"], 443);
    assert!(cf.get("response").is_none());

    let (_, ev) = at(Hook::OriginResponse);
    let resp = &ev["Records"][0]["cf"]["response"];
    assert_eq!(resp["status"], "200");
    assert_eq!(resp["statusDescription"], "OK");
    assert_eq!(resp["headers"]["content-type"][0]["key"], "Content-Type");

    let (_, ev) = at(Hook::ViewerRequest);
    assert!(ev["Records"][0]["cf"]["request"].get("origin").is_none());
    assert_eq!(title_case("x-amz-meta-a"), "X-Amz-Meta-A");
}

#[test]
fn request_edits_are_read_back_with_keys_filled_in_or_checked() {
    let (inv, ev) = at(Hook::OriginRequest);
    let r = returned(&ev, "request", |r| {
        r["uri"] = json!("/new");
        r["querystring"] = json!("b=2");
        r["headers"]["x-new"] = json!([{ "value": "1" }, { "key": "X-NEW", "value": "2" }]);
    });
    let Ok(Outcome::Continue(edits)) = outcome(&inv, &ev, r) else {
        panic!("not continued")
    };
    assert_eq!(edits.uri.as_deref(), Some("/new"));
    assert_eq!(edits.querystring.as_deref(), Some("b=2"));
    let Some(HeaderEdits::Whole(headers)) = edits.headers else {
        panic!(
            "Lambda@Edge hands its headers back whole: {:?}",
            edits.headers
        )
    };
    let new: Vec<_> = headers.iter().filter(|(n, _)| n == "x-new").collect();
    assert_eq!(new.len(), 2);

    // A key naming another header, a value that is not a string, an upper-case name.
    for bad in [
        json!([{ "key": "X-Other", "value": "1" }]),
        json!([{ "value": 1 }]),
        json!({ "value": "1" }),
    ] {
        let r = returned(&ev, "request", |r| r["headers"]["x-new"] = bad.clone());
        assert_eq!(
            kind(outcome(&inv, &ev, r)),
            FunctionErrorKind::Validation,
            "{bad}"
        );
    }
    let r = returned(&ev, "request", |r| {
        r["headers"]["X-Upper"] = json!([{ "value": "1" }])
    });
    assert_eq!(kind(outcome(&inv, &ev, r)), FunctionErrorKind::Validation);
}

#[test]
fn read_only_and_disallowed_headers_are_refused_per_hook() {
    let (inv, ev) = at(Hook::OriginRequest);
    for (name, value) in [
        ("via", "1.1 other"),
        ("content-length", "3"),
        ("accept-encoding", "gzip"),
        ("x-forwarded-proto", "https"),
        ("connection", "close"),
    ] {
        let r = returned(&ev, "request", |r| {
            r["headers"][name] = json!([{ "value": value }])
        });
        assert_eq!(
            kind(outcome(&inv, &ev, r)),
            FunctionErrorKind::Validation,
            "{name}"
        );
    }
    // Host is read-only only at viewer-request.
    let r = returned(&ev, "request", |r| {
        r["headers"]["host"] = json!([{ "value": "other.example" }])
    });
    assert!(outcome(&inv, &ev, r).is_ok());
    let (vinv, vev) = at(Hook::ViewerRequest);
    let r = returned(&vev, "request", |r| {
        r["headers"]["host"] = json!([{ "value": "other.example" }])
    });
    assert_eq!(kind(outcome(&vinv, &vev, r)), FunctionErrorKind::Validation);
    let r = returned(&vev, "request", |r| {
        r["headers"]["cloudfront-viewer-country"] = json!([{ "value": "US" }])
    });
    assert_eq!(kind(outcome(&vinv, &vev, r)), FunctionErrorKind::Validation);
    let r = returned(&vev, "request", |r| r["method"] = json!("POST"));
    assert_eq!(kind(outcome(&vinv, &vev, r)), FunctionErrorKind::Validation);
    // Without include-body, a body added by the handler is refused, never ignored.
    let r = returned(&vev, "request", |r| {
        r["body"] = json!({ "action": "replace", "encoding": "text", "data": "x" })
    });
    let e = outcome(&vinv, &vev, r).unwrap_err();
    assert!(e.message.contains("include_body"), "{}", e.message);
}

#[test]
fn generated_responses_are_checked_against_cloudfronts_rules() {
    let (inv, ev) = at(Hook::ViewerRequest);
    let ok = json!({ "status": "302", "statusDescription": "Found",
        "headers": { "location": [{ "key": "Location", "value": "/login" }] } });
    let Ok(Outcome::Respond(r)) = outcome(&inv, &ev, Some(ok)) else {
        panic!("not generated")
    };
    assert_eq!(r.status, 302);
    assert_eq!(r.headers, vec![("location".to_owned(), b"/login".to_vec())]);
    let b64 = json!({ "status": 200, "body": "aGk=", "bodyEncoding": "base64" });
    let Ok(Outcome::Respond(r)) = outcome(&inv, &ev, Some(b64)) else {
        panic!("not generated")
    };
    assert_eq!(r.body, b"hi");
    let big = "x".repeat(MAX_VIEWER_RESPONSE + 1);
    for bad in [
        json!({ "status": "199" }),
        json!({ "status": "600" }),
        json!({ "status": "abc" }),
        json!({ "status": "204", "body": "not allowed" }),
        json!({ "status": "200", "body": "%%%", "bodyEncoding": "base64" }),
        json!({ "status": "200", "body": big }),
        json!({ "status": "200", "unknown": 1 }),
    ] {
        assert_eq!(
            kind(outcome(&inv, &ev, Some(bad.clone()))),
            FunctionErrorKind::Validation,
            "{bad}"
        );
    }
    // The origin-request cap is 1 MB.
    let (oinv, oev) = at(Hook::OriginRequest);
    let r = json!({ "status": "200", "body": "x".repeat(MAX_VIEWER_RESPONSE + 1) });
    assert!(outcome(&oinv, &oev, Some(r)).is_ok());
    // Not an object, or nothing at all.
    assert_eq!(
        kind(outcome(&inv, &ev, Some(json!("text")))),
        FunctionErrorKind::Validation
    );
    assert_eq!(
        kind(outcome(&inv, &ev, None::<Value>)),
        FunctionErrorKind::Validation
    );
}

#[test]
fn response_edits_follow_the_hook_rules() {
    let (inv, ev) = at(Hook::OriginResponse);
    let r = returned(&ev, "response", |r| {
        r["status"] = json!("302");
        r["headers"]["location"] = json!([{ "value": "/fallback" }]);
        r["body"] = json!("moved");
    });
    let Ok(Outcome::Continue(edits)) = outcome(&inv, &ev, r) else {
        panic!("not continued")
    };
    assert_eq!(edits.status, Some(302));
    assert_eq!(edits.body.as_deref(), Some(&b"moved"[..]));
    let (vinv, vev) = at(Hook::ViewerResponse);
    let r = returned(&vev, "response", |r| r["status"] = json!("404"));
    assert_eq!(kind(outcome(&vinv, &vev, r)), FunctionErrorKind::Validation);
    let r = returned(&vev, "response", |r| {
        r["headers"]["content-encoding"] = json!([{ "value": "gzip" }])
    });
    assert_eq!(kind(outcome(&vinv, &vev, r)), FunctionErrorKind::Validation);
    let r = returned(&vev, "response", |r| {
        r["headers"]["strict-transport-security"] = json!([{ "value": "max-age=63072000" }])
    });
    assert!(outcome(&vinv, &vev, r).is_ok());
}

#[test]
fn changing_request_origin_custom_routes_the_request() {
    let (inv, ev) = at(Hook::OriginRequest);
    let r = returned(&ev, "request", |r| {
        r["origin"]["custom"]["domainName"] = json!("b.example");
        r["origin"]["custom"]["port"] = json!(8080);
        r["origin"]["custom"]["protocol"] = json!("http");
        r["origin"]["custom"]["path"] = json!("/v2");
        r["origin"]["custom"]["customHeaders"] =
            json!({ "x-key": [{ "key": "X-Key", "value": "k" }] });
    });
    let Ok(Outcome::Continue(edits)) = outcome(&inv, &ev, r) else {
        panic!("not continued")
    };
    let Some(OriginChoice::Update(u)) = edits.origin else {
        panic!("no origin change")
    };
    assert_eq!(u.domain_name.as_deref(), Some("b.example"));
    assert_eq!((u.port, u.https), (Some(8080), Some(false)));
    assert_eq!(u.origin_path.as_deref(), Some("/v2"));
    assert_eq!(u.custom_headers, Some(vec![("x-key".into(), "k".into())]));
    for bad in [
        json!({ "custom": { "domainName": "10.0.0.1" } }),
        json!({ "custom": { "domainName": "a.example", "port": 81 } }),
        json!({ "custom": { "domainName": "a.example", "protocol": "ftp" } }),
        json!({ "custom": { "domainName": "a.example", "path": "/trailing/" } }),
    ] {
        let r = returned(&ev, "request", |r| r["origin"] = bad.clone());
        assert_eq!(
            kind(outcome(&inv, &ev, r)),
            FunctionErrorKind::Validation,
            "{bad}"
        );
    }
    // Unchanged origin: no route change.
    let r = returned(&ev, "request", |_| {});
    let Ok(Outcome::Continue(edits)) = outcome(&inv, &ev, r) else {
        panic!("not continued")
    };
    assert_eq!(edits, Edits::default());
}

#[test]
fn switching_to_an_s3_origin_routes_to_the_bucket_over_https() {
    let (inv, ev) = at(Hook::OriginRequest);
    // As AWS's custom-to-S3 example writes it.
    let r = returned(&ev, "request", |r| {
        r["origin"] = json!({ "s3": {
            "domainName": "amzn-s3-demo-bucket.s3.amazonaws.com",
            "region": "",
            "authMethod": "none",
            "path": "",
            "customHeaders": {},
        }});
    });
    let Ok(Outcome::Continue(edits)) = outcome(&inv, &ev, r) else {
        panic!("not continued")
    };
    let Some(OriginChoice::Update(u)) = edits.origin else {
        panic!("no origin change")
    };
    assert_eq!(
        u.domain_name.as_deref(),
        Some("amzn-s3-demo-bucket.s3.amazonaws.com")
    );
    assert_eq!((u.port, u.https), (Some(443), Some(true)));
    assert_eq!(u.origin_path.as_deref(), Some(""));
    assert_eq!(u.kind, Some(OriginKind::S3 { region: "".into() }));
    assert_eq!(u.custom_headers, Some(Vec::new()));
    // The fewest fields: authMethod defaults to none; a region and headers are kept.
    let r = returned(&ev, "request", |r| {
        r["origin"] = json!({ "s3": {
            "domainName": "b.s3.eu-west-1.amazonaws.com",
            "region": "eu-west-1",
            "path": "/images",
            "customHeaders": { "x-key": [{ "key": "X-Key", "value": "k" }] },
        }});
    });
    let Ok(Outcome::Continue(edits)) = outcome(&inv, &ev, r) else {
        panic!("not continued")
    };
    let Some(OriginChoice::Update(u)) = edits.origin else {
        panic!("no origin change")
    };
    assert_eq!(
        u.kind,
        Some(OriginKind::S3 {
            region: "eu-west-1".into()
        })
    );
    assert_eq!(u.origin_path.as_deref(), Some("/images"));
    assert_eq!(u.custom_headers, Some(vec![("x-key".into(), "k".into())]));
    let long = format!("{}.s3.amazonaws.com", "b".repeat(112));
    for (bad, why) in [
        (
            json!({ "s3": { "domainName": "b.s3.amazonaws.com",
                            "authMethod": "origin-access-identity", "region": "us-east-1" } }),
            "an origin access identity cannot be used when switching from a custom origin",
        ),
        (
            json!({ "s3": { "domainName": "b.s3.amazonaws.com", "authMethod": "sigv4" } }),
            "is not none or origin-access-identity",
        ),
        (
            json!({ "s3": { "domainName": "B.s3.amazonaws.com" } }),
            "must be lower case",
        ),
        (json!({ "s3": { "domainName": long } }), "at most 128"),
        (
            json!({ "s3": { "region": "us-east-1" } }),
            "domainName is required",
        ),
        (
            json!({ "s3": { "domainName": "b.s3.amazonaws.com", "port": 443 } }),
            "unexpected field `port`",
        ),
        (
            json!({ "s3": { "domainName": "b.s3.amazonaws.com", "path": "images" } }),
            "request.origin.s3.path",
        ),
        (
            json!({ "s3": { "domainName": "b.s3.amazonaws.com",
                            "customHeaders": { "x-edge-x": [{ "value": "x" }] } } }),
            "request.origin.s3.customHeaders may not hold x-edge-x",
        ),
        (
            json!({ "s3": { "domainName": "b.s3.amazonaws.com" },
                    "custom": { "domainName": "a.example" } }),
            "exactly one of custom or s3",
        ),
        (json!({}), "exactly one of custom or s3"),
    ] {
        let r = returned(&ev, "request", |r| r["origin"] = bad.clone());
        let error = outcome(&inv, &ev, r).expect_err(&bad.to_string());
        assert_eq!(error.kind, FunctionErrorKind::Validation, "{bad}");
        assert!(error.message.contains(why), "{bad}: {}", error.message);
    }
    // A custom header of the origin may not also be a request header (custom or S3 alike).
    for kind in ["custom", "s3"] {
        let r = returned(&ev, "request", |r| {
            r["headers"]["x-key"] = json!([{ "key": "X-Key", "value": "viewer" }]);
            r["origin"] = json!({ kind: { "domainName": "b.example",
                "customHeaders": { "x-key": [{ "key": "X-Key", "value": "k" }] } } });
        });
        let error = outcome(&inv, &ev, r).expect_err(kind);
        assert!(
            error
                .message
                .contains("may not hold x-key, which request.headers has"),
            "{kind}: {}",
            error.message
        );
    }
}

#[test]
fn an_s3_origin_shows_as_s3_in_the_event_and_unchanged_is_no_edit() {
    for hook in [Hook::OriginRequest, Hook::OriginResponse] {
        let (mut inv, _) = at(hook);
        let origin = inv.origin.as_mut().unwrap();
        origin.domain_name = "b.s3.amazonaws.com".into();
        origin.s3_region = Some("us-west-2".into());
        origin.custom_headers = vec![("x-key".into(), "k".into())];
        let ev = event(&inv);
        assert_eq!(
            ev["Records"][0]["cf"]["request"]["origin"],
            json!({ "s3": {
                "authMethod": "none",
                "customHeaders": { "x-key": [{ "key": "X-Key", "value": "k" }] },
                "domainName": "b.s3.amazonaws.com",
                "path": "",
                "region": "us-west-2",
            }})
        );
    }
    let (mut inv, _) = at(Hook::OriginRequest);
    inv.origin.as_mut().unwrap().s3_region = Some(String::new());
    let ev = event(&inv);
    let r = returned(&ev, "request", |_| {});
    assert_eq!(
        outcome(&inv, &ev, r).unwrap(),
        Outcome::Continue(Edits::default())
    );
    // A changed region is a new origin.
    let r = returned(&ev, "request", |r| {
        r["origin"]["s3"]["region"] = json!("eu-west-1")
    });
    let Ok(Outcome::Continue(edits)) = outcome(&inv, &ev, r) else {
        panic!("not continued")
    };
    assert!(edits.origin.is_some());
}

#[test]
fn include_body_puts_the_body_in_base64_and_reads_back_replacements() {
    // Without include-body there is no body field, and adding one is refused.
    let (inv, ev) = at(Hook::OriginRequest);
    assert!(ev["Records"][0]["cf"]["request"].get("body").is_none());
    let added = returned(&ev, "request", |r| {
        r["body"] = json!({"action": "replace", "encoding": "text", "data": "x"});
    });
    assert_eq!(
        kind(outcome(&inv, &ev, added)),
        FunctionErrorKind::Validation
    );

    for hook in [Hook::ViewerRequest, Hook::OriginRequest] {
        let (mut inv, _) = at(hook);
        inv.body = Some(crate::invocation::RequestBody {
            data: bytes::Bytes::from_static(b"a=1&b=%C3%A9"),
            truncated: true,
        });
        let ev = event(&inv);
        let body = &ev["Records"][0]["cf"]["request"]["body"];
        assert_eq!(
            body,
            &json!({"action": "read-only", "data": "YT0xJmI9JUMzJUE5",
                    "encoding": "base64", "inputTruncated": true})
        );
        let edits = |change: Value| match outcome(
            &inv,
            &ev,
            returned(&ev, "request", |r| r["body"] = change),
        ) {
            Ok(Outcome::Continue(e)) => Ok(e.body),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e.message),
        };
        // Changes to data without `replace` are ignored, as on CloudFront.
        assert_eq!(
            edits(json!({"action": "read-only", "data": "eA=="})),
            Ok(None)
        );
        assert_eq!(
            edits(json!({"action": "replace", "encoding": "text", "data": "new"})),
            Ok(Some(b"new".to_vec()))
        );
        assert_eq!(
            edits(json!({"action": "replace", "encoding": "base64", "data": "bmV3"})),
            Ok(Some(b"new".to_vec()))
        );
        let cap = body_cap(hook);
        assert_eq!(
            edits(json!({"action": "replace", "encoding": "text", "data": "z".repeat(cap)}))
                .map(|b| b.map(|b| b.len())),
            Ok(Some(cap))
        );
        for (bad, why) in [
            (
                json!({"action": "replace", "encoding": "text", "data": "z".repeat(cap + 1)}),
                "at most",
            ),
            (
                json!({"action": "replace", "encoding": "base64", "data": "%%%"}),
                "not valid base64",
            ),
            (
                json!({"action": "replace", "encoding": "hex", "data": ""}),
                "hex",
            ),
            (json!({"action": "rewrite", "data": ""}), "rewrite"),
            (json!({"action": "replace", "data": 5}), "must be a string"),
            (
                json!({"action": "replace", "size": 5}),
                "unexpected field `size`",
            ),
            (json!("text"), "must be an object"),
        ] {
            let message = edits(bad.clone()).expect_err(&bad.to_string());
            assert!(message.contains(why), "{bad}: {message}");
        }
    }
    assert_eq!(
        (body_cap(Hook::ViewerRequest), body_cap(Hook::OriginRequest)),
        (40 * 1024, 1024 * 1024)
    );
}

#[test]
fn an_unchanged_event_part_is_no_edit_at_every_hook_in_any_key_order() {
    for hook in [
        Hook::ViewerRequest,
        Hook::OriginRequest,
        Hook::OriginResponse,
        Hook::ViewerResponse,
    ] {
        let f = def("", 1, Duration::from_secs(1));
        let mut inv = invocation(&f, hook);
        // Every part the comparison covers: repeated and non-UTF-8 headers, a hidden
        // (disallowed) header, origin custom headers, an included body.
        let extra = [
            ("x-multi".to_owned(), b"1".to_vec()),
            ("x-multi".to_owned(), b"2".to_vec()),
            ("x-bytes".to_owned(), vec![0x61, 0xff]),
            ("connection".to_owned(), b"keep-alive".to_vec()),
        ];
        inv.request.headers.extend(extra.clone());
        if let Some(r) = &mut inv.response {
            r.headers.extend(extra);
        }
        if let Some(o) = &mut inv.origin {
            o.custom_headers = vec![("x-origin-key".into(), "k".into())];
        }
        if matches!(hook, Hook::ViewerRequest | Hook::OriginRequest) {
            inv.body = Some(crate::invocation::RequestBody {
                data: bytes::Bytes::from_static(b"abc"),
                truncated: false,
            });
        }
        let ev = event(&inv);
        let part = if inv.response.is_some() {
            "response"
        } else {
            "request"
        };
        let as_sent = ev["Records"][0]["cf"][part].clone();
        for returned in [as_sent.clone(), reversed(&as_sent)] {
            match outcome(&inv, &ev, Some(returned)) {
                Ok(Outcome::Continue(edits)) => assert_eq!(edits, Edits::default(), "{hook:?}"),
                other => panic!("{hook:?}: {other:?}"),
            }
        }
        // The hidden header is not in the event, and a header changed is an edit that keeps it.
        assert!(as_sent["headers"].get("connection").is_none());
        let changed = returned(&ev, part, |r| {
            r["headers"]["x-multi"][1]["value"] = json!("3");
        });
        let Ok(Outcome::Continue(edits)) = outcome(&inv, &ev, changed) else {
            panic!("{hook:?}: not continued")
        };
        let Some(HeaderEdits::Whole(headers)) = edits.headers else {
            panic!("{hook:?}: not a whole list: {:?}", edits.headers)
        };
        assert!(
            headers.contains(&("x-multi".to_owned(), b"3".to_vec())),
            "{hook:?}"
        );
        assert!(
            headers.contains(&("connection".to_owned(), b"keep-alive".to_vec())),
            "{hook:?}"
        );
    }
}
