//! The wire format of the official Socket.IO Redis adapter (`@socket.io/redis-adapter` 8) and
//! emitter (`@socket.io/redis-emitter` 5), as pure functions: no I/O, no mio.
//!
//! ```text
//! broadcast   PUBLISH <prefix>#<nsp>#           msgpack [uid, packet, opts]
//!             PUBLISH <prefix>#<nsp>#<room>#    (same; when opts.rooms has exactly one room)
//!   uid       the node's adapter uid (6 random chars), or "emitter"
//!   packet    {type: 2, data: [event, ...args], nsp}      binary args are msgpack bin
//!   opts      {rooms: [..], except: [..], flags: {..}}    (the emitter orders rooms, flags, except)
//! subscribe   PSUBSCRIBE <prefix>#<nsp>#*
//! requests    PUBLISH <prefix>-request#<nsp>#   JSON {uid?, type, opts: {rooms, except}, rooms | close | data}
//!             type 2 join, 3 leave, 4 disconnect, 6 serverSideEmit; 7 broadcast-with-ack is msgpack
//! responses   PUBLISH <prefix>-response#<nsp>#   JSON {requestId, sockets} | {type, requestId, ..};
//!             BROADCAST_ACK (type 9) is msgpack (see response.rs)
//! ```
//!
//! The MessagePack is `notepack.io`'s: integral numbers as the smallest int form, other
//! numbers float64, strings as str (fixstr/str8/16/32), Buffers as bin8/16/32, Dates as
//! timestamp ext -1, `undefined` as nil (omitted from maps). [`encode_broadcast`] produces the
//! same bytes the adapter does for the same broadcast; [`decode_broadcast`] accepts both
//! packages' output. docs/REDIS.md has annotated byte examples.

mod broadcast;
mod msgpack;
mod request;
mod response;

pub use broadcast::{
    channel_for, decode_broadcast, digest, encode_broadcast, encode_broadcast_slot,
    encode_outgoing, encode_outgoing_slot, fill_slot, parse_channel, pattern_for, Broadcast,
    Outgoing, BINARY_EVENT, EMITTER_UID, EVENT, MAX_MESSAGE_LEN, OFFSET_FLAG, SOURCE_FLAG,
};
pub use request::{
    decode_request, encode_request, kind, request_channel, response_channel, RemoteRequest,
};
pub use response::{
    encode_all_rooms_response, encode_broadcast_ack, encode_client_count, encode_fetch_response,
    encode_server_side_emit_ack, encode_sockets_response, socket_details,
};

/// Why a message from Redis could not be used. Each variant names the broken rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not MessagePack: {0}")]
    NotMsgpack(String),
    #[error("{0} bytes after the MessagePack value")]
    TrailingBytes(usize),
    #[error("message of {0} bytes is over the limit")]
    TooLarge(usize),
    #[error("not a [uid, packet, opts] array")]
    NotAMessage,
    #[error("uid is not a string")]
    BadUid,
    #[error("packet is not a {{type, data, nsp}} map")]
    BadPacket,
    #[error("packet type {0} is not EVENT or BINARY_EVENT")]
    UnsupportedPacketType(u64),
    #[error("packet data is not a non-empty [event, ...args] array")]
    BadEventData,
    #[error("opts is not a {{rooms, except, flags}} map of room lists")]
    BadOpts,
    #[error("map key is not a string, number, boolean or nil")]
    BadMapKey,
    #[error("more than {0} binary attachments")]
    TooManyAttachments(usize),
    #[error("channel does not belong to the packet's namespace")]
    NamespaceMismatch,
    #[error("not a request channel")]
    NotARequestChannel,
    #[error("bad request: {0}")]
    BadRequest(String),
}

#[cfg(test)]
mod tests;
