//! Test fixtures of the edge tier: a function definition and an invocation at any hook.

use std::sync::Arc;
use std::time::Duration;

use verge_config::{FunctionDef, Hook, Runtime};

use crate::invocation::{EdgeOrigin, Invocation, RequestSnapshot, ResponseSnapshot};

/// A `lambda-edge` function with `instances` instances and a `timeout`.
pub fn def(code: &str, instances: usize, timeout: Duration) -> Arc<FunctionDef> {
    Arc::new(FunctionDef {
        enforce_size_limit: false,
        timeout: Some(timeout),
        instances,
        ..FunctionDef::inline("edge", Runtime::LambdaEdge, code)
    })
}

/// The origin the origin hooks see.
pub fn origin() -> EdgeOrigin {
    EdgeOrigin {
        domain_name: "example.org".into(),
        port: 443,
        https: true,
        path: String::new(),
        read_timeout: Duration::from_secs(30),
        keepalive_timeout: Duration::from_secs(5),
        custom_headers: Vec::new(),
        s3_region: None,
    }
}

/// A `GET /path?a=1` invocation at `hook` (with a 200 response at the response hooks).
pub fn invocation(function: &Arc<FunctionDef>, hook: Hook) -> Invocation {
    let origin_hook = matches!(hook, Hook::OriginRequest | Hook::OriginResponse);
    let response_hook = matches!(hook, Hook::OriginResponse | Hook::ViewerResponse);
    Invocation {
        function: function.clone(),
        hook,
        request_id: "req-1".into(),
        request: RequestSnapshot {
            method: "GET".into(),
            uri: "/path".into(),
            querystring: "a=1".into(),
            has_query: true,
            headers: vec![
                ("host".into(), b"example.org".to_vec()),
                ("user-agent".into(), b"test".to_vec()),
                ("cookie".into(), b"ab=b".to_vec()),
            ],
            client_ip: "203.0.113.7".parse().unwrap_or([0, 0, 0, 0].into()),
        },
        response: response_hook.then(|| ResponseSnapshot {
            status: 200,
            headers: vec![("content-type".into(), b"text/plain".to_vec())],
        }),
        kvs: None,
        origin: origin_hook.then(origin),
        body: None,
    }
}
