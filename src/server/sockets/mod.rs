//! The `Sockets` part: namespaces, Socket.IO sockets and rooms, and recipient selection as a
//! function of plain data (rooms, except, flags) to socket keys. No I/O: what a socket's
//! session and connection are is the business of the parts below.

mod members;
mod socket;

use crate::engineio::IdKey;
use crate::store::ratelimit::Buckets;
use members::Members;
use slab::Slab;
pub use socket::{NewSocket, Socket};
use socket::{Rare, USER_ROOM};
use std::collections::HashMap;

/// Rooms one socket may be in (its own id room not counted); bounds memory and the cost of
/// joins, leaves and recovery replay.
pub const MAX_ROOMS_PER_SOCKET: usize = 1000;

/// A namespace and its rooms. Sid rooms are implicit (looked up by id, see `by_id`) and so
/// are a user's own rooms (`user:<id>`, see `Sockets::users`), so an idle socket costs no
/// room entry.
#[derive(Debug)]
struct Namespace {
    name: String,
    rooms: HashMap<String, Members>,
    sockets: usize,
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
    /// User id -> the sockets in that user's own room `user:<id>`, of every namespace (the
    /// namespace is checked per socket, as for sid rooms). One slot per user instead of a
    /// room entry, the room name twice and a list per socket (~160 bytes per connection).
    /// Another socket put in `user:<id>` explicitly (the Admin UI, a remote `socketsJoin`) is
    /// an ordinary member in the namespace's room map.
    users: HashMap<Box<str>, Members>,
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
            users: HashMap::new(),
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

    /// Rooms with members, over all namespaces (a user's own room once, whatever its namespaces).
    pub fn room_count(&self) -> usize {
        let named: usize = self.namespaces.iter().map(|n| n.rooms.len()).sum();
        // A user room with explicit members too (rare) is counted once, in the room map.
        let both = self
            .namespaces
            .iter()
            .flat_map(|n| n.rooms.keys())
            .filter_map(|r| r.strip_prefix(USER_ROOM))
            .filter(|u| self.users.contains_key(*u))
            .count();
        named + self.users.len() - both.min(self.users.len())
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
        self.get(sock).is_some_and(|s| s.id.as_str() == id)
    }

    /// The socket with id `id`.
    pub fn by_id(&self, id: &str) -> Option<usize> {
        by_id(&self.sockets, &self.foreign, id)
    }

    pub fn user(&self, sock: usize) -> Option<&str> {
        self.get(sock).and_then(|s| s.user.as_deref())
    }

    pub fn in_room(&self, sock: usize, room: &str) -> bool {
        self.get(sock).is_some_and(|s| {
            (s.in_user_room && s.is_own_user_room(room)) || s.rooms.iter().any(|r| r == room)
        })
    }

    /// Members of `room` in namespace `ns` (sid and user rooms included), in key order.
    pub fn members(&self, ns: usize, room: &str) -> Vec<usize> {
        let mut out: Vec<usize> = match self.namespaces[ns].rooms.get(room) {
            Some(m) => m.iter().collect(),
            None => self
                .by_id(room)
                .filter(|&s| self.sockets[s].ns == ns)
                .into_iter()
                .collect(),
        };
        out.extend(self.user_room(ns, room));
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The sockets of namespace `ns` in `room` as their own user room.
    fn user_room(&self, ns: usize, room: &str) -> impl Iterator<Item = usize> + '_ {
        room.strip_prefix(USER_ROOM)
            .and_then(|u| self.users.get(u))
            .into_iter()
            .flat_map(Members::iter)
            .filter(move |&m| self.sockets.get(m).is_some_and(|s| s.ns == ns))
    }

    /// Every room of namespace `ns` with a member, each socket's id room included.
    pub fn room_names(&self, ns: usize) -> Vec<String> {
        let mut names: Vec<String> = self.namespaces[ns].rooms.keys().cloned().collect();
        for (u, m) in &self.users {
            let room = format!("{USER_ROOM}{u}");
            let here = m
                .iter()
                .any(|x| self.sockets.get(x).is_some_and(|s| s.ns == ns));
            if here && !self.namespaces[ns].rooms.contains_key(&room) {
                names.push(room);
            }
        }
        let ids = self.sockets.iter().filter(|(_, s)| s.ns == ns);
        names.extend(ids.map(|(_, s)| s.id.to_string()));
        names
    }

