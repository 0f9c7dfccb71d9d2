//! A client that keeps its socket readable does not hold the loop: one connection's turn ends
//! at a read shorter than asked for (its receive queue was empty then; more raises a new
//! event) or at a fixed slice per loop turn (counted in `sio_reads_capped_total`, reached
//! when the kernel's receive buffer holds more than the slice), so while it floods, another
//! client's echo round trip is still served. Reading the flooder until `WouldBlock`, which
//! never comes while it writes, would starve the others.

mod fixture;

use fixture::{frame, Server, DIAGNOSTICS, OP_TEXT};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Bytes the flooder must have written before the others try: far more than the socket
/// buffers hold, so the server is reading the flood by then.
const FLOOD_BEFORE: u64 = 8 << 20;
/// The flood stops by itself after this long whatever happens (a bounded load).
const FLOOD_LIMIT: Duration = Duration::from_secs(30);

#[test]
fn a_flooding_client_does_not_starve_the_others() {
    let server = Server::start(DIAGNOSTICS);
    let mut victim = server.ws_socket();
    let flooder = server.ws_eio();

    // Engine.IO noops: valid, cheap to send, and they make the server parse every frame.
    let noop = frame(true, OP_TEXT, b"6");
    let batch = noop.repeat(64 * 1024 / noop.len());
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let mut stream = flooder
        .stream
        .try_clone()
        .expect("clone the flooder's stream");
    let flood = {
        let (stop, sent) = (Arc::clone(&stop), Arc::clone(&sent));
        thread::spawn(move || {
            let started = Instant::now();
            while !stop.load(Ordering::Relaxed) && started.elapsed() < FLOOD_LIMIT {
                if stream.write_all(&batch).is_err() {
                    return false;
                }
                sent.fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
            true
        })
    };
    while sent.load(Ordering::Relaxed) < FLOOD_BEFORE {
        assert!(!flood.is_finished(), "the flood ended before it got going");
        thread::yield_now();
    }

    victim.send_text(r#"427["echo","still here"]"#);
    assert_eq!(victim.recv_message(), r#"437["still here"]"#);
    assert!(
        !flood.is_finished(),
        "the flooder was still writing when the others were served"
    );
    stop.store(true, Ordering::Relaxed);
    assert!(
        flood.join().expect("flood thread"),
        "the flooder's connection was closed: noops are valid input"
    );
}
