//! Namespace CONNECT: authentication (token, bearer, session cookie, database session),
//! then a new socket or one restored by connection state recovery, from Redis
//! (`cluster::recovery`, the CONNECT waits for one round trip) or from the in-process store.

use super::sockets::NewSocket;
use super::Server;
use crate::engineio::new_id;
use crate::socketio::{self as sio, PacketType};
use serde_json::{json, Value};
use std::rc::Rc;
use std::time::Instant;

/// A socket being restored by connection state recovery.
pub(crate) struct Restored {
    pub pid: String,
    pub sid: String,
    pub rooms: Vec<String>,
    pub replay: Replay,
    pub disconnected_at: Instant,
}

/// Where a restored socket's missed broadcasts come from.
pub(crate) enum Replay {
    /// The in-process log, after this offset.
    Local { after: u64 },
    /// The Redis log (read with the session) and what arrived while it was read.
    Remote(crate::server::cluster::RemoteReplay),
}

/// A CONNECT whose client is authenticated, on its way to a socket (parked while Redis is
/// asked for its recovery session).
#[derive(Debug)]
pub(crate) struct Connecting {
    pub s: usize,
    /// The Engine.IO session id: a parked CONNECT completes only on the same session.
    pub session_sid: String,
    pub name: String,
    pub auth: Value,
    pub user: Option<String>,
    pub claim_rooms: Vec<String>,
}

impl Server {
    /// Sends a CONNECT_ERROR for namespace `name`.
    fn connect_error(&mut self, s: usize, name: &str, body: &Value) {
        let msg = sio::message(PacketType::ConnectError, name, None, Some(body), Vec::new());
        self.send(s, &Rc::new(msg));
    }

    /// The namespace a CONNECT may still create a socket in; `None` when it was answered here
    /// (an unknown namespace, or one the session is already connected to).
    fn connect_target(&mut self, s: usize, name: &str) -> Option<usize> {
        let Some(ns) = self.sockets.ns(name) else {
            self.connect_error(s, name, &json!({"message": "Invalid namespace"}));
            return None;
        };
        if let Some(sock) = self.engine.socket_in(s, ns) {
            // Already connected: repeat the answer rather than create a twin.
            let sid = self.sockets.get(sock).map(|x| x.id.clone());
            let msg = sio::message(
                PacketType::Connect,
                name,
                None,
                Some(&json!({ "sid": sid })),
                Vec::new(),
            );
            self.send(s, &Rc::new(msg));
            return None;
        }
        Some(ns)
    }

    pub(super) fn sio_connect(&mut self, s: usize, name: &str, auth: Option<Value>) {
        let Some(ns) = self.connect_target(s, name) else {
            return;
        };
        let auth = auth.unwrap_or_else(|| json!({}));
        if self.admin.is_ns(ns) {
            // Admin UI logins never take the client token path.
            return self.admin_connect(s, name, ns, auth);
        }
        if let Some((cookie, value)) = self.database_session(s, &auth) {
            // Completed by `connect_as` when the app's session endpoint answers.
            return self.check_session(s, name, auth, cookie, value);
        }
        let identity = self.authenticate(s, &auth);
        self.connect_as(s, name, auth, identity);
    }

    /// Completes a CONNECT once the client's identity is known: at once, or after a database
    /// session check (the namespace is looked up again: the session may have connected it
    /// meanwhile).
    pub(crate) fn connect_as(
        &mut self,
        s: usize,
        name: &str,
        auth: Value,
        identity: Result<Option<crate::auth::Identity>, &'static str>,
    ) {
        let Some(ns) = self.connect_target(s, name) else {
            return;
        };
        let identity = match identity {
            Ok(identity) => identity,
            Err(reason) => {
                self.metrics.auth_failures += 1;
                let sid = self.engine.sid(s);
                log::warn!("unauthorized connect to {name} on session {sid}: {reason}");
                let body = json!({"message": "unauthorized", "data": {"reason": reason}});
                return self.connect_error(s, name, &body);
            }
        };
        let (user, claim_rooms) = match identity {
            Some(id) => (
                Some(id.user_id),
                crate::store::grants::rooms_from_claims(&id.claims),
            ),
            None => (None, Vec::new()),
        };
        let c = Connecting {
            s,
            session_sid: self.engine.sid(s).to_owned(),
            name: name.to_owned(),
            auth,
            user,
            claim_rooms,
        };
        self.connect_with(c, ns);
    }

    /// A CONNECT with a recovery pid asks Redis first when Redis holds the sessions; else (and
    /// when Redis has nothing) the in-process store.
    pub(crate) fn connect_with(&mut self, c: Connecting, ns: usize) {
        let pid = c.auth.get("pid").and_then(Value::as_str).map(str::to_owned);
        let c = match pid {
            Some(pid) if !self.config.recovery_window.is_zero() => {
                match self.recover_from_redis(c, ns, &pid) {
                    Some(c) => c,
                    None => return,
                }
            }
            _ => c,
        };
        self.connect_local(c, ns);
    }

    /// Completes a CONNECT with the in-process recovery store.
    pub(crate) fn connect_local(&mut self, c: Connecting, ns: usize) {
        let restored = self.restore(ns, &c.user, &c.auth);
        self.finish_connect(c, ns, restored);
    }

