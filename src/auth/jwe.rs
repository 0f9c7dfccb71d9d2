//! Compact JWE with `alg: dir`, as NextAuth v4 and Auth.js v5 write their session tokens:
//! parsing, the two key derivations, the JWK thumbprint Auth.js puts in `kid`, and
//! authenticated decryption (the tag is checked in constant time before a byte is decrypted).
//!
//! ```text
//! BASE64URL(header) "." "" "." BASE64URL(iv) "." BASE64URL(ciphertext) "." BASE64URL(tag)
//! Auth.js v5:  {"alg":"dir","enc":"A256CBC-HS512","kid":"<thumbprint of the derived key>"}
//!              key = HKDF-SHA256(secret, salt = cookie name,
//!                                info = "Auth.js Generated Encryption Key (<salt>)", 64 bytes)
//!              (A256GCM is accepted on decode: the same derivation, 32 bytes)
//! NextAuth v4: {"alg":"dir","enc":"A256GCM"}
//!              key = HKDF-SHA256(secret, salt = "", info = "NextAuth.js Generated Encryption Key",
//!                                32 bytes)
//! ```
//!
//! A256CBC-HS512 follows RFC 7518 5.2.2: the first 32 key bytes are the MAC key, the last 32
//! the AES key; the tag is the first 32 bytes of HMAC-SHA-512 over
//! `AAD || IV || ciphertext || AL`, where AAD is the ASCII of the header's base64url and AL its
//! length in bits as a 64-bit big-endian number.

use super::AuthError;
use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes256Gcm, KeyInit};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, KeyIvInit};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

/// The HKDF `info` of NextAuth v4 (its salt is empty).
pub const NEXTAUTH_V4_INFO: &str = "NextAuth.js Generated Encryption Key";

/// A content encryption algorithm we decrypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enc {
    /// AES-256-CBC with HMAC-SHA-512 truncated to 256 bits (Auth.js v5).
    A256CbcHs512,
    /// AES-256-GCM (NextAuth v4; accepted by Auth.js v5 on decode).
    A256Gcm,
}

impl Enc {
    fn from_name(name: &str) -> Option<Enc> {
        match name {
            "A256CBC-HS512" => Some(Enc::A256CbcHs512),
            "A256GCM" => Some(Enc::A256Gcm),
            _ => None,
        }
    }

    /// Bytes of the content encryption key.
    pub fn key_len(self) -> usize {
        match self {
            Enc::A256CbcHs512 => 64,
            Enc::A256Gcm => 32,
        }
    }

    fn iv_len(self) -> usize {
        match self {
            Enc::A256CbcHs512 => 16,
            Enc::A256Gcm => 12,
        }
    }

    fn tag_len(self) -> usize {
        match self {
            Enc::A256CbcHs512 => 32,
            Enc::A256Gcm => 16,
        }
    }
}

/// A parsed compact JWE; nothing in it is trusted until [`Jwe::open`] succeeds.
#[derive(Debug)]
pub struct Jwe<'a> {
    /// The header's base64url text: the AAD the tag covers.
    protected: &'a str,
    pub enc: Enc,
    /// Auth.js v5 names the key by its JWK thumbprint; NextAuth v4 sends none.
    pub kid: Option<String>,
    iv: Vec<u8>,
    ciphertext: Vec<u8>,
    tag: Vec<u8>,
}

#[derive(serde::Deserialize)]
struct Header {
    alg: String,
    enc: String,
    kid: Option<String>,
    // Compression was dropped from jose; a `zip` token is not one Auth.js wrote.
    zip: Option<serde_json::Value>,
    // Extensions we would have to understand; none are.
    crit: Option<serde_json::Value>,
}

/// Why [`Jwe::open`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// The tag does not match: another key, or altered bytes.
    Tag,
    /// The tag matched but the CBC padding is wrong: the issuer wrote a broken token.
    Padding,
}

