//! An invalid Engine.IO or Socket.IO packet over a WebSocket ends that session: the server
//! closes the connection without answering the packet, counts a protocol error, and keeps
//! serving new clients.

mod fixture;

use fixture::{Server, WsClient, DIAGNOSTICS};

/// One thing the client sends.
enum Out<'a> {
    Text(&'a str),
    Bytes(&'a [u8]),
    Binary(&'a [u8]),
}

/// Sends each of `msgs` on `ws`.
fn send_all(ws: &mut WsClient, msgs: &[Out<'_>]) {
    for m in msgs {
        match m {
            Out::Text(t) => ws.send_text(t),
            Out::Bytes(b) => ws.send_raw(&fixture::frame(true, fixture::OP_TEXT, b)),
            Out::Binary(b) => ws.send_binary(b),
        }
    }
}

/// Sends `msgs` on `ws`, then checks that the server closes without a reply, that the error
/// was counted, and that a new client still gets its echo.
fn assert_ends_session(server: &Server, mut ws: WsClient, msgs: &[Out<'_>], what: &str) {
    let before = server.protocol_errors();
    send_all(&mut ws, msgs);
    let end = ws.expect_closed(what);
    assert!(
        end.texts.is_empty(),
        "{what}: unexpected replies {:?}",
        end.texts
    );
    server.assert_counted_and_serving(before, what);
}

/// With a socket connected to `/`.
fn connected(server: &Server, msgs: &[Out<'_>], what: &str) {
    assert_ends_session(server, server.ws_socket(), msgs, what);
}

/// On one server, each `(text, what)`: a text frame alone from a socket connected to `/`.
fn each_text_ends_session(server: &Server, cases: &[(&str, &str)]) {
    for (text, what) in cases {
        connected(server, &[Out::Text(text)], what);
    }
}

#[test]
fn unknown_engineio_packet_type() {
    let server = Server::start(DIAGNOSTICS);
    each_text_ends_session(
        &server,
        &[
            ("abc", "Engine.IO packet `abc`"),
            ("7", "Engine.IO packet `7`"),
        ],
    );
    assert_ends_session(
        &server,
        server.ws_eio(),
        &[Out::Text("abc")],
        "`abc` before CONNECT",
    );
}

#[test]
fn empty_engineio_packet() {
    let server = Server::start(DIAGNOSTICS);
    each_text_ends_session(&server, &[("", "empty text frame")]);
}

#[test]
fn client_ping_is_the_wrong_heartbeat_direction() {
    // Engine.IO v4: the server pings and the client pongs; a client `2` is an error.
    let server = Server::start(DIAGNOSTICS);
    each_text_ends_session(
        &server,
        &[
            ("2", "client ping `2`"),
            ("2probe", "`2probe` on a WebSocket-only session"),
        ],
    );
}

#[test]
fn open_and_upgrade_packets_from_the_client() {
    let server = Server::start(DIAGNOSTICS);
    each_text_ends_session(
        &server,
        &[
            ("0", "client OPEN `0`"),
            ("5", "UPGRADE `5` with no upgrade under way"),
        ],
    );
}

#[test]
fn unknown_socketio_packet_type() {
    let server = Server::start(DIAGNOSTICS);
    each_text_ends_session(
        &server,
        &[
            ("4abc", "Socket.IO packet `abc`"),
            ("47[\"x\"]", "Socket.IO packet type 7"),
        ],
    );
}

#[test]
fn event_payload_that_is_not_an_array() {
    let server = Server::start(DIAGNOSTICS);
    each_text_ends_session(
        &server,
        &[
            ("42{}", "`42{}`"),
            ("42\"x\"", "`42\"x\"`"),
            ("42[]", "`42[]` (no event name)"),
            ("42", "`42` (no payload)"),
            ("42[\"echo\",1", "truncated JSON"),
        ],
    );
}

#[test]
fn reserved_event_name() {
    let server = Server::start(DIAGNOSTICS);
    each_text_ends_session(
        &server,
        &[(r#"42["disconnect"]"#, "event named `disconnect`")],
    );
}

#[test]
fn non_numeric_ack_id() {
    let server = Server::start(DIAGNOSTICS);
    each_text_ends_session(&server, &[(r#"42abc["x"]"#, "`42abc[\"x\"]`")]);
}

#[test]
fn connect_error_from_the_client() {
    let server = Server::start(DIAGNOSTICS);
    each_text_ends_session(&server, &[(r#"44{"message":"x"}"#, "client CONNECT_ERROR")]);
}

#[test]
fn invalid_utf8_in_a_text_frame() {
    let server = Server::start(DIAGNOSTICS);
    connected(
        &server,
        &[Out::Bytes(b"42[\"echo\",\"\xff\xfe\"]")],
        "invalid UTF-8",
    );
}

#[test]
fn text_frame_where_an_attachment_was_expected() {
    let server = Server::start(DIAGNOSTICS);
    let msgs = [Out::Text(r#"451-["x"]"#), Out::Text(r#"42["echo",1]"#)];
    connected(&server, &msgs, "`451-[\"x\"]` then a text frame");
    let msgs = [
        Out::Text(r#"451-["echo",{"_placeholder":true,"num":0}]"#),
        Out::Text(r#"42["echo",1]"#),
    ];
    connected(&server, &msgs, "well-formed `451-` then a text frame");
}

#[test]
fn binary_frame_without_a_binary_packet() {
    let server = Server::start(DIAGNOSTICS);
    connected(&server, &[Out::Binary(&[1, 2, 3])], "stray binary frame");
    connected(&server, &[Out::Binary(&[])], "stray empty binary frame");
}

#[test]
fn attachment_count_that_does_not_match_the_placeholders() {
    let server = Server::start(DIAGNOSTICS);
    let msgs = [
        Out::Text(r#"452-["echo",{"_placeholder":true,"num":0}]"#),
        Out::Binary(&[1]),
        Out::Binary(&[2]),
    ];
    connected(&server, &msgs, "2 attachments, 1 placeholder");
    let msgs = [
        Out::Text(r#"451-["echo",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#),
        Out::Binary(&[1]),
    ];
    connected(&server, &msgs, "1 attachment, 2 placeholders");
    let msgs = [
        Out::Text(r#"451-["echo",{"_placeholder":true,"num":5}]"#),
        Out::Binary(&[1]),
    ];
    connected(&server, &msgs, "placeholder num out of range");
}

#[test]
fn malformed_attachment_count() {
    let server = Server::start(DIAGNOSTICS);
    each_text_ends_session(
        &server,
        &[
            (r#"45["echo"]"#, "`45` without a count"),
            (r#"45x-["echo"]"#, "non-numeric count"),
            (r#"4599999999999999999999-["echo"]"#, "huge count"),
        ],
    );
}

#[test]
fn packet_for_a_namespace_that_is_not_connected() {
    let server = Server::start(DIAGNOSTICS);
    let msgs = [Out::Text(r#"42/custom,1["echo",1]"#)];
    connected(&server, &msgs, "event on /custom while only / is connected");
    let msgs = [Out::Text(r#"42["echo",1]"#)];
    assert_ends_session(&server, server.ws_eio(), &msgs, "event before any CONNECT");
    let msgs = [Out::Text("41/custom,")];
    connected(
        &server,
        &msgs,
        "DISCONNECT of /custom while only / is connected",
    );
}

#[test]
fn one_bad_packet_ends_every_namespace_of_the_session() {
    let server = Server::start(DIAGNOSTICS);
    let mut ws = server.ws_socket();
    ws.send_text("40/custom,");
    ws.expect_connected("/custom", false);
    assert_ends_session(
        &server,
        ws,
        &[Out::Text("4abc")],
        "bad packet with two namespaces",
    );
    assert_eq!(server.metric("sio_sockets{namespace=\"/\"}"), 0);
    assert_eq!(server.metric("sio_sockets{namespace=\"/custom\"}"), 0);
}

#[test]
fn garbage_on_an_upgrading_websocket_fails_only_the_upgrade() {
    // The reference server closes the probing transport and the polling session goes on.
    let server = Server::start(DIAGNOSTICS);
    for (msgs, what) in [
        (&[Out::Text("abc")][..], "`abc` instead of `2probe`"),
        (
            &[Out::Binary(&[1, 2])][..],
            "binary frame instead of `2probe`",
        ),
        (
            &[Out::Text("2probe"), Out::Text("abc")][..],
            "`abc` instead of `5`",
        ),
        (
            &[Out::Text(r#"42["echo",1]"#)][..],
            "message before the upgrade",
        ),
    ] {
        let polling = server.polling();
        let target = polling
            .target()
            .replace("transport=polling", "transport=websocket");
        let mut ws = server.ws_upgrade(&target);
        send_all(&mut ws, msgs);
        let end = ws.expect_closed(what);
        let probe_answer: &[String] = if msgs.len() == 2 {
            &["3probe".to_owned()]
        } else {
            &[]
        };
        assert_eq!(end.texts, probe_answer, "{what}: replies");
        polling.connect_root();
        assert_eq!(polling.post(b"1").status, 200, "{what}: client close");
        polling.assert_gone(&format!("{what}: after the client's own close"));
    }
    server.assert_echo_round_trip();
}

#[test]
fn deeply_nested_json_is_refused_without_exhausting_the_stack() {
    // 400k levels fit in the conformance profile's 1 MB maxPayload; a recursive parser
    // without a depth limit would overflow the loop thread's stack and take every client
    // down with it.
    let server = Server::start(fixture::CONFORMANCE);
    let depth = 400_000;
    let deep = format!("42[\"message\",{}{}]", "[".repeat(depth), "]".repeat(depth));
    connected(&server, &[Out::Text(&deep)], "400k nested arrays");
    let deep = format!(
        "42[\"message\",{}1{}]",
        "{\"a\":".repeat(depth / 5),
        "}".repeat(depth / 5)
    );
    connected(&server, &[Out::Text(&deep)], "80k nested objects");
}
