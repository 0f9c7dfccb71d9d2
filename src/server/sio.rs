//! Socket.IO sockets on Engine.IO sessions: packets (binary attachments reassembled),
//! DISCONNECT, and the join/leave verbs every room change goes through (so the Redis
//! membership mirror, the recovery session and class viewer counts follow every change).
//! CONNECT (authentication, recovery) is in connect.rs.

use super::engine::{CloseReason, PartialBinary};
use super::Server;
use crate::socketio::packet::{self, Packet};
use crate::socketio::{self as sio, PacketType};
use bytes::Bytes;
use serde_json::Value;
use std::rc::Rc;
use std::time::Instant;

impl Server {
    fn sio_protocol_error(&mut self, s: usize, what: &str) {
        self.metrics.protocol_errors += 1;
        log::warn!(
            "invalid Socket.IO packet on session {}: {what}; closing",
            self.engine.sid(s)
        );
        self.engine.close(s, CloseReason::ProtocolError);
    }

    /// The text of an Engine.IO message on a Socket.IO session.
    pub(crate) fn on_sio_text(&mut self, s: usize, data: &[u8]) {
        if self.engine.partial_mut(s).is_some_and(|p| p.is_some()) {
            return self.sio_protocol_error(s, "text packet while attachments were expected");
        }
        let p = match packet::parse(data) {
            Ok(p) => p,
            Err(e) => return self.sio_protocol_error(s, &e.to_string()),
        };
        let ns_name = p.namespace();
        if let Packet::Connect { auth, .. } = p {
            return self.sio_connect(s, ns_name, auth);
        }
        let Some(sock) = self
            .sockets
            .ns(ns_name)
            .and_then(|ns| self.engine.socket_in(s, ns))
        else {
            return self.sio_protocol_error(s, "packet for a namespace that is not connected");
        };
        match p {
            Packet::Disconnect { .. } => {
                self.remove_socket(sock, "client namespace disconnect", false)
            }
            // Placeholders mean something only in binary packets; here they are data.
            Packet::Event { id, args, .. } => self.on_event(sock, args, Vec::new(), id),
            Packet::Ack { id, args, .. } => self.on_client_ack(sock, id, &args, &[]),
            Packet::BinaryEvent {
                id,
                attachments,
                args,
                ..
            } => self.on_binary_packet(s, sock, false, id, attachments, args),
            Packet::BinaryAck {
                id,
                attachments,
                args,
                ..
            } => self.on_binary_packet(s, sock, true, id, attachments, args),
            Packet::Connect { .. } | Packet::ConnectError { .. } => {
                self.sio_protocol_error(s, "client sent CONNECT_ERROR")
            }
        }
    }

    /// A binary packet: dispatched now when it announces no attachments, else parked until
    /// they arrive.
    fn on_binary_packet(
        &mut self,
        s: usize,
        sock: usize,
        ack: bool,
        id: Option<u64>,
        expected: usize,
        args: Vec<Value>,
    ) {
        if expected == 0 {
            if let Err(e) = packet::check_placeholders(&args, 0) {
                return self.sio_protocol_error(s, &e.to_string());
            }
            return self.dispatch_binary(sock, ack, id, args, Vec::new());
        }
        if let Some(slot) = self.engine.partial_mut(s) {
            *slot = Some(Box::new(PartialBinary {
                socket: sock,
                ack,
                id,
                data: Value::Array(args),
                expected,
                attachments: Vec::with_capacity(expected),
            }));
        }
    }

    /// A binary Engine.IO message: the next attachment of the pending binary packet.
    pub(crate) fn on_sio_binary(&mut self, s: usize, data: Bytes) {
        let max = self.config.max_payload;
        let Some(slot) = self.engine.partial_mut(s) else {
            return;
        };
        let Some(partial) = slot.as_mut() else {
            return self.sio_protocol_error(s, "binary data without a binary packet");
        };
        partial.attachments.push(data);
        // All attachments of one packet together stay within maxPayload.
        let total: usize = partial.attachments.iter().map(Bytes::len).sum();
        if total > max {
            return self
                .sio_protocol_error(s, "binary attachments larger than maxPayload together");
        }
        if partial.attachments.len() < partial.expected {
            return;
        }
        let p = slot.take().expect("checked above");
        let Value::Array(args) = p.data else {
            return self.sio_protocol_error(s, "binary packet payload is not an array");
        };
        if let Err(e) = packet::check_placeholders(&args, p.expected) {
            return self.sio_protocol_error(s, &e.to_string());
        }
        if self.sockets.get(p.socket).is_some() {
            self.dispatch_binary(p.socket, p.ack, p.id, args, p.attachments);
        }
    }

