//! The hand-made SVG plots: room-broadcast delivery latency percentiles and fanout completion
//! against N per server (log y), and deliveries/s per server and scenario (bars); and the
//! scaling plot, unit costs against N (memory and CPU per connection, ping and recipient).

use crate::report::{group, median};
use serde_json::Value;
use std::fmt::Write;

const W: f64 = 980.0;
const PANEL_H: f64 = 300.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

struct Series {
    name: String,
    color: &'static str,
    dash: &'static str,
    points: Vec<(usize, f64)>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn fmt_tick(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", v / 1e6)
    } else if v >= 1000.0 {
        format!("{}k", v / 1000.0)
    } else if v >= 1.0 {
        format!("{v}")
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
    }
}

/// One line panel at vertical offset `y0`: x is categorical (the N values), y logarithmic.
fn line_panel(svg: &mut String, y0: f64, title: &str, ylabel: &str, xs: &[u64], series: &[Series]) {
    let (pw, ph) = (W - LEFT - RIGHT, PANEL_H - TOP - BOTTOM);
    let vals: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .filter(|v| *v > 0.0)
        .collect();
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" font-size="15" font-weight="bold">{}</text>"#,
        LEFT,
        y0 + 22.0,
        esc(title)
    );
    if vals.is_empty() || xs.is_empty() {
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}">no data</text>"#,
            LEFT,
            y0 + 80.0
        );
        return;
    }
    let lo = vals.iter().copied().fold(f64::MAX, f64::min);
    let hi = vals.iter().copied().fold(f64::MIN, f64::max);
    let (elo, ehi) = (
        lo.log10().floor(),
        hi.log10().ceil().max(lo.log10().floor() + 1.0),
    );
    let y = |v: f64| y0 + TOP + ph - (v.max(10f64.powf(elo)).log10() - elo) / (ehi - elo) * ph;
    let x = |i: usize| {
        if xs.len() == 1 {
            LEFT + pw / 2.0
        } else {
            LEFT + 30.0 + i as f64 * (pw - 60.0) / (xs.len() - 1) as f64
        }
    };
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>"##,
        y0 + TOP
    );
    for e in (elo as i32)..=(ehi as i32) {
        for m in [1.0, 2.0, 5.0] {
            let v = m * 10f64.powi(e);
            if v > 10f64.powf(ehi) * 1.0001 {
                continue;
            }
            let yy = y(v);
            let major = m == 1.0;
            let _ = writeln!(
                svg,
                r##"<line x1="{LEFT}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="{}"/>"##,
                LEFT + pw,
                if major { "#ccc" } else { "#eee" }
            );
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"#,
                LEFT - 6.0,
                yy + 4.0,
                fmt_tick(v)
            );
        }
    }
    for (i, n) in xs.iter().enumerate() {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{}" font-size="11" text-anchor="middle">{n}</text>"#,
            x(i),
            y0 + TOP + ph + 16.0
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" font-size="12" text-anchor="middle">clients (N)</text>"#,
        LEFT + pw / 2.0,
        y0 + TOP + ph + 36.0
    );
    let _ = writeln!(
        svg,
        r#"<text transform="translate({},{}) rotate(-90)" font-size="12" text-anchor="middle">{}</text>"#,
        LEFT - 55.0,
        y0 + TOP + ph / 2.0,
        esc(ylabel)
    );
    for (k, s) in series.iter().enumerate() {
        let pts: Vec<String> = s
            .points
            .iter()
            .filter(|p| p.1 > 0.0)
            .map(|&(i, v)| format!("{:.1},{:.1}", x(i), y(v)))
            .collect();
        if !pts.is_empty() {
            let _ = writeln!(
                svg,
                r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2" stroke-dasharray="{}"/>"#,
                pts.join(" "),
                s.color,
                s.dash
            );
            for p in &pts {
                let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
                let _ = writeln!(
                    svg,
                    r#"<circle cx="{px}" cy="{py}" r="3" fill="{}"/>"#,
                    s.color
                );
            }
        }
        let ly = y0 + TOP + 10.0 + k as f64 * 17.0;
        let lx = LEFT + pw + 12.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{lx}" x2="{}" y1="{ly}" y2="{ly}" stroke="{}" stroke-width="2" stroke-dasharray="{}"/><text x="{}" y="{}" font-size="11">{}</text>"#,
            lx + 24.0,
            s.color,
            s.dash,
            lx + 30.0,
            ly + 4.0,
            esc(&s.name)
        );
    }
}

