//! `cf.cwt.validateToken(token, {key})` for CloudFront Functions (2.0): a CBOR Web Token
//! (RFC 8392) checked as a COSE_Mac0 structure (RFC 8152 §6) with HMAC-SHA256, as the contract
//! says CloudFront checks it (spec §1.5): MAC0 only, HS256 only, tokens of at most 1 KB, no
//! claim checked. What it returns is the token's claims, by their integer labels
//! (`payload[4]` is `exp`).
//!
//! What the contract leaves open, and what verge does there:
//! - The token is a string: base64url (CWTs travel in URLs and headers that way) or base64,
//!   padded or not. Its 1 KB limit is counted on that string, the stricter reading, so a token
//!   verge accepts is never one CloudFront would refuse for its size.
//! - The key is a string (its UTF-8 bytes, as `crypto.createHmac` takes one) or a `Buffer`.
//! - The algorithm must be in the protected header, as COSE requires. Only COSE algorithm 5
//!   (HMAC 256/256, "HS256") is accepted; AWS's own example token is RFC 8392's, whose algorithm
//!   is 4 (HMAC 256/64), and it is refused with a message saying so.
//! - CBOR with indefinite lengths, duplicate map keys, trailing bytes or nesting deeper than
//!   [`MAX_DEPTH`] is refused.
//!
//! In the claims, text is a string, a byte string a `Buffer`, an integer a number (a `BigInt`
//! past 2^53), a tag its tagged value, and maps are objects keyed by integer labels or text.

use boa_engine::object::builtins::{JsArray, JsUint8Array};
use boa_engine::property::PropertyKey;
use boa_engine::{
    Context, JsBigInt, JsNativeError, JsObject, JsResult, JsString, JsValue, js_string,
};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The largest token accepted, in characters of the encoded string (spec §1.8: 1 KB).
pub const MAX_TOKEN: usize = 1024;

/// How deeply CBOR items may nest: a claims set is a map of flat values, and a 1 KB token could
/// otherwise nest a thousand levels for the decoder to recurse through.
pub const MAX_DEPTH: usize = 16;

/// The CBOR tag of a CWT (optional around the COSE structure).
const CWT_TAG: u64 = 61;
/// The CBOR tag of a COSE_Mac0 structure (required).
const MAC0_TAG: u64 = 17;
/// The COSE header label of the algorithm.
const ALG_LABEL: u64 = 1;
/// COSE's HMAC 256/256 ("HS256"), the one algorithm CloudFront validates.
const HS256: u64 = 5;

/// A decoded CBOR data item (RFC 8949 §3).
#[derive(Debug, Clone, PartialEq)]
pub enum Cbor {
    /// Major type 0.
    Unsigned(u64),
    /// Major type 1: the value is `-1 - n`.
    Negative(u64),
    /// Major type 2.
    Bytes(Vec<u8>),
    /// Major type 3.
    Text(String),
    /// Major type 4.
    Array(Vec<Cbor>),
    /// Major type 5, pairs in their encoded order.
    Map(Vec<(Cbor, Cbor)>),
    /// Major type 6.
    Tag(u64, Box<Cbor>),
    /// `false` and `true`.
    Bool(bool),
    /// `null`.
    Null,
    /// `undefined`.
    Undefined,
    /// Half, single and double precision floats.
    Float(f64),
}

