//! Socket.IO sockets on Engine.IO sessions: namespace CONNECT (with authentication),
//! DISCONNECT, events and acks (binary attachments reassembled), rooms, and broadcast with
//! one encode shared by every recipient.

use super::engine::{CloseReason, PartialBinary};
use super::Server;
use crate::engineio::new_id;
use crate::engineio::wire::Outbound;
use crate::socketio::packet::{self, PacketType};
use crate::socketio::{self as sio};
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

/// A namespace and its rooms. Sid rooms are implicit (looked up in `socket_ids`) so an idle
/// socket costs no room entry.
#[derive(Debug)]
pub struct Namespace {
    pub name: String,
    pub rooms: HashMap<String, HashSet<usize>>,
    pub sockets: usize,
}

impl Namespace {
    pub fn new(name: String) -> Self {
        Namespace {
            name,
            rooms: HashMap::new(),
            sockets: 0,
        }
    }
}

/// One Socket.IO socket: a session connected to a namespace.
#[derive(Debug)]
pub struct Socket {
    pub id: String,
    pub ns: usize,
    pub session: usize,
    /// The authenticated user, `None` for anonymous sockets.
    pub user: Option<String>,
    /// Rooms joined explicitly (the sid room is implicit).
    pub rooms: Vec<String>,
    /// Last broadcast that reached (or excluded) this socket; deduplicates overlapping rooms.
    pub mark: u64,
    /// Private rooms the token's claims grant.
    pub claim_rooms: Vec<String>,
    /// Private id for connection state recovery (when it is on).
    pub pid: Option<String>,
    /// Recovery offset current when the socket connected.
    pub connected_offset: u64,
    /// Rate-limit buckets, allocated on the first limited event.
    pub buckets: Option<Box<crate::store::ratelimit::Buckets>>,
    /// When this socket was recovered: the time its previous transport was lost.
    pub recovered_at: Option<std::time::Instant>,
    /// Counted in presence (so its disconnect is subtracted exactly once).
    pub presence_counted: bool,
}

/// Where a broadcast goes.
#[derive(Debug, Default, Clone, Copy)]
pub struct Target<'a> {
    pub rooms: &'a [String],
    pub except: &'a [String],
    pub except_socket: Option<usize>,
    /// May be dropped for recipients that are behind (cursor moves, strokes).
    pub volatile: bool,
    /// Deliver on this node only (it came from another node, or from Kafka, which every node
    /// reads); otherwise it is also published for the other nodes when Redis is configured.
    pub local: bool,
    /// Every socket of the namespace (a remote `io.emit`); `rooms` is then ignored.
    pub all: bool,
}

/// Rooms one socket may be in (its own id room not counted); bounds memory and the cost of
/// joins, leaves and recovery replay.
pub const MAX_ROOMS_PER_SOCKET: usize = 1000;

/// A recipient further behind than this skips volatile messages.
const VOLATILE_BACKLOG: usize = 64 * 1024;

impl Server {
    fn sio_protocol_error(&mut self, s: usize, what: &str) {
        self.metrics.protocol_errors += 1;
        if let Some(session) = self.sessions.get(s) {
            log::warn!(
                "invalid Socket.IO packet on session {}: {what}; closing",
                session.sid
            );
        }
        self.close_session(s, CloseReason::ProtocolError);
    }

    /// The text of an Engine.IO message on a Socket.IO session.
    pub(crate) fn on_sio_text(&mut self, s: usize, data: &[u8]) {
        if self.sessions[s].partial.is_some() {
            return self.sio_protocol_error(s, "text packet while attachments were expected");
        }
        let p = match packet::parse(data) {
            Ok(p) => p,
            Err(e) => return self.sio_protocol_error(s, &e.to_string()),
        };
        if p.kind == PacketType::Connect {
            return self.sio_connect(s, p.namespace, p.data);
        }
        let Some(sock) = self.socket_in(s, p.namespace) else {
            return self.sio_protocol_error(s, "packet for a namespace that is not connected");
        };
        match p.kind {
            PacketType::Disconnect => {
                self.remove_socket(sock, "client namespace disconnect", false)
            }
            PacketType::Event | PacketType::Ack => {
                // Placeholders mean something only in binary packets; here they are data.
                let Some(data) = p.data else {
                    return self.sio_protocol_error(s, "event without payload");
                };
                self.dispatch_packet(sock, p.kind, p.id, data, Vec::new());
            }
            PacketType::BinaryEvent | PacketType::BinaryAck => {
                let Some(data) = p.data else {
                    return self.sio_protocol_error(s, "event without payload");
                };
                if p.attachments == 0 {
                    if let Err(e) = packet::check_placeholders(&data, 0) {
                        return self.sio_protocol_error(s, &e.to_string());
                    }
                    return self.dispatch_packet(sock, p.kind, p.id, data, Vec::new());
                }
                self.sessions[s].partial = Some(PartialBinary {
                    socket: sock,
                    kind: p.kind,
                    id: p.id,
                    data,
                    expected: p.attachments,
                    attachments: Vec::with_capacity(p.attachments),
                });
            }
            PacketType::Connect | PacketType::ConnectError => {
                self.sio_protocol_error(s, "client sent CONNECT_ERROR")
            }
        }
    }

