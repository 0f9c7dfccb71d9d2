//! Client event id deduplication: an id seen from the same user within the window is a retry.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Dedup {
    seen: HashSet<String>,
    order: VecDeque<(Instant, String)>,
    window: Duration,
    cap: usize,
}

impl Dedup {
    pub fn new(window: Duration, cap: usize) -> Self {
        Dedup {
            seen: HashSet::new(),
            order: VecDeque::new(),
            window,
            cap,
        }
    }

    /// Forgets ids older than the window (also run periodically, so an idle server lets go).
    pub fn expire(&mut self, now: Instant) {
        while let Some((t, _)) = self.order.front() {
            if now.duration_since(*t) < self.window && self.order.len() < self.cap {
                break;
            }
            let (_, k) = self.order.pop_front().expect("front exists");
            self.seen.remove(&k);
        }
    }

    fn key(user: &str, id: &str) -> String {
        format!("{user}\u{0}{id}")
    }

    /// Whether `(user, id)` was recorded within the window.
    pub fn seen(&mut self, user: &str, id: &str, now: Instant) -> bool {
        self.expire(now);
        self.seen.contains(&Self::key(user, id))
    }

    /// Records `(user, id)` after the event it names took effect.
    pub fn record(&mut self, user: &str, id: &str, now: Instant) {
        self.expire(now);
        let key = Self::key(user, id);
        if self.seen.insert(key.clone()) {
            self.order.push_back((now, key));
        }
    }

    /// Records `(user, id)`; returns `false` when it was seen within the window (a duplicate).
    pub fn first_time(&mut self, user: &str, id: &str, now: Instant) -> bool {
        if self.seen(user, id, now) {
            return false;
        }
        self.record(user, id, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_within_window_are_duplicates() {
        let t = Instant::now();
        let mut d = Dedup::new(Duration::from_secs(60), 100);
        assert!(d.first_time("u", "e1", t));
        assert!(!d.first_time("u", "e1", t));
        assert!(d.first_time("v", "e1", t), "ids are per user");
        assert!(
            d.first_time("u", "e1", t + Duration::from_secs(61)),
            "window passed"
        );
    }
}
