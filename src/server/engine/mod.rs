//! Engine.IO sessions: handshake, long-polling (held GETs, POSTed payloads), WebSocket
//! transport and the polling-to-WebSocket upgrade, heartbeats, and session close.

mod polling;
mod websocket;

use super::conn::ConnKind;
use super::http::Req;
use super::Server;
use crate::engineio::packet::{self, Packet};
use crate::engineio::payload;
use crate::engineio::wire::Outbound;
use crate::engineio::{new_id, EioError};
use crate::http::response::Response;
use crate::timer::Timer;
use crate::ws::{self, frame};
use bytes::Bytes;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Instant;

/// What an Engine.IO session carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// Socket.IO packets (the normal path).
    SocketIo,
    /// Every message echoed back as is (the conformance profile's `/engine.io/`).
    Echo,
}

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
}

/// A binary Socket.IO packet waiting for its attachments.
#[derive(Debug)]
pub struct PartialBinary {
    pub socket: usize,
    pub kind: crate::socketio::PacketType,
    pub id: Option<u64>,
    pub data: serde_json::Value,
    pub expected: usize,
    pub attachments: Vec<Bytes>,
}

/// One Engine.IO session.
#[derive(Debug)]
pub struct Session {
    pub sid: String,
    /// Unique for the process lifetime; timers carry it so a reused slab slot is not confused.
    pub uid: u64,
    pub endpoint: Endpoint,
    pub transport: Transport,
    /// The connection holding this session's long-poll GET.
    pub poll_conn: Option<usize>,
    /// Origin and keep-alive of that GET, for its response headers.
    poll_origin: Option<String>,
    poll_keep_alive: bool,
    /// Messages waiting for the next GET (polling transport only).
    pub queue: VecDeque<Rc<Outbound>>,
    pub queued_bytes: usize,
    /// A WebSocket that is probing an upgrade, and whether `2probe` was answered.
    pub upgrade_conn: Option<usize>,
    pub probed: bool,
    timer_gen: u64,
    awaiting_pong: bool,
    /// The next ping's scheduled time plus pingTimeout: without a pong by then the session is
    /// gone. Derived from scheduled times, not from when a timer happened to fire, so the
    /// deadline is exact to the millisecond.
    deadline: Instant,
    /// Socket.IO sockets on this session: (namespace index, socket key).
    pub sockets: Vec<(usize, usize)>,
    pub partial: Option<PartialBinary>,
    /// Token from `Authorization: Bearer` on the handshake request.
    pub bearer: Option<String>,
    /// Shutting down: close once the queue has been delivered.
    draining: bool,
    /// On the list of polling sessions to answer at the end of this loop turn.
    poll_dirty: bool,
}

impl Server {
    /// Handles a request on the Engine.IO path (checks in the reference server's order).
    pub(crate) fn on_engine_request(&mut self, key: usize, req: Req, endpoint: Endpoint) {
        let origin = req.origin.as_deref();
        let is_ws = match req.transport.as_deref() {
            Some("polling") => false,
            Some("websocket") => true,
            _ => {
                return self.respond_eio_error(
                    key,
                    origin,
                    EioError::UnknownTransport,
                    req.keep_alive,
                )
            }
        };
        if let Some(sid) = req.sid.as_deref() {
            let Some(s) = self
                .lookup_session(sid)
                .filter(|&s| self.sessions[s].endpoint == endpoint)
            else {
                return self.respond_eio_error(key, origin, EioError::UnknownSid, req.keep_alive);
            };
            if is_ws {
                if !req.upgrade_websocket {
                    return self.respond_eio_error(
                        key,
                        origin,
                        EioError::BadRequest,
                        req.keep_alive,
                    );
                }
                return self.upgrade_request(key, &req, s);
            }
            if self.sessions[s].transport != Transport::Polling {
                // The session was upgraded: polling requests for it are refused.
                return self.respond_eio_error(key, origin, EioError::BadRequest, req.keep_alive);
            }
            return match req.method.as_str() {
                "GET" => self.poll_get(key, &req, s),
                "POST" => self.poll_post(key, &req, s),
                _ => self.respond_eio_error(key, origin, EioError::BadRequest, req.keep_alive),
            };
        }
        if req.method != "GET" {
            return self.respond_eio_error(
                key,
                origin,
                EioError::BadHandshakeMethod,
                req.keep_alive,
            );
        }
        if is_ws && !req.upgrade_websocket {
            return self.respond_eio_error(key, origin, EioError::BadRequest, req.keep_alive);
        }
        if req.eio.as_deref() != Some("4") {
            return self.respond_eio_error(
                key,
                origin,
                EioError::UnsupportedProtocolVersion,
                req.keep_alive,
            );
        }
        if self.shutting_down {
            return self.respond_eio_error(key, origin, EioError::Forbidden, false);
        }
        self.handshake(key, &req, endpoint, is_ws);
    }

