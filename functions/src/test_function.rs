//! `verge test-function`: run a CloudFront Function (or a Lambda@Edge handler) on an event file, offline, and report what
//! AWS's `TestFunction` reports (`ComputeUtilization`, `FunctionExecutionLogs`,
//! `FunctionErrorMessage`, `FunctionOutput`) — plus `ValidationErrors`: what production would
//! reject (a read-only header changed, a disallowed header set, …), which AWS's own test misses.
//!
//! Event files are accepted as people write them for AWS: `multivalue` spelled lowercase,
//! `context` fields missing, `cookies`/`querystring` omitted.
//!
//! The function runs on a thread of its own under the same hard memory ceiling as in the
//! pools ([`crate::alloc_meter`]): a handler allocating without end inside one promise job is
//! reported with the pool's memory error instead of growing until the machine runs out; the
//! parked thread goes when the command exits.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::mpsc::{Sender, channel};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value, json};
use verge_config::{FunctionDef, Hook, Runtime};

use crate::cff_event::{self, CffEvent};
use crate::cff_runtime::LoadedFunction;
use crate::invocation::{HeaderList, Invocation, RequestSnapshot, ResponseSnapshot};
use crate::kvs::KvStore;
use crate::outcome::Outcome;
use crate::returned::Returned;

/// What `verge test-function` prints, with AWS's field names.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct TestResult {
    /// Percent of the budget used, as a string ("0"–"100").
    pub compute_utilization: String,
    /// `console.log` lines.
    pub function_execution_logs: Vec<String>,
    /// "" on success.
    pub function_error_message: String,
    /// A string holding JSON: `{"request":…}` or `{"response":…}`; "" when the function failed.
    pub function_output: String,
    /// What production would reject in the returned value.
    pub validation_errors: Vec<String>,
}

/// Rename `multivalue` keys to `multiValue` everywhere (the aws-samples fixtures use the former).
fn normalize(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(v) = map.remove("multivalue") {
                map.entry("multiValue").or_insert(v);
            }
            for v in map.values_mut() {
                normalize(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize),
        _ => {}
    }
}

/// `name → {value, multiValue?}` back to ordered pairs.
fn pairs(map: Option<&Value>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Some(Value::Object(map)) = map else {
        return out;
    };
    for (name, entry) in map {
        match entry.get("multiValue") {
            Some(Value::Array(items)) => {
                for item in items {
                    if let Some(v) = item.get("value").and_then(Value::as_str) {
                        out.push((name.clone(), v.to_owned()));
                    }
                }
            }
            _ => {
                let v = entry.get("value").and_then(Value::as_str).unwrap_or("");
                out.push((name.clone(), v.to_owned()));
            }
        }
    }
    out
}

fn header_list(map: Option<&Value>) -> HeaderList {
    pairs(map)
        .into_iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.into_bytes()))
        .collect()
}

/// The request (and response) an event describes, as the proxy would have snapshotted them.
fn snapshots(event: &Value) -> (Hook, RequestSnapshot, Option<ResponseSnapshot>) {
    let request = &event["request"];
    let querystring = match request.get("querystring") {
        Some(Value::String(raw)) => raw.clone(),
        other => pairs(other)
            .into_iter()
            .map(|(n, v)| if v.is_empty() { n } else { format!("{n}={v}") })
            .collect::<Vec<_>>()
            .join("&"),
    };
    let mut headers = header_list(request.get("headers"));
    let cookies = pairs(request.get("cookies"));
    if !cookies.is_empty() {
        let line = cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        headers.push(("cookie".into(), line.into_bytes()));
    }
    let snapshot = RequestSnapshot {
        method: request["method"].as_str().unwrap_or("GET").to_owned(),
        uri: request["uri"].as_str().unwrap_or("/").to_owned(),
        has_query: !querystring.is_empty(),
        querystring,
        headers,
        client_ip: event["viewer"]["ip"]
            .as_str()
            .and_then(|ip| ip.parse::<IpAddr>().ok())
            .unwrap_or(IpAddr::from([127, 0, 0, 1])),
    };
    let response = event.get("response").filter(|r| r.is_object()).map(|r| {
        let mut headers = header_list(r.get("headers"));
        if let Some(Value::Object(cookies)) = r.get("cookies") {
            for (name, c) in cookies {
                let value = c.get("value").and_then(Value::as_str).unwrap_or("");
                let attributes = c.get("attributes").and_then(Value::as_str).unwrap_or("");
                let line = if attributes.is_empty() {
                    format!("{name}={value}")
                } else {
                    format!("{name}={value}; {attributes}")
                };
                headers.push(("set-cookie".into(), line.into_bytes()));
            }
        }
        ResponseSnapshot {
            status: r["statusCode"].as_u64().map_or(200, |s| s as u16),
            headers,
        }
    });
    let hook = match event["context"]["eventType"].as_str() {
        Some("viewer-response") => Hook::ViewerResponse,
        Some(_) => Hook::ViewerRequest,
        None if response.is_some() => Hook::ViewerResponse,
        None => Hook::ViewerRequest,
    };
    (hook, snapshot, response)
}

