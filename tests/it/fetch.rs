//! `fetch` from edge functions through the proxy, with two real origins: the merge example
//! (fetch from the second origin, merge into a generated response), and the policy — the
//! allow-list, the per-invocation call cap, the response-size cap, the fetch timeout and the
//! invocation's own timeout — each failing the way its configuration says, plus `https`.

use std::time::{Duration, Instant};

use crate::support::certs::Ca;
use crate::support::client::get;
use crate::support::proxy::{Proxy, proxy_in};
use crate::support::{Origin, example, origin};

/// A proxy whose `/page*` behavior (origin `a`) runs `code` at origin-request with
/// `settings`; origin `b` is at `b_url`, trusting `b_ca` (a PEM) when given.
async fn fetch_proxy(
    a: &Origin,
    b_url: &str,
    b_ca: Option<&str>,
    code: &str,
    settings: &str,
) -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.js"), code).unwrap();
    let mut b_extra = "";
    if let Some(pem) = b_ca {
        std::fs::write(dir.path().join("ca.pem"), pem).unwrap();
        b_extra = "ca_file = \"ca.pem\"";
    }
    let config = format!(
        "[origins.a]\nurl = \"{}\"\n[origins.b]\nurl = \"{b_url}\"\n{b_extra}\n\
         [[behaviors]]\npath_pattern = \"/page*\"\norigin = \"a\"\norigin_request = \"f\"\n\
         [[behaviors]]\npath_pattern = \"*\"\norigin = \"a\"\n\
         [functions.f]\nruntime = \"lambda-edge\"\ncode = \"f.js\"\n{settings}\n",
        a.url(),
    );
    proxy_in(dir, &config).await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_merge_example_fetches_from_the_second_origin_into_a_generated_response() {
    let a = origin().name("a").run().await;
    let b = origin().name("b").run().await;
    let code = example("origin-request-fetch-merge.js").replace("http://127.0.0.1:8082", &b.url());
    let p = fetch_proxy(&a, &b.url(), None, &code, "fetch = [\"b\"]").await;
    let (a_hits, b_hits) = (a.hits(), b.hits());
    let req = http::Request::get("/page/home")
        .header("cookie", "theme=dark; user=ada")
        .body(http_body_util::BodyExt::boxed(http_body_util::Full::new(
            bytes::Bytes::new(),
        )))
        .unwrap();
    let r = crate::support::request(p.addr, req).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-cache"), "LambdaGeneratedResponse from verge");
    let page = r.json();
    assert_eq!(page["page"], "/page/home");
    assert_eq!(page["user"], "ada");
    assert_eq!(page["profile"]["origin"], "b");
    assert_eq!(page["profile"]["path"], "/echo/profile");
    assert_eq!(page["profile"]["query"], "user=ada");
    assert_eq!(page["profile"]["headers"]["accept"], "application/json");
    assert_eq!((a.hits(), b.hits()), (a_hits, b_hits + 1));

    // Not on the allow-list: the fetch is refused before any connection, the page renders
    // without a profile.
    let p = fetch_proxy(&a, &b.url(), None, &code, "").await;
    let r = get(p.addr, "/page/home").await;
    assert_eq!(r.json()["profile"], serde_json::Value::Null);
    assert_eq!(b.hits(), b_hits + 1);
}

/// Runs each probe and answers with what each gave: `ok:<status>:<detail>` or the error.
const PROBES: &str = r#"
exports.handler = async (event) => {
  const B = '__B__';
  const probe = async (name, f) => {
    try { return [name, 'ok:' + await f()]; } catch (e) { return [name, String(e.message)]; }
  };
  const results = [];
  results.push(await probe('post', async () => {
    const r = await fetch(B + '/echo', { method: 'POST', body: 'hello', headers: { 'x-a': '1' } });
    const j = await r.json();
    return r.status + ':' + j.method + ':' + j.body_len + ':' + j.headers['x-a'] + ':' + r.headers.get('x-origin');
  }));
  results.push(await probe('other', () => fetch('__A__/echo').then(r => r.status)));
  results.push(await probe('big', () => fetch(B + '/stream/5000').then(r => r.status)));
  results.push(await probe('slow', () => fetch(B + '/stall').then(r => r.status)));
  results.push(await probe('status', () => fetch(B + '/status/404').then(r => r.status + ':' + r.ok)));
  results.push(await probe('capped', () => fetch(B + '/echo').then(r => r.status)));
  return { status: '200', body: JSON.stringify(Object.fromEntries(results)) };
};
"#;

#[tokio::test(flavor = "multi_thread")]
async fn the_fetch_policy_is_enforced_call_by_call() {
    let a = origin().name("a").run().await;
    let b = origin().name("b").run().await;
    let code = PROBES.replace("__B__", &b.url()).replace("__A__", &a.url());
    let p = fetch_proxy(
        &a,
        &b.url(),
        None,
        &code,
        "fetch = [\"b\"]\nfetch_timeout = \"300ms\"\nfetch_max_calls = 4\nfetch_max_bytes = 1000",
    )
    .await;
    let started = Instant::now();
    let r = get(p.addr, "/page").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = r.json();
    assert_eq!(got["post"], "ok:200:POST:5:1:b");
    assert!(
        got["other"]
            .as_str()
            .unwrap()
            .contains("not an origin this function may call"),
        "{got}"
    );
    assert!(
        got["big"].as_str().unwrap().contains("over 1000 bytes"),
        "{got}"
    );
    assert!(
        got["slow"]
            .as_str()
            .unwrap()
            .contains("no answer within 300 ms"),
        "{got}"
    );
    assert_eq!(got["status"], "ok:404:false");
    // The refused call to `a` does not count; post, big, slow and status do.
    assert!(
        got["capped"]
            .as_str()
            .unwrap()
            .contains("more than 4 calls"),
        "{got}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fetch_cannot_outlive_the_invocation_timeout() {
    let a = origin().name("a").run().await;
    let b = origin().name("b").run().await;
    let code = format!(
        "exports.handler = async () => {{ await fetch('{}/stall'); return {{ status: '200' }}; }};",
        b.url()
    );
    let p = fetch_proxy(
        &a,
        &b.url(),
        None,
        &code,
        "fetch = [\"b\"]\nfetch_timeout = \"20s\"\ntimeout = \"1s\"",
    )
    .await;
    let started = Instant::now();
    let r = get(p.addr, "/page").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("x-cache"), "LambdaLimitExceeded from verge");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn https_origins_are_fetched_verified_against_their_ca() {
    let a = origin().name("a").run().await;
    let ca = Ca::new("fetch CA");
    let b = origin()
        .name("secure")
        .tls(ca.leaf().server_config())
        .run()
        .await;
    let url = format!("https://localhost:{}", b.addr.port());
    let code = format!(
        "exports.handler = async () => {{ \
           try {{ const r = await fetch('{url}/echo'); \
                  return {{ status: '200', body: (await r.json()).origin }}; }} \
           catch (e) {{ return {{ status: '200', body: 'failed: ' + e.message }}; }} }};"
    );
    let p = fetch_proxy(&a, &url, Some(&ca.cert_pem), &code, "fetch = [\"b\"]").await;
    let r = get(p.addr, "/page").await;
    assert_eq!(r.text(), "secure");
    // System roots by default: the private CA is not trusted.
    let p = fetch_proxy(&a, &url, None, &code, "fetch = [\"b\"]").await;
    let r = get(p.addr, "/page").await;
    assert!(
        r.text().starts_with("failed: fetch failed: TLS"),
        "{}",
        r.text()
    );
}
