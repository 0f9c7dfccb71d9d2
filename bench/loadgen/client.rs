//! One raw Socket.IO client over a non-blocking WebSocket, and the shared state (`Ctx`) its
//! frames update. The receive path parses frames in place in the loop's one read buffer and
//! copies bytes only when a frame is split across reads.

use crate::stats::{MsgStat, Seen, SeqTrack, Totals};
use crate::wire::{self, Packet};
use mio::net::TcpStream;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

/// Where a client is in its handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// TCP connect in progress.
    Connecting,
    /// Upgrade request sent; holds the `Sec-WebSocket-Key`.
    Upgrading([u8; 24]),
    /// Waiting for the Engine.IO OPEN `0{...}`.
    WaitOpen,
    /// `40` sent, waiting for `40{"sid":..}`.
    WaitConnect,
    /// `bench:join` sent with ack id 0, waiting for `430[..]`.
    Joining,
    /// Connected (and joined): counts as a member of its group.
    Ready,
}

/// Why a client is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gone {
    /// The server closed the TCP connection, or sent a close frame / `1` / `41`.
    ServerClosed,
    /// Connect, read or write failed.
    Io(io::ErrorKind),
    /// The upgrade answer was not a valid `101`.
    Upgrade,
    /// The namespace answered CONNECT_ERROR.
    Refused,
    /// The server broke the WebSocket framing.
    Protocol,
    /// The handshake took longer than the limit.
    Timeout,
    /// `bench:join` was acknowledged with `{"ok":false,..}`: the server does not implement
    /// the chat-rooms extension of bench/CONTRACT.md.
    JoinRefused,
}

/// A set of clients that receive the same messages (a room, or one client for `notify`).
#[derive(Default)]
pub struct Group {
    /// Clients in `Phase::Ready`.
    pub ready: u32,
    /// The client that publishes to this group (rooms) or is its target (notify).
    pub lead: Option<usize>,
    /// Indexed by seq.
    pub msgs: Vec<MsgStat>,
}

/// A client's place in the delivery groups and its sequence checks; WebSocket and polling
/// clients both carry one.
#[derive(Default, Debug)]
pub struct Member {
    /// Its group (a chat room in chat-rooms and soak, else 0).
    pub group: u32,
    /// Skipped messages before the first delivery are not losses (joined during the load).
    pub lenient_first: bool,
    pub track: SeqTrack,
    /// soak: the sequence check of room `bench` (the group [`Ctx::bench_group`]), which every
    /// client is in besides its chat room.
    pub btrack: SeqTrack,
}

/// A tiny xorshift generator for masks and keys (not security relevant: the server only
/// unmasks).
pub struct Rng(u64);

