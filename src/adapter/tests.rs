//! Wire vectors captured from the real npm packages (`tests/node_redis/vectors.mjs`:
//! `@socket.io/redis-emitter` 5.1.0 and `@socket.io/redis-adapter` 8.3.0 with notepack.io
//! 3.0.1), decoded here and, where our encoder must match, re-encoded byte for byte.

use bytes::Bytes;
use serde_json::json;

use super::*;

fn hex(parts: &[&str]) -> Vec<u8> {
    let s: String = parts.concat();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("test vector is hex"))
        .collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// `emitter_all` on `socket.io#/#`
const EMITTER_ALL: &[&str] = &[
    "93a7656d697474657283a47479706502a46461746193a568656c6c6fa5776f726c6401a36e7370a12f83a572",
    "6f6f6d7390a5666c61677380a665786365707490",
];

/// `emitter_one_room` on `socket.io#/#room1#`
const EMITTER_ONE_ROOM: &[&str] = &[
    "93a7656d697474657283a47479706502a46461746192a36d736781a16101a36e7370a12f83a5726f6f6d7391",
    "a5726f6f6d31a5666c61677380a665786365707490",
];

/// `emitter_two_rooms_except` on `socket.io#/#`
const EMITTER_TWO_ROOMS_EXCEPT: &[&str] = &[
    "93a7656d697474657283a47479706502a46461746194a56d756c7469920102c0c3a36e7370a12f83a5726f6f",
    "6d7392a27231a27232a5666c61677380a665786365707491a27233",
];

/// `emitter_binary` on `socket.io#/#files#`
const EMITTER_BINARY: &[&str] = &[
    "93a7656d697474657283a47479706502a46461746193a466696c65a86e616d652e62696ec404deadbeefa36e",
    "7370a12f83a5726f6f6d7391a566696c6573a5666c61677380a665786365707490",
];

/// `emitter_nsp_flags` on `socket.io#/chat#`
const EMITTER_NSP_FLAGS: &[&str] = &[
    "93a7656d697474657283a47479706502a46461746193a3766f6cfbcb400c000000000000a36e7370a52f6368",
    "617483a5726f6f6d7390a5666c61677382a8766f6c6174696c65c3a8636f6d7072657373c2a6657863657074",
    "90",
];

/// `emitter_sockets_join` on `socket.io-request#/#`
const EMITTER_SOCKETS_JOIN: &[&str] = &[
    "7b2274797065223a322c226f707473223a7b22726f6f6d73223a5b22726f6f6d31225d2c2265786365707422",
    "3a5b5d7d2c22726f6f6d73223a5b22726f6f6d32222c22726f6f6d33225d7d",
];

/// `emitter_sockets_leave` on `socket.io-request#/#`
const EMITTER_SOCKETS_LEAVE: &[&str] = &[
    "7b2274797065223a332c226f707473223a7b22726f6f6d73223a5b22726f6f6d31225d2c2265786365707422",
    "3a5b22726f6f6d39225d7d2c22726f6f6d73223a5b22726f6f6d32225d7d",
];

/// `emitter_disconnect` on `socket.io-request#/#`
const EMITTER_DISCONNECT: &[&str] = &[
    "7b2274797065223a342c226f707473223a7b22726f6f6d73223a5b22726f6f6d31225d2c2265786365707422",
    "3a5b5d7d2c22636c6f7365223a747275657d",
];

/// `emitter_server_side_emit` on `socket.io-request#/#`
const EMITTER_SERVER_SIDE_EMIT: &[&str] = &[
    "7b22756964223a22656d6974746572222c2274797065223a362c2264617461223a5b2270696e67222c7b2278",
    "223a317d5d7d",
];

/// `adapter_binary_one_room` on `socket.io#/#room1#`
const ADAPTER_BINARY_ONE_ROOM: &[&str] = &[
    "93a661626331323383a47479706502a46461746193a46368617484a474657874a26869a16ecd012ca3626967",
    "ce00011170a36e6567d1ff38c40378797aa36e7370a12f83a5726f6f6d7391a5726f6f6d31a6657863657074",
    "91a473696431a5666c61677380",
];

/// `adapter_date_all` on `socket.io#/#`
const ADAPTER_DATE_ALL: &[&str] = &[
    "93a661626331323383a47479706502a46461746194a47768656ed7ffa1a5d60065937d25c0cb3ff400000000",
    "0000a36e7370a12f83a5726f6f6d7390a665786365707490a5666c61677381a8766f6c6174696c65c3",
];

