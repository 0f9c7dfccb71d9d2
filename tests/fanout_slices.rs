//! A fanout larger than one loop turn's write slice: the loop stops writing after its slice
//! (counted in `sio_flush_slices_cut_total`), polls for input, and goes on where it stopped.
//! Every recipient still gets every message, once and in order, including messages that
//! arrived while an earlier fanout was half written.

mod fixture;

use fixture::Server;
use serde_json::Value;

/// Under the usual 1024-descriptor soft limit for this process and the server.
const CLIENTS: usize = 800;
const MESSAGES: usize = 12;
/// Big frames make each write cost several microseconds on any machine, so one pass over
/// the room takes well over the 1 ms slice.
const PAD: usize = 6000;

#[test]
fn fanout_sliced_over_turns_keeps_every_message_in_order() {
    let server = Server::start(&["--bench"]);
    let mut clients: Vec<_> = (0..CLIENTS).map(|_| server.ws_socket()).collect();
    let cut_before = server.metric("sio_flush_slices_cut_total");

    // One burst of publishes: the later ones reach the server while the first fanouts are
    // still being written.
    let pad = "x".repeat(PAD);
    for seq in 0..MESSAGES {
        clients[0].send_text(&format!(
            r#"42["bench:publish",{{"seq":{seq},"pad":"{pad}"}}]"#
        ));
    }

    for (i, c) in clients.iter_mut().enumerate() {
        for seq in 0..MESSAGES {
            let text = c.recv_text();
            let body = text
                .strip_prefix("42")
                .unwrap_or_else(|| panic!("client {i}: not an EVENT: {:.80}", text));
            let v: Value = serde_json::from_str(body).expect("EVENT payload is JSON");
            assert_eq!(v[0], "bench:msg", "client {i}: event name");
            assert_eq!(
                v[1]["seq"].as_u64(),
                Some(seq as u64),
                "client {i}: messages out of order or missing"
            );
            assert_eq!(v[1]["pad"].as_str().map(str::len), Some(PAD), "client {i}");
        }
    }

    let cut = server.metric("sio_flush_slices_cut_total") - cut_before;
    assert!(
        cut > 0,
        "{CLIENTS} recipients x {MESSAGES} frames of {PAD} bytes were written without the loop \
         ever stopping at its write slice"
    );
    assert_eq!(server.metric("sio_slow_client_disconnects_total"), 0);
}