/// Grouped bars: one group per (scenario, N), one bar per server; log y (the scenarios'
/// rates span three decades).
fn bar_panel(
    svg: &mut String,
    y0: f64,
    title: &str,
    groups: &[(String, Vec<(String, f64)>)],
    servers: &[String],
) {
    let (pw, ph) = (W - LEFT - RIGHT, PANEL_H - TOP - BOTTOM);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" font-size="15" font-weight="bold">{}</text>"#,
        LEFT,
        y0 + 22.0,
        esc(title)
    );
    let values = || {
        groups
            .iter()
            .flat_map(|g| g.1.iter().map(|b| b.1))
            .filter(|v| *v > 0.0)
    };
    let hi = values().fold(0.0, f64::max);
    if hi <= 0.0 {
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}">no data</text>"#,
            LEFT,
            y0 + 80.0
        );
        return;
    }
    let lo_exp = values().fold(hi, f64::min).log10().floor();
    let hi_exp = hi.log10().ceil().max(lo_exp + 1.0);
    let y = |v: f64| {
        let e = v.max(10f64.powf(lo_exp)).log10();
        y0 + TOP + ph - (e - lo_exp) / (hi_exp - lo_exp) * ph
    };
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>"##,
        y0 + TOP
    );
    for e in lo_exp as i32..=hi_exp as i32 {
        let v = 10f64.powi(e);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
            LEFT + pw,
            y(v),
            y(v),
            LEFT - 6.0,
            y(v) + 4.0,
            fmt_tick(v)
        );
    }
    let gw = pw / groups.len() as f64;
    let bw = (gw * 0.8) / servers.len().max(1) as f64;
    for (gi, (label, bars)) in groups.iter().enumerate() {
        let gx = LEFT + gi as f64 * gw + gw * 0.1;
        for (name, v) in bars {
            let si = servers.iter().position(|s| s == name).unwrap_or(0);
            let bx = gx + si as f64 * bw;
            let _ = writeln!(
                svg,
                r#"<rect x="{bx:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{} {}: {:.0}/s</title></rect>"#,
                y(*v),
                bw - 2.0,
                y0 + TOP + ph - y(*v),
                COLORS[si % COLORS.len()],
                esc(name),
                esc(label),
                v
            );
        }
        // Two short lines ("chat", "N=1000") so that a dozen groups fit side by side.
        let (scenario, n) = label.split_once(' ').unwrap_or((label.as_str(), ""));
        let short = scenario
            .strip_prefix("room-")
            .or_else(|| scenario.strip_suffix("-rooms"))
            .unwrap_or(scenario);
        let cx = gx + gw * 0.4;
        let _ = writeln!(
            svg,
            r#"<text x="{cx:.1}" y="{}" font-size="10" text-anchor="middle">{}</text><text x="{cx:.1}" y="{}" font-size="10" text-anchor="middle">N={n}</text>"#,
            y0 + TOP + ph + 14.0,
            esc(short),
            y0 + TOP + ph + 27.0,
        );
    }
    for (si, s) in servers.iter().enumerate() {
        let ly = y0 + TOP + 10.0 + si as f64 * 17.0;
        let lx = LEFT + pw + 12.0;
        let _ = writeln!(
            svg,
            r#"<rect x="{lx}" y="{}" width="14" height="10" fill="{}"/><text x="{}" y="{}" font-size="11">{}</text>"#,
            ly - 5.0,
            COLORS[si % COLORS.len()],
            lx + 20.0,
            ly + 4.0,
            esc(s)
        );
    }
}

/// The whole plot.
/// The document head of a three-panel plot: the `<svg>` element, a white background, the title.
fn open_svg(title: &str) -> String {
    let mut svg = String::new();
    let height = 3.0 * PANEL_H + 40.0;
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" viewBox="0 0 {W} {height}" font-family="sans-serif">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="24" font-size="17" text-anchor="middle">{}</text>"#,
        W / 2.0,
        esc(title)
    );
    svg
}

pub fn plot(results: &[Value], title: &str) -> String {
    let g = group(results);
    let mut servers: Vec<(usize, String)> = g
        .values()
        .flat_map(|c| c.keys().map(|(r, s, _)| (*r, s.clone())))
        .collect();
    servers.sort();
    servers.dedup();
    let servers: Vec<String> = servers.into_iter().map(|s| s.1).collect();
    let mut svg = open_svg(title);

    let rb = g.get("room-broadcast");
    let mut xs: Vec<u64> = rb
        .map(|c| c.keys().map(|k| k.2).collect())
        .unwrap_or_default();
    xs.sort_unstable();
    xs.dedup();
    let series_for = |dashes: &[(&str, &'static str, &'static str)]| {
        let mut out = Vec::new();
        for (si, s) in servers.iter().enumerate() {
            for &(label, p, dash) in dashes {
                let points = xs
                    .iter()
                    .enumerate()
                    .filter_map(|(i, n)| {
                        let cell = rb?.get(&(crate::report::server_rank(s), s.clone(), *n))?;
                        Some((i, median(&cell.runs, p)?))
                    })
                    .collect();
                out.push(Series {
                    name: format!("{s} {label}"),
                    color: COLORS[si % COLORS.len()],
                    dash,
                    points,
                });
            }
        }
        out
    };
    let lat = series_for(&[
        ("p50", "latency_ms.p50", "2,3"),
        ("p99", "latency_ms.p99", ""),
        ("p99.9", "latency_ms.p999", "8,4"),
    ]);
    line_panel(
        &mut svg,
        30.0,
        "room-broadcast: per-delivery latency (median of runs)",
        "ms (log)",
        &xs,
        &lat,
    );
    let fan = series_for(&[
        ("p50", "fanout_ms.p50", "2,3"),
        ("p99", "fanout_ms.p99", ""),
    ]);
    line_panel(
        &mut svg,
        30.0 + PANEL_H,
        "room-broadcast: fanout completion (last client received it)",
        "ms (log)",
        &xs,
        &fan,
    );
    let mut groups = Vec::new();
    // Idle runs deliver nothing.
    for sc in crate::report::SCENARIO_ORDER
        .into_iter()
        .filter(|&s| s != "idle" && s != "heartbeat")
    {
        let Some(cells) = g.get(sc) else { continue };
        let mut ns: Vec<u64> = cells.keys().map(|k| k.2).collect();
        ns.sort_unstable();
        ns.dedup();
        for n in ns {
            let bars: Vec<(String, f64)> = cells
                .iter()
                .filter(|(k, _)| k.2 == n)
                .filter_map(|(k, c)| Some((k.1.clone(), median(&c.runs, "deliveries_per_s")?)))
                .collect();
            groups.push((format!("{sc} {n}"), bars));
        }
    }
    bar_panel(
        &mut svg,
        30.0 + 2.0 * PANEL_H,
        "deliveries/s (median of runs, log scale)",
        &groups,
        &servers,
    );
    svg.push_str("</svg>\n");
    svg
}