/// Fill what AWS test events may leave out, so the function sees a complete event.
fn complete(event: &mut Value, hook: Hook) {
    let Value::Object(map) = event else { return };
    map.entry("version").or_insert(json!("1.0"));
    let context = map
        .entry("context")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(context) = context {
        context
            .entry("distributionDomainName")
            .or_insert(json!("verge.local"));
        context.entry("distributionId").or_insert(json!("VERGE"));
        context
            .entry("requestId")
            .or_insert(json!("verge-test-function"));
        context
            .entry("eventType")
            .or_insert(json!(hook.event_type()));
    }
    if let Some(Value::Object(request)) = map.get_mut("request") {
        request.entry("querystring").or_insert(json!({}));
        request.entry("headers").or_insert(json!({}));
        request.entry("cookies").or_insert(json!({}));
    }
}

/// Where the thread a test runs on sends its answer: its result, or the one its ceiling hook
/// sends just before it parks.
type Answer = Sender<Result<TestResult, String>>;

/// Run `source` on `event` (JSON text) within `budget` (CloudFront Functions) or its hook's
/// timeout (`lambda-edge`), on a thread of its own under the hard memory ceiling.
pub fn test_function(
    source: &str,
    runtime: Runtime,
    event: &str,
    budget: Duration,
) -> Result<TestResult, String> {
    test_function_with_kvs(source, runtime, event, budget, None)
}

/// Why a KeyValueStore is refused with the `lambda-edge` runtime.
pub const NO_KVS_AT_THE_EDGE: &str =
    "a KeyValueStore is for CloudFront Functions; lambda-edge handlers have none";

/// [`test_function`] with a KeyValueStore associated, as `kvs = "…"` associates one in the
/// configuration: what `cf.kvs()` reads. Only CloudFront Functions have one (AWS gives
/// Lambda@Edge none), so `lambda-edge` with a store is refused.
pub fn test_function_with_kvs(
    source: &str,
    runtime: Runtime,
    event: &str,
    budget: Duration,
    kvs: Option<Arc<KvStore>>,
) -> Result<TestResult, String> {
    if runtime == Runtime::LambdaEdge && kvs.is_some() {
        return Err(NO_KVS_AT_THE_EDGE.into());
    }
    let (source, event) = (source.to_owned(), event.to_owned());
    let (answer, answers) = channel();
    std::thread::Builder::new()
        .name("verge-test-function".into())
        .stack_size(crate::edge_pool::INSTANCE_STACK)
        .spawn(move || {
            let result = if runtime == Runtime::LambdaEdge {
                test_edge_function(&source, &event, &answer)
            } else {
                test_fast_function(&source, runtime, &event, budget, kvs, &answer)
            };
            let _ = answer.send(result);
        })
        .map_err(|e| format!("cannot start a thread for the function: {e}"))?;
    answers
        .recv()
        .map_err(|_| "the function's thread ended without an answer".to_owned())?
}

/// Percent of `limit` that `used` is, as `ComputeUtilization` writes it (at most 100).
fn percent(used: Duration, limit: Duration) -> String {
    let percent = (used.as_secs_f64() / limit.as_secs_f64() * 100.0).ceil();
    (percent.min(100.0) as u32).to_string()
}

