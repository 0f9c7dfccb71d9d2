//! Counters kept by the loop and rendered as Prometheus text at `GET /metrics`. Gauges (open
//! connections, sockets, rooms) are computed from live state at render time and passed in.

use std::fmt::Write;

/// Monotonic counters. Plain `u64`s: only the loop thread touches them.
#[derive(Debug, Default)]
pub struct Metrics {
    pub connections_accepted: u64,
    pub connections_refused: u64,
    pub sessions_opened: u64,
    pub sessions_closed: u64,
    pub packets_in: u64,
    pub packets_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub broadcasts: u64,
    pub broadcast_recipients: u64,
    /// Fanout size histogram buckets: <=1, <=10, <=100, <=1k, <=10k, more.
    pub fanout_buckets: [u64; 6],
    pub auth_failures: u64,
    pub slow_client_disconnects: u64,
    /// Loop turns that stopped writing at `FLUSH_SLICE` with output still owed.
    pub flush_slices_cut: u64,
    pub protocol_errors: u64,
    pub http_errors: u64,
    pub ping_timeouts: u64,
    pub api_requests: u64,
    pub api_unauthorized: u64,
    pub unknown_events: u64,
    pub rate_limited: u64,
    pub duplicate_events: u64,
    pub refused_events: u64,
    pub abuse_disconnects: u64,
    pub notifications_queued: u64,
}

pub const FANOUT_BOUNDS: [u64; 5] = [1, 10, 100, 1000, 10_000];

impl Metrics {
    pub fn record_fanout(&mut self, n: u64) {
        self.broadcasts += 1;
        self.broadcast_recipients += n;
        let i = FANOUT_BOUNDS
            .iter()
            .position(|&b| n <= b)
            .unwrap_or(FANOUT_BOUNDS.len());
        self.fanout_buckets[i] += 1;
    }
}

/// Live gauges gathered by the server for one render.
#[derive(Debug, Default)]
pub struct Gauges {
    pub websocket_connections: u64,
    pub polling_sessions: u64,
    pub open_tcp: u64,
    pub sockets_by_namespace: Vec<(String, u64)>,
    pub rooms: u64,
    pub outbound_queued_bytes: u64,
    pub encodes: u64,
    pub timers: u64,
    pub users_online: u64,
    pub mailbox_queued: u64,
    pub mailbox_dropped: u64,
    pub outbox_queued: u64,
    pub outbox_dropped: u64,
    pub recovery_packets: u64,
    pub recovery_sessions: u64,
    /// Extra lines rendered as they are (dependency states from the helper threads).
    pub extra: String,
}

fn metric(out: &mut String, kind: &str, name: &str, help: &str, v: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
    );
}

fn counter(out: &mut String, name: &str, help: &str, v: u64) {
    metric(out, "counter", name, help, v);
}

fn gauge(out: &mut String, name: &str, help: &str, v: u64) {
    metric(out, "gauge", name, help, v);
}

