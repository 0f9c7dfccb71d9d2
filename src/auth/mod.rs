//! Client authentication: JWT verification with pinned algorithms (HS256 with the shared
//! secrets; RS256 or ES256 with a configured public key), `exp`/`nbf` with a small leeway,
//! optional `iss`/`aud`, and the user id from `sub`, `id` or `userId`.

use crate::config::Config;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

/// Seconds of clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 5;
/// Longest token we try to verify; longer ones are refused unread.
pub const MAX_TOKEN_LEN: usize = 8192;

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

    /// Verifies `token` and returns the identity it carries.
    ///
    /// # Errors
    /// An [`AuthError`] naming the first rule the token breaks.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        if token.is_empty() {
            return Err(AuthError::MissingToken);
        }
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
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    fn verifier(secrets: &[&str]) -> Verifier {
        let config = Config {
            jwt_secrets: secrets.iter().map(|s| s.as_bytes().to_vec()).collect(),
            ..Config::default()
        };
        Verifier::new(&config)
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    fn hs(claims: Value, secret: &str) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn accepts_either_secret_and_reads_user_id() {
        let v = verifier(&["one", "two"]);
        let id = v
            .verify(&hs(json!({"sub":"u1","exp":now()+60}), "one"))
            .unwrap();
        assert_eq!(id.user_id, "u1");
        let id = v
            .verify(&hs(json!({"userId":42,"exp":now()+60}), "two"))
            .unwrap();
        assert_eq!(id.user_id, "42");
    }

    #[test]
    fn refusals_name_the_rule() {
        let v = verifier(&["one"]);
        assert_eq!(
            v.verify(&hs(json!({"sub":"u","exp":now()+60}), "zzz")),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            v.verify(&hs(json!({"sub":"u","exp":now()-3600}), "one")),
            Err(AuthError::Expired)
        );
        assert_eq!(
            v.verify(&hs(
                json!({"sub":"u","exp":now()+60,"nbf":now()+3600}),
                "one"
            )),
            Err(AuthError::NotYetValid)
        );
        assert_eq!(
            v.verify(&hs(json!({"sub":"u"}), "one")),
            Err(AuthError::BadClaims)
        );
        assert_eq!(
            v.verify(&hs(json!({"exp":now()+60}), "one")),
            Err(AuthError::NoUserId)
        );
        assert_eq!(v.verify(""), Err(AuthError::MissingToken));
        assert_eq!(v.verify("a.b"), Err(AuthError::Malformed));
    }

    #[test]
    fn alg_none_is_refused() {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let token = format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"JWT"}"#),
            b64(&format!(r#"{{"sub":"u","exp":{}}}"#, now() + 60))
        );
        let err = verifier(&["one"]).verify(&token).unwrap_err();
        assert!(
            matches!(err, AuthError::BadAlgorithm | AuthError::Malformed),
            "{err:?}"
        );
    }

    #[test]
    fn rs256_without_public_key_is_refused() {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let token = format!(
            "{}.{}.sig",
            b64(r#"{"alg":"RS256"}"#),
            b64(r#"{"sub":"u"}"#)
        );
        assert_eq!(
            verifier(&["one"]).verify(&token),
            Err(AuthError::BadAlgorithm)
        );
    }
}
