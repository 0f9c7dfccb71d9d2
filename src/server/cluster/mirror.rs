//! Mirror writes (presence, memberships, grants, typing, mailbox) and the queries
//! whose replies complete parked work (grant lookups, cluster presence, API answers).

use super::scripts::*;
use super::*;

impl Server {
    /// Mirrors room memberships of authenticated sockets (platform rooms only) as this node's
    /// `room-members` hash: field `<room>\t<userId>`, value the user's sockets in the room.
    pub(crate) fn membership_changed(&mut self, sock: usize, room: &str, delta: i32) {
        if self.cluster.redis.is_none() {
            return;
        }
        let Some(user) = self.sockets.user(sock).map(str::to_owned) else {
            return;
        };
        if !matches!(
            crate::store::grants::classify(room),
            Ok(crate::store::grants::RoomKind::Public | crate::store::grants::RoomKind::Private)
        ) {
            return;
        }
        let key = (room.to_owned(), user.clone());
        let n = {
            let n = self.cluster.memberships.entry(key.clone()).or_insert(0);
            *n = n.saturating_add_signed(delta);
            *n
        };
        let mkey = self.cluster.key(&["room-members", &self.cluster.node_id]);
        let field = format!("{room}\t{user}");
        if n == 0 {
            self.cluster.memberships.remove(&key);
        }
        self.cluster
            .write(hash_count(&mkey, &field, u64::from(n), PRESENCE_TTL_MS));
    }

    /// `GET /api/rooms/<room>/members` with the cluster's connected users; `false` when Redis
    /// is not live.
    pub(crate) fn members_api_deferred(
        &mut self,
        conn: usize,
        room: &str,
        keep_alive: bool,
    ) -> bool {
        let q = eval(
            ROOM_MEMBERS,
            &[self.cluster.nodes_key()],
            &[PREFIX.to_owned(), room.to_owned()],
        );
        let Some(conn_uid) = self.io.uid(conn) else {
            return false;
        };
        let sent = self.cluster.query(
            vec![q],
            Pending::Members {
                conn,
                conn_uid,
                room: room.to_owned(),
                keep_alive,
            },
        );
        self.hold_conn(conn, sent);
        sent
    }

    /// Holds an API answer until Redis has applied the mirror writes queued before it (one
    /// queue, one connection, in order: a `PING` behind them is a barrier). `false` when
    /// Redis is not live (answer at once).
    pub(crate) fn answer_after_mirror(
        &mut self,
        conn: usize,
        body: &Value,
        keep_alive: bool,
    ) -> bool {
        let Some(conn_uid) = self.io.uid(conn) else {
            return false;
        };
        let then = Pending::Applied {
            conn,
            conn_uid,
            body: body.clone(),
            keep_alive,
        };
        let sent = self.cluster.query(vec![cmd("PING")], then);
        self.hold_conn(conn, sent);
        sent
    }

    /// While an API request waits for Redis, the connection's later requests wait too.
    pub(super) fn hold_conn(&mut self, conn: usize, hold: bool) {
        if let Some(c) = self.io.get_mut(conn) {
            c.deferred = hold;
        }
    }

    /// Answers a deferred API request if its connection is still the one that asked.
    pub(super) fn answer_deferred(
        &mut self,
        conn: usize,
        conn_uid: u64,
        body: Value,
        keep_alive: bool,
    ) {
        if self.io.uid(conn) != Some(conn_uid) {
            return;
        }
        self.hold_conn(conn, false);
        self.io.set_phase(conn, crate::server::conn::Phase::Idle);
        self.respond(
            conn,
            crate::http::response::Response::new(200).json(body.to_string()),
            keep_alive,
        );
    }

    /// Mirrors a user's local socket count into this node's presence hash.
    pub(crate) fn mirror_presence(&mut self, user: &str) {
        if self.cluster.redis.is_none() {
            return;
        }
        let n = self.stores.presence.sockets(user);
        let pkey = self.cluster.presence_key();
        self.cluster
            .write(hash_count(&pkey, user, u64::from(n), PRESENCE_TTL_MS));
    }

