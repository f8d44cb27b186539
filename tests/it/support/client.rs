//! HTTP clients for tests: HTTP/1.1 over TCP, and HTTP/1.1 or HTTP/2 over TLS with a given trust
//! root. A fresh connection per request keeps tests independent.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper_util::rt::{TokioExecutor, TokioIo};
use sha2::Digest;
use tokio::net::TcpStream;

/// A whole response.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: http::HeaderMap,
    /// Body.
    pub body: Bytes,
    /// HTTP version spoken.
    pub version: http::Version,
}

impl Reply {
    /// A header as text, or "".
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub type Body = BoxBody<Bytes, Infallible>;

/// No test request may hang: every request has this deadline.
pub const DEADLINE: Duration = Duration::from_secs(30);

async fn send_h1<S>(io: S, req: http::Request<Body>) -> Result<Reply, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    collect(resp).await
}

async fn collect(resp: http::Response<hyper::body::Incoming>) -> Result<Reply, String> {
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
        version: parts.version,
    })
}

/// Send a request over a new HTTP/1.1 connection; `Err` on a transport failure.
pub async fn try_request(addr: SocketAddr, req: http::Request<Body>) -> Result<Reply, String> {
    let fut = async {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        send_h1(tcp, req).await
    };
    tokio::time::timeout(DEADLINE, fut)
        .await
        .map_err(|_| "request deadline passed".to_owned())?
}

/// Send a request; panics on a transport failure.
pub async fn request(addr: SocketAddr, req: http::Request<Body>) -> Reply {
    try_request(addr, req)
        .await
        .unwrap_or_else(|e| panic!("request to {addr} failed: {e}"))
}

/// One keep-alive HTTP/1.1 connection, reused for every request (as browsers and load balancers
/// do). A request that fails here means the proxy broke a live connection.
pub struct Persistent {
    sender: hyper::client::conn::http1::SendRequest<Body>,
}

impl Persistent {
    /// Connect.
    pub async fn connect(addr: SocketAddr) -> Result<Self, String> {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        // Small requests back to back on one connection: without this, Nagle's algorithm and
        // delayed ACKs add tens of milliseconds to each.
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        Ok(Persistent { sender })
    }

    /// GET `path` on this connection.
    pub async fn get(&mut self, path: &str) -> Result<Reply, String> {
        let fut = async {
            self.sender.ready().await.map_err(|e| e.to_string())?;
            let resp = self
                .sender
                .send_request(get_req(path))
                .await
                .map_err(|e| e.to_string())?;
            collect(resp).await
        };
        tokio::time::timeout(DEADLINE, fut)
            .await
            .map_err(|_| "request deadline passed".to_owned())?
    }
}

/// A GET with a `host` header.
pub fn get_req(path: &str) -> http::Request<Body> {
    http::Request::get(path)
        .header("host", "verge.test")
        .body(Full::new(Bytes::new()).boxed())
        .unwrap()
}

/// GET `path`.
pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, get_req(path)).await
}

/// POST `len` pattern bytes to `path`, streamed in 64 KiB chunks (never held whole).
pub async fn upload_pattern(addr: SocketAddr, path: &str, len: u64) -> Reply {
    let chunks = super::pattern_chunks(len);
    let req = http::Request::post(path)
        .header("host", "verge.test")
        .header("content-length", len)
        .body(BodyExt::boxed(StreamBody::new(chunks)))
        .unwrap();
    request(addr, req).await
}

/// GET `path` and hash the body as it streams in: (status, length, SHA-256 hex).
pub async fn download_sha256(addr: SocketAddr, path: &str) -> (u16, u64, String) {
    let fut = async {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        let resp = sender.send_request(get_req(path)).await.unwrap();
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        let mut h = sha2::Sha256::new();
        let mut len = 0u64;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.unwrap().into_data() {
                len += data.len() as u64;
                h.update(&data);
            }
        }
        (status, len, super::hex(&h.finalize()))
    };
    tokio::time::timeout(Duration::from_secs(120), fut)
        .await
        .expect("download deadline")
}

/// A TLS client configuration trusting `ca_pem`, offering h2 and/or http/1.1.
pub fn tls_client(ca_pem: &str, h2: bool) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile_certs(ca_pem) {
        roots.add(cert).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = if h2 {
        vec![b"h2".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Arc::new(config)
}

fn rustls_pemfile_certs(pem: &str) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap()
}

/// GET `path` over TLS (server name `localhost`); HTTP/2 when the config offers only h2.
/// Also returns the DER of the certificate the server presented.
pub async fn tls_get(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    path: &str,
) -> (Reply, Vec<u8>) {
    tls_send(addr, config, get_req(path)).await
}

/// Send `req` over TLS (server name `localhost`); HTTP/2 when the config offers only h2. Also
/// returns the DER of the certificate the server presented.
pub async fn tls_send(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    req: http::Request<Body>,
) -> (Reply, Vec<u8>) {
    let h2 = config.alpn_protocols == vec![b"h2".to_vec()];
    let fut = async move {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .unwrap();
        let cert = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
        let reply = if h2 {
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                    .await
                    .unwrap();
            tokio::spawn(conn);
            let (mut parts, body) = req.into_parts();
            parts.uri = format!("https://localhost{}", parts.uri.path_and_query().unwrap())
                .parse()
                .unwrap();
            parts.headers.remove("host");
            collect(
                sender
                    .send_request(http::Request::from_parts(parts, body))
                    .await
                    .unwrap(),
            )
            .await
            .unwrap()
        } else {
            send_h1(tls, req).await.unwrap()
        };
        (reply, cert)
    };
    tokio::time::timeout(DEADLINE, fut)
        .await
        .expect("TLS request deadline")
}

/// One HTTP/1 message head read off a raw connection, up to and including its blank line, or
/// `None` when the peer closed (or failed) first. Byte by byte, so nothing after the head is
/// consumed.
pub async fn read_raw_head(conn: &mut (impl tokio::io::AsyncRead + Unpin)) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(String::from_utf8(head).unwrap())
}
