//! The client side of the wire, without I/O: the WebSocket upgrade request, masked client
//! frames, server frame headers, Engine.IO/Socket.IO packet kinds and the cheap extraction of
//! `seq` and `t` from a `bench:msg` payload.
//!
//! ```text
//! GET /socket.io/?EIO=4&transport=websocket HTTP/1.1      (upgrade, RFC 6455 4.1)
//! 0{"sid":..,"pingInterval":..}   Engine.IO OPEN          -> client sends 40
//! 40{"sid":".."}                  Socket.IO CONNECT ack
//! 2                               Engine.IO PING          -> client sends 3
//! 42["bench:msg",{"seq":S,"t":T,"pad":".."}]              a delivery
//! ```

/// The Engine.IO WebSocket endpoint every contract server serves.
pub const WS_PATH: &str = "/socket.io/?EIO=4&transport=websocket";

/// Server frames are never this large in the bench; a bigger one is a protocol error here.
pub const MAX_FRAME: u64 = 16 << 20;

/// The upgrade request for one client; `key` is its `Sec-WebSocket-Key`.
pub fn upgrade_request(host: &str, key: &str) -> String {
    format!(
        "GET {WS_PATH} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// Why the upgrade response was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum UpgradeError {
    Malformed,
    Status(u16),
    WrongAccept,
}

/// Parses the `101 Switching Protocols` response head. `Ok(None)` means "need more bytes";
/// `Ok(Some(n))` is the head length (bytes after it are already WebSocket frames).
///
/// # Errors
/// A malformed head, another status, or a `Sec-WebSocket-Accept` that does not match `key`.
pub fn parse_upgrade_response(buf: &[u8], key: &str) -> Result<Option<usize>, UpgradeError> {
    let mut headers = [httparse::EMPTY_HEADER; 24];
    let mut resp = httparse::Response::new(&mut headers);
    let n = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(UpgradeError::Malformed),
    };
    let code = resp.code.unwrap_or(0);
    if code != 101 {
        return Err(UpgradeError::Status(code));
    }
    let want = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let ok = resp
        .headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept") && h.value == want.as_bytes());
    if ok {
        Ok(Some(n))
    } else {
        Err(UpgradeError::WrongAccept)
    }
}

/// Appends one masked client frame (FIN set) with `opcode` to `out` (RFC 6455 5.3: every
/// client frame is masked).
pub fn encode_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    out.push(0x80 | opcode);
    let n = payload.len();
    if n < 126 {
        out.push(0x80 | n as u8);
    } else if let Ok(n16) = u16::try_from(n) {
        out.push(0x80 | 126);
        out.extend_from_slice(&n16.to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
}

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// One server frame located in a buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    /// Payload range within the buffer handed to [`parse_frame`].
    pub start: usize,
    pub end: usize,
}

/// Why a server frame was rejected.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    /// RFC 6455 5.1: a server must not mask.
    MaskedFrameFromServer,
    TooLarge(u64),
}

/// Locates the first frame in `buf`. `Ok(None)` consumes nothing and means "need more".
///
/// # Errors
/// A masked frame or one larger than [`MAX_FRAME`].
pub fn parse_frame(buf: &[u8]) -> Result<Option<Frame>, FrameError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    if buf[1] & 0x80 != 0 {
        return Err(FrameError::MaskedFrameFromServer);
    }
    let (len, head) = match buf[1] & 0x7f {
        126 if buf.len() >= 4 => (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
        127 if buf.len() >= 10 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(b), 10)
        }
        126 | 127 => return Ok(None),
        n => (u64::from(n), 2),
    };
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    let end = head + len as usize;
    if buf.len() < end {
        return Ok(None);
    }
    Ok(Some(Frame {
        fin: buf[0] & 0x80 != 0,
        opcode: buf[0] & 0x0f,
        start: head,
        end,
    }))
}

