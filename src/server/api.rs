//! The internal HTTP API on the shared port: `POST /api/emit` (authenticated with the
//! internal key, compared in constant time) and the `/metrics` rendering.

use super::deliver::{Emit, Origin};
use super::http::Req;
use super::Server;
use crate::http::response::{error_json, Response};
use crate::metrics::{self, Gauges};
use serde_json::Value;

/// Users one presence query may name.
pub const MAX_PRESENCE_QUERY: usize = 1000;

type ApiResult = Result<(u16, Value), (u16, String)>;

use crate::http::request::query_param;
use crate::socketio::packet::RESERVED_EVENTS;

/// Decodes `%XX` escapes (and `+` as a space is not used in paths); invalid escapes stay.
fn percent_decode(s: &str) -> String {
    fn hex(c: u8) -> Option<u8> {
        // Only the 16 hex digits: `from_str_radix` would also take a sign (`%+f`).
        (c as char).to_digit(16).map(|d| d as u8)
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            // Bytes, not `s`: a multi-byte character after `%` is not a char boundary.
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn presence_users(req: &Req) -> Result<Vec<String>, (u16, String)> {
    let users: Vec<String> = query_param(&req.query, "users")
        .map(|u| {
            percent_decode(u)
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if users.is_empty() {
        return Err((
            400,
            "query parameter `users` is required (comma separated ids)".into(),
        ));
    }
    if users.len() > MAX_PRESENCE_QUERY {
        return Err((400, format!("at most {MAX_PRESENCE_QUERY} `users`")));
    }
    Ok(users)
}

fn check_grant_target(room: &str, user: &str) -> Result<(), (u16, String)> {
    match crate::store::grants::classify(room) {
        Ok(crate::store::grants::RoomKind::Private) => {}
        Ok(_) => return Err((400, format!("room {room:?} is not a private room kind; grants apply to conversation, group, document, call, quiz and class rooms"))),
        Err(e) => return Err((400, format!("room {room:?}: {e}"))),
    }
    if !crate::store::grants::valid_id(user) {
        return Err((
            400,
            "user id must be 1 to 128 characters [A-Za-z0-9_.:@-]".into(),
        ));
    }
    Ok(())
}

/// Rooms plus users one emit may name.
pub const MAX_TARGETS: usize = 10_000;
/// Longest event name accepted.
pub const MAX_EVENT_NAME: usize = 256;

impl Server {
    /// Checks the internal API key; answers the request itself and returns `false` when the
    /// caller may not proceed.
    fn api_authorized(&mut self, key: usize, req: &Req) -> bool {
        match self.key_check(req.bearer.as_deref(), req.api_key.as_deref()) {
            Ok(()) => true,
            Err(resp) => {
                self.respond(key, resp, req.keep_alive);
                false
            }
        }
    }

    /// Routes an authenticated internal API request.
    pub(crate) fn on_api(&mut self, key: usize, req: Req) {
        self.metrics.api_requests += 1;
        if !self.api_authorized(key, &req) {
            return;
        }
        let path = req.path.clone();
        let parts: Vec<&str> = path.trim_start_matches("/api/").split('/').collect();
        let result = match (req.method.as_str(), parts.as_slice()) {
            ("POST", ["emit"]) => return self.on_api_emit(key, req),
            ("GET", ["presence"]) => match presence_users(&req) {
                Ok(users) => {
                    // With Redis the answer is the cluster's, sent when the reply arrives.
                    if self.presence_api_deferred(key, &users, req.keep_alive) {
                        return;
                    }
                    Ok((200, self.presence_json(&users)))
                }
                Err(e) => Err(e),
            },
            ("GET", ["outbox"]) => self.api_outbox(&req),
            ("GET", ["rooms", room, "members"]) => {
                let room = percent_decode(room);
                // With Redis "connected" is the cluster's, sent when the reply arrives.
                if self.members_api_deferred(key, &room, req.keep_alive) {
                    return;
                }
                Ok((200, self.api_members(&room)))
            }
            ("PUT" | "DELETE", ["rooms", room, "members", user]) => {
                let (room, user) = (percent_decode(room), percent_decode(user));
                let result = if req.method == "PUT" {
                    self.api_grant(&room, &user)
                } else {
                    self.api_revoke(&room, &user)
                };
                // With Redis the answer waits until the mirror has the change, so a room:join
                // on another node right after the answer sees it.
                if let Ok((_, body)) = &result {
                    if self.answer_after_mirror(key, body, req.keep_alive) {
                        return;
                    }
                }
                result
            }
            (_, ["emit" | "presence" | "outbox"]) | (_, ["rooms", _, "members", ..]) => {
                Err((405, "method not allowed".to_owned()))
            }
            _ => Err((404, "not found".to_owned())),
        };
        let resp = match result {
            Ok((status, body)) => Response::new(status).json(body.to_string()),
            Err((status, msg)) => {
                self.metrics.http_errors += 1;
                Response::new(status).json(error_json(&msg))
            }
        };
        self.respond(key, resp, req.keep_alive);
    }

    fn api_outbox(&self, req: &Req) -> ApiResult {
        let after: u64 = match query_param(&req.query, "after") {
            None => 0,
            Some(a) => a.parse().map_err(|_| {
                (
                    400,
                    "query parameter `after` must be an event id".to_owned(),
                )
            })?,
        };
        let limit: usize = match query_param(&req.query, "limit") {
            None => 100,
            Some(l) => l
                .parse()
                .ok()
                .filter(|&l| l > 0 && l <= 10_000)
                .ok_or((400, "query parameter `limit` must be 1 to 10000".to_owned()))?,
        };
        let events = self.stores.outbox.read(after, limit);
        let next = events.last().map_or(after, |e| e.id);
        Ok((
            200,
            serde_json::json!({"events": events, "next": next, "dropped": self.stores.outbox.dropped}),
        ))
    }

    fn api_members(&self, room: &str) -> Value {
        let connected: std::collections::BTreeSet<&str> = self
            .sockets
            .members(0, room)
            .into_iter()
            .filter_map(|s| self.sockets.user(s))
            .collect();
        let members = self.stores.grants.members(room);
        serde_json::json!({"room": room, "members": members, "connected": connected})
    }

    fn api_grant(&mut self, room: &str, user: &str) -> ApiResult {
        check_grant_target(room, user)?;
        let new = self.grant(room, user);
        Ok((
            200,
            serde_json::json!({"room": room, "userId": user, "granted": true, "new": new}),
        ))
    }

    fn api_revoke(&mut self, room: &str, user: &str) -> ApiResult {
        check_grant_target(room, user)?;
        let removed = self.revoke_grant(room, user);
        Ok((
            200,
            serde_json::json!({"room": room, "userId": user, "granted": false, "removedSockets": removed}),
        ))
    }

    fn on_api_emit(&mut self, key: usize, req: Req) {
        let emit = match self.parse_emit(&req.body) {
            Ok(e) => e,
            Err(msg) => {
                self.metrics.http_errors += 1;
                return self.respond(
                    key,
                    Response::new(400).json(error_json(&msg)),
                    req.keep_alive,
                );
            }
        };
        let n = self.deliver(&emit);
        log::debug!(
            "api emit {:?} to {} rooms and {} users reached {n} sockets",
            emit.event,
            emit.rooms.len(),
            emit.users.len()
        );
        self.respond(
            key,
            Response::new(202).json(format!("{{\"recipients\":{n}}}")),
            req.keep_alive,
        );
    }

    /// Validates an emit body; the error names the offending field.
    fn parse_emit(&self, body: &[u8]) -> Result<Emit, String> {
        let v: Value =
            serde_json::from_slice(body).map_err(|e| format!("body is not valid JSON: {e}"))?;
        let Value::Object(mut obj) = v else {
            return Err("body must be a JSON object".into());
        };
        let event = match obj.remove("event") {
            Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_EVENT_NAME => s,
            Some(Value::String(_)) => {
                return Err(format!("field `event` must be 1 to {MAX_EVENT_NAME} bytes"))
            }
            Some(_) => return Err("field `event` must be a string".into()),
            None => return Err("field `event` is required".into()),
        };
        if RESERVED_EVENTS.contains(&event.as_str()) {
            return Err(format!("field `event`: {event:?} is reserved by Socket.IO"));
        }
        let strings =
            |field: &str, v: Option<Value>, numbers_ok: bool| -> Result<Vec<String>, String> {
                match v {
                    None | Some(Value::Null) => Ok(Vec::new()),
                    Some(Value::Array(items)) => items
                        .into_iter()
                        .map(|i| match i {
                            Value::String(s) if !s.is_empty() => Ok(s),
                            Value::Number(n) if numbers_ok => Ok(n.to_string()),
                            _ => Err(format!(
                                "field `{field}` must be an array of non-empty strings"
                            )),
                        })
                        .collect(),
                    Some(_) => Err(format!("field `{field}` must be an array")),
                }
            };
        let rooms = strings("rooms", obj.remove("rooms"), false)?;
        let users = strings("users", obj.remove("users"), true)?;
        let except = strings("except", obj.remove("except"), false)?;
        if rooms.len() + users.len() + except.len() > MAX_TARGETS {
            return Err(format!("fields `rooms`, `users` and `except` name more than {MAX_TARGETS} targets together"));
        }
        if rooms.is_empty() && users.is_empty() {
            return Err(
                "no target: give `rooms` or `users` (an emit never goes to everyone)".into(),
            );
        }
        let ns = match obj.remove("namespace") {
            None | Some(Value::Null) => 0,
            Some(Value::String(n)) => self
                .sockets
                .ns(&n)
                .ok_or_else(|| format!("field `namespace`: unknown namespace {n:?}"))?,
            Some(_) => return Err("field `namespace` must be a string".into()),
        };
        Ok(Emit {
            ns,
            event,
            args: obj.remove("data").into_iter().collect(),
            rooms,
            users,
            except,
            origin: Origin::Api,
            ..Emit::default()
        })
    }

    pub(crate) fn render_metrics(&self) -> String {
        let (ws, polling) = self.engine.transport_counts();
        let st = &self.stores;
        let g = Gauges {
            websocket_connections: ws,
            polling_sessions: polling,
            open_tcp: self.io.len() as u64,
            sockets_by_namespace: self
                .sockets
                .ns_counts()
                .map(|(n, c)| (n.to_owned(), c as u64))
                .collect(),
            rooms: self.sockets.room_count() as u64,
            outbound_queued_bytes: self.io.iter().map(|(_, c)| c.out.len() as u64).sum(),
            encodes: self.engine.encodes(),
            timers: self.timers.len() as u64,
            users_online: st.presence.online_count() as u64,
            mailbox_queued: st.mailbox.queued() as u64,
            mailbox_dropped: st.mailbox.dropped,
            outbox_queued: st.outbox.len() as u64,
            outbox_dropped: st.outbox.dropped,
            recovery_packets: st.recovery.stored() as u64,
            recovery_sessions: st.recovery.saved() as u64,
            extra: self.dependency_metrics(),
        };
        metrics::render(&self.metrics, &g)
    }
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn percent_decode_multibyte_after_percent_does_not_panic() {
        assert_eq!(percent_decode("%aé"), "%aé");
        assert_eq!(percent_decode("a%2Fb%"), "a/b%");
    }

    /// Regression: `u8::from_str_radix` accepts a sign, so `%+f` decoded to 0x0f.
    #[test]
    fn percent_decode_takes_only_hex_digits() {
        assert_eq!(percent_decode("%+f"), "%+f");
        assert_eq!(percent_decode("%-1x"), "%-1x");
        assert_eq!(percent_decode("%41%4a%4A"), "AJJ");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
