//! Room access control: `room:join`/`room:leave` checked against room kinds and grants (token
//! claims or the internal API), and grant revocation that removes sockets at once.

use super::validate::{Outcome, Payload, Refusal};
use crate::server::Server;
use crate::store::grants::{classify, RoomKind};
use serde_json::json;

impl Server {
    /// Whether socket `sock` may be in `room`.
    ///
    /// # Errors
    /// A refusal naming why not.
    pub(crate) fn may_join(&self, sock: usize, room: &str) -> Result<(), Refusal> {
        let socket = &self.sockets[sock];
        let kind = classify(room).map_err(Refusal::invalid)?;
        let user = socket.user.as_deref();
        match kind {
            RoomKind::User(id) if Some(id) == user => Ok(()),
            RoomKind::User(_) => Err(Refusal::forbidden("another user's room")),
            RoomKind::Public if user.is_some() => Ok(()),
            RoomKind::Public => Err(Refusal::forbidden("authentication required")),
            RoomKind::Private => {
                let granted = socket.claim_rooms.iter().any(|r| r == room)
                    || user.is_some_and(|u| self.grants.has(room, u));
                if granted {
                    Ok(())
                } else {
                    Err(Refusal::forbidden(format!("no grant for {room}")))
                }
            }
        }
    }

    pub(super) fn room_join(&mut self, sock: usize, user: &str, p: &Payload) -> Outcome {
        let room = p.text("room", 200)?;
        if let Err(refusal) = self.may_join(sock, &room) {
            // A grant written to Redis (by the platform or another node) is looked up there;
            // the ack follows the reply.
            let private = matches!(classify(&room), Ok(RoomKind::Private));
            if private && self.defer_join(sock, user, &room, self.current_ack) {
                return Err(Refusal::deferred());
            }
            return Err(refusal);
        }
        self.join_checked(sock, &room)?;
        Ok(json!({"ok": true}))
    }

    pub(super) fn room_leave(&mut self, sock: usize, p: &Payload) -> Outcome {
        let room = p.text("room", 200)?;
        if room.starts_with("user:") {
            return Err(Refusal::forbidden("the user room cannot be left"));
        }
        self.leave(sock, &room);
        Ok(json!({"ok": true}))
    }

    /// Revokes `user`'s grant to `room` (API or token claim): their sockets leave the room now
    /// and get `room:removed`. Returns how many sockets were removed.
    pub(crate) fn revoke_grant(&mut self, room: &str, user: &str) -> usize {
        self.grants.revoke(room, user);
        let members: Vec<usize> = self
            .namespaces
            .iter()
            .flat_map(|ns| {
                ns.rooms
                    .get(&format!("user:{user}"))
                    .into_iter()
                    .flatten()
                    .copied()
            })
            .collect();
        let mut removed = 0;
        for sock in members {
            // A token's claim cannot be taken back, but it stops counting for this socket.
            // An earlier emit may have closed a slow client's session (and this socket).
            let Some(socket) = self.sockets.get_mut(sock) else {
                continue;
            };
            socket.claim_rooms.retain(|r| r != room);
            if self.in_room(sock, room) {
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