/// What one Engine.IO text packet (a whole WebSocket text message) means to a bench client.
#[derive(Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    /// `0{...}`: the handshake, JSON follows.
    Open(&'a [u8]),
    /// `2`: answer with `3`.
    Ping,
    /// `1` or Socket.IO `41`: the server ends the session.
    Close,
    /// `40{"sid":".."}`: the namespace is connected.
    Connected(&'a [u8]),
    /// `44{...}`: the namespace refused us.
    ConnectError(&'a [u8]),
    /// `42["bench:msg",{...}]`: the object's bytes.
    BenchMsg(&'a [u8]),
    /// `43<id>[...]`: an acknowledgement and its arguments.
    Ack(u64, &'a [u8]),
    /// Anything else (noop `6`, other events): ignored.
    Other,
}

const BENCH_MSG: &[u8] = b"42[\"bench:msg\",";

/// Classifies an Engine.IO packet of the default namespace.
pub fn classify(p: &[u8]) -> Packet<'_> {
    if p.starts_with(BENCH_MSG) {
        return Packet::BenchMsg(&p[BENCH_MSG.len()..]);
    }
    match p {
        [b'2', ..] => Packet::Ping,
        [b'0', rest @ ..] => Packet::Open(rest),
        [b'1', ..] | [b'4', b'1', ..] => Packet::Close,
        [b'4', b'0', rest @ ..] => Packet::Connected(rest),
        [b'4', b'4', rest @ ..] => Packet::ConnectError(rest),
        [b'4', b'3', rest @ ..] => {
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            parse_u64(&rest[..digits]).map_or(Packet::Other, |id| Packet::Ack(id, &rest[digits..]))
        }
        _ => Packet::Other,
    }
}

/// Parses an unsigned decimal, `None` if empty, not all digits, or overflowing.
pub fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        if d.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        } else {
            None
        }
    })
}

/// Finds `needle` in `hay` (payloads are ~100 bytes: a plain scan on the first byte is fast).
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let first = needle[0];
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        match hay[i..].iter().position(|&b| b == first) {
            None => return None,
            Some(off) => {
                i += off;
                if hay[i..].starts_with(needle) {
                    return Some(i);
                }
                i += 1;
            }
        }
    }
    None
}

