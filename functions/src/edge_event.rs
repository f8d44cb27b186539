//! The Lambda@Edge event (contract §2.2) built from an invocation straight onto the JS heap,
//! and what a handler returns read back and validated (§2.3–2.5, §2.7) into an [`Outcome`].
//!
//! All four event types. Headers travel as `name → [{key, value}]` (a missing `key` is filled
//! in), the query string raw, `response.status` as a string, `request.origin` at the
//! origin hooks. As in the fast tier (`cff_event`), the event stays on the Rust side as an
//! [`EdgeEvent`] borrowing the invocation, its headers grouped by name once; the returned value
//! ([`Returned`]) is compared with it part by part — an unchanged part is no edit — with no
//! JSON value built on either side.

use std::borrow::Cow;
use std::rc::Rc;

use boa_engine::{JsObject, JsValue, js_string};

use crate::cff_event::{event_type, http_reason, is_disallowed};
use crate::first_touch::{EventPart, FirstTouch, Pending};
use crate::grouped::Grouped;
use crate::invocation::{EdgeOrigin, HeaderList, Invocation};
use crate::js_json::{JsBuilder, string};
use crate::origin_choice::{OriginChoice, OriginKind, OriginUpdate};
use crate::outcome::{
    Edits, FunctionError, FunctionErrorKind, GeneratedResponse, HeaderEdits, Outcome,
};
use crate::returned::{Fields, Returned};
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
    title_chars(name).collect()
}

fn title_chars(name: &str) -> impl Iterator<Item = char> + '_ {
    let mut upper = true;
    name.chars().map(move |c| {
        let out = if upper { c.to_ascii_uppercase() } else { c };
        upper = c == '-';
        out
    })
}

/// Headers by name, values as the event shows them (invalid UTF-8 replaced).
type Headers<'a> = Grouped<'a, Cow<'a, str>>;

/// The headers a handler sees: disallowed ones hidden.
fn visible<'a>(headers: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Headers<'a> {
    Grouped::group(
        headers
            .into_iter()
            .filter(|(n, _)| !is_disallowed(n))
            .map(|(n, v)| (Cow::Borrowed(n), String::from_utf8_lossy(v))),
    )
}

fn header_list(headers: &HeaderList) -> Headers<'_> {
    visible(headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())))
}

fn custom_headers(origin: &EdgeOrigin) -> Headers<'_> {
    visible(
        origin
            .custom_headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_bytes())),
    )
}

/// A timeout in whole seconds, as `readTimeout` and `keepaliveTimeout` give it.
fn seconds(d: std::time::Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

/// The event of one invocation, kept to write it and to compare the handler's answer with it.
pub struct EdgeEvent<'a> {
    inv: &'a Invocation,
    client_ip: String,
    request_headers: Headers<'a>,
    /// At the response hooks.
    response_headers: Option<Headers<'a>>,
    /// `customHeaders` of `request.origin`, at the origin hooks.
    origin_headers: Option<Headers<'a>>,
    /// `request.body.data` (base64) when the behavior includes the body.
    body_data: Option<String>,
}

impl<'a> EdgeEvent<'a> {
    /// The event of `inv` for its hook.
    pub fn new(inv: &'a Invocation) -> Self {
        EdgeEvent {
            inv,
            client_ip: inv.request.client_ip_text(),
            request_headers: header_list(&inv.request.headers),
            response_headers: inv.response.as_ref().map(|r| header_list(&r.headers)),
            origin_headers: inv.origin.as_ref().map(custom_headers),
            body_data: inv
                .body
                .as_ref()
                .map(|b| crate::encoding::base64(&b.data, true, false)),
        }
    }