/// Decode exactly one CBOR item from `bytes`.
pub fn decode(bytes: &[u8]) -> Result<Cbor, String> {
    let mut reader = Reader { bytes, at: 0 };
    let item = reader.item(0)?;
    if reader.at != bytes.len() {
        return Err(format!(
            "{} bytes follow the CBOR item",
            bytes.len() - reader.at
        ));
    }
    Ok(item)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, String> {
        let b = *self.bytes.get(self.at).ok_or("the CBOR ends early")?;
        self.at += 1;
        Ok(b)
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], String> {
        let left = self.bytes.len() - self.at;
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| n <= left)
            .ok_or("the CBOR ends early")?;
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }

    /// The argument of an initial byte whose low five bits are `info` (RFC 8949 §3).
    fn argument(&mut self, info: u8) -> Result<u64, String> {
        let width = match info {
            0..=23 => return Ok(u64::from(info)),
            24 => 1,
            25 => 2,
            26 => 4,
            27 => 8,
            31 => return Err("indefinite-length CBOR items are not supported".into()),
            _ => return Err(format!("reserved CBOR additional information {info}")),
        };
        Ok(self
            .take(width)?
            .iter()
            .fold(0u64, |n, &b| (n << 8) | u64::from(b)))
    }

    /// A count of items that must each take at least a byte of what is left: a length no token
    /// could hold is refused before anything is allocated for it.
    fn count(&mut self, info: u8) -> Result<usize, String> {
        let n = self.argument(info)?;
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.bytes.len() - self.at)
            .ok_or_else(|| "the CBOR ends early".to_owned())
    }

    fn item(&mut self, depth: usize) -> Result<Cbor, String> {
        if depth > MAX_DEPTH {
            return Err(format!("CBOR nested more than {MAX_DEPTH} deep"));
        }
        let initial = self.byte()?;
        let info = initial & 0x1f;
        Ok(match initial >> 5 {
            0 => Cbor::Unsigned(self.argument(info)?),
            1 => Cbor::Negative(self.argument(info)?),
            2 => {
                let n = self.argument(info)?;
                Cbor::Bytes(self.take(n)?.to_vec())
            }
            3 => {
                let n = self.argument(info)?;
                let text = std::str::from_utf8(self.take(n)?)
                    .map_err(|_| "a CBOR text string is not UTF-8")?;
                Cbor::Text(text.to_owned())
            }
            4 => {
                let n = self.count(info)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.item(depth + 1)?);
                }
                Cbor::Array(items)
            }
            5 => {
                let n = self.count(info)?;
                let mut pairs: Vec<(Cbor, Cbor)> = Vec::with_capacity(n);
                for _ in 0..n {
                    let key = self.item(depth + 1)?;
                    if pairs.iter().any(|(k, _)| *k == key) {
                        return Err("a CBOR map has a key twice".into());
                    }
                    let value = self.item(depth + 1)?;
                    pairs.push((key, value));
                }
                Cbor::Map(pairs)
            }
            6 => {
                let tag = self.argument(info)?;
                Cbor::Tag(tag, Box::new(self.item(depth + 1)?))
            }
            _ => self.simple(info)?,
        })
    }

    /// Major type 7: the simple values and floats.
    fn simple(&mut self, info: u8) -> Result<Cbor, String> {
        Ok(match info {
            20 => Cbor::Bool(false),
            21 => Cbor::Bool(true),
            22 => Cbor::Null,
            23 => Cbor::Undefined,
            25 => {
                let b = self.take(2)?;
                Cbor::Float(half(u16::from_be_bytes([b[0], b[1]])))
            }
            26 => {
                let b = self.take(4)?;
                Cbor::Float(f64::from(f32::from_be_bytes([b[0], b[1], b[2], b[3]])))
            }
            27 => {
                let b = self.take(8)?;
                let mut raw = [0u8; 8];
                raw.copy_from_slice(b);
                Cbor::Float(f64::from_be_bytes(raw))
            }
            31 => return Err("a CBOR break outside an indefinite-length item".into()),
            _ => {
                return Err(format!(
                    "unsupported CBOR simple value (additional information {info})"
                ));
            }
        })
    }
}

/// An IEEE 754 half-precision float (RFC 8949 Appendix D).
fn half(bits: u16) -> f64 {
    let exponent = i32::from((bits >> 10) & 0x1f);
    let mantissa = f64::from(bits & 0x3ff);
    let magnitude = match exponent {
        0 => mantissa * 2f64.powi(-24),
        31 if mantissa == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        _ => (mantissa + 1024.0) * 2f64.powi(exponent - 25),
    };
    if bits & 0x8000 != 0 {
        -magnitude
    } else {
        magnitude
    }
}

