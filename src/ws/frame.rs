//! WebSocket framing (RFC 6455) for the server side: parse masked client frames in place
//! (unmasked where they lie in the read buffer, borrowed from it: a pong or a small event
//! costs no allocation), encode unmasked server frames into one contiguous buffer.
//!
//! Header parsing is tungstenite's `FrameHeader::parse`; unmasking and encoding are here so a
//! server frame can be built once and shared by every recipient as a `Bytes`.
//!
//! ```text
//!  0               1               2               3
//!  FIN RSV(3) opcode(4) | MASK len(7) | ext len (0/2/8) | mask key (0/4) | payload
//! ```

use std::io::Cursor;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tungstenite::protocol::frame::FrameHeader;

/// The opcodes we act on, reduced from tungstenite's richer `OpCode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

/// One parsed client frame; `payload` is already unmasked and borrows the input.
#[derive(Debug)]
pub struct Frame<'a> {
    pub fin: bool,
    pub opcode: Opcode,
    pub payload: &'a [u8],
}

/// Why a client frame is refused. Each maps to a close code in [`FrameError::close_code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("malformed frame header")]
    BadHeader,
    #[error("reserved bits set without a negotiated extension")]
    ReservedBits,
    #[error("reserved opcode")]
    ReservedOpcode,
    #[error("client frame is not masked")]
    UnmaskedFrameFromClient,
    #[error("control frame longer than 125 bytes or fragmented")]
    BadControlFrame,
    #[error("message larger than maxPayload")]
    MessageTooBig,
}

impl FrameError {
    /// The WebSocket close status sent before closing.
    pub fn close_code(self) -> u16 {
        match self {
            FrameError::MessageTooBig => 1009,
            _ => 1002,
        }
    }
}

/// Parses one frame from the start of `buf`, unmasking its payload in place.
///
/// Returns `Ok(None)` when `buf` does not yet hold a whole frame (nothing is consumed or
/// changed), or the frame and the number of bytes it used; the payload borrows `buf` (its
/// bytes there are now unmasked, so the caller must advance past `used`). A declared length
/// above `max_len` is refused before the payload arrives, so a client cannot make us buffer
/// more than `max_len`.
///
/// # Errors
/// Every [`FrameError`] is fatal for the connection.
pub fn parse(buf: &mut [u8], max_len: usize) -> Result<Option<(Frame<'_>, usize)>, FrameError> {
    let mut cursor = Cursor::new(&*buf);
    let (header, len) = match FrameHeader::parse(&mut cursor) {
        Ok(Some(h)) => h,
        Ok(None) => return Ok(None),
        Err(_) => return Err(FrameError::BadHeader),
    };
    if header.rsv1 || header.rsv2 || header.rsv3 {
        return Err(FrameError::ReservedBits);
    }
    let opcode = match header.opcode {
        OpCode::Data(Data::Continue) => Opcode::Continuation,
        OpCode::Data(Data::Text) => Opcode::Text,
        OpCode::Data(Data::Binary) => Opcode::Binary,
        OpCode::Control(Control::Close) => Opcode::Close,
        OpCode::Control(Control::Ping) => Opcode::Ping,
        OpCode::Control(Control::Pong) => Opcode::Pong,
        _ => return Err(FrameError::ReservedOpcode),
    };
    let is_control = matches!(opcode, Opcode::Close | Opcode::Ping | Opcode::Pong);
    if is_control && (len > 125 || !header.is_final) {
        return Err(FrameError::BadControlFrame);
    }
    let mask = header.mask.ok_or(FrameError::UnmaskedFrameFromClient)?;
    if len > max_len as u64 {
        return Err(FrameError::MessageTooBig);
    }
    let start = cursor.position() as usize;
    let end = start + len as usize;
    if buf.len() < end {
        return Ok(None);
    }
    let payload = &mut buf[start..end];
    unmask(payload, mask);
    Ok(Some((
        Frame {
            fin: header.is_final,
            opcode,
            payload,
        },
        end,
    )))
}

/// XORs `buf` with the 4-byte client mask, eight bytes at a time where possible.
pub fn unmask(buf: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let v = u64::from_ne_bytes(chunk.try_into().expect("chunk of 8")) ^ wide;
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// Whether a close frame's payload is valid (RFC 6455 5.5.1, 7.4): empty, or a status code a
/// peer may send followed by a UTF-8 reason.
pub fn valid_close_payload(p: &[u8]) -> bool {
    match p.len() {
        0 => true,
        1 => false,
        _ => {
            let code = u16::from_be_bytes([p[0], p[1]]);
            let code_ok = matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999);
            code_ok && std::str::from_utf8(&p[2..]).is_ok()
        }
    }
}

/// Length of the header of an unmasked server frame carrying `len` payload bytes.
pub fn header_len(len: usize) -> usize {
    match len {
        0..=125 => 2,
        126..=0xFFFF => 4,
        _ => 10,
    }
}