    /// Write the event (`{Records: [{cf: {config, request, response?}}]}`) into the context.
    /// With `first_touch` (the function's, and the invocation this event is of), the parts it
    /// defers are built on first touch: `config`, the request at the response hooks, where the
    /// handler's answer does not carry it, and `request.origin` at origin-request
    /// ([`crate::first_touch`]).
    pub fn write(
        &self,
        js: &mut JsBuilder<'_>,
        first_touch: Option<(&FirstTouch, &Rc<Invocation>)>,
    ) -> JsValue {
        let deferred = |part: EventPart, js: &mut JsBuilder<'_>| {
            let (first_touch, inv) = first_touch?;
            if !first_touch.defers(part.into()) {
                return None;
            }
            first_touch.make(Pending::Event(Rc::downgrade(inv), part), js)
        };
        let request = self
            .inv
            .response
            .as_ref()
            .and_then(|_| deferred(EventPart::Request, js));
        let request = request.unwrap_or_else(|| {
            let origin = (self.inv.hook == Hook::OriginRequest && self.inv.origin.is_some())
                .then(|| deferred(EventPart::Origin, js))
                .flatten();
            let request = js.object();
            if let Some((first_touch, _)) = first_touch
                && origin.is_some()
            {
                first_touch.note_request(&request);
            }
            self.write_request_with(&request, origin, js);
            request
        });
        let config = deferred(EventPart::Config, js).unwrap_or_else(|| {
            let config = js.object();
            self.write_config_onto(&config, js);
            config
        });
        let cf = js.object();
        js.set(&cf, "config", config);
        js.set(&cf, "request", request);
        if let (Some(resp), Some(headers)) = (&self.inv.response, &self.response_headers) {
            let response = js.object();
            let headers = write_headers(headers, js);
            js.set(&response, "headers", headers);
            js.set(&response, "status", string(&resp.status.to_string()));
            js.set(
                &response,
                "statusDescription",
                string(http_reason(resp.status)),
            );
            js.set(&cf, "response", response);
        }
        let record = js.object();
        js.set(&record, "cf", cf);
        let records = js.array([record.into()]);
        let event = js.object();
        js.set(&event, "Records", records);
        event.into()
    }

    /// Put `cf.request`'s properties on `request`.
    pub(crate) fn write_request_onto(&self, request: &JsObject, js: &mut JsBuilder<'_>) {
        self.write_request_with(request, None, js);
    }

    /// Put `cf.request`'s properties on `request`, with `origin` (made on first touch) as its
    /// `origin` if given.
    fn write_request_with(
        &self,
        request: &JsObject,
        origin: Option<JsObject>,
        js: &mut JsBuilder<'_>,
    ) {
        let inv = self.inv;
        let req = &inv.request;
        js.set(request, "clientIp", string(&self.client_ip));
        let headers = write_headers(&self.request_headers, js);
        js.set(request, "headers", headers);
        js.set(request, "method", string(&req.method));
        js.set(request, "querystring", string(&req.querystring));
        js.set(request, "uri", string(&req.uri));
        if let Some(origin) = origin {
            js.set(request, "origin", origin);
        } else if inv.origin.is_some() {
            let origin = js.object();
            self.write_origin_onto(&origin, js);
            js.set(request, "origin", origin);
        }
        if let (Some(body), Some(data)) = (&inv.body, &self.body_data) {
            let object = js.object();
            js.set(&object, "action", js_string!("read-only"));
            js.set(&object, "data", string(data));
            js.set(&object, "encoding", js_string!("base64"));
            js.set(&object, "inputTruncated", body.truncated);
            js.set(request, "body", object);
        }
    }

    /// Put `request.origin`'s properties on `origin` (nothing at the viewer hooks, which have
    /// no origin).
    pub(crate) fn write_origin_onto(&self, origin: &JsObject, js: &mut JsBuilder<'_>) {
        if let (Some(o), Some(headers)) = (&self.inv.origin, &self.origin_headers) {
            write_origin(origin, o, headers, js);
        }
    }

    /// Put `cf.config`'s properties on `config`.
    pub(crate) fn write_config_onto(&self, config: &JsObject, js: &mut JsBuilder<'_>) {
        js.set(config, "distributionDomainName", js_string!("verge.local"));
        js.set(config, "distributionId", js_string!("VERGE"));
        js.set(config, "eventType", event_type(self.inv.hook));
        js.set(config, "requestId", string(&self.inv.request_id));
    }

    /// Whether a returned `request.body` is the event's, unchanged.
    fn same_body(&self, returned: &Returned) -> bool {
        let (Some(body), Some(data), Some(fields)) =
            (&self.inv.body, &self.body_data, returned.as_object())
        else {
            return false;
        };
        let text = |key: &str| fields.get(key).and_then(Returned::as_str);
        fields.len() == 4
            && text("action") == Some("read-only")
            && text("data") == Some(data.as_str())
            && text("encoding") == Some("base64")
            && fields.get("inputTruncated") == Some(&Returned::Bool(body.truncated))
    }
}

