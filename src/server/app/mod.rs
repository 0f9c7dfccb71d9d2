//! Application layer: what the server does when a socket connects, emits or leaves. The
//! platform's features live in the submodules (`rooms`, `presence`, `chat`, `calls`,
//! `collab`); the built-in profiles (diagnostics `echo`, the conformance reference server,
//! the benchmark relay) are handled here. The event contract is docs/EVENTS.md.

mod calls;
mod chat;
mod collab;
mod presence;
mod rooms;
pub mod validate;

use super::sio::Target;
use super::Server;
use crate::config::Profile;
use crate::store::ratelimit::{Buckets, Class};
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::time::Instant;
use validate::{Outcome, Payload, Refusal};

pub use calls::Call;
pub use collab::Quiz;

/// The room every socket of the bench profile joins.
pub const BENCH_ROOM: &str = "bench";
/// Refusal code of a handler that answers later; never sent.
pub const DEFERRED: &str = "deferred";
/// Refusals within a minute after which a socket is disconnected for abuse.
pub const ABUSE_REFUSALS: u32 = 100;

/// Feature state that is not a store: typing indicators, calls, document sequence numbers,
/// quizzes, classes waiting for a viewer-count update.
#[derive(Debug, Default)]
pub struct State {
    /// (user, conversation) -> the typing indicator.
    pub typing: HashMap<(String, String), Typing>,
    pub calls: HashMap<String, Call>,
    pub doc_seq: HashMap<String, u64>,
    pub quizzes: HashMap<String, Quiz>,
    pub classes_dirty: HashSet<String>,
}

#[derive(Debug)]
pub struct Typing {
    pub socket: usize,
    pub gen: u64,
    pub last_relay: Instant,
}

/// The rate-limit class of a client event; `None` for an unknown event.
fn class_of(name: &str) -> Option<Class> {
    Some(match name {
        "room:join" | "room:leave" => Class::Rooms,
        "presence:subscribe" | "presence:unsubscribe" => Class::Presence,
        "typing:start" | "typing:stop" => Class::Typing,
        "message:new" | "message:delivered" | "message:read" | "reaction:add"
        | "reaction:remove" | "notification:read" | "class:message" | "file:shared" => Class::Chat,
        "call:invite" | "call:accept" | "call:reject" | "call:end" | "call:signal" => Class::Signal,
        "document:edit" | "document:cursor" | "whiteboard:stroke" => Class::Collab,
        "quiz:answer" | "class:join" | "class:leave" => Class::Other,
        _ => return None,
    })
}

impl Server {
    /// A socket has connected to a namespace.
    pub(crate) fn on_connect(&mut self, sock: usize, auth: &Value) {
        match self.config.profile {
            Profile::Conformance => {
                self.emit_to(sock, "auth", std::slice::from_ref(auth), Vec::new())
            }
            Profile::Bench => {
                self.join(sock, BENCH_ROOM);
            }
            Profile::Production => {
                // Sending the CONNECT reply (and missed packets) may have closed a slow client.
                if self.sockets.get(sock).is_some_and(|x| x.ns == 0) {
                    self.presence_connected(sock);
                    self.deliver_mailbox(sock);
                }
            }
        }
    }

    /// A socket is about to be removed (it is still in its rooms).
    pub(crate) fn on_disconnect(&mut self, sock: usize) {
        if self.config.profile != Profile::Production {
            return;
        }
        self.typing_socket_gone(sock);
        self.calls_socket_gone(sock);
        if self.sockets.get(sock).is_some_and(|x| x.ns == 0) {
            self.presence_disconnected(sock);
        }
    }

    /// A socket emitted `name` with `args` (placeholders for `attachments`), asking for an
    /// ack when `ack` is set.
    pub(crate) fn on_event(
        &mut self,
        sock: usize,
        name: &str,
        args: Vec<Value>,
        attachments: Vec<Bytes>,
        ack: Option<u64>,
    ) {
        match (self.config.profile, name) {
            (Profile::Conformance, "message") => {
                self.emit_to(sock, "message-back", &args, attachments)
            }
            (Profile::Conformance, "message-with-ack") => {
                if let Some(id) = ack {
                    self.ack(sock, id, args, attachments);
                }
            }
            (Profile::Bench, "bench:publish") => {
                // bench/CONTRACT.md: relay to the payload's `room`, else to `bench`.
                let ns = self.sockets[sock].ns;
                let room = args
                    .first()
                    .and_then(|p| p.get("room"))
                    .and_then(Value::as_str)
                    .unwrap_or(BENCH_ROOM);
                let rooms = [room.to_owned()];
                self.broadcast_event(
                    ns,
                    "bench:msg",
                    args,
                    attachments,
                    Target {
                        rooms: &rooms,
                        ..Target::default()
                    },
                );
            }
            (Profile::Bench, "bench:join") => {
                if let Some(Value::String(room)) = args.first() {
                    let room = room.clone();
                    self.join(sock, &room);
                }
                if let Some(id) = ack {
                    self.ack(sock, id, Vec::new(), Vec::new());
                }
            }
            (_, "echo") if self.config.diagnostics => {
                if let Some(id) = ack {
                    self.ack(sock, id, args, attachments);
                }
            }
            (Profile::Production, _) => {
                self.current_ack = ack;
                let outcome = self.feature_event(sock, name, args, attachments);
                self.reply(sock, name, ack, outcome);
            }
            _ => {
                self.metrics.unknown_events += 1;
                let outcome = Err(Refusal::new(
                    "unknown_event",
                    format!("no handler for {name:?}"),
                ));
                self.reply(sock, name, ack, outcome);
            }
        }
    }

