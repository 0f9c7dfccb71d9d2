//! The bounded event queue from helper threads to the loop, with the wake rule described in
//! the module doc of [`crate::bridge`].

use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

/// Why [`EventSender::try_send`] gave the event back.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TrySendError<T> {
    /// The queue holds its capacity; the loop is behind.
    Full(T),
    /// The receiver (the loop's handle) is gone.
    Closed(T),
}

/// Why a waiting send gave the event back.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SendError<T> {
    /// [`EventSender::send_timeout`] found no room in time.
    Timeout(T),
    /// The receiver (the loop's handle) is gone.
    Closed(T),
}

/// State both ends share besides the queue itself.
#[derive(Debug)]
struct Wake {
    waker: Arc<mio::Waker>,
    /// A wake was sent and the loop has not seen the queue empty since (the wake rule).
    pending: AtomicBool,
    /// An async sender waits for room; the receiver notifies `room` after its next pop.
    room_wanted: AtomicBool,
    room: Notify,
    /// The receiver was dropped: nobody will make room any more.
    closed: AtomicBool,
}

/// The helper's end. Waking follows the rule in the module doc.
#[derive(Debug)]
pub(crate) struct EventSender<T> {
    tx: crossbeam_channel::Sender<T>,
    wake: Arc<Wake>,
}

/// The loop's end: [`EventReceiver::try_recv`] never blocks and takes no lock.
#[derive(Debug)]
pub(crate) struct EventReceiver<T> {
    rx: crossbeam_channel::Receiver<T>,
    wake: Arc<Wake>,
}

/// A queue of `capacity` events (at least one) whose sender wakes the loop through `waker`.
pub(crate) fn channel<T>(
    capacity: usize,
    waker: Arc<mio::Waker>,
) -> (EventSender<T>, EventReceiver<T>) {
    let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
    let wake = Arc::new(Wake {
        waker,
        pending: AtomicBool::new(false),
        room_wanted: AtomicBool::new(false),
        room: Notify::new(),
        closed: AtomicBool::new(false),
    });
    (
        EventSender {
            tx,
            wake: Arc::clone(&wake),
        },
        EventReceiver { rx, wake },
    )
}

impl<T> EventSender<T> {
    /// Queues `ev` if there is room, and wakes the loop if no wake is pending.
    ///
    /// # Errors
    /// [`TrySendError::Full`] or [`TrySendError::Closed`], with the event.
    pub fn try_send(&self, ev: T) -> Result<(), TrySendError<T>> {
        match self.tx.try_send(ev) {
            Ok(()) => {
                self.notify_loop();
                Ok(())
            }
            Err(crossbeam_channel::TrySendError::Full(ev)) => Err(TrySendError::Full(ev)),
            Err(crossbeam_channel::TrySendError::Disconnected(ev)) => Err(TrySendError::Closed(ev)),
        }
    }

    /// Queues `ev`, blocking this thread up to `timeout` for room. For plain helper threads
    /// only: never call it from the loop or from inside an async runtime.
    ///
    /// # Errors
    /// [`SendError::Timeout`] (no room in time) or [`SendError::Closed`], with the event.
    pub fn send_timeout(&self, ev: T, timeout: Duration) -> Result<(), SendError<T>> {
        match self.tx.send_timeout(ev, timeout) {
            Ok(()) => {
                self.notify_loop();
                Ok(())
            }
            Err(crossbeam_channel::SendTimeoutError::Timeout(ev)) => Err(SendError::Timeout(ev)),
            Err(crossbeam_channel::SendTimeoutError::Disconnected(ev)) => {
                Err(SendError::Closed(ev))
            }
        }
    }

    /// Queues `ev`, waiting (without blocking the thread) until the loop makes room. For
    /// helpers on an async runtime; cancel it with `select!` to give up on a stop request.
    ///
    /// # Errors
    /// [`SendError::Closed`], with the event, once the receiver is gone.
    pub async fn send(&self, ev: T) -> Result<(), SendError<T>> {
        let mut ev = match self.try_send(ev) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Closed(ev)) => return Err(SendError::Closed(ev)),
            Err(TrySendError::Full(ev)) => ev,
        };
        loop {
            // Register for the notification before saying we wait and looking again, so a pop
            // between the look and the await still reaches us.
            let notified = self.wake.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            self.wake.room_wanted.store(true, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            ev = match self.try_send(ev) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(ev)) => return Err(SendError::Closed(ev)),
                Err(TrySendError::Full(ev)) => ev,
            };
            // The receiver is being dropped: its queue still exists, but nobody drains it.
            if self.wake.closed.load(Ordering::SeqCst) {
                return Err(SendError::Closed(ev));
            }
            notified.await;
        }
    }

    /// Events waiting for the loop now.
    pub fn len(&self) -> usize {
        self.tx.len()
    }

    /// The bound given to [`channel`].
    pub fn capacity(&self) -> usize {
        self.tx.capacity().unwrap_or(usize::MAX)
    }

    /// The receiver is gone: sending is pointless.
    pub fn is_closed(&self) -> bool {
        self.wake.closed.load(Ordering::SeqCst)
    }

    /// The wake rule, sender side: wake unless a wake is already pending.
    fn notify_loop(&self) {
        if !self.wake.pending.swap(true, Ordering::SeqCst) {
            if let Err(e) = self.wake.waker.wake() {
                // Let the next event try again rather than leave the loop asleep for good.
                self.wake.pending.store(false, Ordering::SeqCst);
                log::warn!("waking the event loop failed: {e}");
            }
        }
    }
}

