//! Requests between nodes on `<prefix>-request#<nsp>#`: JSON (`{` first) or MessagePack.

use bytes::Bytes;
use rmpv::Value as Mp;
use serde_json::{json, Map, Value};

use super::broadcast::{opts_value, packet_value, Broadcast, BINARY_EVENT, EVENT, MAX_MESSAGE_LEN};
use super::{msgpack, DecodeError};

/// Request type numbers shared by `@socket.io/redis-adapter` 8 and the emitter.
pub mod kind {
    pub const SOCKETS: u64 = 0;
    pub const ALL_ROOMS: u64 = 1;
    pub const REMOTE_JOIN: u64 = 2;
    pub const REMOTE_LEAVE: u64 = 3;
    pub const REMOTE_DISCONNECT: u64 = 4;
    pub const REMOTE_FETCH: u64 = 5;
    pub const SERVER_SIDE_EMIT: u64 = 6;
    pub const BROADCAST: u64 = 7;
    pub const BROADCAST_CLIENT_COUNT: u64 = 8;
    pub const BROADCAST_ACK: u64 = 9;
}

/// A request from another node or the emitter. `opts_rooms`/`opts_except` select the sockets
/// (every socket of the namespace when `opts_rooms` is empty), exactly like a broadcast.
#[derive(Debug, Clone, PartialEq)]
pub enum RemoteRequest {
    /// `socketsJoin(rooms)`: the selected sockets join `rooms`.
    Join {
        uid: Option<String>,
        nsp: String,
        rooms: Vec<String>,
        opts_rooms: Vec<String>,
        opts_except: Vec<String>,
    },
    /// `socketsLeave(rooms)`: the selected sockets leave `rooms`.
    Leave {
        uid: Option<String>,
        nsp: String,
        rooms: Vec<String>,
        opts_rooms: Vec<String>,
        opts_except: Vec<String>,
    },
    /// `disconnectSockets(close)`: the selected sockets are disconnected; `close` also closes
    /// their Engine.IO connection.
    Disconnect {
        uid: Option<String>,
        nsp: String,
        close: bool,
        opts_rooms: Vec<String>,
        opts_except: Vec<String>,
    },
    /// `fetchSockets()`: the sender waits for one `{requestId, sockets}` answer per node.
    Fetch {
        uid: Option<String>,
        nsp: String,
        request_id: String,
        opts_rooms: Vec<String>,
        opts_except: Vec<String>,
    },
    /// `serverSideEmit(...data)`: an event for the servers, not the clients. With a
    /// `request_id` the sender waits for one answer per node.
    ServerSideEmit {
        uid: Option<String>,
        nsp: String,
        request_id: Option<String>,
        data: Value,
    },
    /// A broadcast expecting acknowledgements (`io.timeout(t).emit(..., cb)` on a Node node).
    /// Answered by BROADCAST_CLIENT_COUNT and BROADCAST_ACK responses (see `super::response`).
    BroadcastWithAck {
        uid: Option<String>,
        request_id: String,
        broadcast: Broadcast,
    },
    /// `allRooms()`: the sender waits for one `{requestId, rooms}` answer per node.
    AllRooms {
        uid: Option<String>,
        nsp: String,
        request_id: String,
    },
    /// `sockets(rooms)` (the older `allSockets()`): one `{requestId, sockets}` answer per
    /// node, the ids of its sockets in any of `rooms` (every socket when empty).
    Sockets {
        uid: Option<String>,
        nsp: String,
        request_id: String,
        rooms: Vec<String>,
    },
    /// Any other request: named so the caller can log and skip.
    Other {
        uid: Option<String>,
        nsp: String,
        kind: u64,
        request_id: Option<String>,
    },
}

/// `<prefix>-request#<nsp>#`: the channel nodes SUBSCRIBE to for requests.
pub fn request_channel(prefix: &str, nsp: &str) -> String {
    format!("{prefix}-request#{nsp}#")
}

/// `<prefix>-response#<nsp>#`: where Node nodes expect responses.
pub fn response_channel(prefix: &str, nsp: &str) -> String {
    format!("{prefix}-response#{nsp}#")
}

