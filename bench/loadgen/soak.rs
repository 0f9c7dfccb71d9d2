//! The soak scenario (docs/RELIABILITY.md, bench/soak.sh): room broadcasts to `bench` and
//! chat traffic in small rooms at once, with churn and a share of long-polling clients, for a
//! long time; one report row per interval (server RSS, delivery latency, deliveries,
//! duplicates, reordering, and at the end the losses of the messages published in it).
//!
//! Completeness rule: a message must reach, exactly once and in its publisher's order, every
//! client that was connected and joined (`Ready`: its join acknowledged) when the message was
//! published, and that had not been disconnected on purpose (churn) before receiving it. A
//! client that churn disconnects is excused from what had not reached it yet; a gap before
//! that stays a loss. Every client is in room `bench` and one chat room, so it has one
//! sequence per room, each checked on its own.

use crate::driver::Driver;
use crate::procfs;
use crate::scenario::Params;
use crate::stats::MsgStat;
use serde_json::{json, Value};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// What soak needs beyond the common parameters (`rate` is the `bench` broadcast rate,
/// `room_size`/`room_rate` the chat rooms, `duration` the load).
#[derive(Debug, Clone, Default)]
pub struct SoakParams {
    /// Seconds per report row (60: one row per minute).
    pub row_s: f64,
    /// Rows before the RSS baseline: drift is measured from the end of this row to the end.
    pub warmup_rows: usize,
    /// Percent of the clients that use Engine.IO long-polling instead of WebSocket.
    pub poll_pct: f64,
    /// Percent of the clients disconnected and replaced by new sessions each second.
    pub churn_pct: f64,
    /// A shell command run once, in the background, halfway through the load (bench/soak.sh
    /// restarts Redis with it).
    pub at_half: Option<String>,
}

impl SoakParams {
    /// Whether client `i` of the initial population polls: `poll_pct` percent spread evenly,
    /// never a room's first member (the publishers are WebSocket clients).
    pub fn polls(&self, i: usize, room_size: usize) -> bool {
        let share = |k: usize| (k as f64 * self.poll_pct / 100.0).floor();
        share(i + 1) > share(i) && !i.is_multiple_of(room_size.max(1))
    }
}

/// The counters a row is the difference of.
#[derive(Clone, Copy, Default)]
struct Snap {
    deliveries: u64,
    duplicates: u64,
    out_of_order: u64,
    gaps: u64,
    published: u64,
    ready_total: u64,
    churned: u64,
    server_closed: u64,
}

impl Snap {
    fn take(d: &Driver, published: u64) -> Snap {
        let t = &d.ctx.totals;
        let c = &d.ctx.counters;
        Snap {
            deliveries: t.deliveries,
            duplicates: t.duplicates,
            out_of_order: t.out_of_order,
            gaps: t.gaps,
            published,
            ready_total: c.ready_total,
            churned: c.churned,
            server_closed: c.server_closed,
        }
    }
}

fn ms(ns: u64) -> f64 {
    (ns as f64 / 1e3).round() / 1e3
}

fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

/// One report row: what happened since the previous one.
fn row(d: &mut Driver, pid: Option<&str>, n: usize, t_s: f64, a: Snap, b: Snap) -> Value {
    let w = &d.ctx.window;
    let v = json!({
        "row": n,
        "t_s": round(t_s, 1),
        "rss_kib": pid.and_then(procfs::rss_kib),
        "p50_ms": ms(w.quantile(0.5)),
        "p99_ms": ms(w.quantile(0.99)),
        "max_ms": ms(w.max()),
        "published": b.published - a.published,
        "delivered": b.deliveries - a.deliveries,
        "duplicates": b.duplicates - a.duplicates,
        "out_of_order": b.out_of_order - a.out_of_order,
        "gaps": b.gaps - a.gaps,
        "connects": b.ready_total - a.ready_total,
        "churned": b.churned - a.churned,
        "server_closed": b.server_closed - a.server_closed,
        "connected": d.ctx.bench_group.map(|g| d.ctx.groups[g].ready),
        "lost": Value::Null,
    });
    d.ctx.window.clear();
    v
}

/// Messages published so far in every group.
fn published(d: &Driver) -> u64 {
    d.ctx.groups.iter().map(|g| g.msgs.len() as u64).sum()
}

