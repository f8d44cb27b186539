//! The CloudFront Functions event (contract §1.2) built from a request snapshot straight onto
//! the JS heap, and the handler's return value read back and validated (§1.3, §1.9) into an
//! [`Outcome`]: viewer-request and viewer-response.
//!
//! The event stays on the Rust side as a [`CffEvent`] borrowing the invocation, grouped by name
//! once; the returned value is compared with it field by field (an unchanged part is no edit),
//! with no JSON value built on either side. In the fast pool the parts a handler may never
//! touch are built only when it does ([`CffEvent::deferring`], [`crate::deferred`]).

use std::borrow::Cow;
use std::cell::OnceCell;
use std::rc::Rc;

use boa_engine::{JsObject, JsString, JsValue, js_string};
use boa_gc::Gc;

use crate::deferred::{self, Kit, Part};
use crate::grouped::Grouped;
use crate::invocation::{HeaderList, Invocation};
use crate::js_json::{JsBuilder, string};
use crate::outcome::{
    Edits, FunctionError, FunctionErrorKind, GeneratedResponse, HeaderEdits, Outcome,
};
use crate::returned::{Fields, Returned};
use verge_config::Hook;

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

/// Query parameters, headers or cookies: `name → values`.
type MultiMap<'a> = Grouped<'a, Cow<'a, str>>;

/// One `Set-Cookie` line's value and attributes.
type SetCookie<'a> = (Cow<'a, str>, Cow<'a, str>);

/// A header value as text (invalid UTF-8 replaced, as the event shows it).
fn text(value: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(value)
}

/// Header fields a function sees, grouped by name.
fn visible_headers<'a>(headers: &'a [(String, Vec<u8>)], split_out: &str) -> MultiMap<'a> {
    Grouped::group(
        headers
            .iter()
            .filter(|(n, _)| n != split_out && !is_disallowed(n))
            .map(|(n, v)| (Cow::Borrowed(n.as_str()), text(v))),
    )
}

/// Split `a=1&b&c=3` into name/value pairs (a name without `=` has value `""`), names and values
/// passed through as sent (CloudFront does not decode them).
fn query_pairs(query: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((n, v)) => (Cow::Borrowed(n), Cow::Borrowed(v)),
            None => (Cow::Borrowed(p), Cow::Borrowed("")),
        })
}

/// `Cookie: a=1; b=2` pairs, in order, from every `cookie` header.
fn cookie_pairs(headers: &HeaderList) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    headers
        .iter()
        .filter(|(n, _)| n == "cookie")
        .filter_map(|(_, v)| std::str::from_utf8(v).ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| {
            let c = c.trim();
            let (n, v) = c.split_once('=').unwrap_or((c, ""));
            (!n.is_empty()).then_some((Cow::Borrowed(n), Cow::Borrowed(v)))
        })
}

/// A `Set-Cookie` line as name, value and attributes.
fn set_cookie_parts(line: &str) -> (&str, &str, &str) {
    let (pair, attributes) = match line.split_once(';') {
        Some((p, a)) => (p, a.trim()),
        None => (line, ""),
    };
    let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
    (name.trim(), value.trim(), attributes)
}

/// `Set-Cookie` lines grouped by cookie name.
fn set_cookies(headers: &[(String, Vec<u8>)]) -> Grouped<'_, SetCookie<'_>> {
    Grouped::group(
        headers
            .iter()
            .filter(|(n, _)| n == "set-cookie")
            .map(|(_, line)| match text(line) {
                Cow::Borrowed(line) => {
                    let (name, value, attributes) = set_cookie_parts(line);
                    (name.into(), (value.into(), attributes.into()))
                }
                // Invalid UTF-8 was replaced: the parts are copied out of the repaired line.
                Cow::Owned(line) => {
                    let (name, value, attributes) = set_cookie_parts(&line);
                    let own = |part: &str| Cow::Owned(part.to_owned());
                    (own(name), (own(value), own(attributes)))
                }
            }),
    )
}

/// The response part of a viewer-response event.
#[derive(Debug)]
struct ResponseView<'a> {
    status: u16,
    /// All the origin's response headers.
    list: &'a [(String, Vec<u8>)],
    /// `list` grouped by name (`Set-Cookie` split out), made when first needed.
    headers: OnceCell<MultiMap<'a>>,
    /// `Set-Cookie` grouped by name, made when first needed (deferred, a handler may never
    /// look at them).
    cookies: OnceCell<Grouped<'a, SetCookie<'a>>>,
}