/// `adapter_broadcast_with_ack` on `socket.io-request#/#`
const ADAPTER_BROADCAST_WITH_ACK: &[&str] = &[
    "85a3756964a6616263313233a9726571756573744964a6544a704f6542a47479706507a67061636b657483a4",
    "7479706502a46461746192a361736b01a36e7370a12fa46f70747383a5726f6f6d7391a172a6657863657074",
    "90a5666c61677381a774696d656f7574cd03e8",
];

/// `adapter_add_sockets` on `socket.io-request#/#`
const ADAPTER_ADD_SOCKETS: &[&str] = &[
    "7b22756964223a22616263313233222c2274797065223a322c226f707473223a7b22726f6f6d73223a5b2261",
    "225d2c22657863657074223a5b2262225d7d2c22726f6f6d73223a5b2263225d7d",
];

/// `notepack_reference` on `socket.io#/#`
const NOTEPACK_REFERENCE: &[&str] = &[
    "93a66e6f64652d3183a47479706502a46461746198a26576a17301ffcb3ff8000000000000c3c0c4020102a3",
    "6e7370a12f83a5726f6f6d7392a161a162a665786365707491a163a5666c61677380",
];

#[test]
fn emitter_broadcast_to_everyone() {
    let b = decode_broadcast(b"socket.io#/#", &hex(EMITTER_ALL), "socket.io").unwrap();
    assert_eq!(b.uid, EMITTER_UID);
    assert_eq!(b.nsp, "/");
    assert_eq!(b.event_args, json!(["hello", "world", 1]));
    assert!(b.attachments.is_empty());
    assert!(b.rooms.is_empty() && b.except.is_empty());
    assert_eq!(b.flags, json!({}));
    assert_eq!(b.channel_room, None);
}

#[test]
fn emitter_broadcast_to_one_room_names_it_in_the_channel() {
    let channel = b"socket.io#/#room1#";
    let b = decode_broadcast(channel, &hex(EMITTER_ONE_ROOM), "socket.io").unwrap();
    assert_eq!(b.event_args, json!(["msg", {"a": 1}]));
    assert_eq!(b.rooms, strings(&["room1"]));
    assert_eq!(b.channel_room.as_deref(), Some("room1"));
    assert_eq!(channel_for("socket.io", "/", &b.rooms).as_bytes(), channel);
    assert_eq!(
        parse_channel(channel, "socket.io"),
        Some(("/", Some("room1")))
    );
}

#[test]
fn emitter_broadcast_to_two_rooms_with_except_uses_the_bare_channel() {
    let b = decode_broadcast(b"socket.io#/#", &hex(EMITTER_TWO_ROOMS_EXCEPT), "socket.io").unwrap();
    assert_eq!(b.event_args, json!(["multi", [1, 2], null, true]));
    assert_eq!(b.rooms, strings(&["r1", "r2"]));
    assert_eq!(b.except, strings(&["r3"]));
    assert_eq!(channel_for("socket.io", "/", &b.rooms), "socket.io#/#");
}

#[test]
fn emitter_binary_arg_becomes_a_placeholder_and_an_attachment() {
    let b = decode_broadcast(b"socket.io#/#files#", &hex(EMITTER_BINARY), "socket.io").unwrap();
    assert_eq!(
        b.event_args,
        json!(["file", "name.bin", {"_placeholder": true, "num": 0}])
    );
    assert_eq!(
        b.attachments,
        vec![Bytes::from_static(&[0xde, 0xad, 0xbe, 0xef])]
    );
    assert_eq!(b.rooms, strings(&["files"]));
}

#[test]
fn emitter_namespace_and_flags() {
    let b = decode_broadcast(b"socket.io#/chat#", &hex(EMITTER_NSP_FLAGS), "socket.io").unwrap();
    assert_eq!(b.nsp, "/chat");
    assert_eq!(b.event_args, json!(["vol", -5, 3.5]));
    assert_eq!(b.flags, json!({"volatile": true, "compress": false}));
    assert_eq!(pattern_for("socket.io", "/chat"), "socket.io#/chat#*");
}