/// Put the calling thread under `ceiling` bytes (from what it holds now) while the handler's
/// JavaScript runs; the allocation that would pass it answers `message` and parks the thread.
fn arm_ceiling(answer: &Answer, ceiling: u64, message: String, limit: Duration) {
    let answer = answer.clone();
    let started = Instant::now();
    crate::alloc_meter::on_ceiling(Box::new(move || {
        let _ = answer.send(Ok(TestResult {
            compute_utilization: percent(started.elapsed(), limit),
            function_execution_logs: Vec::new(),
            function_error_message: message,
            function_output: String::new(),
            validation_errors: Vec::new(),
        }));
    }));
    crate::alloc_meter::set_ceiling(Some(ceiling));
}

/// [`test_function`] for the CloudFront Functions runtimes, on the calling thread.
fn test_fast_function(
    source: &str,
    runtime: Runtime,
    event: &str,
    budget: Duration,
    kvs: Option<Arc<KvStore>>,
    answer: &Answer,
) -> Result<TestResult, String> {
    let mut event: Value =
        serde_json::from_str(event).map_err(|e| format!("the event is not JSON: {e}"))?;
    if !event.is_object() || !event["request"].is_object() {
        return Err("the event needs a `request` object (CloudFront Functions event shape)".into());
    }
    normalize(&mut event);
    let (hook, request, response) = snapshots(&event);
    complete(&mut event, hook);
    let invocation = Invocation {
        function: Arc::new(FunctionDef {
            runtime,
            ..test_def(source, budget)
        }),
        hook,
        request_id: event["context"]["requestId"]
            .as_str()
            .unwrap_or("verge-test-function")
            .to_owned(),
        request,
        response,
        kvs,
        origin: None,
        body: None,
    };
    let mut function = LoadedFunction::load(source, runtime).map_err(|e| e.0)?;
    crate::host::enter(&invocation);
    arm_ceiling(
        answer,
        crate::fast_pool::HARD_CEILING,
        crate::fast_pool::over_hard_ceiling().message,
        budget,
    );
    let mut invoked = function.invoke(&event, budget);
    crate::alloc_meter::set_ceiling(None);
    let decisions = crate::host::leave();
    if let Some(what) = decisions.memory
        && invoked.result.is_ok()
    {
        invoked.result = Err(crate::outcome::FunctionError {
            kind: crate::outcome::FunctionErrorKind::Throttled,
            message: format!("the function went over its memory limit ({what})"),
            edge: false,
        });
    }
    let mut result = TestResult {
        compute_utilization: invoked.utilization.to_string(),
        function_execution_logs: decisions.logs,
        function_error_message: String::new(),
        function_output: String::new(),
        validation_errors: Vec::new(),
    };
    let returned = match invoked.result {
        Ok(returned) => returned,
        Err(e) => {
            result.function_error_message = e.message;
            return Ok(result);
        }
    };
    let is_response = hook == Hook::ViewerResponse
        || returned
            .as_ref()
            .is_some_and(|r| r.get("statusCode").is_some());
    let key = if is_response { "response" } else { "request" };
    let mut output = returned.clone().map_or(Value::Null, Returned::into_json);
    if let Value::Object(o) = &mut output {
        o.entry("cookies").or_insert(json!({}));
    }
    result.function_output = json!({ key: output }).to_string();
    // The production rules, checked against the event as the proxy would have built it.
    let checked = match hook {
        Hook::ViewerResponse => {
            cff_event::viewer_response_outcome(&CffEvent::viewer_response(&invocation), returned)
        }
        _ => cff_event::viewer_request_outcome(&CffEvent::viewer_request(&invocation), returned),
    };
    match checked {
        Ok(Outcome::Continue(_) | Outcome::Respond(_)) => {}
        Err(e) => result.validation_errors.push(e.message),
    }
    Ok(result)
}

/// `[{key, value}]` header arrays back to a header list (names lower-cased).
fn edge_headers(map: Option<&Value>) -> HeaderList {
    let mut out = Vec::new();
    if let Some(Value::Object(map)) = map {
        for (name, items) in map {
            for item in items.as_array().into_iter().flatten() {
                if let Some(v) = item.get("value").and_then(Value::as_str) {
                    out.push((name.to_ascii_lowercase(), v.as_bytes().to_vec()));
                }
            }
        }
    }
    out
}

