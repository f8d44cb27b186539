//! HTTP/1 header-name case, and editing pingora's headers through their `http` map.
//!
//! pingora keeps, beside each request's and response's `http::HeaderMap`, a second map with the
//! case every HTTP/1 header name arrived in, and writes names back in that case. Every header
//! verge or a function adds is then paid twice: hashed and inserted into both maps, each sized
//! for the headers that came (so both grow), and for a name outside `http`'s standard list two
//! allocations (pingora copies the name, then clones it for the case map). On the `verge-none`
//! benchmark row, doing without it saves 6.4k of 105.6k instructions a request on the proxy
//! thread (callgrind; BENCHMARKS.md, session 38).
//!
//! Header names are case-insensitive (RFC 9110 §5.1), and CloudFront does not keep their case
//! either (it title-cases them). So unless `server.preserve_header_case` is set, verge drops the
//! case map when a request arrives and when the origin's response does ([`normalize`]); names
//! then go out as pingora writes them without one (its few standard names title-cased, the rest
//! lower case), and verge's own headers are inserted straight into the `http` map
//! ([`Headers::set`]): one hash, one insert, no allocation for a static name.
//!
//! pingora gives no mutable access to the map; it converts a header to `http`'s parts and back,
//! dropping the case map. A request is only converted when its target round-trips through its
//! URI (an absolute-form or non-UTF-8 target is kept beside the URI and would be lost), and its
//! HTTP/2 end-of-stream flag and a response's reason phrase are carried over.

use http::{HeaderMap, HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};

/// A pingora request or response header.
pub trait Headers {
    /// The `http` map, for reading.
    fn header_map(&self) -> &HeaderMap;
    /// Whether the header can be taken apart into its `http` parts and put back without losing
    /// anything but the case map.
    fn convertible(&self) -> bool;
    /// Whether pingora keeps a case map for this header.
    fn keeps_case(&self) -> bool;
    /// Whether edits go straight into the `http` map: there is no case map to keep in step, and
    /// the header converts back unchanged. The one test [`Headers::set`] and
    /// [`crate::header_list`] both make.
    fn edits_directly(&self) -> bool {
        !self.keeps_case() && self.convertible()
    }
    /// Run `edit` on the `http` map. The case map is dropped. Callers check
    /// [`Headers::convertible`] first.
    fn edit_map<R>(&mut self, edit: impl FnOnce(&mut HeaderMap) -> R) -> R;
    /// pingora's own insertion, which keeps the case map in step.
    fn insert_kept(&mut self, name: &'static str, value: HeaderValue) -> pingora::Result<()>;
    /// pingora's own appending, which keeps the case map in step.
    fn append_kept(&mut self, name: HeaderName, value: HeaderValue) -> pingora::Result<()>;
    /// pingora's own removal of every value of `name`, from both maps.
    fn remove_kept(&mut self, name: &HeaderName);

    /// Set each `(name, value)`, replacing what the header had under that name: straight into the
    /// `http` map when there is no case map to keep in step, else through pingora.
    fn set<const N: usize>(
        &mut self,
        entries: [(&StaticName, HeaderValue); N],
    ) -> pingora::Result<()> {
        if self.edits_directly() {
            return self.edit_map(|map| {
                for (name, value) in entries {
                    // `http` panics past its size limit where `try_insert` answers an error.
                    map.try_insert(name.name.clone(), value).map_err(|_| {
                        pingora::Error::explain(
                            pingora::ErrorType::InvalidHTTPHeader,
                            "too many headers",
                        )
                    })?;
                }
                Ok(())
            });
        }
        for (name, value) in entries {
            self.insert_kept(name.text, value)?;
        }
        Ok(())
    }
}

/// A header name verge writes itself: parsed once (cloning it does not allocate), with its
/// static text, which pingora's case map borrows rather than copies.
pub struct StaticName {
    name: HeaderName,
    text: &'static str,
}

impl StaticName {
    /// `text` must be a valid lower-case header name (checked when the constant is built).
    pub const fn new(text: &'static str) -> Self {
        StaticName {
            name: HeaderName::from_static(text),
            text,
        }
    }

    /// The parsed name.
    pub fn name(&self) -> &HeaderName {
        &self.name
    }
}

/// Drop `header`'s case map (unless `preserve`) and make room for `extra` more headers, so that
/// the headers verge and functions add neither grow two maps nor allocate for names.
pub fn normalize(header: &mut impl Headers, preserve: bool, extra: usize) {
    if !preserve && header.keeps_case() && header.convertible() {
        header.edit_map(|map| map.reserve(extra));
    }
}

/// The methods pingora gives both header types under the same names.
macro_rules! pingora_methods {
    () => {
        fn header_map(&self) -> &HeaderMap {
            &self.headers
        }

        fn keeps_case(&self) -> bool {
            self.has_case()
        }

        fn insert_kept(&mut self, name: &'static str, value: HeaderValue) -> pingora::Result<()> {
            self.insert_header(name, value)
        }

        fn append_kept(&mut self, name: HeaderName, value: HeaderValue) -> pingora::Result<()> {
            self.append_header(name, value).map(drop)
        }

        fn remove_kept(&mut self, name: &HeaderName) {
            self.remove_header(name);
        }
    };
}

impl Headers for RequestHeader {
    pingora_methods!();

