//! Room names, their kinds, and grants: which users may join which private rooms.
//!
//! ```text
//! user:<id>          the user's own sockets only
//! feed, post:<id>    public
//! conversation:<id> group:<id> document:<id> call:<id> quiz:<id> class:<id>   grant needed
//! ```

use std::collections::{HashMap, HashSet};

/// Longest id inside a room name.
pub const MAX_ID_LEN: usize = 128;

/// Private room kinds, with the claim array that grants them.
pub const PRIVATE_KINDS: [(&str, &str); 6] = [
    ("conversation", "conversations"),
    ("group", "groups"),
    ("document", "documents"),
    ("call", "calls"),
    ("quiz", "quizzes"),
    ("class", "classes"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomKind<'a> {
    /// `user:<id>`: only that user.
    User(&'a str),
    Public,
    Private,
}

/// Whether `id` is a valid id: 1 to 128 of `[A-Za-z0-9_.:@-]`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':' | b'@'))
}

/// Classifies a room name.
///
/// # Errors
/// A message when the name is not one of the room kinds.
pub fn classify(room: &str) -> Result<RoomKind<'_>, &'static str> {
    if room == "feed" {
        return Ok(RoomKind::Public);
    }
    let (kind, id) = room.split_once(':').ok_or("unknown room kind")?;
    if !valid_id(id) {
        return Err("invalid room id");
    }
    match kind {
        "user" => Ok(RoomKind::User(id)),
        "post" => Ok(RoomKind::Public),
        k if PRIVATE_KINDS.iter().any(|(p, _)| *p == k) => Ok(RoomKind::Private),
        _ => Err("unknown room kind"),
    }
}

/// The private rooms a token's claims grant: `rooms` (full names) and the per-kind id arrays.
pub fn rooms_from_claims(claims: &serde_json::Map<String, serde_json::Value>) -> Vec<String> {
    let mut out = Vec::new();
    let ids = |v: Option<&serde_json::Value>| -> Vec<String> {
        v.and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| match x {
                        serde_json::Value::String(s) => Some(s.clone()),
                        serde_json::Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    for room in ids(claims.get("rooms")) {
        if matches!(classify(&room), Ok(RoomKind::Private)) {
            out.push(room);
        }
    }
    for (kind, claim) in PRIVATE_KINDS {
        for id in ids(claims.get(claim)) {
            if valid_id(&id) {
                out.push(format!("{kind}:{id}"));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Why a socket may not be in a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// The name is not a room kind (or its id is invalid).
    Invalid(&'static str),
    /// Someone else's `user:` room.
    OtherUser,
    /// Anonymous sockets join no platform room.
    Anonymous,
    /// A private room without a token claim or an API grant.
    NoGrant,
}

/// The access rule: whether `user` (with the private rooms its token `claims`) may be in
/// `room`, given the API `grants`.
///
/// # Errors
/// Why not.
pub fn may_join(
    room: &str,
    user: Option<&str>,
    claims: &[String],
    grants: &Grants,
) -> Result<(), Denied> {
    match classify(room).map_err(Denied::Invalid)? {
        RoomKind::User(id) if Some(id) == user => Ok(()),
        RoomKind::User(_) => Err(Denied::OtherUser),
        RoomKind::Public if user.is_some() => Ok(()),
        RoomKind::Public => Err(Denied::Anonymous),
        RoomKind::Private => {
            let granted =
                claims.iter().any(|r| r == room) || user.is_some_and(|u| grants.has(room, u));
            if granted {
                Ok(())
            } else {
                Err(Denied::NoGrant)
            }
        }
    }
}

/// Grants given through the internal API: room -> users, and the reverse.
#[derive(Debug, Default)]
pub struct Grants {
    by_room: HashMap<String, HashSet<String>>,
    by_user: HashMap<String, HashSet<String>>,
}

impl Grants {
    /// Returns `true` if the grant is new.
    pub fn grant(&mut self, room: &str, user: &str) -> bool {
        let new = self
            .by_room
            .entry(room.to_owned())
            .or_default()
            .insert(user.to_owned());
        self.by_user
            .entry(user.to_owned())
            .or_default()
            .insert(room.to_owned());
        new
    }

    /// Returns `true` if there was a grant to revoke.
    pub fn revoke(&mut self, room: &str, user: &str) -> bool {
        let had = self.by_room.get_mut(room).is_some_and(|u| u.remove(user));
        if self.by_room.get(room).is_some_and(HashSet::is_empty) {
            self.by_room.remove(room);
        }
        if let Some(rooms) = self.by_user.get_mut(user) {
            rooms.remove(room);
            if rooms.is_empty() {
                self.by_user.remove(user);
            }
        }
        had
    }

    pub fn has(&self, room: &str, user: &str) -> bool {
        self.by_room.get(room).is_some_and(|u| u.contains(user))
    }

    /// Users granted `room`, sorted.
    pub fn members(&self, room: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .by_room
            .get(room)
            .map(|u| u.iter().cloned().collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Rooms granted to `user` through the API.
    pub fn rooms_of(&self, user: &str) -> impl Iterator<Item = &String> {
        self.by_user.get(user).into_iter().flatten()
    }

    /// Every (room, user) grant.
    pub fn all(&self) -> impl Iterator<Item = (&String, &String)> {
        self.by_room
            .iter()
            .flat_map(|(r, users)| users.iter().map(move |u| (r, u)))
    }

    pub fn len(&self) -> usize {
        self.by_room.values().map(HashSet::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_room.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn classify_rooms() {
        assert_eq!(classify("feed"), Ok(RoomKind::Public));
        assert_eq!(classify("post:9"), Ok(RoomKind::Public));
        assert_eq!(classify("user:42"), Ok(RoomKind::User("42")));
        assert_eq!(classify("conversation:c1"), Ok(RoomKind::Private));
        assert!(classify("admin:1").is_err());
        assert!(classify("conversation:").is_err());
        assert!(classify("conversation:a b").is_err());
        assert!(classify("nothing").is_err());
    }

    #[test]
    fn claims_grant_private_rooms_only() {
        let claims = json!({"rooms": ["conversation:1", "feed", "bogus"], "groups": ["g1", 7], "classes": ["bad id"]});
        let rooms = rooms_from_claims(claims.as_object().unwrap());
        assert_eq!(rooms, vec!["conversation:1", "group:7", "group:g1"]);
    }

    #[test]
    fn grant_and_revoke() {
        let mut g = Grants::default();
        assert!(g.grant("group:1", "u1"));
        assert!(!g.grant("group:1", "u1"));
        g.grant("group:1", "u2");
        assert_eq!(g.members("group:1"), vec!["u1", "u2"]);
        assert!(g.revoke("group:1", "u1"));
        assert!(!g.revoke("group:1", "u1"));
        assert!(!g.has("group:1", "u1"));
        assert_eq!(g.rooms_of("u2").collect::<Vec<_>>(), vec!["group:1"]);
        g.revoke("group:1", "u2");
        assert!(g.is_empty());
    }

    #[test]
    fn access_rule_for_each_room_kind() {
        let mut g = Grants::default();
        let claims = vec!["group:g1".to_string()];
        let me = Some("u1");
        assert_eq!(may_join("user:u1", me, &[], &g), Ok(()));
        assert_eq!(may_join("user:u2", me, &[], &g), Err(Denied::OtherUser));
        assert_eq!(may_join("feed", me, &[], &g), Ok(()));
        assert_eq!(may_join("post:7", None, &[], &g), Err(Denied::Anonymous));
        assert_eq!(may_join("group:g1", me, &claims, &g), Ok(()), "token claim");
        assert_eq!(
            may_join("conversation:c1", me, &claims, &g),
            Err(Denied::NoGrant)
        );
        assert!(matches!(
            may_join("nope:1", me, &[], &g),
            Err(Denied::Invalid(_))
        ));
        g.grant("conversation:c1", "u1");
        assert_eq!(
            may_join("conversation:c1", me, &[], &g),
            Ok(()),
            "API grant"
        );
        assert_eq!(
            may_join("conversation:c1", Some("u2"), &[], &g),
            Err(Denied::NoGrant),
            "a grant is per user"
        );
        g.revoke("conversation:c1", "u1");
        assert_eq!(
            may_join("conversation:c1", me, &[], &g),
            Err(Denied::NoGrant),
            "revoked"
        );
        assert_eq!(
            may_join("conversation:c1", None, &[], &g),
            Err(Denied::NoGrant)
        );
    }
}
