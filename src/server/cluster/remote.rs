//! Messages from other nodes and the emitter: adapter broadcasts and requests, grant events;
//! and the publishing of local broadcasts in the adapter wire format.

use super::*;
use crate::server::deliver::{Emit, Origin};
use crate::server::sockets::Target;

impl Server {
    pub(super) fn on_redis_message(&mut self, channel: &[u8], payload: &[u8]) {
        if channel == GRANT_EVENTS.as_bytes() {
            let Ok(v) = serde_json::from_slice::<Value>(payload) else {
                return;
            };
            if v["node"].as_str() == Some(self.cluster.node_id.as_str()) {
                return;
            }
            let (Some(room), Some(user)) = (v["room"].as_str(), v["userId"].as_str()) else {
                return;
            };
            // Another node changed the mirror already: only the local cache and sockets follow.
            match v["op"].as_str() {
                Some("grant") => {
                    self.stores.grants.grant(room, user);
                }
                Some("revoke") => {
                    self.stores.grants.revoke(room, user);
                    self.evict(room, user);
                }
                _ => {}
            }
            return;
        }
        if channel.starts_with(format!("{PREFIX}-request#").as_bytes()) {
            match adapter::decode_request(channel, payload, PREFIX) {
                Ok(req) => self.on_remote_request(req),
                Err(e) => log::debug!("ignoring an undecodable adapter request: {e}"),
            }
            return;
        }
        match adapter::decode_broadcast(channel, payload, PREFIX) {
            Ok(b) if b.uid == self.cluster.uid => {}
            Ok(b) => self.on_remote_broadcast(b),
            Err(e) => {
                self.metrics.protocol_errors += 1;
                log::warn!("ignoring an undecodable adapter broadcast: {e}");
            }
        }
    }

    pub(super) fn on_remote_broadcast(&mut self, b: Broadcast) {
        let Some(ns) = self.sockets.ns(&b.nsp) else {
            return;
        };
        let Value::Array(mut data) = b.event_args else {
            return;
        };
        if data.is_empty() {
            return;
        }
        let event = match data.remove(0) {
            Value::String(s) => s,
            other => other.to_string(),
        };
        self.cluster.stats.remote_broadcasts += 1;
        let volatile = b
            .flags
            .get("volatile")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let e = Emit {
            ns,
            event,
            args: data,
            attachments: b.attachments,
            all: b.rooms.is_empty(),
            rooms: b.rooms,
            except: b.except,
            volatile,
            origin: Origin::Remote,
            ..Emit::default()
        };
        self.deliver(&e);
    }

    pub(super) fn on_remote_request(&mut self, req: RemoteRequest) {
        let (nsp, rooms, except) = match &req {
            RemoteRequest::Join {
                nsp,
                opts_rooms,
                opts_except,
                ..
            }
            | RemoteRequest::Leave {
                nsp,
                opts_rooms,
                opts_except,
                ..
            }
            | RemoteRequest::Disconnect {
                nsp,
                opts_rooms,
                opts_except,
                ..
            } => (nsp, opts_rooms, opts_except),
            _ => return,
        };
        let Some(ns) = self.sockets.ns(nsp) else {
            return;
        };
        let target = Target {
            rooms,
            except,
            all: rooms.is_empty(),
            ..Target::default()
        };
        let mut selected = Vec::new();
        self.sockets.select(ns, &target, |_| false, &mut selected);
        for sock in selected {
            match &req {
                RemoteRequest::Join { rooms, .. } => rooms.iter().for_each(|r| {
                    self.join(sock, r);
                }),
                RemoteRequest::Leave { rooms, .. } => {
                    rooms.iter().for_each(|r| self.leave(sock, r))
                }
                RemoteRequest::Disconnect { close, .. } => {
                    let session = self.sockets.get(sock).map(|s| s.session);
                    self.disconnect_socket(sock, "remote disconnect");
                    if let (true, Some(s)) = (*close, session) {
                        self.engine
                            .close(s, crate::server::engine::CloseReason::Shutdown);
                    }
                }
                _ => {}
            }
        }
    }

    /// Publishes a local delivery for the other nodes (adapter wire format), encoded from
    /// borrowed parts. `rooms` has the users mapped in; `except` the excluded socket's id.
    pub(crate) fn publish(&mut self, e: &Emit, rooms: &[String], except: &[String]) {
        let Some(redis) = &self.cluster.redis else {
            return;
        };
        let no_rooms: &[String] = &[];
        let out = adapter::Outgoing {
            uid: &self.cluster.uid,
            nsp: self.sockets.ns_name(e.ns),
            event: &e.event,
            args: &e.args,
            attachments: &e.attachments,
            rooms: if e.all { no_rooms } else { rooms },
            except,
            volatile: e.volatile,
        };
        let channel = adapter::channel_for(PREFIX, out.nsp, out.rooms);
        if redis
            .publish(channel, adapter::encode_outgoing(&out))
            .is_err()
        {
            log::debug!("redis queue full; a broadcast was not published to other nodes");
        }
    }
}
