//! What the official `@socket.io/redis-emitter` publishes (run by Node against a private
//! redis-server) arrives through the bridge's PSUBSCRIBE/SUBSCRIBE and decodes to the right
//! event, arguments, binary attachment, rooms and requests.

#[path = "support/redis.rs"]
mod redis_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mio::{Events, Poll, Token, Waker};
use redis_support::RedisServer;
use serde_json::json;
use sio_edge::adapter::{self, RemoteRequest};
use sio_edge::redis_bridge::{self, RedisConfig, RedisEvent, RedisHandle};

const WAKE: Token = Token(1);
const PREFIX: &str = "socket.io";

fn node_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node_redis")
}

/// Node and the package's locked dependencies; installs them (`npm ci`) on first use.
fn node_ready() {
    static INSTALL: Mutex<bool> = Mutex::new(false);
    let mut done = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    if *done {
        return;
    }
    match Command::new("node").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!("`node --version` failed: {o:?}"),
        Err(e) => panic!("node not found ({e}): install Node.js 20+ (apt-get install nodejs npm)"),
    }
    let dir = node_dir();
    if !dir.join("node_modules/@socket.io/redis-emitter").exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .status()
            .unwrap_or_else(|e| panic!("npm not found ({e}): install npm (apt-get install npm)"));
        assert!(status.success(), "npm ci in {} failed", dir.display());
    }
    *done = true;
}

fn run_node(script: &str, args: &[&str]) {
    let out = Command::new("node")
        .arg(script)
        .args(args)
        .current_dir(node_dir())
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "node {script} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Bridge {
    poll: Poll,
    events: Events,
    handle: RedisHandle,
}

impl Bridge {
    fn start(server: &RedisServer) -> Bridge {
        let poll = Poll::new().expect("poll");
        let waker = Arc::new(Waker::new(poll.registry(), WAKE).expect("waker"));
        let handle = redis_bridge::spawn(
            RedisConfig::new(server.url(), "codec-test"),
            vec![
                adapter::pattern_for(PREFIX, "/"),
                adapter::pattern_for(PREFIX, "/chat"),
            ],
            vec![adapter::request_channel(PREFIX, "/")],
            waker,
        )
        .expect("spawn bridge");
        let mut b = Bridge {
            poll,
            events: Events::with_capacity(8),
            handle,
        };
        b.next(|e| matches!(e, RedisEvent::Connected));
        b
    }

    /// The next event matching `want` (others are dropped), within 10 s.
    fn next(&mut self, want: impl Fn(&RedisEvent) -> bool) -> RedisEvent {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            while let Some(ev) = self.handle.try_recv() {
                if want(&ev) {
                    return ev;
                }
            }
            let now = Instant::now();
            assert!(now < deadline, "no matching event from the bridge");
            self.poll
                .poll(&mut self.events, Some(deadline - now))
                .expect("poll");
        }
    }

    fn message(&mut self) -> (Vec<u8>, Vec<u8>) {
        match self.next(|e| matches!(e, RedisEvent::Message { .. })) {
            RedisEvent::Message { channel, payload } => (channel, payload),
            _ => unreachable!(),
        }
    }
}

