//! Presence: online/offline transitions with a grace period, told to users who share a
//! conversation or group with the user and to explicit subscribers (sockets in the internal
//! room `presence:<userId>`); plus the offline notification mailbox delivered on connect.

use super::events::{ack, Call, Outcome, Reply};
use super::validate::{id_value, Payload, Refusal};
use crate::server::deliver::Emit;
use crate::server::Server;
use crate::timer::Timer;
use serde_json::{json, Map, Value};
use std::time::Instant;

/// Users one socket may subscribe to.
pub const MAX_SUBSCRIPTIONS: usize = 500;

impl Server {
    /// Conversation and group rooms the socket's user is granted (claims and API).
    fn share_rooms(&self, sock: usize) -> Vec<String> {
        match self.sockets.get(sock) {
            Some(socket) => self.share_rooms_of(socket.user.as_deref(), socket.claim_rooms()),
            None => Vec::new(),
        }
    }

    /// The conversation and group rooms, among `claim_rooms` and `user`'s API grants, that
    /// hear `user`'s presence transitions; sorted, without repeats.
    pub(crate) fn share_rooms_of(&self, user: Option<&str>, claim_rooms: &[String]) -> Vec<String> {
        let mut rooms: Vec<String> = claim_rooms.to_vec();
        if let Some(u) = user {
            rooms.extend(self.stores.grants.rooms_of(u).cloned());
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
        let event = if online {
            "user:online"
        } else {
            "user:offline"
        };
        let body = json!({"userId": user, "lastSeen": last_seen});
        let mut e = Emit::to_rooms(0, event, vec![body], rooms);
        e.except = vec![format!("user:{user}")];
        self.deliver(&e);
        let body = e.args.pop().unwrap_or(Value::Null);
        self.forward(event, user, Some(user), body);
    }

    pub(super) fn presence_connected(&mut self, sock: usize) {
        let Some(user) = self.sockets.user(sock).map(str::to_owned) else {
            return;
        };
        self.sockets.set_presence_counted(sock, true);
        let online = self.stores.presence.connect(&user);
        self.mirror_presence(&user);
        if online {
            let rooms = self.share_rooms(sock);
            self.presence_transition(&user, true, None, rooms);
        }
    }

    pub(super) fn presence_disconnected(&mut self, sock: usize) {
        if !self.sockets.get(sock).is_some_and(|x| x.presence_counted) {
            return;
        }
        self.sockets.set_presence_counted(sock, false);
        let Some(user) = self.sockets.user(sock).map(str::to_owned) else {
            return;
        };
        let rooms = self.share_rooms(sock);
        let last = self.stores.presence.disconnect(&user, rooms);
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
        if let Some(rooms) = self.stores.presence.expire(user, gen, now) {
            self.presence_transition(user, false, Some(now), rooms);
        }
    }

    /// `GET /api/presence` body for these users: their local states.
    pub(crate) fn presence_json(&self, users: &[String]) -> Value {
        let states: Map<String, Value> = users
            .iter()
            .map(|u| {
                let s = self.stores.presence.state(u);
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

    pub(super) fn presence_subscribe(&mut self, c: &mut Call) -> Outcome {
        let sock = c.sock;
        let ids = Self::user_ids(&c.p)?;
        let have = self.sockets.get(sock).map_or(0, |x| {
            x.rooms()
                .iter()
                .filter(|r| r.starts_with("presence:"))
                .count()
        });
        let new = ids
            .iter()
            .filter(|u| !self.sockets.in_room(sock, &format!("presence:{u}")))
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
        if self.presence_subscribe_deferred(sock, &ids, c.ack) {
            return Ok(Reply::Later);
        }
        let states = self.presence_json(&ids);
        self.emit_to(
            sock,
            "user:presence",
            std::slice::from_ref(&states),
            Vec::new(),
        );
        ack(json!({"ok": true, "presence": states}))
    }

    pub(super) fn presence_unsubscribe(&mut self, c: &mut Call) -> Outcome {
        for u in Self::user_ids(&c.p)? {
            self.leave(c.sock, &format!("presence:{u}"));
        }
        ack(json!({"ok": true}))
    }

    /// Delivers queued offline notifications to a connecting socket, oldest first.
    pub(super) fn deliver_mailbox(&mut self, sock: usize) {
        let Some(socket) = self.sockets.get(sock) else {
            return;
        };
        let (Some(user), cutoff) = (socket.user.clone(), socket.recovered_at()) else {
            return;
        };
        let now = Instant::now();
        // With Redis the mailbox is cluster-wide; the reply delivers it.
        if self.mailbox_fetch(sock, &user, cutoff) {
            return;
        }
        let queued = self.stores.mailbox.take_queued_before(&user, cutoff, now);
        for data in queued {
            self.emit_to(sock, "notification:new", &[data], Vec::new());
        }
    }
}