/// Renders everything in the Prometheus text exposition format.
pub fn render(m: &Metrics, g: &Gauges) -> String {
    let mut o = String::with_capacity(4096);
    let _ = writeln!(o, "# HELP sio_connections Open Engine.IO sessions by transport.\n# TYPE sio_connections gauge");
    let _ = writeln!(
        o,
        "sio_connections{{transport=\"websocket\"}} {}",
        g.websocket_connections
    );
    let _ = writeln!(
        o,
        "sio_connections{{transport=\"polling\"}} {}",
        g.polling_sessions
    );
    gauge(
        &mut o,
        "sio_tcp_connections",
        "Open TCP connections.",
        g.open_tcp,
    );
    let _ = writeln!(
        o,
        "# HELP sio_sockets Connected Socket.IO sockets by namespace.\n# TYPE sio_sockets gauge"
    );
    for (ns, n) in &g.sockets_by_namespace {
        let _ = writeln!(
            o,
            "sio_sockets{{namespace=\"{}\"}} {n}",
            ns.replace('\\', "\\\\").replace('"', "\\\"")
        );
    }
    gauge(
        &mut o,
        "sio_rooms",
        "Rooms with at least one member.",
        g.rooms,
    );
    gauge(
        &mut o,
        "sio_outbound_queued_bytes",
        "Bytes queued for clients, not yet written.",
        g.outbound_queued_bytes,
    );
    gauge(&mut o, "sio_timers", "Armed timer entries.", g.timers);
    counter(
        &mut o,
        "sio_connections_accepted_total",
        "TCP connections accepted.",
        m.connections_accepted,
    );
    counter(
        &mut o,
        "sio_connections_refused_total",
        "TCP connections refused at the connection limit.",
        m.connections_refused,
    );
    counter(
        &mut o,
        "sio_sessions_opened_total",
        "Engine.IO sessions opened.",
        m.sessions_opened,
    );
    counter(
        &mut o,
        "sio_sessions_closed_total",
        "Engine.IO sessions closed.",
        m.sessions_closed,
    );
    counter(
        &mut o,
        "sio_packets_in_total",
        "Engine.IO packets received.",
        m.packets_in,
    );
    counter(
        &mut o,
        "sio_packets_out_total",
        "Engine.IO messages queued for clients.",
        m.packets_out,
    );
    counter(
        &mut o,
        "sio_bytes_in_total",
        "Bytes read from clients.",
        m.bytes_in,
    );
    counter(
        &mut o,
        "sio_bytes_out_total",
        "Bytes written to clients.",
        m.bytes_out,
    );
    counter(
        &mut o,
        "sio_broadcasts_total",
        "Room broadcasts.",
        m.broadcasts,
    );
    counter(
        &mut o,
        "sio_broadcast_recipients_total",
        "Sockets reached by broadcasts.",
        m.broadcast_recipients,
    );
    counter(
        &mut o,
        "sio_broadcast_encodes_total",
        "Wire forms encoded for outbound messages (one per message and transport form).",
        g.encodes,
    );
    let _ = writeln!(o, "# HELP sio_broadcast_fanout Recipients per broadcast.\n# TYPE sio_broadcast_fanout histogram");
    let mut cum = 0;
    for (i, b) in FANOUT_BOUNDS.iter().enumerate() {
        cum += m.fanout_buckets[i];
        let _ = writeln!(o, "sio_broadcast_fanout_bucket{{le=\"{b}\"}} {cum}");
    }
    cum += m.fanout_buckets[FANOUT_BOUNDS.len()];
    let _ = writeln!(o, "sio_broadcast_fanout_bucket{{le=\"+Inf\"}} {cum}");
    let _ = writeln!(
        o,
        "sio_broadcast_fanout_sum {}\nsio_broadcast_fanout_count {}",
        m.broadcast_recipients, m.broadcasts
    );
    counter(
        &mut o,
        "sio_auth_failures_total",
        "Namespace connects refused for authentication.",
        m.auth_failures,
    );
    counter(
        &mut o,
        "sio_slow_client_disconnects_total",
        "Clients disconnected for a full outbound queue.",
        m.slow_client_disconnects,
    );
    counter(
        &mut o,
        "sio_flush_slices_cut_total",
        "Loop turns that stopped writing after their time slice with output still owed (large fanouts).",
        m.flush_slices_cut,
    );
    counter(
        &mut o,
        "sio_protocol_errors_total",
        "Malformed or invalid input that closed a connection or was refused.",
        m.protocol_errors,
    );
    counter(
        &mut o,
        "sio_http_errors_total",
        "HTTP requests answered with an error status.",
        m.http_errors,
    );
    counter(
        &mut o,
        "sio_ping_timeouts_total",
        "Sessions closed for a missing pong.",
        m.ping_timeouts,
    );
    counter(
        &mut o,
        "sio_api_requests_total",
        "Internal API requests.",
        m.api_requests,
    );
    counter(
        &mut o,
        "sio_api_unauthorized_total",
        "Internal API requests refused for a bad key.",
        m.api_unauthorized,
    );
    counter(
        &mut o,
        "sio_unknown_events_total",
        "Client events with no handler.",
        m.unknown_events,
    );
    counter(
        &mut o,
        "sio_rate_limited_total",
        "Client events refused by a rate limit.",
        m.rate_limited,
    );
    counter(
        &mut o,
        "sio_duplicate_events_total",
        "Client events dropped as retries of a seen event id.",
        m.duplicate_events,
    );
    counter(
        &mut o,
        "sio_refused_events_total",
        "Client events refused (schema, access, limits).",
        m.refused_events,
    );
    counter(
        &mut o,
        "sio_abuse_disconnects_total",
        "Sockets disconnected for repeated rate-limit violations.",
        m.abuse_disconnects,
    );
    counter(
        &mut o,
        "sio_notifications_queued_total",
        "Notifications queued for offline users.",
        m.notifications_queued,
    );
    gauge(
        &mut o,
        "sio_users_online",
        "Users online on this node (including the grace period).",
        g.users_online,
    );
    gauge(
        &mut o,
        "sio_mailbox_queued",
        "Notifications waiting in memory for offline users.",
        g.mailbox_queued,
    );
    counter(
        &mut o,
        "sio_mailbox_dropped_total",
        "Offline notifications dropped (box full or expired).",
        g.mailbox_dropped,
    );
    gauge(
        &mut o,
        "sio_outbox_queued",
        "Client events waiting in the outbox.",
        g.outbox_queued,
    );
    counter(
        &mut o,
        "sio_outbox_dropped_total",
        "Outbox events dropped because nobody drained it.",
        g.outbox_dropped,
    );
    gauge(
        &mut o,
        "sio_recovery_packets",
        "Broadcasts kept for connection state recovery.",
        g.recovery_packets,
    );
    gauge(
        &mut o,
        "sio_recovery_sessions",
        "Disconnected sockets waiting to be recovered.",
        g.recovery_sessions,
    );
    o.push_str(&g.extra);
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fanout_histogram_is_cumulative() {
        let mut m = Metrics::default();
        m.record_fanout(1);
        m.record_fanout(50);
        m.record_fanout(50_000);
        let text = render(&m, &Gauges::default());
        assert!(text.contains("sio_broadcast_fanout_bucket{le=\"1\"} 1"));
        assert!(text.contains("sio_broadcast_fanout_bucket{le=\"100\"} 2"));
        assert!(text.contains("sio_broadcast_fanout_bucket{le=\"+Inf\"} 3"));
        assert!(text.contains("sio_broadcasts_total 3"));
        for name in [
            "sio_rate_limited_total",
            "sio_refused_events_total",
            "sio_abuse_disconnects_total",
            "sio_recovery_packets",
        ] {
            assert!(text.contains(&format!("\n{name} ")), "{name} rendered");
        }
    }
}
