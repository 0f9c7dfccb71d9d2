//! The load generator's one mio loop: launching clients in batches, readiness dispatch,
//! handshake timeouts, publishing, churn and the notify API connections.

use crate::api::{self, ApiConn, ApiRead};
use crate::client::{Client, Ctx, Gone, Phase};
use crate::stats::MsgStat;
use crate::wire;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// Tokens at and above this are API connections; below, slab keys of clients.
const API_BASE: usize = usize::MAX / 2;
/// One shared read buffer for every socket.
const READ_BUF_LEN: usize = 256 * 1024;
/// Readiness events taken per poll.
const EVENTS: usize = 4096;

/// Where the server is.
#[derive(Clone, Debug)]
pub struct Target {
    /// Destination addresses, used in turn (several 127.0.0.x spread the ephemeral ports).
    pub addrs: Vec<SocketAddr>,
    pub api_key: String,
}

/// Counters of the notify API connections.
#[derive(Default, Debug)]
pub struct ApiStats {
    pub requests: u64,
    pub errors: u64,
    pub backlog_max: usize,
    pub reconnects: u64,
    /// Targets that were not connected when their turn came.
    pub skipped: u64,
}

/// The loop and everything it owns.
pub struct Driver {
    poll: Poll,
    events: Events,
    ready_list: Vec<(Token, bool, bool)>,
    pub clients: Slab<Client>,
    rbuf: Vec<u8>,
    pub ctx: Ctx,
    target: Target,
    /// The `Host` header value.
    host: String,
    serial: u64,
    /// `(deadline, key, serial)` in launch order, so deadlines are sorted.
    handshakes: VecDeque<(u64, usize, u64)>,
    pub handshake_timeout: Duration,
    /// Groups of clients still to launch for the initial population.
    pub launch_queue: VecDeque<u32>,
    /// Relaunches allowed for failed initial connects.
    pub retries_left: u64,
    /// The most recent connect failure, for the error message.
    pub last_failure: Option<Gone>,
    pub api: Vec<ApiConn>,
    api_queue: VecDeque<usize>,
    pub api_stats: ApiStats,
    pad: String,
    packet: Vec<u8>,
    /// Publishes skipped because the group's publisher was gone.
    pub publish_skipped: u64,
}

impl Driver {
    /// # Errors
    /// Creating the poll failed.
    pub fn new(target: Target, groups: usize, pad: usize) -> io::Result<Driver> {
        Ok(Driver {
            poll: Poll::new()?,
            events: Events::with_capacity(EVENTS),
            ready_list: Vec::with_capacity(EVENTS),
            clients: Slab::new(),
            rbuf: vec![0; READ_BUF_LEN],
            ctx: Ctx::new(groups),
            host: target.addrs[0].to_string(),
            target,
            serial: 0,
            handshakes: VecDeque::new(),
            handshake_timeout: Duration::from_secs(30),
            launch_queue: VecDeque::new(),
            retries_left: 0,
            last_failure: None,
            api: Vec::new(),
            api_queue: VecDeque::new(),
            api_stats: ApiStats::default(),
            pad: "x".repeat(pad),
            packet: Vec::with_capacity(512),
            publish_skipped: 0,
        })
    }

    /// Starts one client's TCP connect into `group`.
    pub fn launch(&mut self, group: u32, lenient_first: bool) {
        let addr = self.target.addrs[self.serial as usize % self.target.addrs.len()];
        self.serial += 1;
        self.ctx.counters.launched += 1;
        let stream = match TcpStream::connect(addr) {
            Ok(s) => s,
            Err(e) => {
                // EADDRNOTAVAIL here means the ephemeral ports ran out (see --dest-addrs).
                log::debug!("connect to {addr}: {e}");
                self.ctx.counters.connect_failed += 1;
                self.last_failure = Some(Gone::Io(e.kind()));
                return;
            }
        };
        let now = self.ctx.now_ns();
        let entry = self.clients.vacant_entry();
        let key = entry.key();
        let mut client = Client::new(stream, group, now, self.serial);
        client.lenient_first = lenient_first;
        if let Err(e) = self.poll.registry().register(
            &mut client.stream,
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            log::debug!("register: {e}");
            self.ctx.counters.connect_failed += 1;
            return;
        }
        entry.insert(client);
        self.ctx.counters.in_progress += 1;
        let g = &mut self.ctx.groups[group as usize];
        if g.lead.is_none() {
            g.lead = Some(key);
        }
        let deadline = now + self.handshake_timeout.as_nanos() as u64;
        self.handshakes.push_back((deadline, key, self.serial));
    }

