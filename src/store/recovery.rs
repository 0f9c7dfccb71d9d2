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
    /// Addressed to every socket of the namespace (`io.emit`); `rooms` is then ignored.
    pub all: bool,
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
    /// Where the saved sessions are: what a broadcast could be owed to.
    saved: SavedIndex,
    next_offset: u64,
    /// The newest offset dropped from the log (by the window or the caps): a socket that has
    /// seen it can still be recovered faithfully. Offsets never stored (nobody could be owed
    /// them) leave gaps that do not count.
    lost_upto: u64,
    window: Duration,
    max_packets: usize,
    /// Payload bytes of the kept packets, bounded by [`MAX_BYTES`].
    bytes: usize,
}

/// Payload bytes the replay log keeps at most (the oldest go first).
pub const MAX_BYTES: usize = 64 << 20;

impl Recovery {
    pub fn new(window: Duration, max_packets: usize) -> Self {
        Recovery {
            packets: VecDeque::new(),
            sessions: HashMap::new(),
            saved: SavedIndex::default(),
            next_offset: 1,
            lost_upto: 0,
            window,
            max_packets,
            bytes: 0,
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
        self.bytes += p.msg.payload_len();
        self.packets.push_back(p);
        while self.packets.len() > self.max_packets
            || (self.bytes > MAX_BYTES && self.packets.len() > 1)
        {
            if let Some(old) = self.packets.pop_front() {
                self.bytes -= old.msg.payload_len();
                self.lost_upto = old.offset;
            }
        }
    }

    pub fn save(&mut self, pid: String, s: Saved) {
        self.saved.count(&s, true);
        if let Some(old) = self.sessions.insert(pid, s) {
            self.saved.count(&old, false);
        }
    }

    /// Whether a saved session could be owed a broadcast to `rooms` (or to all of namespace
    /// `ns`): one of them is in one of the rooms, or in the namespace. Rooms of every
    /// namespace count (a superset is safe).
    pub fn may_owe(&self, ns: usize, all: bool, rooms: &[String]) -> bool {
        !self.sessions.is_empty() && self.saved.may_owe(ns, all, rooms)
    }

    /// Removes and returns the saved socket for `pid` if it is in namespace `ns` and within
    /// the window.
    pub fn take(&mut self, pid: &str, ns: usize, now: Instant) -> Option<Saved> {
        let saved = self.sessions.get(pid)?;
        if saved.ns != ns || now.duration_since(saved.at) > self.window {
            return None;
        }
        let s = self.sessions.remove(pid)?;
        self.saved.count(&s, false);
        Some(s)
    }

    /// Whether every broadcast after `after` that a socket could be owed is still kept.
    pub fn covers(&self, after: u64) -> bool {
        after >= self.lost_upto
    }

    /// The broadcasts of namespace `ns` after offset `after` addressed to everyone or to any
    /// of `rooms` (the socket's id among them), and not excluding any of them. `None` when `after` is older
    /// than what is kept, so the socket cannot be recovered faithfully.
    pub fn missed(&self, after: u64, ns: usize, rooms: &[String]) -> Option<Vec<Rc<Outbound>>> {
        if !self.covers(after) {
            return None;
        }
        Some(
            self.packets
                .iter()
                .filter(|p| p.offset > after && p.ns == ns)
                .filter(|p| {
                    (p.all || p.rooms.iter().any(|r| rooms.contains(r)))
                        && !p.except.iter().any(|r| rooms.contains(r))
                })
                .map(|p| Rc::clone(&p.msg))
                .collect(),
        )
    }

    /// Drops packets and sessions older than the window.
    pub fn expire(&mut self, now: Instant) {
        while self
            .packets
            .front()
            .is_some_and(|p| now.duration_since(p.at) > self.window)
        {
            if let Some(old) = self.packets.pop_front() {
                self.bytes -= old.msg.payload_len();
                self.lost_upto = old.offset;
            }
        }
        let window = self.window;
        let saved = &mut self.saved;
        self.sessions.retain(|_, s| {
            let keep = now.duration_since(s.at) <= window;
            if !keep {
                saved.count(s, false);
            }
            keep
        });
    }

    pub fn stored(&self) -> usize {
        self.packets.len()
    }

    pub fn saved(&self) -> usize {
        self.sessions.len()
    }
}

/// How many saved sessions are in each room (their sid room among them), by a hash of the
/// room name, and in each namespace. A broadcast that selects no live socket and none of
/// these is not kept: nobody could ever be owed it. Hashes, not names: no allocation per
/// entry (a sid, a user room and the joined rooms of every saved socket), and a collision
/// only keeps a broadcast that was not needed.
#[derive(Debug, Default)]
struct SavedIndex {
    rooms: HashMap<u64, u32>,
    namespaces: HashMap<usize, u32>,
    hasher: std::collections::hash_map::RandomState,
}

impl SavedIndex {
    /// Adds `s` (its rooms, its sid room and its namespace) to the counts, or takes it out.
    fn count(&mut self, s: &Saved, add: bool) {
        use std::hash::BuildHasher;
        for r in s.rooms.iter().chain(std::iter::once(&s.sid)) {
            bump(&mut self.rooms, self.hasher.hash_one(r.as_str()), add);
        }
        bump(&mut self.namespaces, s.ns, add);
        if self.rooms.is_empty() && self.rooms.capacity() > 64 {
            self.rooms.shrink_to_fit();
        }
    }

