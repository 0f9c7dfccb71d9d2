//! One Engine.IO packet as a WebSocket text frame (`parse_text`) or as one polling record
//! (`parse_polling_record`, with `b<base64>` binary). Checks that borrowed data is the input
//! after the type byte and that decoded binary re-encodes to the same base64.
#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use sio_edge::engineio::packet::{self, Packet};

fuzz_target!(|data: &[u8]| {
    if let Ok(Packet::Ping(rest) | Packet::Pong(rest) | Packet::Message(rest)) =
        packet::parse_text(data)
    {
        assert_eq!(rest, &data[1..]);
    }
    if let Ok(Packet::Binary(bin)) = packet::parse_polling_record(data) {
        let enc = base64::engine::general_purpose::STANDARD.encode(&bin);
        assert_eq!(
            enc.as_bytes(),
            &data[1..],
            "base64 accepted but not canonical"
        );
    }
});
