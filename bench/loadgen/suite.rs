//! The side-by-side suite: for every scenario, N and repeat, start each server fresh (pinned
//! to its core with taskset), learn its port from its `listening on IP:PORT` line, run, stop
//! it, and append the result line to the JSONL file.

use crate::driver::Target;
use crate::report;
use crate::scenario::{self, Params, Scenario};
use serde_json::{json, Value};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a server may take to print its `listening on` line.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How to start each known server.
#[derive(Debug, Clone)]
pub struct ServerPaths {
    pub sio_edge_bin: PathBuf,
    pub node_script: PathBuf,
    pub socketioxide_bin: PathBuf,
    pub api_key: String,
    /// More arguments for sio-edge (`--sio-edge-args`).
    pub sio_edge_args: Vec<String>,
}

/// The servers of `--servers all`.
pub const SERVERS: [&str; 3] = ["sio-edge", "socketioxide", "node"];
/// Every known server, in report order: sio-edge-prod is sio-edge in the production profile
/// (HS256 secret instead of `--bench`; clients sign tokens of their own).
pub const KNOWN: [&str; 4] = ["sio-edge", "sio-edge-prod", "socketioxide", "node"];
/// The HS256 secret of the sio-edge-prod runs.
pub const PROD_SECRET: &str = "sio-bench-production-profile-secret";

/// Source addresses for N clients: `given`, or one per 10,000 clients above 10,000. Each
/// source has ~28,000 ephemeral ports toward one destination, but near that many (with the
/// TIME_WAITs of earlier runs) connects slow down: 19,000 clients from one address took
/// 20-35 s to connect, from four 0.8 s.
pub fn source_count(n: usize, given: Option<u8>) -> u8 {
    given.unwrap_or(if n > 10_000 {
        n.div_ceil(10_000).min(250) as u8
    } else {
        0
    })
}

/// A started server.
pub struct Running {
    child: Child,
    pub pid: u32,
    pub addr: SocketAddr,
    pub banner: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Extra sio-edge flags from `SIO_EDGE_EXTRA_ARGS` (split on whitespace), e.g.
/// `--redis-url redis://127.0.0.1:6379 --recovery-window 120000` to measure the Redis
/// recovery log (the bench profile turns recovery off unless a flag turns it back on).
fn edge_extra_args() -> Vec<String> {
    std::env::var("SIO_EDGE_EXTRA_ARGS")
        .map(|v| v.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The program, arguments and environment that start server `name`.
type Launch<'a> = (PathBuf, Vec<String>, Vec<(&'a str, String)>);

fn launch<'a>(
    name: &str,
    paths: &ServerPaths,
    host: IpAddr,
    extra: &[String],
) -> Result<Launch<'a>, String> {
    let peer_env = || {
        vec![
            ("PORT", "0".into()),
            ("HOST", host.to_string()),
            ("BENCH_API_KEY", paths.api_key.clone()),
        ]
    };
    Ok(match name {
        "sio-edge" | "sio-edge-prod" => {
            let profile: Vec<String> = if name == "sio-edge" {
                vec!["--bench".into()]
            } else {
                vec!["--jwt-secret".into(), PROD_SECRET.into()]
            };
            let common = ["--host", &host.to_string(), "--port", "0"]
                .into_iter()
                .chain(["--internal-api-key", &paths.api_key, "--log", "warn"])
                .map(str::to_owned)
                .collect();
            let args = [
                profile,
                extra.to_vec(),
                paths.sio_edge_args.clone(),
                common,
                edge_extra_args(),
            ]
            .concat();
            (paths.sio_edge_bin.clone(), args, vec![])
        }
        "node" => (
            "node".into(),
            vec![paths.node_script.display().to_string()],
            peer_env(),
        ),
        "socketioxide" => (paths.socketioxide_bin.clone(), vec![], peer_env()),
        other => return Err(format!("unknown server {other:?} (known: {KNOWN:?})")),
    })
}

/// Starts `name` on an ephemeral port, pinned to `cpu` (empty: not pinned), listening on
/// `host`, with `extra` arguments for sio-edge; its stderr goes to `log`.
///
/// # Errors
/// An unknown name, a failed spawn, or no `listening on` line in time.
pub fn start(
    name: &str,
    paths: &ServerPaths,
    cpu: &str,
    host: IpAddr,
    log: &Path,
    extra: &[String],
) -> Result<Running, String> {
    let (prog, args, env) = launch(name, paths, host, extra)?;
    let mut cmd = if cpu.is_empty() {
        Command::new(&prog)
    } else {
        let mut c = Command::new("taskset");
        c.arg("-c").arg(cpu).arg(&prog);
        c
    };
    cmd.args(&args)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let log_file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
    cmd.stderr(log_file);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {name} ({}): {e}", prog.display()))?;
    let pid = child.id();
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    // Reads the server's stdout for the whole run so it never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                // Keep draining after the port was found.
                continue;
            }
        }
    });
    let running = Running {
        child,
        pid,
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        banner: String::new(),
    };
    let what = format!("{name} ({})", prog.display());
    await_banner(running, &rx, &what, log)
}

