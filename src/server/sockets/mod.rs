//! The `Sockets` part: namespaces, Socket.IO sockets and rooms, and recipient selection as a
//! function of plain data (rooms, except, flags) to socket keys. No I/O: what a socket's
//! session and connection are is the business of the parts below.

use crate::store::ratelimit::Buckets;
use slab::Slab;
use std::collections::{HashMap, HashSet};
use std::time::Instant;

/// Rooms one socket may be in (its own id room not counted); bounds memory and the cost of
/// joins, leaves and recovery replay.
pub const MAX_ROOMS_PER_SOCKET: usize = 1000;

/// A namespace and its rooms. Sid rooms are implicit (looked up by id, see `by_id`) so an idle socket
/// costs no room entry.
#[derive(Debug)]
struct Namespace {
    name: String,
    rooms: HashMap<String, Members>,
    sockets: usize,
}

/// A room's members: one socket inline (a user's own room, most of the time: no set
/// allocated), or a boxed set (so a map slot is 40 bytes, not 72).
#[derive(Debug)]
// The box is the point: a set is 48 bytes inline and one-member rooms, the most common, are
// better off with a 16-byte slot value.
#[allow(clippy::box_collection)]
enum Members {
    One(usize),
    Many(Box<HashSet<usize>>),
}

impl Members {
    fn insert(&mut self, sock: usize) {
        match self {
            Members::One(x) if *x == sock => {}
            Members::One(x) => *self = Members::Many(Box::new(HashSet::from([*x, sock]))),
            Members::Many(set) => {
                set.insert(sock);
            }
        }
    }

    /// Removes `sock`; `true` when the room is now empty.
    fn remove(&mut self, sock: usize) -> bool {
        match self {
            Members::One(x) => *x == sock,
            Members::Many(set) => {
                set.remove(&sock);
                match set.iter().next().copied() {
                    None => true,
                    Some(last) if set.len() == 1 => {
                        // Back to the inline form; the set's allocation is freed.
                        *self = Members::One(last);
                        false
                    }
                    Some(_) => false,
                }
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Members::One(_) => 1,
            Members::Many(set) => set.len(),
        }
    }

    fn iter(&self) -> MembersIter<'_> {
        match self {
            Members::One(x) => MembersIter::One(Some(*x)),
            Members::Many(set) => MembersIter::Many(set.iter()),
        }
    }
}

enum MembersIter<'a> {
    One(Option<usize>),
    Many(std::collections::hash_set::Iter<'a, usize>),
}

impl Iterator for MembersIter<'_> {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        match self {
            MembersIter::One(x) => x.take(),
            MembersIter::Many(it) => it.next().copied(),
        }
    }
}

/// One Socket.IO socket: a session connected to a namespace. Read through [`Sockets::get`];
/// changed only through `Sockets`' verbs.
#[derive(Debug)]
pub struct Socket {
    pub id: String,
    pub ns: usize,
    pub session: usize,
    /// The authenticated user, `None` for anonymous sockets.
    pub user: Option<String>,
    /// Rooms joined explicitly (the sid room is implicit).
    pub rooms: Vec<String>,
    /// Last selection that reached (or excluded) this socket; deduplicates overlapping rooms.
    mark: u64,
    /// Private rooms the token's claims grant.
    pub claim_rooms: Vec<String>,
    /// Private id for connection state recovery (when it is on).
    pub pid: Option<String>,
    /// Recovery offset current when the socket connected.
    pub connected_offset: u64,
    /// Rate-limit buckets, allocated on the first limited event.
    buckets: Option<Box<Buckets>>,
    /// When this socket was recovered: the time its previous transport was lost.
    pub recovered_at: Option<Instant>,
    /// Counted in presence (so its disconnect is subtracted exactly once).
    pub presence_counted: bool,
}

/// What a new socket starts with.
#[derive(Debug)]
pub struct NewSocket {
    /// The id to keep (a recovered socket's); `None` mints one that names the socket's slot.
    pub id: Option<String>,
    pub ns: usize,
    pub session: usize,
    pub user: Option<String>,
    pub claim_rooms: Vec<String>,
    pub pid: Option<String>,
    pub connected_offset: u64,
    pub recovered_at: Option<Instant>,
}

/// Where a delivery goes, as plain data.
#[derive(Debug, Default, Clone, Copy)]
pub struct Target<'a> {
    pub rooms: &'a [String],
    pub except: &'a [String],
    pub except_socket: Option<usize>,
    /// May be dropped for recipients that are behind (cursor moves, strokes).
    pub volatile: bool,
    /// Every socket of the namespace (`io.emit`); `rooms` is then ignored.
    pub all: bool,
}

