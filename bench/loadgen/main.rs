//! sio-bench: the fanout load generator for sio-edge and its peers (bench/README.md).
//!
//! One process, one thread, one mio loop holding every client: raw Engine.IO v4 / Socket.IO
//! v5 over WebSocket, with the bench contract of bench/CONTRACT.md. `run` starts each server
//! (or uses one already running), runs the scenarios and prints one JSON line per run on
//! stdout and a human summary on stderr; `report` turns JSON lines into markdown and SVG.
#![forbid(unsafe_code)]

mod api;
mod client;
mod driver;
mod poll;
mod procfs;
mod report;
mod scenario;
mod soak;
mod stats;
mod suite;
mod svg;
mod wire;

use argh::FromArgs;
use scenario::{Params, Scenario};
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;

/// sio-bench: Socket.IO fanout load generator (see bench/README.md).
#[derive(FromArgs)]
struct Cli {
    #[argh(subcommand)]
    cmd: Cmd,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Cmd {
    Run(Box<RunCmd>),
    Report(ReportCmd),
}

/// Run scenarios against servers it starts (or against --addr) and print JSON lines.
#[derive(FromArgs)]
#[argh(subcommand, name = "run")]
struct RunCmd {
    /// scenarios, comma separated, or `all`: room-broadcast, chat-rooms, notify, churn, idle,
    /// capacity; and heartbeat (sio-edge only: started with --ping-interval) and soak
    /// (bench/soak.sh), which `all` leaves out
    #[argh(option, default = "String::from(\"room-broadcast\")")]
    scenarios: String,
    /// client counts N, comma separated (default 1000)
    #[argh(option, default = "String::from(\"1000\")")]
    clients: String,
    /// servers to start, comma separated, or `all`: sio-edge, socketioxide, node; also
    /// sio-edge-prod (not in `all`): sio-edge in the production profile (HS256 secret, every
    /// client its own token and user room; idle and heartbeat scenarios only)
    #[argh(option, default = "String::from(\"sio-edge\")")]
    servers: String,
    /// runs of each (scenario, N, server); the report takes medians (default 1)
    #[argh(option, default = "1")]
    repeats: usize,
    /// seconds of load per run (default 4)
    #[argh(option, default = "4.0")]
    duration: f64,
    /// room-broadcast messages per second (default 50)
    #[argh(option, default = "50.0")]
    rate: f64,
    /// chat-rooms: clients per room (default 10)
    #[argh(option, default = "10")]
    room_size: usize,
    /// chat-rooms: messages per second per room (default 2)
    #[argh(option, default = "2.0")]
    room_rate: f64,
    /// notify: API emits per second in all (default 2000)
    #[argh(option, default = "2000.0")]
    notify_rate: f64,
    /// notify: keep-alive API connections (default 8)
    #[argh(option, default = "8")]
    api_conns: usize,
    /// churn: disconnect+connect pairs per second (default 100)
    #[argh(option, default = "100.0")]
    churn_rate: f64,
    /// churn: room broadcast messages per second meanwhile (default 10)
    #[argh(option, default = "10.0")]
    churn_msg_rate: f64,
    /// soak: seconds per report row (default 60)
    #[argh(option, default = "60.0")]
    soak_row: f64,
    /// soak: rows before the RSS baseline; drift is from the end of that row (default 5)
    #[argh(option, default = "5")]
    soak_warmup_rows: usize,
    /// soak: percent of clients on Engine.IO long-polling (default 5)
    #[argh(option, default = "5.0")]
    poll_pct: f64,
    /// soak: percent of clients replaced by new sessions each second (default 1)
    #[argh(option, default = "1.0")]
    churn_pct: f64,
    /// soak: shell command run once in the background halfway through the load
    #[argh(option)]
    at_half: Option<String>,
    /// capacity: deliveries per second offered, whatever N (default 4000000: above what
    /// any of the three servers sustains on one core)
    #[argh(option, default = "4_000_000.0")]
    capacity_offered: f64,
    /// capacity: seconds of load (default 1; the slowest server drains it for ~45 s)
    #[argh(option, default = "1.0")]
    capacity_duration: f64,
    /// stamp each delivery with the kernel's receive time of its bytes (SO_TIMESTAMPNS)
    /// instead of the time the load generator got to read them, so its own stalls
    /// (preemption, a long batch) do not count as server latency
    #[argh(switch)]
    kernel_timestamps: bool,
    /// padding characters per payload; 60 gives ~116-byte frames (default 60)
    #[argh(option, default = "60")]
    pad: usize,
    /// handshakes in flight while connecting; above a server's listen backlog (128 for
    /// mio and tokio listeners) SYNs are dropped and cost 1 s each (default 100)
    #[argh(option, default = "100")]
    batch: u64,
    /// longest wait in seconds for outstanding deliveries after the load (default 60)
    #[argh(option, default = "60.0")]
    drain: f64,
    /// use this running server instead of starting one (IP:PORT)
    #[argh(option)]
    addr: Option<String>,
    /// CONNECT auth object sent by every client, e.g. '{"token":"JWT"}' (the bench servers
    /// need none)
    #[argh(option)]
    auth: Option<String>,
    /// with --addr: every client signs its own HS256 token with this secret (the
    /// production profile; `--jwt-secret` of the server)
    #[argh(option)]
    hs256_secret: Option<String>,
    /// heartbeat: the ping interval in ms sio-edge is started with (default 1000)
    #[argh(option, default = "1000")]
    ping_interval: u64,
    /// bind the clients to source addresses 127.0.0.2 ..= 127.0.0.(K+1) in turn, ~28,000
    /// connections each (default: one per 10,000 clients above 10,000, else none)
    #[argh(option)]
    source_addrs: Option<u8>,
    /// extra arguments for the sio-edge servers the suite starts, space separated (e.g.
    /// '--recovery-window 0')
    #[argh(option, default = "String::new()")]
    sio_edge_args: String,
    /// with --addr: the server's pid, for its RSS and CPU
    #[argh(option)]
    server_pid: Option<u32>,
    /// with --addr: the name to report (default external)
    #[argh(option, default = "String::from(\"external\")")]
    server_name: String,
    /// the sio-edge binary (default target/release/sio-edge)
    #[argh(option, default = "PathBuf::from(\"target/release/sio-edge\")")]
    sio_edge_bin: PathBuf,
    /// the Node peer script (default bench/peers/node/server.js)
    #[argh(option, default = "PathBuf::from(\"bench/peers/node/server.js\")")]
    node_script: PathBuf,
    /// the socketioxide peer binary
    #[argh(
        option,
        default = "PathBuf::from(\"bench/peers/socketioxide/target/release/sio-peer-socketioxide\")"
    )]
    socketioxide_bin: PathBuf,
    /// key for /api/emit (x-api-key), given to every server (default bench)
    #[argh(option, default = "String::from(\"bench\")")]
    api_key: String,
    /// CPU list for the servers (taskset -c); empty for no pinning (default 0)
    #[argh(option, default = "String::from(\"0\")")]
    server_cpu: String,
    /// connect to 127.0.0.1..=K in turn, to spread ephemeral ports (servers then listen on
    /// 0.0.0.0; loopback traffic only) (default 1)
    #[argh(option, default = "1")]
    dest_addrs: u8,
    /// append the JSON lines to this file too (server logs go beside it)
    #[argh(option)]
    out: Option<PathBuf>,
    /// write the markdown report here at the end
    #[argh(option)]
    md: Option<PathBuf>,
    /// write the SVG plot here at the end
    #[argh(option)]
    svg: Option<PathBuf>,
    /// first lines of the markdown report
    #[argh(option, default = "String::from(\"# sio-bench results\")")]
    title: String,
    /// exit 1 unless every run delivered messages and lost, duplicated or reordered none
    #[argh(switch)]
    check: bool,
    /// no progress lines
    #[argh(switch)]
    quiet: bool,
}

