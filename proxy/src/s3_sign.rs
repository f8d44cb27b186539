//! AWS Signature Version 4 on requests to an S3 origin configured with credentials, as
//! CloudFront's origin access control signs them: the last step before a request goes upstream,
//! after every function edit, so the signature covers what is sent.
//!
//! Signed: `host` and every `x-amz-*` header (S3 refuses a request with an unsigned one), with
//! `x-amz-date`, `x-amz-content-sha256: UNSIGNED-PAYLOAD` (the body is streamed, never hashed
//! first) and, for temporary credentials, `x-amz-security-token` added. A viewer's own
//! `authorization` is replaced; whether a request is signed at all is the bucket's `signing`
//! ([`verge_config::S3Bucket::signer`]), decided by the caller.

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use http::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;
use sha2::{Digest, Sha256};
use verge_config::AwsCredentials;
use verge_functions::encoding::hex;
use verge_functions::querystring::unescape_bytes;

/// What S3 accepts in place of the body's hash.
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// Sign `upstream` for the bucket in `region` with `credentials`, at `now`.
pub fn sign(
    upstream: &mut RequestHeader,
    credentials: &AwsCredentials,
    region: &str,
    now: SystemTime,
) -> pingora::Result<()> {
    let amz_date = amz_date(now);
    let set = |upstream: &mut RequestHeader, name: &'static str, value: &str| {
        let value = HeaderValue::from_str(value).map_err(|e| {
            pingora::Error::explain(
                pingora::ErrorType::InvalidHTTPHeader,
                format!("{name} cannot be sent: {e}"),
            )
        })?;
        upstream.insert_header(HeaderName::from_static(name), value)
    };
    set(upstream, "x-amz-date", &amz_date)?;
    set(upstream, "x-amz-content-sha256", UNSIGNED_PAYLOAD)?;
    match &credentials.session_token {
        Some(token) => set(upstream, "x-amz-security-token", token)?,
        None => {
            upstream.remove_header("x-amz-security-token");
        }
    }
    let signed: Vec<(String, Vec<u8>)> = upstream
        .headers
        .iter()
        .filter(|(name, _)| *name == http::header::HOST || name.as_str().starts_with("x-amz-"))
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect();
    let request = Request {
        method: upstream.method.as_str(),
        path: upstream.uri.path(),
        query: upstream.uri.query().unwrap_or(""),
        headers: &signed,
        payload_hash: UNSIGNED_PAYLOAD,
    };
    let authorization = authorization(&request, credentials, region, "s3", &amz_date)
        .map_err(|e| pingora::Error::explain(pingora::ErrorType::InternalError, e))?;
    set(upstream, "authorization", &authorization)
}

/// `YYYYMMDDTHHMMSSZ`, UTC. A clock set before 1970 signs as 1970, which S3 refuses as too
/// far from its own time (`RequestTimeTooSkewed`, a 403 the viewer sees).
fn amz_date(now: SystemTime) -> String {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    verge_functions::calendar::iso8601_basic(secs)
}

/// The parts of a request a signature covers.
struct Request<'a> {
    method: &'a str,
    /// As sent (percent-encoded).
    path: &'a str,
    /// As sent, without `?`.
    query: &'a str,
    /// The headers to sign, names lower-case, in any order (a repeated name once per value).
    headers: &'a [(String, Vec<u8>)],
    payload_hash: &'a str,
}

/// The `authorization` value for `request`, signed for `service` in `region` at `amz_date`.
fn authorization(
    request: &Request<'_>,
    credentials: &AwsCredentials,
    region: &str,
    service: &str,
    amz_date: &str,
) -> Result<String, String> {
    let date = &amz_date[..8];
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let (canonical, signed_headers) = canonical_request(request);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac(
        format!("AWS4{}", credentials.secret_access_key).as_bytes(),
        date.as_bytes(),
    )?;
    for part in [region, service, "aws4_request"] {
        key = hmac(&key, part.as_bytes())?;
    }
    let signature = hex(&hmac(&key, string_to_sign.as_bytes())?);
    Ok(format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, \
         Signature={signature}",
        credentials.access_key_id
    ))
}

/// The canonical request and its signed-header list.
fn canonical_request(request: &Request<'_>) -> (String, String) {
    let mut names: Vec<&str> = request.headers.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let mut headers = String::new();
    for name in &names {
        // Every value of the name, in order, each trimmed with inner runs of spaces made one.
        let values: Vec<String> = request
            .headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| {
                String::from_utf8_lossy(v)
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        headers.push_str(name);
        headers.push(':');
        headers.push_str(&values.join(","));
        headers.push('\n');
    }
    let signed = names.join(";");
    let canonical = format!(
        "{}\n{}\n{}\n{headers}\n{signed}\n{}",
        request.method,
        encode(&unescape_bytes(request.path, false), false),
        canonical_query(request.query),
        request.payload_hash
    );
    (canonical, signed)
}

/// The query's parameters each decoded and encoded again, sorted by name, then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                encode(&unescape_bytes(k, false), true),
                encode(&unescape_bytes(v, false), true),
            )
        })
        .collect();
    pairs.sort_unstable();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// SigV4's encoding: every byte but `A-Z a-z 0-9 - _ . ~` as `%XX` (upper-case hex), and `/`
