//! Signature verification for the edge tier's `crypto.createVerify` / `crypto.verify`:
//! RSA PKCS#1 v1.5 (RS256/384/512) and ECDSA P-256/P-384 (ES256/384, DER or IEEE P1363
//! signatures), with public keys in PEM (`PUBLIC KEY` = SPKI, `RSA PUBLIC KEY` = PKCS#1).
//! The arithmetic is ring's; this module only reads the key's wrapping.

use boa_engine::{Context, JsNativeError, JsResult, JsValue};
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};

/// DER of the `rsaEncryption` object identifier.
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// DER of `id-ecPublicKey`.
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// DER of the P-256 curve (`prime256v1`).
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// DER of the P-384 curve (`secp384r1`).
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];

/// A public key, unwrapped.
#[derive(Debug, PartialEq, Eq)]
pub enum PublicKey {
    /// An RSA key as PKCS#1 `RSAPublicKey` DER.
    Rsa(Vec<u8>),
    /// An EC point (uncompressed) on P-256.
    P256(Vec<u8>),
    /// An EC point (uncompressed) on P-384.
    P384(Vec<u8>),
}

/// One DER element: its tag, its contents and what follows it.
fn element(der: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
    let bad = || "the key is not valid DER".to_owned();
    let (&tag, rest) = der.split_first().ok_or_else(bad)?;
    let (&first, rest) = rest.split_first().ok_or_else(bad)?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err(bad());
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(bad());
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

/// The DER inside the first PEM block of `pem`, with its label.
fn pem_body(pem: &str) -> Result<(String, Vec<u8>), String> {
    let begin = pem
        .find("-----BEGIN ")
        .ok_or("the key is not PEM (no -----BEGIN line)")?;
    let after = &pem[begin + 11..];
    let label_end = after.find("-----").ok_or("the PEM header is not closed")?;
    let label = after[..label_end].to_owned();
    let body = &after[label_end + 5..];
    let end = body
        .find("-----END ")
        .ok_or("the PEM block has no -----END line")?;
    let text: String = body[..end]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let der = crate::encoding::base64_decode(&text).ok_or("the PEM body is not base64")?;
    Ok((label, der))
}

/// Read a PEM public key.
pub fn parse_public_key(pem: &str) -> Result<PublicKey, String> {
    let (label, der) = pem_body(pem)?;
    match label.as_str() {
        "RSA PUBLIC KEY" => Ok(PublicKey::Rsa(der)),
        "PUBLIC KEY" => {
            let (_, spki, _) = element(&der)?;
            let (_, algorithm, rest) = element(spki)?;
            let (_, bits, _) = element(rest)?;
            let key = bits
                .split_first()
                .filter(|(unused, _)| **unused == 0)
                .map(|(_, key)| key.to_vec())
                .ok_or("the key's bit string is not whole bytes")?;
            let (_, oid, params) = element(algorithm)?;
            match oid {
                OID_RSA => Ok(PublicKey::Rsa(key)),
                OID_EC => {
                    let (_, curve, _) = element(params)?;
                    match curve {
                        OID_P256 => Ok(PublicKey::P256(key)),
                        OID_P384 => Ok(PublicKey::P384(key)),
                        _ => Err("only the P-256 and P-384 curves are supported".into()),
                    }
                }
                _ => Err("only RSA and EC public keys are supported".into()),
            }
        }
        other => Err(format!(
            "a `{other}` PEM block is not a public key (use PUBLIC KEY or RSA PUBLIC KEY)"
        )),
    }
}

/// The verification algorithm for a digest name, a key and a signature encoding.
fn algorithm(
    digest: &str,
    key: &PublicKey,
    p1363: bool,
) -> Result<&'static dyn VerificationAlgorithm, String> {
    let digest = digest.to_ascii_lowercase();
    let digest = digest
        .trim_start_matches("rsa-")
        .trim_start_matches("ecdsa-")
        .replace("sha-", "sha");
    Ok(match (key, digest.as_str(), p1363) {
        (PublicKey::Rsa(_), "sha256", _) => &signature::RSA_PKCS1_2048_8192_SHA256,
        (PublicKey::Rsa(_), "sha384", _) => &signature::RSA_PKCS1_2048_8192_SHA384,
        (PublicKey::Rsa(_), "sha512", _) => &signature::RSA_PKCS1_2048_8192_SHA512,
        (PublicKey::P256(_), "sha256", false) => &signature::ECDSA_P256_SHA256_ASN1,
        (PublicKey::P256(_), "sha256", true) => &signature::ECDSA_P256_SHA256_FIXED,
        (PublicKey::P384(_), "sha384", false) => &signature::ECDSA_P384_SHA384_ASN1,
        (PublicKey::P384(_), "sha384", true) => &signature::ECDSA_P384_SHA384_FIXED,
        _ => return Err(format!("digest `{digest}` is not supported with this key")),
    })
}

