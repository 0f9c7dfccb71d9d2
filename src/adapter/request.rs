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
    /// Any other request (allRooms, allSockets, ...): named so the caller can log and skip.
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

fn request_from(
    req: Map<String, Value>,
    nsp: String,
    attachments: Vec<Bytes>,
) -> Result<RemoteRequest, DecodeError> {
    let uid = req.get("uid").and_then(string);
    let request_id = req.get("requestId").and_then(string);
    let kind = req
        .get("type")
        .and_then(Value::as_u64)
        .ok_or_else(|| DecodeError::BadRequest("no numeric type".into()))?;
    let opts = req.get("opts");
    let sel = |field: &str| -> Result<Vec<String>, DecodeError> {
        strings(opts.and_then(|o| o.get(field)), field)
    };
    Ok(match kind {
        kind::REMOTE_JOIN | kind::REMOTE_LEAVE => {
            let (rooms, opts_rooms, opts_except) = if opts.is_some() {
                (
                    strings(req.get("rooms"), "rooms")?,
                    sel("rooms")?,
                    sel("except")?,
                )
            } else {
                // The older one-socket form `{sid, room}`: a socket is in the room named by
                // its id, so it is the same request with that room selected.
                let sid = req.get("sid").and_then(string);
                let room = req.get("room").and_then(string);
                match (sid, room) {
                    (Some(sid), Some(room)) => (vec![room], vec![sid], Vec::new()),
                    _ => return Err(DecodeError::BadRequest("no opts and no sid/room".into())),
                }
            };
            if kind == kind::REMOTE_JOIN {
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
            }
        }
        kind::REMOTE_DISCONNECT => {
            let close = req.get("close").and_then(Value::as_bool).unwrap_or(false);
            let (opts_rooms, opts_except) = if opts.is_some() {
                (sel("rooms")?, sel("except")?)
            } else {
                match req.get("sid").and_then(string) {
                    Some(sid) => (vec![sid], Vec::new()),
                    None => return Err(DecodeError::BadRequest("no opts and no sid".into())),
                }
            };
            RemoteRequest::Disconnect {
                uid,
                nsp,
                close,
                opts_rooms,
                opts_except,
            }
        }
        kind::REMOTE_FETCH => RemoteRequest::Fetch {
            uid,
            nsp,
            request_id: request_id
                .ok_or_else(|| DecodeError::BadRequest("fetchSockets without requestId".into()))?,
            opts_rooms: sel("rooms")?,
            opts_except: sel("except")?,
        },
        kind::SERVER_SIDE_EMIT => RemoteRequest::ServerSideEmit {
            uid,
            nsp,
            request_id,
            data: req.get("data").cloned().unwrap_or(Value::Array(Vec::new())),
        },
        kind::BROADCAST => {
            let request_id = request_id
                .ok_or_else(|| DecodeError::BadRequest("broadcast without requestId".into()))?;
            let packet = req.get("packet").ok_or(DecodeError::BadPacket)?;
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
            let flags = match opts.and_then(|o| o.get("flags")) {
                Some(f @ Value::Object(_)) => f.clone(),
                _ => Value::Object(Map::new()),
            };
            let broadcast = Broadcast {
                uid: uid.clone().unwrap_or_default(),
                nsp: packet.get("nsp").and_then(string).unwrap_or(nsp),
                event_args,
                attachments,
                rooms: sel("rooms")?,
                except: sel("except")?,
                flags,
                channel_room: None,
            };
            RemoteRequest::BroadcastWithAck {
                uid,
                request_id,
                broadcast,
            }
        }
        kind => RemoteRequest::Other {
            uid,
            nsp,
            kind,
            request_id,
        },
    })
}

/// The bytes to PUBLISH on [`request_channel`] for `req`, as a Node adapter would send them:
/// JSON for everything but BROADCAST, which is MessagePack (it may carry binaries).
pub fn encode_request(req: &RemoteRequest) -> Vec<u8> {
    let with_uid = |uid: &Option<String>, mut rest: Map<String, Value>| {
        let mut m = Map::new();
        if let Some(uid) = uid {
            m.insert("uid".into(), Value::from(uid.as_str()));
        }
        m.append(&mut rest);
        Value::Object(m)
    };
    let obj = |v: Value| match v {
        Value::Object(m) => m,
        _ => Map::new(),
    };
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
            with_uid(
                uid,
                obj(json!({
                    "type": kind,
                    "opts": {"rooms": opts_rooms, "except": opts_except},
                    "rooms": rooms,
                })),
            )
        }
        RemoteRequest::Disconnect {
            uid,
            close,
            opts_rooms,
            opts_except,
            ..
        } => with_uid(
            uid,
            obj(json!({
                "type": kind::REMOTE_DISCONNECT,
                "opts": {"rooms": opts_rooms, "except": opts_except},
                "close": close,
            })),
        ),
        RemoteRequest::Fetch {
            uid,
            request_id,
            opts_rooms,
            opts_except,
            ..
        } => with_uid(
            uid,
            obj(json!({
                "requestId": request_id,
                "type": kind::REMOTE_FETCH,
                "opts": {"rooms": opts_rooms, "except": opts_except},
            })),
        ),
        RemoteRequest::ServerSideEmit {
            uid,
            request_id,
            data,
            ..
        } => {
            let mut m = Map::new();
            if let Some(id) = request_id {
                m.insert("requestId".into(), Value::from(id.as_str()));
            }
            m.insert("type".into(), Value::from(kind::SERVER_SIDE_EMIT));
            m.insert("data".into(), data.clone());
            with_uid(uid, m)
        }
        RemoteRequest::BroadcastWithAck {
            uid,
            request_id,
            broadcast,
        } => {
            let mut fields = Vec::with_capacity(5);
            if let Some(uid) = uid {
                fields.push((Mp::from("uid"), Mp::from(uid.as_str())));
            }
            fields.push((Mp::from("requestId"), Mp::from(request_id.as_str())));
            fields.push((Mp::from("type"), Mp::from(kind::BROADCAST)));
            fields.push((Mp::from("packet"), packet_value(broadcast)));
            fields.push((Mp::from("opts"), opts_value(broadcast)));
            return msgpack::write(&Mp::Map(fields));
        }
        RemoteRequest::Other {
            uid,
            kind,
            request_id,
            ..
        } => {
            let mut m = Map::new();
            if let Some(id) = request_id {
                m.insert("requestId".into(), Value::from(id.as_str()));
            }
            m.insert("type".into(), Value::from(*kind));
            with_uid(uid, m)
        }
    };
    serde_json::to_vec(&doc).unwrap_or_default()
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
