//! A request that is not acceptable HTTP/1.1 is answered with an error status (400 garbage,
//! 431 head over 16 KiB or too many headers, 411 chunked body, 400 bad Content-Length) and
//! its connection is closed, while the server keeps serving new clients.

mod fixture;

use fixture::{request, Server, CONFORMANCE, MAX_HEAD_LEN, PATH};

/// Sends `bytes` on a new connection; expects `status`, a `Connection: close` answer and EOF.
fn assert_refused_and_closed(server: &Server, bytes: &[u8], status: u16, what: &str) {
    let mut conn = server.http_conn();
    conn.send(bytes);
    let resp = conn.read_response();
    assert_eq!(
        resp.status,
        status,
        "{what}: status (body {:?})",
        resp.text()
    );
    assert_eq!(
        resp.header("connection")
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("close"),
        "{what}: Connection header"
    );
    conn.expect_eof(what);
}

/// As [`assert_refused_and_closed`], plus a counted protocol error and a fresh client's echo.
fn assert_counted_refusal(server: &Server, bytes: &[u8], status: u16, what: &str) {
    let before = server.protocol_errors();
    assert_refused_and_closed(server, bytes, status, what);
    server.assert_counted_and_serving(before, what);
}

#[test]
fn garbage_instead_of_a_request_line() {
    let server = Server::start(CONFORMANCE);
    assert_counted_refusal(&server, b"GARBAGE\r\n\r\n", 400, "GARBAGE");
    assert_counted_refusal(
        &server,
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",
        400,
        "TLS hello",
    );
    assert_counted_refusal(
        &server,
        b"GET /health HTTP/1.1\r\nBad Header\r\n\r\n",
        400,
        "header without a colon",
    );
    assert_counted_refusal(
        &server,
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        400,
        "HTTP/2 preface",
    );
    assert_counted_refusal(
        &server,
        b"GET /health HTTP/1.1\r\nX: a\x00b\r\n\r\n",
        400,
        "NUL in a header value",
    );
}

#[test]
fn garbage_after_a_good_request_on_a_keep_alive_connection() {
    let server = Server::start(CONFORMANCE);
    let before = server.protocol_errors();
    let mut conn = server.http_conn();
    conn.send(&request("GET", "/health", &[], b""));
    assert_eq!(conn.read_response().status, 200, "first request");
    conn.send(b"GARBAGE\r\n\r\n");
    assert_eq!(
        conn.read_response().status,
        400,
        "garbage on the same connection"
    );
    conn.expect_eof("after garbage");
    server.assert_counted_and_serving(before, "garbage after a good request");
}

#[test]
fn head_over_16_kib_is_refused_with_431() {
    let server = Server::start(CONFORMANCE);
    let filler = "a".repeat(MAX_HEAD_LEN + 1);
    let complete = format!("GET /health HTTP/1.1\r\nHost: x\r\nX-Filler: {filler}\r\n\r\n");
    assert_counted_refusal(
        &server,
        complete.as_bytes(),
        431,
        "complete head over 16 KiB",
    );
    // A head that never ends must be refused as soon as it passes the limit.
    let endless = format!("GET /health HTTP/1.1\r\nHost: x\r\nX-Filler: {filler}");
    assert_counted_refusal(
        &server,
        endless.as_bytes(),
        431,
        "unterminated head over 16 KiB",
    );
}

#[test]
fn head_just_under_16_kib_is_accepted() {
    let server = Server::start(CONFORMANCE);
    let head = "GET /health HTTP/1.1\r\nHost: x\r\nX-Filler: \r\n\r\n";
    let filler = "a".repeat(MAX_HEAD_LEN - head.len());
    let req = format!("GET /health HTTP/1.1\r\nHost: x\r\nX-Filler: {filler}\r\n\r\n");
    assert_eq!(req.len(), MAX_HEAD_LEN);
    assert_eq!(server.raw(req.as_bytes()).status, 200, "16 KiB head");
}

