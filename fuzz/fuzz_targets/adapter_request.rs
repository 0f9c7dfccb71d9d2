//! Redis adapter requests (`sio_edge::adapter::decode_request`): JSON (first byte `{`) or
//! MessagePack on `socket.io-request#/#`, as the adapter and the emitter send them. An
//! accepted request is encoded again (`encode_request`) and that must decode too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sio_edge::adapter::{decode_request, encode_request};

const PREFIX: &str = "socket.io";
const CHANNEL: &[u8] = b"socket.io-request#/#";

fuzz_target!(|data: &[u8]| {
    let Ok(req) = decode_request(CHANNEL, data, PREFIX) else {
        return;
    };
    let bytes = encode_request(&req);
    decode_request(CHANNEL, &bytes, PREFIX)
        .expect("our own encoding of a decoded request does not decode");
});
