//! The event loop: one mio `Poll` owning the listener, every connection, Engine.IO session,
//! Socket.IO socket, room and timer. Protocol handling lives in the sibling modules as further
//! `impl Server` blocks: `http` (requests and routing), `engine` (Engine.IO sessions),
//! `sio` (Socket.IO sockets and rooms), `api` (the internal HTTP API), `app` (event handlers).

mod api;
mod app;
mod cluster;
mod conn;
mod engine;
mod http;
mod sio;

use crate::auth::Verifier;
use crate::config::Config;
use crate::engineio::wire::EncodeCounter;
use crate::metrics::Metrics;
use crate::timer::{Timer, Timers};
use conn::{Conn, ConnKind};
use engine::Session;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use sio::{Namespace, Socket};
use slab::Slab;
use std::collections::{HashMap, VecDeque};
use std::io::{self, Read};
use std::time::{Duration, Instant};

const LISTENER: Token = Token(0);
const SIGNALS: Token = Token(1);
/// Helper threads (Redis, Kafka) wake the loop through this token.
const WAKER: Token = Token(2);
/// Connection `key` in the slab is registered as `Token(FIRST_CONN + key)`.
const FIRST_CONN: usize = 16;
/// One read buffer for the whole loop; per-connection buffers hold only partial input.
const READ_BUF_LEN: usize = 64 * 1024;
/// An HTTP connection with no request and no pending poll for this long is closed.
const HTTP_IDLE: Duration = Duration::from_secs(60);
/// How long a closing connection waits for the peer's EOF.
const LINGER: Duration = Duration::from_secs(2);
/// How often idle HTTP connections are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// Longest a shutdown waits for clients to receive their DISCONNECT.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(3000);

/// All state of the server; only the loop thread touches it.
pub struct Server {
    poll: Poll,
    waker: std::sync::Arc<mio::Waker>,
    listener: TcpListener,
    signals: Signals,
    pub(crate) config: Config,
    verifier: Verifier,
    conns: Slab<Conn>,
    sessions: Slab<Session>,
    /// Engine.IO sid -> session key.
    sids: HashMap<String, usize>,
    sockets: Slab<Socket>,
    /// Socket.IO socket id -> socket key (every socket is in the room named by its id).
    socket_ids: HashMap<String, usize>,
    namespaces: Vec<Namespace>,
    timers: Timers,
    metrics: Metrics,
    encodes: EncodeCounter,
    read_buf: Vec<u8>,
    /// Connections with queued output, oldest first. Each is written at most once per pass
    /// (every frame queued for it meanwhile goes out in one vectored write); a pass is sliced
    /// over loop turns by `FLUSH_SLICE`.
    dirty: VecDeque<usize>,
    /// Polling sessions (key, uid) whose held GET should be answered at the end of the turn.
    dirty_polls: Vec<(usize, u64)>,
    /// Scratch list of broadcast recipients, reused to avoid an allocation per broadcast.
    scratch: Vec<usize>,
    next_uid: u64,
    broadcast_seq: u64,
    shutting_down: bool,
    accept_paused: bool,
    // Stores (see src/store): in memory now, mirrored to Redis later.
    grants: crate::store::grants::Grants,
    presence: crate::store::presence::Presence,
    mailbox: crate::store::mailbox::Mailbox,
    outbox: crate::store::outbox::Outbox,
    recovery: crate::store::recovery::Recovery,
    dedup: crate::store::dedup::Dedup,
    limits: crate::store::ratelimit::Limits,
    /// Feature state of the application layer.
    app: app::State,
    /// Ack id of the event being handled (for handlers that answer later).
    current_ack: Option<u64>,
    /// Redis and Kafka helper threads, when configured.
    cluster: cluster::Cluster,
}

/// Client events kept for the platform to drain when no Kafka producer does.
const OUTBOX_CAP: usize = 100_000;
/// Broadcasts kept for connection state recovery.
const RECOVERY_MAX_PACKETS: usize = 50_000;
/// Window in which a repeated client event id is a retry.
const DEDUP_WINDOW: Duration = Duration::from_secs(300);
const DEDUP_CAP: usize = 200_000;
/// How often stores drop expired entries.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(10);
/// Offline users are forgotten this long after they were last seen.
const PRESENCE_KEEP_MS: u64 = 24 * 3600 * 1000;

/// Returns `true` for errors that mean "try again later", not failure.
fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

fn interrupted(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Interrupted
}