    /// Whether a saved session is in one of `rooms` (or in namespace `ns`, for `all`). Rooms
    /// of every namespace count (a superset is safe).
    fn may_owe(&self, ns: usize, all: bool, rooms: &[String]) -> bool {
        use std::hash::BuildHasher;
        if all {
            return self.namespaces.contains_key(&ns);
        }
        rooms
            .iter()
            .any(|r| self.rooms.contains_key(&self.hasher.hash_one(r.as_str())))
    }
}

/// Adds one to `k`'s count, or takes one off (forgetting it at zero).
fn bump<K: std::hash::Hash + Eq>(m: &mut HashMap<K, u32>, k: K, add: bool) {
    if add {
        *m.entry(k).or_insert(0) += 1;
    } else if let std::collections::hash_map::Entry::Occupied(mut e) = m.entry(k) {
        *e.get_mut() -= 1;
        if *e.get() == 0 {
            e.remove();
        }
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
                all: false,
                rooms: vec![room.into()],
                except: vec![],
                at: now,
                msg: msg(),
            });
        }
        r.save("pid".into(), saved(&["a"]));
        let s = r.take("pid", 0, now).unwrap();
        assert_eq!(s.sid, "s1");
        let rooms = vec!["a".to_string(), "s1".to_string()];
        assert_eq!(
            r.missed(1, 0, &rooms).unwrap().len(),
            2,
            "offset 3 (room a) and 4 (sid room)"
        );
        assert!(r.take("pid", 0, now).is_none(), "taken once");
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
                all: false,
                rooms: vec!["a".into()],
                except: vec![],
                at: now,
                msg: msg(),
            });
        }
        assert!(
            r.missed(1, 0, &["a".to_string()]).is_none(),
            "offset 1 fell out of the log"
        );
        assert_eq!(r.missed(3, 0, &["a".to_string()]).unwrap().len(), 2);
        r.save("pid".into(), saved(&["a"]));
        assert!(
            r.take("pid", 0, now + Duration::from_secs(5)).is_none(),
            "window passed"
        );
    }

    fn stored(r: &mut Recovery, ns: usize, all: bool, rooms: &[&str], except: &[&str]) {
        let offset = r.allocate();
        r.store(Stored {
            offset,
            ns,
            all,
            rooms: rooms.iter().map(|s| s.to_string()).collect(),
            except: except.iter().map(|s| s.to_string()).collect(),
            at: Instant::now(),
            msg: Rc::new(Outbound::text(offset.to_string())),
        });
    }

    fn offsets(msgs: Vec<Rc<Outbound>>) -> Vec<String> {
        let c = crate::engineio::wire::EncodeCounter::default();
        msgs.iter()
            .map(|m| String::from_utf8(m.polling(&c).to_vec()).unwrap())
            .collect()
    }

    /// Regression: a broadcast to everyone (`io.emit` from the emitter or another node) was
    /// stored with no rooms and never replayed, while the client's offset moved past it.
    #[test]
    fn broadcast_to_everyone_is_replayed() {
        let mut r = Recovery::new(Duration::from_secs(120), 100);
        stored(&mut r, 0, true, &[], &[]);
        stored(&mut r, 1, true, &[], &[]);
        stored(&mut r, 0, true, &[], &["s1"]);
        let own = vec!["a".to_string(), "s1".to_string()];
        assert_eq!(offsets(r.missed(0, 0, &own).unwrap()), vec!["1"]);
        let other = vec!["s2".to_string()];
        assert_eq!(offsets(r.missed(0, 0, &other).unwrap()), vec!["1", "3"]);
    }

    #[test]
    fn replay_honours_rooms_except_and_order() {
        let mut r = Recovery::new(Duration::from_secs(120), 100);
        stored(&mut r, 0, false, &["a"], &[]); // 1
        stored(&mut r, 0, false, &["b"], &[]); // 2: room b
        stored(&mut r, 0, false, &["a", "b"], &["b"]); // 3: it is in an except room
        stored(&mut r, 0, false, &["a", "c"], &["s9"]); // 4
        stored(&mut r, 0, false, &["s1"], &[]); // 5: its sid room
        let own = vec!["a".to_string(), "b".to_string(), "s1".to_string()];
        assert_eq!(
            offsets(r.missed(0, 0, &own).unwrap()),
            vec!["1", "2", "4", "5"]
        );
        let own = vec!["a".to_string(), "s1".to_string()];
        assert_eq!(offsets(r.missed(2, 0, &own).unwrap()), vec!["3", "4", "5"]);
    }

    /// Regression: an offset given to a broadcast that was not kept (nobody could be owed it)
    /// made the log look as if it had lost entries, and a socket that connected before it
    /// could not be recovered.
    #[test]
    fn offsets_never_stored_do_not_break_coverage() {
        let mut r = Recovery::new(Duration::from_secs(120), 2);
        let connected = r.next_offset() - 1;
        r.allocate(); // a broadcast nobody could be owed: not stored
        stored(&mut r, 0, false, &["a"], &[]);
        assert!(r.covers(connected), "the gap is not a loss");
        assert_eq!(
            offsets(r.missed(connected, 0, &["a".to_string()]).unwrap()),
            vec!["2"]
        );
        stored(&mut r, 0, false, &["a"], &[]);
        stored(&mut r, 0, false, &["a"], &[]); // the cap of 2 drops offset 2
        assert!(!r.covers(connected), "offset 2 was lost");
        assert!(r.covers(2));
    }

    #[test]
    fn saved_sessions_are_counted_by_room_and_namespace() {
        let now = Instant::now();
        let mut r = Recovery::new(Duration::from_millis(50), 100);
        let rooms = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(!r.may_owe(0, true, &[]), "nothing saved");
        r.save("p1".into(), saved(&["a"]));
        r.save("p2".into(), saved(&["a", "b"]));
        assert!(r.may_owe(0, false, &rooms(&["a"])));
        assert!(r.may_owe(0, false, &rooms(&["x", "s1"])), "its sid room");
        assert!(r.may_owe(0, true, &[]));
        assert!(!r.may_owe(1, true, &[]), "another namespace");
        assert!(!r.may_owe(0, false, &rooms(&["x"])));
        r.take("p2", 0, now).unwrap();
        assert!(!r.may_owe(0, false, &rooms(&["b"])), "p2 was taken");
        assert!(r.may_owe(0, false, &rooms(&["a"])), "p1 is still saved");
        r.expire(now + Duration::from_millis(100));
        assert!(!r.may_owe(0, false, &rooms(&["a", "s1"])), "p1 expired");
        assert!(!r.may_owe(0, true, &[]));
        assert!(r.saved.rooms.is_empty() && r.saved.namespaces.is_empty());
    }

    #[test]
    fn window_expires_packets_and_sessions() {
        let mut r = Recovery::new(Duration::from_millis(50), 100);
        stored(&mut r, 0, true, &[], &[]);
        r.save("pid".into(), saved(&["a"]));
        let later = Instant::now() + Duration::from_millis(100);
        r.expire(later);
        assert_eq!((r.stored(), r.saved()), (0, 0));
        assert!(r.missed(1, 0, &["a".to_string()]).unwrap().is_empty());
    }
}
