//! WebSocket frames from a client (`sio_edge::ws::frame::parse`), read one after another from
//! the buffer as the server does, with a small and a large maxPayload. Checks that a frame
//! never consumes more than the buffer or zero bytes, that no payload exceeds the limit, that
//! control frames obey RFC 6455 and that a prefix of a whole frame is "need more" (`Ok(None)`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sio_edge::ws::frame::{self, Opcode};

fuzz_target!(|data: &[u8]| {
    for max_len in [125, 1_000_000] {
        let mut buf = data;
        while let Ok(Some((f, used))) = frame::parse(buf, max_len) {
            assert!(
                used > 0 && used <= buf.len(),
                "frame consumed {used} of {}",
                buf.len()
            );
            assert!(f.payload.len() <= max_len);
            if matches!(f.opcode, Opcode::Close | Opcode::Ping | Opcode::Pong) {
                assert!(
                    f.fin && f.payload.len() <= 125,
                    "bad control frame accepted"
                );
            }
            if f.opcode == Opcode::Close {
                let _ = frame::valid_close_payload(&f.payload);
            }
            // The server keeps reading after a short read: a cut frame must not be an error.
            assert!(matches!(frame::parse(&buf[..used - 1], max_len), Ok(None)));
            buf = &buf[used..];
        }
    }
});
