//! Room membership: the members of one room, kept inline while there is one, and the two
//! verbs every membership map shares (the namespaces' room maps and the user index).

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::hash::Hash;

/// A room's members: one socket inline (a user's own room, most of the time: no set
/// allocated), or a boxed set (so a map slot is 40 bytes, not 72).
#[derive(Debug)]
// The box is the point: a set is 48 bytes inline and one-member rooms, the most common, are
// better off with a 16-byte slot value.
#[allow(clippy::box_collection)]
pub(super) enum Members {
    One(usize),
    Many(Box<HashSet<usize>>),
}

impl Members {
    pub(super) fn insert(&mut self, sock: usize) {
        match self {
            Members::One(x) if *x == sock => {}
            Members::One(x) => *self = Members::Many(Box::new(HashSet::from([*x, sock]))),
            Members::Many(set) => {
                set.insert(sock);
            }
        }
    }

    /// Removes `sock`; `true` when the room is now empty.
    pub(super) fn remove(&mut self, sock: usize) -> bool {
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

    pub(super) fn len(&self) -> usize {
        match self {
            Members::One(_) => 1,
            Members::Many(set) => set.len(),
        }
    }

    pub(super) fn iter(&self) -> MembersIter<'_> {
        match self {
            Members::One(x) => MembersIter::One(Some(*x)),
            Members::Many(set) => MembersIter::Many(set.iter()),
        }
    }
}

pub(super) enum MembersIter<'a> {
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

/// Adds `sock` to the members under `key` of `map`, creating the entry (a key is allocated
/// only then).
pub(super) fn add<K>(map: &mut HashMap<K, Members>, key: &str, sock: usize)
where
    K: Borrow<str> + Hash + Eq + for<'a> From<&'a str>,
{
    match map.get_mut(key) {
        Some(m) => m.insert(sock),
        None => {
            map.insert(K::from(key), Members::One(sock));
        }
    }
}

/// Takes `sock` out of the members under `key` of `map`, dropping the entry once empty.
pub(super) fn remove<K>(map: &mut HashMap<K, Members>, key: &str, sock: usize)
where
    K: Borrow<str> + Hash + Eq,
{
    if map.get_mut(key).is_some_and(|m| m.remove(sock)) {
        map.remove(key);
    }
}
