//! The CloudFront Functions event (contract §1.2) built from a request snapshot, and the
//! handler's return value read back and validated (§1.3, §1.9) into an [`Outcome`].
//!
//! viewer-request and viewer-response.

use serde_json::{Map, Value};

use crate::invocation::{HeaderList, Invocation};
use crate::js_json::object;
use crate::outcome::{Edits, FunctionError, FunctionErrorKind, GeneratedResponse, Outcome};

/// Headers a function never sees and may not add (§1.9).
const DISALLOWED: &[&str] = &[
    "connection",
    "expect",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "trailer",
    "upgrade",
    "x-accel-buffering",
    "x-accel-charset",
    "x-accel-limit-rate",
    "x-accel-redirect",
    "x-amzn-auth",
    "x-amzn-cf-billing",
    "x-amzn-cf-id",
    "x-amzn-cf-xff",
    "x-amzn-errortype",
    "x-amzn-fle-profile",
    "x-amzn-header-count",
    "x-amzn-header-order",
    "x-amzn-lambda-integration-tag",
    "x-amzn-requestid",
    "x-cache",
    "x-forwarded-proto",
    "x-real-ip",
];

/// Whether a function may neither see nor set this header.
pub fn is_disallowed(name: &str) -> bool {
    DISALLOWED.contains(&name) || name.starts_with("x-amz-cf-") || name.starts_with("x-edge-")
}

/// Headers a viewer-request function can read but not add, change or delete (§1.9).
const READ_ONLY_VIEWER_REQUEST: &[&str] = &[
    "cdn-loop",
    "content-length",
    "host",
    "transfer-encoding",
    "via",
];

/// Headers a viewer-response function can read but not change (§1.9).
const READ_ONLY_VIEWER_RESPONSE: &[&str] = &["warning", "via"];

fn validation(message: impl Into<String>) -> FunctionError {
    FunctionError {
        kind: FunctionErrorKind::Validation,
        message: message.into(),
        edge: false,
    }
}

/// `{value, multiValue?}` maps: `multiValue` only for repeated names, first value duplicated.
fn multi_map<'a>(pairs: impl Iterator<Item = (&'a str, String)>) -> Value {
    let mut grouped: Vec<(&str, Vec<String>)> = Vec::new();
    for (name, value) in pairs {
        match grouped.iter_mut().find(|(n, _)| *n == name) {
            Some((_, values)) => values.push(value),
            None => grouped.push((name, vec![value])),
        }
    }
    let mut map = Map::new();
    for (name, values) in grouped {
        let mut entry = Map::new();
        entry.insert("value".into(), Value::String(values[0].clone()));
        if values.len() > 1 {
            entry.insert(
                "multiValue".into(),
                Value::Array(
                    values
                        .into_iter()
                        .map(|v| object([("value", Value::String(v))]))
                        .collect(),
                ),
            );
        }
        map.insert(name.to_owned(), Value::Object(entry));
    }
    Value::Object(map)
}

/// Split `a=1&b&c=3` into name/value pairs (a name without `=` has value `""`), names and values
/// passed through as sent (CloudFront does not decode them).
fn query_pairs(query: &str) -> impl Iterator<Item = (&str, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((n, v)) => (n, v.to_owned()),
            None => (p, String::new()),
        })
}

/// `Cookie: a=1; b=2` pairs, in order, from every `cookie` header.
fn cookie_pairs(headers: &HeaderList) -> Vec<(&str, String)> {
    headers
        .iter()
        .filter(|(n, _)| n == "cookie")
        .filter_map(|(_, v)| std::str::from_utf8(v).ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| {
            let c = c.trim();
            let (n, v) = c.split_once('=').unwrap_or((c, ""));
            (!n.is_empty()).then(|| (n, v.to_owned()))
        })
        .collect()
}

