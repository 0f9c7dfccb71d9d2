//! The loop's side of the helper threads: Redis (state mirror, multi-node fanout compatible
//! with `@socket.io/redis-adapter` and `@socket.io/redis-emitter`, cluster presence, grants,
//! the offline mailbox) and Kafka (events in, client events out). Nothing here blocks: writes
//! are queued to the helper threads, and work that needs an answer (a grant lookup, cluster
//! presence, the mailbox) is parked in `pending` until the reply wakes the loop. With neither
//! configured this is inert and the server runs fully in-process.

use super::sio::Target;
use super::Server;
use crate::adapter::{self, Broadcast, RemoteRequest};
use crate::kafka::{KafkaEvent, KafkaHandle};
use crate::redis_bridge::{RedisEvent, RedisHandle};
use crate::store::dedup::Dedup;
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Prefix of channels and keys, as the Node adapter and emitter use by default.
pub const PREFIX: &str = "socket.io";
/// Channel on which nodes tell each other about grant changes.
pub const GRANT_EVENTS: &str = "socket.io:grant-events";
/// A node's presence hash outlives its last refresh by this much (dead nodes vanish).
pub const PRESENCE_TTL_MS: u64 = 30_000;
/// Kafka envelope ids remembered for deduplication.
pub const KAFKA_DEDUP_WINDOW: Duration = Duration::from_secs(600);
pub const KAFKA_DEDUP_CAP: usize = 200_000;
/// Typing keys live as long as a typing indicator.
const TYPING_TTL_MS: u64 = 6_000;

/// Sums a user's sockets over live nodes other than `ARGV[3]`.
/// KEYS[1] = nodes set; ARGV = prefix, user, self node id.
const PRESENCE_ELSEWHERE: &str = r"
local n = 0
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if node ~= ARGV[3] and redis.call('EXISTS', ARGV[1] .. ':node:' .. node) == 1 then
    n = n + tonumber(redis.call('HGET', ARGV[1] .. ':presence:' .. node, ARGV[2]) or '0')
  end
end
return n";

/// Reaps dead nodes (no heartbeat key): removes them from the set (one node wins each), and
/// returns their users who are on no live node now, recording their last-seen time.
/// KEYS[1] = nodes set; ARGV = prefix, self node id, now ms.
const REAP_DEAD_NODES: &str = r"
local users = {}
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if node ~= ARGV[2] and redis.call('EXISTS', ARGV[1] .. ':node:' .. node) == 0 then
    if redis.call('SREM', KEYS[1], node) == 1 then
      for _, u in ipairs(redis.call('HKEYS', ARGV[1] .. ':presence:' .. node)) do table.insert(users, u) end
      redis.call('DEL', ARGV[1] .. ':presence:' .. node)
    end
  end
end
local live = {}
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. ':node:' .. node) == 1 then table.insert(live, node) end
end
local out = {}
for _, u in ipairs(users) do
  local n = 0
  for _, node in ipairs(live) do
    n = n + tonumber(redis.call('HGET', ARGV[1] .. ':presence:' .. node, u) or '0')
  end
  if n == 0 then
    redis.call('HSET', ARGV[1] .. ':lastseen', u, ARGV[3])
    table.insert(out, u)
  end
end
return out";

/// Users connected to room ARGV[2] on any live node. KEYS[1] = nodes set; ARGV[1] = prefix.
const ROOM_MEMBERS: &str = r"
local seen, out = {}, {}
local p = ARGV[2] .. '\t'
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. ':node:' .. node) == 1 then
    for _, f in ipairs(redis.call('HKEYS', ARGV[1] .. ':room-members:' .. node)) do
      if string.sub(f, 1, #p) == p then
        local u = string.sub(f, #p + 1)
        if not seen[u] then seen[u] = true; table.insert(out, u) end
      end
    end
  end
end
return out";

/// For each user in ARGV[2..]: sockets over all live nodes, and last seen.
/// KEYS[1] = nodes set; ARGV[1] = prefix.
const PRESENCE_QUERY: &str = r"
local live = {}
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. ':node:' .. node) == 1 then table.insert(live, node) end
end
local out = {}
for i = 2, #ARGV do
  local n = 0
  for _, node in ipairs(live) do
    n = n + tonumber(redis.call('HGET', ARGV[1] .. ':presence:' .. node, ARGV[i]) or '0')
  end
  table.insert(out, n)
  table.insert(out, redis.call('HGET', ARGV[1] .. ':lastseen', ARGV[i]) or '')
end
return out";

/// Queues a notification unless the user is online on a live node (or the event id was
/// queued before). KEYS[1] = nodes set, KEYS[2] = mailbox list; ARGV = prefix, user, payload,
/// cap, ttl ms, event id ('' for none).
const MAILBOX_PUSH: &str = r"
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. ':node:' .. node) == 1 then
    if tonumber(redis.call('HGET', ARGV[1] .. ':presence:' .. node, ARGV[2]) or '0') > 0 then
      return 0
    end
  end
