//! Verifier tests: signed tokens built here, and session tokens minted by the real npm
//! packages (`tests/auth_tokens/mint.mjs --fixtures`, stored in `testdata/tokens.json`): each
//! accepted or refused with its exact reason, cross-checked against the packages' own decode.

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

// ---- Encrypted session tokens minted by @auth/core and next-auth@4 -------------------------

const FIXTURES: &str = include_str!("testdata/tokens.json");

struct Fixtures {
    doc: Value,
}

impl Fixtures {
    fn load() -> Fixtures {
        Fixtures {
            doc: serde_json::from_str(FIXTURES).expect("testdata/tokens.json is JSON"),
        }
    }

    /// A moment inside every valid fixture's lifetime (they were minted for a year), so the
    /// tests do not depend on today's date.
    fn now(&self) -> u64 {
        self.doc["minted_at"].as_u64().unwrap() + 60
    }

    fn secret(&self, which: &str) -> String {
        self.doc["secrets"][which].as_str().unwrap().to_owned()
    }

    fn case(&self, name: &str) -> &Value {
        let case = &self.doc["cases"][name];
        assert!(case.is_object(), "no fixture case {name}");
        case
    }

    fn token(&self, name: &str) -> &str {
        self.case(name)["token"].as_str().unwrap()
    }

    /// A verifier holding the secrets the fixtures call `which`.
    fn verifier(&self, which: &[&str]) -> Verifier {
        let secrets: Vec<String> = which.iter().map(|w| self.secret(w)).collect();
        let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
        verifier(&secrets)
    }
}

/// Every fixture case, with the verdict as a session cookie (salted by the case's cookie name)
/// and as `auth.token` (salted by either default name). `None` where both agree.
#[allow(clippy::type_complexity)]
const CASES: &[(&str, Result<(), AuthError>, Option<Result<(), AuthError>>)] = &[
    ("authjs_valid", Ok(()), None),
    ("authjs_secure_valid", Ok(()), None),
    ("authjs_old_secret", Ok(()), None),
    ("authjs_expired", Err(AuthError::Expired), None),
    ("authjs_not_yet_valid", Err(AuthError::NotYetValid), None),
    ("authjs_wrong_secret", Err(AuthError::WrongSecret), None),
    // Minted for `authjs.session-token`, sent as `__Secure-authjs.session-token`; as
    // `auth.token` the plain name's salt is among those tried.
    (
        "authjs_wrong_salt",
        Err(AuthError::WrongSecret),
        Some(Ok(())),
    ),
    ("authjs_tampered_header", Err(AuthError::Tampered), None),
    ("authjs_tampered_iv", Err(AuthError::Tampered), None),
    ("authjs_tampered_ciphertext", Err(AuthError::Tampered), None),
    ("authjs_tampered_tag", Err(AuthError::Tampered), None),
    ("authjs_gcm_valid", Ok(()), None),
    ("authjs_no_kid_valid", Ok(()), None),
    (
        "authjs_no_kid_tampered",
        Err(AuthError::Undecryptable),
        None,
    ),
    ("authjs_unknown_enc", Err(AuthError::BadEncryption), None),
    ("authjs_unknown_alg", Err(AuthError::BadAlgorithm), None),
    ("authjs_chunked", Ok(()), None),
    ("v4_valid", Ok(()), None),
    ("v4_expired", Err(AuthError::Expired), None),
    ("v4_wrong_secret", Err(AuthError::Undecryptable), None),
    (
        "v4_tampered_ciphertext",
        Err(AuthError::Undecryptable),
        None,
    ),
    ("v4_tampered_tag", Err(AuthError::Undecryptable), None),
];

#[test]
fn every_fixture_case_has_its_verdict() {
    let f = Fixtures::load();
    let v = f.verifier(&["current", "old"]);
    let cases = f.doc["cases"].as_object().unwrap();
    assert_eq!(
        cases.len(),
        CASES.len(),
        "a fixture case has no verdict here"
    );
    for &(name, as_cookie, as_token) in CASES {
        let case = f.case(name);
        let token = f.token(name);
        let salt = case["salt"].as_str().unwrap();
        let salts: &[&str] = if salt.is_empty() {
            &DEFAULT_SALTS
        } else {
            &[salt]
        };
        let got = v.verify_salted(token, salts, f.now()).map(|_| ());
        assert_eq!(got, as_cookie, "{name} as a cookie");
        // The npm package's own decode, with the same secrets and salt, agrees.
        assert_eq!(
            got.is_ok(),
            case["node_accepts"].as_bool().unwrap(),
            "{name}: sio-edge and the npm package disagree"
        );
        let got = v.verify_salted(token, &DEFAULT_SALTS, f.now()).map(|_| ());
        assert_eq!(got, as_token.unwrap_or(as_cookie), "{name} as auth.token");
    }
}

