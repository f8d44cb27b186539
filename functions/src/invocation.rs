//! What a hook hands to a function: owned copies, never references into pingora's session.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use verge_config::{FunctionDef, Hook};

/// Header name/value pairs in wire order; names lower-case, values raw bytes.
pub type HeaderList = Vec<(String, Vec<u8>)>;

/// The viewer's request as the function sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSnapshot {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, without the query string.
    pub uri: String,
    /// The raw query string, without `?` (empty when there is none).
    pub querystring: String,
    /// Whether the request line had a `?` at all (`rawQueryString()` tells `""` from
    /// `undefined`).
    pub has_query: bool,
    /// All request headers.
    pub headers: HeaderList,
    /// The viewer's address.
    pub client_ip: IpAddr,
}

impl RequestSnapshot {
    /// The viewer's address as the event's `ip` / `clientIp` string. An IPv4 address is
    /// written digit by digit: the formatting machinery took about as long as a dozen of the
    /// event's properties.
    pub fn client_ip_text(&self) -> String {
        let IpAddr::V4(v4) = self.client_ip else {
            return self.client_ip.to_string();
        };
        let mut text = String::with_capacity(15);
        for (i, octet) in v4.octets().into_iter().enumerate() {
            if i > 0 {
                text.push('.');
            }
            if octet >= 100 {
                text.push(char::from(b'0' + octet / 100));
            }
            if octet >= 10 {
                text.push(char::from(b'0' + octet / 10 % 10));
            }
            text.push(char::from(b'0' + octet % 10));
        }
        text
    }
}

/// The response at origin-response and viewer-response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseSnapshot {
    /// Status code.
    pub status: u16,
    /// All response headers.
    pub headers: HeaderList,
}

/// One call of one function at one hook.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The function to run.
    pub function: Arc<FunctionDef>,
    /// Where in the request's life it runs.
    pub hook: Hook,
    /// verge's request id (`context.requestId`).
    pub request_id: String,
    /// The request.
    pub request: RequestSnapshot,
    /// The response, at the response hooks.
    pub response: Option<ResponseSnapshot>,
    /// The function's KeyValueStore, as of the request's configuration snapshot.
    pub kvs: Option<Arc<crate::kvs::KvStore>>,
    /// The origin this attempt goes to (`request.origin.custom`, edge tier at the origin
    /// hooks).
    pub origin: Option<EdgeOrigin>,
    /// The request body, when the behavior includes it at this hook (`include_body`).
    pub body: Option<RequestBody>,
}

/// The request body as an include-body function sees it: at most the hook's cap.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestBody {
    /// The body's first bytes (all of it unless `truncated`).
    pub data: bytes::Bytes,
    /// Whether the body was longer than the hook's cap (`inputTruncated`).
    pub truncated: bool,
}

/// An origin as Lambda@Edge describes it in `request.origin.custom` (or `.s3`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeOrigin {
    /// `domainName`.
    pub domain_name: String,
    /// `port`.
    pub port: u16,
    /// `protocol == "https"`.
    pub https: bool,
    /// `path` (empty for none).
    pub path: String,
    /// `readTimeout`.
    pub read_timeout: Duration,
    /// `keepaliveTimeout`.
    pub keepalive_timeout: Duration,
    /// `customHeaders`, names lower-case.
    pub custom_headers: Vec<(String, String)>,
    /// `Some(region)` for an S3 origin, configured as one or one a function sent the request to
    /// (`region` empty when it gave none): the event then shows `request.origin.s3` instead of
    /// `custom`.
    pub s3_region: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_address_text_is_what_display_gives() {
        for ip in [
            "0.0.0.0",
            "9.10.99.100",
            "203.0.113.7",
            "255.255.255.255",
            "10.1.20.200",
            "2001:db8::1",
            "::ffff:192.0.2.1",
        ] {
            let snapshot = RequestSnapshot {
                method: "GET".into(),
                uri: "/".into(),
                querystring: String::new(),
                has_query: false,
                headers: Vec::new(),
                client_ip: ip.parse().unwrap(),
            };
            assert_eq!(snapshot.client_ip_text(), ip);
        }
    }
}
