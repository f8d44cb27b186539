//! The Lambda@Edge event (contract §2.2) built from an invocation, and what a handler returns
//! read back and validated (§2.3–2.5, §2.7) into an [`Outcome`].
//!
//! All four event types. Headers travel as `name → [{key, value}]` (a missing `key` is filled
//! in), the query string raw, `response.status` as a string, `request.origin.custom` at the
//! origin hooks.

use serde_json::{Map, Value};

use crate::cff_event::is_disallowed;
use crate::invocation::{EdgeOrigin, HeaderList, Invocation};
use crate::js_json::object;
use crate::origin_choice::{OriginChoice, OriginUpdate};
use crate::outcome::{Edits, FunctionError, FunctionErrorKind, GeneratedResponse, Outcome};
use verge_config::Hook;

/// A generated response at viewer-request may be at most this big, headers and body (§2.6).
pub const MAX_VIEWER_RESPONSE: usize = 40 * 1024;
/// … and at origin-request.
pub const MAX_ORIGIN_RESPONSE: usize = 1024 * 1024;

/// An include-body function sees at most this much of the request body, and may replace it
/// with at most this much, per hook (§2.6: 40 KB viewer-request, 1 MB origin-request).
pub fn body_cap(hook: Hook) -> usize {
    match hook {
        Hook::OriginRequest => 1024 * 1024,
        _ => 40 * 1024,
    }
}

/// Headers a handler may read but not add, change or delete, per hook (§1.9, §2.7).
fn read_only(hook: Hook) -> &'static [&'static str] {
    match hook {
        Hook::ViewerRequest => &[
            "cdn-loop",
            "content-length",
            "host",
            "transfer-encoding",
            "via",
        ],
        Hook::OriginRequest => &[
            "accept-encoding",
            "cdn-loop",
            "content-length",
            "if-modified-since",
            "if-none-match",
            "if-range",
            "if-unmodified-since",
            "transfer-encoding",
            "via",
        ],
        Hook::OriginResponse => &["transfer-encoding", "via"],
        Hook::ViewerResponse => &[
            "content-length",
            "content-encoding",
            "transfer-encoding",
            "warning",
            "via",
        ],
    }
}

fn validation(message: impl Into<String>) -> FunctionError {
    FunctionError {
        kind: FunctionErrorKind::Validation,
        message: format!(
            "The Lambda function result failed validation: {}",
            message.into()
        ),
        edge: true,
    }
}

/// `content-type` → `Content-Type`: the key CloudFront fills in when a handler leaves it out.
pub fn title_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper { c.to_ascii_uppercase() } else { c });
        upper = c == '-';
    }
    out
}

/// Headers in the event's array format, one element per occurrence, disallowed ones hidden.
fn header_arrays(headers: &HeaderList) -> Value {
    let mut map = Map::new();
    for (name, value) in headers.iter().filter(|(n, _)| !is_disallowed(n)) {
        let item = object([
            ("key", Value::String(title_case(name))),
            (
                "value",
                Value::String(String::from_utf8_lossy(value).into_owned()),
            ),
        ]);
        match map.get_mut(name.as_str()) {
            Some(Value::Array(items)) => items.push(item),
            _ => {
                map.insert(name.clone(), Value::Array(vec![item]));
            }
        }
    }
    Value::Object(map)
}

fn custom_origin(o: &EdgeOrigin) -> Value {
    let custom_headers: HeaderList = o
        .custom_headers
        .iter()
        .map(|(n, v)| (n.clone(), v.clone().into_bytes()))
        .collect();
    let custom = object([
        ("customHeaders", header_arrays(&custom_headers)),
        ("domainName", Value::String(o.domain_name.clone())),
        (
            "keepaliveTimeout",
            Value::from(o.keepalive_timeout.as_secs()),
        ),
        ("path", Value::String(o.path.clone())),
        ("port", Value::from(o.port)),
        (
            "protocol",
            Value::from(if o.https { "https" } else { "http" }),
        ),
        ("readTimeout", Value::from(o.read_timeout.as_secs())),
        ("sslProtocols", Value::Array(vec![Value::from("TLSv1.2")])),
    ]);
    object([("custom", custom)])
}

