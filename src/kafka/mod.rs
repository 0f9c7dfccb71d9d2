//! Kafka on one helper thread: consume the realtime topics, produce client events.
//!
//! # Threading
//! [`spawn`] starts one thread named `kafka` running a current-thread tokio runtime. The event
//! loop never blocks on it: it drains [`KafkaHandle::try_recv`] after every wake of the
//! `mio::Waker` it passed in, reports what it delivered with [`KafkaHandle::applied`], and
//! queues client events with [`KafkaHandle::produce`]. All three are non-blocking, and none
//! takes a lock: events come over the shared helper bridge ([`crate::bridge`]), applied marks
//! go back over a lock-free channel ([`marks`]).
//!
//! ```text
//!  loop thread                         kafka thread (tokio current_thread)
//!  ───────────                         ───────────────────────────────────
//!  try_recv() <── bridge (bounded, 4096) ── one fetch task per partition (rskafka)
//!          (one wake per drain; a full bridge holds the fetch back)
//!  applied(t,p,o) ──> marks channel ──> max per partition ──> OffsetCommit every 200 ms
//!  produce(k,v) ──> queue (bounded, produce_queue) ──> producer task (rskafka)
//! ```
//!
//! # Consuming
//! Every node reads every partition of every configured topic (no group membership, so no
//! rebalancing) and commits under its own `group_id` with FindCoordinator, OffsetFetch and
//! OffsetCommit (generation -1, no member id: the "simple consumer" commit). A partition starts
//! at its committed offset; without one at the latest offset (`start_at_latest`, the default)
//! or the earliest, and that start position is committed at once, so a later outage resumes
//! from it instead of skipping. Partitions that appear while running (a topic created after
//! start) start at the earliest offset: everything in them is new.
//!
//! Delivery is at least once: offsets are committed only for records the loop reported with
//! [`KafkaHandle::applied`]. After a reconnect the thread re-reads the committed offsets, so
//! records that were handed over but not yet applied may come again; the loop deduplicates by
//! envelope `id` ([`envelope::parse_envelope`]).
//!
//! # Failures
//! A broken connection ends the session: the loop gets [`KafkaEvent::Disconnected`], the outage
//! is logged once, and the thread reconnects with exponential backoff and jitter (200 ms up to
//! 10 s), then sends [`KafkaEvent::Connected`]. Producing never blocks the loop: a full queue
//! returns [`ProduceError::Full`] and counts a drop (logged once per overflow), and a batch that
//! fails is retried with backoff while new records queue up behind it.
//!
//! Wire protocol versions and why: see `docs/DESIGN.md`, section "Kafka".

pub mod envelope;
mod group;
mod marks;
mod producer;
mod worker;

pub use envelope::{parse_envelope, Envelope};
pub use producer::partition_for;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::bridge::{ErrorLog, EventReceiver};

/// Events the thread may queue for the loop before it waits for the loop to drain them.
pub const EVENT_CAPACITY: usize = 4096;
/// How long [`KafkaHandle::shutdown`] waits for the thread (it flushes for at most 2 s).
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(3);

/// What to consume and where to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port`.
    pub brokers: Vec<String>,
    /// Topics whose records are delivered to sockets (default `realtime-events`).
    pub topics: Vec<String>,
    /// Consumer group id for offset commits; must be unique per node (every node reads every
    /// partition). Default `sio-edge-<hostname>`.
    pub group_id: String,
    /// Topic for persisted client events (default `client-events`).
    pub client_events_topic: String,
    /// Without a committed offset, start at the latest offset (`true`, default) or the earliest.
    pub start_at_latest: bool,
    /// Capacity of the produce queue (default 10 000); more is dropped and counted.
    pub produce_queue: usize,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: vec!["localhost:9092".to_owned()],
            topics: vec!["realtime-events".to_owned()],
            group_id: default_group_id(),
            client_events_topic: "client-events".to_owned(),
            start_at_latest: true,
            produce_queue: 10_000,
        }
    }
}

