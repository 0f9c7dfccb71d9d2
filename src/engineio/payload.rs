//! Polling payloads: several Engine.IO packets in one HTTP body, joined by the record separator.
//!
//! ```text
//! payload = packet *( %x1E packet )        binary packets as "b" + base64
//! ```

/// The record separator between packets of one polling body.
pub const SEPARATOR: u8 = 0x1e;

/// Splits a POST body into its records. An empty body is one empty (invalid) record, as the
/// reference parser sees it.
pub fn split(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    body.split(|&b| b == SEPARATOR)
}

/// Joins already-encoded polling records into one body.
pub fn join<'a>(records: impl IntoIterator<Item = &'a [u8]>, out: &mut Vec<u8>) {
    for (i, r) in records.into_iter().enumerate() {
        if i > 0 {
            out.push(SEPARATOR);
        }
        out.extend_from_slice(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_join_round_trip() {
        let body = b"4hello\x1e2\x1ebAQID";
        let recs: Vec<&[u8]> = split(body).collect();
        assert_eq!(recs, vec![&b"4hello"[..], b"2", b"bAQID"]);
        let mut out = Vec::new();
        join(recs, &mut out);
        assert_eq!(out, body);
    }

    #[test]
    fn empty_body_is_one_empty_record() {
        assert_eq!(split(b"").collect::<Vec<_>>(), vec![&b""[..]]);
        assert_eq!(split(b"4a\x1e").collect::<Vec<_>>(), vec![&b"4a"[..], b""]);
    }
}