impl<T> EventReceiver<T> {
    /// The next event, if any. Call until `None` after each wake (see the module doc).
    pub fn try_recv(&self) -> Option<T> {
        self.try_recv_with(|| {})
    }

    /// [`EventReceiver::try_recv`], running `between_looks` after an empty first look (tests
    /// use it to send at the worst moment).
    fn try_recv_with(&self, between_looks: impl FnOnce()) -> Option<T> {
        if let Some(ev) = self.pop() {
            return Some(ev);
        }
        between_looks();
        // Empty: re-arm the wake, then look once more, so an event pushed between the two
        // looks is either returned here or wakes the loop again.
        self.wake.pending.swap(false, Ordering::SeqCst);
        self.pop()
    }

    /// One event off the queue; tells an async sender waiting for room (see
    /// [`EventSender::send`]).
    fn pop(&self) -> Option<T> {
        let ev = self.rx.try_recv().ok()?;
        fence(Ordering::SeqCst);
        if self.wake.room_wanted.load(Ordering::Relaxed)
            && self.wake.room_wanted.swap(false, Ordering::SeqCst)
        {
            self.wake.room.notify_waiters();
        }
        Some(ev)
    }
}

impl<T> Drop for EventReceiver<T> {
    fn drop(&mut self) {
        self.wake.closed.store(true, Ordering::SeqCst);
        self.wake.room.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Poll, Token};

    const WAKE: Token = Token(7);

    struct Loop {
        poll: Poll,
        events: Events,
        waker: Arc<mio::Waker>,
    }

    impl Loop {
        fn new() -> Loop {
            let poll = Poll::new().expect("poll");
            let waker = Arc::new(mio::Waker::new(poll.registry(), WAKE).expect("waker"));
            Loop {
                poll,
                events: Events::with_capacity(4),
                waker,
            }
        }

        /// Whether a wake arrives within `timeout` (a long bound: only a lost wake reaches it).
        fn woken(&mut self, timeout: Duration) -> bool {
            self.poll
                .poll(&mut self.events, Some(timeout))
                .expect("poll");
            self.events.iter().any(|e| e.token() == WAKE)
        }
    }

    #[test]
    fn one_wake_per_drain_not_per_event() {
        let mut lp = Loop::new();
        let (tx, rx) = channel(8, Arc::clone(&lp.waker));
        for i in 0..3 {
            tx.try_send(i).expect("room");
        }
        assert!(lp.woken(Duration::from_secs(5)));
        // The first wake is still pending (the loop has not seen the queue empty): no more.
        tx.try_send(3).expect("room");
        assert!(!lp.woken(Duration::ZERO), "a second wake before the drain");
        let got: Vec<i32> = std::iter::from_fn(|| rx.try_recv()).collect();
        assert_eq!(got, vec![0, 1, 2, 3]);
        // Drained to empty: the next event wakes again.
        tx.try_send(4).expect("room");
        assert!(lp.woken(Duration::from_secs(5)));
        assert_eq!(rx.try_recv(), Some(4));
        assert_eq!(rx.try_recv(), None);
    }

    #[test]
    fn an_event_sent_between_the_empty_look_and_the_rearm_is_returned() {
        let mut lp = Loop::new();
        let (tx, rx) = channel(8, Arc::clone(&lp.waker));
        tx.try_send(0).expect("room");
        assert!(lp.woken(Duration::from_secs(5)));
        assert_eq!(rx.try_recv(), Some(0));
        // The queue is empty and the first wake still pending, so this send does not wake:
        // the second look must find it.
        let got = rx.try_recv_with(|| tx.try_send(1).expect("room"));
        assert_eq!(got, Some(1));
        assert!(!lp.woken(Duration::ZERO));
    }