    /// Finds a live session; one whose pong is overdue is closed here, to the millisecond,
    /// even if its timer has not fired yet.
    pub(crate) fn lookup_session(&mut self, sid: &str) -> Option<usize> {
        let s = *self.sids.get(sid)?;
        let session = &self.sessions[s];
        if Instant::now() >= session.deadline {
            self.metrics.ping_timeouts += 1;
            self.close_session(s, CloseReason::PingTimeout);
            return None;
        }
        Some(s)
    }

    pub(super) fn handshake(&mut self, key: usize, req: &Req, endpoint: Endpoint, is_ws: bool) {
        if is_ws && !self.ws_handshake(key, req) {
            return;
        }
        let opened = Instant::now();
        let sid = new_id();
        let uid = self.next_uid();
        let session = Session {
            sid: sid.clone(),
            uid,
            endpoint,
            transport: if is_ws {
                Transport::WebSocket(key)
            } else {
                Transport::Polling
            },
            poll_conn: None,
            poll_origin: None,
            poll_keep_alive: true,
            queue: VecDeque::new(),
            queued_bytes: 0,
            upgrade_conn: None,
            probed: false,
            timer_gen: 0,
            awaiting_pong: false,
            deadline: opened + self.config.ping_interval + self.config.ping_timeout,
            sockets: Vec::new(),
            partial: None,
            bearer: req.bearer.clone(),
            draining: false,
            poll_dirty: false,
        };
        let s = self.sessions.insert(session);
        self.sids.insert(sid.clone(), s);
        self.metrics.sessions_opened += 1;
        let cfg = &self.config;
        let open = packet::open_packet(
            &sid,
            !is_ws,
            cfg.ping_interval.as_millis() as u64,
            cfg.ping_timeout.as_millis() as u64,
            cfg.max_payload,
        );
        log::debug!(
            "session {sid} opened over {}",
            if is_ws { "websocket" } else { "polling" }
        );
        if is_ws {
            if let Some(conn) = self.conns.get_mut(key) {
                conn.kind = ConnKind::WebSocket {
                    session: s,
                    fragment: None,
                };
            }
            self.send(s, &Rc::new(Outbound::text(open)));
        } else {
            let resp = self
                .cors(req.origin.as_deref(), Response::new(200))
                .body("text/plain; charset=UTF-8", open);
            self.respond(key, resp, req.keep_alive);
        }
        self.timers.at(
            opened + self.config.ping_interval,
            Timer::Ping {
                session: s,
                uid,
                gen: 0,
            },
        );
        if endpoint == Endpoint::SocketIo {
            self.timers.at(
                opened + self.config.connect_timeout,
                Timer::ConnectTimeout { session: s, uid },
            );
        }
    }

    pub(super) fn session_alive(&self, s: usize, uid: u64) -> bool {
        self.sessions.get(s).is_some_and(|x| x.uid == uid)
    }

    /// One Engine.IO packet from a client, over either transport.
    pub(super) fn on_eio_packet(&mut self, s: usize, p: Packet<'_>, ws_conn: Option<usize>) {
        let endpoint = self.sessions[s].endpoint;
        match p {
            Packet::Close => self.close_session(s, CloseReason::ClientClose),
            Packet::Pong(_) => self.on_pong(s),
            Packet::Noop => {}
            Packet::Message(data) => match endpoint {
                Endpoint::SocketIo => self.on_sio_text(s, data),
                Endpoint::Echo => {
                    let mut text = Vec::with_capacity(data.len() + 1);
                    text.push(b'4');
                    text.extend_from_slice(data);
                    self.send(s, &Rc::new(Outbound::text(text)));
                }
            },
            Packet::Binary(data) => match endpoint {
                Endpoint::SocketIo => self.on_sio_binary(s, Bytes::from(data)),
                Endpoint::Echo => {
                    let msg =
                        Outbound::new(vec![crate::engineio::wire::Part::Binary(Bytes::from(data))]);
                    self.send(s, &Rc::new(msg));
                }
            },
            Packet::Ping(_) | Packet::Open | Packet::Upgrade => {
                self.metrics.protocol_errors += 1;
                log::warn!(
                    "unexpected Engine.IO packet on session {} ({}): closing",
                    self.sessions[s].sid,
                    if ws_conn.is_some() {
                        "websocket"
                    } else {
                        "polling"
                    }
                );
                self.close_session(s, CloseReason::ProtocolError);
            }
        }
    }

    /// Bytes waiting to go to a session's client.
    pub(crate) fn backlog(&self, s: usize) -> usize {
        let Some(session) = self.sessions.get(s) else {
            return 0;
        };
        match session.transport {
            Transport::WebSocket(c) => self.conns.get(c).map_or(0, |c| c.out.len()),
            Transport::Polling => session.queued_bytes,
        }
    }

    /// Queues a message for a session on its current transport.
    ///
    /// Returns `false` if the session is gone or was closed as a slow client.
    pub(crate) fn send(&mut self, s: usize, msg: &Rc<Outbound>) -> bool {
        let Some(session) = self.sessions.get_mut(s) else {
            return false;
        };
        match session.transport {
            Transport::WebSocket(c) => {
                let b = msg.ws(&self.encodes);
                self.queue(c, b)
            }
            Transport::Polling => {
                session.queued_bytes += msg.payload_len();
                if session.queued_bytes > self.config.max_outbound_bytes {
                    self.metrics.slow_client_disconnects += 1;
                    log::warn!(
                        "closing slow polling client {}: {} bytes queued",
                        session.sid,
                        session.queued_bytes
                    );
                    self.close_session(s, CloseReason::SlowClient);
                    return false;
                }
                session.queue.push_back(Rc::clone(msg));
                self.metrics.packets_out += 1;
                if session.poll_conn.is_some() {
                    self.mark_poll_dirty(s);
                }
                true
            }
        }
    }

