//! Numbers and IPv4 addresses written as text by hand. The access log and `x-forwarded-for`
//! write these on every request, and `core::fmt` costs several times more instructions per
//! number than the loops here (callgrind on the running proxy).

use std::net::Ipv4Addr;

/// Append `value` in decimal.
pub fn push_uint(buf: &mut Vec<u8>, value: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = value;
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

/// Append the last `width` decimal digits of `value`, zero-padded (`width` at most 20).
pub fn push_padded(buf: &mut Vec<u8>, value: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut v = value;
    for d in digits[20 - width..].iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
    buf.extend_from_slice(&digits[20 - width..]);
}

/// Append an IPv4 address in dotted decimal, as std's `Display` writes it.
pub fn push_ipv4(buf: &mut Vec<u8>, ip: Ipv4Addr) {
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            buf.push(b'.');
        }
        push_uint(buf, u64::from(octet));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(write: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut buf = Vec::new();
        write(&mut buf);
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn numbers_are_written_as_std_writes_them() {
        for v in [0, 7, 10, 99, 1_000, 65_535, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(text(|b| push_uint(b, v)), v.to_string());
        }
        assert_eq!(text(|b| push_padded(b, 42, 6)), "000042");
        assert_eq!(text(|b| push_padded(b, 1_234_567, 3)), "567");
    }

    #[test]
    fn ipv4_addresses_are_written_as_std_writes_them() {
        for ip in ["0.0.0.0", "127.0.0.1", "10.200.3.40", "255.255.255.255"] {
            let ip: Ipv4Addr = ip.parse().unwrap();
            assert_eq!(text(|b| push_ipv4(b, ip)), ip.to_string());
        }
    }
}
