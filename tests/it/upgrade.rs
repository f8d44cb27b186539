//! An HTTP/1.1 `Upgrade` (a WebSocket handshake) is proxied like any request and, once the
//! origin answers `101 Switching Protocols`, the connection becomes a tunnel carrying bytes both
//! ways until either side closes. While it is open, each read from the origin waits at most the
//! origin's `read_timeout` (and each read from the viewer `server.client_timeout`): a tunnel
//! with traffic stays open past them, an idle one is closed, as the README says. An upgrade the
//! origin declines is an ordinary answer on a connection that stays HTTP/1.1. A TLS listener
//! tunnels the same way over HTTP/1.1, and a tunnel that closes is one access-log line with the
//! bytes it carried to the viewer and how it ended.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::binary::start_with;
use crate::support::certs::Ca;
use crate::support::client::{read_raw_head, tls_client};
use crate::support::proxy::proxy_in;
use crate::support::{eventually, origin, proxy, single_origin as single};

/// How long any of these waits for the proxy before the test fails.
const PATIENCE: Duration = Duration::from_secs(10);

const HANDSHAKE: &str = "GET /upgrade HTTP/1.1\r\nHost: viewer.example\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

/// A viewer's connection to the proxy: plain TCP or TLS.
trait Conn: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> Conn for T {}

/// A plain connection to the proxy at `addr`.
async fn plain(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.unwrap()
}

/// Send `request` on `conn`: the connection and the answer's head, lower-cased.
async fn handshake<S: Conn>(mut conn: S, request: &str) -> (S, String) {
    conn.write_all(request.as_bytes()).await.unwrap();
    let head = tokio::time::timeout(PATIENCE, read_raw_head(&mut conn))
        .await
        .expect("no answer to the upgrade request")
        .expect("the proxy closed instead of answering the upgrade request");
    (conn, head.to_ascii_lowercase())
}

/// How many handshakes [`open_tunnel`] makes before it calls the tunnel broken.
const ATTEMPTS: usize = 5;

/// A tunnel opened with `request` on a connection from `connect` that has carried a first
/// message both ways, and the head of its `101`. pingora 0.9.1 sometimes tears an upgrade down
/// right after forwarding the `101` (cloudflare/pingora#946: when the origin's `101` is read
/// before the request's own empty body is, that body's end is taken for the tunnel's). Rare,
/// and only when the proxy thread is slow to get to the tunnel, as under a busy test run; such
/// an attempt shows as the connection ending (an end of stream, or a reset when the close met
/// the first message) and is made again, up to
/// [`ATTEMPTS`] handshakes in all, each retry reported on stderr. Any other failure fails at
/// once.
async fn open_tunnel<S: Conn, F: Future<Output = S>>(
    connect: impl Fn() -> F,
    request: &str,
) -> (S, String) {
    for attempt in 1..=ATTEMPTS {
        let (mut conn, head) = handshake(connect().await, request).await;
        assert!(
            head.starts_with("http/1.1 101"),
            "not switched by the origin: {head}"
        );
        match try_round_trip(&mut conn, "first").await {
            Ok(()) => return (conn, head),
            Err(e) if closed(&e) => {
                eprintln!("upgrade attempt {attempt}: closed after its 101 (pingora#946): {e}");
            }
            Err(e) => panic!("the tunnel failed on its first message: {e}"),
        }
    }
    panic!("every one of {ATTEMPTS} tunnels closed right after its 101");
}

/// Whether `e` is the peer closing the connection.
fn closed(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionReset, UnexpectedEof};
    matches!(e.kind(), UnexpectedEof | ConnectionReset | BrokenPipe)
}

/// Send `message` and read back the origin's echo of it.
async fn try_round_trip(conn: &mut impl Conn, message: &str) -> std::io::Result<()> {
    conn.write_all(message.as_bytes()).await?;
    let expected = format!("echo:{message}");
    let mut got = vec![0u8; expected.len()];
    tokio::time::timeout(PATIENCE, conn.read_exact(&mut got))
        .await
        .unwrap_or_else(|_| panic!("no echo of {message:?} through the tunnel"))?;
    assert_eq!(String::from_utf8_lossy(&got), expected);
    Ok(())
}

/// [`try_round_trip`] on an open tunnel, which must not close.
async fn round_trip(conn: &mut impl Conn, message: &str) {
    try_round_trip(conn, message)
        .await
        .unwrap_or_else(|e| panic!("the tunnel closed before the echo of {message:?}: {e}"));
}