impl Rng {
    pub fn new() -> Rng {
        Rng(getrandom::u64().unwrap_or(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// Connection counters.
#[derive(Default, Debug)]
pub struct Counters {
    pub launched: u64,
    /// Clients between TCP connect and `Ready`.
    pub in_progress: u64,
    pub ready_total: u64,
    pub connect_failed: u64,
    /// Ready clients the server disconnected (a slow-client cut, a crash).
    pub server_closed: u64,
    /// Ready clients we closed on purpose (churn).
    pub churned: u64,
    pub pings: u64,
}

/// State every client's frames update.
pub struct Ctx {
    pub start: Instant,
    pub rng: Rng,
    pub groups: Vec<Group>,
    pub totals: Totals,
    pub counters: Counters,
    /// Connect latency (TCP connect to `Ready`) of the initial population, and of clients
    /// connected while the load runs (churn).
    pub connect: crate::stats::Histogram,
    pub connect_under_load: crate::stats::Histogram,
    /// Set during the load phase: new clients record into `connect_under_load`.
    pub loaded: bool,
    /// Send `bench:join` to room `r<group>` after connecting (chat-rooms).
    pub join_rooms: bool,
    /// Stamp deliveries with the kernel's receive time (see [`Client::recv`]).
    pub kernel_timestamps: bool,
    /// Keep each client's Socket.IO id (notify addresses sockets by id).
    pub keep_sids: bool,
    /// The Socket.IO CONNECT packet: `40`, or `40{"token":".."}` for a server that
    /// authenticates (sio-edge --bench and the peers need none).
    pub connect_packet: Vec<u8>,
    /// Production profile: each client signs its own HS256 token with this secret
    /// ([`wire::hs256_connect`]) instead of sending `connect_packet`.
    pub token_secret: Option<Vec<u8>>,
    /// soak: the group that books broadcasts to room `bench` (payloads without `room`); every
    /// ready client is a member besides its own chat room.
    pub bench_group: Option<usize>,
    /// Delivery latency since the last [`Histogram::clear`] (soak: one report row).
    pub window: crate::stats::Histogram,
    scratch: Vec<u8>,
}

impl Ctx {
    pub fn new(groups: usize) -> Ctx {
        Ctx {
            start: Instant::now(),
            rng: Rng::new(),
            groups: (0..groups).map(|_| Group::default()).collect(),
            totals: Totals::default(),
            counters: Counters::default(),
            connect: Default::default(),
            connect_under_load: Default::default(),
            loaded: false,
            join_rooms: false,
            kernel_timestamps: false,
            keep_sids: false,
            connect_packet: b"40".to_vec(),
            token_secret: None,
            bench_group: None,
            window: Default::default(),
            scratch: Vec::with_capacity(4096),
        }
    }

    /// Nanoseconds on the process clock every `t` uses.
    pub fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn mask(&mut self) -> [u8; 4] {
        (self.rng.next_u64() as u32).to_ne_bytes()
    }

    /// Counts one `bench:msg` for member `c` received at `now`.
    pub fn deliver(&mut self, c: &mut Member, obj: &[u8], frame_len: usize, now: u64) {
        let Some((seq, t)) = wire::seq_and_t(obj) else {
            self.totals.malformed += 1;
            return;
        };
        let room = wire::room_number(obj);
        let own = u64::from(c.group);
        let (gi, track) = match (self.bench_group, room) {
            (Some(b), None) => (b, &mut c.btrack),
            (Some(_), Some(r)) if r == own => (c.group as usize, &mut c.track),
            (None, r) if !self.join_rooms || r == Some(own) => (c.group as usize, &mut c.track),
            _ => {
                // Relayed to the wrong room (or to `bench`): not this client's sequence.
                self.totals.wrong_room += 1;
                return;
            }
        };
        let g = &mut self.groups[gi];
        if seq as usize >= g.msgs.len() {
            self.totals.malformed += 1;
            return;
        }
        if c.lenient_first && track.next.is_none() && seq > track.first {
            // A client that connected during the load may be joined to the room on the
            // server a little after its CONNECT ack (socketioxide runs the connect handler
            // after sending it): what was published in between is not a loss.
            for s in track.first..seq {
                self.totals.unexpect(&mut g.msgs[s as usize]);
            }
            self.totals.join_skips += seq - track.first;
            track.first = seq;
        }
        let unique = match track.see(seq) {
            Seen::InOrder => true,
            Seen::Gap(_) => {
                self.totals.gaps += 1;
                true
            }
            Seen::OutOfOrder => {
                self.totals.out_of_order += 1;
                true
            }
            Seen::Duplicate => {
                self.totals.duplicates += 1;
                false
            }
            Seen::Early => {
                self.totals.early += 1;
                false
            }
        };
        if !unique {
            return;
        }
        let m = &mut g.msgs[seq as usize];
        m.received += 1;
        m.last = m.last.max(now);
        if m.received == m.expected {
            self.totals.complete(m);
        }
        self.totals.deliveries += 1;
        self.totals.msg_frame_bytes += frame_len as u64;
        let took = now.saturating_sub(t);
        self.totals.latency.record(took);
        self.window.record(took);
        self.totals.last_delivery = self.totals.last_delivery.max(now);
    }

    /// Member `c` is connected and joined: messages published from now on are expected.
    pub fn ready(&mut self, c: &mut Member, t_start: u64, now: u64) {
        let g = &mut self.groups[c.group as usize];
        g.ready += 1;
        c.track.first = g.msgs.len() as u64;
        if let Some(b) = self.bench_group {
            let g = &mut self.groups[b];
            g.ready += 1;
            c.btrack.first = g.msgs.len() as u64;
        }
        self.counters.in_progress -= 1;
        self.counters.ready_total += 1;
        let took = now.saturating_sub(t_start);
        if self.loaded {
            self.connect_under_load.record(took);
        } else {
            self.connect.record(took);
        }
    }

    /// Ready member `c` is gone. When it left `on_purpose` (churn) what it had not received
    /// yet is no longer expected; a gap before that stays a loss.
    pub fn leave(&mut self, c: &Member, on_purpose: bool) {
        let mut books = vec![(c.group as usize, &c.track)];
        if let Some(b) = self.bench_group {
            books.push((b, &c.btrack));
        }
        for (gi, track) in books {
            let g = &mut self.groups[gi];
            g.ready -= 1;
            if on_purpose {
                let from = track.next.unwrap_or(track.first) as usize;
                for m in g.msgs.iter_mut().skip(from) {
                    self.totals.unexpect(m);
                }
            }
        }
    }
}

/// One bench client.
pub struct Client {
    pub stream: TcpStream,
    pub phase: Phase,
    /// When the TCP connect started (ns on the `Ctx` clock).
    pub t_start: u64,
    /// Distinguishes a reused slab key in the handshake timeout queue.
    pub serial: u64,
    /// The Socket.IO id, when `Ctx::keep_sids`.
    pub sid: Option<Box<str>>,
    pub m: Member,
    /// Unparsed bytes (a frame split across reads, or the upgrade head); usually empty.
    inbuf: Vec<u8>,
    /// `SO_TIMESTAMPNS` is on for the socket (`Ctx::kernel_timestamps`).
    timestamps_on: bool,
    /// A fragmented message being reassembled; usually empty.
    frag: Vec<u8>,
    /// The fragmented message is binary (ignored once whole).
    frag_binary: bool,
    /// Bytes the socket did not take yet.
    out: Vec<u8>,
}

impl Client {
    pub fn new(stream: TcpStream, group: u32, t_start: u64, serial: u64) -> Client {
        Client {
            stream,
            phase: Phase::Connecting,
            t_start,
            serial,
            sid: None,
            m: Member {
                group,
                ..Member::default()
            },
            inbuf: Vec::new(),
            timestamps_on: false,
            frag: Vec::new(),
            frag_binary: false,
            out: Vec::new(),
        }
    }

    /// Sends one Engine.IO packet as a masked text frame.
    ///
    /// # Errors
    /// The socket failed.
    pub fn send_text(&mut self, ctx: &mut Ctx, packet: &[u8]) -> Result<(), Gone> {
        let mask = ctx.mask();
        let mut buf = std::mem::take(&mut ctx.scratch);
        buf.clear();
        wire::encode_frame(&mut buf, wire::OP_TEXT, packet, mask);
        let r = self.send_raw(&buf);
        ctx.scratch = buf;
        r
    }

    fn send_raw(&mut self, bytes: &[u8]) -> Result<(), Gone> {
        if !self.out.is_empty() || self.phase == Phase::Connecting {
            self.out.extend_from_slice(bytes);
            return Ok(());
        }
        let mut done = 0;
        while done < bytes.len() {
            match self.stream.write(&bytes[done..]) {
                Ok(0) => return Err(Gone::Io(io::ErrorKind::WriteZero)),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Gone::Io(e.kind())),
            }
        }
        self.out.extend_from_slice(&bytes[done..]);
        Ok(())
    }

    /// The socket is writable: finish the TCP connect (then send the upgrade), or flush.
    ///
    /// # Errors
    /// The connect or a write failed.
    pub fn on_writable(&mut self, ctx: &mut Ctx, host: &str) -> Result<(), Gone> {
        if self.phase == Phase::Connecting {
            if let Ok(Some(e)) | Err(e) = self.stream.take_error() {
                return Err(Gone::Io(e.kind()));
            }
            match self.stream.peer_addr() {
                Ok(_) => {}
                // Not connected yet: a spurious event.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(()),
                Err(e) => return Err(Gone::Io(e.kind())),
            }
            let mut key = [0u8; 24];
            let raw: [u8; 16] = {
                let mut r = [0u8; 16];
                r[..8].copy_from_slice(&ctx.rng.next_u64().to_ne_bytes());
                r[8..].copy_from_slice(&ctx.rng.next_u64().to_ne_bytes());
                r
            };
            use base64::Engine;
            let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
            key.copy_from_slice(encoded.as_bytes());
            self.phase = Phase::Upgrading(key);
            let req = wire::upgrade_request(host, &encoded);
            let pending = std::mem::take(&mut self.out);
            self.send_raw(req.as_bytes())?;
            return self.send_raw(&pending);
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

    /// The socket is readable: read until drained and handle every complete frame.
    ///
    /// A read shorter than the buffer means the receive queue was empty at that moment; with
    /// Linux TCP and edge-triggered epoll new data raises a new event, so the extra read that
    /// would return `WouldBlock` is skipped (it would double the syscalls per delivery).
    ///
    /// # Errors
    /// End of stream, a read error, or a protocol violation.
    pub fn on_readable(&mut self, rbuf: &mut [u8], ctx: &mut Ctx) -> Result<(), Gone> {
        if self.phase == Phase::Connecting {
            return Ok(());
        }
        loop {
            let (n, now) = match self.recv(rbuf, ctx) {
                Ok((0, _)) => return Err(Gone::ServerClosed),
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Gone::Io(e.kind())),
            };
            if self.inbuf.is_empty() {
                let used = self.consume(&rbuf[..n], now, ctx)?;
                self.inbuf.extend_from_slice(&rbuf[used..n]);
            } else {
                let mut buf = std::mem::take(&mut self.inbuf);
                buf.extend_from_slice(&rbuf[..n]);
                let used = self.consume(&buf, now, ctx)?;
                buf.drain(..used);
                if buf.is_empty() && buf.capacity() > 1 << 16 {
                    buf = Vec::new();
                }
                self.inbuf = buf;
            }
            if n < rbuf.len() {
                return Ok(());
            }
        }
    }

    /// Reads into `rbuf`; returns the bytes read and when they arrived, in `ctx` time. With
    /// `ctx.kernel_timestamps` that is the kernel's receive time of the newest segment read
    /// (`SO_TIMESTAMPNS`, switched on for the socket on first use), so a load generator
    /// that was slow to get to the socket does not add its delay to the server's latency;
    /// otherwise it is now.
    fn recv(&mut self, rbuf: &mut [u8], ctx: &Ctx) -> io::Result<(usize, u64)> {
        if !ctx.kernel_timestamps {
            let n = self.stream.read(rbuf)?;
            return Ok((n, ctx.now_ns()));
        }
        use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags};
        use std::os::fd::AsRawFd;
        if !self.timestamps_on {
            setsockopt(&self.stream, sockopt::ReceiveTimestampns, &true)
                .map_err(io::Error::from)?;
            self.timestamps_on = true;
        }
        let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
        let mut iov = [io::IoSliceMut::new(rbuf)];
        let msg = recvmsg::<()>(
            self.stream.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::empty(),
        )
        .map_err(io::Error::from)?;
        let n = msg.bytes;
        let (now, real_now) = (ctx.now_ns(), std::time::SystemTime::now());
        let arrived = msg
            .cmsgs()
            .ok()
            .into_iter()
            .flatten()
            .find_map(|c| match c {
                ControlMessageOwned::ScmTimestampns(ts) => {
                    Some(Duration::new(ts.tv_sec() as u64, ts.tv_nsec() as u32))
                }
                _ => None,
            });
        // Kernel time is the realtime clock: how long ago it was, taken off our clock.
        let ago = arrived
            .and_then(|t| {
                real_now
                    .duration_since(std::time::UNIX_EPOCH)
                    .ok()?
                    .checked_sub(t)
            })
            .map_or(0, |d| d.as_nanos() as u64);
        Ok((n, now.saturating_sub(ago)))
    }

    /// Handles what `buf` holds; returns the bytes used (the rest waits for more).
    fn consume(&mut self, buf: &[u8], now: u64, ctx: &mut Ctx) -> Result<usize, Gone> {
        let mut pos = 0;
        if let Phase::Upgrading(key) = self.phase {
            let key = std::str::from_utf8(&key).unwrap_or("");
            match wire::parse_upgrade_response(buf, key) {
                Ok(None) => return Ok(0),
                Ok(Some(n)) => {
                    pos = n;
                    self.phase = Phase::WaitOpen;
                }
                Err(e) => {
                    log::debug!("upgrade refused: {e:?}");
                    return Err(Gone::Upgrade);
                }
            }
        }
        loop {
            let f = match wire::parse_frame(&buf[pos..]) {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(pos),
                Err(e) => {
                    log::debug!("bad frame: {e:?}");
                    return Err(Gone::Protocol);
                }
            };
            let payload = &buf[pos + f.start..pos + f.end];
            let frame_len = f.end;
            pos += f.end;
            match f.opcode {
                wire::OP_TEXT if f.fin => self.on_packet(payload, frame_len, now, ctx)?,
                wire::OP_BINARY if f.fin => {}
                wire::OP_TEXT | wire::OP_BINARY | wire::OP_CONT => {
                    if f.opcode != wire::OP_CONT {
                        self.frag.clear();
                        self.frag_binary = f.opcode == wire::OP_BINARY;
                    }
                    self.frag.extend_from_slice(payload);
                    if f.fin {
                        let whole = std::mem::take(&mut self.frag);
                        if !self.frag_binary {
                            self.on_packet(&whole, whole.len(), now, ctx)?;
                        }
                    }
                }
                wire::OP_PING => {
                    let mask = ctx.mask();
                    let mut pong = Vec::with_capacity(payload.len() + 8);
                    wire::encode_frame(&mut pong, wire::OP_PONG, payload, mask);
                    self.send_raw(&pong)?;
                }
                wire::OP_CLOSE => return Err(Gone::ServerClosed),
                _ => {}
            }
        }
    }

    /// One Engine.IO packet.
    fn on_packet(
        &mut self,
        p: &[u8],
        frame_len: usize,
        now: u64,
        ctx: &mut Ctx,
    ) -> Result<(), Gone> {
        match (wire::classify(p), self.phase) {
            (Packet::BenchMsg(obj), Phase::Ready) => ctx.deliver(&mut self.m, obj, frame_len, now),
            (Packet::Ping, _) => {
                ctx.counters.pings += 1;
                self.send_text(ctx, b"3")?;
            }
            (Packet::Open(_), Phase::WaitOpen) => {
                self.phase = Phase::WaitConnect;
                if let Some(secret) = ctx.token_secret.take() {
                    let packet = wire::hs256_connect(&secret, self.serial);
                    ctx.token_secret = Some(secret);
                    self.send_text(ctx, &packet)?;
                } else {
                    let packet = std::mem::take(&mut ctx.connect_packet);
                    let sent = self.send_text(ctx, &packet);
                    ctx.connect_packet = packet;
                    sent?;
                }
            }
            (Packet::Connected(body), Phase::WaitConnect) => {
                if ctx.keep_sids {
                    self.sid = wire::connect_sid(body).map(Into::into);
                }
                if ctx.join_rooms {
                    self.phase = Phase::Joining;
                    let join = format!("420[\"bench:join\",\"r{}\"]", self.m.group);
                    self.send_text(ctx, join.as_bytes())?;
                } else {
                    self.ready(ctx, now);
                }
            }
            (Packet::Ack(0, args), Phase::Joining) => {
                // sio-edge acks unknown events with {"ok":false,"error":"unknown event"}.
                if args.windows(10).any(|w| w == b"\"ok\":false") {
                    return Err(Gone::JoinRefused);
                }
                self.ready(ctx, now);
            }
            (Packet::ConnectError(body), _) => {
                log::debug!("connect error: {}", String::from_utf8_lossy(body));
                return Err(Gone::Refused);
            }
            (Packet::Close, _) => return Err(Gone::ServerClosed),
            _ => {}
        }
        Ok(())
    }

    fn ready(&mut self, ctx: &mut Ctx, now: u64) {
        self.phase = Phase::Ready;
        ctx.ready(&mut self.m, self.t_start, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Books message `seq` of group `gi` as published now (as `Driver::publish_from` does).
    fn publish(ctx: &mut Ctx, gi: usize) {
        let g = &mut ctx.groups[gi];
        g.msgs.push(MsgStat {
            t: 0,
            expected: g.ready,
            received: 0,
            last: 0,
        });
    }

    fn lost(ctx: &Ctx) -> u64 {
        let miss = |m: &MsgStat| u64::from(m.expected.saturating_sub(m.received));
        ctx.groups.iter().flat_map(|g| &g.msgs).map(miss).sum()
    }

    #[test]
    fn soak_books_bench_and_room_sequences_apart_and_churn_excuses_only_what_was_pending() {
        // Rooms r0 and r1, then the book of room `bench`.
        let mut ctx = Ctx::new(3);
        ctx.bench_group = Some(2);
        ctx.join_rooms = true;
        ctx.counters.in_progress = 2;
        let mut a = Member::default();
        let mut b = Member {
            group: 1,
            ..Member::default()
        };
        publish(&mut ctx, 2); // bench 0: before anyone joined, expected by nobody
        ctx.ready(&mut a, 0, 0);
        ctx.ready(&mut b, 0, 0);
        publish(&mut ctx, 2); // bench 1
        publish(&mut ctx, 0); // r0 0
        let bench = |s: u64| format!("{{\"pad\":\"\",\"seq\":{s},\"t\":0}}");
        ctx.deliver(&mut a, bench(0).as_bytes(), 1, 1);
        assert_eq!(
            ctx.totals.early, 1,
            "published before the join: not counted"
        );
        ctx.deliver(&mut a, bench(1).as_bytes(), 1, 1);
        ctx.deliver(&mut a, b"{\"room\":\"r0\",\"seq\":0,\"t\":0}", 1, 1);
        ctx.deliver(&mut a, bench(1).as_bytes(), 1, 1);
        assert_eq!(ctx.totals.duplicates, 1);
        ctx.deliver(&mut a, b"{\"room\":\"r1\",\"seq\":0,\"t\":0}", 1, 1);
        assert_eq!(ctx.totals.wrong_room, 1);
        publish(&mut ctx, 2); // bench 2
        publish(&mut ctx, 2); // bench 3
        ctx.deliver(&mut b, bench(3).as_bytes(), 1, 1);
        ctx.deliver(&mut b, bench(2).as_bytes(), 1, 1);
        assert_eq!((ctx.totals.gaps, ctx.totals.out_of_order), (1, 1));
        // b never got bench 1: a loss. a leaves on purpose with bench 2 and 3 pending: excused.
        ctx.leave(&a, true);
        assert_eq!(lost(&ctx), 1);
        assert_eq!(ctx.groups[2].ready, 1);
        // A server-side disconnect excuses nothing.
        publish(&mut ctx, 2); // bench 4
        ctx.leave(&b, false);
        assert_eq!(lost(&ctx), 2);
        assert_eq!(ctx.totals.deliveries, 4);
    }
}
