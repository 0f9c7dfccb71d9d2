//! Heartbeat deadlines as two per-interval lists instead of heap timers, and the connect
//! timeout (also one fixed duration for every session) as a third.
//!
//! Every session's next ping is `pingInterval` after its open or its last pong, and its pong
//! is due `pingTimeout` after that ping's scheduled time. Both intervals are the same for
//! every session and the times they are added to only move forward, so each list is in
//! deadline order by construction: a FIFO. Arming is a push at the back, firing a pop at
//! the front: O(1) per session per interval, no heap sift, no allocation once the rings have
//! grown (a heap of 2 x N fat `Timer` entries cost ~log2(2N) moves of ~90 bytes per arm).
//!
//! Time is cut into ticks (`pingInterval / 50`, 1 to 100 ms): a ping goes out at the start
//! of the tick it falls in (up to one tick early) and a deadline is checked at the end of
//! its tick (up to one tick late). So at 25 s and 760 pings/s the loop wakes ten times a
//! second for ~76 pings at once, their pongs come back together, and one `epoll_wait`
//! serves many of them, instead of one wakeup per ping and one per (mostly stale) deadline.
//! Both slacks are far inside what Engine.IO allows (the client waits interval + timeout).
//!
//! Cancelling is lazy, as with the heap: an entry names the session key and the generation
//! it was armed with; a session that ponged, closed or was replaced by another in the same
//! slot has moved on to another generation and the entry is skipped when it comes up.
//! Generations come from one counter, so a stale entry cannot match a reused slot.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// One armed deadline: 16 bytes (times are milliseconds since the lists' epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    at_ms: u64,
    session: u32,
    gen: u32,
}

/// What came due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    /// Session `session` (armed with `gen`) should be pinged now.
    Ping { session: usize, gen: u32 },
    /// The pong of session `session`'s ping `gen` did not come in time.
    PongDeadline { session: usize, gen: u32 },
    /// Session `session` (whose uid's low 32 bits are `gen`) must have connected a namespace
    /// by now.
    ConnectTimeout { session: usize, gen: u32 },
}

/// The two lists and the generation counter.
#[derive(Debug)]
pub struct Heartbeats {
    epoch: Instant,
    /// Milliseconds per tick.
    tick: u64,
    interval: Duration,
    timeout: Duration,
    pings: VecDeque<Entry>,
    deadlines: VecDeque<Entry>,
    connect_timeout: Duration,
    connects: VecDeque<Entry>,
    next_gen: u32,
}

impl Heartbeats {
    pub fn new(interval: Duration, timeout: Duration, connect_timeout: Duration) -> Self {
        Heartbeats {
            connect_timeout,
            connects: VecDeque::new(),
            epoch: Instant::now(),
            tick: (interval.as_millis() as u64 / 50).clamp(1, 100),
            interval,
            timeout,
            pings: VecDeque::new(),
            deadlines: VecDeque::new(),
            next_gen: 0,
        }
    }

    /// A fresh generation (wraps after 2^32 arms; a stale entry lives at most one interval
    /// plus one timeout, far less than a wrap takes even at a million sessions).
    pub fn gen(&mut self) -> u32 {
        self.next_gen = self.next_gen.wrapping_add(1);
        self.next_gen
    }

    fn ms(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_millis() as u64
    }

    fn instant(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }

    /// Arms the next ping of `session` one interval after `from` (its open or its pong);
    /// returns the pong deadline of that ping (for [`Heartbeats::passed`]).
    pub fn arm_ping(&mut self, session: usize, gen: u32, from: Instant) -> u64 {
        let at_ms = self.ms(from + self.interval);
        let entry = Entry {
            at_ms,
            session: session as u32,
            gen,
        };
        self.pings.push_back(entry);
        at_ms + self.timeout.as_millis() as u64
    }

    /// Arms the connect timeout of a session opened at `opened`; `gen` identifies the
    /// session (the low bits of its uid: a reused slot has another).
    pub fn arm_connect(&mut self, session: usize, gen: u32, opened: Instant) {
        let at_ms = self.ms(opened + self.connect_timeout);
        self.connects.push_back(Entry {
            at_ms,
            session: session as u32,
            gen,
        });
    }

