//! The `Engine` part: Engine.IO sessions (sids, transports, the polling queue, upgrade state,
//! heartbeats) and the one way a message reaches a session's client ([`Engine::send`]).
//! The request flows live in the submodules as `impl Server` blocks: `handshake` (the
//! Engine.IO path, session open and close), `polling` and `websocket`.
//!
//! Like connections, sessions end by wish: [`Engine::close`] marks a session and records the
//! reason; the loop ends it (its sockets disconnect, its transport closes) after dispatch.

mod handshake;
mod heartbeat;
mod polling;
mod websocket;

pub use handshake::Endpoint;
pub use heartbeat::Beat;

use super::io::Io;
use crate::engineio::wire::{EncodeCounter, Outbound};
use crate::engineio::IdKey;
use crate::metrics::Metrics;
use bytes::Bytes;
use slab::Slab;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Polling,
    /// The connection key of the WebSocket.
    WebSocket(usize),
}

/// Why a session ends; logged, and decides what a held poll is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    ClientClose,
    TransportClose,
    PingTimeout,
    ConnectTimeout,
    ProtocolError,
    PayloadTooLarge,
    SlowClient,
    PollOverlap,
    Shutdown,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::ClientClose => "client close",
            CloseReason::TransportClose => "transport close",
            CloseReason::PingTimeout => "ping timeout",
            CloseReason::ConnectTimeout => "connect timeout",
            CloseReason::ProtocolError => "protocol error",
            CloseReason::PayloadTooLarge => "payload too large",
            CloseReason::SlowClient => "slow client",
            CloseReason::PollOverlap => "overlapping polls",
            CloseReason::Shutdown => "server shutdown",
        }
    }

    /// A lost transport (not a deliberate close): its sockets may be recovered.
    pub fn recoverable(self) -> bool {
        matches!(
            self,
            CloseReason::TransportClose
                | CloseReason::PingTimeout
                | CloseReason::SlowClient
                | CloseReason::Shutdown
        )
    }
}

/// A credential sent with the handshake request, used when a CONNECT has no `auth.token`.
#[derive(Debug)]
pub enum Credential {
    /// `Authorization: Bearer`.
    Bearer(String),
    /// A NextAuth / Auth.js session cookie (its base name is the key-derivation salt). Kept
    /// only when the handshake came without `Origin` or from an origin we trust with
    /// credentials: cookies are ambient, so a foreign page must not ride on them.
    Cookie { name: &'static str, value: String },
}

/// A binary Socket.IO packet waiting for its attachments.
#[derive(Debug)]
pub struct PartialBinary {
    pub socket: usize,
    pub ack: bool,
    pub id: Option<u64>,
    pub data: serde_json::Value,
    pub expected: usize,
    pub attachments: Vec<Bytes>,
}

/// One Engine.IO session.
#[derive(Debug)]
pub struct Session {
    /// Inline (no heap allocation); it names the session's slot (`engineio::slot_id`).
    sid: IdKey,
    /// Unique for the process lifetime; timers carry it so a reused slab slot is not confused.
    uid: u64,
    endpoint: Endpoint,
    transport: Transport,
    /// The held long-poll GET: its connection, origin and keep-alive.
    poll: Option<Box<HeldPoll>>,
    /// Messages for the next GET; allocated only once a polling session has one (a
    /// WebSocket session never does): 8 bytes in every session instead of 40.
    queue: Option<Box<Queue>>,
    /// A WebSocket that is probing an upgrade (`flags.probed`: `2probe` was answered).
    upgrade_conn: Option<usize>,
    heartbeat: Heartbeat,
    /// Socket.IO sockets on this session: (namespace index, socket key).
    sockets: SessionSockets,
    partial: Option<Box<PartialBinary>>,
    /// What the handshake request carried to authenticate with, if anything.
    credential: Option<Box<Credential>>,
    flags: Flags,
}

#[derive(Debug)]
struct HeldPoll {
    conn: usize,
    origin: Option<String>,
    keep_alive: bool,
}

/// A session's place in the heartbeat lists ([`heartbeat::Heartbeats`]): the generation
/// its armed entries carry, and whether a ping waits for its pong.
#[derive(Debug)]
struct Heartbeat {
    gen: u32,
    awaiting_pong: bool,
    /// The next ping's scheduled time plus pingTimeout (ms of the lists' clock): without a
    /// pong by then the session is gone, whenever the deadline entry is looked at.
    deadline_ms: u64,
}

/// A session's sockets, (namespace index, socket key) pairs. Most sessions connect one
/// namespace, kept inline: 24 bytes and no heap chunk, where a one-entry `Vec` is 24 and 32.
#[derive(Debug, Default, Clone)]
enum SessionSockets {
    #[default]
    None,
    One((usize, usize)),
    Many(Vec<(usize, usize)>),
}

impl SessionSockets {
    fn as_slice(&self) -> &[(usize, usize)] {
        match self {
            SessionSockets::None => &[],
            SessionSockets::One(pair) => std::slice::from_ref(pair),
            SessionSockets::Many(v) => v,
        }
    }