    fn convertible(&self) -> bool {
        self.uri
            .path_and_query()
            .is_some_and(|p| p.as_str().as_bytes() == self.raw_path())
    }

    fn edit_map<R>(&mut self, edit: impl FnOnce(&mut HeaderMap) -> R) -> R {
        let end_stream = self.send_end_stream();
        // An empty `http` header map does not allocate.
        let empty = RequestHeader::from(http::Request::new(()).into_parts().0);
        let mut parts: http::request::Parts = std::mem::replace(self, empty).into();
        let out = edit(&mut parts.headers);
        *self = RequestHeader::from(parts);
        if end_stream == Some(false) {
            self.set_send_end_stream(false);
        }
        out
    }
}

impl Headers for ResponseHeader {
    pingora_methods!();

    fn convertible(&self) -> bool {
        true
    }

    fn edit_map<R>(&mut self, edit: impl FnOnce(&mut HeaderMap) -> R) -> R {
        // pingora answers the status's canonical phrase when it keeps none.
        let reason = self
            .get_reason_phrase()
            .filter(|r| Some(*r) != self.status.canonical_reason())
            .map(str::to_owned);
        let empty = ResponseHeader::from(http::Response::new(()).into_parts().0);
        let mut parts: http::response::Parts = std::mem::replace(self, empty).into();
        let out = edit(&mut parts.headers);
        *self = ResponseHeader::from(parts);
        if reason.is_some() {
            // It was valid as it stood.
            let _ = self.set_reason_phrase(reason.as_deref());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static X_NEW: StaticName = StaticName::new("x-new");

    fn wire(req: &RequestHeader) -> String {
        let mut buf = bytes::BytesMut::new();
        req.header_to_h1_wire(&mut buf);
        String::from_utf8(buf.to_vec()).unwrap()
    }

    fn request(path: &[u8]) -> RequestHeader {
        let mut req = RequestHeader::build("POST", path, Some(1)).unwrap();
        req.append_header("X-Mixed-Case", "1").unwrap();
        req.append_header("x-mixed-case", "2").unwrap();
        req.append_header("Host", "h").unwrap();
        req
    }

    #[test]
    fn normalizing_drops_only_the_case_of_names() {
        let mut req = request(b"/p?q=1");
        req.set_version(http::Version::HTTP_2);
        req.set_send_end_stream(false);
        normalize(&mut req, false, 4);
        assert!(!req.has_case());
        assert_eq!(req.method, http::Method::POST);
        assert_eq!(req.raw_path(), b"/p?q=1");
        assert_eq!(req.send_end_stream(), Some(false));
        assert!(req.headers.capacity() >= 6, "{}", req.headers.capacity());
        assert_eq!(
            wire(&req),
            "x-mixed-case: 1\r\nx-mixed-case: 2\r\nHost: h\r\n"
        );
        req.set([(&X_NEW, HeaderValue::from_static("n"))]).unwrap();
        assert_eq!(req.headers["x-new"], "n");
        assert!(!req.has_case());
    }

    #[test]
    fn a_preserved_or_unconvertible_request_keeps_its_case_map() {
        for (path, preserve) in [(&b"/p"[..], true), (&b"/\xff"[..], false)] {
            let mut req = request(path);
            normalize(&mut req, preserve, 4);
            assert!(req.has_case());
            assert_eq!(req.raw_path(), path);
            // Inserted through pingora, so the case map keeps both old and new names.
            req.set([(&X_NEW, HeaderValue::from_static("n"))]).unwrap();
            assert_eq!(
                wire(&req),
                "X-Mixed-Case: 1\r\nx-mixed-case: 2\r\nHost: h\r\nx-new: n\r\n"
            );
        }
    }

    #[test]
    fn a_response_keeps_its_status_and_an_unusual_reason_phrase() {
        for (reason, kept) in [(Some("Fine"), "Fine"), (None, "OK")] {
            let mut resp = ResponseHeader::build(200, None).unwrap();
            resp.set_reason_phrase(reason).unwrap();
            resp.append_header("X-A", "1").unwrap();
            normalize(&mut resp, false, 2);
            assert!(!resp.has_case());
            assert_eq!(resp.status, 200);
            assert_eq!(resp.get_reason_phrase(), Some(kept));
            assert_eq!(resp.headers["x-a"], "1");
        }
    }
}
