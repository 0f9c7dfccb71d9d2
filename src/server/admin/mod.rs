//! The Socket.IO Admin UI (`@socket.io/admin-ui`) on its own namespace, speaking what the
//! reference's `instrument()` speaks (its lib/index.ts and lib/typed-events.ts):
//!
//! ```text
//! CONNECT /admin {username, password} | {sessionId}   -> CONNECT_ERROR {"message":"invalid credentials"}
//!                                                       or CONNECT, then
//! session(sessionId)       basic auth with a password only, as the reference
//! config({supportedFeatures})
//! all_sockets([SerializedSocket])
//! server_stats({serverId, hostname, pid, uptime, clientsCount, pollingClientsCount,
//!               aggregatedEvents, namespaces})            now, then every 2 s
//! socket_connected(socket, date)  socket_updated({id, nsp, transport})
//! socket_disconnected(nsp, id, reason, date)
//! room_joined(nsp, room, id, date)  room_left(nsp, room, id, date)
//! <- emit(nsp, filter, ev, ...args)  join(nsp, room, filter)  leave(nsp, room, filter)
//!    _disconnect(nsp, close, filter)                      (commands.rs)
//! ```
//!
//! The namespace exists only when configured (`Config::admin`). Admin sockets authenticate
//! with the CONNECT auth, never with the client token path. Every hook in the other flows is
//! guarded by [`Admin::watching`] (is any admin connected?), so with no admin the namespace
//! costs one comparison per connect, disconnect and room change, and nothing per packet:
//! the aggregated counts are read from the metrics counters by the 2 s stats timer. The
//! bcrypt check runs on a helper thread (login.rs); the CONNECT waits parked meanwhile.
//! `event_received` / `event_sent` (message contents) are not sent.

mod commands;
mod login;
mod stats;

use super::deliver::Emit;
use super::sockets::Socket;
use super::Server;
use crate::socketio::{self as sio, PacketType};
use crate::timer::Timer;
use serde_json::{json, Value};
use stats::Snapshot;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The reference emits `server_stats` this often.
const STATS_EVERY: Duration = Duration::from_secs(2);
/// Session ids handed out after a password login, kept so the UI's reconnect with
/// `{sessionId}` skips the bcrypt check (the reference's in-memory store; bounded here).
const MAX_SESSIONS: usize = 256;
/// The reference's exact refusal; the UI shows "Invalid credentials" only for this message.
pub const INVALID_CREDENTIALS: &str = "invalid credentials";
/// The reference truncates the Engine.IO id it shows as `clientId` (the full id is a
/// credential for the polling transport).
const CLIENT_ID_LEN: usize = 12;

/// Admin UI state: which admin sockets watch, the sessions handed out, the stats baseline.
#[derive(Debug)]
pub struct Admin {
    /// The admin namespace's index, when configured.
    ns: Option<usize>,
    /// Admin sockets that got their `config`, in connect order.
    watchers: Vec<usize>,
    sessions: VecDeque<String>,
    /// Counters at the last `server_stats`.
    baseline: Snapshot,
    /// The stats timer is armed.
    ticking: bool,
    /// The password check thread (basic auth only).
    checker: Option<login::Checker>,
    /// CONNECTs waiting for their password check, by check id.
    parked: HashMap<u64, Parked>,
    next_check: u64,
    started: Instant,
    hostname: String,
}

/// A CONNECT to the admin namespace waiting for its password check.
#[derive(Debug)]
struct Parked {
    session: usize,
    /// The session's id: a slot reused by a later session has another.
    sid: String,
    name: String,
    ns: usize,
    auth: Value,
}