/// Headers in the event's array format: one `{key, value}` per occurrence.
fn write_headers(headers: &Headers<'_>, js: &mut JsBuilder<'_>) -> JsObject {
    let object = js.object();
    for (name, values) in headers.iter() {
        let key: JsValue = js.keys.title_cased(name).into();
        let items: Vec<JsValue> = values
            .iter()
            .map(|value| js.key_value_entry(key.clone(), string(value)).into())
            .collect();
        let items = js.array(items);
        js.set_named(&object, name, items);
    }
    object
}

/// Put `request.origin`'s one property on `origin`, from the attempt's origin: `s3` for a bucket
/// (configured as one, or one a function switched to), otherwise `custom`.
fn write_origin(
    origin: &JsObject,
    o: &EdgeOrigin,
    custom_headers: &Headers<'_>,
    js: &mut JsBuilder<'_>,
) {
    let fields = js.object();
    let headers = write_headers(custom_headers, js);
    if let Some(region) = &o.s3_region {
        js.set(&fields, "authMethod", js_string!("none"));
        js.set(&fields, "customHeaders", headers);
        js.set(&fields, "domainName", string(&o.domain_name));
        js.set(&fields, "path", string(&o.path));
        js.set(&fields, "region", string(region));
        js.set(origin, "s3", fields);
        return;
    }
    js.set(&fields, "customHeaders", headers);
    js.set(&fields, "domainName", string(&o.domain_name));
    js.set(&fields, "keepaliveTimeout", seconds(o.keepalive_timeout));
    js.set(&fields, "path", string(&o.path));
    js.set(&fields, "port", o.port);
    js.set(
        &fields,
        "protocol",
        if o.https {
            js_string!("https")
        } else {
            js_string!("http")
        },
    );
    js.set(&fields, "readTimeout", seconds(o.read_timeout));
    let protocols = js.array([js_string!("TLSv1.2").into()]);
    js.set(&fields, "sslProtocols", protocols);
    js.set(origin, "custom", fields);
}

/// Whether a returned header object is the event's, unchanged (its names in any order).
fn same_headers(returned: &Returned, original: &Headers<'_>) -> bool {
    let Some(fields) = returned.as_object() else {
        return false;
    };
    fields.len() == original.len()
        && fields.iter().all(|(name, items)| {
            let (Some(values), Some(items)) = (original.get(name), items.as_array()) else {
                return false;
            };
            items.len() == values.len()
                && items.iter().zip(values).all(|(item, value)| {
                    item.as_object().is_some_and(|f| {
                        f.len() == 2
                            && f.get("key")
                                .and_then(Returned::as_str)
                                .is_some_and(|k| k.chars().eq(title_chars(name)))
                            && f.get("value").and_then(Returned::as_str) == Some(value.as_ref())
                    })
                })
        })
}

/// Whether a returned `request.origin` is the event's, unchanged (`false` where the event has
/// no origin).
fn same_origin(returned: &Returned, event: &EdgeEvent<'_>) -> bool {
    let (Some(o), Some(origin_headers)) = (&event.inv.origin, &event.origin_headers) else {
        return false;
    };
    let kind = if o.s3_region.is_some() {
        "s3"
    } else {
        "custom"
    };
    let Some(fields) = returned
        .as_object()
        .filter(|f| f.len() == 1)
        .and_then(|f| f.get(kind))
        .and_then(Returned::as_object)
    else {
        return false;
    };
    let text = |key: &str, want: &str| fields.get(key).and_then(Returned::as_str) == Some(want);
    let number = |key: &str, want: u64| fields.get(key).and_then(Returned::as_u64) == Some(want);
    let common = text("domainName", &o.domain_name)
        && text("path", &o.path)
        && fields
            .get("customHeaders")
            .is_some_and(|h| same_headers(h, origin_headers));
    if let Some(region) = &o.s3_region {
        return common && fields.len() == 5 && text("authMethod", "none") && text("region", region);
    }
    common
        && fields.len() == 8
        && text("protocol", if o.https { "https" } else { "http" })
        && number("port", o.port.into())
        && number("keepaliveTimeout", seconds(o.keepalive_timeout).into())
        && number("readTimeout", seconds(o.read_timeout).into())
        && fields
            .get("sslProtocols")
            .and_then(Returned::as_array)
            .is_some_and(|p| p.len() == 1 && p[0].as_str() == Some("TLSv1.2"))
}

