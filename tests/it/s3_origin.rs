//! S3 origins configured with credentials: every request to the bucket is signed (AWS
//! Signature Version 4) after every edit, on each attempt of a group for that attempt's bucket,
//! so the bucket can check it. A local origin stands in for the bucket and the test checks the
//! signature from what that origin received, as S3 would; an S3 origin without credentials gets
//! nothing added. CloudFront Functions' origin access control signs with the origin's
//! credentials, in the region the function names. Credentials renewed in their file sign once
//! the watcher has reloaded, without a restart; credentials from verge's environment sign too,
//! and an environment without them is a configuration error.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::support::client::Body;
use crate::support::origin;
use crate::support::proxy::proxy_in;

const SECRET: &str = "verge-test-secret/key+1";

/// At origin-request, adds a metadata header (which must then be signed too).
const ADDS_METADATA: &str = "exports.handler = async (event) => {
    const request = event.Records[0].cf.request;
    request.headers['x-amz-meta-edge'] = [{ key: 'x-amz-meta-edge', value: 'added' }];
    return request;
};";

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A GET of `path` carrying the viewer's own `authorization`.
fn request(path: &str) -> http::Request<Body> {
    let mut r = bare(path);
    r.headers_mut().insert(
        "authorization",
        http::HeaderValue::from_static("Bearer from-the-viewer"),
    );
    r
}