impl Admin {
    /// `ns` is the admin namespace's index when it is configured; with basic auth the
    /// password check thread starts (it wakes the loop through `waker`).
    pub fn new(
        ns: Option<usize>,
        config: &crate::config::Config,
        waker: &std::sync::Arc<mio::Waker>,
    ) -> Self {
        let hash = config
            .admin
            .as_ref()
            .and_then(|a| a.auth.as_ref())
            .map(|b| b.password_hash.clone());
        let checker = hash.and_then(|h| {
            login::Checker::spawn(h, std::sync::Arc::clone(waker))
                .map_err(|e| {
                    log::error!(
                        "cannot start the admin login thread: {e}; admin logins will be refused"
                    )
                })
                .ok()
        });
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "localhost".into());
        Admin {
            ns,
            watchers: Vec::new(),
            sessions: VecDeque::new(),
            baseline: Snapshot::default(),
            ticking: false,
            checker,
            parked: HashMap::new(),
            next_check: 0,
            started: Instant::now(),
            hostname,
        }
    }

    /// Whether any admin is connected: the guard of every hook.
    #[inline]
    pub fn watching(&self) -> bool {
        !self.watchers.is_empty()
    }

    /// Whether `ns` is the admin namespace.
    #[inline]
    pub fn is_ns(&self, ns: usize) -> bool {
        self.ns == Some(ns)
    }

    fn session_known(&self, id: &str) -> bool {
        self.sessions.iter().any(|s| s == id)
    }

    fn remember_session(&mut self, id: String) {
        if self.sessions.len() >= MAX_SESSIONS {
            self.sessions.pop_front();
        }
        self.sessions.push_back(id);
    }
}

/// What a CONNECT's auth proves.
enum Login {
    /// Accepted; `Some` is a new session id to announce (a password login).
    Ok(Option<String>),
    Refused,
    /// Waiting for the password check thread.
    Parked,
}

impl Server {
    /// A CONNECT to the admin namespace (`ns`), answered here instead of by the client
    /// authentication path (at once, or when its password check comes back).
    pub(crate) fn admin_connect(&mut self, s: usize, name: &str, ns: usize, auth: Value) {
        match self.admin_login(s, name, ns, &auth) {
            Login::Ok(session) => self.admin_accept(s, name, ns, auth, session),
            Login::Refused => self.admin_refuse(s, name),
            Login::Parked => {}
        }
    }

    fn admin_refuse(&mut self, s: usize, name: &str) {
        self.metrics.auth_failures += 1;
        log::warn!(
            "refused admin login on session {}: {INVALID_CREDENTIALS}",
            self.engine.sid(s)
        );
        let body = json!({ "message": INVALID_CREDENTIALS });
        let msg = sio::message(
            PacketType::ConnectError,
            name,
            None,
            Some(&body),
            Vec::new(),
        );
        self.send(s, &Rc::new(msg));
    }

    /// Connects an admin socket and starts reporting to it.
    fn admin_accept(
        &mut self,
        s: usize,
        name: &str,
        ns: usize,
        auth: Value,
        session: Option<String>,
    ) {
        let already = self.engine.socket_in(s, ns).is_some();
        // A CONNECT repeated while the first waited is answered like any repeat.
        self.connect_as(s, name, auth, Ok(None));
        let Some(sock) = self.engine.socket_in(s, ns) else {
            return;
        };
        if already {
            return;
        }
        log::info!("admin UI connected on session {}", self.engine.sid(s));
        // The UI attaches its listeners on `connect`: these follow the CONNECT packet.
        if let Some(id) = session {
            self.emit_to(sock, "session", &[Value::String(id)], Vec::new());
        }
        let config = json!({ "supportedFeatures": commands::features(self.admin_read_only()) });
        self.emit_to(sock, "config", &[config], Vec::new());
        let all = self.admin_all_sockets();
        self.emit_to(sock, "all_sockets", &[all], Vec::new());
        if !self.admin.watching() {
            // Deltas start from the first watcher, not from whenever the last one left.
            self.admin.baseline = Snapshot::of(&self.metrics);
        }
        self.admin.watchers.push(sock);
        let stats = self.admin_server_stats(false);
        self.emit_to(sock, "server_stats", &[stats], Vec::new());
        if !self.admin.ticking {
            self.admin.ticking = true;
            self.timers
                .at(Instant::now() + STATS_EVERY, Timer::AdminStats);
        }
    }

    /// Completes the admin CONNECTs whose password checks were answered (after a wake).
    pub(crate) fn drain_admin_logins(&mut self) {
        loop {
            let Some((id, ok)) = self
                .admin
                .checker
                .as_ref()
                .and_then(login::Checker::try_recv)
            else {
                return;
            };
            let Some(p) = self.admin.parked.remove(&id) else {
                continue;
            };
            // The session may have ended (or its slot gone to another) while it waited.
            if self.engine.by_sid(&p.sid) != Some(p.session) {
                continue;
            }
            if ok {
                let id = crate::engineio::new_id();
                self.admin.remember_session(id.clone());
                self.admin_accept(p.session, &p.name, p.ns, p.auth, Some(id));
            } else {
                self.admin_refuse(p.session, &p.name);
            }
            self.reap();
        }
    }

