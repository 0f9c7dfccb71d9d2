//! A minimal Engine.IO v4 long-polling client (the soak scenario's polling clients): the same
//! Socket.IO steps as the WebSocket client, over plain HTTP/1.1 keep-alive requests.
//!
//! ```text
//! GET  /socket.io/?EIO=4&transport=polling          -> 0{"sid":"S","pingInterval":..}
//! POST /socket.io/?EIO=4&transport=polling&sid=S    40                          -> ok
//! GET  /socket.io/?EIO=4&transport=polling&sid=S    (held until there is data)
//!                                                   -> 40{"sid":..}\x1e42["bench:msg",..]
//! ```
//!
//! Two connections per client: one holds the long-poll GET, the other carries the POSTs one
//! at a time (Engine.IO refuses a POST while another is in progress); packets queued
//! meanwhile go out together in the next POST, separated by the record separator 0x1e.

use crate::client::{Ctx, Gone, Member, Phase};
use crate::wire::{self, Packet};
use mio::net::TcpStream;
use std::io::{self, Read, Write};

/// The Engine.IO polling endpoint.
const POLL_PATH: &str = "/socket.io/?EIO=4&transport=polling";
/// Engine.IO v4 separates packets of a polling payload with this byte.
const SEPARATOR: u8 = 0x1e;
/// Responses larger than this are a protocol error here (the bench sends small payloads).
const MAX_BODY: usize = 16 << 20;

/// Which of a polling client's two connections an event is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Get,
    Post,
}

/// One keep-alive HTTP connection with at most one request in flight.
pub struct HttpConn {
    pub stream: TcpStream,
    connected: bool,
    /// A request is in flight (its response not read yet).
    busy: bool,
    out: Vec<u8>,
    inbuf: Vec<u8>,
}

impl HttpConn {
    pub fn new(stream: TcpStream) -> HttpConn {
        HttpConn {
            stream,
            connected: false,
            busy: false,
            out: Vec::new(),
            inbuf: Vec::new(),
        }
    }

    fn request(&mut self, req: &[u8]) -> Result<(), Gone> {
        self.busy = true;
        self.out.extend_from_slice(req);
        self.flush()
    }

    /// Writes what is buffered, once the TCP connect has finished.
    fn flush(&mut self) -> Result<(), Gone> {
        if !self.connected {
            return Ok(());
        }
        while !self.out.is_empty() {
            match self.stream.write(&self.out) {
                Ok(0) => return Err(Gone::Io(io::ErrorKind::WriteZero)),
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Gone::Io(e.kind())),
            }
        }
        Ok(())
    }

    fn on_writable(&mut self) -> Result<(), Gone> {
        if !self.connected {
            if let Ok(Some(e)) | Err(e) = self.stream.take_error() {
                return Err(Gone::Io(e.kind()));
            }
            match self.stream.peer_addr() {
                Ok(_) => self.connected = true,
                // Not connected yet: a spurious event.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(()),
                Err(e) => return Err(Gone::Io(e.kind())),
            }
        }
        self.flush()
    }

    /// Reads until the socket is drained (mio is edge-triggered), appending to `inbuf`.
    fn fill(&mut self, rbuf: &mut [u8]) -> Result<(), Gone> {
        loop {
            match self.stream.read(rbuf) {
                Ok(0) => return Err(Gone::ServerClosed),
                Ok(n) => self.inbuf.extend_from_slice(&rbuf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Gone::Io(e.kind())),
            }
        }
    }

    /// Takes one complete response off `inbuf`: its status and body.
    fn next_response(&mut self) -> Result<Option<(u16, Vec<u8>)>, Gone> {
        match parse_response(&self.inbuf)? {
            None => Ok(None),
            Some((status, head, len)) => {
                let body = self.inbuf[head..head + len].to_vec();
                self.inbuf.drain(..head + len);
                self.busy = false;
                Ok(Some((status, body)))
            }
        }
    }
}