#[test]
fn session_claims_reach_the_identity() {
    let f = Fixtures::load();
    let v = f.verifier(&["current"]);
    for name in ["authjs_valid", "authjs_gcm_valid", "v4_valid"] {
        let id = v
            .verify_salted(f.token(name), &DEFAULT_SALTS, f.now())
            .unwrap();
        assert_eq!(id.user_id, "user-42", "{name}");
        assert_eq!(id.claims["name"], "Ada Lovelace", "{name}");
        assert_eq!(id.claims["email"], "ada@example.test", "{name}");
        assert_eq!(
            id.claims["picture"], "https://example.test/ada.png",
            "{name}"
        );
        assert_eq!(id.claims["role"], "admin", "{name}");
        assert!(id.claims["jti"].is_string(), "{name}");
        assert_eq!(
            crate::store::grants::rooms_from_claims(&id.claims),
            ["conversation:c1", "conversation:c2"],
            "{name}"
        );
    }
}

#[test]
fn chunked_cookie_from_the_session_store_is_joined_and_verified() {
    let f = Fixtures::load();
    let case = f.case("authjs_chunked");
    let header = case["cookie_header"].as_str().unwrap();
    let cookie = session_cookie(header).unwrap();
    assert_eq!(cookie.name, "authjs.session-token");
    assert_eq!(cookie.chunks as u64, case["chunks"].as_u64().unwrap());
    assert!(cookie.chunks >= 2, "the fixture must actually be chunked");
    assert_eq!(cookie.value, f.token("authjs_chunked"));
    assert!(cookie.value.len() > MAX_TOKEN_LEN);
    let id = f
        .verifier(&["current"])
        .verify_salted(&cookie.value, &[cookie.name], f.now())
        .unwrap();
    assert_eq!(id.user_id, "user-42");
    assert_eq!(id.claims["padding"].as_str().unwrap().len(), 6000);
}

#[test]
fn v4_cookie_is_found_and_verified() {
    let f = Fixtures::load();
    let header = f.case("v4_valid")["cookie_header"].as_str().unwrap();
    let cookie = session_cookie(header).unwrap();
    assert_eq!(cookie.name, "__Secure-next-auth.session-token");
    assert_eq!(cookie.chunks, 0);
    let id = f
        .verifier(&["current"])
        .verify_salted(&cookie.value, &[cookie.name], f.now())
        .unwrap();
    assert_eq!(id.user_id, "user-42");
}

#[test]
fn cookie_name_is_the_salt() {
    let f = Fixtures::load();
    let v = f.verifier(&["current"]);
    let secure = f.token("authjs_secure_valid");
    let at = |name: &str| v.verify_salted(secure, &[name], f.now()).map(|_| ());
    assert_eq!(at("__Secure-authjs.session-token"), Ok(()));
    assert_eq!(at("authjs.session-token"), Err(AuthError::WrongSecret));
    assert_eq!(at("next-auth.session-token"), Err(AuthError::WrongSecret));
}

#[test]
fn rotation_tries_every_secret_in_turn() {
    let f = Fixtures::load();
    let at = |which: &[&str], name: &str| {
        f.verifier(which)
            .verify_salted(f.token(name), &DEFAULT_SALTS, f.now())
            .map(|_| ())
    };
    // Auth.js v5 names its key: the old secret alone is refused, found in any position.
    assert_eq!(
        at(&["current"], "authjs_old_secret"),
        Err(AuthError::WrongSecret)
    );
    assert_eq!(at(&["other", "old"], "authjs_old_secret"), Ok(()));
    assert_eq!(at(&["old", "other", "current"], "authjs_valid"), Ok(()));
    // NextAuth v4 does not: each key's tag is tried.
    assert_eq!(at(&["other", "old", "current"], "v4_valid"), Ok(()));
    assert_eq!(
        at(&["other", "old"], "v4_valid"),
        Err(AuthError::Undecryptable)
    );
    assert_eq!(at(&["other", "current"], "authjs_no_kid_valid"), Ok(()));
}

