//! Under systemd socket activation (`LISTEN_FDS`, as `sio-edge.socket` does) the server serves
//! on the socket it is handed instead of binding its own, so connects made while it restarts
//! wait in the kernel's queue. Driven with `systemd-socket-activate`, systemd's own tool.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn serves_on_the_socket_systemd_passes() {
    let tool = "systemd-socket-activate";
    let found = Command::new(tool).arg("--help").output().is_ok();
    assert!(
        found,
        "{tool} is missing: install systemd (apt-get install systemd) to run this test"
    );
    // A free loopback port for the tool to listen on.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let mut child = Command::new(tool)
        .args([
            "-l",
            &format!("127.0.0.1:{port}"),
            env!("CARGO_BIN_EXE_sio-edge"),
        ])
        .args(["--allow-anonymous", "--port", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn systemd-socket-activate");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    // The tool says it listens before the first connect execs the server.
    stderr.read_line(&mut line).expect("tool output");
    assert!(line.contains("Listening on"), "tool output: {line:?}");
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        reply.starts_with("HTTP/1.1 200 ") && reply.contains("\"sid\""),
        "an Engine.IO handshake on the passed socket (the server's own --port 1 was never bound): {reply:?}"
    );
}