    /// Launches queued clients while fewer than `batch` handshakes are in progress.
    pub fn pump_launches(&mut self, batch: u64) {
        while self.ctx.counters.in_progress < batch {
            let Some(g) = self.launch_queue.pop_front() else {
                break;
            };
            self.launch(g, false);
        }
    }

    /// Removes a client. `on_purpose` is a churn disconnect, which loses nothing.
    pub fn close(&mut self, key: usize, why: Gone, on_purpose: bool) {
        let Some(c) = self.clients.try_remove(key) else {
            return;
        };
        let g = &mut self.ctx.groups[c.group as usize];
        if g.lead == Some(key) {
            g.lead = None;
        }
        if c.phase == Phase::Ready {
            g.ready -= 1;
            if on_purpose {
                self.ctx.counters.churned += 1;
                let from = c.track.next.unwrap_or(c.track.first) as usize;
                for m in g.msgs.iter_mut().skip(from) {
                    self.ctx.totals.unexpect(m);
                }
            } else {
                if self.ctx.counters.server_closed < 5 {
                    log::warn!("a connected client was disconnected: {why:?}");
                }
                self.ctx.counters.server_closed += 1;
            }
        } else {
            self.ctx.counters.in_progress -= 1;
            self.ctx.counters.connect_failed += 1;
            self.last_failure = Some(why);
            log::debug!("client failed in {:?}: {why:?}", c.phase);
            if !self.ctx.loaded && self.retries_left > 0 {
                self.retries_left -= 1;
                self.launch_queue.push_back(c.group);
            }
        }
    }

    /// One poll and the handling of what it returned; then expired handshakes.
    pub fn turn(&mut self, timeout: Duration) {
        if let Err(e) = self.poll.poll(&mut self.events, Some(timeout)) {
            if e.kind() != io::ErrorKind::Interrupted {
                log::error!("poll: {e}");
            }
            return;
        }
        self.ready_list.clear();
        for ev in self.events.iter() {
            self.ready_list.push((
                ev.token(),
                ev.is_readable() || ev.is_read_closed() || ev.is_error(),
                ev.is_writable() || ev.is_error(),
            ));
        }
        for i in 0..self.ready_list.len() {
            let (Token(t), readable, writable) = self.ready_list[i];
            if t >= API_BASE {
                self.on_api(t - API_BASE, readable, writable);
                continue;
            }
            // A stale token: the client was closed earlier in this batch.
            let Some(c) = self.clients.get_mut(t) else {
                continue;
            };
            let mut res = Ok(());
            if writable || c.phase == Phase::Connecting {
                res = c.on_writable(&mut self.ctx, &self.host);
            }
            if res.is_ok() && readable {
                res = c.on_readable(&mut self.rbuf, &mut self.ctx);
            }
            if let Err(why) = res {
                self.close(t, why, false);
            }
        }
        let now = self.ctx.now_ns();
        while let Some(&(deadline, key, serial)) = self.handshakes.front() {
            if deadline > now {
                break;
            }
            self.handshakes.pop_front();
            if let Some(c) = self.clients.get(key) {
                if c.serial == serial && c.phase != Phase::Ready {
                    self.close(key, Gone::Timeout, false);
                }
            }
        }
    }

    /// Publishes the next message of group `gi` from its lead client, with a `room` field
    /// when `room` (chat-rooms). Returns `false` when the publisher is gone.
    pub fn publish(&mut self, gi: usize, room: bool) -> bool {
        let now = self.ctx.now_ns();
        let g = &mut self.ctx.groups[gi];
        let Some(lead) = g.lead.filter(|&k| self.clients[k].phase == Phase::Ready) else {
            self.publish_skipped += 1;
            return false;
        };
        let seq = g.msgs.len() as u64;
        let m = MsgStat {
            t: now,
            expected: g.ready,
            received: 0,
            last: 0,
        };
        g.msgs.push(m);
        if m.expected == 0 {
            self.ctx.totals.complete(&m);
        }
        self.ctx.totals.first_publish.get_or_insert(now);
        self.packet.clear();
        self.packet.extend_from_slice(b"42[\"bench:publish\",");
        let room_name = room.then(|| format!("r{gi}"));
        wire::write_payload(&mut self.packet, room_name.as_deref(), seq, now, &self.pad);
        self.packet.push(b']');
        let packet = std::mem::take(&mut self.packet);
        let res = self.clients[lead].send_text(&mut self.ctx, &packet);
        self.packet = packet;
        if let Err(why) = res {
            self.close(lead, why, false);
        }
        true
    }

