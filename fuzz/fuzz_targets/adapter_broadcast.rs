//! Redis adapter broadcasts (`sio_edge::adapter::decode_broadcast`): MessagePack
//! `[uid, packet, opts]` as published by `@socket.io/redis-adapter` and the emitter, received
//! on `socket.io#/#`. Every attachment of an accepted broadcast must be named by a placeholder,
//! and its encoding (`encode_broadcast`) must decode again: what we publish, other nodes must
//! be able to read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sio_edge::adapter::{self, channel_for, decode_broadcast, encode_broadcast};

const PREFIX: &str = "socket.io";

fuzz_target!(|data: &[u8]| {
    let _ = adapter::parse_channel(data, PREFIX);
    let Ok(b) = decode_broadcast(b"socket.io#/#", data, PREFIX) else {
        return;
    };
    assert_eq!(b.nsp, "/");
    assert_no_orphans(&b.event_args, b.attachments.len());
    let bytes = encode_broadcast(&b);
    let channel = channel_for(PREFIX, &b.nsp, &b.rooms);
    let again = decode_broadcast(channel.as_bytes(), &bytes, PREFIX)
        .expect("our own encoding of a decoded broadcast does not decode");
    assert_eq!(
        (&again.nsp, &again.rooms, &again.except),
        (&b.nsp, &b.rooms, &b.except)
    );
    assert_no_orphans(&again.event_args, again.attachments.len());
});

/// Every attachment is named by at least one placeholder in `args`: no binary frame travels
/// that the client has no use for (the bug this target found; see docs/RELIABILITY.md).
fn assert_no_orphans(args: &Value, attachments: usize) {
    fn walk(v: &Value, seen: &mut [bool]) {
        match v {
            Value::Object(m) if m.get("_placeholder") == Some(&Value::Bool(true)) => {
                if let Some(s) = m
                    .get("num")
                    .and_then(Value::as_u64)
                    .and_then(|n| seen.get_mut(n as usize))
                {
                    *s = true;
                }
            }
            Value::Object(m) => m.values().for_each(|v| walk(v, seen)),
            Value::Array(a) => a.iter().for_each(|v| walk(v, seen)),
            _ => {}
        }
    }
    let mut seen = vec![false; attachments];
    walk(args, &mut seen);
    assert!(
        seen.iter().all(|&s| s),
        "attachment without a placeholder: {args}"
    );
}
