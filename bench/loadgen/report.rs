//! `sio-bench report`: result lines (JSONL) to a markdown table per scenario, with the
//! median over repeats of every number, and the SVG plot; also the per-run check and summary.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Runs of one (scenario, server, N).
pub struct Cell<'a> {
    pub runs: Vec<&'a Value>,
    pub failed: Vec<&'a Value>,
}

/// Results grouped by scenario, then (server order, N).
pub type Grouped<'a> = BTreeMap<String, BTreeMap<(usize, String, u64), Cell<'a>>>;

/// The order servers appear in tables and plots.
pub fn server_rank(name: &str) -> usize {
    crate::suite::KNOWN
        .iter()
        .position(|s| *s == name)
        .unwrap_or(99)
}

pub fn group(results: &[Value]) -> Grouped<'_> {
    let mut g: Grouped = BTreeMap::new();
    for r in results {
        let sc = r["scenario"].as_str().unwrap_or("?").to_owned();
        let server = r["server"].as_str().unwrap_or("?").to_owned();
        let n = r["clients"].as_u64().unwrap_or(0);
        let cell = g
            .entry(sc)
            .or_default()
            .entry((server_rank(&server), server, n))
            .or_insert_with(|| Cell {
                runs: Vec::new(),
                failed: Vec::new(),
            });
        if r["ok"] == Value::Bool(true) {
            cell.runs.push(r);
        } else {
            cell.failed.push(r);
        }
    }
    g
}

/// The median of the number at `path` (such as `latency_ms.p99`) over `runs`.
pub fn median(runs: &[&Value], path: &str) -> Option<f64> {
    let mut xs: Vec<f64> = runs
        .iter()
        .filter_map(|r| path.split('.').try_fold(*r, |v, k| v.get(k))?.as_f64())
        .collect();
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let m = xs.len() / 2;
    Some(if xs.len() % 2 == 1 {
        xs[m]
    } else {
        (xs[m - 1] + xs[m]) / 2.0
    })
}

fn fmt_num(x: Option<f64>) -> String {
    match x {
        None => "-".into(),
        Some(0.0) => "0".into(),
        Some(x) if x.abs() >= 1000.0 => {
            // Thousands separators for readability.
            let s = format!("{:.0}", x);
            let (sign, digits) = s.split_at(usize::from(s.starts_with('-')));
            let mut out = String::new();
            for (i, c) in digits.chars().enumerate() {
                if i > 0 && (digits.len() - i) % 3 == 0 {
                    out.push(',');
                }
                out.push(c);
            }
            format!("{sign}{out}")
        }
        Some(x) if x.abs() >= 100.0 => format!("{x:.0}"),
        Some(x) if x.abs() >= 10.0 => format!("{x:.1}"),
        Some(x) if x.abs() >= 0.1 => format!("{x:.2}"),
        Some(x) => format!("{x:.3}"),
    }
}

/// (header, JSON path, scale) per column; the scale turns KiB into MiB and so on.
type Column = (&'static str, &'static str, f64);