/// A header object in the array format, back to a header list: names lower-case and valid,
/// each element an object with a string `value` and, if present, a `key` naming the same
/// header (ignoring case).
fn headers_from(field: &str, value: &Returned) -> Result<HeaderList, FunctionError> {
    let map = value
        .as_object()
        .ok_or_else(|| validation(format!("{field} must be an object")))?;
    let mut out = Vec::new();
    for (name, items) in map.iter() {
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
                Some(Returned::String(s)) => s,
                _ => {
                    return Err(validation(format!(
                        "{field}.{name}: the value of each header value must be of string type"
                    )));
                }
            };
            match item.get("key") {
                None | Some(Returned::Null) => {}
                Some(Returned::String(key)) if key.eq_ignore_ascii_case(name) => {}
                Some(_) => {
                    return Err(validation(format!(
                        "{field}.{name}: the key of a header must be the header's name"
                    )));
                }
            }
            if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                return Err(validation(format!("{field}.{name} contains CR, LF or NUL")));
            }
            out.push((name.to_owned(), value.clone().into_bytes()));
        }
    }
    Ok(out)
}

/// Whether `a` and `b` hold the same values of header `name`, in the same order.
fn same_values(a: &HeaderList, b: &HeaderList, name: &str) -> bool {
    fn values<'h>(h: &'h HeaderList, name: &str) -> impl Iterator<Item = &'h [u8]> {
        h.iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
    values(a, name).eq(values(b, name))
}

/// Returned headers checked against the original: read-only ones unchanged, disallowed ones not
/// added; the hidden (disallowed) originals are kept as they were.
fn checked_headers(
    hook: Hook,
    field: &str,
    returned: &Returned,
    original: &HeaderList,
) -> Result<HeaderList, FunctionError> {
    let mut headers = headers_from(field, returned)?;
    for name in read_only(hook) {
        if !same_values(&headers, original, name) {
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
fn status_from(value: &Returned) -> Result<u16, FunctionError> {
    let status = match value {
        Returned::String(s) => s.trim().parse::<u16>().ok(),
        other => other.as_u64().and_then(|n| u16::try_from(n).ok()),
    };
    match status {
        Some(s) if (200..=599).contains(&s) => Ok(s),
        _ => Err(validation(format!(
            "status {} is not an HTTP status between 200 and 599",
            value.clone().into_json()
        ))),
    }
}

/// A returned `body` with its `bodyEncoding` (`text` unless `base64`).
fn body_from(obj: &Fields) -> Result<Option<Vec<u8>>, FunctionError> {
    let body = match obj.get("body") {
        None | Some(Returned::Null) => return Ok(None),
        Some(Returned::String(s)) => s,
        Some(_) => return Err(validation("body must be a string")),
    };
    match obj.get("bodyEncoding").and_then(Returned::as_str) {
        None | Some("text") => Ok(Some(body.clone().into_bytes())),
        Some("base64") => crate::encoding::base64_decode(body)
            .map(Some)
            .ok_or_else(|| validation("the body is not valid base64")),
        Some(other) => Err(validation(format!(
            "bodyEncoding `{other}` is not text or base64"
        ))),
    }
}

fn only_fields(obj: &Fields, allowed: &[&str], what: &str) -> Result<(), FunctionError> {
    match obj.unexpected(allowed) {
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
fn generated(hook: Hook, obj: &Fields) -> Result<GeneratedResponse, FunctionError> {
    only_fields(obj, RESPONSE_FIELDS, "the response")?;
    let status = status_from(obj.get("status").unwrap_or(&Returned::Null))?;
    let headers = match obj.get("headers") {
        None | Some(Returned::Null) => Vec::new(),
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
            hook.event_type()
        )));
    }
    Ok(GeneratedResponse {
        status,
        headers,
        body,
    })
}

/// A returned `request.origin`, against the event's: unchanged → `None`; a changed custom or
/// S3 origin → the update to route by.
fn origin_from(
    returned: &Returned,
    event: &EdgeEvent<'_>,
) -> Result<Option<OriginChoice>, FunctionError> {
    if same_origin(returned, event) {
        return Ok(None);
    }
    let obj = returned
        .as_object()
        .ok_or_else(|| validation("request.origin must be an object"))?;
    let given = |key: &str| obj.get(key).filter(|v| !matches!(v, Returned::Null));
    let update = match (given("custom"), given("s3")) {
        (Some(custom), None) => custom_origin(custom)?,
        (None, Some(s3)) => s3_origin(s3)?,
        _ => {
            return Err(validation(
                "request.origin must have exactly one of custom or s3",
            ));
        }
    };
    Ok(Some(OriginChoice::Update(Box::new(update))))
}

/// A returned origin's object (`what` names it), holding only the `allowed` fields.
fn origin_fields<'a>(
    value: &'a Returned,
    what: &str,
    allowed: &[&str],
) -> Result<&'a Fields, FunctionError> {
    let fields = value
        .as_object()
        .ok_or_else(|| validation(format!("{what} must be an object")))?;
    only_fields(fields, allowed, what)?;
    Ok(fields)
}

