//! The Redis helper threads: the event loop never waits on Redis.
//!
//! [`spawn`] starts two threads that own the blocking `redis` connections. Jobs go to them over
//! a bounded channel; events come back over the shared helper bridge ([`crate::bridge`]: a
//! bounded queue, the loop's [`mio::Waker`] and its wake rule, no lock on the loop's side):
//!
//! ```text
//!  loop thread                      command thread                     Redis
//!  handle.write/publish/query ──►  [jobs: bounded by cfg.queue]  ──►  one pipeline per batch
//!                                   heartbeat every 5 s          ──►  SET <prefix>:node:<id> PX 15000
//!                                                                      SADD <prefix>:nodes <id>
//!  handle.try_recv  ◄── [events] ◄─ Reply / Connected / Disconnected
//!                  ◄── [events] ◄─ pub/sub thread ◄──────────────────  PSUBSCRIBE / SUBSCRIBE
//!                                   (Message)
//! ```
//!
//! # The contract with the loop
//!
//! - `write`, `publish` and `query` never block: they enqueue a job, or return [`Full`] when
//!   `cfg.queue` jobs are already waiting (the job is dropped and counted in
//!   [`RedisStatus::dropped`]). Jobs run in submission order; the command thread drains
//!   everything queued (up to [`MAX_BATCH_CMDS`] commands) into one pipeline, so writes and
//!   queries interleave exactly as submitted.
//! - Register the waker under its own token. After each wake, call [`RedisHandle::try_recv`]
//!   until it returns `None`: the helpers wake the loop only when it may have drained the
//!   channel, so stopping early can leave events unread until the next wake.
//! - A query's reply is [`RedisEvent::Reply`] with the query's id: `Ok(values)` holds one
//!   value per command, in order; a command the server refused is a
//!   [`redis::Value::ServerError`] inside it. `Err` means the pipeline did not run (Redis
//!   unavailable, connection lost mid-pipeline, shutting down): queries are never kept during an
//!   outage, they fail at once.
//! - Writes and publishes during an outage stay queued (within the same bound) and are sent
//!   after the reconnect. A pipeline cut by a dropped connection is sent again after the
//!   reconnect, so a write may apply twice: keep writes idempotent, or resync on `Connected`.
//!   After a cut, jobs go one per pipeline until one succeeds; a job that alone kills the
//!   connection three times is dropped (counted), so one write Redis refuses to read cannot
//!   block the queue.
//! - `Connected` is sent when both connections are up (after the pub/sub connection has
//!   re-subscribed), `Disconnected(reason)` when either is lost; once per transition, and a
//!   `Disconnected` first if Redis is unreachable at start. Each outage is logged once (`warn`)
//!   and its end once (`info`). Reconnects back off exponentially with jitter, up to
//!   [`MAX_BACKOFF`].
//! - Pub/sub messages are dropped (counted in [`RedisStatus::dropped_messages`]) rather than
//!   queued without bound when the loop falls behind; replies and connection events always get
//!   through.
//! - [`RedisHandle::shutdown`] flushes what is queued for at most [`SHUTDOWN_FLUSH`], removes
//!   this node's heartbeat key and its entry in the node set, and stops both threads. Dropping
//!   the handle does the same in the background, without waiting for the threads.
//!
//! Commands must be ordinary request/reply commands: no `SUBSCRIBE`, `MONITOR` or blocking
//! pops on the shared command connection. Empty commands are skipped (Redis sends no reply to
//! them).
//!
//! # Heartbeat keys
//!
//! Every [`HEARTBEAT_EVERY`] (and right after each connect) the command thread runs
//! `SET <prefix>:node:<node_id> <unix ms> PX 15000`, `SADD <prefix>:nodes <node_id>` and
//! `PEXPIRE <prefix>:presence:<node_id> 15000` (see [`node_key`], [`NODES_SET`],
//! [`presence_key`]). A node whose `node` key is gone is dead; its presence hash expires with
//! it. docs/REDIS.md has the whole key schema.

mod command;
mod pubsub;
mod shared;

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};

use self::shared::Shared;
use crate::bridge::EventReceiver;

