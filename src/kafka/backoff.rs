//! Exponential backoff with jitter for reconnects and produce retries.

use std::time::Duration;

/// Delays grow `base * 2^n` up to `cap`; each is drawn from the upper half of that range
/// ("equal jitter"): never near zero, so a dead broker cannot cause a busy loop, and nodes
/// that lost the same broker do not come back in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Backoff {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        let half = exp / 2;
        let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(random() % jitter_ms.saturating_add(1))
    }

    /// After a success: start again from `base`.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

fn random() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::from(d.subsec_nanos()))
            .unwrap_or(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_stay_in_the_upper_half_and_cap() {
        let mut b = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        let mut prev_max = Duration::ZERO;
        for n in 0..30u32 {
            let exp = Duration::from_millis(200)
                .saturating_mul(1 << n.min(20))
                .min(Duration::from_secs(10));
            let d = b.next_delay();
            assert!(
                d >= exp / 2 && d <= exp,
                "attempt {n}: {d:?} not in [{:?}, {exp:?}]",
                exp / 2
            );
            assert!(exp >= prev_max);
            prev_max = exp;
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(200));
    }
}