impl Server {
    /// Builds a server around a bound listener.
    ///
    /// # Errors
    /// Creating the poll or registering the listener or signal handler failed.
    pub fn new(listener: std::net::TcpListener, config: Config) -> io::Result<Self> {
        listener.set_nonblocking(true)?;
        let mut listener = TcpListener::from_std(listener);
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let mut signals = Signals::new([SIGTERM, SIGINT])?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        let waker = std::sync::Arc::new(mio::Waker::new(poll.registry(), WAKER)?);
        let namespaces = config
            .namespaces
            .iter()
            .map(|n| Namespace::new(n.clone()))
            .collect();
        let config_mailbox = (config.mailbox_size, config.mailbox_ttl);
        let recovery_window = config.recovery_window;
        let limits = crate::store::ratelimit::Limits::default().scaled(config.rate_limit_scale);
        let mut timers = Timers::default();
        timers.at(Instant::now() + SWEEP_EVERY, Timer::Sweep);
        timers.at(Instant::now() + MAINTENANCE_EVERY, Timer::Maintenance);
        let node_id = config.node_id.clone();
        let mut server = Server {
            poll,
            waker,
            listener,
            signals,
            verifier: Verifier::new(&config),
            config,
            conns: Slab::with_capacity(1024),
            sessions: Slab::with_capacity(1024),
            sids: HashMap::new(),
            sockets: Slab::with_capacity(1024),
            socket_ids: HashMap::new(),
            namespaces,
            timers,
            metrics: Metrics::default(),
            encodes: EncodeCounter::default(),
            read_buf: vec![0; READ_BUF_LEN],
            dirty: VecDeque::new(),
            dirty_polls: Vec::new(),
            scratch: Vec::new(),
            next_uid: 1,
            broadcast_seq: 0,
            shutting_down: false,
            accept_paused: false,
            grants: Default::default(),
            presence: Default::default(),
            mailbox: crate::store::mailbox::Mailbox::new(config_mailbox.0, config_mailbox.1),
            outbox: crate::store::outbox::Outbox::new(OUTBOX_CAP),
            recovery: crate::store::recovery::Recovery::new(recovery_window, RECOVERY_MAX_PACKETS),
            dedup: crate::store::dedup::Dedup::new(DEDUP_WINDOW, DEDUP_CAP),
            limits,
            app: app::State::default(),
            current_ack: None,
            cluster: cluster::Cluster::new(node_id),
        };
        server.start_cluster();
        Ok(server)
    }

