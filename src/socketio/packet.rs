//! Socket.IO v5 packets: parse the text part a client sends, validate its payload as the
//! reference parser does, and encode what the server sends.
//!
//! ```text
//! packet = type [attachments "-"] [namespace ","] [ack-id] [JSON]
//! type   = 0 CONNECT | 1 DISCONNECT | 2 EVENT | 3 ACK | 4 CONNECT_ERROR
//!        | 5 BINARY_EVENT | 6 BINARY_ACK
//! e.g.     2["hello",1]   2/admin,13["x"]   51-["up",{"_placeholder":true,"num":0}]
//! ```
//! The namespace is omitted for `/`. Binary packets are followed by `attachments` binary
//! Engine.IO messages that replace the `_placeholder` objects in order of `num`.

use serde_json::Value;

/// Attachments one packet may announce; the reference parser's default limit is 10.
pub const MAX_ATTACHMENTS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketType {
    Connect = 0,
    Disconnect = 1,
    Event = 2,
    Ack = 3,
    ConnectError = 4,
    BinaryEvent = 5,
    BinaryAck = 6,
}

impl PacketType {
    fn from_digit(b: u8) -> Option<Self> {
        Some(match b {
            b'0' => PacketType::Connect,
            b'1' => PacketType::Disconnect,
            b'2' => PacketType::Event,
            b'3' => PacketType::Ack,
            b'4' => PacketType::ConnectError,
            b'5' => PacketType::BinaryEvent,
            b'6' => PacketType::BinaryAck,
            _ => return None,
        })
    }

    pub fn is_binary(self) -> bool {
        matches!(self, PacketType::BinaryEvent | PacketType::BinaryAck)
    }
}

/// A parsed client packet, shaped like the spec. The namespace borrows from the input; the
/// payload is parsed JSON, already validated as the reference parser does (an event's `args`
/// start with its name, a string or number; an ack's `args` are its arguments).
#[derive(Debug, PartialEq)]
pub enum Packet<'a> {
    Connect {
        ns: &'a str,
        auth: Option<Value>,
    },
    Disconnect {
        ns: &'a str,
    },
    Event {
        ns: &'a str,
        id: Option<u64>,
        args: Vec<Value>,
    },
    Ack {
        ns: &'a str,
        id: Option<u64>,
        args: Vec<Value>,
    },
    ConnectError {
        ns: &'a str,
        data: Value,
    },
    /// Followed by `attachments` binary messages that replace its placeholders.
    BinaryEvent {
        ns: &'a str,
        id: Option<u64>,
        attachments: usize,
        args: Vec<Value>,
    },
    BinaryAck {
        ns: &'a str,
        id: Option<u64>,
        attachments: usize,
        args: Vec<Value>,
    },
}

impl<'a> Packet<'a> {
    pub fn namespace(&self) -> &'a str {
        match self {
            Packet::Connect { ns, .. }
            | Packet::Disconnect { ns }
            | Packet::Event { ns, .. }
            | Packet::Ack { ns, .. }
            | Packet::ConnectError { ns, .. }
            | Packet::BinaryEvent { ns, .. }
            | Packet::BinaryAck { ns, .. } => ns,
        }
    }

    fn build(
        kind: PacketType,
        ns: &'a str,
        id: Option<u64>,
        attachments: usize,
        data: Option<Value>,
    ) -> Result<Self, ParseError> {
        let args = |data: Option<Value>| match data {
            Some(Value::Array(a)) => Ok(a),
            _ => Err(ParseError::InvalidPayload),
        };
        Ok(match kind {
            PacketType::Connect => Packet::Connect { ns, auth: data },
            PacketType::Disconnect => Packet::Disconnect { ns },
            PacketType::Event => Packet::Event {
                ns,
                id,
                args: args(data)?,
            },
            PacketType::Ack => Packet::Ack {
                ns,
                id,
                args: args(data)?,
            },
            PacketType::ConnectError => Packet::ConnectError {
                ns,
                data: data.unwrap_or(Value::Null),
            },
            PacketType::BinaryEvent => Packet::BinaryEvent {
                ns,
                id,
                attachments,
                args: args(data)?,
            },
            PacketType::BinaryAck => Packet::BinaryAck {
                ns,
                id,
                attachments,
                args: args(data)?,
            },
        })
    }
}

/// Why a packet is refused. Every variant closes the connection, as the reference does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("empty packet")]
    Empty,
    #[error("unknown packet type")]
    UnknownType,
    #[error("invalid attachment count")]
    BadAttachmentCount,
    #[error("too many attachments")]
    TooManyAttachments,
    #[error("invalid ack id")]
    BadAckId,
    #[error("payload is not valid JSON")]
    BadJson,
    #[error("payload shape is invalid for this packet type")]
    InvalidPayload,
    #[error("packet is not valid UTF-8")]
    NotUtf8,
    #[error("attachment placeholder out of range or count mismatch")]
    BadPlaceholder,
}