/// The scaling plot: per-connection RSS and server CPU per heartbeat ping (heartbeat runs)
/// and server CPU per broadcast recipient (room-broadcast) against N, one line per server.
/// Flat lines are the goal: nothing per connection should grow with N. `None` without
/// heartbeat runs.
pub fn scaling(results: &[Value], title: &str) -> Option<String> {
    let g = group(results);
    let hb = g.get("heartbeat")?;
    let rb = g.get("room-broadcast");
    let mut xs: Vec<u64> = hb.keys().map(|k| k.2).collect();
    xs.extend(rb.into_iter().flat_map(|c| c.keys().map(|k| k.2)));
    xs.sort_unstable();
    xs.dedup();
    let mut servers: Vec<(usize, String)> = hb.keys().map(|(r, s, _)| (*r, s.clone())).collect();
    servers.extend(
        rb.into_iter()
            .flat_map(|c| c.keys().map(|(r, s, _)| (*r, s.clone()))),
    );
    servers.sort();
    servers.dedup();
    let series = |cells: Option<&BTreeCells>, path: &str, scale: f64| -> Vec<Series> {
        servers
            .iter()
            .enumerate()
            .map(|(si, (rank, s))| Series {
                name: s.clone(),
                color: COLORS[si % COLORS.len()],
                dash: "",
                points: xs
                    .iter()
                    .enumerate()
                    .filter_map(|(i, n)| {
                        let cell = cells?.get(&(*rank, s.clone(), *n))?;
                        Some((i, median(&cell.runs, path)? * scale))
                    })
                    .collect(),
            })
            .filter(|s| !s.points.is_empty())
            .collect()
    };
    let mut rss = series(Some(hb), "rss_per_conn_bytes", 1.0);
    let marginal = marginal_series(&rss, &xs);
    rss.extend(marginal);
    rss.extend(
        series(Some(hb), "anon_per_conn_bytes", 1.0)
            .into_iter()
            .map(|s| Series {
                name: format!("{} anonymous", s.name),
                dash: "1 3",
                ..s
            }),
    );
    let mut svg = open_svg(title);
    let panels = [
        (
            "server RSS per idle connection: average, marginal, anonymous (heartbeat runs)",
            "bytes (log)",
            rss,
        ),
        (
            "server CPU per heartbeat ping",
            "us (log)",
            series(Some(hb), "cpu_us_per_ping", 1.0),
        ),
        (
            "server CPU per broadcast recipient (room-broadcast)",
            "us (log)",
            // Seconds per 1,000 deliveries to microseconds per delivery.
            series(rb, "cpu_s_per_1k", 1000.0),
        ),
    ];
    for (i, (t, y, s)) in panels.iter().enumerate() {
        line_panel(&mut svg, 30.0 + i as f64 * PANEL_H, t, y, &xs, s);
    }
    svg.push_str("</svg>\n");
    Some(svg)
}

/// Marginal bytes per connection between consecutive N (dashed), from the per-connection
/// averages: what one more client costs, without the fixed part (code pages faulted in by
/// the first connects) that the average spreads over N.
fn marginal_series(avg: &[Series], xs: &[u64]) -> Vec<Series> {
    avg.iter()
        .map(|s| Series {
            name: format!("{} marginal", s.name),
            color: s.color,
            dash: "5 3",
            points: s
                .points
                .windows(2)
                .filter_map(|w| {
                    let ((i0, r0), (i1, r1)) = (w[0], w[1]);
                    let (n0, n1) = (xs[i0] as f64, xs[i1] as f64);
                    let m = (r1 * n1 - r0 * n0) / (n1 - n0);
                    (m > 0.0).then_some((i1, m))
                })
                .collect(),
        })
        .filter(|s| !s.points.is_empty())
        .collect()
}

type BTreeCells<'a> = std::collections::BTreeMap<(usize, String, u64), crate::report::Cell<'a>>;
