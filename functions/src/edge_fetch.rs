//! `fetch` for edge functions: the network side. The JS side (`fetch`, `Headers`, `Response`)
//! is the `fetch` part ([`crate::edge_host`]); it calls `__verge_fetch_start` and gets each
//! answer back through `__verge_fetch_done`, called by the runtime's event loop.
//!
//! Only origins on the function's allow-list are reachable (`functions.NAME.fetch`, by origin
//! name: the URL's scheme, host and port must be one of theirs), each call within
//! `fetch_timeout` and the invocation's own deadline, at most `fetch_max_calls` calls per
//! invocation, and a response body of at most `fetch_max_bytes`. A refused call throws (so the
//! promise rejects) before anything goes on the network.
//!
//! The requests are futures kept in this thread's state and polled by the invocation's event
//! loop (no task is spawned), so when an invocation ends — answered, failed or timed out — its
//! unfinished requests are dropped with it and their connections closed.

use std::cell::RefCell;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Instant;

use boa_engine::{Context, JsNativeError, JsResult, JsValue, js_string};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use verge_config::{FetchPolicy, FunctionDef, Origin, Scheme};

use crate::encoding::utf8_escaped;

/// What an origin answered.
#[derive(Debug)]
pub struct FetchReply {
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub status_text: String,
    /// Headers, names lower-case, values as text.
    pub headers: Vec<(String, String)>,
    /// The whole body (at most the policy's `max_bytes`).
    pub body: Vec<u8>,
}

type Pending = Pin<Box<dyn Future<Output = (u32, Result<FetchReply, String>)>>>;

/// This thread's fetch state for the invocation it runs.
#[derive(Default)]
struct State {
    /// The function of the running invocation (its `fetch` policy and name).
    function: Option<Arc<FunctionDef>>,
    deadline: Option<Instant>,
    calls: u32,
    next_id: u32,
    pending: FuturesUnordered<Pending>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

/// Start an invocation of `function`, ending at `deadline`.
pub fn begin(function: &Arc<FunctionDef>, deadline: Instant) {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        s.function = Some(function.clone());
        s.deadline = Some(deadline);
        s.calls = 0;
    });
}

/// End the invocation: unfinished requests are dropped (their connections close). Nothing is
/// allocated when none was made, the common case.
pub fn clear() {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        s.function = None;
        if !s.pending.is_empty() {
            s.pending = FuturesUnordered::new();
        }
    });
}

/// Whether a request is still on its way.
pub fn pending() -> bool {
    STATE.with(|s| !s.borrow().pending.is_empty())
}

/// The next request to finish, with its id.
pub async fn next_done() -> Option<(u32, Result<FetchReply, String>)> {
    poll_fn(|cx| STATE.with(|s| s.borrow_mut().pending.poll_next_unpin(cx))).await
}

fn type_error(message: String) -> boa_engine::JsError {
    JsNativeError::typ().with_message(message).into()
}

/// The allowed origin a URL goes to, by scheme, host and port.
fn allowed(policy: &FetchPolicy, uri: &http::Uri) -> Option<Arc<Origin>> {
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return None,
    };
    let host = uri.host()?;
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    policy
        .origins
        .iter()
        .find(|o| {
            (o.scheme == Scheme::Https) == https
                && o.host.eq_ignore_ascii_case(host)
                && o.port == port
        })
        .cloned()
}

