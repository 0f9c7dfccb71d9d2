//! One TCP connection: its stream, the bytes it has not parsed yet, its bounded outbound
//! queue of shared buffers, and what protocol it speaks now. No protocol logic lives here.

use bytes::{Buf, Bytes};
use mio::net::TcpStream;
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::time::Instant;

use crate::ws::frame::Opcode;

/// Buffers one `writev` call takes at most.
const MAX_IOVECS: usize = 64;

/// What a connection carries now.
#[derive(Debug)]
pub enum ConnKind {
    /// HTTP/1.1 requests; `pending_poll` is the session whose long-poll GET this connection holds.
    Http { pending_poll: Option<usize> },
    /// A WebSocket bound to an Engine.IO session (its transport, or probing an upgrade).
    WebSocket {
        session: usize,
        /// A fragmented message being reassembled: its opcode and bytes so far (boxed: rare,
        /// and 16 bytes less in every connection's slab slot).
        fragment: Option<Box<(Opcode, Vec<u8>)>>,
    },
    /// Our last bytes are out and our write side is shut; input is read and dropped until the
    /// peer closes (or the deadline), so unread input does not turn our close into a reset
    /// that could destroy the final response before the client reads it.
    Lingering,
}

/// What a connection waits for, which decides its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A request head (from the accept, or from its first byte on a kept-alive connection):
    /// late is answered 408.
    Head,
    /// The body of a request whose head is in: late is answered 408.
    Body,
    /// Kept alive between requests: late is closed quietly.
    Idle,
    /// Governed by its Engine.IO session (a WebSocket, a held poll) or by us (a deferred
    /// answer): no deadline of its own.
    Session,
    /// Our side is shut; waiting for the peer's EOF.
    Linger,
}

/// Outbound bytes: shared buffers written front to back with vectored writes.
#[derive(Debug, Default)]
pub struct OutQueue {
    bufs: VecDeque<Bytes>,
    len: usize,
}

impl OutQueue {
    pub fn push(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.len += b.len();
            self.bufs.push_back(b);
        }
    }

    /// Bytes queued and not yet written.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes as much as the socket takes. `Ok(n)` is the byte count written; a full socket
    /// is not an error (the caller waits for writability when the queue is not empty).
    ///
    /// # Errors
    /// Any I/O error other than `WouldBlock`/`Interrupted` is fatal for the connection.
    pub fn write_to(&mut self, stream: &mut TcpStream) -> io::Result<usize> {
        let mut total = 0;
        while !self.bufs.is_empty() {
            let sock = socket2::SockRef::from(&*stream);
            let result = if self.bufs.len() == 1 {
                // The common case (one frame queued this turn): no iovec array to fill.
                sock.send(&self.bufs[0])
            } else {
                let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
                let mut count = 0;
                for (slot, b) in slices.iter_mut().zip(self.bufs.iter()) {
                    *slot = IoSlice::new(b);
                    count += 1;
                }
                sock.send_vectored(&slices[..count])
            };
            match result {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(mut n) => {
                    total += n;
                    self.len -= n;
                    while n > 0 {
                        let front = self
                            .bufs
                            .front_mut()
                            .expect("written bytes came from queued buffers");
                        if n >= front.len() {
                            n -= front.len();
                            self.bufs.pop_front();
                        } else {
                            front.advance(n);
                            n = 0;
                        }
                    }
                }
                Err(e) if super::io::would_block(&e) => break,
                Err(e) if super::io::interrupted(&e) => continue,
                Err(e) => return Err(e),
            }
        }
        if self.bufs.is_empty() && self.bufs.capacity() > 0 {
            // Give the ring back: an idle connection holds no outbound allocation (a ring of
            // four `Bytes` is 128 bytes per connection; re-allocating it costs ~30 ns against
            // the microseconds of the `send` that emptied it).
            self.bufs = VecDeque::new();
        }
        Ok(total)
    }
}

#[derive(Debug)]
pub struct Conn {
    pub stream: TcpStream,
    /// Unparsed input; empty (and unallocated) whenever the last read ended on a boundary.
    pub rbuf: Vec<u8>,
    pub out: OutQueue,
    pub kind: ConnKind,
    /// Close once `out` is written (after an error response or a close frame).
    pub close_after_flush: bool,
    /// Registered for writability (only while `out` could not be written in full).
    pub want_write: bool,
    /// Already on the server's list of connections to flush this loop turn.
    pub dirty: bool,
    /// What it waits for, and until when (`None` for [`Phase::Session`]).
    pub phase: Phase,
    pub deadline: Option<Instant>,
    /// Accepted on the internal listener (`/api/*` and `/metrics` live there).
    pub internal: bool,
    /// Unique for the process: a reply that arrives later (from Redis) checks it, so a reused
    /// slab key never gets another connection's response.
    pub uid: u64,
    /// An API request waits for a Redis reply; later requests wait behind it (HTTP order).
    pub deferred: bool,
    /// Marked for closing, with the reason; the loop closes it after the current dispatch.
    pub closing: Option<&'static str>,
}

impl Conn {
    pub fn new(stream: TcpStream, head_deadline: Instant, uid: u64, internal: bool) -> Self {
        Conn {
            stream,
            rbuf: Vec::new(),
            out: OutQueue::default(),
            kind: ConnKind::Http { pending_poll: None },
            close_after_flush: false,
            want_write: false,
            dirty: false,
            phase: Phase::Head,
            deadline: Some(head_deadline),
            internal,
            uid,
            deferred: false,
            closing: None,
        }
    }
}
