//! Test support: a real origin, the real proxy on `127.0.0.1:0`, clients, certificates, and the
//! real `verge` binary for what only a process shows (signals, stdout, memory).

pub mod binary;
pub mod certs;
pub mod client;
pub mod origin;
pub mod proxy;

pub use client::{Reply, get, request};
pub use origin::{Origin, origin};
pub use proxy::proxy;

use std::time::Duration;

/// Retry `check` until it returns `Some`, at most `tries` times `every` apart. For "eventually"
/// conditions: no bare sleeps.
pub async fn eventually<T, F, Fut>(tries: u32, every: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..tries {
        if let Some(v) = check().await {
            return Some(v);
        }
        tokio::time::sleep(every).await;
    }
    None
}

/// How long after a request its access-log line is written at the latest.
pub const ACCESS_FLUSH: Duration = verge_proxy::access_log::FLUSH_EVERY;

/// The deterministic byte at offset `i` of a large test body.
pub fn pattern_byte(i: u64) -> u8 {
    (i % 251) as u8
}

/// The pattern body of `len` bytes as a stream of 64 KiB frames (never held whole).
pub fn pattern_chunks(
    len: u64,
) -> impl futures::Stream<Item = Result<hyper::body::Frame<bytes::Bytes>, std::convert::Infallible>>
+ Send
+ 'static {
    pattern_chunks_of(len, 64 * 1024)
}

/// The pattern body of `len` bytes as a stream of `chunk`-byte frames.
pub fn pattern_chunks_of(
    len: u64,
    chunk: u64,
) -> impl futures::Stream<Item = Result<hyper::body::Frame<bytes::Bytes>, std::convert::Infallible>>
+ Send
+ 'static {
    futures::stream::unfold(0u64, move |off| async move {
        if off >= len {
            return None;
        }
        let n = (len - off).min(chunk);
        let bytes: Vec<u8> = (off..off + n).map(pattern_byte).collect();
        Some((
            Ok(hyper::body::Frame::data(bytes::Bytes::from(bytes))),
            off + n,
        ))
    })
}

/// A configuration with one origin `o` at `url` (plus `extra` origin keys) and one default
/// behavior sending everything to it.
pub fn single_origin(url: &str, extra: &str) -> String {
    format!(
        "[origins.o]\nurl = \"{url}\"\n{extra}\n[[behaviors]]\npath_pattern = \"*\"\norigin = \"o\"\n"
    )
}

/// Hex SHA-256 of the pattern body of `len` bytes, computed in chunks.
pub fn pattern_sha256(len: u64) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut off = 0;
    while off < len {
        let n = (len - off).min(buf.len() as u64) as usize;
        for (j, b) in buf[..n].iter_mut().enumerate() {
            *b = pattern_byte(off + j as u64);
        }
        h.update(&buf[..n]);
        off += n as u64;
    }
    hex(&h.finalize())
}

/// The source of `examples/functions/NAME`.
pub fn example(name: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/functions")
            .join(name),
    )
    .unwrap_or_else(|e| panic!("examples/functions/{name}: {e}"))
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
