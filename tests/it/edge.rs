//! Lambda@Edge handlers through the proxy, at all four hooks, with real loopback origins: the
//! examples in `examples/functions/` (A/B origin switching, 404 → 302, security headers, JWT
//! RS256), generated responses, CloudFront's failure results, timeouts, the memory limit, the
//! concurrency limit, and isolation from the fast tier and plain proxying.

use std::time::{Duration, Instant};

use crate::support::client::get;
use crate::support::proxy::{Proxy, metric, proxy_in};
use crate::support::{Origin, example, origin};

/// An edge function: `(name, code, extra function settings)`.
type EdgeFn<'a> = (&'a str, &'a str, &'a str);

/// A proxy in front of `a` (and `b`, if given, as origin `b`) with one behavior
/// `pattern` → origin `a` and `hooks` (`hook = "name"` lines), the functions, then the
/// default behavior.
async fn edge_proxy(
    a: &Origin,
    b: Option<&Origin>,
    behaviors: &[(&str, &str)],
    functions: &[EdgeFn<'_>],
) -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    let mut config = format!("[origins.a]\nurl = \"{}\"\n", a.url());
    if let Some(b) = b {
        config.push_str(&format!("[origins.b]\nurl = \"{}\"\n", b.url()));
    }
    for (pattern, hooks) in behaviors {
        config.push_str(&format!(
            "[[behaviors]]\npath_pattern = \"{pattern}\"\norigin = \"a\"\n{hooks}\n"
        ));
    }
    config.push_str("[[behaviors]]\npath_pattern = \"*\"\norigin = \"a\"\n");
    for (name, code, extra) in functions {
        std::fs::write(dir.path().join(format!("{name}.js")), code).unwrap();
        config.push_str(&format!(
            "[functions.{name}]\nruntime = \"lambda-edge\"\ncode = \"{name}.js\"\n{extra}\n"
        ));
    }
    proxy_in(dir, &config).await
}

fn get_with(path: &str, headers: &[(&str, &str)]) -> http::Request<crate::support::client::Body> {
    let mut req = http::Request::get(path);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    req.body(http_body_util::BodyExt::boxed(http_body_util::Full::new(
        bytes::Bytes::new(),
    )))
    .unwrap()
}

/// Switches to an S3 origin as AWS's custom-to-S3 example does (the bucket is `localhost`
/// here), or, under `/oai`, with an origin access identity, which CloudFront refuses when the
/// request's origin is a custom one.
const TO_S3: &str = "exports.handler = async (event) => {
    const request = event.Records[0].cf.request;
    if (request.uri.startsWith('/oai')) {
        request.origin = { s3: { domainName: 'localhost', authMethod: 'origin-access-identity',
                                 region: 'us-east-1', path: '' } };
        return request;
    }
    request.origin = { s3: { domainName: 'localhost', region: '', authMethod: 'none', path: '',
                             customHeaders: {} } };
    request.headers['host'] = [{ key: 'host', value: 'localhost' }];
    return request;
};";

#[tokio::test(flavor = "multi_thread")]
async fn origin_request_switches_to_an_s3_bucket_over_tls_on_port_443() {
    use tokio::io::AsyncReadExt;
    let a = origin().run().await;
    let p = edge_proxy(
        &a,
        None,
        &[("*", "origin_request = \"s3\"")],
        &[("s3", TO_S3, "")],
    )
    .await;
    // S3 is always port 443, so the bucket's stand-in listens there when it can (as root, the
    // port free): it sees the TLS client hello naming the bucket, then hangs up.
    let bucket = tokio::net::TcpListener::bind("127.0.0.1:443").await;
    if let Err(e) = &bucket {
        eprintln!("cannot listen on 127.0.0.1:443 ({e}): the client hello is not checked");
    }
    let hello = tokio::spawn(async move {
        let (mut conn, _) = bucket.ok()?.accept().await.ok()?;
        let mut got = vec![0; 2048];
        let n = conn.read(&mut got).await.ok()?;
        got.truncate(n);
        Some(got)
    });
    let r = get(p.addr, "/s3/key.txt").await;
    // No certificate of the stand-in is trusted: verge answers for the failed origin.
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.header("x-cache"), "Error from verge");
    assert_eq!(a.hits(), 0, "the configured origin is not asked");
    if let Some(hello) = tokio::time::timeout(Duration::from_secs(10), hello)
        .await
        .expect("the stand-in's task ends")
        .unwrap()
    {
        assert_eq!(
            hello.first(),
            Some(&0x16),
            "a TLS handshake record: {hello:?}"
        );
        assert!(
            hello.windows(9).any(|w| w == b"localhost"),
            "the server name is the bucket's: {hello:?}"
        );
    }
    let r = get(p.addr, "/oai/key.txt").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.header("x-cache"), "LambdaValidationError from verge");
}

