//! The edge holds against hostile peers: each phase of a connection has a deadline (a trickling
//! head is answered 408 and closed at it, whatever it sends meanwhile), a connection without a
//! session gives its slot to a new client at `--max-connections`, a request is refused from its
//! head before its body is read, an unfinished upgrade is cancelled while its polling session
//! goes on, browsers connect only from allowed origins, and `/api/*` and `/metrics` are only
//! where the configuration puts them.

mod fixture;

use fixture::{request, HttpConn, Server, DIAGNOSTICS, PATH};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A short head deadline so the tests wait briefly.
const HEAD_MS: &str = "1500";

fn diagnostics_with(extra: &[&'static str]) -> Server {
    let mut flags: Vec<&str> = DIAGNOSTICS.to_vec();
    flags.extend_from_slice(extra);
    Server::start(&flags)
}

/// Reads everything until EOF (or `limit`), returning what arrived.
fn read_to_close(stream: &mut TcpStream, limit: Duration) -> Vec<u8> {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => panic!("connection not closed within {limit:?} ({e}); got {out:?}"),
        }
    }
}

/// Sends `bytes` one at a time, `every` apart, until the server answers; returns the answer
/// read to the connection's close (empty if it never answered).
fn trickle(s: &mut TcpStream, bytes: &[u8], every: Duration) -> Vec<u8> {
    let mut reply = Vec::new();
    for &b in bytes {
        if s.write_all(&[b]).is_err() {
            break;
        }
        s.set_read_timeout(Some(every)).unwrap();
        let mut buf = [0u8; 1024];
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                reply.extend_from_slice(&buf[..n]);
                reply.extend(read_to_close(s, Duration::from_secs(5)));
                break;
            }
            Err(_) => continue,
        }
    }
    reply
}

/// Lets this test process hold a few thousand sockets.
fn raise_fd_limit(n: u64) {
    let got = rlimit::increase_nofile_limit(n).expect("raise the open-file limit");
    assert!(
        got >= n,
        "this test needs {n} descriptors; the hard limit is {got}"
    );
}

#[test]
fn a_trickling_head_is_answered_408_at_the_deadline_whatever_it_sends() {
    let server = diagnostics_with(&["--head-timeout", HEAD_MS]);
    let mut s = server.tcp();
    let head = request("GET", "/health", &[("X-Slow", "yes")], b"");
    let started = Instant::now();
    // One byte every 200 ms: the whole head would take seconds; each byte must not buy time.
    let reply = trickle(&mut s, &head[..head.len() - 1], Duration::from_millis(200));
    let text = String::from_utf8_lossy(&reply);
    assert!(
        text.starts_with("HTTP/1.1 408 "),
        "late head answered 408: {text:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(200 * head.len() as u64),
        "closed before the trickle could finish"
    );
    assert_eq!(server.metric("sio_request_timeouts_total"), 1);
    // Its slot is free: the open connections come down to the metrics request itself (earlier
    // metrics requests may linger for a moment while their clients close).
    let freed = Instant::now();
    while server.metric("sio_tcp_connections") > 1 {
        assert!(
            freed.elapsed() < Duration::from_secs(5),
            "the timed-out connection still holds a slot"
        );
        std::thread::yield_now();
    }
    server.assert_echo_round_trip();
}

#[test]
fn a_trickling_body_is_answered_408_at_its_deadline() {
    let server = diagnostics_with(&["--body-timeout", HEAD_MS]);
    let polling = server.polling();
    let mut s = server.tcp();
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 200\r\n\r\n",
        polling.target()
    );
    s.write_all(head.as_bytes()).unwrap();
    let started = Instant::now();
    // 200 body bytes at one per 100 ms would take 20 s.
    let reply = trickle(&mut s, &[b'x'; 200], Duration::from_millis(100));
    let text = String::from_utf8_lossy(&reply);
    assert!(
        text.starts_with("HTTP/1.1 408 "),
        "late body answered 408: {text:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(server.metric("sio_request_timeouts_total"), 1);
}

#[test]
fn a_new_client_gets_in_while_2000_connections_trickle() {
    raise_fd_limit(4500);
    let server = diagnostics_with(&["--head-timeout", "60000"]);
    let mut tricklers: Vec<TcpStream> = (0..2000)
        .map(|_| {
            let mut s = server.tcp();
            s.write_all(b"GET / HTTP/1.1\r\nX-A: ").unwrap();
            s
        })
        .collect();
    // They are all open and parsed (the metric answer comes after their input).
    assert!(server.metric("sio_connections_accepted_total") >= 2000);
    server.assert_echo_round_trip();
    for s in &mut tricklers {
        let _ = s.write_all(b"b");
    }
    server.assert_echo_round_trip();
}

#[test]
fn at_the_connection_limit_a_sessionless_connection_gives_its_slot() {
    let server = diagnostics_with(&["--max-connections", "300", "--head-timeout", "60000"]);
    let mut tricklers: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut s = server.tcp();
            s.write_all(b"GET / HTTP/1.1\r\n").unwrap();
            s
        })
        .collect();
    // The limit is reached by connections that never finish a head: a real client still
    // connects, and one of them was closed for it.
    server.assert_echo_round_trip();
    assert!(server.metric("sio_slot_evictions_total") >= 1);
    let mut closed = 0;
    for s in &mut tricklers {
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        // Its end is a FIN, or a reset when the server closed it before reading its bytes
        // (the kernel resets a socket closed with unread input): both count, a timeout not.
        match s.read(&mut [0u8; 16]) {
            Ok(_) => closed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed += 1,
            Err(_) => {}
        }
    }
    assert!(closed >= 1, "an evicted trickler sees its connection end");
}

