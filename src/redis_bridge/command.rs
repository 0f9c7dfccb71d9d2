//! The command thread: batches queued jobs into pipelines, sends the heartbeat, reconnects.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use redis::{ConnectionLike, Value};

use super::shared::{backoff, Link, Shared};
use super::{
    node_key, nodes_key, presence_key, Job, RedisConfig, HEARTBEAT_EVERY, MAX_BATCH_CMDS,
    NODE_TTL_MS, SHUTDOWN_FLUSH,
};

/// Connect timeout, and the read/write timeout on the command connection: a Redis that stops
/// answering is treated as gone rather than holding the queue forever.
const IO_TIMEOUT: Duration = Duration::from_secs(3);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest idle wait, so the stop flag is seen promptly.
const TICK: Duration = Duration::from_millis(100);
/// A job whose pipeline kills the connection this many times in a row, sent alone, is dropped
/// (and counted): a write Redis cannot take (say, over `proto-max-bulk-len`) must not block
/// the queue forever.
const MAX_CUTS: u32 = 3;
/// Capacity `pending` keeps once empty; an outage may grow it far beyond.
const PENDING_KEEP: usize = 1024;

pub(crate) struct CommandThread {
    client: redis::Client,
    cfg: RedisConfig,
    jobs: Receiver<Job>,
    shared: Arc<Shared>,
    con: Option<redis::Connection>,
    /// Jobs taken off the channel but not yet sent (outage, or a cut pipeline).
    pending: VecDeque<Job>,
    backoff: crate::bridge::Backoff,
    next_connect: Instant,
    next_heartbeat: Instant,
    /// Consecutive failed pipelines; while non-zero, jobs go one per pipeline ([`MAX_CUTS`]).
    cuts: u32,
}

/// Why a pipeline did not complete.
enum Cut {
    /// The connection failed: the jobs may or may not have run.
    Connection(String),
}

impl CommandThread {
    pub fn new(
        client: redis::Client,
        cfg: RedisConfig,
        jobs: Receiver<Job>,
        shared: Arc<Shared>,
    ) -> Self {
        let now = Instant::now();
        CommandThread {
            client,
            cfg,
            jobs,
            shared,
            con: None,
            pending: VecDeque::new(),
            backoff: backoff(),
            next_connect: now,
            next_heartbeat: now,
            cuts: 0,
        }
    }

    pub fn run(mut self) {
        while !self.shared.stopping() {
            if self.con.is_none() && Instant::now() >= self.next_connect {
                self.connect(CONNECT_TIMEOUT);
            }
            self.take_jobs();
            if self.con.is_some() {
                if Instant::now() >= self.next_heartbeat {
                    self.heartbeat();
                }
                while self.con.is_some() && !self.pending.is_empty() {
                    self.run_batch();
                }
                if self.pending.is_empty() && self.pending.capacity() > PENDING_KEEP {
                    // An outage's backlog is gone: give its memory back.
                    self.pending.shrink_to(PENDING_KEEP);
                }
            } else {
                self.fail_queries("redis unavailable");
            }
        }
        self.finish();
    }

    /// Waits (at most until the next timer) for jobs, then drains the channel into `pending`.
    fn take_jobs(&mut self) {
        let has_work = self.con.is_some() && !self.pending.is_empty();
        if !has_work {
            let now = Instant::now();
            let next = if self.con.is_some() {
                self.next_heartbeat
            } else {
                self.next_connect
            };
            let wait = next.saturating_duration_since(now).min(TICK);
            match self.jobs.recv_timeout(wait) {
                Ok(Job::Nudge) => {}
                Ok(job) => self.pending.push_back(ready(job)),
                Err(RecvTimeoutError::Timeout) => return,
                Err(RecvTimeoutError::Disconnected) => {
                    // The handle is gone without a shutdown: stop like a shutdown.
                    self.shared.stop.store(true, Ordering::SeqCst);
                    return;
                }
            }
        }
        self.drain_channel();
    }

    /// Moves every queued job into `pending` (nudges hold no queue slot and carry no work).
    fn drain_channel(&mut self) {
        while let Ok(job) = self.jobs.try_recv() {
            if !matches!(job, Job::Nudge) {
                self.pending.push_back(ready(job));
            }
        }
    }

    fn connect(&mut self, timeout: Duration) {
        match self
            .client
            .get_connection_with_timeout(timeout)
            .and_then(|c| {
                c.set_read_timeout(Some(IO_TIMEOUT))?;
                c.set_write_timeout(Some(IO_TIMEOUT))?;
                Ok(c)
            }) {
            Ok(con) => {
                log::debug!("redis: command connection up");
                self.con = Some(con);
                self.backoff.reset();
                self.next_heartbeat = Instant::now();
                self.shared.set_link(Link::Command, true, "");
            }
            Err(e) => {
                let reason = format!("connect: {e}");
                self.shared.record_error(reason.clone());
                self.next_connect = Instant::now() + self.backoff.next_delay();
                self.shared.set_link(Link::Command, false, &reason);
            }
        }
    }

