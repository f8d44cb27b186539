//! Behaviors: ordered CloudFront path patterns, first match wins, default last; the headers
//! verge adds on the way up and down.

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
