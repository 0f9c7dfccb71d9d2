//! The scenarios: connect a population, apply a load for a bounded time, drain, and turn
//! the driver's counters into one result object (the JSON line).

use crate::client::Gone;
use crate::driver::{Driver, Target};
use crate::procfs;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// What a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// N clients in room `bench`, one of them publishes at `rate`.
    RoomBroadcast,
    /// N clients in rooms of `room_size`, each room's first member publishes at `room_rate`.
    ChatRooms,
    /// `POST /api/emit` to one socket id at a time, `notify_rate` in all.
    Notify,
    /// Room broadcast at `churn_msg_rate` while clients leave and join at `churn_rate`.
    Churn,
    /// N idle connections: server memory per connection.
    Idle,
    /// N idle connections with a short ping interval: server CPU per heartbeat ping
    /// (ping sent, pong read, timers re-armed).
    Heartbeat,
    /// Room broadcast offered above every server's capacity (`capacity_offered` deliveries/s
    /// whatever N) for `capacity_duration`: deliveries/s is then what the server sustains.
    Capacity,
    /// The long run of docs/RELIABILITY.md: room broadcasts and chat rooms together, churn,
    /// a share of polling clients, per-row RSS and latency (bench/loadgen/soak.rs).
    Soak,
}

impl Scenario {
    /// Every scenario; `all` on the command line leaves out heartbeat (only sio-edge is
    /// started with the short ping interval it measures) and soak (a long run of its own,
    /// bench/soak.sh).
    pub const ALL: [Scenario; 8] = [
        Scenario::RoomBroadcast,
        Scenario::ChatRooms,
        Scenario::Notify,
        Scenario::Churn,
        Scenario::Idle,
        Scenario::Heartbeat,
        Scenario::Capacity,
        Scenario::Soak,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::RoomBroadcast => "room-broadcast",
            Scenario::ChatRooms => "chat-rooms",
            Scenario::Notify => "notify",
            Scenario::Churn => "churn",
            Scenario::Idle => "idle",
            Scenario::Heartbeat => "heartbeat",
            Scenario::Capacity => "capacity",
            Scenario::Soak => "soak",
        }
    }

    /// # Errors
    /// An unknown name, listing the known ones.
    pub fn parse(s: &str) -> Result<Scenario, String> {
        Scenario::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Scenario::ALL.iter().map(|x| x.name()).collect();
                format!("unknown scenario {s:?} (known: {})", names.join(", "))
            })
    }
}

/// The knobs of one run.
#[derive(Debug, Clone)]
pub struct Params {
    pub scenario: Scenario,
    pub clients: usize,
    /// Seconds of load (publishing, churn, or idle hold).
    pub duration: f64,
    pub rate: f64,
    pub room_size: usize,
    pub room_rate: f64,
    pub notify_rate: f64,
    pub churn_rate: f64,
    pub churn_msg_rate: f64,
    /// capacity: deliveries per second offered (the message rate is this divided by N).
    pub capacity_offered: f64,
    /// capacity: seconds of load (short: a slow server has to drain all of it).
    pub capacity_duration: f64,
    /// Padding characters in each payload.
    pub pad: usize,
    /// Deliveries stamped with the kernel's receive time (`--kernel-timestamps`).
    pub kernel_timestamps: bool,
    /// Handshakes in progress at once while connecting.
    pub batch: u64,
    /// Longest wait for outstanding deliveries after the load, in seconds.
    pub drain: f64,
    pub api_conns: usize,
    /// Print progress lines to stderr.
    pub progress: bool,
    /// CONNECT auth payload (JSON object), if the server wants one.
    pub auth: Option<String>,
    /// Production profile: every client signs its own HS256 token with this secret.
    pub token_secret: Option<String>,
    /// heartbeat: the server's ping interval in ms (the suite starts sio-edge with it).
    pub ping_interval_ms: u64,
    /// The core the server is pinned to, for its busy/softirq/steal percentages.
    pub server_core: Option<usize>,
    /// soak: what else it needs.
    pub soak: crate::soak::SoakParams,
}

/// Open files beyond the clients: the poll, API connections, stdio, the server pipe.
const SPARE_FDS: u64 = 64;

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