/// Default `key_prefix`: the `@socket.io/redis-adapter` default `key`.
pub const DEFAULT_PREFIX: &str = "socket.io";
/// Default bound on queued jobs (writes, publishes and queries together).
pub const DEFAULT_QUEUE: usize = 100_000;
/// Heartbeat period of the command thread.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
/// TTL of the node heartbeat key (`PX`): three missed heartbeats and the node is gone.
pub const NODE_TTL_MS: u64 = 15_000;
/// Middle part of the node heartbeat key: `<prefix>:node:<node_id>`.
pub const NODE_KEY: &str = "node";
/// Suffix of the set of node ids: `<prefix>:nodes`.
pub const NODES_SET: &str = "nodes";
/// Middle part of a node's presence hash: `<prefix>:presence:<node_id>`.
pub const PRESENCE_KEY: &str = "presence";
/// Longest wait between reconnect attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Longest time [`RedisHandle::shutdown`] spends flushing queued jobs.
pub const SHUTDOWN_FLUSH: Duration = Duration::from_secs(2);
/// Events waiting for the loop; pub/sub messages may fill seven eighths of it.
pub const EVENT_CAPACITY: usize = 16_384;
/// Most commands sent in one pipeline.
pub const MAX_BATCH_CMDS: usize = 4096;

/// `<prefix>:node:<node_id>`, this node's heartbeat key.
pub fn node_key(prefix: &str, node_id: &str) -> String {
    format!("{prefix}:{NODE_KEY}:{node_id}")
}

/// `<prefix>:nodes`, the set of node ids that have sent a heartbeat.
pub fn nodes_key(prefix: &str) -> String {
    format!("{prefix}:{NODES_SET}")
}

/// `<prefix>:presence:<node_id>`, the node's presence hash (refreshed by the heartbeat).
pub fn presence_key(prefix: &str, node_id: &str) -> String {
    format!("{prefix}:{PRESENCE_KEY}:{node_id}")
}

/// Where and who: the Redis URL, this node's id and the key prefix.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`; never logged (it may hold a password).
    pub url: String,
    /// This node's id, used in the heartbeat keys.
    pub node_id: String,
    /// Prefix of the pub/sub channels and keys; default [`DEFAULT_PREFIX`].
    pub key_prefix: String,
    /// Bound on queued jobs (writes, publishes and queries); default [`DEFAULT_QUEUE`].
    pub queue: usize,
}

impl RedisConfig {
    /// A config with the default prefix and queue bound.
    pub fn new(url: impl Into<String>, node_id: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            node_id: node_id.into(),
            key_prefix: DEFAULT_PREFIX.to_string(),
            queue: DEFAULT_QUEUE,
        }
    }
}

/// The job queue is full; the job was dropped (and counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("redis job queue full")]
pub struct Full;

/// What the helper threads tell the loop.
#[derive(Debug)]
pub enum RedisEvent {
    /// A pub/sub message (from a pattern or a plain subscription).
    Message { channel: Vec<u8>, payload: Vec<u8> },
    /// The replies to [`RedisHandle::query`] `id`, one per command, in order.
    Reply {
        id: u64,
        result: Result<Vec<redis::Value>, String>,
    },
    /// Both connections are up and subscribed (again): time to resync.
    Connected,
    /// Redis is unreachable or a connection dropped; the helpers keep retrying.
    Disconnected(String),
}

/// Counters and state for `/metrics` and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedisStatus {
    /// Both connections up (the last event was `Connected`).
    pub connected: bool,
    /// Write commands sent (and answered, errors included).
    pub writes: u64,
    /// `PUBLISH` commands sent.
    pub publishes: u64,
    /// Queries answered (`Ok` or `Err`).
    pub queries: u64,
    /// Pub/sub messages handed to the loop.
    pub messages: u64,
    /// Jobs dropped: queue full, or still unsent when shutdown's flush ran out.
    pub dropped: u64,
    /// Pub/sub messages dropped because the loop fell behind.
    pub dropped_messages: u64,
    /// Connection failures plus commands the server refused.
    pub errors: u64,
    /// The last of those errors.
    pub last_error: Option<String>,
    /// Jobs waiting now.
    pub queued: usize,
}

/// One unit of work for the command thread.
pub(crate) enum Job {
    Write(Vec<redis::Cmd>),
    /// As the loop submits a publish: the command is built on the command thread, so the
    /// loop pays no copy and an outage's backlog grows the helper's heap, not the loop's.
    PublishRaw {
        channel: String,
        payload: Vec<u8>,
    },
    /// A publish taken off the channel, ready to pipeline.
    Publish(redis::Cmd),
    Query(u64, Vec<redis::Cmd>),
    /// No work: makes the thread look at the stop flag now.
    Nudge,
}

/// The loop's side of the helper threads.
pub struct RedisHandle {
    shared: Arc<Shared>,
    jobs: Sender<Job>,
    events: EventReceiver<RedisEvent>,
    threads: Vec<JoinHandle<()>>,
}