impl<'a> ResponseView<'a> {
    fn headers(&self) -> &MultiMap<'a> {
        self.headers
            .get_or_init(|| visible_headers(self.list, "set-cookie"))
    }

    fn cookies(&self) -> &Grouped<'a, SetCookie<'a>> {
        self.cookies.get_or_init(|| set_cookies(self.list))
    }
}

/// An event's `eventType` (both tiers), a static string with nothing to allocate; the same
/// text as [`Hook::event_type`] (tested).
pub(crate) fn event_type(hook: Hook) -> JsString {
    match hook {
        Hook::ViewerRequest => js_string!("viewer-request"),
        Hook::OriginRequest => js_string!("origin-request"),
        Hook::OriginResponse => js_string!("origin-response"),
        Hook::ViewerResponse => js_string!("viewer-response"),
    }
}

/// A viewer-request or viewer-response event, kept on the Rust side as the original the
/// handler's result is checked against, and written onto the JS heap when the handler is
/// called (no JSON in between: building a `serde_json::Value` first cost more than the JS
/// objects themselves).
#[derive(Debug)]
pub struct CffEvent<'a> {
    inv: &'a Invocation,
    hook: Hook,
    /// The request's headers grouped by name (`Cookie` split out), made when first needed: a
    /// getter building one deferred part needs no other.
    headers: OnceCell<MultiMap<'a>>,
    /// The query string and the cookies grouped by name, made when first needed: with
    /// deferred parts a handler that never touches them needs neither.
    query: OnceCell<MultiMap<'a>>,
    cookies: OnceCell<MultiMap<'a>>,
    response: Option<ResponseView<'a>>,
    /// The invocation shared with the JS objects, when parts are built on first touch
    /// ([`CffEvent::deferring`]).
    source: Option<Rc<Invocation>>,
}

impl<'a> CffEvent<'a> {
    /// The viewer-request event.
    pub fn viewer_request(inv: &'a Invocation) -> Self {
        CffEvent {
            inv,
            hook: Hook::ViewerRequest,
            query: OnceCell::new(),
            headers: OnceCell::new(),
            cookies: OnceCell::new(),
            response: None,
            source: None,
        }
    }

    /// The viewer-response event: the request and the response (the original body is not
    /// readable).
    pub fn viewer_response(inv: &'a Invocation) -> Self {
        let response = match &inv.response {
            Some(r) => ResponseView {
                status: r.status,
                list: &r.headers,
                headers: OnceCell::new(),
                cookies: OnceCell::new(),
            },
            None => ResponseView {
                status: 200,
                list: &[],
                headers: OnceCell::from(Grouped::empty()),
                cookies: OnceCell::from(Grouped::empty()),
            },
        };
        CffEvent {
            response: Some(response),
            hook: Hook::ViewerResponse,
            ..Self::viewer_request(inv)
        }
    }

    /// Build the parts a handler may never touch only when it does ([`crate::deferred`]);
    /// `source` must be the invocation this event was made from, at its own hook (otherwise
    /// the event stays built in full: the parts are built from `source` alone).
    pub fn deferring(mut self, source: &Rc<Invocation>) -> Self {
        if std::ptr::eq(&**source, self.inv) && source.hook == self.hook {
            self.source = Some(source.clone());
        }
        self
    }

