//! The one delivery path. Whatever asks for a delivery (the internal API, a Kafka record, a
//! broadcast from another node or the emitter, an application relay) describes it as one
//! [`Emit`] and calls [`Server::deliver`], which:
//!
//! 1. maps `users` to their `user:<id>` rooms;
//! 2. runs the delivery hooks of external events (a `quiz:update` opens or closes a question;
//!    a `notification:new` is queued in the mailbox of each targeted user who is offline);
//! 3. with the recovery log in Redis (`cluster::log`), a non-volatile broadcast made here or
//!    read from Kafka is logged and published by one script and delivered when the logged
//!    copy comes back (its entry id is its offset on every node); else
//! 4. publishes it for the other nodes (unless it is local or came from one);
//! 5. gives it an in-process recovery offset (unless volatile, logged in Redis, or recovery
//!    is off);
//! 6. encodes it once and queues the same buffer on every selected recipient;
//! 7. keeps it for replay if some socket could be owed it (one was selected, or a saved
//!    session is in its rooms).
//!
//! Arguments are borrowed all the way: nothing is cloned to publish, log or encode.

use super::engine::Sink;
use super::sockets::Target;
use super::Server;
use crate::engineio::wire::Outbound;
use bytes::Bytes;
use serde_json::Value;
use std::borrow::Cow;
use std::rc::Rc;

/// A recipient further behind than this skips volatile messages.
const VOLATILE_BACKLOG: usize = 64 * 1024;

/// Where a delivery comes from: decides its hooks and whether it is published.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Origin {
    /// An application handler relaying a client event (published to other nodes).
    #[default]
    App,
    /// `POST /api/emit` (hooks run; published to other nodes).
    Api,
    /// A Kafka record (hooks run with its id for exactly-once mailboxing; every node reads
    /// Kafka, so it is delivered locally only).
    Kafka { id: String },
    /// Another node or the emitter via Redis (local only; the publisher ran the hooks).
    Remote,
}

/// One delivery, as plain data.
#[derive(Debug, Default)]
pub struct Emit {
    pub ns: usize,
    pub event: String,
    pub args: Vec<Value>,
    pub attachments: Vec<Bytes>,
    pub rooms: Vec<String>,
    /// Users, each meaning the room `user:<id>`.
    pub users: Vec<String>,
    pub except: Vec<String>,
    pub except_socket: Option<usize>,
    /// May be dropped for recipients that are behind, and is never kept for recovery.
    pub volatile: bool,
    /// Every socket of the namespace (`io.emit`); `rooms` and `users` are then ignored.
    pub all: bool,
    pub origin: Origin,
    /// The recovery log entry id of a broadcast logged in Redis (its offset everywhere).
    pub offset: Option<String>,
}

impl Emit {
    /// An event from the application to `rooms` of namespace `ns`.
    pub fn to_rooms(ns: usize, event: &str, args: Vec<Value>, rooms: Vec<String>) -> Self {
        Emit {
            ns,
            event: event.to_owned(),
            args,
            rooms,
            ..Emit::default()
        }
    }

    fn local(&self) -> bool {
        matches!(self.origin, Origin::Kafka { .. } | Origin::Remote)
    }
}

impl Server {
    /// Queues bytes on a connection under the outbound limit (see [`super::io::Io::queue`]).
    pub(crate) fn queue(&mut self, key: usize, bytes: Bytes) -> bool {
        let limit = self.config.max_outbound_bytes;
        self.io.queue(key, bytes, limit, &mut self.metrics)
    }

    /// Queues a message for a session (see [`super::engine::Engine::send`]).
    pub(crate) fn send(&mut self, s: usize, msg: &Rc<Outbound>) -> bool {
        let mut sink = Sink {
            io: &mut self.io,
            metrics: &mut self.metrics,
            limit: self.config.max_outbound_bytes,
        };
        self.engine.send(s, msg, &mut sink)
    }

