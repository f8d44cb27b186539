//! Request bodies for include-body functions: read the body's first bytes before a function
//! runs, then send the whole body (or the function's replacement) upstream byte-exact.
//!
//! pingora 0.9.1 streams a request body to the origin from `request_body_filter` as it reads
//! it; bytes read earlier (here, in `request_filter` or `upstream_peer`) are gone from its
//! view, except what its retry buffer holds (64 KiB, and only bytes read after the buffer was
//! enabled). It replays that buffer as the first chunk of each origin attempt, and when the
//! viewer's body was already read to its end it sends nothing at all unless the buffer holds
//! something. So:
//!
//! - We keep every byte we read (`HeldBody::read`) and, in `request_body_filter`, put them
//!   in front of the first chunk of each attempt (or put the replacement there and drop the
//!   viewer's bytes).
//! - The first chunk is either pingora's replay of its retry buffer or the next bytes from the
//!   viewer; we know which, because we record how many of our bytes the buffer holds
//!   (`HeldBody::replayed`) and cut those off the replay.
//! - The buffer must hold something whenever we read the body to its end, or pingora would
//!   never call the filter. With a `Content-Length` we enable it just before the last 64 KiB,
//!   so it always holds the tail and never overflows: any size works. Without one (chunked, or
//!   HTTP/2 without a length) it is enabled from the start; a body that ends after more than
//!   64 KiB was read cannot be replayed and is refused with 411 Length Required rather than
//!   sent incomplete.
//!
//! Without include-body none of this runs: bodies stream through untouched.

use bytes::{Bytes, BytesMut};
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use pingora::{Error, ErrorType};
use verge_functions::RequestBody;

/// The size of pingora's retry buffer (`BODY_BUF_LIMIT` in pingora-core 0.9.1).
const RETRY_BUFFER: usize = 64 * 1024;

/// The status verge answers when a body it read cannot be forwarded (see the module docs).
pub const LENGTH_REQUIRED: u16 = 411;

/// The viewer's body as far as include-body functions needed it.
#[derive(Debug, Default)]
pub struct HeldBody {
    /// Every byte read from the viewer so far, in order.
    read: BytesMut,
    /// Whether the viewer's body ended within `read`.
    complete: bool,
    /// How many of the last bytes of `read` pingora's retry buffer holds (and replays).
    replayed: usize,
    /// What goes upstream instead of the viewer's body (a function replaced it).
    replacement: Option<Bytes>,
    /// Whether the current origin attempt has had its first body chunk.
    attempt_started: bool,
}

