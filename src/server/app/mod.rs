//! Application layer: what the server does when a socket connects, emits or leaves. The
//! platform's features live in the submodules (`rooms`, `presence`, `chat`, `calls`,
//! `collab`); the built-in profiles (diagnostics `echo`, the conformance reference server,
//! the benchmark relay) are handled here. The event contract is docs/EVENTS.md.

mod calls;
mod chat;
mod collab;
pub mod events;
mod presence;
mod rooms;
pub mod validate;

use super::deliver::Emit;
use super::Server;
use crate::config::Profile;
use crate::store::ratelimit::{Buckets, Class};
use bytes::Bytes;
use events::{event_name, Call, Event, Outcome, Reply};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::time::Instant;
use validate::{Payload, Refusal};

pub use calls::LiveCall;
pub use collab::Quiz;

/// The room every socket of the bench profile joins.
pub const BENCH_ROOM: &str = "bench";
/// Refusals within a minute after which a socket is disconnected for abuse.
pub const ABUSE_REFUSALS: u32 = 100;

/// Feature state that is not a store: typing indicators, calls, document sequence numbers,
/// quizzes, classes waiting for a viewer-count update.
#[derive(Debug, Default)]
pub struct State {
    /// (user, conversation) -> the typing indicator.
    pub typing: HashMap<(String, String), Typing>,
    pub calls: HashMap<String, LiveCall>,
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

impl Server {
    /// A socket has connected to a namespace.
    pub(crate) fn on_connect(&mut self, sock: usize, auth: &Value) {
        if self
            .sockets
            .get(sock)
            .is_some_and(|x| self.admin.is_ns(x.ns))
        {
            // Admin UI sockets get the admin protocol only (`admin_accept`).
            return;
        }
        match self.config.profile {
            Profile::Conformance => {
                self.emit_to(sock, "auth", std::slice::from_ref(auth), Vec::new())
            }
            Profile::Bench => {
                self.join(sock, BENCH_ROOM);
            }
            Profile::Production => {
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

    /// A socket emitted `args` (its first element the event name; placeholders for
    /// `attachments`), asking for an ack when `ack` is set.
    pub(crate) fn on_event(
        &mut self,
        sock: usize,
        mut args: Vec<Value>,
        attachments: Vec<Bytes>,
        ack: Option<u64>,
    ) {
        if args.is_empty() {
            return;
        }
        if self
            .sockets
            .get(sock)
            .is_some_and(|x| self.admin.is_ns(x.ns))
        {
            return self.admin_command(sock, args);
        }
        let first = args.remove(0);
        let name = event_name(&first);
        match (self.config.profile, name.as_ref()) {
            (Profile::Conformance, "message") => {
                self.emit_to(sock, "message-back", &args, attachments)
            }
            (Profile::Conformance, "message-with-ack") => {
                if let Some(id) = ack {
                    self.ack(sock, id, &args, attachments);
                }
            }
            (Profile::Bench, "bench:publish") => self.bench_publish(sock, args, attachments),
            (Profile::Bench, "bench:join") => {
                if let Some(Value::String(room)) = args.first() {
                    let room = room.clone();
                    self.join(sock, &room);
                }
                if let Some(id) = ack {
                    self.ack(sock, id, &[], Vec::new());
                }
            }
            (_, "echo") if self.config.diagnostics => {
                if let Some(id) = ack {
                    self.ack(sock, id, &args, attachments);
                }
            }
            (Profile::Production, _) => {
                let outcome = self.feature_event(sock, &name, ack, args, attachments);
                self.reply(sock, &name, ack, outcome);
            }
            _ => {
                self.metrics.unknown_events += 1;
                let outcome = Err(Refusal::new(
                    "unknown_event",
                    format!("no handler for {name:?}"),
                ));
                self.reply(sock, &name, ack, outcome);
            }
        }
    }

    /// bench/CONTRACT.md: relay to the payload's `room`, else to `bench`.
    fn bench_publish(&mut self, sock: usize, args: Vec<Value>, attachments: Vec<Bytes>) {
        let Some(ns) = self.sockets.get(sock).map(|x| x.ns) else {
            return;
        };
        let room = args
            .first()
            .and_then(|p| p.get("room"))
            .and_then(Value::as_str)
            .unwrap_or(BENCH_ROOM)
            .to_owned();
        let mut e = Emit::to_rooms(ns, "bench:msg", args, vec![room]);
        e.attachments = attachments;
        self.deliver(&e);
    }

    /// Runs a platform event through the common checks, then its handler.
    fn feature_event(
        &mut self,
        sock: usize,
        name: &str,
        ack: Option<u64>,
        mut args: Vec<Value>,
        attachments: Vec<Bytes>,
    ) -> Outcome {
        let Some(event) = Event::parse(name) else {
            self.metrics.unknown_events += 1;
            log::debug!("unknown event {name:?} from socket {sock}");
            // Unknown events spend the `other` budget too, so a flood of them ends in a
            // disconnect like any other abuse.
            self.take_token(sock, Class::Other)?;
            return Err(Refusal::new(
                "unknown_event",
                format!("no handler for {name:?}"),
            ));
        };
        self.take_token(sock, event.class())?;
        let Some(user) = self.sockets.user(sock).map(str::to_owned) else {
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
            if self.stores.dedup.seen(&user, eid, Instant::now()) {
                self.metrics.duplicate_events += 1;
                return events::ack(json!({"ok": true, "duplicate": true}));
            }
        }
        let mut call = Call {
            event,
            sock,
            user,
            ack,
            p,
            attachments,
        };
        let outcome = event.handle(self, &mut call);
        // Only an event that took effect makes its retries duplicates; a refused one may be
        // retried (after joining the room, say).
        if let (Some(eid), Ok(_)) = (&event_id, &outcome) {
            self.stores.dedup.record(&call.user, eid, Instant::now());
        }
        outcome
    }

    /// Takes a rate-limit token; disconnects a socket that keeps hammering.
    fn take_token(&mut self, sock: usize, class: Class) -> Result<(), Refusal> {
        let now = Instant::now();
        let limits = self.stores.limits;
        let Some(buckets) = self.sockets.buckets(sock, || Buckets::new(&limits, now)) else {
            return Err(Refusal::forbidden("socket is gone"));
        };
        if buckets.take(class, &limits, now) {
            return Ok(());
        }
        let abusive = buckets.refusals >= ABUSE_REFUSALS;
        self.metrics.rate_limited += 1;
        if abusive {
            log::warn!("disconnecting socket {sock} for repeated rate-limit violations");
            self.metrics.abuse_disconnects += 1;
            self.disconnect_socket(sock, "rate limit abuse");
        }
        Err(Refusal::new("rate_limited", "too many events; slow down"))
    }

    /// Sends the outcome: as the ack when one was asked for, else refusals as an `error` event.
    pub(crate) fn reply(&mut self, sock: usize, name: &str, ack: Option<u64>, outcome: Outcome) {
        if self.sockets.get(sock).is_none() {
            return;
        }
        match (ack, outcome) {
            // The handler answers later itself (it waits for Redis).
            (_, Ok(Reply::Later)) => {}
            (Some(id), Ok(Reply::Ack(v))) => self.ack(sock, id, &[v], Vec::new()),
            (Some(id), Err(r)) => {
                self.metrics.refused_events += 1;
                let body = json!({"ok": false, "error": r.code, "message": r.message});
                self.ack(sock, id, &[body], Vec::new());
            }
            (None, Ok(Reply::Ack(_))) => {}
            (None, Err(r)) => {
                self.metrics.refused_events += 1;
                let body = json!({"event": name, "error": r.code, "message": r.message});
                self.emit_to(sock, "error", &[body], Vec::new());
            }
        }
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
            .rooms()
            .iter()
            .filter_map(|r| r.strip_prefix("call:"))
            .map(str::to_owned)
            .collect();
        for call in calls {
            let room = format!("call:{call}");
            let others = self
                .sockets
                .members(0, &room)
                .into_iter()
                .any(|x| x != sock && self.sockets.user(x) == Some(user.as_str()));
            if !others {
                self.call_participant_left(&call, &user);
            }
        }
    }

    /// Joins `room`, refusing when the socket is already in the most rooms it may be in.
    pub(crate) fn join_checked(&mut self, sock: usize, room: &str) -> Result<(), Refusal> {
        if self.join(sock, room) {
            Ok(())
        } else {
            Err(Refusal::new(
                "too_many_rooms",
                format!(
                    "at most {} rooms per socket",
                    crate::server::sockets::MAX_ROOMS_PER_SOCKET
                ),
            ))
        }
    }

    /// Refuses unless the socket is in `room`: sockets emit only into rooms they are in.
    fn require_room(&self, sock: usize, room: &str) -> Result<(), Refusal> {
        if self.sockets.in_room(sock, room) {
            Ok(())
        } else {
            Err(Refusal::forbidden(format!("join {room} first")))
        }
    }

    /// Relays an event from a socket to the others in a room of its namespace; gives the
    /// payload back (it was encoded, not copied) for forwarding.
    fn relay(&mut self, sock: usize, room: &str, event: &str, payload: Value) -> Value {
        self.relay_with(sock, room, event, payload, Vec::new(), false)
    }

    fn relay_with(
        &mut self,
        sock: usize,
        room: &str,
        event: &str,
        payload: Value,
        attachments: Vec<Bytes>,
        volatile: bool,
    ) -> Value {
        let ns = self.sockets.get(sock).map_or(0, |x| x.ns);
        let mut e = Emit::to_rooms(ns, event, vec![payload], vec![room.to_owned()]);
        e.attachments = attachments;
        e.except_socket = Some(sock);
        e.volatile = volatile;
        self.deliver(&e);
        e.args.pop().unwrap_or(Value::Null)
    }

    /// Hands a client event to the outbound stream the platform persists: the Kafka record
    /// is serialized from borrowed parts, then the data moves into the outbox.
    fn forward(&mut self, event: &str, key: &str, user: Option<&str>, data: Value) {
        #[derive(serde::Serialize)]
        struct Record<'a> {
            id: String,
            event: &'a str,
            key: &'a str,
            #[serde(rename = "userId")]
            user_id: Option<&'a str>,
            data: &'a Value,
            at: u64,
        }
        let at = crate::store::now_ms();
        let id = self.stores.outbox.next_id();
        if self.cluster.kafka.is_some() {
            let record = Record {
                id: format!("{}-{id}", self.config.node_id),
                event,
                key,
                user_id: user,
                data: &data,
                at,
            };
            let bytes = serde_json::to_vec(&record).expect("serializing a Value cannot fail");
            self.produce_client_event(key, bytes);
        }
        let pushed =
            self.stores
                .outbox
                .push(event, key.to_owned(), user.map(str::to_owned), data, at);
        debug_assert_eq!(pushed, id);
    }
}