end
if ARGV[6] ~= '' then
  if not redis.call('SET', ARGV[1] .. ':mailbox-seen:' .. ARGV[6], '1', 'NX', 'PX', ARGV[5]) then
    return 0
  end
end
redis.call('RPUSH', KEYS[2], ARGV[3])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[4]), -1)
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return 1";

/// Takes the whole mailbox atomically (exactly once across nodes). KEYS[1] = mailbox list.
const MAILBOX_TAKE: &str = r"
local v = redis.call('LRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1])
return v";

/// Work waiting for a Redis reply.
#[derive(Debug)]
pub(crate) enum Pending {
    /// `room:join` of a private room the local cache has no grant for.
    Join {
        sock: usize,
        socket_id: String,
        user: String,
        room: String,
        ack: Option<u64>,
    },
    /// A local presence transition, announced only if no other node has the user.
    Presence {
        user: String,
        online: bool,
        last_seen: Option<u64>,
        rooms: Vec<String>,
    },
    /// `GET /api/presence` answered from the cluster.
    PresenceApi {
        conn: usize,
        conn_uid: u64,
        users: Vec<String>,
        keep_alive: bool,
    },
    /// `presence:subscribe` answered with the cluster's states.
    Subscribe {
        sock: usize,
        socket_id: String,
        users: Vec<String>,
        ack: Option<u64>,
    },
    /// Users of dead nodes that are now offline everywhere.
    Reap { at: u64 },
    /// `GET /api/rooms/<room>/members` with the cluster's connected users.
    Members {
        conn: usize,
        conn_uid: u64,
        room: String,
        keep_alive: bool,
    },
    /// Queued notifications for a connecting socket.
    Mailbox {
        sock: usize,
        socket_id: String,
        user: String,
        cutoff: Option<Instant>,
    },
}

/// Helper-thread handles and the loop-side state that goes with them.
pub(crate) struct Cluster {
    pub redis: Option<RedisHandle>,
    pub kafka: Option<KafkaHandle>,
    /// This node's adapter uid: messages carrying it are our own and skipped.
    pub uid: String,
    pub node_id: String,
    next_query: u64,
    pending: HashMap<u64, Pending>,
    kafka_seen: Dedup,
    pub redis_up: bool,
    pub kafka_up: bool,
    pub kafka_duplicates: u64,
    /// (room, user) -> this node's sockets of the user in the room, mirrored to Redis.
    pub memberships: HashMap<(String, String), u32>,
    pub kafka_bad_records: u64,
    pub remote_broadcasts: u64,
}

impl Cluster {
    pub fn new(node_id: String) -> Self {
        Cluster {
            redis: None,
            kafka: None,
            uid: crate::engineio::new_id(),
            node_id,
            next_query: 1,
            pending: HashMap::new(),
            kafka_seen: Dedup::new(KAFKA_DEDUP_WINDOW, KAFKA_DEDUP_CAP),
            redis_up: false,
            kafka_up: false,
            kafka_duplicates: 0,
            memberships: HashMap::new(),
            kafka_bad_records: 0,
            remote_broadcasts: 0,
        }
    }

    /// Whether Redis is configured and reachable now.
    pub fn redis_live(&self) -> bool {
        self.redis.is_some() && self.redis_up
    }

    fn key(&self, parts: &[&str]) -> String {
        let mut k = PREFIX.to_owned();
        for p in parts {
            k.push(':');
            k.push_str(p);
        }
        k
    }

    fn nodes_key(&self) -> String {
        crate::redis_bridge::nodes_key(PREFIX)
    }

    fn presence_key(&self) -> String {
        crate::redis_bridge::presence_key(PREFIX, &self.node_id)
    }

    /// Queues fire-and-forget writes (dropped and counted by the bridge when its queue is full).
    pub fn write(&self, cmds: Vec<redis::Cmd>) {
        if let Some(r) = &self.redis {
            if r.write(cmds).is_err() {
                log::debug!("redis write queue full; dropped a mirror write");
            }
        }
    }

    /// Sends a query; `false` when Redis is not live (the caller falls back to local state).
    fn query(&mut self, cmds: Vec<redis::Cmd>, then: Pending) -> bool {
        if !self.redis_live() {
            return false;
        }
        let Some(r) = &self.redis else { return false };
        let id = self.next_query;
        self.next_query += 1;
        if r.query(id, cmds).is_err() {
            return false;
        }
        self.pending.insert(id, then);
        true
    }
}

fn cmd(name: &str) -> redis::Cmd {
    redis::cmd(name)
}

fn eval(script: &str, keys: &[String], args: &[String]) -> redis::Cmd {
    let mut c = cmd("EVAL");
    c.arg(script).arg(keys.len());
    for k in keys {
        c.arg(k);
    }
    for a in args {
        c.arg(a);
    }
    c
}

fn as_i64(v: &redis::Value) -> Option<i64> {
    match v {
        redis::Value::Int(n) => Some(*n),
        redis::Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

fn as_string(v: &redis::Value) -> Option<String> {
    match v {
        redis::Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        redis::Value::SimpleString(s) => Some(s.clone()),
        redis::Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

impl Server {
    /// Starts the helper threads the configuration asks for.
    pub(crate) fn start_cluster(&mut self) {
        if let Some(url) = self.config.redis_url.clone() {
            let cfg = crate::redis_bridge::RedisConfig::new(url, self.config.node_id.clone());
            let patterns = self
                .namespaces
                .iter()
                .map(|n| adapter::pattern_for(PREFIX, &n.name))
                .collect();
            let mut channels: Vec<String> = self
                .namespaces
                .iter()
                .map(|n| adapter::request_channel(PREFIX, &n.name))
                .collect();
            channels.push(GRANT_EVENTS.to_owned());
            match crate::redis_bridge::spawn(
                cfg,
                patterns,
                channels,
                std::sync::Arc::clone(&self.waker),
            ) {
                Ok(h) => self.cluster.redis = Some(h),
                Err(e) => log::error!("cannot start the redis helper: {e}; running in-process"),
            }
        }
        if let Some(k) = self.config.kafka.clone() {
            let cfg = crate::kafka::KafkaConfig {
                brokers: k.brokers,
                topics: k.topics,
                group_id: k.group_id,
                client_events_topic: k.client_events_topic,
                start_at_latest: k.start_at_latest,
                produce_queue: 10_000,
            };
            match crate::kafka::spawn(cfg, std::sync::Arc::clone(&self.waker)) {
                Ok(h) => self.cluster.kafka = Some(h),
                Err(e) => log::error!("cannot start the kafka helper: {e}; running without Kafka"),
            }
        }
    }

    /// Stops the helper threads, flushing what they hold (bounded).
    pub(crate) fn stop_cluster(&mut self) {
        if self.cluster.redis_live() {
            // Our users vanish from cluster presence now rather than at the TTL.
            self.cluster.write(vec![{
                let mut c = cmd("DEL");
                c.arg(self.cluster.presence_key());
                c
            }]);
        }
        if let Some(r) = self.cluster.redis.take() {
            r.shutdown();
        }
        if let Some(k) = self.cluster.kafka.take() {
            k.shutdown();
        }
    }

    /// Drains what the helper threads have for the loop. The helpers wake the loop only when
    /// it may have emptied their channels, so this reads until empty; past a per-turn bound it
    /// wakes itself to continue after the sockets had a turn.
    pub(crate) fn drain_cluster(&mut self) {
        const PER_TURN: usize = 10_000;
        let mut n = 0;
        while n < PER_TURN {
            let Some(ev) = self.cluster.redis.as_ref().and_then(RedisHandle::try_recv) else {
                break;
            };
            self.on_redis_event(ev);
            n += 1;
        }
        let mut m = 0;
        while m < PER_TURN {
            let Some(ev) = self.cluster.kafka.as_ref().and_then(KafkaHandle::try_recv) else {
                break;
            };
            self.on_kafka_event(ev);
            m += 1;
        }
        if n == PER_TURN || m == PER_TURN {
            let _ = self.waker.wake();
        }
    }

    fn on_redis_event(&mut self, ev: RedisEvent) {
        match ev {
            RedisEvent::Connected => {
                if !self.cluster.redis_up {
                    log::info!("redis connected; resyncing this node's state");
                }
                self.cluster.redis_up = true;
                self.resync_redis();
            }
            RedisEvent::Disconnected(why) => {
                if self.cluster.redis_up {
                    log::warn!("redis unreachable ({why}); serving from memory and reconnecting");
                }
                self.cluster.redis_up = false;
            }
            RedisEvent::Reply { id, result } => {
                if let Some(p) = self.cluster.pending.remove(&id) {
                    self.on_redis_reply(p, result);
                }
            }
            RedisEvent::Message { channel, payload } => self.on_redis_message(&channel, &payload),
        }
    }

    /// Writes this node's whole state after (re)connecting: presence counts and API grants.
    fn resync_redis(&mut self) {
        let mut cmds = Vec::new();
        let pkey = self.cluster.presence_key();
        let mut del = cmd("DEL");
        del.arg(&pkey);
        cmds.push(del);
        for (user, n) in self.presence.local_counts() {
            let mut c = cmd("HSET");
            c.arg(&pkey).arg(user).arg(n);
            cmds.push(c);
        }
        let mut exp = cmd("PEXPIRE");
        exp.arg(&pkey).arg(PRESENCE_TTL_MS);
        cmds.push(exp);
        for (room, user) in self.grants.all() {
            cmds.extend(self.grant_cmds(room, user, true));
        }
        let mkey = self.cluster.key(&["room-members", &self.cluster.node_id]);
        let mut del = cmd("DEL");
        del.arg(&mkey);
        cmds.push(del);
        for ((room, user), n) in &self.cluster.memberships {
            let mut c = cmd("HSET");
            c.arg(&mkey).arg(format!("{room}\t{user}")).arg(*n);
            cmds.push(c);
        }
        let mut exp = cmd("PEXPIRE");
        exp.arg(&mkey).arg(PRESENCE_TTL_MS);
        cmds.push(exp);
        self.cluster.write(cmds);
    }

    /// Refreshes the TTL of this node's presence hash and reaps dead nodes (periodically).
    pub(crate) fn refresh_redis(&mut self) {
        if self.cluster.redis_live() {
            let mut c = cmd("PEXPIRE");
            c.arg(self.cluster.presence_key()).arg(PRESENCE_TTL_MS);
            let mut m = cmd("PEXPIRE");
            m.arg(self.cluster.key(&["room-members", &self.cluster.node_id]))
                .arg(PRESENCE_TTL_MS);
            self.cluster.write(vec![c, m]);
            let at = crate::store::now_ms();
            let args = [
                PREFIX.to_owned(),
                self.cluster.node_id.clone(),
                at.to_string(),
            ];
            let q = eval(REAP_DEAD_NODES, &[self.cluster.nodes_key()], &args);
            self.cluster.query(vec![q], Pending::Reap { at });
        }
    }

    /// Mirrors room memberships of authenticated sockets (platform rooms only) as this node's
    /// `room-members` hash: field `<room>\t<userId>`, value the user's sockets in the room.
    pub(crate) fn membership_changed(&mut self, sock: usize, room: &str, delta: i32) {
        if self.cluster.redis.is_none() {
            return;
        }
        let Some(user) = self.sockets.get(sock).and_then(|s| s.user.clone()) else {
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
        let mut c = if n == 0 {
            self.cluster.memberships.remove(&key);
            let mut c = cmd("HDEL");
            c.arg(&mkey).arg(field);
            c
        } else {
            let mut c = cmd("HSET");
            c.arg(&mkey).arg(field).arg(n);
            c
        };
        let mut exp = cmd("PEXPIRE");
        exp.arg(&mkey).arg(PRESENCE_TTL_MS);
        let _ = &mut c;
        self.cluster.write(vec![c, exp]);
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
        let Some(conn_uid) = self.conns.get(conn).map(|c| c.uid) else {
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

    /// While an API request waits for Redis, the connection's later requests wait too.
    fn hold_conn(&mut self, conn: usize, hold: bool) {
        if let Some(c) = self.conns.get_mut(conn) {
            c.deferred = hold;
        }
    }

    /// Answers a deferred API request if its connection is still the one that asked.
    fn answer_deferred(&mut self, conn: usize, conn_uid: u64, body: Value, keep_alive: bool) {
        if self.conns.get(conn).is_none_or(|c| c.uid != conn_uid) {
            return;
        }
        self.hold_conn(conn, false);
        self.respond(
            conn,
            crate::http::response::Response::new(200).json(body.to_string()),
            keep_alive,
        );
    }

    /// Mirrors a saved (recoverable) socket as `recovery:<pid>` for the recovery window, or
    /// deletes it once restored. Restoring happens on the node that holds the missed-packet
    /// log; the mirror lets the platform see pending recoveries.
    pub(crate) fn mirror_recovery(
        &mut self,
        pid: &str,
        saved: Option<&crate::store::recovery::Saved>,
    ) {
        if self.cluster.redis.is_none() {
            return;
        }
        let key = self.cluster.key(&["recovery", pid]);
        let c = match saved {
            Some(s) => {
                let body = json!({"sid": s.sid, "nsp": self.namespaces[s.ns].name, "userId": s.user, "rooms": s.rooms, "node": self.cluster.node_id, "at": crate::store::now_ms()});
                let mut c = cmd("SET");
                c.arg(&key)
                    .arg(body.to_string())
                    .arg("PX")
                    .arg(self.config.recovery_window.as_millis().max(1) as u64);
                c
            }
            None => {
                let mut c = cmd("DEL");
                c.arg(&key);
                c
            }
        };
        self.cluster.write(vec![c]);
    }

    /// Mirrors a user's local socket count into this node's presence hash.
    pub(crate) fn mirror_presence(&mut self, user: &str) {
        if self.cluster.redis.is_none() {
            return;
        }
        let n = self.presence.sockets(user);
        let pkey = self.cluster.presence_key();
        let mut c = if n > 0 {
            let mut c = cmd("HSET");
            c.arg(&pkey).arg(user).arg(n);
            c
        } else {
            let mut c = cmd("HDEL");
            c.arg(&pkey).arg(user);
            c
        };
        let mut exp = cmd("PEXPIRE");
        exp.arg(&pkey).arg(PRESENCE_TTL_MS);
        let _ = &mut c;
        self.cluster.write(vec![c, exp]);
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
        let socket_id = self.sockets[sock].id.clone();
        let then = Pending::Join {
            sock,
            socket_id,
            user: user.to_owned(),
            room: room.to_owned(),
            ack,
        };
        self.cluster.query(vec![c], then)
    }

    fn grant_cmds(&self, room: &str, user: &str, grant: bool) -> Vec<redis::Cmd> {
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
        let mut c = if start {
            let mut c = cmd("HSET");
            c.arg(&key)
                .arg(user)
                .arg(crate::store::now_ms() + TYPING_TTL_MS);
            c
        } else {
            let mut c = cmd("HDEL");
            c.arg(&key).arg(user);
            c
        };
        let mut exp = cmd("PEXPIRE");
        exp.arg(&key).arg(TYPING_TTL_MS);
        let _ = &mut c;
        self.cluster.write(vec![c, exp]);
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
            self.mailbox.push(user, data.clone(), Instant::now());
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
        let socket_id = self.sockets[sock].id.clone();
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
        let mut args = vec![PREFIX.to_owned()];
        args.extend(users.iter().cloned());
        let q = eval(PRESENCE_QUERY, &[self.cluster.nodes_key()], &args);
        let Some(conn_uid) = self.conns.get(conn).map(|c| c.uid) else {
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
        let mut args = vec![PREFIX.to_owned()];
        args.extend(users.iter().cloned());
        let q = eval(PRESENCE_QUERY, &[self.cluster.nodes_key()], &args);
        let socket_id = self.sockets[sock].id.clone();
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
    fn cluster_states(
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

    /// The socket `sock` if it is still the one with id `socket_id`.
    fn same_socket(&self, sock: usize, socket_id: &str) -> bool {
        self.sockets.get(sock).is_some_and(|s| s.id == socket_id)
    }

    fn on_redis_reply(&mut self, p: Pending, result: Result<Vec<redis::Value>, String>) {
        let first = result.as_ref().ok().and_then(|v| v.first().cloned());
        match p {
            Pending::Join {
                sock,
                socket_id,
                user,
                room,
                ack,
            } => {
                if !self.same_socket(sock, &socket_id) {
                    return;
                }
                let granted = first.as_ref().and_then(as_i64) == Some(1);
                let outcome = if granted {
                    self.grants.grant(&room, &user);
                    self.join(sock, &room);
                    if let Some(class) = room.strip_prefix("class:") {
                        self.class_changed(class);
                    }
                    Ok(json!({"ok": true}))
                } else {
                    Err(super::app::validate::Refusal::forbidden(format!(
                        "no grant for {room}"
                    )))
                };
                self.reply(sock, "room:join", ack, outcome);
            }
            Pending::Presence {
                user,
                online,
                last_seen,
                rooms,
            } => {
                let elsewhere = first.as_ref().and_then(as_i64).unwrap_or(0);
                // Still the same local state? A reconnect during the round trip wins.
                let local = self.presence.state(&user);
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
                let mut connected: Vec<String> = match first {
                    Some(redis::Value::Array(items)) => {
                        items.iter().filter_map(as_string).collect()
                    }
                    _ => Vec::new(),
                };
                connected.sort();
                let body = json!({"room": room, "members": self.grants.members(&room), "connected": connected});
                self.answer_deferred(conn, conn_uid, body, keep_alive);
            }
            Pending::Reap { at } => {
                let users: Vec<String> = match first {
                    Some(redis::Value::Array(items)) => {
                        items.iter().filter_map(as_string).collect()
                    }
                    _ => Vec::new(),
                };
                for user in users {
                    if self.presence.state(&user).online {
                        continue;
                    }
                    log::info!("user {user} went offline with a dead node");
                    let mut rooms: Vec<String> = self
                        .grants
                        .rooms_of(&user)
                        .filter(|r| r.starts_with("conversation:") || r.starts_with("group:"))
                        .cloned()
                        .collect();
                    rooms.sort();
                    self.announce_presence(&user, false, Some(at), rooms);
                }
            }
            Pending::Subscribe {
                sock,
                socket_id,
                users,
                ack,
            } => {
                if !self.same_socket(sock, &socket_id) {
                    return;
                }
                let states = self.cluster_states(&users, &result);
                self.emit_to(
                    sock,
                    "user:presence",
                    std::slice::from_ref(&states),
                    Vec::new(),
                );
                self.reply(
                    sock,
                    "presence:subscribe",
                    ack,
                    Ok(json!({"ok": true, "presence": states})),
                );
            }
            Pending::Mailbox {
                sock,
                socket_id,
                user,
                cutoff,
            } => {
                let entries: Vec<Value> = match first {
                    Some(redis::Value::Array(items)) => items
                        .iter()
                        .filter_map(as_string)
                        .filter_map(|s| serde_json::from_str(&s).ok())
                        .collect(),
                    _ => Vec::new(),
                };
                if !self.same_socket(sock, &socket_id) {
                    // The socket left before its notifications arrived: queue them again.
                    for e in entries {
                        self.mailbox_push(&user, &e["data"], None);
                    }
                    return;
                }
                let ttl = self.config.mailbox_ttl.as_millis() as u64;
                let now = crate::store::now_ms();
                let cutoff_ms = cutoff.map(|c| {
                    now.saturating_sub(
                        Instant::now().saturating_duration_since(c).as_millis() as u64
                    )
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
    }

    fn on_redis_message(&mut self, channel: &[u8], payload: &[u8]) {
        if channel == GRANT_EVENTS.as_bytes() {
            let Ok(v) = serde_json::from_slice::<Value>(payload) else {
                return;
            };
            if v["node"].as_str() == Some(self.cluster.node_id.as_str()) {
                return;
            }
            let (Some(room), Some(user)) = (v["room"].as_str(), v["userId"].as_str()) else {
                return;
            };
            match v["op"].as_str() {
                Some("grant") => {
                    self.grants.grant(room, user);
                }
                Some("revoke") => {
                    self.revoke_grant(room, user);
                }
                _ => {}
            }
            return;
        }
        if channel.starts_with(format!("{PREFIX}-request#").as_bytes()) {
            match adapter::decode_request(channel, payload, PREFIX) {
                Ok(req) => self.on_remote_request(req),
                Err(e) => log::debug!("ignoring an undecodable adapter request: {e}"),
            }
            return;
        }
        match adapter::decode_broadcast(channel, payload, PREFIX) {
            Ok(b) if b.uid == self.cluster.uid => {}
            Ok(b) => self.on_remote_broadcast(b),
            Err(e) => {
                self.metrics.protocol_errors += 1;
                log::warn!("ignoring an undecodable adapter broadcast: {e}");
            }
        }
    }

    fn on_remote_broadcast(&mut self, b: Broadcast) {
        let Some(ns) = self.namespaces.iter().position(|n| n.name == b.nsp) else {
            return;
        };
        let Value::Array(mut data) = b.event_args else {
            return;
        };
        if data.is_empty() {
            return;
        }
        let name = match data.remove(0) {
            Value::String(s) => s,
            other => other.to_string(),
        };
        self.cluster.remote_broadcasts += 1;
        let volatile = b
            .flags
            .get("volatile")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let target = Target {
            rooms: &b.rooms,
            except: &b.except,
            except_socket: None,
            volatile,
            local: true,
            all: b.rooms.is_empty(),
        };
        self.broadcast_event(ns, &name, data, b.attachments, target);
    }

    fn on_remote_request(&mut self, req: RemoteRequest) {
        let (nsp, rooms, except) = match &req {
            RemoteRequest::Join {
                nsp,
                opts_rooms,
                opts_except,
                ..
            }
            | RemoteRequest::Leave {
                nsp,
                opts_rooms,
                opts_except,
                ..
            }
            | RemoteRequest::Disconnect {
                nsp,
                opts_rooms,
                opts_except,
                ..
            } => (nsp.clone(), opts_rooms.clone(), opts_except.clone()),
            _ => return,
        };
        let Some(ns) = self.namespaces.iter().position(|n| n.name == nsp) else {
            return;
        };
        let selected = self.select_sockets(ns, &rooms, &except);
        for sock in selected {
            match &req {
                RemoteRequest::Join { rooms, .. } => rooms.iter().for_each(|r| {
                    self.join(sock, r);
                }),
                RemoteRequest::Leave { rooms, .. } => {
                    rooms.iter().for_each(|r| self.leave(sock, r))
                }
                RemoteRequest::Disconnect { close, .. } => {
                    let session = self.sockets.get(sock).map(|s| s.session);
                    self.disconnect_socket(sock, "remote disconnect");
                    if let (true, Some(s)) = (*close, session) {
                        self.close_session(s, super::engine::CloseReason::Shutdown);
                    }
                }
                _ => {}
            }
        }
    }

    fn on_kafka_event(&mut self, ev: KafkaEvent) {
        match ev {
            KafkaEvent::Connected => {
                if !self.cluster.kafka_up {
                    log::info!("kafka connected");
                }
                self.cluster.kafka_up = true;
            }
            KafkaEvent::Disconnected(why) => {
                if self.cluster.kafka_up {
                    log::debug!("kafka session down ({why}); the kafka thread reconnects and resumes from committed offsets");
                }
                self.cluster.kafka_up = false;
            }
            KafkaEvent::Record {
                topic,
                partition,
                offset,
                value,
            } => {
                self.on_kafka_record(&value);
                // Handed to the sockets (or refused for good): the offset may be committed.
                if let Some(k) = &self.cluster.kafka {
                    k.applied(&topic, partition, offset);
                }
            }
        }
    }

    fn on_kafka_record(&mut self, value: &[u8]) {
        let env = match crate::kafka::envelope::parse_envelope(value) {
            Ok(e) => e,
            Err(e) => {
                self.cluster.kafka_bad_records += 1;
                log::warn!("skipping a kafka record that is not an event envelope: {e}");
                return;
            }
        };
        if !self
            .cluster
            .kafka_seen
            .first_time("", &env.id, Instant::now())
        {
            self.cluster.kafka_duplicates += 1;
            return;
        }
        let Some(ns) = env.namespace.as_deref().map_or(Some(0), |n| {
            self.namespaces.iter().position(|x| x.name == n)
        }) else {
            self.cluster.kafka_bad_records += 1;
            log::warn!("kafka event {} names an unknown namespace", env.id);
            return;
        };
        let mut rooms = env.rooms;
        rooms.extend(env.users.iter().map(|u| format!("user:{u}")));
        if rooms.is_empty() {
            self.cluster.kafka_bad_records += 1;
            log::warn!("kafka event {} names no target", env.id);
            return;
        }
        if env.event == "quiz:update" {
            if let Some(d) = &env.data {
                self.quiz_control(d);
            }
        }
        if env.event == "notification:new" && ns == 0 {
            if let Some(d) = &env.data {
                self.queue_offline(&rooms, &env.except, d, Some(&env.id));
            }
        }
        let args: Vec<Value> = env.data.into_iter().collect();
        // Every node consumes every event, so delivery is local only.
        let target = Target {
            rooms: &rooms,
            except: &env.except,
            local: true,
            ..Target::default()
        };
        self.broadcast_event(ns, &env.event, args, Vec::<Bytes>::new(), target);
    }

    /// Publishes a local broadcast for the other nodes (adapter wire format).
    pub(crate) fn publish_broadcast(
        &mut self,
        ns: usize,
        name: &str,
        args: &[Value],
        attachments: &[Bytes],
        t: &Target<'_>,
    ) {
        let Some(redis) = &self.cluster.redis else {
            return;
        };
        let mut event_args = Vec::with_capacity(args.len() + 1);
        event_args.push(Value::String(name.to_owned()));
        event_args.extend_from_slice(args);
        let mut except = t.except.to_vec();
        if let Some(id) = t
            .except_socket
            .and_then(|x| self.sockets.get(x))
            .map(|s| s.id.clone())
        {
            except.push(id);
        }
        let b = Broadcast {
            uid: self.cluster.uid.clone(),
            nsp: self.namespaces[ns].name.clone(),
            event_args: Value::Array(event_args),
            attachments: attachments.to_vec(),
            rooms: t.rooms.to_vec(),
            except,
            flags: if t.volatile {
                json!({"volatile": true})
            } else {
                json!({})
            },
            channel_room: None,
        };
        let channel = adapter::channel_for(PREFIX, &b.nsp, &b.rooms);
        if redis
            .publish(channel, adapter::encode_broadcast(&b))
            .is_err()
        {
            log::debug!("redis queue full; a broadcast was not published to other nodes");
        }
    }

    /// Hands a client event to Kafka when configured.
    pub(crate) fn produce_client_event(&mut self, key: &str, value: &Value) {
        if let Some(k) = &self.cluster.kafka {
            if let Err(e) = k.produce(key.to_owned(), value.to_string().into_bytes()) {
                log::debug!("client event not produced: {e}");
            }
        }
    }

    /// Prometheus lines for Redis and Kafka.
    pub(crate) fn dependency_metrics(&self) -> String {
        use std::fmt::Write as _;
        let mut o = String::new();
        let c = &self.cluster;
        let line = |o: &mut String, name: &str, kind: &str, help: &str, v: u64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        line(
            &mut o,
            "sio_redis_configured",
            "gauge",
            "1 when REDIS_URL is set.",
            u64::from(c.redis.is_some()),
        );
        line(
            &mut o,
            "sio_redis_up",
            "gauge",
            "1 while Redis is reachable.",
            u64::from(c.redis_live()),
        );
        if let Some(r) = &c.redis {
            let s = r.status();
            line(
                &mut o,
                "sio_redis_errors_total",
                "counter",
                "Redis connection failures and refused commands.",
                s.errors,
            );
            line(
                &mut o,
                "sio_redis_dropped_total",
                "counter",
                "Redis jobs dropped (queue full or unsent at shutdown).",
                s.dropped,
            );
            line(
                &mut o,
                "sio_redis_queued",
                "gauge",
                "Redis jobs waiting.",
                s.queued as u64,
            );
            line(
                &mut o,
                "sio_redis_publishes_total",
                "counter",
                "Broadcasts published for other nodes.",
                s.publishes,
            );
        }
        line(
            &mut o,
            "sio_remote_broadcasts_total",
            "counter",
            "Broadcasts received from other nodes or the emitter.",
            c.remote_broadcasts,
        );
        line(
            &mut o,
            "sio_kafka_configured",
            "gauge",
            "1 when KAFKA_BROKERS is set.",
            u64::from(c.kafka.is_some()),
        );
        line(
            &mut o,
            "sio_kafka_up",
            "gauge",
            "1 while the Kafka session is up.",
            u64::from(c.kafka.is_some() && c.kafka_up),
        );
        if let Some(k) = &c.kafka {
            let s = k.status();
            line(
                &mut o,
                "sio_kafka_consumed_total",
                "counter",
                "Kafka records consumed.",
                s.consumed,
            );
            line(
                &mut o,
                "sio_kafka_produced_total",
                "counter",
                "Client events produced to Kafka.",
                s.produced,
            );
            line(
                &mut o,
                "sio_kafka_produce_dropped_total",
                "counter",
                "Client events dropped (producer queue full or broken).",
                s.produce_dropped,
            );
            line(
                &mut o,
                "sio_kafka_errors_total",
                "counter",
                "Kafka errors.",
                s.errors,
            );
            line(
                &mut o,
                "sio_kafka_lag",
                "gauge",
                "Records behind the high watermark, over all partitions.",
                s.lag.max(0) as u64,
            );
        }
        line(
            &mut o,
            "sio_kafka_duplicates_total",
            "counter",
            "Kafka events skipped as duplicates by id.",
            c.kafka_duplicates,
        );
        line(
            &mut o,
            "sio_kafka_bad_records_total",
            "counter",
            "Kafka records that were not valid envelopes.",
            c.kafka_bad_records,
        );
        o
    }

    /// `/ready` body: serving, plus each dependency's state.
    pub(crate) fn readiness(&self) -> Value {
        let c = &self.cluster;
        let dep = |configured: bool, up: bool| {
            if !configured {
                "off"
            } else if up {
                "up"
            } else {
                "down"
            }
        };
        let mut v = json!({
            "status": if self.shutting_down { "shutting down" } else { "ready" },
            "redis": dep(c.redis.is_some(), c.redis_live()),
            "kafka": dep(c.kafka.is_some(), c.kafka_up),
        });
        if let Some(k) = &c.kafka {
            v["kafkaLag"] = json!(k.status().lag);
        }
        v
    }
}
