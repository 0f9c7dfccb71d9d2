//! The `Io` part: the poll, the listener, the connection slab, the loop's read buffer, the
//! FIFO of connections that owe output, and the write pass. It knows bytes and sockets, not
//! protocols: what a connection's bytes mean is decided above it.
//!
//! Closing is a wish, not an act: [`Io::close`] marks a connection and records why; the loop
//! deregisters and drops it in [`Io::take_closing`] after the event that caused it has been
//! dispatched. So no caller ever finds a connection gone under its feet in the middle of a
//! packet: a connection marked closing simply takes no more output.

mod deadlines;
mod write;

use super::conn::{Conn, ConnKind, Phase};
use crate::metrics::Metrics;
use bytes::Bytes;
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Poll, Registry, Token};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;
use std::collections::VecDeque;
use std::io::{self, Read};
use std::time::{Duration, Instant};

/// The public listener's token.
pub const LISTENER: Token = Token(0);
/// SIGTERM and SIGINT arrive as readiness of this token.
pub const SIGNALS: Token = Token(1);
/// The internal listener's token (`/api/*` and `/metrics`), when configured.
pub const INTERNAL: Token = Token(3);
/// Connection `key` in the slab is registered as `Token(FIRST_CONN + key)`.
pub const FIRST_CONN: usize = 16;
/// One read buffer for the whole loop; per-connection buffers hold only partial input.
pub const READ_BUF_LEN: usize = 64 * 1024;
/// The most one connection may have read for it in one loop turn. A client that keeps its
/// socket readable (a flood) is read in slices of this size, one per turn, so every other
/// connection, timer and helper-thread event gets its turn in between.
pub const READ_CAP_PER_TURN: usize = 4 * READ_BUF_LEN;
/// How long a closing connection waits for the peer's EOF.
const LINGER: Duration = Duration::from_secs(2);
/// A kept-alive HTTP connection with no request in progress is closed after this.
pub const HTTP_IDLE: Duration = Duration::from_secs(60);

/// The deadlines of the phases that have one.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub head: Duration,
    pub body: Duration,
}

/// Returns `true` for errors that mean "try again later", not failure.
pub fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

pub fn interrupted(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Interrupted
}

/// What one read call found.
pub enum ReadOutcome {
    /// `n` bytes are in the read buffer.
    Data(usize),
    /// Nothing more for now (or the connection is closing): stop reading it this turn.
    Done,
    /// The per-turn cap is reached with input possibly left: read it again next turn.
    Capped,
    /// The peer closed or the socket failed.
    Eof,
}

/// A connection that finished: what the layers above must detach from it.
pub struct Closed {
    pub key: usize,
    pub kind: ConnKind,
    pub reason: &'static str,
}

/// The loop's sockets and buffers.
pub struct Io {
    poll: Poll,
    /// The public listener and the internal one.
    listeners: [Option<TcpListener>; 2],
    conns: Slab<Conn>,
    read_buf: Vec<u8>,
    /// Connections with queued output, oldest first. Each is written at most once per pass
    /// (every frame queued meanwhile goes out in one vectored write); a pass is sliced over
    /// loop turns by `FLUSH_SLICE`.
    dirty: VecDeque<usize>,
    /// Connections that hit the read cap, with their uid (a reused key is not confused).
    read_again: VecDeque<(usize, u64)>,
    /// Close wishes recorded since the loop last reaped.
    closing: Vec<(usize, &'static str)>,
    /// WebSockets and held polls whose last bytes went out: their sessions must let go.
    lingered: Vec<Closed>,
    accept_paused: bool,
    next_uid: u64,
    timeouts: Timeouts,
    /// The phase deadlines, in order (see deadlines.rs).
    deadlines: deadlines::Deadlines,
    /// SIGTERM/SIGINT as one more registered source.
    signals: Signals,
}

impl Io {
    /// Registers the listener on a new poll.
    ///
    /// # Errors
    /// Creating the poll or registering the listener failed.
    pub fn new(
        public: std::net::TcpListener,
        internal: Option<std::net::TcpListener>,
        timeouts: Timeouts,
    ) -> io::Result<Self> {
        let poll = Poll::new()?;
        let mut listeners = [None, None];
        for (slot, (l, token)) in listeners
            .iter_mut()
            .zip([(Some(public), LISTENER), (internal, INTERNAL)])
        {
            if let Some(l) = l {
                l.set_nonblocking(true)?;
                let mut l = TcpListener::from_std(l);
                poll.registry()
                    .register(&mut l, token, Interest::READABLE)?;
                *slot = Some(l);
            }
        }
        let mut signals = Signals::new([SIGTERM, SIGINT])?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        Ok(Io {
            poll,
            listeners,
            conns: Slab::with_capacity(1024),
            read_buf: vec![0; READ_BUF_LEN],
            dirty: VecDeque::new(),
            read_again: VecDeque::new(),
            closing: Vec::new(),
            lingered: Vec::new(),
            accept_paused: false,
            next_uid: 0,
            timeouts,
            deadlines: deadlines::Deadlines::default(),
            signals,
        })
    }

