//! Application event handlers: what the server does when a socket connects or emits. The
//! built-in profiles live here: diagnostics `echo`, the conformance reference server, and the
//! benchmark relay.

use super::Server;
use crate::config::Profile;
use bytes::Bytes;
use serde_json::{json, Value};

/// The room every socket of the bench profile joins.
pub const BENCH_ROOM: &str = "bench";

impl Server {
    /// A socket has connected to a namespace.
    pub(crate) fn on_connect(&mut self, sock: usize, auth: &Value) {
        match self.config.profile {
            Profile::Conformance => {
                self.emit_to(sock, "auth", std::slice::from_ref(auth), Vec::new())
            }
            Profile::Bench => self.join(sock, BENCH_ROOM),
            Profile::Production => {}
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
                let ns = self.sockets[sock].ns;
                let msg = crate::socketio::event(
                    &self.namespaces[ns].name,
                    "bench:msg",
                    &args,
                    attachments,
                );
                self.broadcast(ns, &[BENCH_ROOM.to_owned()], &[], None, msg);
            }
            (_, "echo") if self.config.diagnostics => {
                if let Some(id) = ack {
                    self.ack(sock, id, args, attachments);
                }
            }
            _ => {
                self.metrics.unknown_events += 1;
                log::debug!(
                    "unknown event {name:?} from socket {}",
                    self.sockets[sock].id
                );
                if let Some(id) = ack {
                    self.ack(
                        sock,
                        id,
                        vec![json!({"ok": false, "error": "unknown event"})],
                        Vec::new(),
                    );
                }
            }
        }
    }
}