/// At origin-request, sends on what it saw of `request.origin` (as `x-seen-origin`) and, by
/// path, keeps the bucket with another origin path or switches to the custom origin on `PORT_B`.
const SEES_THE_BUCKET: &str = "exports.handler = async (event) => {
    const request = event.Records[0].cf.request;
    request.headers['x-seen-origin'] =
        [{ key: 'X-Seen-Origin', value: JSON.stringify(request.origin) }];
    if (request.uri.startsWith('/echo/moved')) {
        request.origin.s3.path = '/echo/prefix';
    } else if (request.uri.startsWith('/echo/custom')) {
        request.origin = { custom: { domainName: 'localhost', port: PORT_B, protocol: 'http',
            path: '', sslProtocols: ['TLSv1.2'], readTimeout: 5, keepaliveTimeout: 5,
            customHeaders: {} } };
    }
    return request;
};";

/// At origin-response, shows the request's origin to the viewer (`x-response-origin`).
const SHOWS_THE_ORIGIN: &str = "exports.handler = async (event) => {
    const { request, response } = event.Records[0].cf;
    response.headers['x-response-origin'] =
        [{ key: 'X-Response-Origin', value: JSON.stringify(request.origin) }];
    return response;
};";

#[tokio::test(flavor = "multi_thread")]
async fn a_configured_s3_origin_is_request_origin_s3_in_the_origin_events() {
    let a = origin().name("a").run().await;
    let b = origin().name("b").run().await;
    let dir = tempfile::tempdir().unwrap();
    let code = SEES_THE_BUCKET.replace("PORT_B", &b.addr.port().to_string());
    std::fs::write(dir.path().join("sees.js"), code).unwrap();
    std::fs::write(dir.path().join("shows.js"), SHOWS_THE_ORIGIN).unwrap();
    let config = format!(
        "[origins.bucket]\nurl = \"{}\"\ns3 = {{ region = \"eu-west-1\" }}\n\
         [[behaviors]]\npath_pattern = \"*\"\norigin = \"bucket\"\n\
         origin_request = \"sees\"\norigin_response = \"shows\"\n\
         [functions.sees]\nruntime = \"lambda-edge\"\ncode = \"sees.js\"\n\
         [functions.shows]\nruntime = \"lambda-edge\"\ncode = \"shows.js\"\n",
        // A name, not an address: a function may only route to a domain name, as on CloudFront.
        a.url().replace("127.0.0.1", "localhost")
    );
    let p = proxy_in(dir, &config).await;
    let bucket = |path: &str| {
        serde_json::json!({ "s3": { "authMethod": "none", "customHeaders": {},
            "domainName": "localhost", "path": path, "region": "eu-west-1" } })
    };
    let parsed = |text: &str| -> serde_json::Value {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text:?}"))
    };

    let r = get(p.addr, "/echo/plain").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-origin"), "a");
    let echo = r.json();
    assert_eq!(
        parsed(echo["headers"]["x-seen-origin"].as_str().unwrap()),
        bucket("")
    );
    assert_eq!(parsed(r.header("x-response-origin")), bucket(""));

    // Another path on the same bucket: still the configured address, the new path in front.
    let r = get(p.addr, "/echo/moved").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-origin"), "a");
    assert_eq!(r.json()["path"], "/echo/prefix/echo/moved");
    assert_eq!(
        parsed(r.header("x-response-origin")),
        bucket("/echo/prefix")
    );

    // Switched to a custom origin, it is one from then on.
    let r = get(p.addr, "/echo/custom").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-origin"), "b");
    let seen = parsed(r.header("x-response-origin"));
    assert_eq!(seen["custom"]["port"], b.addr.port());
    assert!(seen.get("s3").is_none(), "{seen}");
    assert_eq!((a.hits(), b.hits()), (2, 1));
}