    /// A binary Engine.IO message: the next attachment of the pending binary packet.
    pub(crate) fn on_sio_binary(&mut self, s: usize, data: Bytes) {
        let Some(partial) = self.sessions[s].partial.as_mut() else {
            return self.sio_protocol_error(s, "binary data without a binary packet");
        };
        partial.attachments.push(data);
        // All attachments of one packet together stay within maxPayload.
        let total: usize = partial.attachments.iter().map(Bytes::len).sum();
        if total > self.config.max_payload {
            return self
                .sio_protocol_error(s, "binary attachments larger than maxPayload together");
        }
        if partial.attachments.len() < partial.expected {
            return;
        }
        let p = self.sessions[s].partial.take().expect("checked above");
        if let Err(e) = packet::check_placeholders(&p.data, p.expected) {
            return self.sio_protocol_error(s, &e.to_string());
        }
        if self.sockets.contains(p.socket) {
            self.dispatch_packet(p.socket, p.kind, p.id, p.data, p.attachments);
        }
    }

    fn dispatch_packet(
        &mut self,
        sock: usize,
        kind: PacketType,
        id: Option<u64>,
        data: Value,
        attachments: Vec<Bytes>,
    ) {
        match kind {
            PacketType::Event | PacketType::BinaryEvent => {
                let Value::Array(mut args) = data else { return };
                let name = match args.remove(0) {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                self.on_event(sock, &name, args, attachments, id);
            }
            // The server asks for no acks yet, so a client ack has nothing to resolve.
            _ => log::debug!("ignoring ack {id:?} from socket {}", self.sockets[sock].id),
        }
    }

    /// The socket of session `s` in namespace `name`, if connected.
    fn socket_in(&self, s: usize, name: &str) -> Option<usize> {
        self.sessions[s]
            .sockets
            .iter()
            .find(|&&(ns, _)| self.namespaces[ns].name == name)
            .map(|&(_, sock)| sock)
    }

    fn sio_connect(&mut self, s: usize, name: &str, auth: Option<Value>) {
        let Some(ns) = self.namespaces.iter().position(|n| n.name == name) else {
            let msg = sio::message(
                PacketType::ConnectError,
                name,
                None,
                Some(&json!({"message": "Invalid namespace"})),
                Vec::new(),
            );
            self.send(s, &Rc::new(msg));
            return;
        };
        if let Some(sock) = self.socket_in(s, name) {
            // Already connected: repeat the answer rather than create a twin.
            let msg = sio::message(
                PacketType::Connect,
                name,
                None,
                Some(&json!({"sid": self.sockets[sock].id})),
                Vec::new(),
            );
            self.send(s, &Rc::new(msg));
            return;
        }
        let auth = auth.unwrap_or_else(|| json!({}));
        let identity = match self.authenticate(s, &auth) {
            Ok(identity) => identity,
            Err(reason) => {
                self.metrics.auth_failures += 1;
                log::warn!(
                    "unauthorized connect to {name} on session {}: {reason}",
                    self.sessions[s].sid
                );
                let body = json!({"message": "unauthorized", "data": {"reason": reason}});
                let msg = sio::message(
                    PacketType::ConnectError,
                    name,
                    None,
                    Some(&body),
                    Vec::new(),
                );
                self.send(s, &Rc::new(msg));
                return;
            }
        };
        let (user, claim_rooms) = match identity {
            Some(id) => (
                Some(id.user_id),
                crate::store::grants::rooms_from_claims(&id.claims),
            ),
            None => (None, Vec::new()),
        };
        let recovery_on = !self.config.recovery_window.is_zero();
        // A reconnect within the recovery window gets its id, rooms and missed broadcasts back.
        let now = std::time::Instant::now();
        let offset = auth
            .get("offset")
            .and_then(Value::as_str)
            .and_then(|o| o.parse::<u64>().ok());
        let restored = match (recovery_on, auth.get("pid").and_then(Value::as_str)) {
            (true, Some(pid)) => self
                .recovery
                .take(pid, ns, now)
                .filter(|saved| saved.user == user && !self.socket_ids.contains_key(&saved.sid))
                // As the reference does: an offset older than the log fails the recovery.
                .filter(|saved| {
                    self.recovery
                        .covers(offset.unwrap_or(saved.connected_offset))
                })
                .map(|saved| (pid.to_owned(), saved)),
            _ => None,
        };
        if let Some((pid, _)) = &restored {
            self.mirror_recovery(pid, None);
        }
        let recovered = restored.is_some();
        let (id, pid, rooms, after, disconnected_at) = match restored {
            Some((pid, saved)) => {
                let after = offset.unwrap_or(saved.connected_offset);
                (
                    saved.sid,
                    Some(pid),
                    saved.rooms,
                    Some(after),
                    Some(saved.at),
                )
            }
            None => (new_id(), recovery_on.then(new_id), Vec::new(), None, None),
        };
        let sock = self.sockets.insert(Socket {
            id: id.clone(),
            ns,
            session: s,
            user: user.clone(),
            rooms: Vec::new(),
            mark: 0,
            claim_rooms,
            pid: pid.clone(),
            connected_offset: self.recovery.next_offset().saturating_sub(1),
            buckets: None,
            recovered_at: None,
            presence_counted: false,
        });
        self.socket_ids.insert(id.clone(), sock);
        self.sessions[s].sockets.push((ns, sock));
        self.namespaces[ns].sockets += 1;
        if let Some(u) = &user {
            self.join(sock, &format!("user:{u}"));
        }
        for room in rooms {
            // Grants may have been revoked while the socket was away.
            if self.may_join(sock, &room).is_ok() || room.starts_with("presence:") {
                self.join(sock, &room);
            }
        }
        // Replay only what the rooms it is allowed back into received while it was away.
        let missed = match after {
            Some(after) => {
                let mut own = self.sockets[sock].rooms.clone();
                own.push(id.clone());
                self.recovery.missed(after, ns, &own).unwrap_or_default()
            }
            None => Vec::new(),
        };
        self.sockets[sock].recovered_at = disconnected_at;
        log::debug!(
            "socket {id} connected to {name} (user {}, recovered {recovered})",
            user.as_deref().unwrap_or("anonymous")
        );
        let reply = match &pid {
            Some(pid) => json!({"sid": id, "pid": pid}),
            None => json!({"sid": id}),
        };
        let msg = sio::message(PacketType::Connect, name, None, Some(&reply), Vec::new());
        self.send(s, &Rc::new(msg));
        for m in &missed {
            if !self.send(s, m) {
                break;
            }
        }
        // The reply (or the replay) may have closed a slow client, and this socket with it.
        if self.sockets.contains(sock) {
            self.on_connect(sock, &auth);
        }
    }

    /// The user a CONNECT authenticates as: the auth object's `token`, else the handshake's
    /// bearer token. `Ok(None)` is an anonymous socket where the configuration allows one.
    fn authenticate(
        &self,
        s: usize,
        auth: &Value,
    ) -> Result<Option<crate::auth::Identity>, &'static str> {
        if self.config.profile != crate::config::Profile::Production {
            return Ok(None);
        }
        let token = match auth.get("token") {
            Some(Value::String(t)) => Some(t.as_str()),
            Some(Value::Null) | None => None,
            Some(_) => return Err("token must be a string"),
        }
        .or(self.sessions[s].bearer.as_deref());
        match token {
            Some(t) => self.verifier.verify(t).map(Some).map_err(|e| e.reason()),
            None if self.config.allow_anonymous => Ok(None),
            None => Err(crate::auth::AuthError::MissingToken.reason()),
        }
    }

