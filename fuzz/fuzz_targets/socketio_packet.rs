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
use sio_edge::socketio::{self, packet, PacketType};

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|&b| b == 0xff);
    let text = parts.next().unwrap_or_default();
    let attachments: Vec<Bytes> = parts.map(Bytes::copy_from_slice).collect();

    let Ok(p) = packet::parse(text) else { return };
    assert!(p.attachments <= packet::MAX_ATTACHMENTS);
    assert!(p.attachments == 0 || p.kind.is_binary());
    assert!(p.namespace.starts_with('/') && !p.namespace.contains(','));
    let (kind, namespace, id) = (p.kind, p.namespace, p.id);
    let Some(data) = p.data else {
        assert!(matches!(
            kind,
            PacketType::Connect | PacketType::Disconnect | PacketType::ConnectError
        ));
        return;
    };
    // The server keeps the packet until `attachments` binary messages arrived; more binary
    // messages after it would be refused as "binary data without a binary packet".
    let expected = if kind.is_binary() { p.attachments } else { 0 };
    if attachments.len() != expected {
        return;
    }
    if kind.is_binary() && packet::check_placeholders(&data, expected).is_err() {
        return;
    }
    let counter = EncodeCounter::default();
    let out = match kind {
        PacketType::Event | PacketType::BinaryEvent => {
            // dispatch_packet takes the first item as the event name: parse must guarantee it.
            let Value::Array(mut args) = data else {
                panic!("event payload is not an array")
            };
            assert!(!args.is_empty(), "event without a name");
            let name = match args.remove(0) {
                Value::String(s) => s,
                other => other.to_string(),
            };
            socketio::event(namespace, &name, &args, attachments.clone())
        }
        _ => socketio::message(kind, namespace, id, Some(&data), attachments.clone()),
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
    assert_eq!(again.namespace, namespace);
    assert_eq!(again.attachments, attachments.len());
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
