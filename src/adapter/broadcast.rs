//! Broadcast messages: `[uid, packet, opts]` in MessagePack on `<prefix>#<nsp>#[<room>#]`.

use bytes::Bytes;
use rmpv::{Value as Mp, ValueRef};
use serde_json::Value;

use super::msgpack;
use super::DecodeError;

/// The `uid` of messages from `@socket.io/redis-emitter`.
pub const EMITTER_UID: &str = "emitter";
/// Socket.IO packet type EVENT, the type both packages publish (binary or not).
pub const EVENT: u64 = 2;
/// Socket.IO packet type BINARY_EVENT, accepted on decode.
pub const BINARY_EVENT: u64 = 5;
/// Largest broadcast payload decoded.
pub const MAX_MESSAGE_LEN: usize = 16 * 1024 * 1024;

/// One broadcast, as published by a Socket.IO server's Redis adapter or the emitter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Broadcast {
    /// The publisher: a node's adapter uid, or [`EMITTER_UID`]. A node ignores its own.
    pub uid: String,
    /// The namespace, e.g. `/`.
    pub nsp: String,
    /// The JSON array `[event, ...args]`, with `{"_placeholder":true,"num":i}` where binaries
    /// were.
    pub event_args: Value,
    /// The binaries, `num` order.
    pub attachments: Vec<Bytes>,
    /// Target rooms; empty means every socket of the namespace.
    pub rooms: Vec<String>,
    /// Rooms (and socket ids) to leave out.
    pub except: Vec<String>,
    /// The sender's flags object (`volatile`, `compress`, `local`, ...); `Null` encodes as `{}`.
    pub flags: Value,
    /// Decode only: the room named by the channel suffix (the publisher adds it when there is
    /// exactly one room). Encode ignores it; [`channel_for`] derives the channel.
    pub channel_room: Option<String>,
}

/// `<prefix>#<nsp>#`, plus `<room>#` when there is exactly one room (as both packages do, so
/// Node adapters can skip rooms they do not have before decoding).
pub fn channel_for(prefix: &str, nsp: &str, rooms: &[String]) -> String {
    let mut c = format!("{prefix}#{nsp}#");
    if let [room] = rooms {
        c.push_str(room);
        c.push('#');
    }
    c
}

/// `<prefix>#<nsp>#*`, the PSUBSCRIBE pattern covering every broadcast of the namespace
/// (glob characters in prefix or namespace escaped).
pub fn pattern_for(prefix: &str, nsp: &str) -> String {
    let mut p = String::with_capacity(prefix.len() + nsp.len() + 3);
    for c in prefix.chars().chain(['#']).chain(nsp.chars()) {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push_str("#*");
    p
}

/// Splits a broadcast channel into (namespace, room), cheaply, before decoding: what a Node
/// adapter uses to skip messages for rooms it does not have. The namespace ends at the first
/// `#` after the prefix, so a namespace containing `#` is not supported here (decode itself
/// uses the namespace from the packet and handles it).
pub fn parse_channel<'a>(channel: &'a [u8], prefix: &str) -> Option<(&'a str, Option<&'a str>)> {
    let rest = channel
        .strip_prefix(prefix.as_bytes())?
        .strip_prefix(b"#")?;
    let rest = std::str::from_utf8(rest).ok()?;
    let (nsp, room) = rest.split_once('#')?;
    if room.is_empty() {
        return Some((nsp, None));
    }
    Some((nsp, Some(room.strip_suffix('#')?)))
}

/// The MessagePack message for `b`: exactly what `@socket.io/redis-adapter` 8 publishes for
/// the same broadcast (same key order, same number and string forms).
pub fn encode_broadcast(b: &Broadcast) -> Vec<u8> {
    msgpack::write(&Mp::Array(vec![
        Mp::from(b.uid.as_str()),
        packet_value(b),
        opts_value(b),
    ]))
}

