//! The Prometheus text exposition of [`Metrics`] and [`Gauges`]: one table row per metric
//! (name, kind, help, value), written out in table order.
//!
//! ```text
//! # HELP sio_rooms Rooms with at least one member.
//! # TYPE sio_rooms gauge
//! sio_rooms 3
//! ```

use super::{Gauges, Metrics, FANOUT_BOUNDS};
use std::fmt::Write;
use Kind::{Counter, Gauge, Histogram};
use Value::{Buckets, By, One};

/// A metric's `# TYPE`.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// The samples under one `# HELP`/`# TYPE` pair.
enum Value<'a> {
    One(u64),
    /// One sample per label value: `name{label="value"} n`.
    By(&'static str, Vec<(&'a str, u64)>),
    /// Per-bucket counts (one more bucket than bounds: the last is above every bound).
    Buckets {
        bounds: &'static [u64],
        counts: &'a [u64],
        sum: u64,
        count: u64,
    },
}

/// Every metric, in the order `/metrics` shows them.
#[rustfmt::skip]
fn table<'a>(m: &'a Metrics, g: &'a Gauges) -> [(&'static str, Kind, &'static str, Value<'a>); 46] {
    let namespaces = g.sockets_by_namespace.iter().map(|(ns, n)| (ns.as_str(), *n)).collect();
    let transports = vec![("websocket", g.websocket_connections), ("polling", g.polling_sessions)];
    [
        ("sio_connections", Gauge, "Open Engine.IO sessions by transport.", By("transport", transports)),
        ("sio_tcp_connections", Gauge, "Open TCP connections.", One(g.open_tcp)),
        ("sio_sockets", Gauge, "Connected Socket.IO sockets by namespace.", By("namespace", namespaces)),
        ("sio_rooms", Gauge, "Rooms with at least one member.", One(g.rooms)),
        ("sio_outbound_queued_bytes", Gauge, "Bytes queued for clients, not yet written.", One(g.outbound_queued_bytes)),
        ("sio_timers", Gauge, "Armed timer entries.", One(g.timers)),
        ("sio_connections_accepted_total", Counter, "TCP connections accepted.", One(m.connections_accepted)),
        ("sio_connections_refused_total", Counter, "TCP connections refused at the connection limit.", One(m.connections_refused)),
        ("sio_sessions_opened_total", Counter, "Engine.IO sessions opened.", One(m.sessions_opened)),
        ("sio_sessions_closed_total", Counter, "Engine.IO sessions closed.", One(m.sessions_closed)),
        ("sio_packets_in_total", Counter, "Engine.IO packets received from clients.", One(m.packets_in)),
        ("sio_packets_out_total", Counter, "Engine.IO packets queued to clients.", One(m.packets_out)),
        ("sio_bytes_in_total", Counter, "Bytes read from clients.", One(m.bytes_in)),
        ("sio_bytes_out_total", Counter, "Bytes written to clients.", One(m.bytes_out)),
        ("sio_broadcasts_total", Counter, "Room broadcasts.", One(m.broadcasts)),
        ("sio_broadcast_recipients_total", Counter, "Sockets reached by broadcasts.", One(m.broadcast_recipients)),
        ("sio_broadcast_encodes_total", Counter, "Wire forms encoded for outbound messages (one per message and transport form).", One(g.encodes)),
        ("sio_broadcast_fanout", Histogram, "Recipients per broadcast.", Buckets { bounds: &FANOUT_BOUNDS, counts: &m.fanout_buckets, sum: m.broadcast_recipients, count: m.broadcasts }),
        ("sio_auth_failures_total", Counter, "Namespace connects refused for authentication.", One(m.auth_failures)),
        ("sio_slow_client_disconnects_total", Counter, "Clients disconnected for a full outbound queue.", One(m.slow_client_disconnects)),
        ("sio_flush_slices_cut_total", Counter, "Loop turns that stopped writing after their time slice with output still owed (large fanouts).", One(m.flush_slices_cut)),
        ("sio_reads_capped_total", Counter, "Times one connection's reading stopped at the per-turn cap so other connections get a turn.", One(m.reads_capped)),
        ("sio_request_timeouts_total", Counter, "Requests whose head or body missed its deadline (answered 408 and closed).", One(m.request_timeouts)),
        ("sio_slot_evictions_total", Counter, "Connections without a session closed to make room for a new one at the connection limit.", One(m.slot_evictions)),
        ("sio_origin_refused_total", Counter, "Handshakes and WebSocket upgrades refused (403) for their Origin.", One(m.origin_refused)),
        ("sio_accept_errors_total", Counter, "Failed accepts (EMFILE: out of descriptors, say); accepting pauses 100 ms after each.", One(m.accept_errors)),
        ("sio_upgrade_timeouts_total", Counter, "WebSocket upgrades not completed within the upgrade timeout (the polling session goes on).", One(m.upgrade_timeouts)),
        ("sio_protocol_errors_total", Counter, "Malformed or invalid input that closed a connection or was refused.", One(m.protocol_errors)),
        ("sio_http_errors_total", Counter, "HTTP requests answered with an error status.", One(m.http_errors)),
        ("sio_ping_timeouts_total", Counter, "Sessions closed for a missing pong.", One(m.ping_timeouts)),
        ("sio_api_requests_total", Counter, "Internal API requests.", One(m.api_requests)),
        ("sio_api_unauthorized_total", Counter, "Internal API requests refused for a bad key.", One(m.api_unauthorized)),
        ("sio_unknown_events_total", Counter, "Client events with no handler.", One(m.unknown_events)),
        ("sio_rate_limited_total", Counter, "Client events refused by a rate limit.", One(m.rate_limited)),
        ("sio_duplicate_events_total", Counter, "Client events dropped as retries of a seen event id.", One(m.duplicate_events)),
        ("sio_refused_events_total", Counter, "Client events refused (schema, access, limits).", One(m.refused_events)),
        ("sio_abuse_disconnects_total", Counter, "Sockets disconnected for repeated rate-limit violations.", One(m.abuse_disconnects)),
        ("sio_notifications_queued_total", Counter, "Notifications queued for offline users.", One(m.notifications_queued)),
        ("sio_users_online", Gauge, "Users online on this node (including the grace period).", One(g.users_online)),
        ("sio_mailbox_queued", Gauge, "Notifications waiting in memory for offline users.", One(g.mailbox_queued)),
        ("sio_mailbox_dropped_total", Counter, "Offline notifications dropped (box full or expired).", One(g.mailbox_dropped)),
        ("sio_outbox_queued", Gauge, "Client events waiting in the outbox.", One(g.outbox_queued)),
        ("sio_outbox_dropped_total", Counter, "Outbox events dropped because nobody drained it.", One(g.outbox_dropped)),
        ("sio_recovery_unowed_total", Counter, "Broadcasts not kept for recovery: they selected no socket and no saved session is in their rooms.", One(m.recovery_unowed)),
        ("sio_recovery_packets", Gauge, "Broadcasts kept for connection state recovery.", One(g.recovery_packets)),
        ("sio_recovery_sessions", Gauge, "Disconnected sockets waiting to be recovered.", One(g.recovery_sessions)),
    ]
}

