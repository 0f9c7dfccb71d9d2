//! Engine.IO sessions: handshake, long-polling (held GETs, POSTed payloads), WebSocket
//! transport and the polling-to-WebSocket upgrade, heartbeats, and session close.

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
        let origin = req.origin.clone();
        let origin = origin.as_deref();
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

    fn handshake(&mut self, key: usize, req: &Req, endpoint: Endpoint, is_ws: bool) {
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
        let now = opened;
        self.timers.at(
            now + self.config.ping_interval,
            Timer::Ping {
                session: s,
                uid,
                gen: 0,
            },
        );
        if endpoint == Endpoint::SocketIo {
            self.timers.at(
                now + self.config.connect_timeout,
                Timer::ConnectTimeout { session: s, uid },
            );
        }
    }

    /// Answers the WebSocket upgrade handshake; `false` (after an error response) if invalid.
    fn ws_handshake(&mut self, key: usize, req: &Req) -> bool {
        // RFC 6455 4.2.1: version 13 and a key that is the base64 of a 16-byte nonce.
        let key_ok = |k: &&str| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(k)
                .is_ok_and(|n| n.len() == 16)
        };
        let Some(ws_key) = req
            .ws_key
            .as_deref()
            .filter(key_ok)
            .filter(|_| req.ws_version.as_deref() == Some("13"))
        else {
            self.respond_eio_error(key, req.origin.as_deref(), EioError::BadRequest, false);
            return false;
        };
        let accept = ws::accept_key(ws_key.as_bytes());
        let head = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n");
        self.queue(key, Bytes::from(head))
    }

    /// A WebSocket naming an existing polling session: the start of an upgrade.
    fn upgrade_request(&mut self, key: usize, req: &Req, s: usize) {
        if !self.ws_handshake(key, req) {
            return;
        }
        let session = &mut self.sessions[s];
        let refuse = session.transport != Transport::Polling || session.upgrade_conn.is_some();
        if !refuse {
            session.upgrade_conn = Some(key);
        }
        if let Some(conn) = self.conns.get_mut(key) {
            conn.kind = ConnKind::WebSocket {
                session: s,
                fragment: None,
            };
        }
        if refuse {
            // The reference completes the handshake, then closes: one transport per session.
            log::debug!(
                "refusing a second websocket for session {}",
                self.sessions[s].sid
            );
            self.close_ws(key, 1008);
        }
    }

    /// Queues a close frame and closes the connection once it is written.
    pub(crate) fn close_ws(&mut self, key: usize, code: u16) {
        if self.queue(key, Bytes::from(frame::close_frame(code))) {
            if let Some(c) = self.conns.get_mut(key) {
                c.close_after_flush = true;
            }
        }
    }

    fn poll_get(&mut self, key: usize, req: &Req, s: usize) {
        let session = &mut self.sessions[s];
        if session.poll_conn.is_some_and(|c| c != key) {
            log::warn!(
                "second concurrent poll on session {}; closing it",
                session.sid
            );
            self.metrics.protocol_errors += 1;
            self.respond_eio_error(
                key,
                req.origin.as_deref(),
                EioError::BadRequest,
                req.keep_alive,
            );
            self.close_session(s, CloseReason::PollOverlap);
            return;
        }
        session.poll_conn = Some(key);
        session.poll_origin = req.origin.clone();
        session.poll_keep_alive = req.keep_alive;
        let ready = !session.queue.is_empty() || session.probed;
        if let Some(conn) = self.conns.get_mut(key) {
            conn.kind = ConnKind::Http {
                pending_poll: Some(s),
            };
        }
        if ready {
            self.flush_poll(s);
        }
    }

    fn poll_post(&mut self, key: usize, req: &Req, s: usize) {
        let uid = self.sessions[s].uid;
        for record in payload::split(&req.body) {
            self.metrics.packets_in += 1;
            match packet::parse_polling_record(record) {
                Ok(p) => self.on_eio_packet(s, p, None),
                Err(e) => {
                    self.metrics.protocol_errors += 1;
                    log::warn!(
                        "invalid Engine.IO packet on session {}: {e}",
                        self.sessions[s].sid
                    );
                    self.respond_eio_error(
                        key,
                        req.origin.as_deref(),
                        EioError::BadRequest,
                        req.keep_alive,
                    );
                    self.close_session(s, CloseReason::ProtocolError);
                    return;
                }
            }
            if !self.session_alive(s, uid) {
                break;
            }
        }
        let resp = self
            .cors(req.origin.as_deref(), Response::new(200))
            .body("text/html", "ok");
        self.respond(key, resp, req.keep_alive);
    }

    fn session_alive(&self, s: usize, uid: u64) -> bool {
        self.sessions.get(s).is_some_and(|x| x.uid == uid)
    }

    /// One Engine.IO packet from a client, over either transport.
    fn on_eio_packet(&mut self, s: usize, p: Packet<'_>, ws_conn: Option<usize>) {
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

    /// Parses WebSocket frames from `input`; returns the bytes consumed.
    pub(crate) fn on_ws_input(&mut self, key: usize, input: &[u8]) -> usize {
        let mut consumed = 0;
        while consumed < input.len() {
            let max = self.config.max_payload;
            match frame::parse(&input[consumed..], max) {
                Ok(None) => break,
                Ok(Some((f, used))) => {
                    consumed += used;
                    self.on_ws_frame(key, f);
                }
                Err(e) => {
                    self.metrics.protocol_errors += 1;
                    log::warn!("websocket protocol error on connection {key}: {e}");
                    self.close_ws(key, e.close_code());
                    return input.len();
                }
            }
            match self.conns.get(key) {
                Some(c) if !c.close_after_flush => {}
                _ => return input.len(),
            }
        }
        consumed
    }

    fn on_ws_frame(&mut self, key: usize, f: frame::Frame) {
        use frame::Opcode;
        let max = self.config.max_payload;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let ConnKind::WebSocket { fragment, .. } = &mut conn.kind else {
            return;
        };
        match f.opcode {
            Opcode::Ping => {
                let mut out = Vec::new();
                frame::encode(Opcode::Pong, &f.payload, &mut out);
                self.queue(key, Bytes::from(out));
            }
            Opcode::Pong => {}
            Opcode::Close => {
                let code = if frame::valid_close_payload(&f.payload) {
                    1000
                } else {
                    1002
                };
                if code != 1000 {
                    self.metrics.protocol_errors += 1;
                }
                self.close_ws(key, code)
            }
            Opcode::Text | Opcode::Binary if fragment.is_some() => {
                self.metrics.protocol_errors += 1;
                self.close_ws(key, 1002);
            }
            Opcode::Text | Opcode::Binary if !f.fin => *fragment = Some((f.opcode, f.payload)),
            Opcode::Text | Opcode::Binary => self.on_ws_message(key, f.opcode, f.payload),
            Opcode::Continuation => {
                let Some((_, buf)) = fragment else {
                    self.metrics.protocol_errors += 1;
                    return self.close_ws(key, 1002);
                };
                if buf.len() + f.payload.len() > max {
                    self.metrics.protocol_errors += 1;
                    return self.close_ws(key, 1009);
                }
                buf.extend_from_slice(&f.payload);
                if f.fin {
                    let (op, data) = fragment.take().expect("checked above");
                    self.on_ws_message(key, op, data);
                }
            }
        }
    }

    fn on_ws_message(&mut self, key: usize, opcode: frame::Opcode, data: Vec<u8>) {
        let Some(ConnKind::WebSocket { session: s, .. }) = self.conns.get(key).map(|c| &c.kind)
        else {
            return;
        };
        let s = *s;
        let Some(session) = self.sessions.get(s) else {
            return;
        };
        self.metrics.packets_in += 1;
        let probing = session.upgrade_conn == Some(key);
        if opcode == frame::Opcode::Text && std::str::from_utf8(&data).is_err() {
            self.metrics.protocol_errors += 1;
            log::warn!("text frame with invalid UTF-8 on connection {key}");
            return self.close_ws(key, 1007);
        }
        if opcode == frame::Opcode::Binary {
            if probing {
                return self.close_ws(key, 1002);
            }
            return self.on_eio_packet(s, Packet::Binary(data), Some(key));
        }
        let p = match packet::parse_text(&data) {
            Ok(p) => p,
            Err(e) => {
                self.metrics.protocol_errors += 1;
                log::warn!("invalid Engine.IO packet on session {}: {e}", session.sid);
                if probing {
                    return self.close_ws(key, 1002);
                }
                return self.close_session(s, CloseReason::ProtocolError);
            }
        };
        if probing {
            match p {
                Packet::Ping(b"probe") => {
                    self.sessions[s].probed = true;
                    let mut out = Vec::new();
                    frame::encode(frame::Opcode::Text, b"3probe", &mut out);
                    self.queue(key, Bytes::from(out));
                    // Release a held GET so the client can pause polling.
                    if self.sessions[s].poll_conn.is_some() {
                        self.mark_poll_dirty(s);
                    }
                }
                Packet::Upgrade if self.sessions[s].probed => self.complete_upgrade(s, key),
                _ => {
                    log::debug!("failed upgrade on session {}", self.sessions[s].sid);
                    self.sessions[s].upgrade_conn = None;
                    self.sessions[s].probed = false;
                    self.close_ws(key, 1002);
                }
            }
            return;
        }
        self.on_eio_packet(s, p, Some(key));
    }

    fn complete_upgrade(&mut self, s: usize, key: usize) {
        let session = &mut self.sessions[s];
        session.transport = Transport::WebSocket(key);
        session.upgrade_conn = None;
        session.probed = false;
        log::debug!("session {} upgraded to websocket", session.sid);
        if let Some(c) = session.poll_conn {
            self.answer_poll(s, c, Bytes::from_static(b"6"));
        }
        let queued: Vec<Rc<Outbound>> = self.sessions[s].queue.drain(..).collect();
        self.sessions[s].queued_bytes = 0;
        for m in queued {
            let b = m.ws(&self.encodes);
            if !self.queue(key, b) {
                break;
            }
        }
    }

    /// Bytes waiting to go to a session's client.
    pub(crate) fn backlog(&self, s: usize) -> usize {
        match self.sessions.get(s).map(|x| x.transport) {
            Some(Transport::WebSocket(c)) => self.conns.get(c).map_or(0, |c| c.out.len()),
            Some(Transport::Polling) => self.sessions[s].queued_bytes,
            None => 0,
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

    fn mark_poll_dirty(&mut self, s: usize) {
        let session = &mut self.sessions[s];
        if !session.poll_dirty {
            session.poll_dirty = true;
            self.dirty_polls.push((s, session.uid));
        }
    }

    /// Answers held GETs whose sessions got messages this loop turn.
    pub(crate) fn flush_polls(&mut self) {
        let polls = std::mem::take(&mut self.dirty_polls);
        for (s, uid) in polls {
            if self.session_alive(s, uid) {
                self.sessions[s].poll_dirty = false;
                self.flush_poll(s);
            }
        }
    }

    /// Answers the held GET with everything queued (or a noop while an upgrade is probing).
    fn flush_poll(&mut self, s: usize) {
        let session = &mut self.sessions[s];
        let Some(c) = session.poll_conn else { return };
        if session.queue.is_empty() {
            if session.probed {
                self.answer_poll(s, c, Bytes::from_static(b"6"));
            }
            return;
        }
        let items: Vec<Rc<Outbound>> = session.queue.drain(..).collect();
        session.queued_bytes = 0;
        let bodies: Vec<Bytes> = items.iter().map(|m| m.polling(&self.encodes)).collect();
        let len = bodies.iter().map(Bytes::len).sum::<usize>() + bodies.len() - 1;
        self.answer_poll_parts(s, c, bodies, len);
        if self
            .sessions
            .get(s)
            .is_some_and(|x| x.draining && x.queue.is_empty())
        {
            self.close_session(s, CloseReason::Shutdown);
        }
    }

    fn answer_poll(&mut self, s: usize, c: usize, body: Bytes) {
        let len = body.len();
        self.answer_poll_parts(s, c, vec![body], len);
    }

    /// Writes the held GET's response: one head, then the shared bodies joined by `\x1e`.
    fn answer_poll_parts(&mut self, s: usize, c: usize, bodies: Vec<Bytes>, len: usize) {
        let session = &mut self.sessions[s];
        session.poll_conn = None;
        let origin = session.poll_origin.take();
        let keep_alive = session.poll_keep_alive && !self.shutting_down;
        if let Some(conn) = self.conns.get_mut(c) {
            conn.kind = ConnKind::Http { pending_poll: None };
        }
        let head = self
            .cors(origin.as_deref(), Response::new(200))
            .finish_head("text/plain; charset=UTF-8", len, !keep_alive);
        if !self.queue(c, head) {
            return;
        }
        for (i, b) in bodies.into_iter().enumerate() {
            if i > 0 {
                self.queue(c, Bytes::from_static(&[payload::SEPARATOR]));
            }
            self.queue(c, b);
        }
        if !keep_alive {
            if let Some(conn) = self.conns.get_mut(c) {
                conn.close_after_flush = true;
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

    fn on_pong(&mut self, s: usize) {
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

    /// A WebSocket connection went away.
    pub(crate) fn on_ws_closed(&mut self, s: usize, key: usize, reason: &str) {
        let Some(session) = self.sessions.get_mut(s) else {
            return;
        };
        if session.upgrade_conn == Some(key) {
            session.upgrade_conn = None;
            session.probed = false;
        } else if session.transport == Transport::WebSocket(key) {
            log::debug!("websocket of session {} closed: {reason}", session.sid);
            self.close_session(s, CloseReason::TransportClose);
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