/// The invocation a Lambda@Edge event (`Records[0].cf`) describes.
fn edge_invocation(source: &str, cf: &Value) -> Result<Invocation, String> {
    let hook = match cf["config"]["eventType"].as_str() {
        None => Hook::ViewerRequest,
        Some(name) => Hook::ALL
            .into_iter()
            .find(|h| h.event_type() == name)
            .ok_or_else(|| format!("unknown eventType `{name}`"))?,
    };
    let request = &cf["request"];
    // `request.origin`: a custom origin, or an S3 one (whose fields are a subset).
    let s3 = &request["origin"]["s3"];
    // The event a handler sees shows what verge can route: an S3 origin without credentials.
    if let Some(method) = s3["authMethod"].as_str()
        && method != "none"
    {
        return Err(format!(
            "request.origin.s3.authMethod `{method}`: verge reaches S3 origins only with `none`"
        ));
    }
    let fields = if s3.is_object() {
        s3
    } else {
        &request["origin"]["custom"]
    };
    let origin = fields.is_object().then(|| crate::invocation::EdgeOrigin {
        domain_name: fields["domainName"]
            .as_str()
            .unwrap_or("origin.invalid")
            .to_owned(),
        port: fields["port"].as_u64().map_or(443, |p| p as u16),
        https: fields["protocol"].as_str() != Some("http"),
        path: fields["path"].as_str().unwrap_or("").to_owned(),
        read_timeout: Duration::from_secs(fields["readTimeout"].as_u64().unwrap_or(30)),
        keepalive_timeout: Duration::from_secs(fields["keepaliveTimeout"].as_u64().unwrap_or(5)),
        custom_headers: edge_headers(fields.get("customHeaders"))
            .into_iter()
            .map(|(n, v)| (n, String::from_utf8_lossy(&v).into_owned()))
            .collect(),
        s3_region: s3
            .is_object()
            .then(|| s3["region"].as_str().unwrap_or("").to_owned()),
    });
    let querystring = request["querystring"].as_str().unwrap_or("").to_owned();
    let response = cf
        .get("response")
        .filter(|r| r.is_object())
        .map(|r| ResponseSnapshot {
            status: match &r["status"] {
                Value::String(s) => s.parse().unwrap_or(200),
                other => other.as_u64().map_or(200, |s| s as u16),
            },
            headers: edge_headers(r.get("headers")),
        });
    let function = FunctionDef {
        runtime: Runtime::LambdaEdge,
        ..test_def(source, Duration::from_millis(1))
    };
    Ok(Invocation {
        function: Arc::new(function),
        hook,
        request_id: cf["config"]["requestId"]
            .as_str()
            .unwrap_or("verge-test-function")
            .to_owned(),
        request: RequestSnapshot {
            method: request["method"].as_str().unwrap_or("GET").to_owned(),
            uri: request["uri"].as_str().unwrap_or("/").to_owned(),
            has_query: !querystring.is_empty(),
            querystring,
            headers: edge_headers(request.get("headers")),
            client_ip: request["clientIp"]
                .as_str()
                .and_then(|ip| ip.parse::<IpAddr>().ok())
                .unwrap_or(IpAddr::from([127, 0, 0, 1])),
        },
        response,
        kvs: None,
        origin,
        body: event_body(request.get("body"))?,
    })
}

/// `request.body` of an include-body event: `data` in its `encoding` (base64 unless `text`).
fn event_body(body: Option<&Value>) -> Result<Option<crate::invocation::RequestBody>, String> {
    let Some(body) = body.filter(|b| b.is_object()) else {
        return Ok(None);
    };
    let data = body["data"].as_str().unwrap_or("");
    let data = if body["encoding"].as_str() == Some("text") {
        data.as_bytes().to_vec()
    } else {
        crate::encoding::base64_decode(data)
            .ok_or("request.body.data is not valid base64 (say \"encoding\": \"text\" for text)")?
    };
    Ok(Some(crate::invocation::RequestBody {
        data: data.into(),
        truncated: body["inputTruncated"].as_bool().unwrap_or(false),
    }))
}