fn b64(part: &str) -> Result<Vec<u8>, AuthError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AuthError::Malformed)
}

/// Parses a compact JWE (five dot-separated parts) and checks its header.
///
/// # Errors
/// [`AuthError::Malformed`] for a bad shape, base64 or JSON, a non-empty encrypted key or
/// wrong IV/tag lengths; [`AuthError::BadAlgorithm`] for an `alg` other than `dir`;
/// [`AuthError::BadEncryption`] for an `enc` other than A256CBC-HS512 or A256GCM, or `zip`.
pub fn parse(token: &str) -> Result<Jwe<'_>, AuthError> {
    let mut parts = token.split('.');
    let (Some(protected), Some(key), Some(iv), Some(ciphertext), Some(tag), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(AuthError::Malformed);
    };
    let header: Header =
        serde_json::from_slice(&b64(protected)?).map_err(|_| AuthError::Malformed)?;
    if header.alg != "dir" {
        return Err(AuthError::BadAlgorithm);
    }
    let enc = Enc::from_name(&header.enc).ok_or(AuthError::BadEncryption)?;
    if header.zip.is_some() {
        return Err(AuthError::BadEncryption);
    }
    if header.crit.is_some() || !key.is_empty() {
        return Err(AuthError::Malformed);
    }
    let jwe = Jwe {
        protected,
        enc,
        kid: header.kid,
        iv: b64(iv)?,
        ciphertext: b64(ciphertext)?,
        tag: b64(tag)?,
    };
    if jwe.iv.len() != enc.iv_len() || jwe.tag.len() != enc.tag_len() {
        return Err(AuthError::Malformed);
    }
    if enc == Enc::A256CbcHs512
        && (jwe.ciphertext.is_empty() || !jwe.ciphertext.len().is_multiple_of(16))
    {
        return Err(AuthError::Malformed);
    }
    Ok(jwe)
}

impl Jwe<'_> {
    /// Checks the tag with `key` (of [`Enc::key_len`] bytes) and returns the plaintext.
    ///
    /// # Errors
    /// [`OpenError::Tag`] when the tag does not match (nothing was decrypted);
    /// [`OpenError::Padding`] when it matched but the padding is broken.
    pub fn open(&self, key: &[u8]) -> Result<Vec<u8>, OpenError> {
        if key.len() != self.enc.key_len() {
            return Err(OpenError::Tag);
        }
        let aad = self.protected.as_bytes();
        match self.enc {
            Enc::A256CbcHs512 => open_cbc_hs512(key, aad, &self.iv, &self.ciphertext, &self.tag),
            Enc::A256Gcm => open_gcm(key, aad, &self.iv, &self.ciphertext, &self.tag),
        }
    }
}

fn open_cbc_hs512(
    key: &[u8],
    aad: &[u8],
    iv: &[u8],
    ciphertext: &[u8],
    tag: &[u8],
) -> Result<Vec<u8>, OpenError> {
    let (mac_key, enc_key) = key.split_at(32);
    let mut mac = Hmac::<Sha512>::new_from_slice(mac_key).map_err(|_| OpenError::Tag)?;
    mac.update(aad);
    mac.update(iv);
    mac.update(ciphertext);
    mac.update(&(aad.len() as u64 * 8).to_be_bytes());
    // Constant-time comparison of the first 32 bytes of the MAC (RFC 7518 5.2.2.1, step 5).
    if tag.len() != 32 || mac.verify_truncated_left(tag).is_err() {
        return Err(OpenError::Tag);
    }
    let mut buf = ciphertext.to_vec();
    let decryptor =
        cbc::Decryptor::<aes::Aes256>::new_from_slices(enc_key, iv).map_err(|_| OpenError::Tag)?;
    let len = decryptor
        .decrypt_padded::<Pkcs7>(&mut buf)
        .map_err(|_| OpenError::Padding)?
        .len();
    buf.truncate(len);
    Ok(buf)
}

