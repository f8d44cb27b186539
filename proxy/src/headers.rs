//! The headers verge itself adds: `via` and `x-forwarded-for` towards the origin,
//! `x-cache` and `x-verge-request-id` towards the viewer.

use pingora::http::{RequestHeader, ResponseHeader};
use verge_functions::ResultType;

/// verge's `Via` entry.
pub const VIA: &str = "1.1 verge";
/// The request-id response header.
pub const REQUEST_ID: &str = "x-verge-request-id";

/// Mark a response to the viewer with its result type and request id.
pub fn stamp_response(
    header: &mut ResponseHeader,
    result: ResultType,
    request_id: &str,
) -> pingora::Result<()> {
    header.insert_header("x-cache", format!("{} from verge", result.as_str()))?;
    header.insert_header(REQUEST_ID, request_id)?;
    Ok(())
}

/// Append verge to `via` and the viewer's address to `x-forwarded-for`, keeping what earlier
/// proxies wrote.
pub fn add_forwarding(req: &mut RequestHeader, client_ip: Option<&str>) -> pingora::Result<()> {
    append_list(req, "via", VIA)?;
    if let Some(ip) = client_ip {
        append_list(req, "x-forwarded-for", ip)?;
    }
    Ok(())
}

/// Join a new element onto a comma-separated list header (several header lines become one).
fn append_list(req: &mut RequestHeader, name: &'static str, value: &str) -> pingora::Result<()> {
    let mut joined = Vec::new();
    for v in req.headers.get_all(name) {
        if !joined.is_empty() {
            joined.extend_from_slice(b", ");
        }
        joined.extend_from_slice(v.as_bytes());
    }
    if !joined.is_empty() {
        joined.extend_from_slice(b", ");
    }
    joined.extend_from_slice(value.as_bytes());
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
        req.append_header("via", "1.1 cdn").unwrap();
        add_forwarding(&mut req, Some("127.0.0.1")).unwrap();
        assert_eq!(req.headers["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(req.headers["via"], "1.1 cdn, 1.1 verge");
        let mut fresh = RequestHeader::build("GET", b"/", None).unwrap();
        add_forwarding(&mut fresh, Some("::1")).unwrap();
        assert_eq!(fresh.headers["x-forwarded-for"], "::1");
    }
}