    /// Runs the loop until a SIGTERM/SIGINT shutdown completes.
    ///
    /// # Errors
    /// Only a failure of the poll itself; connection errors close that connection.
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = if !self.output_owed() {
                self.timers.next_timeout(Instant::now())
            } else {
                // Output is still owed from the last slice: look at input, then go on writing.
                Some(Duration::ZERO)
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if interrupted(&e) {
                    continue;
                }
                return Err(e);
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    SIGNALS => self.on_signal(),
                    WAKER => self.on_wake(),
                    Token(t) if t >= FIRST_CONN => {
                        let key = t - FIRST_CONN;
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.on_readable(key);
                        }
                        if event.is_writable() {
                            self.mark_dirty(key);
                        }
                    }
                    // Sporadic events for tokens we no longer own can be ignored.
                    _ => {}
                }
            }
            self.run_timers();
            self.flush_dirty();
            if self.shutting_down && self.shutdown_complete() {
                self.stop_cluster();
                log::info!("shutdown complete");
                return Ok(());
            }
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    if self.shutting_down || self.conns.len() >= self.config.max_connections {
                        self.metrics.connections_refused += 1;
                        log::warn!(
                            "refusing connection from {peer}: connection limit {} reached",
                            self.config.max_connections
                        );
                        drop(stream);
                        continue;
                    }
                    self.add_conn(stream);
                }
                Err(e) if would_block(&e) => return,
                Err(e) if interrupted(&e) => continue,
                Err(e) => {
                    // Out of file descriptors (or similar): stop accepting for a moment
                    // instead of spinning on a listener that stays readable.
                    log::warn!("accept failed: {e}; pausing accepts for 100 ms");
                    if self.poll.registry().deregister(&mut self.listener).is_ok() {
                        self.accept_paused = true;
                        self.timers.at(
                            Instant::now() + Duration::from_millis(100),
                            Timer::ResumeAccept,
                        );
                    }
                    return;
                }
            }
        }
    }

    fn add_conn(&mut self, mut stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let entry = self.conns.vacant_entry();
        let token = Token(FIRST_CONN + entry.key());
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, token, Interest::READABLE)
        {
            log::warn!("cannot register connection: {e}");
            return;
        }
        self.next_uid += 1;
        entry.insert(Conn::new(stream, Instant::now(), self.next_uid));
        self.metrics.connections_accepted += 1;
    }

    /// Reads everything the socket has (up to a fairness cap) and hands it to the protocol.
    fn on_readable(&mut self, key: usize) {
        let mut buf = std::mem::take(&mut self.read_buf);
        let mut eof = false;
        while let Some(conn) = self.conns.get_mut(key) {
            match conn.stream.read(&mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    self.metrics.bytes_in += n as u64;
                    conn.last_active = Instant::now();
                    self.on_data(key, &buf[..n]);
                }
                Err(e) if would_block(&e) => break,
                Err(e) if interrupted(&e) => continue,
                Err(e) => {
                    log::debug!("read error on connection {key}: {e}");
                    eof = true;
                    break;
                }
            }
        }
        self.read_buf = buf;
        if eof && self.conns.contains(key) {
            self.close_conn(key, "transport close");
        }
    }

    /// Appends new input to the connection and lets its protocol consume what it can.
    fn on_data(&mut self, key: usize, data: &[u8]) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.close_after_flush {
            return;
        }
        // Parse straight from the loop's read buffer; only a connection that already holds a
        // partial message pays for a copy, and only the unparsed tail is kept.
        let held = std::mem::take(&mut conn.rbuf);
        let input: std::borrow::Cow<'_, [u8]> = if held.is_empty() {
            std::borrow::Cow::Borrowed(data)
        } else {
            let mut held = held;
            held.extend_from_slice(data);
            std::borrow::Cow::Owned(held)
        };
        let mut start = 0;
        loop {
            let Some(conn) = self.conns.get(key) else {
                return;
            };
            let was_http = matches!(conn.kind, ConnKind::Http { .. });
            start += match conn.kind {
                ConnKind::Http { .. } => self.on_http_input(key, &input[start..]),
                ConnKind::WebSocket { .. } => self.on_ws_input(key, &input[start..]),
                ConnKind::Lingering { .. } => input.len() - start,
            };
            let Some(conn) = self.conns.get(key) else {
                return;
            };
            // An HTTP upgrade hands any bytes after the request to the WebSocket layer.
            let switched = was_http && matches!(conn.kind, ConnKind::WebSocket { .. });
            if !(switched && start < input.len() && !conn.close_after_flush) {
                break;
            }
        }
        let limit = crate::http::request::MAX_HEAD_LEN
            + self.config.max_payload.max(self.config.max_api_body)
            + 64;
        if let Some(conn) = self.conns.get_mut(key) {
            if start < input.len() {
                conn.rbuf = match input {
                    std::borrow::Cow::Owned(mut v) => {
                        v.drain(..start);
                        v
                    }
                    std::borrow::Cow::Borrowed(b) => b[start..].to_vec(),
                };
            }
            // Input that waits (behind a held long-poll) is bounded like one request.
            if conn.rbuf.len() > limit {
                self.metrics.protocol_errors += 1;
                log::warn!(
                    "connection {key} sent {} bytes that wait for no request; closing",
                    conn.rbuf.len()
                );
                self.close_conn(key, "too much pipelined input");
            }
        }
    }

    pub(crate) fn mark_dirty(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key) {
            owe_flush(&mut self.dirty, conn, key);
        }
    }

    /// Queues bytes on a connection, enforcing the outbound limit.
    ///
    /// Returns `false` when the connection was closed as a slow client instead.
    pub(crate) fn queue(&mut self, key: usize, bytes: bytes::Bytes) -> bool {
        let limit = self.config.max_outbound_bytes;
        let Some(conn) = self.conns.get_mut(key) else {
            return false;
        };
        conn.out.push(bytes);
        self.metrics.packets_out += 1;
        if conn.out.len() > limit {
            self.metrics.slow_client_disconnects += 1;
            log::warn!(
                "closing slow client on connection {key}: {} bytes queued, limit {limit}",
                conn.out.len()
            );
            self.close_conn(key, "slow client: outbound queue full");
            return false;
        }
        // Runs once per broadcast recipient: mark the connection already in hand.
        owe_flush(&mut self.dirty, conn, key);
        true
    }

    /// Writes owed output, oldest connection first, for at most `FLUSH_SLICE`; what is left
    /// waits for the next turn (which polls without blocking). Held polls are answered in full.
    fn flush_dirty(&mut self) {
        let deadline = Instant::now() + FLUSH_SLICE;
        let mut written = 0usize;
        loop {
            // Flushing can queue more (a close completing a poll); answer those too.
            if !self.dirty_polls.is_empty() {
                self.flush_polls();
            }
            let Some(key) = self.dirty.pop_front() else {
                if self.dirty_polls.is_empty() {
                    return;
                }
                continue;
            };
            self.flush_conn(key);
            written += 1;
            if written.is_multiple_of(FLUSH_CLOCK_EVERY) && Instant::now() >= deadline {
                if self.output_owed() {
                    self.metrics.flush_slices_cut += 1;
                }
                return;
            }
        }
    }

    /// Output is queued that the last flush did not get to.
    fn output_owed(&self) -> bool {
        !self.dirty.is_empty() || !self.dirty_polls.is_empty()
    }

    /// Writes a connection's queue; re-arms writability when the socket is full.
    fn flush_conn(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.dirty = false;
        match conn.out.write_to(&mut conn.stream) {
            Ok(n) => self.metrics.bytes_out += n as u64,
            Err(e) => {
                log::debug!("write error on connection {key}: {e}");
                self.close_conn(key, "transport error");
                return;
            }
        }
        let token = Token(FIRST_CONN + key);
        if conn.out.is_empty() {
            if conn.close_after_flush {
                self.begin_linger(key);
                return;
            }
            if conn.want_write {
                conn.want_write = false;
                let _ =
                    self.poll
                        .registry()
                        .reregister(&mut conn.stream, token, Interest::READABLE);
            }
            if !conn.rbuf.is_empty()
                && !conn.deferred
                && matches!(conn.kind, ConnKind::Http { pending_poll: None })
            {
                // Pipelined requests waited behind a long-poll; serve them now.
                self.on_data(key, &[]);
            }
        } else if !conn.want_write {
            conn.want_write = true;
            let _ = self.poll.registry().reregister(
                &mut conn.stream,
                token,
                Interest::READABLE | Interest::WRITABLE,
            );
        }
    }

    /// Closes a connection and detaches it from its session.
    pub(crate) fn close_conn(&mut self, key: usize, reason: &str) {
        let Some(mut conn) = self.conns.try_remove(key) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut conn.stream);
        log::debug!("connection {key} closed: {reason}");
        self.detach(key, conn.kind, reason);
    }

    /// Tells the session layer a connection no longer carries it.
    fn detach(&mut self, key: usize, kind: ConnKind, reason: &str) {
        match kind {
            ConnKind::Http {
                pending_poll: Some(s),
            } => {
                if let Some(session) = self.sessions.get_mut(s) {
                    if session.poll_conn == Some(key) {
                        session.poll_conn = None;
                    }
                }
            }
            ConnKind::WebSocket { session, .. } => self.on_ws_closed(session, key, reason),
            ConnKind::Http { pending_poll: None } | ConnKind::Lingering { .. } => {}
        }
    }

    /// Everything queued is written: shut our write side and wait briefly for the peer's EOF.
    fn begin_linger(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let until = Instant::now() + LINGER;
        let kind = std::mem::replace(&mut conn.kind, ConnKind::Lingering { until });
        conn.rbuf = Vec::new();
        if conn.stream.shutdown(std::net::Shutdown::Write).is_err() {
            self.close_conn(key, "closed after response");
            return;
        }
        self.detach(key, kind, "closed after response");
    }

    fn run_timers(&mut self) {
        let now = Instant::now();
        while let Some(timer) = self.timers.pop_due(now) {
            match timer {
                Timer::PresenceGrace { user, gen } => self.on_presence_grace(&user, gen),
                Timer::TypingExpire {
                    user,
                    conversation,
                    gen,
                } => self.on_typing_expire(&user, &conversation, gen),
                Timer::CallInviteTimeout { call, user, uid } => {
                    self.on_call_invite_timeout(&call, &user, uid)
                }
                Timer::QuizFlush { quiz } => self.on_quiz_flush(&quiz),
                Timer::ClassFlush { class } => self.on_class_flush(&class),
                Timer::Maintenance => {
                    self.mailbox.expire(now);
                    self.recovery.expire(now);
                    self.presence
                        .prune(crate::store::now_ms().saturating_sub(PRESENCE_KEEP_MS));
                    self.refresh_redis();
                    self.timers.at(now + MAINTENANCE_EVERY, Timer::Maintenance);
                }
                Timer::Ping { session, uid, gen } => self.on_ping_due(session, uid, gen),
                Timer::PongDeadline { session, uid, gen } => {
                    self.on_pong_deadline(session, uid, gen)
                }
                Timer::ConnectTimeout { session, uid } => self.on_connect_timeout(session, uid),
                Timer::Sweep => self.sweep_idle(now),
                Timer::ResumeAccept => {
                    if self.accept_paused && !self.shutting_down {
                        self.accept_paused = false;
                        let _ = self.poll.registry().register(
                            &mut self.listener,
                            LISTENER,
                            Interest::READABLE,
                        );
                        self.accept();
                    }
                }
                Timer::ShutdownDeadline => {
                    log::warn!("shutdown grace period over; closing remaining connections");
                    let sessions: Vec<usize> = self.sessions.iter().map(|(k, _)| k).collect();
                    for s in sessions {
                        self.close_session(s, engine::CloseReason::Shutdown);
                    }
                    let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
                    for k in keys {
                        self.close_conn(k, "server shutdown");
                    }
                }
            }
        }
    }

    /// Closes HTTP connections that hold no request and no long-poll, and lingering ones whose
    /// peer never closed.
    fn sweep_idle(&mut self, now: Instant) {
        let idle: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| match c.kind {
                ConnKind::Http { pending_poll: None } => {
                    c.out.is_empty() && now.duration_since(c.last_active) > HTTP_IDLE
                }
                ConnKind::Lingering { until } => now >= until,
                _ => false,
            })
            .map(|(k, _)| k)
            .collect();
        for k in idle {
            self.close_conn(k, "idle");
        }
        self.timers.at(now + SWEEP_EVERY, Timer::Sweep);
    }

    /// A helper thread has events for the loop.
    fn on_wake(&mut self) {
        self.drain_cluster();
    }

    fn on_signal(&mut self) {
        let got: Vec<i32> = self.signals.pending().collect();
        if got.is_empty() || self.shutting_down {
            return;
        }
        log::info!(
            "signal {} received: disconnecting {} sockets and shutting down",
            got[0],
            self.sockets.len()
        );
        self.shutting_down = true;
        let _ = self.poll.registry().deregister(&mut self.listener);
        self.timers
            .at(Instant::now() + SHUTDOWN_GRACE, Timer::ShutdownDeadline);
        let sessions: Vec<usize> = self.sessions.iter().map(|(k, _)| k).collect();
        for s in sessions {
            self.shutdown_session(s);
        }
        // Connections without a session have nothing to say goodbye to.
        let idle: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                matches!(c.kind, ConnKind::Http { pending_poll: None }) && c.out.is_empty()
            })
            .map(|(k, _)| k)
            .collect();
        for k in idle {
            self.close_conn(k, "server shutdown");
        }
    }

    fn shutdown_complete(&self) -> bool {
        self.sessions.is_empty()
            && self.conns.iter().all(|(_, c)| {
                c.out.is_empty()
                    && matches!(c.kind, ConnKind::Http { .. } | ConnKind::Lingering { .. })
            })
    }

    pub(crate) fn next_uid(&mut self) -> u64 {
        self.next_uid += 1;
        self.next_uid
    }
}