fn open_gcm(
    key: &[u8],
    aad: &[u8],
    iv: &[u8],
    ciphertext: &[u8],
    tag: &[u8],
) -> Result<Vec<u8>, OpenError> {
    let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| OpenError::Tag)?;
    let nonce = aes_gcm::Nonce::try_from(iv).map_err(|_| OpenError::Tag)?;
    let tag = aes_gcm::Tag::try_from(tag).map_err(|_| OpenError::Tag)?;
    let mut buf = ciphertext.to_vec();
    // aes-gcm computes the tag over the ciphertext and compares it in constant time before it
    // applies the keystream.
    cipher
        .decrypt_inout_detached(&nonce, aad, buf.as_mut_slice().into(), &tag)
        .map_err(|_| OpenError::Tag)?;
    Ok(buf)
}

fn hkdf_sha256(secret: &[u8], salt: &[u8], info: &[u8], out: &mut [u8]) {
    // Output lengths here are 32 or 64 bytes, far under HKDF-SHA256's 8160-byte limit.
    let ok = hkdf::Hkdf::<Sha256>::new(Some(salt), secret)
        .expand(info, out)
        .is_ok();
    debug_assert!(ok);
}

/// Auth.js v5's content encryption key for `enc`, salted with the cookie name.
pub fn authjs_key(secret: &[u8], salt: &str, enc: Enc) -> Vec<u8> {
    let mut key = vec![0; enc.key_len()];
    let info = format!("Auth.js Generated Encryption Key ({salt})");
    hkdf_sha256(secret, salt.as_bytes(), info.as_bytes(), &mut key);
    key
}

/// NextAuth v4's A256GCM key (its `encode` uses an empty salt).
pub fn nextauth_v4_key(secret: &[u8]) -> Vec<u8> {
    let mut key = vec![0; 32];
    hkdf_sha256(secret, b"", NEXTAUTH_V4_INFO.as_bytes(), &mut key);
    key
}