/// At origin-request, passes on the viewer address CloudFront's header gave it.
const SEES_THE_VIEWER: &str = "exports.handler = async (event) => {
    const request = event.Records[0].cf.request;
    const address = request.headers['cloudfront-viewer-address'];
    request.headers['x-seen-address'] =
        [{ key: 'X-Seen-Address', value: address ? address[0].value : 'none' }];
    return request;
};";

#[tokio::test(flavor = "multi_thread")]
async fn the_cloudfront_headers_a_behavior_asks_for_reach_origin_request_and_the_origin() {
    let a = origin().run().await;
    let p = edge_proxy(
        &a,
        None,
        &[(
            "/echo*",
            "origin_request = \"seen\"\ncloudfront_headers = [\"CloudFront-Forwarded-Proto\", \
             \"CloudFront-Viewer-Address\", \"CloudFront-Viewer-Http-Version\"]",
        )],
        &[("seen", SEES_THE_VIEWER, "")],
    )
    .await;
    // What a viewer claims in CloudFront's headers is replaced by what verge saw.
    let faked = get_with(
        "/echo/viewer",
        &[
            ("cloudfront-forwarded-proto", "https"),
            ("cloudfront-viewer-address", "203.0.113.9:1"),
        ],
    );
    let r = crate::support::request(p.addr, faked).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let headers = &r.json()["headers"];
    assert_eq!(headers["cloudfront-forwarded-proto"], "http");
    assert_eq!(headers["cloudfront-viewer-http-version"], "1.1");
    let address = headers["cloudfront-viewer-address"].as_str().unwrap();
    let port = address
        .strip_prefix("127.0.0.1:")
        .unwrap_or_else(|| panic!("{address}"));
    assert!(port.parse::<u16>().is_ok_and(|p| p > 0), "{address}");
    assert_eq!(headers["x-seen-address"], address);
    // A behavior that asks for none adds none.
    let r = crate::support::request(p.addr, get_with("/", &[])).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let headers = &r.json()["headers"];
    assert!(
        headers.get("cloudfront-forwarded-proto").is_none(),
        "{headers}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn origin_request_switches_origins_by_cookie() {
    let a = origin().name("a").run().await;
    let b = origin().name("b").run().await;
    let code = example("origin-request-ab-origin.js")
        .replace("port: 8082", &format!("port: {}", b.addr.port()));
    let p = edge_proxy(
        &a,
        Some(&b),
        &[("/echo*", "origin_request = \"ab\"")],
        &[("ab", &code, "")],
    )
    .await;
    let r = crate::support::request(p.addr, get_with("/echo?x=1", &[("cookie", "ab=b")])).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-origin"), "b");
    let echo = r.json();
    assert_eq!(echo["headers"]["x-ab-bucket"], "b");
    assert_eq!(echo["headers"]["host"], "localhost");
    assert_eq!(echo["query"], "x=1");
    // Added before origin-request, so the function saw (and kept) them.
    assert_eq!(echo["headers"]["via"], "1.1 verge");
    assert_eq!(echo["headers"]["x-forwarded-for"], "127.0.0.1");
    assert_eq!(r.header("x-cache"), "Miss from verge");

    let r = crate::support::request(p.addr, get_with("/echo", &[("cookie", "ab=a")])).await;
    assert_eq!(r.header("x-origin"), "a");
    assert_eq!(r.json()["headers"]["x-ab-bucket"], "a");
    assert_eq!(r.json()["headers"]["host"], a.addr.to_string());
    let m = p.metrics().await;
    assert_eq!(
        metric(
            &m,
            "verge_functions_invocations_total{function=\"ab\",result=\"Continue\"}"
        ),
        2.0
    );
    assert_eq!(
        metric(
            &m,
            "verge_functions_edge{function=\"ab\",what=\"cold_starts\"}"
        ),
        1.0,
        "one instance, warm for the second request"
    );
    // The scrape shows the instance, idle once it has tidied up after its answer.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let m = loop {
        let m = p.metrics().await;
        if metric(&m, "verge_functions_edge{function=\"ab\",what=\"idle\"}") == 1.0 {
            break m;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the instance never showed as idle:\n{m}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert_eq!(
        metric(
            &m,
            "verge_functions_edge{function=\"ab\",what=\"instances\"}"
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn origin_request_runs_again_for_the_secondary_on_failover() {
    let b = origin().name("b").run().await;
    let (_reserved, dead) = crate::support::binary::refusing_addr();
    let dir = tempfile::tempdir().unwrap();
    let code = "exports.handler = async (event) => {
        const r = event.Records[0].cf.request;
        const seen = (r.headers['x-attempts'] || []).map((h) => h.value).join(',');
        r.headers['x-attempts'] = [{ value: seen + r.origin.custom.port + ';' }];
        return r;
    };";
    std::fs::write(dir.path().join("mark.js"), code).unwrap();
    let config = format!(
        "[origins.dead]\nurl = \"http://{dead}\"\nconnect_timeout = \"1s\"\n\
         [origins.b]\nurl = \"{}\"\n\
         [origin_groups.g]\nprimary = \"dead\"\nsecondary = \"b\"\n\
         [[behaviors]]\npath_pattern = \"*\"\norigin = \"g\"\norigin_request = \"mark\"\n\
         [functions.mark]\nruntime = \"lambda-edge\"\ncode = \"mark.js\"\n",
        b.url()
    );
    let p = proxy_in(dir, &config).await;
    let r = get(p.addr, "/echo").await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The secondary's attempt ran the function on the original request, with its own origin.
    assert_eq!(
        r.json()["headers"]["x-attempts"],
        format!("{};", b.addr.port())
    );
    let m = p.metrics().await;
    assert_eq!(
        metric(
            &m,
            "verge_functions_invocations_total{function=\"mark\",result=\"Continue\"}"
        ),
        2.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn origin_response_turns_a_404_into_a_redirect_and_viewer_response_adds_headers() {
    let a = origin().name("a").run().await;
    let p = edge_proxy(
        &a,
        None,
        &[(
            "/*",
            "origin_response = \"fallback\"\nviewer_response = \"security\"",
        )],
        &[
            ("fallback", &example("origin-response-404-fallback.js"), ""),
            (
                "security",
                &example("viewer-response-security-headers-edge.js"),
                "",
            ),
        ],
    )
    .await;
    let r = get(p.addr, "/missing").await;
    assert_eq!(r.status, 302, "{}", r.text());
    assert_eq!(r.header("location"), "/fallback.html?from=%2Fmissing");
    assert_eq!(r.header("cache-control"), "max-age=60");
    assert_eq!(r.header("x-cache"), "Miss from verge");
    // viewer-response runs on the (now < 400) answer.
    assert_eq!(r.header("x-frame-options"), "DENY");
    let ok = get(p.addr, "/echo").await;
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.header("strict-transport-security"),
        "max-age=63072000; includeSubDomains; preload"
    );
    assert_eq!(ok.header("x-content-type-options"), "nosniff");
}

#[tokio::test(flavor = "multi_thread")]
async fn origin_request_form_handler_answers_an_include_body_post_itself() {
    let a = origin().name("a").run().await;
    let p = edge_proxy(
        &a,
        None,
        &[(
            "/contact/*",
            "origin_request = { function = \"form\", include_body = true }",
        )],
        &[("form", &example("origin-request-form-handler.js"), "")],
    )
    .await;
    let post = |form: &str| {
        http::Request::post("/contact/echo")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(http_body_util::BodyExt::boxed(http_body_util::Full::new(
                bytes::Bytes::from(form.to_owned()),
            )))
            .unwrap()
    };
    let hits = a.hits();
    let r = crate::support::request(
        p.addr,
        post("name=Ada%20L&email=ada%40example.org&message=hello+there"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-cache"), "LambdaGeneratedResponse from verge");
    assert_eq!(
        r.json(),
        serde_json::json!({"received": {"name": "Ada L", "email": "ada@example.org", "length": 11}})
    );
    let r = crate::support::request(p.addr, post("name=Ada&email=nope&message=x")).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "the email address is not valid");
    let r = crate::support::request(p.addr, post("name=Ada")).await;
    assert_eq!(r.json()["missing"], serde_json::json!(["email", "message"]));
    let big = format!("name=a&email=a@b&message={}", "x".repeat(1024 * 1024));
    let r = crate::support::request(p.addr, post(&big)).await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(a.hits(), hits, "the origin saw a form");
    // Not a POST: on to the origin.
    let r = get(p.addr, "/contact/echo").await;
    assert_eq!((r.status, r.header("x-origin")), (200, "a"));
}

#[tokio::test(flavor = "multi_thread")]
async fn origin_response_replaces_bodies_even_on_bodiless_answers() {
    let a = origin().name("a").run().await;
    let code = "exports.handler = async (event) => {
        const response = event.Records[0].cf.response;
        response.status = '200';
        response.headers['content-type'] = [{ value: 'text/plain' }];
        response.body = 'replaced ' + event.Records[0].cf.request.uri;
        return response;
    };";
    let p = edge_proxy(
        &a,
        None,
        &[
            ("/status/*", "origin_response = \"replace\""),
            ("/stream/*", "origin_response = \"replace\""),
        ],
        &[("replace", code, "")],
    )
    .await;
    // A 404, a 204, a 304 and a `content-length: 0` answer all get the replaced body.
    for path in ["/status/404", "/status/204", "/status/304", "/stream/0"] {
        let r = get(p.addr, path).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.text(), format!("replaced {path}"), "{path}");
        assert_eq!(r.header("content-length"), r.text().len().to_string());
    }
    // HEAD: the replaced answer's headers (its length included), no body.
    let head = http::Request::head("/status/404")
        .body(http_body_util::BodyExt::boxed(http_body_util::Full::new(
            bytes::Bytes::new(),
        )))
        .unwrap();
    let r = crate::support::request(p.addr, head).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length"),
        "replaced /status/404".len().to_string()
    );
    assert_eq!(r.text(), "");
}

/// A viewer-response function that says what it saw (status and length) and, on `/again`,
/// replaces the body itself.
const VIEWER_RESPONSE_SEEN: &str = "exports.handler = async (event) => {
    const cf = event.Records[0].cf;
    const response = cf.response;
    const length = response.headers['content-length'];
    response.headers['x-seen'] = [{ key: 'X-Seen', value: response.status + ' ' + (length ? length[0].value : '-') }];
    if (cf.request.uri.endsWith('/again')) {
        response.body = 'replaced again';
    }
    return response;
};";

#[tokio::test(flavor = "multi_thread")]
async fn viewer_response_runs_on_answers_the_origin_functions_made() {
    let a = origin().name("a").run().await;
    // An empty gzip member: a generated body that is encoded on purpose.
    let gzip: [u8; 20] = [
        31, 139, 8, 0, 0, 0, 0, 0, 0, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let generate = format!(
        "exports.handler = async () => ({{
            status: '200',
            headers: {{ 'content-encoding': [{{ key: 'Content-Encoding', value: 'gzip' }}] }},
            body: Buffer.from({gzip:?}).toString('base64'),
            bodyEncoding: 'base64',
        }});"
    );
    let replace = "exports.handler = async (event) => {
        const cf = event.Records[0].cf;
        const response = cf.response;
        if (!cf.request.uri.startsWith('/kept/')) response.status = '200';
        response.headers['content-type'] = [{ value: 'text/plain' }];
        response.body = 'replaced ' + cf.request.uri;
        return response;
    };";
    let p = edge_proxy(
        &a,
        None,
        &[
            (
                "/gen/*",
                "origin_request = \"generate\"\nviewer_response = \"seen\"",
            ),
            (
                "/status/*",
                "origin_response = \"replace\"\nviewer_response = \"seen\"",
            ),
            (
                "/kept/*",
                "origin_response = \"replace\"\nviewer_response = \"seen\"",
            ),
        ],
        &[
            ("generate", &generate, ""),
            ("replace", replace, ""),
            ("seen", VIEWER_RESPONSE_SEEN, ""),
        ],
    )
    .await;
    // Generated at origin-request: viewer-response sees it with its length, and its encoding
    // reaches the viewer as the function gave it.
    let r = get(p.addr, "/gen/x").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-seen"), "200 20");
    assert_eq!(r.header("content-encoding"), "gzip");
    assert_eq!(r.body.as_ref(), gzip.as_slice());
    assert_eq!(r.header("x-cache"), "LambdaGeneratedResponse from verge");
    assert_eq!(a.hits(), 0);
    // A body origin-response replaced, on an answer that had one and on one that had none:
    // viewer-response sees the new length.
    for path in ["/status/404", "/status/204"] {
        let r = get(p.addr, path).await;
        let body = format!("replaced {path}");
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.text(), body, "{path}");
        assert_eq!(r.header("x-seen"), format!("200 {}", body.len()), "{path}");
        assert_eq!(r.header("content-length"), body.len().to_string());
        assert_eq!(r.header("x-cache"), "Miss from verge");
    }
    // viewer-response may replace that body again.
    let r = get(p.addr, "/status/404/again").await;
    assert_eq!(r.text(), "replaced again");
    assert_eq!(r.header("content-length"), "14");
    assert_eq!(
        r.header("x-seen"),
        format!("200 {}", "replaced /status/404/again".len())
    );
    // An answer that stays ≥ 400 does not go through viewer-response, as on CloudFront.
    let r = get(p.addr, "/kept/x").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.text(), "replaced /kept/x");
    assert_eq!(r.header("x-seen"), "");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cloudfront_function_at_viewer_response_sees_an_origin_request_answer() {
    let a = origin().name("a").run().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("generate.js"),
        "exports.handler = async () => ({ status: '302', statusDescription: 'Found', \
           headers: { location: [{ value: '/elsewhere' }] }, body: 'moved' });",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("mark.js"),
        "async function handler(event) { \
           var r = event.response; \
           r.headers['x-seen'] = { value: r.statusCode + ' ' + r.headers['content-length'].value }; \
           r.body = { encoding: 'text', data: 'moved, said the viewer-response function' }; \
           return r; }",
    )
    .unwrap();
    let config = format!(
        "[origins.a]\nurl = \"{}\"\n\
         [[behaviors]]\npath_pattern = \"*\"\norigin = \"a\"\n\
         origin_request = \"generate\"\nviewer_response = \"mark\"\n\
         [functions.generate]\nruntime = \"lambda-edge\"\ncode = \"generate.js\"\n\
         [functions.mark]\ncode = \"mark.js\"\n",
        a.url()
    );
    let p = proxy_in(dir, &config).await;
    let r = get(p.addr, "/old").await;
    assert_eq!(r.status, 302, "{}", r.text());
    assert_eq!(r.header("location"), "/elsewhere");
    assert_eq!(r.header("x-seen"), "302 5");
    assert_eq!(r.text(), "moved, said the viewer-response function");
    assert_eq!(
        r.header("content-length"),
        "moved, said the viewer-response function".len().to_string()
    );
    assert_eq!(a.hits(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn viewer_request_checks_an_rs256_jwt_with_the_bundled_key() {
    let a = origin().name("a").run().await;
    let p = edge_proxy(
        &a,
        None,
        &[("/echo*", "viewer_request = \"jwt\"")],
        &[("jwt", &example("viewer-request-jwt-rs256.js"), "")],
    )
    .await;
    let tokens: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/jwt-rs256-tokens.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let bearer = |t: &str| format!("Bearer {}", tokens[t].as_str().unwrap());
    let r = crate::support::request(
        p.addr,
        get_with("/echo", &[("authorization", &bearer("valid"))]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["headers"]["x-user"], "user-1");
    for (case, why) in [("expired", "expired"), ("tampered", "bad signature")] {
        let r = crate::support::request(
            p.addr,
            get_with("/echo", &[("authorization", &bearer(case))]),
        )
        .await;
        assert_eq!(r.status, 401, "{case}");
        assert_eq!(r.text(), why, "{case}");
        assert_eq!(r.header("x-cache"), "LambdaGeneratedResponse from verge");
    }
    let r = get(p.addr, "/echo").await;
    assert_eq!(r.status, 401);
    assert_eq!(a.hits(), 1, "refused requests never reach the origin");
}

#[tokio::test(flavor = "multi_thread")]
async fn callback_and_async_forms_answer_identically_through_the_proxy() {
    let a = origin().name("a").run().await;
    let body = "const r = event.Records[0].cf.request; r.headers['x-form'] = [{ value: 'same' }];";
    let asynchronous = format!("exports.handler = async (event) => {{ {body} return r; }};");
    let callback =
        format!("exports.handler = (event, context, callback) => {{ {body} callback(null, r); }};");
    let p = edge_proxy(
        &a,
        None,
        &[
            ("/echo/async", "viewer_request = \"asynchronous\""),
            ("/echo/callback", "viewer_request = \"callback\""),
        ],
        &[
            ("asynchronous", &asynchronous, ""),
            ("callback", &callback, ""),
        ],
    )
    .await;
    let x = get(p.addr, "/echo/async").await.json();
    let y = get(p.addr, "/echo/callback").await.json();
    assert_eq!(x["headers"]["x-form"], "same");
    assert_eq!(x["headers"], y["headers"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn origin_request_can_generate_a_response_without_contacting_the_origin() {
    let a = origin().name("a").run().await;
    let code = "exports.handler = async (event) => ({
        status: '200',
        headers: { 'content-type': [{ key: 'Content-Type', value: 'application/json' }] },
        body: Buffer.from(JSON.stringify({ generated: event.Records[0].cf.request.uri })).toString('base64'),
        bodyEncoding: 'base64',
    });";
    let p = edge_proxy(
        &a,
        None,
        &[("/gen/*", "origin_request = \"gen\"")],
        &[("gen", code, "")],
    )
    .await;
    let r = get(p.addr, "/gen/x").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["generated"], "/gen/x");
    assert_eq!(r.header("x-cache"), "LambdaGeneratedResponse from verge");
    assert_eq!(a.hits(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_get_cloudfronts_status_and_result_type() {
    let a = origin().name("a").run().await;
    let p = edge_proxy(
        &a,
        None,
        &[
            ("/throw", "viewer_request = \"throws\""),
            ("/invalid", "origin_request = \"invalid\""),
            ("/slow", "origin_response = \"slow\""),
            ("/echo/bad-header", "viewer_response = \"badheader\""),
        ],
        &[
            ("throws", "exports.handler = async () => { throw new Error('boom'); };", ""),
            (
                "invalid",
                "exports.handler = async (event) => { const r = event.Records[0].cf.request; \
                 r.headers['x-n'] = [{ key: 'X-Other', value: 'v' }]; return r; };",
                "",
            ),
            (
                "slow",
                "exports.handler = async (event) => { await new Promise((r) => setTimeout(r, 60000)); };",
                "timeout = \"300ms\"",
            ),
            (
                "badheader",
                "exports.handler = async (event) => { const r = event.Records[0].cf.response; \
                 r.headers['x-n'] = [{ value: 42 }]; return r; };",
                "",
            ),
        ],
    )
    .await;
    for (path, status, result) in [
        ("/throw", 503, "LambdaExecutionError"),
        ("/invalid", 502, "LambdaValidationError"),
        ("/slow", 503, "LambdaLimitExceeded"),
        ("/echo/bad-header", 502, "LambdaValidationError"),
    ] {
        let started = Instant::now();
        let r = get(p.addr, path).await;
        assert_eq!(r.status, status, "{path}: {}", r.text());
        assert_eq!(
            r.header("x-cache"),
            format!("{result} from verge"),
            "{path}"
        );
        assert_eq!(r.header("x-verge-request-id").len(), 32);
        assert!(started.elapsed() < Duration::from_secs(10), "{path}");
    }
    let m = p.metrics().await;
    assert_eq!(
        metric(
            &m,
            "verge_functions_invocations_total{function=\"slow\",result=\"LambdaLimitExceeded\"}"
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invocation_over_its_memory_fails_and_the_instance_serves_the_next_one_afresh() {
    let a = origin().name("a").run().await;
    // One instance: the request after the leak is served by the same one, with a new context.
    let p = edge_proxy(
        &a,
        None,
        &[("/echo*", "origin_request = \"hungry\"")],
        &[(
            "hungry",
            "const kept = []; exports.handler = async (event) => { \
             const r = event.Records[0].cf.request; \
             if (r.uri === '/echo/leak') { for (let i = 0; ; i++) { await null; kept.push(new Uint8Array(1000000)); } } \
             kept.push('one'); \
             r.headers['x-kept'] = [{ key: 'X-Kept', value: String(kept.length) }]; return r; };",
            "instances = 1\nmemory_mb = 128",
        )],
    )
    .await;
    let started = Instant::now();
    let r = get(p.addr, "/echo/leak").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("x-cache"), "LambdaExecutionError from verge");
    // Stopped by the memory check, not by the 30 s timeout.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let r = get(p.addr, "/echo/ok").await;
    assert_eq!(r.status, 200, "{}", r.text());
    // A fresh context: the leaked array went with the old one.
    assert_eq!(r.json()["headers"]["x-kept"], "1");
    let m = p.metrics().await;
    assert_eq!(
        metric(
            &m,
            "verge_functions_invocations_total{function=\"hungry\",result=\"LambdaExecutionError\"}"
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_concurrency_limit_refuses_the_excess() {
    let a = origin().name("a").run().await;
    let code = "exports.handler = async (event) => { await new Promise((r) => setTimeout(r, 1500)); \
                return event.Records[0].cf.request; };";
    let p = edge_proxy(
        &a,
        None,
        &[("/echo", "viewer_request = \"one\"")],
        &[("one", code, "instances = 1")],
    )
    .await;
    // Three at once against one instance: one is served, the others wait briefly for the
    // instance and are refused with CloudFront's throttling result.
    let addr = p.addr;
    let calls: Vec<_> = (0..3)
        .map(|_| tokio::spawn(async move { get(addr, "/echo").await }))
        .collect();
    let mut served = 0;
    let mut refused = 0;
    for call in calls {
        let r = call.await.unwrap();
        match r.status {
            200 => served += 1,
            503 => {
                assert_eq!(r.header("x-cache"), "LambdaLimitExceeded from verge");
                refused += 1;
            }
            other => panic!("unexpected status {other}: {}", r.text()),
        }
    }
    assert_eq!((served, refused), (1, 2));
    let m = p.metrics().await;
    assert_eq!(
        metric(
            &m,
            "verge_functions_edge{function=\"one\",what=\"concurrency_refusals\"}"
        ),
        2.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn waiting_edge_invocations_do_not_slow_the_fast_tier_or_plain_proxying() {
    let a = origin().name("a").run().await;
    let wait = "exports.handler = async (event) => { await new Promise((r) => setTimeout(r, 2000)); \
                return event.Records[0].cf.request; };";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("wait.js"), wait).unwrap();
    std::fs::write(
        dir.path().join("fast.js"),
        "function handler(event) { event.request.headers['x-fast'] = { value: '1' }; return event.request; }",
    )
    .unwrap();
    let config = format!(
        "[origins.a]\nurl = \"{}\"\n\
         [[behaviors]]\npath_pattern = \"/slow*\"\norigin = \"a\"\nviewer_request = \"wait\"\n\
         [[behaviors]]\npath_pattern = \"/fast*\"\norigin = \"a\"\nviewer_request = \"fast\"\n\
         [[behaviors]]\npath_pattern = \"*\"\norigin = \"a\"\n\
         [functions.wait]\nruntime = \"lambda-edge\"\ncode = \"wait.js\"\ninstances = 32\n\
         [functions.fast]\ncode = \"fast.js\"\n",
        a.url()
    );
    let p = proxy_in(dir, &config).await;
    let addr = p.addr;
    let started = Instant::now();
    let waiting: Vec<_> = (0..32)
        .map(|i| tokio::spawn(async move { get(addr, &format!("/slow/echo?{i}")).await }))
        .collect();
    // While they wait, the fast tier and plain proxying answer quickly (generous margin).
    tokio::time::sleep(Duration::from_millis(300)).await;
    for path in ["/fast/echo", "/echo", "/fast/echo", "/echo"] {
        let t = Instant::now();
        let r = get(p.addr, path).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{path}: {:?}",
            t.elapsed()
        );
    }
    assert!(
        started.elapsed() < Duration::from_millis(1900),
        "checked while they waited"
    );
    for w in waiting {
        let r = w.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_edge_function_is_a_configuration_error() {
    let a = origin().name("a").run().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken.js"), "exports.other = 1;").unwrap();
    let config = format!(
        "[origins.a]\nurl = \"{}\"\n\
         [[behaviors]]\npath_pattern = \"*\"\norigin = \"a\"\nviewer_request = \"broken\"\n\
         [functions.broken]\nruntime = \"lambda-edge\"\ncode = \"broken.js\"\n",
        a.url()
    );
    let path = dir.path().join("verge.toml");
    std::fs::write(&path, config).unwrap();
    let (code, out) = crate::support::binary::validate(&path);
    assert_ne!(code, 0);
    assert!(out.contains("functions.broken.code"), "{out}");
    assert!(out.contains("no handler is exported"), "{out}");
}