    /// A local presence transition: announced now without Redis, or once Redis confirms no
    /// other node has the user (so the cluster announces each transition once).
    pub(crate) fn presence_transition(
        &mut self,
        user: &str,
        online: bool,
        last_seen: Option<u64>,
        rooms: Vec<String>,
    ) {
        if let (false, Some(t)) = (online, last_seen) {
            let mut c = cmd("HSET");
            c.arg(self.cluster.key(&["lastseen"])).arg(user).arg(t);
            self.cluster.write(vec![c]);
        }
        let nodes = self.cluster.nodes_key();
        let args = [
            PREFIX.to_owned(),
            user.to_owned(),
            self.cluster.node_id.clone(),
        ];
        let q = eval(PRESENCE_ELSEWHERE, &[nodes], &args);
        let then = Pending::Presence {
            user: user.to_owned(),
            online,
            last_seen,
            rooms: rooms.clone(),
        };
        if !self.cluster.query(vec![q], then) {
            self.announce_presence(user, online, last_seen, rooms);
        }
    }

    /// `room:join` of a private room with no grant in the local cache: asks Redis (grants may
    /// have been written there by the platform or another node). Returns `false` when Redis
    /// is not live, so the caller refuses at once.
    pub(crate) fn defer_join(
        &mut self,
        sock: usize,
        user: &str,
        room: &str,
        ack: Option<u64>,
    ) -> bool {
        let mut c = cmd("SISMEMBER");
        c.arg(self.cluster.key(&["grants", room])).arg(user);
        let Some(socket_id) = self.sockets.get(sock).map(|x| x.id.to_string()) else {
            return false;
        };
        let then = Pending::Join {
            sock,
            socket_id,
            user: user.to_owned(),
            room: room.to_owned(),
            ack,
        };
        self.cluster.query(vec![c], then)
    }

    pub(super) fn grant_cmds(&self, room: &str, user: &str, grant: bool) -> Vec<redis::Cmd> {
        let op = if grant { "SADD" } else { "SREM" };
        let mut a = cmd(op);
        a.arg(self.cluster.key(&["grants", room])).arg(user);
        let mut b = cmd(op);
        b.arg(self.cluster.key(&["user-grants", user])).arg(room);
        vec![a, b]
    }

    /// Mirrors an API grant change and tells the other nodes.
    pub(crate) fn mirror_grant(&mut self, room: &str, user: &str, grant: bool) {
        if self.cluster.redis.is_none() {
            return;
        }
        let mut cmds = self.grant_cmds(room, user, grant);
        let mut p = cmd("PUBLISH");
        let body = json!({"op": if grant { "grant" } else { "revoke" }, "room": room, "userId": user, "node": self.cluster.node_id});
        p.arg(GRANT_EVENTS).arg(body.to_string());
        cmds.push(p);
        self.cluster.write(cmds);
    }

    /// Mirrors a typing indicator (`expires_ms` 0 removes it).
    pub(crate) fn mirror_typing(&mut self, conversation: &str, user: &str, start: bool) {
        if self.cluster.redis.is_none() {
            return;
        }
        let key = self.cluster.key(&["typing", conversation]);
        let expires = if start {
            crate::store::now_ms() + TYPING_TTL_MS
        } else {
            0
        };
        self.cluster
            .write(hash_count(&key, user, expires, TYPING_TTL_MS));
    }

    /// Queues a notification for an offline user: in Redis (cluster-wide presence check and
    /// exactly-once by event id) when live, else in memory.
    pub(crate) fn mailbox_push(&mut self, user: &str, data: &Value, event_id: Option<&str>) {
        if self.cluster.redis_live() {
            let entry = json!({"at": crate::store::now_ms(), "data": data}).to_string();
            let keys = [
                self.cluster.nodes_key(),
                self.cluster.key(&["mailbox", user]),
            ];
            let ttl = self.config.mailbox_ttl.as_millis().max(1) as u64;
            let args = [
                PREFIX.to_owned(),
                user.to_owned(),
                entry,
                self.config.mailbox_size.max(1).to_string(),
                ttl.to_string(),
                event_id.unwrap_or("").to_owned(),
            ];
            self.cluster.write(vec![eval(MAILBOX_PUSH, &keys, &args)]);
        } else {
            self.stores.mailbox.push(user, data.clone(), Instant::now());
        }
        self.metrics.notifications_queued += 1;
    }