    fn lost(&mut self, reason: String) {
        log::debug!("redis: command connection lost: {reason}");
        self.con = None;
        self.shared.record_error(reason.clone());
        self.next_connect = Instant::now() + self.backoff.next_delay();
        self.shared.set_link(Link::Command, false, &reason);
    }

    /// During an outage queries fail at once; writes stay in `pending`.
    fn fail_queries(&mut self, why: &str) {
        if !self.pending.iter().any(|j| matches!(j, Job::Query(..))) {
            return;
        }
        let mut keep = VecDeque::with_capacity(self.pending.len());
        for job in self.pending.drain(..) {
            match job {
                Job::Query(id, _) => {
                    self.shared.queries.fetch_add(1, Ordering::Relaxed);
                    self.shared.release(1);
                    self.shared.send_event(super::RedisEvent::Reply {
                        id,
                        result: Err(why.to_string()),
                    });
                }
                other => keep.push_back(other),
            }
        }
        self.pending = keep;
    }

    fn heartbeat(&mut self) {
        self.next_heartbeat = Instant::now() + HEARTBEAT_EVERY;
        let prefix = &self.cfg.key_prefix;
        let id = &self.cfg.node_id;
        let mut set = redis::cmd("SET");
        set.arg(node_key(prefix, id))
            .arg(crate::store::now_ms())
            .arg("PX")
            .arg(NODE_TTL_MS);
        let mut sadd = redis::cmd("SADD");
        sadd.arg(nodes_key(prefix)).arg(id);
        let mut pexpire = redis::cmd("PEXPIRE");
        // Twice the node key's TTL: a dead node's users stay readable long enough for a live
        // node to reap them (announce them offline) after its heartbeat key expired.
        pexpire.arg(presence_key(prefix, id)).arg(2 * NODE_TTL_MS);
        let cmds = [set, sadd, pexpire];
        match self.exec(&cmds) {
            Ok(values) => self.count_server_errors(&values),
            Err(Cut::Connection(e)) => self.lost(e),
        }
    }

    /// Sends the front of `pending` (up to [`MAX_BATCH_CMDS`] commands) as one pipeline and
    /// hands out the replies.
    fn run_batch(&mut self) {
        let mut n_jobs = 0;
        let mut n_cmds = 0;
        let mut packed = Vec::new();
        for job in &self.pending {
            let cmds = job_cmds(job);
            // After a cut, jobs go one at a time until one succeeds, to find a poison job.
            if n_jobs > 0 && (self.cuts > 0 || n_cmds + cmds.len() > MAX_BATCH_CMDS) {
                break;
            }
            n_jobs += 1;
            for cmd in cmds.iter().filter(|c| has_args(c)) {
                cmd.write_packed_command(&mut packed);
                n_cmds += 1;
            }
        }
        let result = if n_cmds == 0 {
            Ok(Vec::new())
        } else {
            self.exec_packed(&packed, n_cmds)
        };
        match result {
            Ok(values) if values.len() == n_cmds => {
                self.cuts = 0;
                let jobs: Vec<Job> = self.pending.drain(..n_jobs).collect();
                self.complete(jobs, None, values);
            }
            Ok(values) => {
                // Cannot happen with request/reply commands; don't guess who got what.
                let e = format!("pipeline: {} replies for {n_cmds} commands", values.len());
                self.shared.record_error(e.clone());
                let jobs: Vec<Job> = self.pending.drain(..n_jobs).collect();
                self.complete(jobs, Some(&e), vec![Value::Nil; n_cmds]);
            }
            Err(Cut::Connection(e)) => {
                // The writes go again after the reconnect, one job per pipeline until one
                // succeeds; a job that alone kills the connection MAX_CUTS times is dropped.
                // The queries fail now.
                self.cuts += 1;
                if self.cuts >= MAX_CUTS && n_jobs == 1 {
                    self.cuts = 0;
                    if let Some(job) = self.pending.pop_front() {
                        if matches!(job, Job::Query(..)) {
                            self.pending.push_front(job);
                        } else {
                            log::warn!("redis: dropping a write that failed {MAX_CUTS} times");
                            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                            self.shared.release(1);
                        }
                    }
                }
                self.lost(e.clone());
                self.fail_queries(&e);
            }
        }
    }

