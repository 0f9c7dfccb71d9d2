//! Input: reads a readable connection (at most `READ_CAP_PER_TURN` per loop turn) and hands
//! its bytes to the protocol the connection speaks now (HTTP or WebSocket), across an HTTP
//! upgrade in the middle of one read.

use super::conn::ConnKind;
use super::io::{ReadOutcome, READ_CAP_PER_TURN};
use super::Server;

impl Server {
    /// Reads what the socket has, up to the per-turn cap, and parses it as it comes.
    ///
    /// A read shorter than asked for took everything the socket held (TCP `recvmsg` copies
    /// the whole receive queue and backlog), and with edge-triggered readiness anything that
    /// arrives later raises a new event: so it ends the loop without the extra `read` that
    /// would only return `WouldBlock` (one syscall per pong and per small event saved).
    /// Unless the peer's FIN is already known (`hup`): then read on to the end of stream.
    pub(super) fn on_readable(&mut self, key: usize, hup: bool) {
        let mut buf = self.io.take_read_buf();
        let mut read = 0;
        loop {
            let budget = READ_CAP_PER_TURN - read;
            let want = budget.min(buf.len());
            match self.io.read(key, &mut buf, budget, &mut self.metrics) {
                ReadOutcome::Data(n) => {
                    read += n;
                    self.on_data(key, &mut buf[..n]);
                    if n < want && !hup {
                        break;
                    }
                }
                ReadOutcome::Done | ReadOutcome::Capped => break,
                ReadOutcome::Eof => {
                    self.io.close(key, "transport close");
                    break;
                }
            }
        }
        self.io.put_read_buf(buf);
    }

    /// Appends new input to the connection and lets its protocol consume what it can.
    /// `data` is the loop's read buffer: WebSocket frames are unmasked in place there.
    pub(super) fn on_data(&mut self, key: usize, data: &mut [u8]) {
        let Some(conn) = self.io.get_mut(key) else {
            return;
        };
        if conn.close_after_flush {
            return;
        }
        // Parse straight from the loop's read buffer; only a connection that already holds a
        // partial message pays for a copy, and only the unparsed tail is kept.
        let mut held = std::mem::take(&mut conn.rbuf);
        if held.is_empty() {
            let start = self.dispatch_input(key, data);
            if start < data.len() {
                self.keep_tail(key, data[start..].to_vec());
            }
        } else {
            held.extend_from_slice(data);
            let start = self.dispatch_input(key, &mut held);
            held.drain(..start);
            self.keep_tail(key, held);
        }
    }

    /// Hands `input` to the protocol the connection speaks (again after an HTTP upgrade in
    /// the middle of it); returns the bytes consumed.
    fn dispatch_input(&mut self, key: usize, input: &mut [u8]) -> usize {
        let mut start = 0;
        loop {
            let Some(conn) = self.io.get(key) else {
                return input.len();
            };
            let was_http = matches!(conn.kind, ConnKind::Http { .. });
            start += match conn.kind {
                ConnKind::Http { .. } => self.on_http_input(key, &input[start..]),
                ConnKind::WebSocket { .. } => self.on_ws_input(key, &mut input[start..]),
                ConnKind::Lingering => input.len() - start,
            };
            let Some(conn) = self.io.get(key) else {
                return input.len();
            };
            // An HTTP upgrade hands any bytes after the request to the WebSocket layer.
            let switched = was_http && matches!(conn.kind, ConnKind::WebSocket { .. });
            if !(switched && start < input.len() && !conn.close_after_flush) {
                return start;
            }
        }
    }

    /// Keeps the unparsed tail on the connection, bounded like one request.
    fn keep_tail(&mut self, key: usize, tail: Vec<u8>) {
        let limit = crate::http::request::MAX_HEAD_LEN
            + self.config.max_payload.max(self.config.max_api_body)
            + 64;
        let Some(conn) = self.io.get_mut(key) else {
            return;
        };
        // An empty tail keeps no allocation: an idle connection holds no input buffer.
        conn.rbuf = if tail.is_empty() { Vec::new() } else { tail };
        // Input that waits (behind a held long-poll) is bounded like one request.
        if conn.rbuf.len() > limit {
            self.metrics.protocol_errors += 1;
            log::warn!(
                "connection {key} sent {} bytes that wait for no request; closing",
                conn.rbuf.len()
            );
            self.io.close(key, "too much pipelined input");
        }
    }
}
