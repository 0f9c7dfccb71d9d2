//! Counters kept by the loop and rendered as Prometheus text at `GET /metrics` (render.rs).
//! Gauges (open connections, sockets, rooms) are computed from live state at render time and
//! passed in.

mod render;

pub use render::render;

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
    /// Times one connection's reading stopped at the per-turn cap with input possibly left.
    pub reads_capped: u64,
    /// Requests whose head or body missed its deadline (answered 408).
    pub request_timeouts: u64,
    /// Sessionless connections closed to give their slot to a new one at the limit.
    pub slot_evictions: u64,
    /// Handshakes and upgrades refused for their `Origin`.
    pub origin_refused: u64,
    /// WebSocket upgrades not completed within the upgrade timeout.
    pub upgrade_timeouts: u64,
    /// Failed accepts (out of descriptors: EMFILE/ENFILE, say).
    pub accept_errors: u64,
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
    /// Broadcasts not kept for recovery because no socket could be owed them.
    pub recovery_unowed: u64,
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