/// `Set-Cookie` lines as `{value, attributes, multiValue?: [{value, attributes}]}` (§1.2).
fn set_cookie_map(headers: &HeaderList) -> Value {
    let mut grouped: Vec<(String, Vec<Value>)> = Vec::new();
    for (_, line) in headers.iter().filter(|(n, _)| n == "set-cookie") {
        let line = String::from_utf8_lossy(line);
        let (pair, attributes) = match line.split_once(';') {
            Some((p, a)) => (p, a.trim()),
            None => (line.as_ref(), ""),
        };
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let item = object([
            ("value", Value::String(value.trim().to_owned())),
            ("attributes", Value::String(attributes.to_owned())),
        ]);
        match grouped.iter_mut().find(|(n, _)| n == name.trim()) {
            Some((_, items)) => items.push(item),
            None => grouped.push((name.trim().to_owned(), vec![item])),
        }
    }
    let mut map = Map::new();
    for (name, items) in grouped {
        let mut entry = items[0].clone();
        if items.len() > 1
            && let Some(obj) = entry.as_object_mut()
        {
            obj.insert("multiValue".into(), Value::Array(items));
        }
        map.insert(name, entry);
    }
    Value::Object(map)
}

fn request_value(inv: &Invocation) -> Value {
    let req = &inv.request;
    let headers = multi_map(
        req.headers
            .iter()
            .filter(|(n, _)| n != "cookie" && !is_disallowed(n))
            .map(|(n, v)| (n.as_str(), String::from_utf8_lossy(v).into_owned())),
    );
    object([
        ("method", Value::String(req.method.clone())),
        ("uri", Value::String(req.uri.clone())),
        ("querystring", multi_map(query_pairs(&req.querystring))),
        ("headers", headers),
        ("cookies", multi_map(cookie_pairs(&req.headers).into_iter())),
    ])
}

/// Build the viewer-response event (request and response; the original body is not readable).
pub fn viewer_response_event(inv: &Invocation) -> Value {
    let empty = Vec::new();
    let (status, headers) = match &inv.response {
        Some(r) => (r.status, &r.headers),
        None => (200, &empty),
    };
    let response_headers = multi_map(
        headers
            .iter()
            .filter(|(n, _)| n != "set-cookie" && !is_disallowed(n))
            .map(|(n, v)| (n.as_str(), String::from_utf8_lossy(v).into_owned())),
    );
    let response = object([
        ("statusCode", Value::from(status)),
        (
            "statusDescription",
            Value::String(http_reason(status).into()),
        ),
        ("headers", response_headers),
        ("cookies", set_cookie_map(headers)),
    ]);
    let mut event = event_frame(inv, "viewer-response");
    if let Value::Object(fields) = &mut event {
        fields.insert("response".into(), response);
    }
    event
}

/// The reason phrase CloudFront shows for common statuses (empty for others).
pub fn http_reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

/// Build the viewer-request event.
pub fn viewer_request_event(inv: &Invocation) -> Value {
    event_frame(inv, "viewer-request")
}

/// `version`, `context`, `viewer` and `request`: what both events share.
fn event_frame(inv: &Invocation, event_type: &str) -> Value {
    object([
        ("version", Value::String("1.0".into())),
        (
            "context",
            object([
                (
                    "distributionDomainName",
                    Value::String("verge.local".into()),
                ),
                ("distributionId", Value::String("VERGE".into())),
                ("eventType", Value::String(event_type.into())),
                ("requestId", Value::String(inv.request_id.clone())),
            ]),
        ),
        (
            "viewer",
            object([("ip", Value::String(inv.request.client_ip.to_string()))]),
        ),
        ("request", request_value(inv)),
    ])
}

/// The values of one `{value, multiValue?}` entry: a modified `multiValue` wins, otherwise
/// `value` replaces the first of the original values and the rest stay (§1.2).
fn entry_values(
    field: &str,
    name: &str,
    entry: &Value,
    original: Option<&Value>,
) -> Result<Vec<String>, FunctionError> {
    let obj = entry
        .as_object()
        .ok_or_else(|| validation(format!("{field}.{name} must be an object with a value")))?;
    for key in obj.keys() {
        if key != "value" && key != "multiValue" && key != "multivalue" {
            return Err(validation(format!(
                "{field}.{name} has an unexpected field `{key}`"
            )));
        }
    }
    let value = |v: &Value| -> Result<String, FunctionError> {
        match v.get("value") {
            Some(Value::String(s)) => Ok(s.clone()),
            _ => Err(validation(format!("{field}.{name}.value must be a string"))),
        }
    };
    let multi = obj.get("multiValue").or_else(|| obj.get("multivalue"));
    let original_multi = original.and_then(|o| o.get("multiValue"));
    if let Some(multi) = multi
        && Some(multi) != original_multi
    {
        let items = multi
            .as_array()
            .ok_or_else(|| validation(format!("{field}.{name}.multiValue must be an array")))?;
        return items.iter().map(value).collect();
    }
    let first = value(entry)?;
    let mut values = vec![first];
    if let Some(Value::Array(rest)) = original_multi {
        for item in rest.iter().skip(1) {
            values.push(value(item)?);
        }
    }
    Ok(values)
}