/// Decodes a request received on `channel` (which must be a request channel under `prefix`;
/// the namespace comes from it).
///
/// # Errors
///
/// [`DecodeError::NotARequestChannel`], [`DecodeError::BadRequest`] for JSON that is not a
/// request object, or a MessagePack error.
pub fn decode_request(
    channel: &[u8],
    payload: &[u8],
    prefix: &str,
) -> Result<RemoteRequest, DecodeError> {
    let nsp = channel
        .strip_prefix(prefix.as_bytes())
        .and_then(|r| r.strip_prefix(b"-request#"))
        .and_then(|r| r.strip_suffix(b"#"))
        .ok_or(DecodeError::NotARequestChannel)?;
    let nsp = String::from_utf8_lossy(nsp).into_owned();
    if payload.len() > MAX_MESSAGE_LEN {
        return Err(DecodeError::TooLarge(payload.len()));
    }
    // As the adapter does: a payload starting with `{` is JSON, anything else MessagePack.
    let mut attachments = Vec::new();
    let doc = if payload.first() == Some(&b'{') {
        serde_json::from_slice::<Value>(payload)
            .map_err(|e| DecodeError::BadRequest(e.to_string()))?
    } else {
        msgpack::to_json(&msgpack::parse(payload)?, &mut attachments)?.unwrap_or(Value::Null)
    };
    let Value::Object(req) = doc else {
        return Err(DecodeError::BadRequest("not an object".into()));
    };
    request_from(req, nsp, attachments)
}

/// The fields every request kind reads: the request object, its `opts`, the namespace.
struct Fields {
    req: Map<String, Value>,
    nsp: String,
    uid: Option<String>,
    request_id: Option<String>,
}

impl Fields {
    fn opts(&self) -> Option<&Value> {
        self.req.get("opts")
    }

    /// `opts.<field>` as a room list.
    fn sel(&self, field: &str) -> Result<Vec<String>, DecodeError> {
        strings(self.opts().and_then(|o| o.get(field)), field)
    }

    /// `(opts.rooms, opts.except)`.
    fn selection(&self) -> Result<(Vec<String>, Vec<String>), DecodeError> {
        Ok((self.sel("rooms")?, self.sel("except")?))
    }

    fn required_id(&mut self, what: &str) -> Result<String, DecodeError> {
        self.request_id
            .take()
            .ok_or_else(|| DecodeError::BadRequest(format!("{what} without requestId")))
    }
}

fn request_from(
    req: Map<String, Value>,
    nsp: String,
    attachments: Vec<Bytes>,
) -> Result<RemoteRequest, DecodeError> {
    let kind = req
        .get("type")
        .and_then(Value::as_u64)
        .ok_or_else(|| DecodeError::BadRequest("no numeric type".into()))?;
    let mut f = Fields {
        uid: req.get("uid").and_then(string),
        request_id: req.get("requestId").and_then(string),
        req,
        nsp,
    };
    Ok(match kind {
        kind::REMOTE_JOIN | kind::REMOTE_LEAVE => membership(kind, f)?,
        kind::REMOTE_DISCONNECT => disconnect(f)?,
        kind::REMOTE_FETCH => {
            let request_id = f.required_id("fetchSockets")?;
            let (opts_rooms, opts_except) = f.selection()?;
            RemoteRequest::Fetch {
                uid: f.uid,
                nsp: f.nsp,
                request_id,
                opts_rooms,
                opts_except,
            }
        }
        kind::SERVER_SIDE_EMIT => RemoteRequest::ServerSideEmit {
            data: f.req.remove("data").unwrap_or(Value::Array(Vec::new())),
            uid: f.uid,
            nsp: f.nsp,
            request_id: f.request_id,
        },
        kind::BROADCAST => broadcast_with_ack(f, attachments)?,
        kind::ALL_ROOMS => RemoteRequest::AllRooms {
            request_id: f.required_id("allRooms")?,
            uid: f.uid,
            nsp: f.nsp,
        },
        kind::SOCKETS => RemoteRequest::Sockets {
            request_id: f.required_id("sockets")?,
            rooms: strings(f.req.get("rooms"), "rooms")?,
            uid: f.uid,
            nsp: f.nsp,
        },
        kind => RemoteRequest::Other {
            uid: f.uid,
            nsp: f.nsp,
            kind,
            request_id: f.request_id,
        },
    })
}