/// A string field of a returned origin (`what` names the origin's object), `None` when absent.
fn origin_text(fields: &Fields, what: &str, key: &str) -> Result<Option<String>, FunctionError> {
    match fields.get(key) {
        None | Some(Returned::Null) => Ok(None),
        Some(Returned::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(validation(format!("{what}.{key} must be a string"))),
    }
}

/// `domainName` of a returned origin: required, a host name as CloudFront takes it.
fn origin_domain(fields: &Fields, what: &str) -> Result<String, FunctionError> {
    let domain = origin_text(fields, what, "domainName")?
        .ok_or_else(|| validation(format!("{what}.domainName is required")))?;
    crate::origin_choice::check_host_name(&domain, &format!("{what}.domainName"))
        .map_err(validation)?;
    Ok(domain)
}

/// `path` of a returned origin (empty when absent), checked as CloudFront checks it.
fn origin_path(fields: &Fields, what: &str) -> Result<String, FunctionError> {
    let path = origin_text(fields, what, "path")?.unwrap_or_default();
    crate::origin_choice::check_origin_path(&path, &format!("{what}.path")).map_err(validation)?;
    Ok(path)
}

/// `customHeaders` of a returned origin: the header-array format, no disallowed names.
fn origin_headers(fields: &Fields, what: &str) -> Result<Vec<(String, String)>, FunctionError> {
    let headers: Vec<(String, String)> = match fields.get("customHeaders") {
        None | Some(Returned::Null) => Vec::new(),
        Some(h) => headers_from(&format!("{what}.customHeaders"), h)?
            .into_iter()
            .map(|(n, v)| (n, String::from_utf8_lossy(&v).into_owned()))
            .collect(),
    };
    if let Some((name, _)) = headers.iter().find(|(n, _)| is_disallowed(n)) {
        return Err(validation(format!(
            "{what}.customHeaders may not hold {name}"
        )));
    }
    Ok(headers)
}

/// A returned `request.origin.custom`.
fn custom_origin(custom: &Returned) -> Result<OriginUpdate, FunctionError> {
    const WHAT: &str = "request.origin.custom";
    let custom = origin_fields(
        custom,
        WHAT,
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
    )?;
    let number =
        |key: &str, range: std::ops::RangeInclusive<u64>| -> Result<Option<u64>, FunctionError> {
            match custom.get(key) {
                None | Some(Returned::Null) => Ok(None),
                Some(v) => match v
                    .as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                {
                    Some(n) if range.contains(&n) => Ok(Some(n)),
                    _ => Err(validation(format!(
                        "{WHAT}.{key} must be a number in {}–{}",
                        range.start(),
                        range.end()
                    ))),
                },
            }
        };
    let domain = origin_domain(custom, WHAT)?;
    let https = match origin_text(custom, WHAT, "protocol")?.as_deref() {
        None | Some("https") => true,
        Some("http") => false,
        Some(other) => {
            return Err(validation(format!(
                "{WHAT}.protocol `{other}` is not http or https"
            )));
        }
    };
    let port = number("port", 1..=65535)?;
    if let Some(p) = port
        && !(p == 80 || p == 443 || p >= 1024)
    {
        return Err(validation(format!(
            "{WHAT}.port {p} is not 80, 443 or 1024–65535"
        )));
    }
    let path = origin_path(custom, WHAT)?;
    let read_timeout = number("readTimeout", 1..=60)?;
    let keepalive = number("keepaliveTimeout", 1..=60)?;
    let custom_headers = origin_headers(custom, WHAT)?;
    Ok(OriginUpdate {
        domain_name: Some(domain),
        origin_path: Some(path),
        custom_headers: Some(custom_headers),
        port: Some(port.map_or(if https { 443 } else { 80 }, |p| p as u16)),
        https: Some(https),
        read_timeout: read_timeout.map(std::time::Duration::from_secs),
        keep_alive_timeout: keepalive.map(std::time::Duration::from_secs),
        kind: Some(OriginKind::Custom),
        ..OriginUpdate::default()
    })
}

/// A returned `request.origin.s3`: another bucket is reached over HTTPS on port 443, its name
/// verified against the certificate, with the event's timeouts kept (the proxy keeps a
/// configured bucket's own address when the domain stays). Only `authMethod: "none"` (a bucket
/// that allows the read) can be routed: CloudFront refuses an origin access identity when a
/// function switches from a custom origin to S3, and between buckets allows only the identity
/// the request's origin already has, while every origin verge starts a request with, custom or
/// S3, is reached without one.
fn s3_origin(s3: &Returned) -> Result<OriginUpdate, FunctionError> {
    const WHAT: &str = "request.origin.s3";
    let s3 = origin_fields(
        s3,
        WHAT,
        &[
            "authMethod",
            "customHeaders",
            "domainName",
            "path",
            "region",
        ],
    )?;
    match origin_text(s3, WHAT, "authMethod")?.as_deref() {
        None | Some("none") => {}
        Some("origin-access-identity") => {
            return Err(validation(format!(
                "{WHAT}.authMethod `origin-access-identity`: an origin access identity cannot be \
                 used when switching from a custom origin to S3, nor between buckets unless the \
                 request's origin has it (verge reaches every origin without one); use `none` \
                 for a bucket that allows the read"
            )));
        }
        Some(other) => {
            return Err(validation(format!(
                "{WHAT}.authMethod `{other}` is not none or origin-access-identity"
            )));
        }
    }
    let domain = origin_domain(s3, WHAT)?;
    if !verge_config::S3Bucket::domain_ok(&domain) {
        return Err(validation(format!(
            "{WHAT}.domainName `{domain}` must be lower case and at most {} \
             characters",
            verge_config::S3Bucket::MAX_DOMAIN
        )));
    }
    let path = origin_path(s3, WHAT)?;
    let region = origin_text(s3, WHAT, "region")?.unwrap_or_default();
    let custom_headers = origin_headers(s3, WHAT)?;
    Ok(OriginUpdate {
        domain_name: Some(domain),
        origin_path: Some(path),
        custom_headers: Some(custom_headers),
        port: Some(443),
        https: Some(true),
        kind: Some(OriginKind::S3 { region }),
        ..OriginUpdate::default()
    })
}

/// The returned request at viewer-request or origin-request, against the event's.
fn request_edits(event: &EdgeEvent<'_>, obj: &Fields) -> Result<Edits, FunctionError> {
    let inv = event.inv;
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
    for (key, was) in [
        ("clientIp", event.client_ip.as_str()),
        ("method", inv.request.method.as_str()),
    ] {
        if obj.get(key).and_then(Returned::as_str) != Some(was) {
            return Err(validation(format!("request.{key} is read-only")));
        }
    }
    let mut edits = Edits::default();
    match obj.get("uri") {
        Some(Returned::String(uri)) if uri != &inv.request.uri => {
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
        Some(Returned::String(_)) => {}
        _ => return Err(validation("request.uri must be a string")),
    }
    match obj.get("querystring") {
        None | Some(Returned::Null) => {}
        Some(Returned::String(q)) if q != &inv.request.querystring => {
            if q.bytes().any(|b| b <= b' ' || b == b'#' || b == 0x7f) {
                return Err(validation(
                    "request.querystring contains a space, a control character or #",
                ));
            }
            edits.querystring = Some(q.clone());
        }
        Some(Returned::String(_)) => {}
        Some(_) => return Err(validation("request.querystring must be a string")),
    }
    let headers = match obj.get("headers") {
        Some(h) => h,
        None => return Err(validation("request.headers is required")),
    };
    if !same_headers(headers, &event.request_headers) {
        edits.headers = Some(HeaderEdits::Whole(checked_headers(
            inv.hook,
            "request.headers",
            headers,
            &inv.request.headers,
        )?));
    }
    if let Some(origin) = obj.get("origin") {
        if inv.hook != Hook::OriginRequest {
            if !same_origin(origin, event) {
                return Err(validation(
                    "request.origin can be changed only at origin-request",
                ));
            }
        } else {
            edits.origin = origin_from(origin, event)?;
            // A header goes to the origin either from the request or as the origin's own.
            if let Some(OriginChoice::Update(update)) = &edits.origin
                && let (Some(custom), Some(fields)) = (&update.custom_headers, headers.as_object())
                && let Some((name, _)) = custom.iter().find(|(n, _)| fields.get(n).is_some())
            {
                return Err(validation(format!(
                    "request.origin customHeaders may not hold {name}, which request.headers has"
                )));
            }
        }
    }
    if let Some(body) = obj.get("body")
        && !event.same_body(body)
    {
        edits.body = body_replacement(inv, body)?;
    }
    Ok(edits)
}

/// A changed `request.body`: the new body when `action` is `replace` (within the hook's cap),
/// nothing when it stays `read-only`. Without include-body there is no body to change.
fn body_replacement(inv: &Invocation, body: &Returned) -> Result<Option<Vec<u8>>, FunctionError> {
    if inv.body.is_none() {
        if *body == Returned::Null {
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
    match obj.get("action").and_then(Returned::as_str) {
        None | Some("read-only") => return Ok(None),
        Some("replace") => {}
        Some(other) => {
            return Err(validation(format!(
                "request.body.action `{other}` is not read-only or replace"
            )));
        }
    }
    let data = match obj.get("data") {
        Some(Returned::String(data)) => data,
        None | Some(Returned::Null) => "",
        Some(_) => return Err(validation("request.body.data must be a string")),
    };
    let bytes = match obj.get("encoding").and_then(Returned::as_str) {
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
            inv.hook.event_type()
        )));
    }
    Ok(Some(bytes))
}

/// The returned response at origin-response or viewer-response, against the event's.
fn response_edits(event: &EdgeEvent<'_>, obj: &Fields) -> Result<Edits, FunctionError> {
    let inv = event.inv;
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
        && !event
            .response_headers
            .as_ref()
            .is_some_and(|original| same_headers(headers, original))
    {
        let empty = Vec::new();
        let before = inv.response.as_ref().map_or(&empty, |r| &r.headers);
        edits.headers = Some(HeaderEdits::Whole(checked_headers(
            inv.hook,
            "response.headers",
            headers,
            before,
        )?));
    }
    edits.body = body_from(obj)?;
    Ok(edits)
}

impl EdgeEvent<'_> {
    /// Read what the handler returned (`None` for `undefined`/`null`) against this event.
    pub fn outcome(&self, returned: Option<&Returned>) -> Result<Outcome, FunctionError> {
        let returned = returned.ok_or_else(|| {
            validation("the function returned nothing (or called back without a result)")
        })?;
        let obj = returned.as_object().ok_or_else(|| FunctionError {
            kind: FunctionErrorKind::Validation,
            message:
                "The Lambda function returned invalid JSON: The JSON output must be an object type."
                    .into(),
            edge: true,
        })?;
        match self.inv.hook {
            Hook::ViewerRequest | Hook::OriginRequest => {
                if obj.contains_key("status") {
                    return generated(self.inv.hook, obj).map(Outcome::Respond);
                }
                request_edits(self, obj).map(Outcome::Continue)
            }
            Hook::OriginResponse | Hook::ViewerResponse => {
                response_edits(self, obj).map(Outcome::Continue)
            }
        }
    }
}

#[cfg(test)]
mod tests;