/// Event names the reference server refuses from clients.
pub const RESERVED_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// Parses the text of one Socket.IO packet (the Engine.IO message without its `4`).
///
/// # Errors
/// Any [`ParseError`]; all are fatal for the Engine.IO session.
pub fn parse(input: &[u8]) -> Result<Packet<'_>, ParseError> {
    let s = std::str::from_utf8(input).map_err(|_| ParseError::NotUtf8)?;
    let bytes = s.as_bytes();
    let kind = PacketType::from_digit(*bytes.first().ok_or(ParseError::Empty)?)
        .ok_or(ParseError::UnknownType)?;
    let mut i = 1;

    let mut attachments = 0;
    if kind.is_binary() {
        let dash = s[i..].find('-').ok_or(ParseError::BadAttachmentCount)? + i;
        let digits = &s[i..dash];
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::BadAttachmentCount);
        }
        attachments = digits.parse().map_err(|_| ParseError::TooManyAttachments)?;
        if attachments > MAX_ATTACHMENTS {
            return Err(ParseError::TooManyAttachments);
        }
        i = dash + 1;
    }

    let mut namespace = "/";
    if bytes.get(i) == Some(&b'/') {
        let end = s[i..].find(',').map_or(s.len(), |p| p + i);
        namespace = &s[i..end];
        i = (end + 1).min(s.len());
    }

    let mut id = None;
    let digits_end = bytes[i..]
        .iter()
        .position(|b| !b.is_ascii_digit())
        .map_or(bytes.len(), |p| p + i);
    if digits_end > i {
        id = Some(s[i..digits_end].parse().map_err(|_| ParseError::BadAckId)?);
        i = digits_end;
    }

    let data = if i < bytes.len() {
        let v: Value = serde_json::from_str(&s[i..]).map_err(|_| ParseError::BadJson)?;
        if !payload_valid(kind, &v) {
            return Err(ParseError::InvalidPayload);
        }
        Some(v)
    } else {
        None
    };
    if data.is_none()
        && matches!(
            kind,
            PacketType::Event | PacketType::BinaryEvent | PacketType::Ack | PacketType::BinaryAck
        )
    {
        return Err(ParseError::InvalidPayload);
    }
    Packet::build(kind, namespace, id, attachments, data)
}

/// The reference parser's `isPayloadValid`.
fn payload_valid(kind: PacketType, v: &Value) -> bool {
    match kind {
        PacketType::Connect => v.is_object(),
        PacketType::Disconnect => false,
        PacketType::ConnectError => v.is_object() || v.is_string(),
        PacketType::Event | PacketType::BinaryEvent => match v.as_array().and_then(|a| a.first()) {
            Some(Value::String(name)) => !RESERVED_EVENTS.contains(&name.as_str()),
            Some(Value::Number(_)) => true,
            _ => false,
        },
        PacketType::Ack | PacketType::BinaryAck => v.is_array(),
    }
}

/// Checks that every `{"_placeholder":true,"num":N}` in `args` names an attachment below
/// `count` and that there are exactly `count` of them.
///
/// # Errors
/// [`ParseError::BadPlaceholder`] otherwise.
pub fn check_placeholders(args: &[Value], count: usize) -> Result<(), ParseError> {
    fn walk(v: &Value, count: usize, seen: &mut usize) -> Result<(), ParseError> {
        match v {
            Value::Object(map) => {
                if map.get("_placeholder") == Some(&Value::Bool(true)) {
                    let num = map
                        .get("num")
                        .and_then(Value::as_u64)
                        .ok_or(ParseError::BadPlaceholder)?;
                    if num as usize >= count {
                        return Err(ParseError::BadPlaceholder);
                    }
                    *seen += 1;
                    return Ok(());
                }
                map.values().try_for_each(|v| walk(v, count, seen))
            }
            Value::Array(items) => items.iter().try_for_each(|v| walk(v, count, seen)),
            _ => Ok(()),
        }
    }
    let mut seen = 0;
    args.iter().try_for_each(|v| walk(v, count, &mut seen))?;
    if seen != count {
        return Err(ParseError::BadPlaceholder);
    }
    Ok(())
}