/// Build the event of `inv` for its hook.
pub fn event(inv: &Invocation) -> Value {
    let req = &inv.request;
    let mut request = object([
        ("clientIp", Value::String(req.client_ip.to_string())),
        ("headers", header_arrays(&req.headers)),
        ("method", Value::String(req.method.clone())),
        ("querystring", Value::String(req.querystring.clone())),
        ("uri", Value::String(req.uri.clone())),
    ]);
    if let (Some(o), Some(map)) = (&inv.origin, request.as_object_mut()) {
        map.insert("origin".into(), custom_origin(o));
    }
    if let (Some(body), Some(map)) = (&inv.body, request.as_object_mut()) {
        map.insert(
            "body".into(),
            object([
                ("action", Value::from("read-only")),
                (
                    "data",
                    Value::String(crate::encoding::base64(&body.data, true, false)),
                ),
                ("encoding", Value::from("base64")),
                ("inputTruncated", Value::Bool(body.truncated)),
            ]),
        );
    }
    let config = object([
        ("distributionDomainName", Value::from("verge.local")),
        ("distributionId", Value::from("VERGE")),
        ("eventType", Value::String(inv.hook.key().replace('_', "-"))),
        ("requestId", Value::String(inv.request_id.clone())),
    ]);
    let mut cf = object([("config", config), ("request", request)]);
    if let (Some(resp), Some(map)) = (&inv.response, cf.as_object_mut()) {
        map.insert(
            "response".into(),
            object([
                ("headers", header_arrays(&resp.headers)),
                ("status", Value::String(resp.status.to_string())),
                (
                    "statusDescription",
                    Value::from(crate::cff_event::http_reason(resp.status)),
                ),
            ]),
        );
    }
    object([("Records", Value::Array(vec![object([("cf", cf)])]))])
}

/// A header object in the array format, back to a header list: names lower-case and valid,
/// each element an object with a string `value` and, if present, a `key` naming the same
/// header (ignoring case).
fn headers_from(field: &str, value: &Value) -> Result<HeaderList, FunctionError> {
    let map = value
        .as_object()
        .ok_or_else(|| validation(format!("{field} must be an object")))?;
    let mut out = Vec::new();
    for (name, items) in map {
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !valid {
            return Err(validation(format!(
                "{field}: `{name}` is not a header name"
            )));
        }
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(validation(format!(
                "{field}: the header name `{name}` must be lower case"
            )));
        }
        let items = items.as_array().ok_or_else(|| {
            validation(format!(
                "{field}.{name}: the value of each header must be an array of {{key, value}} objects"
            ))
        })?;
        for item in items {
            let value = match item.get("value") {
                Some(Value::String(s)) => s,
                _ => {
                    return Err(validation(format!(
                        "{field}.{name}: the value of each header value must be of string type"
                    )));
                }
            };
            match item.get("key") {
                None | Some(Value::Null) => {}
                Some(Value::String(key)) if key.eq_ignore_ascii_case(name) => {}
                Some(_) => {
                    return Err(validation(format!(
                        "{field}.{name}: the key of a header must be the header's name"
                    )));
                }
            }
            if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                return Err(validation(format!("{field}.{name} contains CR, LF or NUL")));
            }
            out.push((name.clone(), value.clone().into_bytes()));
        }
    }
    Ok(out)
}

/// The values of one header, in order.
fn values_of<'a>(headers: &'a HeaderList, name: &str) -> Vec<&'a [u8]> {
    headers
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_slice())
        .collect()
}

/// Returned headers checked against the original: read-only ones unchanged, disallowed ones not
/// added; the hidden (disallowed) originals are kept as they were.
fn checked_headers(
    hook: Hook,
    field: &str,
    returned: &Value,
    original: &HeaderList,
) -> Result<HeaderList, FunctionError> {
    let mut headers = headers_from(field, returned)?;
    for name in read_only(hook) {
        if values_of(&headers, name) != values_of(original, name) {
            return Err(validation(format!(
                "the function tried to add, delete, or change a read-only header ({name})"
            )));
        }
    }
    if let Some((name, _)) = headers.iter().find(|(n, _)| is_disallowed(n)) {
        return Err(validation(format!(
            "the function tried to add a disallowed header ({name})"
        )));
    }
    if hook == Hook::ViewerRequest
        && let Some((name, _)) = headers
            .iter()
            .find(|(n, _)| n.starts_with("cloudfront-") && !original.iter().any(|(o, _)| o == n))
    {
        return Err(validation(format!(
            "a viewer-request function may not add CloudFront's own header {name}"
        )));
    }
    headers.extend(original.iter().filter(|(n, _)| is_disallowed(n)).cloned());
    Ok(headers)
}

