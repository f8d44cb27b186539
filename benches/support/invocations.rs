//! The functions and invocations the per-invocation benches measure (criterion's `functions`
//! and the instruction counts of `instructions`), so both measure the same thing.

use std::sync::Arc;
use std::time::Duration;

use verge_config::{FunctionDef, Hook, Runtime};
use verge_functions::{Invocation, RequestSnapshot, ResponseSnapshot};

/// Returns the request unchanged.
pub const NOOP: &str = "function handler(event) { return event.request; }";
/// The AWS security-headers sample (viewer-response).
pub const SECURITY_HEADERS: &str = "function handler(event) {
    var h = event.response.headers;
    h['strict-transport-security'] = { value: 'max-age=63072000; includeSubdomains; preload' };
    h['x-content-type-options'] = { value: 'nosniff' };
    h['x-frame-options'] = { value: 'DENY' };
    h['referrer-policy'] = { value: 'same-origin' };
    return event.response;
}";

/// The load benchmark's A/B rewrite (viewer-request): a bucket from a cookie, two headers added.
pub const AB_REWRITE: &str = "function handler(event) {
    var request = event.request;
    var bucket = request.cookies.ab ? request.cookies.ab.value : 'a';
    request.headers['x-ab-bucket'] = { value: bucket };
    request.headers['x-ab-variant'] = { value: 'variant-' + bucket };
    return request;
}";

#[path = "jwt.rs"]
mod jwt;
use jwt::{JWT_CHECK, JWT_SECRET};

/// A token the JWT check accepts: `{"sub":"bench-user","exp":4102444800}`, HS256 with
/// [`JWT_SECRET`].
pub const JWT_TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.\
    eyJzdWIiOiJiZW5jaC11c2VyIiwiZXhwIjo0MTAyNDQ0ODAwfQ.\
    ZxBcb2t7XLrti6kqTukPZyQUlaHNoP6yPTf0hR1s9SY";

/// The JWT check's invocation: the realistic request with the token.
pub fn jwt_invocation() -> Invocation {
    let code = JWT_CHECK.replace("SECRET_VALUE", JWT_SECRET);
    let mut inv = invocation(&code, Hook::ViewerRequest);
    inv.request.headers.push((
        "authorization".to_owned(),
        format!("Bearer {JWT_TOKEN}").into_bytes(),
    ));
    inv
}

/// A Lambda@Edge handler that returns the request unchanged.
pub const EDGE_NOOP: &str = "exports.handler = async (event) => event.Records[0].cf.request;";

/// A Lambda@Edge origin-response handler that adds a response header (the load benchmark's
/// `verge-4hooks` row has the same).
pub const EDGE_RESPONSE_HEADER: &str = "exports.handler = async (event) => {
    const response = event.Records[0].cf.response;
    response.headers['x-origin-response'] = [{ key: 'X-Origin-Response', value: 'seen' }];
    return response;
};";

/// A Lambda@Edge origin-request router: the load benchmark's `verge-edge-route` row's logic
/// (the bucket from a cookie; bucket `b`, which the fixed request's cookie picks, goes to
/// another origin with its Host).
pub const EDGE_ROUTE: &str = "exports.handler = async (event) => {
    const request = event.Records[0].cf.request;
    const cookie = (request.headers.cookie || []).map((h) => h.value).join(';');
    const bucket = cookie.indexOf('ab=a') >= 0 ? 'a' : 'b';
    if (bucket === 'b') {
        request.origin.custom.domainName = 'localhost';
        request.origin.custom.port = 8080;
        request.origin.custom.protocol = 'http';
        request.headers.host = [{ key: 'Host', value: 'localhost' }];
    }
    return request;
};";

/// A realistic invocation of the Lambda@Edge handler `code` at an origin hook.
pub fn edge_invocation_at(code: &str, hook: Hook) -> Invocation {
    let mut inv = invocation(code, hook);
    let mut def = (*inv.function).clone();
    def.runtime = Runtime::LambdaEdge;
    def.timeout = Some(Duration::from_secs(5));
    inv.function = Arc::new(def);
    inv.origin = Some(verge_functions::EdgeOrigin {
        domain_name: "origin.example.com".into(),
        port: 443,
        https: true,
        path: String::new(),
        read_timeout: Duration::from_secs(30),
        keepalive_timeout: Duration::from_secs(5),
        custom_headers: Vec::new(),
        s3_region: None,
    });
    inv
}

/// A realistic invocation of `code` at `hook`: a browser's request, or with
/// `VERGE_REQUEST=load` in the environment the load benchmark's (`Host` and two cookies, no
/// query string), which makes for different costs: there is little to leave out.
pub fn invocation(code: &str, hook: Hook) -> Invocation {
    let mut inv = browser_invocation(code, hook);
    if std::env::var("VERGE_REQUEST").is_ok_and(|r| r == "load") {
        inv.request.querystring = String::new();
        inv.request.has_query = false;
        inv.request.headers = vec![
            ("host".to_owned(), b"127.0.0.1:8080".to_vec()),
            ("cookie".to_owned(), b"theme=dark; ab=b".to_vec()),
        ];
    }
    inv
}

fn browser_invocation(code: &str, hook: Hook) -> Invocation {
    let header = |n: &str, v: &str| (n.to_owned(), v.as_bytes().to_vec());
    Invocation {
        function: Arc::new(FunctionDef::inline("bench", Runtime::CloudfrontJs2, code)),
        hook,
        request_id: "0123456789abcdef0123456789abcdef".into(),
        request: RequestSnapshot {
            method: "GET".into(),
            uri: "/media/index.html".into(),
            querystring: "id=42&lang=en".into(),
            has_query: true,
            headers: vec![
                header("host", "www.example.com"),
                header("user-agent", "Mozilla/5.0 (X11; Linux x86_64)"),
                header("accept", "text/html,application/xhtml+xml"),
                header("accept-language", "en-US,en;q=0.9"),
                header("cookie", "session=abc123; ab=b"),
            ],
            client_ip: "203.0.113.9".parse().expect("ip"),
        },
        response: matches!(hook, Hook::ViewerResponse | Hook::OriginResponse).then(|| {
            ResponseSnapshot {
                status: 200,
                headers: vec![
                    header("content-type", "text/html; charset=utf-8"),
                    header("content-length", "1234"),
                    header("cache-control", "max-age=60"),
                ],
            }
        }),
        kvs: None,
        origin: None,
        body: None,
    }
}
