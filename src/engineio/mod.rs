//! Engine.IO v4: packets, polling payloads, outbound wire forms and session ids.

pub mod packet;
pub mod payload;
pub mod wire;

use base64::Engine as _;
use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

/// Length of the ids [`new_id`] makes.
pub const ID_LEN: usize = 22;

/// An id kept inline when it has the length of the ids we make (22 bytes, no heap allocation:
/// a session's sid and the index keys of sessions and sockets cost no 32-byte heap chunk
/// each), on the heap otherwise (ids restored from elsewhere). Hashes and compares as its
/// `str`, so maps keyed by it are looked up with a `&str`.
#[derive(Clone)]
pub enum IdKey {
    Inline([u8; ID_LEN]),
    Heap(Box<str>),
}

impl IdKey {
    pub fn new(s: &str) -> IdKey {
        match <[u8; ID_LEN]>::try_from(s.as_bytes()) {
            Ok(b) => IdKey::Inline(b),
            Err(_) => IdKey::Heap(s.into()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            // Built from a `str`, so always UTF-8; the fallback is never taken.
            IdKey::Inline(b) => std::str::from_utf8(b).unwrap_or("?"),
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
}