#[test]
fn too_many_headers_are_refused_with_431() {
    let server = Server::start(CONFORMANCE);
    let mut req = "GET /health HTTP/1.1\r\n".to_owned();
    for i in 0..200 {
        req.push_str(&format!("X-H{i}: v\r\n"));
    }
    req.push_str("\r\n");
    assert_counted_refusal(&server, req.as_bytes(), 431, "200 header lines");
}

#[test]
fn chunked_body_is_refused_with_411() {
    let server = Server::start(CONFORMANCE);
    let polling = server.polling();
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n40\r\n0\r\n\r\n",
        polling.target()
    );
    assert_refused_and_closed(&server, head.as_bytes(), 411, "chunked Engine.IO POST");
    let api = "POST /api/emit HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    assert_refused_and_closed(&server, api.as_bytes(), 411, "chunked API POST");
    server.assert_echo_round_trip();
}

#[test]
fn bad_content_length_is_refused() {
    let server = Server::start(CONFORMANCE);
    let target = format!("{PATH}?EIO=4&transport=polling");
    for (value, what) in [
        ("abc", "non-numeric Content-Length"),
        ("-1", "negative Content-Length"),
        ("99999999999999999999999", "Content-Length over u64"),
    ] {
        let req = format!("POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {value}\r\n\r\n");
        assert_counted_refusal(&server, req.as_bytes(), 400, what);
    }
    let req = format!("POST {target} HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n4");
    assert_counted_refusal(&server, req.as_bytes(), 400, "conflicting Content-Lengths");
}

#[test]
fn connection_closed_mid_request_does_not_disturb_the_server() {
    let server = Server::start(CONFORMANCE);
    let mut conn = server.http_conn();
    conn.send(b"POST /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nContent-Length: 10\r\n\r\n40");
    drop(conn);
    let mut conn = server.http_conn();
    conn.send(b"GET /heal");
    drop(conn);
    assert_eq!(server.get("/health").status, 200);
    server.assert_echo_round_trip();
}

/// The headers of a valid WebSocket upgrade, with `name` set to `value` or left out (`None`).
fn upgrade_headers<'a>(name: &str, value: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
    let mut headers = Vec::new();
    for (k, v) in [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
    ] {
        if k != name {
            headers.push((k, v));
        } else if let Some(v) = value {
            headers.push((k, v));
        }
    }
    headers
}

/// Each `(header, value)` variant of the upgrade request is refused with 400, no WebSocket
/// session is opened, and the server keeps serving.
fn assert_upgrades_refused(cases: &[(&str, Option<&str>, &str)]) {
    let server = Server::start(CONFORMANCE);
    let target = format!("{PATH}?EIO=4&transport=websocket");
    for (name, value, what) in cases {
        let resp = server.raw(&request(
            "GET",
            &target,
            &upgrade_headers(name, *value),
            b"",
        ));
        assert_eq!(resp.status, 400, "{what}: status (body {:?})", resp.text());
    }
    assert_eq!(server.metric("sio_connections{transport=\"websocket\"}"), 0);
    assert_eq!(server.metric("sio_connections{transport=\"polling\"}"), 0);
    server.assert_echo_round_trip();
}

#[test]
fn websocket_handshake_without_a_key_version_or_upgrade_is_refused() {
    assert_upgrades_refused(&[
        ("Sec-WebSocket-Key", None, "no Sec-WebSocket-Key"),
        ("Sec-WebSocket-Version", None, "no Sec-WebSocket-Version"),
        (
            "Sec-WebSocket-Version",
            Some("7"),
            "Sec-WebSocket-Version 7",
        ),
        ("Upgrade", None, "no Upgrade header"),
        ("Upgrade", Some("h2c"), "Upgrade: h2c"),
    ]);
}

