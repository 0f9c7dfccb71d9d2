//! The WebSocket transport: the upgrade handshake, frames to Engine.IO packets, the probe and
//! upgrade of a polling session, and close handling.

use super::super::conn::ConnKind;
use super::super::http::Req;
use super::super::Server;
use super::{CloseReason, Transport};
use crate::engineio::packet::{self, Packet};
use crate::engineio::EioError;
use crate::timer::Timer;
use crate::ws::{self, frame};
use bytes::Bytes;

impl Server {
    /// Answers the WebSocket upgrade handshake; `false` (after an error response) if invalid.
    pub(super) fn ws_handshake(&mut self, key: usize, req: &Req) -> bool {
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
    pub(super) fn upgrade_request(&mut self, key: usize, req: &Req, s: usize) {
        if !self.ws_handshake(key, req) {
            return;
        }
        let session = &mut self.engine.sessions[s];
        let refuse = session.transport != Transport::Polling || session.upgrade_conn.is_some();
        if !refuse {
            session.upgrade_conn = Some(key);
            // As the reference: an upgrade not completed in time is cancelled.
            let timer = Timer::UpgradeTimeout {
                session: s,
                uid: session.uid,
                conn: key,
                conn_uid: self.io.uid(key).unwrap_or(0),
            };
            let at = std::time::Instant::now() + self.config.edge.upgrade_timeout;
            self.timers.at(at, timer);
        }
        if let Some(conn) = self.io.get_mut(key) {
            conn.kind = ConnKind::WebSocket {
                session: s,
                fragment: None,
            };
        }
        if refuse {
            // The reference completes the handshake, then closes: one transport per session.
            log::debug!(
                "refusing a second websocket for session {}",
                self.engine.sid(s)
            );
            self.close_ws(key, 1008);
        }
    }

    /// Queues a close frame and closes the connection once it is written.
    pub(crate) fn close_ws(&mut self, key: usize, code: u16) {
        if self.queue(key, Bytes::from(frame::close_frame(code))) {
            self.io.close_after_flush(key);
        }
    }

    /// Parses WebSocket frames from `input` (unmasking them in place: a frame's payload is
    /// borrowed from the read buffer, not copied); returns the bytes consumed.
    pub(crate) fn on_ws_input(&mut self, key: usize, input: &mut [u8]) -> usize {
        let mut consumed = 0;
        while consumed < input.len() {
            let max = self.config.max_payload;
            match frame::parse(&mut input[consumed..], max) {
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
            match self.io.get(key) {
                Some(c) if !c.close_after_flush => {}
                _ => return input.len(),
            }
        }
        consumed
    }

    pub(super) fn on_ws_frame(&mut self, key: usize, f: frame::Frame<'_>) {
        use frame::Opcode;
        let max = self.config.max_payload;
        let Some(conn) = self.io.get_mut(key) else {
            return;
        };
        let ConnKind::WebSocket { fragment, .. } = &mut conn.kind else {
            return;
        };
        match f.opcode {
            Opcode::Ping => {
                let mut out = Vec::new();
                frame::encode(Opcode::Pong, f.payload, &mut out);
                self.queue(key, Bytes::from(out));
            }
            Opcode::Pong => {}
            Opcode::Close => {
                let code = if frame::valid_close_payload(f.payload) {
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
            Opcode::Text | Opcode::Binary if !f.fin => {
                *fragment = Some(Box::new((f.opcode, f.payload.to_vec())));
            }
            Opcode::Text | Opcode::Binary => self.on_ws_message(key, f.opcode, f.payload),
            Opcode::Continuation => {
                let Some((_, buf)) = fragment.as_deref_mut() else {
                    self.metrics.protocol_errors += 1;
                    return self.close_ws(key, 1002);
                };
                if buf.len() + f.payload.len() > max {
                    self.metrics.protocol_errors += 1;
                    return self.close_ws(key, 1009);
                }
                buf.extend_from_slice(f.payload);
                if f.fin {
                    let (op, data) = *fragment.take().expect("checked above");
                    self.on_ws_message(key, op, &data);
                }
            }
        }
    }

    /// A whole message: borrowed from the read buffer, or a reassembled fragment.
    pub(super) fn on_ws_message(&mut self, key: usize, opcode: frame::Opcode, data: &[u8]) {
        let Some(ConnKind::WebSocket { session: s, .. }) = self.io.get(key).map(|c| &c.kind) else {
            return;
        };
        let s = *s;
        let Some(session) = self.engine.live(s) else {
            return;
        };
        let probing = session.upgrade_conn == Some(key);
        if opcode == frame::Opcode::Text && std::str::from_utf8(data).is_err() {
            self.metrics.protocol_errors += 1;
            log::warn!("text frame with invalid UTF-8 on connection {key}");
            return self.close_ws(key, 1007);
        }
        if opcode == frame::Opcode::Binary {
            if probing {
                return self.close_ws(key, 1002);
            }
            // Binary data outlives the read buffer (attachments are held): one copy.
            return self.on_eio_packet(s, Packet::Binary(data.to_vec()), Some(key));
        }
        let p = match packet::parse_text(data) {
            Ok(p) => p,
            Err(e) => {
                self.metrics.protocol_errors += 1;
                log::warn!("invalid Engine.IO packet on session {}: {e}", session.sid);
                if probing {
                    return self.close_ws(key, 1002);
                }
                return self.engine.close(s, CloseReason::ProtocolError);
            }
        };
        if probing {
            return self.on_probe_packet(s, key, p);
        }
        self.on_eio_packet(s, p, Some(key));
    }

    /// A packet on a WebSocket that probes an upgrade: `2probe`, then `5`.
    fn on_probe_packet(&mut self, s: usize, key: usize, p: Packet<'_>) {
        match p {
            Packet::Ping(b"probe") => {
                self.engine.sessions[s].flags.probed = true;
                let mut out = Vec::new();
                frame::encode(frame::Opcode::Text, b"3probe", &mut out);
                self.metrics.packets_out += 1;
                self.queue(key, Bytes::from(out));
                // Release a held GET so the client can pause polling.
                if self.engine.sessions[s].poll.is_some() {
                    self.engine.mark_poll_dirty(s);
                }
            }
            Packet::Upgrade if self.engine.sessions[s].flags.probed => {
                self.complete_upgrade(s, key)
            }
            _ => {
                log::debug!("failed upgrade on session {}", self.engine.sid(s));
                let session = &mut self.engine.sessions[s];
                session.upgrade_conn = None;
                session.flags.probed = false;
                self.close_ws(key, 1002);
            }
        }
    }

    pub(super) fn complete_upgrade(&mut self, s: usize, key: usize) {
        let session = &mut self.engine.sessions[s];
        session.transport = Transport::WebSocket(key);
        session.upgrade_conn = None;
        session.flags.probed = false;
        log::debug!("session {} upgraded to websocket", session.sid);
        if session.poll.is_some() {
            self.metrics.packets_out += 1;
            self.answer_poll(s, vec![Bytes::from_static(b"6")]);
        }
        let session = &mut self.engine.sessions[s];
        let queued = session.take_queue();
        for m in queued {
            let b = m.ws(&self.engine.encodes);
            if !self.queue(key, b) {
                break;
            }
        }
        // After the queue moved over, so an admin's own session keeps its order.
        if self.admin.watching() {
            self.admin_upgraded(s);
        }
    }

    /// The upgrade timeout: a WebSocket still probing closes; the polling session goes on.
    pub(crate) fn on_upgrade_timeout(&mut self, s: usize, uid: u64, conn: usize, conn_uid: u64) {
        if !self.engine.alive(s, uid) || self.io.uid(conn) != Some(conn_uid) {
            return;
        }
        let session = &mut self.engine.sessions[s];
        if session.upgrade_conn != Some(conn) {
            return;
        }
        session.upgrade_conn = None;
        session.flags.probed = false;
        self.metrics.upgrade_timeouts += 1;
        log::debug!("upgrade of session {} timed out", self.engine.sid(s));
        self.close_ws(conn, 1000);
    }

    /// A WebSocket connection went away.
    pub(crate) fn on_ws_closed(&mut self, s: usize, key: usize, reason: &str) {
        let Some(session) = self.engine.sessions.get_mut(s) else {
            return;
        };
        if session.upgrade_conn == Some(key) {
            session.upgrade_conn = None;
            session.flags.probed = false;
        } else if session.transport == Transport::WebSocket(key) {
            log::debug!("websocket of session {} closed: {reason}", session.sid);
            self.engine.close(s, CloseReason::TransportClose);
        }
    }
}
