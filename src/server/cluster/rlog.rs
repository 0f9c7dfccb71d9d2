//! The recovery log in Redis: one capped stream per namespace whose entry ids are the
//! offsets of connection state recovery, comparable on every node.
//!
//! Every non-volatile broadcast is logged once, by one Lua script ([`LOG_BROADCAST`]) that
//! appends it (`XADD`, capped by `MAXLEN ~` and trimmed to the window by `MINID ~`) and
//! publishes it with its entry id in `flags.offset`, atomically. Nodes deliver logged
//! broadcasts only from those publications, so every node delivers them in entry-id order
//! (one Redis, one pub/sub order) and a client's last offset says exactly what it has.
//!
//! - sio-edge broadcasts (`App`, `Api`) are logged by the node that makes them, published on
//!   the adapter channel (Node nodes get them as any adapter broadcast);
//! - Kafka records (read by every node) are logged by the first node that claims their id,
//!   published on the log channel `socket.io-log#<nsp>#`;
//! - broadcasts from publishers that do not log (the emitter, Node nodes) reach every node;
//!   one node holding the logger lease logs them (fenced on the lease) and republishes them
//!   on the log channel with `flags.src`, the digest of the original. Every node keeps the
//!   unlogged ones it received in a FIFO until their logged copy arrives; a node that takes
//!   the lease publishes a sync marker in the same script and, once it reads the marker back
//!   (every log publication made before it has then been read), logs what is still in its
//!   FIFO, in order.

use super::*;
use crate::adapter::Broadcast;
use crate::server::deliver::{Emit, Origin};
use std::collections::VecDeque;

/// Channel prefix of logged broadcasts republished for other publishers and Kafka.
pub const LOG_PREFIX: &str = "socket.io-log";
/// Channel on which a new lease holder publishes its sync marker.
pub const SYNC_CHANNEL: &str = "socket.io-log#sync";
/// Entries a namespace's stream keeps at most (`XADD MAXLEN ~`).
pub const LOG_MAXLEN: usize = 50_000;
/// The logger lease outlives its holder's last renewal by this much.
pub const LEASE_TTL_MS: u64 = 3_000;
/// An unlogged foreign broadcast is delivered without an offset after this long (no holder
/// logged it: the holder dropped it, or nobody could take the lease).
const FOREIGN_MAX_AGE: Duration = Duration::from_secs(10);
/// Unlogged foreign broadcasts kept at most (the oldest are delivered without an offset).
const FOREIGN_CAP: usize = 10_000;

/// This node's part in logging foreign broadcasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Lease {
    #[default]
    Follower,
    /// Took the lease; waiting to read sync marker `n` back.
    Syncing(u64),
    /// Holds the lease and logs each foreign broadcast as it arrives.
    Active,
}

/// A foreign broadcast not seen logged yet.
#[derive(Debug)]
struct Foreign {
    digest: String,
    at: Instant,
    b: Broadcast,
}

/// Loop-side state of the recovery log.
#[derive(Debug, Default)]
pub(crate) struct LogState {
    /// Sequence number of this process's log scripts (idempotent on a resent pipeline).
    seq: u64,
    pub lease: Lease,
    lease_n: u64,
    /// The last of our own sync markers read back (it may come before the script's answer).
    marker_seen: u64,
    foreign: VecDeque<Foreign>,
    /// Broadcasts logged by this node.
    pub logged: u64,
    /// Foreign broadcasts delivered without an offset (never seen logged in time).
    pub unlogged: u64,
}

impl Cluster {
    fn stream_key(&self, nsp: &str) -> String {
        self.key(&["recovery-log", nsp])
    }

    fn lease_key(&self) -> String {
        self.key(&["recovery-logger"])
    }
}

/// `<LOG_PREFIX>#<nsp>#`.
pub fn log_channel(nsp: &str) -> String {
    format!("{LOG_PREFIX}#{nsp}#")
}

impl Server {
    /// Whether broadcasts are logged in Redis now (recovery on, Redis configured and up).
    pub(crate) fn log_ready(&self) -> bool {
        !self.config.recovery_window.is_zero() && self.cluster.redis_live()
    }