/// Puts connection `key` at the back of the flush FIFO unless it is already on it.
fn owe_flush(dirty: &mut VecDeque<usize>, conn: &mut Conn, key: usize) {
    if !conn.dirty {
        conn.dirty = true;
        dirty.push_back(key);
    }
}

/// The longest one loop turn spends writing before it polls for input again. On loopback a
/// write costs the sender 4-7 us (the receiver's TCP input runs on the sender's core), so a
/// fanout to 10,000 sockets is tens of milliseconds of writes. Slicing that pass keeps reads,
/// accepts and timers flowing during it, and a broadcast that arrives mid-pass joins the write
/// still owed to each socket instead of waiting for the pass to end and then making its own:
/// at saturation a message is complete about one pass after it arrives, not two.
const FLUSH_SLICE: Duration = Duration::from_millis(1);
/// Read the clock after this many connection writes (a write is microseconds; the clock ~20 ns).
const FLUSH_CLOCK_EVERY: usize = 32;

/// Binds nothing itself: runs the server on an already bound listener (tests bind port 0,
/// systemd can hand over a socket).
///
/// # Errors
/// Setting up or running the poll failed.
pub fn run(listener: std::net::TcpListener, config: Config) -> io::Result<()> {
    Server::new(listener, config)?.run()
}

#[cfg(test)]
mod size_tests {
    /// Per-connection memory is a benchmark target (issue 5): keep these structs small.
    #[test]
    fn per_connection_structs_stay_small() {
        let conn = std::mem::size_of::<super::Conn>();
        let session = std::mem::size_of::<super::Session>();
        let socket = std::mem::size_of::<super::Socket>();
        eprintln!("Conn {conn} B, Session {session} B, Socket {socket} B");
        assert!(
            conn + session + socket < 1024,
            "Conn {conn} + Session {session} + Socket {socket}"
        );
    }
}