/// The unsigned integer after `key` (such as `"seq":`), without parsing the JSON: the bench
/// payload is ours, and the only other string in it is the padding of `x`s or a room name.
pub fn field_u64(obj: &[u8], key: &[u8]) -> Option<u64> {
    let at = find(obj, key)? + key.len();
    let digits = obj[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    parse_u64(&obj[at..at + digits])
}

/// The room number of a chat-rooms payload (`"room":"r17"` is 17).
pub fn room_number(obj: &[u8]) -> Option<u64> {
    field_u64(obj, b"\"room\":\"r")
}

/// The `seq` and `t` of a `bench:msg` payload.
pub fn seq_and_t(obj: &[u8]) -> Option<(u64, u64)> {
    Some((field_u64(obj, b"\"seq\":")?, field_u64(obj, b"\"t\":")?))
}

/// The `sid` of a CONNECT ack body `{"sid":"..."}`.
pub fn connect_sid(body: &[u8]) -> Option<&str> {
    let key = b"\"sid\":\"";
    let at = find(body, key)? + key.len();
    let len = body[at..].iter().position(|&b| b == b'"')?;
    std::str::from_utf8(&body[at..at + len]).ok()
}

/// The payload object `bench:publish` carries (and `bench:msg` relays).
pub fn write_payload(out: &mut Vec<u8>, room: Option<&str>, seq: u64, t: u64, pad: &str) {
    use std::io::Write;
    out.push(b'{');
    if let Some(r) = room {
        let _ = write!(out, "\"room\":\"{r}\",");
    }
    let _ = write!(out, "\"seq\":{seq},\"t\":{t},\"pad\":\"{pad}\"}}");
}

/// The Socket.IO CONNECT of a client of the production profile: `40{"token":"JWT"}` with
/// an HS256 token of its own (`sub` = `bench-<serial>`, valid for a day), so every client is
/// a distinct authenticated user, as on the platform.
pub fn hs256_connect(secret: &[u8], serial: u64) -> Vec<u8> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use hmac::{Hmac, KeyInit, Mac};
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        + 86_400;
    let head = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = format!(r#"{{"sub":"bench-{serial}","exp":{exp}}}"#);
    let signed = format!("{head}.{}", URL_SAFE_NO_PAD.encode(claims));
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(signed.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!(r#"40{{"token":"{signed}.{sig}"}}"#).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hs256_connect_carries_a_token_the_secret_verifies_with_the_clients_own_subject() {
        let packet = hs256_connect(b"s3cret", 42);
        let text = std::str::from_utf8(&packet).unwrap();
        let auth: serde_json::Value =
            serde_json::from_str(text.strip_prefix("40").unwrap()).unwrap();
        let token = auth["token"].as_str().unwrap();
        let key = jsonwebtoken::DecodingKey::from_secret(b"s3cret");
        let v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &key, &v).unwrap();
        assert_eq!(data.claims["sub"], "bench-42");
        let wrong = jsonwebtoken::DecodingKey::from_secret(b"other");
        assert!(jsonwebtoken::decode::<serde_json::Value>(token, &wrong, &v).is_err());
    }

    #[test]
    fn masked_frame_decodes_with_its_mask() {
        let mut out = Vec::new();
        encode_frame(&mut out, OP_TEXT, b"40", [1, 2, 3, 4]);
        assert_eq!(out, [0x81, 0x82, 1, 2, 3, 4, b'4' ^ 1, b'0' ^ 2]);
        let mut big = Vec::new();
        encode_frame(&mut big, OP_TEXT, &[b'x'; 300], [0; 4]);
        assert_eq!(&big[..4], &[0x81, 0x80 | 126, 1, 44]);
        assert_eq!(big.len(), 4 + 4 + 300);
    }

    #[test]
    fn server_frames_parse_in_place_and_report_need_more() {
        let buf = [0x81, 3, b'4', b'0', b'{', 0x81];
        let f = parse_frame(&buf).unwrap().unwrap();
        assert_eq!((f.fin, f.opcode, f.start, f.end), (true, OP_TEXT, 2, 5));
        assert_eq!(parse_frame(&buf[5..]), Ok(None));
        assert_eq!(parse_frame(&[0x81, 126, 1]), Ok(None));
        let mut long = vec![0x81, 126, 1, 0];
        long.extend(vec![b'x'; 256]);
        assert_eq!(parse_frame(&long).unwrap().unwrap().end, 260);
        assert_eq!(
            parse_frame(&[0x81, 0x81, 0, 0, 0, 0, 0]),
            Err(FrameError::MaskedFrameFromServer)
        );
    }

    #[test]
    fn packets_classify() {
        assert_eq!(classify(b"2"), Packet::Ping);
        assert_eq!(classify(b"0{\"sid\":1}"), Packet::Open(b"{\"sid\":1}"));
        assert_eq!(
            classify(b"40{\"sid\":\"ab\"}"),
            Packet::Connected(b"{\"sid\":\"ab\"}")
        );
        assert_eq!(classify(b"431[]"), Packet::Ack(1, b"[]"));
        assert_eq!(classify(b"41"), Packet::Close);
        assert_eq!(classify(b"42[\"bench:msg\",{}]"), Packet::BenchMsg(b"{}]"));
        assert_eq!(classify(b"42[\"other\",1]"), Packet::Other);
        assert_eq!(connect_sid(b"{\"sid\":\"abc-1\"}"), Some("abc-1"));
    }

    #[test]
    fn seq_and_t_found_in_any_key_order() {
        let mut p = Vec::new();
        write_payload(&mut p, Some("r3"), 17, 123456789, "xxx");
        assert_eq!(
            p,
            b"{\"room\":\"r3\",\"seq\":17,\"t\":123456789,\"pad\":\"xxx\"}"
        );
        assert_eq!(seq_and_t(&p), Some((17, 123456789)));
        assert_eq!(room_number(&p), Some(3));
        // serde_json without preserve_order sorts the keys.
        let sorted = b"{\"pad\":\"xxxx\",\"room\":\"r1\",\"seq\":5,\"t\":99}]";
        assert_eq!(seq_and_t(sorted), Some((5, 99)));
        assert_eq!(seq_and_t(b"{\"seq\":,\"t\":1}"), None);
        assert_eq!(parse_u64(b"18446744073709551616"), None);
    }

    #[test]
    fn upgrade_response_checks_status_and_accept() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let ok = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x012";
        assert_eq!(parse_upgrade_response(ok, key), Ok(Some(ok.len() - 3)));
        assert_eq!(parse_upgrade_response(&ok[..20], key), Ok(None));
        let bad = b"HTTP/1.1 400 Bad Request\r\n\r\n";
        assert_eq!(
            parse_upgrade_response(bad, key),
            Err(UpgradeError::Status(400))
        );
        let wrong = b"HTTP/1.1 101 OK\r\nSec-WebSocket-Accept: nope\r\n\r\n";
        assert_eq!(
            parse_upgrade_response(wrong, key),
            Err(UpgradeError::WrongAccept)
        );
    }
}