    /// Removes a socket from its namespace, rooms and session. `recoverable` saves it for
    /// connection state recovery (a lost transport, not a deliberate disconnect).
    pub(crate) fn remove_socket(&mut self, sock: usize, reason: &str, recoverable: bool) {
        if !self.sockets.contains(sock) {
            return;
        }
        self.on_disconnect(sock);
        // What the hooks sent may have closed this socket's own session (a cascade of slow
        // clients) and removed it already.
        let Some(socket) = self.sockets.get(sock) else {
            return;
        };
        let joined = socket.rooms.clone();
        for room in &joined {
            self.leave(sock, room);
        }
        let socket = self.sockets.remove(sock);
        if recoverable && !self.config.recovery_window.is_zero() {
            if let Some(pid) = &socket.pid {
                let saved = crate::store::recovery::Saved {
                    sid: socket.id.clone(),
                    ns: socket.ns,
                    user: socket.user.clone(),
                    claim_rooms: socket.claim_rooms.clone(),
                    rooms: joined,
                    connected_offset: socket.connected_offset,
                    at: std::time::Instant::now(),
                };
                self.mirror_recovery(pid, Some(&saved));
                self.recovery.save(pid.clone(), saved);
            }
        }
        self.socket_ids.remove(&socket.id);
        let ns = &mut self.namespaces[socket.ns];
        ns.sockets -= 1;
        if let Some(session) = self.sessions.get_mut(socket.session) {
            session.sockets.retain(|&(_, x)| x != sock);
            if session.partial.as_ref().is_some_and(|p| p.socket == sock) {
                session.partial = None;
            }
        }
        log::debug!(
            "socket {} (user {}) disconnected: {reason}",
            socket.id,
            socket.user.as_deref().unwrap_or("anonymous")
        );
    }

