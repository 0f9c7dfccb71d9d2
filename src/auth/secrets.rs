//! The shared secrets under Auth.js v5's names, with rotation: `AUTH_SECRET` (also a
//! comma-separated list) and `AUTH_SECRET_1`..`AUTH_SECRET_3`. `JWT_SECRET` and
//! `NEXTAUTH_SECRET` are read by [`crate::config`] as before; every secret serves both HS256
//! tokens and encrypted session tokens.

/// The rotation variables, in the order Auth.js tries them: it puts `AUTH_SECRET_1`..`_3`
/// before `AUTH_SECRET`, each in front of the last (so `_3` comes first and is the one its
/// `encode` uses).
const ROTATION: [&str; 3] = ["AUTH_SECRET_3", "AUTH_SECRET_2", "AUTH_SECRET_1"];

/// Appends the Auth.js secrets from the environment (read through `lookup`) to `secrets`,
/// skipping empty values and ones already there.
///
/// A value with commas is a list, its trimmed items tried in order; the whole value is tried
/// after them, since Auth.js itself takes `AUTH_SECRET` as one string and a secret may contain
/// a comma.
pub fn add_from_env(secrets: &mut Vec<Vec<u8>>, lookup: &dyn Fn(&str) -> Option<String>) {
    for var in ROTATION.iter().chain(&["AUTH_SECRET"]) {
        let Some(value) = lookup(var).filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        let items = value.split(',').map(str::trim).filter(|s| !s.is_empty());
        let whole = value.contains(',').then_some(value.as_str());
        for secret in items.chain(whole) {
            let secret = secret.as_bytes();
            if !secrets.iter().any(|s| s == secret) {
                secrets.push(secret.to_vec());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Flags};

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    fn strings(secrets: &[Vec<u8>]) -> Vec<String> {
        secrets
            .iter()
            .map(|s| String::from_utf8(s.clone()).unwrap())
            .collect()
    }

    #[test]
    fn rotation_order_lists_and_dedup() {
        let mut secrets = vec![b"shared".to_vec()];
        add_from_env(
            &mut secrets,
            &env(&[
                ("AUTH_SECRET", "new, shared ,old"),
                ("AUTH_SECRET_1", "one"),
                ("AUTH_SECRET_3", "three"),
                ("AUTH_SECRET_2", "  "),
            ]),
        );
        assert_eq!(
            strings(&secrets),
            ["shared", "three", "one", "new", "old", "new, shared ,old"]
        );
    }

    #[test]
    fn config_reads_auth_secret_alone() {
        // AUTH_SECRET is enough to pass the production "some way to authenticate" check.
        let c = Config::from_flags(Flags::default(), &env(&[("AUTH_SECRET", "s5")])).unwrap();
        assert_eq!(strings(&c.jwt_secrets), ["s5"]);
        let c = Config::from_flags(
            Flags::default(),
            &env(&[
                ("JWT_SECRET", "j"),
                ("NEXTAUTH_SECRET", "n"),
                ("AUTH_SECRET", "n"),
                ("AUTH_SECRET_1", "r1"),
            ]),
        )
        .unwrap();
        assert_eq!(strings(&c.jwt_secrets), ["j", "n", "r1"]);
    }
}
