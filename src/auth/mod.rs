//! Client authentication. Two token forms, told apart by shape ([`token_form`]):
//! - a signed JWT (JWS, three parts) with pinned algorithms: HS256 with the shared secrets,
//!   RS256 or ES256 with a configured public key; optional `iss`/`aud`;
//! - an encrypted session token (JWE, five parts, `alg: dir`) as NextAuth v4 and Auth.js v5
//!   write them, decrypted with keys derived from the same shared secrets ([`jwe`]).
//!
//! Both check `exp`/`nbf` with [`LEEWAY_SECS`] and take the user id from `sub`, `id` or
//! `userId`; every claim stays in [`Identity::claims`] for the application layer.
//!
//! # Layout
//! ```text
//! mod.rs      Verifier, Identity, AuthError (the reasons sent in CONNECT_ERROR)
//! jwe.rs      compact JWE parsing, key derivation, kid thumbprints, authenticated decryption
//! cookies.rs  the session token in a Cookie header (default names, chunked cookies)
//! secrets.rs  AUTH_SECRET, AUTH_SECRET_1..3 and lists from the environment
//! ```

pub mod cookies;
pub mod jwe;
pub mod secrets;

pub use cookies::{session_cookie, SessionCookie, SESSION_COOKIES};

use crate::config::Config;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

/// Seconds of clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 5;
/// Longest signed token we try to verify; longer ones are refused unread.
pub const MAX_TOKEN_LEN: usize = 8192;
/// Longest encrypted session token: one request head's worth (Auth.js chunks a long token
/// over several cookies, so it can pass [`MAX_TOKEN_LEN`]).
pub const MAX_SESSION_TOKEN_LEN: usize = crate::http::request::MAX_HEAD_LEN;
/// The salts an Auth.js v5 token may have been encrypted with when it arrives without its
/// cookie (`auth.token`, `Authorization: Bearer`): the default session cookie names.
pub const DEFAULT_SALTS: [&str; 2] = ["authjs.session-token", "__Secure-authjs.session-token"];

/// What a token looks like, by its number of dot-separated parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenForm {
    /// Three parts: a signed JWT.
    Jws,
    /// Five parts: an encrypted session token.
    Jwe,
    /// Anything else, such as the opaque session id of an Auth.js database session.
    Opaque,
}

/// Tells a JWS from a JWE from an opaque value, without decoding anything.
pub fn token_form(token: &str) -> TokenForm {
    match token.bytes().filter(|&b| b == b'.').count() {
        2 => TokenForm::Jws,
        4 => TokenForm::Jwe,
        _ => TokenForm::Opaque,
    }
}

/// Who a verified token says the client is.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub user_id: String,
    pub claims: Map<String, Value>,
}

/// Why a token is refused; the `reason` string goes to the client in CONNECT_ERROR data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing token")]
    MissingToken,
    #[error("malformed token")]
    Malformed,
    #[error("algorithm not allowed")]
    BadAlgorithm,
    #[error("invalid signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("wrong issuer")]
    BadIssuer,
    #[error("wrong audience")]
    BadAudience,
    #[error("token has no user id (sub, id or userId)")]
    NoUserId,
    #[error("invalid claims")]
    BadClaims,
    /// A JWE `enc` other than A256CBC-HS512 or A256GCM (or a compressed one).
    #[error("encryption not allowed")]
    BadEncryption,
    /// The JWE's `kid` names a key none of our secrets derives with this salt (cookie name).
    #[error("wrong secret or cookie name")]
    WrongSecret,
    /// The `kid` matched one of our keys but the authentication tag did not: altered bytes.
    #[error("token tampered")]
    Tampered,
    /// A JWE without `kid` whose tag no key matched: a wrong secret or altered bytes, which
    /// the cipher cannot tell apart.
    #[error("cannot decrypt token")]
    Undecryptable,
}

