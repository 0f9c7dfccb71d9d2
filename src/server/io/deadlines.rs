//! Phase deadlines of connections, one FIFO list per phase. Every phase that has a deadline
//! has one fixed duration, so each list is in deadline order and what expired is at the
//! fronts: a sweep costs what expired, not a walk over every connection (at 19,000
//! connections that walk cost ~0.8 ms of every second, one stall a second for whatever
//! arrived meanwhile). An entry is only a reminder: the connection's own `deadline` decides.

use crate::server::conn::Phase;
use std::collections::VecDeque;
use std::time::Instant;

/// (deadline, connection key, connection uid).
type Entry = (Instant, usize, u64);

#[derive(Debug, Default)]
pub struct Deadlines {
    /// Head, Body, Idle, Linger.
    lists: [VecDeque<Entry>; 4],
}

impl Deadlines {
    /// Remembers that connection `key` (`uid`) is due at `at` in `phase`.
    pub fn arm(&mut self, phase: Phase, at: Instant, key: usize, uid: u64) {
        if let Some(i) = index(phase) {
            self.lists[i].push_back((at, key, uid));
        }
    }

    /// Takes every entry due by `now` and hands it to `f` as (key, uid, deadline); the caller
    /// keeps those that are still the connection's current deadline.
    pub fn take_due(&mut self, now: Instant, mut f: impl FnMut(usize, u64, Instant)) {
        for list in &mut self.lists {
            while let Some(&(at, key, uid)) = list.front().filter(|e| e.0 <= now) {
                list.pop_front();
                f(key, uid, at);
            }
            if list.is_empty() && list.capacity() > 1024 {
                // A burst of connects is over: give the list's memory back.
                *list = VecDeque::new();
            }
        }
    }

    /// Entries held (stale ones included): bounded by the connections accepted within the
    /// longest phase timeout.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lists.iter().map(VecDeque::len).sum()
    }
}

fn index(phase: Phase) -> Option<usize> {
    match phase {
        Phase::Head => Some(0),
        Phase::Body => Some(1),
        Phase::Idle => Some(2),
        Phase::Linger => Some(3),
        Phase::Session => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn hands_out_what_is_due_in_order_per_phase_and_keeps_the_rest() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut d = Deadlines::default();
        d.arm(Phase::Head, t0 + s, 1, 10);
        d.arm(Phase::Head, t0 + 3 * s, 2, 20);
        d.arm(Phase::Linger, t0 + 2 * s, 3, 30);
        d.arm(Phase::Session, t0, 4, 40);
        assert_eq!(d.len(), 3, "a session has no deadline of its own");
        let mut got = Vec::new();
        d.take_due(t0 + 2 * s, |k, uid, at| got.push((k, uid, at)));
        assert_eq!(got, vec![(1, 10, t0 + s), (3, 30, t0 + 2 * s)]);
        assert_eq!(d.len(), 1);
        got.clear();
        d.take_due(t0 + 2 * s, |k, uid, at| got.push((k, uid, at)));
        assert!(got.is_empty(), "taken once");
        d.take_due(t0 + 3 * s, |k, uid, at| got.push((k, uid, at)));
        assert_eq!(got, vec![(2, 20, t0 + 3 * s)]);
    }
}