/// REMOTE_JOIN / REMOTE_LEAVE, in the `opts` form or the older one-socket form `{sid, room}`.
fn membership(kind: u64, f: Fields) -> Result<RemoteRequest, DecodeError> {
    let (rooms, (opts_rooms, opts_except)) = if f.opts().is_some() {
        (strings(f.req.get("rooms"), "rooms")?, f.selection()?)
    } else {
        // A socket is in the room named by its id, so `{sid, room}` is the same request with
        // that room selected.
        match (
            f.req.get("sid").and_then(string),
            f.req.get("room").and_then(string),
        ) {
            (Some(sid), Some(room)) => (vec![room], (vec![sid], Vec::new())),
            _ => return Err(DecodeError::BadRequest("no opts and no sid/room".into())),
        }
    };
    let (uid, nsp) = (f.uid, f.nsp);
    Ok(if kind == kind::REMOTE_JOIN {
        RemoteRequest::Join {
            uid,
            nsp,
            rooms,
            opts_rooms,
            opts_except,
        }
    } else {
        RemoteRequest::Leave {
            uid,
            nsp,
            rooms,
            opts_rooms,
            opts_except,
        }
    })
}

/// REMOTE_DISCONNECT, in the `opts` form or the older one-socket form `{sid}`.
fn disconnect(f: Fields) -> Result<RemoteRequest, DecodeError> {
    let close = f.req.get("close").and_then(Value::as_bool).unwrap_or(false);
    let (opts_rooms, opts_except) = if f.opts().is_some() {
        f.selection()?
    } else {
        match f.req.get("sid").and_then(string) {
            Some(sid) => (vec![sid], Vec::new()),
            None => return Err(DecodeError::BadRequest("no opts and no sid".into())),
        }
    };
    Ok(RemoteRequest::Disconnect {
        uid: f.uid,
        nsp: f.nsp,
        close,
        opts_rooms,
        opts_except,
    })
}

/// BROADCAST with a `requestId`: a broadcast whose sender waits for acknowledgements.
fn broadcast_with_ack(
    mut f: Fields,
    attachments: Vec<Bytes>,
) -> Result<RemoteRequest, DecodeError> {
    let request_id = f.required_id("broadcast")?;
    let packet = f.req.get("packet").ok_or(DecodeError::BadPacket)?;
    let pkind = packet
        .get("type")
        .and_then(Value::as_u64)
        .ok_or(DecodeError::BadPacket)?;
    if pkind != EVENT && pkind != BINARY_EVENT {
        return Err(DecodeError::UnsupportedPacketType(pkind));
    }
    let mut event_args = match packet.get("data") {
        Some(d @ Value::Array(a)) if !a.is_empty() => d.clone(),
        _ => return Err(DecodeError::BadEventData),
    };
    let attachments = msgpack::keep_referenced(&mut event_args, attachments);
    let flags = match f.opts().and_then(|o| o.get("flags")) {
        Some(flags @ Value::Object(_)) => flags.clone(),
        _ => Value::Object(Map::new()),
    };
    let (rooms, except) = f.selection()?;
    let broadcast = Broadcast {
        uid: f.uid.clone().unwrap_or_default(),
        nsp: packet.get("nsp").and_then(string).unwrap_or(f.nsp),
        event_args,
        attachments,
        rooms,
        except,
        flags,
        channel_room: None,
    };
    Ok(RemoteRequest::BroadcastWithAck {
        uid: f.uid,
        request_id,
        broadcast,
    })
}