#[test]
fn unauthorized_large_posts_are_answered_from_the_head() {
    let server = diagnostics_with(&["--internal-api-key", "a-long-enough-internal-key-123"]);
    // Each within its route's body limit (DIAGNOSTICS has maxPayload 1000; larger is 413).
    for (target, len, status) in [
        ("/api/emit", 1_000_000, 401),
        (
            &*format!("{PATH}?EIO=4&transport=polling&sid=nosuchsid"),
            900,
            400,
        ),
    ] {
        let mut c = server.http_conn();
        // Only the head: the answer must not wait for the body.
        c.send(
            format!("POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len}\r\n\r\n")
                .as_bytes(),
        );
        let resp = c.read_response();
        assert_eq!(resp.status, status, "{target}: {}", resp.text());
    }
}

#[test]
fn an_unfinished_upgrade_is_closed_and_the_polling_session_goes_on() {
    let server = diagnostics_with(&["--upgrade-timeout", "500"]);
    let polling = server.polling();
    let mut ws = server.ws_upgrade(&format!(
        "{}&transport=websocket",
        polling.target().replace("&transport=polling", "")
    ));
    ws.send_text("2probe");
    assert_eq!(ws.recv_text(), "3probe");
    // No `5`: the server gives up on the upgrade.
    let started = Instant::now();
    ws.expect_closed("an upgrade never completed");
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(server.metric("sio_upgrade_timeouts_total"), 1);
    polling.connect_root();
    let resp = polling.post(br#"427["echo","still polling"]"#);
    assert_eq!(resp.status, 200);
    assert_eq!(polling.get().text(), r#"437["still polling"]"#);
}

/// A handshake or upgrade request with `Origin` (and `Host: 127.0.0.1`).
fn with_origin(server: &Server, ws: bool, origin: Option<&str>, host: &str) -> u16 {
    let mut headers = vec![("Host", host)];
    if let Some(o) = origin {
        headers.push(("Origin", o));
    }
    let target = if ws {
        headers.extend([
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13"),
        ]);
        format!("{PATH}?EIO=4&transport=websocket")
    } else {
        format!("{PATH}?EIO=4&transport=polling")
    };
    let mut raw = format!("GET {target} HTTP/1.1\r\n");
    for (k, v) in &headers {
        raw.push_str(&format!("{k}: {v}\r\n"));
    }
    raw.push_str("\r\n");
    let mut c = HttpConn::new(server.tcp());
    c.send(raw.as_bytes());
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if c.stream.read(&mut byte).unwrap_or(0) == 0 {
            break;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[test]
fn browsers_connect_only_from_allowed_origins() {
    let server = diagnostics_with(&[]);
    let own = server.addr.to_string();
    for ws in [false, true] {
        let ok = if ws { 101 } else { 200 };
        for foreign in [
            "http://evil.example",
            "null",
            "http://localhost:3000.evil.example",
        ] {
            assert_eq!(
                with_origin(&server, ws, Some(foreign), &own),
                403,
                "{foreign} ws={ws}"
            );
        }
        assert_eq!(
            with_origin(&server, ws, None, &own),
            ok,
            "no Origin (Node, mobile)"
        );
        assert_eq!(
            with_origin(&server, ws, Some("http://localhost:3000"), &own),
            ok,
            "the configured origin"
        );
        let same = format!("http://{own}");
        assert_eq!(
            with_origin(&server, ws, Some(&same), &own),
            ok,
            "the server's own origin"
        );
    }
    assert_eq!(server.metric("sio_origin_refused_total"), 6);
    let any = diagnostics_with(&["--cors-origin", "*"]);
    assert_eq!(
        with_origin(&any, true, Some("http://evil.example"), "x"),
        101,
        "* allows all"
    );
}

#[test]
fn metrics_and_api_are_where_the_configuration_says() {
    const KEY: &str = "a-long-enough-internal-key-123";
    let bearer = format!("Bearer {KEY}");
    let get = |addr: std::net::SocketAddr, target: &str, auth: bool| -> u16 {
        let mut c = HttpConn::new(TcpStream::connect(addr).unwrap());
        let headers: Vec<(&str, &str)> = if auth {
            vec![("Authorization", bearer.as_str())]
        } else {
            vec![]
        };
        c.send(&request("GET", target, &headers, b""));
        c.read_response().status
    };
    // Internal listener: /metrics and /api there (metrics without the key), 404 on the public port.
    let server = Server::start(&[
        "--allow-anonymous",
        "--internal-api-key",
        KEY,
        "--internal-addr",
        "127.0.0.1:0",
    ]);
    let internal = server.internal.expect("internal listener address");
    assert_eq!(get(internal, "/metrics", false), 200);
    assert_eq!(get(internal, "/api/presence?users=a", true), 200);
    assert_eq!(get(internal, "/api/presence?users=a", false), 401);
    assert_eq!(get(server.addr, "/api/presence?users=a", true), 404);
    assert_eq!(
        get(internal, &format!("{PATH}?EIO=4&transport=polling"), false),
        404
    );
    // Without it: on the public port, /metrics needs the key (the fixture passes
    // --public-metrics, so this server is started by hand below without it).
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sio-edge"));
    cmd.args(["--allow-anonymous", "--host", "127.0.0.1", "--port", "0"])
        .args(["--internal-api-key", KEY])
        .env_remove("SOCKET_IO_PUBLIC_METRICS")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().expect("spawn sio-edge");
    let mut line = String::new();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("sio-edge listening on ")
        .and_then(|a| a.parse().ok())
        .expect("listening line");
    let metrics_status = get(addr, "/metrics", false);
    let metrics_with_key = get(addr, "/metrics", true);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(metrics_status, 401, "/metrics is not public by default");
    assert_eq!(metrics_with_key, 200);
}