    /// Runs a platform event through the common checks, then its handler.
    fn feature_event(
        &mut self,
        sock: usize,
        name: &str,
        mut args: Vec<Value>,
        attachments: Vec<Bytes>,
    ) -> Outcome {
        let Some(class) = class_of(name) else {
            self.metrics.unknown_events += 1;
            log::debug!(
                "unknown event {name:?} from socket {}",
                self.sockets[sock].id
            );
            // Unknown events spend the `other` budget too, so a flood of them ends in a
            // disconnect like any other abuse.
            if !self.take_token(sock, Class::Other) {
                self.metrics.rate_limited += 1;
                return Err(Refusal::new("rate_limited", "too many events; slow down"));
            }
            return Err(Refusal::new(
                "unknown_event",
                format!("no handler for {name:?}"),
            ));
        };
        if !self.take_token(sock, class) {
            self.metrics.rate_limited += 1;
            return Err(Refusal::new("rate_limited", "too many events; slow down"));
        }
        let Some(user) = self.sockets[sock].user.clone() else {
            return Err(Refusal::forbidden("authentication required"));
        };
        let mut p = Payload::from_args(&mut args)?;
        let event_id = match p.take("eventId") {
            None | Some(Value::Null) => None,
            Some(Value::String(eid)) if !eid.is_empty() && eid.len() <= 128 => Some(eid),
            Some(_) => {
                return Err(Refusal::invalid(
                    "`eventId` must be a string of 1 to 128 characters",
                ))
            }
        };
        if let Some(eid) = &event_id {
            if self.dedup.seen(&user, eid, Instant::now()) {
                self.metrics.duplicate_events += 1;
                return Ok(json!({"ok": true, "duplicate": true}));
            }
        }
        let outcome = self.run_handler(sock, &user, name, p, attachments);
        // Only an event that took effect makes its retries duplicates; a refused one may be
        // retried (after joining the room, say).
        if let (Some(eid), Ok(_)) = (&event_id, &outcome) {
            self.dedup.record(&user, eid, Instant::now());
        }
        outcome
    }

    fn run_handler(
        &mut self,
        sock: usize,
        user: &str,
        name: &str,
        p: Payload,
        attachments: Vec<Bytes>,
    ) -> Outcome {
        match name {
            "room:join" => self.room_join(sock, user, &p),
            "room:leave" => self.room_leave(sock, &p),
            "presence:subscribe" => self.presence_subscribe(sock, &p),
            "presence:unsubscribe" => self.presence_unsubscribe(sock, &p),
            "typing:start" => self.typing_start(sock, user, &p),
            "typing:stop" => self.typing_stop(sock, user, &p),
            "message:new" => self.message_new(sock, user, &p),
            "message:delivered" | "message:read" => self.receipt(sock, user, name, &p),
            "reaction:add" | "reaction:remove" => self.reaction(sock, user, name, &p),
            "notification:read" => self.notification_read(user, &p),
            "call:invite" => self.call_invite(sock, user, &p),
            "call:accept" => self.call_accept(sock, user, &p),
            "call:reject" => self.call_reject(sock, user, &p),
            "call:end" => self.call_end(sock, user, &p),
            "call:signal" => self.call_signal(sock, user, p),
            "document:edit" => self.document_edit(sock, user, p, attachments),
            "document:cursor" => self.document_cursor(sock, user, p),
            "whiteboard:stroke" => self.whiteboard_stroke(sock, user, p, attachments),
            "file:shared" => self.file_shared(sock, user, &p),
            "quiz:answer" => self.quiz_answer(sock, user, &p),
            "class:join" => self.class_join(sock, user, &p),
            "class:leave" => self.class_leave(sock, &p),
            "class:message" => self.class_message(sock, user, &p),
            _ => Err(Refusal::new(
                "unknown_event",
                format!("no handler for {name:?}"),
            )),
        }
    }