/// `sio-edge-<hostname>`: a group id that differs per node without configuration.
pub fn default_group_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".to_owned());
    format!("sio-edge-{host}")
}

/// What the thread tells the loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KafkaEvent {
    /// A record from a consumed topic; deliver it, then call [`KafkaHandle::applied`] with its
    /// coordinates (also for a record whose value does not parse, so its offset is committed).
    Record {
        topic: String,
        partition: i32,
        offset: i64,
        value: Vec<u8>,
    },
    /// A session with the brokers is up (sent at the first connection and after each outage).
    Connected,
    /// The session broke; the thread is reconnecting. The reason is for logs.
    Disconnected(String),
}

/// Why [`KafkaHandle::produce`] did not queue a record. Either way it is counted as dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProduceError {
    #[error("kafka produce queue is full")]
    Full,
    #[error("kafka thread has stopped")]
    Closed,
}

/// Counters for `/metrics` and `/ready`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KafkaStatus {
    /// A session with the brokers is up.
    pub connected: bool,
    /// Records handed to the loop.
    pub consumed: u64,
    /// Client events the brokers acknowledged.
    pub produced: u64,
    /// Client events dropped (queue full, or the thread gone).
    pub produce_dropped: u64,
    /// Failed sessions, fetches, commits and produce attempts.
    pub errors: u64,
    /// Sum over consumed partitions of high watermark minus next offset to fetch.
    pub lag: i64,
    /// The most recent error, for `/ready` and logs.
    pub last_error: Option<String>,
}

/// State shared by the handle (loop thread) and the kafka thread: counters and the last error
/// (its mutex is taken on errors and status reads, never per record); everything else stays
/// on one side.
#[derive(Debug, Default)]
struct Shared {
    connected: AtomicBool,
    consumed: AtomicU64,
    produced: AtomicU64,
    produce_dropped: AtomicU64,
    errors: ErrorLog,
    lag: AtomicI64,
    /// The produce queue is overflowing (so the drop is logged once per overflow).
    dropping: AtomicBool,
}

impl Shared {
    fn error(&self, msg: String) {
        self.errors.record(msg);
    }
}

/// The loop's side of the kafka thread. Dropping it stops the thread without waiting; prefer
/// [`KafkaHandle::shutdown`], which flushes.
#[derive(Debug)]
pub struct KafkaHandle {
    /// Records and session events from the thread (lock-free reads).
    events: EventReceiver<KafkaEvent>,
    /// Applied records back to the thread (lock-free sends).
    marks: marks::MarkSender,
    produce_tx: Option<mpsc::Sender<(String, Vec<u8>)>>,
    produce_capacity: usize,
    stop: watch::Sender<bool>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    done: std::sync::mpsc::Receiver<()>,
}

/// Starts the kafka thread. It connects in the background; `Connected` arrives when it has.
///
/// # Errors
/// `InvalidInput` for an empty broker list, group id or client-events topic, or a zero
/// produce queue; any error creating the runtime or the thread.
pub fn spawn(cfg: KafkaConfig, waker: Arc<mio::Waker>) -> std::io::Result<KafkaHandle> {
    let invalid = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, what);
    if cfg.brokers.iter().all(|b| b.trim().is_empty()) {
        return Err(invalid("kafka: no brokers configured"));
    }
    if cfg.group_id.is_empty() {
        return Err(invalid("kafka: group_id must not be empty"));
    }
    if cfg.client_events_topic.is_empty() {
        return Err(invalid("kafka: client_events_topic must not be empty"));
    }
    if cfg.produce_queue == 0 {
        return Err(invalid("kafka: produce_queue must be at least 1"));
    }
    let (event_tx, event_rx) = crate::bridge::channel(EVENT_CAPACITY, waker);
    let (mark_tx, mark_book) = marks::channel(cfg.topics.clone());
    let (produce_tx, produce_rx) = mpsc::channel(cfg.produce_queue);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, done_rx) = std::sync::mpsc::sync_channel(1);
    let shared = Arc::new(Shared::default());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let produce_capacity = cfg.produce_queue;
    let thread_shared = Arc::clone(&shared);
    let thread = std::thread::Builder::new()
        .name("kafka".to_owned())
        .spawn(move || {
            let events = worker::Events::new(event_tx);
            let local = tokio::task::LocalSet::new();
            local.block_on(
                &runtime,
                worker::run(cfg, thread_shared, events, mark_book, produce_rx, stop_rx),
            );
            drop(local);
            drop(runtime);
            let _ = done_tx.send(());
        })?;
    Ok(KafkaHandle {
        events: event_rx,
        marks: mark_tx,
        produce_tx: Some(produce_tx),
        produce_capacity,
        stop: stop_tx,
        shared,
        thread: Some(thread),
        done: done_rx,
    })
}

