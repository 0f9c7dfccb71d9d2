//! The load generator's one mio loop: launching clients in batches, readiness dispatch,
//! handshake timeouts, publishing, churn and the notify API connections.

use crate::api::{self, ApiConn, ApiRead};
use crate::client::{Client, Ctx, Gone, Member, Phase};
use crate::poll::{PollClient, Side};
use crate::stats::MsgStat;
use crate::wire;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// Tokens at and above this are API connections.
const API_BASE: usize = usize::MAX / 2;
/// Tokens from here up to `API_BASE` are polling clients' connections (`2 * key + side`);
/// below, slab keys of WebSocket clients. Handshake deadlines key polling clients the same
/// way (`POLL_BASE + key`).
const POLL_BASE: usize = usize::MAX / 4;
/// One shared read buffer for every socket.
const READ_BUF_LEN: usize = 256 * 1024;
/// Readiness events taken per poll.
const EVENTS: usize = 4096;

/// Where the server is.
#[derive(Clone, Debug)]
pub struct Target {
    /// Destination addresses, used in turn (several 127.0.0.x spread the ephemeral ports).
    pub addrs: Vec<SocketAddr>,
    /// Source addresses the WebSocket clients bind to in turn (127.0.0.2, 127.0.0.3, ...):
    /// each (source, destination) pair has its own ~28,000 ephemeral ports. Empty: the
    /// kernel picks (127.0.0.1 toward 127.0.0.1).
    pub sources: Vec<std::net::IpAddr>,
    pub api_key: String,
}

/// Source addresses 127.0.0.2 ..= 127.0.0.(k+1) for `Target::sources`.
pub fn loopback_sources(k: u8) -> Vec<std::net::IpAddr> {
    (0..k.min(250))
        .map(|i| std::net::IpAddr::from([127, 0, 0, 2 + i]))
        .collect()
}