/// The RFC 7638 thumbprint of `key` as an `oct` JWK, as Auth.js computes `kid`: SHA-256 for a
/// 32-byte key, SHA-512 for a 64-byte one, base64url without padding.
pub fn thumbprint(key: &[u8]) -> String {
    // Members in lexicographic order, no whitespace (RFC 7638 3.2).
    let jwk = format!(r#"{{"k":"{}","kty":"oct"}}"#, URL_SAFE_NO_PAD.encode(key));
    if key.len() > 32 {
        URL_SAFE_NO_PAD.encode(Sha512::digest(jwk.as_bytes()))
    } else {
        URL_SAFE_NO_PAD.encode(Sha256::digest(jwk.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 7518 Appendix B.3, the AES_256_CBC_HMAC_SHA_512 test case.
    #[test]
    fn rfc7518_b3_cbc_hs512_vector() {
        let key: Vec<u8> = (0u8..64).collect();
        let plaintext = b"A cipher system must not be required to be secret, and it must be able \
to fall into the hands of the enemy without inconvenience";
        let iv = hex("1a f3 8c 2d c2 b9 6f fd d8 66 94 09 23 41 bc 04");
        let aad = b"The second principle of Auguste Kerckhoffs";
        let ciphertext = hex(
            "4a ff aa ad b7 8c 31 c5 da 4b 1b 59 0d 10 ff bd 3d d8 d5 d3 02 42 35 26 91 2d a0 37
             ec bc c7 bd 82 2c 30 1d d6 7c 37 3b cc b5 84 ad 3e 92 79 c2 e6 d1 2a 13 74 b7 7f 07
             75 53 df 82 94 10 44 6b 36 eb d9 70 66 29 6a e6 42 7e a7 5c 2e 08 46 a1 1a 09 cc f5
             37 0d c8 0b fe cb ad 28 c7 3f 09 b3 a3 b7 5e 66 2a 25 94 41 0a e4 96 b2 e2 e6 60 9e
             31 e6 e0 2c c8 37 f0 53 d2 1f 37 ff 4f 51 95 0b be 26 38 d0 9d d7 a4 93 09 30 80 6d
             07 03 b1 f6",
        );
        let tag = hex(
            "4d d3 b4 c0 88 a7 f4 5c 21 68 39 64 5b 20 12 bf 2e 62 69 a8 c5 6a 81 6d bc 1b 26 77
             61 95 5b c5",
        );
        assert_eq!(
            open_cbc_hs512(&key, aad, &iv, &ciphertext, &tag).unwrap(),
            plaintext
        );
        let mut bad = tag.clone();
        bad[31] ^= 1;
        assert_eq!(
            open_cbc_hs512(&key, aad, &iv, &ciphertext, &bad),
            Err(OpenError::Tag)
        );
        // The AAD length is part of the MAC: one byte less of AAD must not verify.
        assert_eq!(
            open_cbc_hs512(&key, &aad[..aad.len() - 1], &iv, &ciphertext, &tag),
            Err(OpenError::Tag)
        );
    }

    #[test]
    fn truncated_tag_is_malformed_not_a_shorter_comparison() {
        let b = |s: &[u8]| URL_SAFE_NO_PAD.encode(s);
        let header = b(br#"{"alg":"dir","enc":"A256CBC-HS512"}"#);
        let token = format!("{header}..{}.{}.{}", b(&[0; 16]), b(&[0; 16]), b(&[0; 1]));
        assert_eq!(parse(&token).unwrap_err(), AuthError::Malformed);
    }

    #[test]
    fn header_rules() {
        let b = |s: &[u8]| URL_SAFE_NO_PAD.encode(s);
        let rest = format!("{}.{}.{}", b(&[0; 12]), b(&[0; 16]), b(&[0; 16]));
        let with = |h: &str, key: &str| format!("{}.{key}.{rest}", b(h.as_bytes()));
        assert!(parse(&with(r#"{"alg":"dir","enc":"A256GCM"}"#, "")).is_ok());
        assert_eq!(
            parse(&with(r#"{"alg":"RSA-OAEP","enc":"A256GCM"}"#, "")).unwrap_err(),
            AuthError::BadAlgorithm
        );
        assert_eq!(
            parse(&with(r#"{"alg":"dir","enc":"A128GCM"}"#, "")).unwrap_err(),
            AuthError::BadEncryption
        );
        assert_eq!(
            parse(&with(r#"{"alg":"dir","enc":"A256GCM","zip":"DEF"}"#, "")).unwrap_err(),
            AuthError::BadEncryption
        );
        assert_eq!(
            parse(&with(r#"{"alg":"dir","enc":"A256GCM","crit":["x"]}"#, "")).unwrap_err(),
            AuthError::Malformed
        );
        assert_eq!(
            parse(&with(r#"{"alg":"dir","enc":"A256GCM"}"#, "AAAA")).unwrap_err(),
            AuthError::Malformed
        );
        assert_eq!(parse("a.b.c.d").unwrap_err(), AuthError::Malformed);
        assert_eq!(parse("a.b.c.d.e.f").unwrap_err(), AuthError::Malformed);
        assert_eq!(parse("!!.x.y.z.w").unwrap_err(), AuthError::Malformed);
    }

    #[test]
    fn thumbprint_hash_follows_key_size() {
        // 43 base64url characters for SHA-256, 86 for SHA-512.
        assert_eq!(thumbprint(&[7; 32]).len(), 43);
        assert_eq!(thumbprint(&[7; 64]).len(), 86);
        assert_ne!(
            authjs_key(b"s", "authjs.session-token", Enc::A256CbcHs512),
            authjs_key(b"s", "__Secure-authjs.session-token", Enc::A256CbcHs512)
        );
    }
}