#[test]
fn a_message_on_another_namespace_channel_is_rejected() {
    let err = decode_broadcast(b"socket.io#/#", &hex(EMITTER_NSP_FLAGS), "socket.io");
    assert_eq!(err, Err(DecodeError::NamespaceMismatch));
    let err = decode_broadcast(b"other#/chat#", &hex(EMITTER_NSP_FLAGS), "socket.io");
    assert_eq!(err, Err(DecodeError::NamespaceMismatch));
}

#[test]
fn adapter_binary_broadcast_decodes_and_reencodes_byte_for_byte() {
    let bytes = hex(ADAPTER_BINARY_ONE_ROOM);
    let b = decode_broadcast(b"socket.io#/#room1#", &bytes, "socket.io").unwrap();
    assert_eq!(b.uid, "abc123");
    assert_eq!(
        b.event_args,
        json!(["chat", {"text": "hi", "n": 300, "big": 70000, "neg": -200},
               {"_placeholder": true, "num": 0}])
    );
    assert_eq!(b.attachments, vec![Bytes::from_static(b"xyz")]);
    assert_eq!(b.rooms, strings(&["room1"]));
    assert_eq!(b.except, strings(&["sid1"]));
    assert_eq!(encode_broadcast(&b), bytes);
}

#[test]
fn adapter_dates_become_iso_strings_and_undefined_null() {
    let b = decode_broadcast(b"socket.io#/#", &hex(ADAPTER_DATE_ALL), "socket.io").unwrap();
    assert_eq!(
        b.event_args,
        json!(["when", "2024-01-02T03:04:05.678Z", null, 1.25])
    );
    assert_eq!(b.flags, json!({"volatile": true}));
}

#[test]
fn our_encoder_matches_notepack_byte_for_byte() {
    let b = Broadcast {
        uid: "node-1".into(),
        nsp: "/".into(),
        event_args: json!(["ev", "s", 1, -1, 1.5, true, null, {"_placeholder": true, "num": 0}]),
        attachments: vec![Bytes::from_static(&[1, 2])],
        rooms: strings(&["a", "b"]),
        except: strings(&["c"]),
        flags: serde_json::Value::Null,
        channel_room: None,
    };
    let bytes = encode_broadcast(&b);
    assert_eq!(bytes, hex(NOTEPACK_REFERENCE));
    let back = decode_broadcast(b"socket.io#/#", &bytes, "socket.io").unwrap();
    assert_eq!(back.event_args, b.event_args);
    assert_eq!(back.attachments, b.attachments);
    assert_eq!(back.flags, json!({}));
}

#[test]
fn long_strings_and_large_binaries_use_the_wider_forms() {
    let long = "x".repeat(300);
    let bin = Bytes::from(vec![7u8; 70_000]);
    let b = Broadcast {
        uid: "u".into(),
        nsp: "/".into(),
        event_args: json!(["e", long, {"_placeholder": true, "num": 0}]),
        attachments: vec![bin.clone()],
        ..Broadcast::default()
    };
    let bytes = encode_broadcast(&b);
    // str16 (0xda) for 300 chars, bin32 (0xc6) for 70,000 bytes, as notepack chooses
    assert!(bytes.windows(3).any(|w| w == [0xda, 0x01, 0x2c]));
    assert!(bytes
        .windows(5)
        .any(|w| w == [0xc6, 0x00, 0x01, 0x11, 0x70]));
    let back = decode_broadcast(b"socket.io#/#", &bytes, "socket.io").unwrap();
    assert_eq!(back.attachments, vec![bin]);
    assert_eq!(back.event_args, b.event_args);
}

#[test]
fn emitter_sockets_join_request() {
    let bytes = hex(EMITTER_SOCKETS_JOIN);
    let r = decode_request(b"socket.io-request#/#", &bytes, "socket.io").unwrap();
    assert_eq!(
        r,
        RemoteRequest::Join {
            uid: None,
            nsp: "/".into(),
            rooms: strings(&["room2", "room3"]),
            opts_rooms: strings(&["room1"]),
            opts_except: vec![],
        }
    );
    assert_eq!(encode_request(&r), bytes);
}

#[test]
fn emitter_sockets_leave_request() {
    let bytes = hex(EMITTER_SOCKETS_LEAVE);
    let r = decode_request(b"socket.io-request#/#", &bytes, "socket.io").unwrap();
    assert_eq!(
        r,
        RemoteRequest::Leave {
            uid: None,
            nsp: "/".into(),
            rooms: strings(&["room2"]),
            opts_rooms: strings(&["room1"]),
            opts_except: strings(&["room9"]),
        }
    );
    assert_eq!(encode_request(&r), bytes);
}

