//! After a burst of every kind of malformed input on one server, nothing leaks (no session or
//! socket is left open), each refusal is counted in `sio_protocol_errors_total`, and fresh
//! WebSocket and polling clients are served normally.

mod fixture;

use fixture::{
    frame, raw_frame, request, Server, CONFORMANCE, DIAGNOSTICS, OP_CONT, OP_PING, OP_TEXT,
};

/// Invalid WebSocket input, each sent on a fresh session with a socket connected to `/`.
const WS_ABUSE: &[(&str, &[&[u8]])] = &[
    ("unknown Engine.IO type", &[b"abc"]),
    ("unknown Socket.IO type", &[b"4abc"]),
    ("event payload not an array", &[b"42{}"]),
    ("non-numeric ack id", &[br#"42abc["x"]"#]),
    (
        "text where an attachment was due",
        &[br#"451-["x"]"#, br#"42["x"]"#],
    ),
    ("namespace not connected", &[br#"42/custom,["x"]"#]),
    ("client ping", &[b"2"]),
];

/// Sends every kind of malformed input once; returns how many of them must count as a
/// protocol error.
fn abuse(server: &Server) -> u64 {
    let mut counted = 0;

    let frames: Vec<(&str, Vec<u8>)> = vec![
        ("unmasked frame", raw_frame(0x80 | OP_TEXT, None, 2, b"40")),
        ("RSV1 set", {
            let mut f = frame(true, OP_TEXT, b"40");
            f[0] |= 0x40;
            f
        }),
        ("reserved opcode", frame(true, 0x3, b"40")),
        ("fragmented ping", frame(false, OP_PING, b"")),
        ("lone continuation", frame(true, OP_CONT, b"40")),
        (
            "declared length over maxPayload",
            raw_frame(0x82, Some([9; 4]), 5_000_000, b""),
        ),
    ];
    for (what, bytes) in frames {
        let mut ws = server.ws_socket();
        ws.send_raw(&bytes);
        ws.expect_closed(what);
        counted += 1;
    }

    for (what, msgs) in WS_ABUSE {
        let mut ws = server.ws_socket();
        for m in *msgs {
            ws.send_raw(&frame(true, OP_TEXT, m));
        }
        ws.expect_closed(what);
        counted += 1;
    }
    let mut ws = server.ws_socket();
    ws.send_binary(&[1, 2, 3]);
    ws.expect_closed("stray binary frame");
    let mut ws = server.ws_socket();
    ws.send_text(r#"452-["x",{"_placeholder":true,"num":0}]"#);
    ws.send_binary(&[1]);
    ws.send_binary(&[2]);
    ws.expect_closed("attachment count mismatch");
    counted += 2;

    let polling = server.polling();
    assert_eq!(polling.post(b"abc").status, 400, "POST abc");
    polling.assert_gone("after POST abc");
    let polling = server.polling();
    // Only the head: the server answers before the body, and a body still being written
    // when it closes would turn the close into a reset.
    let head = format!(
        "POST {} HTTP/1.1\r\nContent-Length: 5000000\r\n\r\n",
        polling.target()
    );
    assert_eq!(
        server.raw(head.as_bytes()).status,
        413,
        "POST over maxPayload"
    );
    polling.assert_gone("after POST over maxPayload");
    let polling = server.polling();
    let mut held = polling.hold_get();
    polling.get().assert_eio_error(3, "second concurrent GET");
    assert_eq!(
        held.read_response().text(),
        "1",
        "first of two concurrent GETs"
    );
    polling.assert_gone("after concurrent GETs");
    counted += 3;

    assert_eq!(server.raw(b"GARBAGE\r\n\r\n").status, 400, "garbage HTTP");
    let filler = "a".repeat(20_000);
    let head = format!("GET /health HTTP/1.1\r\nX-Filler: {filler}\r\n\r\n");
    assert_eq!(server.raw(head.as_bytes()).status, 431, "head over 16 KiB");
    counted += 2;

    // Refused, though not necessarily counted as a protocol error.
    let polling = server.polling();
    let chunked = format!(
        "POST {} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        polling.target()
    );
    assert_eq!(server.raw(chunked.as_bytes()).status, 411, "chunked POST");
    assert_eq!(polling.post(b"1").status, 200, "client close after the 411");

    counted
}

fn assert_keeps_serving(server: &Server) {
    let counted = abuse(server);
    assert_eq!(
        server.metric("sio_connections{transport=\"websocket\"}"),
        0,
        "websocket sessions left"
    );
    assert_eq!(
        server.metric("sio_connections{transport=\"polling\"}"),
        0,
        "polling sessions left"
    );
    assert_eq!(
        server.metric("sio_sockets{namespace=\"/\"}"),
        0,
        "sockets left on /"
    );
    let errors = server.protocol_errors();
    assert!(
        errors >= counted,
        "sio_protocol_errors_total {errors}, expected at least {counted}"
    );

    for _ in 0..3 {
        server.assert_echo_round_trip();
    }
    let polling = server.polling();
    polling.connect_root();
    let mut conn = server.http_conn();
    conn.send(&request("POST", &polling.target(), &[], b"1"));
    assert_eq!(conn.read_response().status, 200, "polling client close");
}

#[test]
fn conformance_server_keeps_serving_after_abuse() {
    assert_keeps_serving(&Server::start(CONFORMANCE));
}

#[test]
fn diagnostics_server_keeps_serving_after_abuse() {
    assert_keeps_serving(&Server::start(DIAGNOSTICS));
}