    /// The namespace a parked CONNECT may still complete in: the session is the same one
    /// and has not connected the namespace meanwhile.
    pub(crate) fn resume_target(&mut self, c: &Connecting) -> Option<usize> {
        if self.engine.sid(c.s) != c.session_sid {
            return None;
        }
        self.connect_target(c.s, &c.name)
    }

    /// Creates the socket (restored or new), joins its rooms and answers the CONNECT.
    pub(crate) fn finish_connect(&mut self, c: Connecting, ns: usize, restored: Option<Restored>) {
        let Connecting {
            s,
            name,
            auth,
            user,
            claim_rooms,
            ..
        } = c;
        let recovery_on = !self.config.recovery_window.is_zero();
        let sock = self.sockets.insert(NewSocket {
            id: restored.as_ref().map(|r| r.sid.clone()),
            ns,
            session: s,
            user,
            claim_rooms,
            pid: match &restored {
                Some(r) => Some(r.pid.clone()),
                None => recovery_on.then(new_id),
            },
            connected_offset: self.stores.recovery.next_offset().saturating_sub(1),
            recovered_at: restored.as_ref().map(|r| r.disconnected_at),
        });
        self.engine.add_socket(s, ns, sock);
        if self.admin.watching() {
            self.admin_socket_connected(sock);
        }
        self.connected(sock, s, &name, restored);
        self.session_open(sock);
        self.on_connect(sock, &auth);
    }

    /// Joins a new socket's rooms, answers the CONNECT and replays what a recovered socket
    /// missed.
    fn connected(&mut self, sock: usize, s: usize, name: &str, restored: Option<Restored>) {
        if let Some(u) = self.sockets.user(sock).map(str::to_owned) {
            self.join(sock, &format!("user:{u}"));
        }
        let (id, pid) = {
            let socket = self.sockets.get(sock).expect("just inserted");
            (socket.id.clone(), socket.pid.clone())
        };
        let mut missed = Vec::new();
        if let Some(r) = restored {
            for room in r.rooms {
                // Grants may have been revoked while the socket was away.
                if self.may_join(sock, &room).is_ok() || room.starts_with("presence:") {
                    self.join(sock, &room);
                }
            }
            // Replay only what the rooms it is allowed back into received while it was away.
            let mut own = self.sockets.get(sock).expect("inserted").room_list();
            own.push(id.to_string());
            let ns = self.sockets.get(sock).expect("inserted").ns;
            missed = match r.replay {
                Replay::Local { after } => self
                    .stores
                    .recovery
                    .missed(after, ns, &own)
                    .unwrap_or_default(),
                Replay::Remote(remote) => self.remote_missed(ns, &id, &own, remote),
            };
        }
        log::debug!(
            "socket {id} connected to {name} (user {}, recovered {})",
            self.sockets.user(sock).unwrap_or("anonymous"),
            self.sockets
                .get(sock)
                .is_some_and(|x| x.recovered_at().is_some())
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
    }

    /// A reconnect within the recovery window gets its id, rooms and missed broadcasts back.
    fn restore(&mut self, ns: usize, user: &Option<String>, auth: &Value) -> Option<Restored> {
        if self.config.recovery_window.is_zero() {
            return None;
        }
        let pid = auth.get("pid").and_then(Value::as_str)?;
        let offset = auth
            .get("offset")
            .and_then(Value::as_str)
            .and_then(|o| o.parse::<u64>().ok());
        let saved = self
            .stores
            .recovery
            .take(pid, ns, Instant::now())
            .filter(|saved| saved.user == *user && self.sockets.by_id(&saved.sid).is_none())?;
        // As the reference does: an offset older than the log fails the recovery.
        let after = offset.unwrap_or(saved.connected_offset);
        if !self.stores.recovery.covers(after) {
            return None;
        }
        self.session_drop(pid);
        Some(Restored {
            pid: pid.to_owned(),
            sid: saved.sid,
            rooms: saved.rooms,
            replay: Replay::Local { after },
            disconnected_at: saved.at,
        })
    }

    /// The user a CONNECT authenticates as: the auth object's `token` (a JWS or an Auth.js /
    /// NextAuth JWE, told apart by shape), else the handshake's bearer token, else its session
    /// cookie. `Ok(None)` is an anonymous socket where the configuration allows one.
    fn authenticate(
        &self,
        s: usize,
        auth: &Value,
    ) -> Result<Option<crate::auth::Identity>, &'static str> {
        if self.config.profile != crate::config::Profile::Production {
            return Ok(None);
        }
        use super::engine::Credential;
        let token = match auth.get("token") {
            Some(Value::String(t)) => Some(t.as_str()),
            Some(Value::Null) | None => None,
            Some(_) => return Err("token must be a string"),
        };
        let verified = match (token, self.engine.credential(s)) {
            (Some(t), _) => self.auth.verifier.verify(t),
            (None, Some(Credential::Bearer(t))) => self.auth.verifier.verify(t),
            (None, Some(Credential::Cookie { name, value })) => {
                self.auth.verifier.verify_session_cookie(name, value)
            }
            (None, None) if self.config.allow_anonymous => return Ok(None),
            (None, None) => return Err(crate::auth::AuthError::MissingToken.reason()),
        };
        verified.map(Some).map_err(|e| e.reason())
    }
}
