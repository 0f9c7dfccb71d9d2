//! The loop's side of the helper threads: Redis (state mirror, multi-node fanout compatible
//! with `@socket.io/redis-adapter` and `@socket.io/redis-emitter`, cluster presence, grants,
//! the offline mailbox) and Kafka (events in, client events out). Nothing here blocks: writes
//! are queued to the helper threads, and work that needs an answer (a grant lookup, cluster
//! presence, the mailbox) is parked in `pending` until the reply wakes the loop. With neither
//! configured this is inert and the server runs fully in-process.

mod acks;
mod kafka;
mod mirror;
mod recovery;
mod remote;
mod replies;
pub(crate) mod rlog;
mod scripts;
mod status;

pub(crate) use recovery::RemoteReplay;
use scripts::*;

use super::app::events::{ack, Reply};
use super::app::validate::Refusal;
use super::Server;
use crate::adapter::{self, Broadcast, RemoteRequest};
use crate::kafka::{KafkaEvent, KafkaHandle};
use crate::redis_bridge::{RedisEvent, RedisHandle};
use crate::store::dedup::Dedup;
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
    /// An API answer held until the writes queued before it are in Redis.
    Applied {
        conn: usize,
        conn_uid: u64,
        body: Value,
        keep_alive: bool,
    },
    /// `GET /api/rooms/<room>/members` with the cluster's connected users.
    Members {
        conn: usize,
        conn_uid: u64,
        room: String,
        keep_alive: bool,
    },
    /// The logger lease script, attempt `n`.
    Lease { n: u64 },
    /// A CONNECT recovering a session from Redis.
    Recover(Box<recovery::Recovering>),
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
    /// Helper threads wake the loop through it.
    waker: std::sync::Arc<mio::Waker>,
    /// This node's adapter uid: messages carrying it are our own and skipped.
    pub uid: String,
    pub node_id: String,
    /// Work parked on Redis replies, by query id.
    pending: Parked,
    kafka_seen: Dedup,
    /// Dependency states and counters for `/metrics` and `/ready`.
    pub stats: Stats,
    /// (room, user) -> this node's sockets of the user in the room, mirrored to Redis.
    pub memberships: HashMap<(String, String), u32>,
    /// Broadcasts with acks from Node nodes waiting for our clients' acks.
    acks: acks::RemoteAcks,
    /// The recovery log in Redis (lease, foreign broadcasts waiting to be logged).
    pub(crate) log: rlog::LogState,
    /// Recovery sessions in Redis: CONNECTs in flight and their live broadcasts.
    pub(crate) rec: recovery::RecoveryState,
}

/// Queries waiting for their Redis reply.
#[derive(Default)]
struct Parked {
    next: u64,
    by_id: HashMap<u64, Pending>,
}

/// Dependency states and counters.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub redis_up: bool,
    pub kafka_up: bool,
    pub kafka_duplicates: u64,
    pub kafka_bad_records: u64,
    pub remote_broadcasts: u64,
    /// `serverSideEmit` requests received from Node nodes (no server-side handlers here).
    pub server_side_emits: u64,
    /// Requests from Node nodes answered (fetchSockets, serverSideEmit acks, broadcast counts).
    pub requests_answered: u64,
    /// Recoveries served in-process because Redis was configured but down.
    pub recovery_fallbacks: u64,
    /// Sockets recovered from a session in Redis.
    pub recovered_redis: u64,
    /// Recovery attempts refused: the session belongs to another user.
    pub recovery_refused: u64,
}

impl Cluster {
    pub fn new(node_id: String, waker: std::sync::Arc<mio::Waker>) -> Self {
        Cluster {
            redis: None,
            kafka: None,
            waker,
            uid: crate::engineio::new_id(),
            node_id,
            pending: Parked::default(),
            kafka_seen: Dedup::new(KAFKA_DEDUP_WINDOW, KAFKA_DEDUP_CAP),
            stats: Stats::default(),
            memberships: HashMap::new(),
            acks: acks::RemoteAcks::default(),
            log: rlog::LogState::default(),
            rec: recovery::RecoveryState::default(),
        }
    }