/// Renders everything in the Prometheus text exposition format, then `g.extra` as it is.
pub fn render(m: &Metrics, g: &Gauges) -> String {
    let mut out = String::with_capacity(4096);
    for (name, kind, help, value) in table(m, g) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {}", kind.as_str());
        samples(&mut out, name, &value);
    }
    out.push_str(&g.extra);
    out
}

/// Writes one metric's sample lines. Writing to a `String` cannot fail.
fn samples(out: &mut String, name: &str, value: &Value) {
    match value {
        One(v) => {
            let _ = writeln!(out, "{name} {v}");
        }
        By(label, series) => {
            for (l, v) in series {
                let l = l.replace('\\', "\\\\").replace('"', "\\\"");
                let _ = writeln!(out, "{name}{{{label}=\"{l}\"}} {v}");
            }
        }
        Buckets {
            bounds,
            counts,
            sum,
            count,
        } => {
            // Prometheus buckets are cumulative: each counts everything at or below its bound.
            let mut cum = 0;
            for (i, n) in counts.iter().enumerate() {
                cum += n;
                let _ = match bounds.get(i) {
                    Some(b) => writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cum}"),
                    None => writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cum}"),
                };
            }
            let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Metrics, Gauges) {
        let m = Metrics {
            packets_in: 7,
            packets_out: 11,
            reads_capped: 3,
            ..Metrics::default()
        };
        let g = Gauges {
            websocket_connections: 2,
            polling_sessions: 1,
            sockets_by_namespace: vec![("/".into(), 4), ("/say \"hi\"".into(), 1)],
            extra: "sio_dependency_up{name=\"redis\"} 1\n".into(),
            ..Gauges::default()
        };
        (m, g)
    }

    #[test]
    fn pinned_lines() {
        let (m, g) = sample();
        let text = render(&m, &g);
        for block in [
            "# HELP sio_connections Open Engine.IO sessions by transport.\n# TYPE sio_connections gauge\nsio_connections{transport=\"websocket\"} 2\nsio_connections{transport=\"polling\"} 1\n",
            "sio_sockets{namespace=\"/\"} 4\nsio_sockets{namespace=\"/say \\\"hi\\\"\"} 1\n",
            "# HELP sio_packets_in_total Engine.IO packets received from clients.\n# TYPE sio_packets_in_total counter\nsio_packets_in_total 7\n",
            "# HELP sio_packets_out_total Engine.IO packets queued to clients.\n# TYPE sio_packets_out_total counter\nsio_packets_out_total 11\n",
            "# HELP sio_reads_capped_total Times one connection's reading stopped at the per-turn cap so other connections get a turn.\n# TYPE sio_reads_capped_total counter\nsio_reads_capped_total 3\n",
            "# TYPE sio_broadcast_fanout histogram\n",
        ] {
            assert!(text.contains(block), "missing:\n{block}\nin:\n{text}");
        }
        assert!(text.starts_with("# HELP sio_connections "));
        assert!(text.ends_with("# TYPE sio_recovery_sessions gauge\nsio_recovery_sessions 0\nsio_dependency_up{name=\"redis\"} 1\n"));
    }

    #[test]
    fn every_metric_has_help_type_and_a_unique_name() {
        let (m, g) = sample();
        let rows = table(&m, &g);
        let mut names: Vec<&str> = rows.iter().map(|r| r.0).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), rows.len(), "duplicate metric name");
        let text = render(&m, &g);
        for (name, kind, help, _) in &rows {
            assert!(text.contains(&format!(
                "# HELP {name} {help}\n# TYPE {name} {}\n",
                kind.as_str()
            )));
            assert!(
                !help.is_empty() && help.ends_with('.'),
                "{name}: help is a sentence"
            );
            assert_eq!(
                name.ends_with("_total"),
                matches!(kind, Counter),
                "{name}: counters and only counters end in _total"
            );
        }
    }
}