/// Run a Lambda@Edge handler on an event (`{Records:[{cf:…}]}`), within its hook's default
/// timeout. `ComputeUtilization` is the percent of that timeout the invocation took (Lambda@Edge
/// has no CPU budget); `FunctionOutput` is the returned object; `ValidationErrors` is what
/// CloudFront would refuse in it.
fn test_edge_function(source: &str, event: &str, answer: &Answer) -> Result<TestResult, String> {
    let event: Value =
        serde_json::from_str(event).map_err(|e| format!("the event is not JSON: {e}"))?;
    let cf = &event["Records"][0]["cf"];
    if !cf["request"].is_object() {
        return Err("the event needs Records[0].cf.request (Lambda@Edge event shape)".into());
    }
    let invocation = std::rc::Rc::new(edge_invocation(source, cf)?);
    let timeout = invocation.function.timeout_at(invocation.hook);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start an event loop: {e}"))?;
    let mut function = crate::edge_runtime::EdgeFunction::load("test", source).map_err(|e| e.0)?;
    let started = Instant::now();
    let memory_mb = invocation.function.memory_mb;
    arm_ceiling(
        answer,
        crate::edge_runtime::hard_ceiling(memory_mb),
        crate::edge_runtime::over_memory(memory_mb).message,
        timeout,
    );
    let invoked =
        tokio::task::LocalSet::new().block_on(&runtime, function.invoke(&invocation, timeout));
    crate::alloc_meter::set_ceiling(None);
    let mut result = TestResult {
        compute_utilization: percent(started.elapsed(), timeout),
        function_execution_logs: invoked.logs,
        function_error_message: String::new(),
        function_output: invoked
            .output
            .map_or_else(String::new, |r| r.into_json().to_string()),
        validation_errors: Vec::new(),
    };
    match invoked.result {
        Ok(_) => {}
        Err(e) if e.kind == crate::outcome::FunctionErrorKind::Validation => {
            result.validation_errors.push(e.message)
        }
        Err(e) => result.function_error_message = e.message,
    }
    Ok(result)
}

