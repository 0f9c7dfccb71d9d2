//! Room access control: `room:join`/`room:leave` checked against room kinds and grants (token
//! claims or the internal API), and the grant verbs that keep the store and its Redis mirror
//! together (every grant change goes through them).

use super::events::{ack, Call, Outcome, Reply};
use super::validate::Refusal;
use crate::server::Server;
use crate::store::grants::{self, classify, Denied, RoomKind};
use serde_json::json;

impl Server {
    /// Whether socket `sock` may be in `room`.
    ///
    /// # Errors
    /// A refusal naming why not.
    pub(crate) fn may_join(&self, sock: usize, room: &str) -> Result<(), Refusal> {
        let Some(socket) = self.sockets.get(sock) else {
            return Err(Refusal::forbidden("socket is gone"));
        };
        let user = socket.user.as_deref();
        grants::may_join(room, user, socket.claim_rooms(), &self.stores.grants).map_err(|d| match d
        {
            Denied::Invalid(why) => Refusal::invalid(why),
            Denied::OtherUser => Refusal::forbidden("another user's room"),
            Denied::Anonymous => Refusal::forbidden("authentication required"),
            Denied::NoGrant => Refusal::forbidden(format!("no grant for {room}")),
        })
    }

    pub(super) fn room_join(&mut self, c: &mut Call) -> Outcome {
        let room = c.p.text("room", 200)?;
        if let Err(refusal) = self.may_join(c.sock, &room) {
            // A grant written to Redis (by the platform or another node) is looked up there;
            // the ack follows the reply.
            let private = matches!(classify(&room), Ok(RoomKind::Private));
            if private && self.defer_join(c.sock, &c.user, &room, c.ack) {
                return Ok(Reply::Later);
            }
            return Err(refusal);
        }
        self.join_checked(c.sock, &room)?;
        ack(json!({"ok": true}))
    }

    pub(super) fn room_leave(&mut self, c: &mut Call) -> Outcome {
        let room = c.p.text("room", 200)?;
        if room.starts_with("user:") {
            return Err(Refusal::forbidden("the user room cannot be left"));
        }
        self.leave(c.sock, &room);
        ack(json!({"ok": true}))
    }

    /// Grants `user` the private `room`, here and in the Redis mirror. `true` when new.
    pub(crate) fn grant(&mut self, room: &str, user: &str) -> bool {
        let new = self.stores.grants.grant(room, user);
        self.mirror_grant(room, user, true);
        new
    }

    /// Takes `user`'s grant to `room` back, here and in the Redis mirror; their sockets stay
    /// where they are (the caller moves them).
    pub(crate) fn drop_grant(&mut self, room: &str, user: &str) {
        self.stores.grants.revoke(room, user);
        self.mirror_grant(room, user, false);
    }

    /// Revokes `user`'s grant to `room` (API or token claim): [`Server::drop_grant`], then
    /// their sockets leave the room at once. Returns how many sockets were removed.
    pub(crate) fn revoke_grant(&mut self, room: &str, user: &str) -> usize {
        self.drop_grant(room, user);
        self.evict(room, user)
    }

    /// `user`'s sockets leave `room` and get `room:removed`; a token's claim to it stops
    /// counting for them. Returns how many sockets were removed.
    pub(crate) fn evict(&mut self, room: &str, user: &str) -> usize {
        let own = format!("user:{user}");
        let members: Vec<usize> = (0..self.sockets.ns_len())
            .flat_map(|ns| self.sockets.members(ns, &own))
            .collect();
        let mut removed = 0;
        for sock in members {
            self.sockets.drop_claim(sock, room);
            if self.sockets.in_room(sock, room) {
                self.leave(sock, room);
                removed += 1;
                self.emit_to(
                    sock,
                    "room:removed",
                    &[json!({"room": room, "reason": "revoked"})],
                    Vec::new(),
                );
            }
        }
        removed
    }
}
