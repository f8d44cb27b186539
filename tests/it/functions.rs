//! CloudFront Functions at viewer-request, end to end through the proxy: edits reach the origin,
//! generated responses skip it, failures get CloudFront's status and result type, runaways are
//! stopped while healthy functions keep answering, and code reloads lose no request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::support::client::Persistent;
use crate::support::proxy::{metric, proxy_in};
use crate::support::{Origin, eventually, origin};

/// A proxy in front of `o` with one behavior per `(pattern, function file, code)` running the
/// function at viewer-request, then the default behavior without a function.
async fn with_functions(
    o: &Origin,
    functions: &[(&str, &str, &str)],
) -> crate::support::proxy::Proxy {
    let hooked: Vec<_> = functions
        .iter()
        .map(|(p, n, c)| (*p, "viewer_request", *n, *c, ""))
        .collect();
    with_hooks(o, &hooked).await
}

/// As [`with_functions`], with `(pattern, hook, name, code, extra behavior keys)`.
async fn with_hooks(
    o: &Origin,
    functions: &[(&str, &str, &str, &str, &str)],
) -> crate::support::proxy::Proxy {
    let dir = tempfile::tempdir().unwrap();
    let mut config = format!("[origins.o]\nurl = \"{}\"\n", o.url());
    for (pattern, hook, name, code, extra) in functions {
        std::fs::write(dir.path().join(format!("{name}.js")), code).unwrap();
        config.push_str(&format!(
            "[[behaviors]]\npath_pattern = \"{pattern}\"\norigin = \"o\"\n{hook} = \"{name}\"\n{extra}\n\
             [functions.{name}]\ncode = \"{name}.js\"\n"
        ));
    }
    config.push_str("[[behaviors]]\npath_pattern = \"*\"\norigin = \"o\"\n");
    proxy_in(dir, &config).await
}