fn columns(scenario: &str) -> Vec<Column> {
    let lat = [
        ("latency p50 ms", "latency_ms.p50", 1.0),
        ("p99", "latency_ms.p99", 1.0),
        ("p99.9", "latency_ms.p999", 1.0),
        ("max", "latency_ms.max", 1.0),
    ];
    let fan = [
        ("fanout p50 ms", "fanout_ms.p50", 1.0),
        ("p99", "fanout_ms.p99", 1.0),
        ("p99.9", "fanout_ms.p999", 1.0),
        ("max", "fanout_ms.max", 1.0),
    ];
    let errs = [
        ("lost", "lost", 1.0),
        ("dup", "duplicates", 1.0),
        ("ooo", "out_of_order", 1.0),
    ];
    let tail = [
        ("server CPU s/1k deliv.", "cpu_s_per_1k", 1.0),
        ("server CPU %", "server_cpu_pct", 1.0),
        ("server core busy %", "server_core.busy_pct", 1.0),
        ("server run-queue wait s", "server_runq_wait_s", 1.0),
        ("loadgen CPU %", "loadgen_cpu_pct", 1.0),
        ("connect N s", "connect.total_s", 1.0),
    ];
    let mut c: Vec<Column> = vec![
        ("deliveries/s", "deliveries_per_s", 1.0),
        ("offered/s", "offered_per_s", 1.0),
    ];
    match scenario {
        "idle" => {
            return vec![
                ("RSS before MiB", "rss_kib.before", 1.0 / 1024.0),
                ("RSS connected MiB", "rss_kib.connected", 1.0 / 1024.0),
                ("bytes/conn", "rss_per_conn_bytes", 1.0),
                ("anon bytes/conn", "anon_per_conn_bytes", 1.0),
                ("connect N s", "connect.total_s", 1.0),
                ("connects/s", "connect.per_s", 1.0),
                ("connect p99 ms", "connect.latency_ms.p99", 1.0),
            ]
        }
        "heartbeat" => {
            return vec![
                ("ping interval ms", "ping_interval_ms", 1.0),
                ("pings/s", "pings_per_s", 1.0),
                ("server CPU us/ping", "cpu_us_per_ping", 1.0),
                ("server CPU %", "server_cpu_pct", 1.0),
                ("server core busy %", "server_core.busy_pct", 1.0),
                ("server run-queue wait s", "server_runq_wait_s", 1.0),
                ("bytes/conn", "rss_per_conn_bytes", 1.0),
                ("anon bytes/conn", "anon_per_conn_bytes", 1.0),
                ("connect N s", "connect.total_s", 1.0),
            ]
        }
        "notify" => {
            c.extend(lat);
            c.extend(errs);
            c.push(("API req/s", "api.requests_per_s", 1.0));
            c.push(("API errors", "api.errors", 1.0));
            c.push(("API backlog max", "api.backlog_max", 1.0));
        }
        "churn" => {
            c.extend(lat);
            c.push(("fanout p99 ms", "fanout_ms.p99", 1.0));
            c.extend(errs);
            c.push(("reconnects", "churn.connects", 1.0));
            c.push(("reconnect p50 ms", "churn.connect_ms.p50", 1.0));
            c.push(("reconnect p99 ms", "churn.connect_ms.p99", 1.0));
        }
        _ => {
            c.extend(lat);
            c.extend(fan);
            c.extend(errs);
        }
    }
    c.extend(tail);
    c.push(("peak RSS MiB", "rss_kib.peak", 1.0 / 1024.0));
    c
}

/// What each scenario's table means.
fn describe(scenario: &str, runs: &[&Value]) -> String {
    let first = runs.first().copied().unwrap_or(&Value::Null);
    let rate = first["rate"].as_f64().unwrap_or(0.0);
    let dur = first["duration_s"].as_f64().unwrap_or(0.0);
    let frame = median(runs, "frame_bytes").unwrap_or(0.0);
    match scenario {
        "room-broadcast" => format!(
            "All N clients in room `bench`; one of them publishes {rate} msg/s for {dur} s; \
             the server relays each to all N. Frames of ~{frame:.0} bytes."
        ),
        "chat-rooms" => format!(
            "N clients in rooms of {}; each room's first member publishes; {rate} msg/s in all \
             for {dur} s.",
            first["room_size"].as_u64().unwrap_or(10)
        ),
        "notify" => format!(
            "`POST /api/emit` to one socket id per request, {rate} requests/s for {dur} s over \
             {} keep-alive connections.",
            first["api_conns"].as_u64().unwrap_or(0)
        ),
        "churn" => format!(
            "Room broadcast at {rate} msg/s to N clients while {} clients/s disconnect and new \
             ones connect, for {dur} s (reconnect = connect latency under load).",
            first["churn_rate"].as_f64().unwrap_or(0.0)
        ),
        "capacity" => format!(
            "All N clients in room `bench`; one of them publishes {rate:.0} msg/s ({:.0} \
             deliveries/s offered, above every server's capacity) for {dur} s; deliveries/s = \
             deliveries / (last delivery - first publish), the rate the server sustains while \
             it works through the backlog. Frames of ~{frame:.0} bytes.",
            median(runs, "offered_per_s").unwrap_or(0.0)
        ),
        "idle" => format!(
            "N idle connections held {dur} s; server VmRSS before connecting and after \
             (bytes/conn = difference / N)."
        ),
        "heartbeat" => format!(
            "N idle connections pinged every {} ms for {dur} s (after one interval of warm-up); \
             server CPU (every thread's schedstat run time) over the hold divided by the pings \
             the clients answered in it.",
            first["ping_interval_ms"].as_u64().unwrap_or(0)
        ),
        _ => String::new(),
    }
}