#[test]
fn rotation_from_the_environment() {
    let f = Fixtures::load();
    let (cur, old) = (f.secret("current"), f.secret("old"));
    let check = |vars: &[(&str, &str)], expect_old: Result<(), AuthError>| {
        let c = Config::from_flags(crate::config::Flags::default(), &|k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
        .unwrap();
        let v = Verifier::new(&c);
        let at = |name: &str| {
            v.verify_salted(f.token(name), &DEFAULT_SALTS, f.now())
                .map(|_| ())
        };
        assert_eq!(at("authjs_valid"), Ok(()), "{vars:?}");
        assert_eq!(at("v4_valid"), Ok(()), "{vars:?}");
        assert_eq!(at("authjs_old_secret"), expect_old, "{vars:?}");
    };
    check(&[("AUTH_SECRET", &cur)], Err(AuthError::WrongSecret));
    check(&[("AUTH_SECRET", &cur), ("AUTH_SECRET_1", &old)], Ok(()));
    check(&[("AUTH_SECRET", &format!("{cur},{old}"))], Ok(()));
    check(
        &[("NEXTAUTH_SECRET", &cur), ("AUTH_SECRET_2", &old)],
        Ok(()),
    );
    check(&[("JWT_SECRET", &old), ("AUTH_SECRET_3", &cur)], Ok(()));
}

#[test]
fn session_tokens_need_a_shared_secret() {
    let f = Fixtures::load();
    let v = verifier(&[]);
    assert_eq!(
        v.verify_salted(f.token("authjs_valid"), &DEFAULT_SALTS, f.now())
            .map(|_| ()),
        Err(AuthError::BadAlgorithm)
    );
}

#[test]
fn token_forms_and_size_limits() {
    assert_eq!(token_form("a.b.c"), TokenForm::Jws);
    assert_eq!(token_form("a..c.d.e"), TokenForm::Jwe);
    assert_eq!(
        token_form("3c1b9f0e-5d4a-4c8e-9f21-0a6b7c8d9e0f"),
        TokenForm::Opaque
    );
    let v = verifier(&["one"]);
    assert_eq!(v.verify("opaque-session-id"), Err(AuthError::Malformed));
    assert_eq!(
        v.verify_session_cookie("authjs.session-token", ""),
        Err(AuthError::MissingToken)
    );
    let long = format!("a..b.{}.c", "x".repeat(MAX_SESSION_TOKEN_LEN));
    assert_eq!(v.verify(&long), Err(AuthError::Malformed));
    assert_eq!(v.verify("a.b.c.d.e"), Err(AuthError::Malformed));
}

/// A NextAuth v4 token built here with the current clock, to drive the public entry points
/// (`verify`, `verify_session_cookie`) whose clock the fixtures cannot set.
fn v4_token(secret: &str, claims: Value) -> String {
    use aes_gcm::aead::AeadInOut;
    use aes_gcm::KeyInit;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"dir","enc":"A256GCM"}"#);
    let key = jwe::nextauth_v4_key(secret.as_bytes());
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(&key).unwrap();
    let iv = [7u8; 12];
    let mut buf = serde_json::to_vec(&claims).unwrap();
    let tag = cipher
        .encrypt_inout_detached(&iv.into(), header.as_bytes(), buf.as_mut_slice().into())
        .unwrap();
    format!(
        "{header}..{}.{}.{}",
        URL_SAFE_NO_PAD.encode(iv),
        URL_SAFE_NO_PAD.encode(&buf),
        URL_SAFE_NO_PAD.encode(tag)
    )
}

#[test]
fn public_entry_points_use_the_clock() {
    let v = verifier(&["s"]);
    let fresh = v4_token("s", json!({"id": 7, "exp": now() + 60}));
    assert_eq!(v.verify(&fresh).unwrap().user_id, "7");
    assert_eq!(
        v.verify_session_cookie("next-auth.session-token", &fresh)
            .unwrap()
            .user_id,
        "7"
    );
    let stale = v4_token("s", json!({"id": 7, "exp": now() - 3600}));
    assert_eq!(v.verify(&stale), Err(AuthError::Expired));
    let anonymous = v4_token("s", json!({"exp": now() + 60}));
    assert_eq!(v.verify(&anonymous), Err(AuthError::NoUserId));
    let no_exp = v4_token("s", json!({"sub": "u"}));
    assert_eq!(v.verify(&no_exp), Err(AuthError::BadClaims));
    let early = v4_token(
        "s",
        json!({"sub": "u", "exp": now() + 7200, "nbf": now() + 3600}),
    );
    assert_eq!(v.verify(&early), Err(AuthError::NotYetValid));
}

#[test]
fn reasons_are_distinct() {
    let all = [
        AuthError::MissingToken,
        AuthError::Malformed,
        AuthError::BadAlgorithm,
        AuthError::BadSignature,
        AuthError::Expired,
        AuthError::NotYetValid,
        AuthError::BadIssuer,
        AuthError::BadAudience,
        AuthError::NoUserId,
        AuthError::BadClaims,
        AuthError::BadEncryption,
        AuthError::WrongSecret,
        AuthError::Tampered,
        AuthError::Undecryptable,
    ];
    let mut reasons: Vec<&str> = all.iter().map(|e| e.reason()).collect();
    reasons.sort();
    reasons.dedup();
    assert_eq!(reasons.len(), all.len());
}
