//! Answers remembered briefly, so a client that reconnects (or opens several tabs) does not
//! cost the app one session lookup each. Keyed by SHA-256 of the cookie's name and value, so the
//! cookie itself is not kept; bounded in size, oldest first out. No I/O.

use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// A cache key: the digest of one cookie.
pub type Key = [u8; 32];

/// The key of cookie `name=value`.
pub fn key(name: &str, value: &str) -> Key {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([0]);
    h.update(value.as_bytes());
    h.finalize().into()
}

/// Values by key until their expiry, at most `cap` of them.
pub struct Cache<V> {
    map: HashMap<Key, (Instant, V)>,
    /// Insertion order with each insertion's expiry: eviction and expiry start at the front.
    order: VecDeque<(Key, Instant)>,
    cap: usize,
}

impl<V> Cache<V> {
    pub fn new(cap: usize) -> Self {
        Cache {
            map: HashMap::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// The value for `key` if it has not expired at `now`.
    pub fn get(&self, key: &Key, now: Instant) -> Option<&V> {
        self.map
            .get(key)
            .filter(|(expires, _)| *expires > now)
            .map(|(_, v)| v)
    }

    /// Keeps `value` for `ttl`, first dropping what has expired and, at the bound, the oldest.
    pub fn put(&mut self, key: Key, value: V, ttl: Duration, now: Instant) {
        while let Some(&(k, at)) = self.order.front() {
            let full = self.map.len() >= self.cap && !self.map.contains_key(&key);
            if at > now && !full {
                break;
            }
            self.order.pop_front();
            // Only the entry this insertion made: a later put of the same key moved it on.
            if self.map.get(&k).is_some_and(|(e, _)| *e == at) {
                self.map.remove(&k);
            }
        }
        let expires = now + ttl;
        self.map.insert(key, (expires, value));
        self.order.push_back((key, expires));
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn keys_differ_by_name_and_value() {
        assert_ne!(key("a", "bc"), key("ab", "c"));
        assert_ne!(key("a", "b"), key("a", "c"));
        assert_eq!(key("a", "b"), key("a", "b"));
    }

    #[test]
    fn entries_expire() {
        let t = Instant::now();
        let mut c = Cache::new(10);
        c.put(key("n", "1"), 1, S, t);
        assert_eq!(c.get(&key("n", "1"), t), Some(&1));
        assert_eq!(c.get(&key("n", "1"), t + S), None);
        assert_eq!(c.get(&key("n", "2"), t), None);
        // Expired entries are dropped on the next insertion.
        c.put(key("n", "2"), 2, S, t + 2 * S);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn bounded_oldest_out() {
        let t = Instant::now();
        let mut c = Cache::new(3);
        for i in 0..5u8 {
            c.put(key("n", &i.to_string()), i, 60 * S, t);
        }
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(&key("n", "0"), t), None);
        assert_eq!(c.get(&key("n", "1"), t), None);
        assert_eq!(c.get(&key("n", "4"), t), Some(&4));
    }

    #[test]
    fn a_refreshed_key_is_not_evicted_by_its_old_slot() {
        let t = Instant::now();
        let mut c = Cache::new(2);
        c.put(key("n", "a"), 1, S, t);
        c.put(key("n", "a"), 2, 10 * S, t + S / 2);
        // The first slot of "a" expires and is dropped; the refreshed entry stays.
        c.put(key("n", "b"), 3, 10 * S, t + 2 * S);
        assert_eq!(c.get(&key("n", "a"), t + 2 * S), Some(&2));
        assert_eq!(c.get(&key("n", "b"), t + 2 * S), Some(&3));
    }
}