    /// Hands out the replies of a finished pipeline, job by job.
    fn complete(&mut self, jobs: Vec<Job>, failed: Option<&str>, values: Vec<Value>) {
        let mut values = values.into_iter();
        let n = jobs.len();
        for job in jobs {
            let len = job_cmds(&job).iter().filter(|c| has_args(c)).count();
            let mine: Vec<Value> = values.by_ref().take(len).collect();
            match job {
                Job::Write(_) => {
                    self.shared.writes.fetch_add(len as u64, Ordering::Relaxed);
                    self.count_server_errors(&mine);
                }
                Job::Publish(_) | Job::PublishRaw { .. } => {
                    self.shared.publishes.fetch_add(1, Ordering::Relaxed);
                    self.count_server_errors(&mine);
                }
                Job::Query(id, _) => {
                    self.shared.queries.fetch_add(1, Ordering::Relaxed);
                    let result = match failed {
                        Some(e) => Err(e.to_string()),
                        None => Ok(mine),
                    };
                    self.shared
                        .send_event(super::RedisEvent::Reply { id, result });
                }
                Job::Nudge => {}
            }
        }
        self.shared.release(n);
    }

    fn count_server_errors(&self, values: &[Value]) {
        for v in values {
            if let Value::ServerError(e) = v {
                self.shared.record_error(format!("server: {e:?}"));
            }
        }
    }

    fn exec(&mut self, cmds: &[redis::Cmd]) -> Result<Vec<Value>, Cut> {
        let mut packed = Vec::new();
        for cmd in cmds {
            cmd.write_packed_command(&mut packed);
        }
        self.exec_packed(&packed, cmds.len())
    }

    fn exec_packed(&mut self, packed: &[u8], count: usize) -> Result<Vec<Value>, Cut> {
        let Some(con) = self.con.as_mut() else {
            return Err(Cut::Connection("not connected".into()));
        };
        // Server errors come back as `Value::ServerError` in place; `Err` is I/O or protocol.
        con.req_packed_commands(packed, 0, count)
            .map_err(|e| Cut::Connection(format!("pipeline: {e}")))
    }

    /// Shutdown: flush for at most [`SHUTDOWN_FLUSH`], remove the heartbeat, stop.
    fn finish(&mut self) {
        let deadline = Instant::now() + SHUTDOWN_FLUSH;
        self.drain_channel();
        let has_writes = self
            .pending
            .iter()
            .any(|j| matches!(j, Job::Write(_) | Job::Publish(_)));
        if self.con.is_none() && has_writes {
            let left = deadline.saturating_duration_since(Instant::now());
            if !left.is_zero() {
                self.connect(left.min(CONNECT_TIMEOUT));
            }
        }
        if let Some(con) = self.con.as_ref() {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(10));
            let _ = con.set_read_timeout(Some(left));
            let _ = con.set_write_timeout(Some(left));
        }
        while self.con.is_some() && !self.pending.is_empty() && Instant::now() < deadline {
            self.run_batch();
        }
        if self.con.is_some() {
            let prefix = &self.cfg.key_prefix;
            let id = &self.cfg.node_id;
            let mut del = redis::cmd("DEL");
            del.arg(node_key(prefix, id));
            let mut srem = redis::cmd("SREM");
            srem.arg(nodes_key(prefix)).arg(id);
            let _ = self.exec(&[del, srem]);
        }
        let left = self.pending.len();
        if left > 0 {
            for job in self.pending.drain(..) {
                if let Job::Query(id, _) = job {
                    self.shared.try_send_event(super::RedisEvent::Reply {
                        id,
                        result: Err("shutting down".into()),
                    });
                }
            }
            self.shared
                .dropped
                .fetch_add(left as u64, Ordering::Relaxed);
            self.shared.release(left);
            log::warn!("redis: {left} queued jobs not flushed at shutdown");
        }
        self.con = None;
    }
}

/// A job as `pending` keeps it: a publish gets its command built here, on this thread.
fn ready(job: Job) -> Job {
    match job {
        Job::PublishRaw { channel, payload } => {
            let mut cmd = redis::cmd("PUBLISH");
            cmd.arg(channel).arg(payload);
            Job::Publish(cmd)
        }
        job => job,
    }
}

fn job_cmds(job: &Job) -> &[redis::Cmd] {
    match job {
        Job::Write(cmds) | Job::Query(_, cmds) => cmds,
        Job::Publish(cmd) => std::slice::from_ref(cmd),
        // `pending` holds no raw publish (see `ready`), and a nudge carries no command.
        Job::PublishRaw { .. } | Job::Nudge => &[],
    }
}

/// An empty command gets no reply from Redis, so it must not be sent in a counted pipeline.
fn has_args(cmd: &redis::Cmd) -> bool {
    cmd.args_iter().len() > 0
}
