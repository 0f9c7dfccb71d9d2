//! The internal HTTP API on the shared port: `POST /api/emit` (authenticated with the
//! internal key, compared in constant time) and the `/metrics` rendering.

use super::http::Req;
use super::Server;
use crate::http::response::{error_json, Response};
use crate::metrics::{self, Gauges};
use serde_json::Value;
use subtle::ConstantTimeEq;

/// Rooms plus users one emit may name.
pub const MAX_TARGETS: usize = 10_000;
/// Longest event name accepted.
pub const MAX_EVENT_NAME: usize = 256;

/// Event names Socket.IO clients treat as their own.
const RESERVED: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// Validated `/api/emit` body.
struct Emit {
    event: String,
    data: Option<Value>,
    rooms: Vec<String>,
    except: Vec<String>,
    namespace: usize,
}

impl Server {
    /// Checks the internal API key; answers the request itself and returns `false` when the
    /// caller may not proceed.
    fn api_authorized(&mut self, key: usize, req: &Req) -> bool {
        let Some(expected) = self.config.api_key.as_deref() else {
            self.respond(
                key,
                Response::new(503).json(error_json("internal API disabled: set INTERNAL_API_KEY")),
                req.keep_alive,
            );
            return false;
        };
        let presented = req
            .bearer
            .as_deref()
            .or(req.api_key.as_deref())
            .unwrap_or("");
        if bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
            return true;
        }
        self.metrics.api_unauthorized += 1;
        log::warn!("internal API request with a missing or wrong key");
        self.respond(
            key,
            Response::new(401)
                .header("WWW-Authenticate", "Bearer")
                .json(error_json("unauthorized")),
            req.keep_alive,
        );
        false
    }

    pub(crate) fn on_api_emit(&mut self, key: usize, req: Req) {
        self.metrics.api_requests += 1;
        if req.method != "POST" {
            self.metrics.http_errors += 1;
            let resp = Response::new(405)
                .header("Allow", "POST")
                .json(error_json("use POST"));
            return self.respond(key, resp, req.keep_alive);
        }
        if !self.api_authorized(key, &req) {
            return;
        }
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
        let ns_name = self.namespaces[emit.namespace].name.clone();
        let args: Vec<Value> = emit.data.into_iter().collect();
        let msg = crate::socketio::event(&ns_name, &emit.event, &args, Vec::new());
        let n = self.broadcast(emit.namespace, &emit.rooms, &emit.except, None, msg);
        log::debug!(
            "api emit {:?} to {} targets reached {n} sockets",
            emit.event,
            emit.rooms.len()
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
        if RESERVED.contains(&event.as_str()) {
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
        let mut rooms = strings("rooms", obj.remove("rooms"), false)?;
        let users = strings("users", obj.remove("users"), true)?;
        let except = strings("except", obj.remove("except"), false)?;
        if rooms.len() + users.len() + except.len() > MAX_TARGETS {
            return Err(format!("fields `rooms`, `users` and `except` name more than {MAX_TARGETS} targets together"));
        }
        rooms.extend(users.into_iter().map(|u| format!("user:{u}")));
        if rooms.is_empty() {
            return Err(
                "no target: give `rooms` or `users` (an emit never goes to everyone)".into(),
            );
        }
        let namespace = match obj.remove("namespace") {
            None | Some(Value::Null) => 0,
            Some(Value::String(n)) => self
                .namespaces
                .iter()
                .position(|x| x.name == n)
                .ok_or_else(|| format!("field `namespace`: unknown namespace {n:?}"))?,
            Some(_) => return Err("field `namespace` must be a string".into()),
        };
        Ok(Emit {
            event,
            data: obj.remove("data"),
            rooms,
            except,
            namespace,
        })
    }

    pub(crate) fn render_metrics(&self) -> String {
        let mut g = Gauges::default();
        for (_, s) in &self.sessions {
            match s.transport {
                super::engine::Transport::WebSocket(_) => g.websocket_connections += 1,
                super::engine::Transport::Polling => g.polling_sessions += 1,
            }
        }
        g.open_tcp = self.conns.len() as u64;
        g.sockets_by_namespace = self
            .namespaces
            .iter()
            .map(|n| (n.name.clone(), n.sockets as u64))
            .collect();
        g.rooms = self.namespaces.iter().map(|n| n.rooms.len() as u64).sum();
        g.outbound_queued_bytes = self.conns.iter().map(|(_, c)| c.out.len() as u64).sum();
        g.encodes = self.encodes.get();
        g.timers = self.timers.len() as u64;
        metrics::render(&self.metrics, &g)
    }
}