/// The viewer's declared body length, when it has one and no transfer coding overrides it.
fn declared_length(session: &Session) -> Option<usize> {
    let headers = &session.req_header().headers;
    if headers.contains_key(http::header::TRANSFER_ENCODING) {
        return None;
    }
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether the viewer's request says it has no body: no transfer coding, and no
/// `Content-Length` or one of 0.
pub fn has_no_body(session: &Session) -> bool {
    let headers = &session.req_header().headers;
    !headers.contains_key(http::header::TRANSFER_ENCODING)
        && (!headers.contains_key(http::header::CONTENT_LENGTH)
            || declared_length(session) == Some(0))
}

impl HeldBody {
    /// Read from the viewer until more than `cap` bytes are held or the body ended. Read errors
    /// (a viewer that stalls past the client timeout or goes away) end the request.
    pub async fn fill(&mut self, session: &mut Session, cap: usize) -> pingora::Result<()> {
        if self.replacement.is_some() {
            // An earlier function replaced the body: later ones see the replacement.
            return Ok(());
        }
        if !self.complete && self.read.is_empty() {
            self.start(session).await?;
        }
        let declared = declared_length(session);
        if declared.is_none() {
            session.enable_retry_buffering();
        }
        while !self.complete && self.read.len() <= cap {
            if declared.is_some_and(|len| len.saturating_sub(self.read.len()) <= RETRY_BUFFER) {
                session.enable_retry_buffering();
            }
            match session
                .read_request_body()
                .await
                .map_err(|e| e.into_down())?
            {
                Some(chunk) => self.read.extend_from_slice(&chunk),
                None => self.complete = true,
            }
            self.complete |= session.is_body_done();
        }
        self.replayed = session.get_retry_buffer().map_or(0, |b| b.len());
        if self.complete && self.replayed == 0 && !self.read.is_empty() {
            return Err(Error::explain(
                ErrorType::HTTPStatus(LENGTH_REQUIRED),
                format!(
                    "an include-body function read the whole {}-byte request body, which came \
                     without a Content-Length; over 64 KiB such a body cannot be forwarded",
                    self.read.len()
                ),
            ));
        }
        Ok(())
    }

    /// Before the first read: note an empty body, and answer `Expect: 100-continue` (the viewer
    /// waits for it before sending the body we are about to read; the origin is not asked).
    async fn start(&mut self, session: &mut Session) -> pingora::Result<()> {
        if session.is_body_done() {
            self.complete = true;
            return Ok(());
        }
        let expects = session
            .req_header()
            .headers
            .get(http::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if expects {
            session.write_continue_response().await?;
            session
                .req_header_mut()
                .remove_header(&http::header::EXPECT);
        }
        Ok(())
    }

    /// The body as a function with input cap `cap` sees it.
    pub fn view(&self, cap: usize) -> RequestBody {
        let whole = match &self.replacement {
            Some(r) => r.clone(),
            None => Bytes::copy_from_slice(&self.read),
        };
        let truncated = whole.len() > cap;
        RequestBody {
            data: if truncated { whole.slice(..cap) } else { whole },
            truncated,
        }
    }

    /// Send `body` upstream instead of the viewer's.
    pub fn replace(&mut self, body: Bytes) {
        self.replacement = Some(body);
    }

    /// `upstream_request_filter`, once per origin attempt: a new attempt starts its body anew,
    /// and a replacement gets its own length.
    pub fn prepare_attempt(&mut self, upstream: &mut RequestHeader) -> pingora::Result<()> {
        self.attempt_started = false;
        if let Some(replacement) = &self.replacement {
            upstream.remove_header(&http::header::TRANSFER_ENCODING);
            upstream.insert_header(http::header::CONTENT_LENGTH, replacement.len())?;
        }
        Ok(())
    }

    /// `request_body_filter`: what goes upstream for this chunk of the viewer's body.
    pub fn filter(&mut self, data: &mut Option<Bytes>) {
        if !self.attempt_started {
            self.attempt_started = true;
            *data = Some(self.first_chunk(data.take()));
            return;
        }
        if self.replacement.is_some() {
            // The viewer's remaining bytes are read and dropped; an empty chunk is not sent.
            *data = Some(Bytes::new());
        }
    }

    /// The first chunk of an attempt: our bytes (or the replacement) in place of the replayed
    /// part of `chunk`, followed by the rest of it.
    fn first_chunk(&self, chunk: Option<Bytes>) -> Bytes {
        if let Some(replacement) = &self.replacement {
            return replacement.clone();
        }
        let rest = chunk.map_or_else(Bytes::new, |c| c.slice(self.replayed.min(c.len())..));
        if rest.is_empty() {
            return Bytes::copy_from_slice(&self.read);
        }
        let mut out = BytesMut::with_capacity(self.read.len() + rest.len());
        out.extend_from_slice(&self.read);
        out.extend_from_slice(&rest);
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(read: &[u8], replayed: usize) -> HeldBody {
        HeldBody {
            read: BytesMut::from(read),
            complete: false,
            replayed,
            ..HeldBody::default()
        }
    }

    #[test]
    fn our_bytes_go_first_in_place_of_the_replayed_tail_on_every_attempt() {
        let mut upstream = RequestHeader::build("POST", b"/", None).unwrap();
        // pingora replays the last 2 bytes we read ("cd"), then more came in attempt 1.
        let mut body = held(b"abcd", 2);
        body.prepare_attempt(&mut upstream).unwrap();
        let mut chunk = Some(Bytes::from_static(b"cd"));
        body.filter(&mut chunk);
        assert_eq!(chunk.as_deref(), Some(&b"abcd"[..]));
        let mut chunk = Some(Bytes::from_static(b"ef"));
        body.filter(&mut chunk);
        assert_eq!(chunk.as_deref(), Some(&b"ef"[..]));
        // A second attempt replays everything the buffer kept: ours, then what came later.
        body.prepare_attempt(&mut upstream).unwrap();
        let mut chunk = Some(Bytes::from_static(b"cdef"));
        body.filter(&mut chunk);
        assert_eq!(chunk.as_deref(), Some(&b"abcdef"[..]));

        // Nothing replayed: the first chunk is fresh from the viewer.
        let mut body = held(b"abcd", 0);
        body.prepare_attempt(&mut upstream).unwrap();
        let mut chunk = Some(Bytes::from_static(b"ef"));
        body.filter(&mut chunk);
        assert_eq!(chunk.as_deref(), Some(&b"abcdef"[..]));
        // The viewer's body was all read and the filter is called once, at its end.
        let mut body = held(b"abcd", 4);
        body.prepare_attempt(&mut upstream).unwrap();
        let mut chunk = None;
        body.filter(&mut chunk);
        assert_eq!(chunk.as_deref(), Some(&b"abcd"[..]));
    }

    #[test]
    fn a_replacement_is_sent_once_with_its_length_and_the_viewers_bytes_are_dropped() {
        let mut upstream = RequestHeader::build("POST", b"/", None).unwrap();
        upstream
            .insert_header("transfer-encoding", "chunked")
            .unwrap();
        let mut body = held(b"abcd", 0);
        body.replace(Bytes::from_static(b"new"));
        body.prepare_attempt(&mut upstream).unwrap();
        assert_eq!(upstream.headers["content-length"], "3");
        assert!(upstream.headers.get("transfer-encoding").is_none());
        let mut chunk = Some(Bytes::from_static(b"ef"));
        body.filter(&mut chunk);
        assert_eq!(chunk.as_deref(), Some(&b"new"[..]));
        let mut chunk = Some(Bytes::from_static(b"gh"));
        body.filter(&mut chunk);
        assert_eq!(chunk.as_deref(), Some(&b""[..]));
        assert_eq!(
            body.view(2),
            RequestBody {
                data: Bytes::from_static(b"ne"),
                truncated: true
            }
        );
    }

    #[test]
    fn a_function_sees_at_most_its_cap() {
        let body = held(b"abcdef", 0);
        assert_eq!(
            body.view(6),
            RequestBody {
                data: Bytes::from_static(b"abcdef"),
                truncated: false
            }
        );
        assert_eq!(
            body.view(4),
            RequestBody {
                data: Bytes::from_static(b"abcd"),
                truncated: true
            }
        );
    }
}