    fn dispatch_binary(
        &mut self,
        sock: usize,
        ack: bool,
        id: Option<u64>,
        args: Vec<Value>,
        attachments: Vec<Bytes>,
    ) {
        if ack {
            self.on_client_ack(sock, id, &args, &attachments);
        } else {
            self.on_event(sock, args, attachments, id);
        }
    }

    /// The server asks for acks only for broadcasts-with-ack from Node nodes
    /// (`cluster::remote`); any other client ack has nothing to resolve.
    fn on_client_ack(&mut self, sock: usize, id: Option<u64>, args: &[Value], bin: &[Bytes]) {
        if id.is_some_and(|id| self.on_remote_ack(sock, id, args, bin)) {
            return;
        }
        let socket = self.sockets.get(sock).map_or("?", |x| x.id.as_str());
        log::debug!("ignoring ack {id:?} from socket {socket}");
    }

    /// Removes a socket from its namespace, rooms and session. `recoverable` saves it for
    /// connection state recovery (a lost transport, not a deliberate disconnect).
    pub(crate) fn remove_socket(&mut self, sock: usize, reason: &str, recoverable: bool) {
        if self.sockets.get(sock).is_none() {
            return;
        }
        self.on_disconnect(sock);
        if self.admin.watching() {
            self.admin_socket_disconnected(sock, reason);
        }
        let joined = self
            .sockets
            .get(sock)
            .map(|x| x.room_list())
            .unwrap_or_default();
        // Its recovery session is written once below, not on every leave.
        self.cluster.rec.removing = Some(sock);
        for room in &joined {
            self.leave(sock, room);
        }
        self.cluster.rec.removing = None;
        let Some(socket) = self.sockets.remove(sock) else {
            return;
        };
        if recoverable && !self.config.recovery_window.is_zero() {
            if let Some(pid) = &socket.pid {
                let saved = crate::store::recovery::Saved {
                    sid: socket.id.to_string(),
                    ns: socket.ns,
                    user: socket.user.clone(),
                    claim_rooms: socket.claim_rooms().to_vec(),
                    rooms: joined,
                    connected_offset: socket.connected_offset,
                    at: Instant::now(),
                };
                self.session_lost(pid, &saved);
                self.stores.recovery.save(pid.to_string(), saved);
            }
        } else if let Some(pid) = &socket.pid {
            self.session_drop(pid);
        }
        self.engine.remove_socket(socket.session, sock);
        log::debug!(
            "socket {} (user {}) disconnected: {reason}",
            socket.id,
            socket.user.as_deref().unwrap_or("anonymous")
        );
    }

    /// Server-side disconnect of one socket (its session and other namespaces go on).
    pub(crate) fn disconnect_socket(&mut self, sock: usize, reason: &str) {
        let Some(socket) = self.sockets.get(sock) else {
            return;
        };
        let s = socket.session;
        let msg = sio::message(
            PacketType::Disconnect,
            self.sockets.ns_name(socket.ns),
            None,
            None,
            Vec::new(),
        );
        self.send(s, &Rc::new(msg));
        self.remove_socket(sock, reason, false);
    }

    /// Adds the socket to `room`. Returns `false` when the socket is gone or already in
    /// [`super::sockets::MAX_ROOMS_PER_SOCKET`] rooms.
    pub(crate) fn join(&mut self, sock: usize, room: &str) -> bool {
        match self.sockets.join(sock, room) {
            Some(true) => {
                self.room_changed(sock, room, 1);
                true
            }
            Some(false) => true,
            None => false,
        }
    }

    pub(crate) fn leave(&mut self, sock: usize, room: &str) {
        if self.sockets.leave(sock, room) {
            self.room_changed(sock, room, -1);
        }
    }

    /// What every join and leave updates beside the room maps: the Admin UI, the Redis
    /// membership mirror and a class's viewer count.
    fn room_changed(&mut self, sock: usize, room: &str, delta: i32) {
        if self.admin.watching() {
            self.admin_room_changed(sock, room, delta);
        }
        self.membership_changed(sock, room, delta);
        self.session_rooms(sock);
        if let Some(class) = room.strip_prefix("class:") {
            self.class_changed(class);
        }
    }

    /// Emits an event to one socket.
    pub(crate) fn emit_to(&mut self, sock: usize, name: &str, args: &[Value], att: Vec<Bytes>) {
        let Some(socket) = self.sockets.get(sock) else {
            return;
        };
        let msg = sio::event(self.sockets.ns_name(socket.ns), name, args, att);
        let s = socket.session;
        self.send(s, &Rc::new(msg));
    }

    /// Answers a client's ack request.
    pub(crate) fn ack(&mut self, sock: usize, id: u64, args: &[Value], attachments: Vec<Bytes>) {
        let Some(socket) = self.sockets.get(sock) else {
            return;
        };
        let msg = sio::ack(self.sockets.ns_name(socket.ns), id, args, attachments);
        let s = socket.session;
        self.send(s, &Rc::new(msg));
    }
}