/// Parses one response framed by `Content-Length`: `(status, head length, body length)`, or
/// `None` until all of it is in `buf`.
///
/// # Errors
/// A malformed head, no `Content-Length` (sio-edge always sends one), or a huge body.
fn parse_response(buf: &[u8]) -> Result<Option<(u16, usize, usize)>, Gone> {
    let mut headers = [httparse::EMPTY_HEADER; 24];
    let mut resp = httparse::Response::new(&mut headers);
    let head = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(Gone::Protocol),
    };
    let len = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| wire::parse_u64(h.value.trim_ascii()))
        .ok_or(Gone::Protocol)? as usize;
    if len > MAX_BODY {
        return Err(Gone::Protocol);
    }
    if buf.len() < head + len {
        return Ok(None);
    }
    Ok(Some((resp.code.unwrap_or(0), head, len)))
}

/// One polling bench client.
pub struct PollClient {
    pub get: HttpConn,
    pub post: HttpConn,
    /// `WaitOpen` until the handshake GET is answered; then as the WebSocket client.
    pub phase: Phase,
    pub m: Member,
    /// When the TCP connect started (ns on the `Ctx` clock).
    pub t_start: u64,
    /// Distinguishes a reused slab key in the handshake timeout queue.
    pub serial: u64,
    /// The Engine.IO session id, once the handshake is answered.
    sid: String,
    /// Packets waiting for the POST connection, separated by 0x1e.
    queued: Vec<u8>,
}

impl PollClient {
    /// A client whose handshake GET goes out on `get` once it is connected.
    pub fn new(
        get: TcpStream,
        post: TcpStream,
        host: &str,
        group: u32,
        t_start: u64,
        serial: u64,
    ) -> PollClient {
        let mut c = PollClient {
            get: HttpConn::new(get),
            post: HttpConn::new(post),
            phase: Phase::WaitOpen,
            m: Member {
                group,
                ..Member::default()
            },
            t_start,
            serial,
            sid: String::new(),
            queued: Vec::new(),
        };
        let req = format!("GET {POLL_PATH} HTTP/1.1\r\nHost: {host}\r\n\r\n");
        // Nothing is written before the connect finishes, so this cannot fail.
        let _ = c.get.request(req.as_bytes());
        c
    }

    /// Handles readiness of one of the two connections.
    ///
    /// # Errors
    /// A connection failed or closed, or the server answered something unexpected.
    pub fn on_event(
        &mut self,
        side: Side,
        readable: bool,
        writable: bool,
        rbuf: &mut [u8],
        ctx: &mut Ctx,
        host: &str,
    ) -> Result<(), Gone> {
        let conn = match side {
            Side::Get => &mut self.get,
            Side::Post => &mut self.post,
        };
        if writable || !conn.connected {
            conn.on_writable()?;
        }
        if !readable || !conn.connected {
            return Ok(());
        }
        conn.fill(rbuf)?;
        loop {
            let conn = match side {
                Side::Get => &mut self.get,
                Side::Post => &mut self.post,
            };
            let Some((status, body)) = conn.next_response()? else {
                return Ok(());
            };
            if status != 200 {
                log::debug!("polling {side:?} answered {status}");
                return Err(Gone::Protocol);
            }
            match side {
                Side::Get => self.on_payload(&body, ctx, host)?,
                Side::Post => self.send_queued(host)?,
            }
        }
    }

    /// One GET answer: the handshake, or a payload of packets; then the next long poll.
    fn on_payload(&mut self, body: &[u8], ctx: &mut Ctx, host: &str) -> Result<(), Gone> {
        let now = ctx.now_ns();
        if self.phase == Phase::WaitOpen {
            let first = body.split(|&b| b == SEPARATOR).next().unwrap_or(body);
            let open = match wire::classify(first) {
                Packet::Open(json) => json,
                _ => return Err(Gone::Protocol),
            };
            self.sid = wire::connect_sid(open).ok_or(Gone::Protocol)?.to_owned();
            self.phase = Phase::WaitConnect;
            let packet = std::mem::take(&mut ctx.connect_packet);
            self.send(&packet);
            ctx.connect_packet = packet;
        } else {
            for p in body.split(|&b| b == SEPARATOR) {
                self.on_packet(p, ctx, now)?;
            }
        }
        self.send_queued(host)?;
        let req = format!(
            "GET {POLL_PATH}&sid={} HTTP/1.1\r\nHost: {host}\r\n\r\n",
            self.sid
        );
        self.get.request(req.as_bytes())
    }