    fn push(&mut self, pair: (usize, usize)) {
        *self = match std::mem::take(self) {
            SessionSockets::None => SessionSockets::One(pair),
            SessionSockets::One(first) => SessionSockets::Many(vec![first, pair]),
            SessionSockets::Many(mut v) => {
                v.push(pair);
                SessionSockets::Many(v)
            }
        };
    }

    fn remove(&mut self, sock: usize) {
        match self {
            SessionSockets::One((_, k)) if *k == sock => *self = SessionSockets::None,
            SessionSockets::Many(v) => {
                v.retain(|&(_, k)| k != sock);
                if let [one] = v[..] {
                    *self = SessionSockets::One(one);
                }
            }
            _ => {}
        }
    }
}

/// Messages waiting for the next GET (polling transport only), and their payload bytes.
#[derive(Debug, Default)]
struct Queue {
    msgs: VecDeque<Rc<Outbound>>,
    bytes: usize,
}

impl Session {
    fn queue_is_empty(&self) -> bool {
        self.queue.as_ref().is_none_or(|q| q.msgs.is_empty())
    }

    fn queued_bytes(&self) -> usize {
        self.queue.as_ref().map_or(0, |q| q.bytes)
    }

    fn queue_mut(&mut self) -> &mut Queue {
        self.queue.get_or_insert_with(Box::default)
    }

    /// Empties the queue, giving its allocation back.
    fn take_queue(&mut self) -> VecDeque<Rc<Outbound>> {
        self.queue.take().map(|q| q.msgs).unwrap_or_default()
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Flags {
    /// The probing WebSocket's `2probe` was answered.
    probed: bool,
    /// Shutting down: close once the queue has been delivered.
    draining: bool,
    /// On the list of polling sessions to answer at the end of this loop turn.
    poll_dirty: bool,
    /// Marked for closing; the loop ends it after dispatch.
    closing: bool,
}

/// Sessions by key; a sid names its key (`engineio::slot_id`), so no table by sid is kept.
#[derive(Debug)]
pub struct Engine {
    sessions: Slab<Session>,
    encodes: EncodeCounter,
    /// Polling sessions (key, uid) whose held GET should be answered at the end of the turn.
    dirty_polls: Vec<(usize, u64)>,
    /// Close wishes since the loop last reaped.
    closing: Vec<(usize, CloseReason)>,
    /// The heartbeat `2`, shared by every session: its frame is encoded once per process.
    ping: Rc<Outbound>,
    /// Every session's next ping and pong deadline, in two FIFO lists.
    beats: heartbeat::Heartbeats,
}

impl Engine {
    /// Sessions pinged every `interval`, each pong due `timeout` after its ping, and a
    /// namespace connected within `connect_timeout` of the open.
    pub fn new(interval: Duration, timeout: Duration, connect_timeout: Duration) -> Self {
        Engine {
            sessions: Slab::default(),
            encodes: EncodeCounter::default(),
            dirty_polls: Vec::new(),
            closing: Vec::new(),
            ping: Rc::new(Outbound::text(Bytes::from_static(b"2"))),
            beats: heartbeat::Heartbeats::new(interval, timeout, connect_timeout),
        }
    }
}

/// What `send` needs from below: the connections and the outbound limit.
pub struct Sink<'a> {
    pub io: &'a mut Io,
    pub metrics: &'a mut Metrics,
    pub limit: usize,
}

impl Engine {
    /// A live session (not closing).
    fn live(&self, s: usize) -> Option<&Session> {
        self.sessions.get(s).filter(|x| !x.flags.closing)
    }

