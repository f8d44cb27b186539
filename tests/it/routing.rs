//! Behaviors: ordered CloudFront path patterns, first match wins, default last; the headers
//! verge adds on the way up and down.

use crate::support::client::read_raw_head;
use crate::support::{origin, proxy};

#[tokio::test(flavor = "multi_thread")]
async fn behaviors_route_in_order_first_match_wins() {
    let a = origin().name("a").run().await;
    let b = origin().name("b").run().await;
    let c = origin().name("c").run().await;
    let p = proxy(&format!(
        r#"
[origins.a]
url = "{}"
[origins.b]
url = "{}"
[origins.c]
url = "{}"
[[behaviors]]
path_pattern = "/echo/v1/*"
origin = "a"
[[behaviors]]
path_pattern = "/echo/*"
origin = "b"
[[behaviors]]
path_pattern = "/echo/?.txt"
origin = "a"
[[behaviors]]
path_pattern = "*"
origin = "c"
"#,
        a.url(),
        b.url(),
        c.url()
    ))
    .await;
    for (path, want) in [
        ("/echo/v1/users", "a"),
        ("/echo/v2/users", "b"),
        // Earlier `/echo/*` already takes this: order, not specificity, decides.
        ("/echo/x.txt", "b"),
        ("/ECHO/v1/users", "c"),
        ("/echo", "c"),
    ] {
        let r = p.get(path).await;
        assert_eq!(r.header("x-origin"), want, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarding_and_response_headers_are_added() {
    let o = origin().name("o").run().await;
    let p = proxy(&format!(
        "[origins.o]\nurl = \"{}/base\"\n[[behaviors]]\npath_pattern = \"*\"\norigin = \"o\"\n",
        o.url()
    ))
    .await;
    let r = p.get("/x").await;
    assert_eq!(
        r.status, 404,
        "the origin path is prefixed: /base/x is not an echo route"
    );
    let req = http::Request::get("/echo?q=1")
        .header("host", "viewer.example")
        .header("x-forwarded-for", "203.0.113.7")
        .header("via", "1.1 earlier-proxy")
        .body(http_body_util::BodyExt::boxed(http_body_util::Full::new(
            bytes::Bytes::new(),
        )))
        .unwrap();
    let r = crate::support::request(p.addr, req).await;
    let echo = r.json();
    assert_eq!(echo["path"], "/base/echo");
    assert_eq!(echo["query"], "q=1");
    assert_eq!(echo["headers"]["via"], "1.1 earlier-proxy, 1.1 verge");
    assert_eq!(echo["headers"]["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    // CloudFront sends the origin's own host name unless told to forward the viewer's.
    assert_eq!(echo["headers"]["host"], o.addr.to_string());
    assert_eq!(r.header("x-cache"), "Miss from verge");
    assert_eq!(r.header("x-verge-request-id").len(), 32);
}

#[tokio::test(flavor = "multi_thread")]
async fn origin_connections_are_kept_alive_and_reused() {
    let o = origin().name("o").run().await;
    let p = proxy(&crate::support::single_origin(&o.url(), "")).await;
    // Sequential requests, each on a new viewer connection, reuse pooled origin connections.
    // pingora hands a connection back to the pool only after the viewer has its whole answer,
    // so on a busy machine the next request can race ahead of the release and open another
    // one; without pooling every request would open its own, so "fewer than half" is the
    // claim that cannot pass by luck.
    for _ in 0..20 {
        assert_eq!(p.get("/echo").await.status, 200);
    }
    assert_eq!(o.hits(), 20);
    assert!(
        o.connections() < 10,
        "{} origin connections for 20 requests",
        o.connections()
    );
}

/// An origin on raw TCP that records each request head as it came over the wire and answers
/// with a header of its own in mixed case.
async fn raw_origin() -> (
    std::net::SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (heads, seen) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let heads = heads.clone();
            tokio::spawn(async move {
                while let Some(head) = read_raw_head(&mut conn).await {
                    let _ = heads.send(head);
                    let reply =
                        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Origin-Header: yes\r\n\r\nok";
                    if conn.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, seen)
}

/// HTTP/1 header names reach the origin and the viewer in the case they were written in only
/// with `server.preserve_header_case`; by default pingora's few standard names are
/// title-cased and the rest lower-cased, verge's own headers included.
#[tokio::test(flavor = "multi_thread")]
async fn header_names_keep_their_case_only_when_configured() {
    use tokio::io::AsyncWriteExt;
    let deadline = std::time::Duration::from_secs(20);
    for preserve in [false, true] {
        let (origin, mut seen) = raw_origin().await;
        let p = proxy(&format!(
            "[server]\npreserve_header_case = {preserve}\n{}",
            crate::support::single_origin(&format!("http://{origin}"), "")
        ))
        .await;
        let mut viewer = tokio::net::TcpStream::connect(p.addr).await.unwrap();
        viewer
            .write_all(b"GET /a HTTP/1.1\r\nHost: viewer.example\r\nX-Viewer-Header: 1\r\nCONTENT-language: en\r\n\r\n")
            .await
            .unwrap();
        let response = tokio::time::timeout(deadline, read_raw_head(&mut viewer))
            .await
            .expect("an answer in time")
            .expect("a response head");
        let request = tokio::time::timeout(deadline, seen.recv())
            .await
            .expect("the origin was asked in time")
            .unwrap();
        let has = |head: &str, line: &str| head.split("\r\n").any(|l| l == line);
        for (head, line) in [
            (
                &request,
                if preserve {
                    "X-Viewer-Header: 1"
                } else {
                    "x-viewer-header: 1"
                },
            ),
            (
                &request,
                if preserve {
                    "CONTENT-language: en"
                } else {
                    "content-language: en"
                },
            ),
            (&request, "via: 1.1 verge"),
            (&request, "x-forwarded-for: 127.0.0.1"),
            (
                &response,
                if preserve {
                    "X-Origin-Header: yes"
                } else {
                    "x-origin-header: yes"
                },
            ),
            (&response, "Content-Length: 2"),
            (&response, "x-cache: Miss from verge"),
        ] {
            assert!(
                has(head, line),
                "preserve = {preserve}: no `{line}` in\n{head}"
            );
        }
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    }
}