/// Appends the header of an unmasked, final server frame.
pub fn encode_header(opcode: Opcode, len: usize, out: &mut Vec<u8>) {
    let op: u8 = match opcode {
        Opcode::Continuation => 0x0,
        Opcode::Text => 0x1,
        Opcode::Binary => 0x2,
        Opcode::Close => 0x8,
        Opcode::Ping => 0x9,
        Opcode::Pong => 0xA,
    };
    out.push(0x80 | op);
    match len {
        0..=125 => out.push(len as u8),
        126..=0xFFFF => {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
}

/// Appends a whole unmasked server frame.
pub fn encode(opcode: Opcode, payload: &[u8], out: &mut Vec<u8>) {
    out.reserve(header_len(payload.len()) + payload.len());
    encode_header(opcode, payload.len(), out);
    out.extend_from_slice(payload);
}

/// A close frame with a status code and no reason.
pub fn close_frame(code: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(4);
    encode(Opcode::Close, &code.to_be_bytes(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(opcode: u8, fin: bool, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut out = vec![(if fin { 0x80 } else { 0 }) | opcode];
        let len = payload.len();
        if len < 126 {
            out.push(0x80 | len as u8);
        } else if len <= 0xFFFF {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[test]
    fn rfc6455_masked_hello() {
        // RFC 6455 section 5.7: a single-frame masked text message "Hello".
        let bytes = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let mut bytes = bytes;
        let (frame, used) = parse(&mut bytes, 100).unwrap().unwrap();
        assert_eq!(used, 11);
        assert!(frame.fin);
        assert_eq!(frame.opcode, Opcode::Text);
        assert_eq!(frame.payload, b"Hello");
    }

    #[test]
    fn partial_frame_consumes_nothing() {
        let mut bytes = masked(0x1, true, b"4hello world", [1, 2, 3, 4]);
        let original = bytes.clone();
        for cut in 0..bytes.len() {
            assert!(
                parse(&mut bytes[..cut], 100).unwrap().is_none(),
                "cut at {cut}"
            );
        }
        assert_eq!(bytes, original, "a partial frame is left as it came");
    }

    #[test]
    fn unmask_long_payload_matches_bytewise() {
        let payload: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let mut bytes = masked(0x2, true, &payload, [9, 8, 7, 6]);
        let (frame, _) = parse(&mut bytes, 2000).unwrap().unwrap();
        assert_eq!(frame.payload, payload);
    }

    #[test]
    fn unmasked_client_frame_is_refused() {
        let mut out = Vec::new();
        encode(Opcode::Text, b"42", &mut out);
        assert_eq!(
            parse(&mut out, 100).unwrap_err(),
            FrameError::UnmaskedFrameFromClient
        );
    }

    #[test]
    fn oversized_declared_length_refused_before_payload_arrives() {
        let mut bytes = masked(0x1, true, &vec![b'a'; 70_000], [1, 1, 1, 1]);
        assert_eq!(
            parse(&mut bytes[..14], 1000).unwrap_err(),
            FrameError::MessageTooBig
        );
    }

    #[test]
    fn reserved_bits_and_bad_control_frames_refused() {
        let mut rsv = masked(0x1, true, b"x", [0; 4]);
        rsv[0] |= 0x40;
        assert_eq!(parse(&mut rsv, 100).unwrap_err(), FrameError::ReservedBits);
        let mut ping = masked(0x9, false, b"x", [0; 4]);
        assert_eq!(
            parse(&mut ping, 100).unwrap_err(),
            FrameError::BadControlFrame
        );
        let mut reserved = masked(0x3, true, b"x", [0; 4]);
        assert!(matches!(
            parse(&mut reserved, 100).unwrap_err(),
            FrameError::ReservedOpcode | FrameError::BadHeader
        ));
    }

    #[test]
    fn two_frames_in_one_buffer_parse_in_turn() {
        let mut bytes = masked(0x1, true, b"3", [5, 6, 7, 8]);
        bytes.extend(masked(0xA, true, b"", [1, 2, 3, 4]));
        let (pong, used) = parse(&mut bytes, 100).unwrap().unwrap();
        assert_eq!((pong.opcode, pong.payload), (Opcode::Text, &b"3"[..]));
        let (ctrl, rest) = parse(&mut bytes[used..], 100).unwrap().unwrap();
        assert_eq!(
            (ctrl.opcode, ctrl.payload.len(), rest),
            (Opcode::Pong, 0, 6)
        );
    }

    #[test]
    fn close_payloads() {
        assert!(valid_close_payload(b""));
        assert!(valid_close_payload(&[0x03, 0xE8]));
        assert!(!valid_close_payload(&[0x03]));
        assert!(!valid_close_payload(&[0x03, 0xED]), "1005 is reserved");
        assert!(
            !valid_close_payload(&[0x03, 0xE8, 0xff]),
            "reason must be UTF-8"
        );
    }

    #[test]
    fn encode_header_lengths() {
        for (len, hl) in [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)] {
            let mut out = Vec::new();
            encode_header(Opcode::Binary, len, &mut out);
            assert_eq!(out.len(), hl);
            assert_eq!(header_len(len), hl);
        }
        assert_eq!(close_frame(1009), vec![0x88, 2, 0x03, 0xF1]);
    }
}