/// A local broadcast to publish, borrowed from the delivery that sends it (nothing is copied
/// to build the message).
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    pub uid: &'a str,
    pub nsp: &'a str,
    pub event: &'a str,
    pub args: &'a [Value],
    pub attachments: &'a [Bytes],
    pub rooms: &'a [String],
    pub except: &'a [String],
    pub volatile: bool,
}

/// The MessagePack message for `o`: the same bytes [`encode_broadcast`] gives for the
/// equivalent [`Broadcast`].
pub fn encode_outgoing(o: &Outgoing<'_>) -> Vec<u8> {
    msgpack::write(&outgoing_value(o, Vec::new()))
}

/// The message for `o` as a recovery-log slot: `flags` ends with `offset` and the value is left
/// out, so `slot ++ str8(id)` ([`fill_slot`]) is the message whose `flags.offset` is the log
/// entry id. A Lua script appends the id Redis gives the entry; the recovery log stores the
/// slot itself.
pub fn encode_outgoing_slot(o: &Outgoing<'_>) -> Vec<u8> {
    slot(msgpack::write(&outgoing_value(
        o,
        vec![offset_placeholder()],
    )))
}

/// A received broadcast as a recovery-log slot (see [`encode_outgoing_slot`]), with
/// `flags.src` = `src` (the digest of the message it was logged from) before the offset.
pub fn encode_broadcast_slot(b: &Broadcast, src: &str) -> Vec<u8> {
    let mut flags: Vec<(Mp, Mp)> = match &b.flags {
        Value::Object(m) => m
            .iter()
            .filter(|(k, _)| k.as_str() != OFFSET_FLAG && k.as_str() != SOURCE_FLAG)
            .map(|(k, v)| (Mp::from(k.as_str()), msgpack::from_json(v, &[])))
            .collect(),
        _ => Vec::new(),
    };
    flags.push((Mp::from(SOURCE_FLAG), Mp::from(src)));
    flags.push(offset_placeholder());
    let strings = |v: &[String]| Mp::Array(v.iter().map(|s| Mp::from(s.as_str())).collect());
    let opts = Mp::Map(vec![
        (Mp::from("rooms"), strings(&b.rooms)),
        (Mp::from("except"), strings(&b.except)),
        (Mp::from("flags"), Mp::Map(flags)),
    ]);
    let msg = Mp::Array(vec![Mp::from(b.uid.as_str()), packet_value(b), opts]);
    slot(msgpack::write(&msg))
}

/// `slot ++ str8(id)`: the complete message of a recovery-log slot (what the Lua script
/// publishes; replay rebuilds it from the stored slot and the entry id).
pub fn fill_slot(slot: &[u8], id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(slot.len() + id.len() + 2);
    out.extend_from_slice(slot);
    out.push(0xd9);
    out.push(id.len().min(255) as u8);
    out.extend_from_slice(&id.as_bytes()[..id.len().min(255)]);
    out
}

/// `flags.offset` of a logged broadcast: its recovery-log entry id.
pub const OFFSET_FLAG: &str = "offset";
/// `flags.src` of a broadcast logged on behalf of another publisher (the emitter): the
/// digest of the message as that publisher sent it.
pub const SOURCE_FLAG: &str = "src";