    /// Whether a deadline [`Heartbeats::arm_ping`] returned has passed at `now` (exact to
    /// the millisecond, whatever the ticks).
    pub fn passed(&self, deadline_ms: u64, now: Instant) -> bool {
        self.ms(now) >= deadline_ms
    }

    /// Arms the pong deadline of a ping scheduled at `scheduled`: one timeout after it.
    fn arm_deadline(&mut self, session: u32, gen: u32, scheduled_ms: u64) {
        let at_ms = scheduled_ms + self.timeout.as_millis() as u64;
        self.deadlines.push_back(Entry {
            at_ms,
            session,
            gen,
        });
    }

    /// When the loop should next look: the start of the first ping's tick or the end of
    /// the first deadline's, whichever is earlier; `None` when nothing is armed.
    pub fn next(&self) -> Option<Instant> {
        let t = self.tick;
        let a = self.pings.front().map(|e| e.at_ms / t * t);
        let b = self.deadlines.front().map(|e| e.at_ms.div_ceil(t) * t);
        let c = self.connects.front().map(|e| e.at_ms.div_ceil(t) * t);
        a.into_iter()
            .chain(b)
            .chain(c)
            .min()
            .map(|ms| self.instant(ms))
    }

    /// Pops one beat that is due at `now`: a ping whose tick has begun, a deadline that has
    /// passed. A ping that comes due arms its pong deadline at once (from its scheduled
    /// time, so the deadline does not depend on the loop's delay); `current(session, gen)`
    /// says whether the entry is still the session's, and stale entries are dropped without
    /// being returned.
    pub fn pop_due(&mut self, now: Instant, mut current: impl FnMut(Beat) -> bool) -> Option<Beat> {
        let now_ms = self.ms(now);
        let deadline = |session, gen| Beat::PongDeadline { session, gen };
        if let Some(beat) = pop_passed(&mut self.deadlines, now_ms, deadline, &mut current) {
            return Some(beat);
        }
        let connect = |session, gen| Beat::ConnectTimeout { session, gen };
        if let Some(beat) = pop_passed(&mut self.connects, now_ms, connect, &mut current) {
            return Some(beat);
        }
        let tick_end = (now_ms / self.tick + 1) * self.tick;
        while let Some(e) = self.pings.front().copied().filter(|e| e.at_ms < tick_end) {
            self.pings.pop_front();
            let beat = Beat::Ping {
                session: e.session as usize,
                gen: e.gen,
            };
            if current(beat) {
                self.arm_deadline(e.session, e.gen, e.at_ms);
                return Some(beat);
            }
        }
        self.shrink_idle();
        None
    }

    /// Gives back ring capacity after a crowd left (the rings grow to the peak of sessions).
    fn shrink_idle(&mut self) {
        for q in [&mut self.pings, &mut self.deadlines, &mut self.connects] {
            if q.capacity() > 1024 && q.len() < q.capacity() / 4 {
                q.shrink_to(q.len() * 2);
            }
        }
    }

    /// Armed entries (stale ones included).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.pings.len() + self.deadlines.len() + self.connects.len()
    }
}

