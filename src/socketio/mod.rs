//! Socket.IO v5: packet codec and the encoders for what the server sends.

pub mod packet;

use crate::engineio::wire::{Outbound, Part};
use bytes::Bytes;
pub use packet::PacketType;
use serde_json::Value;

/// Builds an Engine.IO message (`4` + Socket.IO packet, plus attachments) for `kind` in
/// `namespace`, with a JSON payload written by `payload`.
pub fn message(
    kind: PacketType,
    namespace: &str,
    id: Option<u64>,
    payload: Option<&Value>,
    attachments: Vec<Bytes>,
) -> Outbound {
    let kind = match (kind, attachments.is_empty()) {
        (PacketType::Event, false) => PacketType::BinaryEvent,
        (PacketType::Ack, false) => PacketType::BinaryAck,
        (PacketType::BinaryEvent, true) => PacketType::Event,
        (PacketType::BinaryAck, true) => PacketType::Ack,
        (k, _) => k,
    };
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

/// `42["event",...args]` (or its binary form) in `namespace`.
pub fn event(namespace: &str, name: &str, args: &[Value], attachments: Vec<Bytes>) -> Outbound {
    let mut arr = Vec::with_capacity(args.len() + 1);
    arr.push(Value::String(name.to_owned()));
    arr.extend_from_slice(args);
    message(
        PacketType::Event,
        namespace,
        None,
        Some(&Value::Array(arr)),
        attachments,
    )
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
