//! Client tokens (`sio_edge::auth::Verifier::verify`) with a fixed HS256 secret, with and
//! without issuer/audience checks. Even first byte: the rest is the token as the client sent
//! it (header decoding, base64, algorithm choice, signature). Odd first byte: the rest is
//! `<header JSON> 0xFF <claims JSON>`, signed here with the secret, so the fuzzer reaches the
//! claims checks (exp, nbf, iss, aud, user id) that a forged signature never gets to.
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use sio_edge::auth::Verifier;
use sio_edge::config::Config;
use std::sync::LazyLock;

const SECRET: &[u8] = b"fuzz-secret-0123456789";

static VERIFIERS: LazyLock<[Verifier; 2]> = LazyLock::new(|| {
    let plain = Config {
        jwt_secrets: vec![b"other-secret".to_vec(), SECRET.to_vec()],
        ..Config::default()
    };
    let strict = Config {
        jwt_secrets: vec![SECRET.to_vec()],
        jwt_issuer: Some("https://issuer.example".into()),
        jwt_audience: Some("sio-edge".into()),
        ..Config::default()
    };
    [Verifier::new(&plain), Verifier::new(&strict)]
});
static KEY: LazyLock<EncodingKey> = LazyLock::new(|| EncodingKey::from_secret(SECRET));

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let token = if mode & 1 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        let (header, claims) = match rest.iter().position(|&b| b == 0xff) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (&br#"{"alg":"HS256","typ":"JWT"}"#[..], rest),
        };
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let sig = jsonwebtoken::crypto::sign(message.as_bytes(), &KEY, Algorithm::HS256)
            .expect("HMAC signing cannot fail");
        format!("{message}.{sig}")
    };
    for v in VERIFIERS.iter() {
        if let Ok(id) = v.verify(&token) {
            assert!(!id.user_id.is_empty(), "accepted a token without a user id");
        }
    }
});
