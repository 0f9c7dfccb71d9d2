//! `server_stats` for the Admin UI: per-interval deltas of the loop's counters as the
//! reference's aggregated events (`{timestamp, type, count}`, timestamp truncated to the
//! second), and the wall-clock ISO 8601 timestamps the UI expects in place of a JS `Date`.
//!
//! The counters already exist for `/metrics`; reading their difference every 2 s while an
//! admin watches is the whole cost, so no hook runs per packet.

use crate::metrics::Metrics;
use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};

/// The counters the UI charts, in the reference's event type names.
const KINDS: [&str; 6] = [
    "rawConnection",
    "rawDisconnection",
    "packetsIn",
    "packetsOut",
    "bytesIn",
    "bytesOut",
];

/// The counter values at the last report.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot([u64; 6]);

impl Snapshot {
    pub fn of(m: &Metrics) -> Self {
        Snapshot([
            m.sessions_opened,
            m.sessions_closed,
            m.packets_in,
            m.packets_out,
            m.bytes_in,
            m.bytes_out,
        ])
    }

    /// The aggregated events since `self`, stamped `second_ms` (only non-zero counts, as the
    /// reference pushes one entry per occurrence).
    pub fn events_until(&self, now: &Snapshot, second_ms: u64) -> Vec<Value> {
        KINDS
            .iter()
            .zip(self.0.iter().zip(now.0.iter()))
            .filter_map(|(kind, (before, after))| {
                let count = after.saturating_sub(*before);
                (count > 0).then(|| json!({"timestamp": second_ms, "type": kind, "count": count}))
            })
            .collect()
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `ms` as JavaScript's `Date.prototype.toISOString` writes it: `2026-12-05T00:09:46.123Z`.
pub fn iso(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day); Howard Hinnant's
/// `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_matches_javascript_to_iso_string() {
        assert_eq!(iso(0), "1970-01-01T00:00:00.000Z");
        // new Date(1764893386123).toISOString()
        assert_eq!(iso(1_764_893_386_123), "2025-12-05T00:09:46.123Z");
        // A leap day: new Date(Date.UTC(2024, 1, 29, 23, 59, 59, 999)).getTime()
        assert_eq!(iso(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
    }

    #[test]
    fn events_are_the_nonzero_deltas_with_reference_names() {
        let before = Snapshot([1, 0, 10, 10, 100, 100]);
        let after = Snapshot([3, 0, 10, 12, 100, 250]);
        let ev = before.events_until(&after, 5000);
        let kinds: Vec<(&str, u64)> = ev
            .iter()
            .map(|e| (e["type"].as_str().unwrap(), e["count"].as_u64().unwrap()))
            .collect();
        assert_eq!(
            kinds,
            [("rawConnection", 2), ("packetsOut", 2), ("bytesOut", 150)]
        );
        assert!(ev.iter().all(|e| e["timestamp"] == 5000));
    }
}