/// Check a header value for what may not reach the wire.
fn check_value(field: &str, name: &str, value: &str) -> Result<(), FunctionError> {
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(validation(format!("{field}.{name} contains CR, LF or NUL")));
    }
    Ok(())
}

fn check_name(field: &str, name: &str) -> Result<(), FunctionError> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !valid {
        return Err(validation(format!("{field}: `{name}` is not a valid name")));
    }
    if name.bytes().any(|b| b.is_ascii_uppercase()) && field == "headers" {
        return Err(validation(format!("headers: `{name}` must be lowercase")));
    }
    Ok(())
}

/// Rebuild a header list from a returned `headers` object, enforcing the read-only and
/// disallowed rules against the original.
fn headers_from(
    returned: &Value,
    original_event: &Value,
    original: &HeaderList,
    read_only: &[&str],
) -> Result<HeaderList, FunctionError> {
    let map = returned
        .as_object()
        .ok_or_else(|| validation("headers must be an object"))?;
    let original_headers = &original_event["headers"];
    let mut out: HeaderList = Vec::new();
    for (name, entry) in map {
        check_name("headers", name)?;
        if is_disallowed(name) {
            return Err(validation(format!(
                "headers: `{name}` may not be set by a function"
            )));
        }
        let values = entry_values("headers", name, entry, original_headers.get(name))?;
        for v in &values {
            check_value("headers", name, v)?;
        }
        out.extend(values.into_iter().map(|v| (name.clone(), v.into_bytes())));
    }
    for name in read_only {
        let before: Vec<&Vec<u8>> = original
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v)
            .collect();
        let after: Vec<&Vec<u8>> = out
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v)
            .collect();
        if before != after {
            return Err(validation(format!("headers: `{name}` is read-only here")));
        }
    }
    // What the function could not see passes through unchanged.
    for (name, value) in original {
        if is_disallowed(name) {
            out.push((name.clone(), value.clone()));
        }
    }
    Ok(out)
}

/// Rebuild the query string from a returned `querystring` (object, or a raw string as the AWS
/// normalize-query-string sample returns).
fn querystring_from(returned: &Value, original_event: &Value) -> Result<String, FunctionError> {
    let query = match returned {
        Value::String(raw) => raw.trim_start_matches('?').to_owned(),
        Value::Object(map) => {
            let mut parts = Vec::new();
            for (name, entry) in map {
                let values = entry_values("querystring", name, entry, original_event.get(name))?;
                for v in values {
                    if v.is_empty() {
                        parts.push(name.clone());
                    } else {
                        parts.push(format!("{name}={v}"));
                    }
                }
            }
            parts.join("&")
        }
        _ => return Err(validation("querystring must be an object or a string")),
    };
    if query
        .bytes()
        .any(|b| b.is_ascii_control() || b == b' ' || b == b'#')
    {
        return Err(validation(
            "querystring contains a space, a control character or #",
        ));
    }
    Ok(query)
}

/// Rebuild the `Cookie` header from a returned `cookies` object.
fn cookie_header_from(
    returned: &Value,
    original_event: &Value,
) -> Result<Option<Vec<u8>>, FunctionError> {
    let map = returned
        .as_object()
        .ok_or_else(|| validation("cookies must be an object"))?;
    let mut parts = Vec::new();
    for (name, entry) in map {
        check_name("cookies", name)?;
        for v in entry_values("cookies", name, entry, original_event.get(name))? {
            check_value("cookies", name, &v)?;
            parts.push(format!("{name}={v}"));
        }
    }
    Ok((!parts.is_empty()).then(|| parts.join("; ").into_bytes()))
}

/// The fields a returned response may have.
const RESPONSE_FIELDS: &[&str] = &[
    "statusCode",
    "statusDescription",
    "headers",
    "cookies",
    "body",
];

