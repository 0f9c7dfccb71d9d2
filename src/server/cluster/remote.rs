//! Messages from other nodes and the emitter: adapter broadcasts and requests, grant events;
//! and the publishing of local broadcasts in the adapter wire format.

use super::*;

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
            match v["op"].as_str() {
                Some("grant") => {
                    self.grants.grant(room, user);
                }
                Some("revoke") => {
                    self.revoke_grant(room, user);
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
        let Some(ns) = self.namespaces.iter().position(|n| n.name == b.nsp) else {
            return;
        };
        let Value::Array(mut data) = b.event_args else {
            return;
        };
        if data.is_empty() {
            return;
        }
        let name = match data.remove(0) {
            Value::String(s) => s,
            other => other.to_string(),
        };
        self.cluster.remote_broadcasts += 1;
        let volatile = b
            .flags
            .get("volatile")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let target = Target {
            rooms: &b.rooms,
            except: &b.except,
            except_socket: None,
            volatile,
            local: true,
            all: b.rooms.is_empty(),
        };
        self.broadcast_event(ns, &name, data, b.attachments, target);
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
            } => (nsp.clone(), opts_rooms.clone(), opts_except.clone()),
            _ => return,
        };
        let Some(ns) = self.namespaces.iter().position(|n| n.name == nsp) else {
            return;
        };
        let selected = self.select_sockets(ns, &rooms, &except);
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
                        self.close_session(s, crate::server::engine::CloseReason::Shutdown);
                    }
                }
                _ => {}
            }
        }
    }

    /// Publishes a local broadcast for the other nodes (adapter wire format).
    pub(crate) fn publish_broadcast(
        &mut self,
        ns: usize,
        name: &str,
        args: &[Value],
        attachments: &[Bytes],
        t: &Target<'_>,
    ) {
        let Some(redis) = &self.cluster.redis else {
            return;
        };
        let mut event_args = Vec::with_capacity(args.len() + 1);
        event_args.push(Value::String(name.to_owned()));
        event_args.extend_from_slice(args);
        let mut except = t.except.to_vec();
        if let Some(id) = t
            .except_socket
            .and_then(|x| self.sockets.get(x))
            .map(|s| s.id.clone())
        {
            except.push(id);
        }
        let b = Broadcast {
            uid: self.cluster.uid.clone(),
            nsp: self.namespaces[ns].name.clone(),
            event_args: Value::Array(event_args),
            attachments: attachments.to_vec(),
            rooms: t.rooms.to_vec(),
            except,
            flags: if t.volatile {
                json!({"volatile": true})
            } else {
                json!({})
            },
            channel_room: None,
        };
        let channel = adapter::channel_for(PREFIX, &b.nsp, &b.rooms);
        if redis
            .publish(channel, adapter::encode_broadcast(&b))
            .is_err()
        {
            log::debug!("redis queue full; a broadcast was not published to other nodes");
        }
    }
}