/// A non-blocking connect to `addr` from `source` (port chosen by the kernel).
fn connect_from(source: std::net::IpAddr, addr: SocketAddr) -> io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    sock.set_nonblocking(true)?;
    // Port 0: bind picks an ephemeral port of this source (each has its own ~28,000).
    sock.bind(&SocketAddr::new(source, 0).into())?;
    match sock.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(115) || e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(sock.into()))
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
    /// Engine.IO long-polling clients (soak).
    pub polls: Slab<PollClient>,
    rbuf: Vec<u8>,
    pub ctx: Ctx,
    target: Target,
    /// The `Host` header value.
    host: String,
    serial: u64,
    /// `(deadline, key, serial)` in launch order, so deadlines are sorted.
    handshakes: VecDeque<(u64, usize, u64)>,
    pub handshake_timeout: Duration,
    /// Clients still to launch for the initial population: `(group, polling)`.
    pub launch_queue: VecDeque<(u32, bool)>,
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
    /// Churn's new clients may miss what was published before their join took effect
    /// (`Member::lenient_first`); soak turns this off: it counts every such miss as lost.
    pub lenient_relaunch: bool,
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
            polls: Slab::new(),
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
            lenient_relaunch: true,
        })
    }

    /// Starts one client's TCP connect into `group`.
    pub fn launch(&mut self, group: u32, lenient_first: bool) {
        let addr = self.target.addrs[self.serial as usize % self.target.addrs.len()];
        self.serial += 1;
        self.ctx.counters.launched += 1;
        let connected = match self.target.sources.as_slice() {
            [] => TcpStream::connect(addr),
            s => connect_from(s[self.serial as usize % s.len()], addr),
        };
        let stream = match connected {
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
        client.m.lenient_first = lenient_first;
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

    /// Starts one long-polling client into `group`: its two TCP connects (soak).
    pub fn launch_poll(&mut self, group: u32, lenient_first: bool) {
        let addr = self.target.addrs[self.serial as usize % self.target.addrs.len()];
        self.serial += 1;
        self.ctx.counters.launched += 1;
        let (get, post) = match (TcpStream::connect(addr), TcpStream::connect(addr)) {
            (Ok(g), Ok(p)) => (g, p),
            (Err(e), _) | (_, Err(e)) => {
                log::debug!("connect to {addr}: {e}");
                self.ctx.counters.connect_failed += 1;
                self.last_failure = Some(Gone::Io(e.kind()));
                return;
            }
        };
        let now = self.ctx.now_ns();
        let entry = self.polls.vacant_entry();
        let key = entry.key();
        let mut c = PollClient::new(get, post, &self.host, group, now, self.serial);
        c.m.lenient_first = lenient_first;
        let reg = self.poll.registry();
        let both = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = reg
            .register(&mut c.get.stream, Token(POLL_BASE + 2 * key), both)
            .and_then(|()| reg.register(&mut c.post.stream, Token(POLL_BASE + 2 * key + 1), both))
        {
            log::debug!("register: {e}");
            self.ctx.counters.connect_failed += 1;
            return;
        }
        entry.insert(c);
        self.ctx.counters.in_progress += 1;
        let deadline = now + self.handshake_timeout.as_nanos() as u64;
        self.handshakes
            .push_back((deadline, POLL_BASE + key, self.serial));
    }

    /// Launches queued clients while fewer than `batch` handshakes are in progress.
    pub fn pump_launches(&mut self, batch: u64) {
        while self.ctx.counters.in_progress < batch {
            let Some((g, polling)) = self.launch_queue.pop_front() else {
                break;
            };
            if polling {
                self.launch_poll(g, false);
            } else {
                self.launch(g, false);
            }
        }
    }

    /// Removes a client. `on_purpose` is a churn disconnect, which loses nothing.
    pub fn close(&mut self, key: usize, why: Gone, on_purpose: bool) {
        let Some(c) = self.clients.try_remove(key) else {
            return;
        };
        let g = &mut self.ctx.groups[c.m.group as usize];
        if g.lead == Some(key) {
            g.lead = None;
        }
        self.forget(&c.m, c.phase == Phase::Ready, why, on_purpose, false);
    }

    /// Removes a polling client; `on_purpose` (churn) first sends it a close packet.
    pub fn close_poll(&mut self, key: usize, why: Gone, on_purpose: bool) {
        let Some(mut c) = self.polls.try_remove(key) else {
            return;
        };
        if on_purpose {
            c.goodbye(&self.host);
        }
        self.forget(&c.m, c.phase == Phase::Ready, why, on_purpose, true);
    }

    /// The bookkeeping of a removed client.
    fn forget(&mut self, m: &Member, ready: bool, why: Gone, on_purpose: bool, polling: bool) {
        if ready {
            self.ctx.leave(m, on_purpose);
            if on_purpose {
                self.ctx.counters.churned += 1;
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
            log::debug!("client failed before it was ready: {why:?}");
            if !self.ctx.loaded && self.retries_left > 0 {
                self.retries_left -= 1;
                self.launch_queue.push_back((m.group, polling));
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
            if t >= POLL_BASE {
                let (key, side) = ((t - POLL_BASE) / 2, (t - POLL_BASE) % 2);
                let side = if side == 0 { Side::Get } else { Side::Post };
                // A stale token, as below.
                let Some(c) = self.polls.get_mut(key) else {
                    continue;
                };
                let res = c.on_event(
                    side,
                    readable,
                    writable,
                    &mut self.rbuf,
                    &mut self.ctx,
                    &self.host,
                );
                if let Err(why) = res {
                    self.close_poll(key, why, false);
                }
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
            if key >= POLL_BASE {
                let key = key - POLL_BASE;
                if let Some(c) = self.polls.get(key) {
                    if c.serial == serial && c.phase != Phase::Ready {
                        self.close_poll(key, Gone::Timeout, false);
                    }
                }
            } else if let Some(c) = self.clients.get(key) {
                if c.serial == serial && c.phase != Phase::Ready {
                    self.close(key, Gone::Timeout, false);
                }
            }
        }
    }

    /// Publishes the next message of group `gi` from its lead client, with a `room` field
    /// when `room` (chat-rooms). Returns `false` when the publisher is gone.
    pub fn publish(&mut self, gi: usize, room: bool) -> bool {
        let room_name = room.then(|| format!("r{gi}"));
        self.publish_from(gi, gi, room_name.as_deref())
    }

    /// Publishes the next message booked in group `book` from the lead of group `from`,
    /// relayed to `room` (or to `bench` without one). Returns `false` when the publisher is
    /// gone.
    pub fn publish_from(&mut self, book: usize, from: usize, room: Option<&str>) -> bool {
        let now = self.ctx.now_ns();
        let lead = self.ctx.groups[from]
            .lead
            .filter(|&k| self.clients[k].phase == Phase::Ready);
        let Some(lead) = lead else {
            self.publish_skipped += 1;
            return false;
        };
        let g = &mut self.ctx.groups[book];
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
        wire::write_payload(&mut self.packet, room, seq, now, &self.pad);
        self.packet.push(b']');
        let packet = std::mem::take(&mut self.packet);
        let res = self.clients[lead].send_text(&mut self.ctx, &packet);
        self.packet = packet;
        if let Err(why) = res {
            self.close(lead, why, false);
        }
        true
    }

    /// Closes a random connected client that publishes nothing, and starts a new one of
    /// the same kind (WebSocket or polling) in its group (churn).
    pub fn churn_one(&mut self) {
        let (ws, polls) = (self.clients.capacity(), self.polls.capacity());
        for _ in 0..64 {
            let k = self.ctx.rng.below(ws + polls);
            if k >= ws {
                let k = k - ws;
                let Some(c) = self.polls.get(k) else {
                    continue;
                };
                if c.phase != Phase::Ready {
                    continue;
                }
                let g = c.m.group;
                self.close_poll(k, Gone::ServerClosed, true);
                self.launch_poll(g, self.lenient_relaunch);
                return;
            }
            let Some(c) = self.clients.get(k) else {
                continue;
            };
            let g = c.m.group;
            if c.phase != Phase::Ready || self.ctx.groups[g as usize].lead == Some(k) {
                continue;
            }
            self.close(k, Gone::ServerClosed, true);
            self.launch(g, self.lenient_relaunch);
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