impl AuthError {
    /// The short reason sent to the client.
    pub fn reason(self) -> &'static str {
        match self {
            AuthError::MissingToken => "missing token",
            AuthError::Malformed => "malformed token",
            AuthError::BadAlgorithm => "algorithm not allowed",
            AuthError::BadSignature => "invalid signature",
            AuthError::Expired => "token expired",
            AuthError::NotYetValid => "token not yet valid",
            AuthError::BadIssuer => "wrong issuer",
            AuthError::BadAudience => "wrong audience",
            AuthError::NoUserId => "token has no user id",
            AuthError::BadClaims => "invalid claims",
            AuthError::BadEncryption => "encryption not allowed",
            AuthError::WrongSecret => "wrong secret or cookie name",
            AuthError::Tampered => "token tampered",
            AuthError::Undecryptable => "cannot decrypt token",
        }
    }
}

/// Checks at start that a PEM public key is usable for RS256 or ES256.
///
/// # Errors
/// A message when the PEM is neither an RSA nor an EC public key.
pub fn check_public_key(pem: &[u8]) -> Result<(), String> {
    if DecodingKey::from_rsa_pem(pem).is_ok() || DecodingKey::from_ec_pem(pem).is_ok() {
        Ok(())
    } else {
        Err("not an RSA or EC (P-256) public key in PEM form".into())
    }
}

/// Verifies tokens with keys built once from the configuration.
pub struct Verifier {
    /// The shared secrets, for deriving session token keys (per token: the salt varies).
    secrets: Vec<Vec<u8>>,
    hmac: Vec<DecodingKey>,
    rsa: Option<DecodingKey>,
    ec: Option<DecodingKey>,
    issuer: Option<String>,
    audience: Option<String>,
}

impl Verifier {
    pub fn new(config: &Config) -> Self {
        let pem = config.jwt_public_key.as_deref();
        Verifier {
            secrets: config.jwt_secrets.clone(),
            hmac: config
                .jwt_secrets
                .iter()
                .map(|s| DecodingKey::from_secret(s))
                .collect(),
            rsa: pem.and_then(|p| DecodingKey::from_rsa_pem(p).ok()),
            ec: pem.and_then(|p| DecodingKey::from_ec_pem(p).ok()),
            issuer: config.jwt_issuer.clone(),
            audience: config.jwt_audience.clone(),
        }
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = LEEWAY_SECS;
        v.validate_nbf = true;
        match &self.audience {
            Some(aud) => v.set_audience(&[aud]),
            None => v.validate_aud = false,
        }
        if let Some(iss) = &self.issuer {
            v.set_issuer(&[iss]);
        }
        v
    }

