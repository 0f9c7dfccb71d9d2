//! State shared by the handle and the two helper threads: counters, the stop flag, the
//! sending end of the event bridge, and the connected/disconnected transitions.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::{RedisEvent, RedisStatus, MAX_BACKOFF};
use crate::bridge::{self, ErrorLog, EventSender, SendError};

/// First reconnect delay ceiling; doubles up to [`MAX_BACKOFF`].
const BACKOFF_BASE: Duration = Duration::from_millis(100);

/// Part of the event channel kept free of pub/sub messages, so replies and connection events
/// still fit when the loop falls behind on messages.
const EVENT_RESERVE_DIV: usize = 8;

/// Which connection a transition is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    Command,
    PubSub,
}

/// Up/down per connection (`None` before the first attempt) and what the loop was last told.
#[derive(Debug, Default)]
struct Links {
    command: Option<bool>,
    pubsub: Option<bool>,
    told: Option<bool>,
}

pub(crate) struct Shared {
    /// To the loop: replies wait for room, messages are dropped when the loop is behind.
    events: EventSender<RedisEvent>,
    /// Messages are sent only while fewer than this many events wait.
    message_room: usize,
    /// Set by shutdown/drop; both threads poll it.
    pub stop: AtomicBool,
    queue: usize,
    queued: AtomicUsize,
    has_pubsub: bool,
    connected: AtomicBool,
    pub writes: AtomicU64,
    pub publishes: AtomicU64,
    pub queries: AtomicU64,
    pub messages: AtomicU64,
    pub dropped: AtomicU64,
    pub dropped_messages: AtomicU64,
    errors: ErrorLog,
    /// Taken only by the helper threads, so the loop never waits on it.
    links: Mutex<Links>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks leaves plain data behind; keep going with it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub fn new(events: EventSender<RedisEvent>, queue: usize, has_pubsub: bool) -> Self {
        let cap = events.capacity();
        Shared {
            message_room: cap - cap / EVENT_RESERVE_DIV,
            events,
            stop: AtomicBool::new(false),
            queue,
            queued: AtomicUsize::new(0),
            has_pubsub,
            connected: AtomicBool::new(false),
            writes: AtomicU64::new(0),
            publishes: AtomicU64::new(0),
            queries: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            dropped_messages: AtomicU64::new(0),
            errors: ErrorLog::default(),
            links: Mutex::new(Links::default()),
        }
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Takes a queue slot for a new job; `false` (and a counted drop) when the queue is full.
    pub fn reserve(&self) -> bool {
        let prev = self.queued.fetch_add(1, Ordering::AcqRel);
        if prev >= self.queue {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Frees `n` queue slots (jobs done or dropped).
    pub fn release(&self, n: usize) {
        self.queued.fetch_sub(n, Ordering::AcqRel);
    }

    pub fn record_error(&self, err: impl Into<String>) {
        self.errors.record(err);
    }

    pub fn status(&self) -> RedisStatus {
        RedisStatus {
            connected: self.connected.load(Ordering::SeqCst),
            writes: self.writes.load(Ordering::Relaxed),
            publishes: self.publishes.load(Ordering::Relaxed),
            queries: self.queries.load(Ordering::Relaxed),
            messages: self.messages.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            dropped_messages: self.dropped_messages.load(Ordering::Relaxed),
            errors: self.errors.count(),
            last_error: self.errors.last(),
            queued: self.queued.load(Ordering::Relaxed),
        }
    }

    /// A pub/sub message: dropped (and counted) when the loop is behind.
    pub fn send_message(&self, channel: Vec<u8>, payload: Vec<u8>) {
        if self.events.len() >= self.message_room {
            self.dropped_messages.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match self
            .events
            .try_send(RedisEvent::Message { channel, payload })
        {
            Ok(()) => {
                self.messages.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                self.dropped_messages.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A reply or connection event: waits for room (this is a helper thread, never the loop),
    /// giving up only when stopping or when the handle is gone. Returns whether it was sent.
    pub fn send_event(&self, mut ev: RedisEvent) -> bool {
        loop {
            match self.events.send_timeout(ev, Duration::from_millis(50)) {
                Ok(()) => return true,
                Err(SendError::Timeout(back)) => {
                    if self.stopping() {
                        return false;
                    }
                    ev = back;
                }
                Err(SendError::Closed(_)) => return false,
            }
        }
    }

    /// Non-blocking variant for shutdown, when the loop may no longer be reading.
    pub fn try_send_event(&self, ev: RedisEvent) {
        let _ = self.events.try_send(ev);
    }

    /// Records a connection going up or down and tells the loop when the overall state
    /// changes: `Connected` once every connection is up, `Disconnected` as soon as one is
    /// down. Logs each transition once.
    pub fn set_link(&self, link: Link, up: bool, reason: &str) {
        let mut links = lock(&self.links);
        match link {
            Link::Command => links.command = Some(up),
            Link::PubSub => links.pubsub = Some(up),
        }
        let pubsub_up = if self.has_pubsub {
            links.pubsub
        } else {
            Some(true)
        };
        let overall = match (links.command, pubsub_up) {
            (Some(true), Some(true)) => Some(true),
            (Some(false), _) | (_, Some(false)) => Some(false),
            _ => None,
        };
        let Some(overall) = overall else { return };
        if links.told == Some(overall) {
            return;
        }
        links.told = Some(overall);
        self.connected.store(overall, Ordering::SeqCst);
        let ev = if overall {
            log::info!("redis: connected");
            RedisEvent::Connected
        } else {
            log::warn!("redis: unavailable ({reason}); retrying in the background");
            RedisEvent::Disconnected(reason.to_string())
        };
        // Sent while holding the lock so the two threads' transitions reach the loop in
        // the order they were decided; only helper threads take this lock.
        self.send_event(ev);
    }
}

/// The reconnect backoff of both threads: 100 ms doubling up to [`MAX_BACKOFF`], jittered.
pub(crate) fn backoff() -> bridge::Backoff {
    bridge::Backoff::new(BACKOFF_BASE, MAX_BACKOFF)
}

/// Sleeps `total` in short steps, returning early (with `true`) when stopping.
pub(crate) fn sleep_unless_stopping(shared: &Shared, total: Duration) -> bool {
    let step = Duration::from_millis(50);
    let deadline = std::time::Instant::now() + total;
    loop {
        if shared.stopping() {
            return true;
        }
        let now = std::time::Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep(step.min(deadline - now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn shared(capacity: usize) -> (Shared, bridge::EventReceiver<RedisEvent>, mio::Poll) {
        let poll = mio::Poll::new().expect("poll");
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(0)).expect("waker"));
        let (tx, rx) = bridge::channel(capacity, waker);
        (Shared::new(tx, 10, true), rx, poll)
    }

    fn message(n: u8) -> (Vec<u8>, Vec<u8>) {
        (b"ch".to_vec(), vec![n])
    }

    #[test]
    fn messages_are_dropped_and_counted_past_seven_eighths_but_events_still_fit() {
        let (s, rx, _poll) = shared(16);
        for n in 0..20 {
            let (c, p) = message(n);
            s.send_message(c, p);
        }
        let st = s.status();
        assert_eq!((st.messages, st.dropped_messages), (14, 6));
        // The reserved eighth still takes replies and connection events.
        assert!(s.send_event(RedisEvent::Reply {
            id: 1,
            result: Ok(vec![])
        }));
        assert!(s.send_event(RedisEvent::Connected));
        let mut got = Vec::new();
        while let Some(ev) = rx.try_recv() {
            got.push(ev);
        }
        assert_eq!(got.len(), 16);
        assert!(matches!(got[14], RedisEvent::Reply { id: 1, .. }));
        assert!(matches!(got[15], RedisEvent::Connected));
    }

    #[test]
    fn a_blocked_event_send_gives_up_when_stopping() {
        let (s, _rx, _poll) = shared(1);
        assert!(s.send_event(RedisEvent::Connected));
        // Full, and nobody drains: the helper waits until stop, then gives the event up.
        s.stop.store(true, Ordering::SeqCst);
        assert!(!s.send_event(RedisEvent::Disconnected("x".into())));
    }

    #[test]
    fn event_sends_fail_once_the_handle_is_gone() {
        let (s, rx, _poll) = shared(4);
        drop(rx);
        assert!(!s.send_event(RedisEvent::Connected));
    }
}