    /// How many sockets are in `room` of namespace `ns` (sid rooms not counted).
    pub fn room_len(&self, ns: usize, room: &str) -> usize {
        if room.starts_with(USER_ROOM) {
            // Implicit members, and perhaps explicit ones too: each socket once.
            return self.members(ns, room).len();
        }
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
            id: IdKey::new(&id),
            ns,
            session: new.session,
            user: new.user,
            rooms: Vec::new(),
            mark: 0,
            pid: new.pid.as_deref().map(IdKey::new),
            connected_offset: new.connected_offset,
            rare: (!new.claim_rooms.is_empty() || new.recovered_at.is_some()).then(|| {
                Box::new(Rare {
                    claim_rooms: new.claim_rooms,
                    recovered_at: new.recovered_at,
                    buckets: None,
                })
            }),
            presence_counted: false,
            in_user_room: false,
        });
        self.namespaces[ns].sockets += 1;
        sock
    }

    /// Removes a socket that has left all its rooms.
    pub fn remove(&mut self, sock: usize) -> Option<Socket> {
        let socket = self.sockets.try_remove(sock)?;
        debug_assert!(
            socket.rooms.is_empty() && !socket.in_user_room,
            "leave rooms before removing"
        );
        if self.foreign.get(socket.id.as_str()) == Some(&sock) {
            self.foreign.remove(socket.id.as_str());
        }
        self.namespaces[socket.ns].sockets -= 1;
        Some(socket)
    }

    /// Adds the socket to `room`: `Some(true)` when it joined now, `Some(false)` when it was
    /// in already, `None` when it is gone or in [`MAX_ROOMS_PER_SOCKET`] rooms.
    pub fn join(&mut self, sock: usize, room: &str) -> Option<bool> {
        let socket = self.sockets.get_mut(sock)?;
        if socket.is_own_user_room(room) {
            if socket.in_user_room {
                return Some(false);
            }
            socket.in_user_room = true;
            members::add(&mut self.users, &room[USER_ROOM.len()..], sock);
            return Some(true);
        }
        if socket.rooms.iter().any(|r| r == room) {
            return Some(false);
        }
        // The own user room counts, as it did when it was kept in `rooms`.
        if socket.rooms.len() + usize::from(socket.in_user_room) >= MAX_ROOMS_PER_SOCKET {
            return None;
        }
        if socket.rooms.capacity() == 0 {
            // Most sockets are in one or two rooms: room for one, not the default four.
            socket.rooms.reserve_exact(1);
        }
        socket.rooms.push(room.to_owned());
        members::add(&mut self.namespaces[socket.ns].rooms, room, sock);
        Some(true)
    }

    /// Removes the socket from `room`; `true` when it was in it.
    pub fn leave(&mut self, sock: usize, room: &str) -> bool {
        let Some(socket) = self.sockets.get_mut(sock) else {
            return false;
        };
        if socket.in_user_room && socket.is_own_user_room(room) {
            socket.in_user_room = false;
            members::remove(&mut self.users, &room[USER_ROOM.len()..], sock);
            return true;
        }
        let Some(i) = socket.rooms.iter().position(|r| r == room) else {
            return false;
        };
        socket.rooms.swap_remove(i);
        members::remove(&mut self.namespaces[socket.ns].rooms, room, sock);
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
            if let Some(rare) = &mut s.rare {
                rare.claim_rooms.retain(|r| r != room);
            }
        }
    }

    /// The socket's rate-limit buckets, allocated on first use.
    pub fn buckets(&mut self, sock: usize, new: impl FnOnce() -> Buckets) -> Option<&mut Buckets> {
        let s = self.sockets.get_mut(sock)?;
        Some(s.rare_mut().buckets.get_or_insert_with(new))
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
            users,
            ..
        } = self;
        let room_map = &namespaces[ns].rooms;
        // Sid rooms resolve through the id index, user rooms through the user index, both
        // restricted to this namespace (by `mark`).
        let own = |r: &str| r.strip_prefix(USER_ROOM).and_then(|u| users.get(u));
        for r in t.except {
            if let Some(members) = room_map.get(r) {
                members.iter().for_each(|m| {
                    mark(sockets, m, ns, seq);
                });
            } else if let Some(m) = by_id(sockets, foreign, r) {
                mark(sockets, m, ns, seq);
            }
            for m in own(r).into_iter().flat_map(Members::iter) {
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
                if let Some(members) = own(r) {
                    out.extend(members.iter().filter(|&m| mark(sockets, m, ns, seq)));
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

/// The socket with id `id`: the slot the id names, else the table of foreign ids.
fn by_id(sockets: &Slab<Socket>, foreign: &HashMap<String, usize>, id: &str) -> Option<usize> {
    crate::engineio::slot_of(id)
        .filter(|&k| sockets.get(k).is_some_and(|s| s.id.as_str() == id))
        .or_else(|| foreign.get(id).copied())
}

/// Marks socket `m` of namespace `ns` as reached by selection `seq`; `true` the first time.
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
