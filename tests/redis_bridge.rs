//! The Redis helper threads against a real redis-server: writes land, queries reply in order,
//! pub/sub messages arrive through the waker, the heartbeat key lives, and a Redis that dies
//! and comes back on the same port is reported once each way and re-subscribed, without
//! panics or a busy loop.

#[path = "support/redis.rs"]
mod redis_support;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token, Waker};
use redis::Value;
use redis_support::RedisServer;
use sio_edge::redis_bridge::{self, Full, RedisConfig, RedisEvent, RedisHandle};

const WAKE: Token = Token(7);

/// A stand-in for the event loop: a Poll whose only source is the bridge's waker. Events are
/// drained only after a wake, so a lost wake-up fails the test as a timeout.
struct Loop {
    poll: Poll,
    events: Events,
    handle: Option<RedisHandle>,
    backlog: VecDeque<RedisEvent>,
    wakes: usize,
}

impl Loop {
    fn new(cfg: RedisConfig, patterns: Vec<String>, channels: Vec<String>) -> Loop {
        let poll = Poll::new().expect("poll");
        let waker = Arc::new(Waker::new(poll.registry(), WAKE).expect("waker"));
        let handle = redis_bridge::spawn(cfg, patterns, channels, waker).expect("spawn");
        Loop {
            poll,
            events: Events::with_capacity(16),
            handle: Some(handle),
            backlog: VecDeque::new(),
            wakes: 0,
        }
    }

    fn h(&self) -> &RedisHandle {
        self.handle.as_ref().expect("handle")
    }

    /// Waits for the first event matching `pred`; other events stay in the backlog.
    fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&RedisEvent) -> bool,
    ) -> RedisEvent {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.backlog.iter().position(&mut pred) {
                return self.backlog.remove(i).expect("index");
            }
            let now = Instant::now();
            assert!(
                now < deadline,
                "timed out waiting for {what}; saw {:?}",
                self.backlog
            );
            self.poll
                .poll(
                    &mut self.events,
                    Some((deadline - now).min(Duration::from_millis(100))),
                )
                .expect("poll");
            let woken = self.events.iter().any(|e| e.token() == WAKE);
            if woken {
                self.wakes += 1;
                while let Some(ev) = self.h().try_recv() {
                    self.backlog.push_back(ev);
                }
            }
        }
    }

    fn reply(&mut self, id: u64) -> Result<Vec<Value>, String> {
        match self.wait_for(
            &format!("reply {id}"),
            Duration::from_secs(5),
            |e| matches!(e, RedisEvent::Reply { id: got, .. } if *got == id),
        ) {
            RedisEvent::Reply { result, .. } => result,
            _ => unreachable!(),
        }
    }

    fn message(&mut self, channel: &str) -> Vec<u8> {
        match self.wait_for(
            &format!("message on {channel}"),
            Duration::from_secs(5),
            |e| matches!(e, RedisEvent::Message { channel: c, .. } if c == channel.as_bytes()),
        ) {
            RedisEvent::Message { payload, .. } => payload,
            _ => unreachable!(),
        }
    }
}

fn cmd(args: &[&str]) -> redis::Cmd {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c
}

fn config(url: String, node: &str, prefix: &str) -> RedisConfig {
    let mut cfg = RedisConfig::new(url, node);
    cfg.key_prefix = prefix.to_string();
    cfg
}

/// CPU time (ms) used so far by this process's Redis helper threads.
fn helper_cpu_ms() -> u64 {
    let mut ticks = 0u64;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if !comm.starts_with("redis-") {
            continue;
        }
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        // fields after the ")" of the comm: state is field 3; utime 14, stime 15
        if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ut: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
            let st: u64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
            ticks += ut + st;
        }
    }
    ticks * 10 // USER_HZ is 100 on Linux
}