#[test]
fn emitter_disconnect_sockets_request() {
    let bytes = hex(EMITTER_DISCONNECT);
    let r = decode_request(b"socket.io-request#/#", &bytes, "socket.io").unwrap();
    assert_eq!(
        r,
        RemoteRequest::Disconnect {
            uid: None,
            nsp: "/".into(),
            close: true,
            opts_rooms: strings(&["room1"]),
            opts_except: vec![],
        }
    );
    assert_eq!(encode_request(&r), bytes);
}

#[test]
fn emitter_server_side_emit_request() {
    let bytes = hex(EMITTER_SERVER_SIDE_EMIT);
    let r = decode_request(b"socket.io-request#/#", &bytes, "socket.io").unwrap();
    assert_eq!(
        r,
        RemoteRequest::ServerSideEmit {
            uid: Some("emitter".into()),
            nsp: "/".into(),
            request_id: None,
            data: json!(["ping", {"x": 1}]),
        }
    );
    assert_eq!(encode_request(&r), bytes);
}

#[test]
fn adapter_add_sockets_request_with_uid() {
    let bytes = hex(ADAPTER_ADD_SOCKETS);
    let r = decode_request(b"socket.io-request#/#", &bytes, "socket.io").unwrap();
    assert_eq!(
        r,
        RemoteRequest::Join {
            uid: Some("abc123".into()),
            nsp: "/".into(),
            rooms: strings(&["c"]),
            opts_rooms: strings(&["a"]),
            opts_except: strings(&["b"]),
        }
    );
    assert_eq!(encode_request(&r), bytes);
}

#[test]
fn adapter_broadcast_with_ack_request_is_msgpack() {
    let bytes = hex(ADAPTER_BROADCAST_WITH_ACK);
    let r = decode_request(b"socket.io-request#/#", &bytes, "socket.io").unwrap();
    let RemoteRequest::BroadcastWithAck {
        uid,
        request_id,
        broadcast,
    } = &r
    else {
        panic!("expected BroadcastWithAck, got {r:?}");
    };
    assert_eq!(uid.as_deref(), Some("abc123"));
    assert_eq!(request_id, "TJpOeB");
    assert_eq!(broadcast.event_args, json!(["ask", 1]));
    assert_eq!(broadcast.rooms, strings(&["r"]));
    assert_eq!(broadcast.flags, json!({"timeout": 1000}));
    assert_eq!(encode_request(&r), bytes);
}

#[test]
fn legacy_single_socket_join_selects_the_sid_room() {
    let r = decode_request(
        b"socket.io-request#/#",
        br#"{"uid":"x","requestId":"q","type":2,"sid":"S1","room":"lobby"}"#,
        "socket.io",
    )
    .unwrap();
    assert_eq!(
        r,
        RemoteRequest::Join {
            uid: Some("x".into()),
            nsp: "/".into(),
            rooms: strings(&["lobby"]),
            opts_rooms: strings(&["S1"]),
            opts_except: vec![],
        }
    );
}

#[test]
fn unknown_request_types_are_named_not_errors() {
    let r = decode_request(
        b"socket.io-request#/admin#",
        br#"{"uid":"x","requestId":"q","type":1}"#,
        "socket.io",
    )
    .unwrap();
    assert_eq!(
        r,
        RemoteRequest::AllRooms {
            uid: Some("x".into()),
            nsp: "/admin".into(),
            request_id: "q".into(),
        }
    );
    let r = decode_request(
        b"socket.io-request#/#",
        br#"{"uid":"x","requestId":"q","type":0,"rooms":["a","b"]}"#,
        "socket.io",
    )
    .unwrap();
    let sockets = RemoteRequest::Sockets {
        uid: Some("x".into()),
        nsp: "/".into(),
        request_id: "q".into(),
        rooms: vec!["a".into(), "b".into()],
    };
    assert_eq!(r, sockets);
    assert_eq!(
        decode_request(
            b"socket.io-request#/#",
            &encode_request(&sockets),
            "socket.io"
        ),
        Ok(sockets)
    );
    let r = decode_request(
        b"socket.io-request#/admin#",
        br#"{"uid":"x","requestId":"q","type":8}"#,
        "socket.io",
    )
    .unwrap();
    assert_eq!(
        r,
        RemoteRequest::Other {
            uid: Some("x".into()),
            nsp: "/admin".into(),
            kind: kind::BROADCAST_CLIENT_COUNT,
            request_id: Some("q".into()),
        }
    );
    assert_eq!(
        request_channel("socket.io", "/admin"),
        "socket.io-request#/admin#"
    );
}

