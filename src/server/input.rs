//! Input: reads a readable connection (at most `READ_CAP_PER_TURN` per loop turn) and hands
//! its bytes to the protocol the connection speaks now (HTTP or WebSocket), across an HTTP
//! upgrade in the middle of one read.

use super::conn::ConnKind;
use super::io::{ReadOutcome, READ_CAP_PER_TURN};
use super::Server;
use std::borrow::Cow;

impl Server {
    /// Reads what the socket has, up to the per-turn cap, and parses it as it comes.
    pub(super) fn on_readable(&mut self, key: usize) {
        let mut buf = self.io.take_read_buf();
        let mut read = 0;
        loop {
            let budget = READ_CAP_PER_TURN - read;
            match self.io.read(key, &mut buf, budget, &mut self.metrics) {
                ReadOutcome::Data(n) => {
                    read += n;
                    self.on_data(key, &buf[..n]);
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
    pub(super) fn on_data(&mut self, key: usize, data: &[u8]) {
        let Some(conn) = self.io.get_mut(key) else {
            return;
        };
        if conn.close_after_flush {
            return;
        }
        // Parse straight from the loop's read buffer; only a connection that already holds a
        // partial message pays for a copy, and only the unparsed tail is kept.
        let held = std::mem::take(&mut conn.rbuf);
        let input: Cow<'_, [u8]> = if held.is_empty() {
            Cow::Borrowed(data)
        } else {
            let mut held = held;
            held.extend_from_slice(data);
            Cow::Owned(held)
        };
        let mut start = 0;
        loop {
            let Some(conn) = self.io.get(key) else {
                return;
            };
            let was_http = matches!(conn.kind, ConnKind::Http { .. });
            start += match conn.kind {
                ConnKind::Http { .. } => self.on_http_input(key, &input[start..]),
                ConnKind::WebSocket { .. } => self.on_ws_input(key, &input[start..]),
                ConnKind::Lingering => input.len() - start,
            };
            let Some(conn) = self.io.get(key) else {
                return;
            };
            // An HTTP upgrade hands any bytes after the request to the WebSocket layer.
            let switched = was_http && matches!(conn.kind, ConnKind::WebSocket { .. });
            if !(switched && start < input.len() && !conn.close_after_flush) {
                break;
            }
        }
        self.keep_tail(key, input, start);
    }

    /// Keeps the unparsed tail of `input` on the connection, bounded like one request.
    fn keep_tail(&mut self, key: usize, input: Cow<'_, [u8]>, start: usize) {
        let limit = crate::http::request::MAX_HEAD_LEN
            + self.config.max_payload.max(self.config.max_api_body)
            + 64;
        let Some(conn) = self.io.get_mut(key) else {
            return;
        };
        if start < input.len() {
            conn.rbuf = match input {
                Cow::Owned(mut v) => {
                    v.drain(..start);
                    v
                }
                Cow::Borrowed(b) => b[start..].to_vec(),
            };
        }
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
