//! The kafka thread's supervisor: one session at a time (client, partitions, start offsets,
//! fetch tasks, commits), reconnecting with backoff when a session breaks.
//!
//! Everything here runs on one current-thread runtime inside a `LocalSet`, so the state the
//! tasks share is `Rc<RefCell<..>>`; only [`Shared`], the event bridge and the marks channel
//! cross to the loop thread.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rskafka::client::error::{Error as ClientError, ProtocolError};
use rskafka::client::partition::{OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::BackoffConfig;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{timeout, Instant, MissedTickBehavior};

use super::group::{GroupClient, Offsets};
use super::marks::MarkBook;
use super::{producer, KafkaConfig, KafkaEvent, Shared};
use crate::bridge::{Backoff, EventSender};

mod start;

/// Applied offsets are committed this often (batched).
const COMMIT_INTERVAL: Duration = Duration::from_millis(200);
/// Topic metadata is re-read this often, to pick up new partitions and topics.
const METADATA_REFRESH: Duration = Duration::from_secs(5);
/// The broker holds a fetch this long when there is nothing new (long poll).
const FETCH_MAX_WAIT_MS: i32 = 500;
/// An empty fetch answered sooner than this is followed by a pause until this much time has
/// passed: a broker that does not hold empty fetches for the max wait would otherwise make
/// the fetch loop spin.
const MIN_EMPTY_FETCH: Duration = Duration::from_millis(100);
/// Bytes per partition fetch.
const MAX_FETCH_BYTES: i32 = 1 << 20;
/// One fetch, offset lookup or metadata request may take this long before the session is
/// considered broken (a fetch is held at most `FETCH_MAX_WAIT_MS` by a live broker).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Failed commits in a row before a warning. A broker outage ends the session (and is logged
/// once) before that many commits with backoff have failed, so this warns only when commits
/// fail while everything else works.
const COMMIT_WARN_AFTER: u32 = 5;
/// Connecting a session (metadata, coordinator, start offsets) may take this long.
const SETUP_TIMEOUT: Duration = Duration::from_secs(15);
/// Reconnect delays: 200 ms doubling to 10 s, with jitter.
const RECONNECT_BASE: Duration = Duration::from_millis(200);
const RECONNECT_CAP: Duration = Duration::from_secs(10);
/// After a failed commit, wait this long (doubling) before the next try.
const COMMIT_RETRY_BASE: Duration = Duration::from_millis(500);
/// At shutdown: final commit and producer flush together.
const FLUSH_DEADLINE: Duration = Duration::from_secs(2);

/// rskafka retries broken connections inside each call; keep that short so a dead broker
/// surfaces as an error here (and a `Disconnected` event) within about two seconds.
fn rskafka_backoff() -> BackoffConfig {
    BackoffConfig {
        init_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(500),
        base: 2.0,
        deadline: Some(Duration::from_secs(2)),
    }
}

/// The sending end of the event bridge to the loop (which wakes the loop by its rule).
#[derive(Debug)]
pub(super) struct Events {
    tx: EventSender<KafkaEvent>,
}

impl Events {
    pub(super) fn new(tx: EventSender<KafkaEvent>) -> Self {
        Events { tx }
    }

    /// Queues an event; when the bridge is full, waits for the loop to make room (records
    /// are never dropped: the fetch simply stops until the loop catches up).
    ///
    /// # Errors
    /// The handle is gone.
    async fn send(&self, ev: KafkaEvent) -> Result<(), String> {
        self.tx.send(ev).await.map_err(|_| GONE.to_owned())
    }

    /// [`Events::send`], given up when stop is requested (the loop may no longer drain).
    async fn send_unless_stopped(
        &self,
        ev: KafkaEvent,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), String> {
        tokio::select! {
            _ = stopped(stop) => Err("stopping".to_owned()),
            r = self.send(ev) => r,
        }
    }
}

const GONE: &str = "the event loop dropped the kafka handle";

/// The fetch tasks of a session; each ends with its partition and why it ended.
type FetchTasks = JoinSet<((String, i32), Result<(), String>)>;

/// How a session ended.
enum End {
    Stopped,
    Failed(String),
}

/// Where a partition without a committed offset starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reset {
    Earliest,
    Latest,
}

impl Reset {
    fn at(self) -> OffsetAt {
        match self {
            Reset::Earliest => OffsetAt::Earliest,
            Reset::Latest => OffsetAt::Latest,
        }
    }
}

/// A partition ready to fetch.
struct Start {
    topic: String,
    partition: i32,
    client: PartitionClient,
    offset: i64,
}

