//! The offline notification mailbox: `notification:new` for a user with no connected socket
//! waits here (bounded per user, with a TTL) and is delivered on the next connect, oldest first,
//! exactly once.

use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Mailbox {
    per_user: HashMap<String, VecDeque<(Instant, Value)>>,
    cap: usize,
    ttl: Duration,
    /// Notifications dropped because a user's box was full or they expired.
    pub dropped: u64,
}

impl Mailbox {
    pub fn new(cap: usize, ttl: Duration) -> Self {
        Mailbox {
            per_user: HashMap::new(),
            cap,
            ttl,
            dropped: 0,
        }
    }

    /// Queues `data` for `user`, dropping the oldest when the box is full.
    pub fn push(&mut self, user: &str, data: Value, now: Instant) {
        if self.cap == 0 {
            self.dropped += 1;
            return;
        }
        let q = self.per_user.entry(user.to_owned()).or_default();
        while q.len() >= self.cap {
            q.pop_front();
            self.dropped += 1;
        }
        q.push_back((now + self.ttl, data));
    }

    /// Takes everything still valid for `user`, oldest first.
    pub fn take(&mut self, user: &str, now: Instant) -> Vec<Value> {
        self.take_queued_before(user, None, now)
    }

    /// As [`Mailbox::take`], but only what was queued before `cutoff`; the rest is dropped
    /// (a recovered socket gets those as replayed broadcasts instead).
    pub fn take_before(&mut self, user: &str, cutoff: Instant, now: Instant) -> Vec<Value> {
        self.take_queued_before(user, Some(cutoff), now)
    }

    /// Takes `user`'s valid notifications, only those queued before `cutoff` when given.
    pub fn take_queued_before(
        &mut self,
        user: &str,
        cutoff: Option<Instant>,
        now: Instant,
    ) -> Vec<Value> {
        let ttl = self.ttl;
        let Some(q) = self.per_user.remove(user) else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(q.len());
        for (expires, data) in q {
            if expires <= now {
                self.dropped += 1;
            } else if cutoff
                .is_none_or(|c| expires.checked_sub(ttl).is_some_and(|queued| queued < c))
            {
                out.push(data);
            }
        }
        out
    }

    /// Drops expired notifications of every user.
    pub fn expire(&mut self, now: Instant) {
        let mut dropped = 0;
        self.per_user.retain(|_, q| {
            let before = q.len();
            q.retain(|(exp, _)| *exp > now);
            dropped += (before - q.len()) as u64;
            !q.is_empty()
        });
        self.dropped += dropped;
    }

    pub fn queued(&self) -> usize {
        self.per_user.values().map(VecDeque::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bounded_oldest_first_once() {
        let now = Instant::now();
        let mut m = Mailbox::new(2, Duration::from_secs(60));
        m.push("u", json!(1), now);
        m.push("u", json!(2), now);
        m.push("u", json!(3), now);
        assert_eq!(m.dropped, 1);
        assert_eq!(m.take("u", now), vec![json!(2), json!(3)]);
        assert!(m.take("u", now).is_empty(), "delivered exactly once");
    }

    #[test]
    fn take_before_keeps_only_older_entries() {
        let t0 = Instant::now();
        let mut m = Mailbox::new(10, Duration::from_secs(60));
        m.push("u", json!(1), t0);
        m.push("u", json!(2), t0 + Duration::from_secs(5));
        assert_eq!(
            m.take_before(
                "u",
                t0 + Duration::from_secs(1),
                t0 + Duration::from_secs(6)
            ),
            vec![json!(1)]
        );
        assert_eq!(m.queued(), 0);
    }

    #[test]
    fn expired_are_dropped() {
        let now = Instant::now();
        let mut m = Mailbox::new(10, Duration::from_secs(1));
        m.push("u", json!(1), now);
        m.expire(now + Duration::from_secs(2));
        assert_eq!(m.queued(), 0);
        assert_eq!(m.dropped, 1);
    }
}