    /// Signals received since the last call.
    pub fn pending_signals(&mut self) -> Vec<i32> {
        self.signals.pending().collect()
    }

    pub fn poll_mut(&mut self) -> &mut Poll {
        &mut self.poll
    }

    pub fn registry(&self) -> &Registry {
        self.poll.registry()
    }

    /// A process-unique id (connections, sessions, timer generations).
    pub fn next_uid(&mut self) -> u64 {
        self.next_uid += 1;
        self.next_uid
    }

    /// Accepts one connection from the public (`internal == false`) or the internal listener;
    /// `Ok(None)` when none is waiting.
    ///
    /// # Errors
    /// An accept error other than `WouldBlock`/`Interrupted` (out of descriptors, say).
    pub fn accept(
        &mut self,
        internal: bool,
    ) -> io::Result<Option<(TcpStream, std::net::SocketAddr)>> {
        let Some(listener) = &self.listeners[usize::from(internal)] else {
            return Ok(None);
        };
        loop {
            match listener.accept() {
                Ok(pair) => return Ok(Some(pair)),
                Err(e) if would_block(&e) => return Ok(None),
                Err(e) if interrupted(&e) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Stops listening (shutdown, or out of descriptors until [`Io::resume_accept`]).
    pub fn pause_accept(&mut self) -> bool {
        let mut ok = false;
        for l in self.listeners.iter_mut().flatten() {
            ok |= self.poll.registry().deregister(l).is_ok();
        }
        self.accept_paused |= ok;
        ok
    }

    /// Listens again after a pause; `false` when it was not paused.
    pub fn resume_accept(&mut self) -> bool {
        if !self.accept_paused {
            return false;
        }
        self.accept_paused = false;
        for (l, token) in self.listeners.iter_mut().zip([LISTENER, INTERNAL]) {
            if let Some(l) = l {
                let _ = self.poll.registry().register(l, token, Interest::READABLE);
            }
        }
        true
    }

    /// Adds an accepted stream; `None` when it cannot be registered. Its request head is due
    /// within the head timeout.
    pub fn add(&mut self, mut stream: TcpStream, internal: bool) -> Option<usize> {
        let _ = stream.set_nodelay(true);
        let uid = self.next_uid();
        let entry = self.conns.vacant_entry();
        let token = Token(FIRST_CONN + entry.key());
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, token, Interest::READABLE)
        {
            log::warn!("cannot register connection: {e}");
            return None;
        }
        let key = entry.key();
        let due = Instant::now() + self.timeouts.head;
        entry.insert(Conn::new(stream, due, uid, internal));
        self.deadlines.arm(Phase::Head, due, key, uid);
        Some(key)
    }

    /// Live connections (not marked closing).
    pub fn live(&self) -> usize {
        self.conns.len() - self.closing.len()
    }

    /// Moves a connection to `phase`, starting that phase's deadline now. Setting the phase
    /// it is already in keeps its deadline (a trickling head does not buy time per byte).
    pub fn set_phase(&mut self, key: usize, phase: Phase) {
        let t = self.timeouts;
        let Some(conn) = self.get_mut(key) else {
            return;
        };
        if conn.phase == phase {
            return;
        }
        let now = Instant::now();
        conn.phase = phase;
        conn.deadline = match phase {
            Phase::Head => Some(now + t.head),
            Phase::Body => Some(now + t.body),
            Phase::Idle => Some(now + HTTP_IDLE),
            Phase::Linger => Some(now + LINGER),
            Phase::Session => None,
        };
        if let Some(at) = conn.deadline {
            let uid = conn.uid;
            self.deadlines.arm(phase, at, key, uid);
        }
    }

    /// Connections whose phase deadline has passed, with their phase.
    pub fn expired(&mut self, now: Instant) -> Vec<(usize, Phase)> {
        let mut out = Vec::new();
        let conns = &self.conns;
        self.deadlines.take_due(now, |key, uid, at| {
            if let Some(c) = conns.get(key) {
                if c.uid == uid && c.closing.is_none() && c.deadline == Some(at) {
                    out.push((key, c.phase));
                }
            }
        });
        out
    }

    /// Makes room for a new connection at the limit: the connection without a session whose
    /// deadline comes first (the one a slow or idle peer has held longest) is closed. `false`
    /// when every connection carries a session.
    pub fn evict_for_slot(&mut self) -> bool {
        let victim = self
            .conns
            .iter()
            .filter(|(_, c)| c.closing.is_none() && c.phase != Phase::Session && !c.internal)
            .min_by_key(|(_, c)| c.deadline)
            .map(|(k, _)| k);
        match victim {
            Some(k) => {
                self.close(k, "slot needed for a new connection");
                true
            }
            None => false,
        }
    }

    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// The connection, unless it is gone or closing.
    pub fn get(&self, key: usize) -> Option<&Conn> {
        self.conns.get(key).filter(|c| c.closing.is_none())
    }

    /// The connection, unless it is gone or closing.
    pub fn get_mut(&mut self, key: usize) -> Option<&mut Conn> {
        self.conns.get_mut(key).filter(|c| c.closing.is_none())
    }

    /// Every connection, closing ones included (for sweeps and gauges).
    pub fn iter(&self) -> impl Iterator<Item = (usize, &Conn)> {
        self.conns.iter()
    }

    /// The uid of a live connection.
    pub fn uid(&self, key: usize) -> Option<u64> {
        self.get(key).map(|c| c.uid)
    }

    /// Reads once from connection `key` into `buf` (the loop's buffer, lent out by
    /// [`Io::take_read_buf`]). `budget` is what this connection may still read this turn.
    pub fn read(
        &mut self,
        key: usize,
        buf: &mut [u8],
        budget: usize,
        m: &mut Metrics,
    ) -> ReadOutcome {
        if budget == 0 {
            if let Some(c) = self.get(key) {
                self.read_again.push_back((key, c.uid));
            }
            m.reads_capped += 1;
            return ReadOutcome::Capped;
        }
        let Some(conn) = self.conns.get_mut(key) else {
            return ReadOutcome::Done;
        };
        if conn.closing.is_some() {
            return ReadOutcome::Done;
        }
        let want = budget.min(buf.len());
        loop {
            match conn.stream.read(&mut buf[..want]) {
                Ok(0) => return ReadOutcome::Eof,
                Ok(n) => {
                    m.bytes_in += n as u64;
                    return ReadOutcome::Data(n);
                }
                Err(e) if would_block(&e) => return ReadOutcome::Done,
                Err(e) if interrupted(&e) => continue,
                Err(e) => {
                    log::debug!("read error on connection {key}: {e}");
                    return ReadOutcome::Eof;
                }
            }
        }
    }

    /// Lends the read buffer out (the loop parses from it while calling back into `Io`).
    pub fn take_read_buf(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.read_buf)
    }

    pub fn put_read_buf(&mut self, buf: Vec<u8>) {
        self.read_buf = buf;
    }

    /// Connections that stopped at the read cap last turn and are still open.
    pub fn take_read_again(&mut self) -> Vec<usize> {
        let pending = std::mem::take(&mut self.read_again);
        pending
            .into_iter()
            .filter(|&(k, uid)| self.uid(k) == Some(uid))
            .map(|(k, _)| k)
            .collect()
    }

    /// Queues bytes on a connection, enforcing the outbound limit: a connection over it is
    /// marked closing (slow client) and `false` is returned. A closing or missing connection
    /// takes nothing (`false`).
    pub fn queue(&mut self, key: usize, bytes: Bytes, limit: usize, m: &mut Metrics) -> bool {
        let Some(conn) = self.conns.get_mut(key) else {
            return false;
        };
        if conn.closing.is_some() {
            return false;
        }
        conn.out.push(bytes);
        if conn.out.len() > limit {
            m.slow_client_disconnects += 1;
            log::warn!(
                "closing slow client on connection {key}: {} bytes queued, limit {limit}",
                conn.out.len()
            );
            self.close(key, "slow client: outbound queue full");
            return false;
        }
        // Runs once per broadcast recipient: mark the connection already in hand.
        if !conn.dirty {
            conn.dirty = true;
            self.dirty.push_back(key);
        }
        true
    }

    /// Puts connection `key` on the flush FIFO (it became writable, say).
    pub fn mark_dirty(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key) {
            if !conn.dirty {
                conn.dirty = true;
                self.dirty.push_back(key);
            }
        }
    }