#[test]
fn websocket_key_that_is_not_a_16_byte_nonce_is_refused() {
    // RFC 6455 4.1/4.2.1: the key is the base64 encoding of 16 bytes; a handshake that does
    // not match MUST be answered with an error such as 400 (the reference's `ws` checks
    // /^[+/0-9A-Za-z]{22}==$/).
    assert_upgrades_refused(&[
        ("Sec-WebSocket-Key", Some(""), "empty key"),
        ("Sec-WebSocket-Key", Some("x"), "one-character key"),
        (
            "Sec-WebSocket-Key",
            Some("not a base64 nonce!!!=="),
            "key that is not base64",
        ),
        (
            "Sec-WebSocket-Key",
            Some("AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
            "20-byte key",
        ),
    ]);
}

#[test]
fn websocket_handshake_without_connection_upgrade_is_refused() {
    // RFC 6455 4.2.1 requires `Connection: Upgrade`; the reference (Node's HTTP server) only
    // hands such requests to the WebSocket layer, and Engine.IO answers the plain request for
    // transport=websocket with 400.
    assert_upgrades_refused(&[
        ("Connection", None, "no Connection header"),
        ("Connection", Some("keep-alive"), "Connection: keep-alive"),
    ]);
}

#[test]
fn body_cut_short_by_the_client_closes_only_that_connection() {
    let server = Server::start(fixture::DIAGNOSTICS);
    let polling = server.polling();
    let mut conn = server.http_conn();
    let head = format!(
        "POST {} HTTP/1.1\r\nContent-Length: 10\r\n\r\n40",
        polling.target()
    );
    conn.send(head.as_bytes());
    conn.stream.shutdown(std::net::Shutdown::Write).unwrap();
    conn.expect_eof("POST body cut short");
    // The two bytes that did arrive were not taken as a packet, and the session lives on.
    polling.connect_root();
    server.assert_echo_round_trip();
}

#[test]
fn content_length_that_is_not_plain_digits_is_refused() {
    // RFC 9112 6.3: Content-Length is 1*DIGIT; an invalid one makes the framing unknown, and
    // the server MUST answer 400 and close. Ignoring it (body length 0) would take the body
    // for the next request, and a proxy in front may have framed it differently.
    let server = Server::start(CONFORMANCE);
    for (value, what) in [
        (&b"+2"[..], "Content-Length +2"),
        (&b"2\xff"[..], "Content-Length with a non-UTF-8 byte"),
    ] {
        let mut req = b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: ".to_vec();
        req.extend_from_slice(value);
        req.extend_from_slice(b"\r\n\r\nok");
        assert_counted_refusal(&server, &req, 400, what);
    }
}

#[test]
fn request_target_that_is_not_utf8_is_refused() {
    let server = Server::start(CONFORMANCE);
    let req = format!("GET {PATH}?EIO=4&transport=polling&sid=");
    let mut req = req.into_bytes();
    req.extend_from_slice(b"\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_counted_refusal(&server, &req, 400, "non-UTF-8 request target");
}

#[test]
fn transfer_encoding_other_than_a_lone_final_chunked_is_refused() {
    // RFC 9112 6.1: a request whose Transfer-Encoding does not end in chunked has no
    // determinable length: the server MUST answer 400 and close. Ignoring the header instead
    // (and framing by Content-Length, or as bodiless) reads the body as the next request:
    // the classic request-smuggling desync with a proxy in front.
    let server = Server::start(CONFORMANCE);
    for (te, what) in [
        (
            &b"Transfer-Encoding: gzip\r\nContent-Length: 2"[..],
            "gzip (not chunked) + Content-Length",
        ),
        (b"Transfer-Encoding: identity", "identity"),
        (
            b"Transfer-Encoding: gzip, chunked",
            "gzip, chunked (unsupported coding)",
        ),
        (
            b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity",
            "chunked, then identity",
        ),
        (
            b"Transfer-Encoding: chunked\xff",
            "chunked with a non-UTF-8 byte",
        ),
    ] {
        let mut req = b"POST /health HTTP/1.1\r\nHost: x\r\n".to_vec();
        req.extend_from_slice(te);
        req.extend_from_slice(b"\r\n\r\n0\r\n\r\n");
        let mut conn = server.http_conn();
        conn.send(&req);
        let resp = conn.read_response();
        assert!(
            matches!(resp.status, 400 | 411 | 501),
            "{what}: status {} (body {:?}); expected a refusal",
            resp.status,
            resp.text()
        );
        conn.expect_eof(what);
    }
    server.assert_echo_round_trip();
}