/// Wait for the proxy to close `conn`; how long that took.
async fn closed_after(conn: &mut impl Conn) -> Duration {
    let start = Instant::now();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(PATIENCE, conn.read_to_end(&mut rest))
        .await
        .expect("the proxy kept the tunnel open");
    // A reset is a close too; only bytes after the last echo would be wrong.
    if read.is_ok() {
        assert!(rest.is_empty(), "unexpected bytes: {rest:?}");
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upgrade_becomes_a_tunnel_both_ways_with_verges_headers_on_the_101() {
    let o = origin().run().await;
    let p = proxy(&single(&o.url(), "")).await;
    let (mut conn, head) = open_tunnel(|| plain(p.addr), HANDSHAKE).await;
    for expected in [
        "upgrade: websocket",
        "x-origin: origin",
        "x-cache: miss from verge",
        "x-verge-request-id: ",
    ] {
        assert!(head.contains(expected), "no {expected:?} in {head}");
    }
    for i in 0..5 {
        round_trip(&mut conn, &format!("message {i}")).await;
    }
    // The viewer's close goes through to the origin, whose close comes back.
    conn.shutdown().await.unwrap();
    closed_after(&mut conn).await;

    // The same route asked without `Upgrade`: the origin's 426 comes back as any answer does.
    let refused = p.get("/upgrade").await;
    assert_eq!(refused.status, 426);
    assert_eq!(refused.header("x-cache"), "Miss from verge");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tunnel_stays_open_while_it_carries_traffic_and_closes_once_idle_past_a_read_timeout() {
    let o = origin().run().await;
    // Either side's timeout alone, the other left at its default (30 s, 60 s).
    let origin_side = single(&o.url(), "read_timeout = \"1s\"");
    let viewer_side = format!(
        "[server]\nclient_timeout = \"1s\"\n{}",
        single(&o.url(), "")
    );
    for (which, config) in [
        ("origin read_timeout", origin_side),
        ("client_timeout", viewer_side),
    ] {
        let p = proxy(&config).await;
        let (mut conn, _) = open_tunnel(|| plain(p.addr), HANDSHAKE).await;
        // Twice the timeout in all, never more than a fraction of it between reads.
        let start = Instant::now();
        let mut i = 0;
        while start.elapsed() < Duration::from_secs(2) {
            round_trip(&mut conn, &format!("ping {i}")).await;
            tokio::time::sleep(Duration::from_millis(250)).await;
            i += 1;
        }
        round_trip(&mut conn, "still open").await;
        // Now neither side sends: the proxy closes the tunnel, not before the timeout.
        let idle = closed_after(&mut conn).await;
        assert!(
            idle >= Duration::from_millis(900),
            "{which}: closed after {idle:?} idle, under its 1 s"
        );
    }
}

/// A viewer-request check in front of a WebSocket endpoint, as a JWT gate would be: without the
/// credential it answers by itself, with it the request goes on to the origin and the tunnel.
const GATE: &str = r#"
function handler(event) {
    var request = event.request;
    if (!request.headers.authorization || request.headers.authorization.value !== 'Bearer ok') {
        return { statusCode: 401, statusDescription: 'Unauthorized' };
    }
    request.headers['x-checked'] = { value: 'yes' };
    return request;
}
"#;

/// Marks the answer with the status the function saw.
const MARK: &str = r#"
function handler(event) {
    var response = event.response;
    response.headers['x-seen'] = { value: String(response.statusCode) };
    return response;
}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn viewer_functions_run_on_the_handshake_and_a_generated_answer_opens_no_tunnel() {
    let o = origin().run().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gate.js"), GATE).unwrap();
    std::fs::write(dir.path().join("mark.js"), MARK).unwrap();
    let config = format!(
        "[origins.o]\nurl = \"{}\"\n[functions.gate]\ncode = \"gate.js\"\n\
         [functions.mark]\ncode = \"mark.js\"\n[[behaviors]]\npath_pattern = \"*\"\n\
         origin = \"o\"\nviewer_request = \"gate\"\nviewer_response = \"mark\"\n",
        o.url()
    );
    let p = proxy_in(dir, &config).await;

    let (mut refused, head) = handshake(plain(p.addr).await, HANDSHAKE).await;
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(
        head.contains("x-cache: functiongeneratedresponse from verge"),
        "{head}"
    );
    let _ = refused.shutdown().await;
    assert_eq!(o.hits(), 0, "the refused handshake reached the origin");

    let authorized = HANDSHAKE.replace(
        "Upgrade: websocket",
        "Upgrade: websocket\r\nAuthorization: Bearer ok",
    );
    let (mut conn, head) = open_tunnel(|| plain(p.addr), &authorized).await;
    assert!(head.contains("x-seen: 101"), "{head}");
    round_trip(&mut conn, "through the gate").await;
    assert!(
        o.hits() >= 1,
        "the authorized handshake never reached the origin"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tls_listener_tunnels_over_http11() {
    let o = origin().run().await;
    let ca = Ca::new("verge test CA");
    let leaf = ca.leaf();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), &leaf.cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), &leaf.key_pem).unwrap();
    let config = format!(
        "[[server.tls]]\nlisten = \"127.0.0.1:0\"\ncert = \"cert.pem\"\nkey = \"key.pem\"\n{}",
        single(&o.url(), "")
    );
    let p = proxy_in(dir, &config).await;
    let addr = p.tls[0];
    // A WebSocket client offers only http/1.1 where the server has no extended CONNECT.
    let connector = tokio_rustls::TlsConnector::from(tls_client(&ca.cert_pem, false));
    let connect = || async {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        connector.connect(name, tcp).await.unwrap()
    };
    let (mut conn, head) = open_tunnel(connect, HANDSHAKE).await;
    assert!(head.contains("x-cache: miss from verge"), "{head}");
    for i in 0..3 {
        round_trip(&mut conn, &format!("secure {i}")).await;
    }
}

/// The access-log line of the request `id`, once written.
async fn access_line(verge: &crate::support::binary::Verge, id: &str) -> serde_json::Value {
    eventually(100, Duration::from_millis(20), || async {
        verge
            .json_lines()
            .into_iter()
            .find(|l| l["target"] == "verge::access" && l["request_id"] == id)
    })
    .await
    .unwrap_or_else(|| panic!("no access-log line for {id}"))
}

/// The request id on the head of a `101`.
fn request_id(head: &str) -> String {
    head.lines()
        .find_map(|l| l.strip_prefix("x-verge-request-id: "))
        .unwrap_or_else(|| panic!("no request id in {head}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tunnel_is_one_access_log_line_with_the_bytes_it_carried_and_how_it_ended() {
    let o = origin().run().await;
    let template = format!(
        "[server]\nlisten = [\"{{listen}}\"]\n[admin]\nlisten = \"{{admin}}\"\n\
         [logging]\naccess_log = true\n{}",
        single(&o.url(), "read_timeout = \"1s\"")
    );
    let dir = tempfile::tempdir().unwrap();
    let verge = start_with(dir.path(), &template, 100, "warn").await;

    // Closed by the viewer after some traffic.
    let (mut conn, head) = open_tunnel(|| plain(verge.addr), HANDSHAKE).await;
    let message = "x".repeat(1000);
    for _ in 0..3 {
        round_trip(&mut conn, &message).await;
    }
    conn.shutdown().await.unwrap();
    closed_after(&mut conn).await;
    // What went to the viewer through the tunnel: the first echo and three long ones.
    let carried = "echo:first".len() + 3 * ("echo:".len() + message.len());
    let line = access_line(&verge, &request_id(&head)).await;
    assert_eq!(line["status"], 101, "{line}");
    assert_eq!(line["result"], "Miss", "{line}");
    assert_eq!(line["error"], "", "{line}");
    assert_eq!(line["bytes"], carried, "{line}");

    // Left silent until the origin's read timeout closed it.
    let (mut conn, head) = open_tunnel(|| plain(verge.addr), HANDSHAKE).await;
    closed_after(&mut conn).await;
    let line = access_line(&verge, &request_id(&head)).await;
    assert_eq!(line["status"], 101, "{line}");
    assert_eq!(line["result"], "Error", "{line}");
    let error = line["error"].as_str().unwrap_or_default();
    assert!(error.contains("ReadTimedout"), "{line}");
}

/// The length an answer's lower-cased `head` gives its body.
fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .unwrap_or_else(|| panic!("no content-length in {head}"))
        .trim()
        .parse()
        .unwrap()
}

/// Read the body of the answer whose lower-cased `head` was just read from `conn`.
async fn read_body(conn: &mut impl Conn, head: &str) -> String {
    let mut body = vec![0u8; content_length(head)];
    tokio::time::timeout(PATIENCE, conn.read_exact(&mut body))
        .await
        .expect("no body")
        .expect("the connection closed inside the body");
    String::from_utf8(body).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upgrade_the_origin_declines_is_an_ordinary_answer_and_no_tunnel() {
    let o = origin().run().await;
    let p = proxy(&single(&o.url(), "")).await;
    let request = HANDSHAKE.replace("/upgrade ", "/upgrade-refused ");
    let (mut conn, head) = handshake(plain(p.addr).await, &request).await;
    assert!(head.starts_with("http/1.1 403"), "{head}");
    assert!(head.contains("x-cache: miss from verge"), "{head}");
    assert!(!head.contains("upgrade"), "{head}");
    assert_eq!(read_body(&mut conn, &head).await, "no upgrade here");

    // The connection is still HTTP/1.1: what the viewer sends next is a request, not tunnel bytes.
    conn.write_all(b"GET /echo/next HTTP/1.1\r\nHost: viewer.example\r\n\r\n")
        .await
        .unwrap();
    let head = tokio::time::timeout(PATIENCE, read_raw_head(&mut conn))
        .await
        .expect("no answer to the request after the declined upgrade")
        .expect("the proxy closed after the declined upgrade")
        .to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let echo: serde_json::Value = serde_json::from_str(&read_body(&mut conn, &head).await).unwrap();
    assert_eq!(echo["path"], "/echo/next");
    assert_eq!(echo["method"], "GET");
    assert_eq!(o.hits.load(std::sync::atomic::Ordering::SeqCst), 2);
}
