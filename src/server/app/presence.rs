//! Presence: online/offline transitions with a grace period, told to users who share a
//! conversation or group with the user and to explicit subscribers (sockets in the internal
//! room `presence:<userId>`); plus the offline notification mailbox delivered on connect.

use super::validate::{id_value, Outcome, Payload, Refusal};
use crate::server::sio::Target;
use crate::server::Server;
use crate::timer::Timer;
use serde_json::{json, Map, Value};
use std::time::Instant;

/// Users one socket may subscribe to.
pub const MAX_SUBSCRIPTIONS: usize = 500;

impl Server {
    /// Conversation and group rooms the socket's user is granted (claims and API).
    fn share_rooms(&self, sock: usize) -> Vec<String> {
        let socket = &self.sockets[sock];
        self.share_rooms_of(socket.user.as_deref(), &socket.claim_rooms)
    }

    /// The conversation and group rooms, among `claim_rooms` and `user`'s API grants, that
    /// hear `user`'s presence transitions; sorted, without repeats.
    pub(crate) fn share_rooms_of(&self, user: Option<&str>, claim_rooms: &[String]) -> Vec<String> {
        let mut rooms: Vec<String> = claim_rooms.to_vec();
        if let Some(u) = user {
            rooms.extend(self.grants.rooms_of(u).cloned());
        }
        rooms.retain(|r| r.starts_with("conversation:") || r.starts_with("group:"));
        rooms.sort();
        rooms.dedup();
        rooms
    }

    pub(crate) fn announce_presence(
        &mut self,
        user: &str,
        online: bool,
        last_seen: Option<u64>,
        mut rooms: Vec<String>,
    ) {
        rooms.push(format!("presence:{user}"));
        let own = [format!("user:{user}")];
        let event = if online {
            "user:online"
        } else {
            "user:offline"
        };
        let body = json!({"userId": user, "lastSeen": last_seen});
        self.broadcast_event(
            0,
            event,
            vec![body.clone()],
            Vec::new(),
            Target {
                rooms: &rooms,
                except: &own,
                ..Target::default()
            },
        );
        self.forward(event, user, Some(user), body);
    }

    pub(super) fn presence_connected(&mut self, sock: usize) {
        let Some(user) = self.sockets[sock].user.clone() else {
            return;
        };
        self.sockets[sock].presence_counted = true;
        let online = self.presence.connect(&user);
        self.mirror_presence(&user);
        if online {
            let rooms = self.share_rooms(sock);
            self.presence_transition(&user, true, None, rooms);
        }
    }

    pub(super) fn presence_disconnected(&mut self, sock: usize) {
        if !self.sockets[sock].presence_counted {
            return;
        }
        self.sockets[sock].presence_counted = false;
        let Some(user) = self.sockets[sock].user.clone() else {
            return;
        };
        let rooms = self.share_rooms(sock);
        let last = self.presence.disconnect(&user, rooms);
        self.mirror_presence(&user);
        if let Some(gen) = last {
            self.timers.at(
                Instant::now() + self.config.presence_grace,
                Timer::PresenceGrace { user, gen },
            );
        }
    }

    pub(crate) fn on_presence_grace(&mut self, user: &str, gen: u64) {
        let now = crate::store::now_ms();
        if let Some(rooms) = self.presence.expire(user, gen, now) {
            self.presence_transition(user, false, Some(now), rooms);
        }
    }

    /// `GET /api/presence` body for these users: their local states.
    pub(crate) fn presence_json(&self, users: &[String]) -> Value {
        let states: Map<String, Value> = users
            .iter()
            .map(|u| {
                let s = self.presence.state(u);
                (
                    u.clone(),
                    json!({"online": s.online, "lastSeen": s.last_seen}),
                )
            })
            .collect();
        Value::Object(states)
    }

    fn user_ids(p: &Payload) -> Result<Vec<String>, Refusal> {
        let Some(Value::Array(ids)) = p.get("userIds") else {
            return Err(Refusal::invalid("`userIds` must be an array of user ids"));
        };
        if ids.len() > MAX_SUBSCRIPTIONS {
            return Err(Refusal::invalid(format!(
                "at most {MAX_SUBSCRIPTIONS} `userIds`"
            )));
        }
        ids.iter()
            .map(|v| {
                id_value(v)
                    .ok_or_else(|| Refusal::invalid("`userIds` must be an array of user ids"))
            })
            .collect()
    }

    pub(super) fn presence_subscribe(&mut self, sock: usize, p: &Payload) -> Outcome {
        let ids = Self::user_ids(p)?;
        let have = self.sockets[sock]
            .rooms
            .iter()
            .filter(|r| r.starts_with("presence:"))
            .count();
        let new = ids
            .iter()
            .filter(|u| !self.in_room(sock, &format!("presence:{u}")))
            .count();
        if have + new > MAX_SUBSCRIPTIONS {
            return Err(Refusal::invalid(format!(
                "at most {MAX_SUBSCRIPTIONS} subscriptions per socket"
            )));
        }
        for u in &ids {
            self.join(sock, &format!("presence:{u}"));
        }
        // With Redis the states are the cluster's; the ack follows the reply.
        if self.presence_subscribe_deferred(sock, &ids, self.current_ack) {
            return Err(Refusal::deferred());
        }
        let states = self.presence_json(&ids);
        self.emit_to(
            sock,
            "user:presence",
            std::slice::from_ref(&states),
            Vec::new(),
        );
        Ok(json!({"ok": true, "presence": states}))
    }

    pub(super) fn presence_unsubscribe(&mut self, sock: usize, p: &Payload) -> Outcome {
        for u in Self::user_ids(p)? {
            self.leave(sock, &format!("presence:{u}"));
        }
        Ok(json!({"ok": true}))
    }

    /// Delivers queued offline notifications to a connecting socket, oldest first.
    pub(super) fn deliver_mailbox(&mut self, sock: usize) {
        let Some(user) = self.sockets.get(sock).and_then(|x| x.user.clone()) else {
            return;
        };
        let now = Instant::now();
        let cutoff = self.sockets[sock].recovered_at;
        // With Redis the mailbox is cluster-wide; the reply delivers it.
        if self.mailbox_fetch(sock, &user, cutoff) {
            return;
        }
        let queued = self.mailbox.take_queued_before(&user, cutoff, now);
        for data in queued {
            self.emit_to(sock, "notification:new", &[data], Vec::new());
        }
    }
}
