//! Redis replies: each completes the work that was parked waiting for it (a grant lookup,
//! cluster presence, an API answer, queued notifications).

use super::*;

impl Server {
    pub(super) fn on_redis_reply(&mut self, p: Pending, result: Result<Vec<redis::Value>, String>) {
        let first = result.as_ref().ok().and_then(|v| v.first());
        match p {
            Pending::Join {
                sock,
                socket_id,
                user,
                room,
                ack,
            } => {
                let granted = first.and_then(as_i64) == Some(1);
                self.joined_after_lookup(sock, &socket_id, &user, &room, ack, granted);
            }
            Pending::Presence {
                user,
                online,
                last_seen,
                rooms,
            } => {
                let elsewhere = first.and_then(as_i64).unwrap_or(0);
                // Still the same local state? A reconnect during the round trip wins.
                let local = self.stores.presence.state(&user);
                if elsewhere == 0 && local.online == online {
                    self.announce_presence(&user, online, last_seen, rooms);
                }
            }
            Pending::PresenceApi {
                conn,
                conn_uid,
                users,
                keep_alive,
            } => {
                let body = self.cluster_states(&users, &result);
                self.answer_deferred(conn, conn_uid, body, keep_alive);
            }
            Pending::Members {
                conn,
                conn_uid,
                room,
                keep_alive,
            } => {
                let mut connected = string_items(first);
                connected.sort();
                let members = self.stores.grants.members(&room);
                let body = json!({"room": room, "members": members, "connected": connected});
                self.answer_deferred(conn, conn_uid, body, keep_alive);
            }
            Pending::Applied {
                conn,
                conn_uid,
                body,
                keep_alive,
            } => self.answer_deferred(conn, conn_uid, body, keep_alive),
            Pending::Reap { at } => self.reap_dead_node_users(string_items(first), at),
            Pending::Subscribe {
                sock,
                socket_id,
                users,
                ack,
            } => {
                if !self.sockets.is(sock, &socket_id) {
                    return;
                }
                let states = self.cluster_states(&users, &result);
                let one = std::slice::from_ref(&states);
                self.emit_to(sock, "user:presence", one, Vec::new());
                let outcome = ack_value(json!({"ok": true, "presence": states}));
                self.reply(sock, "presence:subscribe", ack, outcome);
            }
            Pending::Lease { n } => self.on_lease_reply(n, first.and_then(as_i64)),
            Pending::Recover(r) => self.on_recover_reply(*r, result),
            Pending::Mailbox {
                sock,
                socket_id,
                user,
                cutoff,
            } => self.mailbox_arrived(sock, &socket_id, &user, cutoff, string_items(first)),
        }
    }

    /// A private `room:join` the local cache had no grant for, answered by Redis. The join
    /// goes through the same checks as any other (the per-socket room limit).
    fn joined_after_lookup(
        &mut self,
        sock: usize,
        socket_id: &str,
        user: &str,
        room: &str,
        ack: Option<u64>,
        granted: bool,
    ) {
        if !self.sockets.is(sock, socket_id) {
            return;
        }
        let outcome = if granted {
            // A cache fill from the mirror: nothing to write back.
            self.stores.grants.grant(room, user);
            self.join_checked(sock, room)
                .and_then(|()| ack_value(json!({"ok": true})))
        } else {
            Err(Refusal::forbidden(format!("no grant for {room}")))
        };
        self.reply(sock, "room:join", ack, outcome);
    }

    /// Users of dead nodes that are now offline everywhere.
    fn reap_dead_node_users(&mut self, users: Vec<String>, at: u64) {
        for user in users {
            if self.stores.presence.state(&user).online {
                continue;
            }
            log::info!("user {user} went offline with a dead node");
            let rooms = self.share_rooms_of(Some(&user), &[]);
            self.announce_presence(&user, false, Some(at), rooms);
        }
    }

    /// Queued notifications from Redis for a connecting socket.
    fn mailbox_arrived(
        &mut self,
        sock: usize,
        socket_id: &str,
        user: &str,
        cutoff: Option<Instant>,
        items: Vec<String>,
    ) {
        let entries: Vec<Value> = items
            .iter()
            .filter_map(|s| serde_json::from_str(s).ok())
            .collect();
        if !self.sockets.is(sock, socket_id) {
            // The socket left before its notifications arrived: queue them again.
            for e in entries {
                self.mailbox_push(user, &e["data"], None);
            }
            return;
        }
        let ttl = self.config.mailbox_ttl.as_millis() as u64;
        let now = crate::store::now_ms();
        let cutoff_ms = cutoff.map(|c| {
            now.saturating_sub(Instant::now().saturating_duration_since(c).as_millis() as u64)
        });
        for e in entries {
            let at = e["at"].as_u64().unwrap_or(now);
            if at + ttl < now || cutoff_ms.is_some_and(|c| at >= c) {
                continue;
            }
            self.emit_to(sock, "notification:new", &[e["data"].clone()], Vec::new());
        }
    }
}