/// A status as a handler may give it: a string or a number, 200–599.
fn status_from(value: &Value) -> Result<u16, FunctionError> {
    let status = match value {
        Value::String(s) => s.trim().parse::<u16>().ok(),
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        _ => None,
    };
    match status {
        Some(s) if (200..=599).contains(&s) => Ok(s),
        _ => Err(validation(format!(
            "status {value} is not an HTTP status between 200 and 599"
        ))),
    }
}

/// A returned `body` with its `bodyEncoding` (`text` unless `base64`).
fn body_from(obj: &Map<String, Value>) -> Result<Option<Vec<u8>>, FunctionError> {
    let body = match obj.get("body") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s,
        Some(_) => return Err(validation("body must be a string")),
    };
    match obj.get("bodyEncoding").and_then(Value::as_str) {
        None | Some("text") => Ok(Some(body.clone().into_bytes())),
        Some("base64") => crate::encoding::base64_decode(body)
            .map(Some)
            .ok_or_else(|| validation("the body is not valid base64")),
        Some(other) => Err(validation(format!(
            "bodyEncoding `{other}` is not text or base64"
        ))),
    }
}

fn only_fields(
    obj: &Map<String, Value>,
    allowed: &[&str],
    what: &str,
) -> Result<(), FunctionError> {
    match crate::cff_event::unexpected_field(obj, allowed) {
        Some(k) => Err(validation(format!("{what} has an unexpected field `{k}`"))),
        None => Ok(()),
    }
}

const RESPONSE_FIELDS: &[&str] = &[
    "status",
    "statusDescription",
    "headers",
    "body",
    "bodyEncoding",
];

/// A response generated at viewer-request or origin-request.
fn generated(hook: Hook, obj: &Map<String, Value>) -> Result<GeneratedResponse, FunctionError> {
    only_fields(obj, RESPONSE_FIELDS, "the response")?;
    let status = status_from(&obj["status"])?;
    let headers = match obj.get("headers") {
        None | Some(Value::Null) => Vec::new(),
        Some(h) => headers_from("headers", h)?,
    };
    if let Some((name, _)) = headers.iter().find(|(n, _)| is_disallowed(n)) {
        return Err(validation(format!(
            "the function tried to add a disallowed header ({name})"
        )));
    }
    let body = body_from(obj)?.unwrap_or_default();
    if status == 204 && !body.is_empty() {
        return Err(validation("a 204 response may not have a body"));
    }
    let cap = if hook == Hook::ViewerRequest {
        MAX_VIEWER_RESPONSE
    } else {
        MAX_ORIGIN_RESPONSE
    };
    let size = body.len()
        + headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum::<usize>();
    if size > cap {
        return Err(validation(format!(
            "the generated response is {size} bytes; at most {cap} are allowed at {}",
            hook.key().replace('_', "-")
        )));
    }
    Ok(GeneratedResponse {
        status,
        headers,
        body,
    })
}