/// Sockets, namespaces and rooms.
#[derive(Debug)]
pub struct Sockets {
    namespaces: Vec<Namespace>,
    sockets: Slab<Socket>,
    /// Socket id -> key for the ids that do not name their slot (recovered sockets keep their
    /// old id); a minted id names its slot (`engineio::slot_id`). Every socket is in the room
    /// named by its id.
    foreign: HashMap<String, usize>,
    /// Selection generation, for the per-socket marks.
    seq: u64,
    /// A recipient list reused by every delivery (no allocation per broadcast).
    scratch: Vec<usize>,
}

impl Sockets {
    pub fn new(namespaces: &[String]) -> Self {
        Sockets {
            namespaces: namespaces
                .iter()
                .map(|n| Namespace {
                    name: n.clone(),
                    rooms: HashMap::new(),
                    sockets: 0,
                })
                .collect(),
            sockets: Slab::with_capacity(1024),
            foreign: HashMap::new(),
            seq: 0,
            scratch: Vec::new(),
        }
    }

    /// The index of namespace `name`.
    pub fn ns(&self, name: &str) -> Option<usize> {
        self.namespaces.iter().position(|n| n.name == name)
    }

    pub fn ns_name(&self, ns: usize) -> &str {
        &self.namespaces[ns].name
    }

    /// Namespace names with their socket counts.
    pub fn ns_counts(&self) -> impl Iterator<Item = (&str, usize)> {
        self.namespaces.iter().map(|n| (n.name.as_str(), n.sockets))
    }

    pub fn ns_len(&self) -> usize {
        self.namespaces.len()
    }

    /// Rooms with members, over all namespaces.
    pub fn room_count(&self) -> usize {
        self.namespaces.iter().map(|n| n.rooms.len()).sum()
    }