/// too unless it is a path's separator (`slash_too` false).
fn encode(bytes: &[u8], slash_too: bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (b == b'/' && !slash_too) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// HMAC-SHA256 (which takes a key of any length: the error is the `hmac` crate's signature).
fn hmac(key: &[u8], data: &[u8]) -> Result<Vec<u8>, String> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key).map_err(|e| format!("signing key refused: {e}"))?;
    mac.update(data);
    Ok(mac.finalize().into_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec()))
            .collect()
    }

    fn credentials(id: &str, secret: &str) -> AwsCredentials {
        AwsCredentials {
            access_key_id: id.into(),
            secret_access_key: secret.into(),
            session_token: None,
        }
    }

    /// Amazon S3's documented example "GET Object" (first 10 bytes of `test.txt`).
    #[test]
    fn the_s3_get_object_example_signs_as_documented() {
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let h = headers(&[
            ("host", "examplebucket.s3.amazonaws.com"),
            ("range", "bytes=0-9"),
            ("x-amz-content-sha256", empty),
            ("x-amz-date", "20130524T000000Z"),
        ]);
        let request = Request {
            method: "GET",
            path: "/test.txt",
            query: "",
            headers: &h,
            payload_hash: empty,
        };
        let creds = credentials(
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        );
        let got = authorization(&request, &creds, "us-east-1", "s3", "20130524T000000Z").unwrap();
        assert_eq!(
            got,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    /// The SigV4 test suite's `get-vanilla-query-order-key-case`: parameters sorted by name.
    #[test]
    fn the_test_suite_query_order_case_signs_as_published() {
        let h = headers(&[
            ("host", "example.amazonaws.com"),
            ("x-amz-date", "20150830T123600Z"),
        ]);
        let request = Request {
            method: "GET",
            path: "/",
            query: "Param2=value2&Param1=value1",
            headers: &h,
            payload_hash: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        };
        let creds = credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
        let got =
            authorization(&request, &creds, "us-east-1", "service", "20150830T123600Z").unwrap();
        assert!(
            got.ends_with(
                "Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
            ),
            "{got}"
        );
    }

    #[test]
    fn paths_and_queries_are_encoded_once_whatever_the_viewer_encoded() {
        // A space sent as %20 or a tilde sent as %7E: the same canonical form.
        assert_eq!(
            encode(&unescape_bytes("/a%20b/c~d%7e", false), false),
            "/a%20b/c~d~"
        );
        assert_eq!(encode(&unescape_bytes("/x+y", false), false), "/x%2By");
        assert_eq!(encode(&unescape_bytes("/50%", false), false), "/50%25");
        assert_eq!(
            canonical_query("b=2&a=x%2Fy&a=1&flag"),
            "a=1&a=x%2Fy&b=2&flag="
        );
    }

    #[test]
    fn header_values_are_trimmed_and_repeated_names_joined() {
        let h = headers(&[
            ("x-amz-meta-b", "  two   words "),
            ("host", "h"),
            ("x-amz-meta-a", "1"),
            ("x-amz-meta-a", "2"),
        ]);
        let request = Request {
            method: "GET",
            path: "/",
            query: "",
            headers: &h,
            payload_hash: UNSIGNED_PAYLOAD,
        };
        let (canonical, signed) = canonical_request(&request);
        assert_eq!(signed, "host;x-amz-meta-a;x-amz-meta-b");
        assert!(
            canonical.contains("\nhost:h\nx-amz-meta-a:1,2\nx-amz-meta-b:two words\n\n"),
            "{canonical}"
        );
    }

    #[test]
    fn a_request_gets_the_date_its_hash_and_the_token_and_loses_the_viewers_authorization() {
        let mut upstream = RequestHeader::build("GET", b"/k%20ey.txt?versionId=3", None).unwrap();
        upstream
            .insert_header("host", "b.s3.amazonaws.com")
            .unwrap();
        upstream
            .insert_header("authorization", "Bearer viewer")
            .unwrap();
        upstream.insert_header("x-amz-meta-note", "kept").unwrap();
        let mut creds = credentials("AKIDEXAMPLE", "secret");
        creds.session_token = Some("token".into());
        // 2026-11-25T01:02:03Z
        let now = UNIX_EPOCH + Duration::from_secs(1_795_568_523);
        sign(&mut upstream, &creds, "eu-west-1", now).unwrap();
        let h = |name: &str| upstream.headers.get(name).unwrap().to_str().unwrap();
        assert_eq!(h("x-amz-date"), "20261125T010203Z");
        assert_eq!(h("x-amz-content-sha256"), "UNSIGNED-PAYLOAD");
        assert_eq!(h("x-amz-security-token"), "token");
        let auth = h("authorization");
        assert_eq!(upstream.headers.get_all("authorization").iter().count(), 1);
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261125/eu-west-1/s3/aws4_request, \
                 SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-meta-note;\
                 x-amz-security-token, Signature="
            ),
            "{auth}"
        );
        assert_eq!(auth.rsplit('=').next().unwrap().len(), 64, "{auth}");
        // Without a token, none is sent, even one the viewer gave.
        upstream
            .insert_header("x-amz-security-token", "viewer's")
            .unwrap();
        sign(
            &mut upstream,
            &credentials("AKIDEXAMPLE", "secret"),
            "eu-west-1",
            now,
        )
        .unwrap();
        assert!(upstream.headers.get("x-amz-security-token").is_none());
    }
}
