//! The one bridge between a helper thread (Redis, Kafka) and the event loop.
//!
//! A helper owns blocking or async I/O on its own thread; the loop must never wait on it. The
//! two talk over a [`channel`]: a bounded queue of events, paired with the loop's
//! [`mio::Waker`], and a wake rule that costs one `eventfd` write per batch rather than per
//! event:
//!
//! ```text
//!  helper thread(s)                                 loop thread
//!  EventSender::try_send / send / send_timeout ──►  [bounded queue] ──► EventReceiver::try_recv
//!        └─ waker.wake() only when no wake is pending        (lock-free; re-arms the wake
//!                                                              when it finds the queue empty)
//! ```
//!
//! # The wake rule
//!
//! One flag, `wake_pending`, says "a wake was sent and the loop has not yet seen the queue
//! empty since". A sender pushes its event, then swaps the flag to `true` and wakes the loop
//! only if it was `false`. The receiver, on finding the queue empty, swaps the flag back to
//! `false` and looks once more before it returns `None`. So the loop must call
//! [`EventReceiver::try_recv`] until `None` after each wake (or wake itself if it stops early
//! on a per-turn budget, as `drain_cluster` does).
//!
//! No wakeup is lost: both sides change the flag with a `SeqCst` read-modify-write, so the
//! two swaps are ordered. If the sender's swap comes first, the receiver's swap reads the
//! `true` it wrote, which makes the push visible to the receiver's second look, and the event
//! is returned there. If the receiver's swap comes first, the sender reads `false` and wakes
//! the loop. Either way the event is read in this drain or the loop is woken for the next.
//!
//! # Full queue
//!
//! What a full queue means is the helper's call, so the sender offers three ways to send:
//! [`EventSender::try_send`] (give the event back: the Redis pub/sub thread drops and counts
//! messages), [`EventSender::send_timeout`] (block a plain thread: Redis replies and
//! connection events wait for room), and [`EventSender::send`] (await room without blocking
//! an async runtime: Kafka records wait, so the fetch stops instead of dropping). While an
//! async sender waits, the receiver notifies it after the next pop; a `SeqCst` fence on each
//! side (store-and-fence then look, pop-and-fence then look) means either the sender sees the
//! freed slot or the receiver sees the sender waiting.
//!
//! # What the loop pays per event
//!
//! One lock-free `crossbeam` pop, one fence and one atomic load. No mutex, no allocation, no
//! syscall; the wake flag is touched once per drain.

mod backoff;
mod channel;

pub(crate) use backoff::Backoff;
pub(crate) use channel::{channel, EventReceiver, EventSender, SendError};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Error count and the last error, for a helper's status. The mutex is taken when a helper
/// records an error and when someone reads the status, never per event.
#[derive(Debug, Default)]
pub(crate) struct ErrorLog {
    count: AtomicU64,
    last: Mutex<Option<String>>,
}

impl ErrorLog {
    /// Counts one error and keeps its text as the last one.
    pub fn record(&self, err: impl Into<String>) {
        self.count.fetch_add(1, Ordering::Relaxed);
        // A panic while holding the lock leaves a plain `Option<String>` behind: keep it.
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(err.into());
    }

    /// Errors recorded so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The most recent error, if any.
    pub fn last(&self) -> Option<String> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_log_counts_and_keeps_the_last() {
        let log = ErrorLog::default();
        assert_eq!((log.count(), log.last()), (0, None));
        log.record("first");
        log.record(String::from("second"));
        assert_eq!(log.count(), 2);
        assert_eq!(log.last().as_deref(), Some("second"));
    }
}
