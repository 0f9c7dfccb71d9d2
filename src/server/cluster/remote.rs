//! Messages from other nodes and the emitter: adapter broadcasts and requests (answered as a
//! Node node answers them: fetchSockets, serverSideEmit acks, broadcasts with acks), grant
//! events; and the publishing of local broadcasts in the adapter wire format.

use super::*;
use crate::server::deliver::Emit;
use crate::server::sockets::Target;
use bytes::Bytes;
use std::collections::HashSet;
use std::rc::Rc;

/// The ack timeout of a broadcast-with-ack whose flags name none (the adapter's default
/// `requestsTimeout`).
const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(5);

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
        if channel.starts_with(rlog::LOG_PREFIX.as_bytes()) {
            return self.on_log_message(channel, payload);
        }
        match adapter::decode_broadcast(channel, payload, PREFIX) {
            // Logged by a sio-edge node (this one included): delivered from here, in log order.
            Ok(b) if b.offset().is_some() => {
                let offset = b.offset().map(str::to_owned);
                self.deliver_broadcast(b, offset);
            }
            Ok(b) if b.uid == self.cluster.uid => {}
            Ok(b) => self.on_remote_broadcast(b, payload),
            Err(e) => {
                self.metrics.protocol_errors += 1;
                log::warn!("ignoring an undecodable adapter broadcast: {e}");
            }
        }
    }

    /// A broadcast from a publisher that does not log (the emitter, a Node node, a sio-edge
    /// node without recovery): logged first when recovery uses Redis, else delivered now.
    fn on_remote_broadcast(&mut self, b: Broadcast, payload: &[u8]) {
        let volatile = b.flags.get("volatile").and_then(Value::as_bool) == Some(true);
        if self.log_ready() && !volatile && self.sockets.ns(&b.nsp).is_some() {
            return self.on_foreign_broadcast(b, adapter::digest(payload));
        }
        self.deliver_broadcast(b, None);
    }

    pub(super) fn on_remote_request(&mut self, req: RemoteRequest) {
        let req = match req {
            RemoteRequest::Fetch {
                nsp,
                request_id,
                opts_rooms,
                opts_except,
                ..
            } => return self.answer_fetch(&nsp, &request_id, &opts_rooms, &opts_except),
            RemoteRequest::ServerSideEmit {
                uid,
                nsp,
                request_id,
                data,
            } => return self.on_server_side_emit(uid, &nsp, request_id, &data),
            RemoteRequest::BroadcastWithAck {
                request_id,
                broadcast,
                ..
            } => return self.on_broadcast_with_ack(&request_id, broadcast),
            RemoteRequest::AllRooms {
                nsp, request_id, ..
            } => return self.answer_all_rooms(&nsp, &request_id),
            RemoteRequest::Sockets {
                nsp,
                request_id,
                rooms,
                ..
            } => return self.answer_sockets(&nsp, &request_id, &rooms),
            RemoteRequest::Other { kind, nsp, .. } => {
                log::debug!("adapter request type {kind} on {nsp} is not answered");
                return;
            }
            other => other,
        };
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

    /// Sockets selected like a broadcast to `rooms` minus `except` (all when `rooms` is empty).
    fn select_remote(&mut self, nsp: &str, rooms: &[String], except: &[String]) -> Vec<usize> {
        let mut selected = Vec::new();
        if let Some(ns) = self.sockets.ns(nsp) {
            let target = Target {
                rooms,
                except,
                all: rooms.is_empty(),
                ..Target::default()
            };
            self.sockets.select(ns, &target, |_| false, &mut selected);
        }
        selected
    }

    /// PUBLISHes an answer on the namespace's response channel. Always the shared channel:
    /// a Node node subscribes to it whether or not it uses `publishOnSpecificResponseChannel`.
    fn answer_node(&mut self, nsp: &str, payload: Vec<u8>) {
        let Some(redis) = &self.cluster.redis else {
            return;
        };
        if redis
            .publish(adapter::response_channel(PREFIX, nsp), payload)
            .is_err()
        {
            log::debug!("redis queue full; an adapter response was not published");
            return;
        }
        self.cluster.stats.requests_answered += 1;
    }

    /// `fetchSockets()` from a Node node: our selected sockets, as many as there are (zero
    /// included: the requester waits for one answer per subscriber of the request channel).
    fn answer_fetch(&mut self, nsp: &str, request_id: &str, rooms: &[String], except: &[String]) {
        let selected = self.select_remote(nsp, rooms, except);
        let sockets = selected
            .into_iter()
            .filter_map(|sock| self.sockets.get(sock))
            .map(|s| {
                let data = match &s.user {
                    Some(u) => json!({ "userId": u }),
                    None => json!({}),
                };
                adapter::socket_details(&s.id, &s.room_list(), handshake_placeholder(), data)
            })
            .collect();
        self.answer_node(nsp, adapter::encode_fetch_response(request_id, sockets));
    }

    /// `allRooms()` from a Node node: every room of the namespace here, sid rooms included.
    fn answer_all_rooms(&mut self, nsp: &str, request_id: &str) {
        let rooms = match self.sockets.ns(nsp) {
            Some(ns) => self.sockets.room_names(ns),
            None => Vec::new(),
        };
        let rooms: Vec<&str> = rooms.iter().map(String::as_str).collect();
        let payload = adapter::encode_all_rooms_response(request_id, &rooms);
        self.answer_node(nsp, payload);
    }

    /// `sockets(rooms)` from a Node node: the ids of our sockets in any of `rooms`.
    fn answer_sockets(&mut self, nsp: &str, request_id: &str, rooms: &[String]) {
        let selected = self.select_remote(nsp, rooms, &[]);
        let ids: Vec<&str> = selected
            .iter()
            .filter_map(|&sock| self.sockets.get(sock))
            .map(|s| s.id.as_str())
            .collect();
        let payload = adapter::encode_sockets_response(request_id, &ids);
        self.answer_node(nsp, payload);
    }

    /// `serverSideEmit(event, ...args)` from a Node node. sio-edge runs no server-side
    /// handlers, so it is logged and counted; with `serverSideEmitWithAck` it is answered with
    /// `{node, handled: false}` (the requester waits for one answer per other node).
    fn on_server_side_emit(
        &mut self,
        uid: Option<String>,
        nsp: &str,
        request_id: Option<String>,
        data: &Value,
    ) {
        self.cluster.stats.server_side_emits += 1;
        let event = data.get(0).and_then(Value::as_str).unwrap_or("?");
        log::info!(
            "serverSideEmit {event:?} on {nsp} from adapter node {}: no server-side handler",
            uid.as_deref().unwrap_or("?")
        );
        if let Some(id) = request_id {
            let answer = json!({ "node": self.cluster.node_id, "handled": false });
            self.answer_node(nsp, adapter::encode_server_side_emit_ack(&id, &answer));
        }
    }

    /// A broadcast with acks from a Node node: the event goes to the selected sockets with one
    /// ack id, the count of sockets it was queued for is answered at once, and each client's
    /// ack is forwarded as it comes ([`Server::on_remote_ack`]) until the request's timeout.
    /// It is not kept for recovery: an ack id means nothing to a later connection.
    fn on_broadcast_with_ack(&mut self, request_id: &str, b: Broadcast) {
        let now = Instant::now();
        let mut owed = HashSet::new();
        let (Value::Array(data), Some(id)) = (&b.event_args, self.cluster.acks.reserve(now)) else {
            log::warn!("broadcast-with-ack {request_id} not delivered: too many waiting");
            return self.answer_node(&b.nsp, adapter::encode_client_count(request_id, 0));
        };
        if let (Some(ns), Some((event, args))) = (self.sockets.ns(&b.nsp), data.split_first()) {
            let event = match event {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let msg = Rc::new(crate::socketio::event_with_ack(
                self.sockets.ns_name(ns),
                id,
                &event,
                args,
                b.attachments.clone(),
            ));
            for sock in self.select_remote(&b.nsp, &b.rooms, &b.except) {
                let Some((s, sid)) = self
                    .sockets
                    .get(sock)
                    .map(|x| (x.session, x.id.to_string()))
                else {
                    continue;
                };
                // Owed by socket id, not slot: a slot reused before the timeout answers nothing.
                if self.send(s, &msg) {
                    owed.insert(sid);
                }
            }
        }
        let timeout = b
            .flags
            .get("timeout")
            .and_then(Value::as_u64)
            .map_or(DEFAULT_ACK_TIMEOUT, Duration::from_millis)
            .min(acks::MAX_TIMEOUT);
        let count = owed.len() as u64;
        self.cluster.acks.wait(
            id,
            request_id.to_owned(),
            b.nsp.clone(),
            now + timeout,
            owed,
        );
        self.answer_node(&b.nsp, adapter::encode_client_count(request_id, count));
    }

    /// A client's ack `id`: forwarded to the Node node whose broadcast asked for it. Returns
    /// whether the ack was one of those.
    pub(crate) fn on_remote_ack(
        &mut self,
        sock: usize,
        id: u64,
        args: &[Value],
        attachments: &[Bytes],
    ) -> bool {
        let Some(sid) = self.sockets.get(sock).map(|x| x.id.as_str()) else {
            return false;
        };
        let Some((request_id, nsp)) = self.cluster.acks.answer(id, sid, Instant::now()) else {
            return false;
        };
        let payload = adapter::encode_broadcast_ack(&request_id, args.first(), attachments);
        self.answer_node(&nsp, payload);
        true
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

/// A Node `handshake` with every field present and empty: sio-edge does not keep the
/// handshake request's headers, address, time or query per socket, and never exposes the
/// credential a Node server would show in `auth`.
fn handshake_placeholder() -> Value {
    json!({
        "headers": {},
        "time": "",
        "address": "",
        "xdomain": false,
        "secure": false,
        "issued": 0,
        "url": "",
        "query": {},
        "auth": {},
    })
}