/// The load, the drain and the results of a soak run; the population is connected.
pub fn load(p: &Params, d: &mut Driver, pid: Option<&str>, out: &mut Value) {
    let sp = &p.soak;
    let bench = d.ctx.bench_group.unwrap_or(0);
    let rooms = bench.max(1);
    let row_ns = (sp.row_s.max(1.0) * 1e9) as u64;
    let duration_ns = (p.duration * 1e9) as u64;
    let interval = |per_s: f64| {
        if per_s > 0.0 {
            1e9 / per_s
        } else {
            f64::INFINITY
        }
    };
    let bench_iv = interval(p.rate);
    let room_iv = interval(p.room_rate * rooms as f64);
    let churn_iv = interval(p.clients as f64 * sp.churn_pct / 100.0);
    out["polling_clients"] = json!(d.polls.len());
    out["churn_per_s"] = json!(p.clients as f64 * sp.churn_pct / 100.0);
    out["row_s"] = json!(sp.row_s);
    out["warmup_rows"] = json!(sp.warmup_rows);

    d.ctx.loaded = true;
    d.ctx.window.clear();
    let cpu0 = pid.and_then(procfs::cpu_seconds);
    let start = d.ctx.now_ns();
    let due = |k: u64, iv: f64| start.saturating_add((k as f64 * iv) as u64);
    let (mut kb, mut kr, mut kc) = (0u64, 0u64, 0u64);
    let mut rows: Vec<Value> = Vec::new();
    let mut snap = Snap::take(d, published(d));
    let mut hook: Option<Child> = None;
    let mut hook_at = None;
    if p.progress {
        eprintln!("{}", header());
    }
    loop {
        let now = d.ctx.now_ns();
        let el = now - start;
        // Publishing and churn follow fixed schedules; a loop that fell behind catches up
        // in bounded bursts.
        let mut burst = 0;
        while el < duration_ns && burst < 1000 {
            if due(kb, bench_iv) <= now {
                d.publish_from(bench, 0, None);
                kb += 1;
            } else if due(kr, room_iv) <= now {
                d.publish((kr % rooms as u64) as usize, true);
                kr += 1;
            } else if due(kc, churn_iv) <= now {
                d.churn_one();
                kc += 1;
            } else {
                break;
            }
            burst += 1;
        }
        if hook_at.is_none() && el >= duration_ns / 2 {
            hook_at = Some(el as f64 / 1e9);
            if let Some(cmd) = &sp.at_half {
                eprintln!(
                    "sio-bench soak: at half ({:.0} s): running {cmd:?}",
                    el as f64 / 1e9
                );
                // Its output goes to stderr: stdout carries the JSON lines.
                let run = Command::new("sh")
                    .arg("-c")
                    .arg(cmd)
                    .stdout(std::io::stderr())
                    .spawn();
                match run {
                    Ok(c) => hook = Some(c),
                    Err(e) => out["at_half_error"] = json!(e.to_string()),
                }
            }
        }
        let row_end = (rows.len() as u64 + 1) * row_ns;
        let last = el >= duration_ns;
        if el >= row_end || (last && el > rows.len() as u64 * row_ns + row_ns / 10) {
            let b = Snap::take(d, published(d));
            let r = row(d, pid, rows.len() + 1, el as f64 / 1e9, snap, b);
            if p.progress {
                eprintln!("{}", line(&r));
            }
            rows.push(r);
            snap = b;
        }
        if last {
            break;
        }
        let next = [due(kb, bench_iv), due(kr, room_iv), due(kc, churn_iv)]
            .into_iter()
            .min()
            .unwrap_or(now);
        let wait = Duration::from_nanos(next.saturating_sub(d.ctx.now_ns()));
        d.turn(wait.min(Duration::from_millis(10)));
    }

    // Drain: outstanding deliveries, the connects churn started, and the hook.
    let drain_end = Instant::now() + Duration::from_secs_f64(p.drain);
    let total = published(d);
    while (d.ctx.totals.completed_msgs < total || d.ctx.counters.in_progress > 0)
        && Instant::now() < drain_end
    {
        d.turn(Duration::from_millis(10));
    }
    if let Some(mut c) = hook {
        // The hook bounds its own run time (bench/soak.sh); wait for its exit status.
        let status = c.wait().ok().and_then(|s| s.code());
        out["at_half"] = json!({"at_s": hook_at.map(|t| round(t, 1)), "exit": status});
    }
    let cpu1 = pid.and_then(procfs::cpu_seconds);

    // Losses, booked to the row in which the message was published.
    let last_row = rows.len().saturating_sub(1);
    let mut lost_rows = vec![0u64; last_row + 1];
    let (mut expected, mut lost) = (0u64, 0u64);
    for g in &d.ctx.groups {
        for m in &g.msgs {
            let MsgStat {
                t,
                expected: e,
                received,
                ..
            } = *m;
            let miss = u64::from(e.saturating_sub(received));
            expected += u64::from(e);
            lost += miss;
            let r = (t.saturating_sub(start) / row_ns) as usize;
            lost_rows[r.min(last_row)] += miss;
        }
    }
    for (r, l) in rows.iter_mut().zip(&lost_rows) {
        r["lost"] = json!(l);
    }
    let rss: Vec<Option<u64>> = rows.iter().map(|r| r["rss_kib"].as_u64()).collect();
    if let Some(Some(base)) = sp.warmup_rows.checked_sub(1).and_then(|i| rss.get(i)) {
        let later: Vec<u64> = rss[sp.warmup_rows..].iter().flatten().copied().collect();
        if let Some(&end) = later.last() {
            let pct = |x: u64| round(100.0 * (x as f64 - *base as f64) / *base as f64, 2);
            out["rss_drift_pct"] = json!(pct(end));
            let worst =
                later
                    .iter()
                    .map(|&x| pct(x))
                    .fold(0.0f64, |a, b| if b.abs() > a.abs() { b } else { a });
            out["rss_drift_max_pct"] = json!(worst);
            out["rss_baseline_kib"] = json!(base);
        }
    }
    let t = &d.ctx.totals;
    out["rows"] = json!(rows);
    out["published"] = json!(total);
    out["expected"] = json!(expected);
    out["deliveries"] = json!(t.deliveries);
    out["lost"] = json!(lost);
    out["duplicates"] = json!(t.duplicates);
    out["out_of_order"] = json!(t.out_of_order);
    out["gaps"] = json!(t.gaps);
    out["malformed"] = json!(t.malformed);
    out["wrong_room"] = json!(t.wrong_room);
    out["early"] = json!(t.early);
    out["join_skips"] = json!(t.join_skips);
    out["server_closed"] = json!(d.ctx.counters.server_closed);
    out["publish_skipped"] = json!(d.publish_skipped);
    out["latency_ms"] = t.latency.summary_ms();
    out["churn"] = json!({
        "disconnects": d.ctx.counters.churned,
        "connects": d.ctx.connect_under_load.count(),
        "connect_failed": d.ctx.counters.connect_failed,
        "connect_ms": d.ctx.connect_under_load.summary_ms(),
    });
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        out["server_cpu_s"] = json!(round(b - a, 1));
    }
    if let Some(pid) = pid {
        out["rss_kib"]["end"] = json!(procfs::rss_kib(pid));
        out["rss_kib"]["peak"] = json!(procfs::hwm_kib(pid));
    }
}

