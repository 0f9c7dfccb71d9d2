//! A private `redis-server` for one test: loopback only, an ephemeral port (picked by binding
//! 127.0.0.1:0 and releasing it, retried on collision), no persistence, killed on drop.
//! Include with `#[path = "support/redis.rs"] mod redis_support;`.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long a fresh server gets to answer PING.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
const PORT_ATTEMPTS: usize = 10;

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
}

fn binary() -> String {
    std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".to_string())
}

fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

impl RedisServer {
    /// Starts a server on a free loopback port. Panics (the test fails) when `redis-server`
    /// is missing or will not start.
    pub fn start() -> RedisServer {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sio-edge-redis-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create redis temp dir");
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let mut s = RedisServer {
                child: None,
                port,
                dir: dir.clone(),
            };
            match s.launch() {
                Ok(()) => return s,
                // most likely someone took the port between our probe and the bind
                Err(e) => last = e,
            }
        }
        panic!("redis-server would not start after {PORT_ATTEMPTS} ports: {last}");
    }

    /// Starts the server again on the same port (after [`RedisServer::kill`]).
    pub fn restart(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match self.launch() {
                Ok(()) => return,
                // the old socket may linger for a moment
                Err(e) if Instant::now() < deadline => {
                    eprintln!("redis restart retry: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("redis-server restart on port {}: {e}", self.port),
            }
        }
    }

    fn launch(&mut self) -> Result<(), String> {
        let mut child = match Command::new(binary())
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .args(["--loglevel", "warning"])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-server not found ({e}). These tests need Redis 7: \
                 `apt-get install redis-server` (or set REDIS_SERVER_BIN)."
            ),
            Err(e) => panic!("spawning redis-server: {e}"),
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "redis-server exited early ({status}) on port {}",
                    self.port
                ));
            }
            if ping(self.port) {
                // Someone else's server may hold the port; make sure the PONG was ours.
                if server_pid(self.port) != Some(child.id()) {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("port {} belongs to another server", self.port));
                }
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "no PONG on port {} in {READY_TIMEOUT:?}",
                    self.port
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A plain connection for the test's own checks.
    pub fn client(&self) -> redis::Connection {
        let c = redis::Client::open(self.url()).expect("redis url");
        let con = c
            .get_connection_with_timeout(Duration::from_secs(2))
            .expect("connect to the test redis");
        con.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("read timeout");
        con
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends `PING`, expects `+PONG`.
fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(
        &(Ipv4Addr::LOCALHOST, port).into(),
        Duration::from_millis(200),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    let mut got = 0;
    while got < 7 {
        match s.read(&mut buf[got..]) {
            Ok(0) | Err(_) => return false,
            Ok(n) => got += n,
        }
    }
    &buf[..7] == b"+PONG\r\n"
}

/// The `process_id` from `INFO server`.
fn server_pid(port: u16) -> Option<u32> {
    let c = redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
    let mut con = c.get_connection_with_timeout(Duration::from_secs(1)).ok()?;
    con.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let info: String = redis::cmd("INFO").arg("server").query(&mut con).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|v| v.trim().parse().ok())
}
