//! A client frame that breaks RFC 6455 fails only that WebSocket: the server sends a close
//! frame (1002 protocol error, 1009 for a message over maxPayload) and closes the TCP
//! connection, counts a protocol error, and keeps serving new clients.

mod fixture;

use fixture::{
    frame, raw_frame, Server, CONFORMANCE, DIAGNOSTICS, DIAG_MAX_PAYLOAD, OP_BINARY, OP_CLOSE,
    OP_CONT, OP_PING, OP_PONG, OP_TEXT,
};

const PROTOCOL_ERROR: u16 = 1002;
const MESSAGE_TOO_BIG: u16 = 1009;

/// Sends `bytes` on a WebSocket whose socket is connected to `/`, then checks the close code,
/// that nothing but the close came back, the error counter and a fresh client's echo.
fn assert_fails_ws(server: &Server, bytes: &[u8], code: u16, what: &str) {
    let before = server.protocol_errors();
    let mut ws = server.ws_socket();
    ws.send_raw(bytes);
    let end = ws.expect_closed(what);
    assert_eq!(end.close, Some(Some(code)), "{what}: close frame and code");
    assert!(
        end.texts.is_empty(),
        "{what}: unexpected replies {:?}",
        end.texts
    );
    server.assert_counted_and_serving(before, what);
}

fn valid_event() -> &'static [u8] {
    br#"42["message",1]"#
}

#[test]
fn unmasked_client_frame_is_refused() {
    let server = Server::start(CONFORMANCE);
    let bytes = raw_frame(
        0x80 | OP_TEXT,
        None,
        valid_event().len() as u64,
        valid_event(),
    );
    assert_fails_ws(&server, &bytes, PROTOCOL_ERROR, "unmasked text frame");
}

#[test]
fn unmasked_control_frame_is_refused() {
    let server = Server::start(CONFORMANCE);
    let bytes = raw_frame(0x80 | OP_PING, None, 2, b"hi");
    assert_fails_ws(&server, &bytes, PROTOCOL_ERROR, "unmasked ping frame");
}

#[test]
fn reserved_bits_without_extension_are_refused() {
    let server = Server::start(CONFORMANCE);
    for (bit, name) in [(0x40, "RSV1"), (0x20, "RSV2"), (0x10, "RSV3")] {
        let mut bytes = frame(true, OP_TEXT, valid_event());
        bytes[0] |= bit;
        assert_fails_ws(&server, &bytes, PROTOCOL_ERROR, &format!("{name} set"));
    }
}

#[test]
fn reserved_data_opcodes_are_refused() {
    let server = Server::start(CONFORMANCE);
    for op in 0x3..=0x7 {
        let bytes = frame(true, op, valid_event());
        assert_fails_ws(&server, &bytes, PROTOCOL_ERROR, &format!("opcode {op:#x}"));
    }
}

#[test]
fn reserved_control_opcodes_are_refused() {
    let server = Server::start(CONFORMANCE);
    for op in 0xB..=0xF {
        let bytes = frame(true, op, b"x");
        assert_fails_ws(&server, &bytes, PROTOCOL_ERROR, &format!("opcode {op:#x}"));
    }
}

#[test]
fn fragmented_control_frames_are_refused() {
    let server = Server::start(CONFORMANCE);
    for (op, name) in [(OP_PING, "ping"), (OP_PONG, "pong"), (OP_CLOSE, "close")] {
        let bytes = frame(false, op, b"");
        assert_fails_ws(
            &server,
            &bytes,
            PROTOCOL_ERROR,
            &format!("{name} without FIN"),
        );
    }
}

#[test]
fn control_frame_over_125_bytes_is_refused() {
    let server = Server::start(CONFORMANCE);
    let bytes = frame(true, OP_PING, &[b'p'; 126]);
    assert_fails_ws(&server, &bytes, PROTOCOL_ERROR, "126-byte ping");
}