    fn live_mut(&mut self, s: usize) -> Option<&mut Session> {
        self.sessions.get_mut(s).filter(|x| !x.flags.closing)
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Every session key.
    pub fn keys(&self) -> Vec<usize> {
        self.sessions.iter().map(|(k, _)| k).collect()
    }

    pub fn alive(&self, s: usize, uid: u64) -> bool {
        self.live(s).is_some_and(|x| x.uid == uid)
    }

    pub fn sid(&self, s: usize) -> &str {
        self.sessions.get(s).map_or("?", |x| x.sid.as_str())
    }

    pub fn credential(&self, s: usize) -> Option<&Credential> {
        self.live(s).and_then(|x| x.credential.as_deref())
    }

    /// (WebSocket sessions, polling sessions).
    pub fn transport_counts(&self) -> (u64, u64) {
        let ws = self
            .sessions
            .iter()
            .filter(|(_, s)| matches!(s.transport, Transport::WebSocket(_)))
            .count() as u64;
        (ws, self.sessions.len() as u64 - ws)
    }

    /// The session's transport as Engine.IO names it.
    pub fn transport_name(&self, s: usize) -> &'static str {
        match self.sessions.get(s).map(|x| x.transport) {
            Some(Transport::WebSocket(_)) => "websocket",
            _ => "polling",
        }
    }

    pub fn encodes(&self) -> u64 {
        self.encodes.get()
    }

    /// The socket of session `s` in namespace `ns`.
    pub fn socket_in(&self, s: usize, ns: usize) -> Option<usize> {
        self.live(s)?
            .sockets
            .as_slice()
            .iter()
            .find(|&&(n, _)| n == ns)
            .map(|&(_, sock)| sock)
    }

    /// Sockets of the session, (namespace, socket) pairs.
    pub fn sockets_of(&self, s: usize) -> Vec<(usize, usize)> {
        self.sessions
            .get(s)
            .map(|x| x.sockets.as_slice().to_vec())
            .unwrap_or_default()
    }

    pub fn add_socket(&mut self, s: usize, ns: usize, sock: usize) {
        if let Some(x) = self.live_mut(s) {
            x.sockets.push((ns, sock));
        }
    }

    /// Forgets a socket (and a binary packet it was receiving).
    pub fn remove_socket(&mut self, s: usize, sock: usize) {
        if let Some(x) = self.sessions.get_mut(s) {
            x.sockets.remove(sock);
            if x.partial.as_ref().is_some_and(|p| p.socket == sock) {
                x.partial = None;
            }
        }
    }

    /// The binary packet waiting for attachments.
    pub fn partial_mut(&mut self, s: usize) -> Option<&mut Option<Box<PartialBinary>>> {
        self.live_mut(s).map(|x| &mut x.partial)
    }

    /// Records that session `s` must end, and why; the loop ends it after dispatch.
    pub fn close(&mut self, s: usize, reason: CloseReason) {
        if let Some(x) = self.sessions.get_mut(s) {
            if !x.flags.closing {
                x.flags.closing = true;
                self.closing.push((s, reason));
            }
        }
    }

    pub fn has_closing(&self) -> bool {
        !self.closing.is_empty()
    }

    pub fn take_closing(&mut self) -> Vec<(usize, CloseReason)> {
        std::mem::take(&mut self.closing)
    }

    /// Bytes waiting to go to a session's client.
    pub fn backlog(&self, s: usize, io: &Io) -> usize {
        let Some(session) = self.sessions.get(s) else {
            return 0;
        };
        match session.transport {
            Transport::WebSocket(c) => io.get(c).map_or(0, |c| c.out.len()),
            Transport::Polling => session.queued_bytes(),
        }
    }