    /// One LOG_BROADCAST write; `false` when the Redis queue refused it.
    fn log_write(
        &mut self,
        nsp: &str,
        mode: &str,
        key2: String,
        channel: String,
        slot: Vec<u8>,
    ) -> bool {
        let Some(redis) = &self.cluster.redis else {
            return false;
        };
        self.cluster.log.seq += 1;
        let window = self.config.recovery_window.as_millis().max(1) as u64;
        let mut c = cmd("EVAL");
        c.arg(LOG_BROADCAST)
            .arg(3)
            .arg(self.cluster.stream_key(nsp))
            .arg(key2)
            .arg(self.cluster.key(&["recovery-log-seq"]))
            .arg(mode)
            .arg(&self.cluster.uid)
            .arg(channel)
            .arg(slot)
            .arg(LOG_MAXLEN)
            .arg(window)
            .arg(KAFKA_DEDUP_WINDOW.as_millis() as u64)
            .arg(self.cluster.log.seq);
        if redis.write(vec![c]).is_err() {
            return false;
        }
        self.cluster.log.logged += 1;
        true
    }

    /// Logs a broadcast this node makes (published on the adapter channel by the script).
    /// `false`: not logged, deliver it the in-process way.
    pub(crate) fn log_own(&mut self, e: &Emit, rooms: &[String], except: &[String]) -> bool {
        let no_rooms: &[String] = &[];
        let nsp = self.sockets.ns_name(e.ns).to_owned();
        let rooms = if e.all { no_rooms } else { rooms };
        let channel = adapter::channel_for(PREFIX, &nsp, rooms);
        let slot = log_slot(&self.cluster.uid, &nsp, e, rooms, except);
        let lease = self.cluster.lease_key();
        self.log_write(&nsp, "own", lease, channel, slot)
    }

    /// Logs a Kafka record once for the cluster (the first node to claim its id publishes it
    /// on the log channel; every node delivers it from there).
    pub(crate) fn log_kafka(&mut self, e: &Emit, rooms: &[String], id: &str) -> bool {
        let nsp = self.sockets.ns_name(e.ns).to_owned();
        let slot = log_slot(&self.cluster.uid, &nsp, e, rooms, &e.except);
        let claim = self.cluster.key(&["recovery-log-claim", id]);
        self.log_write(&nsp, "claim", claim, log_channel(&nsp), slot)
    }

    /// A broadcast from a publisher that does not log (the emitter, a Node node): logged by
    /// the lease holder; delivered by every node from the logged copy.
    pub(super) fn on_foreign_broadcast(&mut self, b: Broadcast, digest: String) {
        let f = Foreign {
            digest,
            at: Instant::now(),
            b,
        };
        if self.cluster.log.lease == Lease::Active {
            self.log_foreign(&f);
        }
        self.cluster.log.foreign.push_back(f);
        while self.cluster.log.foreign.len() > FOREIGN_CAP {
            if let Some(old) = self.cluster.log.foreign.pop_front() {
                self.deliver_unlogged(old);
            }
        }
    }

    fn log_foreign(&mut self, f: &Foreign) {
        let slot = adapter::encode_broadcast_slot(&f.b, &f.digest);
        let lease = self.cluster.lease_key();
        let channel = log_channel(&f.b.nsp);
        self.log_write(&f.b.nsp.clone(), "fenced", lease, channel, slot);
    }

    fn deliver_unlogged(&mut self, f: Foreign) {
        self.cluster.log.unlogged += 1;
        log::warn!(
            "a broadcast from {} on {} was not logged for recovery in time; delivered without an offset",
            f.b.uid,
            f.b.nsp
        );
        self.deliver_broadcast(f.b, None);
    }

    /// A message on a log channel: a sync marker, or a logged broadcast to deliver.
    pub(super) fn on_log_message(&mut self, channel: &[u8], payload: &[u8]) {
        if channel == SYNC_CHANNEL.as_bytes() {
            let n = std::str::from_utf8(payload)
                .ok()
                .and_then(|p| p.strip_prefix(self.cluster.uid.as_str()))
                .and_then(|p| p.strip_prefix(':'))
                .and_then(|n| n.parse::<u64>().ok());
            if let Some(n) = n {
                self.cluster.log.marker_seen = n;
                if self.cluster.log.lease == Lease::Syncing(n) {
                    self.lease_synced();
                }
            }
            return;
        }
        match adapter::decode_broadcast(channel, payload, LOG_PREFIX) {
            Ok(b) => {
                if let Some(src) = b.source() {
                    let q = &mut self.cluster.log.foreign;
                    if let Some(i) = q.iter().position(|f| f.digest == src) {
                        q.remove(i);
                    }
                }
                let offset = b.offset().map(str::to_owned);
                self.deliver_broadcast(b, offset);
            }
            Err(e) => {
                self.metrics.protocol_errors += 1;
                log::warn!("ignoring an undecodable recovery log message: {e}");
            }
        }
    }