/// The head of a CBOR byte string of `len` bytes.
fn byte_string_head(len: usize, out: &mut Vec<u8>) {
    let len = len as u64;
    match len {
        0..=23 => out.push(0x40 | len as u8),
        24..=0xff => out.extend_from_slice(&[0x58, len as u8]),
        0x100..=0xffff => {
            out.push(0x59);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(0x5a);
            out.extend_from_slice(&(len as u32).to_be_bytes());
        }
    }
}

/// The MAC of a COSE_Mac0 structure keyed with `key`, ready to finalize or verify: HMAC-SHA256
/// over `MAC_structure = ["MAC0", protected, external_aad = h'', payload]` (RFC 8152 §6.3),
/// with the protected header as the bytes the token carries.
fn mac0(protected: &[u8], payload: &[u8], key: &[u8]) -> Result<Hmac<Sha256>, String> {
    let mut structure = Vec::with_capacity(protected.len() + payload.len() + 16);
    structure.extend_from_slice(&[0x84, 0x64, b'M', b'A', b'C', b'0']);
    byte_string_head(protected.len(), &mut structure);
    structure.extend_from_slice(protected);
    structure.push(0x40);
    byte_string_head(payload.len(), &mut structure);
    structure.extend_from_slice(payload);
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .map_err(|e| format!("the key cannot key an HMAC: {e}"))?;
    mac.update(&structure);
    Ok(mac)
}

/// Check `token` with `key` as CloudFront Functions do; its claims, or what is wrong.
pub fn validate(token: &str, key: &[u8]) -> Result<Vec<(Cbor, Cbor)>, String> {
    if token.len() > MAX_TOKEN {
        return Err(format!(
            "the token is {} characters, more than the {MAX_TOKEN} CloudFront allows",
            token.len()
        ));
    }
    if key.is_empty() {
        return Err("the key is empty".into());
    }
    let bytes = crate::encoding::base64_decode_lenient(token)
        .ok_or("the token is not base64url (or base64) text")?;
    let structure = match decode(&bytes)? {
        Cbor::Tag(CWT_TAG, inner) => *inner,
        other => other,
    };
    let Cbor::Tag(MAC0_TAG, mac0_item) = structure else {
        return Err("the token is not a COSE_Mac0 structure (CBOR tag 17)".into());
    };
    let Cbor::Array(parts) = *mac0_item else {
        return Err("the COSE_Mac0 structure is not an array".into());
    };
    let [
        Cbor::Bytes(protected),
        Cbor::Map(_unprotected),
        Cbor::Bytes(payload),
        Cbor::Bytes(tag),
    ] = parts.as_slice()
    else {
        return Err(
            "the COSE_Mac0 structure is not [protected bytes, unprotected map, payload bytes, \
             tag bytes]"
                .into(),
        );
    };
    let headers = if protected.is_empty() {
        Vec::new()
    } else {
        match decode(protected)? {
            Cbor::Map(pairs) => pairs,
            _ => return Err("the protected header is not a map".into()),
        }
    };
    let algorithm = headers
        .iter()
        .find(|(label, _)| *label == Cbor::Unsigned(ALG_LABEL))
        .map(|(_, value)| value);
    match algorithm {
        Some(Cbor::Unsigned(HS256)) => {}
        Some(other) => {
            // The one other algorithm a user is likely to have: RFC 8392's example token's.
            let named = match other {
                Cbor::Unsigned(4) => "4 (HMAC 256/64)".to_owned(),
                other => format!("{other:?}"),
            };
            return Err(format!(
                "algorithm {named} is not supported: CloudFront Functions validate HS256 \
                 (COSE algorithm 5) only"
            ));
        }
        None => return Err("the protected header names no algorithm (label 1)".into()),
    }
    mac0(protected, payload, key)?
        .verify_slice(tag)
        .map_err(|_| "the token's MAC does not match: a wrong key or an altered token")?;
    match decode(payload)? {
        Cbor::Map(claims) => Ok(claims),
        _ => Err("the payload is not a map of claims".into()),
    }
}