#[test]
fn continuation_without_a_start_is_refused() {
    let server = Server::start(CONFORMANCE);
    let bytes = frame(true, OP_CONT, valid_event());
    assert_fails_ws(&server, &bytes, PROTOCOL_ERROR, "lone final continuation");
    let bytes = frame(false, OP_CONT, valid_event());
    assert_fails_ws(
        &server,
        &bytes,
        PROTOCOL_ERROR,
        "lone non-final continuation",
    );
}

#[test]
fn new_message_inside_a_fragmented_one_is_refused() {
    let server = Server::start(CONFORMANCE);
    let mut bytes = frame(false, OP_TEXT, b"42[\"mess");
    bytes.extend(frame(true, OP_TEXT, valid_event()));
    assert_fails_ws(
        &server,
        &bytes,
        PROTOCOL_ERROR,
        "text frame during a fragmented text",
    );
    let mut bytes = frame(false, OP_BINARY, b"\x01\x02");
    bytes.extend(frame(true, OP_BINARY, b"\x03"));
    assert_fails_ws(
        &server,
        &bytes,
        PROTOCOL_ERROR,
        "binary frame during a fragmented binary",
    );
}

#[test]
fn declared_length_over_max_payload_is_refused_before_the_payload() {
    // Only the header and the mask key are sent: the server must not wait for (or buffer)
    // a payload it is going to refuse anyway.
    let server = Server::start(CONFORMANCE);
    let mask = Some([1, 2, 3, 4]);
    let bytes = raw_frame(0x80 | OP_TEXT, mask, 2_000_000, b"");
    assert_fails_ws(&server, &bytes, MESSAGE_TOO_BIG, "64-bit length of 2 MB");
    let bytes = raw_frame(0x80 | OP_BINARY, mask, 1 << 40, b"");
    assert_fails_ws(&server, &bytes, MESSAGE_TOO_BIG, "64-bit length of 1 TiB");

    let server = Server::start(DIAGNOSTICS);
    let len = DIAG_MAX_PAYLOAD as u64 + 1;
    let bytes = raw_frame(0x80 | OP_TEXT, mask, len, b"");
    assert_fails_ws(
        &server,
        &bytes,
        MESSAGE_TOO_BIG,
        "16-bit length of maxPayload + 1",
    );
}

#[test]
fn fragments_adding_up_over_max_payload_are_refused() {
    let server = Server::start(DIAGNOSTICS);
    let half = vec![b'a'; DIAG_MAX_PAYLOAD / 2 + 1];
    let mut first = b"42[\"echo\",\"".to_vec();
    first.extend_from_slice(&half);
    let mut bytes = frame(false, OP_TEXT, &first);
    bytes.extend(frame(true, OP_CONT, &half));
    assert_fails_ws(
        &server,
        &bytes,
        MESSAGE_TOO_BIG,
        "two fragments over maxPayload",
    );
}

#[test]
fn malformed_frame_trickled_byte_by_byte_is_still_refused() {
    // The parser must wait for a whole header (mask key included) and then refuse it.
    let server = Server::start(DIAGNOSTICS);
    let before = server.protocol_errors();
    let mut ws = server.ws_socket();
    let bytes = raw_frame(0x80 | OP_TEXT, Some([7, 7, 7, 7]), 1 << 20, b"");
    for b in &bytes {
        ws.send_raw(&[*b]);
    }
    let end = ws.expect_closed("oversized header sent one byte per write");
    assert_eq!(end.close, Some(Some(MESSAGE_TOO_BIG)));
    server.assert_counted_and_serving(before, "oversized header sent one byte per write");
}

#[test]
fn malformed_frame_in_the_same_write_as_the_upgrade_is_refused() {
    // The bytes after the upgrade request belong to the WebSocket from the first byte on.
    let server = Server::start(CONFORMANCE);
    let before = server.protocol_errors();
    let target = format!("{}?EIO=4&transport=websocket", fixture::PATH);
    let behind = raw_frame(0x80 | OP_TEXT, None, 2, b"40");
    let mut ws = fixture::WsClient::connect_with(server.tcp(), &target, &behind);
    let open = ws.recv_text();
    assert!(open.starts_with("0{"), "OPEN frame: {open:?}");
    let end = ws.expect_closed("unmasked frame behind the upgrade request");
    assert_eq!(end.close, Some(Some(PROTOCOL_ERROR)));
    server.assert_counted_and_serving(before, "unmasked frame behind the upgrade request");
}