/// A returned `request.origin`, against the event's: unchanged → `None`; a changed custom
/// origin → the update to route by.
fn origin_from(returned: &Value, original: &Value) -> Result<Option<OriginChoice>, FunctionError> {
    if returned == original {
        return Ok(None);
    }
    let obj = returned
        .as_object()
        .ok_or_else(|| validation("request.origin must be an object"))?;
    if obj.contains_key("s3") {
        return Err(validation(
            "request.origin.s3: verge proxies custom (HTTP) origins only",
        ));
    }
    let custom = obj
        .get("custom")
        .and_then(Value::as_object)
        .ok_or_else(|| validation("request.origin must have exactly one of custom or s3"))?;
    only_fields(
        custom,
        &[
            "customHeaders",
            "domainName",
            "keepaliveTimeout",
            "path",
            "port",
            "protocol",
            "readTimeout",
            "sslProtocols",
        ],
        "request.origin.custom",
    )?;
    let text = |key: &str| -> Result<Option<String>, FunctionError> {
        match custom.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(validation(format!(
                "request.origin.custom.{key} must be a string"
            ))),
        }
    };
    let number =
        |key: &str, range: std::ops::RangeInclusive<u64>| -> Result<Option<u64>, FunctionError> {
            match custom.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => match v
                    .as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                {
                    Some(n) if range.contains(&n) => Ok(Some(n)),
                    _ => Err(validation(format!(
                        "request.origin.custom.{key} must be a number in {}–{}",
                        range.start(),
                        range.end()
                    ))),
                },
            }
        };
    let domain = text("domainName")?
        .ok_or_else(|| validation("request.origin.custom.domainName is required"))?;
    crate::origin_choice::check_host_name(&domain, "request.origin.custom.domainName")
        .map_err(validation)?;
    let https = match text("protocol")?.as_deref() {
        None | Some("https") => true,
        Some("http") => false,
        Some(other) => {
            return Err(validation(format!(
                "request.origin.custom.protocol `{other}` is not http or https"
            )));
        }
    };
    let port = number("port", 1..=65535)?;
    if let Some(p) = port
        && !(p == 80 || p == 443 || p >= 1024)
    {
        return Err(validation(format!(
            "request.origin.custom.port {p} is not 80, 443 or 1024–65535"
        )));
    }
    let path = text("path")?.unwrap_or_default();
    crate::origin_choice::check_origin_path(&path, "request.origin.custom.path")
        .map_err(validation)?;
    let read_timeout = number("readTimeout", 1..=60)?;
    let keepalive = number("keepaliveTimeout", 1..=60)?;
    let custom_headers = match custom.get("customHeaders") {
        None | Some(Value::Null) => Vec::new(),
        Some(h) => headers_from("request.origin.custom.customHeaders", h)?
            .into_iter()
            .map(|(n, v)| (n, String::from_utf8_lossy(&v).into_owned()))
            .collect(),
    };
    if let Some((name, _)) = custom_headers.iter().find(|(n, _)| is_disallowed(n)) {
        return Err(validation(format!(
            "request.origin.custom.customHeaders may not hold {name}"
        )));
    }
    let update = OriginUpdate {
        domain_name: Some(domain),
        origin_path: Some(path),
        custom_headers: Some(custom_headers),
        port: Some(port.map_or(if https { 443 } else { 80 }, |p| p as u16)),
        https: Some(https),
        read_timeout: read_timeout.map(std::time::Duration::from_secs),
        keep_alive_timeout: keepalive.map(std::time::Duration::from_secs),
        ..OriginUpdate::default()
    };
    Ok(Some(OriginChoice::Update(Box::new(update))))
}

/// The returned request at viewer-request or origin-request, against the event's.
fn request_edits(
    inv: &Invocation,
    obj: &Map<String, Value>,
    original: &Value,
) -> Result<Edits, FunctionError> {
    only_fields(
        obj,
        &[
            "clientIp",
            "headers",
            "method",
            "querystring",
            "uri",
            "origin",
            "body",
        ],
        "the request",
    )?;
    for key in ["clientIp", "method"] {
        if obj.get(key) != original.get(key) {
            return Err(validation(format!("request.{key} is read-only")));
        }
    }
    let mut edits = Edits::default();
    match obj.get("uri") {
        Some(Value::String(uri)) if uri != &inv.request.uri => {
            if !uri.starts_with('/') {
                return Err(validation(format!("request.uri `{uri}` must start with /")));
            }
            if uri.bytes().any(|b| b <= b' ' || b == b'#' || b == 0x7f) {
                return Err(validation(
                    "request.uri contains a space, a control character or #",
                ));
            }
            edits.uri = Some(uri.clone());
        }
        Some(Value::String(_)) => {}
        _ => return Err(validation("request.uri must be a string")),
    }
    match obj.get("querystring") {
        None | Some(Value::Null) => {}
        Some(Value::String(q)) if q != &inv.request.querystring => {
            if q.bytes().any(|b| b <= b' ' || b == b'#' || b == 0x7f) {
                return Err(validation(
                    "request.querystring contains a space, a control character or #",
                ));
            }
            edits.querystring = Some(q.clone());
        }
        Some(Value::String(_)) => {}
        Some(_) => return Err(validation("request.querystring must be a string")),
    }
    let headers = match obj.get("headers") {
        Some(h) => h,
        None => return Err(validation("request.headers is required")),
    };
    if Some(headers) != original.get("headers") {
        edits.headers = Some(checked_headers(
            inv.hook,
            "request.headers",
            headers,
            &inv.request.headers,
        )?);
    }
    if let Some(origin) = obj.get("origin") {
        if inv.hook != Hook::OriginRequest {
            if Some(origin) != original.get("origin") {
                return Err(validation(
                    "request.origin can be changed only at origin-request",
                ));
            }
        } else {
            edits.origin = origin_from(origin, original.get("origin").unwrap_or(&Value::Null))?;
        }
    }
    if let Some(body) = obj.get("body")
        && Some(body) != original.get("body")
    {
        edits.body = body_replacement(inv, body)?;
    }
    Ok(edits)
}