    /// Queues a message for a session on its current transport. A polling session over the
    /// outbound limit is marked closing (slow client). Returns `false` when nothing was
    /// queued (the session is gone, closing, or just went over the limit).
    pub fn send(&mut self, s: usize, msg: &Rc<Outbound>, out: &mut Sink<'_>) -> bool {
        let Some(session) = self.sessions.get_mut(s).filter(|x| !x.flags.closing) else {
            return false;
        };
        let queued = match session.transport {
            Transport::WebSocket(c) => {
                let b = msg.ws(&self.encodes);
                out.io.queue(c, b, out.limit, out.metrics)
            }
            Transport::Polling => {
                let queue = session.queue_mut();
                queue.bytes += msg.payload_len();
                let bytes = queue.bytes;
                if bytes > out.limit {
                    out.metrics.slow_client_disconnects += 1;
                    log::warn!(
                        "closing slow polling client {}: {} bytes queued",
                        session.sid,
                        bytes
                    );
                    self.close(s, CloseReason::SlowClient);
                    return false;
                }
                session.queue_mut().msgs.push_back(Rc::clone(msg));
                if session.poll.is_some() {
                    self.mark_poll_dirty(s);
                }
                true
            }
        };
        if queued {
            out.metrics.packets_out += msg.packets() as u64;
        }
        queued
    }

    fn mark_poll_dirty(&mut self, s: usize) {
        let session = &mut self.sessions[s];
        if !session.flags.poll_dirty {
            session.flags.poll_dirty = true;
            self.dirty_polls.push((s, session.uid));
        }
    }

    /// Polling sessions with a held GET and something to answer it with.
    pub fn take_dirty_polls(&mut self) -> Vec<usize> {
        let polls = std::mem::take(&mut self.dirty_polls);
        let mut out = Vec::with_capacity(polls.len());
        for (s, uid) in polls {
            if let Some(x) = self.sessions.get_mut(s).filter(|x| x.uid == uid) {
                x.flags.poll_dirty = false;
                out.push(s);
            }
        }
        out
    }

    pub fn polls_owed(&self) -> bool {
        !self.dirty_polls.is_empty()
    }

    /// The shared heartbeat ping message.
    pub fn ping(&self) -> Rc<Outbound> {
        Rc::clone(&self.ping)
    }

    /// Heartbeat: arms the first ping of a session opened at `opened`.
    fn start_heartbeat(&mut self, s: usize, opened: Instant) {
        let gen = self.beats.gen();
        if let Some(x) = self.sessions.get_mut(s) {
            x.heartbeat.gen = gen;
            x.heartbeat.deadline_ms = self.beats.arm_ping(s, gen, opened);
        }
    }

    /// Arms the connect timeout of a Socket.IO session opened at `opened`.
    fn start_connect_timeout(&mut self, s: usize, opened: Instant) {
        if let Some(x) = self.sessions.get(s) {
            self.beats.arm_connect(s, x.uid as u32, opened);
        }
    }

    /// Heartbeat: the earliest ping or pong deadline armed.
    pub fn next_beat(&self) -> Option<Instant> {
        self.beats.next()
    }

    /// Heartbeat: one ping or missed pong due at `now` for a live session, in deadline
    /// order. A ping returned is now awaiting its pong (its deadline is armed).
    pub fn pop_beat(&mut self, now: Instant) -> Option<Beat> {
        let sessions = &self.sessions;
        let beat = self.beats.pop_due(now, |beat| match beat {
            Beat::Ping { session, gen } | Beat::PongDeadline { session, gen } => sessions
                .get(session)
                .is_some_and(|x| !x.flags.closing && x.heartbeat.gen == gen),
            Beat::ConnectTimeout { session, gen } => sessions.get(session).is_some_and(|x| {
                !x.flags.closing && x.uid as u32 == gen && x.sockets.as_slice().is_empty()
            }),
        })?;
        if let Beat::Ping { session, .. } = beat {
            self.sessions[session].heartbeat.awaiting_pong = true;
        }
        Some(beat)
    }

    /// Heartbeat: a pong arrived. The next ping is armed one interval from now; a pong
    /// nobody asked for is ignored (`false`).
    pub fn pong(&mut self, s: usize) -> bool {
        let gen = self.beats.gen();
        let Some(session) = self.sessions.get_mut(s).filter(|x| !x.flags.closing) else {
            return false;
        };
        let hb = &mut session.heartbeat;
        if !hb.awaiting_pong {
            return false;
        }
        hb.awaiting_pong = false;
        hb.gen = gen;
        hb.deadline_ms = self.beats.arm_ping(s, gen, Instant::now());
        true
    }

    /// Heartbeat: whether session `s` is past its pong deadline at `now` (its deadline entry
    /// may not have been looked at yet).
    pub fn pong_overdue(&self, s: usize, now: Instant) -> bool {
        self.sessions
            .get(s)
            .is_some_and(|x| self.beats.passed(x.heartbeat.deadline_ms, now))
    }
}