#[test]
fn malformed_inputs_are_errors_not_panics() {
    let p = "socket.io";
    assert_eq!(
        decode_request(b"socket.io#/#", b"{}", p),
        Err(DecodeError::NotARequestChannel)
    );
    assert!(matches!(
        decode_request(b"socket.io-request#/#", b"{not json", p),
        Err(DecodeError::BadRequest(_))
    ));
    assert!(matches!(
        decode_request(b"socket.io-request#/#", b"{\"type\":\"x\"}", p),
        Err(DecodeError::BadRequest(_))
    ));
    let ch = b"socket.io#/#";
    assert!(matches!(
        decode_broadcast(ch, b"", p),
        Err(DecodeError::NotMsgpack(_))
    ));
    assert_eq!(
        decode_broadcast(ch, &[0x01], p),
        Err(DecodeError::NotAMessage)
    );
    assert_eq!(
        decode_broadcast(ch, &[0x92, 0xa1, b'u', 0x80], p),
        Err(DecodeError::NotAMessage)
    );
    // [uid, {type: 0, data: ["x"]}, {}]: a CONNECT packet is not something to broadcast
    let connect = [
        0x93, 0xa1, b'u', 0x82, 0xa4, b't', b'y', b'p', b'e', 0x00, 0xa4, b'd', b'a', b't', b'a',
        0x91, 0xa1, b'x', 0x80,
    ];
    assert_eq!(
        decode_broadcast(ch, &connect, p),
        Err(DecodeError::UnsupportedPacketType(0))
    );
    // [uid, {type: 2, data: []}, {}]
    let empty = [
        0x93, 0xa1, b'u', 0x82, 0xa4, b't', b'y', b'p', b'e', 0x02, 0xa4, b'd', b'a', b't', b'a',
        0x90, 0x80,
    ];
    assert_eq!(
        decode_broadcast(ch, &empty, p),
        Err(DecodeError::BadEventData)
    );
    // [uid, {type: 2, data: ["x"]}, {rooms: 5}]
    let bad_rooms = [
        0x93, 0xa1, b'u', 0x82, 0xa4, b't', b'y', b'p', b'e', 0x02, 0xa4, b'd', b'a', b't', b'a',
        0x91, 0xa1, b'x', 0x81, 0xa5, b'r', b'o', b'o', b'm', b's', 0x05,
    ];
    assert_eq!(
        decode_broadcast(ch, &bad_rooms, p),
        Err(DecodeError::BadOpts)
    );
}

#[test]
fn more_binaries_than_a_packet_may_carry_are_rejected() {
    let b = Broadcast {
        uid: "u".into(),
        nsp: "/".into(),
        event_args: serde_json::Value::Array(
            std::iter::once(json!("e"))
                .chain((0..65).map(|i| json!({"_placeholder": true, "num": i})))
                .collect(),
        ),
        attachments: (0..65).map(|_| Bytes::from_static(b"x")).collect(),
        ..Broadcast::default()
    };
    let bytes = encode_broadcast(&b);
    assert_eq!(
        decode_broadcast(b"socket.io#/#", &bytes, "socket.io"),
        Err(DecodeError::TooManyAttachments(64))
    );
}

#[test]
fn glob_characters_are_escaped_in_patterns() {
    assert_eq!(pattern_for("app*", "/a[1]"), "app\\*#/a\\[1\\]#*");
    assert_eq!(
        parse_channel(b"socket.io#/#", "socket.io"),
        Some(("/", None))
    );
    assert_eq!(parse_channel(b"socket.io#/#x", "socket.io"), None);
    assert_eq!(parse_channel(b"other#/#", "socket.io"), None);
}