/// A GET of `path` without an `authorization`.
fn bare(path: &str) -> http::Request<Body> {
    http::Request::get(path)
        .body(http_body_util::BodyExt::boxed(http_body_util::Full::new(
            bytes::Bytes::new(),
        )))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_to_a_bucket_with_credentials_are_signed_over_what_it_receives() {
    let o = origin().run().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("aws-credentials"),
        format!(
            "[cdn]\naws_access_key_id = AKIDVERGETEST\naws_secret_access_key = {SECRET}\n\
             aws_session_token = session-token\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("meta.js"), ADDS_METADATA).unwrap();
    let url = o.url().replace("127.0.0.1", "localhost");
    let config = format!(
        "[origins.signed]\nurl = \"{url}\"\n\
         s3 = {{ region = \"eu-west-1\", credentials_file = \"aws-credentials\", profile = \"cdn\" }}\n\
         [origins.public]\nurl = \"{url}\"\ns3 = {{ region = \"eu-west-1\" }}\n\
         [[behaviors]]\npath_pattern = \"/echo/signed*\"\norigin = \"signed\"\n\
         origin_request = \"meta\"\n\
         [[behaviors]]\npath_pattern = \"*\"\norigin = \"public\"\n\
         [functions.meta]\nruntime = \"lambda-edge\"\ncode = \"meta.js\"\n"
    );
    let p = proxy_in(dir, &config).await;

    let r = crate::support::request(p.addr, request("/echo/signed/some%20key.txt?b=2&a=1")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let echo = r.json();
    let got = |name: &str| {
        echo["headers"][name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} at the origin: {echo}"))
            .to_owned()
    };
    let date = got("x-amz-date");
    assert_eq!(date.len(), 16, "{date}");
    assert_eq!(got("x-amz-content-sha256"), "UNSIGNED-PAYLOAD");
    assert_eq!(got("x-amz-security-token"), "session-token");
    assert_eq!(got("x-amz-meta-edge"), "added");
    let authorization = got("authorization");
    let scope = format!("{}/eu-west-1/s3/aws4_request", &date[..8]);
    let signed = "host;x-amz-content-sha256;x-amz-date;x-amz-meta-edge;x-amz-security-token";
    let prefix = format!(
        "AWS4-HMAC-SHA256 Credential=AKIDVERGETEST/{scope}, SignedHeaders={signed}, Signature="
    );
    let signature = authorization
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{authorization}"));

    // The signature S3 would compute from the request as received.
    assert_eq!(echo["path"], "/echo/signed/some%20key.txt");
    assert_eq!(echo["query"], "b=2&a=1");
    let headers: String = signed
        .split(';')
        .map(|name| format!("{name}:{}\n", got(name)))
        .collect();
    let canonical =
        format!("GET\n/echo/signed/some%20key.txt\na=1&b=2\n{headers}\n{signed}\nUNSIGNED-PAYLOAD");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{SECRET}").as_bytes(), &date[..8]);
    for part in ["eu-west-1", "s3", "aws4_request"] {
        key = hmac(&key, part);
    }
    assert_eq!(signature, hex(&hmac(&key, &to_sign)));

    // A bucket without credentials: nothing signed, nothing added.
    let r = crate::support::request(p.addr, request("/echo/public.txt")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let headers = &r.json()["headers"];
    assert_eq!(headers["authorization"], "Bearer from-the-viewer");
    assert!(headers.get("x-amz-date").is_none(), "{headers}");
}

/// AWS's select-origin-by-country sample, with the bucket's domain the configured stand-in's
/// and the signing behaviour taken from the path.
const OAC_SAMPLE: &str = "import cf from 'cloudfront';
function handler(event) {
    const request = event.request;
    const selectedRegion = 'eu-west-2';
    cf.updateRequestOrigin({
        domainName: 'localhost',
        originAccessControlConfig: {
            enabled: true,
            region: selectedRegion,
            signingBehavior: request.uri.indexOf('never') >= 0 ? 'never'
                : request.uri.indexOf('keep') >= 0 ? 'no-override' : 'always',
            signingProtocol: 'sigv4',
            originType: 's3'
        },
    });
    return request;
}";

#[tokio::test(flavor = "multi_thread")]
async fn a_cloudfront_functions_origin_access_control_signs_with_the_origins_credentials() {
    let o = origin().run().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("aws-credentials"),
        format!("[default]\naws_access_key_id = AKIDOAC\naws_secret_access_key = {SECRET}\n"),
    )
    .unwrap();
    std::fs::write(dir.path().join("oac.js"), OAC_SAMPLE).unwrap();
    let url = o.url().replace("127.0.0.1", "localhost");
    let config = format!(
        "[origins.signed]\nurl = \"{url}\"\n\
         s3 = {{ region = \"eu-west-1\", credentials_file = \"aws-credentials\" }}\n\
         [origins.public]\nurl = \"{url}\"\ns3 = {{ region = \"eu-west-1\" }}\n\
         [[behaviors]]\npath_pattern = \"/echo/unsigned*\"\norigin = \"public\"\n\
         viewer_request = \"oac\"\n\
         [[behaviors]]\npath_pattern = \"*\"\norigin = \"signed\"\nviewer_request = \"oac\"\n\
         [functions.oac]\ncode = \"oac.js\"\n"
    );
    let p = proxy_in(dir, &config).await;

    // Signed in the region the function gave, the viewer's authorization replaced.
    let r = crate::support::request(p.addr, request("/echo/oac")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let headers = &r.json()["headers"];
    let authorization = headers["authorization"].as_str().unwrap();
    assert!(
        authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDOAC/")
            && authorization.contains("/eu-west-2/s3/aws4_request, SignedHeaders="),
        "{authorization}"
    );
    // `never`: the request goes unsigned, as the viewer sent it.
    let r = crate::support::request(p.addr, request("/echo/oac-never")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let headers = &r.json()["headers"];
    assert_eq!(headers["authorization"], "Bearer from-the-viewer");
    assert!(headers.get("x-amz-date").is_none(), "{headers}");
    // `no-override`: the viewer's authorization goes on as it came; without one, signed.
    let r = crate::support::request(p.addr, request("/echo/oac-keep")).await;
    let headers = &r.json()["headers"];
    assert_eq!(headers["authorization"], "Bearer from-the-viewer");
    assert!(headers.get("x-amz-date").is_none(), "{headers}");
    let r = crate::support::request(p.addr, bare("/echo/oac-keep")).await;
    let headers = &r.json()["headers"];
    assert!(
        headers["authorization"]
            .as_str()
            .unwrap()
            .starts_with("AWS4-HMAC-SHA256 Credential=AKIDOAC/"),
        "{headers}"
    );
    // An origin without credentials cannot sign: the function's choice is refused.
    let r = crate::support::request(p.addr, request("/echo/unsigned")).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.header("x-cache"), "FunctionValidationError from verge");
    assert_eq!(o.hits(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn each_attempt_of_a_group_is_signed_for_its_own_bucket() {
    let secondary = origin().name("secondary").run().await;
    let (_reserved, dead) = crate::support::binary::refusing_addr();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("aws-credentials"),
        format!("[default]\naws_access_key_id = AKIDHA\naws_secret_access_key = {SECRET}\n"),
    )
    .unwrap();
    let s3 = |region: &str| {
        format!("s3 = {{ region = \"{region}\", credentials_file = \"aws-credentials\" }}")
    };
    let config = format!(
        "[origins.primary]\nurl = \"http://{dead}\"\n{}\n\
         [origins.secondary]\nurl = \"{}\"\n{}\n\
         [origin_groups.ha]\nprimary = \"primary\"\nsecondary = \"secondary\"\n\
         [[behaviors]]\npath_pattern = \"*\"\norigin = \"ha\"\n",
        s3("us-east-1"),
        secondary.url().replace("127.0.0.1", "localhost"),
        s3("eu-west-2")
    );
    let p = proxy_in(dir, &config).await;
    let r = crate::support::request(p.addr, request("/echo/replica.txt")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-origin"), "secondary");
    let echo = r.json();
    let authorization = echo["headers"]["authorization"].as_str().unwrap();
    assert!(
        authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDHA/")
            && authorization.contains("/eu-west-2/s3/aws4_request, "),
        "{authorization}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn new_credentials_in_the_file_sign_without_a_restart() {
    use std::time::Duration;

    use crate::support::binary::start_watching;
    use crate::support::client::get;

    let o = origin().run().await;
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("aws-credentials");
    let write = |id: &str| {
        std::fs::write(
            &credentials,
            format!("[default]\naws_access_key_id = {id}\naws_secret_access_key = {SECRET}\n"),
        )
        .unwrap();
    };
    write("AKIDFIRST");
    let template = format!(
        "[server]\nlisten = [\"{{listen}}\"]\n[admin]\nlisten = \"{{admin}}\"\n\
         [origins.bucket]\nurl = \"{}\"\n\
         s3 = {{ region = \"eu-west-1\", credentials_file = \"aws-credentials\" }}\n\
         [[behaviors]]\npath_pattern = \"*\"\norigin = \"bucket\"\n",
        o.url().replace("127.0.0.1", "localhost")
    );
    let verge = start_watching(dir.path(), &template, 100).await;
    let key_id = || async {
        let r = get(verge.addr, "/echo/object").await;
        let authorization = r.json()["headers"]["authorization"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        authorization
            .strip_prefix("AWS4-HMAC-SHA256 Credential=")
            .and_then(|rest| rest.split('/').next())
            .map(str::to_owned)
    };
    assert_eq!(key_id().await.as_deref(), Some("AKIDFIRST"));

    // Temporary credentials renewed in place: the watcher reloads, and the new key signs.
    write("AKIDSECONDKEY");
    let renewed = crate::support::eventually(100, Duration::from_millis(100), || async {
        (key_id().await.as_deref() == Some("AKIDSECONDKEY")).then_some(())
    })
    .await;
    assert!(renewed.is_some(), "the new credentials never signed");
    assert!(verge.reaches_generation(2).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_from_verges_environment_sign() {
    use crate::support::binary::start_with_env;
    use crate::support::client::get;

    let o = origin().run().await;
    let dir = tempfile::tempdir().unwrap();
    let template = format!(
        "[server]\nlisten = [\"{{listen}}\"]\n[admin]\nlisten = \"{{admin}}\"\n\
         [origins.bucket]\nurl = \"{}\"\n\
         s3 = {{ region = \"eu-west-1\", credentials_from_env = true }}\n\
         [[behaviors]]\npath_pattern = \"*\"\norigin = \"bucket\"\n",
        o.url().replace("127.0.0.1", "localhost")
    );
    let env = [
        ("AWS_ACCESS_KEY_ID", "AKIDFROMENV"),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
        ("AWS_SESSION_TOKEN", "env-token"),
    ];
    let verge = start_with_env(dir.path(), &template, 0, "info", &env).await;
    let r = get(verge.addr, "/echo/object").await;
    let headers = &r.json()["headers"];
    assert!(
        headers["authorization"]
            .as_str()
            .unwrap()
            .starts_with("AWS4-HMAC-SHA256 Credential=AKIDFROMENV/"),
        "{headers}"
    );
    assert_eq!(headers["x-amz-security-token"], "env-token");
}

#[test]
fn credentials_from_an_environment_without_them_are_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("verge.toml");
    std::fs::write(
        &path,
        "[origins.bucket]\nurl = \"https://b.s3.amazonaws.com\"\n\
         s3 = { region = \"eu-west-1\", credentials_from_env = true }\n\
         [[behaviors]]\npath_pattern = \"*\"\norigin = \"bucket\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(crate::support::binary::exe())
        .args(["validate", "--config"])
        .arg(&path)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_ne!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains(
            "verge.toml:3:53: origins.bucket.s3.credentials_from_env: AWS_ACCESS_KEY_ID is not \
             set in verge's environment"
        ),
        "{stdout}"
    );
}
