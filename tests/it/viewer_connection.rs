//! The viewer's connection: whether it stays open after an answer is the viewer's to say
//! (HTTP/1.0 closes unless it asks for keep-alive), an HTTP/1.0 viewer never gets chunked
//! framing, and an idle keep-alive connection is closed after `server.keepalive_timeout`, also
//! when that is under a second. Pipelined requests get the first answer and a close, as the
//! README says of pingora.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::client::read_raw_head;
use crate::support::{get, origin, pattern_byte, proxy, single_origin as single};

/// How long any of these waits for the proxy before the test fails.
const PATIENCE: Duration = Duration::from_secs(10);

/// What came back on one connection after sending `request`: everything up to the proxy's
/// close, or `None` when it kept the connection open past [`PATIENCE`].
async fn until_closed(addr: std::net::SocketAddr, request: &str) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(PATIENCE, s.read_to_end(&mut got))
        .await
        .ok()
        .map(|read| {
            read.unwrap();
            got
        })
}

/// The head (lower-cased) and the body of a raw answer.
fn split(answer: &[u8]) -> (String, &[u8]) {
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(answer)));
    (
        String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase(),
        &answer[end + 4..],
    )
}

fn pattern(len: u64) -> Vec<u8> {
    (0..len).map(pattern_byte).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http10_viewer_gets_its_body_unchunked_and_the_connection_closed() {
    let o = origin().run().await;
    let p = proxy(&single(&o.url(), "")).await;
    for request in [
        // No keep-alive asked for: closed after the answer, as HTTP/1.0 has it.
        "GET /chunked/70000 HTTP/1.0\r\n\r\n",
        // Keep-alive asked for, but the origin gave no length: the close ends the body.
        "GET /chunked/70000 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    ] {
        let answer = until_closed(p.addr, request)
            .await
            .unwrap_or_else(|| panic!("{request:?}: connection still open after {PATIENCE:?}"));
        let (head, body) = split(&answer);
        assert!(head.starts_with("http/1.1 200"), "{request:?}: {head}");
        assert!(!head.contains("transfer-encoding"), "{request:?}: {head}");
        assert!(head.contains("x-cache: miss from verge"), "{head}");
        assert_eq!(body.len(), 70000, "{request:?}");
        assert!(
            body == pattern(70000).as_slice(),
            "{request:?}: body differs"
        );
    }
    // A known length: closed all the same without keep-alive.
    let answer = until_closed(p.addr, "GET /echo HTTP/1.0\r\n\r\n")
        .await
        .expect("HTTP/1.0 connection left open");
    let (head, body) = split(&answer);
    assert!(head.contains("content-length"), "{head}");
    let json: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(json["path"], "/echo");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http10_viewer_asking_for_keep_alive_keeps_its_connection_when_the_length_is_known() {
    let o = origin().run().await;
    let p = proxy(&single(&o.url(), "")).await;
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    for round in 0..2 {
        s.write_all(b"GET /stream/100 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .await
            .unwrap();
        // The head, then exactly the 100 bytes it announces.
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + PATIENCE;
        while !got.windows(4).any(|w| w == b"\r\n\r\n") || split(&got).1.len() < 100 {
            let n = tokio::time::timeout_at(deadline.into(), s.read(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("round {round}: no full answer in {PATIENCE:?}"))
                .unwrap();
            assert!(
                n > 0,
                "round {round}: closed after {:?}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }
        let (head, body) = split(&got);
        assert!(head.starts_with("http/1.1 200"), "round {round}: {head}");
        assert!(
            head.contains("content-length: 100"),
            "round {round}: {head}"
        );
        assert!(body == pattern(100).as_slice(), "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sub_second_keepalive_timeout_still_closes_idle_connections() {
    let o = origin().run().await;
    let config = format!(
        "[server]\nkeepalive_timeout = \"300ms\"\n{}",
        single(&o.url(), "")
    );
    let p = proxy(&config).await;
    let started = Instant::now();
    // HTTP/1.1 keeps the connection; pingora counts its idle time in whole seconds, and read 0
    // (what 300 ms truncated to) as no limit at all.
    let answer = until_closed(p.addr, "GET /stream/10 HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap_or_else(|| panic!("an idle connection was still open after {PATIENCE:?}"));
    let (head, body) = split(&answer);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(body == pattern(10).as_slice());
    assert!(started.elapsed() < PATIENCE, "{:?}", started.elapsed());
}

/// An origin on raw TCP that answers every request with `len` pattern bytes and no length or
/// chunked framing: the body ends when it closes the connection (RFC 9112 §6.3, last rule).
async fn close_delimited_origin(len: u64) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                if read_raw_head(&mut conn).await.is_none() {
                    return;
                }
                let mut answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
                answer.extend(pattern(len));
                // Dropping the connection after the write is the end of the body.
                let _ = conn.write_all(&answer).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_the_origin_ends_by_closing_reaches_every_viewer_whole() {
    const LEN: u64 = 70000;
    let origin = close_delimited_origin(LEN).await;
    let p = proxy(&single(&format!("http://{origin}"), "")).await;
    // HTTP/1.0 asking for keep-alive: without a length nothing else could end the body, so the
    // connection must close after it.
    let answer = until_closed(
        p.addr,
        "GET /any HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    )
    .await
    .unwrap_or_else(|| panic!("connection still open after {PATIENCE:?}"));
    let (head, body) = split(&answer);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("transfer-encoding"), "{head}");
    assert!(!head.contains("connection: keep-alive"), "{head}");
    assert_eq!(body.len() as u64, LEN);
    assert!(body == pattern(LEN).as_slice(), "body differs");
    // HTTP/1.1: whatever framing the proxy chooses, a client reads the same bytes.
    let reply = get(p.addr, "/any").await;
    assert_eq!(reply.status, 200);
    assert!(
        reply.body == pattern(LEN).as_slice(),
        "HTTP/1.1 body differs"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pipelined_second_request_is_not_answered_and_the_connection_closes() {
    // What the README says of pingora: it answers the first of two requests sent together and
    // closes, so the viewer sends the second again on a new connection. If pingora starts
    // serving pipelined requests, this fails and the README should say so.
    let o = origin().run().await;
    let p = proxy(&single(&o.url(), "")).await;
    let two = "GET /echo/1 HTTP/1.1\r\nHost: a\r\n\r\nGET /echo/2 HTTP/1.1\r\nHost: a\r\n\r\n";
    let got = until_closed(p.addr, two)
        .await
        .expect("the connection stayed open after pipelined requests");
    let text = String::from_utf8_lossy(&got);
    let answers = text.matches("HTTP/1.1 200").count();
    assert_eq!(answers, 1, "{text}");
    assert!(text.contains("/echo/1"), "{text}");
    assert!(!text.contains("/echo/2"), "{text}");
}
