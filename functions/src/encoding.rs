//! Hex and base64 (standard and URL-safe), native for the host modules and the event contract,
//! and JS strings as UTF-8 ([`utf8_lossy`], [`utf8_escaped`]).

use boa_engine::JsString;
use boa_engine::string::JsStrVariant;

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// Base64 of `bytes`: with `=` padding or without, standard or URL-safe alphabet (Node's
/// `base64url` has no padding).
pub fn base64(bytes: &[u8], pad: bool, url_safe: bool) -> String {
    let alphabet = if url_safe { URL_SAFE } else { STANDARD };
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        let chars = chunk.len() + 1;
        for i in 0..4 {
            if i < chars {
                out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64 with padding; `None` on anything else.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (i, chunk) in bytes.chunks(4).enumerate() {
        let last = i == bytes.len() / 4 - 1;
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = (n << 6) | sextet(c)?;
        }
        n <<= 6 * pad as u32;
        let b = n.to_be_bytes();
        out.extend_from_slice(&b[1..4 - pad]);
    }
    Some(out)
}

/// The value of a base64 character in either alphabet.
fn sextet_any(c: u8) -> Option<u8> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' | b'-' => 62,
        b'/' | b'_' => 63,
        _ => return None,
    })
}

/// Pack 6-bit values into bytes (a trailing partial byte is dropped).
fn pack(sextets: impl Iterator<Item = u8>, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity);
    let mut acc = 0u32;
    let mut bits = 0;
    for v in sextets {
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Decode base64 in either alphabet, with or without padding; `None` on anything else.
pub fn base64_decode_lenient(text: &str) -> Option<Vec<u8>> {
    let trimmed = text.trim_end_matches('=');
    if text.len() - trimmed.len() > 2 || trimmed.len() % 4 == 1 {
        return None;
    }
    if trimmed.bytes().any(|c| sextet_any(c).is_none()) {
        return None;
    }
    Some(pack(
        trimmed.bytes().filter_map(sextet_any),
        trimmed.len() * 3 / 4,
    ))
}

/// Hex as Node's `Buffer.from(text, 'hex')` reads it: pairs of digits up to the first pair
/// that is not one.
pub fn hex_decode_prefix(text: &str) -> Vec<u8> {
    let digit = |c: u8| (c as char).to_digit(16);
    text.as_bytes()
        .chunks_exact(2)
        .map_while(|pair| Some((digit(pair[0])? << 4 | digit(pair[1])?) as u8))
        .collect()
}

/// Base64 as Node's `Buffer.from(text, 'base64')` reads it: either alphabet, characters outside
/// it skipped, decoding stops at the first `=`.
pub fn base64_decode_forgiving(text: &str) -> Vec<u8> {
    pack(
        text.bytes()
            .take_while(|&c| c != b'=')
            .filter_map(sextet_any),
        text.len() * 3 / 4,
    )
}

/// A JS string as UTF-8, a lone surrogate becoming U+FFFD: what boa's `to_std_string_lossy`
/// gives, without formatting it one character at a time through `Display` (callgrind: ~9k of
/// the 280k instructions of a JWT check went there, for a key, a token and a payload).
pub fn utf8_lossy(text: &JsString) -> String {
    match text.as_str().variant() {
        JsStrVariant::Latin1(bytes) => latin1(bytes),
        JsStrVariant::Utf16(units) => String::from_utf16_lossy(units),
    }
}

/// A JS string as UTF-8, a lone surrogate written as its `\uXXXX` escape: what boa's
/// `to_std_string_escaped` gives (names, log lines, keys), with [`utf8_lossy`]'s speed unless
/// a lone surrogate is there.
pub fn utf8_escaped(text: &JsString) -> String {
    match text.as_str().variant() {
        JsStrVariant::Latin1(bytes) => latin1(bytes),
        JsStrVariant::Utf16(units) => {
            String::from_utf16(units).unwrap_or_else(|_| text.to_std_string_escaped())
        }
    }
}

/// Latin-1 units as UTF-8.
fn latin1(bytes: &[u8]) -> String {
    // The usual case: ASCII is UTF-8 as it stands, one copy (the check cannot fail then).
    if bytes.is_ascii()
        && let Ok(text) = String::from_utf8(bytes.to_vec())
    {
        return text;
    }
    // Each Latin-1 unit is the code point of the same number.
    bytes.iter().map(|&b| char::from(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn js_strings_become_the_utf8_boa_gives_lossy_or_escaped() {
        let lone = JsString::from(&[0x61, 0xD800, 0x62][..]);
        let pair = JsString::from(&[0xD83D, 0xDE00][..]);
        for text in [
            JsString::from(""),
            JsString::from("eyJhbGciOiJIUzI1NiJ9.e30"),
            JsString::from("caf\u{e9} \u{ff}"),
            JsString::from("\u{2713} \u{1F600}"),
            lone,
            pair,
        ] {
            assert_eq!(utf8_lossy(&text), text.to_std_string_lossy());
            assert_eq!(utf8_escaped(&text), text.to_std_string_escaped());
        }
        // Both of boa's storages were met: Latin-1 beyond ASCII, and UTF-16.
        assert!(matches!(
            JsString::from("caf\u{e9}").as_str().variant(),
            JsStrVariant::Latin1(_)
        ));
        assert!(matches!(
            JsString::from("\u{2713}").as_str().variant(),
            JsStrVariant::Utf16(_)
        ));
    }

    #[test]
    fn encodings_round_trip() {
        assert_eq!(hex(&[0, 15, 255]), "000fff");
        assert_eq!(base64(b"hello", true, false), "aGVsbG8=");
        assert_eq!(base64(b"hi", true, false), "aGk=");
        assert_eq!(base64(&[0xfb, 0xff], false, true), "-_8");
        assert_eq!(base64(&[0xfb, 0xff], true, false), "+/8=");
        for data in [&b""[..], b"a", b"ab", b"abc", b"abcd", &[0xff, 0xfe, 0x00]] {
            for (pad, url) in [(true, false), (false, true), (false, false)] {
                let text = base64(data, pad, url);
                assert_eq!(base64_decode_lenient(&text).unwrap(), data, "{text}");
            }
        }
        assert!(base64_decode_lenient("a").is_none());
        assert!(base64_decode_lenient("a$b=").is_none());
    }

    #[test]
    fn node_style_decoders_forgive_what_node_forgives() {
        assert_eq!(hex_decode_prefix("00ffAb"), [0, 255, 0xab]);
        assert_eq!(hex_decode_prefix("0fzz10"), [15]);
        assert_eq!(hex_decode_prefix("abc"), [0xab]);
        assert_eq!(base64_decode_forgiving("aGVs bG8=trailing"), b"hello");
        assert_eq!(base64_decode_forgiving("-_8"), [0xfb, 0xff]);
    }

    #[test]
    fn base64_decoding_is_strict() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
        assert_eq!(base64_decode("").unwrap(), b"");
        assert!(base64_decode("aGk").is_none());
        assert!(base64_decode("a=Gk").is_none());
        assert!(base64_decode("a$k=").is_none());
    }
}
