//! Token buckets per socket and event class. A socket's buckets are allocated on its first
//! limited event, so idle sockets cost nothing.

use std::time::Instant;

/// Event classes with their own budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Chat = 0,
    Typing = 1,
    Signal = 2,
    Collab = 3,
    Presence = 4,
    Rooms = 5,
    Other = 6,
}

pub const CLASSES: usize = 7;

/// Sustained rate (events per second) and burst per class.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub rate: [f32; CLASSES],
    pub burst: [f32; CLASSES],
}

impl Default for Limits {
    fn default() -> Self {
        // chat, typing, signal, collab, presence, rooms, other
        Limits {
            rate: [5.0, 4.0, 50.0, 60.0, 2.0, 10.0, 20.0],
            burst: [20.0, 10.0, 200.0, 120.0, 10.0, 50.0, 50.0],
        }
    }
}

impl Limits {
    /// Multiplies every rate and burst (the `--rate-limit-scale` setting).
    pub fn scaled(mut self, k: f32) -> Self {
        for i in 0..CLASSES {
            self.rate[i] *= k;
            self.burst[i] *= k;
        }
        self
    }
}

#[derive(Debug, Clone)]
pub struct Buckets {
    tokens: [f32; CLASSES],
    last: Instant,
    /// Refusals in the current minute; past the abuse threshold the socket is disconnected.
    pub refusals: u32,
    minute_start: Instant,
}

impl Buckets {
    pub fn new(limits: &Limits, now: Instant) -> Self {
        Buckets {
            tokens: limits.burst,
            last: now,
            refusals: 0,
            minute_start: now,
        }
    }

    /// Takes one token of `class`; `false` when the budget is spent.
    pub fn take(&mut self, class: Class, limits: &Limits, now: Instant) -> bool {
        let dt = now.duration_since(self.last).as_secs_f32();
        self.last = now;
        for i in 0..CLASSES {
            self.tokens[i] = (self.tokens[i] + dt * limits.rate[i]).min(limits.burst[i]);
        }
        let t = &mut self.tokens[class as usize];
        if *t >= 1.0 {
            *t -= 1.0;
            return true;
        }
        if now.duration_since(self.minute_start).as_secs() >= 60 {
            self.minute_start = now;
            self.refusals = 0;
        }
        self.refusals += 1;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_refill() {
        let limits = Limits {
            rate: [1.0; CLASSES],
            burst: [2.0; CLASSES],
        };
        let t = Instant::now();
        let mut b = Buckets::new(&limits, t);
        assert!(b.take(Class::Chat, &limits, t));
        assert!(b.take(Class::Chat, &limits, t));
        assert!(!b.take(Class::Chat, &limits, t));
        assert!(b.take(Class::Typing, &limits, t), "classes are separate");
        assert!(b.take(Class::Chat, &limits, t + Duration::from_millis(1100)));
        assert_eq!(b.refusals, 1);
    }

    #[test]
    fn classes_have_separate_budgets_and_refusals_are_counted() {
        let limits = Limits::default();
        let now = Instant::now();
        let mut b = Buckets::new(&limits, now);
        let typing_burst = limits.burst[Class::Typing as usize] as usize;
        for _ in 0..typing_burst {
            assert!(b.take(Class::Typing, &limits, now));
        }
        assert!(!b.take(Class::Typing, &limits, now), "typing budget spent");
        assert!(b.take(Class::Chat, &limits, now), "chat has its own budget");
        assert!(b.take(Class::Signal, &limits, now));
        assert_eq!(b.refusals, 1);
        let scaled = limits.scaled(2.0);
        let mut b = Buckets::new(&scaled, now);
        for _ in 0..2 * typing_burst {
            assert!(
                b.take(Class::Typing, &scaled, now),
                "the scale doubles the burst"
            );
        }
    }
}