/// A returned `statusCode`: an integer from 100 to 599.
fn status_code(value: &Value) -> Result<u16, FunctionError> {
    value
        .as_u64()
        .filter(|s| (100..=599).contains(s))
        .map(|s| s as u16)
        .ok_or_else(|| validation("response.statusCode must be an integer from 100 to 599"))
}

/// Refuse fields a returned object may not have (CloudFront: "the request object has an
/// unexpected field").
fn only_fields(
    obj: &Map<String, Value>,
    allowed: &[&str],
    what: &str,
) -> Result<(), FunctionError> {
    match unexpected_field(obj, allowed) {
        Some(key) => Err(validation(format!(
            "the {what} object has an unexpected field `{key}`"
        ))),
        None => Ok(()),
    }
}

/// The first field of `obj` not in `allowed`.
pub fn unexpected_field<'a>(obj: &'a Map<String, Value>, allowed: &[&str]) -> Option<&'a str> {
    obj.keys()
        .find(|k| !allowed.contains(&k.as_str()))
        .map(String::as_str)
}

/// Whether the returned object's `key` differs from the event's.
fn changed(returned: &Map<String, Value>, original: &Value, key: &str) -> bool {
    returned.get(key).is_some_and(|v| v != &original[key])
}

/// Read a viewer-request handler's return value.
pub fn viewer_request_outcome(
    inv: &Invocation,
    event: &Value,
    returned: Option<Value>,
) -> Result<Outcome, FunctionError> {
    let returned = returned.ok_or_else(|| {
        validation("the function returned undefined; return the request or a response")
    })?;
    let obj = returned
        .as_object()
        .ok_or_else(|| validation("the function must return an object"))?;
    if obj.contains_key("statusCode") {
        return generated_response(obj).map(Outcome::Respond);
    }
    let original = &event["request"];
    only_fields(
        obj,
        &["method", "uri", "querystring", "headers", "cookies"],
        "request",
    )?;
    if let Some(method) = obj.get("method")
        && method != &original["method"]
    {
        return Err(validation("request.method is read-only"));
    }
    let mut edits = Edits::default();
    if let Some(uri) = obj.get("uri") {
        let uri = uri
            .as_str()
            .ok_or_else(|| validation("request.uri must be a string"))?;
        if !uri.starts_with('/')
            || uri
                .bytes()
                .any(|b| b.is_ascii_control() || b == b' ' || b == b'#' || b == b'?')
        {
            return Err(validation(format!(
                "request.uri `{uri}` is not a valid path"
            )));
        }
        if uri != original["uri"] {
            edits.uri = Some(uri.to_owned());
        }
    }
    if let Some(q) = obj.get("querystring")
        && q != &original["querystring"]
    {
        edits.querystring = Some(querystring_from(q, &original["querystring"])?);
    }
    let headers_changed = changed(obj, original, "headers");
    let cookies_changed = changed(obj, original, "cookies");
    if headers_changed || cookies_changed {
        let mut headers = match obj.get("headers") {
            Some(h) if headers_changed => {
                headers_from(h, original, &inv.request.headers, READ_ONLY_VIEWER_REQUEST)?
            }
            _ => inv.request.headers.clone(),
        };
        headers.retain(|(n, _)| n != "cookie");
        let cookie = match obj.get("cookies") {
            Some(c) if cookies_changed => cookie_header_from(c, &original["cookies"])?,
            _ => inv
                .request
                .headers
                .iter()
                .filter(|(n, _)| n == "cookie")
                .map(|(_, v)| v.clone())
                .reduce(|mut a, b| {
                    a.extend_from_slice(b"; ");
                    a.extend_from_slice(&b);
                    a
                }),
        };
        if let Some(cookie) = cookie {
            headers.push(("cookie".into(), cookie));
        }
        edits.headers = Some(headers);
    }
    Ok(Outcome::Continue(edits))
}