    /// Verifies a token from `auth.token` or `Authorization: Bearer`, a JWS or a JWE, and
    /// returns the identity it carries. An Auth.js v5 token is tried with the salts of both
    /// default cookie names ([`DEFAULT_SALTS`]).
    ///
    /// # Errors
    /// An [`AuthError`] naming the first rule the token breaks.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        self.verify_salted(token, &DEFAULT_SALTS, now())
    }

    /// Verifies the value of session cookie `cookie_name` (the base name, without a chunk
    /// suffix, as [`session_cookie`] returns it): the name is the salt of an Auth.js v5 token.
    ///
    /// # Errors
    /// An [`AuthError`] naming the first rule the token breaks; [`AuthError::Malformed`] for
    /// an opaque value (a database session id, see [`token_form`]).
    pub fn verify_session_cookie(
        &self,
        cookie_name: &str,
        value: &str,
    ) -> Result<Identity, AuthError> {
        self.verify_salted(value, &[cookie_name], now())
    }

    fn verify_salted(&self, token: &str, salts: &[&str], now: u64) -> Result<Identity, AuthError> {
        if token.is_empty() {
            return Err(AuthError::MissingToken);
        }
        match token_form(token) {
            TokenForm::Jws => self.verify_jws(token),
            TokenForm::Jwe => self.verify_jwe(token, salts, now),
            TokenForm::Opaque => Err(AuthError::Malformed),
        }
    }

    /// Decrypts a session token with every key our secrets derive for its `enc` (each salt
    /// under Auth.js v5's derivation, plus NextAuth v4's for A256GCM). When the token names
    /// its key (`kid`), only the key with that thumbprint is tried, which tells a wrong secret
    /// from tampering.
    fn verify_jwe(&self, token: &str, salts: &[&str], now: u64) -> Result<Identity, AuthError> {
        if token.len() > MAX_SESSION_TOKEN_LEN {
            return Err(AuthError::Malformed);
        }
        let jwe = jwe::parse(token)?;
        if self.secrets.is_empty() {
            return Err(AuthError::BadAlgorithm);
        }
        let mut kid_matched = false;
        for secret in &self.secrets {
            let v4 = (jwe.enc == jwe::Enc::A256Gcm).then(|| jwe::nextauth_v4_key(secret));
            let keys = salts
                .iter()
                .map(|salt| jwe::authjs_key(secret, salt, jwe.enc))
                .chain(v4);
            for key in keys {
                if let Some(kid) = &jwe.kid {
                    if jwe::thumbprint(&key) != *kid {
                        continue;
                    }
                    kid_matched = true;
                }
                match jwe.open(&key) {
                    Ok(plaintext) => return session_identity(&plaintext, now),
                    Err(jwe::OpenError::Tag) => {}
                    Err(jwe::OpenError::Padding) => return Err(AuthError::Malformed),
                }
            }
        }
        Err(match (&jwe.kid, kid_matched) {
            (None, _) => AuthError::Undecryptable,
            (Some(_), false) => AuthError::WrongSecret,
            (Some(_), true) => AuthError::Tampered,
        })
    }

    fn verify_jws(&self, token: &str) -> Result<Identity, AuthError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::Malformed);
        }
        // The header's `alg` only selects among the keys we hold; each key is used with its
        // one algorithm, so `none` and HS/RS confusion have nothing to match.
        let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            ErrorKind::InvalidAlgorithmName => AuthError::BadAlgorithm,
            _ => AuthError::Malformed,
        })?;
        let keys: &[DecodingKey] = match header.alg {
            Algorithm::HS256 => &self.hmac,
            Algorithm::RS256 => self.rsa.as_slice(),
            Algorithm::ES256 => self.ec.as_slice(),
            _ => &[],
        };
        if keys.is_empty() {
            return Err(AuthError::BadAlgorithm);
        }
        let validation = self.validation(header.alg);
        let mut last = AuthError::BadSignature;
        for key in keys {
            match jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation) {
                Ok(data) => return identity(data.claims),
                Err(e) => {
                    last = match e.kind() {
                        ErrorKind::InvalidSignature => AuthError::BadSignature,
                        ErrorKind::ExpiredSignature => AuthError::Expired,
                        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                        ErrorKind::InvalidIssuer => AuthError::BadIssuer,
                        ErrorKind::InvalidAudience => AuthError::BadAudience,
                        ErrorKind::InvalidAlgorithm => AuthError::BadAlgorithm,
                        ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) => {
                            AuthError::BadClaims
                        }
                        _ => AuthError::Malformed,
                    };
                    // Only a signature mismatch means "try the next secret"; any other
                    // failure came after the signature checked out.
                    if last != AuthError::BadSignature {
                        return Err(last);
                    }
                }
            }
        }
        Err(last)
    }
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// The identity in a decrypted session token's claims, after `exp` (required, as for signed
/// tokens) and `nbf` pass with [`LEEWAY_SECS`]. `iss`/`aud` are not checked: NextAuth writes
/// neither, and the secret already says who issued the token.
fn session_identity(plaintext: &[u8], now: u64) -> Result<Identity, AuthError> {
    let Ok(Value::Object(claims)) = serde_json::from_slice(plaintext) else {
        return Err(AuthError::BadClaims);
    };
    let time = |name: &str| match claims.get(name) {
        None => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or(AuthError::BadClaims),
    };
    let (now, leeway) = (now as f64, LEEWAY_SECS as f64);
    let exp = time("exp")?.ok_or(AuthError::BadClaims)?;
    if exp < now - leeway {
        return Err(AuthError::Expired);
    }
    if time("nbf")?.is_some_and(|nbf| nbf > now + leeway) {
        return Err(AuthError::NotYetValid);
    }
    identity(claims)
}

fn identity(claims: Map<String, Value>) -> Result<Identity, AuthError> {
    let user_id = ["sub", "id", "userId"]
        .iter()
        .find_map(|k| match claims.get(*k) {
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
        .ok_or(AuthError::NoUserId)?;
    Ok(Identity { user_id, claims })
}

#[cfg(test)]
mod tests;
