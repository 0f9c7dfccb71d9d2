//! Engine.IO v4 packets: parsing what a client sends and the handful of control packets the
//! server writes.
//!
//! ```text
//! text packet   = type-digit [data]        0 open, 1 close, 2 ping, 3 pong, 4 message,
//!                                          5 upgrade, 6 noop
//! binary packet = raw bytes (WebSocket binary frame) or "b" base64 (polling payload)
//! ```

use base64::Engine as _;

/// A decoded client packet. Text data borrows from the input.
#[derive(Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    Open,
    Close,
    Ping(&'a [u8]),
    Pong(&'a [u8]),
    Message(&'a [u8]),
    Binary(Vec<u8>),
    Upgrade,
    Noop,
}

/// Why a client packet is refused; all of them end the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("empty packet")]
    Empty,
    #[error("unknown packet type")]
    UnknownType,
    #[error("invalid base64 in binary packet")]
    BadBase64,
}

/// Parses one text packet (a WebSocket text frame, or one record of a polling payload).
///
/// # Errors
/// An empty packet or an unknown type digit.
pub fn parse_text(data: &[u8]) -> Result<Packet<'_>, PacketError> {
    let (&kind, rest) = data.split_first().ok_or(PacketError::Empty)?;
    Ok(match kind {
        b'0' => Packet::Open,
        b'1' => Packet::Close,
        b'2' => Packet::Ping(rest),
        b'3' => Packet::Pong(rest),
        b'4' => Packet::Message(rest),
        b'5' => Packet::Upgrade,
        b'6' => Packet::Noop,
        _ => return Err(PacketError::UnknownType),
    })
}

/// Parses one record of a polling payload, where binary travels as `b<base64>`.
///
/// # Errors
/// As [`parse_text`], plus invalid base64.
pub fn parse_polling_record(record: &[u8]) -> Result<Packet<'_>, PacketError> {
    match record.split_first() {
        Some((b'b', b64)) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map(Packet::Binary)
            .map_err(|_| PacketError::BadBase64),
        _ => parse_text(record),
    }
}

/// The OPEN packet body: exactly the five keys the official client reads, in reference order.
pub fn open_packet(
    sid: &str,
    upgrades: bool,
    ping_interval: u64,
    ping_timeout: u64,
    max_payload: usize,
) -> String {
    format!(
        "0{{\"sid\":\"{sid}\",\"upgrades\":[{}],\"pingInterval\":{ping_interval},\"pingTimeout\":{ping_timeout},\"maxPayload\":{max_payload}}}",
        if upgrades { "\"websocket\"" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_every_type() {
        assert_eq!(parse_text(b"0").unwrap(), Packet::Open);
        assert_eq!(parse_text(b"1").unwrap(), Packet::Close);
        assert_eq!(parse_text(b"2probe").unwrap(), Packet::Ping(b"probe"));
        assert_eq!(parse_text(b"3").unwrap(), Packet::Pong(b""));
        assert_eq!(parse_text(b"4hello").unwrap(), Packet::Message(b"hello"));
        assert_eq!(parse_text(b"5").unwrap(), Packet::Upgrade);
        assert_eq!(parse_text(b"6").unwrap(), Packet::Noop);
    }

    #[test]
    fn malformed_packets_are_errors() {
        assert_eq!(parse_text(b"").unwrap_err(), PacketError::Empty);
        assert_eq!(parse_text(b"abc").unwrap_err(), PacketError::UnknownType);
        assert_eq!(parse_text(b"7").unwrap_err(), PacketError::UnknownType);
        assert_eq!(
            parse_polling_record(b"b!!!").unwrap_err(),
            PacketError::BadBase64
        );
    }

    #[test]
    fn polling_binary_record_is_base64() {
        assert_eq!(
            parse_polling_record(b"bAQID").unwrap(),
            Packet::Binary(vec![1, 2, 3])
        );
        assert_eq!(parse_polling_record(b"4x").unwrap(), Packet::Message(b"x"));
    }

    #[test]
    fn open_packet_has_exactly_five_keys() {
        let p = open_packet("abc", true, 25000, 20000, 1_000_000);
        assert_eq!(
            p,
            r#"0{"sid":"abc","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#
        );
        assert!(open_packet("x", false, 1, 2, 3).contains(r#""upgrades":[]"#));
    }
}
