//! The headers verge itself adds: `via`, `x-forwarded-for` and the CloudFront headers a
//! behavior asks for towards the origin, `x-cache` and `x-verge-request-id` towards the viewer.
//! Names are parsed once and values are static where they can be, so stamping a response
//! allocates only for the request id; how they are inserted (straight into the `http` map, or
//! through pingora to keep header case) is [`crate::header_case`]'s.

use std::net::{IpAddr, SocketAddr};

use http::{HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use verge_config::CloudFrontHeader;
use verge_functions::ResultType;

use crate::header_case::{Headers, StaticName};

/// verge's `Via` entry.
pub const VIA: &str = "1.1 verge";
/// The request-id response header.
pub static REQUEST_ID: StaticName = StaticName::new("x-verge-request-id");
/// CloudFront's result header.
pub static X_CACHE: StaticName = StaticName::new("x-cache");
static X_FORWARDED_FOR: StaticName = StaticName::new("x-forwarded-for");
static VIA_HEADER: StaticName = StaticName::new("via");

/// `x-cache` for a result type, without formatting.
pub fn x_cache(result: ResultType) -> HeaderValue {
    HeaderValue::from_static(match result {
        ResultType::Miss => "Miss from verge",
        ResultType::Error => "Error from verge",
        ResultType::FunctionGeneratedResponse => "FunctionGeneratedResponse from verge",
        ResultType::FunctionExecutionError => "FunctionExecutionError from verge",
        ResultType::FunctionValidationError => "FunctionValidationError from verge",
        ResultType::FunctionThrottledError => "FunctionThrottledError from verge",
        ResultType::LambdaGeneratedResponse => "LambdaGeneratedResponse from verge",
        ResultType::LambdaExecutionError => "LambdaExecutionError from verge",
        ResultType::LambdaValidationError => "LambdaValidationError from verge",
        ResultType::LambdaLimitExceeded => "LambdaLimitExceeded from verge",
    })
}

/// Mark a response to the viewer with its result type and request id.
pub fn stamp_response(
    header: &mut ResponseHeader,
    result: ResultType,
    request_id: &str,
) -> pingora::Result<()> {
    let id = HeaderValue::from_str(request_id)
        .map_err(|e| pingora::Error::because(pingora::ErrorType::InternalError, "request id", e))?;
    header.set([(&X_CACHE, x_cache(result)), (&REQUEST_ID, id)])
}

/// Append verge to `via` and the viewer's address to `x-forwarded-for`, keeping what earlier
/// proxies wrote (several header lines become one).
pub fn add_forwarding(req: &mut RequestHeader, client_ip: Option<IpAddr>) -> pingora::Result<()> {
    let via = appended(req, &VIA_HEADER, HeaderValue::from_static(VIA))?;
    match client_ip {
        Some(ip) => {
            let xff = appended(req, &X_FORWARDED_FOR, header_value(ip_text(ip))?)?;
            req.set([(&VIA_HEADER, via), (&X_FORWARDED_FOR, xff)])
        }
        None => req.set([(&VIA_HEADER, via)]),
    }
}

/// What verge knows of the viewer's connection, for the CloudFront headers.
pub struct Viewer {
    /// Over TLS.
    pub tls: bool,
    /// Its address and port, when it has one.
    pub addr: Option<SocketAddr>,
    /// The request's HTTP version.
    pub version: http::Version,
}

/// Add `wanted` CloudFront headers about `viewer`, each replacing any a viewer sent (those are
/// CloudFront's to say). A header whose value verge does not have (no address) is left out.
pub fn add_cloudfront(
    req: &mut RequestHeader,
    wanted: &[CloudFrontHeader],
    viewer: &Viewer,
) -> pingora::Result<()> {
    for header in wanted {
        let value = match header {
            CloudFrontHeader::ForwardedProto => {
                HeaderValue::from_static(if viewer.tls { "https" } else { "http" })
            }
            CloudFrontHeader::ViewerAddress => {
                let Some(addr) = viewer.addr else { continue };
                let mut text = ip_text(addr.ip());
                text.push(b':');
                crate::digits::push_uint(&mut text, addr.port().into());
                header_value(text)?
            }
            CloudFrontHeader::ViewerHttpVersion => HeaderValue::from_static(match viewer.version {
                http::Version::HTTP_10 => "1.0",
                http::Version::HTTP_2 => "2.0",
                http::Version::HTTP_3 => "3.0",
                _ => "1.1",
            }),
        };
        let name = HeaderName::from_static(header.lower_name());
        req.insert_header(name, value)?;
    }
    Ok(())
}

/// `name`'s values joined with `, `, then `value`.
fn appended(
    req: &RequestHeader,
    name: &StaticName,
    value: HeaderValue,
) -> pingora::Result<HeaderValue> {
    let mut earlier = req.headers.get_all(name.name()).iter().peekable();
    if earlier.peek().is_none() {
        return Ok(value);
    }
    let mut joined = Vec::new();
    for v in earlier {
        joined.extend_from_slice(v.as_bytes());
        joined.extend_from_slice(b", ");
    }
    joined.extend_from_slice(value.as_bytes());
    header_value(joined)
}

fn header_value(bytes: Vec<u8>) -> pingora::Result<HeaderValue> {
    HeaderValue::from_maybe_shared(bytes::Bytes::from(bytes)).map_err(|e| {
        pingora::Error::because(
            pingora::ErrorType::InvalidHTTPHeader,
            "forwarding header",
            e,
        )
    })
}

/// An address as std writes it; IPv4 (nearly every viewer) without `core::fmt`.
fn ip_text(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => {
            let mut text = Vec::with_capacity(15);
            crate::digits::push_ipv4(&mut text, v4);
            text
        }
        IpAddr::V6(v6) => v6.to_string().into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloudfront_headers_describe_the_viewer_and_replace_what_it_sent() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header("CloudFront-Viewer-Address", "203.0.113.9:1")
            .unwrap();
        let viewer = Viewer {
            tls: true,
            addr: Some("[2001:db8::7]:4431".parse().unwrap()),
            version: http::Version::HTTP_2,
        };
        add_cloudfront(&mut req, &CloudFrontHeader::ALL, &viewer).unwrap();
        assert_eq!(req.headers["cloudfront-forwarded-proto"], "https");
        assert_eq!(
            req.headers
                .get_all("cloudfront-viewer-address")
                .iter()
                .count(),
            1
        );
        assert_eq!(req.headers["cloudfront-viewer-address"], "2001:db8::7:4431");
        assert_eq!(req.headers["cloudfront-viewer-http-version"], "2.0");
        // Only those asked for; no address, no address header.
        let mut plain = RequestHeader::build("GET", b"/", None).unwrap();
        let viewer = Viewer {
            tls: false,
            addr: None,
            version: http::Version::HTTP_11,
        };
        add_cloudfront(&mut plain, &CloudFrontHeader::ALL[..2], &viewer).unwrap();
        assert_eq!(plain.headers["cloudfront-forwarded-proto"], "http");
        assert!(plain.headers.get("cloudfront-viewer-address").is_none());
        assert!(
            plain
                .headers
                .get("cloudfront-viewer-http-version")
                .is_none()
        );
    }

    #[test]
    fn forwarding_headers_append_to_earlier_hops() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header("x-forwarded-for", "10.0.0.1").unwrap();
        req.append_header("X-Forwarded-For", "10.0.0.2").unwrap();
        req.append_header("via", "1.1 cdn").unwrap();
        add_forwarding(&mut req, Some([127, 0, 0, 1].into())).unwrap();
        assert_eq!(
            req.headers["x-forwarded-for"],
            "10.0.0.1, 10.0.0.2, 127.0.0.1"
        );
        assert_eq!(req.headers.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(req.headers["via"], "1.1 cdn, 1.1 verge");
        let mut fresh = RequestHeader::build("GET", b"/", None).unwrap();
        add_forwarding(&mut fresh, Some(std::net::Ipv6Addr::LOCALHOST.into())).unwrap();
        assert_eq!(fresh.headers["x-forwarded-for"], "::1");
        assert_eq!(fresh.headers["via"], "1.1 verge");
    }

    #[test]
    fn every_result_type_has_its_x_cache_value() {
        for r in [ResultType::Miss, ResultType::LambdaLimitExceeded] {
            assert_eq!(x_cache(r), format!("{} from verge", r.as_str()).as_str());
        }
    }
}