    /// Whether Redis is configured and reachable now.
    pub fn redis_live(&self) -> bool {
        self.redis.is_some() && self.stats.redis_up
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
        self.pending.next += 1;
        let id = self.pending.next;
        if r.query(id, cmds).is_err() {
            return false;
        }
        self.pending.by_id.insert(id, then);
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

/// The strings of an array reply; empty for any other reply.
fn string_items(v: Option<&redis::Value>) -> Vec<String> {
    match v {
        Some(redis::Value::Array(items)) => items.iter().filter_map(as_string).collect(),
        _ => Vec::new(),
    }
}

/// `DEL key`, `HSET key field value` for each entry, then `PEXPIRE key ttl_ms`: a per-node
/// mirror hash written whole.
fn replace_hash<F: redis::ToRedisArgs>(
    key: &str,
    entries: impl IntoIterator<Item = (F, u32)>,
    ttl_ms: u64,
) -> Vec<redis::Cmd> {
    let mut del = cmd("DEL");
    del.arg(key);
    let mut cmds = vec![del];
    for (field, n) in entries {
        let mut c = cmd("HSET");
        c.arg(key).arg(field).arg(n);
        cmds.push(c);
    }
    let mut exp = cmd("PEXPIRE");
    exp.arg(key).arg(ttl_ms);
    cmds.push(exp);
    cmds
}

impl Server {
    /// Starts the helper threads the configuration asks for.
    pub(crate) fn start_cluster(&mut self) {
        if let Some(url) = self.config.redis_url.clone() {
            let cfg = crate::redis_bridge::RedisConfig::new(url, self.config.node_id.clone());
            let names: Vec<&str> = self.sockets.ns_counts().map(|(n, _)| n).collect();
            let patterns = names
                .iter()
                .map(|n| adapter::pattern_for(PREFIX, n))
                .collect();
            let mut channels: Vec<String> = names
                .iter()
                .map(|n| adapter::request_channel(PREFIX, n))
                .collect();
            channels.push(GRANT_EVENTS.to_owned());
            // Recovery log publications, on the same connection as the broadcasts (one order).
            channels.extend(names.iter().map(|n| rlog::log_channel(n)));
            channels.push(rlog::SYNC_CHANNEL.to_owned());
            let waker = std::sync::Arc::clone(&self.cluster.waker);
            match crate::redis_bridge::spawn(cfg, patterns, channels, waker) {
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
            match crate::kafka::spawn(cfg, std::sync::Arc::clone(&self.cluster.waker)) {
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
            self.release_logger_lease();
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
            self.reap();
            n += 1;
        }
        let mut m = 0;
        while m < PER_TURN {
            let Some(ev) = self.cluster.kafka.as_ref().and_then(KafkaHandle::try_recv) else {
                break;
            };
            self.on_kafka_event(ev);
            self.reap();
            m += 1;
        }
        if n == PER_TURN || m == PER_TURN {
            let _ = self.cluster.waker.wake();
        }
    }

    fn on_redis_event(&mut self, ev: RedisEvent) {
        match ev {
            RedisEvent::Connected => {
                if !self.cluster.stats.redis_up {
                    log::info!("redis connected; resyncing this node's state");
                }
                self.cluster.stats.redis_up = true;
                self.resync_redis();
                self.reopen_sessions();
                self.redis_state_known();
            }
            RedisEvent::Disconnected(why) => {
                if self.cluster.stats.redis_up {
                    log::warn!("redis unreachable ({why}); serving from memory and reconnecting");
                }
                self.cluster.stats.redis_up = false;
                self.foreign_outage();
                self.redis_state_known();
            }
            RedisEvent::Reply { id, result } => {
                if let Some(p) = self.cluster.pending.by_id.remove(&id) {
                    self.on_redis_reply(p, result);
                }
            }
            RedisEvent::Message { channel, payload } => self.on_redis_message(&channel, &payload),
        }
    }

    /// Writes this node's whole state after (re)connecting: presence counts and API grants.
    fn resync_redis(&mut self) {
        let pkey = self.cluster.presence_key();
        let mut cmds = replace_hash(&pkey, self.stores.presence.local_counts(), PRESENCE_TTL_MS);
        for (room, user) in self.stores.grants.all() {
            cmds.extend(self.grant_cmds(room, user, true));
        }
        let mkey = self.cluster.key(&["room-members", &self.cluster.node_id]);
        let members = self
            .cluster
            .memberships
            .iter()
            .map(|((room, user), n)| (format!("{room}\t{user}"), *n));
        cmds.extend(replace_hash(&mkey, members, PRESENCE_TTL_MS));
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
}

/// `Ok(Reply::Ack(v))` (named apart from the `ack` field of `Pending`).
fn ack_value(v: Value) -> Result<Reply, Refusal> {
    ack(v)
}