    /// Adds the socket to `room`. Returns `false` when the socket is gone or already in
    /// [`MAX_ROOMS_PER_SOCKET`] rooms.
    pub(crate) fn join(&mut self, sock: usize, room: &str) -> bool {
        let Some(socket) = self.sockets.get_mut(sock) else {
            return false;
        };
        if socket.rooms.iter().any(|r| r == room) {
            return true;
        }
        if socket.rooms.len() >= MAX_ROOMS_PER_SOCKET {
            return false;
        }
        socket.rooms.push(room.to_owned());
        self.namespaces[socket.ns]
            .rooms
            .entry(room.to_owned())
            .or_default()
            .insert(sock);
        self.room_changed(sock, room, 1);
        true
    }

    pub(crate) fn leave(&mut self, sock: usize, room: &str) {
        let Some(socket) = self.sockets.get_mut(sock) else {
            return;
        };
        let Some(i) = socket.rooms.iter().position(|r| r == room) else {
            return;
        };
        socket.rooms.swap_remove(i);
        let rooms = &mut self.namespaces[socket.ns].rooms;
        if let Some(members) = rooms.get_mut(room) {
            members.remove(&sock);
            if members.is_empty() {
                rooms.remove(room);
            }
        }
        self.room_changed(sock, room, -1);
    }

    /// What every join and leave updates beside the room maps: the Redis membership mirror
    /// and a class's viewer count.
    fn room_changed(&mut self, sock: usize, room: &str, delta: i32) {
        self.membership_changed(sock, room, delta);
        if let Some(class) = room.strip_prefix("class:") {
            self.class_changed(class);
        }
    }

    /// Emits event `name` with `args` to a target. With connection state recovery on, a
    /// non-volatile broadcast gets an offset as its last argument and is kept for replay.
    pub(crate) fn broadcast_event(
        &mut self,
        ns: usize,
        name: &str,
        mut args: Vec<Value>,
        attachments: Vec<Bytes>,
        t: Target<'_>,
    ) -> usize {
        if !t.local && self.cluster.redis.is_some() {
            self.publish_broadcast(ns, name, &args, &attachments, &t);
        }
        let persist = !self.config.recovery_window.is_zero() && !t.volatile;
        let offset = persist.then(|| self.recovery.allocate());
        if let Some(o) = offset {
            args.push(Value::String(o.to_string()));
        }
        let msg = Rc::new(sio::event(
            &self.namespaces[ns].name,
            name,
            &args,
            attachments,
        ));
        if let Some(offset) = offset {
            let mut except = t.except.to_vec();
            if let Some(x) = t.except_socket.and_then(|x| self.sockets.get(x)) {
                except.push(x.id.clone());
            }
            self.recovery.store(crate::store::recovery::Stored {
                offset,
                ns,
                rooms: t.rooms.to_vec(),
                except,
                at: std::time::Instant::now(),
                msg: Rc::clone(&msg),
            });
        }
        self.broadcast_msg(ns, &msg, t)
    }