/// The order of the scenarios in the report and the plot.
pub const SCENARIO_ORDER: [&str; 7] = [
    "room-broadcast",
    "capacity",
    "chat-rooms",
    "notify",
    "churn",
    "idle",
    "heartbeat",
];

/// The markdown report.
pub fn markdown(results: &[Value], header: &str) -> String {
    let g = group(results);
    let mut md = String::new();
    let _ = writeln!(md, "{header}");
    for sc in SCENARIO_ORDER {
        let Some(cells) = g.get(sc) else { continue };
        let all: Vec<&Value> = cells
            .values()
            .flat_map(|c| c.runs.iter().copied())
            .collect();
        let _ = writeln!(md, "\n## {sc}\n\n{}\n", describe(sc, &all));
        let cols = columns(sc);
        let mut head = String::from("| server | N | runs |");
        let mut sep = String::from("|---|---:|---:|");
        for (h, _, _) in &cols {
            let _ = write!(head, " {h} |");
            sep.push_str("---:|");
        }
        let _ = writeln!(md, "{head}\n{sep}");
        for ((_, server, n), cell) in cells {
            let mut row = format!(
                "| {server} | {n} | {}{} |",
                cell.runs.len(),
                if cell.failed.is_empty() {
                    String::new()
                } else {
                    format!(" ({} failed)", cell.failed.len())
                }
            );
            for (_, path, scale) in &cols {
                let v = median(&cell.runs, path).map(|x| x * scale);
                let _ = write!(row, " {} |", fmt_num(v));
            }
            let _ = writeln!(md, "{row}");
        }
    }
    let failed: Vec<&Value> = results
        .iter()
        .filter(|r| r["ok"] != Value::Bool(true))
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(md, "\n## Failed runs\n");
        for r in failed {
            let _ = writeln!(
                md,
                "- {} {} N={} run {}: {}",
                r["server"].as_str().unwrap_or("?"),
                r["scenario"].as_str().unwrap_or("?"),
                r["clients"],
                r["repeat"],
                r["error"].as_str().unwrap_or("?")
            );
        }
    }
    let banners: BTreeMap<&str, &str> = results
        .iter()
        .filter_map(|r| Some((r["server"].as_str()?, r["server_banner"].as_str()?)))
        .collect();
    if !banners.is_empty() {
        let _ = writeln!(md, "\nServers as they announced themselves:\n");
        for (s, b) in banners {
            let _ = writeln!(md, "- {s}: `{b}`");
        }
    }
    md
}

/// True when a run delivered something and lost, duplicated or reordered nothing.
pub fn clean(r: &Value) -> Result<(), String> {
    if r["ok"] != json!(true) {
        return Err(format!("run failed: {}", r["error"]));
    }
    let n = |k: &str| r[k].as_u64().unwrap_or(0);
    if r["scenario"] == json!("idle") {
        return Ok(());
    }
    if r["scenario"] == json!("heartbeat") {
        // Complete: nobody was dropped and (nearly) every ping was answered; a ping in
        // flight at either end of the hold may fall outside it.
        let expected = r["pings_expected"].as_f64().unwrap_or(0.0);
        if n("server_closed") > 0 {
            return Err(format!("server_closed = {}", n("server_closed")));
        }
        if (n("pings") as f64) < 0.9 * expected || n("pings") == 0 {
            return Err(format!("{} pings of ~{expected} expected", n("pings")));
        }
        return Ok(());
    }
    let mut problems = Vec::new();
    if n("deliveries") == 0 {
        problems.push("no message was delivered".to_owned());
    }
    for k in [
        "lost",
        "duplicates",
        "out_of_order",
        "malformed",
        "wrong_room",
        "server_closed",
    ] {
        if n(k) > 0 {
            problems.push(format!("{k} = {}", n(k)));
        }
    }
    if let Some(code) = r["at_half"]["exit"].as_i64().filter(|&c| c != 0) {
        problems.push(format!("the at-half command exited {code}"));
    }
    if r.get("at_half").is_some() && r["at_half"]["exit"].is_null() {
        problems.push("the at-half command was killed by a signal".to_owned());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join(", "))
    }
}

