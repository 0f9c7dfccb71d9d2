//! Deadlines without a runtime: a min-heap of `(Instant, seq)` entries. Cancelling is lazy:
//! owners keep a generation and ignore entries whose generation is stale. Heartbeats, the
//! one deadline every session re-arms every interval, are not here: they live in the
//! Engine's per-interval FIFO lists (src/server/engine/heartbeat.rs), O(1) per arm.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// What a deadline is for. Session entries carry the session's unique id and the timer
/// generation they were armed with.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    /// The WebSocket `conn` (unique id `conn_uid`) probing an upgrade of the session must
    /// have completed it by now.
    UpgradeTimeout {
        session: usize,
        uid: u64,
        conn: usize,
        conn_uid: u64,
    },
    /// Look for idle HTTP and lingering connections.
    Sweep,
    /// Resume accepting after running out of file descriptors.
    ResumeAccept,
    /// Give up flushing at shutdown.
    ShutdownDeadline,
    /// A user's presence grace period is over.
    PresenceGrace { user: String, gen: u64 },
    /// A typing indicator was not refreshed in time.
    TypingExpire {
        user: String,
        conversation: String,
        gen: u64,
    },
    /// A call invite was not answered in time.
    CallInviteTimeout {
        call: String,
        user: String,
        uid: u64,
    },
    /// Send the batched answer counts of a quiz question.
    QuizFlush { quiz: String },
    /// Send a class's changed viewer count.
    ClassFlush { class: String },
    /// Periodic expiry of the mailbox, recovery log, dedup and presence entries.
    Maintenance,
    /// A database session check got no answer in time.
    SessionCheck { id: u64 },
    /// Send `server_stats` to the connected Admin UIs (armed only while one is connected).
    AdminStats,
}

#[derive(Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, u64, Timer)>>,
    seq: u64,
}

impl Timers {
    pub fn at(&mut self, when: Instant, timer: Timer) {
        self.seq += 1;
        self.heap.push(Reverse((when, self.seq, timer)));
    }

    /// Time until the next deadline, rounded up to whole milliseconds so the poll never wakes
    /// early and spins; `None` when nothing is armed.
    pub fn next_timeout(&self, now: Instant) -> Option<Duration> {
        self.heap
            .peek()
            .map(|Reverse((when, _, _))| timeout_until(now, *when))
    }

    /// Pops one deadline that has passed.
    pub fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        match self.heap.peek() {
            Some(Reverse((when, _, _))) if *when <= now => {
                self.heap.pop().map(|Reverse((_, _, t))| t)
            }
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

/// The poll timeout that wakes at `when`: rounded up to whole milliseconds (the poll's
/// unit) so it never wakes early and spins.
pub fn timeout_until(now: Instant, when: Instant) -> Duration {
    let d = when.saturating_duration_since(now);
    Duration::from_millis(d.as_nanos().div_ceil(1_000_000) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_deadline_order_and_only_when_due() {
        let mut t = Timers::default();
        let now = Instant::now();
        t.at(now + Duration::from_millis(20), Timer::ResumeAccept);
        t.at(now + Duration::from_millis(10), Timer::ShutdownDeadline);
        assert_eq!(t.pop_due(now), None);
        assert_eq!(t.next_timeout(now), Some(Duration::from_millis(10)));
        let later = now + Duration::from_millis(25);
        assert_eq!(t.pop_due(later), Some(Timer::ShutdownDeadline));
        assert_eq!(t.pop_due(later), Some(Timer::ResumeAccept));
        assert!(t.is_empty());
    }

    #[test]
    fn timeout_rounds_up() {
        let mut t = Timers::default();
        let now = Instant::now();
        t.at(now + Duration::from_micros(1500), Timer::ResumeAccept);
        assert_eq!(t.next_timeout(now), Some(Duration::from_millis(2)));
    }
}