    /// Sends `msg` to every socket of namespace `ns` in any of the target's rooms, once each,
    /// except sockets in its `except` rooms and its `except_socket`. The message is encoded at
    /// most once per transport form; every recipient gets the same buffer. Returns the
    /// recipient count.
    pub(crate) fn broadcast_msg(&mut self, ns: usize, msg: &Rc<Outbound>, t: Target<'_>) -> usize {
        self.broadcast_seq += 1;
        let seq = self.broadcast_seq;
        let mut recipients = std::mem::take(&mut self.scratch);
        recipients.clear();
        let sockets = &mut self.sockets;
        let socket_ids = &self.socket_ids;
        let room_map = &self.namespaces[ns].rooms;
        // Sid rooms resolve through the id index, restricted to this namespace.
        let sid_room = |r: &str| socket_ids.get(r).copied();
        for r in t.except {
            if let Some(members) = room_map.get(r) {
                for &m in members {
                    sockets[m].mark = seq;
                }
            } else if let Some(m) = sid_room(r) {
                sockets[m].mark = seq;
            }
        }
        if let Some(m) = t.except_socket {
            if let Some(s) = sockets.get_mut(m) {
                s.mark = seq;
            }
        }
        if t.all {
            for (m, s) in sockets.iter_mut() {
                if s.ns == ns && s.mark != seq {
                    s.mark = seq;
                    recipients.push(m);
                }
            }
        }
        for r in t.rooms.iter().filter(|_| !t.all) {
            if let Some(members) = room_map.get(r) {
                for &m in members {
                    let s = &mut sockets[m];
                    if s.mark != seq {
                        s.mark = seq;
                        recipients.push(m);
                    }
                }
            } else if let Some(m) = sid_room(r) {
                let s = &mut sockets[m];
                if s.ns == ns && s.mark != seq {
                    s.mark = seq;
                    recipients.push(m);
                }
            }
        }
        if recipients.len() > 32 {
            // Write in key order, which is connection order: the kernel allocated each
            // socket's state in that order too, so the pass walks memory far more
            // sequentially than the room set's hash order. Measured at N=10,000: 7.1 -> 5.7 us
            // of server CPU per write (bench/write-cost.sh 10000 5), for a sort of ~0.1 ms.
            recipients.sort_unstable();
        }
        let mut delivered = 0;
        for &m in &recipients {
            let Some(socket) = self.sockets.get(m) else {
                continue;
            };
            let s = socket.session;
            if t.volatile && self.backlog(s) > VOLATILE_BACKLOG {
                continue;
            }
            if self.send(s, msg) {
                delivered += 1;
            }
        }
        self.metrics.record_fanout(delivered as u64);
        self.scratch = recipients;
        delivered
    }

    /// Sockets of namespace `ns` in any of `rooms` (all of them when `rooms` is empty) and in
    /// none of `except`.
    pub(crate) fn select_sockets(
        &self,
        ns: usize,
        rooms: &[String],
        except: &[String],
    ) -> Vec<usize> {
        let room_map = &self.namespaces[ns].rooms;
        let members = |r: &String| -> Vec<usize> {
            match room_map.get(r) {
                Some(m) => m.iter().copied().collect(),
                None => self
                    .socket_ids
                    .get(r)
                    .copied()
                    .filter(|&s| self.sockets[s].ns == ns)
                    .into_iter()
                    .collect(),
            }
        };
        let excluded: std::collections::HashSet<usize> = except.iter().flat_map(members).collect();
        let mut out: Vec<usize> = if rooms.is_empty() {
            self.sockets
                .iter()
                .filter(|(_, s)| s.ns == ns)
                .map(|(k, _)| k)
                .collect()
        } else {
            rooms.iter().flat_map(members).collect()
        };
        out.sort_unstable();
        out.dedup();
        out.retain(|s| !excluded.contains(s));
        out
    }

    /// Emits an event to one socket.
    pub(crate) fn emit_to(
        &mut self,
        sock: usize,
        name: &str,
        args: &[Value],
        attachments: Vec<Bytes>,
    ) {
        let Some(socket) = self.sockets.get(sock) else {
            return;
        };
        let msg = sio::event(&self.namespaces[socket.ns].name, name, args, attachments);
        let s = socket.session;
        self.send(s, &Rc::new(msg));
    }

    /// Answers a client's ack request.
    pub(crate) fn ack(&mut self, sock: usize, id: u64, args: Vec<Value>, attachments: Vec<Bytes>) {
        let Some(socket) = self.sockets.get(sock) else {
            return;
        };
        let msg = sio::message(
            PacketType::Ack,
            &self.namespaces[socket.ns].name,
            Some(id),
            Some(&Value::Array(args)),
            attachments,
        );
        let s = socket.session;
        self.send(s, &Rc::new(msg));
    }
}
