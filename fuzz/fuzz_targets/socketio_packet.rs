//! Socket.IO packets with binary attachments, handled as `server/sio.rs` does: the input is
//! the packet text, then each `0xFF` (never in UTF-8 text) starts one binary attachment.
//! `socketio::packet::parse` reads the text; a binary packet waits for its announced
//! attachments and is checked with `check_placeholders`; an accepted event is re-encoded with
//! `socketio::event`/`message` and its polling form decoded again with the Engine.IO parser.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sio_edge::engineio::packet::{self as eio, Packet as EioPacket};
use sio_edge::engineio::payload;
use sio_edge::engineio::wire::{EncodeCounter, Outbound};
use sio_edge::socketio::packet::{self, Packet};
use sio_edge::socketio::{self, PacketType};

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|&b| b == 0xff);
    let text = parts.next().unwrap_or_default();
    let attachments: Vec<Bytes> = parts.map(Bytes::copy_from_slice).collect();

    let Ok(p) = packet::parse(text) else { return };
    let namespace = p.namespace();
    assert!(namespace.starts_with('/') && !namespace.contains(','));
    // (kind, id, announced attachments, args) of the packets that carry an array payload.
    let (kind, id, announced, args) = match p {
        Packet::Connect { .. } | Packet::Disconnect { .. } | Packet::ConnectError { .. } => return,
        Packet::Event { id, args, .. } => (PacketType::Event, id, 0, args),
        Packet::Ack { id, args, .. } => (PacketType::Ack, id, 0, args),
        Packet::BinaryEvent {
            id,
            attachments,
            args,
            ..
        } => (PacketType::BinaryEvent, id, attachments, args),
        Packet::BinaryAck {
            id,
            attachments,
            args,
            ..
        } => (PacketType::BinaryAck, id, attachments, args),
    };
    assert!(announced <= packet::MAX_ATTACHMENTS);
    // The server keeps the packet until `attachments` binary messages arrived; more binary
    // messages after it would be refused as "binary data without a binary packet".
    if attachments.len() != announced {
        return;
    }
    if kind.is_binary() && packet::check_placeholders(&args, announced).is_err() {
        return;
    }
    let counter = EncodeCounter::default();
    let out = match kind {
        PacketType::Event | PacketType::BinaryEvent => {
            // on_event takes the first item as the event name: parse must guarantee it.
            let mut args = args;
            assert!(!args.is_empty(), "event without a name");
            let name = match args.remove(0) {
                Value::String(s) => s,
                other => other.to_string(),
            };
            socketio::event(namespace, &name, &args, attachments.clone())
        }
        _ => socketio::ack(namespace, id.unwrap_or(0), &args, attachments.clone()),
    };
    let _ = out.ws(&counter);
    // A namespace is sent as it came, so one holding the record separator (only a WebSocket
    // client can send that; a polling body is split on it first) cannot travel in a polling
    // body, as in the Node reference. Its namespace is not configured, so it gets no more than
    // a CONNECT_ERROR; the polling form is checked for every other packet.
    if !namespace.as_bytes().contains(&payload::SEPARATOR) {
        check_polling(&out, &counter, namespace, attachments);
    }
});

/// The polling form is `4<packet>` then one `b<base64>` record per attachment, and the packet
/// text parses again to the same namespace and attachment count.
fn check_polling(
    out: &Outbound,
    counter: &EncodeCounter,
    namespace: &str,
    attachments: Vec<Bytes>,
) {
    let body = out.polling(counter);
    let mut records = payload::split(&body);
    let first = records.next().expect("split yields at least one record");
    let Ok(EioPacket::Message(text)) = eio::parse_text(first) else {
        panic!("first record is not a message: {first:?}")
    };
    let again = packet::parse(text).expect("our own packet does not parse");
    assert_eq!(again.namespace(), namespace);
    let announced = match again {
        Packet::BinaryEvent { attachments, .. } | Packet::BinaryAck { attachments, .. } => {
            attachments
        }
        _ => 0,
    };
    assert_eq!(announced, attachments.len());
    let binaries: Vec<Vec<u8>> = records
        .map(|r| match eio::parse_polling_record(r) {
            Ok(EioPacket::Binary(b)) => b,
            other => panic!("attachment record decoded as {other:?}"),
        })
        .collect();
    assert_eq!(binaries.len(), attachments.len());
    assert!(binaries
        .iter()
        .zip(&attachments)
        .all(|(a, b)| a[..] == b[..]));
}
