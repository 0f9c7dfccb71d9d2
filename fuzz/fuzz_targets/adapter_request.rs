//! Redis adapter requests (`sio_edge::adapter::decode_request`): JSON (first byte `{`) or
//! MessagePack on `socket.io-request#/#`, as the adapter and the emitter send them. An
//! accepted request is encoded again (`encode_request`) and that must decode too, to the same
//! kind of request; a broadcast-with-ack keeps its rooms and every attachment it carries is
//! named by a placeholder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sio_edge::adapter::{decode_request, encode_request, RemoteRequest};

const PREFIX: &str = "socket.io";
const CHANNEL: &[u8] = b"socket.io-request#/#";

fuzz_target!(|data: &[u8]| {
    let Ok(req) = decode_request(CHANNEL, data, PREFIX) else {
        return;
    };
    let bytes = encode_request(&req);
    let again = decode_request(CHANNEL, &bytes, PREFIX)
        .expect("our own encoding of a decoded request does not decode");
    assert_eq!(
        std::mem::discriminant(&again),
        std::mem::discriminant(&req),
        "re-encoded {req:?} decoded as {again:?}"
    );
    if let (
        RemoteRequest::BroadcastWithAck { broadcast: a, .. },
        RemoteRequest::BroadcastWithAck { broadcast: b, .. },
    ) = (&req, &again)
    {
        assert_eq!((&a.rooms, &a.except), (&b.rooms, &b.except));
        assert_no_orphans(&a.event_args, a.attachments.len());
        assert_no_orphans(&b.event_args, b.attachments.len());
    }
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
