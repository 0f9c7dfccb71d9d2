//! Presence: which users are online, counted by their connected sockets, with a grace period
//! before a user with no sockets is announced offline (absorbs page reloads).

use std::collections::HashMap;
use std::num::NonZeroU64;

/// One user's presence: 32 bytes (a table slot of 48 with its boxed key), kept for every user
/// with a socket, so the fields are packed: the last-seen time without a separate flag (0 ms
/// is never a real time) and the rooms to tell behind one thin box (none while online).
#[derive(Debug, Clone, Default)]
struct Entry {
    sockets: u32,
    online: bool,
    last_seen: Option<NonZeroU64>,
    /// Bumped on every connect so a pending grace timer can tell it is stale.
    gen: u64,
    /// Conversation and group rooms to tell when the user goes offline. The box is the point:
    /// 8 bytes in every entry, where a `Vec` is 24 and empty most of the time.
    #[allow(clippy::box_collection)]
    share_rooms: Option<Box<Vec<String>>>,
}

/// A user's presence as clients see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    pub online: bool,
    /// Milliseconds since the epoch of the last disconnect; `None` while online or never seen.
    pub last_seen: Option<u64>,
}

#[derive(Debug, Default)]
pub struct Presence {
    users: HashMap<Box<str>, Entry>,
}

impl Presence {
    /// A socket of `user` connected. Returns `true` when the user just came online.
    pub fn connect(&mut self, user: &str) -> bool {
        let e = match self.users.get_mut(user) {
            Some(e) => e,
            None => self.users.entry(user.into()).or_default(),
        };
        e.sockets += 1;
        e.gen += 1;
        if e.online {
            return false;
        }
        e.online = true;
        e.last_seen = None;
        true
    }

    /// A socket of `user` disconnected. Returns the generation to pass to [`Presence::expire`]
    /// after the grace period when it was the user's last socket.
    pub fn disconnect(&mut self, user: &str, share_rooms: Vec<String>) -> Option<u64> {
        let e = self.users.get_mut(user)?;
        e.sockets = e.sockets.saturating_sub(1);
        if e.sockets > 0 {
            return None;
        }
        e.share_rooms = (!share_rooms.is_empty()).then(|| Box::new(share_rooms));
        Some(e.gen)
    }

    /// The grace period is over. Returns the rooms to tell when the user is now offline.
    pub fn expire(&mut self, user: &str, gen: u64, now_ms: u64) -> Option<Vec<String>> {
        let e = self.users.get_mut(user)?;
        if e.gen != gen || e.sockets > 0 || !e.online {
            return None;
        }
        e.online = false;
        e.last_seen = NonZeroU64::new(now_ms);
        Some(e.share_rooms.take().map_or_else(Vec::new, |r| *r))
    }

    /// Sockets of `user` connected to this node.
    pub fn sockets(&self, user: &str) -> u32 {
        self.users.get(user).map_or(0, |e| e.sockets)
    }

    /// Every user with sockets on this node, with the count.
    pub fn local_counts(&self) -> impl Iterator<Item = (&str, u32)> {
        self.users
            .iter()
            .filter(|(_, e)| e.sockets > 0)
            .map(|(u, e)| (&**u, e.sockets))
    }

    pub fn state(&self, user: &str) -> State {
        self.users.get(user).map_or(
            State {
                online: false,
                last_seen: None,
            },
            |e| State {
                online: e.online,
                last_seen: e.last_seen.map(NonZeroU64::get),
            },
        )
    }

    /// Forgets offline users last seen before `cutoff_ms`, bounding memory.
    pub fn prune(&mut self, cutoff_ms: u64) {
        self.users.retain(|_, e| {
            e.online || e.sockets > 0 || e.last_seen.is_some_and(|t| t.get() >= cutoff_ms)
        });
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    pub fn online_count(&self) -> usize {
        self.users.values().filter(|e| e.online).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn online_until_last_socket_and_grace() {
        let mut p = Presence::default();
        assert!(p.connect("u"));
        assert!(!p.connect("u"));
        assert_eq!(p.disconnect("u", vec![]), None);
        let gen = p.disconnect("u", vec!["conversation:1".into()]).unwrap();
        assert!(p.state("u").online, "still online during the grace period");
        assert_eq!(
            p.expire("u", gen, 1000),
            Some(vec!["conversation:1".into()])
        );
        assert_eq!(
            p.state("u"),
            State {
                online: false,
                last_seen: Some(1000)
            }
        );
    }

    #[test]
    fn reconnect_within_grace_cancels_offline() {
        let mut p = Presence::default();
        p.connect("u");
        let gen = p.disconnect("u", vec![]).unwrap();
        assert!(!p.connect("u"), "a reload is not a new online transition");
        assert_eq!(p.expire("u", gen, 5), None);
        assert!(p.state("u").online);
    }

    #[test]
    fn entry_stays_small() {
        assert!(
            std::mem::size_of::<Entry>() <= 40,
            "{}",
            std::mem::size_of::<Entry>()
        );
    }

    #[test]
    fn prune_keeps_recent_and_online() {
        let mut p = Presence::default();
        p.connect("a");
        p.connect("b");
        let g = p.disconnect("b", vec![]).unwrap();
        p.expire("b", g, 10);
        p.prune(11);
        assert_eq!(p.len(), 1);
        assert!(p.state("a").online);
    }
}
