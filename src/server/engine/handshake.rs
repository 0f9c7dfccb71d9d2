//! The Engine.IO path: requests checked in the reference server's order, the handshake that
//! opens a session, packets from either transport, heartbeats, and the end of a session.

use super::super::conn::{ConnKind, Phase};
use super::super::http::Req;
use super::super::Server;
use super::{Beat, CloseReason, Flags, Heartbeat, Session, Transport};
use crate::engineio::packet::{self, Packet};
use crate::engineio::wire::{Outbound, Part};
use crate::engineio::{slot_id, EioError, IdKey};
use crate::http::response::Response;
use bytes::Bytes;
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

impl super::Engine {
    /// The session with this sid, if live.
    pub fn by_sid(&self, sid: &str) -> Option<usize> {
        use subtle::ConstantTimeEq as _;
        let s = crate::engineio::slot_of(sid)?;
        let x = self.live(s)?;
        bool::from(x.sid.as_str().as_bytes().ct_eq(sid.as_bytes())).then_some(s)
    }
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
        if (is_ws || req.sid.is_none()) && !self.origin_allowed(&req) {
            self.metrics.origin_refused += 1;
            log::warn!(
                "refusing a {} from origin {:?} (host {:?})",
                if is_ws { "websocket" } else { "handshake" },
                req.origin,
                req.host
            );
            return self.respond_eio_error(key, origin, EioError::Forbidden, false);
        }
        if let Some(sid) = req.sid.as_deref() {
            let Some(s) = self
                .lookup_session(sid)
                .filter(|&s| self.engine.sessions[s].endpoint == endpoint)
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
            if self.engine.sessions[s].transport != Transport::Polling {
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

    /// Browsers connect only from the configured origins or the server's own: a request
    /// without `Origin` (Node, mobile and server clients) is not a browser's and passes.
    pub(crate) fn origin_allowed(&self, req: &Req) -> bool {
        let Some(origin) = req.origin.as_deref() else {
            return true;
        };
        if self.config.cors.allow(origin).is_some() {
            return true;
        }
        same_origin(origin, req.host.as_deref())
    }

    /// The credential a handshake request carries: a bearer token, else a session cookie
    /// when the request's origin may use ambient credentials.
    fn credential_of(&self, req: &Req) -> Option<super::Credential> {
        if let Some(b) = &req.bearer {
            return Some(super::Credential::Bearer(b.clone()));
        }
        let cookie = crate::auth::session_cookie(req.cookie.as_deref()?)?;
        if !self.origin_trusted(req) {
            log::debug!("ignoring a session cookie from origin {:?}", req.origin);
            return None;
        }
        Some(super::Credential::Cookie {
            name: cookie.name,
            value: cookie.value,
        })
    }

    /// Whether the request's origin may use ambient credentials: no `Origin` (not a browser),
    /// the server's own origin, or one listed by name (`*` allows connecting, not cookies).
    fn origin_trusted(&self, req: &Req) -> bool {
        let Some(origin) = req.origin.as_deref() else {
            return true;
        };
        let listed = match &self.config.cors {
            crate::config::Cors::List(list) => list.iter().any(|o| o == origin),
            crate::config::Cors::Any => false,
        };
        listed || same_origin(origin, req.host.as_deref())
    }

    /// Finds a live session; one whose pong is overdue is closed here, to the millisecond,
    /// even if its timer has not fired yet.
    pub(crate) fn lookup_session(&mut self, sid: &str) -> Option<usize> {
        let s = self.engine.by_sid(sid)?;
        if self.engine.pong_overdue(s, Instant::now()) {
            self.metrics.ping_timeouts += 1;
            self.engine.close(s, CloseReason::PingTimeout);
            return None;
        }
        Some(s)
    }

    pub(super) fn handshake(&mut self, key: usize, req: &Req, endpoint: Endpoint, is_ws: bool) {
        if is_ws && !self.ws_handshake(key, req) {
            return;
        }
        let opened = Instant::now();
        // The sid names the slot the session is about to take.
        let slot = self.engine.sessions.vacant_key();
        let sid = slot_id(slot);
        let uid = self.io.next_uid();
        let cfg = &self.config;
        let session = Session {
            sid: IdKey::new(&sid),
            uid,
            endpoint,
            transport: if is_ws {
                Transport::WebSocket(key)
            } else {
                Transport::Polling
            },
            poll: None,
            queue: None,
            upgrade_conn: None,
            heartbeat: Heartbeat {
                gen: 0,
                awaiting_pong: false,
                deadline_ms: u64::MAX,
            },
            sockets: Default::default(),
            partial: None,
            credential: self.credential_of(req).map(Box::new),
            flags: Flags::default(),
        };
        let s = self.engine.sessions.insert(session);
        debug_assert_eq!(s, slot, "the sid names the session's slot");
        self.metrics.sessions_opened += 1;
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
            if let Some(conn) = self.io.get_mut(key) {
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
            self.metrics.packets_out += 1;
            self.respond(key, resp, req.keep_alive);
        }
        self.engine.start_heartbeat(s, opened);
        if endpoint == Endpoint::SocketIo {
            self.engine.start_connect_timeout(s, opened);
        }
    }

    /// One Engine.IO packet from a client, over either transport.
    pub(super) fn on_eio_packet(&mut self, s: usize, p: Packet<'_>, ws_conn: Option<usize>) {
        let Some(session) = self.engine.live(s) else {
            return;
        };
        self.metrics.packets_in += 1;
        let endpoint = session.endpoint;
        match p {
            Packet::Close => self.engine.close(s, CloseReason::ClientClose),
            Packet::Pong(_) => {
                self.engine.pong(s);
            }
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
                    let msg = Outbound::new(vec![Part::Binary(Bytes::from(data))]);
                    self.send(s, &Rc::new(msg));
                }
            },
            Packet::Ping(_) | Packet::Open | Packet::Upgrade => {
                self.metrics.protocol_errors += 1;
                let over = if ws_conn.is_some() {
                    "websocket"
                } else {
                    "polling"
                };
                let sid = self.engine.sid(s);
                log::warn!("unexpected Engine.IO packet on session {sid} ({over}): closing");
                self.engine.close(s, CloseReason::ProtocolError);
            }
        }
    }

