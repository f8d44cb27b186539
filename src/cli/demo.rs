//! The built-in demo origin that `verge serve` without `--config` puts behind the bundled
//! example, so a first run shows real proxying: `/` a page, `/api/echo` the request as the
//! origin saw it (note `via`, `x-forwarded-for`, `host`), `…/status/NNN` any status.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::{HttpServer, ServeHttp};
use pingora::protocols::http::ServerSession;
use pingora::services::listening::Service;

/// Where the demo origin listens; `examples/verge.toml` points its origin here.
pub const DEMO_ADDR: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8081));

/// The demo origin app.
pub struct DemoOrigin;

const PAGE: &str = "<!DOCTYPE html>\n<html><head><title>verge demo origin</title></head><body>\n\
<h1>Hello from the demo origin</h1>\n<p>This page came through verge. Try \
<a href=\"/api/echo?x=1\">/api/echo</a> to see the request as the origin received it, or \
<a href=\"/status/503\">/status/503</a>.</p>\n</body></html>\n";

fn respond(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Vec<u8>> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}

#[async_trait]
impl ServeHttp for DemoOrigin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let path = req.uri.path();
        if path == "/" {
            return respond(StatusCode::OK, "text/html; charset=utf-8", PAGE.into());
        }
        if path.starts_with("/api/echo") {
            let headers: serde_json::Map<String, serde_json::Value> = req
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned().into(),
                    )
                })
                .collect();
            let body = serde_json::json!({
                "method": req.method.as_str(),
                "path": path,
                "query": req.uri.query().unwrap_or(""),
                "headers": headers,
            });
            return respond(
                StatusCode::OK,
                "application/json",
                body.to_string().into_bytes(),
            );
        }
        if let Some((_, code)) = path.split_once("/status/") {
            let status = code
                .parse::<u16>()
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::BAD_REQUEST);
            return respond(
                status,
                "text/plain",
                format!("status {status}\n").into_bytes(),
            );
        }
        respond(StatusCode::NOT_FOUND, "text/plain", b"not found\n".to_vec())
    }
}

/// The demo origin as a pingora service on [`DEMO_ADDR`].
pub fn service() -> Service<HttpServer<DemoOrigin>> {
    let mut service = Service::new(
        "verge demo origin".to_owned(),
        HttpServer::new_app(DemoOrigin),
    );
    service.add_tcp(&DEMO_ADDR.to_string());
    service
}