/// Waits for the server's `listening on <addr>` line and takes its address from it.
fn await_banner(
    mut running: Running,
    rx: &mpsc::Receiver<String>,
    what: &str,
    log: &Path,
) -> Result<Running, String> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(at) = line.find("listening on ") {
                    let addr = line[at + 13..].split_whitespace().next().unwrap_or("");
                    let mut addr: SocketAddr = addr
                        .parse()
                        .map_err(|_| format!("{what}: cannot parse the address in {line:?}"))?;
                    if addr.ip().is_unspecified() {
                        addr.set_ip(IpAddr::from([127, 0, 0, 1]));
                    }
                    running.addr = addr;
                    running.banner = line;
                    return Ok(running);
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // Its stdout closed: it exited (or is exiting).
                std::thread::sleep(Duration::from_millis(200));
                let status = running.child.try_wait().ok().flatten();
                return Err(format!(
                    "{what} closed its stdout without printing `listening on` (exit status \
                     {status:?}; its stderr is in {})",
                    log.display()
                ));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(format!(
                    "{what} printed no `listening on` line within {START_TIMEOUT:?} (its \
                     stderr is in {})",
                    log.display()
                ));
            }
        }
    }
}

/// What the suite runs.
pub struct Plan {
    pub servers: Vec<String>,
    pub scenarios: Vec<Scenario>,
    pub clients: Vec<usize>,
    pub repeats: usize,
    pub base: Params,
    pub paths: ServerPaths,
    pub server_cpu: String,
    /// Destination addresses 127.0.0.1..=n (servers then listen on 0.0.0.0).
    pub dest_addrs: u8,
    /// Client source addresses (127.0.0.2, ...); `None`: [`source_count`] decides.
    pub source_addrs: Option<u8>,
    pub out: PathBuf,
    pub check: bool,
}

/// Runs the plan; returns the result lines and the failures of `check`.
///
/// # Errors
/// The output file cannot be written.
pub fn run(plan: &Plan) -> Result<(Vec<Value>, Vec<String>), String> {
    let mut out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&plan.out)
        .map_err(|e| format!("cannot write {}: {e}", plan.out.display()))?;
    let log = plan.out.with_extension("servers.log");
    let host = if plan.dest_addrs > 1 {
        IpAddr::from([0, 0, 0, 0])
    } else {
        IpAddr::from([127, 0, 0, 1])
    };
    let total = plan.scenarios.len() * plan.clients.len() * plan.repeats * plan.servers.len();
    let mut i = 0;
    let mut results = Vec::new();
    let mut failures = Vec::new();
    let started = Instant::now();
    for &sc in &plan.scenarios {
        for &n in &plan.clients {
            for rep in 1..=plan.repeats {
                for server in &plan.servers {
                    i += 1;
                    eprintln!(
                        "[{i}/{total} {:.0}s] {server} {} N={n} run {rep}/{}",
                        started.elapsed().as_secs_f64(),
                        sc.name(),
                        plan.repeats
                    );
                    let mut p = plan.base.clone();
                    p.scenario = sc;
                    p.clients = n;
                    p.server_core = plan.server_cpu.parse().ok();
                    let r = one(&p, server, rep, plan, host, &log, &mut out);
                    eprintln!("  {}", report::summary(&r));
                    if plan.check {
                        if let Err(e) = report::clean(&r) {
                            failures.push(format!("{server} {} N={n} run {rep}: {e}", sc.name()));
                        }
                    }
                    results.push(r);
                }
            }
        }
    }
    Ok((results, failures))
}

fn one(
    p: &Params,
    server: &str,
    rep: usize,
    plan: &Plan,
    host: IpAddr,
    log: &Path,
    out: &mut File,
) -> Value {
    let mut extra = Vec::new();
    if p.scenario == Scenario::Heartbeat {
        extra = vec!["--ping-interval".into(), p.ping_interval_ms.to_string()];
    }
    let mut p = p.clone();
    if server == "sio-edge-prod" {
        p.token_secret = Some(PROD_SECRET.into());
    }
    let p = &p;
    let mut r = match start(server, &plan.paths, &plan.server_cpu, host, log, &extra) {
        Err(e) => {
            json!({"scenario": p.scenario.name(), "clients": p.clients, "ok": false, "error": e})
        }
        Ok(srv) => {
            let port = srv.addr.port();
            let addrs = if plan.dest_addrs > 1 {
                (1..=plan.dest_addrs)
                    .map(|x| SocketAddr::from(([127, 0, 0, x], port)))
                    .collect()
            } else {
                vec![srv.addr]
            };
            let sources =
                crate::driver::loopback_sources(source_count(p.clients, plan.source_addrs));
            let target = Target {
                addrs,
                sources,
                api_key: plan.paths.api_key.clone(),
            };
            let (mut r, driver) = scenario::run(p, target, Some(srv.pid));
            r["server_banner"] = json!(srv.banner);
            // Stop the server before closing the clients (see `scenario::run`).
            drop(srv);
            drop(driver);
            r
        }
    };
    r["server"] = json!(server);
    r["repeat"] = json!(rep);
    r["unix_time"] = json!(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0));
    if let Err(e) = writeln!(out, "{r}") {
        eprintln!("sio-bench: cannot append to the results: {e}");
    }
    println!("{r}");
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_addresses_start_past_10000_clients_and_can_be_given() {
        assert_eq!(source_count(10_000, None), 0);
        assert_eq!(source_count(10_001, None), 2);
        assert_eq!(source_count(100_000, None), 10);
        assert_eq!(source_count(1_000, Some(3)), 3);
        let s = crate::driver::loopback_sources(3);
        let want: Vec<IpAddr> = (2..=4).map(|x| IpAddr::from([127, 0, 0, x])).collect();
        assert_eq!(s, want);
    }
}