    fn headers(&self) -> &MultiMap<'a> {
        self.headers
            .get_or_init(|| visible_headers(&self.inv.request.headers, "cookie"))
    }

    fn query(&self) -> &MultiMap<'a> {
        self.query
            .get_or_init(|| Grouped::group(query_pairs(&self.inv.request.querystring)))
    }

    fn cookies(&self) -> &MultiMap<'a> {
        self.cookies
            .get_or_init(|| Grouped::group(cookie_pairs(&self.inv.request.headers)))
    }

    /// The invocation its deferred parts come from, if any.
    pub fn source(&self) -> Option<&Rc<Invocation>> {
        self.source.as_ref()
    }

    /// The event on the JS heap; `event.request` gets the kit's request prototype (which
    /// gives it `rawQueryString()`).
    pub fn write(&self, js: &mut JsBuilder<'_>, kit: &Gc<Kit>) -> JsValue {
        let prototype = object_prototype(js);
        let event = self.holder(prototype, kit, js);
        js.set(&event, "version", js_string!("1.0"));
        self.put_part(&event, Part::Context, kit, js);
        self.put_part(&event, Part::Viewer, kit, js);
        match &self.response {
            // A viewer-response handler often never looks at the request.
            Some(_) => self.put_part(&event, Part::Request, kit, js),
            None => {
                let request = self.write_request(kit, js);
                js.set(&event, "request", request);
            }
        }
        if let Some(r) = &self.response {
            let prototype = object_prototype(js);
            let response = self.holder(prototype, kit, js);
            js.set(&response, "statusCode", JsValue::new(i32::from(r.status)));
            js.set(
                &response,
                "statusDescription",
                string(http_reason(r.status)),
            );
            let headers = write_multi(r.headers(), js);
            js.set(&response, "headers", headers);
            self.put_part(&response, Part::ResponseCookies, kit, js);
            js.set(&event, "response", response);
        }
        event.into()
    }

    /// An empty object with `prototype` to hold the event's parts: one that can hold deferred
    /// parts when this event defers any.
    fn holder(&self, prototype: JsObject, kit: &Gc<Kit>, js: &mut JsBuilder<'_>) -> JsObject {
        match &self.source {
            Some(source) => deferred::owner(js, prototype, source, kit),
            None => js.object_with(prototype),
        }
    }

    /// Put `part` on `object`: deferred when this event defers parts and the handler has not
    /// touched this one before ([`Kit::defers`]), built now otherwise.
    fn put_part(&self, object: &JsObject, part: Part, kit: &Gc<Kit>, js: &mut JsBuilder<'_>) {
        if self.source.is_some() && kit.defers(part) {
            deferred::define(js, object, part, kit);
        } else {
            let value = self.write_part(part, kit, js);
            JsBuilder::insert(object, part.property(), value);
        }
    }

    /// `part` built in full (its own deferred parts aside).
    fn write_part(&self, part: Part, kit: &Gc<Kit>, js: &mut JsBuilder<'_>) -> JsValue {
        let inv = self.inv;
        match part {
            Part::Context => write_context(inv, self.hook, js),
            Part::Viewer => write_viewer(inv, js),
            Part::Request => self.write_request(kit, js),
            Part::Querystring => write_multi(self.query(), js).into(),
            Part::Cookies => write_multi(self.cookies(), js).into(),
            Part::ResponseCookies => match &self.response {
                Some(r) => write_set_cookies(r.cookies(), js).into(),
                None => write_set_cookies(&Grouped::empty(), js).into(),
            },
        }
    }

    /// `event.request`.
    fn write_request(&self, kit: &Gc<Kit>, js: &mut JsBuilder<'_>) -> JsValue {
        let inv = self.inv;
        let request = self.holder(kit.request_prototype.clone(), kit, js);
        js.set(&request, "method", string(&inv.request.method));
        js.set(&request, "uri", string(&inv.request.uri));
        self.put_part(&request, Part::Querystring, kit, js);
        let headers = write_multi(self.headers(), js);
        js.set(&request, "headers", headers);
        self.put_part(&request, Part::Cookies, kit, js);
        request.into()
    }
}

fn object_prototype(js: &mut JsBuilder<'_>) -> JsObject {
    js.context.intrinsics().constructors().object().prototype()
}

/// `event.context`.
fn write_context(inv: &Invocation, hook: Hook, js: &mut JsBuilder<'_>) -> JsValue {
    let context = js.object();
    js.set(
        &context,
        "distributionDomainName",
        js_string!("verge.local"),
    );
    js.set(&context, "distributionId", js_string!("VERGE"));
    js.set(&context, "eventType", event_type(hook));
    js.set(&context, "requestId", string(&inv.request_id));
    context.into()
}

/// `event.viewer`.
fn write_viewer(inv: &Invocation, js: &mut JsBuilder<'_>) -> JsValue {
    let viewer = js.object();
    js.set(&viewer, "ip", string(&inv.request.client_ip_text()));
    viewer.into()
}

/// Entries past which building a deferred part is not charged to the function's budget: the
/// eager event was built before the budget started, and a part with hundreds of cookies takes
/// a good share of a budget to build. Exempting costs two reads of the thread's CPU clock
/// (~1 µs), more than a part of a few entries takes.
const CHARGED_ENTRIES: usize = 8;