#[test]
fn writes_queries_pubsub_heartbeat_and_recovery_after_redis_restarts() {
    let mut server = RedisServer::start();
    let mut direct = server.client();
    let mut lp = Loop::new(
        config(server.url(), "node-a", "t1"),
        vec!["t1#*".into()],
        vec!["plain".into()],
    );
    lp.wait_for("Connected", Duration::from_secs(5), |e| {
        matches!(e, RedisEvent::Connected)
    });
    assert!(lp.h().status().connected);

    // Writes land, in order with the queries after them.
    lp.h()
        .write(vec![
            cmd(&["SET", "t1:k", "v1"]),
            cmd(&["RPUSH", "t1:list", "a", "b"]),
        ])
        .expect("write");
    lp.h()
        .query(1, vec![cmd(&["GET", "t1:k"])])
        .expect("query 1");
    lp.h()
        .query(
            2,
            vec![
                cmd(&["LRANGE", "t1:list", "0", "-1"]),
                cmd(&["INCR", "t1:n"]),
                cmd(&["INCR", "t1:n"]),
            ],
        )
        .expect("query 2");
    // A command the server refuses is a ServerError in place, not a failed query.
    lp.h()
        .query(3, vec![cmd(&["INCR", "t1:list"]), cmd(&["PING"])])
        .expect("query 3");
    assert_eq!(lp.reply(1), Ok(vec![Value::BulkString(b"v1".to_vec())]));
    assert_eq!(
        lp.reply(2),
        Ok(vec![
            Value::Array(vec![
                Value::BulkString(b"a".to_vec()),
                Value::BulkString(b"b".to_vec())
            ]),
            Value::Int(1),
            Value::Int(2),
        ])
    );
    let r3 = lp.reply(3).expect("query 3 ran");
    assert!(matches!(r3[0], Value::ServerError(_)), "{r3:?}");
    assert_eq!(r3[1], Value::SimpleString("PONG".into()));
    let got: String = redis::cmd("GET")
        .arg("t1:k")
        .query(&mut direct)
        .expect("GET");
    assert_eq!(got, "v1");

    // Publish reaches both the pattern and the plain subscription.
    lp.h()
        .publish("t1#/#".into(), b"to-pattern".to_vec())
        .expect("publish");
    lp.h()
        .publish("plain".into(), b"\x00binary\xff".to_vec())
        .expect("publish");
    assert_eq!(lp.message("t1#/#"), b"to-pattern");
    assert_eq!(lp.message("plain"), b"\x00binary\xff");

    // Heartbeat: the node key with a TTL of at most 15 s, and the node in the set.
    let pttl: i64 = redis::cmd("PTTL")
        .arg("t1:node:node-a")
        .query(&mut direct)
        .expect("PTTL");
    assert!(pttl > 0 && pttl <= 15_000, "PTTL {pttl}");
    assert_eq!(redis_bridge::node_key("t1", "node-a"), "t1:node:node-a");
    let member: bool = redis::cmd("SISMEMBER")
        .arg("t1:nodes")
        .arg("node-a")
        .query(&mut direct)
        .expect("SISMEMBER");
    assert!(member);
    // A query is a barrier: jobs before it are done (and counted) when its reply arrives.
    lp.h().query(4, vec![cmd(&["PING"])]).expect("query 4");
    lp.reply(4).expect("barrier");
    let st = lp.h().status();
    assert_eq!(st.writes, 2);
    assert_eq!(st.publishes, 2);
    assert_eq!(st.queries, 4);
    assert_eq!(st.dropped, 0);
    drop(direct);

    // Redis dies: one Disconnected; queries fail promptly; writes wait for the reconnect.
    server.kill();
    lp.wait_for("Disconnected", Duration::from_secs(5), |e| {
        matches!(e, RedisEvent::Disconnected(_))
    });
    assert!(!lp.h().status().connected);
    let asked = Instant::now();
    lp.h()
        .query(10, vec![cmd(&["GET", "t1:k"])])
        .expect("query during outage");
    assert!(lp.reply(10).is_err());
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "outage query took {:?}",
        asked.elapsed()
    );
    lp.h()
        .write(vec![cmd(&["SET", "t1:during", "kept"])])
        .expect("write during outage");

    // No busy loop while Redis is away: the helpers sleep between attempts.
    let cpu0 = helper_cpu_ms();
    let wakes0 = lp.wakes;
    std::thread::sleep(Duration::from_secs(2));
    let cpu = helper_cpu_ms() - cpu0;
    assert!(
        cpu < 400,
        "helper threads used {cpu} ms of CPU in a 2 s outage"
    );
    assert!(lp
        .backlog
        .iter()
        .all(|e| !matches!(e, RedisEvent::Disconnected(_))));

    // Back on the same port: one Connected, the queued write flushed, subscriptions renewed.
    server.restart();
    lp.wait_for("Connected again", Duration::from_secs(10), |e| {
        matches!(e, RedisEvent::Connected)
    });
    let mut direct = server.client();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let v: Option<String> = redis::cmd("GET")
            .arg("t1:during")
            .query(&mut direct)
            .expect("GET");
        if v.as_deref() == Some("kept") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "write queued during the outage never landed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let _: i64 = redis::cmd("PUBLISH")
        .arg("t1#/#room#")
        .arg("after")
        .query(&mut direct)
        .expect("PUBLISH");
    assert_eq!(lp.message("t1#/#room#"), b"after");
    let _: i64 = redis::cmd("PUBLISH")
        .arg("plain")
        .arg("again")
        .query(&mut direct)
        .expect("PUBLISH");
    assert_eq!(lp.message("plain"), b"again");
    let pttl: i64 = redis::cmd("PTTL")
        .arg("t1:node:node-a")
        .query(&mut direct)
        .expect("PTTL");
    assert!(
        pttl > 0 && pttl <= 15_000,
        "heartbeat after restart: PTTL {pttl}"
    );
    // Exactly one transition each way.
    assert!(
        !lp.backlog
            .iter()
            .any(|e| matches!(e, RedisEvent::Connected | RedisEvent::Disconnected(_))),
        "extra transitions: {:?}",
        lp.backlog
    );
    assert!(lp.wakes - wakes0 < 50, "{} wakes", lp.wakes - wakes0);
    let errors = lp.h().status().errors;
    assert!(errors >= 1);
    assert!(lp.h().status().last_error.is_some());

    // Shutdown flushes the queue and removes the heartbeat.
    lp.h()
        .write(vec![cmd(&["SET", "t1:last", "flushed"])])
        .expect("write");
    let started = Instant::now();
    lp.handle.take().expect("handle").shutdown();
    assert!(started.elapsed() < Duration::from_secs(3));
    let v: Option<String> = redis::cmd("GET")
        .arg("t1:last")
        .query(&mut direct)
        .expect("GET");
    assert_eq!(v.as_deref(), Some("flushed"));
    let exists: i64 = redis::cmd("EXISTS")
        .arg("t1:node:node-a")
        .query(&mut direct)
        .expect("EXISTS");
    assert_eq!(exists, 0, "heartbeat key left behind after shutdown");
    let member: bool = redis::cmd("SISMEMBER")
        .arg("t1:nodes")
        .arg("node-a")
        .query(&mut direct)
        .expect("SISMEMBER");
    assert!(!member);
}