/// Writes the packet header `<type>[<n>-][<ns>,][<id>]` that precedes the JSON payload.
pub fn encode_header(
    kind: PacketType,
    attachments: usize,
    namespace: &str,
    id: Option<u64>,
    out: &mut Vec<u8>,
) {
    out.push(b'0' + kind as u8);
    if kind.is_binary() {
        out.extend_from_slice(attachments.to_string().as_bytes());
        out.push(b'-');
    }
    if namespace != "/" {
        out.extend_from_slice(namespace.as_bytes());
        out.push(b',');
    }
    if let Some(id) = id {
        out.extend_from_slice(id.to_string().as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn connect_variants() {
        let p = parse(b"0").unwrap();
        assert_eq!(
            p,
            Packet::Connect {
                ns: "/",
                auth: None
            }
        );
        let p = parse(b"0/admin,").unwrap();
        assert_eq!(p.namespace(), "/admin");
        let p = parse(b"0/admin").unwrap();
        assert_eq!(p.namespace(), "/admin");
        let p = parse(br#"0/admin,{"token":"x"}"#).unwrap();
        assert_eq!(
            p,
            Packet::Connect {
                ns: "/admin",
                auth: Some(json!({"token":"x"}))
            }
        );
        assert_eq!(parse(b"0[1]").unwrap_err(), ParseError::InvalidPayload);
    }

    #[test]
    fn event_with_namespace_and_ack_id() {
        let p = parse(br#"2/chat,13["hello",1]"#).unwrap();
        assert_eq!(
            p,
            Packet::Event {
                ns: "/chat",
                id: Some(13),
                args: vec![json!("hello"), json!(1)]
            }
        );
    }

    #[test]
    fn binary_event_attachments() {
        let p = parse(br#"52-["up",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#)
            .unwrap();
        let Packet::BinaryEvent {
            attachments, args, ..
        } = p
        else {
            panic!("not a binary event: {p:?}")
        };
        assert_eq!(attachments, 2);
        check_placeholders(&args, 2).unwrap();
        let p = parse(br#"61-/a,4[{"_placeholder":true,"num":0}]"#).unwrap();
        assert!(matches!(
            p,
            Packet::BinaryAck {
                ns: "/a",
                id: Some(4),
                attachments: 1,
                ..
            }
        ));
    }

    #[test]
    fn malformed_packets() {
        assert_eq!(parse(b"").unwrap_err(), ParseError::Empty);
        assert_eq!(parse(b"abc").unwrap_err(), ParseError::UnknownType);
        assert_eq!(parse(b"7").unwrap_err(), ParseError::UnknownType);
        assert_eq!(parse(b"2{}").unwrap_err(), ParseError::InvalidPayload);
        assert_eq!(parse(br#"2abc["x"]"#).unwrap_err(), ParseError::BadJson);
        assert_eq!(parse(b"2[").unwrap_err(), ParseError::BadJson);
        assert_eq!(parse(b"2[]").unwrap_err(), ParseError::InvalidPayload);
        assert_eq!(
            parse(br#"2["disconnect"]"#).unwrap_err(),
            ParseError::InvalidPayload
        );
        assert_eq!(parse(b"2").unwrap_err(), ParseError::InvalidPayload);
        assert_eq!(parse(b"1{}").unwrap_err(), ParseError::InvalidPayload);
        assert_eq!(
            parse(br#"5x-["a"]"#).unwrap_err(),
            ParseError::BadAttachmentCount
        );
        assert_eq!(
            parse(br#"5["a"]"#).unwrap_err(),
            ParseError::BadAttachmentCount
        );
        assert_eq!(
            parse(br#"5999-["a"]"#).unwrap_err(),
            ParseError::TooManyAttachments
        );
        assert_eq!(parse(b"2\xff").unwrap_err(), ParseError::NotUtf8);
        assert_eq!(
            parse(br#"399999999999999999999999[]"#).unwrap_err(),
            ParseError::BadAckId
        );
    }

    #[test]
    fn placeholder_mismatch() {
        let v = [json!("x"), json!({"_placeholder": true, "num": 1})];
        assert_eq!(
            check_placeholders(&v, 1).unwrap_err(),
            ParseError::BadPlaceholder
        );
        assert_eq!(
            check_placeholders(&[json!("x")], 1).unwrap_err(),
            ParseError::BadPlaceholder
        );
        check_placeholders(&[json!("x")], 0).unwrap();
    }

    #[test]
    fn encode_headers() {
        let mut out = Vec::new();
        encode_header(PacketType::Event, 0, "/", None, &mut out);
        assert_eq!(out, b"2");
        out.clear();
        encode_header(PacketType::BinaryAck, 2, "/chat", Some(7), &mut out);
        assert_eq!(out, b"62-/chat,7");
        out.clear();
        encode_header(PacketType::ConnectError, 0, "/random", None, &mut out);
        assert_eq!(out, b"4/random,");
    }
}