impl KafkaHandle {
    /// Non-blocking and lock-free: next event for the loop, if any. Drain until `None` after
    /// each wake (the bridge's wake rule).
    pub fn try_recv(&self) -> Option<KafkaEvent> {
        self.events.try_recv()
    }

    /// The loop has handed the record at (topic, partition, offset) to its sockets; the thread
    /// commits offset+1 for that partition at its next commit tick (every 200 ms). Lock-free:
    /// one small send on the marks channel (see [`marks`]).
    pub fn applied(&self, topic: &str, partition: i32, offset: i64) {
        self.marks.mark(topic, partition, offset);
    }

    /// Non-blocking produce to the client-events topic, keyed (partitioned) by `key`.
    ///
    /// # Errors
    /// [`ProduceError::Full`] when the bounded queue is full, [`ProduceError::Closed`] after
    /// the thread stopped; both count a drop.
    pub fn produce(&self, key: String, value: Vec<u8>) -> Result<(), ProduceError> {
        let shared = &self.shared;
        let result = match &self.produce_tx {
            Some(tx) => tx.try_send((key, value)).map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => ProduceError::Full,
                mpsc::error::TrySendError::Closed(_) => ProduceError::Closed,
            }),
            None => Err(ProduceError::Closed),
        };
        match result {
            Ok(()) => {
                if shared.dropping.load(Ordering::Relaxed) {
                    shared.dropping.store(false, Ordering::Relaxed);
                    log::info!(
                        "kafka: produce queue accepts again ({} dropped so far)",
                        shared.produce_dropped.load(Ordering::Relaxed)
                    );
                }
            }
            Err(e) => {
                shared.produce_dropped.fetch_add(1, Ordering::Relaxed);
                if !shared.dropping.swap(true, Ordering::Relaxed) {
                    log::warn!(
                        "kafka: dropping client events: {e} (capacity {})",
                        self.produce_capacity
                    );
                }
            }
        }
        result
    }

    /// Snapshot of the counters. Never blocks beyond a momentary lock of the last error.
    pub fn status(&self) -> KafkaStatus {
        let s = &self.shared;
        KafkaStatus {
            connected: s.connected.load(Ordering::Relaxed),
            consumed: s.consumed.load(Ordering::Relaxed),
            produced: s.produced.load(Ordering::Relaxed),
            produce_dropped: s.produce_dropped.load(Ordering::Relaxed),
            errors: s.errors.count(),
            lag: s.lag.load(Ordering::Relaxed),
            last_error: s.errors.last(),
        }
    }

    /// Stops the thread: commits the applied offsets, flushes queued client events (at most
    /// 2 s), and waits for the thread (at most [`SHUTDOWN_WAIT`]).
    pub fn shutdown(mut self) {
        self.stop_thread();
        let Some(thread) = self.thread.take() else {
            return;
        };
        match self.done.recv_timeout(SHUTDOWN_WAIT) {
            Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let _ = thread.join();
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                log::warn!("kafka: thread did not stop within {SHUTDOWN_WAIT:?}; leaving it");
            }
        }
    }

    fn stop_thread(&mut self) {
        // Closing the queue lets the producer finish what is queued and then stop.
        self.produce_tx = None;
        let _ = self.stop.send(true);
    }
}

impl Drop for KafkaHandle {
    fn drop(&mut self) {
        self.stop_thread();
    }
}
