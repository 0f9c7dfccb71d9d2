//! Responses to requests from Node nodes, PUBLISHed on `<prefix>-response#<nsp>#`, shaped as
//! `@socket.io/redis-adapter` 8 writes them: JSON, except BROADCAST_ACK (MessagePack, as the
//! adapter's `parser.encode`, since a client's ack may carry binaries).
//!
//! ```text
//! fetchSockets        {"requestId", "sockets": [{"id", "handshake", "rooms", "data"}]}
//! allRooms            {"requestId", "rooms": [room, ...]}
//! sockets(rooms)      {"requestId", "sockets": [socket id, ...]}
//! serverSideEmit ack  {"type": 6, "requestId", "data"}
//! broadcast count     {"type": 8, "requestId", "clientCount"}
//! broadcast ack       msgpack {type: 9, requestId, packet}   packet = the client's first ack arg
//! ```
//!
//! The requester counts answers against `PUBSUB NUMSUB <prefix>-request#<nsp>#`, so every
//! subscriber of the request channel must answer each of these requests exactly once.

use bytes::Bytes;
use rmpv::Value as Mp;
use serde_json::{json, Value};

use super::kind;
use super::msgpack;

/// One socket as a Node `RemoteSocket` is built from it. `rooms` are the rooms the socket
/// joined; its own id comes first, as in a Node socket's `rooms` set.
pub fn socket_details(id: &str, rooms: &[String], handshake: Value, data: Value) -> Value {
    let mut all = Vec::with_capacity(rooms.len() + 1);
    all.push(Value::from(id));
    all.extend(
        rooms
            .iter()
            .filter(|r| r.as_str() != id)
            .map(|r| Value::from(r.as_str())),
    );
    json!({"id": id, "handshake": handshake, "rooms": all, "data": data})
}

/// The answer to a `fetchSockets` request: `sockets` built by [`socket_details`].
pub fn encode_fetch_response(request_id: &str, sockets: Vec<Value>) -> Vec<u8> {
    to_vec(&json!({"requestId": request_id, "sockets": sockets}))
}

/// The answer to an `allRooms` request: this node's rooms, socket id rooms included (as a
/// Node adapter's `rooms` map has them).
pub fn encode_all_rooms_response(request_id: &str, rooms: &[&str]) -> Vec<u8> {
    to_vec(&json!({"requestId": request_id, "rooms": rooms}))
}

/// The answer to a `sockets(rooms)` request: the ids of this node's selected sockets.
pub fn encode_sockets_response(request_id: &str, ids: &[&str]) -> Vec<u8> {
    to_vec(&json!({"requestId": request_id, "sockets": ids}))
}

/// The answer to a `serverSideEmitWithAck` request (one per node; `data` is the ack's one
/// argument).
pub fn encode_server_side_emit_ack(request_id: &str, data: &Value) -> Vec<u8> {
    to_vec(&json!({"type": kind::SERVER_SIDE_EMIT, "requestId": request_id, "data": data}))
}

/// How many clients this node sent a broadcast-with-ack to (one answer per node, 0 included:
/// the requester waits for one count per subscriber).
pub fn encode_client_count(request_id: &str, client_count: u64) -> Vec<u8> {
    to_vec(&json!({
        "type": kind::BROADCAST_CLIENT_COUNT,
        "requestId": request_id,
        "clientCount": client_count,
    }))
}

/// One client's acknowledgement of a broadcast-with-ack: its first ack argument (`None` when
/// it acked with none: `undefined`, which MessagePack leaves out of the map). Binary
/// placeholders in `arg` become MessagePack bin from `attachments`.
pub fn encode_broadcast_ack(
    request_id: &str,
    arg: Option<&Value>,
    attachments: &[Bytes],
) -> Vec<u8> {
    let mut fields = vec![
        (Mp::from("type"), Mp::from(kind::BROADCAST_ACK)),
        (Mp::from("requestId"), Mp::from(request_id)),
    ];
    if let Some(arg) = arg {
        fields.push((Mp::from("packet"), msgpack::from_json(arg, attachments)));
    }
    msgpack::write(&Mp::Map(fields))
}

fn to_vec(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("serializing a Value into a Vec cannot fail")
}