    /// Closes a random connected client that publishes nothing, and starts a new one in its
    /// group (churn).
    pub fn churn_one(&mut self) {
        for _ in 0..64 {
            let k = self.ctx.rng.below(self.clients.capacity());
            let Some(c) = self.clients.get(k) else {
                continue;
            };
            let g = c.group;
            if c.phase != Phase::Ready || self.ctx.groups[g as usize].lead == Some(k) {
                continue;
            }
            self.close(k, Gone::ServerClosed, true);
            self.launch(g, true);
            return;
        }
    }

    /// Opens `n` keep-alive API connections.
    pub fn open_api(&mut self, n: usize) -> io::Result<()> {
        for _ in 0..n {
            let i = self.api.len();
            let mut s = TcpStream::connect(self.target.addrs[0])?;
            self.poll.registry().register(
                &mut s,
                Token(API_BASE + i),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            self.api.push(ApiConn::new(s));
        }
        Ok(())
    }

    /// A personal delivery to the lead of group `gi` through `POST /api/emit`.
    pub fn notify(&mut self, gi: usize) {
        if let Some(ci) = self
            .api
            .iter()
            .position(|c| c.busy.is_none() && c.connected)
        {
            self.send_notify(ci, gi);
        } else {
            self.api_queue.push_back(gi);
            self.api_stats.backlog_max = self.api_stats.backlog_max.max(self.api_queue.len());
        }
    }

    fn send_notify(&mut self, ci: usize, gi: usize) {
        let now = self.ctx.now_ns();
        let g = &mut self.ctx.groups[gi];
        let target = g.lead.and_then(|k| self.clients.get(k));
        let Some(sid) = target
            .filter(|c| c.phase == Phase::Ready)
            .and_then(|c| c.sid.as_deref())
        else {
            self.api_stats.skipped += 1;
            return;
        };
        let seq = g.msgs.len() as u64;
        g.msgs.push(MsgStat {
            t: now,
            expected: 1,
            received: 0,
            last: 0,
        });
        self.ctx.totals.first_publish.get_or_insert(now);
        self.packet.clear();
        wire::write_payload(&mut self.packet, None, seq, now, &self.pad);
        let req = api::emit_request(&self.host, &self.target.api_key, sid, &self.packet);
        let conn = &mut self.api[ci];
        conn.busy = Some(gi);
        if conn.send(&req).is_err() {
            self.reconnect_api(ci);
        }
    }

    fn on_api(&mut self, ci: usize, readable: bool, writable: bool) {
        let Some(conn) = self.api.get_mut(ci) else {
            return;
        };
        if writable && conn.flush().is_err() {
            return self.reconnect_api(ci);
        }
        if !readable {
            if conn.connected && conn.busy.is_none() {
                self.next_notify(ci);
            }
            return;
        }
        match conn.read(&mut self.rbuf) {
            ApiRead::Pending => {}
            ApiRead::Closed => self.reconnect_api(ci),
            ApiRead::Done(ok) => {
                conn.busy = None;
                self.api_stats.requests += 1;
                if !ok {
                    self.api_stats.errors += 1;
                    if self.api_stats.errors <= 3 {
                        log::warn!("POST /api/emit answered a non-2xx status");
                    }
                }
                self.next_notify(ci);
            }
        }
    }

    fn next_notify(&mut self, ci: usize) {
        while self.api[ci].busy.is_none() {
            let Some(gi) = self.api_queue.pop_front() else {
                return;
            };
            self.send_notify(ci, gi);
        }
    }

    /// Replaces a broken API connection; its request in flight counts as an error.
    fn reconnect_api(&mut self, ci: usize) {
        self.api_stats.reconnects += 1;
        if self.api[ci].busy.is_some() {
            self.api_stats.errors += 1;
        }
        match TcpStream::connect(self.target.addrs[0]) {
            Ok(mut s) => {
                let tok = Token(API_BASE + ci);
                if self
                    .poll
                    .registry()
                    .register(&mut s, tok, Interest::READABLE | Interest::WRITABLE)
                    .is_ok()
                {
                    self.api[ci] = ApiConn::new(s);
                }
            }
            Err(e) => log::warn!("API reconnect failed: {e}"),
        }
    }

    /// Requests waiting for a free API connection.
    pub fn api_backlog(&self) -> usize {
        self.api_queue.len()
    }
}