#[test]
fn outgoing_encodes_like_the_equivalent_broadcast() {
    let args = [
        json!({"a": [1, 2.5, "x"]}),
        json!({"_placeholder": true, "num": 0}),
    ];
    let attachments = [Bytes::from_static(&[1, 2, 3])];
    let rooms = vec!["r1".to_owned()];
    let except = vec!["s9".to_owned()];
    for volatile in [false, true] {
        let o = Outgoing {
            uid: "abc123",
            nsp: "/",
            event: "ev",
            args: &args,
            attachments: &attachments,
            rooms: &rooms,
            except: &except,
            volatile,
        };
        let b = Broadcast {
            uid: "abc123".into(),
            nsp: "/".into(),
            event_args: json!(["ev", args[0], args[1]]),
            attachments: attachments.to_vec(),
            rooms: rooms.clone(),
            except: except.clone(),
            flags: if volatile {
                json!({"volatile": true})
            } else {
                json!({})
            },
            channel_room: None,
        };
        assert_eq!(encode_outgoing(&o), encode_broadcast(&b));
    }
}

/// `fetchSockets()` as the adapter sends it (`JSON.stringify`, key order uid, requestId, type,
/// opts), decoded and re-encoded byte for byte.
#[test]
fn fetch_sockets_request_round_trips() {
    let bytes: &[u8] =
        br#"{"uid":"n0de01","requestId":"Qx1","type":5,"opts":{"rooms":["r1"],"except":["s9"]}}"#;
    let r = decode_request(b"socket.io-request#/#", bytes, "socket.io").unwrap();
    assert_eq!(
        r,
        RemoteRequest::Fetch {
            uid: Some("n0de01".into()),
            nsp: "/".into(),
            request_id: "Qx1".into(),
            opts_rooms: strings(&["r1"]),
            opts_except: strings(&["s9"]),
        }
    );
    assert_eq!(encode_request(&r), bytes);
    assert!(matches!(
        decode_request(
            b"socket.io-request#/#",
            br#"{"type":5,"opts":{}}"#,
            "socket.io"
        ),
        Err(DecodeError::BadRequest(_))
    ));
}

#[test]
fn fetch_response_lists_the_socket_id_room_first_once() {
    let s = socket_details(
        "S1",
        &strings(&["lobby", "S1", "user:u1"]),
        json!({"query": {}}),
        json!({"userId": "u1"}),
    );
    let out = encode_fetch_response("Qx1", vec![s]);
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        r#"{"requestId":"Qx1","sockets":[{"id":"S1","handshake":{"query":{}},"rooms":["S1","lobby","user:u1"],"data":{"userId":"u1"}}]}"#
    );
}

#[test]
fn json_responses_have_the_adapter_shapes() {
    assert_eq!(
        encode_server_side_emit_ack("Qx1", &json!({"node": "a"})),
        br#"{"type":6,"requestId":"Qx1","data":{"node":"a"}}"#
    );
    assert_eq!(
        encode_client_count("Qx1", 3),
        br#"{"type":8,"requestId":"Qx1","clientCount":3}"#
    );
}

/// Vectors from notepack.io 3.0.1: `encode({type: 9, requestId: "Qx1", packet})`.
#[test]
fn broadcast_ack_matches_notepack() {
    assert_eq!(
        encode_broadcast_ack("Qx1", Some(&json!({"ok": true, "n": 1})), &[]),
        hex(&["83a47479706509a9726571756573744964a3517831a67061636b657482a26f6bc3a16e01"])
    );
    // `packet: undefined` (an ack with no argument) is left out of the map.
    assert_eq!(
        encode_broadcast_ack("Qx1", None, &[]),
        hex(&["82a47479706509a9726571756573744964a3517831"])
    );
    let bin = json!({"_placeholder": true, "num": 0});
    assert_eq!(
        encode_broadcast_ack("Qx1", Some(&bin), &[Bytes::from_static(&[1, 2])]),
        hex(&["83a47479706509a9726571756573744964a3517831a67061636b6574c4020102"])
    );
}