/// Pops the entries of `q` whose time has passed by `now_ms` until one is still current.
fn pop_passed(
    q: &mut VecDeque<Entry>,
    now_ms: u64,
    beat: impl Fn(usize, u32) -> Beat,
    current: &mut impl FnMut(Beat) -> bool,
) -> Option<Beat> {
    while let Some(e) = q.front().copied().filter(|e| e.at_ms <= now_ms) {
        q.pop_front();
        let b = beat(e.session as usize, e.gen);
        if current(b) {
            return Some(b);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const I: Duration = Duration::from_millis(300);
    const T: Duration = Duration::from_millis(200);
    const C: Duration = Duration::from_millis(1000);

    fn all(_: Beat) -> bool {
        true
    }

    #[test]
    fn ping_then_deadline_from_the_scheduled_time() {
        let mut h = Heartbeats::new(I, T, C);
        let t0 = h.epoch;
        let g = h.gen();
        let deadline = h.arm_ping(7, g, t0);
        assert_eq!(deadline, (I + T).as_millis() as u64);
        assert!(!h.passed(deadline, t0 + I + T - Duration::from_millis(1)));
        assert!(h.passed(deadline, t0 + I + T));
        // 300 ms / 50: 6 ms ticks; 300 is a tick boundary, so the ping's tick starts then.
        assert_eq!(h.next(), Some(t0 + I));
        assert_eq!(h.pop_due(t0 + I - Duration::from_millis(1), all), None);
        // Fired late: the deadline still counts from the scheduled time.
        let late = t0 + I + Duration::from_millis(50);
        let beat = h.pop_due(late, all);
        assert_eq!(beat, Some(Beat::Ping { session: 7, gen: g }));
        // The deadline (500 ms) is looked at when its 6 ms tick ends: 504 ms.
        assert_eq!(h.next(), Some(t0 + Duration::from_millis(504)));
        let beat = h.pop_due(t0 + I + T, all);
        assert_eq!(beat, Some(Beat::PongDeadline { session: 7, gen: g }));
        assert_eq!(h.len(), 0);
    }

    #[test]
    fn pings_go_at_the_start_of_their_tick_and_deadlines_at_its_end() {
        let mut h = Heartbeats::new(I, T, C);
        let t0 = h.epoch;
        let g = h.gen();
        // Due at 305 ms, in the tick [300, 306): sent from 300 ms on.
        h.arm_ping(1, g, t0 + Duration::from_millis(5));
        assert_eq!(h.next(), Some(t0 + Duration::from_millis(300)));
        let ms = |x| t0 + Duration::from_millis(x);
        assert_eq!(h.pop_due(ms(299), all), None);
        assert_eq!(
            h.pop_due(ms(300), all),
            Some(Beat::Ping { session: 1, gen: g })
        );
        // Its deadline, 505 ms, is looked at when its tick ends (510 ms), and not before 505.
        assert_eq!(h.next(), Some(ms(510)));
        assert_eq!(h.pop_due(ms(504), all), None);
        let beat = h.pop_due(ms(505), all);
        assert_eq!(beat, Some(Beat::PongDeadline { session: 1, gen: g }));
    }

    #[test]
    fn stale_entries_are_skipped() {
        let mut h = Heartbeats::new(I, T, C);
        let t0 = h.epoch;
        let (g1, g2) = (h.gen(), h.gen());
        h.arm_ping(1, g1, t0);
        h.arm_ping(2, g2, t0);
        // Session 1 moved on (ponged, closed or replaced): only session 2 is pinged.
        let beat = h.pop_due(t0 + I, |b| {
            b == Beat::Ping {
                session: 2,
                gen: g2,
            }
        });
        assert_eq!(
            beat,
            Some(Beat::Ping {
                session: 2,
                gen: g2
            })
        );
        assert_eq!(
            h.pop_due(t0 + I, |b| b
                == Beat::Ping {
                    session: 2,
                    gen: g2
                }),
            None
        );
        // Session 2 ponged (new generation): its deadline is stale too.
        assert_eq!(h.pop_due(t0 + I + T, |_| false), None);
        assert_eq!(h.len(), 0);
    }

    #[test]
    fn connect_timeouts_fire_after_their_duration() {
        let mut h = Heartbeats::new(I, T, C);
        let t0 = h.epoch;
        h.arm_connect(3, 99, t0);
        assert_eq!(h.pop_due(t0 + C - Duration::from_millis(1), all), None);
        let beat = h.pop_due(t0 + C, all);
        assert_eq!(
            beat,
            Some(Beat::ConnectTimeout {
                session: 3,
                gen: 99
            })
        );
        assert_eq!(h.len(), 0);
    }

    #[test]
    fn fifo_order_is_deadline_order() {
        let mut h = Heartbeats::new(I, T, C);
        let t0 = h.epoch;
        let gens: Vec<u32> = (0..5).map(|_| h.gen()).collect();
        for (i, &g) in gens.iter().enumerate() {
            h.arm_ping(i, g, t0 + Duration::from_millis(i as u64 * 10));
        }
        let end = t0 + I + Duration::from_millis(100);
        let mut fired = Vec::new();
        while let Some(Beat::Ping { session, .. }) = h.pop_due(end, all) {
            fired.push(session);
        }
        assert_eq!(fired, vec![0, 1, 2, 3, 4]);
    }
}
