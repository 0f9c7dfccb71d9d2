//! State shared by the handle and the two helper threads: counters, the stop flag, the event
//! channel with its wake-up rule, and the connected/disconnected transitions.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crossbeam_channel::{SendTimeoutError, Sender};

use super::{RedisEvent, RedisStatus, MAX_BACKOFF};

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
    waker: Arc<mio::Waker>,
    events: Sender<RedisEvent>,
    /// Messages are sent only while fewer than this many events wait.
    message_room: usize,
    /// Set by shutdown/drop; both threads poll it.
    pub stop: AtomicBool,
    /// A wake is outstanding: the loop has not yet seen the channel empty since it.
    pub wake_pending: AtomicBool,
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
    pub errors: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// Taken only by the helper threads, so the loop never waits on it.
    links: Mutex<Links>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks leaves plain data behind; keep going with it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub fn new(
        waker: Arc<mio::Waker>,
        events: Sender<RedisEvent>,
        queue: usize,
        has_pubsub: bool,
    ) -> Self {
        let cap = events.capacity().unwrap_or(super::EVENT_CAPACITY);
        Shared {
            waker,
            message_room: cap - cap / EVENT_RESERVE_DIV,
            events,
            stop: AtomicBool::new(false),
            wake_pending: AtomicBool::new(false),
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
            errors: AtomicU64::new(0),
            last_error: Mutex::new(None),
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
        self.errors.fetch_add(1, Ordering::Relaxed);
        *lock(&self.last_error) = Some(err.into());
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
            errors: self.errors.load(Ordering::Relaxed),
            last_error: lock(&self.last_error).clone(),
            queued: self.queued.load(Ordering::Relaxed),
        }
    }

    /// Wakes the loop unless a wake is already outstanding.
    fn notify(&self) {
        if !self.wake_pending.swap(true, Ordering::SeqCst) {
            if let Err(e) = self.waker.wake() {
                log::debug!("redis: waking the loop failed: {e}");
            }
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
                self.notify();
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
                Ok(()) => {
                    self.notify();
                    return true;
                }
                Err(SendTimeoutError::Timeout(back)) => {
                    if self.stopping() {
                        return false;
                    }
                    ev = back;
                }
                Err(SendTimeoutError::Disconnected(_)) => return false,
            }
        }
    }

    /// Non-blocking variant for shutdown, when the loop may no longer be reading.
    pub fn try_send_event(&self, ev: RedisEvent) {
        if self.events.try_send(ev).is_ok() {
            self.notify();
        }
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

/// Exponential backoff with jitter: 100 ms, 200 ms, ... up to [`MAX_BACKOFF`], each delay
/// drawn uniformly from its upper half so reconnecting nodes spread out.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    attempt: u32,
}

impl Backoff {
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn next_delay(&mut self) -> Duration {
        let base = Duration::from_millis(100)
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(MAX_BACKOFF);
        self.attempt = self.attempt.saturating_add(1);
        let half = base / 2;
        let r = getrandom::u64().unwrap_or(0);
        let extra_ms = r % (half.as_millis() as u64 + 1);
        half + Duration::from_millis(extra_ms)
    }
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

    #[test]
    fn backoff_grows_to_the_cap_with_jitter_in_the_upper_half() {
        let mut b = Backoff::default();
        let d0 = b.next_delay();
        assert!(d0 >= Duration::from_millis(50) && d0 <= Duration::from_millis(100));
        for _ in 0..20 {
            let d = b.next_delay();
            assert!(d <= MAX_BACKOFF);
        }
        let d = b.next_delay();
        assert!(d >= MAX_BACKOFF / 2);
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