#[test]
fn queue_is_bounded_and_queries_fail_fast_while_redis_is_unreachable() {
    // A port nobody listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut cfg = config(format!("redis://127.0.0.1:{port}/"), "node-b", "t2");
    cfg.queue = 4;
    let mut lp = Loop::new(cfg, vec!["t2#*".into()], vec![]);
    match lp.wait_for("Disconnected at start", Duration::from_secs(5), |e| {
        matches!(e, RedisEvent::Disconnected(_))
    }) {
        RedisEvent::Disconnected(reason) => assert!(!reason.is_empty()),
        _ => unreachable!(),
    }
    for i in 0..4 {
        lp.h()
            .write(vec![cmd(&["SET", "k", &i.to_string()])])
            .expect("within the bound");
    }
    assert_eq!(lp.h().write(vec![cmd(&["SET", "k", "x"])]), Err(Full));
    assert_eq!(lp.h().publish("c".into(), vec![1]), Err(Full));
    assert_eq!(lp.h().query(1, vec![cmd(&["GET", "k"])]), Err(Full));
    let st = lp.h().status();
    assert_eq!(st.dropped, 3);
    assert_eq!(st.queued, 4);
    assert!(!st.connected);
    // Still only one Disconnected after several failed reconnects.
    std::thread::sleep(Duration::from_millis(700));
    lp.poll
        .poll(&mut lp.events, Some(Duration::from_millis(10)))
        .expect("poll");
    while let Some(ev) = lp.h().try_recv() {
        assert!(
            !matches!(ev, RedisEvent::Disconnected(_) | RedisEvent::Connected),
            "{ev:?}"
        );
    }
    let started = Instant::now();
    lp.handle.take().expect("handle").shutdown();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn queries_during_an_outage_fail_even_with_writes_queued() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut lp = Loop::new(
        config(format!("redis://127.0.0.1:{port}/"), "node-c", "t3"),
        vec![],
        vec![],
    );
    lp.wait_for("Disconnected", Duration::from_secs(5), |e| {
        matches!(e, RedisEvent::Disconnected(_))
    });
    lp.h().write(vec![cmd(&["SET", "a", "1"])]).expect("write");
    lp.h().query(5, vec![cmd(&["GET", "a"])]).expect("query");
    let asked = Instant::now();
    assert!(lp.reply(5).is_err());
    assert!(asked.elapsed() < Duration::from_secs(1));
    assert_eq!(lp.h().status().queued, 1, "the write stays queued");
}

