//! TLS both ways: viewer listeners speaking HTTP/1.1 and HTTP/2 by ALPN (and saying so in the
//! CloudFront headers a behavior asks for), certificates reloaded without a restart; https
//! origins verified against a CA, a bad certificate refused.

use crate::support::certs::Ca;
use crate::support::client::{tls_client, tls_get};
use crate::support::{origin, proxy, single_origin};

fn listener_config(origin_url: &str) -> String {
    format!(
        r#"
[[server.tls]]
listen = "127.0.0.1:0"
cert = "cert.pem"
key = "key.pem"
[origins.o]
url = "{origin_url}"
[[behaviors]]
path_pattern = "*"
origin = "o"
"#
    )
}

/// A proxy with `config` (a TLS listener's, [`listener_config`]) and a certificate for it from
/// a new CA, which clients then trust.
async fn tls_proxy(config: &str) -> (crate::support::proxy::Proxy, Ca) {
    let ca = Ca::new("verge test CA");
    let leaf = ca.leaf();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), &leaf.cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), &leaf.key_pem).unwrap();
    (crate::support::proxy::proxy_in(dir, config).await, ca)
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_listener_speaks_http1_and_http2_and_reloads_its_certificate() {
    let o = origin().name("o").run().await;
    let ca = Ca::new("verge test CA");
    let first = ca.leaf();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), &first.cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), &first.key_pem).unwrap();
    let p = crate::support::proxy::proxy_in(dir, &listener_config(&o.url())).await;
    let addr = p.tls[0];

    let (r, cert) = tls_get(addr, tls_client(&ca.cert_pem, false), "/echo").await;
    assert_eq!((r.status, r.version), (200, http::Version::HTTP_11));
    assert_eq!(r.header("x-cache"), "Miss from verge");
    assert_eq!(cert, first.der());

    let (r, _) = tls_get(addr, tls_client(&ca.cert_pem, true), "/echo").await;
    assert_eq!((r.status, r.version), (200, http::Version::HTTP_2));
    assert_eq!(r.json()["path"], "/echo");

    // Renew: new files, a reload, and the next handshake presents the new certificate.
    let second = ca.leaf();
    p.write("cert.pem", &second.cert_pem);
    p.write("key.pem", &second.key_pem);
    p.state.reload("test").unwrap();
    let (r, cert) = tls_get(addr, tls_client(&ca.cert_pem, false), "/echo").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        cert,
        second.der(),
        "the renewed certificate is served without a restart"
    );

    // A broken key keeps the old certificate serving.
    p.write("key.pem", "garbage");
    let e = p.state.reload("test").unwrap_err().to_string();
    assert!(e.contains("server.tls[0].cert"), "{e}");
    let (_, cert) = tls_get(addr, tls_client(&ca.cert_pem, false), "/echo").await;
    assert_eq!(cert, second.der());
}

#[tokio::test(flavor = "multi_thread")]
async fn https_origin_is_verified_against_its_ca_and_a_bad_certificate_refused() {
    let ca = Ca::new("origin CA");
    let o = origin()
        .name("secure")
        .tls(ca.leaf().server_config())
        .run()
        .await;
    let url = format!("https://localhost:{}", o.addr.port());

    // Trusting the origin's CA: verified, served.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), &ca.cert_pem).unwrap();
    let p =
        crate::support::proxy::proxy_in(dir, &single_origin(&url, "ca_file = \"ca.pem\"")).await;
    let r = p.get("/echo").await;
    assert_eq!(
        (r.status, r.header("x-origin")),
        (200, "secure"),
        "{}",
        r.text()
    );

    // Trusting another CA: the origin's certificate is refused.
    let other = Ca::new("some other CA");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), &other.cert_pem).unwrap();
    let p =
        crate::support::proxy::proxy_in(dir, &single_origin(&url, "ca_file = \"ca.pem\"")).await;
    let r = p.get("/echo").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.header("x-cache"), "Error from verge");

    // System roots by default: a private CA is not trusted.
    let p = proxy(&single_origin(&url, "")).await;
    assert_eq!(p.get("/echo").await.status, 502);

    // Opting out of verification reaches it.
    let p = proxy(&single_origin(&url, "verify_tls = false")).await;
    assert_eq!(p.get("/echo").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn cloudfront_headers_tell_the_origin_a_viewer_came_over_tls_and_which_http() {
    let o = origin().name("o").run().await;
    let config = listener_config(&o.url()).replace(
        "origin = \"o\"",
        "origin = \"o\"\ncloudfront_headers = [\"CloudFront-Forwarded-Proto\", \
         \"CloudFront-Viewer-Http-Version\"]",
    );
    let (p, ca) = tls_proxy(&config).await;
    for (h2, version) in [(false, "1.1"), (true, "2.0")] {
        let (r, _) = tls_get(p.tls[0], tls_client(&ca.cert_pem, h2), "/echo").await;
        assert_eq!(r.status, 200);
        let headers = &r.json()["headers"];
        assert_eq!(headers["cloudfront-forwarded-proto"], "https", "{headers}");
        assert_eq!(
            headers["cloudfront-viewer-http-version"], version,
            "{headers}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_custom_error_response_reaches_viewers_over_http1_and_http2() {
    let o = origin().name("o").run().await;
    let config = format!(
        "{}[[custom_error_responses]]\nerror_code = 404\n\
         response_page_path = \"/echo/index.html\"\nresponse_code = 200\n",
        listener_config(&o.url())
    );
    let (p, ca) = tls_proxy(&config).await;
    for h2 in [false, true] {
        let (r, _) = tls_get(p.tls[0], tls_client(&ca.cert_pem, h2), "/status/404").await;
        assert_eq!(r.status, 200, "h2 {h2}: {}", r.text());
        assert_eq!(r.json()["path"], "/echo/index.html", "h2 {h2}");
        assert_eq!(r.header("x-cache"), "Error from verge", "h2 {h2}");
    }
    assert_eq!(o.hits(), 4);
}