/// Turn JSON result lines into the markdown table and the SVG plot.
#[derive(FromArgs)]
#[argh(subcommand, name = "report")]
struct ReportCmd {
    /// files of JSON result lines (repeatable)
    #[argh(option)]
    input: Vec<PathBuf>,
    /// markdown output (default stdout)
    #[argh(option)]
    md: Option<PathBuf>,
    /// where to write the SVG plot
    #[argh(option)]
    svg: Option<PathBuf>,
    /// first lines of the markdown report
    #[argh(option, default = "String::from(\"# sio-bench results\")")]
    title: String,
}

/// Log records go to stderr; `SIO_BENCH_LOG=debug` shows per-client failures.
struct StderrLog(log::LevelFilter);

impl log::Log for StderrLog {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= self.0
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            eprintln!("sio-bench {}: {}", r.level(), r.args());
        }
    }
    fn flush(&self) {}
}

fn main() -> ExitCode {
    let level = std::env::var("SIO_BENCH_LOG")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(log::LevelFilter::Warn);
    let _ = log::set_boxed_logger(Box::new(StderrLog(level)));
    log::set_max_level(level);
    let cli: Cli = argh::from_env();
    let res = match cli.cmd {
        Cmd::Run(r) => run(*r),
        Cmd::Report(r) => report(r),
    };
    match res {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sio-bench: {e}");
            ExitCode::from(2)
        }
    }
}