#[test]
fn a_bad_url_is_an_error_at_spawn() {
    let poll = Poll::new().expect("poll");
    let waker = Arc::new(Waker::new(poll.registry(), WAKE).expect("waker"));
    let err = redis_bridge::spawn(RedisConfig::new("not a url", "n"), vec![], vec![], waker);
    assert_eq!(
        err.err().map(|e| e.kind()),
        Some(std::io::ErrorKind::InvalidInput)
    );
}

#[test]
fn a_write_redis_refuses_and_hangs_up_on_does_not_stall_the_queue() {
    let server = RedisServer::start();
    let mut direct = server.client();
    // Redis closes the connection on a bulk string longer than this (1 MB is the minimum).
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("proto-max-bulk-len")
        .arg("1048576")
        .query(&mut direct)
        .expect("CONFIG SET");
    let mut lp = Loop::new(config(server.url(), "node-d", "t4"), vec![], vec![]);
    lp.wait_for("Connected", Duration::from_secs(5), |e| {
        matches!(e, RedisEvent::Connected)
    });
    let mut huge = redis::cmd("SET");
    huge.arg("t4:huge").arg(vec![b'x'; 2 * 1024 * 1024]);
    lp.h().write(vec![huge]).expect("write");
    lp.h()
        .write(vec![cmd(&["SET", "t4:after", "ok"])])
        .expect("write");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v: Option<String> = redis::cmd("GET")
            .arg("t4:after")
            .query(&mut direct)
            .expect("GET");
        if v.as_deref() == Some("ok") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the queue is stuck behind the poison write"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let exists: i64 = redis::cmd("EXISTS")
        .arg("t4:huge")
        .query(&mut direct)
        .expect("EXISTS");
    assert_eq!(exists, 0);
    // Redis answers the oversized bulk with an error and closes the connection: the error is
    // counted, the next write finds the connection gone, reconnects and goes through.
    let st = lp.h().status();
    assert!(st.errors >= 1, "{st:?}");
    assert!(st.last_error.is_some());
    assert_eq!(st.queued, 0);
    lp.handle.take().expect("handle").shutdown();
}
