//! Engine.IO v4: packets, polling payloads, outbound wire forms and session ids.

pub mod packet;
pub mod payload;
pub mod wire;

use base64::Engine as _;
use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

/// Length of the ids [`new_id`] makes.
pub const ID_LEN: usize = 22;
/// Longest id kept inline: [`new_id`]'s 22 characters plus up to 8 slot digits ([`slot_id`]).
const INLINE_MAX: usize = ID_LEN + 8;

/// An id kept inline when it is no longer than the ids we make (no heap allocation: a
/// session's sid costs no 32-byte heap chunk), on the heap otherwise (ids restored from
/// elsewhere). Hashes and compares as its `str`, so maps keyed by it are looked up with a
/// `&str`.
#[derive(Clone)]
pub enum IdKey {
    Inline { len: u8, bytes: [u8; INLINE_MAX] },
    Heap(Box<str>),
}

impl IdKey {
    pub fn new(s: &str) -> IdKey {
        if s.len() <= INLINE_MAX {
            let mut bytes = [0u8; INLINE_MAX];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            IdKey::Inline {
                len: s.len() as u8,
                bytes,
            }
        } else {
            IdKey::Heap(s.into())
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            // Built from a `str` cut at its own length, so always UTF-8; the fallback is
            // never taken.
            IdKey::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or("?")
            }
            IdKey::Heap(s) => s,
        }
    }
}

impl PartialEq for IdKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for IdKey {}

impl Hash for IdKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl serde::Serialize for IdKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl std::ops::Deref for IdKey {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for IdKey {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for IdKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for IdKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// A new unguessable session or socket id: 128 bits from the OS CSPRNG, base64url (22 chars).
///
/// # Panics
/// If the OS random source fails, which leaves no safe way to go on.
pub fn new_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("OS random source failed");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Length of the random part of [`slot_id`].
const RANDOM_CHARS: usize = 22;
const DIGITS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A new unguessable id that also names the table slot it will live in: [`new_id`]'s 22
/// random characters, then `slot` in base64url digits. Looking it up is [`slot_of`] plus one
/// comparison with the id kept in that slot, so no table keyed by id is needed (such a table
/// costs an entry per session and, under churn, doubles once its tombstones run out).
pub fn slot_id(slot: usize) -> String {
    let mut id = new_id();
    let start = id.len();
    let mut n = slot;
    loop {
        id.push(DIGITS[n % 64] as char);
        n /= 64;
        if n == 0 {
            break;
        }
    }
    // The least significant digit was pushed first; put the most significant first.
    let digits: String = id[start..].chars().rev().collect();
    id.truncate(start);
    id.push_str(&digits);
    id
}

/// The slot a [`slot_id`] names, or `None` when `id` cannot be one. The caller must still
/// compare `id` with the id kept in that slot (a guessed or stale id names a slot too).
pub fn slot_of(id: &str) -> Option<usize> {
    let digits = id.as_bytes().get(RANDOM_CHARS..)?;
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    digits.iter().try_fold(0usize, |n, &c| {
        let d = DIGITS.iter().position(|&x| x == c)?;
        Some(n * 64 + d)
    })
}

/// Engine.IO HTTP error codes, as the reference server sends them in `{"code":N,"message":..}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EioError {
    UnknownTransport = 0,
    UnknownSid = 1,
    BadHandshakeMethod = 2,
    BadRequest = 3,
    Forbidden = 4,
    UnsupportedProtocolVersion = 5,
}

impl EioError {
    pub fn message(self) -> &'static str {
        match self {
            EioError::UnknownTransport => "Transport unknown",
            EioError::UnknownSid => "Session ID unknown",
            EioError::BadHandshakeMethod => "Bad handshake method",
            EioError::BadRequest => "Bad request",
            EioError::Forbidden => "Forbidden",
            EioError::UnsupportedProtocolVersion => "Unsupported protocol version",
        }
    }

    /// The JSON body of the error response.
    pub fn body(self) -> String {
        format!(
            "{{\"code\":{},\"message\":\"{}\"}}",
            self as u8,
            self.message()
        )
    }

    pub fn status(self) -> u16 {
        match self {
            EioError::Forbidden => 403,
            _ => 400,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_unique_and_url_safe() {
        let a = super::new_id();
        let b = super::new_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 22);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }

    #[test]
    fn slot_ids_name_their_slot() {
        for slot in [0usize, 1, 63, 64, 4095, 4096, 1_000_000, u32::MAX as usize] {
            let id = super::slot_id(slot);
            assert!(id
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
            assert_eq!(super::slot_of(&id), Some(slot), "{id}");
        }
        assert_ne!(super::slot_id(7), super::slot_id(7), "random part differs");
        assert_eq!(super::slot_of(&super::new_id()), None, "no slot digits");
        assert_eq!(super::slot_of("short"), None);
        assert_eq!(
            super::slot_of("aaaaaaaaaaaaaaaaaaaaaa*"),
            None,
            "not a digit"
        );
        assert_eq!(
            super::slot_of("aaaaaaaaaaaaaaaaaaaaaaAAAAAAAAA"),
            None,
            "too long"
        );
    }
}