    /// Takes a connecting user's queued notifications from Redis; `false` when not live.
    pub(crate) fn mailbox_fetch(
        &mut self,
        sock: usize,
        user: &str,
        cutoff: Option<Instant>,
    ) -> bool {
        let key = self.cluster.key(&["mailbox", user]);
        let Some(socket_id) = self.sockets.get(sock).map(|x| x.id.to_string()) else {
            return false;
        };
        let then = Pending::Mailbox {
            sock,
            socket_id,
            user: user.to_owned(),
            cutoff,
        };
        self.cluster
            .query(vec![eval(MAILBOX_TAKE, &[key], &[])], then)
    }

    /// `GET /api/presence` from the cluster; `false` when Redis is not live.
    pub(crate) fn presence_api_deferred(
        &mut self,
        conn: usize,
        users: &[String],
        keep_alive: bool,
    ) -> bool {
        let q = self.cluster.presence_query(users);
        let Some(conn_uid) = self.io.uid(conn) else {
            return false;
        };
        let sent = self.cluster.query(
            vec![q],
            Pending::PresenceApi {
                conn,
                conn_uid,
                users: users.to_vec(),
                keep_alive,
            },
        );
        self.hold_conn(conn, sent);
        sent
    }

    /// `presence:subscribe` states from the cluster; `false` when Redis is not live.
    pub(crate) fn presence_subscribe_deferred(
        &mut self,
        sock: usize,
        users: &[String],
        ack: Option<u64>,
    ) -> bool {
        let q = self.cluster.presence_query(users);
        let Some(socket_id) = self.sockets.get(sock).map(|x| x.id.to_string()) else {
            return false;
        };
        self.cluster.query(
            vec![q],
            Pending::Subscribe {
                sock,
                socket_id,
                users: users.to_vec(),
                ack,
            },
        )
    }

    /// Presence states from a PRESENCE_QUERY reply (local states when it failed).
    pub(super) fn cluster_states(
        &self,
        users: &[String],
        result: &Result<Vec<redis::Value>, String>,
    ) -> Value {
        match result.as_ref().ok().and_then(|v| v.first()) {
            Some(redis::Value::Array(items)) => {
                let mut out = serde_json::Map::new();
                for (i, u) in users.iter().enumerate() {
                    let n = items.get(2 * i).and_then(as_i64).unwrap_or(0);
                    let seen = items
                        .get(2 * i + 1)
                        .and_then(as_string)
                        .and_then(|s| s.parse::<u64>().ok());
                    out.insert(
                        u.clone(),
                        json!({"online": n > 0, "lastSeen": if n > 0 { None } else { seen }}),
                    );
                }
                Value::Object(out)
            }
            _ => self.presence_json(users),
        }
    }
}

impl Cluster {
    /// PRESENCE_QUERY for `users`; [`Server::cluster_states`] reads its reply.
    fn presence_query(&self, users: &[String]) -> redis::Cmd {
        let mut args = vec![PREFIX.to_owned()];
        args.extend(users.iter().cloned());
        eval(PRESENCE_QUERY, &[self.nodes_key()], &args)
    }
}

/// `HSET key field value` (or `HDEL key field` for 0), then `PEXPIRE key ttl_ms`: the shape of
/// every per-node mirror hash.
fn hash_count(key: &str, field: &str, value: u64, ttl_ms: u64) -> Vec<redis::Cmd> {
    let c = if value == 0 {
        let mut c = cmd("HDEL");
        c.arg(key).arg(field);
        c
    } else {
        let mut c = cmd("HSET");
        c.arg(key).arg(field).arg(value);
        c
    };
    let mut exp = cmd("PEXPIRE");
    exp.arg(key).arg(ttl_ms);
    vec![c, exp]
}