    /// Takes a rate-limit token; disconnects a socket that keeps hammering.
    fn take_token(&mut self, sock: usize, class: Class) -> bool {
        let now = Instant::now();
        let limits = self.limits;
        let socket = &mut self.sockets[sock];
        let buckets = socket
            .buckets
            .get_or_insert_with(|| Box::new(Buckets::new(&limits, now)));
        if buckets.take(class, &limits, now) {
            return true;
        }
        if buckets.refusals >= ABUSE_REFUSALS {
            log::warn!(
                "disconnecting socket {} for repeated rate-limit violations",
                socket.id
            );
            self.metrics.abuse_disconnects += 1;
            self.disconnect_socket(sock, "rate limit abuse");
        }
        false
    }

    /// Sends the outcome: as the ack when one was asked for, else refusals as an `error` event.
    pub(crate) fn reply(&mut self, sock: usize, name: &str, ack: Option<u64>, outcome: Outcome) {
        if !self.sockets.contains(sock) {
            return;
        }
        if matches!(&outcome, Err(r) if r.is_deferred()) {
            // The handler answers later (it waits for Redis).
            return;
        }
        match (ack, outcome) {
            (Some(id), Ok(v)) => self.ack(sock, id, vec![v], Vec::new()),
            (Some(id), Err(r)) => {
                self.metrics.refused_events += 1;
                self.ack(
                    sock,
                    id,
                    vec![json!({"ok": false, "error": r.code, "message": r.message})],
                    Vec::new(),
                );
            }
            (None, Ok(_)) => {}
            (None, Err(r)) => {
                self.metrics.refused_events += 1;
                let body = json!({"event": name, "error": r.code, "message": r.message});
                self.emit_to(sock, "error", &[body], Vec::new());
            }
        }
    }

    /// Server-side disconnect of one socket (its session and other namespaces go on).
    pub(crate) fn disconnect_socket(&mut self, sock: usize, reason: &str) {
        let Some(socket) = self.sockets.get(sock) else {
            return;
        };
        let s = socket.session;
        let msg = crate::socketio::message(
            crate::socketio::PacketType::Disconnect,
            &self.namespaces[socket.ns].name,
            None,
            None,
            Vec::new(),
        );
        self.send(s, &std::rc::Rc::new(msg));
        self.remove_socket(sock, reason, false);
    }

    /// Calls whose room this socket leaves for the last time for its user.
    fn calls_socket_gone(&mut self, sock: usize) {
        let Some(socket) = self.sockets.get(sock) else {
            return;
        };
        let Some(user) = socket.user.clone() else {
            return;
        };
        let calls: Vec<String> = socket
            .rooms
            .iter()
            .filter_map(|r| r.strip_prefix("call:"))
            .map(str::to_owned)
            .collect();
        for call in calls {
            let room = format!("call:{call}");
            let others = self.namespaces[0].rooms.get(&room).is_some_and(|m| {
                m.iter().any(|&x| {
                    x != sock
                        && self
                            .sockets
                            .get(x)
                            .is_some_and(|s| s.user.as_deref() == Some(user.as_str()))
                })
            });
            if !others {
                self.call_participant_left(&call, &user);
            }
        }
    }

    /// Joins `room`, refusing when the socket is already in the most rooms it may be in.
    fn join_checked(&mut self, sock: usize, room: &str) -> Result<(), Refusal> {
        if self.join(sock, room) {
            Ok(())
        } else {
            Err(Refusal::new(
                "too_many_rooms",
                format!(
                    "at most {} rooms per socket",
                    crate::server::sio::MAX_ROOMS_PER_SOCKET
                ),
            ))
        }
    }

    /// Whether the socket is in `room`.
    fn in_room(&self, sock: usize, room: &str) -> bool {
        self.sockets[sock].rooms.iter().any(|r| r == room)
    }

    /// Refuses unless the socket is in `room`: sockets emit only into rooms they are in.
    fn require_room(&self, sock: usize, room: &str) -> Result<(), Refusal> {
        if self.in_room(sock, room) {
            Ok(())
        } else {
            Err(Refusal::forbidden(format!("join {room} first")))
        }
    }

    /// Relays an event from a socket to the others in a room of its namespace.
    fn relay(
        &mut self,
        sock: usize,
        room: &str,
        event: &str,
        payload: Value,
        attachments: Vec<Bytes>,
        volatile: bool,
    ) -> usize {
        let ns = self.sockets[sock].ns;
        let rooms = [room.to_owned()];
        let target = Target {
            rooms: &rooms,
            except: &[],
            except_socket: Some(sock),
            volatile,
            ..Target::default()
        };
        self.broadcast_event(ns, event, vec![payload], attachments, target)
    }

    /// Hands a client event to the outbound stream the platform persists.
    fn forward(&mut self, event: &str, key: &str, user: Option<&str>, data: Value) {
        let at = crate::store::now_ms();
        let id = self.outbox.push(
            event,
            key.to_owned(),
            user.map(str::to_owned),
            data.clone(),
            at,
        );
        if self.cluster.kafka.is_some() {
            let record = json!({"id": format!("{}-{id}", self.config.node_id), "event": event, "key": key, "userId": user, "data": data, "at": at});
            self.produce_client_event(key, &record);
        }
    }
}
