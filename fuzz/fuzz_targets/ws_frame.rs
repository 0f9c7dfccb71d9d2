//! WebSocket frames from a client (`sio_edge::ws::frame::parse`), read one after another from
//! the buffer as the server does, with a small and a large maxPayload. Checks that a frame
//! never consumes more than the buffer or zero bytes, that no payload exceeds the limit, that
//! control frames obey RFC 6455 and that a prefix of a whole frame is "need more" (`Ok(None)`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sio_edge::ws::frame::{self, Opcode};

fuzz_target!(|data: &[u8]| {
    for max_len in [125, 1_000_000] {
        // The parser unmasks in place, as in the server's read buffer: work on a copy.
        let mut owned = data.to_vec();
        let mut buf = &mut owned[..];
        loop {
            // A prefix of what follows is checked first: "need more", and left unchanged.
            let before = buf.to_vec();
            let Ok(Some((f, used))) = frame::parse(buf, max_len) else {
                break;
            };
            assert!(
                used > 0 && used <= before.len(),
                "frame consumed {used} of {}",
                before.len()
            );
            assert!(f.payload.len() <= max_len);
            if matches!(f.opcode, Opcode::Close | Opcode::Ping | Opcode::Pong) {
                assert!(
                    f.fin && f.payload.len() <= 125,
                    "bad control frame accepted"
                );
            }
            if f.opcode == Opcode::Close {
                let _ = frame::valid_close_payload(f.payload);
            }
            // The server keeps reading after a short read: a cut frame must not be an error,
            // and must not be touched.
            let mut cut = before[..used - 1].to_vec();
            assert!(matches!(frame::parse(&mut cut, max_len), Ok(None)));
            assert_eq!(cut, before[..used - 1], "a cut frame was changed");
            buf = &mut std::mem::take(&mut buf)[used..];
        }
    }
});
