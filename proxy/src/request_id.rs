//! Request ids: unique per process run, cheap (no syscall, no lock), 32 hex characters.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static COUNTER: AtomicU64 = AtomicU64::new(0);
static SEED: OnceLock<u64> = OnceLock::new();

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A new request id. Ids never repeat within a process; the seed (time and pid) keeps them apart
/// across restarts and instances.
pub fn next() -> String {
    let seed = *SEED.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        splitmix64(nanos ^ (u64::from(std::process::id()) << 32))
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // The high half is a bijective mix of the counter, so ids are unique; the low half hides
    // the sequence.
    let high = splitmix64(seed ^ n);
    let low = splitmix64(high ^ seed.rotate_left(17));
    let mut id = String::with_capacity(32);
    push_hex(&mut id, high);
    push_hex(&mut id, low);
    id
}

/// `word` as 16 lower-case hex digits, without `core::fmt` (once per request: its machinery
/// cost several times this loop).
fn push_hex(out: &mut String, word: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..16).rev() {
        out.push(char::from(DIGITS[((word >> (shift * 4)) & 0xf) as usize]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_the_two_mixed_words_in_hex() {
        let id = next();
        let high = u64::from_str_radix(&id[..16], 16).unwrap();
        let low = u64::from_str_radix(&id[16..], 16).unwrap();
        let seed = *SEED.get().unwrap();
        assert_eq!(low, splitmix64(high ^ seed.rotate_left(17)), "{id}");
    }

    #[test]
    fn words_are_written_as_sixteen_hex_digits() {
        for word in [0, 1, 0xabc, u64::MAX, 0x0123_4567_89ab_cdef] {
            let mut out = String::new();
            push_hex(&mut out, word);
            assert_eq!(out, format!("{word:016x}"));
        }
    }

    #[test]
    fn ids_are_unique_and_32_hex_characters() {
        let ids: HashSet<String> = (0..10_000).map(|_| next()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(
            ids.iter()
                .all(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        );
    }
}
