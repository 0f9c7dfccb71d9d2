//! A real Kafka-protocol broker for tests: Tansu 0.6 with in-memory storage, started on an
//! ephemeral loopback port and killed when dropped.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the broker may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long creating a topic may take (retried while the broker warms up).
const TOPIC_TIMEOUT: Duration = Duration::from_secs(30);

pub const INSTALL_HINT: &str = "tansu is not installed. The Kafka tests need the Tansu broker \
(a Kafka-protocol broker in Rust); install it with:\n    \
cargo install tansu --version 0.6.0 --features dynostore --locked\n\
(it lands in ~/.cargo/bin/tansu; or set TANSU_BIN to its path). .ci/run installs it too.";

/// The tansu binary: `$TANSU_BIN`, then `tansu` on `PATH`, then `~/.cargo/bin/tansu`.
///
/// # Panics
/// With [`INSTALL_HINT`] when it is nowhere: the Kafka tests fail rather than skip.
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("TANSU_BIN") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "TANSU_BIN={} is not a file.\n{INSTALL_HINT}",
            p.display()
        );
        return p;
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("tansu"))
                .find(|p| p.is_file())
        })
        .unwrap_or_default();
    let in_cargo = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/tansu"));
    on_path
        .or(in_cargo.filter(|p| p.is_file()))
        .unwrap_or_else(|| panic!("{INSTALL_HINT}"))
}

/// A free loopback port (bound and released; the broker binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// One running broker.
pub struct Tansu {
    child: Option<Child>,
    /// The port it listens on.
    pub port: u16,
    /// The port it tells clients to use (a proxy's, in the Kafka 4 test).
    pub advertised: u16,
    log: PathBuf,
}

impl Tansu {
    /// A broker on a fresh ephemeral port that advertises that port.
    pub fn start() -> Tansu {
        let port = free_port();
        Tansu::start_on(port, port)
    }

    /// A broker listening on `port` and advertising `advertised`.
    pub fn start_on(port: u16, advertised: u16) -> Tansu {
        let log = std::env::temp_dir().join(format!("tansu-{}-{port}.log", std::process::id()));
        let mut t = Tansu {
            child: None,
            port,
            advertised,
            log,
        };
        t.spawn();
        t
    }

    /// `127.0.0.1:PORT` of the advertised listener: what clients bootstrap from.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.advertised)
    }

    /// `127.0.0.1:PORT` the broker itself listens on.
    pub fn direct_addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let bin = binary();
        let log = std::fs::File::create(&self.log).expect("create the tansu log file");
        let child = Command::new(&bin)
            .arg("broker")
            .arg("--listener-url")
            .arg(format!("tcp://127.0.0.1:{}", self.port))
            .arg("--advertised-listener-url")
            .arg(format!("tcp://127.0.0.1:{}", self.advertised))
            .arg("--storage-engine")
            .arg("memory://tansu/")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}\n{INSTALL_HINT}", bin.display()));
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "tansu exited at start ({status}); log:\n{}",
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {} within {START_TIMEOUT:?}; log:\n{}",
                self.port,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50)); // polling a port, with a deadline
        }
    }

    /// Creates a topic with the CLI, retrying while the broker warms up.
    pub fn create_topic(&self, name: &str, partitions: u32) {
        let deadline = Instant::now() + TOPIC_TIMEOUT;
        loop {
            let out = Command::new(binary())
                .args(["topic", "create", name])
                .arg("--partitions")
                .arg(partitions.to_string())
                .arg("--broker")
                .arg(format!("tcp://127.0.0.1:{}", self.port))
                .env("RUST_LOG", "warn")
                .output()
                .expect("run tansu topic create");
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "tansu topic create {name} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(200)); // retry with a deadline
        }
    }

    /// Kills the broker (storage is in memory, so everything is lost).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts a fresh broker on the same ports.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.log);
    }
}