/// The bytes to PUBLISH on [`request_channel`] for `req`, as a Node adapter would send them:
/// JSON for everything but BROADCAST, which is MessagePack (it may carry binaries).
pub fn encode_request(req: &RemoteRequest) -> Vec<u8> {
    let doc = match req {
        RemoteRequest::Join {
            uid,
            rooms,
            opts_rooms,
            opts_except,
            ..
        }
        | RemoteRequest::Leave {
            uid,
            rooms,
            opts_rooms,
            opts_except,
            ..
        } => {
            let kind = if matches!(req, RemoteRequest::Join { .. }) {
                kind::REMOTE_JOIN
            } else {
                kind::REMOTE_LEAVE
            };
            let opts = json!({"rooms": opts_rooms, "except": opts_except});
            document(
                uid,
                None,
                json!({"type": kind, "opts": opts, "rooms": rooms}),
            )
        }
        RemoteRequest::Disconnect {
            uid,
            close,
            opts_rooms,
            opts_except,
            ..
        } => {
            let opts = json!({"rooms": opts_rooms, "except": opts_except});
            let body = json!({"type": kind::REMOTE_DISCONNECT, "opts": opts, "close": close});
            document(uid, None, body)
        }
        RemoteRequest::Fetch {
            uid,
            request_id,
            opts_rooms,
            opts_except,
            ..
        } => {
            let opts = json!({"rooms": opts_rooms, "except": opts_except});
            let body = json!({"type": kind::REMOTE_FETCH, "opts": opts});
            document(uid, Some(request_id), body)
        }
        RemoteRequest::ServerSideEmit {
            uid,
            request_id,
            data,
            ..
        } => {
            let body = json!({"type": kind::SERVER_SIDE_EMIT, "data": data});
            document(uid, request_id.as_ref(), body)
        }
        RemoteRequest::BroadcastWithAck {
            uid,
            request_id,
            broadcast,
        } => return encode_broadcast_request(uid.as_deref(), request_id, broadcast),
        RemoteRequest::AllRooms {
            uid, request_id, ..
        } => document(uid, Some(request_id), json!({"type": kind::ALL_ROOMS})),
        RemoteRequest::Sockets {
            uid,
            request_id,
            rooms,
            ..
        } => document(
            uid,
            Some(request_id),
            json!({"type": kind::SOCKETS, "rooms": rooms}),
        ),
        RemoteRequest::Other {
            uid,
            kind,
            request_id,
            ..
        } => document(uid, request_id.as_ref(), json!({"type": kind})),
    };
    serde_json::to_vec(&doc).unwrap_or_default()
}

/// A JSON request as the adapter writes one: `uid`, then `requestId`, then the rest.
fn document(uid: &Option<String>, request_id: Option<&String>, rest: Value) -> Value {
    let mut m = Map::new();
    if let Some(uid) = uid {
        m.insert("uid".into(), Value::from(uid.as_str()));
    }
    if let Some(id) = request_id {
        m.insert("requestId".into(), Value::from(id.as_str()));
    }
    if let Value::Object(mut rest) = rest {
        m.append(&mut rest);
    }
    Value::Object(m)
}

/// A broadcast-with-ack request: MessagePack, since it may carry binaries.
fn encode_broadcast_request(uid: Option<&str>, request_id: &str, b: &Broadcast) -> Vec<u8> {
    let mut fields = Vec::with_capacity(5);
    if let Some(uid) = uid {
        fields.push((Mp::from("uid"), Mp::from(uid)));
    }
    fields.push((Mp::from("requestId"), Mp::from(request_id)));
    fields.push((Mp::from("type"), Mp::from(kind::BROADCAST)));
    fields.push((Mp::from("packet"), packet_value(b)));
    fields.push((Mp::from("opts"), opts_value(b)));
    msgpack::write(&Mp::Map(fields))
}

fn string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn strings(v: Option<&Value>, field: &str) -> Result<Vec<String>, DecodeError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                string(i).ok_or_else(|| DecodeError::BadRequest(format!("{field}: not a room")))
            })
            .collect(),
        // socketsJoin("room") is normalized to an array by the senders; accept a bare one too
        Some(v @ (Value::String(_) | Value::Number(_))) => Ok(string(v).into_iter().collect()),
        Some(_) => Err(DecodeError::BadRequest(format!("{field}: not a list"))),
    }
}