/// A deferred part of a CloudFront Functions event, built as the eager event has it (a part of
/// more than [`CHARGED_ENTRIES`] outside the budget).
pub fn build_part(
    part: Part,
    source: &Rc<Invocation>,
    kit: &Gc<Kit>,
    js: &mut JsBuilder<'_>,
) -> JsValue {
    let inv = &**source;
    let headers = &inv.request.headers;
    let entries = match part {
        Part::Context | Part::Viewer => 0,
        Part::Request => headers.len(),
        Part::Querystring => inv.request.querystring.matches('&').count() + 1,
        Part::Cookies => cookie_pairs(headers).count(),
        Part::ResponseCookies => inv.response.as_ref().map_or(0, |r| r.headers.len()),
    };
    let event = match inv.hook {
        Hook::ViewerResponse => CffEvent::viewer_response(inv),
        _ => CffEvent::viewer_request(inv),
    }
    .deferring(source);
    let mut write = || event.write_part(part, kit, js);
    if entries > CHARGED_ENTRIES {
        crate::budget::exempt(write)
    } else {
        write()
    }
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

/// `{value, multiValue?}` objects: `multiValue` only for repeated names, the first value also
/// in `value` (§1.2).
fn write_multi(map: &MultiMap<'_>, js: &mut JsBuilder<'_>) -> JsObject {
    let object = js.object();
    for (name, values) in map.iter() {
        // Grouping never makes an empty entry; `split_first` keeps that panic-free.
        let Some((first, rest)) = values.split_first() else {
            continue;
        };
        let first = string(first);
        let entry = js.value_entry(first.clone());
        if !rest.is_empty() {
            let items: Vec<JsValue> = std::iter::once(first)
                .chain(rest.iter().map(|v| string(v)))
                .map(|v| js.value_entry(v).into())
                .collect();
            let items = js.array(items);
            js.set(&entry, "multiValue", items);
        }
        js.set_named(&object, name, entry);
    }
    object
}

/// `Set-Cookie` lines as `{value, attributes, multiValue?: [{value, attributes}]}` (§1.2).
fn write_set_cookies(map: &Grouped<'_, SetCookie<'_>>, js: &mut JsBuilder<'_>) -> JsObject {
    let object = js.object();
    for (name, lines) in map.iter() {
        let mut line_object = |(value, attributes): &SetCookie<'_>| {
            let item = js.object();
            js.set(&item, "value", string(value));
            js.set(&item, "attributes", string(attributes));
            item
        };
        let Some(first) = lines.first() else {
            continue;
        };
        let entry = line_object(first);
        if lines.len() > 1 {
            let items: Vec<JsValue> = lines.iter().map(|l| line_object(l).into()).collect();
            let items = js.array(items);
            js.set(&entry, "multiValue", items);
        }
        js.set_named(&object, name, entry);
    }
    object
}

/// Whether a returned `{value, multiValue?}` map is exactly the original's (as built by
/// [`write_multi`]; key order aside, as JSON equality has it).
fn same_multi(returned: &Returned, original: &MultiMap<'_>) -> bool {
    returned.as_object().is_some_and(|fields| {
        fields.len() == original.len()
            && fields.iter().all(|(name, entry)| {
                original
                    .get(name)
                    .is_some_and(|values| same_entry(entry, values))
            })
    })
}