/// Verify `signature` over `data` with the PEM `key`.
pub fn verify(
    digest: &str,
    pem: &str,
    data: &[u8],
    sig: &[u8],
    p1363: bool,
) -> Result<bool, String> {
    let key = parse_public_key(pem)?;
    let alg = algorithm(digest, &key, p1363)?;
    let bytes = match &key {
        PublicKey::Rsa(k) | PublicKey::P256(k) | PublicKey::P384(k) => k,
    };
    Ok(UnparsedPublicKey::new(alg, bytes).verify(data, sig).is_ok())
}

/// `__verge_verify(digest, pem, data, signature, dsaEncoding)`.
pub fn verify_native(_this: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let text = |i: usize, ctx: &mut Context| -> JsResult<String> {
        Ok(args
            .get(i)
            .cloned()
            .unwrap_or_default()
            .to_string(ctx)?
            .to_std_string_escaped())
    };
    let bytes = |i: usize, ctx: &mut Context| -> JsResult<Vec<u8>> {
        let v = args.get(i).cloned().unwrap_or_default();
        crate::buffer::bytes_of(&v, ctx)?.ok_or_else(|| {
            JsNativeError::typ()
                .with_message("verify: data and signature must be Buffers")
                .into()
        })
    };
    let (digest, pem) = (text(0, ctx)?, text(1, ctx)?);
    let (data, sig) = (bytes(2, ctx)?, bytes(3, ctx)?);
    let p1363 = text(4, ctx)? == "ieee-p1363";
    verify(&digest, &pem, &data, &sig, p1363)
        .map(JsValue::from)
        .map_err(|e| JsNativeError::error().with_message(e).into())
}

#[cfg(test)]
mod tests {
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};

    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/fixtures")
                .join(name),
        )
        .unwrap()
    }

    fn b64url(text: &str) -> Vec<u8> {
        crate::encoding::base64_decode_forgiving(&text.replace('-', "+").replace('_', "/"))
    }

    #[test]
    fn rs256_tokens_verify_with_the_public_key_and_tampering_is_caught() {
        let pem = fixture("jwt-rs256-public.pem");
        let tokens: serde_json::Value =
            serde_json::from_str(&fixture("jwt-rs256-tokens.json")).unwrap();
        let check = |name: &str| {
            let token = tokens[name].as_str().unwrap();
            let (signed, sig) = token.rsplit_once('.').unwrap();
            verify("RSA-SHA256", &pem, signed.as_bytes(), &b64url(sig), false).unwrap()
        };
        assert!(check("valid"));
        assert!(check("expired"), "expired is still correctly signed");
        assert!(!check("tampered"));
        assert!(matches!(parse_public_key(&pem), Ok(PublicKey::Rsa(_))));
    }

    #[test]
    fn es256_signatures_verify_in_der_and_p1363_forms() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        // SubjectPublicKeyInfo for a P-256 point: a fixed prefix, then the 65-byte point.
        let mut spki = vec![
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
            0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
        ];
        spki.extend_from_slice(pair.public_key().as_ref());
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            crate::encoding::base64(&spki, true, false)
        );
        let der_sig = pair.sign(&rng, b"payload").unwrap();
        assert!(verify("sha256", &pem, b"payload", der_sig.as_ref(), false).unwrap());
        assert!(!verify("sha256", &pem, b"other", der_sig.as_ref(), false).unwrap());
        let fixed = EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8.as_ref(),
            &rng,
        )
        .unwrap();
        let raw = fixed.sign(&rng, b"payload").unwrap();
        assert_eq!(raw.as_ref().len(), 64);
        assert!(verify("sha256", &pem, b"payload", raw.as_ref(), true).unwrap());
        // An RSA digest name with an EC key, a private key, garbage: errors, not panics.
        assert!(verify("sha512", &pem, b"p", raw.as_ref(), true).is_err());
        assert!(
            parse_public_key("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----")
                .is_err()
        );
        assert!(parse_public_key("not pem").is_err());
        assert!(
            parse_public_key("-----BEGIN PUBLIC KEY-----\n////\n-----END PUBLIC KEY-----").is_err()
        );
    }
}