/// Read a viewer-response handler's return value: status, headers, cookies and body edits.
pub fn viewer_response_outcome(
    inv: &Invocation,
    event: &Value,
    returned: Option<Value>,
) -> Result<Outcome, FunctionError> {
    let returned = returned
        .ok_or_else(|| validation("the function returned undefined; return the response"))?;
    let obj = returned
        .as_object()
        .ok_or_else(|| validation("the function must return the response object"))?;
    only_fields(obj, RESPONSE_FIELDS, "response")?;
    let original = &event["response"];
    let original_headers = inv
        .response
        .as_ref()
        .map_or(Vec::new(), |r| r.headers.clone());
    let mut edits = Edits::default();
    if let Some(status) = obj.get("statusCode")
        && status != &original["statusCode"]
    {
        edits.status = Some(status_code(status)?);
    }
    let headers_changed = changed(obj, original, "headers");
    let cookies_changed = changed(obj, original, "cookies");
    if headers_changed || cookies_changed {
        let mut headers = match obj.get("headers") {
            Some(h) if headers_changed => {
                headers_from(h, original, &original_headers, READ_ONLY_VIEWER_RESPONSE)?
            }
            _ => original_headers.clone(),
        };
        if cookies_changed && let Some(c) = obj.get("cookies") {
            headers.retain(|(n, _)| n != "set-cookie");
            headers.extend(set_cookie_lines(c)?);
        } else if headers_changed {
            // `Set-Cookie` was never in `headers`: keep the origin's.
            headers.retain(|(n, _)| n != "set-cookie");
            headers.extend(
                original_headers
                    .iter()
                    .filter(|(n, _)| n == "set-cookie")
                    .cloned(),
            );
        }
        edits.headers = Some(headers);
    }
    if let Some(body) = obj.get("body") {
        edits.body = Some(body_bytes(body)?);
    }
    Ok(Outcome::Continue(edits))
}

/// `Set-Cookie` lines from a returned `cookies` object.
fn set_cookie_lines(cookies: &Value) -> Result<HeaderList, FunctionError> {
    let map = cookies
        .as_object()
        .ok_or_else(|| validation("response.cookies must be an object"))?;
    let mut lines = Vec::new();
    for (name, entry) in map {
        check_name("cookies", name)?;
        let items: Vec<&Value> = match entry.get("multiValue") {
            Some(Value::Array(items)) => items.iter().collect(),
            _ => vec![entry],
        };
        for item in items {
            let value = item
                .get("value")
                .and_then(Value::as_str)
                .ok_or_else(|| validation(format!("cookies.{name}.value must be a string")))?;
            let attributes = match item.get("attributes") {
                None => "",
                Some(Value::String(a)) => a.as_str(),
                Some(_) => {
                    return Err(validation(format!(
                        "cookies.{name}.attributes must be a string"
                    )));
                }
            };
            let mut line = format!("{name}={value}");
            if !attributes.is_empty() {
                line.push_str("; ");
                line.push_str(attributes);
            }
            check_value("cookies", name, &line)?;
            lines.push(("set-cookie".to_owned(), line.into_bytes()));
        }
    }
    Ok(lines)
}

/// A returned `body`: a plain string (text) or `{encoding: "text" | "base64", data}`.
fn body_bytes(body: &Value) -> Result<Vec<u8>, FunctionError> {
    match body {
        Value::String(text) => Ok(text.clone().into_bytes()),
        Value::Object(b) => {
            let data = b
                .get("data")
                .and_then(Value::as_str)
                .ok_or_else(|| validation("response.body.data must be a string"))?;
            match b.get("encoding").and_then(Value::as_str).unwrap_or("text") {
                "text" => Ok(data.as_bytes().to_vec()),
                "base64" => crate::encoding::base64_decode(data)
                    .ok_or_else(|| validation("response.body.data is not valid base64")),
                other => Err(validation(format!(
                    "response.body.encoding `{other}` is not text or base64"
                ))),
            }
        }
        _ => Err(validation("response.body must be a string or an object")),
    }
}

/// A response generated at viewer-request.
fn generated_response(obj: &Map<String, Value>) -> Result<GeneratedResponse, FunctionError> {
    only_fields(obj, RESPONSE_FIELDS, "response")?;
    let status = status_code(&obj["statusCode"])?;
    // A generated response has no original: nothing is read-only, nothing hidden to keep.
    let mut headers = match obj.get("headers") {
        Some(h) => headers_from(h, &Value::Null, &Vec::new(), &[])?,
        None => Vec::new(),
    };
    if let Some(c) = obj.get("cookies") {
        headers.extend(set_cookie_lines(c)?);
    }
    let body = match obj.get("body") {
        None => Vec::new(),
        Some(body) => body_bytes(body)?,
    };
    Ok(GeneratedResponse {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests;