fn same_entry(entry: &Returned, values: &[Cow<'_, str>]) -> bool {
    let Some(fields) = entry.as_object() else {
        return false;
    };
    let repeated = values.len() > 1;
    fields.len() == 1 + usize::from(repeated)
        && fields.get("value").and_then(Returned::as_str) == values.first().map(|v| &**v)
        && (!repeated
            || fields
                .get("multiValue")
                .is_some_and(|m| same_multi_value(m, values)))
}

/// Whether a returned `multiValue` is `[{value}, …]` with exactly these values.
fn same_multi_value(multi: &Returned, values: &[Cow<'_, str>]) -> bool {
    multi.as_array().is_some_and(|items| {
        items.len() == values.len()
            && items.iter().zip(values).all(|(item, value)| {
                item.as_object().is_some_and(|o| {
                    o.len() == 1 && o.get("value").and_then(Returned::as_str) == Some(&**value)
                })
            })
    })
}

/// Whether a returned response `cookies` map is exactly the original's (as built by
/// [`write_set_cookies`]).
fn same_set_cookies(returned: &Returned, original: &Grouped<'_, SetCookie<'_>>) -> bool {
    let line = |item: &Returned, (value, attributes): &SetCookie<'_>, extra: usize| {
        item.as_object().is_some_and(|o| {
            o.len() == 2 + extra
                && o.get("value").and_then(Returned::as_str) == Some(&**value)
                && o.get("attributes").and_then(Returned::as_str) == Some(&**attributes)
        })
    };
    returned.as_object().is_some_and(|fields| {
        fields.len() == original.len()
            && fields.iter().all(|(name, entry)| {
                original.get(name).is_some_and(|lines| {
                    let repeated = lines.len() > 1;
                    lines
                        .first()
                        .is_some_and(|first| line(entry, first, usize::from(repeated)))
                        && (!repeated
                            || entry
                                .get("multiValue")
                                .and_then(Returned::as_array)
                                .is_some_and(|items| {
                                    items.len() == lines.len()
                                        && items.iter().zip(lines).all(|(i, l)| line(i, l, 0))
                                }))
                })
            })
    })
}

/// The values of one `{value, multiValue?}` entry: a modified `multiValue` wins, otherwise
/// `value` replaces the first of the original values and the rest stay (§1.2).
fn entry_values(
    field: &str,
    name: &str,
    entry: &Returned,
    original: Option<&[Cow<'_, str>]>,
) -> Result<Vec<String>, FunctionError> {
    let obj = entry
        .as_object()
        .ok_or_else(|| validation(format!("{field}.{name} must be an object with a value")))?;
    if let Some(key) = obj.unexpected(&["value", "multiValue", "multivalue"]) {
        return Err(validation(format!(
            "{field}.{name} has an unexpected field `{key}`"
        )));
    }
    let value = |v: &Returned| -> Result<String, FunctionError> {
        match v.get("value") {
            Some(Returned::String(s)) => Ok(s.clone()),
            _ => Err(validation(format!("{field}.{name}.value must be a string"))),
        }
    };
    let multi = obj.get("multiValue").or_else(|| obj.get("multivalue"));
    // The original shows `multiValue` only for a repeated name.
    let original_multi = original.filter(|values| values.len() > 1);
    if let Some(multi) = multi
        && !original_multi.is_some_and(|values| same_multi_value(multi, values))
    {
        let items = multi
            .as_array()
            .ok_or_else(|| validation(format!("{field}.{name}.multiValue must be an array")))?;
        return items.iter().map(value).collect();
    }
    let mut values = vec![value(entry)?];
    if let Some(rest) = original_multi {
        values.extend(rest.iter().skip(1).map(|v| v.clone().into_owned()));
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

/// What a returned `headers` object changes against the headers the function was given
/// (`original`, which leaves out `split_out` and what functions may not see), enforcing the
/// read-only and disallowed rules. A name whose values are what it had stays out of the
/// changes, bytes and all (a value that was not UTF-8 is not rewritten as its lossy text); a
/// name set to other values goes into `set`, a name the object no longer has into `removed`.
/// `split_out` in the object is ignored: its own part (`cookies`) says what it becomes. What
/// the function could not see is never touched, and neither is anything when the returned
/// object has no `headers` (`returned` is `None`).
fn header_changes(
    returned: Option<&Returned>,
    original: &MultiMap<'_>,
    read_only: &[&str],
    split_out: &str,
) -> Result<HeaderChanges, FunctionError> {
    let mut changes = HeaderChanges::default();
    let Some(returned) = returned else {
        return Ok(changes);
    };
    let map = returned
        .as_object()
        .ok_or_else(|| validation("headers must be an object"))?;
    let read_only_error = |name: &str| validation(format!("headers: `{name}` is read-only here"));
    // Names of `original` the object still has (each at most once: object keys are unique).
    let mut kept = 0;
    for (name, entry) in map.iter() {
        check_name("headers", name)?;
        if is_disallowed(name) {
            return Err(validation(format!(
                "headers: `{name}` may not be set by a function"
            )));
        }
        if name == split_out {
            // Checked as any header is, then left to its own part.
            for v in entry_values("headers", name, entry, None)? {
                check_value("headers", name, &v)?;
            }
            continue;
        }
        let before = original.get(name);
        kept += usize::from(before.is_some());
        if before.is_some_and(|values| same_entry(entry, values)) {
            continue;
        }
        let values = entry_values("headers", name, entry, before)?;
        let unchanged = before.is_some_and(|before| {
            before
                .iter()
                .map(|v| v.as_bytes())
                .eq(values.iter().map(String::as_bytes))
        });
        if unchanged {
            continue;
        }
        if read_only.contains(&name) {
            return Err(read_only_error(name));
        }
        for v in &values {
            check_value("headers", name, v)?;
        }
        changes.set.extend(
            values
                .into_iter()
                .map(|v| (name.to_owned(), v.into_bytes())),
        );
    }
    // Usually every name is still there, which the count shows without a lookup per name;
    // otherwise the names are looked up in a set (a request may carry thousands).
    if kept < original.len() {
        let still: foldhash::HashSet<&str> = map.keys().collect();
        for (name, _) in original.iter() {
            if !still.contains(name) {
                if read_only.contains(&name) {
                    return Err(read_only_error(name));
                }
                changes.removed.push(name.to_owned());
            }
        }
    }
    Ok(changes)
}

/// Header changes being gathered from a returned request or response ([`HeaderEdits::Changes`]).
#[derive(Default)]
struct HeaderChanges {
    set: HeaderList,
    removed: Vec<String>,
}

impl HeaderChanges {
    /// Give `name` exactly `values`: removed when there are none and the original had it.
    fn replace(&mut self, name: &str, values: HeaderList, had: bool) {
        if values.is_empty() {
            if had {
                self.removed.push(name.to_owned());
            }
        } else {
            self.set.extend(values);
        }
    }

    /// The edits, `None` when nothing changed.
    fn into_edits(self) -> Option<HeaderEdits> {
        (!self.set.is_empty() || !self.removed.is_empty()).then_some(HeaderEdits::Changes {
            set: self.set,
            removed: self.removed,
        })
    }
}

/// Rebuild the query string from a returned `querystring` (object, or a raw string as the AWS
/// normalize-query-string sample returns).
fn querystring_from(returned: &Returned, original: &MultiMap<'_>) -> Result<String, FunctionError> {
    let query = match returned {
        Returned::String(raw) => raw.trim_start_matches('?').to_owned(),
        Returned::Object(map) => {
            let mut parts = Vec::new();
            for (name, entry) in map.iter() {
                let values = entry_values("querystring", name, entry, original.get(name))?;
                for v in values {
                    if v.is_empty() {
                        parts.push(name.to_owned());
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
    returned: &Returned,
    original: &MultiMap<'_>,
) -> Result<Option<Vec<u8>>, FunctionError> {
    let map = returned
        .as_object()
        .ok_or_else(|| validation("cookies must be an object"))?;
    let mut parts = Vec::new();
    for (name, entry) in map.iter() {
        check_name("cookies", name)?;
        for v in entry_values("cookies", name, entry, original.get(name))? {
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
fn status_code(value: &Returned) -> Result<u16, FunctionError> {
    value
        .as_u64()
        .filter(|s| (100..=599).contains(s))
        .map(|s| s as u16)
        .ok_or_else(|| validation("response.statusCode must be an integer from 100 to 599"))
}

/// Refuse fields a returned object may not have (CloudFront: "the request object has an
/// unexpected field").
fn only_fields(obj: &Fields, allowed: &[&str], what: &str) -> Result<(), FunctionError> {
    match obj.unexpected(allowed) {
        Some(key) => Err(validation(format!(
            "the {what} object has an unexpected field `{key}`"
        ))),
        None => Ok(()),
    }
}

/// Read a viewer-request handler's return value.
pub fn viewer_request_outcome(
    event: &CffEvent<'_>,
    returned: Option<Returned>,
) -> Result<Outcome, FunctionError> {
    let inv = event.inv;
    let returned = returned.ok_or_else(|| {
        validation("the function returned undefined; return the request or a response")
    })?;
    let obj = returned
        .as_object()
        .ok_or_else(|| validation("the function must return an object"))?;
    if obj.contains_key("statusCode") {
        return generated_response(obj).map(Outcome::Respond);
    }
    only_fields(
        obj,
        &["method", "uri", "querystring", "headers", "cookies"],
        "request",
    )?;
    if let Some(method) = obj.get("method")
        && method.as_str() != Some(inv.request.method.as_str())
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
        if uri != inv.request.uri {
            edits.uri = Some(uri.to_owned());
        }
    }
    if let Some(q) = obj.get("querystring")
        && !same_multi(q, event.query())
    {
        edits.querystring = Some(querystring_from(q, event.query())?);
    }
    let mut changes = header_changes(
        obj.get("headers"),
        event.headers(),
        READ_ONLY_VIEWER_REQUEST,
        "cookie",
    )?;
    if let Some(cookies) = obj
        .get("cookies")
        .filter(|c| !same_multi(c, event.cookies()))
    {
        let line = cookie_header_from(cookies, event.cookies())?;
        let had = inv.request.headers.iter().any(|(n, _)| n == "cookie");
        changes.replace(
            "cookie",
            line.map(|l| ("cookie".to_owned(), l)).into_iter().collect(),
            had,
        );
    }
    edits.headers = changes.into_edits();
    Ok(Outcome::Continue(edits))
}

/// Read a viewer-response handler's return value: status, headers, cookies and body edits.
pub fn viewer_response_outcome(
    event: &CffEvent<'_>,
    returned: Option<Returned>,
) -> Result<Outcome, FunctionError> {
    let returned = returned
        .ok_or_else(|| validation("the function returned undefined; return the response"))?;
    let obj = returned
        .as_object()
        .ok_or_else(|| validation("the function must return the response object"))?;
    only_fields(obj, RESPONSE_FIELDS, "response")?;
    let Some(original) = &event.response else {
        return Err(validation("a response was read back from a request event"));
    };
    let mut edits = Edits::default();
    if let Some(status) = obj.get("statusCode")
        && status.as_u64() != Some(u64::from(original.status))
    {
        edits.status = Some(status_code(status)?);
    }
    let mut changes = header_changes(
        obj.get("headers"),
        original.headers(),
        READ_ONLY_VIEWER_RESPONSE,
        "set-cookie",
    )?;
    if let Some(cookies) = obj
        .get("cookies")
        .filter(|c| !same_set_cookies(c, original.cookies()))
    {
        let had = original.list.iter().any(|(n, _)| n == "set-cookie");
        changes.replace("set-cookie", set_cookie_lines(cookies)?, had);
    }
    edits.headers = changes.into_edits();
    if let Some(body) = obj.get("body") {
        edits.body = Some(body_bytes(body)?);
    }
    Ok(Outcome::Continue(edits))
}

/// `Set-Cookie` lines from a returned `cookies` object.
fn set_cookie_lines(cookies: &Returned) -> Result<HeaderList, FunctionError> {
    let map = cookies
        .as_object()
        .ok_or_else(|| validation("response.cookies must be an object"))?;
    let mut lines = Vec::new();
    for (name, entry) in map.iter() {
        check_name("cookies", name)?;
        let items: Vec<&Returned> = match entry.get("multiValue") {
            Some(Returned::Array(items)) => items.iter().collect(),
            _ => vec![entry],
        };
        for item in items {
            let value = item
                .get("value")
                .and_then(Returned::as_str)
                .ok_or_else(|| validation(format!("cookies.{name}.value must be a string")))?;
            let attributes = match item.get("attributes") {
                None => "",
                Some(Returned::String(a)) => a.as_str(),
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
fn body_bytes(body: &Returned) -> Result<Vec<u8>, FunctionError> {
    match body {
        Returned::String(text) => Ok(text.clone().into_bytes()),
        Returned::Object(b) => {
            let data = b
                .get("data")
                .and_then(Returned::as_str)
                .ok_or_else(|| validation("response.body.data must be a string"))?;
            match b
                .get("encoding")
                .and_then(Returned::as_str)
                .unwrap_or("text")
            {
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
fn generated_response(obj: &Fields) -> Result<GeneratedResponse, FunctionError> {
    only_fields(obj, RESPONSE_FIELDS, "response")?;
    let status = obj.get("statusCode").map_or_else(
        || Err(validation("response.statusCode is missing")),
        status_code,
    )?;
    // A generated response has no original: every header is new, nothing is read-only and no
    // name is split out (no name is empty).
    let mut headers = header_changes(obj.get("headers"), &Grouped::empty(), &[], "")?.set;
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