    /// Delivers `e` (see the module doc); returns how many sockets it was queued for.
    pub(crate) fn deliver(&mut self, e: &Emit) -> usize {
        let rooms: Cow<'_, [String]> = if e.users.is_empty() {
            Cow::Borrowed(&e.rooms)
        } else {
            let mut r = e.rooms.clone();
            r.extend(e.users.iter().map(|u| format!("user:{u}")));
            Cow::Owned(r)
        };
        if matches!(e.origin, Origin::Api | Origin::Kafka { .. }) {
            self.delivery_hooks(e, &rooms);
        }
        let mut except: Cow<'_, [String]> = Cow::Borrowed(&e.except);
        if let Some(id) = e.except_socket.and_then(|x| self.sockets.get(x)) {
            except.to_mut().push(id.id.to_string());
        }
        let recovery_on = !self.config.recovery_window.is_zero();
        if recovery_on && !e.volatile && e.offset.is_none() && self.log_ready() {
            let logged = match &e.origin {
                Origin::App | Origin::Api => self.log_own(e, &rooms, &except),
                Origin::Kafka { id } => self.log_kafka(e, &rooms, id),
                Origin::Remote => false,
            };
            if logged {
                // Delivered when the logged copy comes back, in log order (cluster::log).
                return match e.origin {
                    Origin::Api => self.count_targets(e, &rooms),
                    _ => 0,
                };
            }
        }
        if !e.local() {
            self.publish(e, &rooms, &except);
        }
        // An in-process offset only while the log is not in Redis (ids of both kinds never
        // reach one client in one stretch).
        let local_offset = (recovery_on && !e.volatile && e.offset.is_none() && !self.log_ready())
            .then(|| self.stores.recovery.allocate());
        let tail = match (&e.offset, local_offset) {
            (Some(id), _) if recovery_on => Some(Value::String(id.clone())),
            (_, Some(o)) => Some(Value::String(o.to_string())),
            _ => None,
        };
        let msg = Rc::new(crate::socketio::event_with(
            self.sockets.ns_name(e.ns),
            &e.event,
            &e.args,
            tail.as_ref(),
            e.attachments.clone(),
        ));
        let mut skip: Cow<'_, [String]> = Cow::Borrowed(&e.except);
        if let (Some(id), true) = (&e.offset, recovery_on) {
            self.capture_for_recoveries(e.ns, id, &msg, e.all, &rooms, &except);
            let replayed = self.replayed_already(e.ns, id);
            if !replayed.is_empty() {
                skip.to_mut().extend(replayed);
            }
        }
        let target = Target {
            rooms: &rooms,
            except: &skip,
            except_socket: e.except_socket,
            volatile: e.volatile,
            all: e.all,
        };
        let (selected, delivered) = self.fan_out(e.ns, &msg, &target);
        if let Some(offset) = local_offset {
            self.keep_for_replay(offset, e, &rooms, &except, &msg, selected > 0);
        }
        delivered
    }

    /// Keeps a broadcast with an in-process offset for replay, unless nobody could be owed
    /// it: it selected no socket here (each selected one may lose it with its transport) and
    /// no saved session is in its rooms. A connect's `user:online` to a user nobody follows
    /// is the common case: ~400 bytes per connect for the window otherwise.
    fn keep_for_replay(
        &mut self,
        offset: u64,
        e: &Emit,
        rooms: &[String],
        except: &[String],
        msg: &Rc<Outbound>,
        selected_any: bool,
    ) {
        if !selected_any && !self.stores.recovery.may_owe(e.ns, e.all, rooms) {
            self.metrics.recovery_unowed += 1;
            return;
        }
        self.stores.recovery.store(crate::store::recovery::Stored {
            offset,
            ns: e.ns,
            all: e.all,
            rooms: rooms.to_vec(),
            except: except.to_vec(),
            at: std::time::Instant::now(),
            msg: Rc::clone(msg),
        });
    }

    /// How many sockets here `e` selects (the answer of `POST /api/emit` whose delivery waits
    /// for the recovery log).
    fn count_targets(&mut self, e: &Emit, rooms: &[String]) -> usize {
        let mut recipients = self.sockets.take_scratch();
        let target = Target {
            rooms,
            except: &e.except,
            except_socket: e.except_socket,
            volatile: false,
            all: e.all,
        };
        self.sockets
            .select(e.ns, &target, |_| false, &mut recipients);
        let n = recipients.len();
        self.sockets.put_scratch(recipients);
        n
    }

    /// Queues an encoded message on every socket `t` selects in namespace `ns`; returns how
    /// many were selected and for how many it was queued.
    fn fan_out(&mut self, ns: usize, msg: &Rc<Outbound>, t: &Target<'_>) -> (usize, usize) {
        let mut recipients = self.sockets.take_scratch();
        let (engine, io) = (&self.engine, &self.io);
        let behind = |session: usize| engine.backlog(session, io) > VOLATILE_BACKLOG;
        self.sockets.select(ns, t, behind, &mut recipients);
        let mut delivered = 0;
        for &m in &recipients {
            let Some(s) = self.sockets.get(m).map(|x| x.session) else {
                continue;
            };
            if self.send(s, msg) {
                delivered += 1;
            }
        }
        self.metrics.record_fanout(delivered as u64);
        let selected = recipients.len();
        self.sockets.put_scratch(recipients);
        (selected, delivered)
    }

    /// Hooks of events that come from the platform (API, Kafka).
    fn delivery_hooks(&mut self, e: &Emit, rooms: &[String]) {
        let Some(data) = e.args.first() else {
            return;
        };
        if e.event == "quiz:update" {
            self.quiz_control(data);
        }
        if e.event == "notification:new" && e.ns == 0 {
            let event_id = match &e.origin {
                Origin::Kafka { id } => Some(id.as_str()),
                _ => None,
            };
            self.queue_offline(rooms, &e.except, data, event_id);
        }
    }

    /// Queues a notification for each `user:<id>` target (not excluded) with no socket here;
    /// with Redis the queueing also checks the user is offline on every node.
    fn queue_offline(
        &mut self,
        rooms: &[String],
        except: &[String],
        data: &Value,
        event_id: Option<&str>,
    ) {
        for room in rooms {
            if except.contains(room) {
                continue;
            }
            let Some(user) = room.strip_prefix("user:") else {
                continue;
            };
            if self.sockets.room_len(0, room) == 0 {
                self.mailbox_push(user, data, event_id);
            }
        }
    }
}
