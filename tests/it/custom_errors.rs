//! Custom error responses (`[[custom_error_responses]]`): an origin's error status answered
//! with a page fetched through the behavior its path matches, with the configured status, and
//! with no function run on it, as CloudFront does.

use crate::support::proxy::proxy_in;
use crate::support::{Reply, origin, proxy, request};

/// A request of `method` for `path` with no body.
async fn send(addr: std::net::SocketAddr, method: &str, path: &str) -> Reply {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .body(http_body_util::BodyExt::boxed(http_body_util::Full::new(
            bytes::Bytes::new(),
        )))
        .unwrap();
    request(addr, req).await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_spa_fallback_answers_a_404_with_the_index_page_and_200() {
    let o = origin().name("app").run().await;
    let p = proxy(&format!(
        "[origins.app]\nurl = \"{}\"\n[[behaviors]]\npath_pattern = \"*\"\norigin = \"app\"\n\
         [[custom_error_responses]]\nerror_code = 404\n\
         response_page_path = \"/echo/index.html\"\nresponse_code = 200\n",
        o.url()
    ))
    .await;
    let r = p.get("/status/404?q=1").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["path"], "/echo/index.html");
    assert_eq!(r.json()["query"], "", "no query on the page");
    assert_eq!(r.header("x-cache"), "Error from verge");
    assert!(!r.header("x-verge-request-id").is_empty());
    assert_eq!(o.hits(), 2, "the 404, then the page");
    // A status with no custom error response, and a success, pass as they are.
    let r = p.get("/status/500").await;
    assert_eq!((r.status, r.header("x-cache")), (500, "Miss from verge"));
    let r = p.get("/echo/here").await;
    assert_eq!((r.status, r.header("x-cache")), (200, "Miss from verge"));
    // HEAD gets the page's header with the configured status; a request with another method
    // (or a body) keeps the origin's answer.
    let r = send(p.addr, "HEAD", "/status/404").await;
    assert_eq!((r.status, r.header("x-cache")), (200, "Error from verge"));
    let r = send(p.addr, "DELETE", "/status/404").await;
    assert_eq!((r.status, r.header("x-cache")), (404, "Miss from verge"));
    assert_eq!(r.text(), "status 404 from app");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_comes_through_the_behavior_its_path_matches_with_the_configured_status() {
    let app = origin().name("app").run().await;
    let pages = origin().name("pages").run().await;
    let p = proxy(&format!(
        "[origins.app]\nurl = \"{}\"\n[origins.pages]\nurl = \"{}/static\"\n\
         [[behaviors]]\npath_pattern = \"/echo/errors/*\"\norigin = \"pages\"\n\
         [[behaviors]]\npath_pattern = \"*\"\norigin = \"app\"\n\
         [[custom_error_responses]]\nerror_code = 503\n\
         response_page_path = \"/echo/errors/busy.html\"\nresponse_code = 503\n\
         [[custom_error_responses]]\nerror_code = 502\n\
         response_page_path = \"/status/500\"\nresponse_code = 200\n",
        app.url(),
        pages.url()
    ))
    .await;
    let r = p.get("/status/503").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("x-origin"), "pages");
    // Under the pages origin's own path, as any request through that behavior.
    assert_eq!(r.json()["path"], "/static/echo/errors/busy.html");
    assert_eq!(r.header("x-cache"), "Error from verge");
    assert_eq!((app.hits(), pages.hits()), (1, 1));
    // A page that cannot be fetched: the viewer gets what fetching it gave, not the
    // configured status over an error.
    let r = p.get("/status/502").await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(r.text(), "status 500 from app");
    assert_eq!(r.header("x-cache"), "Error from verge");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_function_runs_on_a_custom_error_page_and_an_origin_response_function_decides_first() {
    let o = origin().name("app").run().await;
    let dir = tempfile::tempdir().unwrap();
    // Adds a header to every response it sees (viewer-response, on errors too).
    std::fs::write(
        dir.path().join("mark.js"),
        "function handler(event) { var r = event.response; \
         r.headers['x-viewer-response'] = { value: 'ran' }; return r; }",
    )
    .unwrap();
    // Moves every request under /echo/moved (origin-request).
    std::fs::write(
        dir.path().join("move.js"),
        "exports.handler = async (event) => { const r = event.Records[0].cf.request; \
         r.uri = '/echo/moved' + r.uri; return r; };",
    )
    .unwrap();
    // Turns the origin's 403 into a 200 (origin-response), as AWS's error-rewrite sample does.
    std::fs::write(
        dir.path().join("rescue.js"),
        "exports.handler = async (event) => { const r = event.Records[0].cf.response; \
         if (r.status === '403') { r.status = '200'; r.statusDescription = 'OK'; } return r; };",
    )
    .unwrap();
    let p = proxy_in(
        dir,
        &format!(
            "[origins.app]\nurl = \"{}\"\n\
             [[behaviors]]\npath_pattern = \"/status/*\"\norigin = \"app\"\n\
             viewer_response = \"mark\"\nviewer_response_on_error = true\n\
             origin_response = \"rescue\"\n\
             [[behaviors]]\npath_pattern = \"*\"\norigin = \"app\"\n\
             viewer_response = \"mark\"\norigin_request = \"move\"\n\
             [functions.mark]\ncode = \"mark.js\"\n\
             [functions.move]\nruntime = \"lambda-edge\"\ncode = \"move.js\"\n\
             [functions.rescue]\nruntime = \"lambda-edge\"\ncode = \"rescue.js\"\n\
             [[custom_error_responses]]\nerror_code = 404\n\
             response_page_path = \"/echo/index.html\"\nresponse_code = 200\n\
             [[custom_error_responses]]\nerror_code = 403\n\
             response_page_path = \"/echo/forbidden.html\"\nresponse_code = 200\n",
            o.url()
        ),
    )
    .await;
    // The functions run on ordinary answers (the check that they are attached).
    let r = p.get("/echo/x").await;
    assert_eq!(r.json()["path"], "/echo/moved/echo/x");
    assert_eq!(r.header("x-viewer-response"), "ran");
    let r = p.get("/status/404").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["path"],
        "/echo/index.html",
        "the page's behavior's origin-request function did not move it"
    );
    assert_eq!(
        r.header("x-viewer-response"),
        "",
        "no viewer-response function"
    );
    // origin-response made the 403 a 200 first: no custom error response then.
    let r = p.get("/status/403").await;
    assert_eq!((r.status, r.header("x-cache")), (200, "Miss from verge"));
    assert_eq!(r.text(), "status 403 from app");
    assert_eq!(r.header("x-viewer-response"), "ran");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_or_slow_origin_is_answered_with_its_custom_error_page() {
    let app = origin().name("app").run().await;
    let pages = origin().name("pages").run().await;
    let (_reserved, dead) = crate::support::binary::refusing_addr();
    let p = proxy(&format!(
        "[origins.app]\nurl = \"{}\"\nread_timeout = \"300ms\"\n\
         [origins.dead]\nurl = \"http://{dead}\"\n\
         [origins.unknown]\nurl = \"http://no-such-origin.invalid:80\"\nconnect_timeout = \"3s\"\n\
         [origins.pages]\nurl = \"{}\"\n\
         [[behaviors]]\npath_pattern = \"/echo/maintenance*\"\norigin = \"pages\"\n\
         [[behaviors]]\npath_pattern = \"/down/*\"\norigin = \"dead\"\n\
         [[behaviors]]\npath_pattern = \"/nowhere/*\"\norigin = \"unknown\"\n\
         [[behaviors]]\npath_pattern = \"*\"\norigin = \"app\"\n\
         [[custom_error_responses]]\nerror_code = 502\n\
         response_page_path = \"/echo/maintenance.html\"\nresponse_code = 503\n\
         [[custom_error_responses]]\nerror_code = 504\n\
         response_page_path = \"/echo/maintenance-slow.html\"\nresponse_code = 503\n",
        app.url(),
        pages.url()
    ))
    .await;
    // A refused connection (verge's 502).
    let r = p.get("/down/page").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["path"], "/echo/maintenance.html");
    assert_eq!(r.header("x-origin"), "pages");
    assert_eq!(r.header("x-cache"), "Error from verge");
    // A name that does not resolve (verge's 502, before any connection).
    let r = p.get("/nowhere/page").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["path"], "/echo/maintenance.html");
    // An origin that does not answer in time (verge's 504).
    let r = p.get("/stall").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["path"], "/echo/maintenance-slow.html");
    assert_eq!(pages.hits(), 3);
    let m = p.metrics().await;
    for (code, count) in [("502", 2.0), ("504", 1.0)] {
        assert_eq!(
            crate::support::proxy::metric(
                &m,
                &format!("verge_proxy_custom_error_responses_total{{error_code=\"{code}\"}}")
            ),
            count,
            "{m}"
        );
    }
    // A request with a body keeps verge's own error page.
    let req = http::Request::post("/down/form")
        .body(http_body_util::BodyExt::boxed(http_body_util::Full::new(
            bytes::Bytes::from_static(b"a=1"),
        )))
        .unwrap();
    let r = request(p.addr, req).await;
    assert_eq!((r.status, r.header("x-cache")), (502, "Error from verge"));
    assert!(r.text().contains("could not be reached"), "{}", r.text());
    assert_eq!(pages.hits(), 3);
}
