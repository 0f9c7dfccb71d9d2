//! Broadcasts with acks requested by Node nodes (`io.timeout(t).emit(.., cb)` through
//! `@socket.io/redis-adapter`): which of our sockets were sent which ack id, for which
//! request, until the requester's timeout. A client's ack is forwarded once per socket.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// Requests waiting at once; beyond this a request is answered with a client count of 0.
const MAX_WAITS: usize = 10_000;
/// The requester stops listening at its own timeout; we never wait longer than this.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// Ack ids this node handed out for remote broadcasts, and who still owes an answer.
#[derive(Debug, Default)]
pub(crate) struct RemoteAcks {
    next_id: u64,
    waits: HashMap<u64, Wait>,
}

#[derive(Debug)]
struct Wait {
    request_id: String,
    nsp: String,
    deadline: Instant,
    /// Sockets that were sent the event and have not acked yet.
    owed: HashSet<String>,
}

impl RemoteAcks {
    /// A fresh ack id for a request, or `None` when too many requests wait already. Expired
    /// waits are dropped first.
    pub fn reserve(&mut self, now: Instant) -> Option<u64> {
        self.waits.retain(|_, w| w.deadline > now);
        if self.waits.len() >= MAX_WAITS {
            return None;
        }
        // Ack ids of server-to-client events are our own space; the client echoes them.
        self.next_id += 1;
        Some(self.next_id)
    }

    /// Records that `owed` were sent the event with ack `id` (nothing is kept when empty).
    pub fn wait(
        &mut self,
        id: u64,
        request_id: String,
        nsp: String,
        deadline: Instant,
        owed: HashSet<String>,
    ) {
        if !owed.is_empty() {
            let w = Wait {
                request_id,
                nsp,
                deadline,
                owed,
            };
            self.waits.insert(id, w);
        }
    }

    /// A client ack `id` from the socket with id `sock`: the (request id, namespace) to
    /// answer, once per socket, while the request is still waiting.
    pub fn answer(&mut self, id: u64, sock: &str, now: Instant) -> Option<(String, String)> {
        let w = self.waits.get_mut(&id)?;
        if w.deadline <= now {
            self.waits.remove(&id);
            return None;
        }
        if !w.owed.remove(sock) {
            return None;
        }
        let out = (w.request_id.clone(), w.nsp.clone());
        if w.owed.is_empty() {
            self.waits.remove(&id);
        }
        Some(out)
    }

    /// Requests still waiting (expired ones go at the next `reserve`).
    pub fn len(&self) -> usize {
        self.waits.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_socket_answers_once_and_the_wait_ends_with_the_last() {
        let now = Instant::now();
        let mut a = RemoteAcks::default();
        let id = a.reserve(now).unwrap();
        let later = now + Duration::from_secs(5);
        a.wait(
            id,
            "Q".into(),
            "/".into(),
            later,
            HashSet::from(["1".to_string(), "2".to_string()]),
        );
        assert_eq!(a.answer(id, "1", now), Some(("Q".into(), "/".into())));
        assert_eq!(a.answer(id, "1", now), None, "a second ack from one socket");
        assert_eq!(
            a.answer(id, "3", now),
            None,
            "a socket that was not sent the event"
        );
        assert_eq!(
            a.answer(id + 1, "2", now),
            None,
            "an ack id never handed out"
        );
        assert_eq!(a.len(), 1);
        assert_eq!(a.answer(id, "2", now), Some(("Q".into(), "/".into())));
        assert_eq!(a.len(), 0);
    }

    #[test]
    fn acks_after_the_deadline_are_dropped() {
        let now = Instant::now();
        let mut a = RemoteAcks::default();
        let id = a.reserve(now).unwrap();
        a.wait(
            id,
            "Q".into(),
            "/".into(),
            now + Duration::from_millis(10),
            HashSet::from(["1".to_string(), "2".to_string()]),
        );
        assert_eq!(a.answer(id, "1", now + Duration::from_millis(10)), None);
        assert_eq!(a.len(), 0);
        // reserve() prunes expired waits too
        let id2 = a.reserve(now).unwrap();
        a.wait(
            id2,
            "R".into(),
            "/".into(),
            now + Duration::from_millis(10),
            HashSet::from(["1".to_string()]),
        );
        assert_ne!(id, id2);
        a.reserve(now + Duration::from_secs(1)).unwrap();
        assert_eq!(a.len(), 0);
    }
}
