//! The write pass of `Io`: owed connections written oldest first, sliced over loop turns,
//! writability re-armed for a full socket, and the linger after a connection's last bytes.

use super::{Closed, Io, FIRST_CONN, LINGER};
use crate::metrics::Metrics;
use crate::server::conn::{ConnKind, Phase};
use mio::{Interest, Token};
use std::time::{Duration, Instant};

/// The longest one loop turn spends writing before it polls for input again. On loopback a
/// write costs the sender 4-7 us (the receiver's TCP input runs on the sender's core), so a
/// fanout to 10,000 sockets is tens of milliseconds of writes. Slicing that pass keeps reads,
/// accepts and timers flowing during it, and a broadcast that arrives mid-pass joins the write
/// still owed to each socket instead of waiting for the pass to end and then making its own:
/// at saturation a message is complete about one pass after it arrives, not two.
const FLUSH_SLICE: Duration = Duration::from_millis(1);
/// Read the clock after this many connection writes (a write is microseconds; the clock ~20 ns).
const FLUSH_CLOCK_EVERY: usize = 32;

impl Io {
    /// Output is queued that the last flush did not get to.
    pub fn output_owed(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Writes owed output, oldest connection first, for at most `FLUSH_SLICE`. Returns the
    /// connections whose queue emptied while their parser waited for that (pipelined HTTP
    /// behind a long-poll), so the loop can feed them their held input.
    pub fn flush(&mut self, m: &mut Metrics, resume: &mut Vec<usize>) {
        let deadline = Instant::now() + FLUSH_SLICE;
        let mut written = 0usize;
        while let Some(key) = self.dirty.pop_front() {
            if self.flush_conn(key, m) {
                resume.push(key);
            }
            written += 1;
            if written.is_multiple_of(FLUSH_CLOCK_EVERY) && Instant::now() >= deadline {
                if self.output_owed() {
                    m.flush_slices_cut += 1;
                }
                return;
            }
        }
    }

    /// Writes a connection's queue; re-arms writability when the socket is full. Returns
    /// `true` when held input should be parsed now.
    fn flush_conn(&mut self, key: usize, m: &mut Metrics) -> bool {
        let Some(conn) = self.conns.get_mut(key) else {
            return false;
        };
        conn.dirty = false;
        if conn.closing.is_some() {
            return false;
        }
        match conn.out.write_to(&mut conn.stream) {
            Ok(n) => m.bytes_out += n as u64,
            Err(e) => {
                log::debug!("write error on connection {key}: {e}");
                self.close(key, "transport error");
                return false;
            }
        }
        let token = Token(FIRST_CONN + key);
        if !conn.out.is_empty() {
            if !conn.want_write {
                conn.want_write = true;
                let _ = self.poll.registry().reregister(
                    &mut conn.stream,
                    token,
                    Interest::READABLE | Interest::WRITABLE,
                );
            }
            return false;
        }
        if conn.close_after_flush {
            self.begin_linger(key);
            return false;
        }
        if conn.want_write {
            conn.want_write = false;
            let _ = self
                .poll
                .registry()
                .reregister(&mut conn.stream, token, Interest::READABLE);
        }
        // Pipelined requests waited behind a long-poll or a deferred API answer.
        !conn.rbuf.is_empty()
            && !conn.deferred
            && matches!(conn.kind, ConnKind::Http { pending_poll: None })
    }

    /// Everything queued is written: shut our write side and wait briefly for the peer's EOF
    /// (unread input would otherwise turn our close into a reset that could destroy the final
    /// response before the client reads it). The layers above detach from it now.
    fn begin_linger(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.rbuf = Vec::new();
        if conn.stream.shutdown(std::net::Shutdown::Write).is_err() {
            self.close(key, "closed after response");
            return;
        }
        conn.phase = Phase::Linger;
        let at = Instant::now() + LINGER;
        conn.deadline = Some(at);
        let uid = conn.uid;
        let kind = std::mem::replace(&mut conn.kind, ConnKind::Lingering);
        self.deadlines.arm(Phase::Linger, at, key, uid);
        if !matches!(kind, ConnKind::Http { pending_poll: None }) {
            // A WebSocket or held poll ends here for its session.
            self.lingered.push(Closed {
                key,
                kind,
                reason: "closed after response",
            });
        }
    }
}