fn header() -> String {
    "| row | t (s) | RSS (KiB) | p50 (ms) | p99 (ms) | max (ms) | published | delivered | lost \
     | dup | ooo | connects | churned | connected |\n\
     |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        .to_owned()
}

fn line(r: &Value) -> String {
    let f = |k: &str| match &r[k] {
        Value::Null => "-".to_owned(),
        v => v.to_string(),
    };
    format!(
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        f("row"),
        f("t_s"),
        f("rss_kib"),
        f("p50_ms"),
        f("p99_ms"),
        f("max_ms"),
        f("published"),
        f("delivered"),
        f("lost"),
        f("duplicates"),
        f("out_of_order"),
        f("connects"),
        f("churned"),
        f("connected"),
    )
}

/// The markdown table of a soak result and its verdict lines (the stderr summary).
pub fn table(r: &Value) -> String {
    let mut s = header();
    for row in r["rows"].as_array().into_iter().flatten() {
        s += "\n";
        s += &line(row);
    }
    let f = |v: &Value| match v {
        Value::Null => "-".to_owned(),
        v => v.to_string(),
    };
    s += &format!(
        "\n\nclients {} ({} polling), churn {}/s, published {}, expected {}, delivered {}, \
         lost {}, duplicated {}, out of order {}, server-closed {}; latency p50/p99/max {}/{}/{} \
         ms; RSS baseline {} KiB (end of row {}), drift to the end {} %, largest {} %; server \
         CPU {} s",
        f(&r["clients"]),
        f(&r["polling_clients"]),
        f(&r["churn_per_s"]),
        f(&r["published"]),
        f(&r["expected"]),
        f(&r["deliveries"]),
        f(&r["lost"]),
        f(&r["duplicates"]),
        f(&r["out_of_order"]),
        f(&r["server_closed"]),
        f(&r["latency_ms"]["p50"]),
        f(&r["latency_ms"]["p99"]),
        f(&r["latency_ms"]["max"]),
        f(&r["rss_baseline_kib"]),
        f(&r["warmup_rows"]),
        f(&r["rss_drift_pct"]),
        f(&r["rss_drift_max_pct"]),
        f(&r["server_cpu_s"]),
    );
    if !r["at_half"].is_null() {
        s += &format!(
            "\nat half ({} s): hook exited {}",
            f(&r["at_half"]["at_s"]),
            f(&r["at_half"]["exit"])
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polling_share_is_spread_and_spares_publishers() {
        let sp = SoakParams {
            poll_pct: 5.0,
            ..SoakParams::default()
        };
        let polling: Vec<usize> = (0..200).filter(|&i| sp.polls(i, 10)).collect();
        assert_eq!(polling, [19, 39, 59, 79, 99, 119, 139, 159, 179, 199]);
        let none = SoakParams::default();
        assert!(!(0..1000).any(|i| none.polls(i, 10)));
        let all = SoakParams {
            poll_pct: 100.0,
            ..SoakParams::default()
        };
        assert!((0..30).filter(|&i| all.polls(i, 10)).all(|i| i % 10 != 0));
    }
}
