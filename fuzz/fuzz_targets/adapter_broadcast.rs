//! Redis adapter broadcasts (`sio_edge::adapter::decode_broadcast`): MessagePack
//! `[uid, packet, opts]` as published by `@socket.io/redis-adapter` and the emitter, received
//! on `socket.io#/#`. An accepted broadcast is encoded again (`encode_broadcast`) and that
//! encoding must decode: what we publish, other nodes must be able to read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sio_edge::adapter::{self, channel_for, decode_broadcast, encode_broadcast};

const PREFIX: &str = "socket.io";

fuzz_target!(|data: &[u8]| {
    let _ = adapter::parse_channel(data, PREFIX);
    let Ok(b) = decode_broadcast(b"socket.io#/#", data, PREFIX) else {
        return;
    };
    assert_eq!(b.nsp, "/");
    let bytes = encode_broadcast(&b);
    let channel = channel_for(PREFIX, &b.nsp, &b.rooms);
    let again = decode_broadcast(channel.as_bytes(), &bytes, PREFIX)
        .expect("our own encoding of a decoded broadcast does not decode");
    assert_eq!(
        (&again.nsp, &again.rooms, &again.except),
        (&b.nsp, &b.rooms, &b.except)
    );
    assert_eq!(again.attachments, b.attachments);
});
