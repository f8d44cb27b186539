//! The headers verge itself adds: `via` and `x-forwarded-for` towards the origin,
//! `x-cache` and `x-verge-request-id` towards the viewer. Names and fixed values are static, so
//! stamping a response allocates only for the request id.
//!
//! Names go to pingora as `&'static str`, not `HeaderName`: pingora keeps each name's case for
//! HTTP/1 in a second map, and from a `HeaderName` outside its short list of title-cased
//! standard names it makes that entry by copying the name into a fresh allocation; from a
//! static string it borrows it. The names written are the same lowercase text either way.

use std::net::IpAddr;

use http::HeaderValue;
use pingora::http::{RequestHeader, ResponseHeader};
use verge_functions::ResultType;

/// verge's `Via` entry.
pub const VIA: &str = "1.1 verge";
/// The request-id response header.
pub const REQUEST_ID: &str = "x-verge-request-id";
/// CloudFront's result header.
pub const X_CACHE: &str = "x-cache";
const X_FORWARDED_FOR: &str = "x-forwarded-for";
const VIA_HEADER: &str = "via";

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
    header.insert_header(X_CACHE, x_cache(result))?;
    header.insert_header(REQUEST_ID, request_id)?;
    Ok(())
}

/// Append verge to `via` and the viewer's address to `x-forwarded-for`, keeping what earlier
/// proxies wrote.
pub fn add_forwarding(req: &mut RequestHeader, client_ip: Option<IpAddr>) -> pingora::Result<()> {
    if req.headers.contains_key(http::header::VIA) {
        append_list(req, VIA_HEADER, VIA.as_bytes())?;
    } else {
        req.insert_header(VIA_HEADER, HeaderValue::from_static(VIA))?;
    }
    if let Some(ip) = client_ip {
        let ip = ip_text(ip);
        if req.headers.contains_key(X_FORWARDED_FOR) {
            append_list(req, X_FORWARDED_FOR, &ip)?;
        } else {
            req.insert_header(X_FORWARDED_FOR, ip)?;
        }
    }
    Ok(())
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

/// Join a new element onto a comma-separated list header (several header lines become one).
fn append_list(req: &mut RequestHeader, name: &'static str, value: &[u8]) -> pingora::Result<()> {
    let mut joined = Vec::new();
    for v in req.headers.get_all(name) {
        joined.extend_from_slice(v.as_bytes());
        joined.extend_from_slice(b", ");
    }
    joined.extend_from_slice(value);
    req.insert_header(name, joined)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