/// A changed `request.body`: the new body when `action` is `replace` (within the hook's cap),
/// nothing when it stays `read-only`. Without include-body there is no body to change.
fn body_replacement(inv: &Invocation, body: &Value) -> Result<Option<Vec<u8>>, FunctionError> {
    if inv.body.is_none() {
        if body.is_null() {
            return Ok(None);
        }
        return Err(validation(
            "request.body can be set only when the behavior includes the body at this hook \
             (include_body = true)",
        ));
    }
    let obj = body
        .as_object()
        .ok_or_else(|| validation("request.body must be an object"))?;
    only_fields(
        obj,
        &["action", "data", "encoding", "inputTruncated"],
        "request.body",
    )?;
    match obj.get("action").and_then(Value::as_str) {
        None | Some("read-only") => return Ok(None),
        Some("replace") => {}
        Some(other) => {
            return Err(validation(format!(
                "request.body.action `{other}` is not read-only or replace"
            )));
        }
    }
    let data = match obj.get("data") {
        Some(Value::String(data)) => data,
        None | Some(Value::Null) => "",
        Some(_) => return Err(validation("request.body.data must be a string")),
    };
    let bytes = match obj.get("encoding").and_then(Value::as_str) {
        Some("text") => data.as_bytes().to_vec(),
        None | Some("base64") => crate::encoding::base64_decode(data)
            .ok_or_else(|| validation("request.body.data is not valid base64"))?,
        Some(other) => {
            return Err(validation(format!(
                "request.body.encoding `{other}` is not base64 or text"
            )));
        }
    };
    let cap = body_cap(inv.hook);
    if bytes.len() > cap {
        return Err(validation(format!(
            "the replaced request body is {} bytes; at most {cap} are allowed at {}",
            bytes.len(),
            inv.hook.key().replace('_', "-")
        )));
    }
    Ok(Some(bytes))
}

/// The returned response at origin-response or viewer-response, against the event's.
fn response_edits(
    inv: &Invocation,
    obj: &Map<String, Value>,
    original: &Value,
) -> Result<Edits, FunctionError> {
    only_fields(obj, RESPONSE_FIELDS, "the response")?;
    let mut edits = Edits::default();
    let status = match obj.get("status") {
        Some(s) => status_from(s)?,
        None => return Err(validation("response.status is required")),
    };
    let was = inv.response.as_ref().map_or(0, |r| r.status);
    if status != was {
        if inv.hook == Hook::ViewerResponse {
            return Err(validation(
                "a viewer-response function cannot change the status code",
            ));
        }
        edits.status = Some(status);
    }
    if let Some(headers) = obj.get("headers")
        && Some(headers) != original.get("headers")
    {
        let empty = Vec::new();
        let before = inv.response.as_ref().map_or(&empty, |r| &r.headers);
        edits.headers = Some(checked_headers(
            inv.hook,
            "response.headers",
            headers,
            before,
        )?);
    }
    edits.body = body_from(obj)?;
    Ok(edits)
}

/// Read what the handler returned (`None` for `undefined`/`null`) against the event it got.
/// (Borrowed or owned: the runtime keeps what was returned for `verge test-function`.)
pub fn outcome<V: std::borrow::Borrow<Value>>(
    inv: &Invocation,
    event: &Value,
    returned: Option<V>,
) -> Result<Outcome, FunctionError> {
    let returned = returned.ok_or_else(|| {
        validation("the function returned nothing (or called back without a result)")
    })?;
    let obj = returned.borrow().as_object().ok_or_else(|| FunctionError {
        kind: FunctionErrorKind::Validation,
        message:
            "The Lambda function returned invalid JSON: The JSON output must be an object type."
                .into(),
        edge: true,
    })?;
    let cf = &event["Records"][0]["cf"];
    match inv.hook {
        Hook::ViewerRequest | Hook::OriginRequest => {
            if obj.contains_key("status") {
                return generated(inv.hook, obj).map(Outcome::Respond);
            }
            request_edits(inv, obj, &cf["request"]).map(Outcome::Continue)
        }
        Hook::OriginResponse | Hook::ViewerResponse => {
            response_edits(inv, obj, &cf["response"]).map(Outcome::Continue)
        }
    }
}

#[cfg(test)]
mod tests;