fn list<T>(s: &str, all: &[T], parse: impl Fn(&str) -> Result<T, String>) -> Result<Vec<T>, String>
where
    T: Clone,
{
    if s == "all" {
        return Ok(all.to_vec());
    }
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(parse)
        .collect()
}

fn run(r: RunCmd) -> Result<ExitCode, String> {
    // `all` is the suite of bench/run.sh; soak is a long run of its own, and heartbeat
    // needs servers started with a short ping interval (only sio-edge is).
    let suite: Vec<Scenario> = Scenario::ALL
        .into_iter()
        .filter(|s| !matches!(s, Scenario::Soak | Scenario::Heartbeat))
        .collect();
    let suite = &suite[..];
    let scenarios = list(&r.scenarios, suite, Scenario::parse)?;
    let clients = list(&r.clients, &[], |x| {
        x.parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("--clients: {x:?} is not a positive number"))
    })?;
    let servers = list(&r.servers, &suite::SERVERS.map(String::from), |x| {
        Ok(x.to_owned())
    })?;
    if let Some(a) = &r.auth {
        match serde_json::from_str::<Value>(a) {
            Ok(Value::Object(_)) => {}
            _ => return Err(format!("--auth {a:?} is not a JSON object")),
        }
    }
    if r.rate <= 0.0
        || r.duration <= 0.0
        || r.room_size == 0
        || r.repeats == 0
        || r.capacity_offered <= 0.0
        || r.capacity_duration <= 0.0
    {
        return Err(
            "--rate, --duration, --room-size, --repeats, --capacity-offered and \
                    --capacity-duration must be positive"
                .into(),
        );
    }
    let base = Params {
        scenario: Scenario::RoomBroadcast,
        clients: 0,
        duration: r.duration,
        rate: r.rate,
        room_size: r.room_size,
        room_rate: r.room_rate,
        notify_rate: r.notify_rate,
        churn_rate: r.churn_rate,
        churn_msg_rate: r.churn_msg_rate,
        capacity_offered: r.capacity_offered,
        capacity_duration: r.capacity_duration,
        pad: r.pad,
        kernel_timestamps: r.kernel_timestamps,
        batch: r.batch.max(1),
        drain: r.drain,
        api_conns: r.api_conns.max(1),
        progress: !r.quiet,
        server_core: None,
        auth: r.auth.clone(),
        token_secret: r.hs256_secret.clone(),
        ping_interval_ms: r.ping_interval.max(1),
        soak: soak::SoakParams {
            row_s: r.soak_row,
            warmup_rows: r.soak_warmup_rows,
            poll_pct: r.poll_pct.clamp(0.0, 100.0),
            churn_pct: r.churn_pct.max(0.0),
            at_half: r.at_half.clone(),
        },
    };
    let results = if let Some(addr) = &r.addr {
        external(&r, addr, &base, &scenarios, &clients)?
    } else {
        let out = r.out.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!("sio-bench-{}.jsonl", std::process::id()))
        });
        let plan = suite::Plan {
            servers,
            scenarios,
            clients,
            repeats: r.repeats,
            base,
            paths: suite::ServerPaths {
                sio_edge_bin: r.sio_edge_bin.clone(),
                node_script: r.node_script.clone(),
                socketioxide_bin: r.socketioxide_bin.clone(),
                api_key: r.api_key.clone(),
                sio_edge_args: r
                    .sio_edge_args
                    .split_whitespace()
                    .map(String::from)
                    .collect(),
            },
            server_cpu: r.server_cpu.clone(),
            dest_addrs: r.dest_addrs.max(1),
            source_addrs: r.source_addrs,
            out,
            check: r.check,
        };
        let (results, failures) = suite::run(&plan)?;
        if !failures.is_empty() {
            write_reports(&results, &r.md, &r.svg, &r.title)?;
            eprintln!("sio-bench: CHECK FAILED in {} run(s):", failures.len());
            for f in &failures {
                eprintln!("  {f}");
            }
            return Ok(ExitCode::from(1));
        }
        results
    };
    write_reports(&results, &r.md, &r.svg, &r.title)?;
    if r.check {
        eprintln!("sio-bench: check passed ({} run(s) clean)", results.len());
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs against a server someone else started.
fn external(
    r: &RunCmd,
    addr: &str,
    base: &Params,
    scenarios: &[Scenario],
    clients: &[usize],
) -> Result<Vec<Value>, String> {
    let addrs = vec![addr
        .parse()
        .map_err(|_| format!("--addr {addr:?} is not IP:PORT"))?];
    let mut results = Vec::new();
    let mut failed = Vec::new();
    for &sc in scenarios {
        for &n in clients {
            let target = driver::Target {
                addrs: addrs.clone(),
                sources: driver::loopback_sources(suite::source_count(n, r.source_addrs)),
                api_key: r.api_key.clone(),
            };
            for rep in 1..=r.repeats {
                let mut p = base.clone();
                p.scenario = sc;
                p.clients = n;
                let (mut v, driver) = scenario::run(&p, target.clone(), r.server_pid);
                drop(driver);
                v["server"] = r.server_name.clone().into();
                v["repeat"] = rep.into();
                println!("{v}");
                eprintln!("{}", report::summary(&v));
                if let Err(e) = report::clean(&v) {
                    failed.push(e);
                }
                results.push(v);
            }
        }
    }
    if r.check && !failed.is_empty() {
        return Err(format!("CHECK FAILED: {}", failed.join("; ")));
    }
    Ok(results)
}

fn write_reports(
    results: &[Value],
    md: &Option<PathBuf>,
    svg: &Option<PathBuf>,
    title: &str,
) -> Result<(), String> {
    if let Some(p) = md {
        std::fs::write(p, report::markdown(results, title))
            .map_err(|e| format!("cannot write {}: {e}", p.display()))?;
        eprintln!("sio-bench: wrote {}", p.display());
    }
    if let Some(p) = svg {
        let first = title.lines().next().unwrap_or("").trim_start_matches("# ");
        std::fs::write(p, svg::plot(results, first))
            .map_err(|e| format!("cannot write {}: {e}", p.display()))?;
        eprintln!("sio-bench: wrote {}", p.display());
        if let Some(plot) = svg::scaling(results, &format!("{first}: unit costs against N")) {
            let p = p.with_extension("scaling.svg");
            std::fs::write(&p, plot).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
            eprintln!("sio-bench: wrote {}", p.display());
        }
    }
    Ok(())
}

fn report(r: ReportCmd) -> Result<ExitCode, String> {
    if r.input.is_empty() {
        return Err("give at least one --input file of JSON lines".into());
    }
    let mut results = Vec::new();
    for p in &r.input {
        let text =
            std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let v: Value = serde_json::from_str(line)
                .map_err(|e| format!("{}:{}: not a JSON line: {e}", p.display(), i + 1))?;
            results.push(v);
        }
    }
    if r.md.is_none() {
        print!("{}", report::markdown(&results, &r.title));
    }
    write_reports(&results, &r.md, &r.svg, &r.title)?;
    Ok(ExitCode::SUCCESS)
}
