//! Connection state recovery (Socket.IO v4.6): broadcasts carry an increasing offset; a socket
//! that loses its transport is saved under a private id (`pid`) for the recovery window, and a
//! client that reconnects with `{pid, offset}` gets its socket id, rooms and every broadcast it
//! missed.

use crate::engineio::wire::Outbound;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// A broadcast kept for replay.
#[derive(Debug)]
pub struct Stored {
    pub offset: u64,
    pub ns: usize,
    pub rooms: Vec<String>,
    pub except: Vec<String>,
    pub at: Instant,
    pub msg: Rc<Outbound>,
}

/// A disconnected socket waiting to be recovered.
#[derive(Debug, Clone)]
pub struct Saved {
    pub sid: String,
    pub ns: usize,
    pub user: Option<String>,
    pub claim_rooms: Vec<String>,
    pub rooms: Vec<String>,
    /// Offset of the last broadcast stored when the socket connected.
    pub connected_offset: u64,
    pub at: Instant,
}

#[derive(Debug)]
pub struct Recovery {
    packets: VecDeque<Stored>,
    sessions: HashMap<String, Saved>,
    next_offset: u64,
    window: Duration,
    max_packets: usize,
}

impl Recovery {
    pub fn new(window: Duration, max_packets: usize) -> Self {
        Recovery {
            packets: VecDeque::new(),
            sessions: HashMap::new(),
            next_offset: 1,
            window,
            max_packets,
        }
    }

    /// The offset the next stored broadcast will get.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// Takes an offset for a broadcast being encoded.
    pub fn allocate(&mut self) -> u64 {
        let o = self.next_offset;
        self.next_offset += 1;
        o
    }

    pub fn store(&mut self, p: Stored) {
        while self.packets.len() >= self.max_packets {
            self.packets.pop_front();
        }
        self.packets.push_back(p);
    }

    pub fn save(&mut self, pid: String, s: Saved) {
        self.sessions.insert(pid, s);
    }

    /// Removes and returns the saved socket for `pid` with the broadcasts after `offset` (or,
    /// without an offset, since it connected) that were addressed to it. `None` when the pid is
    /// unknown or expired, or the offset is older than what is kept.
    pub fn restore(
        &mut self,
        pid: &str,
        offset: Option<u64>,
        ns: usize,
        now: Instant,
    ) -> Option<(Saved, Vec<Rc<Outbound>>)> {
        let saved = self.sessions.get(pid)?;
        if saved.ns != ns || now.duration_since(saved.at) > self.window {
            return None;
        }
        let after = offset.unwrap_or(saved.connected_offset);
        // The offset must still be in the log (or be the very last one handed out).
        let oldest = self.packets.front().map_or(self.next_offset, |p| p.offset);
        if after + 1 < oldest {
            return None;
        }
        let saved = self.sessions.remove(pid)?;
        let mut own = saved.rooms.clone();
        own.push(saved.sid.clone());
        let missed = self
            .packets
            .iter()
            .filter(|p| p.offset > after && p.ns == ns)
            .filter(|p| {
                p.rooms.iter().any(|r| own.contains(r)) && !p.except.iter().any(|r| own.contains(r))
            })
            .map(|p| Rc::clone(&p.msg))
            .collect();
        Some((saved, missed))
    }

    /// Drops packets and sessions older than the window.
    pub fn expire(&mut self, now: Instant) {
        while self
            .packets
            .front()
            .is_some_and(|p| now.duration_since(p.at) > self.window)
        {
            self.packets.pop_front();
        }
        let window = self.window;
        self.sessions
            .retain(|_, s| now.duration_since(s.at) <= window);
    }

    pub fn stored(&self) -> usize {
        self.packets.len()
    }

    pub fn saved(&self) -> usize {
        self.sessions.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg() -> Rc<Outbound> {
        Rc::new(Outbound::text(&b"42[\"x\"]"[..]))
    }

    fn saved(rooms: &[&str]) -> Saved {
        Saved {
            sid: "s1".into(),
            ns: 0,
            user: None,
            claim_rooms: vec![],
            rooms: rooms.iter().map(|r| r.to_string()).collect(),
            connected_offset: 0,
            at: Instant::now(),
        }
    }

    #[test]
    fn replays_only_missed_packets_for_its_rooms() {
        let now = Instant::now();
        let mut r = Recovery::new(Duration::from_secs(120), 100);
        for room in ["a", "b", "a", "s1"] {
            let offset = r.allocate();
            r.store(Stored {
                offset,
                ns: 0,
                rooms: vec![room.into()],
                except: vec![],
                at: now,
                msg: msg(),
            });
        }
        r.save("pid".into(), saved(&["a"]));
        let (s, missed) = r.restore("pid", Some(1), 0, now).unwrap();
        assert_eq!(s.sid, "s1");
        assert_eq!(missed.len(), 2, "offset 3 (room a) and 4 (sid room)");
        assert!(r.restore("pid", Some(1), 0, now).is_none(), "restored once");
    }

    #[test]
    fn too_old_offset_or_expired_session_fails() {
        let now = Instant::now();
        let mut r = Recovery::new(Duration::from_secs(1), 2);
        for _ in 0..5 {
            let offset = r.allocate();
            r.store(Stored {
                offset,
                ns: 0,
                rooms: vec!["a".into()],
                except: vec![],
                at: now,
                msg: msg(),
            });
        }
        r.save("pid".into(), saved(&["a"]));
        assert!(
            r.restore("pid", Some(1), 0, now).is_none(),
            "offset 1 fell out of the log"
        );
        assert!(
            r.restore("pid", Some(4), 0, now + Duration::from_secs(5))
                .is_none(),
            "window passed"
        );
    }
}
