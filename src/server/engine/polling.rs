//! HTTP long-polling: held GETs answered with everything queued (one response per loop turn),
//! POSTed payloads split into packets.

use super::super::conn::{ConnKind, Phase};
use super::super::http::Req;
use super::super::Server;
use super::{CloseReason, HeldPoll};
use crate::engineio::packet;
use crate::engineio::payload;
use crate::engineio::EioError;
use crate::http::response::Response;
use bytes::Bytes;

impl Server {
    pub(super) fn poll_get(&mut self, key: usize, req: &Req, s: usize) {
        let session = &mut self.engine.sessions[s];
        if session.poll.as_ref().is_some_and(|p| p.conn != key) {
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
            self.engine.close(s, CloseReason::PollOverlap);
            return;
        }
        // Boxed: 40 bytes only polling sessions need, 8 in every session.
        session.poll = Some(Box::new(HeldPoll {
            conn: key,
            origin: req.origin.clone(),
            keep_alive: req.keep_alive,
        }));
        let ready = !session.queue_is_empty() || session.flags.probed;
        if let Some(conn) = self.io.get_mut(key) {
            conn.kind = ConnKind::Http {
                pending_poll: Some(s),
            };
        }
        if ready {
            self.flush_poll(s);
        }
    }

    pub(super) fn poll_post(&mut self, key: usize, req: &Req, s: usize) {
        for record in payload::split(&req.body) {
            match packet::parse_polling_record(record) {
                Ok(p) => self.on_eio_packet(s, p, None),
                Err(e) => {
                    self.metrics.protocol_errors += 1;
                    log::warn!(
                        "invalid Engine.IO packet on session {}: {e}",
                        self.engine.sid(s)
                    );
                    self.respond_eio_error(
                        key,
                        req.origin.as_deref(),
                        EioError::BadRequest,
                        req.keep_alive,
                    );
                    self.engine.close(s, CloseReason::ProtocolError);
                    return;
                }
            }
            if self.engine.live(s).is_none() {
                break;
            }
        }
        let resp = self
            .cors(req.origin.as_deref(), Response::new(200))
            .body("text/html", "ok");
        self.respond(key, resp, req.keep_alive);
    }

    /// The connection holding a session's long-poll GET is gone.
    pub(crate) fn poll_conn_gone(&mut self, s: usize, key: usize) {
        if let Some(session) = self.engine.sessions.get_mut(s) {
            if session.poll.as_ref().is_some_and(|p| p.conn == key) {
                session.poll = None;
            }
        }
    }

    /// Answers held GETs whose sessions got messages this loop turn.
    pub(crate) fn flush_polls(&mut self) {
        for s in self.engine.take_dirty_polls() {
            self.flush_poll(s);
        }
    }

    /// Answers the held GET with everything queued (or a noop while an upgrade is probing).
    pub(super) fn flush_poll(&mut self, s: usize) {
        let Some(session) = self.engine.sessions.get_mut(s) else {
            return;
        };
        if session.poll.is_none() {
            return;
        }
        if session.queue_is_empty() {
            if session.flags.probed {
                self.metrics.packets_out += 1;
                self.answer_poll(s, vec![Bytes::from_static(b"6")]);
            }
            return;
        }
        let encodes = &self.engine.encodes;
        let bodies: Vec<Bytes> = session
            .take_queue()
            .into_iter()
            .map(|m| m.polling(encodes))
            .collect();
        let drained = session.flags.draining;
        self.answer_poll(s, bodies);
        if drained {
            self.engine.close(s, CloseReason::Shutdown);
        }
    }

    /// Writes the held GET's response: one head, then the shared bodies joined by `\x1e`.
    /// `bodies` is never empty.
    pub(super) fn answer_poll(&mut self, s: usize, bodies: Vec<Bytes>) {
        let len = bodies.iter().map(Bytes::len).sum::<usize>() + bodies.len() - 1;
        let Some(poll) = self.engine.sessions.get_mut(s).and_then(|x| x.poll.take()) else {
            return;
        };
        let c = poll.conn;
        let keep_alive = poll.keep_alive && !self.shutting_down;
        if let Some(conn) = self.io.get_mut(c) {
            conn.kind = ConnKind::Http { pending_poll: None };
        }
        self.io.set_phase(c, Phase::Idle);
        let head = self
            .cors(poll.origin.as_deref(), Response::new(200))
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
            self.io.close_after_flush(c);
        }
    }
}