    /// Every socket with its key.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &Socket)> {
        self.sockets.iter()
    }

    pub fn get(&self, sock: usize) -> Option<&Socket> {
        self.sockets.get(sock)
    }

    /// Whether `sock` is still the socket with id `id` (a reply that arrives later checks it).
    pub fn is(&self, sock: usize, id: &str) -> bool {
        self.get(sock).is_some_and(|s| s.id == id)
    }

    /// The socket with id `id`.
    pub fn by_id(&self, id: &str) -> Option<usize> {
        by_id(&self.sockets, &self.foreign, id)
    }

    pub fn user(&self, sock: usize) -> Option<&str> {
        self.get(sock).and_then(|s| s.user.as_deref())
    }

    pub fn in_room(&self, sock: usize, room: &str) -> bool {
        self.get(sock)
            .is_some_and(|s| s.rooms.iter().any(|r| r == room))
    }

    /// Members of `room` in namespace `ns` (sid rooms included).
    pub fn members(&self, ns: usize, room: &str) -> Vec<usize> {
        match self.namespaces[ns].rooms.get(room) {
            Some(m) => m.iter().collect(),
            None => self
                .by_id(room)
                .filter(|&s| self.sockets[s].ns == ns)
                .into_iter()
                .collect(),
        }
    }

    /// Every room of namespace `ns` with a member, each socket's id room included.
    pub fn room_names(&self, ns: usize) -> Vec<&str> {
        let named = self.namespaces[ns].rooms.keys().map(String::as_str);
        let ids = self
            .sockets
            .iter()
            .filter(|(_, s)| s.ns == ns)
            .map(|(_, s)| s.id.as_str());
        named.chain(ids).collect()
    }

    /// How many sockets are in `room` of namespace `ns` (sid rooms not counted).
    pub fn room_len(&self, ns: usize, room: &str) -> usize {
        self.namespaces[ns].rooms.get(room).map_or(0, Members::len)
    }

    /// Adds a socket to its namespace.
    pub fn insert(&mut self, new: NewSocket) -> usize {
        let ns = new.ns;
        let slot = self.sockets.vacant_key();
        let id = new.id.unwrap_or_else(|| crate::engineio::slot_id(slot));
        if crate::engineio::slot_of(&id) != Some(slot) {
            self.foreign.insert(id.clone(), slot);
        }
        let sock = self.sockets.insert(Socket {
            id,
            ns,
            session: new.session,
            user: new.user,
            rooms: Vec::new(),
            mark: 0,
            claim_rooms: new.claim_rooms,
            pid: new.pid,
            connected_offset: new.connected_offset,
            buckets: None,
            recovered_at: new.recovered_at,
            presence_counted: false,
        });
        self.namespaces[ns].sockets += 1;
        sock
    }

    /// Removes a socket that has left all its rooms.
    pub fn remove(&mut self, sock: usize) -> Option<Socket> {
        let socket = self.sockets.try_remove(sock)?;
        debug_assert!(socket.rooms.is_empty(), "leave rooms before removing");
        if self.foreign.get(&socket.id) == Some(&sock) {
            self.foreign.remove(&socket.id);
        }
        self.namespaces[socket.ns].sockets -= 1;
        Some(socket)
    }

    /// Adds the socket to `room`: `Some(true)` when it joined now, `Some(false)` when it was
    /// in already, `None` when it is gone or in [`MAX_ROOMS_PER_SOCKET`] rooms.
    pub fn join(&mut self, sock: usize, room: &str) -> Option<bool> {
        let socket = self.sockets.get_mut(sock)?;
        if socket.rooms.iter().any(|r| r == room) {
            return Some(false);
        }
        if socket.rooms.len() >= MAX_ROOMS_PER_SOCKET {
            return None;
        }
        if socket.rooms.capacity() == 0 {
            // Most sockets are in one or two rooms: room for one, not the default four.
            socket.rooms.reserve_exact(1);
        }
        socket.rooms.push(room.to_owned());
        self.namespaces[socket.ns]
            .rooms
            .entry(room.to_owned())
            .and_modify(|m| m.insert(sock))
            .or_insert(Members::One(sock));
        Some(true)
    }

    /// Removes the socket from `room`; `true` when it was in it.
    pub fn leave(&mut self, sock: usize, room: &str) -> bool {
        let Some(socket) = self.sockets.get_mut(sock) else {
            return false;
        };
        let Some(i) = socket.rooms.iter().position(|r| r == room) else {
            return false;
        };
        socket.rooms.swap_remove(i);
        let rooms = &mut self.namespaces[socket.ns].rooms;
        if rooms.get_mut(room).is_some_and(|m| m.remove(sock)) {
            rooms.remove(room);
        }
        true
    }

    pub fn set_presence_counted(&mut self, sock: usize, counted: bool) {
        if let Some(s) = self.sockets.get_mut(sock) {
            s.presence_counted = counted;
        }
    }

    /// The claim stops counting for this socket (its grant was revoked).
    pub fn drop_claim(&mut self, sock: usize, room: &str) {
        if let Some(s) = self.sockets.get_mut(sock) {
            s.claim_rooms.retain(|r| r != room);
        }
    }

    /// The socket's rate-limit buckets, allocated on first use.
    pub fn buckets(&mut self, sock: usize, new: impl FnOnce() -> Buckets) -> Option<&mut Buckets> {
        let s = self.sockets.get_mut(sock)?;
        Some(s.buckets.get_or_insert_with(|| Box::new(new())))
    }

    /// Lends the reusable recipient list out.
    pub fn take_scratch(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.scratch)
    }

    pub fn put_scratch(&mut self, v: Vec<usize>) {
        self.scratch = v;
    }

    /// Sockets of namespace `ns` that `t` addresses, each once, in key order, into `out`.
    /// `behind(session)` says a recipient is too far behind for a volatile message.
    pub fn select(
        &mut self,
        ns: usize,
        t: &Target<'_>,
        behind: impl Fn(usize) -> bool,
        out: &mut Vec<usize>,
    ) {
        out.clear();
        self.seq += 1;
        let seq = self.seq;
        let Sockets {
            namespaces,
            sockets,
            foreign,
            ..
        } = self;
        let room_map = &namespaces[ns].rooms;
        // Sid rooms resolve through the id index, restricted to this namespace.
        for r in t.except {
            if let Some(members) = room_map.get(r) {
                members.iter().for_each(|m| {
                    mark(sockets, m, ns, seq);
                });
            } else if let Some(m) = by_id(sockets, foreign, r) {
                mark(sockets, m, ns, seq);
            }
        }
        if let Some(m) = t.except_socket {
            mark(sockets, m, ns, seq);
        }
        if t.all {
            for (m, s) in sockets.iter_mut() {
                if s.ns == ns && s.mark != seq {
                    s.mark = seq;
                    out.push(m);
                }
            }
        } else {
            for r in t.rooms {
                if let Some(members) = room_map.get(r) {
                    out.extend(members.iter().filter(|&m| mark(sockets, m, ns, seq)));
                } else if let Some(m) = by_id(sockets, foreign, r) {
                    if mark(sockets, m, ns, seq) {
                        out.push(m);
                    }
                }
            }
        }
        if t.volatile {
            out.retain(|&m| !behind(self.sockets[m].session));
        }
        // Write in key order, which is connection order: the kernel allocated each socket's
        // state in that order too, so the pass walks memory far more sequentially than the
        // room set's hash order. Measured at N=10,000: 7.1 -> 5.7 us of server CPU per write
        // (bench/write-cost.sh 10000 5), for a sort of ~0.1 ms.
        out.sort_unstable();
    }
}

/// Marks socket `m` of namespace `ns` as reached by selection `seq`; `true` the first time.
/// The socket with id `id`: the slot the id names, else the table of foreign ids.
fn by_id(sockets: &Slab<Socket>, foreign: &HashMap<String, usize>, id: &str) -> Option<usize> {
    crate::engineio::slot_of(id)
        .filter(|&k| sockets.get(k).is_some_and(|s| s.id == id))
        .or_else(|| foreign.get(id).copied())
}

fn mark(sockets: &mut Slab<Socket>, m: usize, ns: usize, seq: u64) -> bool {
    match sockets.get_mut(m) {
        Some(s) if s.ns == ns && s.mark != seq => {
            s.mark = seq;
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;