/// `__verge_cwt_validate(token, key)`: [`validate`], with the claims as a JS object; what is
/// wrong is thrown as an `Error` (a missing key as a `TypeError`).
pub(crate) fn validate_native(
    _this: &JsValue,
    args: &[JsValue],
    ctx: &mut Context,
) -> JsResult<JsValue> {
    let token = args.first().cloned().unwrap_or_default().to_string(ctx)?;
    let key = match args.get(1) {
        Some(key) if !key.is_undefined() && !key.is_null() => {
            crate::host::input_bytes(key, false, ctx)?
        }
        _ => {
            return Err(JsNativeError::typ()
                .with_message("cwt.validateToken: no key given (the second argument is {key})")
                .into());
        }
    };
    let claims = validate(&crate::encoding::utf8_lossy(&token), &key).map_err(|message| {
        JsNativeError::error().with_message(format!("cwt.validateToken: {message}"))
    })?;
    let adopt = ctx
        .global_object()
        .get(js_string!("__verge_adopt"), ctx)?
        .as_callable()
        .ok_or_else(|| JsNativeError::typ().with_message("host modules missing"))?;
    to_js(&Cbor::Map(claims), &adopt, ctx)
}

/// A CBOR item as JavaScript (see the module docs); `adopt` makes a `Buffer` of bytes.
fn to_js(item: &Cbor, adopt: &JsObject, ctx: &mut Context) -> JsResult<JsValue> {
    /// Integers beyond this lose precision as numbers and become `BigInt`s.
    const SAFE: u64 = (1 << 53) - 1;
    Ok(match item {
        // As boa holds numbers: a 32-bit integer where one fits, else a double.
        Cbor::Unsigned(n) if *n <= i32::MAX as u64 => JsValue::from(*n as i32),
        Cbor::Unsigned(n) if *n <= SAFE => JsValue::from(*n as f64),
        Cbor::Unsigned(n) => JsBigInt::from(*n).into(),
        Cbor::Negative(n) if *n <= i32::MAX as u64 => JsValue::from(-1 - *n as i32),
        Cbor::Negative(n) if *n < SAFE => JsValue::from(-1.0 - *n as f64),
        Cbor::Negative(n) => JsBigInt::from_string(&(-1 - i128::from(*n)).to_string())
            .ok_or_else(|| JsNativeError::error().with_message("cwt.validateToken: a bad integer"))?
            .into(),
        Cbor::Bytes(bytes) => {
            let array = JsUint8Array::from_iter(bytes.iter().copied(), ctx)?;
            adopt.call(&JsValue::undefined(), &[array.into()], ctx)?
        }
        Cbor::Text(text) => JsString::from(text.as_str()).into(),
        Cbor::Array(items) => {
            let mut values = Vec::with_capacity(items.len());
            for item in items {
                values.push(to_js(item, adopt, ctx)?);
            }
            JsArray::from_iter(values, ctx).into()
        }
        Cbor::Map(pairs) => {
            let object = JsObject::with_object_proto(ctx.intrinsics());
            for (key, value) in pairs {
                let key = match key {
                    Cbor::Unsigned(n) => match u32::try_from(*n) {
                        Ok(index) if index < u32::MAX => PropertyKey::from(index),
                        _ => PropertyKey::from(JsString::from(n.to_string().as_str())),
                    },
                    Cbor::Negative(n) => PropertyKey::from(JsString::from(
                        (-1 - i128::from(*n)).to_string().as_str(),
                    )),
                    Cbor::Text(text) => PropertyKey::from(JsString::from(text.as_str())),
                    _ => {
                        return Err(JsNativeError::error()
                            .with_message(
                                "cwt.validateToken: a claims map key is neither an integer nor \
                                 a text string",
                            )
                            .into());
                    }
                };
                let value = to_js(value, adopt, ctx)?;
                object.create_data_property_or_throw(key, value, ctx)?;
            }
            object.into()
        }
        Cbor::Tag(_, inner) => to_js(inner, adopt, ctx)?,
        Cbor::Bool(b) => JsValue::from(*b),
        Cbor::Null => JsValue::null(),
        Cbor::Undefined => JsValue::undefined(),
        Cbor::Float(f) => JsValue::from(*f),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The full HMAC-SHA256 tag of a COSE_Mac0 structure, through verge's own MAC structure
    /// (HMAC 256/64 carries its first 8 bytes).
    fn mac0_tag(protected: &[u8], payload: &[u8], key: &[u8]) -> [u8; 32] {
        mac0(protected, payload, key)
            .unwrap()
            .finalize()
            .into_bytes()
            .into()
    }

    fn unhex(text: &str) -> Vec<u8> {
        let text: String = text.split_whitespace().collect();
        crate::encoding::hex_decode_prefix(&text)
    }

    /// RFC 8392 Appendix A.4, the MACed CWT (also the example on AWS's CWT page), and the
    /// 256-bit key of Appendix A.2.2.
    const RFC_TOKEN: &str = "d83dd18443a10104a1044c53796d6d65747269633235365850a70175636f6170\
        3a2f2f61732e6578616d706c652e636f6d02656572696b77037818636f61703a2f2f6c696768742e657861\
        6d706c652e636f6d041a5612aeb0051a5610d9f0061a5610d9f007420b7148093101ef6d789200";
    const RFC_KEY: &str = "403697de87af64611c1d32a05dab0fe1fcb715a86ab435f1ec99192d79569388";

    /// An HS256 token, assembled by hand here and MACed with the `hmac` crate directly (not
    /// through [`mac0`]): `61(17([h'a10105', {}, payload, tag]))` with the payload
    /// `{2: "bench-user", 4: 4102444800, 7: h'0b71'}`.
    pub(crate) fn hs256_token(key: &[u8], cwt_tag: bool) -> String {
        let mut payload = vec![0xa3, 0x02, 0x6a];
        payload.extend_from_slice(b"bench-user");
        payload.extend_from_slice(&[0x04, 0x1a, 0xf4, 0x86, 0x57, 0x00, 0x07, 0x42, 0x0b, 0x71]);
        hs256_token_of(key, &payload, cwt_tag)
    }

    /// [`hs256_token`] with another payload (at most 255 bytes).
    pub(crate) fn hs256_token_of(key: &[u8], payload: &[u8], cwt_tag: bool) -> String {
        let protected = [0xa1, 0x01, 0x05];
        let payload_head = |out: &mut Vec<u8>| match payload.len() {
            n @ 0..24 => out.push(0x40 | n as u8),
            n => out.extend_from_slice(&[0x58, n as u8]),
        };
        let mut structure = vec![0x84, 0x64, b'M', b'A', b'C', b'0', 0x43];
        structure.extend_from_slice(&protected);
        structure.push(0x40);
        payload_head(&mut structure);
        structure.extend_from_slice(payload);
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
        mac.update(&structure);
        let tag = mac.finalize().into_bytes();
        let mut token = if cwt_tag { vec![0xd8, 0x3d] } else { vec![] };
        token.extend_from_slice(&[0xd1, 0x84, 0x43]);
        token.extend_from_slice(&protected);
        token.push(0xa0);
        payload_head(&mut token);
        token.extend_from_slice(payload);
        token.extend_from_slice(&[0x58, 0x20]);
        token.extend_from_slice(&tag);
        crate::encoding::base64(&token, false, true)
    }

    #[test]
    fn the_rfc_8392_token_decodes_and_its_mac_is_recomputed() {
        let bytes = unhex(RFC_TOKEN);
        let Cbor::Tag(61, inner) = decode(&bytes).unwrap() else {
            panic!("no CWT tag")
        };
        let Cbor::Tag(17, inner) = *inner else {
            panic!("no COSE_Mac0 tag")
        };
        let Cbor::Array(parts) = *inner else {
            panic!("not an array")
        };
        let [
            Cbor::Bytes(protected),
            _,
            Cbor::Bytes(payload),
            Cbor::Bytes(tag),
        ] = &parts[..]
        else {
            panic!("not a COSE_Mac0 structure: {parts:?}")
        };
        // HMAC 256/64 is HMAC-SHA256's first 8 bytes: the MAC structure is built right.
        assert_eq!(
            &mac0_tag(protected, payload, &unhex(RFC_KEY))[..8],
            &tag[..]
        );
        assert_eq!(tag, &unhex("093101ef6d789200"));
        let Cbor::Map(claims) = decode(payload).unwrap() else {
            panic!("the payload is no map")
        };
        assert_eq!(
            claims,
            vec![
                (
                    Cbor::Unsigned(1),
                    Cbor::Text("coap://as.example.com".into())
                ),
                (Cbor::Unsigned(2), Cbor::Text("erikw".into())),
                (
                    Cbor::Unsigned(3),
                    Cbor::Text("coap://light.example.com".into())
                ),
                (Cbor::Unsigned(4), Cbor::Unsigned(1444064944)),
                (Cbor::Unsigned(5), Cbor::Unsigned(1443944944)),
                (Cbor::Unsigned(6), Cbor::Unsigned(1443944944)),
                (Cbor::Unsigned(7), Cbor::Bytes(vec![0x0b, 0x71])),
            ]
        );
        // Its algorithm is HMAC 256/64, which CloudFront does not validate: said so.
        let token = crate::encoding::base64(&bytes, false, true);
        let error = validate(&token, &unhex(RFC_KEY)).unwrap_err();
        assert!(error.contains("algorithm 4 (HMAC 256/64)"), "{error}");
    }

    #[test]
    fn an_hs256_token_gives_its_claims_with_the_right_key_only() {
        let key = b"a shared secret";
        for cwt_tag in [true, false] {
            let token = hs256_token(key, cwt_tag);
            let claims = validate(&token, key).unwrap();
            assert_eq!(
                claims,
                vec![
                    (Cbor::Unsigned(2), Cbor::Text("bench-user".into())),
                    (Cbor::Unsigned(4), Cbor::Unsigned(4102444800)),
                    (Cbor::Unsigned(7), Cbor::Bytes(vec![0x0b, 0x71])),
                ]
            );
            // Padded base64 and the standard alphabet are read too.
            let standard = crate::encoding::base64(
                &crate::encoding::base64_decode_lenient(&token).unwrap(),
                true,
                false,
            );
            assert_eq!(validate(&standard, key).unwrap(), claims);
        }
        let token = hs256_token(key, true);
        let wrong = validate(&token, b"another secret").unwrap_err();
        assert!(wrong.contains("MAC does not match"), "{wrong}");
        // One payload byte changed (the `exp` claim's last byte).
        let mut bytes = crate::encoding::base64_decode_lenient(&token).unwrap();
        let exp = bytes
            .windows(5)
            .position(|w| w == [0x1a, 0xf4, 0x86, 0x57, 0x00])
            .unwrap();
        bytes[exp + 4] = 0x01;
        let altered = crate::encoding::base64(&bytes, false, true);
        assert!(
            validate(&altered, key)
                .unwrap_err()
                .contains("MAC does not match")
        );
        assert_eq!(validate(&token, b"").unwrap_err(), "the key is empty");
    }

    #[test]
    fn malformed_tokens_say_what_is_wrong() {
        let key = b"k";
        let b64 = |bytes: &[u8]| crate::encoding::base64(bytes, false, true);
        let err = |token: &str| validate(token, key).unwrap_err();
        assert!(err("not base64!").contains("not base64url"));
        assert!(err(&"A".repeat(MAX_TOKEN + 1)).contains("1025 characters"));
        // An untagged array: no COSE_Mac0 tag.
        assert!(err(&b64(&[0x84, 0x40, 0xa0, 0x40, 0x40])).contains("tag 17"));
        // Tag 17 around three items.
        assert!(err(&b64(&[0xd1, 0x83, 0x40, 0xa0, 0x40])).contains("not [protected bytes"));
        // No algorithm in the protected header (an empty one).
        assert!(err(&b64(&[0xd1, 0x84, 0x40, 0xa0, 0x40, 0x40])).contains("names no algorithm"));
        // The algorithm only in the unprotected header.
        assert!(
            err(&b64(&[0xd1, 0x84, 0x40, 0xa1, 0x01, 0x05, 0x40, 0x40])).contains("no algorithm")
        );
        // HMAC 384 (COSE 6).
        assert!(
            err(&b64(&[
                0xd1, 0x84, 0x43, 0xa1, 0x01, 0x06, 0xa0, 0x40, 0x40
            ]))
            .contains("HS256 (COSE algorithm 5) only")
        );
        // Trailing bytes, and an indefinite-length array.
        assert!(
            decode(&[0x01, 0x02])
                .unwrap_err()
                .contains("1 bytes follow")
        );
        assert!(
            decode(&[0x9f, 0x01, 0xff])
                .unwrap_err()
                .contains("indefinite")
        );
        // A length past the end, a duplicate key, text that is not UTF-8.
        assert!(
            decode(&[0x5a, 0xff, 0xff, 0xff, 0xff])
                .unwrap_err()
                .contains("ends early")
        );
        assert!(decode(&[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(
            decode(&[0xa2, 0x01, 0x01, 0x01, 0x02])
                .unwrap_err()
                .contains("twice")
        );
        assert!(decode(&[0x61, 0xff]).unwrap_err().contains("UTF-8"));
        // Nesting past the bound.
        let mut deep = vec![0x81; MAX_DEPTH + 1];
        deep.push(0x00);
        assert!(decode(&deep).unwrap_err().contains("nested"));
        let mut fits = vec![0x81; MAX_DEPTH];
        fits.push(0x00);
        assert!(decode(&fits).is_ok());
    }

    #[test]
    fn cbor_numbers_and_simple_values_decode() {
        assert_eq!(decode(&[0x20]).unwrap(), Cbor::Negative(0));
        assert_eq!(decode(&[0x38, 0x63]).unwrap(), Cbor::Negative(99));
        assert_eq!(
            decode(&[0x1b, 0, 0, 0, 1, 0, 0, 0, 0]).unwrap(),
            Cbor::Unsigned(1 << 32)
        );
        // RFC 8949 Appendix A: half 1.0, 1.5, -4.0, 5.960464477539063e-8, Infinity; single
        // 100000.0; double 1.1.
        assert_eq!(decode(&[0xf9, 0x3c, 0x00]).unwrap(), Cbor::Float(1.0));
        assert_eq!(decode(&[0xf9, 0x3e, 0x00]).unwrap(), Cbor::Float(1.5));
        assert_eq!(decode(&[0xf9, 0xc4, 0x00]).unwrap(), Cbor::Float(-4.0));
        assert_eq!(
            decode(&[0xf9, 0x00, 0x01]).unwrap(),
            Cbor::Float(5.960464477539063e-8)
        );
        assert_eq!(
            decode(&[0xf9, 0x7c, 0x00]).unwrap(),
            Cbor::Float(f64::INFINITY)
        );
        assert_eq!(
            decode(&[0xfa, 0x47, 0xc3, 0x50, 0x00]).unwrap(),
            Cbor::Float(100000.0)
        );
        assert_eq!(
            decode(&unhex("fb3ff199999999999a")).unwrap(),
            Cbor::Float(1.1)
        );
        assert_eq!(decode(&[0xf4]).unwrap(), Cbor::Bool(false));
        assert_eq!(decode(&[0xf5]).unwrap(), Cbor::Bool(true));
        assert_eq!(decode(&[0xf6]).unwrap(), Cbor::Null);
        assert_eq!(decode(&[0xf7]).unwrap(), Cbor::Undefined);
        assert!(decode(&[0xf0]).is_err());
        assert!(decode(&[0xff]).is_err());
    }
}
