//! Invalid long-polling input ends its Engine.IO session: the request is refused (400, or 413
//! over maxPayload), a held GET is released with `1`, later requests naming the sid get 400
//! `{"code":1,...}`, a protocol error is counted, and the server keeps serving new clients.

mod fixture;

use fixture::{request, Server, DIAGNOSTICS, DIAG_MAX_PAYLOAD};

/// Engine.IO-level garbage: the POST itself is refused with 400 and a JSON error.
#[test]
fn post_of_an_invalid_engineio_packet_is_refused_and_ends_the_session() {
    let server = Server::start(DIAGNOSTICS);
    for body in [&b"abc"[..], b"7", b"40\x1eabc", b"40\x1e"] {
        let what = format!("POST {:?}", String::from_utf8_lossy(body));
        let before = server.protocol_errors();
        let polling = server.polling();
        let resp = polling.post(body);
        assert_eq!(resp.status, 400, "{what}: status (body {:?})", resp.text());
        assert!(
            resp.json()["code"].is_u64(),
            "{what}: error body {:?}",
            resp.text()
        );
        polling.assert_gone(&what);
        server.assert_counted_and_serving(before, &what);
    }
}

/// An empty body is one empty record, which has no packet type: the reference parser
/// (engine.io-parser `decodePayload("")` -> `[ERROR_PACKET]`) ends the session with
/// "parse error", as for `abc`.
#[test]
fn empty_post_body_is_an_invalid_packet() {
    let server = Server::start(DIAGNOSTICS);
    let before = server.protocol_errors();
    let polling = server.polling();
    let resp = polling.post(b"");
    polling.assert_gone("after an empty POST");
    // Refused like any other unparseable body (see the `abc` test).
    assert_eq!(
        resp.status,
        400,
        "empty POST: status (body {:?})",
        resp.text()
    );
    server.assert_counted_and_serving(before, "empty POST");
}

/// Packets that parse at the Engine.IO level but are invalid for the session (a client ping,
/// OPEN or UPGRADE over polling, bad base64) or at the Socket.IO level: the session ends; the
/// POST may still be answered `ok`, as the reference server does.
#[test]
fn post_of_an_invalid_packet_ends_the_session() {
    let server = Server::start(DIAGNOSTICS);
    let bodies: [&[u8]; 11] = [
        b"2",
        b"0",
        b"5",
        b"b!!!",
        b"4abc",
        b"42{}",
        br#"42abc["x"]"#,
        br#"42/custom,["echo",1]"#,
        b"bAQID",
        br#"451-["x"]\x1e42["echo",1]"#,
        br#"452-["x",{"_placeholder":true,"num":0}]\x1ebAQ==\x1ebAg=="#,
    ];
    for body in bodies {
        let what = format!("POST {:?}", String::from_utf8_lossy(body));
        let before = server.protocol_errors();
        let polling = server.polling();
        polling.connect_root();
        let resp = polling.post(body);
        assert!(
            resp.status == 200 || resp.status == 400,
            "{what}: status {} (body {:?})",
            resp.status,
            resp.text()
        );
        polling.assert_gone(&what);
        server.assert_counted_and_serving(before, &what);
    }
}

#[test]
fn held_get_is_released_with_close_when_a_post_ends_the_session() {
    let server = Server::start(DIAGNOSTICS);
    for body in [&b"abc"[..], b"4abc"] {
        let what = format!("POST {:?} during a held GET", String::from_utf8_lossy(body));
        let before = server.protocol_errors();
        let polling = server.polling();
        polling.connect_root();
        let mut held = polling.hold_get();
        let resp = polling.post(body);
        assert!(
            resp.status == 200 || resp.status == 400,
            "{what}: status {}",
            resp.status
        );
        let released = held.read_response();
        assert_eq!(
            (released.status, released.text().as_str()),
            (200, "1"),
            "{what}: held GET"
        );
        polling.assert_gone(&what);
        server.assert_counted_and_serving(before, &what);
    }
}

#[test]
fn post_over_max_payload_is_refused_with_413_and_ends_the_session() {
    let server = Server::start(DIAGNOSTICS);
    let polling = server.polling();
    polling.connect_root();

    // Exactly maxPayload bytes is still accepted: `40` (already connected: repeated
    // CONNECT reply) followed by noops.
    let mut body = b"40".to_vec();
    while body.len() < DIAG_MAX_PAYLOAD {
        body.extend_from_slice(b"\x1e6");
    }
    assert_eq!(body.len(), DIAG_MAX_PAYLOAD);
    let resp = polling.post(&body);
    assert_eq!(
        (resp.status, resp.text().as_str()),
        (200, "ok"),
        "POST of maxPayload bytes"
    );
    assert_eq!(
        polling.get().status,
        200,
        "session alive after maxPayload bytes"
    );

    let before = server.protocol_errors();
    body.extend_from_slice(b"6");
    let mut conn = server.http_conn();
    conn.send(&request("POST", &polling.target(), &[], &body));
    let resp = conn.read_response();
    assert_eq!(
        resp.status,
        413,
        "POST of maxPayload + 1 bytes: {:?}",
        resp.text()
    );
    conn.expect_eof("after 413");
    polling.assert_gone("after 413");
    server.assert_counted_and_serving(before, "POST over maxPayload");
}

#[test]
fn declared_body_over_max_payload_is_refused_before_it_arrives() {
    let server = Server::start(DIAGNOSTICS);
    let polling = server.polling();
    let before = server.protocol_errors();
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000000\r\n\r\n",
        polling.target()
    );
    let mut conn = server.http_conn();
    conn.send(head.as_bytes());
    let resp = conn.read_response();
    assert_eq!(resp.status, 413, "announced 100 MB body: {:?}", resp.text());
    conn.expect_eof("after 413");
    polling.assert_gone("after 413");
    server.assert_counted_and_serving(before, "announced body over maxPayload");
}

#[test]
fn two_concurrent_gets_close_the_session() {
    let server = Server::start(DIAGNOSTICS);
    let polling = server.polling();
    polling.connect_root();
    let before = server.protocol_errors();
    let mut first = polling.hold_get();
    let second = polling.get();
    second.assert_eio_error(3, "second concurrent GET");
    let first = first.read_response();
    assert_eq!(
        (first.status, first.text().as_str()),
        (200, "1"),
        "first GET"
    );
    polling.assert_gone("after overlapping GETs");
    assert_eq!(server.metric("sio_connections{transport=\"polling\"}"), 0);
    server.assert_counted_and_serving(before, "overlapping GETs");
}