impl Params {
    /// Seconds of load this run applies.
    fn load_seconds(&self) -> f64 {
        match self.scenario {
            Scenario::Capacity => self.capacity_duration,
            _ => self.duration,
        }
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

/// Runs one scenario against `target`; `server_pid` enables the memory and CPU readings.
/// Returns the result object and the driver (its sockets are still open: the caller stops
/// the server first, so the TIME_WAIT states land on the server side).
pub fn run(p: &Params, target: Target, server_pid: Option<u32>) -> (Value, Option<Box<Driver>>) {
    let mut out = json!({
        "scenario": p.scenario.name(),
        "clients": p.clients,
        "duration_s": p.load_seconds(),
        "pad": p.pad,
    });
    match p.scenario {
        Scenario::ChatRooms => out["room_size"] = json!(p.room_size),
        Scenario::Notify => out["api_conns"] = json!(p.api_conns),
        Scenario::Churn => out["churn_rate"] = json!(p.churn_rate),
        Scenario::Soak => out["room_size"] = json!(p.room_size),
        _ => {}
    }
    match run_inner(p, target, server_pid, &mut out) {
        Ok(d) => {
            out["ok"] = json!(true);
            (out, Some(d))
        }
        Err((e, d)) => {
            out["ok"] = json!(false);
            out["error"] = json!(e);
            (out, d)
        }
    }
}

/// A failed run: the message, and the driver when it got that far (boxed: it is large).
type Failure = (String, Option<Box<Driver>>);

fn run_inner(
    p: &Params,
    target: Target,
    pid: Option<u32>,
    out: &mut Value,
) -> Result<Box<Driver>, Failure> {
    let pid_s = pid.map(|p| p.to_string());
    let pid_s = pid_s.as_deref();
    let need = p.clients as u64 + p.api_conns as u64 + SPARE_FDS;
    if let Some(limit) = procfs::nofile_limit() {
        if limit < need {
            return Err((
                format!(
                    "open-file limit {limit} is below the {need} this run needs: raise it with \
                     `ulimit -n {need}` (as root, or up to `ulimit -Hn`) before sio-bench"
                ),
                None,
            ));
        }
    }
    check_limits(p, pid_s)?;
    let rooms = p.clients.div_ceil(p.room_size.max(1));
    let groups = match p.scenario {
        Scenario::ChatRooms => rooms,
        // The chat rooms, then the book of room `bench`.
        Scenario::Soak => rooms + 1,
        Scenario::Notify => p.clients,
        _ => 1,
    };
    let mut d = Box::new(Driver::new(target, groups, p.pad).map_err(|e| (e.to_string(), None))?);
    d.ctx.join_rooms = matches!(p.scenario, Scenario::ChatRooms | Scenario::Soak);
    d.ctx.kernel_timestamps = p.kernel_timestamps;
    if p.scenario == Scenario::Soak {
        d.ctx.bench_group = Some(rooms);
        d.lenient_relaunch = false;
    }
    d.ctx.keep_sids = p.scenario == Scenario::Notify;
    if let Some(auth) = &p.auth {
        d.ctx.connect_packet = format!("40{auth}").into_bytes();
    }
    d.ctx.token_secret = p.token_secret.as_ref().map(|s| s.as_bytes().to_vec());
    let rss0 = pid_s.and_then(procfs::rss_kib);
    let anon0 = pid_s.and_then(procfs::anon_kib);

    // Connect the population in batches.
    for i in 0..p.clients {
        let g = match p.scenario {
            Scenario::ChatRooms | Scenario::Soak => i / p.room_size.max(1),
            Scenario::Notify => i,
            _ => 0,
        };
        let polling = p.scenario == Scenario::Soak && p.soak.polls(i, p.room_size);
        d.launch_queue.push_back((g as u32, polling));
    }
    d.retries_left = (p.clients as u64 / 20).max(20);
    let overflows0 = procfs::listen_overflows();
    let t0 = Instant::now();
    let limit = Duration::from_secs(60) + Duration::from_millis(p.clients as u64 * 5);
    let mut last_progress = Instant::now();
    while (d.ctx.counters.ready_total as usize) < p.clients {
        d.pump_launches(p.batch);
        if d.ctx.counters.in_progress == 0 && d.launch_queue.is_empty() {
            break;
        }
        if t0.elapsed() > limit {
            break;
        }
        // Cheap (one small /proc read per 5 ms turn) and it must catch a machine running out.
        if low_memory() {
            let msg = format!(
                "stopped connecting at {} of {} clients: MemAvailable fell below {} MiB \
                 (the machine's memory, not the server, is the limit here)",
                d.ctx.counters.ready_total,
                p.clients,
                MEM_FLOOR_KIB / 1024
            );
            return Err((msg, Some(d)));
        }
        d.turn(Duration::from_millis(5));
        if p.progress && last_progress.elapsed() > Duration::from_secs(2) {
            last_progress = Instant::now();
            eprintln!(
                "  connecting: {}/{} ready, {} in progress, {} failed",
                d.ctx.counters.ready_total,
                p.clients,
                d.ctx.counters.in_progress,
                d.ctx.counters.connect_failed
            );
        }
    }
    let connect_s = t0.elapsed().as_secs_f64();
    let ready = d.ctx.counters.ready_total;
    out["connect"] = json!({
        "total_s": round(connect_s, 3),
        "per_s": round(ready as f64 / connect_s, 0),
        "latency_ms": d.ctx.connect.summary_ms(),
        "failed": d.ctx.counters.connect_failed,
        // System-wide TcpExt ListenOverflows during the connect phase: SYNs dropped because
        // the server's accept queue was full (each costs that client a 1 s retransmit).
        "listen_overflows": procfs::listen_overflows()
            .zip(overflows0)
            .map(|(b, a)| b.saturating_sub(a)),
    });
    if (ready as usize) < p.clients {
        let hint = match d.last_failure {
            Some(Gone::Io(std::io::ErrorKind::AddrNotAvailable)) => {
                " (ephemeral ports ran out: use --dest-addrs to spread over 127.0.0.x)"
            }
            Some(Gone::Timeout) => " (handshakes timed out)",
            Some(Gone::JoinRefused) => {
                " (the server acked bench:join with ok:false: it lacks the chat-rooms extension \
                 of bench/CONTRACT.md)"
            }
            _ => "",
        };
        let msg = format!(
            "connected {ready} of {} clients in {connect_s:.1} s; last failure {:?}{hint}",
            p.clients, d.last_failure
        );
        return Err((msg, Some(d)));
    }
    // Let the server settle (finish accept bookkeeping, GC in Node) before measuring.
    settle(&mut d, Duration::from_millis(500));
    let rss1 = pid_s.and_then(procfs::rss_kib);
    let anon1 = pid_s.and_then(procfs::anon_kib);
    out["rss_kib"] = json!({"before": rss0, "connected": rss1});
    let per_conn =
        |a: u64, b: u64| ((b.saturating_sub(a) * 1024) as f64 / p.clients.max(1) as f64).round();
    if let (Some(a), Some(b)) = (rss0, rss1) {
        out["rss_per_conn_bytes"] = json!(per_conn(a, b));
    }
    if let (Some(a), Some(b)) = (anon0, anon1) {
        out["anon_kib"] = json!({"before": a, "connected": b});
        out["anon_per_conn_bytes"] = json!(per_conn(a, b));
    }

    if p.scenario == Scenario::Idle {
        settle(&mut d, Duration::from_secs_f64(p.duration));
        let rss2 = pid_s.and_then(procfs::rss_kib);
        out["rss_kib"]["after_hold"] = json!(rss2);
        out["server_closed"] = json!(d.ctx.counters.server_closed);
        out["pings"] = json!(d.ctx.counters.pings);
        if d.ctx.counters.server_closed > 0 {
            let msg = format!(
                "{} idle clients were disconnected",
                d.ctx.counters.server_closed
            );
            return Err((msg, Some(d)));
        }
        return Ok(d);
    }

    if p.scenario == Scenario::Heartbeat {
        return match heartbeat(p, &mut d, pid_s, out) {
            Ok(()) => Ok(d),
            Err(m) => Err((m, Some(d))),
        };
    }

    if p.scenario == Scenario::Soak {
        crate::soak::load(p, &mut d, pid_s, out);
    } else {
        load(p, &mut d, pid_s, out);
    }
    Ok(d)
}

/// Below this much available memory a run stops connecting (and says so).
const MEM_FLOOR_KIB: u64 = 256 * 1024;
/// Memory one client costs the machine when server and load generator share it: kernel
/// socket memory of both ends (~10 KB), the server's few KiB and the load generator's.
const KIB_PER_CLIENT: u64 = 16;

fn low_memory() -> bool {
    procfs::mem_available_kib().is_some_and(|k| k < MEM_FLOOR_KIB)
}

/// Refuses a run that cannot fit: the server's open-file limit (it holds one descriptor per
/// client) and the machine's available memory, each named in the message.
fn check_limits(p: &Params, pid: Option<&str>) -> Result<(), Failure> {
    let need = p.clients as u64 + SPARE_FDS;
    if let Some(limit) = pid.and_then(procfs::nofile_limit_of) {
        if limit < need {
            let msg = format!(
                "the server's open-file limit is {limit}, below the {need} descriptors N={} \
                 needs: raise it (systemd LimitNOFILE=, docker --ulimit nofile=, ulimit -Hn as \
                 root); this machine's cap is what stops it",
                p.clients
            );
            return Err((msg, None));
        }
    }
    if let Some(avail) = procfs::mem_available_kib() {
        let want = p.clients as u64 * KIB_PER_CLIENT + MEM_FLOOR_KIB;
        if avail < want {
            let msg = format!(
                "N={} needs about {} MiB (~{KIB_PER_CLIENT} KiB per client for both ends plus \
                 {} MiB spare) and only {} MiB is available: memory is the limit here",
                p.clients,
                want / 1024,
                MEM_FLOOR_KIB / 1024,
                avail / 1024
            );
            return Err((msg, None));
        }
    }
    Ok(())
}

/// heartbeat: every client idle while the server pings each every `ping_interval_ms`; the
/// server's CPU time over the hold divided by the pings answered in it.
fn heartbeat(p: &Params, d: &mut Driver, pid: Option<&str>, out: &mut Value) -> Result<(), String> {
    // One interval first, so every client has had its first ping and the hold is steady.
    let interval = Duration::from_millis(p.ping_interval_ms.max(1));
    settle(d, interval + Duration::from_millis(200));
    let (cpu0, pings0) = (pid.and_then(procfs::cpu_ns), d.ctx.counters.pings);
    let wait0 = pid.and_then(procfs::runq_wait_seconds);
    let core0 = p.server_core.and_then(procfs::core_jiffies);
    let wall0 = Instant::now();
    settle(d, Duration::from_secs_f64(p.duration));
    let wall = wall0.elapsed().as_secs_f64();
    let pings = d.ctx.counters.pings - pings0;
    let expected = p.clients as f64 * wall / interval.as_secs_f64();
    out["ping_interval_ms"] = json!(p.ping_interval_ms);
    out["pings"] = json!(pings);
    out["pings_expected"] = json!(expected.round());
    out["pings_per_s"] = json!((pings as f64 / wall).round());
    out["server_closed"] = json!(d.ctx.counters.server_closed);
    if let (Some(a), Some(b)) = (cpu0, pid.and_then(procfs::cpu_ns)) {
        let cpu = (b - a) as f64 / 1e9;
        out["server_cpu_s"] = json!(round(cpu, 3));
        out["server_cpu_pct"] = json!(round(100.0 * cpu / wall, 1));
        if pings > 0 {
            out["cpu_us_per_ping"] = json!(round(cpu * 1e6 / pings as f64, 2));
        }
    }
    if let (Some(a), Some(b)) = (wait0, pid.and_then(procfs::runq_wait_seconds)) {
        out["server_runq_wait_s"] = json!(round(b - a, 2));
    }
    if let (Some(a), Some(b)) = (core0, p.server_core.and_then(procfs::core_jiffies)) {
        let (busy, softirq, steal) = procfs::core_usage(a, b);
        out["server_core"] = json!({"core": p.server_core, "busy_pct": round(busy, 1),
            "softirq_pct": round(softirq, 1), "steal_pct": round(steal, 1)});
    }
    if let Some(pid) = pid {
        out["rss_kib"]["end"] = json!(procfs::rss_kib(pid));
    }
    if d.ctx.counters.server_closed > 0 {
        return Err(format!(
            "{} idle clients were disconnected",
            d.ctx.counters.server_closed
        ));
    }
    Ok(())
}

/// Keeps the loop turning (answering pings) for `dur`.
fn settle(d: &mut Driver, dur: Duration) {
    let end = Instant::now() + dur;
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        d.turn(left.min(Duration::from_millis(50)));
    }
}

/// The load and drain phases, then the delivery results.
fn load(p: &Params, d: &mut Driver, pid: Option<&str>, out: &mut Value) {
    let groups = d.ctx.groups.len();
    let rate = match p.scenario {
        Scenario::RoomBroadcast => p.rate,
        Scenario::ChatRooms => p.room_rate * groups as f64,
        Scenario::Notify => p.notify_rate,
        Scenario::Churn => p.churn_msg_rate,
        Scenario::Idle | Scenario::Heartbeat | Scenario::Soak => 0.0,
        Scenario::Capacity => p.capacity_offered / p.clients.max(1) as f64,
    };
    let duration = p.load_seconds();
    let total = (rate * duration).round().max(1.0) as u64;
    let interval = 1e9 / rate.max(1e-3);
    let churn_total = if p.scenario == Scenario::Churn {
        (p.churn_rate * duration).round() as u64
    } else {
        0
    };
    let churn_interval = 1e9 / p.churn_rate.max(1e-3);
    if p.scenario == Scenario::Notify {
        if let Err(e) = d.open_api(p.api_conns) {
            out["error"] = json!(format!("cannot open API connections: {e}"));
        }
    }

    d.ctx.loaded = true;
    let cpu0 = pid.and_then(procfs::cpu_seconds);
    let self0 = procfs::cpu_seconds("self");
    let wait0 = pid.and_then(procfs::runq_wait_seconds);
    let own_core = procfs::own_core();
    let jiffies0 = (
        p.server_core.and_then(procfs::core_jiffies),
        own_core.and_then(procfs::core_jiffies),
    );
    let wall0 = Instant::now();
    let start = d.ctx.now_ns();
    let (mut k, mut c) = (0u64, 0u64);
    let mut lag_max = 0u64;
    let mut last_progress = Instant::now();
    // Bounded: the schedule ends after `duration`, and a loop too slow to keep up stops at
    // twice that.
    let hard_end = wall0 + Duration::from_secs_f64(duration * 2.0 + 5.0);
    while (k < total || c < churn_total) && Instant::now() < hard_end {
        let now = d.ctx.now_ns();
        let mut burst = 0;
        while k < total && burst < 1000 {
            let due = start + (k as f64 * interval) as u64;
            if due > now {
                break;
            }
            lag_max = lag_max.max(now - due);
            match p.scenario {
                Scenario::RoomBroadcast | Scenario::Churn | Scenario::Capacity => {
                    d.publish(0, false);
                }
                Scenario::ChatRooms => {
                    d.publish((k % groups as u64) as usize, true);
                }
                Scenario::Notify => d.notify((k % groups as u64) as usize),
                Scenario::Idle | Scenario::Heartbeat | Scenario::Soak => {}
            }
            k += 1;
            burst += 1;
        }
        while c < churn_total && start + (c as f64 * churn_interval) as u64 <= now {
            d.churn_one();
            c += 1;
        }
        let next_due = [
            (k < total).then(|| start + (k as f64 * interval) as u64),
            (c < churn_total).then(|| start + (c as f64 * churn_interval) as u64),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now);
        let wait = Duration::from_nanos(next_due.saturating_sub(d.ctx.now_ns()));
        d.turn(wait.min(Duration::from_millis(10)));
        if p.progress && last_progress.elapsed() > Duration::from_secs(2) {
            last_progress = Instant::now();
            eprintln!(
                "  load: published {k}/{total}, {} deliveries, {} messages complete",
                d.ctx.totals.deliveries, d.ctx.totals.completed_msgs
            );
        }
    }
    let load_s = wall0.elapsed().as_secs_f64();

    // Drain: wait for outstanding deliveries (bounded).
    let published: u64 = d.ctx.groups.iter().map(|g| g.msgs.len() as u64).sum();
    let drain_end = Instant::now() + Duration::from_secs_f64(p.drain);
    // Also wait for the connects churn started: their latency is part of the result.
    while (d.ctx.totals.completed_msgs < published
        || d.api_backlog() > 0
        || d.ctx.counters.in_progress > 0)
        && Instant::now() < drain_end
    {
        d.turn(Duration::from_millis(10));
        if p.progress && last_progress.elapsed() > Duration::from_secs(2) {
            last_progress = Instant::now();
            eprintln!(
                "  drain: {}/{published} messages complete, {} deliveries",
                d.ctx.totals.completed_msgs, d.ctx.totals.deliveries
            );
        }
    }
    let published: u64 = d.ctx.groups.iter().map(|g| g.msgs.len() as u64).sum();
    let cpu1 = pid.and_then(procfs::cpu_seconds);
    let self1 = procfs::cpu_seconds("self");
    let wait1 = pid.and_then(procfs::runq_wait_seconds);
    // Whole-core figures include what per-process CPU time can miss: loopback TCP work done
    // in softirq context, and time the hypervisor took (steal).
    for (name, core, before) in [
        ("server_core", p.server_core, jiffies0.0),
        ("loadgen_core", own_core, jiffies0.1),
    ] {
        if let (Some(a), Some(b)) = (before, core.and_then(procfs::core_jiffies)) {
            let (busy, softirq, steal) = procfs::core_usage(a, b);
            out[name] = json!({"core": core, "busy_pct": round(busy, 1),
                "softirq_pct": round(softirq, 1), "steal_pct": round(steal, 1)});
        }
    }
    let wall = wall0.elapsed().as_secs_f64();

    let t = &d.ctx.totals;
    let (mut expected, mut lost, mut incomplete) = (0u64, 0u64, 0u64);
    for g in &d.ctx.groups {
        for m in &g.msgs {
            expected += u64::from(m.expected);
            lost += u64::from(m.expected.saturating_sub(m.received));
            incomplete += u64::from(m.received < m.expected);
        }
    }
    let span = t
        .first_publish
        .map(|f| t.last_delivery.saturating_sub(f) as f64 / 1e9)
        .unwrap_or(0.0);
    let dps = if span > 0.0 {
        t.deliveries as f64 / span
    } else {
        0.0
    };
    out["rate"] = json!(rate);
    // Latencies end at the kernel's receive time rather than the load generator's read.
    out["kernel_timestamps"] = json!(p.kernel_timestamps);
    out["published"] = json!(published);
    out["load_s"] = json!(round(load_s, 3));
    out["publish_lag_max_ms"] = json!(ms(Duration::from_nanos(lag_max)));
    out["expected"] = json!(expected);
    out["deliveries"] = json!(t.deliveries);
    out["deliveries_per_s"] = json!(dps.round());
    out["offered_per_s"] = json!((expected as f64 / duration).round());
    out["lost"] = json!(lost);
    out["incomplete_msgs"] = json!(incomplete);
    out["duplicates"] = json!(t.duplicates);
    out["out_of_order"] = json!(t.out_of_order);
    out["gaps"] = json!(t.gaps);
    out["malformed"] = json!(t.malformed);
    out["wrong_room"] = json!(t.wrong_room);
    out["early"] = json!(t.early);
    out["join_skips"] = json!(t.join_skips);
    out["server_closed"] = json!(d.ctx.counters.server_closed);
    out["publish_skipped"] = json!(d.publish_skipped);
    out["frame_bytes"] = json!(t.msg_frame_bytes.checked_div(t.deliveries).unwrap_or(0));
    out["latency_ms"] = t.latency.summary_ms();
    out["fanout_ms"] = t.fanout.summary_ms();
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        let cpu = b - a;
        out["server_cpu_s"] = json!(round(cpu, 2));
        out["server_cpu_pct"] = json!(round(100.0 * cpu / wall, 1));
        if t.deliveries > 0 {
            out["cpu_s_per_1k"] = json!(round(cpu * 1000.0 / t.deliveries as f64, 5));
        }
    }
    if let (Some(a), Some(b)) = (wait0, wait1) {
        // Time the server was runnable but another process had its core: high values mean
        // the machine was busy and the run is not representative.
        out["server_runq_wait_s"] = json!(round(b - a, 2));
    }
    if let (Some(a), Some(b)) = (self0, self1) {
        out["loadgen_cpu_pct"] = json!(round(100.0 * (b - a) / wall, 1));
    }
    if let Some(pid) = pid {
        out["rss_kib"]["end"] = json!(procfs::rss_kib(pid));
        out["rss_kib"]["peak"] = json!(procfs::hwm_kib(pid));
    }
    if p.scenario == Scenario::Churn {
        out["churn"] = json!({
            "disconnects": d.ctx.counters.churned,
            "connects": d.ctx.connect_under_load.count(),
            "connect_failed": d.ctx.counters.connect_failed,
            "connect_ms": d.ctx.connect_under_load.summary_ms(),
        });
    }
    if p.scenario == Scenario::Notify {
        let a = &d.api_stats;
        out["api"] = json!({
            "requests": a.requests, "errors": a.errors, "backlog_max": a.backlog_max,
            "reconnects": a.reconnects, "skipped": a.skipped,
            "requests_per_s": (a.requests as f64 / load_s.max(1e-9)).round(),
        });
    }
}
