//! What a run measures: a log-linear latency histogram, the book of published messages per
//! delivery group (for fanout completion and losses), and the per-client sequence check.

/// Sub-buckets per power of two: 128 keeps every recorded value within 0.8 %.
const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS;
/// Enough buckets for any `u64` nanosecond value.
const BUCKETS: usize = ((64 - SUB_BITS as usize) + 1) * SUB as usize;

/// A histogram of nanosecond values with bounded relative error and fixed memory (an HDR
/// histogram in miniature): recording is an index computation and an increment.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    count: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            count: 0,
            max: 0,
        }
    }
}

fn bucket(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros();
    let shift = msb - SUB_BITS;
    ((shift as u64 + 1) * SUB + ((v >> shift) - SUB)) as usize
}

/// The middle of a bucket's range (exact below 256).
fn bucket_value(i: usize) -> u64 {
    let i = i as u64;
    if i < 2 * SUB {
        return i;
    }
    let shift = i / SUB - 1;
    let low = (SUB + i % SUB) << shift;
    low + (1u64 << shift) / 2
}

impl Histogram {
    pub fn record(&mut self, v: u64) {
        self.counts[bucket(v)] += 1;
        self.count += 1;
        self.max = self.max.max(v);
    }

    /// Forgets every value (a new report interval).
    pub fn clear(&mut self) {
        self.counts.fill(0);
        self.count = 0;
        self.max = 0;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0..=1); 0 for an empty histogram. The maximum is exact.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        if rank == self.count {
            return self.max;
        }
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bucket_value(i).min(self.max);
            }
        }
        self.max
    }

    /// `{"p50":..,"p99":..,"p999":..,"max":..,"count":..}` in milliseconds.
    pub fn summary_ms(&self) -> serde_json::Value {
        let ms = |ns: u64| (ns as f64 / 1e3).round() / 1e3;
        serde_json::json!({
            "p50": ms(self.quantile(0.50)),
            "p99": ms(self.quantile(0.99)),
            "p999": ms(self.quantile(0.999)),
            "max": ms(self.max()),
            "count": self.count,
        })
    }
}

/// One published message of a delivery group.
#[derive(Clone, Copy, Debug)]
pub struct MsgStat {
    /// Publish time (the payload's `t`).
    pub t: u64,
    /// Members that were connected when it was published (and did not leave on purpose).
    pub expected: u32,
    /// Distinct members that received it.
    pub received: u32,
    /// Time of the latest delivery.
    pub last: u64,
}

/// How one received `seq` relates to what the client saw before.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    /// The next one, or the first one expected.
    InOrder,
    /// Later than the next one: this many were skipped (they may still come, out of order).
    Gap(u64),
    /// One that had been skipped arrived late.
    OutOfOrder,
    /// Seen before.
    Duplicate,
    /// Published before this client joined; not expected, ignored.
    Early,
}

/// Skipped seqs remembered per client to tell "late" from "duplicate"; beyond this a late
/// arrival is counted as a duplicate (a client this far behind has failed anyway).
const MAX_MISSING: usize = 4096;

/// The per-client check that `seq` increases by exactly 1.
#[derive(Default, Debug)]
pub struct SeqTrack {
    /// The first seq this client should get (published after it joined).
    pub first: u64,
    /// The next seq expected; `None` before the first delivery.
    pub next: Option<u64>,
    missing: Vec<u64>,
}

impl SeqTrack {
    pub fn see(&mut self, seq: u64) -> Seen {
        let next = self.next.unwrap_or(self.first);
        if seq < self.first {
            return Seen::Early;
        }
        if seq == next {
            self.next = Some(seq + 1);
            return Seen::InOrder;
        }
        if seq > next {
            let room = MAX_MISSING.saturating_sub(self.missing.len());
            self.missing.extend((next..seq).take(room));
            self.next = Some(seq + 1);
            return Seen::Gap(seq - next);
        }
        if let Some(i) = self.missing.iter().position(|&m| m == seq) {
            self.missing.swap_remove(i);
            Seen::OutOfOrder
        } else {
            Seen::Duplicate
        }
    }
}

/// Run-wide delivery counters.
#[derive(Default)]
pub struct Totals {
    pub latency: Histogram,
    pub fanout: Histogram,
    /// Distinct deliveries of expected messages.
    pub deliveries: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    /// Jumps forward in a client's sequence (each may be filled later, out of order).
    pub gaps: u64,
    /// Deliveries of messages published before the client joined (churn only).
    pub early: u64,
    /// Payloads without `seq`/`t`, or with a seq never published.
    pub malformed: u64,
    /// chat-rooms deliveries of another room's message.
    pub wrong_room: u64,
    /// Messages skipped at the start by a client that joined while publishing (see
    /// `Ctx::lenient_first`).
    pub join_skips: u64,
    pub completed_msgs: u64,
    pub first_publish: Option<u64>,
    pub last_delivery: u64,
    /// Received WebSocket bytes of bench messages (frame header included), for the size.
    pub msg_frame_bytes: u64,
}

impl Totals {
    /// `m` has just reached its expected deliveries (or expects none).
    pub fn complete(&mut self, m: &MsgStat) {
        self.completed_msgs += 1;
        if m.expected > 0 {
            self.fanout.record(m.last.saturating_sub(m.t));
        }
    }

    /// One member that `m` expected will not get it, and that is no loss (it left on
    /// purpose, or joined late): `m` may be complete now.
    pub fn unexpect(&mut self, m: &mut MsgStat) {
        if m.expected == 0 || m.received >= m.expected {
            return;
        }
        m.expected -= 1;
        if m.received == m.expected {
            self.complete(m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_stay_within_one_percent() {
        let mut h = Histogram::default();
        for v in 1..=100_000u64 {
            h.record(v * 1000);
        }
        for (q, want) in [
            (0.5, 50_000_000.0),
            (0.99, 99_000_000.0),
            (0.999, 99_900_000.0),
        ] {
            let got = h.quantile(q) as f64;
            assert!((got - want).abs() / want < 0.01, "q{q}: {got} vs {want}");
        }
        assert_eq!(h.max(), 100_000_000);
        assert_eq!(h.quantile(1.0), 100_000_000);
        assert_eq!(Histogram::default().quantile(0.5), 0);
        for v in [0, 1, 127, 128, 255, 256, 1 << 40, u64::MAX] {
            assert!(bucket(v) < BUCKETS);
            let mid = bucket_value(bucket(v)) as f64;
            assert!(v < 256 && mid == v as f64 || (mid - v as f64).abs() / (v as f64) < 0.01);
        }
    }

    #[test]
    fn seq_track_tells_gaps_late_and_duplicates() {
        let mut t = SeqTrack {
            first: 3,
            ..SeqTrack::default()
        };
        assert_eq!(t.see(2), Seen::Early);
        assert_eq!(t.see(3), Seen::InOrder);
        assert_eq!(t.see(6), Seen::Gap(2));
        assert_eq!(t.see(4), Seen::OutOfOrder);
        assert_eq!(t.see(4), Seen::Duplicate);
        assert_eq!(t.see(6), Seen::Duplicate);
        assert_eq!(t.see(5), Seen::OutOfOrder);
        assert_eq!(t.see(7), Seen::InOrder);
        let mut late_first = SeqTrack::default();
        assert_eq!(late_first.see(2), Seen::Gap(2));
    }
}