/// `__verge_fetch_start(url, method, [[name, value], …], body?)` → the request's id.
pub fn start(_this: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    crate::edge_host::note_callback_made();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    let url = utf8_escaped(&arg(0).to_string(ctx)?);
    let method = utf8_escaped(&arg(1).to_string(ctx)?);
    let mut headers = Vec::new();
    if let Some(list) = arg(2).as_object() {
        let len = list.get(js_string!("length"), ctx)?.to_length(ctx)?;
        for i in 0..len {
            let pair = list.get(i, ctx)?;
            let Some(pair) = pair.as_object() else {
                continue;
            };
            let name = utf8_escaped(&pair.get(0, ctx)?.to_string(ctx)?);
            let value = utf8_escaped(&pair.get(1, ctx)?.to_string(ctx)?);
            headers.push((name, value));
        }
    }
    let body = crate::buffer::bytes_of(&arg(3), ctx)?.unwrap_or_default();
    let uri: http::Uri = url
        .parse()
        .map_err(|e| type_error(format!("fetch: `{url}` is not a valid URL ({e})")))?;
    let method = http::Method::from_bytes(method.as_bytes())
        .map_err(|_| type_error(format!("fetch: `{method}` is not a valid method")))?;
    let (id, future) = STATE.with(|s| -> JsResult<(u32, Pending)> {
        let mut s = s.borrow_mut();
        let Some(function) = s.function.clone() else {
            return Err(type_error("fetch: not available outside an invocation".into()));
        };
        let policy = &function.fetch;
        let Some(target) = allowed(policy, &uri) else {
            return Err(type_error(format!(
                "fetch: {url} is not an origin this function may call (functions.{}.fetch lists them by origin name)",
                function.name
            )));
        };
        if s.calls >= policy.max_calls {
            return Err(type_error(format!(
                "fetch: more than {} calls in one invocation (functions.{}.fetch_max_calls)",
                policy.max_calls, function.name
            )));
        }
        s.calls += 1;
        s.next_id = s.next_id.wrapping_add(1);
        let id = s.next_id;
        let left = s
            .deadline
            .map_or(policy.timeout, |d| d.saturating_duration_since(Instant::now()));
        let limit = policy.timeout.min(left);
        let request = Request {
            target,
            uri,
            method,
            headers,
            body: Bytes::from(body),
            max_bytes: policy.max_bytes,
        };
        let future: Pending = Box::pin(async move {
            let result = match tokio::time::timeout(limit, request.exchange()).await {
                Ok(result) => result,
                Err(_) => Err(format!("no answer within {} ms", limit.as_millis())),
            };
            (id, result)
        });
        Ok((id, future))
    })?;
    STATE.with(|s| s.borrow().pending.push(future));
    Ok(JsValue::from(id))
}

/// One request to an allowed origin.
struct Request {
    target: Arc<Origin>,
    uri: http::Uri,
    method: http::Method,
    headers: Vec<(String, String)>,
    body: Bytes,
    max_bytes: usize,
}

impl Request {
    /// Resolve, connect (TLS for `https` origins, verified as the origin's settings say),
    /// send, and read the whole answer.
    async fn exchange(self) -> Result<FetchReply, String> {
        let o = self.target.clone();
        let addr = tokio::net::lookup_host((o.host.as_str(), o.port))
            .await
            .map_err(|e| format!("cannot resolve {}: {e}", o.host))?
            .next()
            .ok_or_else(|| format!("{} has no address", o.host))?;
        let tcp = tokio::time::timeout(o.connect_timeout, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| format!("connecting to {addr} timed out"))?
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        if o.scheme == Scheme::Http {
            return self.send(tcp).await;
        }
        let connector = tokio_rustls::TlsConnector::from(crate::edge_tls::client_config(&o)?);
        let name = rustls::pki_types::ServerName::try_from(o.sni.clone())
            .map_err(|e| format!("`{}` is not a TLS server name: {e}", o.sni))?;
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {} failed: {e}", o.host))?;
        self.send(tls).await
    }

    async fn send<S>(self, io: S) -> Result<FetchReply, String>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| format!("HTTP handshake failed: {e}"))?;
        let mut builder = http::Request::builder().method(self.method).uri(
            self.uri
                .path_and_query()
                .map_or("/", http::uri::PathAndQuery::as_str),
        );
        let mut has_host = false;
        for (name, value) in &self.headers {
            has_host |= name.eq_ignore_ascii_case("host");
            builder = builder.header(name.as_str(), value.as_str());
        }
        if !has_host {
            let authority = self.uri.authority().map_or("", |a| a.as_str());
            builder = builder.header(http::header::HOST, authority);
        }
        let request = builder
            .body(Full::new(self.body))
            .map_err(|e| format!("the request is not valid: {e}"))?;
        let max_bytes = self.max_bytes;
        let work = async move {
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| format!("the request failed: {e}"))?;
            let (parts, mut body) = response.into_parts();
            let mut bytes = Vec::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| format!("reading the answer failed: {e}"))?;
                if let Ok(data) = frame.into_data() {
                    if bytes.len() + data.len() > max_bytes {
                        return Err(format!(
                            "the answer is over {max_bytes} bytes (fetch_max_bytes)"
                        ));
                    }
                    bytes.extend_from_slice(&data);
                }
            }
            Ok(FetchReply {
                status: parts.status.as_u16(),
                status_text: parts.status.canonical_reason().unwrap_or("").to_owned(),
                headers: parts
                    .headers
                    .iter()
                    .map(|(n, v)| {
                        (
                            n.as_str().to_owned(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect(),
                body: bytes,
            })
        };
        // The connection is driven alongside the exchange (no task is spawned); it may finish
        // first when the origin closes after its answer.
        let mut work = pin!(work);
        let mut conn = pin!(conn);
        let mut conn_done = false;
        loop {
            tokio::select! {
                result = &mut work => return result,
                ended = &mut conn, if !conn_done => {
                    conn_done = true;
                    if let Err(e) = ended {
                        return Err(format!("the connection failed: {e}"));
                    }
                }
            }
        }
    }
}