/// Starts the command thread and (when there is anything to subscribe to) the pub/sub thread.
/// Returns at once: connecting happens on the threads.
///
/// # Errors
///
/// `InvalidInput` for a URL the `redis` crate cannot parse; the OS error if a thread cannot
/// be started.
pub fn spawn(
    cfg: RedisConfig,
    patterns: Vec<String>,
    channels: Vec<String>,
    waker: Arc<mio::Waker>,
) -> io::Result<RedisHandle> {
    let client = redis::Client::open(cfg.url.as_str())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("redis url: {e}")))?;
    let queue = cfg.queue.max(1);
    // Events: when full, a reply waits on its helper thread and a message is dropped.
    let (ev_tx, ev_rx) = crate::bridge::channel(EVENT_CAPACITY, waker);
    let (job_tx, job_rx) = crossbeam_channel::bounded(queue + 1);
    let has_sub = !(patterns.is_empty() && channels.is_empty());
    let shared = Arc::new(Shared::new(ev_tx, queue, has_sub));

    let mut threads = Vec::with_capacity(2);
    let cmd = command::CommandThread::new(client.clone(), cfg, job_rx, Arc::clone(&shared));
    threads.push(
        std::thread::Builder::new()
            .name("redis-cmd".into())
            .spawn(move || cmd.run())?,
    );
    if has_sub {
        let sub = pubsub::PubSubThread::new(client, patterns, channels, Arc::clone(&shared));
        match std::thread::Builder::new()
            .name("redis-sub".into())
            .spawn(move || sub.run())
        {
            Ok(t) => threads.push(t),
            Err(e) => {
                shared.stop.store(true, Ordering::SeqCst);
                let _ = job_tx.try_send(Job::Nudge);
                return Err(e);
            }
        }
    }
    Ok(RedisHandle {
        shared,
        jobs: job_tx,
        events: ev_rx,
        threads,
    })
}

impl RedisHandle {
    /// Fire-and-forget writes, pipelined by the thread in batches (drain the queue, one
    /// pipeline per batch).
    ///
    /// # Errors
    ///
    /// [`Full`] when the bounded queue is full; the commands are dropped and counted.
    pub fn write(&self, cmds: Vec<redis::Cmd>) -> Result<(), Full> {
        if cmds.is_empty() {
            return Ok(());
        }
        self.submit(Job::Write(cmds))
    }

    /// `PUBLISH channel payload`, fire-and-forget, in order with the writes.
    ///
    /// # Errors
    ///
    /// [`Full`] as for [`RedisHandle::write`].
    pub fn publish(&self, channel: String, payload: Vec<u8>) -> Result<(), Full> {
        self.submit(Job::PublishRaw { channel, payload })
    }

    /// A query whose replies come back as [`RedisEvent::Reply`] `{ id, .. }` (one pipeline,
    /// results in order).
    ///
    /// # Errors
    ///
    /// [`Full`] as for [`RedisHandle::write`]; no reply will come for this id.
    pub fn query(&self, id: u64, cmds: Vec<redis::Cmd>) -> Result<(), Full> {
        self.submit(Job::Query(id, cmds))
    }

    /// The next event, if any. Call until `None` after each wake (see the module doc).
    pub fn try_recv(&self) -> Option<RedisEvent> {
        self.events.try_recv()
    }

    /// Counters and connection state.
    pub fn status(&self) -> RedisStatus {
        self.shared.status()
    }

    /// Flushes what is queued (at most [`SHUTDOWN_FLUSH`]), deletes this node's heartbeat key,
    /// and stops both threads. Returns within about [`SHUTDOWN_FLUSH`] plus one second.
    pub fn shutdown(mut self) {
        self.stop();
        let deadline = Instant::now() + SHUTDOWN_FLUSH + Duration::from_secs(1);
        for t in self.threads.drain(..) {
            // std has no join with a timeout: poll is_finished, then detach a straggler.
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                log::warn!("redis: helper thread did not stop in time; detaching it");
            }
        }
    }

    fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // The thread also polls the flag; the nudge only makes it notice at once.
        let _ = self.jobs.try_send(Job::Nudge);
    }

    fn submit(&self, job: Job) -> Result<(), Full> {
        if !self.shared.reserve() {
            return Err(Full);
        }
        match self.jobs.try_send(job) {
            Ok(()) => Ok(()),
            // The counter keeps the channel below its capacity, so this is the thread having
            // exited (after shutdown) or a race with a nudge: count it as a drop.
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.shared.release(1);
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                Err(Full)
            }
        }
    }
}

impl Drop for RedisHandle {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.stop();
        }
    }
}
