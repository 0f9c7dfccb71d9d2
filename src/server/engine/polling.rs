//! HTTP long-polling: held GETs answered with everything queued (one response per loop turn),
//! POSTed payloads split into packets.

use super::*;

impl Server {
    pub(super) fn poll_get(&mut self, key: usize, req: &Req, s: usize) {
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

    pub(super) fn poll_post(&mut self, key: usize, req: &Req, s: usize) {
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

    pub(super) fn mark_poll_dirty(&mut self, s: usize) {
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
    pub(super) fn flush_poll(&mut self, s: usize) {
        let session = &mut self.sessions[s];
        let Some(c) = session.poll_conn else { return };
        if session.queue.is_empty() {
            if session.probed {
                self.answer_poll(s, c, Bytes::from_static(b"6"));
            }
            return;
        }
        let encodes = &self.encodes;
        let bodies: Vec<Bytes> = session
            .queue
            .drain(..)
            .map(|m| m.polling(encodes))
            .collect();
        session.queued_bytes = 0;
        self.answer_poll_parts(s, c, bodies);
        if self
            .sessions
            .get(s)
            .is_some_and(|x| x.draining && x.queue.is_empty())
        {
            self.close_session(s, CloseReason::Shutdown);
        }
    }

    pub(super) fn answer_poll(&mut self, s: usize, c: usize, body: Bytes) {
        self.answer_poll_parts(s, c, vec![body]);
    }

    /// Writes the held GET's response: one head, then the shared bodies joined by `\x1e`.
    /// `bodies` is never empty.
    pub(super) fn answer_poll_parts(&mut self, s: usize, c: usize, bodies: Vec<Bytes>) {
        let len = bodies.iter().map(Bytes::len).sum::<usize>() + bodies.len() - 1;
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
}