    /// Close once everything queued is written (after an error response or a close frame).
    pub fn close_after_flush(&mut self, key: usize) {
        if let Some(c) = self.get_mut(key) {
            c.close_after_flush = true;
        }
    }

    /// Records that connection `key` must close, and why; the loop closes it after dispatch.
    pub fn close(&mut self, key: usize, reason: &'static str) {
        if let Some(conn) = self.conns.get_mut(key) {
            if conn.closing.is_none() {
                conn.closing = Some(reason);
                self.closing.push((key, reason));
            }
        }
    }

    /// Whether close wishes (or lingering detaches) wait for the loop.
    pub fn has_closing(&self) -> bool {
        !self.closing.is_empty() || !self.lingered.is_empty()
    }

    /// Deregisters and drops every connection marked closing; returns what the layers above
    /// must detach.
    pub fn take_closing(&mut self) -> Vec<Closed> {
        let wishes = std::mem::take(&mut self.closing);
        let mut out = std::mem::take(&mut self.lingered);
        for (key, reason) in wishes {
            let Some(mut conn) = self.conns.try_remove(key) else {
                continue;
            };
            let _ = self.poll.registry().deregister(&mut conn.stream);
            log::debug!("connection {key} closed: {reason}");
            out.push(Closed {
                key,
                kind: conn.kind,
                reason,
            });
        }
        out
    }
}
