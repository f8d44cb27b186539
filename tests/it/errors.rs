//! Errors verge produces itself: 502 for an unreachable origin, 504 for a slow one, 414/431 for
//! CloudFront's request size limits — each with a small page, the request id and
//! `x-cache: Error from verge`; nothing a viewer or origin sends panics the proxy or hangs it.
//! And the few answers pingora gives itself, before any verge code runs (unparsable requests,
//! over 256 header lines or 1 MiB of headers, `CONNECT`), as the README lists them.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use crate::support::binary::refusing_addr;
use crate::support::{origin, proxy, request, single_origin as single};

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_origin_gets_502_with_an_error_page() {
    let (_reserved, dead) = refusing_addr();
    let p = proxy(&single(&format!("http://{dead}"), "")).await;
    let r = p.get("/").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.header("x-cache"), "Error from verge");
    let id = r.header("x-verge-request-id").to_owned();
    assert!(
        r.text().contains(&format!("Request ID: {id}")),
        "{}",
        r.text()
    );
    assert!(r.header("content-type").starts_with("text/html"));
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_origin_name_gets_502_not_a_panic() {
    let p = proxy(&single(
        "http://no-such-origin.invalid:80",
        "connect_timeout = \"3s\"",
    ))
    .await;
    let r = p.get("/").await;
    assert_eq!(r.status, 502);
    // The proxy still serves afterwards.
    assert_eq!(p.get("/").await.status, 502);
}

#[tokio::test(flavor = "multi_thread")]
async fn stalled_origin_gets_504_within_the_configured_timeout() {
    let o = origin().run().await;
    let p = proxy(&single(&o.url(), "read_timeout = \"300ms\"")).await;
    let started = Instant::now();
    let req = http::Request::get("/stall")
        .header("accept", "application/json")
        .body(Full::new(Bytes::new()).boxed())
        .unwrap();
    let r = request(p.addr, req).await;
    let took = started.elapsed();
    assert_eq!(r.status, 504);
    assert!(took >= Duration::from_millis(250), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    let body = r.json();
    assert_eq!(body["status"], 504);
    assert_eq!(body["request_id"], r.header("x-verge-request-id"));
}

#[tokio::test(flavor = "multi_thread")]
async fn origin_reset_gets_502() {
    let o = origin().run().await;
    let p = proxy(&single(&o.url(), "")).await;
    assert_eq!(p.get("/reset").await.status, 502);
    assert_eq!(p.get("/echo").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_url_gets_414_and_oversized_headers_431() {
    let o = origin().run().await;
    let p = proxy(&single(&o.url(), "")).await;
    let long = format!("/echo?{}", "a".repeat(9000));
    let r = p.get(&long).await;
    assert_eq!(r.status, 414);
    assert_eq!(r.header("x-cache"), "Error from verge");

    for size in [21 * 1024, 200 * 1024, 900 * 1024] {
        let req = http::Request::get("/echo")
            .header("x-big", "b".repeat(size))
            .body(Full::new(Bytes::new()).boxed())
            .unwrap();
        let r = request(p.addr, req).await;
        assert_eq!(r.status, 431, "{size} bytes of headers");
        assert!(r.text().contains("at most 20480"), "{}", r.text());
    }
    assert_eq!(o.hits(), 0, "refused requests never reach the origin");
    // Just under the limit passes.
    let req = http::Request::get("/echo")
        .header("x-big", "b".repeat(19 * 1024))
        .body(Full::new(Bytes::new()).boxed())
        .unwrap();
    assert_eq!(request(p.addr, req).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_from_a_viewer_does_not_take_the_proxy_down() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let o = origin().run().await;
    let p = proxy(&single(&o.url(), "")).await;
    for junk in [
        &b"\x00\x01\x02garbage\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
        b"GET /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ] {
        let mut s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
        s.write_all(junk).await.unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
            .await
            .expect("the proxy must not hang on a malformed request");
    }
    assert_eq!(p.get("/echo").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn pingora_answers_unparsable_requests_and_connect_itself_as_the_readme_says() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // The README's list of answers pingora gives before any verge code runs: they carry
    // neither verge header, and the origin never sees the request.
    let o = origin().run().await;
    let p = proxy(&single(&o.url(), "")).await;
    // 257 short header lines: ~2 KB, far under verge's own 20,480-byte limit, but one line more
    // than pingora parses.
    let many_lines = format!(
        "GET / HTTP/1.1\r\nHost: a\r\n{}\r\n",
        "a: b\r\n".repeat(256)
    );
    // One header over pingora's 1 MiB, so pingora refuses it before verge's 431 could.
    let over_a_mebibyte = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nx-big: {}\r\n\r\n",
        "v".repeat(1024 * 1024 + 1)
    );
    for (request, status) in [
        ("GARBAGE\r\n\r\n", "400"),
        ("GET / HTTP/1.1\r\nHost: a\r\nno colon here\r\n\r\n", "400"),
        (
            "CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n",
            "405",
        ),
        (many_lines.as_str(), "400"),
        (over_a_mebibyte.as_str(), "400"),
    ] {
        let mut conn = tokio::net::TcpStream::connect(p.addr).await.unwrap();
        // pingora may answer and close before it has read all of a large request, so the write
        // may fail; the answer is what is checked.
        let _ = conn.write_all(request.as_bytes()).await;
        let shown = &request[..request.len().min(80)];
        let mut got = Vec::new();
        // A reset after the answer (the unread rest of a large request) still leaves the answer
        // in `got`.
        let _ = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut got))
            .await
            .unwrap_or_else(|_| panic!("{shown:?}: the connection stayed open"));
        let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
        assert!(
            text.starts_with(&format!("http/1.1 {status} ")),
            "{shown:?}: {text}"
        );
        assert!(!text.contains("x-verge-request-id"), "{shown:?}: {text}");
        assert!(!text.contains("x-cache"), "{shown:?}: {text}");
    }
    assert_eq!(o.hits(), 0);
    // The proxy serves on.
    assert_eq!(p.get("/echo").await.status, 200);
}