/// Found by `fuzz/fuzz_targets/adapter_broadcast.rs`: a binary under a map key that a later
/// duplicate key replaced stayed in `attachments`, so every client got a binary frame no
/// placeholder named (notepack drops the replaced value; the Node adapter sends only the rest).
#[test]
fn binary_replaced_by_a_duplicate_key_is_not_sent() {
    use rmpv::Value as Mp;
    let bin = |b: &[u8]| Mp::Binary(b.to_vec());
    let data = Mp::Array(vec![
        Mp::from("ev"),
        Mp::Map(vec![
            (Mp::from("a"), bin(b"\x01\x02")),
            (Mp::from("a"), Mp::from(1)),
            (Mp::from("u"), Mp::Ext(0, vec![7, 7])),
            (Mp::from("u"), Mp::Ext(0, vec![0])),
        ]),
        bin(b"\x03"),
    ]);
    let msg = Mp::Array(vec![
        Mp::from("n1"),
        Mp::Map(vec![
            (Mp::from("type"), Mp::from(EVENT)),
            (Mp::from("data"), data),
            (Mp::from("nsp"), Mp::from("/")),
        ]),
        Mp::Map(Vec::new()),
    ]);
    let b = decode_broadcast(b"socket.io#/#", &msgpack::write(&msg), "socket.io").unwrap();
    assert_eq!(
        b.event_args,
        json!(["ev", {"a": 1}, {"_placeholder": true, "num": 0}])
    );
    assert_eq!(b.attachments, vec![Bytes::from_static(b"\x03")]);
}

/// The same for a broadcast-with-ack request: a binary outside `packet.data` is not one of the
/// packet's attachments, and the packet's own placeholder is renumbered to match.
#[test]
fn request_binary_outside_the_packet_is_not_an_attachment() {
    use rmpv::Value as Mp;
    let req = Mp::Map(vec![
        (Mp::from("type"), Mp::from(kind::BROADCAST)),
        (Mp::from("requestId"), Mp::from("r1")),
        (Mp::from("extra"), Mp::Binary(vec![9])),
        (
            Mp::from("packet"),
            Mp::Map(vec![
                (Mp::from("type"), Mp::from(EVENT)),
                (
                    Mp::from("data"),
                    Mp::Array(vec![Mp::from("ev"), Mp::Binary(vec![4])]),
                ),
                (Mp::from("nsp"), Mp::from("/")),
            ]),
        ),
    ]);
    let r = decode_request(b"socket.io-request#/#", &msgpack::write(&req), "socket.io").unwrap();
    let RemoteRequest::BroadcastWithAck { broadcast, .. } = r else {
        panic!("expected BroadcastWithAck, got {r:?}");
    };
    assert_eq!(
        broadcast.event_args,
        json!(["ev", {"_placeholder": true, "num": 0}])
    );
    assert_eq!(broadcast.attachments, vec![Bytes::from_static(b"\x04")]);
}

/// A recovery-log slot filled with an entry id decodes as the same broadcast with
/// `flags.offset` = the id (what the Lua script publishes and replay rebuilds).
#[test]
fn log_slot_filled_with_an_id_decodes_with_that_offset() {
    let args = vec![json!("s"), json!({"_placeholder": true, "num": 0})];
    let att = vec![Bytes::from_static(b"\x01\x02")];
    let rooms = strings(&["a"]);
    let except = strings(&["sid1"]);
    let o = Outgoing {
        uid: "node-1",
        nsp: "/",
        event: "ev",
        args: &args,
        attachments: &att,
        rooms: &rooms,
        except: &except,
        volatile: false,
    };
    let slot = encode_outgoing_slot(&o);
    let id = "1733370000000-12";
    let b = decode_broadcast(b"socket.io#/#a#", &fill_slot(&slot, id), "socket.io").unwrap();
    assert_eq!(b.offset(), Some(id));
    assert_eq!(
        b.event_args,
        json!(["ev", "s", {"_placeholder": true, "num": 0}])
    );
    assert_eq!(b.attachments, att);
    assert_eq!((&b.rooms, &b.except), (&rooms, &except));
    assert_eq!(b.source(), None);
    // Logged again on behalf of its publisher: the old offset is replaced, src added.
    let again = encode_broadcast_slot(&b, &digest(b"x"));
    let b2 = decode_broadcast(
        b"socket.io-log#/#",
        &fill_slot(&again, "9-0"),
        "socket.io-log",
    )
    .unwrap();
    assert_eq!(b2.offset(), Some("9-0"));
    assert_eq!(b2.source(), Some(digest(b"x").as_str()));
    assert_eq!(b2.event_args, b.event_args);
    // The plain message has no offset.
    let plain = decode_broadcast(b"socket.io#/#a#", &encode_outgoing(&o), "socket.io").unwrap();
    assert_eq!(plain.offset(), None);
}