impl Broadcast {
    /// The recovery-log entry id of a logged broadcast (`flags.offset`).
    pub fn offset(&self) -> Option<&str> {
        self.flags
            .get(OFFSET_FLAG)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    /// `flags.src` of a broadcast logged on behalf of another publisher.
    pub fn source(&self) -> Option<&str> {
        self.flags.get(SOURCE_FLAG).and_then(Value::as_str)
    }
}

fn offset_placeholder() -> (Mp, Mp) {
    (Mp::from(OFFSET_FLAG), Mp::from(""))
}

/// Drops the trailing empty string (`a0`) of the offset placeholder.
fn slot(mut msg: Vec<u8>) -> Vec<u8> {
    debug_assert_eq!(msg.last(), Some(&0xa0));
    msg.pop();
    msg
}

fn outgoing_value(o: &Outgoing<'_>, extra_flags: Vec<(Mp, Mp)>) -> Mp {
    let mut data = Vec::with_capacity(o.args.len() + 1);
    data.push(Mp::from(o.event));
    data.extend(o.args.iter().map(|a| msgpack::from_json(a, o.attachments)));
    let packet = Mp::Map(vec![
        (Mp::from("type"), Mp::from(EVENT)),
        (Mp::from("data"), Mp::Array(data)),
        (Mp::from("nsp"), Mp::from(o.nsp)),
    ]);
    let strings = |v: &[String]| Mp::Array(v.iter().map(|s| Mp::from(s.as_str())).collect());
    let mut flags = Vec::new();
    if o.volatile {
        flags.push((Mp::from("volatile"), Mp::Boolean(true)));
    }
    flags.extend(extra_flags);
    let opts = Mp::Map(vec![
        (Mp::from("rooms"), strings(o.rooms)),
        (Mp::from("except"), strings(o.except)),
        (Mp::from("flags"), Mp::Map(flags)),
    ]);
    Mp::Array(vec![Mp::from(o.uid), packet, opts])
}

/// FNV-1a 64 of a message, as hex: the same on every node and build (the `src` of a
/// broadcast logged for another publisher).
pub fn digest(payload: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in payload {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// `{type: 2, data, nsp}`.
pub(crate) fn packet_value(b: &Broadcast) -> Mp {
    Mp::Map(vec![
        (Mp::from("type"), Mp::from(EVENT)),
        (
            Mp::from("data"),
            msgpack::from_json(&b.event_args, &b.attachments),
        ),
        (Mp::from("nsp"), Mp::from(b.nsp.as_str())),
    ])
}

/// `{rooms, except, flags}`.
pub(crate) fn opts_value(b: &Broadcast) -> Mp {
    let strings = |v: &[String]| Mp::Array(v.iter().map(|s| Mp::from(s.as_str())).collect());
    let flags = match &b.flags {
        Value::Object(_) => msgpack::from_json(&b.flags, &[]),
        _ => Mp::Map(Vec::new()),
    };
    Mp::Map(vec![
        (Mp::from("rooms"), strings(&b.rooms)),
        (Mp::from("except"), strings(&b.except)),
        (Mp::from("flags"), flags),
    ])
}

/// Decodes a message received on `channel` (a broadcast channel under `prefix`).
///
/// # Errors
///
/// [`DecodeError`] naming what is wrong: not MessagePack, not `[uid, packet, opts]`, a packet
/// type other than EVENT/BINARY_EVENT, or a channel that does not belong to the packet's
/// namespace (a Node adapter ignores those too).
pub fn decode_broadcast(
    channel: &[u8],
    payload: &[u8],
    prefix: &str,
) -> Result<Broadcast, DecodeError> {
    if payload.len() > MAX_MESSAGE_LEN {
        return Err(DecodeError::TooLarge(payload.len()));
    }
    let v = msgpack::parse(payload)?;
    let ValueRef::Array(parts) = &v else {
        return Err(DecodeError::NotAMessage);
    };
    let [uid, packet, opts, ..] = parts.as_slice() else {
        return Err(DecodeError::NotAMessage);
    };
    let uid = match uid {
        ValueRef::String(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        // uids are strings in both packages; tolerate numbers
        ValueRef::Integer(i) => i.to_string(),
        _ => return Err(DecodeError::BadUid),
    };
    let mut b = decode_packet(packet)?;
    b.uid = uid;
    decode_opts(opts, &mut b)?;
    b.channel_room = channel_room(channel, prefix, &b.nsp)?;
    Ok(b)
}

/// The room suffix of `channel`, checking that the channel is `<prefix>#<nsp>#[<room>#]`.
fn channel_room(channel: &[u8], prefix: &str, nsp: &str) -> Result<Option<String>, DecodeError> {
    let rest = channel
        .strip_prefix(prefix.as_bytes())
        .and_then(|r| r.strip_prefix(b"#"))
        .and_then(|r| r.strip_prefix(nsp.as_bytes()))
        .and_then(|r| r.strip_prefix(b"#"))
        .ok_or(DecodeError::NamespaceMismatch)?;
    if rest.is_empty() {
        return Ok(None);
    }
    let room = rest
        .strip_suffix(b"#")
        .ok_or(DecodeError::NamespaceMismatch)?;
    Ok(Some(String::from_utf8_lossy(room).into_owned()))
}

/// `{type, data, nsp}` into a broadcast (uid and opts still empty).
pub(crate) fn decode_packet(packet: &ValueRef<'_>) -> Result<Broadcast, DecodeError> {
    let ValueRef::Map(fields) = packet else {
        return Err(DecodeError::BadPacket);
    };
    let mut kind = None;
    let mut data = None;
    let mut nsp = None;
    for (k, v) in fields {
        match key(k) {
            Some("type") => kind = Some(v),
            Some("data") => data = Some(v),
            Some("nsp") => nsp = Some(v),
            _ => {}
        }
    }
    let kind = match kind {
        Some(ValueRef::Integer(i)) => i.as_u64().ok_or(DecodeError::BadPacket)?,
        _ => return Err(DecodeError::BadPacket),
    };
    if kind != EVENT && kind != BINARY_EVENT {
        return Err(DecodeError::UnsupportedPacketType(kind));
    }
    let nsp = match nsp {
        // the adapter treats a missing nsp as "/"
        None | Some(ValueRef::Nil) => "/".to_string(),
        Some(ValueRef::String(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        Some(_) => return Err(DecodeError::BadPacket),
    };
    let mut attachments = Vec::new();
    let event_args = match data {
        Some(d) => msgpack::to_json(d, &mut attachments)?,
        None => None,
    };
    let mut event_args = match event_args {
        Some(Value::Array(a)) if !a.is_empty() => Value::Array(a),
        _ => return Err(DecodeError::BadEventData),
    };
    let attachments = msgpack::keep_referenced(&mut event_args, attachments);
    Ok(Broadcast {
        nsp,
        event_args,
        attachments,
        ..Broadcast::default()
    })
}

/// `{rooms, except, flags}` into `b`.
pub(crate) fn decode_opts(opts: &ValueRef<'_>, b: &mut Broadcast) -> Result<(), DecodeError> {
    let fields = match opts {
        ValueRef::Map(f) => f.as_slice(),
        ValueRef::Nil => &[],
        _ => return Err(DecodeError::BadOpts),
    };
    b.flags = Value::Object(serde_json::Map::new());
    for (k, v) in fields {
        match key(k) {
            Some("rooms") => b.rooms = rooms(v)?,
            Some("except") => b.except = rooms(v)?,
            Some("flags") => {
                let mut ignored = Vec::new();
                if let Some(flags @ Value::Object(_)) = msgpack::to_json(v, &mut ignored)? {
                    b.flags = flags;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn key<'a>(k: &'a ValueRef<'_>) -> Option<&'a str> {
    match k {
        ValueRef::String(s) => s.as_str(),
        _ => None,
    }
}

/// A room list: strings, or numbers (Node rooms may be numeric) as their decimal form.
fn rooms(v: &ValueRef<'_>) -> Result<Vec<String>, DecodeError> {
    let items = match v {
        ValueRef::Array(items) => items,
        ValueRef::Nil => return Ok(Vec::new()),
        _ => return Err(DecodeError::BadOpts),
    };
    items
        .iter()
        .map(|r| match r {
            ValueRef::String(s) => Ok(String::from_utf8_lossy(s.as_bytes()).into_owned()),
            ValueRef::Integer(i) => Ok(i.to_string()),
            _ => Err(DecodeError::BadOpts),
        })
        .collect()
}