/// The human summary of one result (stderr).
pub fn summary(r: &Value) -> String {
    let f = |v: &Value| match v {
        Value::Null => "-".to_owned(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut s = format!(
        "{} {} N={}: connect {} s",
        f(&r["server"]),
        f(&r["scenario"]),
        f(&r["clients"]),
        f(&r["connect"]["total_s"])
    );
    if r["ok"] != json!(true) {
        s += &format!(", FAILED: {}", f(&r["error"]));
        return s;
    }
    if r["scenario"] == json!("soak") {
        return s + "\n" + &crate::soak::table(r);
    }
    if r["scenario"] == json!("heartbeat") {
        return s + &format!(
            ", {} pings ({}/s), server CPU {} s = {} us/ping, {} bytes/conn ({} anonymous)",
            f(&r["pings"]),
            f(&r["pings_per_s"]),
            f(&r["server_cpu_s"]),
            f(&r["cpu_us_per_ping"]),
            f(&r["rss_per_conn_bytes"]),
            f(&r["anon_per_conn_bytes"])
        );
    }
    if r["scenario"] == json!("idle") {
        s += &format!(
            ", RSS {} -> {} KiB, {} bytes/conn ({} anonymous)",
            f(&r["rss_kib"]["before"]),
            f(&r["rss_kib"]["connected"]),
            f(&r["rss_per_conn_bytes"]),
            f(&r["anon_per_conn_bytes"])
        );
        return s;
    }
    s += &format!(
        "; {} deliveries ({}/s of {}/s offered), latency p50/p99/p99.9/max {}/{}/{}/{} ms, \
         fanout p99 {} ms, lost {} dup {} ooo {}, server CPU {} s ({} s/1k), loadgen CPU {}%",
        f(&r["deliveries"]),
        f(&r["deliveries_per_s"]),
        f(&r["offered_per_s"]),
        f(&r["latency_ms"]["p50"]),
        f(&r["latency_ms"]["p99"]),
        f(&r["latency_ms"]["p999"]),
        f(&r["latency_ms"]["max"]),
        f(&r["fanout_ms"]["p99"]),
        f(&r["lost"]),
        f(&r["duplicates"]),
        f(&r["out_of_order"]),
        f(&r["server_cpu_s"]),
        f(&r["cpu_s_per_1k"]),
        f(&r["loadgen_cpu_pct"]),
    );
    if r["scenario"] == json!("churn") {
        s += &format!(
            "; churn {} connects, connect p99 {} ms",
            f(&r["churn"]["connects"]),
            f(&r["churn"]["connect_ms"]["p99"])
        );
    }
    if r["scenario"] == json!("notify") {
        s += &format!(
            "; API {} requests, {} errors, backlog max {}",
            f(&r["api"]["requests"]),
            f(&r["api"]["errors"]),
            f(&r["api"]["backlog_max"])
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn median_over_repeats_and_table_rows() {
        let a = json!({"server":"node","scenario":"room-broadcast","clients":10,"ok":true,
            "latency_ms":{"p99":3.0},"deliveries_per_s":1000.0});
        let b = json!({"server":"node","scenario":"room-broadcast","clients":10,"ok":true,
            "latency_ms":{"p99":1.0},"deliveries_per_s":3000.0});
        let c = json!({"server":"node","scenario":"room-broadcast","clients":10,"ok":false,
            "error":"boom","repeat":3});
        assert_eq!(median(&[&a, &b], "latency_ms.p99"), Some(2.0));
        assert_eq!(median(&[&a], "nope.p99"), None);
        let md = markdown(&[a, b, c], "# t");
        assert!(md.contains("| node | 10 | 2 (1 failed) | 2,000 |"), "{md}");
        assert!(md.contains("boom"));
        assert_eq!(fmt_num(Some(1234567.0)), "1,234,567");
        assert_eq!(fmt_num(Some(0.01234)), "0.012");
    }
}