    /// Sends the pings and closes the sessions whose pong is late, of every heartbeat due
    /// at `now`.
    pub(crate) fn run_heartbeats(&mut self, now: std::time::Instant) {
        while let Some(beat) = self.engine.pop_beat(now) {
            match beat {
                Beat::Ping { session, .. } => {
                    let ping = self.engine.ping();
                    self.send(session, &ping);
                }
                Beat::PongDeadline { session, .. } => {
                    self.metrics.ping_timeouts += 1;
                    log::debug!("session {} missed its pong", self.engine.sid(session));
                    self.engine.close(session, CloseReason::PingTimeout);
                    self.reap();
                }
                Beat::ConnectTimeout { session, .. } => {
                    log::debug!(
                        "session {} connected no namespace in time",
                        self.engine.sid(session)
                    );
                    self.engine.close(session, CloseReason::ConnectTimeout);
                    self.reap();
                }
            }
        }
    }

    /// Ends a session the loop reaps: its sockets disconnect, a held poll is answered, its
    /// WebSocket closes.
    pub(crate) fn end_session(&mut self, s: usize, reason: CloseReason) {
        // The sockets go first, while the session still routes (their hooks may emit).
        for (_, sock) in self.engine.sockets_of(s) {
            self.remove_socket(sock, reason.as_str(), reason.recoverable());
        }
        let Some(session) = self.engine.sessions.try_remove(s) else {
            return;
        };
        self.metrics.sessions_closed += 1;
        log::debug!("session {} closed: {}", session.sid, reason.as_str());
        if let Some(poll) = session.poll {
            // A client's own close releases the poll with a noop; anything else tells it to go.
            let body: &'static [u8] = if reason == CloseReason::ClientClose {
                b"6"
            } else {
                b"1"
            };
            let keep_alive = poll.keep_alive && !self.shutting_down;
            if let Some(conn) = self.io.get_mut(poll.conn) {
                conn.kind = ConnKind::Http { pending_poll: None };
            }
            self.io.set_phase(poll.conn, Phase::Idle);
            let resp = self
                .cors(poll.origin.as_deref(), Response::new(200))
                .body("text/plain; charset=UTF-8", body);
            self.metrics.packets_out += 1;
            self.respond(poll.conn, resp, keep_alive);
        }
        // 1001 "going away" at shutdown: the client reconnects as after any lost transport.
        let code = if reason == CloseReason::Shutdown {
            1001
        } else {
            1000
        };
        if let Some(c) = session.upgrade_conn {
            self.close_ws(c, code);
        }
        if let Transport::WebSocket(c) = session.transport {
            if reason != CloseReason::TransportClose {
                self.close_ws(c, code);
            }
        }
    }

    /// At shutdown: the session ends without a Socket.IO DISCONNECT (which clients take as a
    /// deliberate kick and never reconnect from); a polling session first delivers what is
    /// queued for it.
    pub(crate) fn shutdown_session(&mut self, s: usize) {
        let Some(session) = self.engine.live_mut(s) else {
            return;
        };
        match session.transport {
            Transport::Polling if !session.queue_is_empty() => {
                session.flags.draining = true;
                if session.poll.is_some() {
                    self.flush_poll(s);
                }
            }
            _ => self.engine.close(s, CloseReason::Shutdown),
        }
    }
}

/// Same origin: the page was served by the host the request was sent to.
fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    authority.is_some_and(|a| host.is_some_and(|h| h.eq_ignore_ascii_case(a)))
}
