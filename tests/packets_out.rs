//! `sio_packets_out_total` counts Engine.IO packets queued to clients, once each, whatever
//! the transport: not HTTP heads, payload separators or responses of other routes, and a
//! message answered to a held poll is not counted twice.

mod fixture;

use fixture::{Server, DIAGNOSTICS};

const METRIC: &str = "sio_packets_out_total";

#[test]
fn websocket_counts_open_connect_and_ack_once_each() {
    let server = Server::start(DIAGNOSTICS);
    let before = server.metric(METRIC);
    let mut ws = server.ws_socket(); // OPEN, CONNECT reply
    ws.send_text(r#"427["echo",1]"#);
    assert_eq!(ws.recv_message(), "437[1]"); // the ack
    assert_eq!(server.metric(METRIC) - before, 3);
}

#[test]
fn polling_counts_packets_not_heads_or_separators() {
    let server = Server::start(DIAGNOSTICS);
    let before = server.metric(METRIC);
    let polling = server.polling(); // OPEN in the handshake body
    polling.connect_root(); // CONNECT reply, answered to a GET
    let resp = polling.post(b"427[\"echo\",1]\x1e428[\"echo\",2]");
    assert_eq!(resp.status, 200);
    let resp = polling.get(); // both acks in one body, joined by a separator
    assert_eq!(resp.text(), "437[1]\x1e438[2]");
    assert_eq!(server.metric(METRIC) - before, 4);
}