    /// Read our sync marker back: every log publication made before we took the lease has
    /// been read, so what is left in the FIFO was not logged. Log it, in order.
    fn lease_synced(&mut self) {
        log::info!(
            "this node logs broadcasts of the emitter and other publishers for recovery ({} waiting)",
            self.cluster.log.foreign.len()
        );
        self.cluster.log.lease = Lease::Active;
        let pending = std::mem::take(&mut self.cluster.log.foreign);
        for f in &pending {
            self.log_foreign(f);
        }
        self.cluster.log.foreign = pending;
    }

    /// Every second: renew or take the lease, and deliver foreign broadcasts nobody logged.
    pub(crate) fn recovery_log_tick(&mut self, now: Instant) {
        while self
            .cluster
            .log
            .foreign
            .front()
            .is_some_and(|f| now.duration_since(f.at) > FOREIGN_MAX_AGE)
        {
            if let Some(old) = self.cluster.log.foreign.pop_front() {
                self.deliver_unlogged(old);
            }
        }
        if !self.log_ready() {
            self.cluster.log.lease = Lease::Follower;
            return;
        }
        self.cluster.log.lease_n += 1;
        let n = self.cluster.log.lease_n;
        let args = [
            self.cluster.uid.clone(),
            LEASE_TTL_MS.to_string(),
            SYNC_CHANNEL.to_owned(),
            n.to_string(),
        ];
        let q = eval(LOGGER_LEASE, &[self.cluster.lease_key()], &args);
        self.cluster.query(vec![q], Pending::Lease { n });
        self.refresh_sessions(now);
    }

    /// Redis was lost: whether the broadcasts still waiting were logged (and their logged copy
    /// lost with the subscriber connection) cannot be known, so they are delivered here
    /// without an offset rather than logged again after the reconnect (which could log one
    /// twice for the cluster).
    pub(super) fn foreign_outage(&mut self) {
        self.cluster.log.lease = Lease::Follower;
        for f in std::mem::take(&mut self.cluster.log.foreign) {
            self.deliver_unlogged(f);
        }
    }

    /// At shutdown: another node takes the lease at its next attempt, not after the TTL.
    pub(super) fn release_logger_lease(&mut self) {
        if self.cluster.log.lease == Lease::Follower {
            return;
        }
        let script = "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end";
        let key = self.cluster.lease_key();
        let uid = self.cluster.uid.clone();
        self.cluster.write(vec![eval(script, &[key], &[uid])]);
    }

    /// The lease script's answer for attempt `n`.
    pub(super) fn on_lease_reply(&mut self, n: u64, answer: Option<i64>) {
        let state = self.cluster.log.lease;
        log::trace!("logger lease attempt {n}: {answer:?} in state {state:?}");
        match answer {
            Some(2) if self.cluster.log.marker_seen == n => self.lease_synced(),
            Some(2) => self.cluster.log.lease = Lease::Syncing(n),
            // Held, but we did not know (the answer that gave it to us was lost): its sync
            // marker came and went, so act on it now.
            Some(1) if state == Lease::Follower => self.lease_synced(),
            Some(1) | None => {}
            Some(_) => {
                if state != Lease::Follower {
                    log::info!("this node no longer holds the recovery logger lease");
                }
                self.cluster.log.lease = Lease::Follower;
            }
        }
    }

    /// Delivers a received broadcast locally (`offset`: its log entry id, if logged).
    pub(super) fn deliver_broadcast(&mut self, b: Broadcast, offset: Option<String>) {
        let Some(ns) = self.sockets.ns(&b.nsp) else {
            return;
        };
        let Value::Array(mut data) = b.event_args else {
            return;
        };
        if data.is_empty() {
            return;
        }
        let event = match data.remove(0) {
            Value::String(s) => s,
            other => other.to_string(),
        };
        if b.uid != self.cluster.uid {
            self.cluster.stats.remote_broadcasts += 1;
        }
        let volatile = b
            .flags
            .get("volatile")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let e = Emit {
            ns,
            event,
            args: data,
            attachments: b.attachments,
            all: b.rooms.is_empty(),
            rooms: b.rooms,
            except: b.except,
            volatile,
            origin: Origin::Remote,
            offset,
            ..Emit::default()
        };
        self.deliver(&e);
    }
}

/// The adapter message of `e` with an empty offset slot the log script fills in.
fn log_slot(uid: &str, nsp: &str, e: &Emit, rooms: &[String], except: &[String]) -> Vec<u8> {
    adapter::encode_outgoing_slot(&adapter::Outgoing {
        uid,
        nsp,
        event: &e.event,
        args: &e.args,
        attachments: &e.attachments,
        rooms,
        except,
        volatile: false,
    })
}
