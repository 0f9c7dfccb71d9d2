//! The Admin UI's commands, as the reference's `registerFeatureHandlers` (Socket.IO v4 form:
//! the last argument is a room filter, absent or empty for the whole namespace; the UI passes
//! a socket id to address one socket):
//!
//! ```text
//! emit(nsp, filter, ev, ...args)   deliver ev(args) to the namespace or the room
//! join(nsp, room, filter)          make the selected sockets join room
//! leave(nsp, room, filter)         make them leave it
//! _disconnect(nsp, close, filter)  disconnect them ("io server disconnect" on the client);
//!                                  close = true disconnects every namespace of their clients
//! ```
//!
//! Commands act on this node's sockets; `emit` goes through `deliver`, so other nodes get it
//! as any broadcast. A read-only admin namespace advertises no command and ignores them.

use super::super::deliver::Emit;
use super::super::sockets::Target;
use super::super::Server;
use serde_json::Value;

/// The reference's `Feature` names this server supports, in its order.
pub fn features(read_only: bool) -> Vec<&'static str> {
    let mut f = if read_only {
        Vec::new()
    } else {
        vec![
            "EMIT",
            "JOIN",
            "LEAVE",
            "DISCONNECT",
            "MJOIN",
            "MLEAVE",
            "MDISCONNECT",
        ]
    };
    // AGGREGATED_EVENTS: server_stats carries the per-second counts. ALL_EVENTS: sockets,
    // rooms and their events are reported (the UI shows its socket pages only with it).
    f.extend(["AGGREGATED_EVENTS", "ALL_EVENTS"]);
    f
}

/// A non-empty string argument.
fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Why a socket leaves when an admin disconnects it (Node's server-side reason).
const DISCONNECT_REASON: &str = "server namespace disconnect";

impl Server {
    /// An event from an admin socket: `args[0]` is the command name.
    pub(crate) fn admin_command(&mut self, sock: usize, mut args: Vec<Value>) {
        if self.admin_read_only() || args.is_empty() {
            return;
        }
        let name = match args.remove(0) {
            Value::String(n) => n,
            _ => return,
        };
        let nsp = match args.first() {
            Some(Value::String(n)) => n.clone(),
            _ => return,
        };
        let Some(ns) = self.sockets.ns(&nsp) else {
            log::debug!("admin {name} for unknown namespace {nsp:?}");
            return;
        };
        log::info!("admin socket {sock}: {name} in {nsp}");
        match name.as_str() {
            "emit" => {
                let (Some(filter), Some(Value::String(ev))) = (args.get(1), args.get(2)) else {
                    return;
                };
                let filter = filter.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
                let ev = ev.clone();
                let rest: Vec<Value> = args.drain(..).skip(3).collect();
                let mut e = Emit::to_rooms(ns, &ev, rest, filter.iter().cloned().collect());
                e.all = filter.is_none();
                self.deliver(&e);
            }
            "join" | "leave" => {
                let Some(room) = text(args.get(1)) else {
                    return;
                };
                let filter = text(args.get(2));
                for target in self.admin_select(ns, filter.as_deref()) {
                    if name == "join" {
                        self.join(target, &room);
                    } else {
                        self.leave(target, &room);
                    }
                }
            }
            "_disconnect" => {
                let close = args.get(1).and_then(Value::as_bool).unwrap_or(false);
                let filter = text(args.get(2));
                for target in self.admin_select(ns, filter.as_deref()) {
                    let Some(s) = self.sockets.get(target).map(|x| x.session) else {
                        continue;
                    };
                    if close {
                        // The client closes its connection once none of its sockets is left.
                        for (_, other) in self.engine.sockets_of(s) {
                            self.disconnect_socket(other, DISCONNECT_REASON);
                        }
                    } else {
                        self.disconnect_socket(target, DISCONNECT_REASON);
                    }
                }
            }
            _ => log::debug!("unknown admin command {name:?}"),
        }
    }

    /// Sockets of `ns` in room `filter` (a socket id works too), or all of them.
    fn admin_select(&mut self, ns: usize, filter: Option<&str>) -> Vec<usize> {
        let rooms: Vec<String> = filter.map(str::to_owned).into_iter().collect();
        let target = Target {
            rooms: &rooms,
            all: filter.is_none(),
            ..Target::default()
        };
        let mut out = Vec::new();
        self.sockets.select(ns, &target, |_| false, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::features;

    #[test]
    fn read_only_advertises_no_command() {
        assert_eq!(features(true), ["AGGREGATED_EVENTS", "ALL_EVENTS"]);
        let all = features(false);
        for c in ["EMIT", "JOIN", "LEAVE", "DISCONNECT", "MDISCONNECT"] {
            assert!(all.contains(&c), "{c}");
        }
    }
}
