//! One Socket.IO socket as `Sockets` keeps it, with its rarely set state boxed, and what a
//! new socket starts with.

use crate::engineio::IdKey;
use crate::store::ratelimit::Buckets;
use std::time::Instant;

/// Prefix of a user's own room.
pub(super) const USER_ROOM: &str = "user:";

/// One Socket.IO socket: a session connected to a namespace. Read through [`Sockets::get`];
/// changed only through `Sockets`' verbs.
#[derive(Debug)]
pub struct Socket {
    /// Inline: a minted id (22 random characters and the slot) needs no heap chunk.
    pub id: IdKey,
    pub ns: usize,
    pub session: usize,
    /// The authenticated user, `None` for anonymous sockets.
    pub user: Option<String>,
    /// Rooms joined explicitly (the sid room and the own user room are implicit).
    pub(super) rooms: Vec<String>,
    /// Last selection that reached (or excluded) this socket; deduplicates overlapping rooms.
    pub(super) mark: u64,
    /// Private id for connection state recovery (when it is on); inline like `id`.
    pub pid: Option<IdKey>,
    /// Recovery offset current when the socket connected.
    pub connected_offset: u64,
    /// What few sockets have, allocated once one of them is set.
    pub(super) rare: Option<Box<Rare>>,
    /// Counted in presence (so its disconnect is subtracted exactly once).
    pub presence_counted: bool,
    /// In its user's own room `user:<id>` (kept in `Sockets::users`, not in `rooms`).
    pub(super) in_user_room: bool,
}

/// A socket's rarely set state, boxed: 8 bytes in every socket instead of 48.
#[derive(Debug, Default)]
pub(super) struct Rare {
    /// Private rooms the token's claims grant.
    pub(super) claim_rooms: Vec<String>,
    /// When this socket was recovered: the time its previous transport was lost.
    pub(super) recovered_at: Option<Instant>,
    /// Rate-limit buckets, allocated on the first limited event.
    pub(super) buckets: Option<Buckets>,
}

impl Socket {
    /// Rooms joined explicitly, without the implicit sid and own user rooms.
    pub fn rooms(&self) -> &[String] {
        &self.rooms
    }

    /// Every room it is in but its sid room: [`Socket::rooms`] and its own user room.
    pub fn room_list(&self) -> Vec<String> {
        let mut all = Vec::with_capacity(self.rooms.len() + 1);
        if let Some(u) = self.user.as_deref().filter(|_| self.in_user_room) {
            all.push(format!("{USER_ROOM}{u}"));
        }
        all.extend(self.rooms.iter().cloned());
        all
    }

    /// Whether `room` is this socket's own user room (`user:<its user id>`).
    pub(super) fn is_own_user_room(&self, room: &str) -> bool {
        match (room.strip_prefix(USER_ROOM), self.user.as_deref()) {
            (Some(u), Some(own)) => u == own,
            _ => false,
        }
    }

    /// Private rooms the token's claims grant.
    pub fn claim_rooms(&self) -> &[String] {
        self.rare.as_ref().map_or(&[], |r| &r.claim_rooms)
    }

    /// When this socket was recovered: the time its previous transport was lost.
    pub fn recovered_at(&self) -> Option<Instant> {
        self.rare.as_ref().and_then(|r| r.recovered_at)
    }

    pub(super) fn rare_mut(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }
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