    fn admin_read_only(&self) -> bool {
        self.config.admin.as_ref().is_some_and(|a| a.read_only)
    }

    /// Checks the CONNECT auth as the reference's basic auth does: a known `sessionId`, else
    /// `username`, then the `password` against the bcrypt hash on the check thread.
    fn admin_login(&mut self, s: usize, name: &str, ns: usize, auth: &Value) -> Login {
        let Some(settings) = self.config.admin.as_ref() else {
            return Login::Refused;
        };
        let Some(basic) = &settings.auth else {
            return Login::Ok(None);
        };
        if let Some(id) = auth.get("sessionId").and_then(Value::as_str) {
            if self.admin.session_known(id) {
                return Login::Ok(None);
            }
        }
        let user = auth.get("username").and_then(Value::as_str);
        let password = auth.get("password").and_then(Value::as_str);
        let (Some(user), Some(password)) = (user, password) else {
            return Login::Refused;
        };
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            user.as_bytes(),
            basic.username.as_bytes(),
        )) {
            return Login::Refused;
        }
        let sid = self.engine.sid(s).to_owned();
        let admin = &mut self.admin;
        // A repeated CONNECT while the first waits is not checked twice.
        if admin
            .parked
            .values()
            .any(|p| p.session == s && p.sid == sid)
        {
            return Login::Parked;
        }
        admin.next_check += 1;
        let id = admin.next_check;
        let queued = admin
            .checker
            .as_ref()
            .is_some_and(|c| c.check(id, password.to_owned()));
        if !queued {
            log::warn!("admin login checks are queued to the limit; refusing unchecked");
            return Login::Refused;
        }
        admin.parked.insert(
            id,
            Parked {
                session: s,
                sid,
                name: name.to_owned(),
                ns,
                auth: auth.clone(),
            },
        );
        Login::Parked
    }

    /// Sends one admin event to every watching admin socket (encoded once).
    fn admin_emit(&mut self, event: &str, args: &[Value]) {
        let Some(ns) = self.admin.ns else {
            return;
        };
        let msg = Rc::new(sio::event(
            self.sockets.ns_name(ns),
            event,
            args,
            Vec::new(),
        ));
        for i in 0..self.admin.watchers.len() {
            let w = self.admin.watchers[i];
            if let Some(s) = self.sockets.get(w).map(|x| x.session) {
                self.send(s, &msg);
            }
        }
    }

    /// A socket's `SerializedSocket`: id, clientId, transport, nsp, data, handshake, rooms
    /// (its own id first).
    fn admin_serialize(&self, socket: &Socket) -> Value {
        let sid = self.engine.sid(socket.session);
        let client_id: String = sid.chars().take(CLIENT_ID_LEN).collect();
        let mut rooms = vec![socket.id.to_string()];
        rooms.extend(socket.room_list());
        let data = match &socket.user {
            Some(u) => json!({ "user": u }),
            None => json!({}),
        };
        json!({
            "id": socket.id,
            "clientId": client_id,
            "transport": self.engine.transport_name(socket.session),
            "nsp": self.sockets.ns_name(socket.ns),
            "data": data,
            // The handshake request is not kept (memory per connection); what is known.
            "handshake": {
                "headers": {},
                "query": {},
                "url": self.config.path,
                "secure": false,
                "xdomain": false,
            },
            "rooms": rooms,
        })
    }

    fn admin_all_sockets(&self) -> Value {
        Value::Array(
            self.sockets
                .iter()
                .map(|(_, socket)| self.admin_serialize(socket))
                .collect(),
        )
    }

    /// The `server_stats` payload; `advance` moves the aggregation baseline (the timer does,
    /// a new watcher's first report does not take the others' counts).
    fn admin_server_stats(&mut self, advance: bool) -> Value {
        let now = Snapshot::of(&self.metrics);
        let ms = stats::now_ms();
        let events = self.admin.baseline.events_until(&now, ms - ms % 1000);
        if advance {
            self.admin.baseline = now;
        }
        let (_, polling) = self.engine.transport_counts();
        let namespaces: Vec<Value> = self
            .sockets
            .ns_counts()
            .map(|(name, n)| json!({"name": name, "socketsCount": n}))
            .collect();
        json!({
            "serverId": self.config.node_id,
            "hostname": self.admin.hostname,
            "pid": std::process::id(),
            "uptime": self.admin.started.elapsed().as_secs_f64(),
            "clientsCount": self.engine.len(),
            "pollingClientsCount": polling,
            "aggregatedEvents": if advance { Value::Array(events) } else { json!([]) },
            "namespaces": namespaces,
        })
    }

    /// With Redis, every node reports its `server_stats` to the admin namespace of all nodes
    /// (as Node's `instrument()` does through the adapter), so a UI connected to any node
    /// lists them all: the timer then runs from the start, one small publish every 2 s.
    fn admin_clustered(&self) -> bool {
        self.admin.ns.is_some() && self.config.redis_url.is_some()
    }

    /// Arms the stats timer at start when this node reports to the cluster.
    pub(crate) fn start_admin(&mut self) {
        if self.admin_clustered() {
            self.admin.ticking = true;
            self.timers
                .at(Instant::now() + STATS_EVERY, Timer::AdminStats);
        }
    }

    /// The stats timer: report and re-arm, or stop when nobody can be listening.
    pub(crate) fn on_admin_stats(&mut self, now: Instant) {
        let clustered = self.admin_clustered();
        if !self.admin.watching() && !clustered {
            self.admin.ticking = false;
            return;
        }
        let stats = self.admin_server_stats(true);
        match self.admin.ns {
            Some(ns) if clustered => {
                // Published for the other nodes' admins and sent to ours; volatile, so never
                // kept for recovery (no offset argument).
                let mut e = Emit::to_rooms(ns, "server_stats", vec![stats], Vec::new());
                e.all = true;
                e.volatile = true;
                self.deliver(&e);
            }
            _ => self.admin_emit("server_stats", &[stats]),
        }
        self.timers.at(now + STATS_EVERY, Timer::AdminStats);
    }

    /// Hook: a socket connected (before its later room joins).
    pub(crate) fn admin_socket_connected(&mut self, sock: usize) {
        let Some(socket) = self.sockets.get(sock) else {
            return;
        };
        let serialized = self.admin_serialize(socket);
        let at = Value::String(stats::iso(stats::now_ms()));
        self.admin_emit("socket_connected", &[serialized, at]);
    }

    /// Hook: a socket is being removed (still in its rooms; each leave reports its
    /// `room_left`, this reports the own-id room).
    pub(crate) fn admin_socket_disconnected(&mut self, sock: usize, reason: &str) {
        self.admin.watchers.retain(|&w| w != sock);
        let Some(socket) = self.sockets.get(sock) else {
            return;
        };
        let nsp = Value::String(self.sockets.ns_name(socket.ns).to_owned());
        let id = Value::String(socket.id.to_string());
        let at = Value::String(stats::iso(stats::now_ms()));
        let why = Value::String(reason.to_owned());
        self.admin_emit(
            "socket_disconnected",
            &[nsp.clone(), id.clone(), why, at.clone()],
        );
        self.admin_emit("room_left", &[nsp, id.clone(), id, at]);
    }

    /// Hook: a socket joined (`delta` 1) or left (-1) `room`.
    pub(crate) fn admin_room_changed(&mut self, sock: usize, room: &str, delta: i32) {
        let Some(socket) = self.sockets.get(sock) else {
            return;
        };
        let nsp = Value::String(self.sockets.ns_name(socket.ns).to_owned());
        let id = Value::String(socket.id.to_string());
        let at = Value::String(stats::iso(stats::now_ms()));
        let event = if delta > 0 {
            "room_joined"
        } else {
            "room_left"
        };
        self.admin_emit(event, &[nsp, Value::String(room.to_owned()), id, at]);
    }

    /// Hook: session `s` upgraded to WebSocket; its sockets' transport changed.
    pub(crate) fn admin_upgraded(&mut self, s: usize) {
        for (ns, sock) in self.engine.sockets_of(s) {
            let Some(socket) = self.sockets.get(sock) else {
                continue;
            };
            let update = json!({
                "id": socket.id,
                "nsp": self.sockets.ns_name(ns),
                "transport": "websocket",
            });
            self.admin_emit("socket_updated", &[update]);
        }
    }
}