    #[test]
    fn an_event_sent_after_the_rearm_wakes_the_loop() {
        let mut lp = Loop::new();
        let (tx, rx) = channel(8, Arc::clone(&lp.waker));
        tx.try_send(0).expect("room");
        assert!(lp.woken(Duration::from_secs(5)));
        assert_eq!(rx.try_recv(), Some(0));
        assert_eq!(rx.try_recv(), None);
        tx.try_send(1).expect("room");
        assert!(lp.woken(Duration::from_secs(5)));
        assert_eq!(rx.try_recv(), Some(1));
    }

    #[test]
    fn no_wakeup_is_lost_while_the_loop_drains() {
        // A producer thread sends in bursts while the loop drains; the loop sleeps in poll
        // with a long timeout whenever it has seen the queue empty, so a lost wake shows up as
        // a missing event when the timeout (far beyond the test's run time) expires.
        const N: u64 = 200_000;
        let mut lp = Loop::new();
        let (tx, rx) = channel(64, Arc::clone(&lp.waker));
        let producer = std::thread::spawn(move || {
            for i in 0..N {
                let mut ev = i;
                loop {
                    match tx.try_send(ev) {
                        Ok(()) => break,
                        Err(TrySendError::Full(back)) => {
                            ev = back;
                            std::thread::yield_now();
                        }
                        Err(TrySendError::Closed(_)) => panic!("receiver gone"),
                    }
                }
                if i % 97 == 0 {
                    std::thread::yield_now();
                }
            }
        });
        let mut next = 0;
        while next < N {
            while let Some(ev) = rx.try_recv() {
                assert_eq!(ev, next, "out of order");
                next += 1;
            }
            if next < N {
                assert!(
                    lp.woken(Duration::from_secs(30)),
                    "lost wakeup after {next} of {N} events"
                );
            }
        }
        producer.join().expect("producer");
        assert_eq!(rx.try_recv(), None);
    }

    #[test]
    fn try_send_gives_the_event_back_when_full_and_closed() {
        let lp = Loop::new();
        let (tx, rx) = channel(2, Arc::clone(&lp.waker));
        assert_eq!(tx.capacity(), 2);
        tx.try_send("a").expect("room");
        tx.try_send("b").expect("room");
        assert_eq!(tx.len(), 2);
        assert_eq!(tx.try_send("c"), Err(TrySendError::Full("c")));
        assert_eq!(rx.try_recv(), Some("a"));
        tx.try_send("c").expect("room after a pop");
        assert!(!tx.is_closed());
        drop(rx);
        assert!(tx.is_closed());
        assert_eq!(tx.try_send("d"), Err(TrySendError::Closed("d")));
    }

    #[test]
    fn send_timeout_waits_for_room_then_times_out() {
        let lp = Loop::new();
        let (tx, rx) = channel(1, Arc::clone(&lp.waker));
        tx.try_send(1).expect("room");
        assert_eq!(
            tx.send_timeout(2, Duration::from_millis(20)),
            Err(SendError::Timeout(2))
        );
        let tx = Arc::new(tx);
        let sender = {
            let tx = Arc::clone(&tx);
            std::thread::spawn(move || tx.send_timeout(3, Duration::from_secs(30)))
        };
        // Wait until the loop may drain: the sender's event lands after the pop.
        let mut got = Vec::new();
        while got.len() < 2 {
            if let Some(ev) = rx.try_recv() {
                got.push(ev);
            } else {
                std::thread::yield_now();
            }
        }
        assert_eq!(sender.join().expect("sender"), Ok(()));
        assert_eq!(got, vec![1, 3]);
    }

    #[test]
    fn an_async_sender_waits_for_room_and_resumes_after_pops() {
        const N: u32 = 20_000;
        let mut lp = Loop::new();
        let (tx, rx) = channel(4, Arc::clone(&lp.waker));
        let producer = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            rt.block_on(async {
                for i in 0..N {
                    tx.send(i).await.expect("receiver alive");
                }
            });
        });
        let mut next = 0;
        while next < N {
            while let Some(ev) = rx.try_recv() {
                assert_eq!(ev, next);
                next += 1;
            }
            if next < N {
                assert!(lp.woken(Duration::from_secs(30)), "stuck at {next}");
            }
        }
        producer.join().expect("producer");
    }

    #[test]
    fn an_async_sender_waiting_on_a_full_queue_stops_when_the_receiver_goes() {
        let lp = Loop::new();
        let (tx, rx) = channel(1, Arc::clone(&lp.waker));
        tx.try_send(0u8).expect("room");
        let producer = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            rt.block_on(tx.send(1))
        });
        drop(rx);
        assert_eq!(
            producer.join().expect("producer"),
            Err(SendError::Closed(1))
        );
    }
}