const AB_HEADERS: &str = r#"
function handler(event) {
    var request = event.request;
    var bucket = request.cookies.ab ? request.cookies.ab.value : 'a';
    request.headers['x-ab-bucket'] = { value: bucket };
    request.headers['true-client-ip'] = { value: event.viewer.ip };
    if (request.uri.endsWith('/')) {
        request.uri += 'index.html';
    }
    return request;
}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn request_edits_reach_the_origin() {
    let o = origin().name("o").run().await;
    let p = with_functions(&o, &[("/echo/*", "ab", AB_HEADERS)]).await;
    let req = http::Request::get("/echo/app/?q=1")
        .header("host", "viewer.example")
        .header("cookie", "ab=b; other=1")
        .body(http_body_util::BodyExt::boxed(http_body_util::Full::new(
            bytes::Bytes::new(),
        )))
        .unwrap();
    let r = crate::support::request(p.addr, req).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-cache"), "Miss from verge");
    let echo = r.json();
    assert_eq!(echo["path"], "/echo/app/index.html");
    assert_eq!(echo["query"], "q=1");
    assert_eq!(echo["headers"]["x-ab-bucket"], "b");
    assert_eq!(echo["headers"]["true-client-ip"], "127.0.0.1");
    assert_eq!(echo["headers"]["cookie"], "ab=b; other=1");
    // Added after the function, as CloudFront does.
    assert_eq!(echo["headers"]["via"], "1.1 verge");
    let m = p.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"verge_functions_invocations_total{function="ab",result="Continue"}"#
        ),
        1.0,
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            r#"verge_functions_compute_utilization_percent_count{function="ab"}"#
        ),
        1.0,
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_generated_response_never_reaches_the_origin() {
    let o = origin().name("o").run().await;
    let redirect = r#"
async function handler(event) {
    var country = event.request.headers['cloudfront-viewer-country'];
    var where = country && country.value === 'DE' ? '/de/' : '/en/';
    return { statusCode: 302, statusDescription: 'Found',
             headers: { location: { value: 'https://example.com' + where } } };
}"#;
    let p = with_functions(&o, &[("/go", "redirect", redirect)]).await;
    let req = http::Request::get("/go")
        .header("cloudfront-viewer-country", "DE")
        .body(http_body_util::BodyExt::boxed(http_body_util::Full::new(
            bytes::Bytes::new(),
        )))
        .unwrap();
    let r = crate::support::request(p.addr, req).await;
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), "https://example.com/de/");
    assert_eq!(r.header("x-cache"), "FunctionGeneratedResponse from verge");
    assert_eq!(r.header("x-verge-request-id").len(), 32);
    assert_eq!(o.hits(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_get_cloudfront_statuses_and_result_types() {
    let o = origin().name("o").run().await;
    let p = with_functions(
        &o,
        &[
            ("/throw", "thrower", "function handler(e) { throw new Error('boom'); }"),
            (
                "/host",
                "hostile",
                "function handler(e) { e.request.headers.host = {value: 'evil'}; return e.request; }",
            ),
            ("/spin", "spin", "function handler(e) { while (true) {} }"),
        ],
    )
    .await;
    let r = p.get("/throw").await;
    assert_eq!(
        (r.status, r.header("x-cache")),
        (503, "FunctionExecutionError from verge")
    );
    let r = p.get("/host").await;
    assert_eq!(
        (r.status, r.header("x-cache")),
        (502, "FunctionValidationError from verge")
    );
    let r = p.get("/spin").await;
    assert_eq!(
        (r.status, r.header("x-cache")),
        (503, "FunctionThrottledError from verge")
    );
    assert!(r.text().contains(r.header("x-verge-request-id")));
    assert_eq!(o.hits(), 0);
    let m = p.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"verge_functions_invocations_total{function="spin",result="FunctionThrottledError"}"#
        ),
        1.0,
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runaway_does_not_stop_healthy_functions_or_plain_proxying() {
    // Each failed function's reason (the error page does not say it) goes to the test's
    // output, shown when it fails: a healthy request answered 503 then says why.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("verge_proxy::stage::function=warn,verge_functions=info")
        .with_ansi(false)
        .with_test_writer()
        .try_init();
    let o = origin().name("o").run().await;
    let slow_sort = "function handler(e) { \
        var a = Array.from({length: 5000}, function (_, i) { return (i * 7919) % 5000; }); \
        a.sort(function (x, y) { for (var k = 0; k < 500; k++) {} return y - x; }); return e.request; }";
    let p = with_functions(
        &o,
        &[
            (
                "/spin",
                "spin",
                "async function handler(e) { await Promise.resolve(); while (true) {} }",
            ),
            ("/sort", "sorter", slow_sort),
            ("/echo/*", "ab", AB_HEADERS),
        ],
    )
    .await;
    let addr = p.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let healthy = {
        let (stop, failed) = (stop.clone(), failed.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            let mut conn = Persistent::connect(addr).await.unwrap();
            while !stop.load(Ordering::Relaxed) {
                for path in ["/echo/x", "/plain"] {
                    let sent = Instant::now();
                    match conn.get(path).await {
                        Ok(r) if r.status == 200 || (path == "/plain" && r.status == 404) => {}
                        Ok(r) => failed.lock().unwrap().push(format!(
                            "{path} after {:?}: {} {}: {}",
                            sent.elapsed(),
                            r.status,
                            r.header("x-cache"),
                            r.text()
                        )),
                        Err(e) => failed.lock().unwrap().push(format!("{path}: {e}")),
                    }
                }
                n += 1;
            }
            n
        })
    };
    for path in ["/spin", "/sort", "/spin", "/sort"] {
        let started = Instant::now();
        let r = p.get(path).await;
        assert_eq!(
            (r.status, r.header("x-cache")),
            (503, "FunctionThrottledError from verge"),
            "{path}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{path}: {:?}",
            started.elapsed()
        );
    }
    stop.store(true, Ordering::Relaxed);
    let rounds = healthy.await.unwrap();
    let failed = failed.lock().unwrap().clone();
    assert!(
        failed.is_empty(),
        "healthy requests failed during the runaways: {failed:#?}"
    );
    assert!(rounds > 0);
    // The sort runs past the hard ceiling: its worker was retired and replaced.
    let retired = eventually(100, Duration::from_millis(50), || async {
        let m = p.metrics().await;
        (metric(&m, "verge_functions_workers_retired") >= 1.0).then_some(())
    })
    .await;
    assert!(retired.is_some());
    // And afterwards everything still answers.
    for _ in 0..10 {
        assert_eq!(p.get("/echo/y").await.status, 200);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn reloads_that_change_function_code_lose_no_request() {
    let o = origin().name("o").run().await;
    let code = |n: u64| {
        format!(
            "function handler(e) {{ e.request.headers['x-version'] = {{value: '{n}'}}; return e.request; }}"
        )
    };
    let p = with_functions(&o, &[("/echo/*", "v", &code(0))]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let addr = p.addr;
    let client = {
        let (stop, failed) = (stop.clone(), failed.clone());
        tokio::spawn(async move {
            let mut conn = Persistent::connect(addr).await.unwrap();
            let mut over_budget = 0;
            while !stop.load(Ordering::Relaxed) {
                let sent = std::time::Instant::now();
                match conn.get("/echo/x").await {
                    Ok(r) if r.status == 200 => {}
                    // Not a reload failure: on a busy shared VM a trivial function can, rarely,
                    // pass its 0.9 ms CPU budget (steal and first-touch time count in the thread
                    // CPU clock; BENCHMARKS.md saw 1 in ~30k). One such fast answer is
                    // tolerated; a request stalled by a generation switch (answered as throttled
                    // only after the 2 s start deadline) or a second one is not.
                    Ok(r)
                        if r.header("x-cache") == "FunctionThrottledError from verge"
                            && r.text().contains("could not run")
                            && sent.elapsed() < Duration::from_secs(1)
                            && over_budget == 0 =>
                    {
                        over_budget += 1;
                    }
                    Ok(r) => failed.lock().unwrap().push(format!(
                        "{} {}: {}",
                        r.status,
                        r.header("x-cache"),
                        r.text()
                    )),
                    Err(e) => failed.lock().unwrap().push(e),
                }
            }
        })
    };
    for n in 1..=20u64 {
        p.write("v.js", code(n));
        p.state.reload("test").unwrap();
        let want = n.to_string();
        let seen = eventually(50, Duration::from_millis(20), || async {
            let r = p.get("/echo/x").await;
            assert_eq!(r.status, 200, "{}: {}", r.header("x-cache"), r.text());
            (r.json()["headers"]["x-version"] == want.as_str()).then_some(())
        })
        .await;
        assert!(seen.is_some(), "version {n} never answered");
    }
    stop.store(true, Ordering::Relaxed);
    client.await.unwrap();
    let failed = failed.lock().unwrap().clone();
    assert!(failed.is_empty(), "{failed:#?}");
    // Each reload warmed a new generation of workers; no serving worker had to compile.
    let m = p.metrics().await;
    assert_eq!(
        metric(&m, r#"verge_functions_context_loads{when="on_demand"}"#),
        0.0,
        "{m}"
    );
    assert!(metric(&m, r#"verge_functions_context_loads{when="warm"}"#) >= 2.0 * 21.0);
    assert_eq!(metric(&m, "verge_functions_worker_generation"), 22.0);
    // Every generation's workers prepared their collector before serving: the engine never
    // collected by itself inside an invocation.
    assert_eq!(metric(&m, "verge_functions_engine_collections"), 0.0, "{m}");
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_function_code_is_a_positioned_config_error_and_keeps_the_old_code() {
    let o = origin().name("o").run().await;
    let p = with_functions(&o, &[("/echo/*", "v", AB_HEADERS)]).await;
    for (broken, says) in [
        (
            "function handler(e { return e.request; }",
            "at line 1, col 20",
        ),
        (
            "while (true) {}\nfunction handler(e) { return e.request; }",
            "failed",
        ),
        ("function nothing() {}", "no function named `handler`"),
    ] {
        p.write("v.js", broken);
        let e = p.state.reload("test").unwrap_err().to_string();
        assert!(e.contains("verge.toml:9:8: functions.v.code: "), "{e}");
        assert!(e.contains(says), "{e}");
        assert_eq!(p.get("/echo/x").await.json()["headers"]["x-ab-bucket"], "a");
    }
}

const SECURITY_HEADERS: &str = r#"
async function handler(event) {
    var response = event.response;
    var headers = response.headers;
    headers['strict-transport-security'] = { value: 'max-age=63072000; includeSubdomains; preload' };
    headers['x-content-type-options'] = { value: 'nosniff' };
    headers['x-frame-options'] = { value: 'DENY' };
    response.cookies['seen'] = { value: '1', attributes: 'Path=/; Secure' };
    return response;
}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn viewer_response_adds_security_headers_and_cookies() {
    let o = origin().name("o").run().await;
    let p = with_hooks(
        &o,
        &[("/echo/*", "viewer_response", "sec", SECURITY_HEADERS, "")],
    )
    .await;
    let r = p.get("/echo/x").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-frame-options"), "DENY");
    assert_eq!(r.header("x-content-type-options"), "nosniff");
    assert!(
        r.header("strict-transport-security")
            .starts_with("max-age=63072000")
    );
    assert_eq!(r.header("set-cookie"), "seen=1; Path=/; Secure");
    assert_eq!(r.header("x-origin"), "o", "origin headers stay");
    assert_eq!(r.header("x-cache"), "Miss from verge");
    assert_eq!(
        r.json()["path"],
        "/echo/x",
        "the origin's body streams through untouched"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn viewer_response_is_skipped_on_origin_errors_unless_asked() {
    let o = origin().name("o").run().await;
    let p = with_hooks(
        &o,
        &[
            (
                "/status/404",
                "viewer_response",
                "sec",
                SECURITY_HEADERS,
                "",
            ),
            (
                "/status/500",
                "viewer_response",
                "sec2",
                SECURITY_HEADERS,
                "viewer_response_on_error = true",
            ),
        ],
    )
    .await;
    let r = p.get("/status/404").await;
    assert_eq!((r.status, r.header("x-frame-options")), (404, ""));
    let r = p.get("/status/500").await;
    assert_eq!((r.status, r.header("x-frame-options")), (500, "DENY"));
}

const REPLACE_BODY: &str = r#"
function handler(event) {
    var response = event.response;
    response.statusCode = 200;
    response.headers['content-type'] = { value: 'text/plain' };
    response.body = { encoding: 'text', data: 'replaced by verge' };
    return response;
}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_replaced_body_reaches_the_viewer_even_when_the_origin_sent_none() {
    let o = origin().name("o").run().await;
    let p = with_hooks(
        &o,
        &[
            ("/echo/*", "viewer_response", "r1", REPLACE_BODY, ""),
            ("/status/204", "viewer_response", "r2", REPLACE_BODY, ""),
            ("/status/304", "viewer_response", "r3", REPLACE_BODY, ""),
        ],
    )
    .await;
    for path in ["/echo/big", "/status/204", "/status/304"] {
        let r = p.get(path).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.text(), "replaced by verge", "{path}");
        assert_eq!(r.header("content-length"), "17", "{path}");
        assert_eq!(r.header("content-type"), "text/plain", "{path}");
        assert_eq!(r.header("x-cache"), "Miss from verge", "{path}");
    }
    // HEAD: the length of the replacement, no body.
    let head = http::Request::head("/echo/x")
        .body(http_body_util::BodyExt::boxed(http_body_util::Full::new(
            bytes::Bytes::new(),
        )))
        .unwrap();
    let r = crate::support::request(p.addr, head).await;
    assert_eq!(
        (r.status, r.header("content-length"), r.body.len()),
        (200, "17", 0)
    );
    // Plain proxying on the same connection pool still works afterwards.
    assert_eq!(p.get("/other").await.status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_viewer_response_function_gets_its_cloudfront_error() {
    let o = origin().name("o").run().await;
    let p = with_hooks(
        &o,
        &[
            (
                "/echo/throw",
                "viewer_response",
                "t",
                "function handler(e) { null.x; }",
                "",
            ),
            (
                "/echo/via",
                "viewer_response",
                "v",
                "function handler(e) { e.response.headers.via = {value: 'x'}; return e.response; }",
                "",
            ),
            (
                "/echo/spin",
                "viewer_response",
                "s",
                "function handler(e) { for (;;) {} }",
                "",
            ),
        ],
    )
    .await;
    for (path, status, result) in [
        ("/echo/throw", 503, "FunctionExecutionError"),
        ("/echo/via", 502, "FunctionValidationError"),
        ("/echo/spin", 503, "FunctionThrottledError"),
    ] {
        let r = p.get(path).await;
        assert_eq!(r.status, status, "{path}: {}", r.text());
        assert_eq!(
            r.header("x-cache"),
            format!("{result} from verge"),
            "{path}"
        );
        assert!(r.text().contains(r.header("x-verge-request-id")), "{path}");
    }
}

/// GET `/echo/private`, with `header` if given (a token).
async fn get_private(
    addr: std::net::SocketAddr,
    header: Option<(&'static str, String)>,
) -> crate::support::Reply {
    let mut req = http::Request::get("/echo/private");
    if let Some((name, value)) = header {
        req = req.header(name, value);
    }
    let req = req
        .body(http_body_util::BodyExt::boxed(http_body_util::Full::new(
            bytes::Bytes::new(),
        )))
        .unwrap();
    crate::support::request(addr, req).await
}

/// A token example's refusal: 401, generated by the function, saying `why`.
fn assert_unauthorized(r: &crate::support::Reply, why: &str) {
    assert_eq!(r.status, 401, "{why}");
    assert!(
        r.header("www-authenticate").contains(why),
        "{why}: {}",
        r.header("www-authenticate")
    );
    assert_eq!(r.header("x-cache"), "FunctionGeneratedResponse from verge");
}

/// An HS256 token signed with `secret`, built in Rust (independently of the function).
fn jwt(secret: &str, claims: serde_json::Value) -> String {
    use hmac::Mac;
    let b64 = |bytes: &[u8]| verge_functions::encoding::base64(bytes, false, true);
    let input = format!(
        "{}.{}",
        b64(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", b64(&mac.finalize().into_bytes()))
}

#[tokio::test(flavor = "multi_thread")]
async fn jwt_hs256_example_accepts_good_tokens_and_refuses_the_rest() {
    let o = origin().name("o").run().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        "examples/functions/viewer-request-jwt.js",
        dir.path().join("jwt.js"),
    )
    .unwrap();
    std::fs::copy(
        "examples/data/jwt-secrets.json",
        dir.path().join("secrets.json"),
    )
    .unwrap();
    let p = proxy_in(
        dir,
        &format!(
            "[origins.o]\nurl = \"{}\"\n[[behaviors]]\npath_pattern = \"/echo/*\"\norigin = \"o\"\n\
             viewer_request = \"jwt\"\n[[behaviors]]\npath_pattern = \"*\"\norigin = \"o\"\n\
             [functions.jwt]\ncode = \"jwt.js\"\nkvs = \"secrets\"\n[kvs.secrets]\nfile = \"secrets.json\"\n",
            o.url()
        ),
    )
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let call = |token: Option<String>| {
        get_private(
            p.addr,
            token.map(|t| ("authorization", format!("Bearer {t}"))),
        )
    };
    let good = jwt(
        "change-me",
        serde_json::json!({"sub": "alice", "exp": now + 600}),
    );
    let r = call(Some(good)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["headers"]["x-jwt-sub"], "alice");
    for (token, why) in [
        (None, "missing token"),
        (Some("not-a-jwt".to_owned()), "malformed token"),
        (
            Some(jwt("wrong-secret", serde_json::json!({"sub": "eve"}))),
            "bad signature",
        ),
        (
            Some(jwt(
                "change-me",
                serde_json::json!({"sub": "bob", "exp": now - 10}),
            )),
            "expired",
        ),
        (
            Some(jwt(
                "change-me",
                serde_json::json!({"sub": "bob", "nbf": now + 600}),
            )),
            "not yet valid",
        ),
    ] {
        assert_unauthorized(&call(token).await, why);
    }
    assert_eq!(o.hits(), 1, "only the good token reached the origin");
}

/// A CWT (`17([h'a10105', {}, payload, tag])`, HS256) with `sub` and the given `exp` and `nbf`,
/// assembled and MACed here with the `hmac` crate (independently of verge's decoder), base64url.
fn cwt(key: &str, sub: &str, exp: Option<u32>, nbf: Option<u32>) -> String {
    use hmac::Mac;
    let claims = 1 + usize::from(exp.is_some()) + usize::from(nbf.is_some());
    let mut payload = vec![0xa0 | claims as u8, 0x02, 0x60 | sub.len() as u8];
    payload.extend_from_slice(sub.as_bytes());
    for (label, time) in [(0x04, exp), (0x05, nbf)] {
        if let Some(t) = time {
            payload.extend_from_slice(&[label, 0x1a]);
            payload.extend_from_slice(&t.to_be_bytes());
        }
    }
    assert!(payload.len() < 24, "a one-byte byte-string head");
    let protected = [0xa1, 0x01, 0x05];
    let mut structure = vec![0x84, 0x64, b'M', b'A', b'C', b'0', 0x43];
    structure.extend_from_slice(&protected);
    structure.extend_from_slice(&[0x40, 0x40 | payload.len() as u8]);
    structure.extend_from_slice(&payload);
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(&structure);
    let mut token = vec![0xd1, 0x84, 0x43];
    token.extend_from_slice(&protected);
    token.extend_from_slice(&[0xa0, 0x40 | payload.len() as u8]);
    token.extend_from_slice(&payload);
    token.extend_from_slice(&[0x58, 0x20]);
    token.extend_from_slice(&mac.finalize().into_bytes());
    verge_functions::encoding::base64(&token, false, true)
}

#[tokio::test(flavor = "multi_thread")]
async fn cwt_example_accepts_good_tokens_and_refuses_the_rest() {
    let o = origin().name("o").run().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        "examples/functions/viewer-request-cwt.js",
        dir.path().join("cwt.js"),
    )
    .unwrap();
    std::fs::copy("examples/data/cwt-keys.json", dir.path().join("keys.json")).unwrap();
    let p = proxy_in(
        dir,
        &format!(
            "[origins.o]\nurl = \"{}\"\n[[behaviors]]\npath_pattern = \"*\"\norigin = \"o\"\n\
             viewer_request = \"cwt\"\n[functions.cwt]\ncode = \"cwt.js\"\nkvs = \"keys\"\n\
             [kvs.keys]\nfile = \"keys.json\"\n",
            o.url()
        ),
    )
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    let call = |token: Option<String>| get_private(p.addr, token.map(|t| ("x-cwt-token", t)));
    let r = call(Some(cwt("change-me-too", "alice", Some(now + 600), None))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["headers"]["x-cwt-sub"], "alice");
    for (token, why) in [
        (None, "missing token"),
        (Some("bm90LWEtY3d0".to_owned()), "invalid token"),
        (Some(cwt("wrong-key", "eve", None, None)), "invalid token"),
        (
            Some(cwt("change-me-too", "bob", Some(now - 10), None)),
            "expired",
        ),
        (
            Some(cwt("change-me-too", "bob", None, Some(now + 600))),
            "not yet valid",
        ),
    ] {
        assert_unauthorized(&call(token).await, why);
    }
    assert_eq!(o.hits(), 1, "only the good token reached the origin");
}

#[tokio::test(flavor = "multi_thread")]
async fn code_over_ten_kilobytes_is_refused_unless_the_limit_is_lifted() {
    let o = origin().name("o").run().await;
    let big = format!(
        "// {}\nfunction handler(e) {{ return e.request; }}\n",
        "x".repeat(11 * 1024)
    );
    let p = with_functions(&o, &[("/echo/*", "v", AB_HEADERS)]).await;
    p.write("v.js", &big);
    let e = p.state.reload("test").unwrap_err().to_string();
    assert!(
        e.contains("functions.v.code: ") && e.contains("CloudFront Functions allow 10240"),
        "{e}"
    );
    let config = std::fs::read_to_string(p.config_path()).unwrap();
    p.reload_with(&config.replace(
        "code = \"v.js\"",
        "code = \"v.js\"\nenforce_size_limit = false",
    ))
    .unwrap();
    assert_eq!(p.get("/echo/x").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn kvs_values_are_read_and_swapped_on_reload_and_a_missing_key_rejects() {
    let o = origin().name("o").run().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("data.json"),
        r#"{"data":[{"key":"greeting","value":"hello"},{"key":"cfg","value":"{\"n\":7}"}]}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("f.js"),
        "import cf from 'cloudfront';\n\
         const kvs = cf.kvs();\n\
         async function handler(event) {\n\
           const r = event.request;\n\
           r.headers['x-greeting'] = { value: await kvs.get('greeting') };\n\
           r.headers['x-n'] = { value: String((await kvs.get('cfg', { format: 'json' })).n) };\n\
           r.headers['x-has-nope'] = { value: String(await kvs.exists('nope')) };\n\
           r.headers['x-count'] = { value: String((await kvs.meta()).keyCount) };\n\
           if (r.uri === '/echo/missing') { await kvs.get('nope'); }\n\
           return r;\n\
         }\n",
    )
    .unwrap();
    let config = format!(
        "[origins.o]\nurl = \"{}\"\n[[behaviors]]\npath_pattern = \"*\"\norigin = \"o\"\n\
         viewer_request = \"f\"\n[functions.f]\ncode = \"f.js\"\nkvs = \"data\"\n\
         [kvs.data]\nfile = \"data.json\"\n",
        o.url()
    );
    let p = proxy_in(dir, &config).await;
    let echo = p.get("/echo/x").await.json();
    assert_eq!(echo["headers"]["x-greeting"], "hello");
    assert_eq!(echo["headers"]["x-n"], "7");
    assert_eq!(echo["headers"]["x-has-nope"], "false");
    assert_eq!(echo["headers"]["x-count"], "2");
    let r = p.get("/echo/missing").await;
    assert_eq!(
        (r.status, r.header("x-cache")),
        (503, "FunctionExecutionError from verge")
    );

    p.write(
        "data.json",
        r#"{"data":[{"key":"greeting","value":"bonjour"},{"key":"cfg","value":"{\"n\":8}"}]}"#,
    );
    p.state.reload("test").unwrap();
    assert_eq!(
        p.get("/echo/x").await.json()["headers"]["x-greeting"],
        "bonjour"
    );

    p.write(
        "data.json",
        r#"{"data":[{"key":"greeting","value":"a"},{"key":"greeting","value":"b"}]}"#,
    );
    let e = p.state.reload("test").unwrap_err().to_string();
    assert!(
        e.contains("kvs.data.file: ") && e.contains("appears twice"),
        "{e}"
    );
    assert_eq!(
        p.get("/echo/x").await.json()["headers"]["x-greeting"],
        "bonjour"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ab_routing_selects_configured_origins_with_a_sticky_cookie() {
    let a = origin().name("a").run().await;
    let b = origin().name("b").run().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        "examples/functions/viewer-request-ab-origin.js",
        dir.path().join("ab.js"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("bad.js"),
        "import cf from 'cloudfront'; function handler(e) { cf.selectRequestOriginById('nowhere'); return e.request; }",
    )
    .unwrap();
    let p = proxy_in(
        dir,
        &format!(
            "[origins.a]\nurl = \"{}\"\n[origins.b]\nurl = \"{}\"\n\
             [[behaviors]]\npath_pattern = \"/bad/*\"\norigin = \"a\"\nviewer_request = \"bad\"\n\
             [[behaviors]]\npath_pattern = \"*\"\norigin = \"a\"\nviewer_request = \"ab\"\n\
             [functions.ab]\ncode = \"ab.js\"\n[functions.bad]\ncode = \"bad.js\"\n",
            a.url(),
            b.url()
        ),
    )
    .await;
    for (cookie, want) in [
        ("origin-bucket=b", "b"),
        ("origin-bucket=a", "a"),
        ("origin-bucket=b", "b"),
    ] {
        let req = http::Request::get("/echo/x")
            .header("cookie", cookie)
            .body(http_body_util::BodyExt::boxed(http_body_util::Full::new(
                bytes::Bytes::new(),
            )))
            .unwrap();
        let r = crate::support::request(p.addr, req).await;
        assert_eq!(r.header("x-origin"), want, "{cookie}");
        assert_eq!(r.json()["headers"]["x-origin-bucket"], want);
        // The chosen origin's own host name goes upstream.
        let host = if want == "a" { a.addr } else { b.addr };
        assert_eq!(r.json()["headers"]["host"], host.to_string());
    }
    let r = p.get("/bad/x").await;
    assert_eq!(
        (r.status, r.header("x-cache")),
        (502, "FunctionValidationError from verge")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fail_open_forwards_unmodified_when_over_budget_but_not_on_errors() {
    let o = origin().name("o").run().await;
    let p = with_hooks(
        &o,
        &[
            (
                "/echo/spin",
                "viewer_request",
                "spin",
                "function handler(e) { while (true) {} }",
                "",
            ),
            (
                "/echo/throw",
                "viewer_request",
                "thrower",
                "function handler(e) { throw new Error('x'); }",
                "",
            ),
        ],
    )
    .await;
    let config = std::fs::read_to_string(p.config_path()).unwrap();
    let config = config
        .replace("code = \"spin.js\"", "code = \"spin.js\"\nfail_open = true")
        .replace(
            "code = \"thrower.js\"",
            "code = \"thrower.js\"\nfail_open = true",
        );
    p.reload_with(&config).unwrap();
    // Over budget, then throttled: both go on to the origin unmodified.
    for _ in 0..5 {
        let r = p.get("/echo/spin").await;
        assert_eq!((r.status, r.header("x-cache")), (200, "Miss from verge"));
    }
    // An error in the code still fails closed.
    let r = p.get("/echo/throw").await;
    assert_eq!(
        (r.status, r.header("x-cache")),
        (503, "FunctionExecutionError from verge")
    );
    let m = p.metrics().await;
    assert!(
        metric(
            &m,
            r#"verge_functions_invocations_total{function="spin",result="FunctionThrottledError"}"#
        ) >= 5.0,
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn country_and_trailing_slash_redirect_examples() {
    let o = origin().name("o").run().await;
    let country =
        std::fs::read_to_string("examples/functions/viewer-request-country-redirect.js").unwrap();
    let slash =
        std::fs::read_to_string("examples/functions/viewer-request-trailing-slash.js").unwrap();
    let p = with_functions(
        &o,
        &[
            ("/shop/*", "country", &country),
            ("/docs/*", "slash", &slash),
        ],
    )
    .await;
    let get = |path: &'static str, country: Option<&'static str>| {
        let addr = p.addr;
        async move {
            let mut req = http::Request::get(path);
            if let Some(c) = country {
                req = req.header("cloudfront-viewer-country", c);
            }
            let req = req
                .body(http_body_util::BodyExt::boxed(http_body_util::Full::new(
                    bytes::Bytes::new(),
                )))
                .unwrap();
            crate::support::request(addr, req).await
        }
    };
    let r = get("/shop/cart", Some("DE")).await;
    assert_eq!(
        (r.status, r.header("location")),
        (302, "https://www.example.de/shop/cart")
    );
    let r = get("/shop/cart", Some("FR")).await;
    assert_eq!(
        (r.status, r.header("location")),
        (302, "https://www.example.com/shop/cart")
    );
    let r = get("/shop/cart", None).await;
    assert_eq!(r.header("location"), "https://www.example.com/shop/cart");
    let r = get("/docs/guide?v=2&all", None).await;
    assert_eq!(
        (r.status, r.header("location")),
        (301, "/docs/guide/?v=2&all")
    );
    // A trailing slash or a file goes on to the origin.
    let r = get("/docs/echo/", None).await;
    assert_eq!((r.status, r.header("x-cache")), (200, "Miss from verge"));
    let r = get("/docs/echo.json", None).await;
    assert_eq!((r.status, r.header("x-cache")), (200, "Miss from verge"));
    assert_eq!(o.hits(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn update_request_origin_and_origin_groups_route_this_request() {
    let a = origin().name("a").run().await;
    let b = origin().name("b").run().await;
    let (_reserved, dead) = crate::support::binary::refusing_addr();
    let dir = tempfile::tempdir().unwrap();
    let update = format!(
        "import cf from 'cloudfront';\n\
         function handler(event) {{\n\
           cf.updateRequestOrigin({{\n\
             domainName: 'localhost',\n\
             originPath: '/echo/base',\n\
             hostHeader: 'api.example.com',\n\
             customHeaders: {{ 'x-origin-key': 'k1' }},\n\
             timeouts: {{ readTimeout: 5, connectionTimeout: 2 }},\n\
             customOriginConfig: {{ port: {}, protocol: 'http' }}\n\
           }});\n\
           return event.request;\n\
         }}",
        b.addr.port()
    );
    std::fs::write(dir.path().join("update.js"), update).unwrap();
    std::fs::write(
        dir.path().join("group.js"),
        "import cf from 'cloudfront';\n\
         function handler(event) {\n\
           cf.createRequestOriginGroup({ originIds: [{ originId: 'dead' }, { originId: 'b' }],\n\
             failoverCriteria: { statusCodes: [500, 502] } });\n\
           return event.request;\n\
         }",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("status_group.js"),
        "import cf from 'cloudfront';\n\
         function handler(event) {\n\
           cf.createRequestOriginGroup({ originIds: ['a', 'b'], failoverCriteria: { statusCodes: [500] } });\n\
           return event.request;\n\
         }",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("bad.js"),
        "import cf from 'cloudfront';\n\
         function handler(event) { cf.updateRequestOrigin({ domainName: '10.0.0.1' }); return event.request; }",
    )
    .unwrap();
    let p = proxy_in(
        dir,
        &format!(
            "[origins.a]\nurl = \"{}\"\n[origins.b]\nurl = \"{}\"\n[origins.dead]\nurl = \"http://{dead}\"\n\
             [[behaviors]]\npath_pattern = \"/upd/*\"\norigin = \"a\"\nviewer_request = \"update\"\n\
             [[behaviors]]\npath_pattern = \"/grp/*\"\norigin = \"dead\"\nviewer_request = \"group\"\n\
             [[behaviors]]\npath_pattern = \"/status/*\"\norigin = \"a\"\nviewer_request = \"status_group\"\n\
             [[behaviors]]\npath_pattern = \"/bad/*\"\norigin = \"a\"\nviewer_request = \"bad\"\n\
             [[behaviors]]\npath_pattern = \"*\"\norigin = \"dead\"\n\
             [functions.update]\ncode = \"update.js\"\n[functions.group]\ncode = \"group.js\"\n\
             [functions.status_group]\ncode = \"status_group.js\"\n[functions.bad]\ncode = \"bad.js\"\n",
            a.url(),
            b.url()
        ),
    )
    .await;
    // updateRequestOrigin: another host and port, an origin path, a Host and a custom header.
    let r = p.get("/upd/x?q=1").await;
    assert_eq!((r.status, r.header("x-origin")), (200, "b"), "{}", r.text());
    let echo = r.json();
    assert_eq!(echo["path"], "/echo/base/upd/x");
    assert_eq!(echo["query"], "q=1");
    assert_eq!(echo["headers"]["host"], "api.example.com");
    assert_eq!(echo["headers"]["x-origin-key"], "k1");
    assert_eq!(a.hits(), 0);
    // createRequestOriginGroup: a refused primary fails over to the secondary...
    let r = p.get("/grp/echo").await;
    assert_eq!((r.status, r.header("x-origin")), (200, "b"), "{}", r.text());
    // ...and so does a primary answering one of the group's failover statuses.
    let r = p.get("/status/500").await;
    assert_eq!((r.status, r.header("x-origin")), (500, "b"));
    assert_eq!(a.hits(), 1);
    // Without a function the dead origin is what the viewer gets.
    assert_eq!(p.get("/echo").await.status, 502);
    // A parameter CloudFront refuses throws at the call.
    let r = p.get("/bad/x").await;
    assert_eq!(
        (r.status, r.header("x-cache")),
        (503, "FunctionExecutionError from verge")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_query_string_tells_a_bare_question_mark_from_none() {
    let o = origin().name("o").run().await;
    let raw = "function handler(event) {\n\
               event.request.headers['x-raw'] = { value: String(event.request.rawQueryString()) };\n\
               return event.request; }";
    let p = with_functions(&o, &[("/echo/*", "raw", raw)]).await;
    for (path, want) in [
        ("/echo/r?b=%20x&a=1&a=2", "b=%20x&a=1&a=2"),
        ("/echo/r?", ""),
        ("/echo/r", "undefined"),
    ] {
        let r = p.get(path).await;
        assert_eq!(r.json()["headers"]["x-raw"], want, "{path}");
    }
}