    pub(crate) fn on_ping_due(&mut self, s: usize, uid: u64, gen: u64) {
        let Some(session) = self
            .sessions
            .get_mut(s)
            .filter(|x| x.uid == uid && x.timer_gen == gen)
        else {
            return;
        };
        let deadline = session.deadline;
        session.awaiting_pong = true;
        self.timers.at(
            deadline,
            Timer::PongDeadline {
                session: s,
                uid,
                gen,
            },
        );
        self.send(s, &Rc::new(Outbound::text(Bytes::from_static(b"2"))));
    }

    pub(super) fn on_pong(&mut self, s: usize) {
        let session = &mut self.sessions[s];
        if !session.awaiting_pong {
            return;
        }
        session.awaiting_pong = false;
        session.timer_gen += 1;
        let due = Instant::now() + self.config.ping_interval;
        session.deadline = due + self.config.ping_timeout;
        let timer = Timer::Ping {
            session: s,
            uid: session.uid,
            gen: session.timer_gen,
        };
        self.timers.at(due, timer);
    }

    pub(crate) fn on_pong_deadline(&mut self, s: usize, uid: u64, gen: u64) {
        let Some(session) = self
            .sessions
            .get(s)
            .filter(|x| x.uid == uid && x.timer_gen == gen)
        else {
            return;
        };
        if session.awaiting_pong {
            self.metrics.ping_timeouts += 1;
            log::debug!("session {} missed its pong", session.sid);
            self.close_session(s, CloseReason::PingTimeout);
        }
    }

    pub(crate) fn on_connect_timeout(&mut self, s: usize, uid: u64) {
        if self
            .sessions
            .get(s)
            .is_some_and(|x| x.uid == uid && x.sockets.is_empty())
        {
            log::debug!(
                "session {} connected no namespace in time",
                self.sessions[s].sid
            );
            self.close_session(s, CloseReason::ConnectTimeout);
        }
    }

    /// Ends a session: its sockets disconnect, a held poll is answered, its WebSocket closes.
    pub(crate) fn close_session(&mut self, s: usize, reason: CloseReason) {
        let Some(session) = self.sessions.try_remove(s) else {
            return;
        };
        self.sids.remove(&session.sid);
        self.metrics.sessions_closed += 1;
        log::debug!("session {} closed: {}", session.sid, reason.as_str());
        let recoverable = matches!(
            reason,
            CloseReason::TransportClose
                | CloseReason::PingTimeout
                | CloseReason::SlowClient
                | CloseReason::Shutdown
        );
        for &(_, sock) in &session.sockets {
            self.remove_socket(sock, reason.as_str(), recoverable);
        }
        if let Some(c) = session.poll_conn {
            // A client's own close releases the poll with a noop; anything else tells it to go.
            let body: &'static [u8] = if reason == CloseReason::ClientClose {
                b"6"
            } else {
                b"1"
            };
            let keep_alive = session.poll_keep_alive && !self.shutting_down;
            if let Some(conn) = self.conns.get_mut(c) {
                conn.kind = ConnKind::Http { pending_poll: None };
            }
            let resp = self
                .cors(session.poll_origin.as_deref(), Response::new(200))
                .body("text/plain; charset=UTF-8", body);
            self.respond(c, resp, keep_alive);
        }
        if let Some(c) = session.upgrade_conn {
            self.close_ws(c, 1000);
        }
        if let Transport::WebSocket(c) = session.transport {
            if reason != CloseReason::TransportClose {
                self.close_ws(c, 1000);
            }
        }
    }

    /// At shutdown: tell every socket of the session it is disconnected, then close.
    pub(crate) fn shutdown_session(&mut self, s: usize) {
        // An earlier session's goodbye may have closed this one (a cascade of slow clients).
        let Some(session) = self.sessions.get(s) else {
            return;
        };
        let sockets = session.sockets.clone();
        for (ns, _) in sockets {
            let name = self.namespaces[ns].name.clone();
            let msg = crate::socketio::message(
                crate::socketio::PacketType::Disconnect,
                &name,
                None,
                None,
                Vec::new(),
            );
            self.send(s, &Rc::new(msg));
        }
        let Some(session) = self.sessions.get_mut(s) else {
            return;
        };
        match session.transport {
            Transport::WebSocket(_) => self.close_session(s, CloseReason::Shutdown),
            Transport::Polling => {
                session.draining = true;
                if session.queue.is_empty() {
                    self.close_session(s, CloseReason::Shutdown);
                } else if session.poll_conn.is_some() {
                    self.flush_poll(s);
                }
            }
        }
    }
}
