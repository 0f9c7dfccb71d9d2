//! Finds the NextAuth / Auth.js session token in a `Cookie:` header: the four default cookie
//! names, and the chunked form Auth.js uses when a token outgrows one cookie.
//!
//! ```text
//! Cookie: theme=dark; authjs.session-token.1=<second part>; authjs.session-token.0=<first part>
//!         -> ("authjs.session-token", "<first part><second part>")
//! ```
//!
//! Auth.js's SessionStore cuts a token longer than 3936 characters into `<name>.0`,
//! `<name>.1`, … and joins them sorted by the numeric suffix; so do we. The cookie name found
//! is the salt the token was encrypted with (Auth.js v5).

/// Session cookie names, most trusted first. A `__Secure-` cookie can only have been set over
/// HTTPS, so a plain one planted beside it (by a sibling subdomain or on plain HTTP) does not
/// win; Auth.js v5's names come before NextAuth v4's.
pub const SESSION_COOKIES: [&str; 4] = [
    "__Secure-authjs.session-token",
    "authjs.session-token",
    "__Secure-next-auth.session-token",
    "next-auth.session-token",
];

/// Chunks read per name. A request head is at most 16 KiB, and each chunk holds 3936
/// characters, so real tokens have at most five.
pub const MAX_CHUNKS: usize = 16;

/// A session token found in a `Cookie:` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCookie {
    /// The cookie's base name (without a chunk suffix): the salt for Auth.js v5 tokens.
    pub name: &'static str,
    /// The token, with chunks joined in order.
    pub value: String,
    /// How many chunks it was sent in; 0 for an unchunked cookie.
    pub chunks: usize,
}

/// The `name=value` pairs of a `Cookie:` header value, values unquoted.
fn pairs(header: &str) -> impl Iterator<Item = (&str, &str)> {
    header.split(';').filter_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        Some((name.trim(), value))
    })
}

/// The chunk index of `cookie` if it is `<base>.<n>` with `n` below [`MAX_CHUNKS`].
fn chunk_index(cookie: &str, base: &str) -> Option<usize> {
    let digits = cookie.strip_prefix(base)?.strip_prefix('.')?;
    if digits.is_empty() || digits.len() > 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|&n| n < MAX_CHUNKS)
}

/// The session token in a `Cookie:` header value (several `Cookie:` headers may be joined
/// with `"; "`), from the first of [`SESSION_COOKIES`] present with a non-empty value.
///
/// An unchunked cookie wins over chunks of the same name (Auth.js deletes one form when it
/// writes the other, so both together means one is stale, and the whole cookie is the newer
/// shape). A cookie repeated under one name keeps its first value, as browsers send the most
/// specific path first. Chunks are joined in numeric order of their suffix, whatever order
/// they arrive in; a missing chunk leaves a token that fails verification as malformed.
pub fn session_cookie(header: &str) -> Option<SessionCookie> {
    SESSION_COOKIES.iter().find_map(|&name| {
        let mut whole = None;
        let mut chunks: [Option<&str>; MAX_CHUNKS] = [None; MAX_CHUNKS];
        for (cookie, value) in pairs(header) {
            if value.is_empty() {
                continue;
            }
            if cookie == name {
                whole.get_or_insert(value);
            } else if let Some(i) = chunk_index(cookie, name) {
                chunks[i].get_or_insert(value);
            }
        }
        if let Some(value) = whole {
            return Some(SessionCookie {
                name,
                value: value.to_owned(),
                chunks: 0,
            });
        }
        let parts: Vec<&str> = chunks.iter().flatten().copied().collect();
        (!parts.is_empty()).then(|| SessionCookie {
            name,
            value: parts.concat(),
            chunks: parts.len(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(header: &str) -> Option<(&'static str, String, usize)> {
        session_cookie(header).map(|c| (c.name, c.value, c.chunks))
    }

    #[test]
    fn each_default_name_is_found() {
        for name in SESSION_COOKIES {
            assert_eq!(
                found(&format!("a=1; {name}=tok; b=2")),
                Some((name, "tok".into(), 0))
            );
        }
        assert_eq!(found("a=1; b=2"), None);
        assert_eq!(found(""), None);
    }

    #[test]
    fn secure_and_authjs_names_win() {
        assert_eq!(
            found("authjs.session-token=plain; __Secure-authjs.session-token=secure").unwrap(),
            ("__Secure-authjs.session-token", "secure".into(), 0)
        );
        assert_eq!(
            found("next-auth.session-token=v4; authjs.session-token=v5").unwrap(),
            ("authjs.session-token", "v5".into(), 0)
        );
    }

    #[test]
    fn chunks_join_in_numeric_order() {
        // Lexical order would put .10 before .2.
        let header: Vec<String> = (0..12)
            .rev()
            .map(|i| format!("authjs.session-token.{i}=<{i}>"))
            .collect();
        let (name, value, chunks) = found(&header.join("; ")).unwrap();
        assert_eq!(name, "authjs.session-token");
        assert_eq!(value, "<0><1><2><3><4><5><6><7><8><9><10><11>");
        assert_eq!(chunks, 12);
    }

    #[test]
    fn look_alike_names_are_not_chunks() {
        for other in [
            "authjs.session-tokenX=1",
            "authjs.session-token.=1",
            "authjs.session-token.x=1",
            "authjs.session-token.999=1",
            "xauthjs.session-token=1",
            "authjs.session-token.0.1=1",
        ] {
            assert_eq!(found(other), None, "{other}");
        }
    }

    #[test]
    fn empty_values_and_quotes() {
        assert_eq!(
            found("authjs.session-token=; next-auth.session-token=\"v4\"").unwrap(),
            ("next-auth.session-token", "v4".into(), 0)
        );
        assert_eq!(
            found("authjs.session-token=first; authjs.session-token=second").unwrap(),
            ("authjs.session-token", "first".into(), 0)
        );
    }

    #[test]
    fn whole_cookie_wins_over_stale_chunks() {
        assert_eq!(
            found("authjs.session-token.0=old0; authjs.session-token=new; authjs.session-token.1=old1")
                .unwrap(),
            ("authjs.session-token", "new".into(), 0)
        );
    }
}
