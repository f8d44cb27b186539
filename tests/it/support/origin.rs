//! A real HTTP/1.1 origin on `127.0.0.1:0` (hyper), optionally over TLS, with routes for every
//! behaviour the proxy must handle:
//! - `/echo…` — JSON: origin name, method, path, query, headers, body length and SHA-256;
//! - `…/status/N` — that status (under any prefix, as the demo origin's);
//! - `/stall` — never answers (until the connection closes);
//! - `/reset` — closes the connection without answering;
//! - `/stream/N` — N pattern bytes, streamed in 64 KiB chunks;
//! - `/chunked/N` — the same with no length given, so framed chunked;
//! - `/upload` — reads the whole body streaming, answers its length and SHA-256;
//! - `/upgrade` — with an `Upgrade` header, `101 Switching Protocols` to that protocol, then
//!   echoes every read back prefixed with `echo:` until the peer closes; without one, 426;
//! - `/upgrade-refused` — declines any upgrade: 403 with a short body, the connection kept.
//!
//! Every answer carries `x-origin: NAME`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

type Body = BoxBody<Bytes, Infallible>;

/// A running origin. Stops when dropped.
pub struct Origin {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Requests received.
    pub hits: Arc<AtomicU64>,
    /// TCP connections accepted.
    pub connections: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Origin {
    /// `http://addr`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Builder.
pub struct OriginBuilder {
    name: String,
    tls: Option<Arc<rustls::ServerConfig>>,
}

/// Start describing an origin.
pub fn origin() -> OriginBuilder {
    OriginBuilder {
        name: "origin".into(),
        tls: None,
    }
}

fn full(status: u16, name: &str, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("x-origin", name)
        .header("content-type", content_type)
        .body(Full::new(body.into()).boxed())
        .unwrap()
}

async fn handle(name: Arc<str>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    if path.contains("/echo") || path == "/" {
        let method = req.method().to_string();
        let query = req.uri().query().unwrap_or("").to_owned();
        let headers: serde_json::Map<String, serde_json::Value> = req
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
            .collect();
        let (len, sha) = drain(req.into_body()).await;
        let body = serde_json::json!({
            "origin": &*name, "method": method, "path": path, "query": query,
            "headers": headers, "body_len": len, "body_sha256": sha,
        });
        return Ok(full(200, &name, "application/json", body.to_string()));
    }
    if let Some((_, code)) = path.split_once("/status/") {
        let code = code.parse().unwrap_or(400);
        return Ok(full(
            code,
            &name,
            "text/plain",
            format!("status {code} from {name}"),
        ));
    }
    if path == "/stall" {
        std::future::pending::<()>().await;
    }
    if let Some(n) = path.strip_prefix("/stream/") {
        let total: u64 = n.parse().unwrap_or(0);
        let chunks = super::pattern_chunks(total);
        return Ok(Response::builder()
            .header("x-origin", &*name)
            .header("content-length", total)
            .body(BodyExt::boxed(StreamBody::new(chunks)))
            .unwrap());
    }
    if let Some(n) = path.strip_prefix("/chunked/") {
        // The pattern body with no length given: hyper frames it chunked.
        let total: u64 = n.parse().unwrap_or(0);
        return Ok(Response::builder()
            .header("x-origin", &*name)
            .body(BodyExt::boxed(StreamBody::new(super::pattern_chunks(
                total,
            ))))
            .unwrap());
    }
    if path == "/upgrade" {
        return Ok(upgraded_echo(&name, req));
    }
    if path == "/upgrade-refused" {
        return Ok(full(403, &name, "text/plain", "no upgrade here"));
    }
    if path == "/upload" {
        let (len, sha) = drain(req.into_body()).await;
        let body = serde_json::json!({ "body_len": len, "body_sha256": sha });
        return Ok(full(200, &name, "application/json", body.to_string()));
    }
    Ok(full(404, &name, "text/plain", "no such route"))
}

/// Switch to the protocol the request names and echo on the upgraded connection.
fn upgraded_echo(name: &str, mut req: Request<Incoming>) -> Response<Body> {
    let Some(protocol) = req.headers().get(hyper::header::UPGRADE).cloned() else {
        return full(426, name, "text/plain", "upgrade required");
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut io = TokioIo::new(upgraded);
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let mut answer = b"echo:".to_vec();
                    answer.extend_from_slice(&buf[..n]);
                    if io.write_all(&answer).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    Response::builder()
        .status(101)
        .header("x-origin", name)
        .header(hyper::header::UPGRADE, protocol)
        .header(hyper::header::CONNECTION, "upgrade")
        .body(Full::new(Bytes::new()).boxed())
        .unwrap()
}

async fn drain(mut body: Incoming) -> (u64, String) {
    let mut h = sha2::Sha256::new();
    let mut len = 0u64;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Ok(data) = frame.into_data() {
            len += data.len() as u64;
            h.update(&data);
        }
    }
    (len, super::hex(&h.finalize()))
}

impl OriginBuilder {
    /// Name reported in `x-origin` and the echo body.
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    /// Serve over TLS with this configuration.
    pub fn tls(mut self, config: rustls::ServerConfig) -> Self {
        self.tls = Some(Arc::new(config));
        self
    }

    /// Bind `127.0.0.1:0` and serve.
    pub async fn run(self) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicU64::new(0));
        let connections = Arc::new(AtomicU64::new(0));
        let accepted = connections.clone();
        let name: Arc<str> = self.name.into();
        let acceptor = self.tls.map(tokio_rustls::TlsAcceptor::from);
        let counter = hits.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                accepted.fetch_add(1, Ordering::SeqCst);
                let name = name.clone();
                let counter = counter.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let name = name.clone();
                        async move {
                            if req.uri().path() == "/reset" {
                                // Dropping the connection's future closes it unanswered.
                                return Err::<Response<Body>, _>(std::io::Error::other("reset"));
                            }
                            Ok(handle(name, req).await.unwrap())
                        }
                    });
                    let builder = hyper::server::conn::http1::Builder::new();
                    match acceptor {
                        Some(acc) => {
                            if let Ok(tls) = acc.accept(tcp).await {
                                let _ = builder
                                    .serve_connection(TokioIo::new(tls), svc)
                                    .with_upgrades()
                                    .await;
                            }
                        }
                        None => {
                            let _ = builder
                                .serve_connection(TokioIo::new(tcp), svc)
                                .with_upgrades()
                                .await;
                        }
                    }
                });
            }
        });
        Origin {
            addr,
            hits,
            connections,
            task,
        }
    }
}