#[test]
fn malformed_close_frames_are_answered_with_1002() {
    // RFC 6455 5.5.1: a close body starts with a 2-byte status code (so 1 byte is invalid);
    // 7.4.1/7.4.2: 999, 1004-1006, 1015 and codes under 3000 that are not defined must not
    // be sent; an endpoint receiving them fails the connection (protocol error).
    let server = Server::start(CONFORMANCE);
    for (payload, what) in [
        (&[0x03][..], "1-byte close body"),
        (&[0x03, 0xE7][..], "close code 999"),
        (&[0x03, 0xED][..], "close code 1005"),
        (&[0x03, 0xEE][..], "close code 1006"),
        (&[0x07, 0xD0][..], "close code 2000"),
    ] {
        assert_fails_ws(
            &server,
            &frame(true, OP_CLOSE, payload),
            PROTOCOL_ERROR,
            what,
        );
    }
}

#[test]
fn valid_edge_cases_are_not_refused() {
    let server = Server::start(DIAGNOSTICS);
    let mut ws = server.ws_socket();

    // A ping between the fragments of a message is allowed (RFC 6455 5.4).
    ws.send_raw(&frame(false, OP_TEXT, br#"421["echo","#));
    ws.send_raw(&frame(true, OP_PING, b"hi"));
    ws.send_raw(&frame(false, OP_CONT, b"1,"));
    ws.send_raw(&frame(true, OP_CONT, b"2]"));
    assert_eq!(ws.recv_frame(), fixture::WsFrame::Pong(b"hi".to_vec()));
    assert_eq!(ws.recv_message(), "431[1,2]");

    // A message of exactly maxPayload bytes is accepted.
    let head = r#"422["echo",""#;
    let fill = "a".repeat(DIAG_MAX_PAYLOAD - head.len() - 2);
    let msg = format!("{head}{fill}\"]");
    assert_eq!(msg.len(), DIAG_MAX_PAYLOAD);
    ws.send_text(&msg);
    assert_eq!(ws.recv_message(), format!("432[\"{fill}\"]"));

    // Empty fragments and a fragmented binary attachment.
    ws.send_raw(&frame(false, OP_TEXT, b""));
    ws.send_raw(&frame(
        true,
        OP_CONT,
        br#"451-13["echo",{"_placeholder":true,"num":0}]"#,
    ));
    ws.send_raw(&frame(false, OP_BINARY, &[1, 2]));
    ws.send_raw(&frame(true, OP_CONT, &[3]));
    assert_eq!(
        ws.recv_message(),
        r#"461-13[{"_placeholder":true,"num":0}]"#
    );
    assert_eq!(ws.recv_frame(), fixture::WsFrame::Binary(vec![1, 2, 3]));

    // A client close is answered with a close and the connection ends.
    ws.send_raw(&frame(true, OP_CLOSE, &1000u16.to_be_bytes()));
    let end = ws.expect_closed("client close");
    assert_eq!(end.close, Some(Some(1000)));
    assert_eq!(
        server.protocol_errors(),
        0,
        "valid input counted as a protocol error"
    );
}

#[test]
fn text_frame_with_invalid_utf8_fails_with_1007() {
    // RFC 6455 8.1 and 7.4.1: a text message that is not UTF-8 fails the connection with
    // 1007, whatever it carries (the reference server's `ws` library does this for every
    // text message, before Engine.IO sees it).
    let server = Server::start(CONFORMANCE);
    for (payload, what) in [
        (&b"6\xff\xfe"[..], "noop with invalid UTF-8"),
        (
            &b"42[\"message\",\"\xc3\x28\"]"[..],
            "event with an invalid UTF-8 sequence",
        ),
        (
            &b"42[\"message\",\"\xed\xa0\x80\"]"[..],
            "event with an encoded surrogate",
        ),
    ] {
        assert_fails_ws(&server, &frame(true, OP_TEXT, payload), 1007, what);
    }
}