/// The function definition `verge test-function` runs with.
fn test_def(source: &str, budget: Duration) -> FunctionDef {
    FunctionDef {
        budget,
        code_path: "function.js".into(),
        ..FunctionDef::inline("test", Runtime::CloudfrontJs2, source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: Duration = Duration::from_millis(1);

    /// `verge test-function --runtime lambda-edge`.
    fn edge(source: &str, event: &str) -> Result<TestResult, String> {
        test_function(source, Runtime::LambdaEdge, event, BUDGET)
    }

    #[test]
    fn a_handler_allocating_without_end_in_one_job_is_reported_not_run_out_of_memory() {
        // After an `await` no check reaches the loop: only the hard memory ceiling stops it,
        // and the command reports the pool's error instead of growing until it is killed.
        let fast = test_function(
            "async function handler(e) { await null; var kept = []; \
             for (;;) { kept.push(new Uint8Array(8 << 20)); } }",
            Runtime::CloudfrontJs2,
            AWS_EVENT,
            BUDGET,
        )
        .unwrap();
        assert!(
            fast.function_error_message
                .contains("went over its memory limit (more than 256 MiB held)"),
            "{fast:?}"
        );
        assert_eq!(fast.function_output, "");
        let event = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/fixtures/events/lae-origin-response.json"),
        )
        .unwrap();
        let lambda = edge(
            "exports.handler = async () => { await null; const kept = []; \
             for (;;) { kept.push(new Uint8Array(1 << 20)); } };",
            &event,
        )
        .unwrap();
        assert!(
            lambda
                .function_error_message
                .contains("held more than the function's 128 MB (memory_mb)"),
            "{lambda:?}"
        );
    }

    const AWS_EVENT: &str = r#"{
      "version": "1.0",
      "context": {"eventType": "viewer-request"},
      "viewer": {"ip": "198.51.100.11"},
      "request": {
        "method": "GET", "uri": "/media/index.mpd",
        "querystring": {"ID": {"value": "42"}, "mv": {"value": "a", "multivalue": [{"value": "a"}, {"value": "b"}]}},
        "headers": {"host": {"value": "video.example.com"}},
        "cookies": {"id": {"value": "CookieIdValue"}}
      }
    }"#;

    #[test]
    fn aws_style_events_run_and_report_like_test_function() {
        let r = test_function(
            "function handler(e) { console.log(e.request.querystring.mv.multiValue.length + ' ' + e.context.requestId); \
             e.request.headers['x-a'] = {value: '1'}; return e.request; }",
            Runtime::CloudfrontJs2,
            AWS_EVENT,
            BUDGET,
        )
        .unwrap();
        assert_eq!(r.function_error_message, "");
        assert_eq!(r.function_execution_logs, vec!["2 verge-test-function"]);
        let output: Value = serde_json::from_str(&r.function_output).unwrap();
        assert_eq!(output["request"]["headers"]["x-a"]["value"], "1");
        assert_eq!(output["request"]["cookies"]["id"]["value"], "CookieIdValue");
        assert!(r.validation_errors.is_empty(), "{:?}", r.validation_errors);
        let util: u32 = r.compute_utilization.parse().unwrap();
        assert!(util <= 100);
    }

    #[test]
    fn validation_errors_report_what_production_would_reject() {
        let r = test_function(
            "function handler(e) { e.request.headers.host = {value: 'evil'}; return e.request; }",
            Runtime::CloudfrontJs2,
            AWS_EVENT,
            BUDGET,
        )
        .unwrap();
        assert_eq!(r.function_error_message, "");
        assert_eq!(r.validation_errors.len(), 1);
        assert!(r.validation_errors[0].contains("`host` is read-only"));
    }

    #[test]
    fn execution_errors_fill_the_error_message() {
        let r = test_function(
            "function handler(e) { throw new Error('nope'); }",
            Runtime::CloudfrontJs2,
            AWS_EVENT,
            BUDGET,
        )
        .unwrap();
        assert!(r.function_error_message.contains("nope"));
        assert_eq!(r.function_output, "");
    }

    #[test]
    fn viewer_response_events_and_generated_responses_are_keyed_response() {
        let event = r#"{"context": {"eventType": "viewer-response"}, "viewer": {"ip": "1.2.3.4"},
            "request": {"method": "GET", "uri": "/"},
            "response": {"statusCode": 200, "headers": {"via": {"value": "1.1 x"}}}}"#;
        let r = test_function(
            "function handler(e) { e.response.headers['x-frame-options'] = {value: 'DENY'}; return e.response; }",
            Runtime::CloudfrontJs2,
            event,
            BUDGET,
        )
        .unwrap();
        let output: Value = serde_json::from_str(&r.function_output).unwrap();
        assert_eq!(
            output["response"]["headers"]["x-frame-options"]["value"],
            "DENY"
        );
        assert!(r.validation_errors.is_empty(), "{:?}", r.validation_errors);
        let r = test_function(
            "function handler(e) { return {statusCode: 302, headers: {location: {value: '/x'}}}; }",
            Runtime::CloudfrontJs2,
            AWS_EVENT,
            BUDGET,
        )
        .unwrap();
        assert!(
            r.function_output.starts_with("{\"response\":"),
            "{}",
            r.function_output
        );
    }

    #[test]
    fn a_store_is_what_cf_kvs_reads_and_lambda_edge_takes_none() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("store.json");
        std::fs::write(&file, r#"{"data":[{"key":"k","value":"v"}]}"#).unwrap();
        let store = Arc::new(KvStore::load(&file).unwrap());
        let code = "import cf from 'cloudfront'; const kvs = cf.kvs(); \
             async function handler(e) { e.request.headers['x-k'] = {value: await kvs.get('k')}; \
             return e.request; }";
        let r = test_function_with_kvs(
            code,
            Runtime::CloudfrontJs2,
            AWS_EVENT,
            BUDGET,
            Some(store.clone()),
        )
        .unwrap();
        assert_eq!(r.function_error_message, "");
        let output: Value = serde_json::from_str(&r.function_output).unwrap();
        assert_eq!(output["request"]["headers"]["x-k"]["value"], "v");
        assert_eq!(
            test_function_with_kvs(code, Runtime::LambdaEdge, AWS_EVENT, BUDGET, Some(store))
                .unwrap_err(),
            NO_KVS_AT_THE_EDGE
        );
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        assert!(
            test_function("function handler(e){}", Runtime::CloudfrontJs2, "{", BUDGET)
                .unwrap_err()
                .contains("not JSON")
        );
        assert!(
            test_function(
                "function handler(e){}",
                Runtime::CloudfrontJs2,
                "{}",
                BUDGET
            )
            .unwrap_err()
            .contains("request")
        );
        assert!(
            test_function(
                "function nope(){}",
                Runtime::CloudfrontJs2,
                AWS_EVENT,
                BUDGET
            )
            .unwrap_err()
            .contains("handler")
        );
    }

    #[test]
    fn lambda_edge_events_run_with_the_same_fields() {
        let event = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/fixtures/events/lae-origin-response.json"),
        )
        .unwrap();
        let r = edge(
            "exports.handler = (event, context, callback) => { const r = event.Records[0].cf.response; \
             console.log(r.status); r.status = '302'; r.headers.location = [{ value: '/x' }]; callback(null, r); };",
            &event,
        )
        .unwrap();
        assert_eq!(r.function_error_message, "");
        assert_eq!(r.function_execution_logs, vec!["INFO\t404"]);
        let output: Value = serde_json::from_str(&r.function_output).unwrap();
        assert_eq!(output["status"], "302");
        assert_eq!(output["headers"]["location"][0]["value"], "/x");
        assert!(r.validation_errors.is_empty(), "{:?}", r.validation_errors);
        // What CloudFront would refuse, and what a throw reports.
        let bad = edge(
            "exports.handler = async (event) => { const r = event.Records[0].cf.response; \
             r.headers.via = [{ value: 'x' }]; return r; };",
            &event,
        )
        .unwrap();
        assert_eq!(bad.validation_errors.len(), 1, "{bad:?}");
        assert!(bad.validation_errors[0].contains("read-only header (via)"));
        let thrown = edge(
            "exports.handler = async () => { throw new Error('no'); };",
            &event,
        )
        .unwrap();
        assert!(thrown.function_error_message.contains("no"));
        assert!(edge("exports.handler = async () => {};", "{}").is_err());
    }

    #[test]
    fn an_event_with_an_s3_origin_shows_it_and_unchanged_is_valid() {
        let event = r#"{"Records":[{"cf":{"config":{"eventType":"origin-request"},
            "request":{"clientIp":"203.0.113.1","method":"GET","uri":"/a","querystring":"",
            "headers":{"host":[{"key":"Host","value":"b.s3.amazonaws.com"}]},
            "origin":{"s3":{"authMethod":"none","customHeaders":{},
                "domainName":"b.s3.amazonaws.com","path":"","region":"us-east-1"}}}}}]}"#;
        let r = edge(
            "exports.handler = async (event) => { const r = event.Records[0].cf.request; \
             console.log(JSON.stringify(r.origin)); return r; };",
            event,
        )
        .unwrap();
        assert!(r.validation_errors.is_empty(), "{:?}", r.validation_errors);
        let oai = event.replace("\"none\"", "\"origin-access-identity\"");
        let refused = edge("exports.handler = async () => {};", &oai).unwrap_err();
        assert!(refused.contains("only with `none`"), "{refused}");
        assert_eq!(
            r.function_execution_logs,
            vec![
                "INFO\t{\"s3\":{\"authMethod\":\"none\",\"customHeaders\":{},\
                 \"domainName\":\"b.s3.amazonaws.com\",\"path\":\"\",\"region\":\"us-east-1\"}}"
            ]
        );
    }

    #[test]
    fn an_include_body_event_gives_the_handler_its_body_and_checks_the_replacement() {
        let event = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/fixtures/events/lae-origin-request-body.json"),
        )
        .unwrap();
        let r = edge(
            "exports.handler = async (event) => { const r = event.Records[0].cf.request; \
             const text = Buffer.from(r.body.data, 'base64').toString(); \
             r.body.action = 'replace'; r.body.encoding = 'text'; \
             r.body.data = text.toUpperCase() + ':' + r.body.inputTruncated; return r; };",
            &event,
        )
        .unwrap();
        assert_eq!(r.function_error_message, "");
        assert!(r.validation_errors.is_empty(), "{:?}", r.validation_errors);
        let output: Value = serde_json::from_str(&r.function_output).unwrap();
        assert_eq!(
            output["body"]["data"],
            "NAME=ADA&EMAIL=ADA%40EXAMPLE.ORG:false"
        );
        let too_big = edge(
            "exports.handler = async (event) => { const r = event.Records[0].cf.request; \
             r.body.action = 'replace'; r.body.encoding = 'text'; \
             r.body.data = 'x'.repeat(1024 * 1024) + 'y'; return r; };",
            &event,
        )
        .unwrap();
        assert!(
            too_big
                .validation_errors
                .iter()
                .any(|e| e.contains("at most 1048576")),
            "{:?}",
            too_big
        );
    }
}