/// The thread's body: sessions until stopped, then a final commit and producer flush.
pub(super) async fn run(
    cfg: KafkaConfig,
    shared: Arc<Shared>,
    events: Events,
    marks: MarkBook,
    produce_rx: mpsc::Receiver<(String, Vec<u8>)>,
    mut stop: watch::Receiver<bool>,
) {
    let (clients_tx, clients_rx) = watch::channel(None);
    let mut producer = tokio::task::spawn_local(producer::run(
        cfg.client_events_topic.clone(),
        Arc::clone(&shared),
        produce_rx,
        clients_rx,
    ));
    let mut w = Worker {
        group: GroupClient::new(cfg.brokers.clone(), cfg.group_id.clone()),
        cfg,
        shared,
        events: Rc::new(events),
        marks,
        clients_tx,
        committed: Offsets::new(),
        known: HashSet::new(),
        started: false,
        connected: false,
        outage_logged: false,
        missing_warned: HashSet::new(),
        lag: Rc::new(RefCell::new(HashMap::new())),
    };
    let mut backoff = Backoff::new(RECONNECT_BASE, RECONNECT_CAP);
    loop {
        match w.session(&mut stop).await {
            End::Stopped => break,
            End::Failed(e) => {
                if w.events.tx.is_closed() || *stop.borrow() {
                    break;
                }
                if w.connected {
                    backoff.reset();
                }
                w.outage(e, &mut stop).await;
                let delay = backoff.next_delay();
                tokio::select! {
                    _ = stopped(&mut stop) => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    let deadline = Instant::now() + FLUSH_DEADLINE;
    if timeout(FLUSH_DEADLINE / 2, w.commit()).await.is_err() {
        log::warn!("kafka: final offset commit timed out");
    }
    if tokio::time::timeout_at(deadline, &mut producer)
        .await
        .is_err()
    {
        producer.abort();
        log::warn!("kafka: client events still queued at shutdown were not produced");
    }
    w.shared.connected.store(false, Ordering::Relaxed);
}

/// Resolves when stop was requested or the handle is gone.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

struct Worker {
    cfg: KafkaConfig,
    shared: Arc<Shared>,
    events: Rc<Events>,
    /// What the loop has applied and is not yet committed.
    marks: MarkBook,
    group: GroupClient,
    /// The current session's client for the producer task (`None` while disconnected).
    clients_tx: watch::Sender<Option<Arc<Client>>>,
    /// Last committed next-offset per partition (commits skip marks at or below it).
    committed: Offsets,
    /// Partitions seen in any session: one seen for the first time after the first session
    /// appeared while we were running, so it starts at the earliest offset.
    known: HashSet<(String, i32)>,
    started: bool,
    connected: bool,
    /// The current outage has been logged (log once per outage).
    outage_logged: bool,
    missing_warned: HashSet<String>,
    /// High watermark minus next offset, per partition being fetched.
    lag: Rc<RefCell<HashMap<(String, i32), i64>>>,
}

/// Offset commits that fail back off, and warn once when they keep failing.
struct CommitRetry {
    backoff: Backoff,
    not_before: Instant,
    failures: u32,
}

impl CommitRetry {
    fn new() -> Self {
        CommitRetry {
            backoff: Backoff::new(COMMIT_RETRY_BASE, RECONNECT_CAP),
            not_before: Instant::now(),
            failures: 0,
        }
    }

    fn due(&self) -> bool {
        Instant::now() >= self.not_before
    }

    fn after(&mut self, result: Result<(), String>, shared: &Shared) {
        match result {
            Ok(()) => {
                if self.failures >= COMMIT_WARN_AFTER {
                    log::info!("kafka: offset commits work again");
                }
                self.failures = 0;
                self.backoff.reset();
            }
            Err(e) => {
                self.failures += 1;
                if self.failures == COMMIT_WARN_AFTER {
                    log::warn!("kafka: offset commits keep failing: {e}; retrying");
                } else {
                    log::debug!("kafka: offset commit failed: {e}");
                }
                shared.error(e);
                self.not_before = Instant::now() + self.backoff.next_delay();
            }
        }
    }
}

impl Worker {
    /// One session: set up, then fetch and commit until something breaks or stop.
    async fn session(&mut self, stop: &mut watch::Receiver<bool>) -> End {
        if self.started {
            // Marks left from before the outage are not committed to what may be a broker
            // that lost its log (their offsets would point into a different log). Resuming
            // from the last commit re-delivers at most those records; the loop dedups by id.
            self.marks.discard();
        }
        let setup = tokio::select! {
            _ = stopped(stop) => return End::Stopped,
            r = timeout(SETUP_TIMEOUT, self.setup()) => r,
        };
        let (client, starts) = match setup {
            Err(_) => return End::Failed("connecting timed out".to_owned()),
            Ok(Err(e)) => return End::Failed(e),
            Ok(Ok(s)) => s,
        };
        self.clients_tx.send_replace(Some(Arc::clone(&client)));
        self.lag.borrow_mut().clear();
        if let Err(e) = self.connected(starts.len(), stop).await {
            return End::Failed(e);
        }
        let mut tasks = FetchTasks::new();
        let mut active = HashSet::new();
        for s in starts {
            active.insert((s.topic.clone(), s.partition));
            self.spawn_fetch(&mut tasks, s);
        }
        let mut commit_tick = tokio::time::interval(COMMIT_INTERVAL);
        commit_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut refresh_tick =
            tokio::time::interval_at(Instant::now() + METADATA_REFRESH, METADATA_REFRESH);
        refresh_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut commits = CommitRetry::new();
        loop {
            tokio::select! {
                _ = stopped(stop) => return End::Stopped,
                Some(joined) = tasks.join_next() => match joined {
                    Ok((key, Ok(()))) => {
                        self.lag.borrow_mut().remove(&key);
                        active.remove(&key);
                    }
                    Ok((_, Err(e))) => return End::Failed(e),
                    Err(e) => return End::Failed(format!("fetch task failed: {e}")),
                },
                _ = commit_tick.tick() => {
                    if commits.due() {
                        let result = self.commit().await;
                        commits.after(result, &self.shared);
                    }
                }
                _ = refresh_tick.tick() => {
                    if let Err(e) = self.start_new_partitions(&client, &mut active, &mut tasks).await {
                        return End::Failed(e);
                    }
                }
            }
        }
    }

    /// The metadata refresh: starts fetching partitions that appeared since the last one.
    async fn start_new_partitions(
        &mut self,
        client: &Client,
        active: &mut HashSet<(String, i32)>,
        tasks: &mut FetchTasks,
    ) -> Result<(), String> {
        let found = timeout(REQUEST_TIMEOUT, self.partitions(client))
            .await
            .map_err(|_| "metadata refresh timed out".to_owned())??;
        let new: Vec<_> = found.into_iter().filter(|k| !active.contains(k)).collect();
        if new.is_empty() {
            return Ok(());
        }
        let starts = timeout(SETUP_TIMEOUT, self.starts(client, &new, true))
            .await
            .map_err(|_| "starting new partitions timed out".to_owned())??;
        for s in starts {
            log::info!(
                "kafka: consuming new partition {}/{} from offset {}",
                s.topic,
                s.partition,
                s.offset
            );
            active.insert((s.topic.clone(), s.partition));
            self.spawn_fetch(tasks, s);
        }
        Ok(())
    }

    /// Marks the session up: status, `Connected` event, log.
    async fn connected(
        &mut self,
        partitions: usize,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), String> {
        if self.outage_logged {
            log::info!("kafka: connected again; consuming {partitions} partitions");
        } else {
            let versions = self
                .group
                .versions()
                .map(|(f, c)| format!(" (OffsetFetch v{f}, OffsetCommit v{c})"))
                .unwrap_or_default();
            log::info!(
                "kafka: connected to {}; consuming {partitions} partitions as group {}{versions}",
                self.cfg.brokers.join(","),
                self.cfg.group_id
            );
        }
        self.outage_logged = false;
        self.connected = true;
        self.shared.connected.store(true, Ordering::Relaxed);
        self.events
            .send_unless_stopped(KafkaEvent::Connected, stop)
            .await
    }

    /// A session broke: status, `Disconnected` event (once per outage), log once per outage.
    async fn outage(&mut self, e: String, stop: &mut watch::Receiver<bool>) {
        self.clients_tx.send_replace(None);
        self.group.reset();
        self.shared.error(e.clone());
        if self.connected {
            self.connected = false;
            self.shared.connected.store(false, Ordering::Relaxed);
            log::warn!("kafka: disconnected: {e}; reconnecting with backoff");
            let ev = KafkaEvent::Disconnected(e);
            // Stopping or the handle gone: nobody is left to tell.
            let _ = self.events.send_unless_stopped(ev, stop).await;
        } else if !self.outage_logged {
            log::warn!(
                "kafka: cannot connect to {}: {e}; retrying with backoff",
                self.cfg.brokers.join(",")
            );
        } else {
            log::debug!("kafka: reconnect failed: {e}");
        }
        self.outage_logged = true;
    }

    /// Commits the applied marks that are ahead of what is committed.
    async fn commit(&mut self) -> Result<(), String> {
        let marks = self.marks.take();
        let mut todo = Offsets::new();
        for (topic, parts) in marks {
            for (p, next) in parts {
                let done = self.committed.get(&topic).and_then(|m| m.get(&p));
                if done.is_none_or(|d| next > *d) {
                    todo.entry(topic.clone()).or_default().insert(p, next);
                }
            }
        }
        if todo.is_empty() {
            return Ok(());
        }
        match self.group.commit(&todo).await {
            Ok(stored) => {
                for (topic, parts) in stored {
                    self.committed.entry(topic).or_default().extend(parts);
                }
                Ok(())
            }
            Err(e) => {
                self.marks.restore(todo);
                Err(e)
            }
        }
    }

    fn spawn_fetch(&self, tasks: &mut FetchTasks, s: Start) {
        let fetcher = Fetcher {
            topic: s.topic,
            partition: s.partition,
            client: s.client,
            next: s.offset,
            reset: if self.cfg.start_at_latest {
                Reset::Latest
            } else {
                Reset::Earliest
            },
            events: Rc::clone(&self.events),
            shared: Arc::clone(&self.shared),
            lag: Rc::clone(&self.lag),
        };
        tasks.spawn_local(async move {
            let key = (fetcher.topic.clone(), fetcher.partition);
            (key, fetcher.run().await)
        });
    }
}

/// One partition's fetch loop.
struct Fetcher {
    topic: String,
    partition: i32,
    client: PartitionClient,
    next: i64,
    /// Where to go when the position is out of range (retention, or a broker that lost data).
    reset: Reset,
    events: Rc<Events>,
    shared: Arc<Shared>,
    lag: Rc<RefCell<HashMap<(String, i32), i64>>>,
}

impl Fetcher {
    /// Fetches and hands records over until the connection breaks (`Err`, the session ends)
    /// or the partition is gone (`Ok`, the metadata refresh picks it up if it comes back).
    async fn run(mut self) -> Result<(), String> {
        let (topic, partition) = (self.topic.clone(), self.partition);
        loop {
            let began = Instant::now();
            let fetched = timeout(
                REQUEST_TIMEOUT,
                self.client
                    .fetch_records(self.next, 1..MAX_FETCH_BYTES, FETCH_MAX_WAIT_MS),
            )
            .await
            .map_err(|_| format!("{topic}/{partition}: fetch timed out"))?;
            let (records, high_watermark) = match fetched {
                Ok(r) => r,
                Err(e) => match protocol_error(&e) {
                    Some(ProtocolError::OffsetOutOfRange) => {
                        let to = timeout(REQUEST_TIMEOUT, self.client.get_offset(self.reset.at()))
                            .await
                            .map_err(|_| format!("{topic}/{partition}: list offsets timed out"))?
                            .map_err(|e| format!("{topic}/{partition}: list offsets: {e}"))?;
                        log::warn!(
                            "kafka: {topic}/{partition}: offset {} is out of range; resuming at {to}",
                            self.next
                        );
                        self.next = to;
                        continue;
                    }
                    Some(ProtocolError::UnknownTopicOrPartition) => {
                        log::warn!("kafka: {topic}/{partition} is gone; stopped reading it");
                        return Ok(());
                    }
                    _ => return Err(format!("{topic}/{partition}: fetch: {e}")),
                },
            };
            let mut handed = false;
            for r in records {
                // A compressed batch is returned whole; skip what precedes our position.
                if r.offset < self.next {
                    continue;
                }
                let offset = r.offset;
                self.events
                    .send(KafkaEvent::Record {
                        topic: topic.clone(),
                        partition,
                        offset,
                        value: r.record.value.unwrap_or_default(),
                    })
                    .await?;
                self.next = offset + 1;
                self.shared.consumed.fetch_add(1, Ordering::Relaxed);
                handed = true;
            }
            // The bridge wakes the loop by itself; only an empty fetch needs attention here.
            let early = MIN_EMPTY_FETCH.checked_sub(began.elapsed());
            if let (false, Some(rest)) = (handed, early) {
                tokio::time::sleep(rest).await;
            }
            let total = {
                let mut lag = self.lag.borrow_mut();
                lag.insert(
                    (topic.clone(), partition),
                    (high_watermark - self.next).max(0),
                );
                lag.values().sum()
            };
            self.shared.lag.store(total, Ordering::Relaxed);
        }
    }
}

/// The broker's error code, if the call failed with one.
fn protocol_error(e: &ClientError) -> Option<&ProtocolError> {
    match e {
        ClientError::ServerError { protocol_error, .. } => Some(protocol_error),
        _ => None,
    }
}
