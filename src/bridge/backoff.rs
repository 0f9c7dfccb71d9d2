//! Exponential backoff with jitter, for helper reconnects and retries (Redis and Kafka).

use std::time::Duration;

/// Doublings after which the ceiling stops growing even if `cap` is huge (keeps the
/// arithmetic far from overflow).
const MAX_DOUBLINGS: u32 = 20;

/// Delay ceilings grow `base * 2^n` up to `cap`; each delay is drawn uniformly from the upper
/// half of its ceiling ("equal jitter"): never near zero, so a dead server cannot cause a busy
/// loop, and nodes that lost the same server do not come back in lockstep.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    /// A backoff whose first delay is at most `base` and no delay more than `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Backoff {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The ceiling of the next delay: `base * 2^attempts`, at most `cap`.
    pub fn ceiling(&self) -> Duration {
        self.base
            .saturating_mul(1u32 << self.attempt.min(MAX_DOUBLINGS))
            .min(self.cap)
    }

    /// The delay before the next attempt; the one after will have twice the ceiling.
    pub fn next_delay(&mut self) -> Duration {
        let delay = jittered(self.ceiling(), random());
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// After a success: start again from `base`.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// A delay in `[ceiling / 2, ceiling]` picked by `r`.
fn jittered(ceiling: Duration, r: u64) -> Duration {
    let half = ceiling / 2;
    let spread_ms = u64::try_from((ceiling - half).as_millis()).unwrap_or(u64::MAX);
    half + Duration::from_millis(r % spread_ms.saturating_add(1))
}

fn random() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        // No OS randomness: the clock's nanoseconds still spread nodes apart.
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::from(d.subsec_nanos()))
            .unwrap_or(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn ceilings_double_from_base_up_to_the_cap() {
        let mut b = Backoff::new(100 * MS, 5000 * MS);
        let mut ceilings = Vec::new();
        for _ in 0..9 {
            ceilings.push(b.ceiling().as_millis());
            b.next_delay();
        }
        assert_eq!(
            ceilings,
            vec![100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]
        );
    }

    #[test]
    fn every_delay_lies_in_the_upper_half_of_its_ceiling() {
        let mut b = Backoff::new(200 * MS, 10_000 * MS);
        for n in 0..40 {
            let ceiling = b.ceiling();
            let d = b.next_delay();
            assert!(
                d >= ceiling / 2 && d <= ceiling,
                "attempt {n}: {d:?} outside [{:?}, {ceiling:?}]",
                ceiling / 2
            );
        }
    }

    #[test]
    fn jitter_spans_exactly_the_upper_half() {
        assert_eq!(jittered(1000 * MS, 0), 500 * MS);
        assert_eq!(jittered(1000 * MS, 500), 1000 * MS);
        assert_eq!(jittered(1000 * MS, 501), 500 * MS);
        assert_eq!(jittered(Duration::ZERO, u64::MAX), Duration::ZERO);
    }

    #[test]
    fn reset_starts_again_from_base() {
        let mut b = Backoff::new(100 * MS, 5000 * MS);
        for _ in 0..10 {
            b.next_delay();
        }
        assert_eq!(b.ceiling(), 5000 * MS);
        b.reset();
        assert_eq!(b.ceiling(), 100 * MS);
        assert!(b.next_delay() <= 100 * MS);
    }

    #[test]
    fn many_failures_neither_overflow_nor_pass_the_cap() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::MAX);
        for _ in 0..100 {
            b.next_delay();
        }
        assert_eq!(b.ceiling(), Duration::from_secs(1 << MAX_DOUBLINGS));
    }
}
