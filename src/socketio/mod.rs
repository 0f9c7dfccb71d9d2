//! Socket.IO v5: packet codec and the encoders for what the server sends.

pub mod packet;

use crate::engineio::wire::{Outbound, Part};
use bytes::Bytes;
pub use packet::PacketType;
use serde_json::Value;

/// The packet type for a payload with (`binary`) or without attachments.
fn binary_if(kind: PacketType, binary: bool) -> PacketType {
    match (kind, binary) {
        (PacketType::Event, true) => PacketType::BinaryEvent,
        (PacketType::Ack, true) => PacketType::BinaryAck,
        (PacketType::BinaryEvent, false) => PacketType::Event,
        (PacketType::BinaryAck, false) => PacketType::Ack,
        (k, _) => k,
    }
}

/// Builds an Engine.IO message (`4` + Socket.IO packet, plus attachments) for `kind` in
/// `namespace`, with a JSON payload written by `payload`.
pub fn message(
    kind: PacketType,
    namespace: &str,
    id: Option<u64>,
    payload: Option<&Value>,
    attachments: Vec<Bytes>,
) -> Outbound {
    let kind = binary_if(kind, !attachments.is_empty());
    let mut text = Vec::with_capacity(64);
    text.push(b'4');
    packet::encode_header(kind, attachments.len(), namespace, id, &mut text);
    if let Some(v) = payload {
        serde_json::to_writer(&mut text, v).expect("serializing a Value into a Vec cannot fail");
    }
    let mut parts = Vec::with_capacity(1 + attachments.len());
    parts.push(Part::Text(Bytes::from(text)));
    parts.extend(attachments.into_iter().map(Part::Binary));
    Outbound::new(parts)
}

/// `42["event",...args]` (or its binary form) in `namespace`. The arguments are written in
/// place, never copied into a new array.
pub fn event(namespace: &str, name: &str, args: &[Value], attachments: Vec<Bytes>) -> Outbound {
    event_with(namespace, name, args, None, attachments)
}

/// [`event`] with one more argument after `args` (a recovery offset), without copying them.
pub fn event_with(
    namespace: &str,
    name: &str,
    args: &[Value],
    tail: Option<&Value>,
    attachments: Vec<Bytes>,
) -> Outbound {
    array_message(
        PacketType::Event,
        namespace,
        None,
        Some(name),
        args,
        tail,
        attachments,
    )
}

/// `42<id>["event",...args]` (or its binary form) in `namespace`: an event the client must
/// acknowledge with ack `id`.
pub fn event_with_ack(
    namespace: &str,
    id: u64,
    name: &str,
    args: &[Value],
    attachments: Vec<Bytes>,
) -> Outbound {
    array_message(
        PacketType::Event,
        namespace,
        Some(id),
        Some(name),
        args,
        None,
        attachments,
    )
}

/// `43<id>[...args]` (or its binary form) in `namespace`: the answer to a client's ack request.
pub fn ack(namespace: &str, id: u64, args: &[Value], attachments: Vec<Bytes>) -> Outbound {
    array_message(
        PacketType::Ack,
        namespace,
        Some(id),
        None,
        args,
        None,
        attachments,
    )
}

/// A packet whose payload is the array `[name?, ...args, tail?]`, written without building it.
fn array_message(
    kind: PacketType,
    namespace: &str,
    id: Option<u64>,
    name: Option<&str>,
    args: &[Value],
    tail: Option<&Value>,
    attachments: Vec<Bytes>,
) -> Outbound {
    let kind = binary_if(kind, !attachments.is_empty());
    let mut text = Vec::with_capacity(64);
    text.push(b'4');
    packet::encode_header(kind, attachments.len(), namespace, id, &mut text);
    text.push(b'[');
    let mut first = true;
    let items = name.map(|n| Value::String(n.to_owned()));
    for a in items.iter().chain(args).chain(tail) {
        if !first {
            text.push(b',');
        }
        first = false;
        serde_json::to_writer(&mut text, a).expect("serializing into a Vec cannot fail");
    }
    text.push(b']');
    let mut parts = Vec::with_capacity(1 + attachments.len());
    parts.push(Part::Text(Bytes::from(text)));
    parts.extend(attachments.into_iter().map(Part::Binary));
    Outbound::new(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn event_and_binary_ack_encoding() {
        let c = crate::engineio::wire::EncodeCounter::default();
        let m = event("/", "hi", &[json!({"b":1,"a":2})], vec![]);
        assert_eq!(&m.polling(&c)[..], br#"42["hi",{"b":1,"a":2}]"#);
        let m = event("/x", "a\"b", &[json!(1), json!("z")], vec![]);
        assert_eq!(&m.polling(&c)[..], br#"42/x,["a\"b",1,"z"]"#);
        let m = event_with("/", "e", &[json!(1)], Some(&json!("7")), vec![]);
        assert_eq!(&m.polling(&c)[..], br#"42["e",1,"7"]"#);
        let m = event_with_ack("/x", 12, "ask", &[json!(1)], vec![]);
        assert_eq!(&m.polling(&c)[..], br#"42/x,12["ask",1]"#);
        let m = ack("/", 5, &[json!(null)], vec![]);
        assert_eq!(&m.polling(&c)[..], b"435[null]");
        let m = event("/", "up", &[], vec![Bytes::from_static(&[7])]);
        assert_eq!(&m.polling(&c)[..], b"451-[\"up\"]\x1ebBw==");
        let m = message(
            PacketType::Ack,
            "/x",
            Some(3),
            Some(&json!([{"_placeholder":true,"num":0}])),
            vec![Bytes::from_static(&[1])],
        );
        assert_eq!(
            &m.polling(&c)[..],
            b"461-/x,3[{\"_placeholder\":true,\"num\":0}]\x1ebAQ=="
        );
    }
}
