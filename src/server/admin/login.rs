//! Admin password checks off the loop. bcrypt is slow on purpose (tens of milliseconds at
//! cost 10), so one helper thread runs the checks and wakes the loop with each answer
//! through the shared `mio::Waker`; the CONNECT waits parked in [`super::Admin`]. The queue is
//! small and bounded: a flood of logins is refused at once (`invalid credentials`) instead of
//! piling up, and the loop never waits for a hash.

use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::sync::Arc;

/// Checks waiting for the thread at most; more are refused unchecked.
const QUEUE: usize = 8;

/// The loop's handle on the check thread. Dropping it ends the thread (its queue closes).
#[derive(Debug)]
pub struct Checker {
    jobs: Sender<(u64, String)>,
    answers: Receiver<(u64, bool)>,
}

impl Checker {
    /// Starts the thread that checks passwords against `hash`.
    ///
    /// # Errors
    /// The thread could not be spawned.
    pub fn spawn(hash: String, waker: Arc<mio::Waker>) -> std::io::Result<Self> {
        let (jobs, job_rx) = crossbeam_channel::bounded::<(u64, String)>(QUEUE);
        let (answer_tx, answers) = crossbeam_channel::bounded(QUEUE + 1);
        std::thread::Builder::new()
            .name("admin-login".into())
            .spawn(move || {
                for (id, password) in job_rx {
                    let ok = bcrypt::verify(password.as_bytes(), &hash).unwrap_or(false);
                    if answer_tx.send((id, ok)).is_err() {
                        return;
                    }
                    // Logins are rare: one wake per answer is cheap.
                    if let Err(e) = waker.wake() {
                        log::warn!("admin login thread cannot wake the loop: {e}");
                    }
                }
            })?;
        Ok(Checker { jobs, answers })
    }

    /// Queues a check; `false` when the queue is full (or the thread is gone).
    pub fn check(&self, id: u64, password: String) -> bool {
        match self.jobs.try_send((id, password)) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }

    /// The next answer, if any: (check id, password matched).
    pub fn try_recv(&self) -> Option<(u64, bool)> {
        self.answers.try_recv().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn answers_come_back_with_their_ids_and_wake_the_poll() {
        let mut poll = mio::Poll::new().unwrap();
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(7)).unwrap());
        let hash = bcrypt::hash("right", 4).unwrap();
        let checker = Checker::spawn(hash, waker).unwrap();
        assert!(checker.check(1, "wrong".into()));
        assert!(checker.check(2, "right".into()));
        let mut got = Vec::new();
        let mut events = mio::Events::with_capacity(4);
        while got.len() < 2 {
            poll.poll(&mut events, Some(Duration::from_secs(10)))
                .unwrap();
            assert!(!events.is_empty(), "woken");
            while let Some(a) = checker.try_recv() {
                got.push(a);
            }
        }
        assert_eq!(got, [(1, false), (2, true)]);
    }
}