    fn on_packet(&mut self, p: &[u8], ctx: &mut Ctx, now: u64) -> Result<(), Gone> {
        match (wire::classify(p), self.phase) {
            (Packet::BenchMsg(obj), Phase::Ready) => ctx.deliver(&mut self.m, obj, p.len(), now),
            (Packet::Ping, _) => {
                ctx.counters.pings += 1;
                self.send(b"3");
            }
            (Packet::Connected(_), Phase::WaitConnect) => {
                if ctx.join_rooms {
                    self.phase = Phase::Joining;
                    let join = format!("420[\"bench:join\",\"r{}\"]", self.m.group);
                    self.send(join.as_bytes());
                } else {
                    self.ready(ctx, now);
                }
            }
            (Packet::Ack(0, args), Phase::Joining) => {
                if args.windows(10).any(|w| w == b"\"ok\":false") {
                    return Err(Gone::JoinRefused);
                }
                self.ready(ctx, now);
            }
            (Packet::ConnectError(_), _) => return Err(Gone::Refused),
            (Packet::Close, _) => return Err(Gone::ServerClosed),
            _ => {}
        }
        Ok(())
    }

    fn ready(&mut self, ctx: &mut Ctx, now: u64) {
        self.phase = Phase::Ready;
        ctx.ready(&mut self.m, self.t_start, now);
    }

    /// Queues one packet for the next POST (sent at once when none is in flight; packets
    /// are flushed by [`PollClient::send_queued`] after each GET answer and POST answer).
    fn send(&mut self, packet: &[u8]) {
        if !self.queued.is_empty() {
            self.queued.push(SEPARATOR);
        }
        self.queued.extend_from_slice(packet);
    }

    fn send_queued(&mut self, host: &str) -> Result<(), Gone> {
        if self.post.busy || self.queued.is_empty() || self.sid.is_empty() {
            return Ok(());
        }
        let body = std::mem::take(&mut self.queued);
        let req = post_request(host, &self.sid, &body);
        self.post.request(&req)
    }

    /// Ends the session on purpose (churn): a best-effort close packet `1` when no POST is in
    /// flight, so the server frees the session at once instead of at the ping timeout.
    pub fn goodbye(&mut self, host: &str) {
        if self.post.busy || self.sid.is_empty() || !self.post.connected {
            return;
        }
        let req = post_request(host, &self.sid, b"1");
        let _ = self.post.request(&req);
    }
}

fn post_request(host: &str, sid: &str, body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "POST {POLL_PATH}&sid={sid} HTTP/1.1\r\nHost: {host}\r\n\
         Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_parse_by_content_length_and_wait_for_the_body() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n40{}HTTP/1.1";
        assert_eq!(parse_response(r), Ok(Some((200, 38, 4))));
        assert_eq!(parse_response(&r[..40]), Ok(None));
        assert_eq!(parse_response(&r[..20]), Ok(None));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(parse_response(chunked), Err(Gone::Protocol));
        assert_eq!(parse_response(b"nonsense\r\n\r\n"), Err(Gone::Protocol));
    }

    #[test]
    fn post_request_carries_the_sid_and_length() {
        let req = post_request("h:1", "S1", b"40\x1e3");
        let text = String::from_utf8(req).unwrap();
        assert!(text.starts_with("POST /socket.io/?EIO=4&transport=polling&sid=S1 HTTP/1.1\r\n"));
        assert!(text.contains("Content-Length: 4\r\n"));
        assert!(text.ends_with("\r\n\r\n40\x1e3"));
    }
}