#[test]
fn emitter_broadcasts_decode_with_args_binary_and_rooms() {
    node_ready();
    let server = RedisServer::start();
    let port = server.port.to_string();
    let mut bridge = Bridge::start(&server);

    // One room, JSON args and one binary Buffer.
    run_node(
        "emit.mjs",
        &[
            &port,
            "/",
            "room1",
            "ev",
            r#"{"a":1,"list":[true,null]}"#,
            "bin:deadbeef00ff",
            r#""text""#,
        ],
    );
    let (channel, payload) = bridge.message();
    assert_eq!(channel, b"socket.io#/#room1#");
    let b = adapter::decode_broadcast(&channel, &payload, PREFIX).expect("decode");
    assert_eq!(b.uid, adapter::EMITTER_UID);
    assert_eq!(b.nsp, "/");
    assert_eq!(
        b.event_args,
        json!(["ev", {"a": 1, "list": [true, null]}, {"_placeholder": true, "num": 0}, "text"])
    );
    assert_eq!(
        b.attachments,
        vec![Bytes::from_static(&[0xde, 0xad, 0xbe, 0xef, 0x00, 0xff])]
    );
    assert_eq!(b.rooms, vec!["room1".to_string()]);
    assert_eq!(b.channel_room.as_deref(), Some("room1"));
    assert!(b.except.is_empty());

    // Two rooms in another namespace: the bare namespace channel.
    run_node(
        "emit.mjs",
        &[&port, "/chat", "r1,r2", "multi", "1", "-2.5", r#""é""#],
    );
    let (channel, payload) = bridge.message();
    assert_eq!(channel, b"socket.io#/chat#");
    let b = adapter::decode_broadcast(&channel, &payload, PREFIX).expect("decode");
    assert_eq!(b.nsp, "/chat");
    assert_eq!(b.event_args, json!(["multi", 1, -2.5, "é"]));
    assert!(b.attachments.is_empty());
    assert_eq!(b.rooms, vec!["r1".to_string(), "r2".to_string()]);
    assert_eq!(b.channel_room, None);

    // Everyone, no args.
    run_node("emit.mjs", &[&port, "/", "-", "ping"]);
    let (channel, payload) = bridge.message();
    let b = adapter::decode_broadcast(&channel, &payload, PREFIX).expect("decode");
    assert_eq!(channel, b"socket.io#/#");
    assert_eq!(b.event_args, json!(["ping"]));
    assert!(b.rooms.is_empty());

    // Our own encoding published through the bridge decodes the same way (what another
    // sio-edge node, or a Node adapter, receives).
    let ours = adapter::Broadcast {
        uid: "node-x".into(),
        nsp: "/".into(),
        event_args: json!(["bin", {"_placeholder": true, "num": 0}]),
        attachments: vec![Bytes::from_static(b"\x01\x02")],
        rooms: vec!["solo".into()],
        ..Default::default()
    };
    let ch = adapter::channel_for(PREFIX, &ours.nsp, &ours.rooms);
    bridge
        .handle
        .publish(ch.clone(), adapter::encode_broadcast(&ours))
        .expect("publish");
    let (channel, payload) = bridge.message();
    assert_eq!(channel, ch.as_bytes());
    let back = adapter::decode_broadcast(&channel, &payload, PREFIX).expect("decode ours");
    assert_eq!(back.event_args, ours.event_args);
    assert_eq!(back.attachments, ours.attachments);
    assert_eq!(back.channel_room.as_deref(), Some("solo"));
    bridge.handle.shutdown();
}

#[test]
fn emitter_requests_decode_to_join_leave_and_disconnect() {
    node_ready();
    let server = RedisServer::start();
    let port = server.port.to_string();
    let mut bridge = Bridge::start(&server);

    run_node(
        "request.mjs",
        &[&port, "/", "room1", "join", "room2", "room3"],
    );
    let (channel, payload) = bridge.message();
    assert_eq!(channel, b"socket.io-request#/#");
    assert_eq!(
        adapter::decode_request(&channel, &payload, PREFIX).expect("decode"),
        RemoteRequest::Join {
            uid: None,
            nsp: "/".into(),
            rooms: vec!["room2".into(), "room3".into()],
            opts_rooms: vec!["room1".into()],
            opts_except: vec![],
        }
    );

    run_node("request.mjs", &[&port, "/", "-", "leave", "lobby"]);
    let (channel, payload) = bridge.message();
    assert_eq!(
        adapter::decode_request(&channel, &payload, PREFIX).expect("decode"),
        RemoteRequest::Leave {
            uid: None,
            nsp: "/".into(),
            rooms: vec!["lobby".into()],
            opts_rooms: vec![],
            opts_except: vec![],
        }
    );

    run_node(
        "request.mjs",
        &[&port, "/", "user:42", "disconnect", "true"],
    );
    let (channel, payload) = bridge.message();
    assert_eq!(
        adapter::decode_request(&channel, &payload, PREFIX).expect("decode"),
        RemoteRequest::Disconnect {
            uid: None,
            nsp: "/".into(),
            close: true,
            opts_rooms: vec!["user:42".into()],
            opts_except: vec![],
        }
    );
    bridge.handle.shutdown();
}
